"""Sans-I/O TLS handshake reader (h11's shape).

:class:`TLSConnection` is fed the two reassembled byte streams of one TCP connection with
``receive_data(direction, data)`` and hands out events with ``next_event()`` until it returns
:data:`NEED_DATA`.  It never touches a socket, a capture handle or a clock.

Direction is :data:`CLIENT` (0) or :data:`SERVER` (1).  A stream that cannot be TLS raises
:class:`~cext.errors.ProtocolError` once from ``next_event()`` (after the events that came
before the bad bytes); that direction is then in the ERROR state and ignores further data.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from cext import wire
from cext.errors import MalformedMessage, ProtocolError

__all__ = [
    "CLIENT", "SERVER", "NEED_DATA", "TLSConnection", "ClientHello", "ServerHello",
    "HelloRetryRequest", "Certificate", "ServerKeyExchange", "CertificateRequest",
    "HandshakeMessage", "ChangeCipherSpec", "Alert", "EncryptedRecord", "Record",
]

CLIENT, SERVER = 0, 1


class _Sentinel:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


NEED_DATA = _Sentinel("NEED_DATA")

# RFC 8446 / 5246 content types and handshake types used by the state machine
_CCS, _ALERT, _HANDSHAKE, _APPDATA = 20, 21, 22, 23
_HT_CLIENT_HELLO, _HT_SERVER_HELLO, _HT_HRR_DRAFT = 1, 2, 6
_HT_CERTIFICATE, _HT_SKE, _HT_CERT_REQUEST = 11, 12, 13

#: default cap on one handshake message (a certificate chain with 10,000 SANs still fits)
MAX_HANDSHAKE = 1 << 20
#: default cap on the bytes buffered per direction (records + handshake fragments)
MAX_BUFFER = (1 << 20) + 2 * wire.MAX_RECORD


@dataclass(frozen=True, slots=True)
class ClientHello:
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


@dataclass(frozen=True, slots=True)
class ServerHello:
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


@dataclass(frozen=True, slots=True)
class HelloRetryRequest:
    direction: int
    selected_version: int
    cipher_suite: int
    key_share_group: int


@dataclass(frozen=True, slots=True)
class Certificate:
    direction: int
    certificates: tuple          # DER bytes, wire order


@dataclass(frozen=True, slots=True)
class ServerKeyExchange:
    direction: int
    body: bytes


@dataclass(frozen=True, slots=True)
class CertificateRequest:
    direction: int


@dataclass(frozen=True, slots=True)
class HandshakeMessage:
    """Any other plaintext handshake message (server_hello_done, client_key_exchange,
    new_session_ticket, certificate_status, certificate_verify, unassigned types ...)."""
    direction: int
    msg_type: int
    length: int


@dataclass(frozen=True, slots=True)
class ChangeCipherSpec:
    direction: int


@dataclass(frozen=True, slots=True)
class Alert:
    direction: int
    level: int
    description: int


@dataclass(frozen=True, slots=True)
class EncryptedRecord:
    """A record whose content is encrypted: anything after this direction's
    ChangeCipherSpec in TLS <= 1.2, application_data (and non-2-byte alerts) in TLS 1.3."""
    direction: int
    content_type: int
    length: int


@dataclass(frozen=True, slots=True)
class Record:
    """A plaintext record that is neither handshake, CCS nor alert (heartbeat, plaintext
    application_data, unassigned types)."""
    direction: int
    content_type: int
    length: int


def _is_tls13(version: int) -> bool:
    # RFC 8446 version, its drafts (0x7fXX) and the pre-standard experiments built on them
    return version == 0x0304 or (version >> 8) == 0x7F or version in (0x7E01, 0x7E02, 0xFB17, 0xFB1A)


class _Direction:
    __slots__ = ("buf", "hs", "error", "encrypted", "started", "sslv2", "plaintext")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.hs = bytearray()
        self.error: str | None = None
        self.encrypted = False      # after this side's CCS (TLS <= 1.2)
        self.started = False        # first record seen
        self.sslv2 = False          # records are SSLv2-framed
        self.plaintext = 0          # bytes skipped before TLS started (STARTTLS preamble)


class TLSConnection:
    """Reads both directions of one TLS connection; see the module docstring."""

    def __init__(self, max_handshake: int = MAX_HANDSHAKE, max_buffer: int = MAX_BUFFER) -> None:
        self._dirs = (_Direction(), _Direction())
        self._events: deque = deque()
        self._pending_error: ProtocolError | None = None
        self.max_handshake = max_handshake
        self.max_buffer = max_buffer
        #: negotiated version once a ServerHello was read (or the draft version)
        self.version = -1
        self.tls13 = False

    # -- public API --------------------------------------------------------------------------
    def receive_data(self, direction: int, data: bytes) -> None:
        d = self._dirs[direction]
        if d.error is not None or not data:
            return
        d.buf += data
        try:
            self._parse(direction, d)
        except ProtocolError as exc:
            self._fail(d, exc)

    def receive_gap(self, direction: int) -> None:
        """Bytes are missing from this direction: stop parsing it (never parse across)."""
        d = self._dirs[direction]
        if d.error is None:
            d.error = "gap"
            d.buf = bytearray()
            d.hs = bytearray()

    def next_event(self):
        if self._events:
            return self._events.popleft()
        if self._pending_error is not None:
            exc, self._pending_error = self._pending_error, None
            raise exc
        return NEED_DATA

    def state(self, direction: int) -> str:
        d = self._dirs[direction]
        return "ERROR" if d.error is not None else ("ENCRYPTED" if d.encrypted else "CLEAR")

    def buffered(self) -> int:
        return sum(len(d.buf) + len(d.hs) for d in self._dirs)

    # -- internals ---------------------------------------------------------------------------
    def _fail(self, d: _Direction, exc: ProtocolError) -> None:
        d.error = exc.reason
        d.buf = bytearray()
        d.hs = bytearray()
        if self._pending_error is None:
            self._pending_error = exc

    def plaintext(self) -> int:
        """Bytes of non-TLS preamble skipped so far (both directions)."""
        return self._dirs[0].plaintext + self._dirs[1].plaintext

    def _parse(self, direction: int, d: _Direction) -> None:
        if not d.started:
            if len(d.buf) < 3:
                return
            b0, b1, b2 = d.buf[0], d.buf[1], d.buf[2]
            if b0 & 0x80 and b2 in (1, 4):
                d.sslv2 = True
            elif not (20 <= b0 <= 24 and b1 == 3 and b2 <= 4):
                # not a record header: plaintext before TLS (STARTTLS: SMTP, IMAP, XMPP ...)
                # or no TLS at all.  Segment-aligned, like the protocols that upgrade.
                d.plaintext += len(d.buf)
                d.buf = bytearray()
                return
            d.started = True
        if d.sslv2:
            self._parse_sslv2(direction, d)
            return
        records, pos, reason = wire.split_records(d.buf, 0)
        if pos:
            del d.buf[:pos]
        emit = self._events.append
        for ct, version, frag in records:
            if ct == _HANDSHAKE and not d.encrypted and not (self.tls13 and direction == SERVER
                                                             and self._server_hello_seen):
                d.hs += frag
                if len(d.hs) > self.max_buffer:
                    raise MalformedMessage("handshake_too_long")
                msgs, hpos, hreason = wire.split_handshakes(d.hs, 0, self.max_handshake)
                if hpos:
                    del d.hs[:hpos]
                for mt, body in msgs:
                    self._handshake(direction, mt, body)
                if hreason is not None:
                    raise MalformedMessage(hreason)
            elif ct == _CCS:
                emit(ChangeCipherSpec(direction))
                if not self.tls13:
                    d.encrypted = True
            elif ct == _ALERT and not d.encrypted and (len(frag) == 2 or not self.tls13):
                # a 2-byte alert before this side encrypts is plaintext; in TLS 1.3 a 2-byte
                # alert record is plaintext too (AEAD output is always longer)
                for i in range(0, len(frag) - 1, 2):
                    emit(Alert(direction, frag[i], frag[i + 1]))
            elif d.encrypted or ct == _APPDATA or (ct == _ALERT and self.tls13) or (
                    ct == _HANDSHAKE and self.tls13):
                emit(EncryptedRecord(direction, ct, len(frag)))
            else:
                emit(Record(direction, ct, len(frag)))
        if reason is not None:
            raise MalformedMessage(reason)
        if len(d.buf) > self.max_buffer:
            raise MalformedMessage("record_overflow")

    _server_hello_seen = False

    def _handshake(self, direction: int, mt: int, body: bytes) -> None:
        emit = self._events.append
        if mt == _HT_CLIENT_HELLO and direction == CLIENT:
            emit(ClientHello(direction, *wire.parse_client_hello(body)))
        elif mt == _HT_SERVER_HELLO and direction == SERVER:
            (legacy, sid, suite, comp, exts, selected, group, alpn, psk,
             is_hrr) = wire.parse_server_hello(body)
            if is_hrr:
                # RFC 8446 4.1.4: only TLS 1.3 sends a HelloRetryRequest; its CCS is fake
                self.tls13 = True
                emit(HelloRetryRequest(direction, selected, suite, group))
                return
            sh = ServerHello(direction, legacy, sid, suite, comp, exts, selected, group, alpn, psk)
            self.version = sh.version
            self.tls13 = _is_tls13(self.version)
            self._server_hello_seen = True
            emit(sh)
        elif mt == _HT_HRR_DRAFT and direction == SERVER:
            # draft-era HelloRetryRequest: server_version cipher? extensions; report the version
            ver = (body[0] << 8) | body[1] if len(body) >= 2 else -1
            self.tls13 = True
            emit(HelloRetryRequest(direction, ver, -1, -1))
        elif mt == _HT_CERTIFICATE:
            emit(Certificate(direction, tuple(wire.parse_certificate(body, self.tls13))))
        elif mt == _HT_SKE and direction == SERVER:
            emit(ServerKeyExchange(direction, body))
        elif mt == _HT_CERT_REQUEST and direction == SERVER:
            emit(CertificateRequest(direction))
        else:
            emit(HandshakeMessage(direction, mt, len(body)))

    def _parse_sslv2(self, direction: int, d: _Direction) -> None:
        """SSLv2 record framing (2- or 3-byte headers).  Only the hellos are read; what
        follows the SSLv2 ServerHello is opaque."""
        buf = d.buf
        pos = 0
        n = len(buf)
        emit = self._events.append
        while pos + 2 <= n:
            if buf[pos] & 0x80:
                hl = 2
                ln = ((buf[pos] & 0x7F) << 8) | buf[pos + 1]
            else:
                hl = 3
                ln = ((buf[pos] & 0x3F) << 8) | buf[pos + 1]
            if pos + hl + ln > n:
                break
            body = bytes(buf[pos + hl:pos + hl + ln])
            pos += hl + ln
            if self._server_hello_seen or not body:
                emit(EncryptedRecord(direction, 0, ln))
                continue
            mt = body[0]
            if mt == 1 and direction == CLIENT:
                emit(_sslv2_client_hello(direction, body))
                # a v2-framed ClientHello may be answered in v3 framing: go back to v3
                d.sslv2 = False
                del buf[:pos]
                self._parse(direction, d)
                return
            if mt == 4 and direction == SERVER:
                sh, certs = _sslv2_server_hello(direction, body)
                self.version = 2
                self._server_hello_seen = True
                emit(sh)
                if certs:
                    emit(Certificate(direction, certs))
                self._dirs[CLIENT].sslv2 = True
                continue
            emit(EncryptedRecord(direction, 0, ln))
        del buf[:pos]


def _sslv2_client_hello(direction: int, b: bytes) -> ClientHello:
    if len(b) < 9:
        raise MalformedMessage("bad_sslv2_record")
    version = (b[1] << 8) | b[2]
    cs_len = (b[3] << 8) | b[4]
    sid_len = (b[5] << 8) | b[6]
    ch_len = (b[7] << 8) | b[8]
    if cs_len % 3 or 9 + cs_len + sid_len + ch_len > len(b):
        raise MalformedMessage("bad_sslv2_record")
    specs = tuple((b[i] << 16) | (b[i + 1] << 8) | b[i + 2] for i in range(9, 9 + cs_len, 3))
    sid = bytes(b[9 + cs_len:9 + cs_len + sid_len])
    versions = (version,) if version != 2 else ()
    return ClientHello(direction, version, sid, specs, (0,), (), None, (), (), (), (), versions,
                       (), False, -1, True)


def _sslv2_server_hello(direction: int, b: bytes):
    if len(b) < 11:
        raise MalformedMessage("bad_sslv2_record")
    version = (b[3] << 8) | b[4]
    cert_len = (b[5] << 8) | b[6]
    cs_len = (b[7] << 8) | b[8]
    if cs_len % 3 or 11 + cert_len + cs_len > len(b):
        raise MalformedMessage("bad_sslv2_record")
    cert = bytes(b[11:11 + cert_len])
    spec = -1
    if cs_len >= 3:
        i = 11 + cert_len
        spec = (b[i] << 16) | (b[i + 1] << 8) | b[i + 2]
    sh = ServerHello(direction, version, b"", spec, 0, (), -1, -1, None, False, True)
    return sh, ((cert,) if cert else ())
