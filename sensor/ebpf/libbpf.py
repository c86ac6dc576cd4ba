"""The few libbpf calls the filter needs, through ctypes on Debian's ``libbpf.so.1`` (no bcc:
it needs kernel headers this machine kind does not have; pylibbpf cannot attach a socket
filter nor hand out a program fd -- see NOTES-capture b).

:class:`BpfObject` opens and loads a compiled object, sizes maps before the load, and gives
program and map file descriptors; :func:`map_update` / :func:`map_lookup` /
:func:`map_delete` are the raw ``bpf(2)`` map calls.  libbpf's own messages (the verifier
log of a refused program among them) go to this module's logger at DEBUG, and the last of
them is kept for the error message.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import platform
from collections import deque

__all__ = ["BpfError", "BpfObject", "load_libbpf", "map_update", "map_lookup", "map_delete",
           "map_update_batch", "possible_cpus", "enable_run_stats", "prog_id", "test_run", "BPF_ANY", "BPF_NOEXIST", "BPF_EXIST",
           "RingBuffer"]

log = logging.getLogger(__name__)

BPF_ANY, BPF_NOEXIST, BPF_EXIST = 0, 1, 2

_lib = None
_libc = None
_messages: deque = deque(maxlen=200)
_PRINT_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
#: ring_buffer_sample_fn(ctx, data, size)
_SAMPLE_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)


class BpfError(Exception):
    """libbpf is missing, or an object cannot be opened or loaded.  ``str()`` is one line."""


# -- what both programs check before loading (the capture filter and the endpoint hints) -------

def unbuilt_object(path: str) -> str | None:
    """Why ``path`` cannot be loaded because it is not there, or None."""
    if os.path.exists(path):
        return None
    return ("eBPF object not built (%s is missing: clang was not available when the package "
            "was built)" % path)


def kernel_too_old(minimum: tuple[int, int], needs: str) -> str | None:
    """Why this kernel is older than ``minimum`` (``needs`` says for what), or None."""
    rel = platform.release()
    try:
        ver = tuple(int(x) for x in rel.split("-")[0].split(".")[:2])
    except ValueError:
        return None                 # an unusual release string: let the load decide
    if ver < minimum:
        return "kernel %s is too old (%s >= %d.%d)" % (rel, needs, *minimum)
    return None


def effective_caps() -> int | None:
    """This process's effective capability mask, or None where /proc does not say."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except OSError:
        pass
    return None


def _print(level: int, fmt: bytes, args: int) -> int:
    """libbpf's print callback: format the va_list with vsnprintf, keep and log the line."""
    buf = ctypes.create_string_buffer(1 << 16)       # a verifier log comes as one message
    _libc.vsnprintf(buf, len(buf), fmt, ctypes.c_void_p(args))
    for line in buf.value.decode("utf-8", "replace").splitlines():
        line = line.rstrip()
        if line:
            _messages.append(line)
            log.debug("libbpf: %s", line)
    return 0


_print_cb = _PRINT_FN(_print)       # module-level: must outlive every libbpf call


def load_libbpf():
    """``libbpf.so.1`` with the prototypes used here (once); raises :class:`BpfError`."""
    global _lib, _libc
    if _lib is not None:
        return _lib
    try:
        lib = ctypes.CDLL("libbpf.so.1", use_errno=True)
    except OSError:
        name = ctypes.util.find_library("bpf")
        if not name:
            raise BpfError("libbpf.so.1 not found (Debian package libbpf1)") from None
        try:
            lib = ctypes.CDLL(name, use_errno=True)
        except OSError as exc:
            raise BpfError("cannot load %s: %s" % (name, exc)) from None
    vp, cp, ci = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
    protos = {
        "bpf_object__open_file": (vp, [cp, vp]),
        "bpf_object__load": (ci, [vp]),
        "bpf_object__close": (None, [vp]),
        "bpf_object__find_program_by_name": (vp, [vp, cp]),
        "bpf_object__find_map_by_name": (vp, [vp, cp]),
        "bpf_program__fd": (ci, [vp]),
        "bpf_map__fd": (ci, [vp]),
        "bpf_map__set_max_entries": (ci, [vp, ctypes.c_uint32]),
        "bpf_map_update_elem": (ci, [ci, vp, vp, ctypes.c_uint64]),
        "bpf_map_lookup_elem": (ci, [ci, vp, vp]),
        "bpf_map_delete_elem": (ci, [ci, vp]),
        "libbpf_num_possible_cpus": (ci, []),
        "libbpf_set_print": (vp, [_PRINT_FN]),
        "bpf_prog_test_run_opts": (ci, [ci, vp]),
        "bpf_map_update_batch": (ci, [ci, vp, vp, ctypes.POINTER(ctypes.c_uint32), vp]),
        "bpf_enable_stats": (ci, [ci]),
        "bpf_obj_get_info_by_fd": (ci, [ci, vp, ctypes.POINTER(ctypes.c_uint32)]),
        # probes and their ring buffer (sensor.ebpf.hints)
        "bpf_program__attach_uprobe_opts": (vp, [vp, ci, cp, ctypes.c_size_t, vp]),
        "bpf_program__attach_raw_tracepoint": (vp, [vp, cp]),
        "bpf_link__destroy": (ci, [vp]),
        "ring_buffer__new": (vp, [ci, _SAMPLE_FN, vp, vp]),
        "ring_buffer__consume": (ci, [vp]),
        "ring_buffer__free": (None, [vp]),
        "ring_buffer__epoll_fd": (ci, [vp]),
    }
    for name, (res, args) in protos.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            raise BpfError("libbpf lacks %s (needs libbpf >= 1.0)" % name) from None
        fn.restype = res
        fn.argtypes = args
    _libc = ctypes.CDLL(None)
    _libc.vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
                                ctypes.c_void_p]
    lib.libbpf_set_print(_print_cb)
    _lib = lib
    return lib


def _err(rc: int) -> str:
    return os.strerror(-rc if rc < 0 else (ctypes.get_errno() or 1))


class BpfObject:
    """One loaded BPF object file.  ``max_entries`` sizes maps by name before the load."""

    def __init__(self, path: str, max_entries: dict[str, int] | None = None) -> None:
        lib = load_libbpf()
        self._lib = lib
        self._obj = None
        self._links: list = []
        if not os.path.exists(path):
            raise BpfError("%s does not exist" % path)
        _messages.clear()
        obj = lib.bpf_object__open_file(os.fsencode(path), None)
        if not obj:
            raise BpfError("cannot open %s: %s" % (path, os.strerror(ctypes.get_errno() or 22)))
        self._obj = obj
        for name, n in (max_entries or {}).items():
            m = self._map(name)
            rc = lib.bpf_map__set_max_entries(m, int(n))
            if rc:
                self.close()
                raise BpfError("map %s: cannot size to %d: %s" % (name, n, _err(rc)))
        rc = lib.bpf_object__load(obj)
        if rc:
            detail = self.last_message()
            self.close()
            raise BpfError("the kernel refused the program: %s%s"
                           % (_err(rc), " (%s)" % detail if detail else ""))

    @staticmethod
    def last_message() -> str:
        """The last informative libbpf/verifier line (for one-line errors)."""
        for line in reversed(_messages):
            if line.startswith("libbpf:") or line.startswith("processed ") or \
                    line.startswith("verification time"):
                continue
            return " ".join(line.split())[:200]
        return ""

    def _map(self, name: str):
        m = self._lib.bpf_object__find_map_by_name(self._obj, name.encode())
        if not m:
            raise BpfError("object has no map %r" % name)
        return m

    def map_fd(self, name: str) -> int:
        return self._lib.bpf_map__fd(self._map(name))

    def program_fd(self, name: str) -> int:
        p = self._lib.bpf_object__find_program_by_name(self._obj, name.encode())
        if not p:
            raise BpfError("object has no program %r" % name)
        fd = self._lib.bpf_program__fd(p)
        if fd < 0:
            raise BpfError("program %r has no fd: %s" % (name, _err(fd)))
        return fd

    def _program(self, name: str):
        p = self._lib.bpf_object__find_program_by_name(self._obj, name.encode())
        if not p:
            raise BpfError("object has no program %r" % name)
        return p

    def attach_uprobe(self, program: str, path: str, offset: int, cookie: int = 0,
                      retprobe: bool = False) -> int:
        """Attach ``program`` to the instruction at file offset ``offset`` of the ELF file
        ``path``, in every process that maps it (now and later); ``cookie`` is what the
        program's ``bpf_get_attach_cookie`` returns.  The link (an opaque handle) lives until
        :meth:`close`.  Raises :class:`BpfError`."""
        opts = _UprobeOpts(sz=ctypes.sizeof(_UprobeOpts), bpf_cookie=cookie, retprobe=retprobe)
        _messages.clear()
        link = self._lib.bpf_program__attach_uprobe_opts(
            self._program(program), -1, os.fsencode(path), offset, ctypes.byref(opts))
        if not link:
            raise BpfError("uprobe %s+0x%x: %s" % (path, offset, self._attach_error()))
        self._links.append(link)
        return link

    def attach_raw_tracepoint(self, program: str, tracepoint: str) -> int:
        """Attach ``program`` to the kernel tracepoint ``tracepoint`` (its name without the
        category, e.g. ``tcp_rcv_space_adjust``; no tracefs needed)."""
        _messages.clear()
        link = self._lib.bpf_program__attach_raw_tracepoint(self._program(program),
                                                            tracepoint.encode())
        if not link:
            raise BpfError("tracepoint %s: %s" % (tracepoint, self._attach_error()))
        self._links.append(link)
        return link

    def _attach_error(self) -> str:
        err = os.strerror(ctypes.get_errno() or 22)
        detail = self.last_message()
        return "%s%s" % (err, " (%s)" % detail if detail else "")

    def close(self) -> None:
        """Unload: the maps and the program go away once no socket holds the program."""
        for link in self._links:
            self._lib.bpf_link__destroy(link)
        self._links = []
        if self._obj:
            self._lib.bpf_object__close(self._obj)
            self._obj = None


def map_update(fd: int, key: bytes, value: bytes, flags: int = BPF_ANY) -> int:
    """0, or the negative errno (ENOENT / EEXIST are answers, not failures)."""
    lib = load_libbpf()
    return lib.bpf_map_update_elem(fd, key, value, flags)


def map_update_batch(fd: int, keys: bytes, values: bytes, count: int) -> int:
    """``count`` packed keys / values in one syscall: 0 or the negative errno."""
    n = ctypes.c_uint32(count)
    return load_libbpf().bpf_map_update_batch(fd, keys, values, ctypes.byref(n), None)


def map_lookup(fd: int, key: bytes, size: int) -> bytes | None:
    lib = load_libbpf()
    buf = ctypes.create_string_buffer(size)
    rc = lib.bpf_map_lookup_elem(fd, key, buf)
    return buf.raw if rc == 0 else None


def map_delete(fd: int, key: bytes) -> int:
    return load_libbpf().bpf_map_delete_elem(fd, key)


class _UprobeOpts(ctypes.Structure):
    """struct bpf_uprobe_opts (libbpf 1.x)"""
    _fields_ = [("sz", ctypes.c_size_t), ("ref_ctr_offset", ctypes.c_size_t),
                ("bpf_cookie", ctypes.c_uint64), ("retprobe", ctypes.c_bool),
                ("func_name", ctypes.c_char_p)]


class RingBuffer:
    """A ``BPF_MAP_TYPE_RINGBUF`` map read with libbpf's consumer: :meth:`drain` returns the
    records written since the last call (bytes each; the ring's size bounds them), without
    blocking; :attr:`fd` is an epoll fd that is readable when records wait."""

    def __init__(self, map_fd: int) -> None:
        lib = load_libbpf()
        self._lib = lib
        self._out: list[bytes] = []

        def sample(_ctx, data, size):
            self._out.append(ctypes.string_at(data, size))
            return 0
        self._cb = _SAMPLE_FN(sample)           # must outlive the ring buffer
        self._rb = lib.ring_buffer__new(map_fd, self._cb, None, None)
        if not self._rb:
            raise BpfError("ring buffer: %s" % os.strerror(ctypes.get_errno() or 22))
        self.fd = lib.ring_buffer__epoll_fd(self._rb)

    def drain(self) -> list[bytes]:
        if not self._rb:
            return []
        self._out = []
        self._lib.ring_buffer__consume(self._rb)
        out, self._out = self._out, []
        return out

    def close(self) -> None:
        if self._rb:
            self._lib.ring_buffer__free(self._rb)
            self._rb = None


class _TestRunOpts(ctypes.Structure):
    """struct bpf_test_run_opts (libbpf 1.x)"""
    _fields_ = [
        ("sz", ctypes.c_size_t), ("data_in", ctypes.c_void_p), ("data_out", ctypes.c_void_p),
        ("data_size_in", ctypes.c_uint32), ("data_size_out", ctypes.c_uint32),
        ("ctx_in", ctypes.c_void_p), ("ctx_out", ctypes.c_void_p),
        ("ctx_size_in", ctypes.c_uint32), ("ctx_size_out", ctypes.c_uint32),
        ("retval", ctypes.c_uint32), ("repeat", ctypes.c_int), ("duration", ctypes.c_uint32),
        ("flags", ctypes.c_uint32), ("cpu", ctypes.c_uint32), ("batch_size", ctypes.c_uint32),
    ]


def test_run(prog_fd: int, data: bytes) -> tuple[int, int]:
    """``BPF_PROG_TEST_RUN`` of one packet: ``(rc, program return value)``."""
    lib = load_libbpf()
    buf = ctypes.create_string_buffer(data, len(data))
    opts = _TestRunOpts(sz=ctypes.sizeof(_TestRunOpts), data_in=ctypes.addressof(buf),
                        data_size_in=len(data), repeat=1)
    rc = lib.bpf_prog_test_run_opts(prog_fd, ctypes.byref(opts))
    return rc, opts.retval


def enable_run_stats() -> int:
    """``BPF_ENABLE_STATS(BPF_STATS_RUN_TIME)``: programs count their run time while the
    returned fd is open (CAP_SYS_ADMIN; for benchmarks).  Negative errno on failure."""
    return load_libbpf().bpf_enable_stats(0)


def prog_id(prog_fd: int) -> int:
    """The kernel's id of a loaded program (``bpftool prog show id N``)."""
    info = ctypes.create_string_buffer(256)
    n = ctypes.c_uint32(256)
    rc = load_libbpf().bpf_obj_get_info_by_fd(prog_fd, info, ctypes.byref(n))
    if rc:
        raise BpfError("prog info: %s" % _err(rc))
    return int.from_bytes(info.raw[4:8], "little")           # struct bpf_prog_info.id


def possible_cpus() -> int:
    """Per-CPU map values hold one slot per possible CPU."""
    n = load_libbpf().libbpf_num_possible_cpus()
    if n <= 0:
        raise BpfError("cannot count possible CPUs: %s" % _err(n))
    return n
