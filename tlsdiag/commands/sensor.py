"""``tlsdiag sensor --interface IF --kafka HOST:PORT [--config FILE] ...``

Live capture -> :class:`sensor.loop.Sensor` (summaries stamped with this sensor's id and their
direction, northbound/southbound, from ``--role`` / ``--local-net`` exactly as ``tlsdiag
diagnose`` decides it) -> :class:`sensor.publisher.Publisher` (Kafka, spool).

Signals only set flags: ``SIGTERM``/``SIGINT`` -> finish the current batch, summarize open
flows, flush the publisher (what cannot be delivered stays in the spool) and exit 0;
``SIGHUP`` -> re-read the settings (role, local nets, BPF filter, stats interval).
A stats line is logged every ``stats_interval`` seconds; Prometheus metrics on
``--metrics-port``.  ``--workers N`` starts N capture processes in one ``PACKET_FANOUT``
group on the interface (each with its own spool and metrics port + i).
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import subprocess
import sys
import time

from sensor.backends import open_capture
from sensor.ebpf.hints import HintProbes, HintsUnavailable, find_library_paths
from sensor.hints import HintJoiner
from sensor.live import LiveCaptureError, build_bpf
from sensor.loop import Sensor, SensorConfig
from sensor.publisher import Publisher, PublisherConfig
from tlsdiag import settings
from tlsdiag.commands import common
from tlsdiag.kafka import best_compression, ensure_topics
from tlsdiag.settings import ConfigError, Values
from tlsdiag.status import ExitStatus

__all__ = ["main"]

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    return common.parser("sensor", "Live capture on one interface; one handshake summary per "
                         "TLS connection to Kafka (spooled to disk while Kafka is away).")


def sensor_id(v: Values) -> str:
    return v["sensor_id"] or "%s/%s" % (socket.gethostname(), v["interface"])


def spool_dir(v: Values) -> str:
    """``--spool-dir``, else a directory that is the same after a restart (so the spool is
    replayed): systemd's $STATE_DIRECTORY, else $TMPDIR (or /tmp), per sensor id."""
    if v["spool_dir"]:
        return v["spool_dir"]
    base = os.environ.get("STATE_DIRECTORY", "").split(":")[0] or os.environ.get("TMPDIR") \
        or "/tmp"
    return os.path.join(base, "tlsdiag-spool", sensor_id(v).replace("/", "_"))


def bpf_expression(v: Values) -> str | None:
    if not v["ports"] and not v["hosts"] and not v["bpf"]:
        return None
    return build_bpf(v["ports"], v["hosts"], v["bpf"])


def open_live(v: Values, **kw):
    """The capture of ``--backend`` (sensor and watch); ``auto``'s fallback to libpcap is
    logged once, with its reason."""
    cap, fallback = open_capture(v["backend"], v["interface"], ports=v["ports"], hosts=v["hosts"],
                                 bpf=v["bpf"], snaplen=v["snaplen"], buffer_mb=v["buffer_mb"],
                                 netns=v["netns"], ebpf_options={"map_size": v["ebpf_flows"]},
                                 **kw)
    if fallback:
        log.warning("capture backend: libpcap, not eBPF: %s", fallback)
    else:
        log.info("capture backend: %s", cap.backend)
    return cap


def open_hints(v: Values) -> HintJoiner | None:
    """``--endpoint-hints`` (sensor and watch): the probes and their joiner, or None -- off, or
    unavailable here, which is logged once with the reason (the summaries stay wire-only)."""
    if not v["endpoint_hints"]:
        return None
    try:
        probes = HintProbes(find_library_paths(v["endpoint_hints_libraries"]))
    except HintsUnavailable as e:
        log.warning("endpoint hints off: %s", e)
        return None
    return HintJoiner(probes)


def close_hints(hints: HintJoiner | None) -> None:
    if hints is not None:
        hints.source.close()


def compression(setting: str) -> str | None:
    return None if setting == "none" else best_compression() if setting == "auto" else setting


def sensor_config(v: Values) -> SensorConfig:
    return SensorConfig(sensor_id=sensor_id(v), role=v["role"], local_nets=v["local_nets"],
                        table=settings.flow_table(v))


def sensor_metrics(sensor: Sensor, pub) -> list:
    s = sensor.stats()
    p = pub.stats() if pub is not None else {}
    out = [
        common.build_info(),
        ("tlsdiag_sensor_packets_total", "counter", "frames read from the capture", s["packets"]),
        ("tlsdiag_sensor_bytes_total", "counter", "captured bytes", s["bytes"]),
        ("tlsdiag_sensor_pcap_received_total", "counter", "libpcap stats() recv", s["pcap_recv"]),
        ("tlsdiag_sensor_pcap_dropped_total", "counter", "libpcap stats() drop (buffer full)",
         s["pcap_drop"]),
        ("tlsdiag_sensor_pcap_ifdropped_total", "counter", "libpcap stats() ifdrop",
         s["pcap_ifdrop"]),
        ("tlsdiag_sensor_flows_created_total", "counter", "TCP flows tracked",
         s.get("flows_created", 0)),
        ("tlsdiag_sensor_reassembly_bytes", "gauge", "bytes the tracked connections hold for "
         "reassembly (bounded by reassembly_memcap_mb)", sensor.summ.table.buffered),
        ("tlsdiag_sensor_reassembly_memcap_total", "counter", "times a connection gave up what "
         "it held for reassembly: the memcap was reached", s.get("reassembly_memcap", 0)),
        ("tlsdiag_sensor_tcp_ignored_total", "counter", "TCP segments a real stack ignores and "
         "so does the flow table: a SYN inside a connection (a duplicate, a stray flag), a RST "
         "far from the sender's data (a blind spoof)",
         {(("why", k),): s.get(k, 0) for k in ("syn_inside_connection", "rst_out_of_window")}),
        ("tlsdiag_sensor_summaries_total", "counter", "handshake summaries by direction",
         {(("direction", k),): v for k, v in sensor.by_direction.items()} or
         {(("direction", "unknown"),): 0}),
    ]
    errors = {(("where", "flow_table"),): s.get("internal_errors", 0)}
    if pub is not None:
        errors[(("where", "publisher"),)] = p.get("internal_errors", 0)
    out.append(("tlsdiag_sensor_internal_errors_total", "counter", "bugs caught and counted "
                "(the flow table summarizes the connection; the publisher drops the message); "
                "logged at powers of 2", errors))
    if pub is not None:
        out += [
            ("tlsdiag_sensor_published_total", "counter", "summaries handed to the publisher",
             p["published"]),
            ("tlsdiag_sensor_acked_total", "counter", "messages acknowledged by Kafka", p["acked"]),
            ("tlsdiag_sensor_send_errors_total", "counter", "failed sends/deliveries",
             p["send_errors"]),
            ("tlsdiag_sensor_rejected_total", "counter", "messages dropped because Kafka "
             "refuses them for themselves (too large for max_request_size or the topic's "
             "max.message.bytes; invalid)", p["rejected"]),
            ("tlsdiag_sensor_spooled_total", "counter", "messages written to the spool",
             p["spooled"]),
            ("tlsdiag_sensor_spool_dropped_total", "counter", "messages dropped: spool full",
             p["spool_dropped"]),
            ("tlsdiag_sensor_spool_torn_total", "counter",
             "spool records skipped: torn, or of an unknown kind", p["spool_torn"]),
            ("tlsdiag_sensor_spool_depth", "gauge", "messages in the spool", p["spool_depth"]),
            ("tlsdiag_sensor_queue_depth", "gauge", "messages in the publish queue",
             p["queue_depth"]),
            ("tlsdiag_sensor_kafka_online", "gauge", "1 when Kafka accepts messages", p["online"]),
        ]
    if "hints_events" in s:
        out += [
            ("tlsdiag_sensor_hints_events_total", "counter",
             "reports of the endpoints' OpenSSL (endpoint hints)", s["hints_events"]),
            ("tlsdiag_sensor_hints_total", "counter", "endpoint hints by what became of them "
             "(joined to a summary; unmapped: no socket read by the reporting thread within "
             "1 s; expired: no summary claimed them)",
             {(("fate", k),): s["hints_" + k] for k in ("joined", "unmapped", "expired")}),
            ("tlsdiag_sensor_hints_summaries_total", "counter", "summaries with endpoint hints",
             s["hints_summaries"]),
            ("tlsdiag_sensor_hints_ringbuf_full_total", "counter",
             "endpoint hints lost in the kernel: ring buffer full",
             s.get("hints_kernel_ringbuf_full", 0)),
        ]
    out.append(("tlsdiag_sensor_capture_backend", "gauge", "the capture backend in use",
                {(("backend", getattr(sensor.cap, "backend", "pcap")),): 1}))
    if "ebpf_seen" in s:
        out += [
            ("tlsdiag_sensor_ebpf_seen_total", "counter", "frames the eBPF filter ran on",
             s["ebpf_seen"]),
            ("tlsdiag_sensor_ebpf_passed_total", "counter", "frames the eBPF filter passed",
             s["ebpf_passed"]),
            ("tlsdiag_sensor_ebpf_dropped_total", "counter",
             "frames the eBPF filter dropped in the kernel, by reason",
             {(("reason", k[len("ebpf_drop_"):]),): n for k, n in s.items()
              if k.startswith("ebpf_drop_")}),
            ("tlsdiag_sensor_ebpf_flows_total", "counter",
             "connections the eBPF filter followed, by what became of them (midstream: seen "
             "without their SYN -- before the sensor started, or evicted from the full map)",
             {(("event", k[len("ebpf_flows_"):]),): n for k, n in s.items()
              if k.startswith("ebpf_flows_")}),
            ("tlsdiag_sensor_ebpf_map_failures_total", "counter",
             "flow map updates the kernel refused", s.get("ebpf_map_fail", 0)),
            ("tlsdiag_sensor_ebpf_passed_unfollowed_total", "counter",
             "frames the eBPF filter passed without following them: tunnel carriers (the "
             "engine decapsulates), frames of a connection in its close linger (server data "
             "after a reset), headers it does not parse",
             {(("why", "tunnel"),): s.get("ebpf_tunnel", 0),
              (("why", "closed_linger"),): s.get("ebpf_closed_linger", 0),
              (("why", "unparsed"),): s.get("ebpf_unparsed", 0)}),
        ]
    weirds = {(("reason", k[6:]),): v for k, v in s.items() if k.startswith("weird.")}
    if weirds:
        out.append(("tlsdiag_sensor_weirds_total", "counter", "malformed input by reason", weirds))
    out += tunnel_metrics(s)
    return out


def tunnel_metrics(s: dict) -> list:
    """The decoder's tunnel counters (issue 15, ``encap_*`` of its stats): layers removed by
    encapsulation, and tunnel headers skipped (malformed or truncated; too deep nesting)."""
    removed, skipped = {}, {}
    for k, v in s.items():
        if not k.startswith("encap_"):
            continue
        if k == "encap_too_deep":
            skipped[(("encapsulation", "any"), ("reason", "too_deep"))] = v
        elif k.endswith("_malformed"):
            skipped[(("encapsulation", k[6:-10]), ("reason", "malformed"))] = v
        else:
            removed[(("encapsulation", k[6:]),)] = v
    if not removed:
        return []
    return [("tlsdiag_sensor_decapsulated_total", "counter",
             "tunnel layers the decoder removed (VXLAN, GENEVE, GRE, ERSPAN, IP-in-IP, PPPoE, "
             "GTP-U, MPLS, CAPWAP), by encapsulation", removed),
            ("tlsdiag_sensor_decapsulation_skipped_total", "counter",
             "frames dropped for a malformed or truncated tunnel header, or too many layers",
             skipped)]


def _spawn_workers(argv: list[str], v: Values) -> int:
    """Supervisor: N children ``--workers 1 --fanout-group G``; signals forwarded."""
    group = v["fanout_group"] if v["fanout_group"] is not None else (os.getpid() & 0xFFFF)
    procs = []
    for i in range(v["workers"]):
        extra = ["--workers", "1", "--fanout-group", str(group), "--sensor-id", sensor_id(v)]
        if v["metrics_port"] is not None:
            extra += ["--metrics-port", str(v["metrics_port"] + i)]
        extra += ["--spool-dir", os.path.join(spool_dir(v), "worker-%d" % i)]
        procs.append(subprocess.Popen([sys.executable, "-m", "tlsdiag", "sensor"] + argv + extra))

    def forward(sig, _frame):
        for p in procs:
            if p.poll() is None:
                p.send_signal(sig)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    rc = 0
    for p in procs:
        while True:
            try:
                rc = max(rc, p.wait())
                break
            except InterruptedError:
                continue
    return rc


def run(argv: list[str]) -> int:
    started = common.start("sensor", build_parser(), argv, log_base=logging.INFO)
    if isinstance(started, int):
        return started
    a, v = started
    if v["workers"] > 1:
        return _spawn_workers(argv, v)
    cfg = sensor_config(v)
    try:
        cap = open_live(v, fanout_group=v["fanout_group"], fanout_mode=v["fanout_mode"])
    except LiveCaptureError as e:
        return common.fail("sensor", e)
    pub = Publisher(PublisherConfig(
        bootstrap=v["kafka"], topic_handshakes=v["topic_handshakes"],
        topic_certs=v["topic_certs"], spool_dir=spool_dir(v),
        spool_max_bytes=v["spool_max_mb"] << 20, queue_max=v["queue_max"],
        compression=compression(v["compression"]),
        client_id="tlsdiag-sensor-%s" % cfg.sensor_id), ensure_topics=ensure_topics)
    pub.start()
    sensor = Sensor(cfg, cap, pub.publish, hints=open_hints(v))
    state = {"values": v}

    def on_stop(_sig, _frame):
        sensor.stop_requested = True

    def on_hup(_sig, _frame):
        sensor.reload_requested = True
    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_hup)

    metrics = None
    if v["metrics_port"] is not None:
        from tlsdiag.metrics import MetricsServer
        try:
            metrics = MetricsServer(lambda: sensor_metrics(sensor, pub), v["metrics_port"],
                                    v["metrics_host"])
        except OSError as e:
            log.error("metrics port %s: %s", v["metrics_port"], e.strerror)
    last_stats = time.monotonic()
    log.info("sensor %s capturing on %s -> %s", cfg.sensor_id, v["interface"], v["kafka"])
    lost: LiveCaptureError | None = None
    try:
        try:
            while not sensor.stop_requested:
                sensor.step(0.2)
                now = time.monotonic()
                if now - last_stats >= state["values"]["stats_interval"]:
                    last_stats = now
                    _stats_line(sensor, pub)
                if sensor.reload_requested:
                    sensor.reload_requested = False
                    _reload(sensor, a, state)
        except LiveCaptureError as e:
            # the interface went away: what was read is published, and the exit status says
            # so (systemd restarts the unit, which waits for the interface)
            lost = e
            log.error("%s", e)
        sensor.finish()
    finally:
        pub.close(timeout=3.0)
        _stats_line(sensor, pub)
        if metrics is not None:
            metrics.close()
        cap.close()
        close_hints(sensor.hints)
    return ExitStatus.ERROR if lost is not None else ExitStatus.SUCCESS


def _stats_line(sensor: Sensor, pub) -> None:
    s, p = sensor.stats(), pub.stats()
    if "ebpf_seen" in s:
        log.info("stats: ebpf seen=%d passed=%d dropped=%d flows_new=%d flows_midstream=%d "
                 "flows_over=%d map_fail=%d", s["ebpf_seen"], s["ebpf_passed"],
                 s["ebpf_dropped"], s.get("ebpf_flows_new", 0), s.get("ebpf_flows_midstream", 0),
                 s.get("ebpf_flows_over", 0), s.get("ebpf_map_fail", 0))
    if "hints_events" in s:
        log.info("stats: hints events=%d joined=%d unmapped=%d expired=%d summaries=%d "
                 "ringbuf_full=%d", s["hints_events"], s["hints_joined"], s["hints_unmapped"],
                 s["hints_expired"], s["hints_summaries"], s.get("hints_kernel_ringbuf_full", 0))
    log.info("stats: packets=%d pcap_recv=%d pcap_drop=%d ifdrop=%d flows=%d summaries=%d "
                "acked=%d spooled=%d spool_depth=%d spool_dropped=%d send_errors=%d online=%d",
                s["packets"], s["pcap_recv"], s["pcap_drop"], s["pcap_ifdrop"],
                s.get("flows_created", 0), s["summaries_emitted"], p["acked"], p["spooled"],
                p["spool_depth"], p["spool_dropped"], p["send_errors"], p["online"])


def _reload(sensor: Sensor, a: argparse.Namespace, state: dict) -> None:
    """SIGHUP: the settings again (file and environment; the flags stay); the direction
    settings and the BPF filter take effect, the rest needs a restart."""
    try:
        v = settings.load("sensor", a)
    except ConfigError as e:
        log.error("SIGHUP: settings not reloaded: %s", e)
        return
    old = state["values"]
    if getattr(sensor.cap, "backend", "pcap") == "ebpf":
        if v["bpf"]:
            log.error("SIGHUP: settings not reloaded: the eBPF filter selects by ports and "
                      "hosts, a BPF expression (%r) needs --backend pcap", v["bpf"])
            return
        if (v["ports"], v["hosts"]) != (old["ports"], old["hosts"]):
            sensor.cap.set_selection(v["ports"], v["hosts"])
    else:
        bpf = bpf_expression(v)
        if bpf != bpf_expression(old) and bpf:
            try:
                sensor.cap.set_filter(bpf)
            except Exception as e:
                log.error("SIGHUP: BPF filter %r rejected: %s", bpf, e)
                return
    state["values"] = v
    sensor.cfg = sensor_config(v)
    log.info("SIGHUP: config reloaded: %s", v.describe())


def main(argv: list[str] | None = None) -> int:
    return run(list(sys.argv[1:] if argv is None else argv))
