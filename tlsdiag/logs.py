"""The one logging set-up of every ``tlsdiag`` command (libraries only get loggers).

``-v`` INFO, ``-vv`` DEBUG.  The Kafka client library (kafka-python) is silent unless
``-vvv``: it logs every reconnect attempt at ERROR/WARNING (dozens of lines a minute while a
broker is away), and what matters of it -- Kafka unreachable, back again, messages spooled --
our own code says once, in one line.
"""
from __future__ import annotations

import logging
import sys

__all__ = ["setup", "FORMAT"]

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup(verbose: int = 0, base: int = logging.WARNING) -> None:
    """Configure the root logger once (a second call only changes the levels)."""
    level = max(logging.DEBUG, base - 10 * verbose)
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("kafka").setLevel(logging.DEBUG if verbose >= 3 else logging.CRITICAL)
