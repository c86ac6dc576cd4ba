"""Endpoint hints from the endpoints' own OpenSSL: uprobes on exported libcrypto functions and one
raw tracepoint, loaded with the capture backend's loader (:mod:`sensor.ebpf.libbpf`).  Open it with
:class:`HintProbes`; :mod:`sensor.hints` joins what it reports to the wire summaries.

What is hooked, and why these
-----------------------------
Only functions every OpenSSL >= 1.1.1 exports (``nm -D``), so any build works without symbols:

* ``X509_STORE_CTX_get_error(ctx)``: libssl asks it for the result of every certificate
  verification (``s->verify_result = X509_STORE_CTX_get_error(ctx)``), and a verify callback
  asks it per certificate.  The error and its depth are two ints in the context; their offsets
  are read off the machine code of the exported accessors ``X509_STORE_CTX_get_error`` and
  ``X509_STORE_CTX_get_error_depth`` (``mov eax, [rdi+disp]`` on x86-64, ``ldr w0, [x0, #imm]``
  on aarch64) and given to the program in the attach cookie, so the entry probe reads exactly
  those 8 bytes and no uretprobe is needed.  Where the accessor's code is not that one
  instruction, a uretprobe reads the accessor's return value instead (no depth then).
* ``X509_STORE_CTX_init(ctx)``: a verification starts (a result is reported once per
  verification and error, not once per callback).
* ``ERR_vset_error(lib, reason, ...)`` (OpenSSL 3: ``ERR_set_error`` and every ``ERR_raise``
  end there) or ``ERR_put_error(lib, func, reason, ...)`` (1.1.1): every error the library
  raises.  The program keeps lib 20 (SSL): ``certificate verify failed``, ``peer did not return a
  certificate``, ``no shared cipher``..., and a received fatal alert as ``1000 + description``
  (in TLS 1.3 that alert is encrypted on the wire).
* raw tracepoint ``tcp_rcv_space_adjust(sk)`` (Linux >= 4.16): ``tcp_recvmsg`` passes it for
  every socket buffer whose data it copies to the reader; the program keeps, per thread, the
  socket it last read (an LRU map of 16,384 threads).  A tracepoint, not a kprobe: this kernel
  has no kprobes (``CONFIG_KPROBES`` is not set), and a tracepoint is cheaper anyway.

Mapping a hint to its connection: in the kernel, at the hint
---------------------------------------------------------------
OpenSSL raises its verify result or error in the same call that read the message causing it
(the server's Certificate, the client's empty Certificate, the peer's alert), so the socket the
thread last read *is* the connection: the program reads its 5-tuple and network namespace from
the ``struct sock`` (CO-RE against the kernel's BTF) when the hint happens.  The alternatives
were worse: ``SSL_set_fd`` -> fd -> ``/proc/PID/fd`` + ``/proc/net/tcp`` in user space races a
process that exits right after its failed handshake (``s_client``, ``curl``), needs
CAP_SYS_PTRACE for other users' processes, and misses every application that hands OpenSSL a
BIO instead of an fd (``s_server -www``, curl's own BIO); and the SSL object is not passed to
the error functions at all.  Known limit: a thread that reads connection A, then raises an
error for B from records it had already buffered without reading B again, would be mapped to
A; the hint carries the time since that read (:attr:`HintEvent.recv_age`), and
:mod:`sensor.hints` drops hints whose read is older than ``MAX_RECV_AGE``.

What is read -- and what never is
---------------------------------
The error code, the verify depth, the lib/reason register arguments of an error (never its
format string or arguments), the thread's id and comm, and the socket's addresses, ports,
family and netns inode.  No key material, no plaintext, no certificate, no other process
memory; no pointer leaves the kernel (:data:`EVENT` is the whole record).

Privileges (measured as ``nobody`` with ``setpriv``, tests/test_hints_live.py): CAP_BPF and
CAP_PERFMON load the program and attach the raw tracepoint, but the kernel (6.18 here) refuses
the uprobe perf events without CAP_SYS_ADMIN (EACCES); CAP_SYS_ADMIN alone is enough (it
implies the other two).  No CAP_SYS_PTRACE: nothing under /proc/PID is read, and a uprobe on a
library file covers other users' processes.  The library files must be readable.  Processes
started before the probes are covered (a uprobe is set on the file, in every process that maps
it, now and later).
"""
from __future__ import annotations

import glob
import logging
import os
import platform
import socket
import struct
import sysconfig
import time
from dataclasses import dataclass, field
from typing import NamedTuple

from sensor.ebpf import libbpf
from sensor.ebpf.elf import EM_AARCH64, EM_X86_64, ElfError, ElfFile, read_elf

__all__ = ["HintProbes", "HintEvent", "HintsUnavailable", "Library", "COUNTERS", "OBJECT_PATH",
           "system_libraries", "resolve_library", "accessor_offset", "preflight", "EVENT",
           "K_VERIFY", "K_SSL_ERROR", "RECV_TRACEPOINT"]

log = logging.getLogger(__name__)

HERE = os.path.dirname(os.path.abspath(__file__))
OBJECT_PATH = os.environ.get("TLSDIAG_HINTS_OBJECT") or os.path.join(HERE, "hints.bpf.o")
#: bpf_get_attach_cookie for kprobes/uprobes
MIN_KERNEL = (5, 15)
CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 21, 38, 39
#: a tracepoint every TCP receive that copies data passes (tcp_recvmsg; Linux >= 4.16)
RECV_TRACEPOINT = "tcp_rcv_space_adjust"

#: kernel counters, in the order of the enum in hints.bpf.c
COUNTERS = ("recv", "verify_calls", "err_calls", "events", "no_socket", "ringbuf_full",
            "map_fail")
#: struct hint_event in hints.bpf.c -- the whole record the kernel hands over
EVENT = struct.Struct("=QQIIIHHiiHHHH16s16s16s")
assert EVENT.size == 96
K_VERIFY, K_SSL_ERROR = 1, 2
AF_INET, AF_INET6 = 2, 10
_V4_MAPPED = bytes(10) + b"\xff\xff"

# the exported functions, by role
VERIFY_GET = "X509_STORE_CTX_get_error"
VERIFY_DEPTH = "X509_STORE_CTX_get_error_depth"
VERIFY_SET = "X509_STORE_CTX_set_error"
VERIFY_INIT = "X509_STORE_CTX_init"
ERR_V3 = "ERR_vset_error"
ERR_111 = "ERR_put_error"
WANTED = frozenset({VERIFY_GET, VERIFY_DEPTH, VERIFY_SET, VERIFY_INIT, ERR_V3, ERR_111})
OFF_UNKNOWN = 0xFFFF


class HintsUnavailable(Exception):
    """Endpoint hints cannot run here; ``str()`` is the one-line reason."""


class HintEvent(NamedTuple):
    """One report of a hooked library, as the kernel gave it (times as wall-clock seconds)."""
    time: float
    pid: int
    tid: int
    comm: str
    kind: int                   # K_VERIFY | K_SSL_ERROR
    code: int                   # X509_V_ERR_* | SSL reason
    depth: int | None
    library: str
    local: str | None           # "ip:port" as summaries write endpoints; None: no socket
    remote: str | None
    netns: int
    recv_age: float | None      # seconds since the thread last read that socket


@dataclass
class Library:
    """One OpenSSL copy: hooked, or why not."""
    path: str
    hooked: bool = False
    reason: str | None = None
    #: how the verify result is read: "entry" (offsets from the accessors), "return", None
    verify: str | None = None
    depth: bool = False
    errors: str | None = None           # ERR_vset_error | ERR_put_error
    identity: tuple[int, int] = (0, 0)
    functions: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        if not self.hooked:
            return "%s: not hooked: %s" % (self.path, self.reason)
        return "%s: errors via %s, verify result %s%s" % (
            self.path, self.errors or "-", "at entry" if self.verify == "entry" else
            "at return" if self.verify == "return" else "not hooked",
            " with depth" if self.depth else "")


# -- finding the libraries ----------------------------------------------------------------------

def _lib_dirs() -> list[str]:
    triplet = sysconfig.get_config_var("MULTIARCH") or "%s-linux-gnu" % platform.machine()
    return ["/lib/" + triplet, "/usr/lib/" + triplet, "/lib64", "/usr/lib64", "/lib", "/usr/lib",
            "/usr/local/lib", "/usr/local/lib64"]


def system_libraries() -> list[str]:
    """The system's libcrypto copies (OpenSSL 3 and 1.1), one path per file."""
    out, seen = [], set()
    for d in _lib_dirs():
        for name in ("libcrypto.so.3", "libcrypto.so.1.1"):
            p = os.path.join(d, name)
            try:
                st = os.stat(p)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                out.append(p)
    return out


def accessor_offset(code: bytes, machine: int) -> int | None:
    """The struct offset an int accessor ``return ctx->field;`` reads, from its first
    instruction (None when it is not that one load)."""
    if machine == EM_X86_64:
        if code[:4] == b"\xf3\x0f\x1e\xfa":             # endbr64
            code = code[4:]
        if code[:2] == b"\x8b\x87" and len(code) >= 6:  # mov eax, [rdi+disp32]
            off = int.from_bytes(code[2:6], "little", signed=True)
        elif code[:2] == b"\x8b\x47" and len(code) >= 3:  # mov eax, [rdi+disp8]
            off = int.from_bytes(code[2:3], "little", signed=True)
        else:
            return None
    elif machine == EM_AARCH64:
        words = [int.from_bytes(code[i:i + 4], "little") for i in range(0, len(code) - 3, 4)]
        while words and words[0] in (0xD503245F, 0xD503233F, 0xD503201F):  # bti c, paciasp, nop
            words = words[1:]
        if not words or words[0] & 0xFFC003FF != 0xB9400000:             # ldr w0, [x0, #imm]
            return None
        off = ((words[0] >> 10) & 0xFFF) * 4
    else:
        return None
    return off if 0 <= off < OFF_UNKNOWN and off % 4 == 0 else None


def _store_offset(code: bytes, machine: int) -> int | None:
    """The offset ``X509_STORE_CTX_set_error`` writes (``mov [rdi+disp], esi``): a cross-check."""
    if machine != EM_X86_64:
        return None
    if code[:4] == b"\xf3\x0f\x1e\xfa":
        code = code[4:]
    if code[:2] == b"\x89\xb7" and len(code) >= 6:
        return int.from_bytes(code[2:6], "little", signed=True)
    if code[:2] == b"\x89\x77" and len(code) >= 3:
        return int.from_bytes(code[2:3], "little", signed=True)
    return None


def _usable(e: ElfFile) -> bool:
    return ERR_V3 in e.functions or ERR_111 in e.functions or VERIFY_GET in e.functions


def resolve_library(path: str) -> tuple[Library, ElfFile | None]:
    """What to hook for ``path``: a libcrypto, a libssl (its libcrypto beside it or the system's,
    as DT_NEEDED names it), or a binary with OpenSSL linked in (its own symbols)."""
    lib = Library(path)
    try:
        e = read_elf(path, WANTED)
    except ElfError as exc:
        lib.reason = str(exc)
        return lib, None
    if not _usable(e):
        crypto = [n for n in e.needed if n.startswith("libcrypto")]
        for n in crypto:
            for d in [os.path.dirname(os.path.realpath(path))] + _lib_dirs():
                cand = os.path.join(d, n)
                if os.path.exists(cand):
                    return resolve_library(cand)
        lib.reason = ("no exported OpenSSL error or verify function (%s, %s or %s)%s"
                      % (ERR_V3, ERR_111, VERIFY_GET,
                         "; its %s was not found" % crypto[0] if crypto else ""))
        return lib, None
    if e.machine not in (EM_X86_64, EM_AARCH64):
        lib.reason = "ELF machine %d: the probes are built for x86-64 and aarch64" % e.machine
        return lib, None
    lib.identity = e.identity
    lib.functions = dict(e.functions)
    return lib, e


# -- the probes ---------------------------------------------------------------------------------

def preflight(object_path: str | None = None) -> None:
    """Raise :class:`HintsUnavailable` with the reason when the probes cannot load here."""
    for why in (libbpf.unbuilt_object(object_path or OBJECT_PATH),
                libbpf.kernel_too_old(MIN_KERNEL, "endpoint hints need")):
        if why:
            raise HintsUnavailable(why)
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        raise HintsUnavailable("the kernel has no BTF (/sys/kernel/btf/vmlinux): the socket "
                               "fields cannot be located")
    caps = libbpf.effective_caps()
    if caps is not None and not caps >> CAP_SYS_ADMIN & 1:
        missing = [n for n, c in (("CAP_BPF", CAP_BPF), ("CAP_PERFMON", CAP_PERFMON))
                   if not caps >> c & 1]
        if missing:
            raise HintsUnavailable("no privilege for uprobes (needs CAP_SYS_ADMIN: with "
                                   "CAP_BPF and CAP_PERFMON alone the kernel loads the program "
                                   "but refuses the uprobes; missing %s)" % " and ".join(missing))
    try:
        libbpf.load_libbpf()
    except libbpf.BpfError as exc:
        raise HintsUnavailable(str(exc)) from None


def _endpoint(family: int, addr: bytes, port: int) -> str | None:
    if family == AF_INET:
        return "%s:%d" % (socket.inet_ntop(socket.AF_INET, addr[:4]), port)
    if family == AF_INET6:
        if addr[:12] == _V4_MAPPED:         # an IPv4 peer of a dual-stack socket: as the wire
            return "%s:%d" % (socket.inet_ntop(socket.AF_INET, addr[12:16]), port)
        return "[%s]:%d" % (socket.inet_ntop(socket.AF_INET6, addr), port)
    return None


class HintProbes:
    """The loaded program, attached to the kernel's TCP receive path and to every usable
    library in ``libraries`` (default: the system's libcrypto).  :meth:`poll` returns the
    :class:`HintEvent` s reported since the last call.  Raises :class:`HintsUnavailable` when
    nothing can be hooked; a library that cannot be hooked is reported once (WARNING) and
    skipped."""

    def __init__(self, libraries=(), object_path: str | None = None,
                 system: bool = True) -> None:
        self._obj = None
        self._rb = None
        self.libraries: list[Library] = []
        preflight(object_path)
        try:
            self._obj = libbpf.BpfObject(object_path or OBJECT_PATH)
            self._counters_fd = self._obj.map_fd("counters")
            self._ncpu = libbpf.possible_cpus()
            self._obj.attach_raw_tracepoint("recv_done", RECV_TRACEPOINT)
        except libbpf.BpfError as exc:
            self.close()
            raise HintsUnavailable(str(exc)) from None
        paths = (system_libraries() if system else []) + [str(p) for p in libraries]
        seen: set = set()
        for path in paths:
            lib, elf = resolve_library(path)
            if elf is not None and lib.identity in seen:
                continue                        # the same file by another path
            if elf is not None:
                seen.add(lib.identity)
                self._hook(lib, elf)
            self.libraries.append(lib)
            if lib.hooked:
                log.info("endpoint hints: %s", lib.describe())
            else:
                log.warning("endpoint hints: %s", lib.describe())
        if not any(lib.hooked for lib in self.libraries):
            self.close()
            if self.libraries and all("Permission denied" in (lib.reason or "")
                                      for lib in self.libraries):
                raise HintsUnavailable("the kernel refused the uprobes: permission denied (the uprobe "
                                       "perf events need CAP_SYS_ADMIN on kernels like this one, "
                                       "CAP_BPF + CAP_PERFMON only load the program)")
            raise HintsUnavailable("no OpenSSL library could be hooked (%s)" % (
                "; ".join(lib.describe() for lib in self.libraries) or "none found"))
        try:
            self._rb = libbpf.RingBuffer(self._obj.map_fd("events"))
        except libbpf.BpfError as exc:
            self.close()
            raise HintsUnavailable(str(exc)) from None
        self._clock_offset = time.time() - time.monotonic()
        self._clock_checked = time.monotonic()

    def _hook(self, lib: Library, elf: ElfFile) -> None:
        index = len(self.libraries)
        f = elf.functions
        err_off = depth_off = None
        if VERIFY_GET in f:
            err_off = accessor_offset(elf.code(VERIFY_GET), elf.machine)
            if err_off is not None and VERIFY_SET in f:
                if _store_offset(elf.code(VERIFY_SET), elf.machine) not in (None, err_off):
                    err_off = None              # the two accessors disagree: do not guess
            if VERIFY_DEPTH in f:
                depth_off = accessor_offset(elf.code(VERIFY_DEPTH), elf.machine)
                if depth_off == err_off:
                    depth_off = None
        put = ERR_V3 not in f and ERR_111 in f
        cookie = (index | (OFF_UNKNOWN if err_off is None else err_off) << 16
                  | (OFF_UNKNOWN if depth_off is None else depth_off) << 32 | int(put) << 48)
        done = []
        try:
            err_fn = ERR_V3 if ERR_V3 in f else ERR_111 if ERR_111 in f else None
            if err_fn:
                self._obj.attach_uprobe("ssl_error", lib.path, f[err_fn], cookie)
                lib.errors = err_fn
                done.append(err_fn)
            if VERIFY_GET in f:
                if VERIFY_INIT in f:
                    self._obj.attach_uprobe("verify_init", lib.path, f[VERIFY_INIT], cookie)
                self._obj.attach_uprobe("verify_get", lib.path, f[VERIFY_GET], cookie)
                if err_off is None:
                    self._obj.attach_uprobe("verify_get_ret", lib.path, f[VERIFY_GET], cookie,
                                            retprobe=True)
                lib.verify = "entry" if err_off is not None else "return"
                lib.depth = depth_off is not None
                done.append(VERIFY_GET)
        except libbpf.BpfError as exc:
            lib.reason = str(exc)
            lib.hooked = bool(done)
            return
        lib.hooked = bool(done)
        if not done:
            lib.reason = "nothing to hook"

    def library(self, index: int) -> str:
        return self.libraries[index].path if 0 <= index < len(self.libraries) else "?"

    def poll(self) -> list[HintEvent]:
        """The events reported since the last call (never blocks)."""
        if self._rb is None:
            return []
        now = time.monotonic()
        if now - self._clock_checked > 10.0:            # follow clock steps
            self._clock_offset = time.time() - now
            self._clock_checked = now
        out = []
        for rec in self._rb.drain():
            if len(rec) < EVENT.size:
                continue
            (ts, recv, tgid, tid, netns, kind, lib, code, depth, family, lport, rport, _pad,
             laddr, raddr, comm) = EVENT.unpack_from(rec)
            local = _endpoint(family, laddr, lport) if recv else None
            remote = _endpoint(family, raddr, rport) if recv else None
            out.append(HintEvent(
                ts / 1e9 + self._clock_offset, tgid, tid,
                comm.split(b"\0", 1)[0].decode("utf-8", "replace"), kind, code,
                depth if depth >= 0 else None, self.library(lib), local, remote, netns,
                (ts - recv) / 1e9 if recv else None))
        return out

    @property
    def fd(self) -> int | None:
        """An fd that is readable when events wait (epoll)."""
        return self._rb.fd if self._rb is not None else None

    def kernel_counters(self) -> dict[str, int]:
        n = len(COUNTERS)
        raw = libbpf.map_lookup(self._counters_fd, struct.pack("=I", 0), 8 * n * self._ncpu)
        if raw is None:
            return dict.fromkeys(COUNTERS, 0)
        v = struct.unpack("=%dQ" % (n * self._ncpu), raw)
        return {name: sum(v[cpu * n + i] for cpu in range(self._ncpu))
                for i, name in enumerate(COUNTERS)}

    def close(self) -> None:
        if self._rb is not None:
            self._rb.close()
            self._rb = None
        if self._obj is not None:
            self._obj.close()
            self._obj = None

    def __enter__(self) -> "HintProbes":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def find_library_paths(patterns) -> list[str]:
    """Paths (globs allowed) as given by --endpoint-hints-library."""
    out = []
    for p in patterns:
        hits = sorted(glob.glob(p)) if any(c in p for c in "*?[") else [p]
        out.extend(hits or [p])
    return out
