"""``tlsdiag sensor --interface IF --kafka HOST:PORT [--config FILE] ...``

Live capture -> :class:`sensor.pipeline.Summarizer` -> every summary stamped with this sensor's
id and its direction (northbound/southbound, from ``--role`` / ``--local-net`` exactly as
``tlsdiag diagnose`` decides it) -> :class:`sensor.publisher.Publisher` (Kafka, spool).

Signals only set flags: ``SIGTERM``/``SIGINT`` -> finish the current batch, summarize open
flows, flush the publisher (what cannot be delivered stays in the spool) and exit 0;
``SIGHUP`` -> re-read the config file (role, local nets, BPF filter, stats interval).
A stats line is logged every ``stats_interval`` seconds; Prometheus metrics on
``--metrics-port``.  ``--workers N`` starts N capture processes in one ``PACKET_FANOUT``
group on the interface (each with its own spool and metrics port + i).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, fields, replace
from typing import NamedTuple

from tlsdiag.status import ExitStatus

__all__ = ["main", "SensorConfig", "SETTINGS", "load_config", "Sensor"]

log = logging.getLogger(__name__)


class Setting(NamedTuple):
    name: str
    default: object
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("interface", None, "interface to capture on"),
    Setting("kafka", None, "bootstrap HOST:PORT[,HOST:PORT...]"),
    Setting("sensor_id", None, "id stamped on every summary (default HOSTNAME/INTERFACE)"),
    Setting("role", None, "router | message-processor"),
    Setting("local_nets", (), "CIDRs of the gateway's own addresses"),
    Setting("ports", (), "TCP ports to capture (BPF); empty = all TCP"),
    Setting("hosts", (), "hosts to capture (BPF); empty = all"),
    Setting("bpf", None, "extra BPF expression and'ed with ports/hosts"),
    Setting("metrics_port", None, "Prometheus metrics port (none = off)"),
    Setting("metrics_host", "0.0.0.0", "address for the metrics listener"),
    Setting("spool_dir", None, "spool directory while Kafka is away"),
    Setting("spool_max_mb", 256, "spool bound in MiB; beyond it messages are dropped (counted)"),
    Setting("queue_max", 50_000, "in-memory publish queue bound"),
    Setting("stats_interval", 60, "seconds between stats lines"),
    Setting("idle_timeout", 120, "seconds of silence before a flow is summarized"),
    Setting("max_flows", 262_144, "flow table bound"),
    Setting("snaplen", 65535, "capture snap length"),
    Setting("buffer_mb", 32, "kernel capture buffer in MiB"),
    Setting("fanout_group", None, "PACKET_FANOUT group id (shared by all workers)"),
    Setting("fanout_mode", "hash", "hash | lb | cpu | rollover | rnd"),
    Setting("workers", 1, "capture processes sharing the interface through fanout"),
    Setting("topic_handshakes", "tls.handshakes", "summaries topic"),
    Setting("topic_certs", "tls.certs", "certificates topic (compacted)"),
    Setting("compression", "auto", "zstd | lz4 | gzip | none | auto"),
    Setting("netns", None, "open the capture inside this network namespace (/run/netns/NAME)"),
)
_NAMES = {s.name for s in SETTINGS}
_LISTS = {"local_nets", "ports", "hosts"}
_INTS = {"metrics_port", "spool_max_mb", "queue_max", "stats_interval", "idle_timeout",
         "max_flows", "snaplen", "buffer_mb", "fanout_group", "workers"}


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class SensorConfig:
    interface: str | None = None
    kafka: str | None = None
    sensor_id: str | None = None
    role: str | None = None
    local_nets: tuple = ()
    ports: tuple = ()
    hosts: tuple = ()
    bpf: str | None = None
    metrics_port: int | None = None
    metrics_host: str = "0.0.0.0"
    spool_dir: str | None = None
    spool_max_mb: int = 256
    queue_max: int = 50_000
    stats_interval: int = 60
    idle_timeout: int = 120
    max_flows: int = 262_144
    snaplen: int = 65535
    buffer_mb: int = 32
    fanout_group: int | None = None
    fanout_mode: str = "hash"
    workers: int = 1
    topic_handshakes: str = "tls.handshakes"
    topic_certs: str = "tls.certs"
    compression: str = "auto"
    netns: str | None = None

    def describe(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["local_nets"] = [str(n) for n in self.local_nets]
        return d

    def bpf_expression(self) -> str | None:
        from sensor.live import build_bpf
        if not self.ports and not self.hosts and not self.bpf:
            return None
        return build_bpf(self.ports, self.hosts, self.bpf)


def _read_file(path: str) -> dict:
    try:
        raw = open(path, "rb").read()
    except OSError as e:
        raise ConfigError("cannot read config file %s: %s" % (path, e.strerror)) from None
    try:
        data = json.loads(raw) if path.endswith(".json") else tomllib.loads(raw.decode())
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError("config file %s: %s" % (path, " ".join(str(e).split()))) from None
    if not isinstance(data, dict):
        raise ConfigError("config file %s must hold a table" % path)
    out = {}
    for section in ("sensor", "diagnose"):
        if isinstance(data.get(section), dict):
            for k, v in data[section].items():
                out[str(k).replace("-", "_")] = v
    for k, v in data.items():
        if not isinstance(v, dict):
            out[str(k).replace("-", "_")] = v
    unknown = [k for k in out if k not in _NAMES]
    for k in unknown:
        log.warning("config file %s: ignoring setting %r (not a sensor setting)", path, k)
        out.pop(k)
    return out


def load_config(cli: dict, config_file: str | None, environ=None) -> SensorConfig:
    """CLI flag > ``TLSDIAG_*`` env > config file > default; validated."""
    from proto.direction import ConfigError as DiagConfigError
    from proto.direction import parse_local_nets, parse_role
    env = os.environ if environ is None else environ
    merged = {s.name: s.default for s in SETTINGS}
    if config_file:
        merged.update(_read_file(config_file))
    for s in SETTINGS:
        v = env.get("TLSDIAG_" + s.name.upper())
        if v:
            merged[s.name] = v
    for k, v in cli.items():
        if v is None or (isinstance(v, (list, tuple)) and not v):
            continue
        merged[k] = v
    try:
        for k in _LISTS:
            v = merged[k]
            if isinstance(v, str):
                v = [p.strip() for p in v.replace(" ", ",").split(",") if p.strip()]
            merged[k] = tuple(v or ())
        merged["role"] = parse_role(merged["role"])
        merged["local_nets"] = parse_local_nets(list(merged["local_nets"]))
    except DiagConfigError as e:
        raise ConfigError(str(e)) from None
    try:
        merged["ports"] = tuple(int(p) for p in merged["ports"])
    except ValueError:
        raise ConfigError("ports must be integers: %r" % (merged["ports"],)) from None
    for k in _INTS:
        v = merged[k]
        if v is None or v == "":
            merged[k] = None if k in ("metrics_port", "fanout_group") else v
            continue
        try:
            merged[k] = int(v)
        except (TypeError, ValueError):
            raise ConfigError("%s must be an integer, not %r" % (k, v)) from None
    if merged["workers"] < 1 or merged["workers"] > 64:
        raise ConfigError("workers must be 1-64")
    if merged["compression"] in ("none", "", None):
        merged["compression"] = None
    cfg = SensorConfig(**merged)
    if not cfg.interface:
        raise ConfigError("--interface is required")
    if not cfg.kafka:
        raise ConfigError("--kafka is required")
    if not cfg.sensor_id:
        cfg = replace(cfg, sensor_id="%s/%s" % (socket.gethostname(), cfg.interface))
    return cfg


class Sensor:
    """Capture loop state: the summarizer, counters, the direction decision.  ``emit`` is
    called with each finished ``(raw, certs)``; the sensor service passes the publisher's
    ``publish``, ``tlsdiag watch`` its diagnosis."""

    def __init__(self, cfg: SensorConfig, capture, emit) -> None:
        from sensor.pipeline import Summarizer
        self.cfg = cfg
        self.cap = capture
        self.emit = emit
        self.summ = Summarizer(capture.linktype, max_flows=cfg.max_flows,
                               idle_timeout=float(cfg.idle_timeout))
        self.summaries = 0
        self.by_direction: dict[str, int] = {}
        self.emit_errors = 0
        self.stop_requested = False
        self.reload_requested = False
        self._last_expire = 0.0

    def direction(self, raw: dict) -> str | None:
        from proto.direction import UNKNOWN, classify
        d, _ = classify(str(raw.get("client")), str(raw.get("server")), self.cfg.role,
                        self.cfg.local_nets)
        return None if d == UNKNOWN else d

    def _out(self, done: list) -> None:
        for raw, certs in done:
            raw["sensor"] = self.cfg.sensor_id
            raw["direction"] = self.direction(raw)
            self.summaries += 1
            key = raw["direction"] or "unknown"
            self.by_direction[key] = self.by_direction.get(key, 0) + 1
            try:
                self.emit(raw, certs)
            except Exception:
                self.emit_errors += 1
                log.exception("emit failed")

    def step(self, timeout: float = 0.2) -> None:
        for buf, meta in self.cap.poll(timeout):
            done = self.summ.feed(buf, meta)
            if done:
                self._out(done)
        now = time.time()
        if now - self._last_expire >= 1.0:
            self._last_expire = now
            done = self.summ.expire(now)
            if done:
                self._out(done)

    def finish(self) -> None:
        self._out(self.summ.flush("incomplete"))

    def stats(self) -> dict:
        s = dict(self.cap.stats())
        s.update(self.summ.stats())
        s["summaries_emitted"] = self.summaries
        s["emit_errors"] = self.emit_errors
        return s


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tlsdiag sensor",
                                description="Live capture; handshake summaries to Kafka.")
    p.add_argument("--interface", "-i")
    p.add_argument("--kafka", metavar="HOST:PORT")
    p.add_argument("--config", metavar="FILE", help="TOML/JSON ([sensor] table, reloaded on SIGHUP)")
    p.add_argument("--role")
    p.add_argument("--local-net", action="append", default=[], metavar="CIDR")
    p.add_argument("--sensor-id")
    p.add_argument("--bpf", help="extra BPF expression")
    p.add_argument("--port", action="append", default=[], type=int, dest="ports",
                   help="TCP port to capture (repeatable)")
    p.add_argument("--metrics-port", type=int)
    p.add_argument("--spool-dir")
    p.add_argument("--spool-max-mb", type=int)
    p.add_argument("--stats-interval", type=int)
    p.add_argument("--idle-timeout", type=int)
    p.add_argument("--fanout-group", type=int)
    p.add_argument("--workers", type=int)
    p.add_argument("--topic-handshakes")
    p.add_argument("--topic-certs")
    p.add_argument("--netns", help="open the capture in this network namespace")
    p.add_argument("-v", "--verbose", action="count", default=0)
    return p


def _cli(a: argparse.Namespace) -> dict:
    return {"interface": a.interface, "kafka": a.kafka, "role": a.role,
            "local_nets": a.local_net, "sensor_id": a.sensor_id, "bpf": a.bpf, "ports": a.ports,
            "metrics_port": a.metrics_port, "spool_dir": a.spool_dir,
            "spool_max_mb": a.spool_max_mb, "stats_interval": a.stats_interval,
            "idle_timeout": a.idle_timeout, "fanout_group": a.fanout_group,
            "workers": a.workers, "topic_handshakes": a.topic_handshakes,
            "topic_certs": a.topic_certs, "netns": a.netns}


def _setup_logging(verbose: int) -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if verbose:
        logging.getLogger().setLevel(logging.INFO if verbose == 1 else logging.DEBUG)
        logging.getLogger("kafka").setLevel(logging.WARNING if verbose < 3 else logging.DEBUG)


def sensor_metrics(sensor: Sensor, pub) -> list:
    s = sensor.stats()
    p = pub.stats() if pub is not None else {}
    out = [
        ("tlsdiag_sensor_packets_total", "counter", "frames read from the capture", s["packets"]),
        ("tlsdiag_sensor_bytes_total", "counter", "captured bytes", s["bytes"]),
        ("tlsdiag_sensor_pcap_received_total", "counter", "libpcap stats() recv", s["pcap_recv"]),
        ("tlsdiag_sensor_pcap_dropped_total", "counter", "libpcap stats() drop (buffer full)",
         s["pcap_drop"]),
        ("tlsdiag_sensor_pcap_ifdropped_total", "counter", "libpcap stats() ifdrop",
         s["pcap_ifdrop"]),
        ("tlsdiag_sensor_flows_created_total", "counter", "TCP flows tracked",
         s.get("flows_created", 0)),
        ("tlsdiag_sensor_summaries_total", "counter", "handshake summaries by direction",
         {(("direction", k),): v for k, v in sensor.by_direction.items()} or
         {(("direction", "unknown"),): 0}),
    ]
    if pub is not None:
        out += [
            ("tlsdiag_sensor_published_total", "counter", "summaries handed to the publisher",
             p["published"]),
            ("tlsdiag_sensor_acked_total", "counter", "messages acknowledged by Kafka", p["acked"]),
            ("tlsdiag_sensor_send_errors_total", "counter", "failed sends/deliveries",
             p["send_errors"]),
            ("tlsdiag_sensor_spooled_total", "counter", "messages written to the spool",
             p["spooled"]),
            ("tlsdiag_sensor_spool_dropped_total", "counter", "messages dropped: spool full",
             p["spool_dropped"]),
            ("tlsdiag_sensor_spool_depth", "gauge", "messages in the spool", p["spool_depth"]),
            ("tlsdiag_sensor_queue_depth", "gauge", "messages in the publish queue",
             p["queue_depth"]),
            ("tlsdiag_sensor_kafka_online", "gauge", "1 when Kafka accepts messages", p["online"]),
        ]
    weirds = {(("reason", k[6:]),): v for k, v in s.items() if k.startswith("weird.")}
    if weirds:
        out.append(("tlsdiag_sensor_weirds_total", "counter", "malformed input by reason", weirds))
    return out


def _spawn_workers(argv: list[str], cfg: SensorConfig) -> int:
    """Supervisor: N children ``--workers 1 --fanout-group G``; signals forwarded."""
    group = cfg.fanout_group if cfg.fanout_group is not None else (os.getpid() & 0xFFFF)
    procs = []
    for i in range(cfg.workers):
        extra = ["--workers", "1", "--fanout-group", str(group),
                 "--sensor-id", cfg.sensor_id or "sensor"]
        if cfg.metrics_port is not None:
            extra += ["--metrics-port", str(cfg.metrics_port + i)]
        spool = cfg.spool_dir or os.path.join(os.environ.get("TMPDIR", "/tmp"), "tlsdiag-spool")
        extra += ["--spool-dir", os.path.join(spool, "worker-%d" % i)]
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
    p = build_parser()
    try:
        a = p.parse_args(argv)
    except SystemExit as e:
        return ExitStatus.SUCCESS if not e.code else ExitStatus.ERROR
    _setup_logging(a.verbose)
    try:
        cfg = load_config(_cli(a), a.config)
    except ConfigError as e:
        print("tlsdiag sensor: %s" % e, file=sys.stderr)
        return ExitStatus.ERROR
    if cfg.workers > 1:
        return _spawn_workers(argv, cfg)
    log.info("sensor config: %s", cfg.describe())

    from sensor.live import LiveCapture, LiveCaptureError
    from sensor.publisher import Publisher, PublisherConfig
    from tlsdiag.kafka import best_compression, ensure_topics
    try:
        cap = LiveCapture(cfg.interface, bpf=cfg.bpf_expression(), snaplen=cfg.snaplen,
                          buffer_mb=cfg.buffer_mb, fanout_group=cfg.fanout_group,
                          fanout_mode=cfg.fanout_mode, netns=cfg.netns)
    except LiveCaptureError as e:
        print("tlsdiag sensor: %s" % e, file=sys.stderr)
        return ExitStatus.ERROR
    pub = Publisher(PublisherConfig(
        bootstrap=cfg.kafka, topic_handshakes=cfg.topic_handshakes, topic_certs=cfg.topic_certs,
        spool_dir=cfg.spool_dir or os.path.join(os.environ.get("TMPDIR", "/tmp"), "tlsdiag-spool"),
        spool_max_bytes=cfg.spool_max_mb << 20, queue_max=cfg.queue_max,
        compression=best_compression() if cfg.compression == "auto" else cfg.compression,
        client_id="tlsdiag-sensor-%s" % cfg.sensor_id), ensure_topics=ensure_topics)
    pub.start()
    sensor = Sensor(cfg, cap, pub.publish)

    def on_stop(_sig, _frame):
        sensor.stop_requested = True

    def on_hup(_sig, _frame):
        sensor.reload_requested = True
    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_hup)

    metrics = None
    if cfg.metrics_port is not None:
        from tlsdiag.metrics import MetricsServer
        try:
            metrics = MetricsServer(lambda: sensor_metrics(sensor, pub), cfg.metrics_port,
                                    cfg.metrics_host)
        except OSError as e:
            log.error("metrics port %s: %s", cfg.metrics_port, e.strerror)
    last_stats = time.monotonic()
    log.warning("sensor %s capturing on %s -> %s", cfg.sensor_id, cfg.interface, cfg.kafka)
    try:
        while not sensor.stop_requested:
            sensor.step(0.2)
            now = time.monotonic()
            if now - last_stats >= sensor.cfg.stats_interval:
                last_stats = now
                _stats_line(sensor, pub)
            if sensor.reload_requested:
                sensor.reload_requested = False
                _reload(sensor, a)
        sensor.finish()
    finally:
        pub.close(timeout=10.0)
        _stats_line(sensor, pub)
        if metrics is not None:
            metrics.close()
        cap.close()
    return ExitStatus.SUCCESS


def _stats_line(sensor: Sensor, pub) -> None:
    s, p = sensor.stats(), pub.stats()
    log.warning("stats: packets=%d pcap_recv=%d pcap_drop=%d ifdrop=%d flows=%d summaries=%d "
                "acked=%d spooled=%d spool_depth=%d spool_dropped=%d send_errors=%d online=%d",
                s["packets"], s["pcap_recv"], s["pcap_drop"], s["pcap_ifdrop"],
                s.get("flows_created", 0), s["summaries_emitted"], p["acked"], p["spooled"],
                p["spool_depth"], p["spool_dropped"], p["send_errors"], p["online"])


def _reload(sensor: Sensor, a: argparse.Namespace) -> None:
    try:
        cfg = load_config(_cli(a), a.config)
    except ConfigError as e:
        log.error("SIGHUP: config not reloaded: %s", e)
        return
    old = sensor.cfg
    bpf = cfg.bpf_expression()
    if bpf != old.bpf_expression() and bpf:
        try:
            sensor.cap.set_filter(bpf)
        except Exception as e:
            log.error("SIGHUP: BPF filter %r rejected: %s", bpf, e)
            cfg = replace(cfg, ports=old.ports, hosts=old.hosts, bpf=old.bpf)
    sensor.cfg = cfg
    log.warning("SIGHUP: config reloaded: %s", cfg.describe())


def main(argv: list[str] | None = None) -> int:
    return run(list(sys.argv[1:] if argv is None else argv))
