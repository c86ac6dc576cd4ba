# Static types for the compiled TLS reader (cext._tls, built from _tls_py.py, the twin).
# Named after the compiled module: Cython applies a .pxd by module name, and _flows.pxd's
# cimport of it names the module whose types it checks at run time.  (_tls_py.pxd, named
# after the source, only makes cythonize's dependency scan see this file.)
#
# The reader calls its wire parser (cext._wire.Wire) and its sink (a Sink: the session record
# of cext._session, or the EventQueue of the reference API) in C.
cimport cython
# (one module per cimport line: cythonize's dependency scan reads this form)
cimport cext._wire as _wire


cdef class Sink:
    cdef void client_hello(self, int d, tuple fields, bytes data, Py_ssize_t start,
                           Py_ssize_t end)
    cdef void sslv2_client_hello(self, int d, object hello)
    cdef void server_hello(self, int d, object hello)
    cdef void hello_retry_request(self, int d, int selected_version, int cipher_suite,
                                  int key_share_group)
    cdef void certificate(self, int d, tuple certificates)
    cdef void notice(self, int d, int status)
    cdef void server_key_exchange(self, int d, bytes data, Py_ssize_t start, Py_ssize_t end)
    cdef void certificate_request(self, int d)
    cdef void handshake(self, int d, int msg_type, Py_ssize_t length)
    cdef void change_cipher_spec(self, int d)
    cdef void alert(self, int d, int level, int description)
    cdef void encrypted(self, int d, int content_type, Py_ssize_t length)
    cdef void record(self, int d, int content_type, Py_ssize_t length)


# (not final: Cython does not let a final class override its base's C methods)
cdef class EventQueue(Sink):
    cdef readonly _wire.Wire wire
    cdef public list events
    cdef void client_hello(self, int d, tuple fields, bytes data, Py_ssize_t start,
                           Py_ssize_t end)
    cdef void sslv2_client_hello(self, int d, object hello)
    cdef void server_hello(self, int d, object hello)
    cdef void hello_retry_request(self, int d, int selected_version, int cipher_suite,
                                  int key_share_group)
    cdef void certificate(self, int d, tuple certificates)
    cdef void notice(self, int d, int status)
    cdef void server_key_exchange(self, int d, bytes data, Py_ssize_t start, Py_ssize_t end)
    cdef void certificate_request(self, int d)
    cdef void handshake(self, int d, int msg_type, Py_ssize_t length)
    cdef void change_cipher_spec(self, int d)
    cdef void alert(self, int d, int level, int description)
    cdef void encrypted(self, int d, int content_type, Py_ssize_t length)
    cdef void record(self, int d, int content_type, Py_ssize_t length)


    cpdef list take(self)


@cython.final
cdef class _Direction:
    cdef public object buf
    cdef public bytes hs
    cdef public bytearray hs_more
    cdef public Py_ssize_t hs_len, hs_need
    cdef public int error
    cdef public bint encrypted, started, sslv2, hello, hello_pending
    cdef public Py_ssize_t plaintext, skip


@cython.final
cdef class TLSConnection:
    cdef readonly _wire.Wire wire
    cdef public Sink sink
    cdef readonly EventQueue _queue
    cdef readonly tuple dirs
    cdef public object _events, _pending_error
    cdef public Py_ssize_t max_handshake, max_buffer
    cdef public int version
    cdef public bint tls13, _server_hello_seen

    @cython.locals(d=_Direction, status=int)
    cpdef int feed_at(self, int direction, bytes data, Py_ssize_t start,
                      Py_ssize_t end) except? -32768
    cpdef void receive_gap(self, int direction)
    @cython.locals(d=_Direction)
    cpdef Py_ssize_t pending_skip(self, int direction)
    @cython.locals(d=_Direction)
    cpdef Py_ssize_t take_skip(self, int direction, Py_ssize_t minimum)
    cpdef Py_ssize_t plaintext(self)
    cpdef Py_ssize_t buffered(self)
    @cython.locals(d=_Direction)
    cpdef Py_ssize_t buffered_in(self, int direction)
    cdef void _fail(self, _Direction d, int status)

    @cython.locals(n=Py_ssize_t, rest=Py_ssize_t, ln=Py_ssize_t, ct=int, fs=Py_ssize_t,
                   fe=Py_ssize_t, i=Py_ssize_t, b0=int, b1=int, b2=int, tls13=bint,
                   status=int, sink=Sink, at=Py_ssize_t)
    cdef int _parse(self, int direction, _Direction d, bytes buf, Py_ssize_t pos,
                    Py_ssize_t end) except? -32768

    @cython.locals(hs=bytes, start=Py_ssize_t, end=Py_ssize_t, p=Py_ssize_t, q=Py_ssize_t,
                   ln=Py_ssize_t, too_long=int, status=int, n=Py_ssize_t)
    cdef int _handshakes(self, int direction, _Direction d, bytes buf, Py_ssize_t fs,
                         Py_ssize_t fe) except? -32768

    @cython.locals(sink=Sink, wire=_wire.Wire, t=tuple, fields=tuple, certs=tuple,
                   selected=int, legacy=int, ver=int)
    cdef int _handshake(self, int direction, int mt, bytes hs, Py_ssize_t s,
                        Py_ssize_t e) except? -32768

    @cython.locals(sink=Sink, pos=Py_ssize_t, n=Py_ssize_t, hl=Py_ssize_t, ln=Py_ssize_t,
                   mt=int)
    cdef int _parse_sslv2(self, int direction, _Direction d) except? -32768


cdef void _drop_fragments(_Direction d)


@cython.locals(k=Py_ssize_t, stop=Py_ssize_t, ln=Py_ssize_t)
cdef Py_ssize_t _embedded_client_hello(bytes buf, Py_ssize_t pos, Py_ssize_t end)


@cython.locals(t=tuple, alt=bytes)
cdef tuple _server_hello(_wire.Wire wire, bytes hs, Py_ssize_t s, Py_ssize_t e)
