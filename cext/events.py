"""The TLS reader's vocabulary, shared by both builds (like h11's ``_events``): directions,
:data:`NEED_DATA`, the events :class:`~cext._tls_py.TLSConnection` hands out, and the
default limits of the reader.

Plain Python, never compiled: the compiled reader (``cext._tls``) and its twin
(``cext._tls_py``) build the same event classes, so the session record dispatches on them
without knowing which reader produced them, and events of the two builds compare equal.

Events are immutable ``NamedTuple``s rather than frozen slotted dataclasses: a frozen
dataclass pays one ``object.__setattr__`` per field on construction, and the reader builds
several events per connection on the sensor's hot path.
"""
from __future__ import annotations

from typing import NamedTuple

__all__ = [
    "CLIENT", "SERVER", "NEED_DATA", "MAX_HANDSHAKE", "MAX_BUFFER", "ClientHello",
    "ServerHello", "HelloRetryRequest", "Certificate", "ServerKeyExchange",
    "CertificateRequest", "HandshakeMessage", "ChangeCipherSpec", "Alert", "EncryptedRecord",
    "Record",
]

CLIENT, SERVER = 0, 1

#: default cap on one handshake message (a certificate chain with 10,000 SANs still fits)
MAX_HANDSHAKE = 1 << 20
#: default cap on the bytes buffered per direction (records + handshake fragments): one
#: handshake message and two records of ``MAX_RECORD`` (RFC 5246 6.2.3: 2^14 + 2048)
MAX_BUFFER = (1 << 20) + 2 * ((1 << 14) + 2048)


class _Sentinel:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: what ``TLSConnection.next_event()`` returns when it needs more bytes
NEED_DATA = _Sentinel("NEED_DATA")


class ClientHello(NamedTuple):
    direction: int
    legacy_version: int
    session_id: bytes
    cipher_suites: tuple
    compression_methods: tuple
    extensions: tuple
    server_name: str | None
    alpn: tuple
    supported_groups: tuple
    ec_point_formats: tuple
    signature_algorithms: tuple
    supported_versions: tuple
    key_share_groups: tuple
    psk: bool
    session_ticket: int
    sslv2: bool = False


class ServerHello(NamedTuple):
    direction: int
    legacy_version: int
    session_id: bytes
    cipher_suite: int
    compression_method: int
    extensions: tuple
    selected_version: int
    key_share_group: int
    alpn: str | None
    psk: bool
    sslv2: bool = False

    @property
    def version(self) -> int:
        return self.selected_version if self.selected_version >= 0 else self.legacy_version


class HelloRetryRequest(NamedTuple):
    direction: int
    selected_version: int
    cipher_suite: int
    key_share_group: int


class Certificate(NamedTuple):
    direction: int
    certificates: tuple          # DER bytes, wire order


class ServerKeyExchange(NamedTuple):
    direction: int
    body: bytes


class CertificateRequest(NamedTuple):
    direction: int


class HandshakeMessage(NamedTuple):
    """Any other plaintext handshake message (server_hello_done, client_key_exchange,
    new_session_ticket, certificate_status, certificate_verify, unassigned types ...)."""
    direction: int
    msg_type: int
    length: int


class ChangeCipherSpec(NamedTuple):
    direction: int


class Alert(NamedTuple):
    direction: int
    level: int
    description: int


class EncryptedRecord(NamedTuple):
    """A record whose content is encrypted: anything after this direction's
    ChangeCipherSpec in TLS <= 1.2, application_data (and non-2-byte alerts) in TLS 1.3."""
    direction: int
    content_type: int
    length: int


class Record(NamedTuple):
    """A plaintext record that is neither handshake, CCS nor alert (heartbeat, plaintext
    application_data, unassigned types)."""
    direction: int
    content_type: int
    length: int
