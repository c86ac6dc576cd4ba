"""The probe's verdicts: findings named with the cause registry, fixed with the diagnosis's own fix texts
(:mod:`analyzer.remediation`; a handful of situations only the probe sees have their templates there too).

A finding is ``{"cause", "severity", "message", "fix"}``; ``cause`` is a cause id, or ``"none"`` for what
works (severity ``ok``).  The probe talks to one server as a client, the way the Message Processor talks to a
backend: the fixes for the server's side of a version, suite or SNI refusal are the southbound ones.
"""
from __future__ import annotations

from typing import Mapping, Sequence

from cryptography import x509
from cryptography.x509.oid import NameOID

from proto.names import AlertDescription as AD

from ..causes import (CERTIFICATE_REJECTED, CIPHER_MISMATCH, CLIENT_CERTIFICATE_MISSING, EXPIRED_CERTIFICATE,
                      PROTOCOL_MISMATCH, SNI_REQUIRED, SNI_UNRECOGNIZED, UNKNOWN, UNKNOWN_CERTIFICATE, Cause,
                      cause_by_id)
from ..remediation import S, fix_text
from .attempt import VERSIONS, Attempt

__all__ = ["findings", "NO_CAUSE"]

#: ``cause`` of a finding that says something works
NO_CAUSE = "none"
Finding = dict[str, str]
Facts = Mapping[str, object]

_MODERN = ("TLSv1.2", "TLSv1.3")
_DEPRECATED = ("SSLv3", "TLSv1.0", "TLSv1.1")
#: the cause a server's alert names when it rejects the client certificate the probe presented
_CLIENT_CERT_ALERT_CAUSE: Mapping[int, Cause] = {
    AD.certificate_expired: EXPIRED_CERTIFICATE, AD.unknown_ca: UNKNOWN_CERTIFICATE,
    AD.certificate_required: CLIENT_CERTIFICATE_MISSING,
}


def _finding(cause: Cause | None, severity: str, message: str, fix: str = "") -> Finding:
    return {"cause": cause.id if cause is not None else NO_CAUSE, "severity": severity, "message": message,
            "fix": fix}


def findings(report: Mapping[str, object], versions: Mapping[str, Attempt], suites: Mapping[str, list[str]],
             offer: Attempt | None, sni: Mapping[str, Attempt], name: str | None,
             client_cert: Facts | None = None, without_cert: Attempt | None = None) -> list[Finding]:
    """Every verdict of a probe run.  ``client_cert``: facts (subject, issuer, not_after) of the client
    certificate the probe presented, if any; ``without_cert``: the handshake made without it, when the
    server asked for one (required or optional)."""
    target = str(report.get("target"))
    accepted = [v for v in VERSIONS if versions[v].negotiated]
    every = list(versions.values()) + list(sni.values()) + ([offer] if offer is not None else [])
    out = _version_findings(versions, accepted, name, target, every, report)
    if offer is not None:
        out += _offer_findings(report, offer, accepted, suites, target)
    out += _sni_findings(sni, name, target)
    out += _client_cert_findings(every, target, client_cert or {}, without_cert)
    chain = report.get("chain")
    if isinstance(chain, dict):
        out += _chain_findings(chain, name, target)
    return out


def _pin_fix(offered: Sequence[str], accepted: Sequence[str], target: str) -> str:
    """The backend speaks only older versions than the client offers."""
    if accepted[-1] == "SSLv3":
        return fix_text(PROTOCOL_MISMATCH, {}, situation="only_sslv3")
    return fix_text(PROTOCOL_MISMATCH, {"server": target, "offered": "/".join(offered),
                                        "server_versions": "/".join(accepted), "suggest_version": accepted[-1]},
                    direction=S, rejected_by="server")


def _no_tls(every: list[Attempt], report: Mapping[str, object]) -> tuple[str, str] | None:
    """(situation, message) when the port does not speak TLS: no attempt got a ServerHello or an alert, and
    the server answered with non-TLS bytes, or never answered at all."""
    tried = [a for a in every if a.outcome != "not_testable"]
    if not tried or any(a.negotiated or a.server_version or a.alert is not None for a in tried):
        return None
    odd = [a for a in tried if a.outcome == "not_tls"]
    if odd:
        shown = next((a.error for a in odd if a.error and "answered with" in a.error), odd[0].error) or ""
        return "not_tls", (f"not TLS: the port answered {len(odd)} of {len(tried)} ClientHellos with something that "
                           f"is not a TLS record ({shown.split(';')[0]})")
    if all(a.outcome == "timeout" for a in tried):
        return "silent", (f"no TLS answer: the port accepts TCP connections but never answered a ClientHello (all "
                          f"{len(tried)} attempts timed out after {report.get('timeout_s')}s): not a TLS service, or "
                          f"something that drops TLS")
    return None


def _version_findings(versions: Mapping[str, Attempt], accepted: list[str], name: str | None,
                      target: str, every: list[Attempt], report: Mapping[str, object]) -> list[Finding]:
    out: list[Finding] = []
    untestable = [v for v in VERSIONS if versions[v].outcome == "not_testable"]
    no_tls = _no_tls(every, report) if not accepted else None
    if no_tls is not None:
        # a port that answers with something else is what the diagnosis calls a protocol mismatch too
        # (rule TLS-SERVER-PLAINTEXT-PORT); a silent one explains nothing
        cause = PROTOCOL_MISMATCH if no_tls[0] == "not_tls" else UNKNOWN
        out.append(_finding(cause, "failure", no_tls[1], fix_text(cause, {"server": target}, situation=no_tls[0])))
    elif not accepted:
        situation = "no_version_no_sni" if name is None else "no_version"
        out.append(_finding(UNKNOWN, "failure", "no protocol version was accepted in any probe handshake",
                            fix_text(UNKNOWN, {}, situation=situation)))
    else:
        modern = [v for v in accepted if v in _MODERN]
        if not modern:
            rej = versions["TLSv1.2"]
            if rej.outcome == "server_alert" and rej.alert:
                how = f"the server's {rej.alert['name']} alert"
            elif rej.outcome == "server_chose_other":
                how = (f"the server answering {rej.server_version} and the client aborting"
                       + (f" with {rej.alert['name']}" if rej.alert else ""))
            else:
                how = rej.summary()
            out.append(_finding(
                PROTOCOL_MISMATCH, "failure",
                f"server accepts only {', '.join(accepted)}: a client offering only TLSv1.2 (Java 8+ / Message "
                f"Processor default) fails with {how}",
                _pin_fix(["TLSv1.2"], accepted, target)))
        old = [v for v in accepted if v in _DEPRECATED]
        if old and modern:
            out.append(_finding(PROTOCOL_MISMATCH, "warning",
                                f"server still accepts deprecated {', '.join(old)} (also {', '.join(modern)})",
                                fix_text(PROTOCOL_MISMATCH, {"deprecated": ", ".join(old)},
                                         situation="deprecated_enabled")))
        if "TLSv1.3" not in accepted and "TLSv1.3" not in untestable:
            out.append(_finding(PROTOCOL_MISMATCH, "info", "server does not accept TLSv1.3"))
    for v in untestable:
        out.append(_finding(UNKNOWN, "info", f"{v}: not testable from this host ({versions[v].error})"))
    return out


def _offer_findings(report: Mapping[str, object], offer: Attempt, accepted: list[str],
                    suites: Mapping[str, list[str]], target: str) -> list[Finding]:
    if offer.accepted:
        return [_finding(None, "ok", f"client offer accepted: {offer.version} {offer.cipher}")]
    if offer.negotiated:
        return [_finding(None, "ok", f"client offer negotiated {offer.server_version} {offer.server_cipher}"
                                     f" (the handshake then failed: {offer.summary()})")]
    if offer.outcome == "not_testable":
        return [_finding(UNKNOWN, "info", f"client offer not testable from this host ({offer.error})")]
    common = [v for v in accepted if v in set(offer.offered)]
    alert = offer.alert["name"] if offer.alert else None
    if not common and accepted:
        return [_finding(
            PROTOCOL_MISMATCH, "failure",
            f"client offer {','.join(offer.offered)} fails ({offer.summary()}): server accepts only "
            f"{', '.join(accepted)}", _pin_fix(offer.offered, accepted, target))]
    if common and alert in (AD.handshake_failure.name, AD.insufficient_security.name, None):
        offer_info = report.get("offer")
        named = offer_info.get("ciphers") if isinstance(offer_info, dict) else None
        return [_cipher_finding(offer, common, suites, named, target)]
    return [_finding(UNKNOWN, "failure", f"client offer fails: {offer.summary()}")]


def _cipher_finding(offer: Attempt, common: list[str], suites: Mapping[str, list[str]],
                    named: list[str] | None, target: str) -> Finding:
    """Both sides speak a version, and the offer still fails on the suites."""
    have = "; ".join(f"{v}: " + ", ".join(suites[v][:8]) + (" ..." if len(suites[v]) > 8 else "")
                     for v in common if suites.get(v))
    shared = {v: [c for c in named if c in suites.get(v, [])] for v in common} if named else {}
    works = [v for v in common if shared.get(v)]
    top = common[-1]
    if works and works[-1] != top:
        ok_v = works[-1]
        return _finding(
            CIPHER_MISMATCH, "failure",
            f"client offer fails ({offer.summary()}): the server settles on {top} first and shares none "
            f"of the offered {top} suites; it does not fall back to {ok_v}, where "
            f"{', '.join(shared[ok_v])} would work"
            + (f" (server's {top} suites: " + ", ".join(suites.get(top, [])) + ")" if suites.get(top) else ""),
            fix_text(CIPHER_MISMATCH, {"top": top}, situation="settles_on_top_version"))
    server_suites = [s for v in reversed(common) for s in suites.get(v, [])]
    return _finding(
        CIPHER_MISMATCH, "failure",
        f"client offer fails ({offer.summary()}) although both sides speak {', '.join(common)}: "
        f"no common cipher suite" + (f" (server accepts {have})" if have else ""),
        fix_text(CIPHER_MISMATCH, {"server": target, "n_offered": len(named) if named else None,
                                   "server_suites": ", ".join(server_suites[:3]) or None},
                 direction=S))


def _sni_findings(sni: Mapping[str, Attempt], name: str | None, target: str) -> list[Finding]:
    out: list[Finding] = []
    w, wo, unk = sni.get("with_name"), sni.get("without_name"), sni.get("unknown_name")
    if w is not None and wo is not None:
        if w.negotiated and not wo.negotiated:
            out.append(_finding(
                SNI_REQUIRED, "failure" if wo.outcome in ("server_alert", "closed") else "warning",
                f"handshake without server_name fails ({wo.summary()}); with {name} it succeeds: the server "
                "requires SNI",
                fix_text(SNI_REQUIRED, {"server": target, "target": name}, rejected_by="server")))
        elif w.negotiated and wo.negotiated and w.leaf_sha256 and wo.leaf_sha256 \
                and w.leaf_sha256 != wo.leaf_sha256:
            out.append(_finding(
                SNI_REQUIRED, "warning",
                f"server is SNI-dependent: with {name} it serves {_cert_label(w)}, without server_name "
                f"{_cert_label(wo)}", fix_text(SNI_REQUIRED, {}, situation="certificate_depends_on_sni")))
        if w.negotiated and any(a["code"] == AD.unrecognized_name for a in w.warning_alerts):
            out.append(_finding(
                SNI_UNRECOGNIZED, "failure",
                f"server answers server_name {name} with a warning unrecognized_name: Java (JSSE) clients "
                "treat it as fatal",
                fix_text(SNI_UNRECOGNIZED, {"server": target, "sni": name}, direction=S, rejected_by="client")))
    elif wo is not None and name is None:
        out.append(_finding(UNKNOWN, "info", "SNI sensitivity not tested with a name: target is an IP; "
                                             "give --servername"))
    if unk is not None and w is not None and w.negotiated:
        if unk.outcome == "server_alert" and unk.alert and unk.alert["code"] == AD.unrecognized_name:
            out.append(_finding(SNI_UNRECOGNIZED, "info",
                                "server rejects unknown server names with unrecognized_name: clients must send "
                                f"exactly a configured name such as {name}"))
        elif unk.accepted and unk.warning_alerts:
            out.append(_finding(SNI_UNRECOGNIZED, "info",
                                "server answers unknown server names with a warning unrecognized_name "
                                "(fatal for JSSE clients that send a name it does not know)"))
    return out


def _client_cert_findings(every: list[Attempt], target: str, presented: Facts,
                          without: Attempt | None = None) -> list[Finding]:
    rejected = next((a for a in every if a.client_cert_rejected), None)
    if rejected is not None and rejected.alert is not None and rejected.client_cert_sent:
        cause = _CLIENT_CERT_ALERT_CAUSE.get(int(rejected.alert["code"]),  # type: ignore[call-overload]
                                             CERTIFICATE_REJECTED)
        return [_finding(
            cause, "failure",
            f"server rejects the client certificate presented ({rejected.server_version}): alert "
            f"{rejected.alert['name']} (rejected_by server)",
            fix_text(cause, {"server": target, "rejected_by": "server", **presented}, direction=S,
                     rejected_by="server"))]
    if rejected is not None and rejected.alert is not None:
        return [_finding(
            CLIENT_CERTIFICATE_MISSING, "failure",
            f"server requires a client certificate: it sends a CertificateRequest and, when the client sends "
            f"none, ends the handshake with {rejected.alert['name']} ({rejected.server_version})",
            fix_text(CLIENT_CERTIFICATE_MISSING, {"server": target}))]
    if any(a.client_cert_requested and a.accepted and not a.client_cert_sent for a in every) or (
            without is not None and without.accepted):
        return [_finding(CLIENT_CERTIFICATE_MISSING, "info",
                         "server requests an optional client certificate (handshake succeeds without one)")]
    if any(a.client_cert_requested and a.accepted and a.client_cert_sent for a in every):
        who = f" ({presented['subject']})" if presented.get("subject") else ""
        if without is not None and without.outcome in ("server_alert", "closed"):
            how = (f"without one it ends the handshake with {without.alert['name']}" if without.alert is not None
                   else "without one it closes the connection")
            return [_finding(None, "ok", f"server requires a client certificate ({how}) and accepts the one "
                                         f"presented{who}")]
        return [_finding(None, "ok", f"server asks for a client certificate and accepts the one presented{who}")]
    return []


def _chain_findings(chain: Mapping[str, object], name: str | None, target: str) -> list[Finding]:
    out: list[Finding] = []
    certs = chain.get("certificates") or []
    for p in chain.get("problems") or []:   # type: ignore[union-attr]
        if not isinstance(p, dict):
            continue
        cause = cause_by_id(p["cause"]) or UNKNOWN
        fix = ""
        if cause is not UNKNOWN:      # UNKNOWN here: the server sent no certificate at all
            facts = _cert_facts(certs, int(p.get("cert_index", 0)))
            fix = fix_text(cause, {"server": target, "sni": name, "hostname": name, "rejected_by": "client",
                                   **facts}, rejected_by="client")
        out.append(_finding(cause, str(p["severity"]), str(p["message"]), fix))
    trust = chain.get("trust")
    if isinstance(trust, dict) and trust.get("verified") is True and not chain.get("problems"):
        what = f"for {name}" if name else "(no server name given: the name in it was not checked)"
        out.append(_finding(None, "ok", f"chain verifies {what} against {trust.get('truststore')}"))
    return out


def _cert_facts(certs: object, index: int) -> dict[str, object]:
    """The fix-text facts of certificate ``index`` of the validated chain (the leaf for chain-wide problems)."""
    if not isinstance(certs, list) or not certs:
        return {}
    c = certs[index] if 0 <= index < len(certs) else certs[0]
    names = list(c.get("san_dns") or []) + list(c.get("san_ip") or [])
    return {"subject": c.get("subject") or None, "issuer": c.get("issuer") or None,
            "missing_issuer": c.get("issuer") or None, "not_after": _utc(c.get("not_after")),
            "not_before": _utc(c.get("not_before")), "cert_names": ", ".join(names[:6]) or None}


def _utc(iso: object) -> str | None:
    """``2027-01-01T00:00:00+00:00`` -> ``2027-01-01T00:00:00Z``, as the diagnoses write dates."""
    return iso.replace("+00:00", "Z") if isinstance(iso, str) else None


def _cert_label(att: Attempt) -> str:
    if not att.chain:
        return "?"
    try:
        c = x509.load_der_x509_certificate(att.chain[0])
        cn = c.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return f"CN={cn[0].value!s}" if cn else c.subject.rfc4514_string()
    except Exception:       # noqa: BLE001 -- a server's malformed certificate (cryptography: ValueError, KeyError...)
        return "?"
