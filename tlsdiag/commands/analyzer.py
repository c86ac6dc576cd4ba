"""``tlsdiag analyzer --kafka HOST:PORT [--group NAME] [--config FILE] [settings]``: the Kafka
consumer group that diagnoses the sensors' summaries and keeps incidents (docs/services.md).

Signals only set a flag: the loop finishes its batch, commits and closes.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Mapping

from analyzer.config import ConfigError, build_config
from analyzer.service import Analyzer, AnalyzerConfig, Webhook
from analyzer.service.alertmanager import Alertmanager
from cext.wire import kafka_partition
from proto.text import one_line
from tlsdiag import settings
from tlsdiag.commands import common
from tlsdiag.kafka import best_compression, ensure_topics, wait_for_broker
from tlsdiag.metrics import MetricsServer
from tlsdiag.status import ExitStatus

__all__ = ["main"]

log = logging.getLogger(__name__)


def read_secret(env: Mapping[str, str], path: str | None) -> bytes | None:
    """The webhook's HMAC secret: ``TLSDIAG_WEBHOOK_SECRET``, else the first line of ``path``."""
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
    return common.parser("analyzer", "Kafka consumer group: diagnoses and incidents from the "
                         "sensors' handshake summaries.")


def run(argv: list[str]) -> int:
    started = common.start("analyzer", build_parser(), argv, log_base=logging.INFO)
    if isinstance(started, int):
        return started
    _a, v = started
    try:
        cfg = v.pick(AnalyzerConfig)
        diag = build_config(settings.diagnose_values(v))
        secret = read_secret(os.environ, cfg.webhook_secret_file)
    except ConfigError as e:
        return common.fail("analyzer", e)
    an = Analyzer(cfg, diag, partition=kafka_partition, compression=best_compression(),
                  ensure_topics=ensure_topics)
    if cfg.webhook_url:
        an.webhook = Webhook(cfg.webhook_url, secret)
    if v["alertmanager_urls"]:
        an.sinks.append(Alertmanager(v["alertmanager_urls"], resend_s=v["alertmanager_resend_s"],
                                     timeout_s=v["alertmanager_timeout_s"]))

    def on_stop(_sig: int, _frame: object) -> None:
        if not an.stop_requested:
            an.stop_requested = True
            common.exit_after(v["stop_grace_s"], "analyzer", "the current batch is not "
                              "committed: it is processed again at the next start")
    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    why = wait_for_broker(cfg.kafka, v["kafka_wait_s"], lambda: an.stop_requested, "analyzer")
    if an.stop_requested:
        return ExitStatus.SUCCESS
    if why is not None:
        return common.fail("analyzer", "cannot reach Kafka at %s for %d s (%s): check --kafka "
                           "and that the broker runs" % (cfg.kafka, v["kafka_wait_s"], why))
    metrics = None
    if v["metrics_port"] is not None:       # the listener is the application's, not the library's
        metrics = MetricsServer(lambda: [common.build_info()] + an.metrics(), v["metrics_port"],
                                v["metrics_host"])
    # kafka-python's I/O thread and the analyzer's loop share the GIL: every producer
    # wake-up (a socket write) waits for the switch interval; 5 ms by default made each send
    # cost milliseconds.  0.5 ms keeps the hand-over cheap.
    sys.setswitchinterval(0.0005)
    try:
        an.run()
        return ExitStatus.SUCCESS
    except Exception as e:
        log.error("analyzer stopped: %s", one_line(e))
        log.debug("traceback", exc_info=True)
        return ExitStatus.ERROR
    finally:
        if metrics is not None:
            metrics.close()


def main(argv: list[str] | None = None) -> int:
    return run(list(sys.argv[1:] if argv is None else argv))
