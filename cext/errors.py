"""Exceptions and status codes shared by the Cython wire code and its pure-Python twin.

Short input is not bad input: a reader that runs out of bytes reports NEED_DATA.  A length
that overruns its enclosing vector or record raises :class:`MalformedMessage` with a reason
from the closed set :data:`REASONS` (counted by the sensor, Zeek-weird style).
"""
from __future__ import annotations

__all__ = ["ProtocolError", "MalformedMessage", "REASONS"]

#: every reason string a MalformedMessage may carry (stable: counters and tests key on them)
REASONS = frozenset({
    "record_overflow",            # record length > 2^14 + 2048 (RFC 5246 6.2.3)
    "bad_record_version",         # record header is not an SSL/TLS record
    "unknown_content_type",       # record content type outside the registry range
    "vector_overrun",             # a length runs past its enclosing vector / message
    "handshake_length_mismatch",  # a handshake body is shorter or longer than its fields
    "handshake_too_long",         # a handshake message above the per-flow buffer cap
    "bad_sslv2_record",           # SSLv2 record header / message malformed
})


class ProtocolError(Exception):
    """The peer sent bytes that cannot be TLS.  ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason if not detail else "%s: %s" % (reason, detail))
        self.reason = reason


class MalformedMessage(ProtocolError):
    """A length field overruns its enclosing structure."""
