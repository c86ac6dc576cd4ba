"""Diagnosis rules: small pure predicates over a :class:`~analyzer.ctx.Ctx`, and the ordered table.

Each :class:`Rule` has a stable ``id`` (never renamed), the :class:`~analyzer.causes.Cause` it diagnoses, a
``match`` predicate over a :class:`Ctx` (one connection with its certificate checks, direction and server
profile), and an ``explain`` function returning a :class:`Finding` (who rejected, confidence, why, what would
raise the confidence). :data:`FAILURE_RULES` is ordered; the first matching rule gives the one failure
diagnosis of a failed connection, and the last rule always matches.

Alert, message and version names are the IANA spellings of :mod:`proto.names`, history letters those of
:mod:`proto.history`; never literals or numbers here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Collection, Mapping, Sequence

from proto.history import HISTORY_UNKNOWN_CONTENT_TYPE, client_letter, record_history_letter, server_letter
from proto.names import AlertDescription as AD
from proto.names import ContentType, HandshakeType as HT

from . import certs
from . import records
from .causes import (CERTIFICATE_REJECTED, CIPHER_MISMATCH, CLIENT_CERTIFICATE_MISSING, ENCRYPTED_FAILURE,
                     EXPIRED_CERTIFICATE, HOSTNAME_MISMATCH, INCOMPLETE_CHAIN, NOT_YET_VALID_CERTIFICATE,
                     PROTOCOL_MISMATCH, SNI_REQUIRED, SNI_UNRECOGNIZED, UNKNOWN, UNKNOWN_CERTIFICATE, Cause)
from .certs import ChainReport
from .ctx import (CLIENT_HELLO, FATAL, TLS11, VERSION_RANK, Alert, Ctx, is_weak_suite, version_family,
                  version_rank)
from .hints import HintVerdict, endpoint_hints, hint_verdict, who
from .profiles import Profile, successes

HIGH, MEDIUM, LOW = "high", "medium", "low"

#: ``history`` letters the rules look at
_CLIENT_CCS = record_history_letter(ContentType.change_cipher_spec, True)
_SERVER_CCS = record_history_letter(ContentType.change_cipher_spec, False)
_SERVER_HELLO_DONE = server_letter(HT.server_hello_done)
_CLIENT_KEY_EXCHANGE = client_letter(HT.client_key_exchange)
#: trailing letters that are not handshake progress: alerts and records of unknown type, either side
_NOT_PROGRESS = "".join(record_history_letter(ContentType.alert, c) for c in (False, True)) + \
    HISTORY_UNKNOWN_CONTENT_TYPE.lower() + HISTORY_UNKNOWN_CONTENT_TYPE


# ------------------------------------------------------------------------------------------ findings


@dataclass(frozen=True, slots=True)
class Finding:
    rejected_by: str | None
    confidence: str
    why: str
    raise_confidence: str | None = None
    evidence: Mapping[str, object] = field(default_factory=dict)
    fix: str | None = None      # the fix's variant (remediation.VARIANT_TEMPLATES), when the cause's own would mislead


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    cause: Cause
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


def _probe_cmd(ctx: Ctx) -> str:
    """The probe command for this connection's server, ready to paste."""
    sni = f" --servername {ctx.sni}" if ctx.sni else ""
    return f"`tlsdiag probe {ctx.s.get('server')}{sni}`"


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
    return ctx.sni is not None and ctx.alert_from("server", AD.unrecognized_name.name) is not None


def m_unrecognized_without_sni(ctx: Ctx) -> bool:
    """nginx ``ssl_reject_handshake`` and similar: no server_name at all, answered with unrecognized_name."""
    return ctx.sni is None and ctx.alert_from("server", AD.unrecognized_name.name) is not None


def e_unrecognized_without_sni(ctx: Ctx) -> Finding:
    a = ctx.alert_from("server", AD.unrecognized_name.name)
    assert a is not None
    return Finding("server", HIGH, f"the ClientHello has no server_name and the server answered {a.level} "
                   f"unrecognized_name: it serves only named hosts")


def m_no_alpn(ctx: Ctx) -> bool:
    a = ctx.fatal
    return a is not None and a.description == AD.no_application_protocol.name


def e_no_alpn(ctx: Ctx) -> Finding:
    a = ctx.fatal
    assert a is not None
    offered = ", ".join(map(str, ctx.list_field("client_alpn"))) or "none"
    return Finding(a.sender if a.sender in ("client", "server") else None, MEDIUM,
                   f"no common application protocol (ALPN): the client offered {offered}; {_alert_text(a)}. Not a "
                   f"TLS version, suite or certificate problem", "the server's ALPN configuration (h2 / http/1.1)")


def e_sni_unrecognized(ctx: Ctx) -> Finding:
    srv = ctx.alert_from("server", AD.unrecognized_name.name)
    assert srv is not None
    fatal = ctx.fatal
    if srv.level == FATAL or fatal is None or fatal is srv:
        return Finding("server", HIGH, f"the server does not know the name {ctx.sni!r}: it sent {srv.level} unrecognized_name")
    return Finding("client", HIGH,
                   f"the server sent a warning unrecognized_name for {ctx.sni!r} and the client treated it as fatal "
                   f"({_alert_text(fatal)}), as Java's JSSE does")


def m_protocol_alert_server(ctx: Ctx) -> bool:
    a = ctx.fatal
    return a is not None and a.sender == "server" and a.description == AD.protocol_version.name


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
    if a.description == AD.protocol_version.name:
        return HIGH
    if a.description not in (AD.handshake_failure.name, AD.illegal_parameter.name, AD.insufficient_security.name):
        return None
    chosen = version_family(ctx.version)
    if ctx.explicit_versions and chosen not in ctx.offered_versions() and not ctx.list_field("certificates"):
        return HIGH
    rank = VERSION_RANK.get(chosen)
    if rank is not None and rank <= VERSION_RANK[TLS11] and not rejecting_problems(ctx.server_chain):
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
                   f"the server chose only {chose} in {successes(p.count)}; this client offered {_offer(ctx)}: "
                   f"{_refusal_text(ctx)}",
                   None if p.count >= 5 else "more successful handshakes to this server, or `tlsdiag probe` of its versions")


def _unmet(chosen: Collection[str], offered: set[str]) -> bool:
    """The server chose some (``chosen``: what a profile counted) and the offer has none of them."""
    return bool(chosen) and not set(chosen) & offered


def _offered_groups(ctx: Ctx) -> set[str]:
    return {str(g) for g in ctx.list_field("client_groups")}


def _profile_suites_refute(ctx: Ctx) -> bool:
    """None of the client's suites is one the server chose (not decided by an offer the sensor cut)."""
    p = ctx.refusal_profile()
    return bool(p and ctx.client_ciphers and _unmet(p.ciphers, set(ctx.client_ciphers)) and not ctx.offer_cut)


def _profile_suites_unknown(ctx: Ctx) -> bool:
    """The offer was cut (``client_offer_truncated``) and what was kept of its suites meets none the server
    chose: whether the rest did is not known."""
    p = ctx.refusal_profile()
    return bool(ctx.offer_cut and p and _unmet(p.ciphers, set(ctx.client_ciphers)))


def _profile_groups_unknown(ctx: Ctx) -> bool:
    p = ctx.refusal_profile()
    return bool(ctx.offer_cut and p and _unmet(p.groups, _offered_groups(ctx)))


def m_profile_cipher(ctx: Ctx) -> bool:
    return ctx.server_refused_hello() and _profile_suites_refute(ctx)


def e_profile_cipher(ctx: Ctx) -> Finding:
    p = ctx.refusal_profile()
    assert p is not None
    chose = ", ".join(k for k, _ in p.ciphers.most_common(4))
    return Finding("server", _refusal_conf(ctx, _profile_conf(p)),
                   f"the server chose only {chose} in {successes(p.count)}; none of the client's "
                   f"{len(ctx.client_ciphers)} offered suites is among them: {_refusal_text(ctx)}",
                   None if p.count >= 5 else "more successful handshakes to this server, or `tlsdiag probe` with this offer",
                   {"server_chose_suites": dict(p.ciphers)})


def _profile_groups_refute(ctx: Ctx) -> bool:
    """As :func:`_profile_suites_refute`, for the key-exchange groups."""
    p = ctx.refusal_profile()
    offered = _offered_groups(ctx)
    return bool(p and offered and _unmet(p.groups, offered) and not ctx.offer_cut)


def m_profile_group(ctx: Ctx) -> bool:
    return ctx.server_refused_hello() and _profile_groups_refute(ctx)


def e_profile_group(ctx: Ctx) -> Finding:
    p = ctx.refusal_profile()
    assert p is not None
    chose = ", ".join(k for k, _ in p.groups.most_common(4))
    offered = ", ".join(map(str, ctx.list_field("client_groups")))
    return Finding("server", _refusal_conf(ctx, _profile_conf(p)),
                   f"no common key-exchange group: the server chose only {chose} in {successes(p.count)}; "
                   f"this client offered {offered}: {_refusal_text(ctx)}",
                   None if p.count >= 5 else "more successful handshakes to this server, or `tlsdiag probe` with this offer",
                   {"server_chose_groups": dict(p.groups)}, fix="groups")


def _profile_wants_sni(ctx: Ctx) -> bool:
    p = ctx.server_profile
    return bool(ctx.sni is None and p and p.with_sni > 0 and p.without_sni == 0)


def m_profile_sni(ctx: Ctx) -> bool:
    return ctx.server_refused_hello() and _profile_wants_sni(ctx)


def e_profile_sni(ctx: Ctx) -> Finding:
    p = ctx.server_profile
    assert p is not None
    every = "the one successful handshake" if p.with_sni == 1 else f"all {successes(p.with_sni)}"
    return Finding("server", _refusal_conf(ctx, _profile_conf(p)),
                   f"the ClientHello has no server_name; {every} to this server sent one: "
                   f"{_refusal_text(ctx)}",
                   None if p.count >= 5 else "more successful handshakes, or `tlsdiag probe HOST:PORT` with and without --servername")


def m_profile_other_names(ctx: Ctx) -> bool:
    """HAProxy strict-sni and the like: the server works for other names, never for this one, and refuses it
    with a plain handshake_failure although the version and suites are ones it accepts."""
    p = ctx.server_profile
    return bool(ctx.server_refused_hello() and ctx.sni and ctx.profile is None and p is not None
                and p.with_sni > 0 and p.without_sni == 0 and not _profile_versions_refute(ctx)
                and not _profile_suites_refute(ctx) and not _profile_groups_refute(ctx)
                and not _profile_suites_unknown(ctx) and not _profile_groups_unknown(ctx))


def e_profile_other_names(ctx: Ctx) -> Finding:
    p = ctx.server_profile
    assert p is not None
    return Finding("server", MEDIUM,
                   f"the server refused the name {ctx.sni!r} ({_refusal_text(ctx)}), while {successes(p.with_sni)} "
                   f"to it used other names; versions and suites match what it accepts",
                   "`tlsdiag probe HOST:PORT --servername NAME` with this name and a known-good one")


def m_implicit_version(ctx: Ctx) -> bool:
    """Legacy-only ClientHello above every version the server ever chose, and suites overlap: the server
    refused instead of negotiating down."""
    p = ctx.refusal_profile()
    top = ctx.client_max_version
    if not (ctx.server_refused_hello() and p and p.versions and top and not ctx.explicit_versions):
        return False
    ranks = [version_rank(v) for v in p.versions]
    return (all(r is not None and r < VERSION_RANK.get(top, 0) for r in ranks) and not _profile_suites_refute(ctx)
            and not _profile_suites_unknown(ctx))


def e_implicit_version(ctx: Ctx) -> Finding:
    p = ctx.refusal_profile()
    assert p is not None
    return Finding("server", MEDIUM,
                   f"the server chose only {'/'.join(sorted(p.versions))} in {successes(p.count)} and this "
                   f"client's hello says {ctx.client_max_version}; the suites overlap, so the version is what the server "
                   f"refused: {_refusal_text(ctx)}",
                   "`tlsdiag probe HOST:PORT` to list the versions the server accepts")


def m_old_versions(ctx: Ctx) -> bool:
    top = ctx.client_max_version
    return ctx.fatal is not None and (ctx.server_refused_hello() and ctx.refusal_profile() is None and top is not None
            and VERSION_RANK.get(top, 99) <= VERSION_RANK[TLS11])


def e_old_versions(ctx: Ctx) -> Finding:
    return Finding("server", _refusal_conf(ctx, MEDIUM),
                   f"the client offered at most {ctx.client_max_version}, which current servers refuse: {_refusal_text(ctx)}",
                   "successful handshakes to this server in the capture (a profile), or `tlsdiag probe`")


def m_insufficient_security(ctx: Ctx) -> bool:
    a = ctx.fatal
    return ctx.server_refused_hello() and a is not None and a.description == AD.insufficient_security.name


def e_insufficient_security(ctx: Ctx) -> Finding:
    return Finding("server", MEDIUM,
                   f"the server found the offered suites too weak (fatal insufficient_security); offered: "
                   f"{', '.join(ctx.client_ciphers[:6])}{' ...' if len(ctx.client_ciphers) > 6 else ''}",
                   "successful handshakes to this server (a profile of the suites it chooses)")


def m_weak_only(ctx: Ctx) -> bool:
    cs = ctx.client_ciphers
    return (ctx.fatal is not None and ctx.server_refused_hello() and bool(cs) and not ctx.offer_cut
            and all(is_weak_suite(c) for c in cs))


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
        AD.illegal_parameter.name, AD.handshake_failure.name, AD.insufficient_security.name)


def e_hrr_abort(ctx: Ctx) -> Finding:
    return Finding("client", MEDIUM,
                   f"the server sent a HelloRetryRequest (asking for another key-share group) and the client gave up: "
                   f"{_alert_text(ctx.fatal)}; offered groups {', '.join(map(str, ctx.list_field('client_groups')))}",
                   "`tlsdiag probe HOST:PORT` to see the group the server wants", fix="groups")


def m_client_cert_missing(ctx: Ctx) -> bool:
    a = ctx.fatal
    if a is None or a.sender != "server" or a.after in (None, CLIENT_HELLO):
        return False
    if a.description == AD.certificate_required.name:
        return not ctx.list_field("client_certificates")
    return bool(ctx.s.get("certificate_request")) and (
        bool(ctx.s.get("client_certificate_empty")) or not ctx.list_field("client_certificates"))


def e_client_cert_missing(ctx: Ctx) -> Finding:
    how = "an empty Certificate message" if ctx.s.get("client_certificate_empty") else "no client certificate"
    return Finding("server", HIGH,
                   f"the server asked for a client certificate (CertificateRequest), the client answered with {how}, and "
                   f"the server ended the handshake: {_alert_text(ctx.fatal)}")


def _cert_match(cause: Cause) -> Callable[[Ctx], bool]:
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
        conf = HIGH if (v.alert_says or alert.description in (AD.bad_certificate.name, AD.certificate_unknown.name, AD.handshake_failure.name,
                                                               AD.unsupported_certificate.name)) else MEDIUM
        raise_ = None
        if v.problem.code == certs.UNTRUSTED_ROOT and chain is not None and chain.truststore is None:
            conf, raise_ = MEDIUM, "the rejecting side's truststore (--truststore) to confirm the root is missing"
        if v.problem.code == certs.MISSING_ISSUER and chain is not None and chain.truststore is None:
            conf, raise_ = MEDIUM, ("a truststore (--truststore) to tell a missing intermediate from an untrusted root "
                                    f"that issued the leaf directly ({v.problem.detail})")
        if ctx.chain_remembered:
            m = ctx.memory
            assert m is not None
            why = (f"the {side} rejected the {whose} certificate ({_alert_text(alert)}; TLS 1.3 encrypts the "
                   f"certificate itself); {m.text()}: {v.problem.detail}")
            return Finding(side, MEDIUM, why, f"{_probe_cmd(ctx)} to confirm the chain the server serves now (the one "
                           f"named here was seen {m.age_text()} before this connection)",
                           {"remembered_chain": m.evidence()})
        why = f"the {side} rejected the {whose} certificate ({_alert_text(alert)}): {v.problem.detail}"
        return Finding(side, conf, why, raise_)
    if v.alert_says:
        if chain is None:
            why = (f"the {side} rejected the {whose} certificate with {alert.description} (the certificate is encrypted "
                   f"on the wire)")
            raise_ = f"{_probe_cmd(ctx)} to fetch and validate the chain the server serves"
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


#: smallest TLS 1.3 record that can hold a client Finished (:data:`analyzer.records.MIN_FINISHED_RECORD`)
TLS13_MIN_FINISHED_RECORD = records.MIN_FINISHED_RECORD


def _cipher(ctx: Ctx) -> str | None:
    return ctx.text_field("cipher")


def _empty_certificate_sizes(ctx: Ctx) -> set[int]:
    return {records.empty_certificate_len(_cipher(ctx), p) for p in records.PADDINGS}


def tls13_client_never_finished(ctx: Ctx) -> bool:
    """TLS 1.3: the client sent encrypted records but none big enough to be its Finished, and its last one is
    alert-sized: it aborted with an encrypted alert (the sensor may still call this 'established').  Keyed on
    the ServerHello's answer, not the ClientHello's offer: a PSK the server *declined* is a full handshake
    with a certificate the client can reject (certificate rotation); an accepted one has no certificate."""
    if not ctx.tls13 or not ctx.server_hello_seen or ctx.s.get("resumed"):
        return False
    ce = ctx.client_records
    return (bool(ce) and len(ce) < records.MAX_RECORDS and all(n < records.MIN_FINISHED_RECORD for n in ce)
            and ce[-1] not in _empty_certificate_sizes(ctx))


def tls13_server_rejected_flight(ctx: Ctx) -> bool:
    """TLS 1.3: the server answered the client's flight with one alert-sized record right after its Finished
    and nothing else -- no NewSessionTicket, no data -- and the client sent no alert of its own
    (:func:`analyzer.records.server_rejected_flight`)."""
    return (ctx.tls13 and ctx.server_hello_seen and ctx.fatal is None
            and records.server_rejected_flight(ctx.client_records, ctx.server_records, _cipher(ctx),
                                               ctx.client_alerted))


def tls13_server_dropped_certless_client(ctx: Ctx) -> bool:
    """TLS 1.3: the client answered with an empty Certificate (so the server had asked for one; JSSE's is 16
    bytes longer) and the server rejected that flight: with an alert-sized record and nothing else, or by
    closing first right after its own flight (no alert, no ticket)."""
    if not ctx.tls13 or not ctx.server_hello_seen or ctx.fatal is not None:
        return False
    ce = ctx.client_records
    if not records.client_sent_empty_certificate(ce, _cipher(ctx)):
        return False
    return tls13_server_rejected_flight(ctx) or (
        ctx.closer() == "server" and not ctx.client_alerted
        and records.server_silent_after_flight(ctx.server_records, _cipher(ctx)))


def _server_alert_size(ctx: Ctx) -> int | None:
    se = ctx.server_records
    return se[-1] if se and se[-1] < records.MIN_FINISHED_RECORD else None


def m_client_cert_missing_size(ctx: Ctx) -> bool:
    return m_encrypted(ctx) and tls13_server_dropped_certless_client(ctx)


def e_client_cert_missing_size(ctx: Ctx) -> Finding:
    ce = ctx.client_records
    alert = _server_alert_size(ctx)
    how = (f"answered that flight with one alert-sized encrypted record ({alert} bytes) right after its Finished, "
           f"with no NewSessionTicket and no data" if tls13_server_rejected_flight(ctx)
           else "closed the connection right after its own flight, without a ticket or data")
    return Finding("server", MEDIUM,
                   f"TLS 1.3: the client's first encrypted record ({ce[0]} bytes) has the size of an empty Certificate "
                   f"message: the server asked for a client certificate (its CertificateRequest is encrypted) and the "
                   f"client had none to send; the server {how}: it refused the client without a certificate",
                   f"the server's log (alert certificate_required), or {_probe_cmd(ctx)} (it reports a required "
                   f"client certificate)",
                   {"client_encrypted": ce, "server_encrypted": ctx.server_records})


def _client_walked_away(ctx: Ctx) -> bool:
    """TLS 1.3 encrypted failure where the client rejected the server's flight: an encrypted alert instead of
    its Finished, or a close without a Finished."""
    if tls13_client_never_finished(ctx):
        return True
    ce = ctx.client_records
    enc = [e for e in ctx.list_field("encrypted_alerts") if isinstance(e, dict)]
    if enc and enc[0].get("from") == "client" and not any(n >= records.MIN_FINISHED_RECORD for n in ce):
        return True
    return ctx.closer() == "client" and not any(n >= records.MIN_FINISHED_RECORD for n in ce) and not ce


def e_encrypted(ctx: Ctx) -> Finding:
    enc = [e for e in ctx.list_field("encrypted_alerts") if isinstance(e, dict)]
    ce = ctx.client_records
    se = ctx.server_records
    closer = ctx.closer()
    client_finished = any(n >= records.MIN_FINISHED_RECORD for n in ce)
    who = str(enc[0].get("from")) if enc else None
    parts = []
    server_rejected = tls13_server_rejected_flight(ctx)
    if server_rejected:
        who = "server"
        first = (f"its certificate (first record {ce[0]} bytes)" if ce and ce[0] >= 2 * records.MIN_FINISHED_RECORD
                 else "its flight")
        parts.append(f"the client sent {first}; the server answered with one alert-sized encrypted record "
                     f"({se[-1]} bytes) right after its Finished and nothing else (no NewSessionTicket, no data)")
    elif enc:
        parts.append("probable encrypted alert from the " + ", ".join(f"{e.get('from')} ({e.get('length')} bytes)" for e in enc))
    elif tls13_client_never_finished(ctx):
        who = "client"
        parts.append(f"the client's encrypted records ({', '.join(map(str, ce))} bytes) are too short to hold its "
                     f"Finished: a probable encrypted alert from the client")
    if not server_rejected and not client_finished and (closer == "client" or who == "client"):
        # the client walked away from the server's flight (a server alert after that is only the reaction)
        if not ce:
            parts.append("the client closed without sending anything encrypted (no Finished, no alert)")
        who = "client"
    rejected = who or closer
    if closer:
        parts.append(f"the {closer} closed first")
    if who == "client" and not client_finished:
        parts.append("the client aborted instead of sending its Finished: it most likely rejected the server's "
                     "certificate")
    elif server_rejected and ce and ce[0] >= 2 * records.MIN_FINISHED_RECORD:
        parts.append("the server rejected the client's certificate (expired, from a CA it does not trust, or "
                     "otherwise unacceptable: its alert is encrypted)")
    elif who == "server":
        parts.append("the server rejected the client's second flight (client certificate, or Finished)")
    shown = "; ".join(parts) or "no encrypted alert seen"
    if who == "server":
        confirm = ("the server's log (the alert it sent), or the client certificate itself: its dates and issuer "
                   "against the server's truststore")
    else:
        confirm = (f"{_probe_cmd(ctx)} (with --truststore the client's roots) to fetch and validate the chain the server "
                   f"serves; nothing this server sent in clear is remembered" if ctx.memory is None else
                   f"{_probe_cmd(ctx)} (with --truststore the client's roots) to fetch and validate the chain the server "
                   f"serves")
        m = ctx.memory
        if m is not None and not m.usable:
            why_not = ("a full TLS 1.3 handshake to it succeeded since" if m.contradicted_at is not None else
                       f"this connection's Certificate record ({m.record} bytes) does not have that chain's size "
                       f"({m.expected} bytes)")
            shown += (f"; the chain this server showed in clear {m.age_text()} earlier is not used: {why_not}")
        elif m is not None:
            shown += (f"; the chain this server showed in clear {m.age_text()} earlier, in {m.seen.seen_in()}, has no "
                      f"problem a client would reject")
    ev: dict[str, object] = {"client_encrypted": ce, "server_encrypted": se}
    if ctx.memory is not None and who != "server":
        ev["remembered_chain"] = ctx.memory.evidence()
    return Finding(rejected if rejected in ("client", "server") else None, MEDIUM if who else LOW,
                   f"TLS 1.3 failure after the ServerHello; certificates and alerts are encrypted: {shown}",
                   confirm, ev)


# -- the server's chain, remembered from an earlier handshake (TLS 1.3 hides this connection's) --------------


def _remembered_cause(ctx: Ctx, after_handshake: bool) -> tuple[Cause, certs.Problem] | None:
    """The cause the remembered chain gives: its first problem a client rejects, by priority (after a complete
    handshake the client's own check is most often the name, as for TLS 1.2)."""
    chain = ctx.remembered()
    if chain is None:
        return None
    probs = rejecting_problems(chain)
    if after_handshake:
        probs = [p for p in probs if p.code not in (certs.SELF_SIGNED, certs.UNTRUSTED_ROOT) or chain.truststore]
    order = ((certs.HOSTNAME_MISMATCH,) if after_handshake else ()) + certs.PROBLEM_PRIORITY
    for code in order:
        for p in probs:
            if p.code == code:
                return certs.PROBLEM_CAUSE[code], p
    return None


def _remembered_match(cause: Cause) -> Callable[[Ctx], bool]:
    def match(ctx: Ctx) -> bool:
        if not (m_encrypted(ctx) and ctx.fatal is None and _client_walked_away(ctx)):
            return False
        hit = _remembered_cause(ctx, False)
        return hit is not None and hit[0] == cause
    match.__name__ = f"m_remembered_{cause}"
    return match


def _remembered_finding(ctx: Ctx, p: certs.Problem, what: str, raise_: str) -> Finding:
    m = ctx.memory
    assert m is not None
    conf = MEDIUM
    return Finding("client", conf, f"{what}; {m.text()}: {p.detail} (as of this connection's time and name)",
                   raise_, {"remembered_chain": m.evidence(), "client_encrypted": ctx.client_records,
                            "server_encrypted": ctx.server_records})


def e_remembered(ctx: Ctx) -> Finding:
    hit = _remembered_cause(ctx, False)
    assert hit is not None and ctx.memory is not None
    ce = ctx.client_records
    how = (f"an encrypted alert-sized record ({', '.join(map(str, ce))} bytes) instead of its Finished" if ce
           else "a close without its Finished")
    return _remembered_finding(
        ctx, hit[1], f"TLS 1.3: the client answered the server's flight with {how}: it rejected the server's "
        f"certificate, which is encrypted on the wire",
        f"{_probe_cmd(ctx)} to confirm the chain the server serves now (the one named here was seen "
        f"{ctx.memory.age_text()} before this connection)")


def tls13_abandoned_with_remembered_problem(ctx: Ctx) -> bool:
    """TLS 1.3, handshake complete, the client closed with close_notify and sent no data, and the chain this
    server showed in clear earlier has a problem a client checks after the handshake (curl on a wrong name does
    exactly this; a health check that accepts anything looks the same, so trust problems count only when
    judged against a truststore, as for TLS 1.2)."""
    if not (ctx.tls13 and ctx.s.get("established") and ctx.fatal is None and ctx.memory is not None):
        return False
    if not records.client_closed_without_data(ctx.client_records, _cipher(ctx)):
        return False
    return _remembered_cause(ctx, True) is not None


def _remembered_close_match(cause: Cause) -> Callable[[Ctx], bool]:
    def match(ctx: Ctx) -> bool:
        if not tls13_abandoned_with_remembered_problem(ctx):
            return False
        hit = _remembered_cause(ctx, True)
        return hit is not None and hit[0] == cause
    match.__name__ = f"m_remembered_close_{cause}"
    return match


def e_remembered_close(ctx: Ctx) -> Finding:
    hit = _remembered_cause(ctx, True)
    assert hit is not None and ctx.memory is not None
    return _remembered_finding(
        ctx, hit[1], "TLS 1.3: the handshake completed but the client closed (close_notify) without sending data, "
        "as a client does that checks the certificate after the handshake",
        f"the client's own log (a health check that closes without data looks the same on the wire), or "
        f"{_probe_cmd(ctx)} (the chain named here was seen {ctx.memory.age_text()} before this connection)")


def _complete_then_closed(ctx: Ctx) -> bool:
    h = ctx.history
    return _CLIENT_CCS in h and _SERVER_CCS in h


def client_sent_no_data(ctx: Ctx) -> bool:
    """TLS <= 1.2, handshake complete: the client's encrypted records after its Finished are all (encrypted)
    alerts, and it closed (close_notify, or FIN/RST first) without sending a byte of application data."""
    if ctx.tls13 or not _complete_then_closed(ctx):
        return False
    ce = [x for x in ctx.list_field("client_encrypted") if isinstance(x, int)]
    alerts = [e for e in ctx.list_field("encrypted_alerts") if isinstance(e, dict) and e.get("from") == "client"]
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
    return _complete_then_closed(ctx) or (_SERVER_HELLO_DONE in h and _CLIENT_KEY_EXCHANGE not in h)


def rejecting_problems(chain: ChainReport | None) -> list[certs.Problem]:
    """Problems a client plausibly rejects on its own: not the low-confidence 'issuer not sent' guess made
    without a truststore, nor a bare verifier verdict, nor a certificate only our parser cannot read."""
    if chain is None:
        return []
    out = []
    for p in chain.failure_problems():
        if p.code in (certs.VERIFIER_REJECTED, certs.UNPARSEABLE) or (
                p.code == certs.MISSING_ISSUER and chain.truststore is None):
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
    return any(p.code not in (certs.SELF_SIGNED, certs.UNTRUSTED_ROOT) or (chain is not None and chain.truststore)
               for p in rejecting_problems(chain))


def _post_close_cause(ctx: Ctx) -> Cause | None:
    if not _post_handshake_close(ctx) or ctx.server_chain is None:
        return None
    probs = rejecting_problems(ctx.server_chain)
    if not probs:
        return None
    order = [p.code for p in probs]
    # after a complete handshake the client's own check is most often the name (curl, manual checks);
    # a silent close right after the server's flight is the library's chain validation
    first = (certs.HOSTNAME_MISMATCH,) if _complete_then_closed(ctx) else ()
    for code in first + certs.PROBLEM_PRIORITY:
        if code in order:
            return certs.PROBLEM_CAUSE[code]
    return None


def _post_close_match(cause: Cause) -> Callable[[Ctx], bool]:
    def match(ctx: Ctx) -> bool:
        return _post_close_cause(ctx) == cause
    match.__name__ = f"m_post_close_{cause}"
    return match


def e_post_close(ctx: Ctx) -> Finding:
    assert ctx.server_chain is not None
    cause = _post_close_cause(ctx)
    probs = [p for p in rejecting_problems(ctx.server_chain) if certs.PROBLEM_CAUSE[p.code] == cause]
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
    rej = a.sender if a is not None and a.level == FATAL else ctx.closer()
    rej = rej if rej in ("client", "server") else None
    progress = ctx.history.rstrip(_NOT_PROGRESS)
    last = HISTORY_MESSAGES.get(progress[-1:]) if progress else None
    stage = ("before the ServerHello" if not ctx.server_hello_seen else f"after {a.after}" if a and a.after
             else f"after {last} (history {ctx.history})" if last else "during the handshake")
    weirds = ctx.list_field("weirds")
    w = f"; anomalies: {', '.join(map(str, weirds))}" if weirds else ""
    return Finding(rej, LOW, f"handshake failed {stage} ({_alert_text(a)}, outcome {ctx.outcome}{w}); no rule explains it",
                   "`tlsdiag probe HOST:PORT`, the peer's logs, or a capture that includes the whole handshake")


#: ``history`` letter -> the message it stands for (the last one names the stage a failure stopped at)
HISTORY_MESSAGES: Mapping[str, str] = {
    client_letter(HT.client_hello): "the client's ClientHello",
    server_letter(HT.server_hello): "the server's ServerHello",
    server_letter(HT.certificate): "the server's Certificate",
    server_letter(HT.server_key_exchange): "the server's ServerKeyExchange",
    server_letter(HT.certificate_request): "the server's CertificateRequest",
    server_letter(HT.server_hello_done): "the server's ServerHelloDone",
    client_letter(HT.certificate): "the client's Certificate",
    client_letter(HT.client_key_exchange): "the client's ClientKeyExchange",
    client_letter(HT.certificate_verify): "the client's CertificateVerify",
    _CLIENT_CCS: "the client's ChangeCipherSpec",
    _SERVER_CCS: "the server's ChangeCipherSpec",
    client_letter(HT.finished): "the client's Finished",
    server_letter(HT.finished): "the server's Finished",
    server_letter(HT.new_session_ticket): "the server's NewSessionTicket",
    server_letter(HT.certificate_status): "the server's CertificateStatus",
    server_letter(HT.hello_retry_request): "the server's HelloRetryRequest",
}

#: ports whose services speak plaintext first: a ClientHello there that gets no TLS answer hit a non-TLS service
PLAINTEXT_PORTS = frozenset({80, 8080})


def m_plaintext_port(ctx: Ctx) -> bool:
    port = str(ctx.s.get("server", "")).rpartition(":")[2]
    return (ctx.server_refused_hello() and ctx.fatal is None and port.isdigit() and int(port) in PLAINTEXT_PORTS
            and not ctx.list_field("server_encrypted"))


def e_plaintext_port(ctx: Ctx) -> Finding:
    port = str(ctx.s.get("server", "")).rpartition(":")[2]
    return Finding("server", LOW, f"a ClientHello sent to port {port} (plain HTTP by convention) got no TLS answer: "
                   f"{_refusal_text(ctx)}; the service there most likely does not speak TLS",
                   "`tlsdiag probe HOST:PORT`, or check which service listens on the port")


FAILURE_RULES: Sequence[Rule] = (
    Rule("TLS-SERVER-PLAINTEXT-PORT", PROTOCOL_MISMATCH, m_plaintext_port, e_plaintext_port),
    Rule("TLS-ALERT-UNRECOGNIZED-NAME", SNI_UNRECOGNIZED, m_sni_unrecognized, e_sni_unrecognized),
    Rule("TLS-ALERT-UNRECOGNIZED-NAME-NO-SNI", SNI_REQUIRED, m_unrecognized_without_sni, e_unrecognized_without_sni),
    Rule("TLS-ALERT-NO-APPLICATION-PROTOCOL", UNKNOWN, m_no_alpn, e_no_alpn),
    Rule("TLS-ALERT-PROTOCOL-VERSION", PROTOCOL_MISMATCH, m_protocol_alert_server, e_protocol_alert_server),
    Rule("TLS-CLIENT-REFUSED-VERSION", PROTOCOL_MISMATCH, m_protocol_alert_client, e_protocol_alert_client),
    Rule("TLS-HELLO-REFUSED-PROFILE-VERSION", PROTOCOL_MISMATCH, m_profile_version, e_profile_version),
    Rule("TLS-HELLO-REFUSED-PROFILE-CIPHER", CIPHER_MISMATCH, m_profile_cipher, e_profile_cipher),
    Rule("TLS-HELLO-REFUSED-PROFILE-GROUP", CIPHER_MISMATCH, m_profile_group, e_profile_group),
    Rule("TLS-HELLO-REFUSED-PROFILE-SNI", SNI_REQUIRED, m_profile_sni, e_profile_sni),
    Rule("TLS-HELLO-REFUSED-PROFILE-OTHER-NAMES", SNI_UNRECOGNIZED, m_profile_other_names, e_profile_other_names),
    Rule("TLS-HELLO-REFUSED-IMPLICIT-VERSION", PROTOCOL_MISMATCH, m_implicit_version, e_implicit_version),
    Rule("TLS-HELLO-REFUSED-OLD-VERSION", PROTOCOL_MISMATCH, m_old_versions, e_old_versions),
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
    Rule("TLS13-CLIENT-CERT-MISSING", CLIENT_CERTIFICATE_MISSING, m_client_cert_missing_size,
         e_client_cert_missing_size),
    Rule("TLS13-REMEMBERED-EXPIRED", EXPIRED_CERTIFICATE, _remembered_match(EXPIRED_CERTIFICATE), e_remembered),
    Rule("TLS13-REMEMBERED-NOT-YET-VALID", NOT_YET_VALID_CERTIFICATE, _remembered_match(NOT_YET_VALID_CERTIFICATE),
         e_remembered),
    Rule("TLS13-REMEMBERED-CHAIN", INCOMPLETE_CHAIN, _remembered_match(INCOMPLETE_CHAIN), e_remembered),
    Rule("TLS13-REMEMBERED-UNKNOWN", UNKNOWN_CERTIFICATE, _remembered_match(UNKNOWN_CERTIFICATE), e_remembered),
    Rule("TLS13-REMEMBERED-HOSTNAME", HOSTNAME_MISMATCH, _remembered_match(HOSTNAME_MISMATCH), e_remembered),
    Rule("TLS13-CLOSE-AFTER-HANDSHAKE-HOSTNAME", HOSTNAME_MISMATCH, _remembered_close_match(HOSTNAME_MISMATCH),
         e_remembered_close),
    Rule("TLS13-CLOSE-AFTER-HANDSHAKE-EXPIRED", EXPIRED_CERTIFICATE, _remembered_close_match(EXPIRED_CERTIFICATE),
         e_remembered_close),
    Rule("TLS13-CLOSE-AFTER-HANDSHAKE-NOT-YET-VALID", NOT_YET_VALID_CERTIFICATE,
         _remembered_close_match(NOT_YET_VALID_CERTIFICATE), e_remembered_close),
    Rule("TLS13-CLOSE-AFTER-HANDSHAKE-CHAIN", INCOMPLETE_CHAIN, _remembered_close_match(INCOMPLETE_CHAIN),
         e_remembered_close),
    Rule("TLS13-CLOSE-AFTER-HANDSHAKE-UNKNOWN", UNKNOWN_CERTIFICATE, _remembered_close_match(UNKNOWN_CERTIFICATE),
         e_remembered_close),
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

# -- endpoint hints: the endpoint's own OpenSSL (analyzer/hints.py) -----------------------------------------


def _hint_match(cause: Cause) -> Callable[[Ctx], bool]:
    def match(ctx: Ctx) -> bool:
        v = hint_verdict(ctx)
        return v is not None and v.cause == cause
    match.__name__ = f"m_hint_{cause}"
    return match


def _wire_text(ctx: Ctx, wire: tuple[Rule, Finding] | None) -> str:
    """What the wire alone shows, for the explanation of a cause that rests on a hint."""
    v = ctx.version or "no version"
    if ctx.tls13:
        seen = "TLSv1.3: the certificates and alerts are encrypted"
        if ctx.s.get("established"):
            seen += ", and the sensor saw the handshake complete"
    else:
        a = ctx.fatal
        seen = f"{v}, {_alert_text(a) if a is not None else 'no plaintext alert'}"
    if ctx._cache.get("wire_success"):
        return f"on the wire: {seen}; the wire alone shows a successful handshake"
    if wire is None:
        return f"on the wire: {seen}"
    rule, f = wire
    return f"on the wire: {seen}; the wire alone gives {rule.cause.id} ({rule.id}, {f.confidence} confidence)"


def e_hint(ctx: Ctx, wire: tuple[Rule, Finding] | None = None) -> Finding:
    v = hint_verdict(ctx)
    assert v is not None
    hints = endpoint_hints(ctx)
    others = [h for h in hints if h is not v.hint and (h.received or h.verify_error)]
    also = ""
    for h in others:
        if h.received:
            also += f"; {who(ctx, h.side)}'s OpenSSL ({h.process()}) received fatal {', '.join(h.received)}"
    why = (f"{v.text}{also}; {_wire_text(ctx, wire)}. This cause rests on the endpoint's own report (an endpoint "
           f"hint from its TLS library), not on the wire")
    ev: dict[str, object] = {"cause_from": "endpoint_hint", "endpoint_hints": [h.as_evidence() for h in hints]}
    if ctx._cache.get("wire_success"):
        ev["wire_alone"] = None                     # the wire alone: a success, no diagnosis
    elif wire is not None:
        ev["wire_alone"] = {"rule": wire[0].id, "cause": wire[0].cause.id, "confidence": wire[1].confidence}
    raise_ = None if v.exact else ("the chain the peer sends (a TLS 1.2 handshake in the capture shows it, or "
                                   "`openssl s_client -showcerts`)")
    return Finding(v.rejected_by, HIGH if v.exact else MEDIUM, why, raise_, ev, fix=_hint_fix(v))


def _hint_fix(v: HintVerdict) -> str | None:
    """The fix variant where the cause's own text would mislead: a rejection OpenSSL names but no cause does."""
    return "hint" if v.cause == CERTIFICATE_REJECTED and v.how == "verify" else None


#: causes an endpoint hint can name (analyzer/hints.py), each with its rule
HINT_RULES: Sequence[Rule] = tuple(
    Rule(rule_id, cause, _hint_match(cause), e_hint) for rule_id, cause in (
        ("TLS-HINT-CERT-EXPIRED", EXPIRED_CERTIFICATE),
        ("TLS-HINT-CERT-NOT-YET-VALID", NOT_YET_VALID_CERTIFICATE),
        ("TLS-HINT-CERT-INCOMPLETE-CHAIN", INCOMPLETE_CHAIN),
        ("TLS-HINT-CERT-UNKNOWN", UNKNOWN_CERTIFICATE),
        ("TLS-HINT-CERT-HOSTNAME", HOSTNAME_MISMATCH),
        ("TLS-HINT-CERT-REJECTED", CERTIFICATE_REJECTED),
        ("TLS-HINT-CLIENT-CERT-MISSING", CLIENT_CERTIFICATE_MISSING),
        ("TLS-HINT-CIPHER-MISMATCH", CIPHER_MISMATCH),
        ("TLS-HINT-PROTOCOL-MISMATCH", PROTOCOL_MISMATCH),
        ("TLS-HINT-SNI-UNRECOGNIZED", SNI_UNRECOGNIZED),
    ))
_HINT_RULE: Mapping[Cause, Rule] = {r.cause: r for r in HINT_RULES}

RULES_BY_ID: Mapping[str, Rule] = {r.id: r for r in (*FAILURE_RULES, *HINT_RULES)}


def _first_wire(ctx: Ctx) -> tuple[Rule, Finding]:
    for rule in FAILURE_RULES:
        if rule.match(ctx):
            return rule, rule.explain(ctx)
    raise AssertionError("TLS-UNEXPLAINED always matches")  # pragma: no cover


def first_match(ctx: Ctx) -> tuple[Rule, Finding]:
    """The wire's rule; with endpoint hints that name the cause, the hint's rule -- unless the wire alone gives
    the same cause and side with high confidence, which stays the wire's, confirmed by the hint."""
    wire = _first_wire(ctx)
    if not endpoint_hints(ctx):
        return wire
    v = hint_verdict(ctx)
    rule, f = wire
    if v is not None and ctx._cache.get("wire_success"):
        return _HINT_RULE[v.cause], e_hint(ctx, None)
    if v is None:
        return rule, _with_hints(ctx, f, None)
    if f.confidence == HIGH and rule.cause == v.cause and f.rejected_by == v.rejected_by:
        return rule, _with_hints(ctx, f, v)
    return _HINT_RULE[v.cause], e_hint(ctx, wire)


def _with_hints(ctx: Ctx, f: Finding, v: HintVerdict | None) -> Finding:
    """A wire finding with the endpoint hints in its evidence (and, when they agree, saying so)."""
    ev = dict(f.evidence)
    ev["cause_from"] = "wire"
    ev["endpoint_hints"] = [h.as_evidence() for h in endpoint_hints(ctx)]
    why = f.why if v is None else f"{f.why}; confirmed by the endpoint: {v.text}"
    return Finding(f.rejected_by, f.confidence, why, f.raise_confidence, ev, f.fix)
