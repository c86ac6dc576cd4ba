"""The one implementation selector of the wire core: it decides once, at import, and hands
out a coherent engine.

Two kinds of modules make up the core.  ``_wire`` (packet decoding, record and handshake
splitting, hello parsing, Kafka's murmur2) is written in Cython (``_wire.pyx``) with a
hand-written twin (``_wire_py.py``).  The per-segment engine -- the TLS reader ``_tls``, the
session record ``_session`` and the flow table ``_flows`` -- and the tunnel decapsulation
``_encap`` that ``_wire``'s decoder calls are written once, in Python (``_tls_py.py`` ...),
and compiled by Cython as ``_tls`` ... with the static types of ``_tls.pxd`` ...: the ``.py``
files are the twin.  The JSON renderer is the same kind: the one renderer, ``proto/render.py``
(the twin, which the analyzer runs), compiled as ``_render`` with the types of ``_render.pxd``.
The engine modules import none of their siblings: they are handed them (``FlowTable(engine)``,
``TLSConnection(wire)``), so an :class:`Engine` is one build throughout; only the wire module's
decoder holds a ``Decapsulator`` of its own build (the compiled one calls it at C level).

The decision: the compiled build, unless ``TLSDIAG_NO_EXTENSIONS`` is set (the same switch as
``setup.py``'s) or the build is missing (a source checkout), then the twin.  A *partial* build
(``_wire`` without the engine, a stale build) raises ImportError rather than run half of each.

* :data:`ENGINE` -- the selected :class:`Engine`;
* :data:`IMPLEMENTATION` -- ``"c"`` or ``"py"``; :data:`FALLBACK_REASON` -- why the twin runs
  although the compiled build was wanted (None otherwise): for the start-up log and the metric;
* :func:`engine` -- either engine by name (the C = Py tests and the fuzz target run both);
* and the selected wire module's API (``PacketDecoder``, ``LINKTYPES``, ``kafka_partition``
  ...), for callers that need only that.
"""
from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import NamedTuple

NO_EXTENSIONS = os.environ.get("TLSDIAG_NO_EXTENSIONS", "") not in ("", "0")

#: the modules of each implementation, in Engine field order
_MODULES = {
    "c": ("cext._wire", "cext._tls", "cext._session", "cext._flows", "cext._render",
          "cext._encap"),
    "py": ("cext._wire_py", "cext._tls_py", "cext._session_py", "cext._flows_py", "proto.render",
           "cext._encap_py"),
}


class Engine(NamedTuple):
    """The six modules of one implementation of the core."""
    implementation: str         # "c" or "py"
    wire: ModuleType
    tls: ModuleType
    session: ModuleType
    flows: ModuleType
    render: ModuleType          # summary_to_json
    #: tunnel decapsulation (issue 15): the wire module's PacketDecoder holds a
    #: ``Decapsulator`` of its own build (the compiled decoder calls it at C level)
    encap: ModuleType

    def connection(self, sink=None, **limits):
        """A TLS reader of this build: ``tls.TLSConnection(wire.Wire(), sink, **limits)``
        (without a sink: the reference API, events of :mod:`cext.events`)."""
        return self.tls.TLSConnection(self.wire.Wire(), sink, **limits)

    def flow_table(self, **limits):
        """A flow table of this build: ``flows.FlowTable(self, **limits)``."""
        return self.flows.FlowTable(self, **limits)

    def decoder(self, linktype: int, table, share: "tuple[int, int] | None" = None):
        """A packet decoder of this build for ``table`` (it reads the table's flow and skip
        dicts, so it drops finished and skipped flows' packets in C); with a ``share``
        ``(lo, hi)`` of ``[0, SHARE_SPACE)``, of the connections whose key hashes there only
        (``--jobs``)."""
        return self.wire.PacketDecoder(linktype, table.flows, table.skip, *(share or ()))


def engine(implementation: str) -> Engine:
    """The engine ``"c"`` (ImportError if it is not built) or ``"py"``."""
    return Engine(implementation, *map(importlib.import_module, _MODULES[implementation]))


def _select() -> tuple[Engine, str | None]:
    if NO_EXTENSIONS:
        return engine("py"), None
    try:
        importlib.import_module("cext._wire")
    except ModuleNotFoundError as exc:
        if exc.name != "cext._wire":
            raise
        return engine("py"), "the compiled build is missing (%s)" % exc
    try:
        return engine("c"), None
    except ModuleNotFoundError as exc:
        raise ImportError("cext: %s is not built but cext._wire is (a stale build?): run "
                          "'pip install -e .' again, or set TLSDIAG_NO_EXTENSIONS=1"
                          % exc.name) from exc


ENGINE, FALLBACK_REASON = _select()
IMPLEMENTATION = ENGINE.implementation

# the selected wire module's API
if IMPLEMENTATION == "c":
    from cext._wire import *               # noqa: E402,F401,F403
    from cext._wire import __all__ as _WIRE_API  # noqa: E402
else:
    from cext._wire_py import *            # noqa: E402,F401,F403
    from cext._wire_py import __all__ as _WIRE_API  # noqa: E402

__all__ = ["ENGINE", "Engine", "FALLBACK_REASON", "IMPLEMENTATION", "NO_EXTENSIONS",
           "engine", *_WIRE_API]
