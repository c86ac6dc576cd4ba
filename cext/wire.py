"""Selects the implementation of the wire core: the Cython build unless
``TLSDIAG_NO_EXTENSIONS`` is set or it is not built, else the pure-Python twin.

Two kinds of modules make up the core.  ``_wire`` (packet decoding, record and handshake
splitting, hello parsing) is written in Cython (``_wire.pyx``) with a hand-written twin
(``_wire_py.py``).  The per-segment engine -- the TLS reader ``_tls``, the session record
``_session`` and the flow table ``_flows`` -- is written once, in Python (``_tls_py.py`` ...),
and compiled by Cython as ``_tls`` ... with the static types of ``_tls.pxd`` ...: the ``.py``
files are the twin.  :func:`module` gives the selected one; ``sensor.tls``,
``sensor.session`` and ``sensor.flows`` are those.

``IMPLEMENTATION`` is ``"c"`` or ``"py"``; the CLI logs it at startup.
"""
from __future__ import annotations

import importlib
import os
from importlib.util import find_spec

#: the per-segment engine, compiled from ``_<name>_py.py``
COMPILED_MODULES = ("tls", "session", "flows")

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

if IMPLEMENTATION == "c":
    _missing = [m for m in COMPILED_MODULES if find_spec("cext._" + m) is None]
    if _missing:
        raise ImportError("cext: the compiled %s not built (a stale build?): run "
                          "'pip install -e .' again, or set TLSDIAG_NO_EXTENSIONS=1"
                          % ", ".join("_" + m for m in _missing))


def module(name: str):
    """The selected implementation of one engine module: ``module("tls")`` is
    ``cext._tls`` (compiled) or ``cext._tls_py`` (the twin)."""
    if name not in COMPILED_MODULES:
        raise ValueError("not an engine module: %r" % name)
    return importlib.import_module("cext._%s%s" % (name, "" if IMPLEMENTATION == "c" else "_py"))
