# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Cython build of the wire module; ``cext/_wire_py.py`` is its pure-Python twin and the
reference for every behaviour here (tests/test_wire_equivalence.py and the fuzz target compare
the two on real, random and mutated input).  ``cext/_wire.pxd`` is the C-level interface the
compiled engine modules call.

Reads are raw pointer reads (``const uint8_t*``), which Cython never bounds-checks: what
keeps them in bounds is a length check before each one.  The hello parsers read every vector
through ``_vec`` (bounds-checked: a status, not an exception); the frame decoder (``_decode``)
and the pcap / pcapng record walk check their lengths by hand before reading.
``boundscheck``/``wraparound`` (off module-wide) concern the memoryview indexing of the frame
sources and ``murmur2``; ``TLSDIAG_DEBUG_BUILD=1`` turns them on.

Errors are int status codes (0 ok, ``-n`` the n-th reason of ``cext.errors.CODES``) up to the
``def`` functions, which raise ``cext.errors.error(status)``: the one mapping.  Input is read
in place (``bytes`` and buffers are never copied); what leaves the module -- a segment's
payload, session ids, DER certificates, names -- is copied out as new objects.
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem, PyDict_SetItem
from cpython.exc cimport PyErr_CheckSignals, PyErr_SetFromErrno
from cpython.list cimport PyList_GET_SIZE
from cpython.mem cimport PyMem_Calloc, PyMem_Free
from cpython.ref cimport Py_DECREF, Py_INCREF, PyObject
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.math cimport fabs, rint
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport qsort
from libc.errno cimport EAGAIN, EINTR, errno
from libc.string cimport memchr, memcmp, memcpy, memset
from posix.uio cimport iovec, writev

from .errors import MAX_CERTIFICATES as _MAX_CERTIFICATES, error
from ._wire_py import (COUNTER_NAMES, GLOBAL_COUNTERS, HRR_RANDOM, LINKTYPES, MAX_RECORD, GREASE,
                       MAX_SNAPLEN, NG_MAX_BLOCK, NG_MAX_IFACES, SHARE_SPACE, counters_as_stats)
from ._wire_py import connection_id as _connection_id_py
from ._wire_py import endpoint_text as _endpoint_text_py

cdef Py_ssize_t MAX_CERTIFICATES = _MAX_CERTIFICATES

__all__ = [
    "PacketDecoder", "Done", "Skip", "Wire", "parse_client_hello", "parse_client_hello_key",
    "parse_server_hello", "parse_certificate", "connection_id", "endpoint_text", "COUNTER_NAMES",
    "GLOBAL_COUNTERS", "counters_as_stats", "MAX_RECORD", "SHARE_SPACE",
    "HRR_RANDOM", "LINKTYPES", "MAX_SNAPLEN", "NG_MAX_BLOCK", "NG_MAX_IFACES", "murmur2",
    "kafka_partition", "key_hash", "keys_below", "write_merged", "copy_into",
    "shared_count", "set_shared_count",
]

cdef extern from *:
    """
    /* a hint only: no fault, no effect on what is read */
    #define TLSDIAG_PREFETCH(p) __builtin_prefetch((const void *)(p))
    /* a count two processes share: read and written whole (never torn), ordered with the
       bytes it counts (acquire, release) */
    #define TLSDIAG_LOAD_U64(p) __atomic_load_n((const uint64_t *)(p), __ATOMIC_ACQUIRE)
    #define TLSDIAG_STORE_U64(p, v) __atomic_store_n((uint64_t *)(p), (v), __ATOMIC_RELEASE)
    """
    void TLSDIAG_PREFETCH(const void* p) nogil
    uint64_t TLSDIAG_LOAD_U64(const void* p) nogil
    void TLSDIAG_STORE_U64(void* p, uint64_t v) nogil

#: how far ahead of the record it walks ``pcap_batch`` asks for the file's bytes, every cache
#: line of them: a walk of record headers is a chain of dependent loads, each a cache miss on
#: a mapped file.  (One line 4 KB ahead of each record, as it was until 2026-12-05, left most
#: headers out: records are ~400 bytes on handshake traffic.  A walk alone of hs-100k,
#: mapped: 0.16 s against 0.20-0.22 s; 16 KB ahead 0.18-0.19 s, 64 KB 0.29 s, 2 KB as 4 KB.)
cdef enum:
    PREFETCH_AHEAD = 4096

# TCP flags
cdef enum:
    FIN = 0x01
    SYN = 0x02
    RST = 0x04
    ACK = 0x10

cdef enum:
    C_RECORD_MAX = 18432            # MAX_RECORD: 2^14 + 2048 (RFC 5246 6.2.3)

# status codes (cext.errors.CODES)
cdef enum:
    E_VECTOR_OVERRUN = -4
    E_TOO_MANY_CERTIFICATES = -8

# frame sources of the decoder
cdef enum:
    SRC_NONE
    SRC_BATCH
    SRC_PCAP
    SRC_FRAME
    SRC_PCAPNG

# pcapng (draft-ietf-opsawg-pcapng) block types the walk knows
cdef enum:
    NG_SHB = 0x0A0D0D0A
    NG_IDB = 1
    NG_PB = 2
    NG_SPB = 3
    NG_EPB = 6
    _NG_MAX_BLOCK = 16 << 20        # NG_MAX_BLOCK, NG_MAX_IFACES, MAX_SNAPLEN (the twin's)
    _NG_MAX_IFACES = 16
    _MAX_SNAPLEN = 262144

cdef const uint8_t* HRR = <const uint8_t*>b"\xcf\x21\xad\x74\xe5\x9a\x61\x11\xbe\x1d\x8c\x02\x1e\x65\xb8\x91\xc2\xa2\x11\x16\x7a\xbb\x8c\x5e\x07\x9e\x09\xe2\xc8\xa8\x33\x9c"
assert HRR[:32] == HRR_RANDOM
assert (_NG_MAX_BLOCK, _NG_MAX_IFACES, _MAX_SNAPLEN) == \
    (NG_MAX_BLOCK, NG_MAX_IFACES, MAX_SNAPLEN)

cdef uint8_t EMPTY[1]


cdef inline unsigned int _u16(const uint8_t* p) noexcept nogil:
    return (p[0] << 8) | p[1]

cdef inline uint32_t _u32(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]

cdef inline uint64_t _u64(const uint8_t* p) noexcept nogil:
    return (<uint64_t>_u32(p) << 32) | _u32(p + 4)

# the connection key's hash (see cext._wire_py.key_hash): its integers folded by multiplying
# (_fold: an IPv4 endpoint is one 48-bit number), then mixed (_mix)
cdef uint64_t KEY_MUL = 0x9E3779B97F4A7C15ULL

cdef uint64_t _fold6(const uint8_t* lo_ip, const uint8_t* lo_port, const uint8_t* hi_ip,
                     const uint8_t* hi_port) noexcept nogil:
    cdef uint64_t x = _u64(lo_ip) * KEY_MUL + _u64(lo_ip + 8)
    x = x * KEY_MUL + _u64(hi_ip)
    x = x * KEY_MUL + _u64(hi_ip + 8)
    return x * KEY_MUL + ((<uint64_t>_u16(lo_port) << 16) | _u16(hi_port))

cdef inline uint32_t _mix(uint64_t x) noexcept nogil:
    x ^= x >> 33
    x *= 0xFF51AFD7ED558CCDULL
    x ^= x >> 33
    x *= 0xC4CEB9FE1A85EC53ULL
    x ^= x >> 33
    return <uint32_t>(x >> 32)

cdef inline uint32_t _le32(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[3] << 24) | (<uint32_t>p[2] << 16) | (<uint32_t>p[1] << 8) | p[0]

cdef inline uint32_t _rd32(const uint8_t* p, bint big) noexcept nogil:
    return _u32(p) if big else _le32(p)

cdef inline bint _grease(unsigned int v) noexcept nogil:
    # RFC 8701: 0x0A0A, 0x1A1A ... 0xFAFA (both bytes equal, low nibble A)
    return (v & 0x0F0F) == 0x0A0A and (v >> 8) == (v & 0xFF)


cdef class Done:
    """See ``cext._wire_py.Done``."""

    def __init__(self, double finished):
        self.finished = finished
        self.last = finished
        self.alive = True


cdef class Skip:
    """See ``cext._wire_py.Skip``."""

    def __init__(self):
        self.lo = self.hi = -1
        self.alive = True


cdef enum:
    CACHE_SLOTS = 4096              # (a power of two)


cdef class PacketDecoder:
    """See ``cext._wire_py.PacketDecoder``."""

    def __init__(self, int linktype, dict flows, dict skip, int share_lo=0,
                 int share_hi=SHARE_SPACE):
        self.linktype = linktype
        self.flows = flows
        self.skip = skip
        self.share_lo = share_lo
        self.share_hi = share_hi
        self.payload = b""
        self.key = b""
        self._mode = SRC_NONE
        self.encap = _encap.Decapsulator()      # issue 15: tunnels
        cdef int i
        for i in range(N_COUNTERS):
            self.c[i] = 0
        self._cache = <_Slot*>PyMem_Calloc(CACHE_SLOTS, sizeof(_Slot))
        if self._cache is NULL:
            raise MemoryError()

    def __dealloc__(self):
        cdef int i
        if self._cache is not NULL:
            for i in range(CACHE_SLOTS):
                if self._cache[i].obj is not NULL:
                    Py_DECREF(<object>self._cache[i].obj)
            PyMem_Free(self._cache)
            self._cache = NULL

    cdef void _remember(self, uint32_t h, const uint8_t* raw, int klen, object obj):
        cdef _Slot* slot = &self._cache[h & (CACHE_SLOTS - 1)]
        Py_INCREF(obj)
        if slot.obj is not NULL:
            Py_DECREF(<object>slot.obj)
        slot.obj = <PyObject*>obj
        slot.klen = klen
        memcpy(slot.key, raw, klen)

    @property
    def counters(self):
        return [self.c[i] for i in range(N_COUNTERS)]

    def stats(self):
        s = counters_as_stats(self.counters)
        s.update(self.encap.stats())            # issue 15: encap_* counters
        return s

    # -- frame sources --------------------------------------------------------------------------
    def begin_batch(self, const uint8_t[::1] buf, const uint8_t[::1] meta):
        self._buf = buf
        self._meta = meta
        self._blen = buf.shape[0]
        self._i = 0
        self._n = meta.shape[0] - 15
        self._mode = SRC_BATCH
        self.batch_max_ts = 0.0

    def begin_pcap(self, const uint8_t[::1] data, Py_ssize_t pos, Py_ssize_t end, bint big,
                   bint nsec, uint32_t snap, bint at_eof=True):
        if end > data.shape[0]:
            end = data.shape[0]
        self._buf = data
        self._blen = data.shape[0]
        self._pos = pos
        self._end = end
        self._swap = big
        self._nsec = nsec
        self._snap = snap
        self._eof = at_eof
        self._left = 0
        self._mode = SRC_PCAP

    def begin_pcapng(self, const uint8_t[::1] data, Py_ssize_t pos, Py_ssize_t end, bint big,
                     uint32_t snap, tuple ifaces, bint at_eof=True):
        cdef Py_ssize_t i
        if len(ifaces) > _NG_MAX_IFACES:
            raise ValueError("at most %d interfaces" % _NG_MAX_IFACES)
        for i in range(len(ifaces)):
            if ifaces[i][0] < 1:
                raise ValueError("a time stamp resolution below 1")
            self._ng_res[i] = ifaces[i][0]
            self._ng_off[i] = ifaces[i][1]
            self._ng_mul[i] = 1000000 // self._ng_res[i] if self._ng_res[i] < 1000000 else 1
            self._ng_div[i] = self._ng_res[i] // 1000000 if self._ng_res[i] > 1000000 else 1
        self._ng_n = len(ifaces)
        self.begin_pcap(data, pos, end, big, False, snap, at_eof)
        self._mode = SRC_PCAPNG

    def pcap_batch(self, Py_ssize_t limit):
        cdef Py_ssize_t p = self._pos, end = self._end, count = 0, size
        cdef const uint8_t* b = &self._buf[0] if self._blen else EMPTY
        cdef bint ng = self._mode == SRC_PCAPNG, big = self._swap
        cdef Py_ssize_t head = 8 if ng else 16
        cdef Py_ssize_t pf = p          # the bytes up to here are asked into the cache
        cdef int n
        while count < limit:
            if p == end:
                if self._eof:
                    break
                return -2
            if p + head > end:
                return -1 if self._eof else -2
            # every cache line PREFETCH_AHEAD ahead of the walk: the record headers there are
            # in the cache when it gets to them (a window may be mapped, not just read)
            while pf < p + PREFETCH_AHEAD and pf < end:
                TLSDIAG_PREFETCH(b + pf)
                pf += 64
            if ng:
                size = _rd32(b + p + 4, big)
                if size < 12 or size % 4 or size > _NG_MAX_BLOCK:
                    return -1
            else:
                size = _rd32(b + p + 8, big)
                if size > _MAX_SNAPLEN:
                    return -1
                size += 16
            if p + size > end:
                return -1 if self._eof else -2
            if ng:
                n = self._ng_block(b + p, size)
                if n < 0:
                    return -1
                count += n
            else:
                count += 1
            p += size
        self._left = count
        self.batch_max_ts = 0.0
        return count

    cdef int _ng_block(self, const uint8_t* b, Py_ssize_t size) noexcept:
        cdef bint big = self._swap
        cdef uint32_t btype = _rd32(b, big), caplen
        if _rd32(b + size - 4, big) != size:
            return -1
        if btype == NG_EPB:
            if size < 32 or _rd32(b + 8, big) >= <uint32_t>self._ng_n:
                return -1
            caplen = _rd32(b + 20, big)
            return -1 if caplen > self._snap or caplen > size - 32 else 1
        if btype == NG_SHB or btype == NG_IDB or btype == NG_PB or btype == NG_SPB:
            return -1
        return 0

    @property
    def pcap_pos(self):
        return self._pos

    def begin_frame(self, double ts, const uint8_t[::1] frame):
        self._buf = frame
        self._blen = frame.shape[0]
        self.ts = ts
        self._n = 1
        self._mode = SRC_FRAME
        self.batch_max_ts = ts

    cpdef int next(self) except -2:
        cdef const uint8_t* b
        cdef const uint8_t* m
        cdef uint32_t sec, usec, off, caplen, iface
        cdef uint64_t t, res, frac
        cdef bint big
        cdef Py_ssize_t size
        cdef double ts
        cdef Py_ssize_t p
        while True:
            if self._mode == SRC_BATCH:
                if self._i >= self._n:
                    self._mode = SRC_NONE
                    return 0
                m = &self._meta[self._i]
                self._i += 16
                # native-endian uint32s, as pcapy-ng packs them
                sec = (<const uint32_t*>m)[0]
                usec = (<const uint32_t*>m)[1]
                off = (<const uint32_t*>m)[2]
                caplen = (<const uint32_t*>m)[3]
                if <Py_ssize_t>off + caplen > self._blen:
                    self.c[C_MAL3] += 1
                    continue
                ts = sec + usec * 1e-6
                b = (&self._buf[0] if self._blen else EMPTY) + off
            elif self._mode == SRC_PCAP:
                if self._left <= 0:
                    return 0
                self._left -= 1
                p = self._pos
                b = &self._buf[0]
                if self._swap:
                    sec, usec, caplen = _u32(b + p), _u32(b + p + 4), _u32(b + p + 8)
                else:
                    sec, usec, caplen = _le32(b + p), _le32(b + p + 4), _le32(b + p + 8)
                if p + 16 + caplen > self._end:     # (a file changed since its batch check)
                    self._left = 0
                    return 0
                if self._nsec:
                    usec = usec // 1000
                self._pos = p + 16 + caplen
                if caplen > self._snap:             # (libpcap cuts it to the snap length)
                    caplen = self._snap
                ts = sec + usec * 1e-6
                b = b + p + 16
            elif self._mode == SRC_PCAPNG:
                if self._left <= 0:
                    return 0
                self._left -= 1
                p = self._pos
                b = &self._buf[0]
                big = self._swap
                while True:                 # (past the blocks the batch check skipped)
                    if p + 32 > self._end:
                        size = 0
                        break
                    size = _rd32(b + p + 4, big)
                    if _rd32(b + p, big) == NG_EPB or size < 12:
                        break
                    p += size
                if size < 32 or p + size > self._end:  # (a file changed since its check)
                    self._left = 0
                    return 0
                iface, caplen = _rd32(b + p + 8, big), _rd32(b + p + 20, big)
                if caplen > size - 32 or iface >= <uint32_t>self._ng_n:
                    self._left = 0
                    return 0
                t = (<uint64_t>_rd32(b + p + 12, big) << 32) | _rd32(b + p + 16, big)
                self._pos = p + size
                # seconds and microseconds as libpcap makes them of the interface's
                # resolution (a power of 10) and offset
                res = self._ng_res[iface]
                frac = t % res
                if self._ng_mul[iface] != 1:
                    frac *= self._ng_mul[iface]
                elif self._ng_div[iface] != 1:
                    frac //= self._ng_div[iface]
                sec = <uint32_t>(t // res + <uint64_t>self._ng_off[iface])
                ts = sec + <uint32_t>frac * 1e-6
                b = b + p + 28
            elif self._mode == SRC_FRAME:
                self._mode = SRC_NONE
                ts = self.ts
                caplen = self._blen
                b = &self._buf[0] if self._blen else EMPTY
            else:
                return 0
            self.frames += 1
            if ts > self.batch_max_ts:
                self.batch_max_ts = ts
            if self._decode(ts, b, caplen):
                return 1

    cdef bint _decode(self, double ts, const uint8_t* f, Py_ssize_t n) except -1:
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
                return False
            off = 12
            et = _u16(f + off)
            while et == 0x8100 or et == 0x88A8 or et == 0x9100:
                off += 4
                if off + 2 > n:
                    c[C_NOT_IP] += 1
                    return False
                et = _u16(f + off)
            off += 2
        elif lt == 113:
            if n < 16:
                c[C_NOT_IP] += 1
                return False
            et = _u16(f + 14)
            off = 16
        elif lt == 276:
            if n < 20:
                c[C_NOT_IP] += 1
                return False
            et = _u16(f)
            off = 20
        elif lt == 0 or lt == 108:
            if n < 4:
                c[C_NOT_IP] += 1
                return False
            fam = _u32(f) if lt == 108 else _le32(f)
            if fam > 0xFFFF:
                fam = _u32(f)
            if fam == 2:
                et = 0x0800
            elif fam == 24 or fam == 28 or fam == 30 or fam == 10:
                et = 0x86DD
            else:
                c[C_NOT_IP] += 1
                return False
            off = 4
        elif lt == 12 or lt == 14 or lt == 101 or lt == 228 or lt == 229:
            if n < 1:
                c[C_NOT_IP] += 1
                return False
            v = f[0] >> 4
            et = 0x0800 if v == 4 else (0x86DD if v == 6 else 0)
            off = 0
        else:
            c[C_LINKTYPE] += 1
            return False
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
                return False
        # --- L3 ---
        cdef const uint8_t* src
        cdef const uint8_t* dst
        cdef Py_ssize_t alen
        if et == 0x0800:
            if off + 20 > n or (f[off] >> 4) != 4:
                c[C_MAL3] += 1
                return False
            ihl = (f[off] & 15) * 4
            total = _u16(f + off + 2)
            if ihl < 20 or (total and total < ihl) or off + ihl > n:
                c[C_MAL3] += 1
                return False
            if f[off + 9] != 6:
                c[C_NOT_TCP] += 1
                return False
            if _u16(f + off + 6) & 0x3FFF:
                c[C_FRAG] += 1
                return False
            src = f + off + 12
            dst = f + off + 16
            alen = 4
            ip_end = off + total if total else n
            p = off + ihl
        elif et == 0x86DD:
            if off + 40 > n or (f[off] >> 4) != 6:
                c[C_MAL3] += 1
                return False
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
                    return False
                if nh == 44:
                    if _u16(f + p + 2) & 0xFFF9:
                        c[C_FRAG] += 1
                        return False
                    hl = 8
                elif nh == 51:
                    hl = (f[p + 1] + 2) * 4
                else:
                    hl = (f[p + 1] + 1) * 8
                nh = f[p]
                p += hl
            if nh != 6:
                c[C_NOT_TCP] += 1
                return False
        else:
            c[C_NOT_IP] += 1
            return False
        # --- L4 ---
        truncated = ip_end > n
        end = n if truncated else ip_end
        if p + 20 > end:
            if truncated:
                c[C_TRUNC] += 1
            else:
                c[C_MAL4] += 1
            return False
        doff = (f[p + 12] >> 4) * 4
        if doff < 20 or p + doff > ip_end:
            c[C_MAL4] += 1
            return False
        flags = f[p + 13]
        ps = p + doff
        if ps > end:
            c[C_TRUNC] += 1
            return False
        # the canonical order: (src, sport) against (dst, dport) bytewise, as big-endian
        # integers; then the key's hash (the --jobs partition and the slot), before any key
        # is made: another worker's frame ends there
        cdef uint64_t sa, da
        if alen == 4:
            sa = (<uint64_t>_u32(src) << 16) | _u16(f + p)
            da = (<uint64_t>_u32(dst) << 16) | _u16(f + p + 2)
        else:
            sa, da = _u64(src), _u64(dst)
            if sa == da:
                sa, da = _u64(src + 8), _u64(dst + 8)
                if sa == da:
                    sa, da = _u16(f + p), _u16(f + p + 2)
        from_lo = sa <= da
        cdef const uint8_t* a_ip
        cdef const uint8_t* b_ip
        cdef const uint8_t* a_port
        cdef const uint8_t* b_port
        if from_lo:
            a_ip, a_port, b_ip, b_port = src, f + p, dst, f + p + 2
        else:
            a_ip, a_port, b_ip, b_port = dst, f + p + 2, src, f + p
        cdef uint32_t h = _mix(((sa * KEY_MUL + da) if from_lo else (da * KEY_MUL + sa))
                               if alen == 4 else _fold6(a_ip, a_port, b_ip, b_port))
        if <int>(h >> 16) < self.share_lo or <int>(h >> 16) >= self.share_hi:
            return False                    # (--jobs: another worker's connection)
        # the canonical key, in place: lo_ip lo_port hi_ip hi_port
        cdef uint8_t raw[36]
        cdef int klen = 2 * (alen + 2)
        memcpy(raw, a_ip, alen)
        raw[alen] = a_port[0]
        raw[alen + 1] = a_port[1]
        memcpy(raw + alen + 2, b_ip, alen)
        raw[2 * alen + 2] = b_port[0]
        raw[2 * alen + 3] = b_port[1]
        cdef uint32_t seq = _u32(f + p + 4)
        cdef object obj
        cdef long long stop
        plen = end - ps
        cdef _Slot* slot = &self._cache[h & (CACHE_SLOTS - 1)]
        if not (flags & SYN) and slot.obj is not NULL and slot.klen == klen \
                and memcmp(slot.key, raw, klen) == 0:
            # a finished or skipping flow seen recently: decided without the dict
            obj = <object>slot.obj
            if type(obj) is Done:
                if (<Done>obj).alive:
                    (<Done>obj).last = ts
                    c[C_DONE] += 1
                    return False
            elif (<Skip>obj).alive and plen and not (flags & (FIN | RST)):
                stop = (<Skip>obj).lo if from_lo else (<Skip>obj).hi
                if stop >= 0 and ((<uint32_t>stop - seq - <uint32_t>plen)
                                  & 0xFFFFFFFFu) < 0x80000000u:
                    c[C_SKIPENC] += 1
                    return False
        cdef bytes key = PyBytes_FromStringAndSize(<const char*>raw, klen)
        # --- early drop: one look-up of the key ---
        cdef dict flows = self.flows
        cdef PyObject* found = PyDict_GetItem(flows, key)
        cdef object entry = <object>found if found is not NULL else None
        cdef bint done = found is not NULL and type(entry) is Done
        if flags & SYN:
            if done:
                if flags & ACK:
                    (<Done>entry).last = ts
                    c[C_DONE] += 1
                    return False
                # a new connection on a finished 5-tuple: the flow table reopens it
            elif found is NULL:
                flows[key] = None           # pending: the flow table creates it
        else:
            if done:
                (<Done>entry).last = ts
                self._remember(h, raw, klen, entry)
                c[C_DONE] += 1
                return False
            if plen == 0 and not (flags & (FIN | RST)):
                c[C_NOPAY] += 1
                return False
            if found is NULL:
                if plen == 0 or not _tls_start(f + ps, plen):
                    c[C_UNTRACKED] += 1
                    return False
                flows[key] = None           # pending: the flow table creates it
            elif plen and not (flags & (FIN | RST)) and self.skip:
                sk = self.skip.get(key)
                if sk is not None:
                    stop = (<Skip?>sk).lo if from_lo else (<Skip?>sk).hi
                    self._remember(h, raw, klen, sk)
                    if stop >= 0 and ((<uint32_t>stop - seq - <uint32_t>plen)
                                      & 0xFFFFFFFFu) < 0x80000000u:
                        c[C_SKIPENC] += 1
                        return False
        if truncated:
            c[C_TRUNC_LATE] += 1
        c[C_EMITTED] += 1
        self.ts = ts
        self.key = key
        self.entry = entry
        self.from_lo = from_lo
        self.flags = flags
        self.seq = seq
        self.truncated = truncated
        self.payload = PyBytes_FromStringAndSize(<const char*>(f + ps), plen) if plen else b""
        return True

    # -- the reference API: segment tuples --------------------------------------------------------
    def _segment(self):
        return (self.ts, self.key, self.from_lo, self.flags, self.seq, self.payload,
                self.truncated)

    def decode_batch(self, buf, meta):
        """See ``cext._wire_py.PacketDecoder.decode_batch``."""
        out = []
        self.begin_batch(buf, meta)
        while self.next():
            out.append(self._segment())
        return out

    def decode(self, double ts, const uint8_t[::1] frame):
        """See ``cext._wire_py.PacketDecoder.decode``."""
        self.begin_frame(ts, frame)
        return self._segment() if self.next() else None


cdef inline bint _tls_start(const uint8_t* p, Py_ssize_t n) noexcept nogil:
    if n < 3:
        return False
    if (p[0] == 0x16 or p[0] == 0x15) and p[1] == 3:
        return True
    return (p[0] & 0x80) != 0 and p[2] == 1


# ------------------------------------------------------------------------------------------
# Hello parsing: one bounds-checked vector reader, status codes
# ------------------------------------------------------------------------------------------

cdef inline int _vec(const uint8_t* b, Py_ssize_t pos, Py_ssize_t end, int lbytes,
                     Py_ssize_t* s, Py_ssize_t* e) noexcept nogil:
    """(start, stop) of the vector with an ``lbytes`` length prefix at ``pos``; 0 or
    E_VECTOR_OVERRUN."""
    cdef Py_ssize_t ln
    if pos + lbytes > end:
        return E_VECTOR_OVERRUN
    if lbytes == 1:
        ln = b[pos]
    elif lbytes == 2:
        ln = (b[pos] << 8) | b[pos + 1]
    else:
        ln = (b[pos] << 16) | (b[pos + 1] << 8) | b[pos + 2]
    s[0] = pos + lbytes
    if s[0] + ln > end:
        return E_VECTOR_OVERRUN
    e[0] = s[0] + ln
    return 0


cdef tuple _u16_tuple(const uint8_t* b, Py_ssize_t s, Py_ssize_t e):
    cdef Py_ssize_t i, n = (e - s) >> 1
    return tuple([(b[s + 2 * i] << 8) | b[s + 2 * i + 1] for i in range(n)])


cdef str _text(const uint8_t* b, Py_ssize_t s, Py_ssize_t e):
    return PyBytes_FromStringAndSize(<const char*>(b + s), e - s).decode("ascii",
                                                                         "backslashreplace")


cdef int _alpn_check(const uint8_t* b, Py_ssize_t s0, Py_ssize_t e0, list out) except -2:
    """Walk an ALPN extension body (RFC 7301 3.1); with ``out``, append the names."""
    cdef Py_ssize_t s, e, ps, pe
    cdef int st = _vec(b, s0, e0, 2, &s, &e)
    if st:
        return st
    while s < e:
        st = _vec(b, s, e, 1, &ps, &pe)
        if st:
            return st
        if out is not None:
            # issue 15: a literal backslash is written \x5c, so that every \xNN of the text is
            # one wire byte and JA4's hex rule reads the exact bytes back (cext/ja4.py)
            if memchr(b + ps, 0x5C, pe - ps) != NULL:
                out.append(PyBytes_FromStringAndSize(<const char*>(b + ps), pe - ps).replace(
                    b"\\", b"\\x5c").decode("ascii", "backslashreplace"))
            else:
                out.append(_text(b, ps, pe))
        s = pe
    return 0


# the offer key: what a ClientHello offers apart from its extension order, GREASE and
# per-connection values (random, session id, SNI, key share bytes, PSK identities), as bytes
# (cext._session_py.offer_from_key reads it back): equal keys, equal offers
cdef enum:
    KEY_MAX = 4096
    EXT_MAX = 512

cdef struct _Key:
    uint8_t b[KEY_MAX]
    Py_ssize_t n
    bint ok

cdef inline void _k8(_Key* k, unsigned int v) noexcept nogil:
    if k.n + 1 > KEY_MAX:
        k.ok = False
        return
    k.b[k.n] = v & 0xFF
    k.n += 1

cdef inline void _k16(_Key* k, unsigned int v) noexcept nogil:
    if k.n + 2 > KEY_MAX:
        k.ok = False
        return
    k.b[k.n] = (v >> 8) & 0xFF
    k.b[k.n + 1] = v & 0xFF
    k.n += 2

cdef void _k_u16s(_Key* k, const uint8_t* b, Py_ssize_t s, Py_ssize_t e, bint strip) noexcept nogil:
    """count (2 bytes) + the 16-bit values of b[s:e] (GREASE removed with ``strip``)."""
    cdef Py_ssize_t i, at = k.n
    cdef unsigned int v, cnt = 0
    _k16(k, 0)
    i = s
    while i + 1 < e:
        v = (b[i] << 8) | b[i + 1]
        if not (strip and _grease(v)):
            _k16(k, v)
            cnt += 1
        i += 2
    if k.ok:
        k.b[at] = (cnt >> 8) & 0xFF
        k.b[at + 1] = cnt & 0xFF

cdef int _cmp_u16(const void* a, const void* b) noexcept nogil:
    return (<const unsigned short*>a)[0] - (<const unsigned short*>b)[0]


cdef object _parse_ch(const uint8_t* b, Py_ssize_t end, bint full, int* status):
    """RFC 8446 4.1.2 ClientHello at b[0:end].  ``full``: the 14-field tuple of
    ``parse_client_hello``; else the offer form of ``parse_client_hello_key``.  None with
    ``status`` set on a malformed message (the same checks either way)."""
    cdef Py_ssize_t s, e, xe, ds, de, ls, le, ns, ne, gs, ge, ks, ke, t1, t2
    cdef Py_ssize_t sid_s, sid_e, su_s, su_e
    cdef Py_ssize_t grp_s = 0, grp_e = 0, sig_s = 0, sig_e = 0, ver_s = 0, ver_e = 0
    cdef Py_ssize_t alpn_s = -1, alpn_e = -1
    cdef unsigned int et, legacy_version
    cdef int st
    cdef unsigned short ext_types[EXT_MAX]
    cdef unsigned short share_groups[EXT_MAX]
    cdef Py_ssize_t n_ext = 0, n_share = 0
    cdef bint psk = False
    cdef Py_ssize_t ticket = -1
    cdef _Key key
    cdef Py_ssize_t i
    status[0] = 0
    if end < 38:
        status[0] = E_VECTOR_OVERRUN
        return None
    legacy_version = (b[0] << 8) | b[1]
    st = _vec(b, 34, end, 1, &sid_s, &sid_e)
    if st:
        status[0] = st
        return None
    st = _vec(b, sid_e, end, 2, &su_s, &su_e)
    if st or (su_e - su_s) & 1:
        status[0] = E_VECTOR_OVERRUN
        return None
    st = _vec(b, su_e, end, 1, &s, &e)
    if st:
        status[0] = st
        return None
    cdef Py_ssize_t comp_s = s, comp_e = e
    cdef list exts = []
    sni = None
    cdef list alpn_names = [] if full else None
    cdef list shares = [] if full else None
    alpn = ()
    groups = ()
    formats = ()
    sigalgs = ()
    versions = ()
    if e < end:
        st = _vec(b, e, end, 2, &s, &xe)
        if st:
            status[0] = st
            return None
        while s < xe:
            if s + 4 > xe:
                status[0] = E_VECTOR_OVERRUN
                return None
            et = (b[s] << 8) | b[s + 1]
            st = _vec(b, s + 2, xe, 2, &ds, &de)
            if st:
                status[0] = st
                return None
            if full:
                exts.append(et)
            else:
                if not _grease(et):
                    exts.append(et)
                    if n_ext < EXT_MAX:
                        ext_types[n_ext] = et
                    n_ext += 1
            if et == 0:
                st = _vec(b, ds, de, 2, &ls, &le)
                if st:
                    status[0] = st
                    return None
                while ls < le:
                    if ls + 1 > le:
                        status[0] = E_VECTOR_OVERRUN
                        return None
                    st = _vec(b, ls + 1, le, 2, &ns, &ne)
                    if st:
                        status[0] = st
                        return None
                    if b[ls] == 0 and sni is None:
                        sni = _text(b, ns, ne)
                    ls = ne
            elif et == 16:
                if full:
                    del alpn_names[:]
                st = _alpn_check(b, ds, de, alpn_names)
                if st:
                    status[0] = st
                    return None
                if full:
                    alpn = tuple(alpn_names)
                alpn_s, alpn_e = ds, de
            elif et == 10 or et == 13:
                st = _vec(b, ds, de, 2, &gs, &ge)
                if st or (ge - gs) & 1:
                    status[0] = E_VECTOR_OVERRUN
                    return None
                if et == 10:
                    grp_s, grp_e = gs, ge
                    if full:
                        groups = _u16_tuple(b, gs, ge)
                else:
                    sig_s, sig_e = gs, ge
                    if full:
                        sigalgs = _u16_tuple(b, gs, ge)
            elif et == 11:
                st = _vec(b, ds, de, 1, &gs, &ge)
                if st:
                    status[0] = st
                    return None
                if full:
                    formats = tuple([b[i] for i in range(gs, ge)])
            elif et == 43:
                st = _vec(b, ds, de, 1, &gs, &ge)
                if st or (ge - gs) & 1:
                    status[0] = E_VECTOR_OVERRUN
                    return None
                ver_s, ver_e = gs, ge
                if full:
                    versions = _u16_tuple(b, gs, ge)
            elif et == 51 or et == 40:
                st = _vec(b, ds, de, 2, &ks, &ke)
                if st:
                    status[0] = st
                    return None
                while ks < ke:
                    if ks + 2 > ke:
                        status[0] = E_VECTOR_OVERRUN
                        return None
                    if full:
                        shares.append((b[ks] << 8) | b[ks + 1])
                    else:
                        if n_share < EXT_MAX:
                            share_groups[n_share] = (b[ks] << 8) | b[ks + 1]
                        n_share += 1
                    st = _vec(b, ks + 2, ke, 2, &t1, &t2)
                    if st:
                        status[0] = st
                        return None
                    ks = t2
            elif et == 41:
                psk = True
            elif et == 35:
                ticket = de - ds
            s = de
    if full:
        return (legacy_version, PyBytes_FromStringAndSize(<const char*>(b + sid_s), sid_e - sid_s),
                _u16_tuple(b, su_s, su_e), tuple([b[i] for i in range(comp_s, comp_e)]),
                tuple(exts), sni, alpn, groups, formats, sigalgs, versions, tuple(shares), psk,
                ticket)
    # the offer key
    key.n = 0
    key.ok = n_ext <= EXT_MAX and n_share <= EXT_MAX
    _k16(&key, legacy_version)
    _k8(&key, psk or ticket > 0)
    _k_u16s(&key, b, su_s, su_e, True)
    if key.ok:
        qsort(ext_types, n_ext, sizeof(unsigned short), _cmp_u16)
        _k16(&key, n_ext)
        for i in range(n_ext):
            _k16(&key, ext_types[i])
    _k_u16s(&key, b, grp_s, grp_e, True)
    _k_u16s(&key, b, sig_s, sig_e, False)
    _k_u16s(&key, b, ver_s, ver_e, True)
    cdef Py_ssize_t at = key.n
    cdef unsigned int cnt = 0
    _k16(&key, 0)
    for i in range(min(n_share, EXT_MAX)):
        if not _grease(share_groups[i]):
            _k16(&key, share_groups[i])
            cnt += 1
    if key.ok:
        key.b[at] = (cnt >> 8) & 0xFF
        key.b[at + 1] = cnt & 0xFF
    if alpn_s < 0:
        _k8(&key, 0)
    else:
        _k8(&key, 1)
        _k16(&key, alpn_e - alpn_s)
        if key.ok and key.n + (alpn_e - alpn_s) <= KEY_MAX:
            memcpy(&key.b[key.n], b + alpn_s, alpn_e - alpn_s)
            key.n += alpn_e - alpn_s
        else:
            key.ok = False
    return (legacy_version, PyBytes_FromStringAndSize(<const char*>(b + sid_s), sid_e - sid_s),
            sni, tuple(exts),
            PyBytes_FromStringAndSize(<const char*>key.b, key.n) if key.ok else None)


cdef object _parse_sh(const uint8_t* b, Py_ssize_t end, int* status):
    cdef Py_ssize_t s, e, xe, ds, de
    cdef unsigned int et, legacy_version
    cdef int st
    status[0] = 0
    if end < 34:
        status[0] = E_VECTOR_OVERRUN
        return None
    legacy_version = (b[0] << 8) | b[1]
    is_hrr = memcmp(b + 2, HRR, 32) == 0
    selected = -1
    if (legacy_version >> 8) == 0x7F and (legacy_version & 0xFF) < 22:
        session_id = b""
        if end < 36:
            status[0] = E_VECTOR_OVERRUN
            return None
        suite = (b[34] << 8) | b[35]
        compression = 0
        e = 36
        selected = legacy_version
    else:
        st = _vec(b, 34, end, 1, &s, &e)
        if st:
            status[0] = st
            return None
        session_id = PyBytes_FromStringAndSize(<const char*>(b + s), e - s)
        if e + 3 > end:
            status[0] = E_VECTOR_OVERRUN
            return None
        suite = (b[e] << 8) | b[e + 1]
        compression = b[e + 2]
        e += 3
    cdef list exts = []
    cdef list names
    group = -1
    alpn = None
    psk = False
    if e < end:
        st = _vec(b, e, end, 2, &s, &xe)
        if st:
            status[0] = st
            return None
        while s < xe:
            if s + 4 > xe:
                status[0] = E_VECTOR_OVERRUN
                return None
            et = (b[s] << 8) | b[s + 1]
            st = _vec(b, s + 2, xe, 2, &ds, &de)
            if st:
                status[0] = st
                return None
            exts.append(et)
            if et == 43:
                if de - ds < 2:
                    status[0] = E_VECTOR_OVERRUN
                    return None
                selected = (b[ds] << 8) | b[ds + 1]
            elif et == 51 or et == 40:
                if de - ds < 2:
                    status[0] = E_VECTOR_OVERRUN
                    return None
                group = (b[ds] << 8) | b[ds + 1]
            elif et == 16:
                names = []
                st = _alpn_check(b, ds, de, names)
                if st:
                    status[0] = st
                    return None
                alpn = names[0] if names else None
            elif et == 41:
                psk = True
            s = de
    return (legacy_version, session_id, suite, compression, tuple(exts), selected, group,
            alpn, psk, is_hrr)


cdef object _parse_cert(const uint8_t* b, Py_ssize_t end, bint tls13, int* status):
    cdef Py_ssize_t pos = 0, s, e, cs, ce, t1, t2
    cdef int st
    cdef bint more = False
    cdef list out = []
    status[0] = 0
    if end == 0:
        status[0] = E_VECTOR_OVERRUN
        return None
    if tls13:
        st = _vec(b, 0, end, 1, &t1, &t2)
        if st:
            status[0] = st
            return None
        pos = t2
    st = _vec(b, pos, end, 3, &s, &e)
    if st:
        status[0] = st
        return None
    while s < e:
        st = _vec(b, s, e, 3, &cs, &ce)
        if st:
            status[0] = st
            return None
        if PyList_GET_SIZE(out) < MAX_CERTIFICATES:
            out.append(PyBytes_FromStringAndSize(<const char*>(b + cs), ce - cs))
        else:
            more = True
        s = ce
        if tls13:
            st = _vec(b, s, e, 2, &t1, &t2)
            if st:
                status[0] = st
                return None
            s = t2
    if more:
        status[0] = E_TOO_MANY_CERTIFICATES     # a notice: the first MAX_CERTIFICATES read
    return tuple(out)


cdef inline const uint8_t* _range(bytes data, Py_ssize_t start, Py_ssize_t end, int* status):
    """The bytes data[start:end] as a pointer (E_VECTOR_OVERRUN for a range outside it)."""
    if start < 0 or end < start or end > PyBytes_GET_SIZE(data):
        status[0] = E_VECTOR_OVERRUN
        return NULL
    return <const uint8_t*>PyBytes_AS_STRING(data) + start


cdef class Wire:
    """See ``cext._wire_py.Wire``."""

    cdef object client_hello(self, bytes data, Py_ssize_t start, Py_ssize_t end):
        cdef int st = 0
        cdef const uint8_t* b = _range(data, start, end, &st)
        r = _parse_ch(b, end - start, True, &st) if b is not NULL else None
        self.status = st
        return r

    cdef object client_hello_key(self, bytes data, Py_ssize_t start, Py_ssize_t end):
        cdef int st = 0
        cdef const uint8_t* b = _range(data, start, end, &st)
        r = _parse_ch(b, end - start, False, &st) if b is not NULL else None
        self.status = st
        return r

    cdef object server_hello(self, bytes data, Py_ssize_t start, Py_ssize_t end):
        cdef int st = 0
        cdef const uint8_t* b = _range(data, start, end, &st)
        r = _parse_sh(b, end - start, &st) if b is not NULL else None
        self.status = st
        return r

    cdef object certificate(self, bytes data, Py_ssize_t start, Py_ssize_t end, bint tls13):
        cdef int st = 0
        cdef const uint8_t* b = _range(data, start, end, &st)
        r = _parse_cert(b, end - start, tls13, &st) if b is not NULL else None
        self.status = st
        return r

    cpdef str connection_id(self, double start, str client, str server):
        return connection_id(start, client, server)

    cpdef str endpoint_text(self, bytes raw):
        return endpoint_text(raw)


def endpoint_text(bytes raw):
    """See ``cext._wire_py.endpoint_text``."""
    cdef Py_ssize_t n = PyBytes_GET_SIZE(raw), k = 0
    cdef const uint8_t* b = <const uint8_t*>PyBytes_AS_STRING(raw)
    cdef char buf[32]
    cdef int i
    if n != 6:
        return _endpoint_text_py(raw)
    for i in range(4):
        k += _put_dec(buf + k, b[i])
        buf[k] = 46 if i < 3 else 58     # "." / ":"
        k += 1
    k += _put_dec(buf + k, (b[4] << 8) | b[5])
    return buf[:k].decode("ascii")


# -- the def API (tests, the fuzz target): raise the status as the error family ----------------

def parse_client_hello(body):
    """See ``cext._wire_py.parse_client_hello``."""
    cdef bytes data = bytes(body)
    cdef int st = 0
    r = _parse_ch(<const uint8_t*>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), True, &st)
    if st:
        raise error(st)
    return r


def parse_client_hello_key(body):
    """See ``cext._wire_py.parse_client_hello_key``."""
    cdef bytes data = bytes(body)
    cdef int st = 0
    r = _parse_ch(<const uint8_t*>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), False, &st)
    if st:
        raise error(st)
    return r


def parse_server_hello(body):
    """See ``cext._wire_py.parse_server_hello``."""
    cdef bytes data = bytes(body)
    cdef int st = 0
    r = _parse_sh(<const uint8_t*>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), &st)
    if st:
        raise error(st)
    return r


def parse_certificate(body, bint tls13):
    """See ``cext._wire_py.parse_certificate``."""
    cdef bytes data = bytes(body)
    cdef int st = 0
    r = _parse_cert(<const uint8_t*>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), tls13, &st)
    if r is None:
        raise error(st)
    return list(r)


# ------------------------------------------------------------------------------------------
# the connection id: BLAKE2s (RFC 7693), 8-byte digest, of "%d|%s|%s" % (us, client, server)
# ------------------------------------------------------------------------------------------

cdef uint32_t B2S_IV[8]
B2S_IV[:] = [0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C,
             0x1F83D9AB, 0x5BE0CD19]
cdef uint8_t B2S_SIGMA[10][16]
B2S_SIGMA[0][:] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]
B2S_SIGMA[1][:] = [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3]
B2S_SIGMA[2][:] = [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4]
B2S_SIGMA[3][:] = [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8]
B2S_SIGMA[4][:] = [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13]
B2S_SIGMA[5][:] = [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9]
B2S_SIGMA[6][:] = [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11]
B2S_SIGMA[7][:] = [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10]
B2S_SIGMA[8][:] = [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5]
B2S_SIGMA[9][:] = [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0]


cdef inline uint32_t _rotr(uint32_t x, int n) noexcept nogil:
    return (x >> n) | (x << (32 - n))


cdef void _b2s_compress(uint32_t* h, const uint8_t* block, uint64_t t, bint last) noexcept nogil:
    cdef uint32_t v[16]
    cdef uint32_t m[16]
    cdef int i, r
    cdef const uint8_t* s
    for i in range(16):
        m[i] = _le32(block + 4 * i)
    for i in range(8):
        v[i] = h[i]
        v[i + 8] = B2S_IV[i]
    v[12] ^= <uint32_t>t
    v[13] ^= <uint32_t>(t >> 32)
    if last:
        v[14] = ~v[14]
    for r in range(10):
        s = B2S_SIGMA[r]
        _g(v, 0, 4, 8, 12, m[s[0]], m[s[1]])
        _g(v, 1, 5, 9, 13, m[s[2]], m[s[3]])
        _g(v, 2, 6, 10, 14, m[s[4]], m[s[5]])
        _g(v, 3, 7, 11, 15, m[s[6]], m[s[7]])
        _g(v, 0, 5, 10, 15, m[s[8]], m[s[9]])
        _g(v, 1, 6, 11, 12, m[s[10]], m[s[11]])
        _g(v, 2, 7, 8, 13, m[s[12]], m[s[13]])
        _g(v, 3, 4, 9, 14, m[s[14]], m[s[15]])
    for i in range(8):
        h[i] ^= v[i] ^ v[i + 8]


cdef inline void _g(uint32_t* v, int a, int b, int c, int d, uint32_t x, uint32_t y) noexcept nogil:
    v[a] = v[a] + v[b] + x
    v[d] = _rotr(v[d] ^ v[a], 16)
    v[c] = v[c] + v[d]
    v[b] = _rotr(v[b] ^ v[c], 12)
    v[a] = v[a] + v[b] + y
    v[d] = _rotr(v[d] ^ v[a], 8)
    v[c] = v[c] + v[d]
    v[b] = _rotr(v[b] ^ v[c], 7)


cdef str _b2s8_hex(const uint8_t* data, Py_ssize_t n):
    cdef uint32_t h[8]
    cdef uint8_t block[64]
    cdef int i
    cdef uint64_t t = 0
    cdef char out[16]
    cdef const char* hexd = b"0123456789abcdef"
    cdef uint8_t byte
    for i in range(8):
        h[i] = B2S_IV[i]
    h[0] ^= 0x01010000 ^ 8               # no key, 8-byte digest
    while n > 64:
        t += 64
        _b2s_compress(h, data, t, False)
        data += 64
        n -= 64
    memset(block, 0, 64)
    memcpy(block, data, n)
    t += n
    _b2s_compress(h, block, t, True)
    for i in range(8):
        byte = (h[i >> 2] >> (8 * (i & 3))) & 0xFF
        out[2 * i] = hexd[byte >> 4]
        out[2 * i + 1] = hexd[byte & 15]
    return out[:16].decode("ascii")


cdef int _put_dec(char* p, long long v) noexcept nogil:
    """Decimal digits of v >= 0 at p; returns their count."""
    cdef char tmp[24]
    cdef int n = 0, i
    if v == 0:
        p[0] = 48
        return 1
    while v:
        tmp[n] = 48 + v % 10
        v //= 10
        n += 1
    for i in range(n):
        p[i] = tmp[n - 1 - i]
    return n


def connection_id(double start, str client, str server):
    """See ``cext._wire_py.connection_id``."""
    cdef double us = rint(start * 1000000.0)        # round half to even, as round() does
    cdef Py_ssize_t cn, sn
    cdef const char* cs
    cdef const char* ss
    cdef char buf[512]
    cdef Py_ssize_t n
    if not (us < 9.0e15) or us < 0:             # (integers exact in a double)
        return _connection_id_py(start, client, server)
    cs = PyUnicode_AsUTF8AndSize(client, &cn)
    ss = PyUnicode_AsUTF8AndSize(server, &sn)
    if cn + sn + 24 > 512:
        return _connection_id_py(start, client, server)
    n = _put_dec(buf, <long long>us)
    buf[n] = 124                        # "|"
    memcpy(buf + n + 1, cs, cn)
    n += 1 + cn
    buf[n] = 124
    memcpy(buf + n + 1, ss, sn)
    n += 1 + sn
    return _b2s8_hex(<const uint8_t*>buf, n)


def key_hash(const uint8_t[::1] key):
    """See ``cext._wire_py.key_hash``."""
    cdef Py_ssize_t n = key.shape[0], alen = n // 2 - 2
    if n != 12 and n != 36:
        raise ValueError("a canonical key is 12 or 36 bytes")
    if alen == 4:
        return _mix(((<uint64_t>_u32(&key[0]) << 16) | _u16(&key[4])) * KEY_MUL
                    + ((<uint64_t>_u32(&key[6]) << 16) | _u16(&key[10])))
    return _mix(_fold6(&key[0], &key[16], &key[18], &key[34]))


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


# -- the --jobs merge (sensor.pipeline): ordered results of several parts, written in order -----

#: the order keys of a part's results: flat (major, minor, created) int64 triples
#: (cext._flows_py: FlowTable.keys), in order
cdef int64_t _KEY_MAX = 0x7FFFFFFFFFFFFFFF


def keys_below(const int64_t[::1] keys, low):
    """See ``cext._wire_py.keys_below``."""
    cdef Py_ssize_t lo = 0, hi = keys.shape[0] // 3, mid
    if low >= _KEY_MAX:                 # (every key is: the majors are at most 2**62)
        return hi
    cdef int64_t bound = low
    while lo < hi:
        mid = (lo + hi) >> 1
        if keys[3 * mid] < bound:
            lo = mid + 1
        else:
            hi = mid
    return lo


cdef inline bint _key_lt(const int64_t* a, const int64_t* b) noexcept nogil:
    if a[0] != b[0]:
        return a[0] < b[0]
    if a[1] != b[1]:
        return a[1] < b[1]
    return a[2] < b[2]


cdef Py_ssize_t _write_iov(int fd, iovec* iov, int cnt, object wait) except -1:
    """All of ``iov[:cnt]`` to ``fd``: a short write goes on from where it stopped; a full
    non-blocking ``fd`` is waited on by ``wait(fd)`` (None: BlockingIOError)."""
    cdef Py_ssize_t total = 0, n
    while cnt > 0:
        with nogil:
            n = writev(fd, iov, cnt)
        if n < 0:
            if errno == EAGAIN and wait is not None:    # (Linux: EWOULDBLOCK too)
                wait(fd)
                continue
            if errno == EINTR:
                if PyErr_CheckSignals() < 0:
                    return -1
                continue
            PyErr_SetFromErrno(OSError)
            return -1
        total += n
        while cnt > 0 and <size_t>n >= iov[0].iov_len:
            n -= iov[0].iov_len
            iov += 1
            cnt -= 1
        if cnt > 0:
            iov[0].iov_base = <char*>iov[0].iov_base + n
            iov[0].iov_len -= n
    return total


cdef enum:
    _MERGE_MAX_PARTS = 256
    _IOV_BATCH = 1024


def write_merged(int fd, list parts, wait=None):
    """See ``cext._wire_py.write_merged``."""
    cdef Py_ssize_t k = len(parts), i, j, n, best, total = 0, cnt = 0
    cdef size_t ln
    if k > _MERGE_MAX_PARTS:
        raise ValueError("at most %d parts" % _MERGE_MAX_PARTS)
    cdef const int64_t* keys[_MERGE_MAX_PARTS]
    cdef const uint64_t* lens[_MERGE_MAX_PARTS]
    cdef const uint8_t* data[_MERGE_MAX_PARTS]
    cdef PyObject* items[_MERGE_MAX_PARTS]
    cdef Py_ssize_t taken[_MERGE_MAX_PARTS]
    cdef Py_ssize_t count[_MERGE_MAX_PARTS]
    cdef size_t at[_MERGE_MAX_PARTS]
    cdef size_t size[_MERGE_MAX_PARTS]
    cdef const int64_t[::1] kv
    cdef const uint64_t[::1] lv
    cdef const uint8_t[::1] dv
    cdef list held = []                 # (the views whose pointers are above: kept alive)
    cdef iovec iov[_IOV_BATCH]
    cdef object item
    cdef int last = -1
    for i in range(k):
        part_keys, n, part_items, part_data, part_lens = parts[i]
        count[i] = n
        taken[i] = 0
        at[i] = 0
        items[i] = NULL
        if n < 0:
            raise ValueError("a negative count")
        if n == 0:
            continue
        kv = part_keys
        if kv.shape[0] < 3 * n:
            raise ValueError("fewer keys than the count")
        keys[i] = &kv[0]
        held.append(kv)
        if part_items is not None:
            if type(part_items) is not list or PyList_GET_SIZE(part_items) < n:
                raise ValueError("fewer items than the count")
            for j in range(n):
                if type((<list>part_items)[j]) is not bytes:
                    raise TypeError("an item that is not bytes")
            items[i] = <PyObject*>part_items
            held.append(part_items)
        else:
            lv = part_lens
            if lv.shape[0] < n:
                raise ValueError("fewer lengths than the count")
            lens[i] = &lv[0]
            held.append(lv)
            size[i] = 0
            for j in range(n):
                size[i] += lv[j]
            if size[i]:
                dv = part_data
                if <size_t>dv.shape[0] < size[i]:
                    raise ValueError("less data than the lengths")
                data[i] = &dv[0]
                held.append(dv)
    while True:
        best = -1
        for i in range(k):
            if taken[i] < count[i] and (best < 0 or _key_lt(keys[i] + 3 * taken[i],
                                                              keys[best] + 3 * taken[best])):
                best = i
        if best < 0:
            break
        if items[best] is not NULL:
            item = (<list>items[best])[taken[best]]
            if cnt == _IOV_BATCH:
                total += _write_iov(fd, iov, cnt, wait)
                cnt = 0
            iov[cnt].iov_base = PyBytes_AS_STRING(item)
            iov[cnt].iov_len = PyBytes_GET_SIZE(item)
            cnt += 1
            last = -1
        else:
            ln = lens[best][taken[best]]
            if last == best and ln:         # (right after the last one in its data)
                iov[cnt - 1].iov_len += ln
            elif ln:
                if cnt == _IOV_BATCH:
                    total += _write_iov(fd, iov, cnt, wait)
                    cnt = 0
                iov[cnt].iov_base = <void*>(data[best] + at[best])
                iov[cnt].iov_len = ln
                cnt += 1
                last = best
            at[best] += ln
        taken[best] += 1
    if cnt:
        total += _write_iov(fd, iov, cnt, wait)
    return total


def copy_into(uint8_t[::1] dest, Py_ssize_t at, Py_ssize_t room, list items not None,
              Py_ssize_t start):
    """See ``cext._wire_py.copy_into``."""
    cdef Py_ssize_t j, stop, n, total = 0, count = PyList_GET_SIZE(items)
    cdef object item
    if not 0 <= start <= count or not 0 <= at <= dest.shape[0] or room < 0:
        raise ValueError("a start, offset or room outside the items or the buffer")
    if room > dest.shape[0] - at:
        room = dest.shape[0] - at
    stop = start
    while stop < count:
        item = items[stop]
        if type(item) is not bytes:
            raise TypeError("an item that is not bytes")
        n = PyBytes_GET_SIZE(item)
        if total + n > room:
            break
        total += n
        stop += 1
    for j in range(start, stop):
        item = items[j]
        n = PyBytes_GET_SIZE(item)
        if n:
            memcpy(&dest[at], PyBytes_AS_STRING(item), n)
            at += n
    return stop, at


cdef const uint8_t* _count_at(const uint8_t[::1] buf) except NULL:
    if buf.shape[0] < 8 or (<size_t>&buf[0]) % 8:
        raise ValueError("a shared count takes 8 bytes, 8-aligned")
    return &buf[0]


def shared_count(const uint8_t[::1] buf):
    """See ``cext._wire_py.shared_count``."""
    return TLSDIAG_LOAD_U64(_count_at(buf))


def set_shared_count(uint8_t[::1] buf, uint64_t value):
    """See ``cext._wire_py.set_shared_count``."""
    TLSDIAG_STORE_U64(<void*>_count_at(buf), value)
