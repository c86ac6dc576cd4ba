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

from analyzer.config import ConfigError, build_config
from analyzer.service import Analyzer, AnalyzerConfig, Webhook, read_secret
from tlsdiag import settings
from tlsdiag.commands import common
from tlsdiag.status import ExitStatus

__all__ = ["main"]

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    return common.parser("analyzer", "Kafka consumer group: diagnoses and incidents from the "
                         "sensors' handshake summaries.")


def run(argv: list[str]) -> int:
    started = common.start("analyzer", build_parser(), argv)
    if isinstance(started, int):
        return started
    _a, v = started
    try:
        cfg = v.pick(AnalyzerConfig)
        diag = build_config(settings.diagnose_values(v))
        secret = read_secret(os.environ, cfg.webhook_secret_file)
    except ConfigError as e:
        return common.fail("analyzer", e)
    an = Analyzer(cfg, diag)
    if cfg.webhook_url:
        an.webhook = Webhook(cfg.webhook_url, secret)

    def on_stop(_sig: int, _frame: object) -> None:
        an.stop_requested = True
    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    metrics = None
    if cfg.metrics_port is not None:
        from tlsdiag.metrics import MetricsServer
        metrics = MetricsServer(an.metrics, cfg.metrics_port, cfg.metrics_host)
    try:
        return an.run()
    except Exception as e:
        log.error("analyzer stopped: %s", " ".join(str(e).split()) or type(e).__name__)
        log.debug("traceback", exc_info=True)
        return ExitStatus.ERROR
    finally:
        if metrics is not None:
            metrics.close()


def main(argv: list[str] | None = None) -> int:
    return run(list(sys.argv[1:] if argv is None else argv))
