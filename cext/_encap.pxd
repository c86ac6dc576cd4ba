# Static types for the compiled tunnel decapsulator (cext._encap, built from _encap_py.py, the
# twin; named after the compiled module, see _tls.pxd).  The frame is a raw pointer here: the
# methods are C-level, called by the compiled packet decoder (cext/_wire.pyx cimports this).
cimport cython
from libc.stdint cimport uint8_t


@cython.final
cdef class Decapsulator:
    cdef public list counters
    cdef public int et

    cdef Py_ssize_t _layer(self, int e, Py_ssize_t p, int et)
    cdef Py_ssize_t _bad(self, int e)
    cdef Py_ssize_t _ip(self, const uint8_t* f, Py_ssize_t n, Py_ssize_t p, int e)
    @cython.locals(q=Py_ssize_t, et=int, tags=int)
    cdef Py_ssize_t _ether(self, const uint8_t* f, Py_ssize_t n, Py_ssize_t p, int e)
    @cython.locals(depth=int, ihl=Py_ssize_t, total=Py_ssize_t, proto=int, nxt=Py_ssize_t,
                   plen=Py_ssize_t, nh=int, p=Py_ssize_t, hops=int, hl=Py_ssize_t)
    cdef Py_ssize_t innermost(self, const uint8_t* f, Py_ssize_t n, Py_ssize_t off, int et)
    cdef Py_ssize_t after_ip(self, const uint8_t* f, Py_ssize_t n, Py_ssize_t p, Py_ssize_t end,
                             int proto, int depth)
    @cython.locals(ppp=int, labels=int, bottom=int, v=int)
    cdef Py_ssize_t after_ethertype(self, const uint8_t* f, Py_ssize_t n, Py_ssize_t p, int et,
                                    int depth)
    @cython.locals(flags=int, pt=int, q=Py_ssize_t, ft=int, r=Py_ssize_t)
    cdef Py_ssize_t _gre(self, const uint8_t* f, Py_ssize_t n, Py_ssize_t p)
    @cython.locals(sport=int, dport=int, q=Py_ssize_t, kind=int, pt=int, r=Py_ssize_t, fl=int,
                   nxt=int, exts=int, hlen=Py_ssize_t)
    cdef Py_ssize_t _udp(self, const uint8_t* f, Py_ssize_t n, Py_ssize_t p, int depth)
