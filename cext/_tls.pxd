# Static types for the compiled TLS reader (cext._tls, built from _tls_py.py, the twin).
# Named after the compiled module: Cython applies a .pxd by module name, and _flows.pxd's
# cimport of it names the module whose types it checks at run time.  (_tls_py.pxd, named
# after the source, only makes cythonize's dependency scan see this file.)
cimport cython


@cython.final
cdef class _Direction:
    cdef public object buf, hs, error
    cdef public bint encrypted, started, sslv2, hello
    cdef public Py_ssize_t plaintext, skip


@cython.final
cdef class TLSConnection:
    cdef readonly object wire
    cdef readonly tuple dirs
    cdef public object _events, _pending_error, _emit
    cdef public Py_ssize_t max_handshake, max_buffer
    cdef public int version
    cdef public bint tls13, _server_hello_seen

    cpdef feed_into(self, int direction, data, sink)

    @cython.locals(n=Py_ssize_t, pos=Py_ssize_t, rest=Py_ssize_t, ln=Py_ssize_t, ct=int,
                   b0=int, b1=int, b2=int, tls13=bint, mt=int)
    cdef _parse(self, int direction, _Direction d, buf)

    cdef _handshake(self, int direction, int mt, body)
