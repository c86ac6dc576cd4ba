"""What the sizes of a TLS 1.3 connection's encrypted records say (RFC 8446 section 5.2).

After the ServerHello every TLS 1.3 handshake message and alert travels as an ``application_data`` record of
``content + 1 (inner content type) + padding + AEAD tag`` bytes.  The sensor reports the lengths of each side's
first :data:`MAX_RECORDS` such records (``client_encrypted``, ``server_encrypted``), in order; these functions
read them -- pure, over the summary's plain fields, so the engine's fast path and the rules share them.

Padding is a stack's choice: OpenSSL, BoringSSL, Go and NSS add none; Java's JSSE adds 16 bytes to every
record (measured, tests/scenarios/README-tls13.md: empty Certificate 41 instead of 25, Finished 85 instead of
69, alert 35 instead of 19).  A side's padding is read off its Finished, whose size the suite fixes
(4 + hash length + 1 + tag), so "alert-sized" and "empty-Certificate-sized" are exact per connection.
"""

from __future__ import annotations

from typing import Sequence

__all__ = ["tag_len", "MAX_RECORDS", "MIN_FINISHED_RECORD", "EMPTY_CERTIFICATE_RECORD", "PADDINGS", "finished_len",
           "alert_len", "empty_certificate_len", "padding", "client_sent_empty_certificate",
           "server_rejected_flight", "client_sent_certificate", "server_silent_after_flight",
           "client_closed_without_data", "server_certificate_record"]

#: the sensor keeps the lengths of each side's first 8 encrypted records: a longer list may be cut
MAX_RECORDS = 8
#: smallest record that can hold a Finished: 4 (header) + 32 (SHA-256 verify_data) + 1 (content type) + 16 (tag)
MIN_FINISHED_RECORD = 53
#: an empty client Certificate without padding: 4 (header) + 1 (context) + 3 (list) + 1 + 16
EMPTY_CERTIFICATE_RECORD = 25
#: record padding seen from real stacks: none, and JSSE's 16 bytes
PADDINGS: tuple[int, ...] = (0, 16)

#: bytes an alert record may exceed its exact size and still count as one (the sensor's "probable encrypted
#: alert" allows 19..24 bytes: a stack may pad a little)
ALERT_SLACK = 5

_HANDSHAKE_HEADER = 4
_ALERT_BODY = 2
_EMPTY_CERTIFICATE_BODY = _HANDSHAKE_HEADER + 1 + 3


def tag_len(cipher: object) -> int:
    """The AEAD tag of a TLS 1.3 suite: 16 bytes, 8 for the CCM_8 suite."""
    return 8 if isinstance(cipher, str) and "CCM_8" in cipher else 16


def _hash_len(cipher: object) -> int:
    return 48 if isinstance(cipher, str) and cipher.endswith("SHA384") else 32


def finished_len(cipher: object) -> int:
    """An unpadded Finished record under ``cipher`` (the summary's IANA suite name)."""
    return _HANDSHAKE_HEADER + _hash_len(cipher) + 1 + tag_len(cipher)


def alert_len(cipher: object, pad: int = 0) -> int:
    return _ALERT_BODY + 1 + tag_len(cipher) + pad


def empty_certificate_len(cipher: object, pad: int = 0) -> int:
    return _EMPTY_CERTIFICATE_BODY + 1 + tag_len(cipher) + pad


def padding(records: Sequence[int], cipher: object) -> tuple[int | None, int | None]:
    """``(index, padding)`` of the first record with a Finished's size (padded or not), else ``(None, None)``.
    No other message a side sends in its flight has that size: a CertificateVerify holds a signature (64+
    bytes), a Certificate at least one certificate, an empty Certificate or an alert is smaller."""
    fin = finished_len(cipher)
    for i, n in enumerate(records):
        if n - fin in PADDINGS:
            return i, n - fin
    return None, None


def client_sent_empty_certificate(ce: Sequence[int], cipher: object) -> bool:
    """The client's first encrypted record is an empty Certificate: the server asked for a certificate (its
    CertificateRequest is encrypted) and the client had none to send."""
    if not ce:
        return False
    _, pad = padding(ce, cipher)
    pads = PADDINGS if pad is None else (pad,)
    return any(ce[0] == empty_certificate_len(cipher, p) for p in pads)


def _client_alert_after_flight(ce: Sequence[int], cipher: object) -> bool:
    """The client sent an alert-sized record after its Finished (close_notify, or an alert of its own)."""
    i, pad = padding(ce, cipher)
    if i is None or pad is None:
        return False
    return any(n == alert_len(cipher, pad) for n in ce[i + 1:])


def server_rejected_flight(ce: Sequence[int], se: Sequence[int], cipher: object, client_alerted: bool) -> bool:
    """The server answered the client's flight with one alert and nothing else, and the client did not close
    the session itself.

    Server: its last record is alert-sized (for its own padding) and comes right after its Finished -- no
    NewSessionTicket, no application data (every TLS 1.3 success in the scenario captures shows one or the
    other after the server's Finished).  The list must be complete (fewer than :data:`MAX_RECORDS`).
    Client: its flight starts with a Certificate (:func:`client_sent_certificate`: the server asked for one,
    so there is a certificate -- or the lack of one -- to reject; it did not abort on the server's
    certificate), and it sent no alert of its own (``client_alerted``: a probable encrypted alert the sensor
    flagged; or an alert-sized record after its Finished) -- a client that ends a handshake-only health check
    with close_notify gets the server's close_notify back, which is not a rejection.  Who closes first is
    not asked: once the server's alert is out, the two FINs race (tests/test_diagnose_close_order.py)."""
    if len(se) < 2 or len(se) >= MAX_RECORDS or not ce:
        return False
    fin = finished_len(cipher)
    pad = se[-2] - fin
    if pad not in PADDINGS or not alert_len(cipher, pad) <= se[-1] <= alert_len(cipher, pad) + ALERT_SLACK:
        return False
    if not client_sent_certificate(ce, cipher):
        return False
    return not client_alerted and not _client_alert_after_flight(ce, cipher)


def client_sent_certificate(ce: Sequence[int], cipher: object) -> bool:
    """The client's flight starts with a Certificate message -- an empty one, or a record bigger than a
    Finished that is not Finished-sized -- so the server had asked for one (TLS 1.3: a client sends
    Certificate only after a CertificateRequest).  A flight that starts with the Finished had no certificate
    for the server to reject."""
    if not ce:
        return False
    if client_sent_empty_certificate(ce, cipher):
        return True
    return ce[0] >= MIN_FINISHED_RECORD and ce[0] - finished_len(cipher) not in PADDINGS


def server_silent_after_flight(se: Sequence[int], cipher: object) -> bool:
    """The server's last record is its Finished: it sent its flight and nothing after it (the list complete)."""
    return 0 < len(se) < MAX_RECORDS and se[-1] - finished_len(cipher) in PADDINGS


def client_closed_without_data(ce: Sequence[int], cipher: object) -> bool:
    """The client sent its Finished, then only alert-sized records (close_notify), no application data: a
    handshake-only check -- or a client that checked the certificate after the handshake and hung up (curl on
    a wrong name over TLS 1.3 does exactly this)."""
    if len(ce) >= MAX_RECORDS:
        return False
    i, pad = padding(ce, cipher)
    if i is None or pad is None:
        return False
    rest = ce[i + 1:]
    return bool(rest) and all(n == alert_len(cipher, pad) for n in rest)


def server_certificate_record(se: Sequence[int], cipher: object) -> tuple[int, int] | None:
    """``(size, padding)`` of the record that holds the server's Certificate, for a full handshake the client
    walked away from (the server sent its flight and nothing after it): its largest record, a chain being
    bigger than any other message of the flight.  None without a Finished-sized record in the list."""
    i, pad = padding(se, cipher)
    if i is None or pad is None or len(se) >= MAX_RECORDS:
        return None
    return max(se), pad
