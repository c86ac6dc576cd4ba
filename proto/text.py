"""Text for operators, shared by every layer: an exception as one line.

libpcap's, kafka-python's, urllib's and the TOML parser's messages can span lines; a log line or
a one-line error (exit 2) must not.  Pure, like the rest of proto.
"""
from __future__ import annotations

__all__ = ["one_line"]


def one_line(exc: BaseException) -> str:
    """``exc`` as one line: its message with every run of whitespace made one space, or its
    class name when the message is empty."""
    return " ".join(str(exc).split()) or type(exc).__name__
