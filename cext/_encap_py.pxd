# Not applied to anything: cythonize looks for the .pxd named after the source (_encap_py.py),
# and this cimport makes it track _encap.pxd -- the declarations, named after the compiled
# module cext._encap (a changed .pxd regenerates the C).
cimport cext._encap
