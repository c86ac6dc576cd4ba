# Static types for the compiled flow table (cext._flows, built from _flows_py.py, the twin;
# named after the compiled module, see _tls.pxd).  The reader and the session are held as the
# compiled C types: a compiled table works with the compiled engine only.
cimport cython
# (one module per cimport line: cythonize's dependency scan reads this form)
cimport cext._session as _session
cimport cext._tls as _tls


@cython.final
cdef class Flow:
    cdef public object key, next_seq, ooo, ooo_bytes
    cdef public _tls.TLSConnection conn
    cdef public _session.Session session
    cdef public bint client_lo
    cdef public double last, first, reset_at


@cython.final
cdef class FlowTable:
    cdef public dict flows, done, skip, stats, reasons
    cdef public object _flow_order, _done_order, _next_expiry, _out
    cdef readonly object wire, _new_connection, _new_session
    cdef public Py_ssize_t max_flows, max_ooo_bytes, max_ooo_segments, max_done
    cdef public Py_ssize_t max_handshake, skip_min
    cdef public double idle_timeout, close_linger, now

    @cython.locals(flow=Flow, sess=_session.Session, conn=_tls.TLSConnection, d=int, nseq=list)
    cpdef segment(self, double ts, key, from_lo, int flags, seq, payload, truncated)
    cpdef _finish(self, Flow flow, reason, list out)
    cdef _segment(self, Flow flow, int d, seq, data, double ts)
    cdef _deliver(self, Flow flow, int d, data, double ts)
    cdef _drain(self, Flow flow, int d, double ts)
    cdef _gap(self, Flow flow, int d)
    cdef _skip_ciphertext(self, Flow flow, _tls.TLSConnection conn, int d, from_lo)
    cdef _protocol_error(self, _session.Session sess, error)
