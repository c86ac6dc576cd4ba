# The public API of the compiled TLS reader cext._tls, built from cext/_tls_py.py (the twin,
# whose annotations and docstrings are the reference).  The events are cext.events'.
from cext._wire import Wire
from cext.errors import ProtocolError
from cext.events import (CLIENT as CLIENT, MAX_BUFFER as MAX_BUFFER,
                         MAX_HANDSHAKE as MAX_HANDSHAKE, NEED_DATA as NEED_DATA, SERVER as SERVER,
                         Alert as Alert, Certificate as Certificate,
                         CertificateRequest as CertificateRequest,
                         ChangeCipherSpec as ChangeCipherSpec, ClientHello as ClientHello,
                         EncryptedRecord as EncryptedRecord, HandshakeMessage as HandshakeMessage,
                         HelloRetryRequest as HelloRetryRequest, Record as Record,
                         ServerHello as ServerHello, ServerKeyExchange as ServerKeyExchange)

GAP: int

class Sink:
    """The reader's events, one C method per kind (not callable from Python)."""

class EventQueue(Sink):
    wire: Wire
    events: list
    def __init__(self, wire: Wire) -> None: ...
    def take(self) -> list: ...

class _Direction:
    buf: bytes
    hs: bytes
    error: int
    encrypted: bool
    started: bool
    sslv2: bool
    plaintext: int
    skip: int
    hello: bool                 # issue 15: the first record began a ClientHello

class TLSConnection:
    wire: Wire
    sink: Sink
    dirs: tuple[_Direction, _Direction]
    max_handshake: int
    max_buffer: int
    version: int
    tls13: bool
    def __init__(self, wire: Wire, sink: Sink | None = None, max_handshake: int = ...,
                 max_buffer: int = ...) -> None: ...
    def feed_at(self, direction: int, data: bytes, start: int, end: int) -> int: ...
    def feed(self, direction: int, data: bytes) -> tuple[list, ProtocolError | None]: ...
    def receive_data(self, direction: int, data: bytes) -> None: ...
    def receive_gap(self, direction: int) -> None: ...
    def next_event(self) -> object: ...
    def state(self, direction: int) -> str: ...
    def buffered(self) -> int: ...
    def buffered_in(self, direction: int) -> int: ...
    def pending_skip(self, direction: int) -> int: ...
    def take_skip(self, direction: int, minimum: int) -> int: ...
    def plaintext(self) -> int: ...
