# The C-level interface of the compiled wire module (cext/_wire.pyx): what the compiled engine
# modules (_tls, _session, _flows, built from their .py twins) call without going through
# Python.  The pure-Python twin cext/_wire_py.py has the same classes, fields and methods.
#
# Status codes: 0 success, -n the n-th reason of cext.errors.CODES (the one mapping).
from cpython.ref cimport PyObject
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t

# (one module per cimport line: cythonize's dependency scan reads this form)
cimport cext._encap as _encap          # issue 15: tunnels (cext/_encap_py.py)

# decoder counter indices, in the order of COUNTER_NAMES (_wire_py.py numbers them the same
# way); C_TRUNC_LATE is the part of "truncated" counted after the --jobs partition decision
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
    C_TRUNC_LATE
    N_COUNTERS


cdef class Done:
    """A finished connection's entry in the flow table's dict."""
    cdef public double last
    cdef public double finished
    cdef public bint alive


cdef class Skip:
    """The flow table's skip[key]: ciphertext to drop, per direction."""
    cdef public long long lo, hi
    cdef public bint alive


# the decoder's memory of recent Done and Skip entries, by the raw key bytes
cdef struct _Slot:
    uint8_t key[36]
    int klen
    PyObject* obj


cdef class PacketDecoder:
    cdef public int linktype
    cdef public dict flows
    cdef public dict skip
    cdef long long c[N_COUNTERS]
    cdef public int share_lo, share_hi   # --jobs: the share of the key hashes kept
    # the segment next() produced
    cdef public double ts
    cdef public bytes key
    cdef public bytes payload
    cdef public object entry
    cdef public bint from_lo, truncated
    cdef public int flags
    cdef public uint32_t seq
    # the largest time of the frames of the current batch, all of them (any partition)
    cdef public double batch_max_ts
    # the frame source
    cdef const uint8_t[::1] _buf
    cdef const uint8_t[::1] _meta
    cdef Py_ssize_t _i, _n, _blen
    cdef int _mode
    cdef Py_ssize_t _pos, _end, _left
    cdef bint _swap, _nsec, _eof
    cdef uint32_t _snap
    # pcapng: each interface's time stamp resolution (a power of 10), offset (seconds), and
    # what its fraction is multiplied or divided by to make microseconds (1: neither)
    cdef int _ng_n
    cdef uint64_t _ng_res[16]
    cdef int64_t _ng_off[16]
    cdef uint64_t _ng_mul[16]
    cdef uint64_t _ng_div[16]
    cdef public Py_ssize_t frames
    cdef readonly _encap.Decapsulator encap     # issue 15: tunnels
    cdef _Slot* _cache

    cpdef int next(self) except -2
    # 1 for an Enhanced Packet Block the walk reads, 0 for a block it skips (as libpcap
    # does), -1 for one libpcap reads differently or that changes the section
    cdef int _ng_block(self, const uint8_t* b, Py_ssize_t size) noexcept
    cdef bint _decode(self, double ts, const uint8_t* f, Py_ssize_t n) except -1
    cdef void _remember(self, uint32_t h, const uint8_t* raw, int klen, object obj)


cdef class Wire:
    cdef public int status
    cdef object client_hello(self, bytes data, Py_ssize_t start, Py_ssize_t end)
    cdef object client_hello_key(self, bytes data, Py_ssize_t start, Py_ssize_t end)
    cdef object server_hello(self, bytes data, Py_ssize_t start, Py_ssize_t end)
    cdef object certificate(self, bytes data, Py_ssize_t start, Py_ssize_t end, bint tls13)
    cpdef str connection_id(self, double start, str client, str server)
    cpdef str endpoint_text(self, bytes raw)
