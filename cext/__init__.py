"""The sans-I/O wire core: bytes and timestamps in, raw summaries out.  Cython with a
pure-Python twin of every module; :mod:`cext.wire` selects the implementation."""
