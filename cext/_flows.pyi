# The public API of the compiled flow table cext._flows, built from cext/_flows_py.py (the
# twin, whose annotations and docstrings are the reference).
from typing import Any

from cext._session import Caches, Session
from cext._tls import TLSConnection
from cext._wire import PacketDecoder, Skip, Wire

class Flow:
    key: bytes
    client_lo: bool
    conn: TLSConnection | None
    session: Session | None
    first: float
    last: float
    serial: int
    created: int
    reset_at: float             # issue 15: the client's RST while lingering after it (-1: none)
    held: int                   # bytes held for reassembly, as its table last counted
    def __init__(self, key: bytes, client_lo: bool, ts: float, serial: int = 0,
                 created: int = 0) -> None: ...
    def endpoints(self) -> tuple[bytes, bytes]: ...

class FlowTable:
    wire: Wire
    caches: Caches
    flows: dict[bytes, Any]
    live: int
    ndone: int
    skip: dict[bytes, Skip]
    stats: dict[str, int]
    reasons: dict[str, int]
    max_flows: int
    max_done: int
    max_buffered: int
    buffered: int
    idle_timeout: float
    now: float
    def __init__(self, engine: object, max_flows: int = ..., idle_timeout: float = ...,
                 max_ooo_bytes: int = ..., max_ooo_segments: int = ..., max_done: int = ...,
                 max_handshake: int = ..., close_linger: float = ..., skip_min: int = ...,
                 offers: int = ..., chains: int = ..., max_buffered: int = ...) -> None: ...
    keys: list[tuple[int, int, int]] | None
    def decoded(self, dec: PacketDecoder) -> list[tuple[dict, list[tuple[bytes, bytes]]]]: ...
    def ordered(self) -> None: ...
    def process(self, segments: list) -> list[tuple[dict, list[tuple[bytes, bytes]]]]: ...
    def segment(self, ts: float, key: bytes, from_lo: bool, flags: int, seq: int,
                payload: bytes, truncated: bool) -> None: ...
    def begin_batch(self) -> None: ...
    def end_batch(self) -> list[tuple[dict, list[tuple[bytes, bytes]]]]: ...
    def expire(self, now: float, out: list | None = None) -> list: ...
    def flush(self, reason: str = "incomplete") -> list: ...
    def done_keys(self) -> list[bytes]: ...
