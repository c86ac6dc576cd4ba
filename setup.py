"""tlsdiag build.  The Cython wire core in cext/ is compiled unless TLSDIAG_NO_EXTENSIONS
is set; a failed compile is a failed build (no silent fallback, cf. msgpack #568).
TLSDIAG_DEBUG_BUILD=1 compiles with -O0 -g3 and Cython bounds checks on.
TLSDIAG_PACKAGES=sensor builds without the analyzer packages (the sensor container image: the
sensor command imports none of them, tests/test_settings.py); the default is all of them."""
import os

from setuptools import Extension, setup

NO_EXTENSIONS = os.environ.get("TLSDIAG_NO_EXTENSIONS", "") not in ("", "0")
DEBUG = os.environ.get("TLSDIAG_DEBUG_BUILD", "") not in ("", "0")
PACKAGES = ["tlsdiag", "tlsdiag.commands", "proto", "sensor", "analyzer", "analyzer.service",
            "cext"]
_SELECT = os.environ.get("TLSDIAG_PACKAGES", "") or "all"
if _SELECT == "sensor":
    PACKAGES = [p for p in PACKAGES if p.split(".")[0] != "analyzer"]
elif _SELECT != "all":
    raise SystemExit("TLSDIAG_PACKAGES must be 'all' or 'sensor', not %r" % _SELECT)

ext_modules = []
if not NO_EXTENSIONS:
    from Cython.Build import cythonize

    directives = {"language_level": "3"}
    if DEBUG:
        directives.update(boundscheck=True, wraparound=True)
    cflags = ["-O0", "-g3"] if DEBUG else ["-O2"]
    # _wire is written in Cython; the per-segment engine is written in Python
    # (cext/_<name>_py.py, which stays the pure-Python twin) and compiled as cext._<name>
    # with the static types of cext/_<name>.pxd (named after the module: Cython applies a
    # .pxd by module name).  cythonize tracks the .pxd named after the *source*:
    # cext/_<name>_py.pxd cimports cext/_<name>.pxd, so a changed declaration -- or one that
    # module cimports -- regenerates the C.
    ext_modules = cythonize(
        [Extension("cext._wire", ["cext/_wire.pyx"], extra_compile_args=cflags)],
        compiler_directives=directives,
    )
    ext_modules += cythonize(
        # the .py files' annotations are for readers and type checkers; the .pxd files
        # give the C types
        [Extension("cext._" + name, ["cext/_%s_py.py" % name], extra_compile_args=cflags)
         for name in ("tls", "session", "flows")],
        compiler_directives=dict(directives, annotation_typing=False),
    )

setup(
    name="tlsdiag",
    version="0.1.0",
    description="TLS handshake failure diagnosis for API gateways",
    python_requires=">=3.11",
    packages=PACKAGES,
    package_data={"cext": ["*.pyx", "*.pxd", "*.pyi", "py.typed"], "proto": ["py.typed"]},
    ext_modules=ext_modules,
    install_requires=[
        "pcapy-ng>=2.1", "dpkt>=1.9", "kafka-python>=3.0", "msgpack>=1.0",
        "cryptography>=44", "orjson>=3.10", "lz4>=4", "zstandard>=0.22",
        # kafka-python checks every record batch's CRC-32C; without this C implementation
        # it computes it in pure Python (a large share of the analyzer's consume cost)
        "crc32c>=2.3",
    ],
    extras_require={"test": ["pytest>=8", "hypothesis>=6.100", "PyYAML>=6"]},
    entry_points={"console_scripts": ["tlsdiag = tlsdiag.cli:main"]},
)
