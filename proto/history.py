"""Zeek's ``ssl_history`` alphabet (``scripts/base/protocols/ssl/main.zeek``): one letter per
handshake message or non-handshake record, upper case when the client sent it, lower case
when the server did; at most :data:`MAX_HISTORY` letters.  The sensor writes histories with
these tables, the analyzer reads them with the same tables."""
from __future__ import annotations

from proto.names import ContentType, HandshakeType

__all__ = [
    "HISTORY_LETTERS", "RECORD_HISTORY_LETTERS", "HISTORY_UNASSIGNED_HANDSHAKE",
    "HISTORY_UNKNOWN_CONTENT_TYPE", "MAX_HISTORY", "history_letter", "record_history_letter",
    "client_letter", "server_letter",
]

# ---------------------------------------------------------------------------
# Zeek ssl_history alphabet (scripts/base/protocols/ssl/main.zeek).  Letters are
# stored upper-case; the sender decides the case: upper for the client, lower
# for the server.  A ServerHello whose random is the RFC 8446 HelloRetryRequest
# magic is recorded as hello_retry_request ("J"), like Zeek does.
# ---------------------------------------------------------------------------

#: Handshake message type -> ssl_history letter.
HISTORY_LETTERS: dict[int, str] = {
    HandshakeType.hello_request: "H",
    HandshakeType.client_hello: "C",
    HandshakeType.server_hello: "S",
    HandshakeType.hello_verify_request: "V",
    HandshakeType.new_session_ticket: "T",
    HandshakeType.end_of_early_data: "E",
    HandshakeType.hello_retry_request: "J",
    HandshakeType.encrypted_extensions: "O",
    HandshakeType.certificate: "X",
    HandshakeType.server_key_exchange: "K",
    HandshakeType.certificate_request: "R",
    HandshakeType.server_hello_done: "N",
    HandshakeType.certificate_verify: "Y",
    HandshakeType.client_key_exchange: "G",
    HandshakeType.finished: "F",
    HandshakeType.certificate_url: "W",
    HandshakeType.certificate_status: "U",
    HandshakeType.supplemental_data: "A",
    HandshakeType.key_update: "P",
    HandshakeType.message_hash: "M",
}

#: Record content type -> ssl_history letter.  Handshake records have no letter
#: of their own (each message inside gets one); other content types are "Q".
RECORD_HISTORY_LETTERS: dict[int, str] = {
    ContentType.change_cipher_spec: "I",
    ContentType.alert: "L",
    ContentType.application_data: "D",
    ContentType.heartbeat: "B",
}

HISTORY_UNASSIGNED_HANDSHAKE = "Z"  # any handshake type not in HISTORY_LETTERS
HISTORY_UNKNOWN_CONTENT_TYPE = "Q"  # any content type not in RECORD_HISTORY_LETTERS
MAX_HISTORY = 100  # Zeek's max_ssl_history_length


def history_letter(handshake_type: object, from_client: bool) -> str:
    """ssl_history letter for a handshake message (``Z``/``z`` when unassigned)."""
    letter = HISTORY_UNASSIGNED_HANDSHAKE
    if isinstance(handshake_type, int):
        letter = HISTORY_LETTERS.get(handshake_type, HISTORY_UNASSIGNED_HANDSHAKE)
    return letter if from_client else letter.lower()


def record_history_letter(content_type: object, from_client: bool) -> str:
    """ssl_history letter for a non-handshake record (``Q``/``q`` when unknown).

    Returns ``""`` for handshake records: their messages carry the letters.
    """
    if content_type == ContentType.handshake:
        return ""
    letter = HISTORY_UNKNOWN_CONTENT_TYPE
    if isinstance(content_type, int):
        letter = RECORD_HISTORY_LETTERS.get(content_type, HISTORY_UNKNOWN_CONTENT_TYPE)
    return letter if from_client else letter.lower()


def client_letter(handshake_type: HandshakeType) -> str:
    """The letter of a handshake message the client sent (``"C"`` for client_hello)."""
    return history_letter(handshake_type, True)


def server_letter(handshake_type: HandshakeType) -> str:
    """The letter of a handshake message the server sent (``"s"`` for server_hello)."""
    return history_letter(handshake_type, False)
