# Not applied to anything: cythonize looks for the .pxd named after the source
# (_tls_py.py), and this cimport makes it track _tls.pxd -- the declarations, named after
# the compiled module cext._tls -- and what that cimports (a changed .pxd regenerates the C).
cimport cext._tls
