"""Text for operators, shared by every layer: an exception as one line, a value for a terminal.

libpcap's, kafka-python's, urllib's and the TOML parser's messages can span lines; a log line or
a one-line error (exit 2) must not.  Pure, like the rest of proto.
"""
from __future__ import annotations

import re

__all__ = ["one_line", "printable"]

#: what a terminal would act on rather than show (C0, DEL, C1 -- 0x9b is a CSI on its own), and
#: what cannot be written as UTF-8 (lone surrogates)
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def one_line(exc: BaseException) -> str:
    """``exc`` as one line: its message with every run of whitespace made one space, or its
    class name when the message is empty."""
    return " ".join(str(exc).split()) or type(exc).__name__


def printable(value: object) -> str:
    """``value`` as text for a terminal: control characters and lone surrogates as ``\\xNN`` /
    ``\\udNNN`` escapes (as the wire core writes bytes it cannot decode), so that a server name
    or a certificate subject chosen by a peer can neither drive the terminal (clear it, set its
    title) nor break a line of a report, nor fail the write."""
    text = value if isinstance(value, str) else str(value)
    return _UNPRINTABLE.sub(_escape, text) if _UNPRINTABLE.search(text) else text


def _escape(m: "re.Match[str]") -> str:
    c = ord(m.group())
    return "\\x%02x" % c if c < 0x100 else "\\u%04x" % c
