# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Cython build of the wire core; ``cext/_wire_py.py`` is its pure-Python twin and the
reference for every behaviour here (tests/test_wire_equivalence.py and the fuzz target compare
the two on real, random and mutated input).

Reads are raw pointer reads (``const uint8_t*``), which Cython never bounds-checks: what
keeps them in bounds is a length check before each one.  The hello parsers read every vector
through ``_vec`` (bounds-checked, raises ``MalformedMessage``); the frame decoder
(``_decode``), ``split_records``, ``split_handshakes`` and parts of the hello parsers check
their lengths by hand before reading.  ``boundscheck``/``wraparound`` (off module-wide) only
concern the memoryview indexing of ``decode_batch``/``decode``/``murmur2``;
``TLSDIAG_DEBUG_BUILD=1`` turns them on.

Input is taken via the buffer protocol and walked with ``(pos, end)`` offsets.  ``bytes`` is
read in place; any other buffer (bytearray, memoryview) is copied to ``bytes`` once first
(``_as_bytes``).  What leaves the module -- record fragments, handshake bodies, DER
certificates, session ids, payloads -- is copied out as new ``bytes``.
"""
from cpython.bytes cimport (PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_FromStringAndSize,
                            PyBytes_GET_SIZE)
from libc.stdint cimport uint8_t, uint32_t
from libc.string cimport memchr

cimport cext._encap as _encap          # issue 15: tunnels (cext/_encap_py.py)

from .errors import MalformedMessage
from ._wire_py import COUNTER_NAMES, HRR_RANDOM, LINKTYPES, MAX_RECORD

__all__ = [
    "PacketDecoder", "split_records", "split_handshakes", "parse_client_hello",
    "parse_server_hello", "parse_certificate", "COUNTER_NAMES", "MAX_RECORD",
    "HRR_RANDOM", "LINKTYPES", "murmur2", "kafka_partition",
]

# TCP flags
cdef enum:
    FIN = 0x01
    SYN = 0x02
    RST = 0x04
    ACK = 0x10

cdef enum:
    C_RECORD_MAX = 18432            # MAX_RECORD: 2^14 + 2048 (RFC 5246 6.2.3)

# decoder counter indices, in the order of COUNTER_NAMES (_wire_py.py, which numbers them the
# same way): stats() pairs them by position, and the C = Py tests compare them by name
cdef enum:
    C_PACKETS
    C_BYTES
    C_NOT_IP
    C_NOT_TCP
    C_FRAG
    C_MAL3
    C_MAL4
    C_TRUNC
    C_NOPAY
    C_DONE
    C_UNTRACKED
    C_EMITTED
    C_LINKTYPE
    C_SKIPENC
    N_COUNTERS

cdef inline unsigned int _u16(const uint8_t* p) nogil:
    return (p[0] << 8) | p[1]

cdef inline unsigned int _u24(const uint8_t* p) nogil:
    return (p[0] << 16) | (p[1] << 8) | p[2]

cdef inline uint32_t _u32(const uint8_t* p) nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]

cdef inline uint32_t _le32(const uint8_t* p) nogil:
    return (<uint32_t>p[3] << 24) | (<uint32_t>p[2] << 16) | (<uint32_t>p[1] << 8) | p[0]


cdef class PacketDecoder:
    """See ``cext._wire_py.PacketDecoder``."""
    cdef public int linktype
    cdef public dict flows
    cdef public dict done
    cdef public dict skip
    cdef long long c[N_COUNTERS]
    cdef readonly _encap.Decapsulator encap     # issue 15: tunnels

    def __init__(self, int linktype, dict flows, dict done, dict skip):
        self.linktype = linktype
        self.flows = flows
        self.done = done
        self.skip = skip
        self.encap = _encap.Decapsulator()      # issue 15: tunnels
        cdef int i
        for i in range(N_COUNTERS):
            self.c[i] = 0

    @property
    def counters(self):
        return [self.c[i] for i in range(N_COUNTERS)]

    def stats(self):
        s = dict(zip(COUNTER_NAMES, self.counters))
        s.update(self.encap.stats())            # issue 15: encap_* counters
        return s

    def decode_batch(self, const uint8_t[::1] buf, const uint8_t[::1] meta, sink=None):
        cdef list out = []
        cdef Py_ssize_t i, n = meta.shape[0] - 15
        cdef const uint8_t* m
        cdef uint32_t sec, usec, off, caplen
        cdef Py_ssize_t blen = buf.shape[0]
        cdef uint8_t empty[1]
        cdef const uint8_t* base = &buf[0] if blen else empty
        for i in range(0, n, 16):
            m = &meta[i]
            # native-endian uint32s, as pcapy-ng packs them
            sec = (<const uint32_t*>m)[0]
            usec = (<const uint32_t*>m)[1]
            off = (<const uint32_t*>m)[2]
            caplen = (<const uint32_t*>m)[3]
            if <Py_ssize_t>off + caplen > blen:
                self.c[C_MAL3] += 1
                continue
            seg = self._decode(sec + usec * 1e-6, base + off, caplen)
            if seg is not None:
                if sink is None:
                    out.append(seg)
                else:
                    sink(*seg)
        return None if sink is not None else out

    def decode(self, double ts, const uint8_t[::1] frame):
        cdef uint8_t empty[1]
        if frame.shape[0] == 0:
            return self._decode(ts, empty, 0)
        return self._decode(ts, &frame[0], frame.shape[0])

    cdef object _decode(self, double ts, const uint8_t* f, Py_ssize_t n):
        cdef long long* c = self.c
        cdef int lt = self.linktype
        cdef Py_ssize_t off, p, ip_end, end, ps, plen, hl
        cdef unsigned int et, ihl, total, fam, doff, flags, nh, hops, v
        cdef bint truncated, from_lo
        c[C_PACKETS] += 1
        c[C_BYTES] += n
        # --- L2 ---
        if lt == 1:
            if n < 14:
                c[C_NOT_IP] += 1
                return None
            off = 12
            et = _u16(f + off)
            while et == 0x8100 or et == 0x88A8 or et == 0x9100:
                off += 4
                if off + 2 > n:
                    c[C_NOT_IP] += 1
                    return None
                et = _u16(f + off)
            off += 2
        elif lt == 113:
            if n < 16:
                c[C_NOT_IP] += 1
                return None
            et = _u16(f + 14)
            off = 16
        elif lt == 276:
            if n < 20:
                c[C_NOT_IP] += 1
                return None
            et = _u16(f)
            off = 20
        elif lt == 0 or lt == 108:
            if n < 4:
                c[C_NOT_IP] += 1
                return None
            fam = _u32(f) if lt == 108 else _le32(f)
            if fam > 0xFFFF:
                fam = _u32(f)
            if fam == 2:
                et = 0x0800
            elif fam == 24 or fam == 28 or fam == 30 or fam == 10:
                et = 0x86DD
            else:
                c[C_NOT_IP] += 1
                return None
            off = 4
        elif lt == 12 or lt == 14 or lt == 101 or lt == 228 or lt == 229:
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
        cdef Py_ssize_t inner
        if (et != 0x0800 and et != 0x86DD) or (
                off + 9 < n and f[off + (9 if et == 0x0800 else 6)] != 6):
            inner = self.encap.innermost(f, n, off, et)
            if inner >= 0:
                off = inner
                et = self.encap.et
            elif inner == -2:
                return None
        # --- L3 ---
        cdef const uint8_t* src
        cdef const uint8_t* dst
        cdef Py_ssize_t alen
        if et == 0x0800:
            if off + 20 > n or (f[off] >> 4) != 4:
                c[C_MAL3] += 1
                return None
            ihl = (f[off] & 15) * 4
            total = _u16(f + off + 2)
            if ihl < 20 or (total and total < ihl) or off + ihl > n:
                c[C_MAL3] += 1
                return None
            if f[off + 9] != 6:
                c[C_NOT_TCP] += 1
                return None
            if _u16(f + off + 6) & 0x3FFF:
                c[C_FRAG] += 1
                return None
            src = f + off + 12
            dst = f + off + 16
            alen = 4
            ip_end = off + total if total else n
            p = off + ihl
        elif et == 0x86DD:
            if off + 40 > n or (f[off] >> 4) != 6:
                c[C_MAL3] += 1
                return None
            plen = _u16(f + off + 4)
            nh = f[off + 6]
            src = f + off + 8
            dst = f + off + 24
            alen = 16
            p = off + 40
            ip_end = p + plen if plen else n
            hops = 0
            while nh == 0 or nh == 43 or nh == 60 or nh == 51 or nh == 44:
                hops += 1
                if hops > 8 or p + 8 > n:
                    c[C_MAL3] += 1
                    return None
                if nh == 44:
                    if _u16(f + p + 2) & 0xFFF9:
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
        # --- L4 ---
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
        # canonical key: compare (src, sport) with (dst, dport) bytewise
        cdef int cmp = 0
        cdef Py_ssize_t k
        for k in range(alen):
            if src[k] != dst[k]:
                cmp = -1 if src[k] < dst[k] else 1
                break
        if cmp == 0:
            for k in range(2):
                if f[p + k] != f[p + 2 + k]:
                    cmp = -1 if f[p + k] < f[p + 2 + k] else 1
                    break
        cdef bytes key = PyBytes_FromStringAndSize(NULL, 2 * (alen + 2))
        cdef char* kb = <char*>key
        cdef const uint8_t* a_ip
        cdef const uint8_t* b_ip
        cdef const uint8_t* a_port
        cdef const uint8_t* b_port
        if cmp <= 0:
            a_ip, a_port, b_ip, b_port = src, f + p, dst, f + p + 2
            from_lo = True
        else:
            a_ip, a_port, b_ip, b_port = dst, f + p + 2, src, f + p
            from_lo = False
        for k in range(alen):
            kb[k] = a_ip[k]
            kb[alen + 2 + k] = b_ip[k]
        kb[alen] = a_port[0]
        kb[alen + 1] = a_port[1]
        kb[2 * alen + 2] = b_port[0]
        kb[2 * alen + 3] = b_port[1]
        # --- early drop ---
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
                if plen == 0 or not _tls_start(f + ps, plen):
                    c[C_UNTRACKED] += 1
                    return None
                self.flows[key] = None      # pending: the flow table creates it
            elif plen and not (flags & (FIN | RST)) and self.skip:
                sk = self.skip.get(key)
                if sk is not None:
                    stop = sk[0] if from_lo else sk[1]
                    if stop >= 0 and ((<uint32_t>stop - _u32(f + p + 4) - <uint32_t>plen)
                                      & 0xFFFFFFFFu) < 0x80000000u:
                        c[C_SKIPENC] += 1
                        return None
        if truncated:
            c[C_TRUNC] += 1
        c[C_EMITTED] += 1
        return (ts, key, from_lo, flags, _u32(f + p + 4),
                PyBytes_FromStringAndSize(<const char*>(f + ps), plen), truncated)


cdef inline bint _tls_start(const uint8_t* p, Py_ssize_t n) nogil:
    if n < 3:
        return False
    if (p[0] == 0x16 or p[0] == 0x15) and p[1] == 3:
        return True
    return (p[0] & 0x80) != 0 and p[2] == 1


# ------------------------------------------------------------------------------------------
# TLS framing
# ------------------------------------------------------------------------------------------

cdef inline bytes _as_bytes(object buf):
    """The argument as ``bytes`` (no copy for bytes; a copy of any other buffer): the
    framing and hello parsers read a raw pointer and are called per segment, where
    acquiring a typed memoryview would cost more than the parsing."""
    if PyBytes_CheckExact(buf):
        return <bytes>buf
    return bytes(memoryview(buf))


def split_records(buf, Py_ssize_t pos):
    cdef bytes data = _as_bytes(buf)
    cdef const uint8_t* b = <const uint8_t*>PyBytes_AS_STRING(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    cdef list out = []
    cdef unsigned int ct, ln
    if pos < 0:
        pos = 0
    while pos + 5 <= n:
        ct = b[pos]
        if ct < 20 or ct > 63:
            return out, pos, "unknown_content_type"
        if b[pos + 1] != 3 or b[pos + 2] > 4:
            return out, pos, "bad_record_version"
        ln = (b[pos + 3] << 8) | b[pos + 4]
        if ln > C_RECORD_MAX:
            return out, pos, "record_overflow"
        if pos + 5 + ln > n:
            break
        out.append((ct, (b[pos + 1] << 8) | b[pos + 2],
                    PyBytes_FromStringAndSize(<const char*>b + pos + 5, ln) if ln else b""))
        pos += 5 + ln
    return out, pos, None


def split_handshakes(buf, Py_ssize_t pos, Py_ssize_t max_len):
    cdef bytes data = _as_bytes(buf)
    cdef const uint8_t* b = <const uint8_t*>PyBytes_AS_STRING(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    cdef list out = []
    cdef Py_ssize_t ln
    if pos < 0:
        pos = 0
    while pos + 4 <= n:
        ln = (b[pos + 1] << 16) | (b[pos + 2] << 8) | b[pos + 3]
        if ln > max_len:
            return out, pos, "handshake_too_long"
        if pos + 4 + ln > n:
            break
        out.append((b[pos], PyBytes_FromStringAndSize(<const char*>b + pos + 4, ln)
                    if ln else b""))
        pos += 4 + ln
    return out, pos, None


# ------------------------------------------------------------------------------------------
# Hello parsing: one bounds-checked vector reader
# ------------------------------------------------------------------------------------------

cdef inline int _vec(const uint8_t* b, Py_ssize_t pos, Py_ssize_t end, int lbytes,
                     Py_ssize_t* s, Py_ssize_t* e) except -1:
    """(start, stop) of the vector with an ``lbytes`` length prefix at ``pos``."""
    cdef Py_ssize_t ln
    if pos + lbytes > end:
        raise MalformedMessage("vector_overrun")
    if lbytes == 1:
        ln = b[pos]
    elif lbytes == 2:
        ln = (b[pos] << 8) | b[pos + 1]
    else:
        ln = (b[pos] << 16) | (b[pos + 1] << 8) | b[pos + 2]
    s[0] = pos + lbytes
    if s[0] + ln > end:
        raise MalformedMessage("vector_overrun")
    e[0] = s[0] + ln
    return 0


cdef tuple _u16_list(const uint8_t* b, Py_ssize_t s, Py_ssize_t e):
    if (e - s) & 1:
        raise MalformedMessage("vector_overrun")
    cdef Py_ssize_t i, n = (e - s) >> 1
    return tuple([(b[s + 2 * i] << 8) | b[s + 2 * i + 1] for i in range(n)])


cdef str _text(const uint8_t* b, Py_ssize_t s, Py_ssize_t e):
    return PyBytes_FromStringAndSize(<const char*>(b + s), e - s).decode("ascii",
                                                                         "backslashreplace")


cdef tuple _alpn_list(const uint8_t* b, Py_ssize_t s0, Py_ssize_t e0):
    cdef Py_ssize_t s, e, ps, pe
    _vec(b, s0, e0, 2, &s, &e)
    cdef list out = []
    while s < e:
        _vec(b, s, e, 1, &ps, &pe)
        # issue 15: a literal backslash is written \x5c, so that every \xNN of the text is one
        # wire byte and JA4's hex rule reads the exact bytes back (cext/ja4.py)
        if memchr(b + ps, 0x5C, pe - ps) != NULL:
            out.append(PyBytes_FromStringAndSize(<const char*>(b + ps), pe - ps).replace(
                b"\\", b"\\x5c").decode("ascii", "backslashreplace"))
        else:
            out.append(_text(b, ps, pe))
        s = pe
    return tuple(out)


def parse_client_hello(body):
    cdef bytes data = _as_bytes(body)
    cdef Py_ssize_t end = PyBytes_GET_SIZE(data)
    if end < 38:
        raise MalformedMessage("vector_overrun")
    cdef const uint8_t* b = <const uint8_t*>PyBytes_AS_STRING(data)
    cdef Py_ssize_t s, e, xe, ds, de, ls, le, ns, ne, gs, ge, ks, ke, t1, t2
    cdef unsigned int et
    legacy_version = (b[0] << 8) | b[1]
    _vec(b, 34, end, 1, &s, &e)
    session_id = PyBytes_FromStringAndSize(<const char*>(b + s), e - s)
    _vec(b, e, end, 2, &s, &e)
    suites = _u16_list(b, s, e)
    _vec(b, e, end, 1, &s, &e)
    compression = tuple([b[i] for i in range(s, e)])
    cdef list exts = []
    sni = None
    alpn = ()
    groups = ()
    formats = ()
    sigalgs = ()
    versions = ()
    cdef list shares = []
    psk = False
    ticket = -1
    if e < end:
        _vec(b, e, end, 2, &s, &xe)
        while s < xe:
            if s + 4 > xe:
                raise MalformedMessage("vector_overrun")
            et = (b[s] << 8) | b[s + 1]
            _vec(b, s + 2, xe, 2, &ds, &de)
            exts.append(et)
            if et == 0:
                _vec(b, ds, de, 2, &ls, &le)
                while ls < le:
                    if ls + 1 > le:
                        raise MalformedMessage("vector_overrun")
                    _vec(b, ls + 1, le, 2, &ns, &ne)
                    if b[ls] == 0 and sni is None:
                        sni = _text(b, ns, ne)
                    ls = ne
            elif et == 16:
                alpn = _alpn_list(b, ds, de)
            elif et == 10:
                _vec(b, ds, de, 2, &gs, &ge)
                groups = _u16_list(b, gs, ge)
            elif et == 11:
                _vec(b, ds, de, 1, &gs, &ge)
                formats = tuple([b[i] for i in range(gs, ge)])
            elif et == 13:
                _vec(b, ds, de, 2, &gs, &ge)
                sigalgs = _u16_list(b, gs, ge)
            elif et == 43:
                _vec(b, ds, de, 1, &gs, &ge)
                versions = _u16_list(b, gs, ge)
            elif et == 51 or et == 40:
                _vec(b, ds, de, 2, &ks, &ke)
                while ks < ke:
                    if ks + 2 > ke:
                        raise MalformedMessage("vector_overrun")
                    shares.append((b[ks] << 8) | b[ks + 1])
                    _vec(b, ks + 2, ke, 2, &t1, &t2)
                    ks = t2
            elif et == 41:
                psk = True
            elif et == 35:
                ticket = de - ds
            s = de
    return (legacy_version, session_id, suites, compression, tuple(exts), sni, alpn, groups,
            formats, sigalgs, versions, tuple(shares), psk, ticket)


def parse_server_hello(body):
    cdef bytes data = _as_bytes(body)
    cdef Py_ssize_t end = PyBytes_GET_SIZE(data)
    if end < 34:
        raise MalformedMessage("vector_overrun")
    cdef const uint8_t* b = <const uint8_t*>PyBytes_AS_STRING(data)
    cdef Py_ssize_t s, e, xe, ds, de
    cdef unsigned int et
    cdef unsigned int legacy_version = (b[0] << 8) | b[1]
    is_hrr = PyBytes_FromStringAndSize(<const char*>(b + 2), 32) == HRR_RANDOM
    selected = -1
    if (legacy_version >> 8) == 0x7F and (legacy_version & 0xFF) < 22:
        session_id = b""
        if end < 36:
            raise MalformedMessage("vector_overrun")
        suite = (b[34] << 8) | b[35]
        compression = 0
        e = 36
        selected = legacy_version
    else:
        _vec(b, 34, end, 1, &s, &e)
        session_id = PyBytes_FromStringAndSize(<const char*>(b + s), e - s)
        if e + 3 > end:
            raise MalformedMessage("vector_overrun")
        suite = (b[e] << 8) | b[e + 1]
        compression = b[e + 2]
        e += 3
    cdef list exts = []
    group = -1
    alpn = None
    psk = False
    if e < end:
        _vec(b, e, end, 2, &s, &xe)
        while s < xe:
            if s + 4 > xe:
                raise MalformedMessage("vector_overrun")
            et = (b[s] << 8) | b[s + 1]
            _vec(b, s + 2, xe, 2, &ds, &de)
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


def parse_certificate(body, bint tls13):
    cdef bytes data = _as_bytes(body)
    cdef Py_ssize_t end = PyBytes_GET_SIZE(data)
    cdef const uint8_t* b
    cdef Py_ssize_t pos = 0, s, e, cs, ce, t1, t2
    cdef list out = []
    if end == 0:
        raise MalformedMessage("vector_overrun")
    b = <const uint8_t*>PyBytes_AS_STRING(data)
    if tls13:
        _vec(b, 0, end, 1, &t1, &t2)
        pos = t2
    _vec(b, pos, end, 3, &s, &e)
    while s < e:
        _vec(b, s, e, 3, &cs, &ce)
        out.append(PyBytes_FromStringAndSize(<const char*>(b + cs), ce - cs))
        s = ce
        if tls13:
            _vec(b, s, e, 2, &t1, &t2)
            s = t2
    return out


def murmur2(const uint8_t[::1] data):
    """Kafka's murmur2 (``org.apache.kafka.common.utils.Utils.murmur2``): the hash of the
    default partitioner of the Java client and of kafka-python, unsigned 32-bit."""
    cdef Py_ssize_t n = data.shape[0], i, tail = n & ~3
    cdef uint32_t m = 0x5BD1E995, k
    cdef uint32_t h = 0x9747B28C ^ <uint32_t>n
    for i in range(0, tail, 4):
        k = data[i] | (<uint32_t>data[i + 1] << 8) | (<uint32_t>data[i + 2] << 16) \
            | (<uint32_t>data[i + 3] << 24)
        k *= m
        k ^= k >> 24
        k *= m
        h *= m
        h ^= k
    i = n & 3
    if i >= 3:
        h ^= <uint32_t>data[tail + 2] << 16
    if i >= 2:
        h ^= <uint32_t>data[tail + 1] << 8
    if i >= 1:
        h ^= data[tail]
        h *= m
    h ^= h >> 13
    h *= m
    h ^= h >> 15
    return h


def kafka_partition(const uint8_t[::1] key, Py_ssize_t partitions):
    """The partition Kafka's default partitioner gives ``key`` among ``partitions``
    (``(murmur2(key) & 0x7fffffff) % partitions``): the same as a Java or kafka-python
    producer would choose, without kafka-python's pure-Python murmur2 per record."""
    if partitions <= 0:
        raise ValueError("partitions must be positive")
    return (murmur2(key) & 0x7FFFFFFF) % partitions
