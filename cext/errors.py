"""Exceptions and status codes shared by the Cython wire code and its pure-Python twin.

Short input is not bad input: a reader that runs out of bytes reports NEED_DATA.  A length
that overruns its enclosing vector or record is a :class:`MalformedMessage` with a reason
from the closed set :data:`REASONS` (counted by the sensor, Zeek-weird style).

Inside the core, functions return an int *status*: 0 for success, ``-n`` for the n-th reason
of :data:`CODES`.  :func:`reason` and :func:`error` are the one place a status becomes the
error family; the reader and the flow table call them at their boundary.
"""
from __future__ import annotations

__all__ = ["ProtocolError", "MalformedMessage", "REASONS", "CODES", "reason", "error",
           "E_RECORD_OVERFLOW", "E_BAD_RECORD_VERSION", "E_UNKNOWN_CONTENT_TYPE",
           "E_VECTOR_OVERRUN", "E_HANDSHAKE_LENGTH_MISMATCH", "E_HANDSHAKE_TOO_LONG",
           "E_BAD_SSLV2_RECORD", "E_TOO_MANY_CERTIFICATES", "MAX_CERTIFICATES"]

#: every reason string a MalformedMessage may carry (stable: counters and tests key on them),
#: in status-code order: status ``-n`` is ``CODES[n]``
CODES = (
    None,
    "record_overflow",            # record length > 2^14 + 2048 (RFC 5246 6.2.3)
    "bad_record_version",         # record header is not an SSL/TLS record
    "unknown_content_type",       # record content type outside the registry range
    "vector_overrun",             # a length runs past its enclosing vector / message
    "handshake_length_mismatch",  # a handshake body is shorter or longer than its fields
    "handshake_too_long",         # a handshake message above the per-flow buffer cap
    "bad_sslv2_record",           # SSLv2 record header / message malformed
    "too_many_certificates",      # a Certificate message lists more than MAX_CERTIFICATES
                                  # (a notice: the first MAX_CERTIFICATES are read)
)
REASONS = frozenset(CODES[1:])

(E_RECORD_OVERFLOW, E_BAD_RECORD_VERSION, E_UNKNOWN_CONTENT_TYPE, E_VECTOR_OVERRUN,
 E_HANDSHAKE_LENGTH_MISMATCH, E_HANDSHAKE_TOO_LONG, E_BAD_SSLV2_RECORD,
 E_TOO_MANY_CERTIFICATES) = range(-1, -9, -1)

#: the most certificates of one Certificate message that are read (both builds; the rest are
#: checked for framing and left, the weird too_many_certificates): a real chain has a handful
#: (JSSE refuses more than 10); 200,000 empty ones fit in a 1 MiB message, each an object
MAX_CERTIFICATES = 64


class ProtocolError(Exception):
    """The peer sent bytes that cannot be TLS.  ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason if not detail else "%s: %s" % (reason, detail))
        self.reason = reason


class MalformedMessage(ProtocolError):
    """A length field overruns its enclosing structure."""


def reason(status: int) -> str:
    """The reason string of a (negative) status."""
    return CODES[-status]


def error(status: int) -> MalformedMessage:
    """The exception of a (negative) status."""
    return MalformedMessage(CODES[-status])
