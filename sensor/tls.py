"""The sans-I/O TLS handshake reader and its events: ``cext/_tls_py.py``, compiled
(``cext._tls``) or the pure-Python twin, as :mod:`cext.wire` selects.  This module *is* the
selected one (it replaces itself in ``sys.modules``), so attributes set on it reach the code."""
import sys

from cext import wire

sys.modules[__name__] = wire.module("tls")
