"""tlsdiag build.  The Cython wire core in cext/ is compiled unless TLSDIAG_NO_EXTENSIONS
is set; a failed compile is a failed build (no silent fallback, cf. msgpack #568).
TLSDIAG_DEBUG_BUILD=1 compiles with -O0 -g3 and Cython bounds checks on.
TLSDIAG_PACKAGES=sensor builds without the analyzer packages (the sensor container image: the
sensor command imports none of them, tests/test_settings.py); the default is all of them."""
import glob
import os
import platform
import shutil
import subprocess
import sysconfig

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext as _build_ext
from setuptools.command.build_py import build_py as _build_py

NO_EXTENSIONS = os.environ.get("TLSDIAG_NO_EXTENSIONS", "") not in ("", "0")
DEBUG = os.environ.get("TLSDIAG_DEBUG_BUILD", "") not in ("", "0")
#: every package of the five layers, subpackages included (analyzer.service, analyzer.probe,
#: sensor.ebpf, tlsdiag.commands ...)
PACKAGES = find_packages(include=[p + suffix for p in ("tlsdiag", "proto", "sensor", "analyzer",
                                                       "cext") for suffix in ("", ".*")])
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
         for name in ("tls", "session", "flows", "encap")],
        compiler_directives=dict(directives, annotation_typing=False),
    )
    # the one JSON renderer, proto/render.py (which the analyzer runs as it is), compiled for
    # the sensor's pipeline as cext._render with the types of cext/_render.pxd
    ext_modules += cythonize(
        [Extension("cext._render", ["proto/render.py"], extra_compile_args=cflags,
                   depends=["cext/_render.pxd"])],
        compiler_directives=dict(directives, annotation_typing=False),
    )

# The sensor's eBPF programs (sensor/ebpf/*.bpf.c: the handshake filter, the endpoint-hint
# probes), compiled with clang -target bpf against the UAPI headers when clang is available.
# Without clang the package still builds: the eBPF backend then reports "object not built" and
# --backend auto uses libpcap (and --endpoint-hints says it is off).  A clang that fails on a
# source fails the build.  CLANG=... picks the compiler.
BPF_SRCS = sorted(glob.glob(os.path.join("sensor", "ebpf", "*.bpf.c")))
#: bpf_tracing.h's register names for the probes (PT_REGS_PARM1...)
BPF_ARCH = {"x86_64": "x86", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), "x86")


def _multiarch_include():
    """-I for <asm/types.h> (Debian keeps it under /usr/include/<triplet>)."""
    triplet = sysconfig.get_config_var("MULTIARCH")
    if not triplet:
        try:
            triplet = subprocess.run(["gcc", "-print-multiarch"], capture_output=True,
                                     text=True, check=False).stdout.strip()
        except OSError:
            triplet = ""
    d = os.path.join("/usr/include", triplet) if triplet else ""
    return ["-I" + d] if d and os.path.isdir(d) else []


def build_bpf(out_root):
    clang = os.environ.get("CLANG") or shutil.which("clang")
    for src in BPF_SRCS:
        obj = src[:-2] + ".o"
        out = os.path.join(out_root, obj)
        if not clang:
            print("warning: clang not found: %s not built (the eBPF capture backend and the "
                  "endpoint hints will be unavailable)" % obj)
            continue
        if os.path.exists(out) and os.path.getmtime(out) >= os.path.getmtime(src):
            continue
        os.makedirs(os.path.dirname(out), exist_ok=True)
        cmd = [clang, "-O2", "-g", "-Wall", "-Werror", "-target", "bpf",
               "-D__TARGET_ARCH_%s" % BPF_ARCH, *_multiarch_include(), "-c", src, "-o", out]
        print(" ".join(cmd))
        subprocess.run(cmd, check=True)


class build_ext(_build_ext):
    def run(self):
        super().run()
        inplace = self.inplace or getattr(self, "editable_mode", False)
        build_bpf("." if inplace else self.build_lib)


class build_py(_build_py):
    def run(self):
        super().run()
        if not getattr(self, "editable_mode", False):
            build_bpf(self.build_lib)


setup(
    name="tlsdiag",
    version="0.1.0",
    description="TLS handshake failure diagnosis for API gateways",
    python_requires=">=3.11",
    packages=PACKAGES,
    package_data={"cext": ["*.pyx", "*.pxd", "*.pyi", "py.typed"], "proto": ["py.typed"],
                  "sensor.ebpf": ["*.bpf.c", "*.bpf.o"]},
    ext_modules=ext_modules,
    cmdclass={"build_ext": build_ext, "build_py": build_py},
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
