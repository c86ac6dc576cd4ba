"""Sans-I/O TLS handshake reader (h11's shape).

:class:`TLSConnection` is fed the two reassembled byte streams of one TCP connection and hands
out the events of :mod:`cext.events`.  It never touches a socket, a capture handle or a clock.
Its wire module (``cext._wire`` or the twin ``cext._wire_py``: record and handshake framing,
hello parsing) is given to it, not looked up: ``TLSConnection(wire)``; :mod:`cext.wire`
hands out coherent sets.

Direction is :data:`CLIENT` (0) or :data:`SERVER` (1).  A stream that cannot be TLS gives one
:class:`~cext.errors.ProtocolError` (after the events that came before the bad bytes); that
direction is then in the ERROR state and ignores further data.
"""
from __future__ import annotations

from collections import deque

from cext.errors import MalformedMessage, ProtocolError
from cext.events import (CLIENT, MAX_BUFFER, MAX_HANDSHAKE, NEED_DATA, SERVER, Alert,
                         Certificate, CertificateRequest, ChangeCipherSpec, ClientHello,
                         EncryptedRecord, HandshakeMessage, HelloRetryRequest, Record,
                         ServerHello, ServerKeyExchange)

__all__ = [
    "TLSConnection",
    # re-exported from cext.events
    "CLIENT", "SERVER", "NEED_DATA", "MAX_HANDSHAKE", "MAX_BUFFER", "ClientHello",
    "ServerHello", "HelloRetryRequest", "Certificate", "ServerKeyExchange",
    "CertificateRequest", "HandshakeMessage", "ChangeCipherSpec", "Alert", "EncryptedRecord",
    "Record",
]

#: ``_new(Event, (field, ...))`` builds an event without the generated ``__new__`` (a Python
#: frame per event on the hot path); every field is given, defaults included
_new = tuple.__new__

# RFC 8446 / 5246 content types and handshake types used by the state machine
_CCS, _ALERT, _HANDSHAKE, _APPDATA = 20, 21, 22, 23
_HT_CLIENT_HELLO, _HT_SERVER_HELLO, _HT_HRR_DRAFT = 1, 2, 6
_HT_CERTIFICATE, _HT_SKE, _HT_CERT_REQUEST = 11, 12, 13


def _is_tls13(version: int) -> bool:
    # proto.names.is_tls13, inlined for the compiled build (tests/test_names.py holds them equal)
    return version == 0x0304 or (version >> 8) == 0x7F or version in (0x7E01, 0x7E02, 0xFB17, 0xFB1A)


class _Direction:
    __slots__ = ("buf", "hs", "error", "encrypted", "started", "sslv2", "plaintext", "skip",
                 "hello")

    def __init__(self) -> None:
        self.buf = b""              # bytes of an incomplete record
        self.hs = b""               # bytes of an incomplete handshake message
        self.error: str | None = None
        self.encrypted = False      # after this side's CCS (TLS <= 1.2)
        self.started = False        # first record seen
        self.sslv2 = False          # records are SSLv2-framed
        self.plaintext = 0          # bytes skipped before TLS started (STARTTLS preamble)
        self.skip = 0               # rest of an encrypted record already reported
        self.hello = False          # issue 15: the first record began a ClientHello


class TLSConnection:
    """Reads both directions of one TLS connection; see the module docstring.

    ``feed_into(direction, data, sink)`` (what the flow table calls per segment) and
    ``feed(direction, data)`` -> ``(events, error)`` are the production API.  h11's
    ``receive_data()`` / ``next_event()`` / ``buffered()`` are kept as the reference API:
    only the tests use them (``tests/test_tls_stream.py`` holds both APIs equal on every
    chunking of real streams).
    """

    def __init__(self, wire, max_handshake: int = MAX_HANDSHAKE,
                 max_buffer: int = MAX_BUFFER) -> None:
        #: the wire module of the same build (framing and hello parsing)
        self.wire = wire
        self._events: deque = deque()
        self._pending_error: ProtocolError | None = None
        self.max_handshake = max_handshake
        self.max_buffer = max_buffer
        #: per-direction state (read-only for callers: ``dirs[d].skip``)
        self.dirs = (_Direction(), _Direction())
        #: negotiated version once a ServerHello was read (or the draft version)
        self.version = -1
        self.tls13 = False
        self._server_hello_seen = False
        self._emit = self._events.append

    # -- public API --------------------------------------------------------------------------
    def feed(self, direction: int, data: bytes):
        """Parse ``data`` of one direction: ``(events, error)``; ``error`` is the
        :class:`ProtocolError` that put this direction in the ERROR state, or None."""
        out: list = []
        error = self.feed_into(direction, data, out.append)
        return out, error

    def feed_into(self, direction: int, data: bytes, sink):
        """Like :meth:`feed`, but hands each event to ``sink(event)`` as it is parsed and
        returns only the error (or None): the sensor's hot path."""
        d = self.dirs[direction]
        if d.error is not None or not data:
            return None
        self._emit = sink
        try:
            self._parse(direction, d, d.buf + data if d.buf else data)
        except ProtocolError as exc:
            self._fail(d, exc)
            return exc
        return None

    def receive_data(self, direction: int, data: bytes) -> None:
        events, error = self.feed(direction, data)
        self._events.extend(events)
        if error is not None and self._pending_error is None:
            self._pending_error = error

    def receive_gap(self, direction: int) -> None:
        """Bytes are missing from this direction: stop parsing it (never parse across)."""
        d = self.dirs[direction]
        if d.error is None:
            d.error = "gap"
            d.buf = d.hs = b""

    def next_event(self):
        if self._events:
            return self._events.popleft()
        if self._pending_error is not None:
            exc, self._pending_error = self._pending_error, None
            raise exc
        return NEED_DATA

    def state(self, direction: int) -> str:
        d = self.dirs[direction]
        return "ERROR" if d.error is not None else ("ENCRYPTED" if d.encrypted else "CLEAR")

    def buffered(self) -> int:
        return sum(len(d.buf) + len(d.hs) for d in self.dirs)

    def take_skip(self, direction: int, minimum: int) -> int:
        """If this direction is inside an encrypted record with at least ``minimum`` bytes
        still to come, return that count and forget it: the caller will not deliver those
        bytes (it skips them below the parser).  Otherwise 0."""
        d = self.dirs[direction]
        n = d.skip
        if n >= minimum and d.error is None:
            d.skip = 0
            return n
        return 0

    def plaintext(self) -> int:
        """Bytes of non-TLS preamble skipped so far (both directions)."""
        return self.dirs[0].plaintext + self.dirs[1].plaintext

    # -- internals ---------------------------------------------------------------------------
    def _fail(self, d: _Direction, exc: ProtocolError) -> None:
        d.error = exc.reason
        d.buf = d.hs = b""

    def _parse(self, direction: int, d: _Direction, buf) -> None:
        if d.skip:                                 # inside an encrypted record
            n = len(buf)
            if n <= d.skip:
                d.skip -= n
                d.buf = b""
                return
            buf = buf[d.skip:]
            d.skip = 0
        if not d.started:
            if len(buf) < 3:
                if not (20 <= buf[0] <= 24 or buf[0] & 0x80) or (
                        len(buf) == 2 and not buf[0] & 0x80 and buf[1] != 3):
                    # issue 15: a short segment that cannot begin a record header is
                    # STARTTLS plaintext (PostgreSQL answers SSLRequest with the one byte
                    # 'S'): buffered, it would hide the header of the first TLS flight
                    d.plaintext += len(buf)
                    d.buf = b""
                    return
                d.buf = bytes(buf)
                return
            b0, b1, b2 = buf[0], buf[1], buf[2]
            if b0 & 0x80 and b2 in (1, 4):
                d.sslv2 = True
            elif not (20 <= b0 <= 24 and b1 == 3 and b2 <= 4):
                # not a record header: plaintext before TLS (STARTTLS: SMTP, IMAP, XMPP ...)
                # or no TLS at all.  Segment-aligned, like the protocols that upgrade.
                d.plaintext += len(buf)
                d.buf = b""
                return
            d.started = True
            # issue 15: a ClientHello began (it may never complete or parse: the flow table
            # still summarizes the connection)
            d.hello = direction == CLIENT and ((b0 == _HANDSHAKE and len(buf) > 5 and buf[5] == 1)
                                               or (d.sslv2 and b2 == 1))
        if d.sslv2:
            d.buf = bytearray(buf)
            self._parse_sslv2(direction, d)
            return
        wire = self.wire
        records, pos, reason = wire.split_records(buf, 0)
        emit = self._emit
        tls13 = self.tls13
        for ct, version, frag in records:
            if ct == _HANDSHAKE and not d.encrypted and not (tls13 and direction == SERVER
                                                             and self._server_hello_seen):
                hs = d.hs + frag if d.hs else frag
                msgs, hpos, hreason = wire.split_handshakes(hs, 0, self.max_handshake)
                d.hs = hs[hpos:] if hpos < len(hs) else b""
                if len(d.hs) > self.max_buffer:
                    raise MalformedMessage("handshake_too_long")
                for mt, body in msgs:
                    self._handshake(direction, mt, body)
                tls13 = self.tls13
                if hreason is not None:
                    raise MalformedMessage(hreason)
            elif ct == _CCS:
                emit(_new(ChangeCipherSpec, (direction,)))
                if not tls13:
                    d.encrypted = True
            elif ct == _ALERT and not d.encrypted and (len(frag) == 2 or not tls13):
                # a 2-byte alert before this side encrypts is plaintext; in TLS 1.3 a 2-byte
                # alert record is plaintext too (AEAD output is always longer)
                for i in range(0, len(frag) - 1, 2):
                    emit(_new(Alert, (direction, frag[i], frag[i + 1])))
            elif d.encrypted or ct == _APPDATA or (tls13 and (ct == _ALERT or ct == _HANDSHAKE)):
                emit(_new(EncryptedRecord, (direction, ct, len(frag))))
            else:
                emit(_new(Record, (direction, ct, len(frag))))
        if reason is not None:
            raise MalformedMessage(reason)
        rest = len(buf) - pos
        if rest >= 5:
            # an incomplete record: if it is encrypted, report it now and skip its bytes
            # instead of buffering up to 18 KB of ciphertext
            ct = buf[pos]
            if d.encrypted or ct == _APPDATA or (tls13 and ct == _ALERT):
                ln = (buf[pos + 3] << 8) | buf[pos + 4]
                emit(_new(EncryptedRecord, (direction, ct, ln)))
                d.skip = ln - (rest - 5)
                d.buf = b""
                return
        d.buf = bytes(buf[pos:]) if rest else b""

    def _handshake(self, direction: int, mt: int, body: bytes) -> None:
        emit = self._emit
        if mt == _HT_CLIENT_HELLO and direction == CLIENT:
            try:
                fields = self.wire.parse_client_hello(body)
            except MalformedMessage:
                # issue 15: a ClientHello whose body does not parse still enters the history
                # (so the connection is summarized, silent server or not); the error that
                # follows is the weird naming what was wrong
                emit(_new(HandshakeMessage, (direction, mt, len(body))))
                raise
            emit(_new(ClientHello, (direction, *fields, False)))
        elif mt == _HT_SERVER_HELLO and direction == SERVER:
            (legacy, sid, suite, comp, exts, selected, group, alpn, psk,
             is_hrr) = _server_hello(self.wire, body)
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
            emit(Certificate(direction, tuple(self.wire.parse_certificate(body, self.tls13))))
        elif mt == _HT_SKE and direction == SERVER:
            emit(ServerKeyExchange(direction, body))
        elif mt == _HT_CERT_REQUEST and direction == SERVER:
            emit(CertificateRequest(direction))
        else:
            emit(_new(HandshakeMessage, (direction, mt, len(body))))

    def _parse_sslv2(self, direction: int, d: _Direction) -> None:
        """SSLv2 record framing (2- or 3-byte headers).  Only the hellos are read; what
        follows the SSLv2 ServerHello is opaque."""
        buf = d.buf
        pos = 0
        n = len(buf)
        emit = self._emit
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
                rest = bytes(buf[pos:])
                d.buf = b""
                if rest:
                    self._parse(direction, d, rest)
                return
            if mt == 4 and direction == SERVER:
                sh, certs = _sslv2_server_hello(direction, body)
                self.version = 2
                self._server_hello_seen = True
                emit(sh)
                if certs:
                    emit(Certificate(direction, certs))
                self.dirs[CLIENT].sslv2 = True
                continue
            emit(EncryptedRecord(direction, 0, ln))
        d.buf = bytes(buf[pos:])


def _server_hello(wire, body: bytes) -> tuple:
    """wire.parse_server_hello, plus the early TLS 1.3 drafts (draft-14 and before) whose
    ServerHello says 0x0304 but has the draft layout (no session id, no compression)."""
    try:
        return wire.parse_server_hello(body)
    except MalformedMessage:
        if len(body) < 36 or body[0] != 3 or body[1] != 4:
            raise
        t = wire.parse_server_hello(b"\x7f\x0e" + body[2:])   # read with the draft layout
        return (0x0304,) + t[1:5] + (0x0304 if t[5] == 0x7F0E else t[5],) + t[6:]


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
