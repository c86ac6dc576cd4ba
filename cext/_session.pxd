# Static types for the compiled session record (cext._session, built from _session_py.py;
# named after the compiled module, see _tls.pxd).  The session is the reader's sink: the
# compiled reader calls its event methods in C.
cimport cython
# (one module per cimport line: cythonize's dependency scan reads this form)
cimport cext._tls as _tls
cimport cext._wire as _wire


@cython.final
cdef class Caches:
    cdef readonly _wire.Wire wire
    cdef readonly object offer, digests

    cpdef tuple chain(self, tuple ders)


@cython.final
cdef class _Offer:
    cdef readonly object versions, ciphers, groups, alpn, sigalgs, key_shares, ja4
    cdef readonly bint psk, sslv2, truncated

    cdef object _cut(self, values)


# (not final: Cython does not let a final class override its base's C methods)
cdef class Session(_tls.Sink):
    cdef public double start, end
    cdef readonly Caches caches
    cdef public list history, alerts, enc0, enc1, enc_alerts, fin, rst, gaps, weirds
    cdef public list _ccs, _app, _counts, _at_established
    cdef public object ch_sid, sni, ch_exts, sh, ske, offer, ja4
    cdef public int ch_legacy, version, last_msg
    cdef public tuple certs, client_certs
    cdef public Py_ssize_t cert_bytes
    cdef public bint has_ch, hrr, cert_request, client_cert_empty, truncated, established
    cdef public bint resumed, fatal, _server_cert_seen, _server_ccs_early, _tls13, _v2

    cpdef void weird(self, str name)
    cpdef void tcp_fin(self, int d)
    cpdef void tcp_rst(self, int d)
    cpdef void gap(self, int d)
    cpdef void hello_unread(self)
    cpdef bint handshake_over(self)
    cdef void _letter(self, int d, tuple letters)
    cdef void _establish(self)
    cpdef str outcome(self, str reason)
    cdef _curve(self)
    cpdef dict summary(self, str client, str server, str reason)
    cpdef list certificate_ders(self)

    cdef void client_hello(self, int d, tuple fields, bytes data, Py_ssize_t start,
                           Py_ssize_t end)
    cdef void sslv2_client_hello(self, int d, object hello)
    cdef void server_hello(self, int d, object hello)
    cdef void hello_retry_request(self, int d, int selected_version, int cipher_suite,
                                  int key_share_group)
    cdef void certificate(self, int d, tuple certificates)
    cdef void notice(self, int d, int status)
    cpdef void forget_certificates(self)
    cdef void server_key_exchange(self, int d, bytes data, Py_ssize_t start, Py_ssize_t end)
    cdef void certificate_request(self, int d)
    cdef void handshake(self, int d, int msg_type, Py_ssize_t length)
    cdef void change_cipher_spec(self, int d)
    cdef void alert(self, int d, int level, int description)
    cdef void encrypted(self, int d, int content_type, Py_ssize_t length)
    cdef void record(self, int d, int content_type, Py_ssize_t length)


cpdef tuple chain_digests(tuple ders)
@cython.locals(n=Py_ssize_t)
cdef Py_ssize_t _der_bytes(tuple ders)
cpdef _Offer offer_from_key(bytes key)
cdef tuple _strip(values)
@cython.locals(n=Py_ssize_t, i=Py_ssize_t)
cdef tuple _u16s(bytes key, Py_ssize_t pos)
