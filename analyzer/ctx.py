"""The rules' view of one connection: :class:`Ctx` (a summary with its certificate checks, direction and
server profile, typed fields resolved once, derived facts cached), the :class:`Alert` it reads, and the
:class:`CertVerdict` of a certificate rejection.

The summary the engine reads is the rendered JSON (docs/summary-schema.md): alert, handshake message,
version and suite names are the IANA spellings of :mod:`proto.names`, and ``history`` is Zeek's
``ssl_history`` written with :mod:`proto.history`; every name below comes from those two modules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from proto.history import client_letter, server_letter
from proto.names import AlertDescription as AD
from proto.names import AlertLevel, CipherSuite, ExtensionType, HandshakeType, is_tls13_name, version_name

from . import certs
from .causes import CERTIFICATE_REJECTED, EXPIRED_CERTIFICATE, UNKNOWN_CERTIFICATE, Cause
from .certs import ChainReport
from .memory import Recalled
from .profiles import Profile

# ------------------------------------------------------------------------------------------ names

#: alerts a peer sends when it rejects a certificate (OpenSSL sends handshake_failure on a hostname
#: mismatch, decrypt_error on a bad signature)
CERT_ALERTS = frozenset(a.name for a in (
    AD.bad_certificate, AD.unsupported_certificate, AD.certificate_revoked, AD.certificate_expired,
    AD.certificate_unknown, AD.unknown_ca, AD.access_denied, AD.handshake_failure, AD.decrypt_error,
    AD.bad_certificate_status_response, AD.certificate_required, AD.no_certificate))

#: alerts a server answers an unacceptable ClientHello with (versions, suites, groups, SNI); other alerts
#: right after the ClientHello (decode_error, illegal_parameter, no_application_protocol...) say something else
REFUSAL_ALERTS = frozenset(a.name for a in (
    AD.handshake_failure, AD.insufficient_security, AD.protocol_version, AD.close_notify, AD.user_canceled,
    AD.unexpected_message))

#: alerts that are about certificates and nothing else
SPECIFIC_CERT_ALERTS = frozenset(a.name for a in (
    AD.bad_certificate, AD.unsupported_certificate, AD.certificate_revoked, AD.certificate_expired,
    AD.certificate_unknown, AD.unknown_ca, AD.bad_certificate_status_response))

#: which certificate problems an alert points to, most specific first (data, not code)
ALERT_PROBLEMS: Mapping[str, tuple[str, ...]] = {
    AD.certificate_expired.name: (certs.EXPIRED, certs.NOT_YET_VALID),
    AD.unknown_ca.name: (certs.MISSING_ISSUER, certs.ISSUER_MISMATCH, certs.SELF_SIGNED, certs.UNTRUSTED_ROOT,
                         certs.VERIFIER_REJECTED),
    AD.handshake_failure.name: (certs.HOSTNAME_MISMATCH,) + certs.PROBLEM_PRIORITY,
}
#: generic rejections that, with nothing else wrong, point at a root the peer sent but the rejecting side lacks
ROOT_DOUBT_ALERTS = frozenset(a.name for a in (AD.unknown_ca, AD.certificate_unknown, AD.bad_certificate))
#: the cause an alert names by itself when the certificate check found nothing
ALERT_OWN_CAUSE: Mapping[str, Cause] = {
    AD.certificate_expired.name: EXPIRED_CERTIFICATE,
    AD.unknown_ca.name: UNKNOWN_CERTIFICATE,
}

#: alert level of an alert that ends the handshake
FATAL = AlertLevel.fatal.name
#: the summary's ``after``: the last handshake message before an alert
CLIENT_HELLO = HandshakeType.client_hello.name
#: ``history`` letter of the server's ServerHello
_SERVER_HELLO_LETTER = server_letter(HandshakeType.server_hello)
#: ``history`` letter of the client's ClientHello
CLIENT_HELLO_LETTER = client_letter(HandshakeType.client_hello)
_SUPPORTED_VERSIONS = ExtensionType.supported_versions.name

#: outcomes that mean the handshake failed (``incomplete``: the capture ended, ``not_tls``: not judged)
FAILED_OUTCOMES = frozenset({"alert", "encrypted_alert", "reset", "closed", "timeout"})

VERSION_ORDER: tuple[str, ...] = tuple(version_name(v) for v in (0x0002, 0x0300, 0x0301, 0x0302, 0x0303, 0x0304))
VERSION_RANK: Mapping[str, int] = {v: i for i, v in enumerate(VERSION_ORDER)}
TLS13 = version_name(0x0304)
TLS11 = version_name(0x0302)
WEAK_CIPHER_MARKS = ("_RC4_", "_3DES_", "_DES_", "_DES40_", "_NULL_", "EXPORT", "_anon_", "_RC2_", "_IDEA_")
SIGNALING_SUITES = frozenset({CipherSuite.TLS_EMPTY_RENEGOTIATION_INFO_SCSV.name, CipherSuite.TLS_FALLBACK_SCSV.name})


def version_family(v: str) -> str:
    """A version name with every TLS 1.3 variant (drafts, experiments) folded into ``TLSv1.3``."""
    return TLS13 if is_tls13_name(v) else v


def version_rank(v: str) -> int | None:
    return VERSION_RANK.get(version_family(v))


def is_weak_suite(name: str) -> bool:
    return any(m in name for m in WEAK_CIPHER_MARKS)


# ------------------------------------------------------------------------------------------ context


@dataclass(frozen=True, slots=True)
class Alert:
    sender: str
    level: str
    description: str
    after: str | None


@dataclass(frozen=True, slots=True)
class CertVerdict:
    """Which certificate cause a rejection gets: the rejected chain's problems refined by the alert."""

    cause: Cause
    problem: certs.Problem | None
    alert_says: bool    # the alert itself names this problem (certificate_expired, unknown_ca)


#: Ctx._cache: "not computed yet" (a cached value may be None)
_UNSET = object()


@dataclass
class Ctx:
    """One connection, as the rules see it. Built once per summary by the engine."""

    s: Mapping[str, object]
    direction: str
    failed: bool
    server_chain: ChainReport | None
    client_chain: ChainReport | None
    profile: Profile | None            # this server + this SNI
    server_profile: Profile | None     # this server, all SNIs merged
    memory: Recalled | None = None     # TLS 1.3: the chain this server showed in clear earlier, if remembered
    _cache: dict[str, object] = field(default_factory=dict)
    # fields every rule reads, resolved once (typed, never raising on odd input)
    sni: str | None = field(init=False)
    version: str | None = field(init=False)
    history: str = field(init=False)
    outcome: str = field(init=False)
    tls13: bool = field(init=False)
    server_hello_seen: bool = field(init=False)

    def __post_init__(self) -> None:
        self.sni = self.text_field("server_name")
        self.version = self.text_field("version")
        self.history = self.text_field("history") or ""
        self.outcome = self.text_field("outcome") or ""
        v = self.version or ""
        self.tls13 = is_tls13_name(v)
        self.server_hello_seen = bool(v) or _SERVER_HELLO_LETTER in self.history

    # -- raw fields ---------------------------------------------------------------------------------
    def text_field(self, key: str) -> str | None:
        """The summary's field ``key`` if it is a string (else None: absent or malformed)."""
        v = self.s.get(key)
        return v if isinstance(v, str) else None

    def list_field(self, key: str) -> list[object]:
        """The summary's field ``key`` if it is a list (else empty)."""
        v = self.s.get(key)
        return v if isinstance(v, list) else []

    @property
    def alerts(self) -> list[Alert]:
        hit = self._cache.get("alerts")
        if hit is None:
            out = []
            for a in self.list_field("alerts"):
                if isinstance(a, dict):
                    out.append(Alert(str(a.get("from", "")), str(a.get("level", "")),
                                     str(a.get("description", "")), a.get("after") if isinstance(a.get("after"), str) else None))
            self._cache["alerts"] = hit = out
        return hit  # type: ignore[return-value]

    @property
    def fatal(self) -> Alert | None:
        """The alert that ended the handshake: the first fatal one (else the last alert, if failed)."""
        hit = self._cache.get("fatal", _UNSET)
        if hit is _UNSET:
            self._cache["fatal"] = hit = self._fatal()
        return hit  # type: ignore[return-value]

    def _fatal(self) -> Alert | None:
        alerts = self.alerts
        for a in alerts:
            if a.level == FATAL:
                return a
        if self.failed and alerts:
            return alerts[-1]
        return None

    def alert_from(self, side: str, *names: str) -> Alert | None:
        for a in self.alerts:
            if a.sender == side and (not names or a.description in names):
                return a
        return None

    @property
    def client_records(self) -> list[int]:
        """Sizes of the client's first encrypted records (TLS 1.3: everything after its ClientHello)."""
        return [x for x in self.list_field("client_encrypted") if isinstance(x, int)]

    @property
    def server_records(self) -> list[int]:
        return [x for x in self.list_field("server_encrypted") if isinstance(x, int)]

    @property
    def client_alerted(self) -> bool:
        """The sensor flagged a probable encrypted alert from the client."""
        return any(isinstance(e, dict) and e.get("from") == "client" for e in self.list_field("encrypted_alerts"))

    def remembered(self) -> ChainReport | None:
        """The remembered server chain when it applies to this connection and has a problem a client rejects."""
        m = self.memory
        if m is None or not m.usable or not m.report.failure_problems():
            return None
        return m.report

    @property
    def offer_cut(self) -> bool:
        """The sensor kept only the first MAX_OFFER_CODES entries of the ClientHello's lists
        (the weird ``client_offer_truncated``): what the client offered past them is not known,
        so what those lists lack proves nothing."""
        return "client_offer_truncated" in self.list_field("weirds")

    @property
    def client_ciphers(self) -> list[str]:
        return [str(c) for c in self.list_field("client_ciphers") if str(c) not in SIGNALING_SUITES]

    @property
    def explicit_versions(self) -> bool:
        return _SUPPORTED_VERSIONS in [str(e) for e in self.list_field("client_extensions")]

    @property
    def client_max_version(self) -> str | None:
        ranked = [(version_rank(str(v)), str(v)) for v in self.list_field("client_versions")]
        ranked2 = [(r, v) for r, v in ranked if r is not None]
        return max(ranked2)[1] if ranked2 else None

    def offered_versions(self) -> set[str]:
        """Versions the client would accept: explicit supported_versions, else everything up to legacy_version."""
        hit = self._cache.get("offered")
        if hit is None:
            hit = self._cache["offered"] = self._offered_versions()
        return hit  # type: ignore[return-value]

    def _offered_versions(self) -> set[str]:
        vs = {str(v) for v in self.list_field("client_versions")}
        if self.explicit_versions:
            return {version_family(v) for v in vs}
        top = version_rank(self.client_max_version or "")      # (a draft: TLS 1.3's rank)
        if top is None:
            return vs
        return {v for v in VERSION_ORDER[1:] if VERSION_RANK[v] <= top}

    def refusal_profile(self) -> Profile | None:
        return self.profile if self.profile is not None else self.server_profile

    def closer(self) -> str | None:
        """Who closed first: the first FIN sender (a RST after a FIN is a reaction), else the first RST."""
        close = self.s.get("close")
        if not isinstance(close, dict):
            return None
        for key in ("fin", "rst"):
            seq = close.get(key)
            if isinstance(seq, list) and seq:
                return str(seq[0])
        return None

    # -- stages -------------------------------------------------------------------------------------
    def server_refused_hello(self) -> bool:
        """The server answered the ClientHello with an alert or a close, without a ServerHello."""
        if self.server_hello_seen and not self.s.get("hrr"):
            return False
        a = self.fatal
        if a is not None:
            return a.sender == "server" and a.description in REFUSAL_ALERTS
        return self.closer() == "server" or (self.outcome in ("reset", "timeout") and self.closer() is None)

    def cert_rejection(self) -> tuple[str, ChainReport | None, Alert] | None:
        """(rejecting side, the rejected chain, the alert) when a plaintext alert rejected a certificate."""
        a = self.fatal
        if a is None or a.description not in CERT_ALERTS:
            return None
        if a.sender == "client" and self.server_hello_seen and self.list_field("certificates"):
            return "client", self.server_chain, a
        if (a.sender == "client" and self.server_hello_seen and self.tls13 and a.after != CLIENT_HELLO
                and a.description in SPECIFIC_CERT_ALERTS):
            # TLS 1.3 (draft) plaintext alert: the certificate itself is encrypted -- judged on the chain this
            # server showed in clear earlier when that chain has a problem the alert can mean
            return "client", self._remembered_for(a.description), a
        if a.sender == "server" and self.list_field("client_certificates") and a.after != CLIENT_HELLO:
            return "server", self.client_chain, a
        return None

    def _remembered_for(self, alert: str) -> ChainReport | None:
        chain = self.remembered()
        if chain is None:
            return None
        v = judge_rejection(chain, alert)
        # a specific alert (certificate_expired, unknown_ca) must name the remembered problem; a generic one
        # (bad_certificate, certificate_unknown...) takes what the chain shows
        ok = v.problem is not None and (v.alert_says or alert not in ALERT_OWN_CAUSE)
        return chain if ok else None

    @property
    def chain_remembered(self) -> bool:
        """The certificate rejection is judged on the remembered chain, not one seen on this connection."""
        rej = self.cert_rejection()
        return rej is not None and rej[1] is not None and self.memory is not None and rej[1] is self.memory.report

    def cert_verdict(self) -> CertVerdict | None:
        hit = self._cache.get("verdict", False)
        if hit is not False:
            return hit  # type: ignore[return-value]
        rej = self.cert_rejection()
        v = None if rej is None else judge_rejection(rej[1], rej[2].description)
        self._cache["verdict"] = v
        return v


def judge_rejection(chain: ChainReport | None, alert: str) -> CertVerdict:
    """The certificate cause of a rejection: problems the alert points to first, then by priority."""
    problems = chain.failure_problems() if chain is not None else []
    order = ALERT_PROBLEMS.get(alert, certs.PROBLEM_PRIORITY)
    for code in order:
        for p in problems:
            if p.code == code:
                return CertVerdict(certs.PROBLEM_CAUSE[code], p, code in ALERT_PROBLEMS.get(alert, ()))
    for code in certs.PROBLEM_PRIORITY:
        for p in problems:
            if p.code == code:
                return CertVerdict(certs.PROBLEM_CAUSE[code], p, False)
    if (chain is not None and chain.truststore is None and chain.sent_root is not None
            and alert in ROOT_DOUBT_ALERTS):
        root = chain.chain[chain.sent_root]
        return CertVerdict(UNKNOWN_CERTIFICATE, certs.Problem(
            certs.UNTRUSTED_ROOT, chain.sent_root, root.subject,
            f"the chain ends at the self-signed root {root.subject!r} that the peer sent itself, and nothing else is "
            f"wrong with it: most likely that root is not in the rejecting side's truststore"), False)
    own = ALERT_OWN_CAUSE.get(alert)
    if own is not None:
        return CertVerdict(own, None, True)
    return CertVerdict(CERTIFICATE_REJECTED, None, False)


