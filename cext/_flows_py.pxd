# Not applied to anything: cythonize looks for the .pxd named after the source
# (_flows_py.py), and this cimport makes it track _flows.pxd -- the declarations, named after
# the compiled module cext._flows -- and what that cimports (a changed .pxd regenerates the C).
cimport cext._flows
