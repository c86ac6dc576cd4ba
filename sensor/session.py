"""The per-connection session record (events -> summary): ``cext/_session_py.py``, compiled
(``cext._session``) or the pure-Python twin, as :mod:`cext.wire` selects.  This module *is* the
selected one (it replaces itself in ``sys.modules``), so attributes set on it reach the code."""
import sys

from cext import wire

sys.modules[__name__] = wire.module("session")
