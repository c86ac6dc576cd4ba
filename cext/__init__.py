"""Byte-crunching hot loops: Cython (``_wire.pyx``) with a pure-Python twin (``_wire_py``).
Import :mod:`cext.wire` to get the selected implementation."""
