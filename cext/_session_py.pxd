# Not applied to anything: cythonize looks for the .pxd named after the source
# (_session_py.py), and this cimport makes it track _session.pxd -- the declarations, named after
# the compiled module cext._session -- and what that cimports (a changed .pxd regenerates the C).
cimport cext._session
