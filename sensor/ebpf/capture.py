"""The eBPF capture backend: :class:`sensor.live.LiveCapture` (libpcap's TPACKET_V3 ring,
``next_batch``, ``PACKET_FANOUT``) with the in-kernel handshake filter attached to its
socket instead of a BPF expression.  Same ``poll()`` / ``linktype`` / ``stats()`` /
``close()`` interface, so :class:`sensor.pipeline.Summarizer` runs unchanged.

See :mod:`sensor.ebpf` for the design, the counters and the privileges.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import socket
import struct
import time

from sensor.ebpf import libbpf
from cext._flows_py import SKIP_MIN
from sensor.live import SNAPLEN, LiveCapture, LiveCaptureError

__all__ = ["EbpfCapture", "TlsFilter", "EbpfUnavailable", "L2_ETHERNET", "L2_NONE", "COUNTERS", "OBJECT_PATH", "preflight",
           "DEFAULT_MAP_SIZE", "DEFAULT_BUDGET_BYTES", "DEFAULT_BUDGET_PACKETS",
           "flow_key"]

log = logging.getLogger(__name__)

HERE = os.path.dirname(os.path.abspath(__file__))
#: the compiled program (setup.py builds it next to its source when clang is available)
OBJECT_PATH = os.environ.get("TLSDIAG_BPF_OBJECT") or os.path.join(HERE, "tlsfilter.bpf.o")
PROGRAM = "tls_filter"

DEFAULT_MAP_SIZE = 131_072
DEFAULT_BUDGET_BYTES = 4 << 20
DEFAULT_BUDGET_PACKETS = 1024
#: kernel version that has everything the program uses (bpf_loop: 5.17)
MIN_KERNEL = (5, 17)

#: kernel counters, in the order of the enum in tlsfilter.bpf.c; stats() reports them as
#: ``ebpf_<name>`` (plus ``ebpf_dropped``, the sum of the drop_* ones)
COUNTERS = (
    "seen", "passed", "drop_filter", "drop_nopayload", "drop_skip", "drop_done", "drop_budget",
    "flows_new", "flows_midstream", "flows_reopened", "flows_over", "flows_closed",
    "flows_marked", "flows_lost", "flows_budget", "unparsed", "loopback_out", "map_fail",
    "records", "tunnel", "closed_linger",
)
_DROPS = tuple(i for i, n in enumerate(COUNTERS) if n.startswith("drop_"))

# struct config in tlsfilter.bpf.c
_CONFIG_HEAD = struct.Struct("=IIIIIIQ")
L2_ETHERNET, L2_NONE = 0, 1
CFG_PORTS, CFG_HOSTS = 1, 2
#: pcap link types -> where the socket filter finds the IP header
_L2 = {1: L2_ETHERNET, 113: L2_NONE, 276: L2_NONE, 12: L2_NONE, 14: L2_NONE, 101: L2_NONE}
#: lo is ifindex 1 in every network namespace (LOOPBACK_IFINDEX)
LOOPBACK_IFINDEX = 1
CAP_SYS_ADMIN, CAP_BPF = 21, 39
_U64 = struct.Struct("=Q")
#: sizeof(struct flow)
FLOW_SIZE = 96


class EbpfUnavailable(LiveCaptureError):
    """The eBPF backend cannot run here; ``str()`` is the one-line reason (the ``auto``
    backend logs it and falls back to libpcap)."""


def preflight(object_path: str | None = None) -> None:
    """Raise :class:`EbpfUnavailable` with the reason if the program cannot be loaded here,
    before anything is opened: object not built, libbpf missing, kernel too old, no
    privilege.  (A kernel that refuses the program anyway is reported by the load.)"""
    for why in (libbpf.unbuilt_object(object_path or OBJECT_PATH),
                libbpf.kernel_too_old(MIN_KERNEL, "the filter needs bpf_loop:")):
        if why:
            raise EbpfUnavailable(why)
    caps = libbpf.effective_caps()
    if caps is not None and not (caps >> CAP_BPF & 1 or caps >> CAP_SYS_ADMIN & 1):
        raise EbpfUnavailable("no privilege to load eBPF programs (needs CAP_BPF, "
                              "with CAP_NET_RAW for the capture)")
    try:
        libbpf.load_libbpf()
    except libbpf.BpfError as exc:
        raise EbpfUnavailable(str(exc)) from None


def _addr16(ip) -> bytes:
    b = ip.packed
    return b + bytes(16 - len(b))


def _endpoint(text: str) -> bytes:
    """``ip:port`` / ``[ip6]:port`` (as summaries write them) -> address + port bytes."""
    host, _, port = text.rpartition(":")
    try:
        if host[:1] == "[":
            addr = socket.inet_pton(socket.AF_INET6, host[1:-1])
        else:
            addr = socket.inet_pton(socket.AF_INET, host)
        return addr + int(port).to_bytes(2, "big")
    except (OSError, ValueError, OverflowError):
        raise ValueError("not an endpoint: %r" % (text,)) from None


_PAD12 = bytes(12)
_FAMILY = {6: struct.pack("=I", 4), 18: struct.pack("=I", 6)}


def flow_key(client: str, server: str) -> bytes:
    """The filter's flow key (struct flow_key) for two endpoints as summaries write them:
    the endpoints ordered bytewise (address, then port), as the engine orders its key."""
    a, b = _endpoint(client), _endpoint(server)
    if len(a) != len(b):
        raise ValueError("mixed address families: %s %s" % (client, server))
    lo, hi = (a, b) if a <= b else (b, a)
    if len(a) == 6:
        return lo[:4] + _PAD12 + hi[:4] + _PAD12 + lo[4:] + hi[4:] + _FAMILY[6]
    return lo[:16] + hi[:16] + lo[16:] + hi[16:] + _FAMILY[18]


class TlsFilter:
    """The loaded program and its maps, not yet attached to anything.

    ``l2`` says where the program finds the IP header (``L2_ETHERNET`` for a SOCK_RAW
    Ethernet socket, ``L2_NONE`` for SOCK_DGRAM / raw IP, and for :meth:`run`).  Raises
    :class:`EbpfUnavailable`.
    """

    def __init__(self, l2: int = L2_ETHERNET, ports=(), hosts=(), snaplen: int = SNAPLEN,
                 map_size: int = DEFAULT_MAP_SIZE, budget_bytes: int = DEFAULT_BUDGET_BYTES,
                 budget_packets: int = DEFAULT_BUDGET_PACKETS, skip_min: int = SKIP_MIN,
                 object_path: str | None = None) -> None:
        self._obj = None
        self._host_keys: set = set()
        self.l2 = l2
        self.snaplen = snaplen
        self.skip_min = int(skip_min)
        self.budget_bytes = int(budget_bytes)
        self.budget_packets = int(budget_packets)
        self.map_size = int(map_size)
        self.marks_sent = 0
        self._marks: list = []                  # (key, value) queued for flush_marks
        preflight(object_path)
        try:
            self._obj = libbpf.BpfObject(object_path or OBJECT_PATH, {"flows": self.map_size})
            self.prog_fd = self._obj.program_fd(PROGRAM)
            self._config_fd = self._obj.map_fd(".data.config")
            self._counters_fd = self._obj.map_fd("counters")
            self._marks_fd = self._obj.map_fd("marks")
            self._hosts_fd = self._obj.map_fd("hosts")
            self._flows_fd = self._obj.map_fd("flows")
            self._ncpu = libbpf.possible_cpus()
        except libbpf.BpfError as exc:
            self.close()
            raise EbpfUnavailable(str(exc)) from None
        try:
            self.set_selection(ports, hosts)
        except Exception:
            self.close()
            raise
        self._clock_offset = time.time() - time.monotonic()
        self._clock_checked = time.monotonic()

    def set_selection(self, ports=(), hosts=()) -> None:
        """(Re)set the ports / hosts selection (the eBPF twin of ``build_bpf``); takes
        effect with the next packet (e.g. on SIGHUP)."""
        flags = 0
        bitmap = bytearray(8192)
        for p in ports:
            p = int(p)
            if not 0 <= p <= 65535:
                raise LiveCaptureError("port %d out of range" % p)
            bitmap[p >> 3] |= 1 << (p & 7)
            flags |= CFG_PORTS
        addrs = []
        for h in hosts:
            try:
                addrs.append(_addr16(ipaddress.ip_address(h)))
            except ValueError:
                raise EbpfUnavailable("host %r: the eBPF filter takes IP addresses, not "
                                      "names or networks" % (h,)) from None
        if addrs:
            flags |= CFG_HOSTS
        for a in self._host_keys - set(addrs):
            libbpf.map_delete(self._hosts_fd, a)
        for a in addrs:
            libbpf.map_update(self._hosts_fd, a, b"\x01")
        self._host_keys = set(addrs)
        cfg = _CONFIG_HEAD.pack(self.l2, flags, LOOPBACK_IFINDEX, self.snaplen, self.skip_min,
                                self.budget_packets, self.budget_bytes) + bytes(bitmap)
        rc = libbpf.map_update(self._config_fd, struct.pack("=I", 0), cfg)
        if rc:
            raise EbpfUnavailable("cannot configure the filter: %s" % os.strerror(-rc))
        self.ports = tuple(int(p) for p in ports)
        self.hosts = tuple(hosts)

    # -- the engine's side ---------------------------------------------------------------------
    def flow_finished(self, client: str, server: str, end: float) -> bool:
        """The engine finished the connection ``client`` <-> ``server`` whose last packet it
        used had timestamp ``end`` (capture clock, seconds): the filter drops the rest of it.
        A later connection on the same endpoints (created after ``end``) is not affected.
        Returns False if the mark could not be written."""
        now = time.monotonic()
        if now - self._clock_checked > 10.0:        # follow clock steps
            self._clock_offset = time.time() - now
            self._clock_checked = now
        return self._mark(client, server, int((end - self._clock_offset) * 1e9))

    def _mark(self, client: str, server: str, mono_ns: int) -> bool:
        """Queue a mark (written by :meth:`flush_marks`, at the latest with 256 queued)."""
        try:
            key = flow_key(client, server)
        except ValueError:
            return False
        self._marks.append((key, _U64.pack(max(mono_ns, 0))))
        if len(self._marks) >= 256:
            self.flush_marks()
        return True

    def flush_marks(self) -> None:
        """Write the queued marks: one ``bpf()`` call for all of them."""
        marks, self._marks = self._marks, []
        if not marks:
            return
        keys = b"".join(k for k, _ in marks)
        values = b"".join(v for _, v in marks)
        rc = libbpf.map_update_batch(self._marks_fd, keys, values, len(marks))
        if rc == 0:
            self.marks_sent += len(marks)
            return
        for k, v in marks:                      # no batch support: one at a time
            if libbpf.map_update(self._marks_fd, k, v) == 0:
                self.marks_sent += 1

    def finished(self, summary: dict) -> None:
        """:meth:`flow_finished` for a finished summary (raw or JSON: ``client``, ``server``,
        ``end``, ``close``).  Skips connections the filter ended itself (reset, or closed
        by both sides)."""
        close = summary.get("close") or {}
        if close.get("rst") or len(close.get("fin") or ()) == 2:
            return
        self.flow_finished(summary["client"], summary["server"], summary["end"])

    # -- counters ------------------------------------------------------------------------------
    def kernel_counters(self) -> dict[str, int]:
        """The filter's counters summed over CPUs: ``{name: value}`` (see COUNTERS)."""
        n = len(COUNTERS)
        raw = libbpf.map_lookup(self._counters_fd, struct.pack("=I", 0), 8 * n * self._ncpu)
        if raw is None:
            return dict.fromkeys(COUNTERS, 0)
        v = struct.unpack("=%dQ" % (n * self._ncpu), raw)
        return {name: sum(v[cpu * n + i] for cpu in range(self._ncpu))
                for i, name in enumerate(COUNTERS)}

    def stats(self) -> dict[str, int]:
        """``ebpf_<counter>`` for each kernel counter, ``ebpf_dropped`` (all drops) and
        ``ebpf_marks_sent``."""
        k = self.kernel_counters()
        s = {"ebpf_" + name: v for name, v in k.items()}
        s["ebpf_dropped"] = sum(k[COUNTERS[i]] for i in _DROPS)
        s["ebpf_marks_sent"] = self.marks_sent
        return s

    def flow_state(self, client: str, server: str) -> bytes | None:
        """The raw struct flow of a connection (tests and debugging)."""
        return libbpf.map_lookup(self._flows_fd, flow_key(client, server), FLOW_SIZE)

    # -- offline ---------------------------------------------------------------------------------
    def run(self, frame: bytes) -> bool:
        """Run the program on one Ethernet frame (``BPF_PROG_TEST_RUN``; the kernel hands the
        program the frame from its IP header on, so build the filter with ``l2=L2_NONE``):
        True = it would pass.  Frames above ~3.5 KB cannot be test-run (ValueError)."""
        if self._marks:
            self.flush_marks()
        rc, ret = libbpf.test_run(self.prog_fd, frame)
        if rc:
            raise ValueError("test run: %s" % os.strerror(-rc))
        return ret != 0

    def close(self) -> None:
        if self._obj is not None:
            self._obj.close()
            self._obj = None


class EbpfCapture:
    """A live capture with the in-kernel handshake filter.  ``poll(timeout)`` -> list of
    ``(buf, meta)`` batches, like :class:`sensor.live.LiveCapture`.

    ``ports`` / ``hosts`` select traffic as the libpcap backend's generated expression does
    (TCP on any of the ports, to or from any of the hosts; empty = all TCP).  ``map_size``
    bounds the kernel's flow table (LRU); ``budget_bytes`` / ``budget_packets`` cut a flow
    the filter cannot follow; ``skip_min`` must be the flow table's (``Summarizer(skip_min=)``).
    Raises :class:`EbpfUnavailable` (a reason to fall back to libpcap) or
    :class:`sensor.live.LiveCaptureError` (the interface cannot be opened at all).
    """

    backend = "ebpf"

    def __init__(self, interface: str, ports=(), hosts=(), snaplen: int = SNAPLEN,
                 promisc: bool = True, buffer_mb: int = 32, batch: int = 4096,
                 fanout_group: int | None = None, fanout_mode: str = "hash",
                 netns: str | None = None, map_size: int = DEFAULT_MAP_SIZE,
                 budget_bytes: int = DEFAULT_BUDGET_BYTES,
                 budget_packets: int = DEFAULT_BUDGET_PACKETS, skip_min: int = SKIP_MIN,
                 object_path: str | None = None) -> None:
        self.interface = interface
        self._live = None
        # load first: a refused program falls back before the interface is opened
        self.filter = TlsFilter(L2_ETHERNET, ports, hosts, snaplen, map_size, budget_bytes,
                                budget_packets, skip_min, object_path)
        try:
            self._live = LiveCapture(interface, bpf=None, snaplen=snaplen, promisc=promisc,
                                     buffer_mb=buffer_mb, batch=batch,
                                     fanout_group=fanout_group, fanout_mode=fanout_mode,
                                     netns=netns)
            self.linktype = self._live.linktype
            l2 = _L2.get(self.linktype)
            if l2 is None:
                raise EbpfUnavailable("%s: link type %d is not supported by the eBPF filter"
                                      % (interface, self.linktype))
            if l2 != self.filter.l2:
                self.filter.l2 = l2
                self.filter.set_selection(ports, hosts)
            self._live.attach_program(self.filter.prog_fd)
        except Exception:
            self.close()
            raise
        log.info("eBPF handshake filter on %s (flow map %d, budget %d packets / %d bytes)",
                 interface, self.filter.map_size, budget_packets, budget_bytes)

    @property
    def packets(self) -> int:
        return self._live.packets if self._live is not None else 0

    @property
    def bytes(self) -> int:
        return self._live.bytes if self._live is not None else 0

    def poll(self, timeout: float) -> list[tuple[bytes, bytes]]:
        self.filter.flush_marks()               # the marks of the last poll's summaries
        return self._live.poll(timeout)

    def __iter__(self):
        return iter(self._live)

    def set_filter(self, bpf: str) -> None:
        raise LiveCaptureError("the eBPF backend selects traffic by ports and hosts; a BPF "
                               "expression needs the pcap backend")

    def set_selection(self, ports=(), hosts=()) -> None:
        self.filter.set_selection(ports, hosts)

    def flow_finished(self, client: str, server: str, end: float) -> bool:
        return self.filter.flow_finished(client, server, end)

    def finished(self, summary: dict) -> None:
        self.filter.finished(summary)

    def stats(self) -> dict[str, int]:
        s = self._live.stats() if self._live is not None else {}
        s.update(self.filter.stats())
        return s

    def close(self) -> None:
        if self._live is not None:
            self._live.close()
            self._live = None
        if getattr(self, "filter", None) is not None:
            self.filter.close()

    def __enter__(self) -> "EbpfCapture":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
