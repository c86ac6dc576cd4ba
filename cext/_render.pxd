# Static types for the compiled JSON renderer (cext._render, built from proto/render.py -- the
# one renderer; proto.render is its pure-Python twin, which the analyzer runs).  Named after
# the compiled module: Cython applies a .pxd by module name.
cimport cython

cdef object _VERSION, _CIPHER, _EXTENSION, _GROUP, _SIGALG, _SIDE
cdef object _version_name, _cipher_name, _extension_name, _group_name, _sigalg_name
cdef dict _SIDES_RENDERED, _TEMPLATE

cdef list _named(codes, table, name_of)

cdef _name(code, table, name_of)

cpdef tuple offer_names(tuple key)

@cython.locals(out=list)
cdef list _certs(digests, facts)

cdef list _sides_json(v)

cdef _copy(names)

@cython.locals(j=dict, o=tuple, alerts=list)
cpdef dict summary_to_json(raw, facts, offer_names=*)
