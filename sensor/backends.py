"""Choosing the live capture backend: ``open_capture(backend, interface, ...)``.

API for the application layer (``tlsdiag sensor|watch --backend ebpf|pcap|auto``)::

    from sensor.backends import open_capture, BACKENDS
    cap, fallback = open_capture(cfg.backend, cfg.interface, ports=cfg.ports, hosts=cfg.hosts,
                                 bpf=cfg.bpf, snaplen=..., buffer_mb=..., fanout_group=...,
                                 fanout_mode=..., netns=..., ebpf_options={"map_size": ...})
    if fallback:
        log.warning("capture backend: libpcap (%s)", fallback)   # the one line `auto` owes

* ``backend``: ``"pcap"`` (libpcap with a BPF expression built from ports/hosts/bpf, as
  before), ``"ebpf"`` (the in-kernel handshake filter, :mod:`sensor.ebpf`; an error if it
  cannot run), ``"auto"`` (eBPF, else libpcap, and ``fallback`` says why in one line: no
  privilege, kernel too old, object not built, the kernel refused the program, a BPF
  expression was given).  ``fallback`` is None unless ``auto`` fell back.  Nothing is
  logged here: the caller logs ``fallback`` once.
* Raises :class:`sensor.live.LiveCaptureError` (one-line ``str()``) when the chosen
  backend cannot open the interface; :class:`sensor.ebpf.capture.EbpfUnavailable` (a
  subclass) for ``--backend ebpf`` where the filter cannot run.
* The capture: ``poll(timeout)`` -> ``[(buf, meta), ...]``, ``linktype``, ``packets``,
  ``bytes``, ``stats()``, ``close()``, ``set_filter(expr)`` (pcap only; the eBPF capture
  raises LiveCaptureError -- reload ports/hosts with ``set_selection(ports, hosts)``), and
  ``backend`` (``"pcap"`` / ``"ebpf"``).
* ``stats()`` of the eBPF capture adds the kernel counters to libpcap's keys
  (``pcap_recv``, ``pcap_drop``, ``pcap_ifdrop``, ``packets``, ``bytes``):
  ``ebpf_seen`` (frames the filter ran on), ``ebpf_passed``, ``ebpf_dropped`` (the sum of
  the ``ebpf_drop_*``: ``filter`` (not TCP / port / host), ``nopayload`` (pure ACKs),
  ``skip`` (ciphertext the engine skips), ``done`` (after the handshake / close),
  ``budget``), ``ebpf_flows_new``, ``ebpf_flows_midstream`` (flows seen without their SYN:
  running before the sensor started, or evicted from the LRU map -- the eviction signal),
  ``ebpf_flows_reopened``, ``ebpf_flows_over`` (handshake over, decided in the kernel),
  ``ebpf_flows_closed``, ``ebpf_flows_marked`` (ended through ``finished``),
  ``ebpf_flows_lost`` (not followable: passed), ``ebpf_flows_budget`` (cut by the budget),
  ``ebpf_unparsed``, ``ebpf_loopback_out``, ``ebpf_map_fail``, ``ebpf_records`` (record
  headers read), ``ebpf_tunnel`` (tunnel carriers passed whole: VXLAN, GENEVE, GTP-U, CAPWAP
  by UDP port, GRE, IP-in-IP, MPLS, PPPoE -- the engine decapsulates), ``ebpf_closed_linger``
  (frames passed in the second after a connection closed: server data after a reset),
  ``ebpf_marks_sent``.  All are counters (monotonic).
* The finished-flow hook: call ``cap.finished(raw_or_json_summary)`` for every summary the
  sensor emits (``getattr(cap, "finished", None)``: the pcap capture has none).  The
  kernel then drops the rest of a connection it was passing without following it (one it
  saw without the SYN, reordered, cut by its budget).  ~3 us per summary in Python, the
  marks written in one batched ``bpf()`` call at the next ``poll()``; connections ended by
  RST or both FINs are skipped.
"""
from __future__ import annotations

import logging

from sensor.ebpf.capture import EbpfCapture, EbpfUnavailable
from sensor.live import SNAPLEN, LiveCapture, LiveCaptureError, build_bpf

__all__ = ["open_capture", "BACKENDS"]

log = logging.getLogger(__name__)

BACKENDS = ("auto", "ebpf", "pcap")


def open_capture(backend: str, interface: str, *, ports=(), hosts=(), bpf: str | None = None,
                 snaplen: int = SNAPLEN, promisc: bool = True, buffer_mb: int = 32,
                 batch: int = 4096, fanout_group: int | None = None, fanout_mode: str = "hash",
                 netns: str | None = None, ebpf_options: dict | None = None):
    """``(capture, fallback_reason)``; see the module docstring.  ``ebpf_options`` go to
    :class:`sensor.ebpf.capture.EbpfCapture` (``map_size``, ``budget_bytes``,
    ``budget_packets``, ``skip_min`` -- the last must equal the Summarizer's)."""
    if backend not in BACKENDS:
        raise LiveCaptureError("capture backend must be one of %s, not %r"
                               % (", ".join(BACKENDS), backend))
    common = dict(snaplen=snaplen, promisc=promisc, buffer_mb=buffer_mb, batch=batch,
                  fanout_group=fanout_group, fanout_mode=fanout_mode, netns=netns)
    fallback = None
    if backend in ("ebpf", "auto"):
        try:
            if bpf:
                raise EbpfUnavailable("a BPF expression (%r) needs libpcap; the eBPF filter "
                                      "selects by ports and hosts" % bpf)
            cap = EbpfCapture(interface, ports=ports, hosts=hosts, **common,
                              **(ebpf_options or {}))
            return cap, None
        except EbpfUnavailable as exc:
            if backend == "ebpf":
                raise
            fallback = str(exc)
    expr = build_bpf(ports, hosts, bpf) if (ports or hosts or bpf) else None
    return LiveCapture(interface, bpf=expr, **common), fallback
