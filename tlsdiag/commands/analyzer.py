"""``tlsdiag analyzer --kafka HOST:PORT --group NAME [--config FILE] [diagnose flags]``: the
Kafka analyzer service (:mod:`analyzer.service`; what it does: docs/services.md).  Settings:
flags > ``TLSDIAG_*`` environment > the config file's ``[analyzer]`` table > defaults; the
diagnosis settings as ``tlsdiag diagnose`` (a ``[diagnose]`` table).  Signals only set the stop
flag: the loop finishes its batch, commits, and closes."""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import fields

from analyzer.config import ConfigError, build_config
from analyzer.service import Analyzer, AnalyzerConfig, Webhook
from cext.wire import kafka_partition
from tlsdiag.kafka import best_compression, ensure_topics
from tlsdiag.metrics import MetricsServer
from tlsdiag.status import ExitStatus

__all__ = ["build_parser", "load_analyzer_config", "main", "read_secret", "run"]

log = logging.getLogger(__name__)


def read_secret(env: Mapping[str, str], path: str | None) -> bytes | None:
    v = env.get("TLSDIAG_WEBHOOK_SECRET")
    if v:
        return v.encode()
    if path:
        try:
            with open(path, "rb") as fh:
                return fh.read(4096).strip() or None
        except OSError as e:
            raise ConfigError("webhook secret file %s: %s" % (path, e.strerror)) from None
    return None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tlsdiag analyzer",
                                description="Kafka consumer group: diagnoses and incidents.")
    p.add_argument("--kafka", required=False, metavar="HOST:PORT")
    p.add_argument("--group", default=None)
    p.add_argument("--instance", default=None, help="stable id of this instance (transactional id)")
    p.add_argument("--config", metavar="FILE", help="TOML/JSON: [diagnose] and [analyzer] tables")
    p.add_argument("--role")
    p.add_argument("--local-net", action="append", default=[], metavar="CIDR")
    p.add_argument("--truststore")
    p.add_argument("--truststore-northbound")
    p.add_argument("--truststore-southbound")
    p.add_argument("--target", action="append", default=[], metavar="HOST:PORT=NAME")
    p.add_argument("--expiry-warning-days")
    p.add_argument("--no-warnings", action="store_true")
    p.add_argument("--at-least-once", action="store_true",
                   help="flush+commit instead of transactions")
    p.add_argument("--max-records", type=int)
    p.add_argument("--metrics-port", type=int)
    p.add_argument("--webhook-url")
    p.add_argument("--webhook-secret-file")
    p.add_argument("--incident-update-s", type=float)
    p.add_argument("--incident-resolve-successes", type=int)
    p.add_argument("--incident-resolve-hold-s", type=float,
                   help="resolve only once the last failure is this old (data time; 0 = at once)")
    p.add_argument("--correlation-window-s", type=float)
    p.add_argument("--stats-interval", type=int)
    p.add_argument("--batch-delay-ms", type=int, help=argparse.SUPPRESS)
    p.add_argument("--state-delay-ms", type=int, help=argparse.SUPPRESS)
    for t in ("handshakes", "certs", "diagnoses", "incidents", "profiles", "dlq"):
        p.add_argument("--topic-%s" % t)
    p.add_argument("-v", "--verbose", action="count", default=0)
    return p


_ANALYZER_FIELDS = {f.name: f for f in fields(AnalyzerConfig)}


def load_analyzer_config(a: argparse.Namespace, environ: Mapping[str, str]) -> AnalyzerConfig:
    """CLI > TLSDIAG_* env > config file [analyzer] table > default."""
    merged: dict[str, object] = {}
    if a.config:
        try:
            with open(a.config, "rb") as fh:
                raw = fh.read()
            data = json.loads(raw) if a.config.endswith(".json") else tomllib.loads(raw.decode())
        except (OSError, ValueError, UnicodeDecodeError) as e:
            raise ConfigError("config file %s: %s" % (a.config, e)) from None
        sect = data.get("analyzer") if isinstance(data, dict) else None
        if isinstance(sect, dict):
            for k, v in sect.items():
                k = str(k).replace("-", "_")
                if k not in _ANALYZER_FIELDS:
                    raise ConfigError("config file %s: unknown analyzer setting %r" % (a.config, k))
                merged[k] = v
    for name in _ANALYZER_FIELDS:
        v = environ.get("TLSDIAG_" + name.upper())
        if v:
            merged[name] = v
    cli = {"kafka": a.kafka, "group": a.group, "instance": a.instance,
           "max_records": a.max_records, "metrics_port": a.metrics_port,
           "webhook_url": a.webhook_url, "webhook_secret_file": a.webhook_secret_file,
           "incident_update_s": a.incident_update_s,
           "incident_resolve_successes": a.incident_resolve_successes,
           "incident_resolve_hold_s": a.incident_resolve_hold_s,
           "correlation_window_s": a.correlation_window_s, "stats_interval": a.stats_interval,
           "batch_delay_ms": a.batch_delay_ms, "state_delay_ms": a.state_delay_ms}
    for t in ("handshakes", "certs", "diagnoses", "incidents", "profiles", "dlq"):
        cli["topic_" + t] = getattr(a, "topic_" + t)
    if a.at_least_once:
        cli["exactly_once"] = False
    if a.no_warnings:
        cli["warnings"] = False
    merged.update({k: v for k, v in cli.items() if v is not None})
    if not merged.get("kafka"):
        raise ConfigError("--kafka is required")
    out: dict[str, object] = {}
    for k, v in merged.items():
        f = _ANALYZER_FIELDS[k]
        typ = str(f.type)
        try:
            if "bool" in typ and isinstance(v, str):
                v = v.lower() in ("1", "true", "yes", "on")
            elif typ.startswith("int") and v is not None:
                v = int(str(v))
            elif typ.startswith("float") and v is not None:
                v = float(str(v))
        except ValueError:
            raise ConfigError("%s: %r is not a number" % (k, v)) from None
        out[k] = v
    return AnalyzerConfig(**out)  # type: ignore[arg-type]


def run(argv: list[str]) -> int:
    p = build_parser()
    try:
        a = p.parse_args(argv)
    except SystemExit as e:
        return ExitStatus.SUCCESS if not e.code else ExitStatus.ERROR
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO if a.verbose else logging.WARNING, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING if a.verbose < 3 else logging.DEBUG)
    try:
        cfg = load_analyzer_config(a, os.environ)
        diag_file = a.config if a.config and _has_diagnose_section(a.config) else None
        diag = build_config({
            "role": a.role, "local_nets": a.local_net, "truststore": a.truststore,
            "truststore_northbound": a.truststore_northbound,
            "truststore_southbound": a.truststore_southbound, "targets": a.target,
            "expiry_warning_days": a.expiry_warning_days}, config_file=diag_file)
        secret = read_secret(os.environ, cfg.webhook_secret_file)
    except ConfigError as e:
        print("tlsdiag analyzer: %s" % e, file=sys.stderr)
        return ExitStatus.ERROR
    log.info("analyzer config: %s", cfg.describe())
    an = Analyzer(cfg, diag, partition=kafka_partition, compression=best_compression(),
                  ensure_topics=ensure_topics)
    if cfg.webhook_url:
        an.webhook = Webhook(cfg.webhook_url, secret)

    def on_stop(_sig: int, _frame: object) -> None:
        an.stop_requested = True
    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    metrics = None
    if cfg.metrics_port is not None:
        metrics = MetricsServer(an.metrics, cfg.metrics_port, cfg.metrics_host)
    # kafka-python's I/O thread and the analyzer's loop share the GIL: every producer
    # wake-up (a socket write) waits for the switch interval; 5 ms by default made each send
    # cost milliseconds.  0.5 ms keeps the hand-over cheap.
    sys.setswitchinterval(0.0005)
    try:
        an.run()
        return ExitStatus.SUCCESS
    except Exception as e:
        log.error("analyzer stopped: %s", " ".join(str(e).split()) or type(e).__name__)
        log.debug("traceback", exc_info=True)
        return ExitStatus.ERROR
    finally:
        if metrics is not None:
            metrics.close()


def _has_diagnose_section(path: str) -> bool:
    """The diagnose settings live in a ``[diagnose]`` table when an ``[analyzer]`` one exists."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
        data = json.loads(raw) if path.endswith(".json") else tomllib.loads(raw.decode())
    except (OSError, ValueError, UnicodeDecodeError):
        return True          # let build_config report the problem
    return isinstance(data, dict) and ("diagnose" in data or "analyzer" not in data)


def main(argv: list[str] | None = None) -> int:
    return run(list(sys.argv[1:] if argv is None else argv))
