"""Selects the wire implementation: the Cython build (``cext._wire``) unless
``TLSDIAG_NO_EXTENSIONS`` is set or it is not built, else the pure-Python twin.

``IMPLEMENTATION`` is ``"c"`` or ``"py"``; the CLI logs it at startup.
"""
from __future__ import annotations

import os

NO_EXTENSIONS = os.environ.get("TLSDIAG_NO_EXTENSIONS", "") not in ("", "0")

if NO_EXTENSIONS:
    from ._wire_py import *                # noqa: F401,F403
    from ._wire_py import __all__          # noqa: F401
    IMPLEMENTATION = "py"
else:
    try:
        from ._wire import *               # noqa: F401,F403
        from ._wire import __all__         # noqa: F401
        IMPLEMENTATION = "c"
    except ImportError:                    # not built (e.g. a source checkout): the twin
        from ._wire_py import *            # noqa: F401,F403
        from ._wire_py import __all__      # noqa: F401
        IMPLEMENTATION = "py"
