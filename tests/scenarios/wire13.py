"""What a capture shows per TCP connection, record by record (test-data tooling, not the sensor).

Reassembles both directions of every connection to a known server (retransmissions, overlaps and
reordering handled by sequence number), splits the streams into TLS records and reads the cleartext
handshake messages.  The generator of the TLS 1.3 scenarios uses it to check what really happened on
the wire (PSK offered/accepted, HelloRetryRequest, version) and to store the record sizes of each
connection (``records``): TLS 1.3 failures differ only in the sizes and order of encrypted records.

``records`` notation, in wire order (time the record's last byte was captured):
``C:``/``S:`` side; a cleartext handshake record is the message names joined by ``+``
(``ClientHello``, ``HelloRetryRequest``, ...); ``CCS``; ``Alert(fatal,certificate_expired)`` for a
readable alert; ``E(n)`` an encrypted record of n bytes (TLS 1.3 opaque type 23, or TLS 1.2 application
data); ``EH(n)``/``EA(n)`` a TLS 1.2 record of type handshake/alert sent after the side's
ChangeCipherSpec (encrypted); ``FIN``/``RST``.
"""
from __future__ import annotations

import hashlib
import itertools
import socket
import struct
from dataclasses import dataclass, field

import dpkt

HRR_RANDOM = hashlib.sha256(b"HelloRetryRequest").digest()
HS_NAMES = {1: "ClientHello", 2: "ServerHello", 4: "NewSessionTicket", 8: "EncryptedExtensions",
            11: "Certificate", 12: "ServerKeyExchange", 13: "CertificateRequest", 14: "ServerHelloDone",
            15: "CertificateVerify", 16: "ClientKeyExchange", 20: "Finished"}
ALERTS = {0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac", 40: "handshake_failure",
          42: "bad_certificate", 43: "unsupported_certificate", 44: "certificate_revoked",
          45: "certificate_expired", 46: "certificate_unknown", 47: "illegal_parameter", 48: "unknown_ca",
          49: "access_denied", 50: "decode_error", 51: "decrypt_error", 70: "protocol_version",
          71: "insufficient_security", 80: "internal_error", 86: "inappropriate_fallback", 90: "user_canceled",
          109: "missing_extension", 110: "unsupported_extension", 112: "unrecognized_name",
          116: "certificate_required", 120: "no_application_protocol"}
VERSIONS = {0x0301: "TLSv1", 0x0302: "TLSv1.1", 0x0303: "TLSv1.2", 0x0304: "TLSv1.3"}
GROUPS = {23: "secp256r1", 24: "secp384r1", 25: "secp521r1", 29: "x25519", 30: "x448"}
EXT_SERVER_NAME, EXT_SESSION_TICKET, EXT_PSK, EXT_SUPPORTED_VERSIONS, EXT_KEY_SHARE = 0, 35, 41, 43, 51


@dataclass
class Hello:
    """The fields of a ClientHello/ServerHello the scenarios check."""
    sni: str | None = None
    psk: bool = False                 # pre_shared_key extension present
    ticket: bool = False              # non-empty session_ticket extension (TLS 1.2 resumption offer)
    session_id: bytes = b""
    version: str | None = None        # ServerHello: negotiated; ClientHello: highest offered
    key_share: list[str] = field(default_factory=list)
    hrr: bool = False


@dataclass
class Conn:
    client: str
    server: str
    syn_time: float
    events: list[tuple[float, int, str, str]] = field(default_factory=list)   # (time, seq, side, text)
    client_hellos: list[Hello] = field(default_factory=list)
    server_hellos: list[Hello] = field(default_factory=list)
    server_certificate_clear: bool = False   # a cleartext Certificate from the server (TLS <= 1.2)
    server_leaf: bytes | None = None          # its first certificate (DER)
    server_certificate_time: float | None = None
    server_ccs_before_client_ccs: bool = False

    @property
    def version(self) -> str | None:
        real = [h for h in self.server_hellos if not h.hrr]
        return real[-1].version if real else None

    @property
    def tls13(self) -> bool:
        """The server chose TLS 1.3 (in a HelloRetryRequest or ServerHello)."""
        return any(h.version == "TLSv1.3" for h in self.server_hellos)

    @property
    def hrr(self) -> bool:
        return any(h.hrr for h in self.server_hellos)

    @property
    def psk_offered(self) -> bool:
        return any(h.psk for h in self.client_hellos)

    @property
    def resumption_offered(self) -> bool:
        """pre_shared_key, a non-empty session_ticket, or a session ID from a client that cannot do
        TLS 1.3 (a TLS 1.3 client sends a random ID in every ClientHello)."""
        if not self.client_hellos:
            return False
        ch = self.client_hellos[0]
        return ch.psk or ch.ticket or (ch.version != "TLSv1.3" and bool(ch.session_id))

    @property
    def resumed(self) -> bool:
        """PSK accepted (TLS 1.3) or an abbreviated TLS 1.2 handshake (no Certificate, server CCS first)."""
        real = [h for h in self.server_hellos if not h.hrr]
        if not real:
            return False
        if real[-1].version == "TLSv1.3":
            return real[-1].psk
        return self.server_ccs_before_client_ccs and not self.server_certificate_clear

    @property
    def records(self) -> str:
        return " ".join("%s:%s" % (side, text) for _, _, side, text in sorted(self.events))


class _Side:
    def __init__(self) -> None:
        self.isn: int | None = None
        self.next: int | None = None
        self.pending: dict[int, bytes] = {}
        self.buf = b""
        self.hs = b""                 # cleartext handshake bytes not yet parsed into messages
        self.ccs = False
        self.fin = False
        self.rst = False

    def add(self, seq: int, data: bytes) -> bytes:
        """Feed one segment; return the newly contiguous bytes."""
        if self.next is None:
            return b""
        out = b""
        self.pending.setdefault(seq, data)
        progressed = True
        while progressed:
            progressed = False
            for s in list(self.pending):
                d = self.pending[s]
                off = (self.next - s) & 0xFFFFFFFF
                if off < 0x80000000 and off < len(d):     # segment covers self.next
                    del self.pending[s]
                    out += d[off:]
                    self.next = (self.next + len(d) - off) & 0xFFFFFFFF
                    progressed = True
                elif off < 0x80000000:                    # entirely old (retransmission)
                    del self.pending[s]
        return out


def _endpoint(addr: bytes, port: int) -> str:
    return "%s:%d" % (socket.inet_ntoa(addr), port)


def parse_hello(body: bytes, server: bool) -> Hello:
    h = Hello()
    i = 2
    random = body[i:i + 32]
    i += 32
    sid_len = body[i]
    h.session_id = body[i + 1:i + 1 + sid_len]
    i += 1 + sid_len
    legacy = struct.unpack("!H", body[0:2])[0]
    if server:
        h.hrr = random == HRR_RANDOM
        i += 2 + 1                                       # cipher suite, compression
    else:
        i += 2 + struct.unpack("!H", body[i:i + 2])[0]
        i += 1 + body[i]
    h.version = VERSIONS.get(legacy, hex(legacy))
    if i + 2 > len(body):
        return h
    end = i + 2 + struct.unpack("!H", body[i:i + 2])[0]
    i += 2
    while i + 4 <= end:
        etype, elen = struct.unpack("!HH", body[i:i + 4])
        ext = body[i + 4:i + 4 + elen]
        if etype == EXT_SERVER_NAME and not server and len(ext) >= 5:
            h.sni = ext[5:5 + struct.unpack("!H", ext[3:5])[0]].decode("ascii", "replace")
        elif etype == EXT_PSK:
            h.psk = True
        elif etype == EXT_SESSION_TICKET and not server:
            h.ticket = elen > 0
        elif etype == EXT_SUPPORTED_VERSIONS:
            if server:
                h.version = VERSIONS.get(struct.unpack("!H", ext[:2])[0])
            else:
                vs = [struct.unpack("!H", ext[1 + j:3 + j])[0] for j in range(0, ext[0], 2)]
                known = [v for v in vs if v in VERSIONS]
                h.version = VERSIONS[max(known)] if known else None
        elif etype == EXT_KEY_SHARE:
            if server:                  # HelloRetryRequest: the group alone; ServerHello: group + key
                h.key_share = [GROUPS.get(struct.unpack("!H", ext[:2])[0], "?")]
            else:
                j = 2
                while j + 4 <= len(ext):
                    g, klen = struct.unpack("!HH", ext[j:j + 4])
                    h.key_share.append(GROUPS.get(g, "0x%04x" % g))
                    j += 4 + klen
        i += 4 + elen
    return h


def connections(pcap: str, servers: set[str]) -> dict[tuple[str, str], Conn]:
    """Every connection to one of ``servers`` (``ip:port``), keyed by (client, server)."""
    conns: dict[tuple[str, str], Conn] = {}
    sides: dict[tuple[str, str, str], _Side] = {}
    order = itertools.count()
    with open(pcap, "rb") as f:
        for ts, buf in dpkt.pcap.Reader(f):
            eth = dpkt.ethernet.Ethernet(buf)
            ip = eth.data
            if not isinstance(ip, dpkt.ip.IP) or not isinstance(ip.data, dpkt.tcp.TCP):
                continue
            tcp = ip.data
            src, dst = _endpoint(ip.src, tcp.sport), _endpoint(ip.dst, tcp.dport)
            if dst in servers:
                key, side = (src, dst), "C"
            elif src in servers:
                key, side = (dst, src), "S"
            else:
                continue
            if tcp.flags & dpkt.tcp.TH_SYN:
                if side == "C" and key not in conns:
                    conns[key] = Conn(key[0], key[1], ts)
                st = sides.setdefault((key[0], key[1], side), _Side())
                if st.isn is None:
                    st.isn = tcp.seq
                    st.next = (tcp.seq + 1) & 0xFFFFFFFF
                continue
            conn = conns.get(key)
            if conn is None:
                continue
            st = sides.setdefault((key[0], key[1], side), _Side())
            if tcp.data:
                st.buf += st.add(tcp.seq, bytes(tcp.data))
                _records(conn, st, side, ts, order)
            if tcp.flags & dpkt.tcp.TH_RST and not st.rst:
                st.rst = True
                conn.events.append((ts, next(order), side, "RST"))
            elif tcp.flags & dpkt.tcp.TH_FIN and not st.fin:
                st.fin = True
                conn.events.append((ts, next(order), side, "FIN"))
    return conns


def _records(conn: Conn, st: _Side, side: str, ts: float, order: itertools.count) -> None:
    """Split the side's contiguous bytes into records.  In TLS 1.2 everything after a side's
    ChangeCipherSpec is encrypted; in TLS 1.3 the CCS is a compatibility no-op (it even precedes a
    second ClientHello after a HelloRetryRequest), encrypted records are type 23 and a type 21
    record is a cleartext alert."""
    while len(st.buf) >= 5:
        ctype, rlen = st.buf[0], struct.unpack("!H", st.buf[3:5])[0]
        if ctype not in (20, 21, 22, 23) or st.buf[1] != 3:
            conn.events.append((ts, next(order), side, "not-TLS(%d bytes)" % len(st.buf)))
            st.buf = b""
            return
        if len(st.buf) < 5 + rlen:
            return
        body, st.buf = st.buf[5:5 + rlen], st.buf[5 + rlen:]
        if ctype == 20:
            if side == "S" and not st.ccs and not any(s == "C" and t == "CCS" for _, _, s, t in conn.events):
                conn.server_ccs_before_client_ccs = True
            st.ccs = True
            text = "CCS"
        elif ctype == 21 and rlen == 2 and (conn.tls13 or not st.ccs):
            text = "Alert(%s,%s)" % ({1: "warning", 2: "fatal"}.get(body[0], body[0]),
                                     ALERTS.get(body[1], str(body[1])))
        elif ctype == 21:
            text = "EA(%d)" % rlen
        elif ctype == 22 and st.ccs and not conn.tls13:
            text = "EH(%d)" % rlen
        elif ctype == 22:
            text = _handshake(conn, st, side, body, ts)
        else:
            text = "E(%d)" % rlen
        conn.events.append((ts, next(order), side, text))


def _handshake(conn: Conn, st: _Side, side: str, body: bytes, ts: float) -> str:
    st.hs += body
    names = []
    while len(st.hs) >= 4:
        mtype, mlen = st.hs[0], int.from_bytes(st.hs[1:4], "big")
        if len(st.hs) < 4 + mlen:
            names.append("%s(partial)" % HS_NAMES.get(mtype, "hs%d" % mtype))
            break
        msg, st.hs = st.hs[4:4 + mlen], st.hs[4 + mlen:]
        name = HS_NAMES.get(mtype, "hs%d" % mtype)
        if mtype == 1:
            conn.client_hellos.append(parse_hello(msg, server=False))
        elif mtype == 2:
            h = parse_hello(msg, server=True)
            conn.server_hellos.append(h)
            if h.hrr:
                name = "HelloRetryRequest"
        elif mtype == 11 and side == "S":
            conn.server_certificate_clear = True
            conn.server_certificate_time = ts
            if len(msg) >= 6:
                conn.server_leaf = msg[6:6 + int.from_bytes(msg[3:6], "big")]
        names.append(name)
    return "+".join(names) if names else "hs(continued)"
