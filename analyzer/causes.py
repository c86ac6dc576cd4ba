"""The causes a diagnosis can name: one :class:`Cause` object each, the only place a cause is declared.

A cause's ``id`` is the stable string of the diagnosis's ``cause`` field (never renamed: dashboards, incident
keys and the saved incident state use it).  Rules (:mod:`analyzer.rules`), fix texts
(:mod:`analyzer.remediation`), the report, the certificate checks' problem -> cause table, the engine and
the active probe all refer to these objects, never to the bare strings.

Adding a cause: a ``Cause`` here, its rule(s) in ``rules.FAILURE_RULES`` (or a certificate problem in
``certs.PROBLEM_CAUSE``), at least its ``(cause, None, None)`` template in ``remediation.TEMPLATES`` (the
import fails without it), a test, and a scenario capture (``tests/scenarios/generate.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

__all__ = ["Cause", "CAUSES", "CAUSES_BY_ID", "FAILURE_CAUSES", "cause_by_id",
           "PROTOCOL_MISMATCH", "CIPHER_MISMATCH", "SNI_REQUIRED", "SNI_UNRECOGNIZED", "HOSTNAME_MISMATCH",
           "INCOMPLETE_CHAIN", "EXPIRED_CERTIFICATE", "NOT_YET_VALID_CERTIFICATE", "UNKNOWN_CERTIFICATE",
           "CERTIFICATE_REJECTED", "CLIENT_CERTIFICATE_MISSING", "ENCRYPTED_FAILURE", "UNKNOWN",
           "EXPIRING_CERTIFICATE"]


@dataclass(frozen=True, slots=True, eq=False)
class Cause:
    """One cause: a singleton, compared and hashed by identity (template lookups per diagnosis stay cheap).
    ``str(cause)`` is its id."""

    id: str                      # stable: the diagnosis's "cause" value
    failure: bool                # a failed handshake can be diagnosed with it (False: warning-only)
    warning_rule: str | None     # rule id of its warning on a successful handshake, if it can warn
    label: str                   # a few words for people (the probe's failure and warning verdicts)
    description: str             # one line: what it means
    offer_matters: bool = False  # decided at the ClientHello: the report shows the client's offered suites

    def __str__(self) -> str:
        return self.id


PROTOCOL_MISMATCH = Cause(
    "protocol_mismatch", True, None, "protocol version mismatch",
    "client and server share no TLS version (one side refused the other's versions)", offer_matters=True)
CIPHER_MISMATCH = Cause(
    "cipher_mismatch", True, None, "cipher suite mismatch",
    "no common cipher suite or key-exchange group (the server refused the ClientHello's offer)", offer_matters=True)
SNI_REQUIRED = Cause(
    "sni_required", True, None, "server needs SNI",
    "the server refuses a ClientHello without server_name (SNI)", offer_matters=True)
SNI_UNRECOGNIZED = Cause(
    "sni_unrecognized", True, None, "server name not recognised",
    "the server does not know the name the client sent (unrecognized_name)")
HOSTNAME_MISMATCH = Cause(
    "hostname_mismatch", True, "TLS-WARN-HOSTNAME", "certificate name mismatch",
    "the server certificate does not cover the name the client asked for")
INCOMPLETE_CHAIN = Cause(
    "incomplete_chain", True, "TLS-WARN-INCOMPLETE-CHAIN", "incomplete certificate chain",
    "a certificate was sent without its issuer (or with a wrong intermediate)")
EXPIRED_CERTIFICATE = Cause(
    "expired_certificate", True, "TLS-WARN-CERT-EXPIRED", "expired certificate",
    "a certificate in the chain had expired at the time of the handshake")
NOT_YET_VALID_CERTIFICATE = Cause(
    "not_yet_valid_certificate", True, "TLS-WARN-CERT-NOT-YET-VALID", "certificate not yet valid",
    "a certificate in the chain was not yet valid at the time of the handshake")
UNKNOWN_CERTIFICATE = Cause(
    "unknown_certificate", True, "TLS-WARN-UNKNOWN-CERT", "untrusted certificate",
    "the rejecting side does not trust the chain's root (self-signed, or a CA it lacks)")
CERTIFICATE_REJECTED = Cause(
    "certificate_rejected", True, "TLS-WARN-CERT-VERIFY", "certificate rejected",
    "a certificate was rejected and neither the alert nor the checks say why")
CLIENT_CERTIFICATE_MISSING = Cause(
    "client_certificate_missing", True, None, "client certificate missing",
    "the server requires a client certificate and the client sent none")
ENCRYPTED_FAILURE = Cause(
    "encrypted_failure", True, None, "TLS 1.3 failure, reason encrypted",
    "a TLS 1.3 handshake failed after the ServerHello, where certificates and alerts are encrypted")
UNKNOWN = Cause(
    "unknown", True, None, "unexplained failure",
    "the handshake failed and no rule explains it", offer_matters=True)
EXPIRING_CERTIFICATE = Cause(
    "expiring_certificate", False, "TLS-WARN-CERT-EXPIRING", "certificate expires soon",
    "a certificate expires within the configured number of days (warning only)")

#: every cause, failure causes first in the order of the cause table (docs, --help), then warning-only
CAUSES: tuple[Cause, ...] = (
    PROTOCOL_MISMATCH, CIPHER_MISMATCH, SNI_REQUIRED, SNI_UNRECOGNIZED, HOSTNAME_MISMATCH, INCOMPLETE_CHAIN,
    EXPIRED_CERTIFICATE, NOT_YET_VALID_CERTIFICATE, UNKNOWN_CERTIFICATE, CERTIFICATE_REJECTED,
    CLIENT_CERTIFICATE_MISSING, ENCRYPTED_FAILURE, UNKNOWN, EXPIRING_CERTIFICATE,
)
FAILURE_CAUSES: tuple[Cause, ...] = tuple(c for c in CAUSES if c.failure)
CAUSES_BY_ID: Mapping[str, Cause] = {c.id: c for c in CAUSES}
if len(CAUSES_BY_ID) != len(CAUSES):  # pragma: no cover - a duplicated id is a programming error
    raise RuntimeError("duplicate cause id in analyzer.causes.CAUSES")


def cause_by_id(cause_id: object) -> Cause | None:
    """The cause a diagnosis's ``cause`` string names (None for anything else: input from JSON)."""
    return CAUSES_BY_ID.get(cause_id) if isinstance(cause_id, str) else None
