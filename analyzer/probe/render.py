"""The probe's report as text (``tlsdiag probe``'s default format)."""
from __future__ import annotations

from typing import Mapping

from ..causes import cause_by_id
from .prober import UNKNOWN_SNI

__all__ = ["render_text"]

Report = Mapping[str, object]
_SEVERITY_ORDER = {"failure": 0, "warning": 1, "ok": 2, "info": 3}


def render_text(r: Report) -> str:
    name = r.get("servername")
    lines = [f"tlsdiag probe {r['target']} (connected to {r['connected_to']}; server name "
             f"{name or '-'}; timeout {r['timeout_s']}s; {r.get('local_tls_library')})"]
    lines += _versions(r, name)
    lines += _suites(r)
    lines += _offer(r)
    lines += _sni(r, name)
    lines += _chain(r)
    lines += _verdict(r)
    lines += ["", f"{r.get('attempts')} connection attempts in {r.get('elapsed_s')}s"]
    return "\n".join(lines) + "\n"


def _versions(r: Report, name: object) -> list[str]:
    out = ["", "Protocol versions (each offered alone" + (f", SNI {name}" if name else ", no SNI") + "):"]
    versions = r.get("versions")
    if not isinstance(versions, dict):
        return out
    for v, a in versions.items():
        mark = "ACCEPTED" if a["negotiated"] else ("untestable" if a["outcome"] == "not_testable" else "rejected")
        extra = f"  [{a['method']}]" if a["method"] != "python-ssl" else ""
        summ = a["summary"] if not a["accepted"] else f"{a['cipher']}"
        out.append(f"  {v:<8} {mark:<10} {summ}{extra}")
    raw = [v for v, a in versions.items() if a["method"] == "raw-client-hello"]
    if raw:
        out.append(f"  ({', '.join(raw)}: this host's TLS library cannot offer {'it' if len(raw) == 1 else 'them'}; "
                   "tested with a hand-built ClientHello - the server's ServerHello or alert, no full handshake)")
    return out


def _suites(r: Report) -> list[str]:
    suites = r.get("suites")
    if not isinstance(suites, dict) or not suites:
        return []
    return ["", "Cipher suites accepted (in the order the server chose them):"] + [
        f"  {v}: " + (", ".join(names) if names else "-") for v, names in suites.items()]


def _offer(r: Report) -> list[str]:
    offer = r.get("offer")
    if not isinstance(offer, dict):
        return []
    verdict = "ACCEPTED" if offer["accepted"] else ("NEGOTIATED, then failed" if offer["negotiated"] else "REJECTED")
    return (["", f"Client offer {offer['label'][6:]}:", f"  {verdict}: {offer['summary']}"]
            + [f"  note: {n}" for n in offer.get("notes", [])])


def _sni(r: Report, name: object) -> list[str]:
    sni = r.get("sni")
    if not isinstance(sni, dict):
        return []
    out = ["", "SNI:"]
    for key, what in (("with_name", f"server_name {name}"), ("without_name", "no server_name"),
                      ("unknown_name", f"server_name {UNKNOWN_SNI}")):
        a = sni.get(key)
        if a is None:
            continue
        leaf = f"  leaf sha256 {str(a['leaf_sha256'])[:16]}" if a.get("leaf_sha256") else ""
        out.append(f"  {what:<40} {a['summary']}{leaf}")
    return out


def _chain(r: Report) -> list[str]:
    chain = r.get("chain")
    if not isinstance(chain, dict):
        return []
    if not chain.get("certificates"):
        return ["", "Certificate chain: " + str(chain.get("note", "not seen"))]
    out = ["", f"Certificate chain as sent ({chain['sent']} certificate{'s' if chain['sent'] != 1 else ''}, "
               f"{chain.get('version')}, from '{chain.get('from')}'):"]
    for c in chain["certificates"]:
        state = "EXPIRED" if c["expired"] else ("NOT YET VALID" if c["not_yet_valid"] else f"{c['days_left']}d left")
        out.append(f"  [{c['index']}] {c['subject']}")
        out.append(f"      issuer {c['issuer']}; {c['not_before'][:10]} .. {c['not_after'][:10]} ({state})"
                   + ("; CA" if c["ca"] else "") + ("; self-signed" if c["self_signed"] else ""))
        if c["san_dns"] or c["san_ip"]:
            out.append("      SAN " + ", ".join(c["san_dns"] + c["san_ip"]))
    h = chain.get("hostname", {})
    if h.get("name"):
        out.append(f"  hostname {h['name']}: {'matches' if h['matches'] else 'DOES NOT MATCH'} ({h['how']})")
    out.append("  chain: " + ("reaches a trusted certificate" if chain.get("anchored")
                              else "does NOT reach a trusted certificate"))
    out += [f"  problem: {p['problem']}: {p['message']}" for p in chain.get("problems", [])]
    out += [f"  note: {n}" for n in chain.get("notes", [])]
    t = chain.get("trust", {})
    if t:
        res = {True: "verified", False: "NOT verified", None: "not checked"}[t.get("verified")]
        out.append(f"  path validation ({t.get('truststore')}): {res}"
                   + (f" ({t['verifier']})" if t.get("verifier") not in (None, "ok") else ""))
    return out


def _verdict(r: Report) -> list[str]:
    out = ["", "Verdict:"]
    f = r.get("findings")
    if not isinstance(f, list):
        return out
    for x in sorted(f, key=lambda x: _SEVERITY_ORDER.get(x["severity"], 9)):
        cause = cause_by_id(x["cause"])
        label = f" ({cause.label})" if cause is not None and x["severity"] in ("failure", "warning") else ""
        named = f" {cause.id}{label}:" if cause is not None else ""
        out.append(f"  {x['severity'].upper():<7}{named} {x['message']}")
        if x.get("fix"):
            out.append(f"           fix: {x['fix']}")
    return out
