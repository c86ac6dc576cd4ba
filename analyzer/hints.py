"""Endpoint hints in the diagnosis: what the connection's own OpenSSL reported (the summary's optional
``endpoint_hints``, docs/summary-schema.md; read on the host by ``--endpoint-hints``), turned into the exact
cause and the rejecting side -- in TLS 1.3, where certificates and alerts are encrypted, as in TLS 1.2.

What a hint can say, most exact first:

1. **The rejecting endpoint's own verification**: ``X509_V_ERR_*`` at a depth, with the fatal ``certificate verify
   failed`` -- the cause is the verify error (:data:`VERIFY_CAUSE`), the rejecting side is that endpoint.
   ``unable to get local issuer certificate`` (20) at depth 0 means the peer's leaf came without an issuer the
   endpoint has: most often the intermediate was not sent (``incomplete_chain``), unless the chain seen on the
   wire or remembered shows a root the endpoint lacks; at depth >= 1 the chain reached a CA whose issuer the
   endpoint does not trust (``unknown_certificate``).
2. **A fatal error that names the cause**: ``peer did not return a certificate`` (a server that requires a client
   certificate), ``no shared cipher``, ``unsupported protocol``.
3. **A received fatal alert** (OpenSSL raises ``1000 + description`` -- in TLS 1.3 the alert is encrypted on the
   wire, the hint is its plaintext): the *peer* rejected, and the alert is judged exactly as a plaintext one (the
   certificate alerts against the chain seen or remembered, :func:`analyzer.ctx.judge_rejection`).

A verify error *without* a fatal error is not a rejection: the application went on (``s_client`` without
``-verify_return_error``, nginx's ``ssl_verify_client`` decides after the handshake and answers 400): a warning.

Hints are evidence about one endpoint only: a summary without them is diagnosed from the wire as before, and the
diagnosis says when a cause rests on a hint (rule ids ``TLS-HINT-*``, ``evidence.cause_from``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from proto.hints import (CERTIFICATE_VERIFY_FAILED, NO_SHARED_CIPHER, PEER_DID_NOT_RETURN_A_CERTIFICATE,
                         UNSUPPORTED_PROTOCOL, alert_received, ssl_reason_text)
from proto.names import AlertDescription as AD
from proto.names import alert_description_name

from . import certs
from .causes import (CERTIFICATE_REJECTED, CIPHER_MISMATCH, CLIENT_CERTIFICATE_MISSING, EXPIRED_CERTIFICATE,
                     HOSTNAME_MISMATCH, INCOMPLETE_CHAIN, NOT_YET_VALID_CERTIFICATE, PROTOCOL_MISMATCH,
                     SNI_UNRECOGNIZED, UNKNOWN_CERTIFICATE, Cause)
from .certs import ChainReport
from .ctx import CERT_ALERTS, Ctx, judge_rejection

__all__ = ["EndpointHint", "HintVerdict", "endpoint_hints", "hint_verdict", "hint_failed", "ignored_verifications",
           "VERIFY_CAUSE", "verify_cause", "who"]

HINTS_VERSION = 1

# X509_V_ERR_* codes (OpenSSL x509_vfy.h) the causes read
UNABLE_TO_GET_ISSUER_CERT = 2
CERT_NOT_YET_VALID = 9
CERT_HAS_EXPIRED = 10
DEPTH_ZERO_SELF_SIGNED_CERT = 18
SELF_SIGNED_CERT_IN_CHAIN = 19
UNABLE_TO_GET_ISSUER_CERT_LOCALLY = 20
UNABLE_TO_VERIFY_LEAF_SIGNATURE = 21
CERT_UNTRUSTED = 27
HOSTNAME_MISMATCH_ERR = 62
EMAIL_MISMATCH = 63
IP_ADDRESS_MISMATCH = 64

#: verify error -> cause (20 is decided by depth and chain: :func:`verify_cause`); anything else is a rejection
#: OpenSSL names but no cause of ours does (revoked, bad signature, purpose, key too small...)
VERIFY_CAUSE: Mapping[int, Cause] = {
    CERT_HAS_EXPIRED: EXPIRED_CERTIFICATE,
    CERT_NOT_YET_VALID: NOT_YET_VALID_CERTIFICATE,
    HOSTNAME_MISMATCH_ERR: HOSTNAME_MISMATCH,
    EMAIL_MISMATCH: HOSTNAME_MISMATCH,
    IP_ADDRESS_MISMATCH: HOSTNAME_MISMATCH,
    DEPTH_ZERO_SELF_SIGNED_CERT: UNKNOWN_CERTIFICATE,
    SELF_SIGNED_CERT_IN_CHAIN: UNKNOWN_CERTIFICATE,
    UNABLE_TO_GET_ISSUER_CERT: UNKNOWN_CERTIFICATE,
    CERT_UNTRUSTED: UNKNOWN_CERTIFICATE,
    UNABLE_TO_VERIFY_LEAF_SIGNATURE: INCOMPLETE_CHAIN,
}
#: errors that end the handshake and name their cause by themselves: reason -> (cause, what it means)
REASON_CAUSE: Mapping[int, tuple[Cause, str]] = {
    PEER_DID_NOT_RETURN_A_CERTIFICATE: (CLIENT_CERTIFICATE_MISSING,
                                        "it requires a client certificate and the client sent none"),
    NO_SHARED_CIPHER: (CIPHER_MISMATCH, "none of the client's cipher suites is enabled on it"),
    UNSUPPORTED_PROTOCOL: (PROTOCOL_MISMATCH, "none of the client's versions is enabled on it"),
}
#: received alerts that name a cause without a certificate to judge
_ALERT_CAUSE: Mapping[str, Cause] = {
    AD.certificate_required.name: CLIENT_CERTIFICATE_MISSING,
    AD.protocol_version.name: PROTOCOL_MISMATCH,
    AD.unrecognized_name.name: SNI_UNRECOGNIZED,
    AD.insufficient_security.name: CIPHER_MISMATCH,
}
#: received alerts that are no rejection
_NOT_FATAL = frozenset(a.name for a in (AD.close_notify, AD.user_canceled, AD.no_renegotiation))
#: fatal errors: the handshake ended on them (besides a received alert)
_FATAL_REASONS = frozenset({CERTIFICATE_VERIFY_FAILED}) | frozenset(REASON_CAUSE)


@dataclass(frozen=True, slots=True)
class EndpointHint:
    """One endpoint's report, from the JSON summary."""

    side: str                       # client | server
    pid: int | None
    comm: str
    library: str
    verify_code: int | None
    verify_error: str | None        # X509_V_ERR_... name
    verify_text: str | None
    depth: int | None
    reasons: tuple[int, ...]
    received: tuple[str, ...]       # alert descriptions it received (fatal)
    sent: tuple[str, ...]           # the alert it sent, as its errors say (derived)

    @property
    def fatal(self) -> bool:
        """Its library ended the handshake (an error, or a fatal alert it received)."""
        return bool(_FATAL_REASONS.intersection(self.reasons)) or any(a not in _NOT_FATAL for a in self.received)

    @property
    def rejected_verification(self) -> bool:
        return self.verify_code is not None and CERTIFICATE_VERIFY_FAILED in self.reasons

    def process(self) -> str:
        return f"pid {self.pid} {self.comm}" if self.pid is not None else self.comm

    def as_evidence(self) -> dict[str, object]:
        d: dict[str, object] = {"side": self.side, "pid": self.pid, "comm": self.comm, "library": self.library}
        if self.verify_error:
            d["verify"] = {"error": self.verify_error, "code": self.verify_code, "text": self.verify_text,
                           "depth": self.depth}
        if self.reasons:
            d["ssl_errors"] = list(self.reasons)
        if self.received:
            d["alerts_received"] = list(self.received)
        if self.sent:
            d["alerts_sent"] = list(self.sent)
        return d


def _str(v: object) -> str | None:
    return v if isinstance(v, str) else None


def _int(v: object) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def parse(s: Mapping[str, object]) -> tuple[EndpointHint, ...]:
    """The hints of a JSON summary (none without the field, or of a version this reader does not know)."""
    h = s.get("endpoint_hints")
    if not isinstance(h, dict) or h.get("version") != HINTS_VERSION or not isinstance(h.get("endpoints"), list):
        return ()
    out = []
    for e in h["endpoints"]:
        if not isinstance(e, dict) or e.get("side") not in ("client", "server"):
            continue
        v = e.get("verify") if isinstance(e.get("verify"), dict) else {}
        assert isinstance(v, dict)
        reasons = tuple(r for r in (_int(x.get("reason")) if isinstance(x, dict) else None
                                    for x in (e.get("errors") or [])) if r is not None)
        received = tuple(alert_description_name(a) for a in (alert_received(r) for r in reasons) if a is not None)
        sent = tuple(str(a) for a in (e.get("alerts_sent") or []) if isinstance(a, str))
        out.append(EndpointHint(str(e["side"]), _int(e.get("pid")), _str(e.get("comm")) or "?",
                                _str(e.get("library")) or "?", _int(v.get("code")), _str(v.get("error")),
                                _str(v.get("text")), _int(v.get("depth")), reasons, received, sent))
    return tuple(out)


def endpoint_hints(ctx: Ctx) -> tuple[EndpointHint, ...]:
    hit = ctx._cache.get("hints")
    if hit is None:
        hit = ctx._cache["hints"] = parse(ctx.s)
    return hit  # type: ignore[return-value]


def who(ctx: Ctx, side: str) -> str:
    """The endpoint as the gateway's people call it: the Router (northbound server), the Message Processor
    (southbound client), else the client / the server."""
    if ctx.direction == "northbound":
        return "the Router" if side == "server" else "the client app"
    if ctx.direction == "southbound":
        return "the Message Processor" if side == "client" else "the backend"
    return f"the {side}"


def _other(side: str) -> str:
    return "server" if side == "client" else "client"


@dataclass(frozen=True, slots=True)
class HintVerdict:
    cause: Cause
    rejected_by: str
    hint: EndpointHint              # the endpoint whose report decides
    how: str                        # verify | error | received
    text: str                       # what the hint says, one sentence
    exact: bool                     # the hint names the cause itself (else: one of two causes, see text)


def _chain_of(ctx: Ctx, whose: str) -> ChainReport | None:
    """The chain of ``whose`` certificate as the wire showed it (or, for a server's, as it was remembered)."""
    if whose == "client":
        return ctx.client_chain
    if ctx.server_chain is not None:
        return ctx.server_chain
    return ctx.remembered() if ctx.memory is not None else None


def verify_cause(code: int, depth: int | None, chain: ChainReport | None) -> tuple[Cause, bool]:
    """(cause, exact) of a verify error; ``chain``: the verified chain if the wire showed it."""
    if code == UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
        codes = chain.codes() if chain is not None else set()
        if codes & {certs.SELF_SIGNED, certs.UNTRUSTED_ROOT}:
            return UNKNOWN_CERTIFICATE, True
        if codes & {certs.MISSING_ISSUER, certs.ISSUER_MISMATCH}:
            return INCOMPLETE_CHAIN, True
        if depth is not None and depth >= 1:
            return UNKNOWN_CERTIFICATE, True
        return INCOMPLETE_CHAIN, False
    hit = VERIFY_CAUSE.get(code)
    return (hit, True) if hit is not None else (CERTIFICATE_REJECTED, True)


def _whose(side: str) -> str:
    return "client's" if side == "server" else "server's"


def _verify_text(ctx: Ctx, h: EndpointHint) -> str:
    depth = f" at depth {h.depth}" if h.depth is not None else ""
    what = "the client's certificate" if h.side == "server" else "the server's certificate"
    return (f"{who(ctx, h.side)}'s OpenSSL ({h.process()}) reported {h.verify_error} ({h.verify_text}){depth} "
            f"verifying {what}")


def hint_verdict(ctx: Ctx) -> HintVerdict | None:
    """What the hints say ended the handshake, most exact first (module docstring); None when they say nothing
    about a rejection."""
    hit = ctx._cache.get("hint_verdict", False)
    if hit is not False:
        return hit  # type: ignore[return-value]
    v = _verdict(ctx)
    ctx._cache["hint_verdict"] = v
    return v


def _verdict(ctx: Ctx) -> HintVerdict | None:
    hints = endpoint_hints(ctx)
    if not hints:
        return None
    for h in hints:                                           # 1. the rejecting endpoint's own verification
        if h.rejected_verification and h.verify_code is not None:
            chain = _chain_of(ctx, _other(h.side))
            cause, exact = verify_cause(h.verify_code, h.depth, chain)
            text = _verify_text(ctx, h) + " and ended the handshake (certificate verify failed"
            text += f"; it sends {h.sent[0]})" if h.sent else ")"
            if not exact:
                text += (": the issuer of that certificate was neither sent nor in its truststore -- most often "
                         "the intermediate certificate was not sent; if the certificate was issued directly by a "
                         "CA, that CA is not trusted")
            return HintVerdict(cause, h.side, h, "verify", text, exact)
    for h in hints:                                           # 2. an error that names the cause
        for r in h.reasons:
            if r in REASON_CAUSE:
                cause, meaning = REASON_CAUSE[r]
                text = (f"{who(ctx, h.side)}'s OpenSSL ({h.process()}) ended the handshake with "
                        f"'{ssl_reason_text(r)}': {meaning}")
                if h.sent:
                    text += f" (it sends {h.sent[0]})"
                return HintVerdict(cause, h.side, h, "error", text, True)
    for h in hints:                                           # 3. the alert it received: the peer rejected
        for a in h.received:
            if a in _NOT_FATAL:
                continue
            peer = _other(h.side)
            text = (f"{who(ctx, h.side)}'s OpenSSL ({h.process()}) received fatal {a} from {who(ctx, peer)}"
                    f"{' (encrypted on the wire)' if ctx.tls13 else ''}")
            if a in _ALERT_CAUSE:
                return HintVerdict(_ALERT_CAUSE[a], peer, h, "received", text, True)
            if a in CERT_ALERTS:
                rejected = _chain_of(ctx, h.side)
                jv = judge_rejection(rejected, a)
                if jv.problem is not None:
                    text += f"; its own certificate: {jv.problem.detail}"
                return HintVerdict(jv.cause, peer, h, "received", text, jv.problem is not None or jv.alert_says)
            return None
    return None


def hint_failed(s: Mapping[str, object]) -> bool:
    """An endpoint's library ended this handshake (cheap, on the JSON summary)."""
    return any(h.fatal for h in parse(s))


def ignored_verifications(ctx: Ctx) -> list[EndpointHint]:
    """Endpoints whose verification failed but whose handshake went on (no fatal error of theirs)."""
    return [h for h in endpoint_hints(ctx) if h.verify_code is not None and not h.fatal]
