# Static types for the compiled flow table (cext._flows, built from _flows_py.py, the twin;
# named after the compiled module, see _tls.pxd).  The reader, the session and the wire
# parser are held as the compiled C types: a compiled table works with the compiled engine
# only, and calls them (and its decoder, and the reader its session) in C.
cimport cython
from libc.stdint cimport uint32_t
# (one module per cimport line: cythonize's dependency scan reads this form)
cimport cext._session as _session
cimport cext._tls as _tls
cimport cext._wire as _wire


cdef long long MASK, HALF, RST_WINDOW
cdef int FIN, SYN, RST, ACK
cdef Py_ssize_t SKIP_MIN, MAX_PLAINTEXT, MAX_BUFFERED


# (nseq, has_seq, ooo_bytes are C arrays: change them through a variable typed Flow -- an
# untyped one reads a copy)
@cython.final
cdef class Flow:
    cdef public bytes key
    cdef public bint client_lo
    cdef public uint32_t nseq[2]
    cdef public bint has_seq[2]
    cdef public uint32_t isn
    cdef public bint has_isn
    cdef public object ooo
    cdef public Py_ssize_t ooo_bytes[2]
    cdef public _tls.TLSConnection conn
    cdef public _session.Session session
    cdef public double last, first, reset_at
    cdef public Py_ssize_t serial, created, held

    @cython.locals(half=Py_ssize_t)
    cpdef tuple endpoints(self)


@cython.final
cdef class FlowTable:
    cdef public dict flows, skip, stats, reasons
    cdef public Py_ssize_t live, ndone, _serial
    cdef public object _flow_order, _done_order, _next_expiry, _out
    cdef readonly _wire.Wire wire
    cdef readonly object _done_type, _skip_type, _new_connection, _new_session
    cdef readonly _session.Caches caches
    cdef public Py_ssize_t max_flows, max_ooo_bytes, max_ooo_segments, max_done
    cdef public Py_ssize_t max_handshake, skip_min, max_buffered, buffered
    cdef public double idle_timeout, close_linger, now, _max_ts
    cdef public Py_ssize_t frame
    cdef public list keys
    cdef public tuple _key

    @cython.locals(dec=_wire.PacketDecoder)
    cpdef list decoded(self, dec)
    @cython.locals(flow=Flow, sess=_session.Session, conn=_tls.TLSConnection, d=int, n=Py_ssize_t,
                   status=int)
    cpdef _segment(self, entry, double ts, bytes key, bint from_lo, int flags, uint32_t seq,
                   bytes payload, bint truncated)
    cpdef list end_batch(self)
    cpdef list _current(self)
    @cython.locals(wire=_wire.Wire)
    cpdef _finish(self, Flow flow, reason, list out)
    cdef _reassemble(self, Flow flow, int d, uint32_t seq, bytes data, double ts)
    cdef _deliver(self, Flow flow, int d, bytes data, double ts)
    cdef _drain(self, Flow flow, int d, double ts)
    cdef _skip_hole(self, Flow flow, int d, double ts)
    cdef _gap(self, Flow flow, int d)
    @cython.locals(held=Py_ssize_t)
    cdef _account(self, Flow flow)
    @cython.locals(flow=Flow, target=Py_ssize_t)
    cdef _shed(self)
    @cython.locals(conn=_tls.TLSConnection, d=int, sess=_session.Session)
    cdef _give_up(self, Flow flow)
    cdef _skip_ciphertext(self, Flow flow, _tls.TLSConnection conn, int d, bint from_lo)
    cdef bint _syn_copy(self, Flow flow, uint32_t seq)
    cdef _protocol_error(self, _session.Session sess, int status)
    cdef _mark_done(self, bytes key)
    @cython.locals(flow=Flow, half=Py_ssize_t, lo_port=int, hi_port=int, client_lo=bint)
    cdef _new_flow(self, bytes key, bint from_lo, int flags, bytes payload, double ts, list out)

