# Static types for the compiled session record (cext._session, built from _session_py.py;
# named after the compiled module, see _tls.pxd).
cimport cython


@cython.final
cdef class Session:
    cdef public object start, end, ch, sh, ske, offer, ja4, _at_established
    cdef public list history, alerts, enc_alerts, fin, rst, gaps, weirds, _ccs, _app, _counts
    cdef public tuple certs, client_certs, enc
    cdef public int last_msg
    cdef public bint hrr, cert_request, client_cert_empty, truncated, established
    cdef public bint resumed, _server_cert_seen, _server_ccs_early, _tls13, _v2, fatal

    cpdef handshake_over(self)
    cpdef hello_unread(self)
    cdef _letter(self, int d, str letter)
