"""Sans-I/O TLS handshake reader (h11's shape).

:class:`TLSConnection` is fed the two reassembled byte streams of one TCP connection and hands
what it reads to a :class:`Sink`: one method per event kind, called with plain values (in the
compiled build, C calls with C integers -- no object per record).  It never touches a socket,
a capture handle or a clock.  Its wire parser (``cext._wire.Wire`` or the twin's
``cext._wire_py.Wire``: hello and certificate parsing) is given to it, not looked up:
``TLSConnection(wire, sink)``; :mod:`cext.wire` hands out coherent sets.

Input is ``data[start:end]`` of a ``bytes``, read in place: records and handshake messages are
framed here, over offsets; only the bytes of an incomplete record or handshake message are
copied (kept for the next segment), and what leaves the reader (DER certificates, session
ids, names) is copied by the parser.

Direction is :data:`CLIENT` (0) or :data:`SERVER` (1).  A stream that cannot be TLS gives one
error status (``cext.errors``: 0 ok, ``-n`` a reason), after the events that came before the
bad bytes; that direction is then in the ERROR state and ignores further data.

Without a sink, a connection collects the events of :mod:`cext.events` (:class:`EventQueue`):
``feed(direction, data) -> (events, error)`` and h11's ``receive_data()`` /
``next_event()`` -- the reference API the tests hold both builds and every chunking to.
"""
from __future__ import annotations

from collections import deque

from cext.errors import (E_BAD_RECORD_VERSION, E_BAD_SSLV2_RECORD, E_HANDSHAKE_TOO_LONG,
                         E_RECORD_OVERFLOW, E_UNKNOWN_CONTENT_TYPE, error)
from cext.events import (CLIENT, MAX_BUFFER, MAX_HANDSHAKE, NEED_DATA, SERVER, Alert,
                         Certificate, CertificateRequest, ChangeCipherSpec, ClientHello,
                         EncryptedRecord, HandshakeMessage, HelloRetryRequest, Record,
                         ServerHello, ServerKeyExchange)

__all__ = [
    "TLSConnection", "Sink", "EventQueue", "GAP",
    # re-exported from cext.events
    "CLIENT", "SERVER", "NEED_DATA", "MAX_HANDSHAKE", "MAX_BUFFER", "ClientHello",
    "ServerHello", "HelloRetryRequest", "Certificate", "ServerKeyExchange",
    "CertificateRequest", "HandshakeMessage", "ChangeCipherSpec", "Alert", "EncryptedRecord",
    "Record",
]

#: ``_new(Event, (field, ...))`` builds an event without the generated ``__new__`` (a Python
#: frame per event); every field is given, defaults included
_new = tuple.__new__

#: RFC 5246 6.2.3: TLSCiphertext.length MUST NOT exceed 2^14 + 2048
MAX_RECORD = (1 << 14) + 2048
#: the longest plaintext upgrade request searched for a ClientHello behind it in one segment
#: (MySQL's SSLRequest is 36 bytes, XMPP's <starttls/> about 50)
MAX_PREAMBLE = 512
#: a direction's error state after a gap: not a protocol error (never reported as one)
GAP = -100

# RFC 8446 / 5246 content types and handshake types used by the state machine
_CCS, _ALERT, _HANDSHAKE, _APPDATA = 20, 21, 22, 23
_HT_CLIENT_HELLO, _HT_SERVER_HELLO, _HT_HRR_DRAFT = 1, 2, 6
_HT_CERTIFICATE, _HT_SKE, _HT_CERT_REQUEST = 11, 12, 13


def _is_tls13(version: int) -> bool:
    # proto.names.is_tls13, inlined for the compiled build (tests/test_names.py holds them equal)
    return version == 0x0304 or (version >> 8) == 0x7F or version in (0x7E01, 0x7E02, 0xFB17, 0xFB1A)


class Sink:
    """What a :class:`TLSConnection` hands its events to.  ``d`` is the direction; a method
    per event kind of :mod:`cext.events`, with the event's fields as arguments, except:

    * ``client_hello(d, fields, data, start, end)``: ``fields`` =
      ``Wire.client_hello_key`` of the message body ``data[start:end]`` (also given, for a
      sink that wants the whole message); an SSLv2-framed one comes as
      ``sslv2_client_hello(d, event)``;
    * ``server_hello(d, event)`` (a :class:`~cext.events.ServerHello`);
    * ``server_key_exchange(d, data, start, end)``: the body is ``data[start:end]``.

    The body of ``data`` is valid during the call only (it is the reader's buffer)."""

    def client_hello(self, d, fields, data, start, end):
        pass

    def sslv2_client_hello(self, d, hello):
        pass

    def server_hello(self, d, hello):
        pass

    def hello_retry_request(self, d, selected_version, cipher_suite, key_share_group):
        pass

    def certificate(self, d, certificates):
        pass

    def notice(self, d, status):
        """Something odd that does not stop the reading (a status of :mod:`cext.errors`)."""

    def server_key_exchange(self, d, data, start, end):
        pass

    def certificate_request(self, d):
        pass

    def handshake(self, d, msg_type, length):
        pass

    def change_cipher_spec(self, d):
        pass

    def alert(self, d, level, description):
        pass

    def encrypted(self, d, content_type, length):
        pass

    def record(self, d, content_type, length):
        pass


class EventQueue(Sink):
    """A sink that makes the events of :mod:`cext.events` and keeps them in ``events``."""

    def __init__(self, wire) -> None:
        self.wire = wire
        self.events: list = []

    def client_hello(self, d, fields, data, start, end):
        # the reader checked the message with the same parser: this cannot fail
        self.events.append(_new(ClientHello, (d, *self.wire.client_hello(data, start, end),
                                              False)))

    def sslv2_client_hello(self, d, hello):
        self.events.append(hello)

    def server_hello(self, d, hello):
        self.events.append(hello)

    def hello_retry_request(self, d, selected_version, cipher_suite, key_share_group):
        self.events.append(_new(HelloRetryRequest, (d, selected_version, cipher_suite,
                                                    key_share_group)))

    def certificate(self, d, certificates):
        self.events.append(_new(Certificate, (d, certificates)))

    def notice(self, d, status):
        pass                        # (the reference API's events are the messages)

    def server_key_exchange(self, d, data, start, end):
        self.events.append(_new(ServerKeyExchange, (d, data[start:end])))

    def certificate_request(self, d):
        self.events.append(_new(CertificateRequest, (d,)))

    def handshake(self, d, msg_type, length):
        self.events.append(_new(HandshakeMessage, (d, msg_type, length)))

    def change_cipher_spec(self, d):
        self.events.append(_new(ChangeCipherSpec, (d,)))

    def alert(self, d, level, description):
        self.events.append(_new(Alert, (d, level, description)))

    def encrypted(self, d, content_type, length):
        self.events.append(_new(EncryptedRecord, (d, content_type, length)))

    def record(self, d, content_type, length):
        self.events.append(_new(Record, (d, content_type, length)))

    def take(self) -> list:
        out = self.events
        self.events = []
        return out


class _Direction:
    __slots__ = ("buf", "hs", "hs_more", "hs_len", "hs_need", "error", "encrypted", "started",
                 "sslv2", "plaintext", "skip", "hello", "hello_pending")

    def __init__(self) -> None:
        self.buf = b""              # bytes of an incomplete record
        self.hs = b""               # bytes of an incomplete handshake message (its header
        self.hs_more = None         # only while this holds them all, the fragments since)
        self.hs_len = 0             # the bytes of the message held
        self.hs_need = 0            # the bytes of that message, header included (0: unknown)
        self.error = 0              # 0, an error status, or GAP
        self.encrypted = False      # after this side's CCS (TLS <= 1.2)
        self.started = False        # first record seen
        self.sslv2 = False          # records are SSLv2-framed
        self.plaintext = 0          # bytes skipped before TLS started (STARTTLS preamble)
        self.skip = 0               # rest of an encrypted record already reported
        self.hello = False          # issue 15: the first record began a ClientHello
        self.hello_pending = False  # ... its type byte not seen yet (the header came alone)


class TLSConnection:
    """Reads both directions of one TLS connection; see the module docstring.

    ``feed_at(direction, data, start, end)`` -> status is what the flow table calls per
    segment.  Without a ``sink``, ``feed(direction, data)`` -> ``(events, error)`` and h11's
    ``receive_data()`` / ``next_event()`` / ``buffered()`` are the reference API (only the
    tests use them: ``tests/test_tls_stream.py`` holds them equal on every chunking of real
    streams).
    """

    def __init__(self, wire, sink=None, max_handshake: int = MAX_HANDSHAKE,
                 max_buffer: int = MAX_BUFFER) -> None:
        #: the wire parser of the same build (hello and certificate parsing)
        self.wire = wire
        self._queue = None
        if sink is None:
            sink = self._queue = EventQueue(wire)
        self.sink = sink
        self._events: deque = deque()
        self._pending_error = None
        self.max_handshake = max_handshake
        self.max_buffer = max_buffer
        #: per-direction state (read-only for callers: ``dirs[d].skip``)
        self.dirs = (_Direction(), _Direction())
        #: negotiated version once a ServerHello was read (or the draft version)
        self.version = -1
        self.tls13 = False
        self._server_hello_seen = False

    # -- the flow table's API --------------------------------------------------------------------
    def feed_at(self, direction: int, data: bytes, start: int, end: int) -> int:
        """Parse ``data[start:end]`` of one direction, handing events to the sink; returns 0,
        or the error status that put this direction in the ERROR state."""
        d = self.dirs[direction]
        if d.error or start >= end:
            return 0
        if d.buf:
            data = d.buf + data[start:end]
            start, end = 0, len(data)
        status = self._parse(direction, d, data, start, end)
        if status:
            self._fail(d, status)
        return status

    def receive_gap(self, direction: int) -> None:
        """Bytes are missing from this direction: stop parsing it (never parse across)."""
        d = self.dirs[direction]
        if not d.error:
            d.error = GAP
            d.buf = b""
            _drop_fragments(d)

    def pending_skip(self, direction: int) -> int:
        """Bytes of an encrypted record this direction will skip (reported already)."""
        return self.dirs[direction].skip

    def take_skip(self, direction: int, minimum: int) -> int:
        """If this direction is inside an encrypted record with at least ``minimum`` bytes
        still to come, return that count and forget it: the caller will not deliver those
        bytes (it skips them below the parser).  Otherwise 0."""
        d = self.dirs[direction]
        n = d.skip
        if n >= minimum and not d.error:
            d.skip = 0
            return n
        return 0

    def plaintext(self) -> int:
        """Bytes of non-TLS preamble skipped so far (both directions)."""
        return self.dirs[0].plaintext + self.dirs[1].plaintext

    # -- the reference API -----------------------------------------------------------------------
    def feed(self, direction: int, data: bytes):
        """Parse ``data`` of one direction: ``(events, error)``; ``error`` is the
        :class:`~cext.errors.ProtocolError` that put this direction in the ERROR state, or
        None.  (A connection made without a sink.)"""
        status = self.feed_at(direction, bytes(data), 0, len(data))
        return self._queue.take(), (error(status) if status else None)

    def receive_data(self, direction: int, data: bytes) -> None:
        events, exc = self.feed(direction, data)
        self._events.extend(events)
        if exc is not None and self._pending_error is None:
            self._pending_error = exc

    def next_event(self):
        if self._events:
            return self._events.popleft()
        if self._pending_error is not None:
            exc, self._pending_error = self._pending_error, None
            raise exc
        return NEED_DATA

    def state(self, direction: int) -> str:
        d = self.dirs[direction]
        return "ERROR" if d.error else ("ENCRYPTED" if d.encrypted else "CLEAR")

    def buffered(self) -> int:
        return self.buffered_in(CLIENT) + self.buffered_in(SERVER)

    def buffered_in(self, direction: int) -> int:
        """Bytes one direction holds: an incomplete record, an incomplete handshake message
        (the flow table's memory budget counts them)."""
        d = self.dirs[direction]
        return len(d.buf) + d.hs_len

    # -- internals ---------------------------------------------------------------------------
    def _fail(self, d: _Direction, status: int) -> None:
        d.error = status
        d.buf = b""
        _drop_fragments(d)

    def _parse(self, direction: int, d: _Direction, buf: bytes, pos: int, end: int) -> int:
        if d.skip:                                 # inside an encrypted record
            n = end - pos
            if n <= d.skip:
                d.skip -= n
                d.buf = b""
                return 0
            pos += d.skip
            d.skip = 0
        if not d.started:
            n = end - pos
            if n < 3:
                b0 = buf[pos]
                if not (20 <= b0 <= 24 or b0 & 0x80) or (
                        n == 2 and not b0 & 0x80 and buf[pos + 1] != 3):
                    # issue 15: a short segment that cannot begin a record header is
                    # STARTTLS plaintext (PostgreSQL answers SSLRequest with the one byte
                    # 'S'): buffered, it would hide the header of the first TLS flight
                    d.plaintext += n
                    d.buf = b""
                    return 0
                d.buf = buf[pos:end]
                return 0
            b0, b1, b2 = buf[pos], buf[pos + 1], buf[pos + 2]
            if b0 & 0x80 and (b2 == 1 or b2 == 4):
                d.sslv2 = True
            elif not (20 <= b0 <= 24 and b1 == 3 and b2 <= 4):
                # not a record header: plaintext before TLS (STARTTLS: SMTP, IMAP, XMPP ...)
                # or no TLS at all.  Segment-aligned, like the protocols that upgrade --
                # except a client's ClientHello sent with its upgrade request (MySQL has no
                # reply to the SSLRequest, and a retransmission or receive offload joins them)
                at = _embedded_client_hello(buf, pos, end) if direction == CLIENT else -1
                if at < 0:
                    d.plaintext += end - pos
                    d.buf = b""
                    return 0
                d.plaintext += at - pos
                pos = at
                n = end - pos
                b0 = buf[pos]
            d.started = True
            # issue 15: a ClientHello began (it may never complete or parse: the flow table
            # still summarizes the connection); a client's first handshake record whose header
            # came alone is taken for one until its type byte says otherwise (below)
            d.hello = direction == CLIENT and ((b0 == _HANDSHAKE and (n <= 5 or buf[pos + 5] == 1))
                                               or (d.sslv2 and b2 == 1))
            d.hello_pending = d.hello and not d.sslv2 and n <= 5
        elif d.hello_pending and end - pos > 5:     # (the record held from its start)
            d.hello_pending = False
            d.hello = buf[pos + 5] == 1
        if d.sslv2:
            d.buf = bytearray(buf[pos:end])
            return self._parse_sslv2(direction, d)
        sink = self.sink
        tls13 = self.tls13
        while end - pos >= 5:
            ct = buf[pos]
            if ct < 20 or ct > 63:
                return E_UNKNOWN_CONTENT_TYPE
            if buf[pos + 1] != 3 or buf[pos + 2] > 4:
                return E_BAD_RECORD_VERSION
            ln = (buf[pos + 3] << 8) | buf[pos + 4]
            if ln > MAX_RECORD:
                return E_RECORD_OVERFLOW
            if pos + 5 + ln > end:
                break
            fs = pos + 5
            pos = fe = fs + ln
            if ct == _HANDSHAKE and not d.encrypted and not (tls13 and direction == SERVER
                                                             and self._server_hello_seen):
                status = self._handshakes(direction, d, buf, fs, fe)
                if status:
                    return status
                tls13 = self.tls13
            elif ct == _CCS:
                sink.change_cipher_spec(direction)
                if not tls13:
                    d.encrypted = True
            elif ct == _ALERT and not d.encrypted and (ln == 2 or not tls13):
                # a 2-byte alert before this side encrypts is plaintext; in TLS 1.3 a 2-byte
                # alert record is plaintext too (AEAD output is always longer)
                i = fs
                while i + 1 < fe:
                    sink.alert(direction, buf[i], buf[i + 1])
                    i += 2
            elif d.encrypted or ct == _APPDATA or (tls13 and (ct == _ALERT or ct == _HANDSHAKE)):
                sink.encrypted(direction, ct, ln)
            else:
                sink.record(direction, ct, ln)
        rest = end - pos
        if rest >= 5:
            # an incomplete record: if it is encrypted, report it now and skip its bytes
            # instead of buffering up to 18 KB of ciphertext
            ct = buf[pos]
            if d.encrypted or ct == _APPDATA or (tls13 and ct == _ALERT):
                ln = (buf[pos + 3] << 8) | buf[pos + 4]
                sink.encrypted(direction, ct, ln)
                d.skip = ln - (rest - 5)
                d.buf = b""
                return 0
        d.buf = buf[pos:end] if rest else b""
        return 0

    def _handshakes(self, direction: int, d: _Direction, buf: bytes, fs: int, fe: int) -> int:
        """The handshake messages of a record fragment ``buf[fs:fe]``, after the bytes of an
        incomplete message that previous records left.

        While that message is still short of its length, a fragment is appended to one
        buffer: the message is read once, when its last fragment comes -- not copied again with
        every fragment, which made a message sent in 1-byte records cost the square of its
        length (1 MiB: 6 MB on the wire, 12 s of CPU); and one buffer, not an object a
        fragment (2-byte records: 22 bytes held for each byte counted)."""
        if d.hs:
            n = fe - fs
            if d.hs_need and d.hs_len + n < d.hs_need:
                if d.hs_more is None:
                    d.hs_more = bytearray(d.hs)
                    d.hs = d.hs[:4]             # (not empty: a message is pending)
                d.hs_more += buf[fs:fe]
                d.hs_len += n
                if d.hs_len > self.max_buffer:
                    return E_HANDSHAKE_TOO_LONG
                return 0
            if d.hs_more is None:
                hs = d.hs + buf[fs:fe]
            else:
                d.hs_more += buf[fs:fe]
                hs = bytes(d.hs_more)
                d.hs_more = None
            start, end = 0, len(hs)
        else:
            hs, start, end = buf, fs, fe
        # the complete messages first (the remainder is checked before any is read)
        p = start
        too_long = 0
        while end - p >= 4:
            ln = (hs[p + 1] << 16) | (hs[p + 2] << 8) | hs[p + 3]
            if ln > self.max_handshake:
                too_long = E_HANDSHAKE_TOO_LONG
                break
            if p + 4 + ln > end:
                break
            p += 4 + ln
        d.hs = hs[p:end] if p < end else b""
        d.hs_len = end - p
        # (a length over max_handshake is an error below: it is never waited for)
        d.hs_need = 4 + ((hs[p + 1] << 16) | (hs[p + 2] << 8) | hs[p + 3]) \
            if end - p >= 4 else 0
        if d.hs_len > self.max_buffer:
            return E_HANDSHAKE_TOO_LONG
        q = start
        while q < p:
            ln = (hs[q + 1] << 16) | (hs[q + 2] << 8) | hs[q + 3]
            status = self._handshake(direction, hs[q], hs, q + 4, q + 4 + ln)
            if status:
                return status
            q += 4 + ln
        return too_long

    def _handshake(self, direction: int, mt: int, hs: bytes, s: int, e: int) -> int:
        sink = self.sink
        wire = self.wire
        if mt == _HT_CLIENT_HELLO and direction == CLIENT:
            fields = wire.client_hello_key(hs, s, e)
            if fields is None:
                # issue 15: a ClientHello whose body does not parse still enters the history
                # (so the connection is summarized, silent server or not); the error that
                # follows is the weird naming what was wrong
                sink.handshake(direction, mt, e - s)
                return wire.status
            sink.client_hello(direction, fields, hs, s, e)
        elif mt == _HT_SERVER_HELLO and direction == SERVER:
            t = _server_hello(wire, hs, s, e)
            if t is None:
                return wire.status
            (legacy, sid, suite, comp, exts, selected, group, alpn, psk, is_hrr) = t
            if is_hrr:
                # RFC 8446 4.1.4: only TLS 1.3 sends a HelloRetryRequest; its CCS is fake
                self.tls13 = True
                sink.hello_retry_request(direction, selected, suite, group)
                return 0
            sh = _new(ServerHello, (direction, legacy, sid, suite, comp, exts, selected, group,
                                    alpn, psk, False))
            self.version = selected if selected >= 0 else legacy
            self.tls13 = _is_tls13(self.version)
            self._server_hello_seen = True
            sink.server_hello(direction, sh)
        elif mt == _HT_HRR_DRAFT and direction == SERVER:
            # draft-era HelloRetryRequest: server_version cipher? extensions; report the version
            ver = (hs[s] << 8) | hs[s + 1] if e - s >= 2 else -1
            self.tls13 = True
            sink.hello_retry_request(direction, ver, -1, -1)
        elif mt == _HT_CERTIFICATE:
            certs = wire.certificate(hs, s, e, self.tls13)
            if certs is None:
                return wire.status
            sink.certificate(direction, certs)
            if wire.status:                 # read, with a notice (too many certificates)
                sink.notice(direction, wire.status)
        elif mt == _HT_SKE and direction == SERVER:
            sink.server_key_exchange(direction, hs, s, e)
        elif mt == _HT_CERT_REQUEST and direction == SERVER:
            sink.certificate_request(direction)
        else:
            sink.handshake(direction, mt, e - s)
        return 0

    def _parse_sslv2(self, direction: int, d: _Direction) -> int:
        """SSLv2 record framing (2- or 3-byte headers).  Only the hellos are read; what
        follows the SSLv2 ServerHello is opaque."""
        buf = d.buf
        pos = 0
        n = len(buf)
        sink = self.sink
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
                sink.encrypted(direction, 0, ln)
                continue
            mt = body[0]
            if mt == 1 and direction == CLIENT:
                ch = _sslv2_client_hello(direction, body)
                if ch is None:
                    return E_BAD_SSLV2_RECORD
                sink.sslv2_client_hello(direction, ch)
                # a v2-framed ClientHello may be answered in v3 framing: go back to v3
                d.sslv2 = False
                rest = bytes(buf[pos:])
                d.buf = b""
                if rest:
                    return self._parse(direction, d, rest, 0, len(rest))
                return 0
            if mt == 4 and direction == SERVER:
                r = _sslv2_server_hello(direction, body)
                if r is None:
                    return E_BAD_SSLV2_RECORD
                sh, certs = r
                self.version = 2
                self._server_hello_seen = True
                sink.server_hello(direction, sh)
                if certs:
                    sink.certificate(direction, certs)
                self.dirs[CLIENT].sslv2 = True
                continue
            sink.encrypted(direction, 0, ln)
        d.buf = bytes(buf[pos:])
        return 0


def _drop_fragments(d: _Direction) -> None:
    """Forget the bytes of an incomplete handshake message."""
    d.hs = b""
    d.hs_more = None
    d.hs_len = 0
    d.hs_need = 0


def _embedded_client_hello(buf: bytes, pos: int, end: int) -> int:
    """Where a ClientHello record begins after a plaintext upgrade request in the same segment
    (``buf[pos:end]``), or -1: the first handshake record header within
    :data:`MAX_PREAMBLE` bytes whose record carries a client_hello and reaches the segment's
    end (the hello is the segment's tail; a longer one continues in the next segment)."""
    k = pos + 1
    stop = min(end - 6, pos + MAX_PREAMBLE)
    while k < stop:
        k = buf.find(b"\x16\x03", k, stop + 1)        # a handshake record, version 3.x
        if k < 0:
            return -1
        if buf[k + 2] <= 4 and buf[k + 5] == _HT_CLIENT_HELLO:
            ln = (buf[k + 3] << 8) | buf[k + 4]
            if 4 <= ln <= MAX_RECORD and k + 5 + ln >= end:
                return k
        k += 1
    return -1


def _server_hello(wire, hs: bytes, s: int, e: int):
    """``wire.server_hello``, plus the early TLS 1.3 drafts (draft-14 and before) whose
    ServerHello says 0x0304 but has the draft layout (no session id, no compression).  None
    with ``wire.status`` on a malformed message."""
    t = wire.server_hello(hs, s, e)
    if t is None:
        if e - s < 36 or hs[s] != 3 or hs[s + 1] != 4:
            return None
        alt = b"\x7f\x0e" + hs[s + 2:e]                     # read with the draft layout
        t = wire.server_hello(alt, 0, len(alt))
        if t is None:
            return None
        t = (0x0304,) + t[1:5] + (0x0304 if t[5] == 0x7F0E else t[5],) + t[6:]
    return t


def _sslv2_client_hello(direction: int, b: bytes):
    if len(b) < 9:
        return None
    version = (b[1] << 8) | b[2]
    cs_len = (b[3] << 8) | b[4]
    sid_len = (b[5] << 8) | b[6]
    ch_len = (b[7] << 8) | b[8]
    if cs_len % 3 or 9 + cs_len + sid_len + ch_len > len(b):
        return None
    specs = tuple((b[i] << 16) | (b[i + 1] << 8) | b[i + 2] for i in range(9, 9 + cs_len, 3))
    sid = bytes(b[9 + cs_len:9 + cs_len + sid_len])
    versions = (version,) if version != 2 else ()
    return ClientHello(direction, version, sid, specs, (0,), (), None, (), (), (), (), versions,
                       (), False, -1, True)


def _sslv2_server_hello(direction: int, b: bytes):
    if len(b) < 11:
        return None
    version = (b[3] << 8) | b[4]
    cert_len = (b[5] << 8) | b[6]
    cs_len = (b[7] << 8) | b[8]
    if cs_len % 3 or 11 + cert_len + cs_len > len(b):
        return None
    cert = bytes(b[11:11 + cert_len])
    spec = -1
    if cs_len >= 3:
        i = 11 + cert_len
        spec = (b[i] << 16) | (b[i + 1] << 8) | b[i + 2]
    sh = ServerHello(direction, version, b"", spec, 0, (), -1, -1, None, False, True)
    return sh, ((cert,) if cert else ())
