"""Pure-Python twin of ``cext/_wire.pyx``: the byte-crunching half of the wire core.

Everything here takes bytes (and offsets) and returns plain tuples, ints, bytes and str, so the
Cython build and this module can be compared value for value.  No I/O, no clock.

* :class:`PacketDecoder` turns link-layer frames into TCP segment tuples and drops, before any
  Python-level flow work, the packets the sensor does not need (pure ACKs, bulk data of flows
  whose handshake is over, mid-stream data of flows it never saw start).
* ``split_records`` / ``split_handshakes`` frame TLS records and handshake messages.
* ``parse_client_hello`` / ``parse_server_hello`` / ``parse_certificate`` decode the messages
  whose fields the summary needs.
"""
from __future__ import annotations

import struct

from ._encap_py import Decapsulator
from .errors import MalformedMessage

__all__ = [
    "PacketDecoder", "split_records", "split_handshakes", "parse_client_hello",
    "parse_server_hello", "parse_certificate", "COUNTER_NAMES", "MAX_RECORD",
    "HRR_RANDOM", "LINKTYPES", "murmur2", "kafka_partition",
]

_U16 = struct.Struct("!H").unpack_from
_U32 = struct.Struct("!I").unpack_from
_LE32 = struct.Struct("<I").unpack_from
_META = struct.Struct("=IIII").unpack_from

FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10

#: RFC 5246 6.2.3: TLSCiphertext.length MUST NOT exceed 2^14 + 2048
MAX_RECORD = (1 << 14) + 2048
#: RFC 8446 4.1.3: ServerHello.random of a HelloRetryRequest (SHA-256 of "HelloRetryRequest")
HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")

# link types (LINKTYPE_* / DLT_* values as pcap files and libpcap report them)
LT_NULL, LT_EN10MB, LT_RAW, LT_RAW_BSD, LT_RAW_LT, LT_LOOP = 0, 1, 12, 14, 101, 108
LT_LINUX_SLL, LT_IPV4, LT_IPV6, LT_LINUX_SLL2 = 113, 228, 229, 276
#: every link type the decoder reads
LINKTYPES = frozenset({LT_NULL, LT_EN10MB, LT_RAW, LT_RAW_BSD, LT_RAW_LT, LT_LOOP,
                       LT_LINUX_SLL, LT_IPV4, LT_IPV6, LT_LINUX_SLL2})

#: decoder counters, in index order (both implementations keep the same list)
COUNTER_NAMES = (
    "packets", "bytes", "not_ip", "not_tcp", "ip_fragment", "malformed_l3", "malformed_l4",
    "truncated", "skip_no_payload", "skip_done", "skip_untracked", "emitted",
    "unsupported_linktype", "skip_encrypted",
)
(C_PACKETS, C_BYTES, C_NOT_IP, C_NOT_TCP, C_FRAG, C_MAL3, C_MAL4, C_TRUNC, C_NOPAY, C_DONE,
 C_UNTRACKED, C_EMITTED, C_LINKTYPE, C_SKIPENC) = range(len(COUNTER_NAMES))

_VLAN = (0x8100, 0x88A8, 0x9100)
_V6_EXT = (0, 43, 60, 51, 44)


def _looks_like_tls_start(p: bytes) -> bool:
    """A segment a flow we never saw start may begin with: a TLS handshake or alert record
    header, or an SSLv2-framed ClientHello."""
    if len(p) < 3:
        return False
    b0 = p[0]
    if (b0 == 0x16 or b0 == 0x15) and p[1] == 3:
        return True
    return (b0 & 0x80) != 0 and p[2] == 1


class PacketDecoder:
    """Frames in, TCP segment tuples out.

    ``flows`` (key -> flow object) and ``done`` (key -> None, an insertion-ordered set of
    finished connections) are owned by the flow table and only read here, except that a
    fresh SYN removes its key from ``done`` (the 5-tuple is being reused) and that a packet
    that starts a flow registers the key with a ``None`` placeholder.  ``skip`` (key ->
    ``[end_seq_lo, end_seq_hi]``, -1 = none) lets the flow table say "the bytes of this
    direction up to end_seq are ciphertext nobody needs": data segments that end at or
    before it are dropped here.

    Each emitted segment is ``(ts, key, from_lo, flags, seq, payload, truncated)``: ``key`` is
    the canonical endpoint pair ``lo_ip lo_port hi_ip hi_port`` (12 bytes IPv4, 36 bytes
    IPv6, endpoints ordered bytewise), ``from_lo`` says the sender is the ``lo`` endpoint.
    """

    def __init__(self, linktype: int, flows: dict, done: dict, skip: dict) -> None:
        self.linktype = linktype
        self.flows = flows
        self.done = done
        self.skip = skip
        self.counters = [0] * len(COUNTER_NAMES)
        self.encap = Decapsulator()         # issue 15: tunnels (cext/_encap_py.py)

    def stats(self) -> dict:
        s = dict(zip(COUNTER_NAMES, self.counters))
        s.update(self.encap.stats())        # issue 15: encap_* counters
        return s

    def decode_batch(self, buf: bytes, meta: bytes, sink=None):
        """Decode a pcapy-ng ``next_batch`` result: ``meta`` packs 16-byte records
        ``(sec, usec, offset, caplen)``.  Returns the segments as a list, or, with ``sink``,
        calls ``sink(*segment)`` for each as soon as it is decoded (so what the sink changes
        in ``flows`` / ``done`` / ``skip`` already applies to the next packet) and returns
        None."""
        out: list = []
        for i in range(0, len(meta) - 15, 16):
            sec, usec, off, caplen = _META(meta, i)
            if off + caplen > len(buf):
                self.counters[C_MAL3] += 1
                continue
            seg = self._decode(sec + usec * 1e-6, buf[off:off + caplen])
            if seg is not None:
                if sink is None:
                    out.append(seg)
                else:
                    sink(*seg)
        return None if sink is not None else out

    def decode(self, ts: float, frame: bytes):
        """Decode one frame; returns a segment tuple or None.  ``ts`` becomes a float, as
        the Cython build's ``double`` makes it (an int time would otherwise reach the
        summary as an int in the twin only)."""
        return self._decode(float(ts), frame)

    def _decode(self, ts: float, f: bytes):
        c = self.counters
        c[C_PACKETS] += 1
        n = len(f)
        c[C_BYTES] += n
        lt = self.linktype
        # --- L2 -------------------------------------------------------------------------
        if lt == LT_EN10MB:
            if n < 14:
                c[C_NOT_IP] += 1
                return None
            off = 12
            et = _U16(f, off)[0]
            while et in _VLAN:
                off += 4
                if off + 2 > n:
                    c[C_NOT_IP] += 1
                    return None
                et = _U16(f, off)[0]
            off += 2
        elif lt == LT_LINUX_SLL:
            if n < 16:
                c[C_NOT_IP] += 1
                return None
            et = _U16(f, 14)[0]
            off = 16
        elif lt == LT_LINUX_SLL2:
            if n < 20:
                c[C_NOT_IP] += 1
                return None
            et = _U16(f, 0)[0]
            off = 20
        elif lt == LT_NULL or lt == LT_LOOP:
            if n < 4:
                c[C_NOT_IP] += 1
                return None
            fam = _U32(f, 0)[0] if lt == LT_LOOP else _LE32(f, 0)[0]
            if fam > 0xFFFF:          # written by a big-endian host
                fam = _U32(f, 0)[0]
            if fam == 2:
                et = 0x0800
            elif fam == 24 or fam == 28 or fam == 30 or fam == 10:
                et = 0x86DD
            else:
                c[C_NOT_IP] += 1
                return None
            off = 4
        elif lt == LT_RAW or lt == LT_RAW_BSD or lt == LT_RAW_LT or lt == LT_IPV4 or lt == LT_IPV6:
            if n < 1:
                c[C_NOT_IP] += 1
                return None
            v = f[0] >> 4
            et = 0x0800 if v == 4 else (0x86DD if v == 6 else 0)
            off = 0
        else:
            c[C_LINKTYPE] += 1
            return None
        # --- tunnels (issue 15, cext/_encap_py.py): a frame that is not IP, or an IP packet
        # that is not TCP, may be a tunnel: read its innermost header instead (SKIP: a bad
        # tunnel header, counted there; NOT_TUNNEL: go on as before)
        if (et != 0x0800 and et != 0x86DD) or (
                off + 9 < n and f[off + (9 if et == 0x0800 else 6)] != 6):
            inner = self.encap.innermost(f, n, off, et)
            if inner >= 0:
                off, et = inner, self.encap.et
            elif inner == -2:
                return None
        # --- L3 -------------------------------------------------------------------------
        if et == 0x0800:
            if off + 20 > n or (f[off] >> 4) != 4:
                c[C_MAL3] += 1
                return None
            ihl = (f[off] & 15) * 4
            total = _U16(f, off + 2)[0]
            if ihl < 20 or (total and total < ihl) or off + ihl > n:
                c[C_MAL3] += 1
                return None
            if f[off + 9] != 6:
                c[C_NOT_TCP] += 1
                return None
            if _U16(f, off + 6)[0] & 0x3FFF:      # MF set or a fragment offset
                c[C_FRAG] += 1
                return None
            src = f[off + 12:off + 16]
            dst = f[off + 16:off + 20]
            ip_end = off + total if total else n   # total 0: TSO-sized frame
            p = off + ihl
        elif et == 0x86DD:
            if off + 40 > n or (f[off] >> 4) != 6:
                c[C_MAL3] += 1
                return None
            plen = _U16(f, off + 4)[0]
            nh = f[off + 6]
            src = f[off + 8:off + 24]
            dst = f[off + 24:off + 40]
            p = off + 40
            ip_end = p + plen if plen else n
            hops = 0
            while nh in _V6_EXT:
                hops += 1
                if hops > 8 or p + 8 > n:
                    c[C_MAL3] += 1
                    return None
                if nh == 44:
                    if _U16(f, p + 2)[0] & 0xFFF9:   # offset or M flag
                        c[C_FRAG] += 1
                        return None
                    hl = 8
                elif nh == 51:
                    hl = (f[p + 1] + 2) * 4
                else:
                    hl = (f[p + 1] + 1) * 8
                nh = f[p]
                p += hl
            if nh != 6:
                c[C_NOT_TCP] += 1
                return None
        else:
            c[C_NOT_IP] += 1
            return None
        # --- L4 -------------------------------------------------------------------------
        truncated = ip_end > n
        end = n if truncated else ip_end
        if p + 20 > end:
            if truncated:
                c[C_TRUNC] += 1
            else:
                c[C_MAL4] += 1
            return None
        doff = (f[p + 12] >> 4) * 4
        if doff < 20 or p + doff > ip_end:
            c[C_MAL4] += 1
            return None
        flags = f[p + 13]
        ps = p + doff
        if ps > end:
            c[C_TRUNC] += 1
            return None
        a = src + f[p:p + 2]
        b = dst + f[p + 2:p + 4]
        if a <= b:
            key = a + b
            from_lo = True
        else:
            key = b + a
            from_lo = False
        # --- early drop -----------------------------------------------------------------
        plen = end - ps
        if flags & SYN:
            if key in self.done:
                if flags & ACK:
                    c[C_DONE] += 1
                    return None
                del self.done[key]
            if key not in self.flows:
                self.flows[key] = None      # pending: the flow table creates it
        else:
            if key in self.done:
                c[C_DONE] += 1
                return None
            if plen == 0 and not (flags & (FIN | RST)):
                c[C_NOPAY] += 1
                return None
            if key not in self.flows:
                if plen == 0 or not _looks_like_tls_start(f[ps:min(ps + 3, end)]):
                    c[C_UNTRACKED] += 1
                    return None
                self.flows[key] = None      # pending: the flow table creates it
            elif plen and not (flags & (FIN | RST)):
                sk = self.skip.get(key)
                if sk is not None:
                    stop = sk[0] if from_lo else sk[1]
                    if stop >= 0 and ((stop - _U32(f, p + 4)[0] - plen) & 0xFFFFFFFF) < 0x80000000:
                        c[C_SKIPENC] += 1
                        return None
        if truncated:
            c[C_TRUNC] += 1
        c[C_EMITTED] += 1
        return (ts, key, from_lo, flags, _U32(f, p + 4)[0], f[ps:end], truncated)


# ---------------------------------------------------------------------------------------
# TLS framing
# ---------------------------------------------------------------------------------------

def split_records(buf, pos: int):
    """Frame TLS records in ``buf[pos:]``.

    Returns ``(records, new_pos, reason)``: ``records`` is a list of
    ``(content_type, version, fragment_bytes)``, ``new_pos`` the offset of the first byte not
    consumed (an incomplete record stays in the buffer), ``reason`` None or the
    :data:`~cext.errors.REASONS` string that stopped framing at ``new_pos``.
    """
    out = []
    n = len(buf)
    if pos < 0:
        pos = 0
    while pos + 5 <= n:
        ct = buf[pos]
        if ct < 20 or ct > 63:
            return out, pos, "unknown_content_type"
        if buf[pos + 1] != 3 or buf[pos + 2] > 4:
            return out, pos, "bad_record_version"
        ln = (buf[pos + 3] << 8) | buf[pos + 4]
        if ln > MAX_RECORD:
            return out, pos, "record_overflow"
        if pos + 5 + ln > n:
            break
        out.append((ct, (buf[pos + 1] << 8) | buf[pos + 2], bytes(buf[pos + 5:pos + 5 + ln])))
        pos += 5 + ln
    return out, pos, None


def split_handshakes(buf, pos: int, max_len: int):
    """Frame handshake messages in ``buf[pos:]``: ``(messages, new_pos, reason)`` with
    ``messages`` a list of ``(msg_type, body_bytes)``."""
    out = []
    n = len(buf)
    if pos < 0:
        pos = 0
    while pos + 4 <= n:
        ln = (buf[pos + 1] << 16) | (buf[pos + 2] << 8) | buf[pos + 3]
        if ln > max_len:
            return out, pos, "handshake_too_long"
        if pos + 4 + ln > n:
            break
        out.append((buf[pos], bytes(buf[pos + 4:pos + 4 + ln])))
        pos += 4 + ln
    return out, pos, None


# ---------------------------------------------------------------------------------------
# Hello parsing
# ---------------------------------------------------------------------------------------

def _vec(b: bytes, pos: int, end: int, lbytes: int):
    """Return (start, stop) of a length-prefixed vector at ``pos``; raise on overrun."""
    if pos + lbytes > end:
        raise MalformedMessage("vector_overrun")
    if lbytes == 1:
        ln = b[pos]
    elif lbytes == 2:
        ln = (b[pos] << 8) | b[pos + 1]
    else:
        ln = (b[pos] << 16) | (b[pos + 1] << 8) | b[pos + 2]
    s = pos + lbytes
    if s + ln > end:
        raise MalformedMessage("vector_overrun")
    return s, s + ln


def _u16_list(b: bytes, s: int, e: int) -> tuple:
    if (e - s) & 1:
        raise MalformedMessage("vector_overrun")
    return tuple((b[i] << 8) | b[i + 1] for i in range(s, e, 2))


def _text(raw: bytes) -> str:
    return raw.decode("ascii", "backslashreplace")


def _alpn_list(b: bytes, s: int, e: int) -> tuple:
    s, e = _vec(b, s, e, 2)
    out = []
    while s < e:
        ps, pe = _vec(b, s, e, 1)
        # issue 15: a literal backslash is written \x5c, so that every \xNN of the text is one
        # wire byte and JA4's hex rule reads the exact bytes back (cext/ja4.py)
        raw = b[ps:pe]
        out.append(_text(raw.replace(b"\\", b"\\x5c")) if 0x5C in raw else _text(raw))
        s = pe
    return tuple(out)


def parse_client_hello(b: bytes) -> tuple:
    """RFC 8446 4.1.2 ClientHello.

    Returns ``(legacy_version, session_id, cipher_suites, compression_methods, extensions,
    server_name, alpn, supported_groups, ec_point_formats, signature_algorithms,
    supported_versions, key_share_groups, psk, session_ticket)`` — every list a tuple of ints
    (``alpn`` of str), ``extensions`` the extension types in wire order, ``server_name`` the
    first host_name or None, ``psk`` True when pre_shared_key was offered, ``session_ticket``
    the length of a session_ticket extension or -1.
    """
    end = len(b)
    if end < 38:
        raise MalformedMessage("vector_overrun")
    legacy_version = (b[0] << 8) | b[1]
    s, e = _vec(b, 34, end, 1)
    session_id = bytes(b[s:e])
    s, e = _vec(b, e, end, 2)
    suites = _u16_list(b, s, e)
    s, e = _vec(b, e, end, 1)
    compression = tuple(b[s:e])
    exts = []
    sni = None
    alpn: tuple = ()
    groups: tuple = ()
    formats: tuple = ()
    sigalgs: tuple = ()
    versions: tuple = ()
    shares = []
    psk = False
    ticket = -1
    if e < end:
        s, xe = _vec(b, e, end, 2)
        while s < xe:
            if s + 4 > xe:
                raise MalformedMessage("vector_overrun")
            et = (b[s] << 8) | b[s + 1]
            ds, de = _vec(b, s + 2, xe, 2)
            exts.append(et)
            if et == 0:            # server_name (RFC 6066 3)
                ls, le = _vec(b, ds, de, 2)
                while ls < le:
                    if ls + 1 > le:
                        raise MalformedMessage("vector_overrun")
                    ns, ne = _vec(b, ls + 1, le, 2)
                    if b[ls] == 0 and sni is None:
                        sni = _text(b[ns:ne])
                    ls = ne
            elif et == 16:         # application_layer_protocol_negotiation (RFC 7301)
                alpn = _alpn_list(b, ds, de)
            elif et == 10:         # supported_groups (RFC 8422 / 7919)
                gs, ge = _vec(b, ds, de, 2)
                groups = _u16_list(b, gs, ge)
            elif et == 11:         # ec_point_formats (RFC 8422)
                fs, fe = _vec(b, ds, de, 1)
                formats = tuple(b[fs:fe])
            elif et == 13:         # signature_algorithms (RFC 8446 4.2.3)
                gs, ge = _vec(b, ds, de, 2)
                sigalgs = _u16_list(b, gs, ge)
            elif et == 43:         # supported_versions (RFC 8446 4.2.1)
                vs, ve = _vec(b, ds, de, 1)
                versions = _u16_list(b, vs, ve)
            elif et == 51 or et == 40:   # key_share (RFC 8446 4.2.8; 40 in drafts <= 22)
                ks, ke = _vec(b, ds, de, 2)
                while ks < ke:
                    if ks + 2 > ke:
                        raise MalformedMessage("vector_overrun")
                    shares.append((b[ks] << 8) | b[ks + 1])
                    ks = _vec(b, ks + 2, ke, 2)[1]
            elif et == 41:         # pre_shared_key
                psk = True
            elif et == 35:         # session_ticket (RFC 5077)
                ticket = de - ds
            s = de
    return (legacy_version, session_id, suites, compression, tuple(exts), sni, alpn, groups,
            formats, sigalgs, versions, tuple(shares), psk, ticket)


def parse_server_hello(b: bytes) -> tuple:
    """RFC 8446 4.1.3 ServerHello (and TLS 1.3 drafts < 22, which had no session id).

    Returns ``(legacy_version, session_id, cipher_suite, compression_method, extensions,
    selected_version, key_share_group, alpn, psk_selected, is_hrr)``; ``selected_version`` is
    the supported_versions value (or the draft version), -1 when absent; ``key_share_group``
    -1 when absent; ``alpn`` None when absent.
    """
    end = len(b)
    if end < 34:
        raise MalformedMessage("vector_overrun")
    legacy_version = (b[0] << 8) | b[1]
    is_hrr = b[2:34] == HRR_RANDOM
    selected = -1
    if (legacy_version >> 8) == 0x7F and (legacy_version & 0xFF) < 22:
        # draft-era ServerHello: version random cipher_suite extensions
        session_id = b""
        if end < 36:
            raise MalformedMessage("vector_overrun")
        suite = (b[34] << 8) | b[35]
        compression = 0
        e = 36
        selected = legacy_version
    else:
        s, e = _vec(b, 34, end, 1)
        session_id = bytes(b[s:e])
        if e + 3 > end:
            raise MalformedMessage("vector_overrun")
        suite = (b[e] << 8) | b[e + 1]
        compression = b[e + 2]
        e += 3
    exts = []
    group = -1
    alpn = None
    psk = False
    if e < end:
        s, xe = _vec(b, e, end, 2)
        while s < xe:
            if s + 4 > xe:
                raise MalformedMessage("vector_overrun")
            et = (b[s] << 8) | b[s + 1]
            ds, de = _vec(b, s + 2, xe, 2)
            exts.append(et)
            if et == 43:
                if de - ds < 2:
                    raise MalformedMessage("vector_overrun")
                selected = (b[ds] << 8) | b[ds + 1]
            elif et == 51 or et == 40:
                if de - ds < 2:
                    raise MalformedMessage("vector_overrun")
                group = (b[ds] << 8) | b[ds + 1]
            elif et == 16:
                names = _alpn_list(b, ds, de)
                alpn = names[0] if names else None
            elif et == 41:
                psk = True
            s = de
    return (legacy_version, session_id, suite, compression, tuple(exts), selected, group,
            alpn, psk, is_hrr)


def parse_certificate(b: bytes, tls13: bool) -> list:
    """RFC 5246 7.4.2 / RFC 8446 4.4.2 Certificate: the DER certificates in wire order."""
    end = len(b)
    pos = 0
    if tls13:
        pos = _vec(b, 0, end, 1)[1]
    s, e = _vec(b, pos, end, 3)
    out = []
    while s < e:
        cs, ce = _vec(b, s, e, 3)
        out.append(bytes(b[cs:ce]))
        s = ce
        if tls13:
            s = _vec(b, s, e, 2)[1]
    return out


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (``org.apache.kafka.common.utils.Utils.murmur2``): the hash of the
    default partitioner of the Java client and of kafka-python, unsigned 32-bit."""
    data = bytes(data)
    n = len(data)
    m = 0x5BD1E995
    h = (0x9747B28C ^ n) & 0xFFFFFFFF
    tail = n & ~3
    for i in range(0, tail, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    rest = n & 3
    if rest >= 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def kafka_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives ``key`` among ``partitions``
    (``(murmur2(key) & 0x7fffffff) % partitions``): the same as a Java or kafka-python
    producer would choose, without kafka-python's pure-Python murmur2 per record."""
    if partitions <= 0:
        raise ValueError("partitions must be positive")
    return (murmur2(key) & 0x7FFFFFFF) % partitions
