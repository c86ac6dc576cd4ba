import sys

from tlsdiag.cli import main

sys.exit(main())
