"""The one logging set-up of every ``tlsdiag`` command (libraries only get loggers).

``-v`` INFO, ``-vv`` DEBUG; the Kafka client library (kafka-python) stays at WARNING unless
``-vvv``: its routine reconnect chatter is not the operator's business.
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
    logging.getLogger("kafka").setLevel(logging.DEBUG if verbose >= 3 else logging.WARNING)
