# The public API of the compiled session record cext._session, built from
# cext/_session_py.py (the twin, whose annotations and docstrings are the reference).
from collections.abc import Callable

from cext._tls import Sink
from cext._wire import Wire

MAX_HISTORY: int
MAX_ENCRYPTED_LENGTHS: int

class Caches:
    wire: Wire
    offer: Callable[[bytes], object]
    digests: Callable[[tuple], tuple]
    def __init__(self, wire: Wire, offers: int = ..., chains: int = ...) -> None: ...

def chain_digests(ders: tuple) -> tuple: ...
def offer_from_key(key: bytes) -> object: ...

class Session(Sink):
    start: float
    end: float
    caches: Caches
    history: list[str]
    alerts: list[tuple[int, int, int, int]]
    fin: list[int]
    rst: list[int]
    gaps: list[int]
    weirds: list[str]
    truncated: bool
    established: bool
    fatal: bool
    def __init__(self, ts: float, caches: Caches) -> None: ...
    @property
    def seen_tls(self) -> bool: ...
    def weird(self, name: str) -> None: ...
    def tcp_fin(self, d: int) -> None: ...
    def tcp_rst(self, d: int) -> None: ...
    def gap(self, d: int) -> None: ...
    def hello_unread(self) -> None: ...      # issue 15
    def handshake_over(self) -> bool: ...
    def outcome(self, reason: str) -> str: ...
    def summary(self, client: str, server: str, reason: str) -> dict: ...
    def certificate_ders(self) -> list[tuple[bytes, bytes]]: ...
