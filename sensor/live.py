"""Live capture with pcapy-ng 2.x: one interface, batches of ``(buf, meta)`` exactly as
:class:`sensor.capture.FileCapture` yields them, so :class:`sensor.pipeline.Summarizer` runs
unchanged.

libpcap's TPACKET_V3 ring never returns from a blocking ``next_batch`` while the wire is
quiet (see NOTES-capture), so the handle is put in non-blocking mode and :meth:`LiveCapture.poll`
waits with ``select`` on its fd, then drains with ``next_batch`` until a batch comes back
empty.  The caller's loop therefore wakes at least every ``timeout`` seconds to expire idle
flows, check its stop flag and print stats.

``set_fanout`` joins the handle to a ``PACKET_FANOUT`` group: N sensor processes opened with
the same group id share one interface (hash fanout keeps each flow on one process).

:meth:`attach_program` puts an eBPF socket filter (a program fd, ``SO_ATTACH_BPF``) on the
handle's socket instead of a BPF expression (used by :mod:`sensor.ebpf`); libpcap's own
``setfilter`` would silently replace it, so :meth:`set_filter` refuses once one is attached.

Counters: :meth:`stats` returns libpcap's ``(recv, drop, ifdrop)`` plus our own packet and
byte counts.  On ``lo`` the kernel counts outgoing copies twice (``recv`` is about double the
delivered frames); ``drop`` is what matters.
"""
from __future__ import annotations

import ctypes
import logging
import os
import select
import socket
import struct
import time
from collections.abc import Iterator

import pcapy

from cext import wire
from proto.text import one_line
from sensor.capture import unsupported_linktype

__all__ = ["LiveCapture", "LiveCaptureError", "FANOUT_MODES", "build_bpf", "enter_netns"]

log = logging.getLogger(__name__)

FANOUT_MODES = {
    "hash": pcapy.PACKET_FANOUT_HASH,
    "lb": pcapy.PACKET_FANOUT_LB,
    "cpu": pcapy.PACKET_FANOUT_CPU,
    "rollover": pcapy.PACKET_FANOUT_ROLLOVER,
    "rnd": pcapy.PACKET_FANOUT_RND,
}

#: most batches drained per poll before returning to the caller (bounds one poll's latency)
MAX_BATCHES_PER_POLL = 64
CLONE_NEWNET = 0x40000000
SO_ATTACH_BPF = 50


class LiveCaptureError(Exception):
    """The interface cannot be opened / the filter does not compile (one-line message)."""


#: the tunnel carriers the decoder opens (cext/_encap_py.py), as the eBPF filter passes them:
#: their inner connections are not selectable by a libpcap expression, so they pass whole
#: (``ether proto``, not ``mpls``/``pppoes``: those keywords shift every later offset)
TUNNELS = ("udp port 4789 or udp port 8472 or udp port 6081 or udp port 2152 or udp port 5247"
           " or ip proto 4 or ip proto 41 or ip proto 47 or ip6 proto 4 or ip6 proto 41"
           " or ip6 proto 47 or ether proto 0x8847 or ether proto 0x8848 or ether proto 0x8864")


#: how often an idle capture checks that its interface still exists (seconds)
GONE_CHECK_S = 5.0

#: IPv6 extension headers a TCP segment may follow (hop-by-hop, routing, fragment, AH,
#: destination options), as the decoder reads them
IP6_EXTENSION_HEADERS = (0, 43, 44, 51, 60)

#: VLAN tags a selection looks through (the decoder reads any number; with --port or --host
#: the libpcap selection sees this many)
VLAN_DEPTH = 3


def build_bpf(ports: list[int] | tuple[int, ...] = (), hosts: list[str] | tuple[str, ...] = (),
              extra: str | None = None) -> str:
    """A BPF expression from config: TCP on any of ``ports`` (all TCP when empty), to or from any
    of ``hosts``, and'ed with ``extra``; or a tunnel carrier (:data:`TUNNELS`), unless ``extra``
    is given (the operator's own expression is taken as written).  VLAN-tagged frames are
    matched as well."""
    parts = ["tcp"]
    if ports:
        parts.append("(" + " or ".join("port %d" % int(p) for p in ports) + ")")
    if hosts:
        parts.append("(" + " or ".join("host %s" % h for h in hosts) + ")")
    if extra:
        parts.append("(" + extra + ")")
    expr = " and ".join(parts)
    if not extra:
        # IPv6 with extension headers before TCP: libpcap's tcp and port look at the first
        # next header only, so such a packet passes on its addresses alone (the decoder reads
        # the chain; rare traffic).  Not "ip6 protochain 6": it turns libpcap's optimizer off
        # for the whole expression (20 ports and 10 hosts: 4,076 instructions, not 434; the
        # kernel takes 4,096 at most).  Tunnel carriers as they are
        chain = "ip6 and (%s)" % " or ".join("ip6 proto %d" % h for h in IP6_EXTENSION_HEADERS)
        if hosts:
            chain += " and (" + " or ".join("host %s" % h for h in hosts) + ")"
        expr = "(%s) or (%s) or (%s)" % (expr, chain, TUNNELS)
    # up to VLAN_DEPTH tags (802.1Q, QinQ...): each "vlan" moves the offsets of what follows
    # it, so the tagged cases nest
    out = expr
    for _ in range(VLAN_DEPTH):
        out = "(%s) or (vlan and (%s))" % (expr, out)
    return out


def enter_netns(name: str) -> int:
    """Switch this process into network namespace ``name`` (``/run/netns/NAME``, as made by
    ``ip netns add``) and return an fd of the namespace we came from, for :func:`leave_netns`.

    Lets one sensor process open its capture inside a namespace while its Kafka connection
    stays in the original one (needs CAP_SYS_ADMIN)."""
    libc = ctypes.CDLL(None, use_errno=True)
    here = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        fd = os.open(os.path.join("/run/netns", name), os.O_RDONLY)
    except OSError as exc:
        os.close(here)
        raise LiveCaptureError("netns %s: %s" % (name, exc.strerror)) from None
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            os.close(here)
            raise LiveCaptureError("setns %s: %s" % (name, os.strerror(err)))
    finally:
        os.close(fd)
    return here


def leave_netns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise LiveCaptureError("setns back: %s" % os.strerror(ctypes.get_errno()))
    finally:
        os.close(fd)


def check_interface(interface: str, netns: str | None = None) -> None:
    """LiveCaptureError naming the interfaces that exist when ``interface`` does not (in the
    current network namespace: the one of ``--netns`` while the capture opens)."""
    if interface == "any":
        return
    try:
        socket.if_nametoindex(interface)
    except OSError:
        names = sorted(name for _, name in socket.if_nameindex())
        where = " in network namespace %s" % netns if netns else ""
        raise LiveCaptureError("interface %s does not exist%s (there: %s); give --interface one "
                               "of those" % (interface, where, ", ".join(names))) from None


def _may_capture() -> bool:
    """Whether this process may open a packet socket (CAP_NET_RAW): libpcap through pcapy-ng
    does not always say so itself."""
    try:
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW).close()
    except PermissionError:
        return False
    except OSError:
        pass
    return True


def _open_error(interface: str, exc: Exception) -> str:
    text = one_line(exc)
    if "permission" in text.lower() or "not permitted" in text.lower() or not _may_capture():
        return ("%s: no permission to capture (%s): run as root, or give the process "
                "CAP_NET_RAW (the systemd unit does: AmbientCapabilities=CAP_NET_RAW)" % (
                    interface, text))
    return "%s: cannot capture: %s" % (interface, text)


#: the default snap length: tcpdump's.  Receive and segmentation offloads (GRO, GSO, TSO;
#: on lo, MTU 65536) hand the capture frames of up to 64 KiB of IP plus their link header --
#: 65535 cut those, a gap in the connection's stream
SNAPLEN = 262_144


class LiveCapture:
    """One live capture handle.  ``poll(timeout)`` -> list of ``(buf, meta)`` batches."""

    backend = "pcap"

    def __init__(self, interface: str, bpf: str | None = None, snaplen: int = SNAPLEN,
                 promisc: bool = True, buffer_mb: int = 32, batch: int = 4096,
                 fanout_group: int | None = None, fanout_mode: str = "hash",
                 netns: str | None = None) -> None:
        self.interface = interface
        self.netns = netns
        self.bpf = bpf
        self.batch = batch
        self.packets = 0
        self.bytes = 0
        self._closed = False
        self.program_fd: int | None = None
        back = enter_netns(netns) if netns else None
        try:
            self._open(interface, snaplen, promisc, buffer_mb, fanout_group, fanout_mode)
        finally:
            if back is not None:
                leave_netns(back)

    def _open(self, interface, snaplen, promisc, buffer_mb, fanout_group, fanout_mode) -> None:
        check_interface(interface, self.netns)
        try:
            r = pcapy.create(interface)
            r.set_snaplen(snaplen)
            r.set_promisc(1 if promisc else 0)
            r.set_timeout(100)
            r.set_buffer_size(buffer_mb << 20)
            r.activate()
            # pcapy-ng does not report every failed activate(): the first use of the handle
            # does (e.g. "F_GETFL: Bad file descriptor")
            r.setnonblock(1)
        except Exception as exc:
            raise LiveCaptureError(_open_error(interface, exc)) from None
        self._r = r
        if self.bpf:
            try:
                r.setfilter(self.bpf)
            except Exception as exc:
                raise LiveCaptureError("BPF filter %r: %s" % (self.bpf, one_line(exc))) from None
        if fanout_group is not None:
            mode = FANOUT_MODES.get(fanout_mode)
            if mode is None:
                raise LiveCaptureError("fanout mode must be one of %s" % ", ".join(FANOUT_MODES))
            try:
                r.set_fanout(int(fanout_group), mode)
            except Exception as exc:
                raise LiveCaptureError("fanout group %s: %s" % (fanout_group, one_line(exc))) from None
        self.linktype = r.datalink()
        if self.linktype not in wire.LINKTYPES:
            raise LiveCaptureError(unsupported_linktype(interface, self.linktype))
        self._fd = r.getfd()
        # the interface's index: a read error that comes with another index (or none) means it
        # was deleted (made again, it is another interface this handle does not see)
        self._index = self._ifindex() if interface != "any" else None
        self._checked = time.monotonic()
        log.info("capturing on %s (linktype %d, filter %r, fanout %s)", interface, self.linktype,
                 self.bpf, fanout_group)

    def _in_netns(self, fn, arg):
        """``fn(arg)`` in the capture's namespace (its interfaces are there)."""
        back = enter_netns(self.netns) if self.netns else None
        try:
            return fn(arg)
        finally:
            if back is not None:
                leave_netns(back)

    def _ifindex(self) -> "int | None":
        try:
            return self._in_netns(socket.if_nametoindex, self.interface)
        except OSError:
            return None

    def _check_gone(self) -> None:
        """Raise LiveCaptureError if the interface this handle reads (by its index: renamed,
        it is still read) was deleted: it never reads again (down, it comes back up)."""
        self._checked = time.monotonic()
        if self._index is None:
            return
        try:
            self._in_netns(socket.if_indextoname, self._index)
        except LiveCaptureError:        # (the namespace's name removed: it lives on)
            return
        except OSError:
            raise LiveCaptureError("%s: the interface is gone (deleted): the capture cannot go "
                                   "on" % self.interface) from None

    def poll(self, timeout: float) -> list[tuple[bytes, bytes]]:
        """Wait up to ``timeout`` s for packets, then drain what is there (bounded)."""
        if self._closed:
            return []
        try:
            ready, _, _ = select.select([self._fd], [], [], timeout)
        except InterruptedError:
            ready = []
        except (OSError, ValueError):
            return []
        out: list[tuple[bytes, bytes]] = []
        # drain even without readiness: TPACKET_V3 blocks can be retired by the ring timer
        for _ in range(MAX_BATCHES_PER_POLL):
            try:
                buf, meta = self._r.next_batch(self.batch)
            except Exception as exc:    # a read error on a live handle: report, keep going
                self._check_gone()
                log.warning("capture read on %s: %s", self.interface, one_line(exc))
                break
            if not meta:
                break
            self.packets += len(meta) >> 4
            self.bytes += len(buf)
            out.append((buf, meta))
        if not out and time.monotonic() - self._checked >= GONE_CHECK_S:
            self._check_gone()
        if not ready and not out:
            return []
        return out

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        while not self._closed:
            yield from self.poll(0.5)

    def attach_program(self, prog_fd: int) -> None:
        """Attach an eBPF socket filter program (replaces any BPF expression)."""
        sock = socket.socket(fileno=os.dup(self._fd))
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_BPF, struct.pack("i", prog_fd))
        except OSError as exc:
            raise LiveCaptureError("%s: cannot attach the eBPF filter: %s"
                                   % (self.interface, exc.strerror)) from None
        finally:
            sock.close()                # a dup: the filter stays on the handle's socket
        self.program_fd = prog_fd
        self.bpf = None

    def set_filter(self, bpf: str) -> None:
        if self.program_fd is not None:
            raise LiveCaptureError("an eBPF filter is attached; a BPF expression would "
                                   "replace it (use the pcap backend for expressions)")
        try:
            self._r.setfilter(bpf)
        except Exception as exc:
            raise LiveCaptureError("BPF filter %r: %s" % (bpf, one_line(exc))) from None
        self.bpf = bpf

    def stats(self) -> dict[str, int]:
        try:
            recv, drop, ifdrop = self._r.stats()
        except Exception:
            recv = drop = ifdrop = -1
        return {"pcap_recv": recv, "pcap_drop": drop, "pcap_ifdrop": ifdrop,
                "packets": self.packets, "bytes": self.bytes}

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self._r.close()
            except Exception:
                pass

    def __enter__(self) -> "LiveCapture":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
