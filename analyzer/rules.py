"""Diagnosis rules: data plus small pure predicates.

Each :class:`Rule` has a stable ``id`` (never renamed), the ``cause`` it diagnoses, a ``match`` predicate
over a :class:`Ctx` (one connection with its certificate checks, direction and server profile), and an
``explain`` function returning a :class:`Finding` (who rejected, confidence, why, what would raise the
confidence). :data:`FAILURE_RULES` is ordered; the first matching rule gives the one failure diagnosis of a
failed connection, and the last rule always matches.

Alert and message names are the IANA spellings used in the summary (``handshake_failure``,
``client_hello``); they are named constants here, never numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from proto.names import is_tls13_name

from . import certs as C
from .certs import ChainReport
from .profiles import Profile

# ------------------------------------------------------------------------------------------ names

# causes (stable)
PROTOCOL_MISMATCH = "protocol_mismatch"
CIPHER_MISMATCH = "cipher_mismatch"
SNI_REQUIRED = "sni_required"
SNI_UNRECOGNIZED = "sni_unrecognized"
HOSTNAME_MISMATCH = "hostname_mismatch"
INCOMPLETE_CHAIN = "incomplete_chain"
EXPIRED_CERTIFICATE = "expired_certificate"
NOT_YET_VALID_CERTIFICATE = "not_yet_valid_certificate"
UNKNOWN_CERTIFICATE = "unknown_certificate"
CERTIFICATE_REJECTED = "certificate_rejected"
CLIENT_CERTIFICATE_MISSING = "client_certificate_missing"
ENCRYPTED_FAILURE = "encrypted_failure"
UNKNOWN = "unknown"
#: warning-only cause: a certificate that expires within the configured number of days
EXPIRING_CERTIFICATE = "expiring_certificate"

FAILURE_CAUSES: tuple[str, ...] = (
    PROTOCOL_MISMATCH, CIPHER_MISMATCH, SNI_REQUIRED, SNI_UNRECOGNIZED, HOSTNAME_MISMATCH, INCOMPLETE_CHAIN,
    EXPIRED_CERTIFICATE, NOT_YET_VALID_CERTIFICATE, UNKNOWN_CERTIFICATE, CERTIFICATE_REJECTED,
    CLIENT_CERTIFICATE_MISSING, ENCRYPTED_FAILURE, UNKNOWN,
)
CERTIFICATE_CAUSES = frozenset({HOSTNAME_MISMATCH, INCOMPLETE_CHAIN, EXPIRED_CERTIFICATE,
                                NOT_YET_VALID_CERTIFICATE, UNKNOWN_CERTIFICATE, CERTIFICATE_REJECTED})

HIGH, MEDIUM, LOW = "high", "medium", "low"

# alert descriptions (RFC 8446 / IANA TLS Alert registry)
CLOSE_NOTIFY = "close_notify"
HANDSHAKE_FAILURE = "handshake_failure"
BAD_CERTIFICATE = "bad_certificate"
UNSUPPORTED_CERTIFICATE = "unsupported_certificate"
CERTIFICATE_REVOKED = "certificate_revoked"
CERTIFICATE_EXPIRED = "certificate_expired"
CERTIFICATE_UNKNOWN = "certificate_unknown"
ILLEGAL_PARAMETER = "illegal_parameter"
UNKNOWN_CA = "unknown_ca"
ACCESS_DENIED = "access_denied"
DECRYPT_ERROR = "decrypt_error"
PROTOCOL_VERSION = "protocol_version"
INSUFFICIENT_SECURITY = "insufficient_security"
UNRECOGNIZED_NAME = "unrecognized_name"
BAD_CERTIFICATE_STATUS_RESPONSE = "bad_certificate_status_response"
CERTIFICATE_REQUIRED = "certificate_required"
NO_CERTIFICATE = "no_certificate"

# handshake message names
CLIENT_HELLO = "client_hello"
SERVER_HELLO = "server_hello"

#: alerts a peer sends when it rejects a certificate (OpenSSL sends handshake_failure on a hostname
#: mismatch, decrypt_error on a bad signature)
CERT_ALERTS = frozenset({BAD_CERTIFICATE, UNSUPPORTED_CERTIFICATE, CERTIFICATE_REVOKED, CERTIFICATE_EXPIRED,
                         CERTIFICATE_UNKNOWN, UNKNOWN_CA, ACCESS_DENIED, HANDSHAKE_FAILURE, DECRYPT_ERROR,
                         BAD_CERTIFICATE_STATUS_RESPONSE, CERTIFICATE_REQUIRED, NO_CERTIFICATE})

#: alerts a server answers an unacceptable ClientHello with (versions, suites, groups, SNI); other alerts
#: right after the ClientHello (decode_error, illegal_parameter, no_application_protocol...) say something else
REFUSAL_ALERTS = frozenset({HANDSHAKE_FAILURE, INSUFFICIENT_SECURITY, PROTOCOL_VERSION, CLOSE_NOTIFY,
                            "user_canceled", "unexpected_message"})
NO_APPLICATION_PROTOCOL = "no_application_protocol"

#: alerts that are about certificates and nothing else
SPECIFIC_CERT_ALERTS = frozenset({BAD_CERTIFICATE, UNSUPPORTED_CERTIFICATE, CERTIFICATE_REVOKED, CERTIFICATE_EXPIRED,
                                  CERTIFICATE_UNKNOWN, UNKNOWN_CA, BAD_CERTIFICATE_STATUS_RESPONSE})

#: which certificate problems an alert points to, most specific first (data, not code)
ALERT_PROBLEMS: Mapping[str, tuple[str, ...]] = {
    CERTIFICATE_EXPIRED: (C.EXPIRED, C.NOT_YET_VALID),
    UNKNOWN_CA: (C.MISSING_ISSUER, C.ISSUER_MISMATCH, C.SELF_SIGNED, C.UNTRUSTED_ROOT, C.VERIFIER_REJECTED),
    HANDSHAKE_FAILURE: (C.HOSTNAME_MISMATCH,) + C.PROBLEM_PRIORITY,
}
#: generic rejections that, with nothing else wrong, point at a root the peer sent but the rejecting side lacks
ROOT_DOUBT_ALERTS = frozenset({UNKNOWN_CA, CERTIFICATE_UNKNOWN, BAD_CERTIFICATE})
#: the cause an alert names by itself when the certificate check found nothing
ALERT_OWN_CAUSE: Mapping[str, str] = {
    CERTIFICATE_EXPIRED: EXPIRED_CERTIFICATE,
    UNKNOWN_CA: UNKNOWN_CERTIFICATE,
}

#: outcomes that mean the handshake failed (``incomplete``: the capture ended, ``not_tls``: not judged)
FAILED_OUTCOMES = frozenset({"alert", "encrypted_alert", "reset", "closed", "timeout"})

VERSION_ORDER: tuple[str, ...] = ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3")
VERSION_RANK: Mapping[str, int] = {v: i for i, v in enumerate(VERSION_ORDER)}
WEAK_CIPHER_MARKS = ("_RC4_", "_3DES_", "_DES_", "_DES40_", "_NULL_", "EXPORT", "_anon_", "_RC2_", "_IDEA_")
SIGNALING_SUITES = frozenset({"TLS_EMPTY_RENEGOTIATION_INFO_SCSV", "TLS_FALLBACK_SCSV"})


def version_rank(v: str) -> int | None:
    if v in VERSION_RANK:
        return VERSION_RANK[v]
    if v.startswith("TLSv1.3"):
        return VERSION_RANK["TLSv1.3"]
    return None


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

    cause: str
    problem: C.Problem | None
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
    _cache: dict[str, object] = field(default_factory=dict)
    # fields every rule reads, resolved once (typed, never raising on odd input)
    sni: str | None = field(init=False)
    version: str | None = field(init=False)
    history: str = field(init=False)
    outcome: str = field(init=False)
    tls13: bool = field(init=False)
    server_hello_seen: bool = field(init=False)

    def __post_init__(self) -> None:
        self.sni = self.str_("server_name")
        self.version = self.str_("version")
        self.history = self.str_("history") or ""
        self.outcome = self.str_("outcome") or ""
        v = self.version or ""
        self.tls13 = is_tls13_name(v)
        self.server_hello_seen = bool(v) or "s" in self.history.lstrip("^")

    # -- raw fields ---------------------------------------------------------------------------------
    def str_(self, key: str) -> str | None:
        v = self.s.get(key)
        return v if isinstance(v, str) else None

    def list_(self, key: str) -> list[object]:
        v = self.s.get(key)
        return v if isinstance(v, list) else []

    @property
    def alerts(self) -> list[Alert]:
        hit = self._cache.get("alerts")
        if hit is None:
            out = []
            for a in self.list_("alerts"):
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
            if a.level == "fatal":
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
    def client_ciphers(self) -> list[str]:
        return [str(c) for c in self.list_("client_ciphers") if str(c) not in SIGNALING_SUITES]

    @property
    def explicit_versions(self) -> bool:
        return "supported_versions" in [str(e) for e in self.list_("client_extensions")]

    @property
    def client_max_version(self) -> str | None:
        ranked = [(version_rank(str(v)), str(v)) for v in self.list_("client_versions")]
        ranked2 = [(r, v) for r, v in ranked if r is not None]
        return max(ranked2)[1] if ranked2 else None

    def offered_versions(self) -> set[str]:
        """Versions the client would accept: explicit supported_versions, else everything up to legacy_version."""
        hit = self._cache.get("offered")
        if hit is None:
            hit = self._cache["offered"] = self._offered_versions()
        return hit  # type: ignore[return-value]

    def _offered_versions(self) -> set[str]:
        vs = {str(v) for v in self.list_("client_versions")}
        if self.explicit_versions:
            return {("TLSv1.3" if v.startswith("TLSv1.3") else v) for v in vs}
        top = self.client_max_version
        if top is None:
            return vs
        return {v for v in VERSION_ORDER[1:] if VERSION_RANK[v] <= VERSION_RANK[top]}

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
        if a.sender == "client" and self.server_hello_seen and self.list_("certificates"):
            return "client", self.server_chain, a
        if (a.sender == "client" and self.server_hello_seen and self.tls13 and a.after != CLIENT_HELLO
                and a.description in SPECIFIC_CERT_ALERTS):
            return "client", None, a    # TLS 1.3 (draft) plaintext alert: the certificate itself is encrypted
        if a.sender == "server" and self.list_("client_certificates") and a.after != CLIENT_HELLO:
            return "server", self.client_chain, a
        return None

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
    order = ALERT_PROBLEMS.get(alert, C.PROBLEM_PRIORITY)
    for code in order:
        for p in problems:
            if p.code == code:
                return CertVerdict(C.PROBLEM_CAUSE[code], p, code in ALERT_PROBLEMS.get(alert, ()))
    for code in C.PROBLEM_PRIORITY:
        for p in problems:
            if p.code == code:
                return CertVerdict(C.PROBLEM_CAUSE[code], p, False)
    if (chain is not None and chain.truststore is None and chain.sent_root is not None
            and alert in ROOT_DOUBT_ALERTS):
        root = chain.chain[chain.sent_root]
        return CertVerdict(UNKNOWN_CERTIFICATE, C.Problem(
            C.UNTRUSTED_ROOT, chain.sent_root, root.subject,
            f"the chain ends at the self-signed root {root.subject!r} that the peer sent itself, and nothing else is "
            f"wrong with it: most likely that root is not in the rejecting side's truststore"), False)
    own = ALERT_OWN_CAUSE.get(alert)
    if own is not None:
        return CertVerdict(own, None, True)
    return CertVerdict(CERTIFICATE_REJECTED, None, False)


# ------------------------------------------------------------------------------------------ findings


@dataclass(frozen=True, slots=True)
class Finding:
    rejected_by: str | None
    confidence: str
    why: str
    raise_confidence: str | None = None
    evidence: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    cause: str
    match: Callable[[Ctx], bool]
    explain: Callable[[Ctx], Finding]


def _alert_text(a: Alert | None) -> str:
    if a is None:
        return "no alert"
    after = f" after {a.after}" if a.after else ""
    return f"{a.sender} sent {a.level} {a.description}{after}"


def _refusal_text(ctx: Ctx) -> str:
    a = ctx.fatal
    if a is not None:
        return f"the server answered the ClientHello with {a.level} {a.description} (no ServerHello)"
    close = ctx.s.get("close") if isinstance(ctx.s.get("close"), dict) else {}
    assert isinstance(close, dict)
    how = ("never answered" if ctx.outcome == "timeout" else "closed" if "server" in (close.get("fin") or [])
           else "reset" if "server" in (close.get("rst") or []) else "closed")
    return f"the server {how} the connection right after the ClientHello, without a ServerHello or an alert"


def _profile_conf(p: Profile, base: str = MEDIUM) -> str:
    return HIGH if p.count >= 5 else base


def _weaker(conf: str) -> str:
    return {HIGH: MEDIUM, MEDIUM: LOW, LOW: LOW}[conf]


def _refusal_conf(ctx: Ctx, conf: str) -> str:
    """A bare close (no alert) says less than an alert."""
    return conf if ctx.fatal is not None else _weaker(conf)


def _offer(ctx: Ctx) -> str:
    vs = sorted(ctx.offered_versions(), key=lambda v: VERSION_RANK.get(v, 99))
    how = "supported_versions" if ctx.explicit_versions else "legacy_version, so up to"
    return f"{how} {'/'.join(vs) if ctx.explicit_versions else (ctx.client_max_version or '?')}" if vs else "no versions"


# -- predicates --------------------------------------------------------------------------------------


def m_sni_unrecognized(ctx: Ctx) -> bool:
    return ctx.sni is not None and ctx.alert_from("server", UNRECOGNIZED_NAME) is not None


def m_unrecognized_without_sni(ctx: Ctx) -> bool:
    """nginx ``ssl_reject_handshake`` and similar: no server_name at all, answered with unrecognized_name."""
    return ctx.sni is None and ctx.alert_from("server", UNRECOGNIZED_NAME) is not None


def e_unrecognized_without_sni(ctx: Ctx) -> Finding:
    a = ctx.alert_from("server", UNRECOGNIZED_NAME)
    assert a is not None
    return Finding("server", HIGH, f"the ClientHello has no server_name and the server answered {a.level} "
                   f"unrecognized_name: it serves only named hosts")


def m_no_alpn(ctx: Ctx) -> bool:
    a = ctx.fatal
    return a is not None and a.description == NO_APPLICATION_PROTOCOL


def e_no_alpn(ctx: Ctx) -> Finding:
    a = ctx.fatal
    assert a is not None
    offered = ", ".join(map(str, ctx.list_("client_alpn"))) or "none"
    return Finding(a.sender if a.sender in ("client", "server") else None, MEDIUM,
                   f"no common application protocol (ALPN): the client offered {offered}; {_alert_text(a)}. Not a "
                   f"TLS version, suite or certificate problem", "the server's ALPN configuration (h2 / http/1.1)")


def e_sni_unrecognized(ctx: Ctx) -> Finding:
    srv = ctx.alert_from("server", UNRECOGNIZED_NAME)
    assert srv is not None
    fatal = ctx.fatal
    if srv.level == "fatal" or fatal is None or fatal is srv:
        return Finding("server", HIGH, f"the server does not know the name {ctx.sni!r}: it sent {srv.level} unrecognized_name")
    return Finding("client", HIGH,
                   f"the server sent a warning unrecognized_name for {ctx.sni!r} and the client treated it as fatal "
                   f"({_alert_text(fatal)}), as Java's JSSE does")


def m_protocol_alert_server(ctx: Ctx) -> bool:
    a = ctx.fatal
    return a is not None and a.sender == "server" and a.description == PROTOCOL_VERSION


def e_protocol_alert_server(ctx: Ctx) -> Finding:
    p = ctx.refusal_profile()
    extra = f"; server profile: {p.describe()}" if p else ""
    return Finding("server", HIGH, f"the server refused the client's versions ({_offer(ctx)}) with fatal protocol_version{extra}")


def _client_version_refusal(ctx: Ctx) -> str | None:
    """How sure we are that the client's alert refuses the version the server chose: "high" (protocol_version,
    or a version outside its explicit supported_versions), "medium" (a generic alert against an old version
    with nothing wrong in the certificate: Java 8 with TLSv1/1.1 disabled says handshake_failure), else None."""
    a = ctx.fatal
    if a is None or a.sender != "client" or not ctx.server_hello_seen or ctx.version is None:
        return None
    if a.description == PROTOCOL_VERSION:
        return HIGH
    if a.description not in (HANDSHAKE_FAILURE, ILLEGAL_PARAMETER, INSUFFICIENT_SECURITY):
        return None
    chosen = "TLSv1.3" if ctx.version.startswith("TLSv1.3") else ctx.version
    if ctx.explicit_versions and chosen not in ctx.offered_versions() and not ctx.list_("certificates"):
        return HIGH
    rank = VERSION_RANK.get(chosen)
    if rank is not None and rank <= VERSION_RANK["TLSv1.1"] and not rejecting_problems(ctx.server_chain):
        return MEDIUM
    return None


def m_protocol_alert_client(ctx: Ctx) -> bool:
    return _client_version_refusal(ctx) is not None


def e_protocol_alert_client(ctx: Ctx) -> Finding:
    a = ctx.fatal
    conf = _client_version_refusal(ctx) or LOW
    return Finding("client", conf,
                   f"the server chose {ctx.version} but the client ({_offer(ctx)}) refused it: {_alert_text(a)}",
                   None if conf == HIGH else "the client's log (e.g. Java: 'No appropriate protocol'), or "
                   "`tlsdiag probe HOST:PORT` to list the versions the server accepts")


def _profile_versions_refute(ctx: Ctx) -> bool:
    p = ctx.refusal_profile()
    return bool(p and p.versions and not (set(p.versions) & ctx.offered_versions()))


def m_profile_version(ctx: Ctx) -> bool:
    return ctx.server_refused_hello() and _profile_versions_refute(ctx)


def e_profile_version(ctx: Ctx) -> Finding:
    p = ctx.refusal_profile()
    assert p is not None
    chose = "/".join(sorted(p.versions))
    return Finding("server", _refusal_conf(ctx, _profile_conf(p)),
                   f"the server chose only {chose} in {p.count} successful handshakes; this client offered {_offer(ctx)}: "
                   f"{_refusal_text(ctx)}",
                   None if p.count >= 5 else "more successful handshakes to this server, or `tlsdiag probe` of its versions")


def _profile_suites_refute(ctx: Ctx) -> bool:
    p = ctx.refusal_profile()
    return bool(p and p.ciphers and ctx.client_ciphers and not (set(p.ciphers) & set(ctx.client_ciphers)))


def m_profile_cipher(ctx: Ctx) -> bool:
    return ctx.server_refused_hello() and _profile_suites_refute(ctx)


def e_profile_cipher(ctx: Ctx) -> Finding:
    p = ctx.refusal_profile()
    assert p is not None
    chose = ", ".join(k for k, _ in p.ciphers.most_common(4))
    return Finding("server", _refusal_conf(ctx, _profile_conf(p)),
                   f"the server chose only {chose} in {p.count} successful handshakes; none of the client's "
                   f"{len(ctx.client_ciphers)} offered suites is among them: {_refusal_text(ctx)}",
                   None if p.count >= 5 else "more successful handshakes to this server, or `tlsdiag probe` with this offer",
                   {"server_chose_suites": dict(p.ciphers)})


def _profile_groups_refute(ctx: Ctx) -> bool:
    p = ctx.refusal_profile()
    offered = {str(g) for g in ctx.list_("client_groups")}
    return bool(p and p.groups and offered and not (set(p.groups) & offered))


def m_profile_group(ctx: Ctx) -> bool:
    return ctx.server_refused_hello() and _profile_groups_refute(ctx)


def e_profile_group(ctx: Ctx) -> Finding:
    p = ctx.refusal_profile()
    assert p is not None
    chose = ", ".join(k for k, _ in p.groups.most_common(4))
    offered = ", ".join(map(str, ctx.list_("client_groups")))
    return Finding("server", _refusal_conf(ctx, _profile_conf(p)),
                   f"no common key-exchange group: the server chose only {chose} in {p.count} successful handshakes; "
                   f"this client offered {offered}: {_refusal_text(ctx)}",
                   None if p.count >= 5 else "more successful handshakes to this server, or `tlsdiag probe` with this offer",
                   {"server_chose_groups": dict(p.groups)})


def _profile_wants_sni(ctx: Ctx) -> bool:
    p = ctx.server_profile
    return bool(ctx.sni is None and p and p.with_sni > 0 and p.without_sni == 0)


def m_profile_sni(ctx: Ctx) -> bool:
    return ctx.server_refused_hello() and _profile_wants_sni(ctx)


def e_profile_sni(ctx: Ctx) -> Finding:
    p = ctx.server_profile
    assert p is not None
    return Finding("server", _refusal_conf(ctx, _profile_conf(p)),
                   f"the ClientHello has no server_name; all {p.with_sni} successful handshakes to this server sent one: "
                   f"{_refusal_text(ctx)}",
                   None if p.count >= 5 else "more successful handshakes, or `tlsdiag probe HOST:PORT` with and without --servername")


def m_profile_other_names(ctx: Ctx) -> bool:
    """HAProxy strict-sni and the like: the server works for other names, never for this one, and refuses it
    with a plain handshake_failure although the version and suites are ones it accepts."""
    p = ctx.server_profile
    return bool(ctx.server_refused_hello() and ctx.sni and ctx.profile is None and p is not None
                and p.with_sni > 0 and p.without_sni == 0 and not _profile_versions_refute(ctx)
                and not _profile_suites_refute(ctx) and not _profile_groups_refute(ctx))


def e_profile_other_names(ctx: Ctx) -> Finding:
    p = ctx.server_profile
    assert p is not None
    return Finding("server", MEDIUM,
                   f"the server refused the name {ctx.sni!r} ({_refusal_text(ctx)}), while {p.with_sni} successful "
                   f"handshakes to it used other names; versions and suites match what it accepts",
                   "`tlsdiag probe HOST:PORT --servername NAME` with this name and a known-good one")


def m_implicit_version(ctx: Ctx) -> bool:
    """Legacy-only ClientHello above every version the server ever chose, and suites overlap: the server
    refused instead of negotiating down."""
    p = ctx.refusal_profile()
    top = ctx.client_max_version
    if not (ctx.server_refused_hello() and p and p.versions and top and not ctx.explicit_versions):
        return False
    ranks = [version_rank(v) for v in p.versions]
    return all(r is not None and r < VERSION_RANK.get(top, 0) for r in ranks) and not _profile_suites_refute(ctx)


def e_implicit_version(ctx: Ctx) -> Finding:
    p = ctx.refusal_profile()
    assert p is not None
    return Finding("server", MEDIUM,
                   f"the server chose only {'/'.join(sorted(p.versions))} in {p.count} successful handshakes and this "
                   f"client's hello says {ctx.client_max_version}; the suites overlap, so the version is what the server "
                   f"refused: {_refusal_text(ctx)}",
                   "`tlsdiag probe HOST:PORT` to list the versions the server accepts")


def m_old_versions(ctx: Ctx) -> bool:
    top = ctx.client_max_version
    return ctx.fatal is not None and (ctx.server_refused_hello() and ctx.refusal_profile() is None and top is not None
            and VERSION_RANK.get(top, 99) <= VERSION_RANK["TLSv1.1"])


def e_old_versions(ctx: Ctx) -> Finding:
    return Finding("server", _refusal_conf(ctx, MEDIUM),
                   f"the client offered at most {ctx.client_max_version}, which current servers refuse: {_refusal_text(ctx)}",
                   "successful handshakes to this server in the capture (a profile), or `tlsdiag probe`")


def m_insufficient_security(ctx: Ctx) -> bool:
    a = ctx.fatal
    return ctx.server_refused_hello() and a is not None and a.description == INSUFFICIENT_SECURITY


def e_insufficient_security(ctx: Ctx) -> Finding:
    return Finding("server", MEDIUM,
                   f"the server found the offered suites too weak (fatal insufficient_security); offered: "
                   f"{', '.join(ctx.client_ciphers[:6])}{' ...' if len(ctx.client_ciphers) > 6 else ''}",
                   "successful handshakes to this server (a profile of the suites it chooses)")


def m_weak_only(ctx: Ctx) -> bool:
    cs = ctx.client_ciphers
    return ctx.fatal is not None and ctx.server_refused_hello() and bool(cs) and all(is_weak_suite(c) for c in cs)


def e_weak_only(ctx: Ctx) -> Finding:
    return Finding("server", _refusal_conf(ctx, MEDIUM),
                   f"the client offered only weak suites ({', '.join(ctx.client_ciphers[:6])}): {_refusal_text(ctx)}",
                   "successful handshakes to this server (a profile of the suites it chooses)")


def m_sni_missing(ctx: Ctx) -> bool:
    p = ctx.server_profile
    return ctx.fatal is not None and ctx.server_refused_hello() and ctx.sni is None and (p is None or p.without_sni == 0)


def e_sni_missing(ctx: Ctx) -> Finding:
    return Finding("server", LOW,
                   f"the ClientHello has no server_name and {_refusal_text(ctx)}; the versions and suites give no "
                   f"other reason (no successful handshakes to this server to compare)",
                   "successful handshakes to this server in the same capture, or `tlsdiag probe HOST:PORT --servername NAME` "
                   "(handshake with and without SNI)")


def m_cipher_fallback(ctx: Ctx) -> bool:
    return ctx.fatal is not None and ctx.server_refused_hello() and ctx.refusal_profile() is None


def e_cipher_fallback(ctx: Ctx) -> Finding:
    return Finding("server", LOW,
                   f"SNI {ctx.sni!r} sent and versions not refused, yet {_refusal_text(ctx)}: most likely no common cipher "
                   f"suite (or key-exchange group / signature algorithm)",
                   "successful handshakes to this server in the capture, or `tlsdiag probe HOST:PORT` with this client's offer")


def m_hrr_abort(ctx: Ctx) -> bool:
    a = ctx.fatal
    return bool(ctx.s.get("hrr")) and a is not None and a.sender == "client" and a.description in (
        ILLEGAL_PARAMETER, HANDSHAKE_FAILURE, INSUFFICIENT_SECURITY)


def e_hrr_abort(ctx: Ctx) -> Finding:
    return Finding("client", MEDIUM,
                   f"the server sent a HelloRetryRequest (asking for another key-share group) and the client gave up: "
                   f"{_alert_text(ctx.fatal)}; offered groups {', '.join(map(str, ctx.list_('client_groups')))}",
                   "`tlsdiag probe HOST:PORT` to see the group the server wants")


def m_client_cert_missing(ctx: Ctx) -> bool:
    a = ctx.fatal
    if a is None or a.sender != "server" or a.after in (None, CLIENT_HELLO):
        return False
    if a.description == CERTIFICATE_REQUIRED:
        return not ctx.list_("client_certificates")
    return bool(ctx.s.get("certificate_request")) and (
        bool(ctx.s.get("client_certificate_empty")) or not ctx.list_("client_certificates"))


def e_client_cert_missing(ctx: Ctx) -> Finding:
    how = "an empty Certificate message" if ctx.s.get("client_certificate_empty") else "no client certificate"
    return Finding("server", HIGH,
                   f"the server asked for a client certificate (CertificateRequest), the client answered with {how}, and "
                   f"the server ended the handshake: {_alert_text(ctx.fatal)}")


def _cert_match(cause: str) -> Callable[[Ctx], bool]:
    def match(ctx: Ctx) -> bool:
        v = ctx.cert_verdict()
        return v is not None and v.cause == cause
    match.__name__ = f"m_cert_{cause}"
    return match


def e_cert(ctx: Ctx) -> Finding:
    rej = ctx.cert_rejection()
    v = ctx.cert_verdict()
    assert rej is not None and v is not None
    side, chain, alert = rej
    whose = "server's" if side == "client" else "client's"
    if v.problem is not None:
        conf = HIGH if (v.alert_says or alert.description in (BAD_CERTIFICATE, CERTIFICATE_UNKNOWN, HANDSHAKE_FAILURE,
                                                               UNSUPPORTED_CERTIFICATE)) else MEDIUM
        raise_ = None
        if v.problem.code == C.UNTRUSTED_ROOT and chain is not None and chain.truststore is None:
            conf, raise_ = MEDIUM, "the rejecting side's truststore (--truststore) to confirm the root is missing"
        if v.problem.code == C.MISSING_ISSUER and chain is not None and chain.truststore is None:
            conf, raise_ = MEDIUM, ("a truststore (--truststore) to tell a missing intermediate from an untrusted root "
                                    f"that issued the leaf directly ({v.problem.detail})")
        why = f"the {side} rejected the {whose} certificate ({_alert_text(alert)}): {v.problem.detail}"
        return Finding(side, conf, why, raise_)
    if v.alert_says:
        if chain is None:
            why = (f"the {side} rejected the {whose} certificate with {alert.description} (the certificate is encrypted "
                   f"on the wire)")
            raise_ = "`tlsdiag probe HOST:PORT --servername NAME` to fetch and validate the chain the server serves"
        else:
            why = (f"the {side} rejected the {whose} certificate with {alert.description}; the certificate check at "
                   f"capture time found no such problem (the {side}'s clock or truststore differs from ours)")
            raise_ = ("a truststore (--truststore) like the one the " + side + " uses" if chain.truststore is None
                      else f"the {side}'s clock and truststore")
        return Finding(side, MEDIUM, why, raise_)
    why = (f"the {side} rejected the {whose} certificate ({_alert_text(alert)}) but neither the alert nor the "
           f"certificate check says which problem")
    return Finding(side, LOW, why, "a truststore (--truststore) and the expected name (--target), or `tlsdiag probe`")


def m_encrypted(ctx: Ctx) -> bool:
    if not ctx.tls13 or not ctx.server_hello_seen:
        return False
    a = ctx.fatal
    return a is None or a.after not in (None, CLIENT_HELLO)


#: smallest TLS 1.3 record that can hold a client Finished: 4 (header) + 32 (SHA-256 verify_data) + 1 (inner
#: content type) + 16 (AEAD tag). Anything shorter as the client's last record is an alert (19 bytes + padding).
TLS13_MIN_FINISHED_RECORD = 53
#: an empty TLS 1.3 client Certificate message, encrypted: 4 + 1 (context) + 3 (list) + 1 + 16
TLS13_EMPTY_CERTIFICATE_RECORD = 25


def _tls13_client_records(ctx: Ctx) -> list[int]:
    return [int(x) for x in ctx.list_("client_encrypted") if isinstance(x, int)]


def tls13_client_never_finished(ctx: Ctx) -> bool:
    """TLS 1.3: the client sent encrypted records but none big enough to be its Finished, and its last one is
    alert-sized: it aborted with an encrypted alert (the sensor may still call this 'established')."""
    if not ctx.tls13 or not ctx.server_hello_seen or ctx.s.get("resumed") or ctx.s.get("client_psk"):
        return False
    ce = _tls13_client_records(ctx)
    return (bool(ce) and len(ce) < 8 and all(n < TLS13_MIN_FINISHED_RECORD for n in ce)
            and ce[-1] != TLS13_EMPTY_CERTIFICATE_RECORD)


def tls13_server_dropped_certless_client(ctx: Ctx) -> bool:
    """TLS 1.3: the client answered with an empty Certificate (so the server had asked for one) and the server
    closed the connection first or sent a probable encrypted alert: it refused the client without a
    certificate (its alert is encrypted).  Either is enough: which FIN comes first is a race between the
    two stacks once the server's alert is out."""
    if not ctx.tls13 or not ctx.server_hello_seen:
        return False
    ce = _tls13_client_records(ctx)
    if not ce or ce[0] != TLS13_EMPTY_CERTIFICATE_RECORD:
        return False
    return ctx.closer() == "server" or any(
        isinstance(e, dict) and e.get("from") == "server" for e in ctx.list_("encrypted_alerts"))


def e_encrypted(ctx: Ctx) -> Finding:
    enc = [e for e in ctx.list_("encrypted_alerts") if isinstance(e, dict)]
    ce = _tls13_client_records(ctx)
    se = [int(x) for x in ctx.list_("server_encrypted") if isinstance(x, int)]
    closer = ctx.closer()
    client_finished = any(n >= TLS13_MIN_FINISHED_RECORD for n in ce)
    who = str(enc[0].get("from")) if enc else None
    parts = []
    if enc:
        parts.append("probable encrypted alert from the " + ", ".join(f"{e.get('from')} ({e.get('length')} bytes)" for e in enc))
    elif tls13_client_never_finished(ctx):
        who = "client"
        parts.append(f"the client's encrypted records ({', '.join(map(str, ce))} bytes) are too short to hold its "
                     f"Finished: a probable encrypted alert from the client")
    if not client_finished and (closer == "client" or who == "client"):
        # the client walked away from the server's flight (a server alert after that is only the reaction)
        if not ce:
            parts.append("the client closed without sending anything encrypted (no Finished, no alert)")
        who = "client"
    rejected = who or closer
    if closer:
        parts.append(f"the {closer} closed first")
    if who == "client" and not any(n >= TLS13_MIN_FINISHED_RECORD for n in ce):
        parts.append("the client aborted instead of sending its Finished: it most likely rejected the server's "
                     "certificate")
    elif who == "server":
        parts.append("the server rejected the client's second flight (client certificate, or Finished)")
    if who is None and tls13_server_dropped_certless_client(ctx):
        who = rejected = "server"
    if ce and ce[0] == TLS13_EMPTY_CERTIFICATE_RECORD:
        parts.append("the client's first encrypted record (25 bytes) is the size of an empty Certificate: the server "
                     "probably asked for a client certificate the client did not have")
    shown = "; ".join(parts) or "no encrypted alert seen"
    return Finding(rejected if rejected in ("client", "server") else None, MEDIUM if who else LOW,
                   f"TLS 1.3 failure after the ServerHello; certificates and alerts are encrypted: {shown}",
                   "`tlsdiag probe HOST:PORT --servername NAME` to fetch and validate the chain the server serves",
                   {"client_encrypted": ce, "server_encrypted": se})


def _complete_then_closed(ctx: Ctx) -> bool:
    h = ctx.history
    return "I" in h and "i" in h


def client_sent_no_data(ctx: Ctx) -> bool:
    """TLS <= 1.2, handshake complete: the client's encrypted records after its Finished are all (encrypted)
    alerts, and it closed (close_notify, or FIN/RST first) without sending a byte of application data."""
    if ctx.tls13 or not _complete_then_closed(ctx):
        return False
    ce = [x for x in ctx.list_("client_encrypted") if isinstance(x, int)]
    alerts = [e for e in ctx.list_("encrypted_alerts") if isinstance(e, dict) and e.get("from") == "client"]
    if not ce or len(ce) >= 8:
        return False
    # it closed: with close_notify (curl), or with a bare FIN/RST before the server did (Node.js)
    if not alerts and ctx.closer() != "client":
        return False
    return len(ce) - 1 - len(alerts) <= 0


def _post_handshake_close(ctx: Ctx) -> bool:
    """The client walked away without a plaintext alert and without sending data: after a complete handshake
    (both ChangeCipherSpec; the sensor may even call it established) or right after the server's first flight
    (ServerHelloDone, no ClientKeyExchange)."""
    if ctx.tls13 or ctx.fatal is not None:
        return False
    if client_sent_no_data(ctx):
        return True
    h = ctx.history
    if ctx.s.get("established") or ctx.closer() != "client":
        return False
    return _complete_then_closed(ctx) or ("n" in h and "G" not in h)


def rejecting_problems(chain: ChainReport | None) -> list[C.Problem]:
    """Problems a client plausibly rejects on its own: not the low-confidence 'issuer not sent' guess made
    without a truststore, nor a bare verifier verdict, nor a certificate only our parser cannot read."""
    if chain is None:
        return []
    out = []
    for p in chain.failure_problems():
        if p.code in (C.VERIFIER_REJECTED, C.UNPARSEABLE) or (p.code == C.MISSING_ISSUER and chain.truststore is None):
            continue
        out.append(p)
    return out


def abandoned_with_cert_problem(ctx: Ctx) -> bool:
    """A handshake the sensor calls established, but the client closed without sending data and the server's
    certificate has a problem: the client checked after the handshake and gave up (curl's own hostname check,
    Node.js, a manual check). A failure, not a success. Trust problems count only when judged against a
    truststore: a probe or health check that accepts anything and hangs up looks the same on the wire."""
    if not (ctx.s.get("established") and client_sent_no_data(ctx)):
        return False
    chain = ctx.server_chain
    return any(p.code not in (C.SELF_SIGNED, C.UNTRUSTED_ROOT) or (chain is not None and chain.truststore)
               for p in rejecting_problems(chain))


def _post_close_cause(ctx: Ctx) -> str | None:
    if not _post_handshake_close(ctx) or ctx.server_chain is None:
        return None
    probs = rejecting_problems(ctx.server_chain)
    if not probs:
        return None
    order = [p.code for p in probs]
    # after a complete handshake the client's own check is most often the name (curl, manual checks);
    # a silent close right after the server's flight is the library's chain validation
    first = (C.HOSTNAME_MISMATCH,) if _complete_then_closed(ctx) else ()
    for code in first + C.PROBLEM_PRIORITY:
        if code in order:
            return C.PROBLEM_CAUSE[code]
    return None


def _post_close_match(cause: str) -> Callable[[Ctx], bool]:
    def match(ctx: Ctx) -> bool:
        return _post_close_cause(ctx) == cause
    match.__name__ = f"m_post_close_{cause}"
    return match


def e_post_close(ctx: Ctx) -> Finding:
    assert ctx.server_chain is not None
    cause = _post_close_cause(ctx)
    probs = [p for p in rejecting_problems(ctx.server_chain) if C.PROBLEM_CAUSE[p.code] == cause]
    detail = probs[0].detail if probs else "certificate problem"
    if _complete_then_closed(ctx):
        return Finding("client", MEDIUM,
                       f"the handshake completed but the client closed without sending data, and the server's "
                       f"certificate has a problem the client checks after the handshake: {detail}",
                       "the client's own log (it checked the certificate after the handshake and closed; a health "
                       "check that closes without data looks the same on the wire)")
    return Finding("client", MEDIUM,
                   f"the client closed without an alert right after the server's certificate flight, and the server's "
                   f"certificate has a problem: {detail}",
                   "the client's own log (it rejected the certificate without sending an alert)")


def m_unknown(ctx: Ctx) -> bool:
    return True


def e_unknown(ctx: Ctx) -> Finding:
    a = ctx.fatal
    # who ended it: the sender of the fatal alert, else the side that closed or reset first
    rej = a.sender if a is not None and a.level == "fatal" else ctx.closer()
    rej = rej if rej in ("client", "server") else None
    last = HISTORY_MESSAGES.get(ctx.history.rstrip("lLqQ")[-1:], None) if ctx.history.rstrip("lLqQ") else None
    stage = ("before the ServerHello" if not ctx.server_hello_seen else f"after {a.after}" if a and a.after
             else f"after {last} (history {ctx.history})" if last else "during the handshake")
    weirds = ctx.list_("weirds")
    w = f"; anomalies: {', '.join(map(str, weirds))}" if weirds else ""
    return Finding(rej, LOW, f"handshake failed {stage} ({_alert_text(a)}, outcome {ctx.outcome}{w}); no rule explains it",
                   "`tlsdiag probe HOST:PORT`, the peer's logs, or a capture that includes the whole handshake")


#: Zeek ssl_history letters -> message (upper case: client's, lower case: server's)
HISTORY_MESSAGES: Mapping[str, str] = {
    "C": "the client's ClientHello", "s": "the server's ServerHello", "x": "the server's Certificate",
    "k": "the server's ServerKeyExchange", "r": "the server's CertificateRequest", "n": "the server's ServerHelloDone",
    "X": "the client's Certificate", "G": "the client's ClientKeyExchange", "Y": "the client's CertificateVerify",
    "I": "the client's ChangeCipherSpec", "i": "the server's ChangeCipherSpec", "F": "the client's Finished",
    "f": "the server's Finished", "t": "the server's NewSessionTicket", "u": "the server's CertificateStatus",
    "j": "the server's HelloRetryRequest",
}

#: ports whose services speak plaintext first: a ClientHello there that gets no TLS answer hit a non-TLS service
PLAINTEXT_PORTS = frozenset({80, 8080})


def m_plaintext_port(ctx: Ctx) -> bool:
    port = str(ctx.s.get("server", "")).rpartition(":")[2]
    return (ctx.server_refused_hello() and ctx.fatal is None and port.isdigit() and int(port) in PLAINTEXT_PORTS
            and not ctx.list_("server_encrypted"))


def e_plaintext_port(ctx: Ctx) -> Finding:
    port = str(ctx.s.get("server", "")).rpartition(":")[2]
    return Finding("server", LOW, f"a ClientHello sent to port {port} (plain HTTP by convention) got no TLS answer: "
                   f"{_refusal_text(ctx)}; the service there most likely does not speak TLS",
                   "`tlsdiag probe HOST:PORT`, or check which service listens on the port")


#: sensor weirds that mean the server answered the ClientHello with something that is not TLS
NOT_TLS_WEIRDS = frozenset({"server_not_tls", "server_plaintext", "not_tls_response"})


def m_server_not_tls(ctx: Ctx) -> bool:
    return not ctx.server_hello_seen and bool(NOT_TLS_WEIRDS & {str(w) for w in ctx.list_("weirds")})


def e_server_not_tls(ctx: Ctx) -> Finding:
    return Finding("server", HIGH, "the server answered the ClientHello with data that is not TLS (a plain-HTTP or "
                   "other non-TLS service on this port)", None)


_P = PROTOCOL_MISMATCH
FAILURE_RULES: Sequence[Rule] = (
    Rule("TLS-SERVER-NOT-TLS", _P, m_server_not_tls, e_server_not_tls),
    Rule("TLS-SERVER-PLAINTEXT-PORT", _P, m_plaintext_port, e_plaintext_port),
    Rule("TLS-ALERT-UNRECOGNIZED-NAME", SNI_UNRECOGNIZED, m_sni_unrecognized, e_sni_unrecognized),
    Rule("TLS-ALERT-UNRECOGNIZED-NAME-NO-SNI", SNI_REQUIRED, m_unrecognized_without_sni, e_unrecognized_without_sni),
    Rule("TLS-ALERT-NO-APPLICATION-PROTOCOL", UNKNOWN, m_no_alpn, e_no_alpn),
    Rule("TLS-ALERT-PROTOCOL-VERSION", _P, m_protocol_alert_server, e_protocol_alert_server),
    Rule("TLS-CLIENT-REFUSED-VERSION", _P, m_protocol_alert_client, e_protocol_alert_client),
    Rule("TLS-HELLO-REFUSED-PROFILE-VERSION", _P, m_profile_version, e_profile_version),
    Rule("TLS-HELLO-REFUSED-PROFILE-CIPHER", CIPHER_MISMATCH, m_profile_cipher, e_profile_cipher),
    Rule("TLS-HELLO-REFUSED-PROFILE-GROUP", CIPHER_MISMATCH, m_profile_group, e_profile_group),
    Rule("TLS-HELLO-REFUSED-PROFILE-SNI", SNI_REQUIRED, m_profile_sni, e_profile_sni),
    Rule("TLS-HELLO-REFUSED-PROFILE-OTHER-NAMES", SNI_UNRECOGNIZED, m_profile_other_names, e_profile_other_names),
    Rule("TLS-HELLO-REFUSED-IMPLICIT-VERSION", _P, m_implicit_version, e_implicit_version),
    Rule("TLS-HELLO-REFUSED-OLD-VERSION", _P, m_old_versions, e_old_versions),
    Rule("TLS-ALERT-INSUFFICIENT-SECURITY", CIPHER_MISMATCH, m_insufficient_security, e_insufficient_security),
    Rule("TLS-HELLO-REFUSED-WEAK-SUITES", CIPHER_MISMATCH, m_weak_only, e_weak_only),
    Rule("TLS-HELLO-REFUSED-NO-SNI", SNI_REQUIRED, m_sni_missing, e_sni_missing),
    Rule("TLS-HELLO-REFUSED-CIPHER", CIPHER_MISMATCH, m_cipher_fallback, e_cipher_fallback),
    Rule("TLS13-HRR-CLIENT-ABORT", CIPHER_MISMATCH, m_hrr_abort, e_hrr_abort),
    Rule("TLS-CLIENT-CERT-MISSING", CLIENT_CERTIFICATE_MISSING, m_client_cert_missing, e_client_cert_missing),
    Rule("TLS-CERT-EXPIRED", EXPIRED_CERTIFICATE, _cert_match(EXPIRED_CERTIFICATE), e_cert),
    Rule("TLS-CERT-NOT-YET-VALID", NOT_YET_VALID_CERTIFICATE, _cert_match(NOT_YET_VALID_CERTIFICATE), e_cert),
    Rule("TLS-CERT-INCOMPLETE-CHAIN", INCOMPLETE_CHAIN, _cert_match(INCOMPLETE_CHAIN), e_cert),
    Rule("TLS-CERT-UNKNOWN", UNKNOWN_CERTIFICATE, _cert_match(UNKNOWN_CERTIFICATE), e_cert),
    Rule("TLS-CERT-HOSTNAME", HOSTNAME_MISMATCH, _cert_match(HOSTNAME_MISMATCH), e_cert),
    Rule("TLS-CERT-REJECTED", CERTIFICATE_REJECTED, _cert_match(CERTIFICATE_REJECTED), e_cert),
    Rule("TLS13-ENCRYPTED-FAILURE", ENCRYPTED_FAILURE, m_encrypted, e_encrypted),
    Rule("TLS-CLOSE-AFTER-HANDSHAKE-EXPIRED", EXPIRED_CERTIFICATE, _post_close_match(EXPIRED_CERTIFICATE), e_post_close),
    Rule("TLS-CLOSE-AFTER-HANDSHAKE-NOT-YET-VALID", NOT_YET_VALID_CERTIFICATE,
         _post_close_match(NOT_YET_VALID_CERTIFICATE), e_post_close),
    Rule("TLS-CLOSE-AFTER-HANDSHAKE-CHAIN", INCOMPLETE_CHAIN, _post_close_match(INCOMPLETE_CHAIN), e_post_close),
    Rule("TLS-CLOSE-AFTER-HANDSHAKE-UNKNOWN", UNKNOWN_CERTIFICATE, _post_close_match(UNKNOWN_CERTIFICATE), e_post_close),
    Rule("TLS-CLOSE-AFTER-HANDSHAKE-HOSTNAME", HOSTNAME_MISMATCH, _post_close_match(HOSTNAME_MISMATCH), e_post_close),
    Rule("TLS-CLOSE-AFTER-HANDSHAKE-REJECTED", CERTIFICATE_REJECTED, _post_close_match(CERTIFICATE_REJECTED), e_post_close),
    Rule("TLS-UNEXPLAINED", UNKNOWN, m_unknown, e_unknown),
)

RULES_BY_ID: Mapping[str, Rule] = {r.id: r for r in FAILURE_RULES}


def first_match(ctx: Ctx) -> tuple[Rule, Finding]:
    for rule in FAILURE_RULES:
        if rule.match(ctx):
            return rule, rule.explain(ctx)
    raise AssertionError("TLS-UNEXPLAINED always matches")  # pragma: no cover


#: warning rule ids by cause (successful handshakes with certificate problems)
WARNING_RULE_IDS: Mapping[str, str] = {
    EXPIRING_CERTIFICATE: "TLS-WARN-CERT-EXPIRING",
    EXPIRED_CERTIFICATE: "TLS-WARN-CERT-EXPIRED",
    NOT_YET_VALID_CERTIFICATE: "TLS-WARN-CERT-NOT-YET-VALID",
    HOSTNAME_MISMATCH: "TLS-WARN-HOSTNAME",
    INCOMPLETE_CHAIN: "TLS-WARN-INCOMPLETE-CHAIN",
    UNKNOWN_CERTIFICATE: "TLS-WARN-UNKNOWN-CERT",
    CERTIFICATE_REJECTED: "TLS-WARN-CERT-VERIFY",
}
