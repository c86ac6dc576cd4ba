"""The human report: failures and warnings grouped by server and cause, with counts, first/last seen,
evidence and the fix. Plain text; colour only when asked (a terminal without NO_COLOR)."""

from __future__ import annotations

import os
import textwrap
from collections import Counter
from dataclasses import dataclass, field
from typing import IO, Iterable, Mapping, Sequence

Diagnosis = Mapping[str, object]

WIDTH = 100
MAX_GROUPS = 200          # bound on groups printed; the rest are counted
MAX_CLIENTS_SHOWN = 3


def want_colour(stream: IO[str], environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    if "NO_COLOR" in env or env.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


@dataclass
class _Style:
    on: bool

    def _w(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.on else text

    def bold(self, t: str) -> str:
        return self._w("1", t)

    def red(self, t: str) -> str:
        return self._w("1;31", t)

    def yellow(self, t: str) -> str:
        return self._w("33", t)

    def dim(self, t: str) -> str:
        return self._w("2", t)

    def green(self, t: str) -> str:
        return self._w("32", t)


@dataclass
class Group:
    server: str
    direction: str
    cause: str
    severity: str
    rejected_by: str | None
    items: list[Diagnosis] = field(default_factory=list)
    clients: Counter[str] = field(default_factory=Counter)
    names: Counter[str] = field(default_factory=Counter)
    confidence: Counter[str] = field(default_factory=Counter)

    @property
    def first(self) -> str:
        ts = [str(d.get("time")) for d in self.items if d.get("time")]
        return min(ts) if ts else "?"

    @property
    def last(self) -> str:
        ts = [str(d.get("time")) for d in self.items if d.get("time")]
        return max(ts) if ts else "?"


def _host(ep: str) -> str:
    if ep.startswith("["):
        return ep[1:ep.find("]")] if "]" in ep else ep
    return ep.rpartition(":")[0] or ep


def group(diagnoses: Iterable[Diagnosis]) -> list[Group]:
    groups: dict[tuple[str, str, str, str, str | None], Group] = {}
    for d in diagnoses:
        conn = d.get("connection") if isinstance(d.get("connection"), dict) else {}
        assert isinstance(conn, dict)
        server = str(conn.get("server") or "?")
        rej = d.get("rejected_by")
        key = (server, str(d.get("direction")), str(d.get("cause")), str(d.get("severity")),
               rej if isinstance(rej, str) else None)
        g = groups.get(key)
        if g is None:
            g = groups[key] = Group(*key)
        g.items.append(d)
        g.clients[_host(str(conn.get("client") or "?"))] += 1
        g.names[str(conn.get("server_name") or "(no SNI)")] += 1
        g.confidence[str(d.get("confidence"))] += 1
    return sorted(groups.values(), key=lambda g: (g.severity != "failure", -len(g.items), g.server, g.cause))


def evidence_line(d: Diagnosis) -> str:
    """The wire facts in one line: versions, suite, SNI, alerts, certificate."""
    ev = d.get("evidence") if isinstance(d.get("evidence"), dict) else {}
    assert isinstance(ev, dict)
    parts: list[str] = []
    cv = ev.get("client_versions") or []
    chosen = ev.get("version")
    picked = f"{chosen} {ev.get('cipher') or ''}".strip() if chosen else "no ServerHello"
    parts.append(f"offered {'/'.join(map(str, cv))} -> {picked}" if cv else picked)
    cc = ev.get("client_ciphers") or []
    if isinstance(cc, list) and cc and d.get("cause") in ("cipher_mismatch", "protocol_mismatch", "sni_required", "unknown"):
        parts.append(f"{len(cc)} suites offered (first {', '.join(map(str, cc[:3]))})")
    parts.append(f"SNI {ev.get('server_name')}" if ev.get("server_name") else "no SNI")
    alerts = ev.get("alerts") or []
    if isinstance(alerts, list):
        for a in alerts[:3]:
            if isinstance(a, dict):
                after = f" after {a.get('after')}" if a.get("after") else ""
                parts.append(f"{a.get('from')} {a.get('level')} {a.get('description')}{after}")
    enc = ev.get("encrypted_alerts") or []
    if isinstance(enc, list) and enc:
        parts.append("encrypted alert from " + ", ".join(f"{e.get('from')} ({e.get('length')} B)" for e in enc[:2]
                                                           if isinstance(e, dict)))
    if not alerts and not enc and isinstance(ev.get("close"), dict):
        close = ev["close"]
        who = (close.get("rst") or close.get("fin") or [None])[0]
        if who:
            parts.append(f"{who} closed first ({'RST' if close.get('rst') else 'FIN'})")
    prof = ev.get("server_profile")
    if isinstance(prof, dict) and prof.get("summary"):
        parts.append(f"server profile: {prof['summary']}")
    return "; ".join(parts)


def cert_line(d: Diagnosis) -> str | None:
    ev = d.get("evidence") if isinstance(d.get("evidence"), dict) else {}
    assert isinstance(ev, dict)
    side = "client_certificates" if d.get("rejected_by") == "server" or (
        isinstance(ev.get("certificate_side"), str) and ev.get("certificate_side") == "client") else "server_certificates"
    chain = ev.get(side)
    if not isinstance(chain, dict):
        return None
    certs = chain.get("chain") or []
    if not isinstance(certs, list) or not certs:
        return None
    leaf = certs[0] if isinstance(certs[0], dict) else {}
    names = leaf.get("san_dns") or leaf.get("san_ip") or []
    bits = [f"{'client' if side.startswith('client') else 'server'} chain of {len(certs)}: {leaf.get('subject', '?')}",
            f"issuer {leaf.get('issuer', '?')}", f"valid {leaf.get('not_before', '?')} .. {leaf.get('not_after', '?')}"]
    if names:
        bits.append("SAN " + ", ".join(map(str, names[:4])))
    probs = chain.get("problems") or []
    if isinstance(probs, list) and probs:
        bits.append("problems: " + ", ".join(str(p.get("problem")) for p in probs if isinstance(p, dict)))
    if not chain.get("truststore"):
        bits.append("no truststore given")
    return "; ".join(bits)


def _wrap(label: str, text: str, style: _Style) -> list[str]:
    pad = " " * 6
    lines = textwrap.wrap(text, width=WIDTH - 6 - 10, break_long_words=False, break_on_hyphens=False) or [""]
    head = f"{pad}{style.dim(label.ljust(10))}{lines[0]}"
    return [head] + [f"{pad}{' ' * 10}{ln}" for ln in lines[1:]]


def render(diagnoses: Sequence[Diagnosis], stats: Mapping[str, object] | None = None, *,
           colour: bool = False, notes: Sequence[str] = ()) -> str:
    st = _Style(colour)
    out: list[str] = []
    fails = [d for d in diagnoses if d.get("severity") == "failure"]
    warns = [d for d in diagnoses if d.get("severity") == "warning"]
    if stats:
        nj = stats.get("not_judged") or {}
        nj_text = (", not judged " + ", ".join(f"{k} {v}" for k, v in nj.items())) if isinstance(nj, dict) and nj else ""
        out.append(st.bold(f"tlsdiag: {stats.get('summaries', 0)} connections: {stats.get('established', 0)} "
                           f"established, {stats.get('failed', 0)} failed{nj_text}"))
    for n in notes:
        out.append(st.dim(n))
    if not fails:
        out.append(st.green("No failed TLS handshakes."))
    groups = group(diagnoses)
    servers_done: set[tuple[str, str]] = set()
    shown = 0
    for sev, title in (("failure", "FAILED HANDSHAKES"), ("warning", "WARNINGS (handshakes that worked)")):
        gs = [g for g in groups if g.severity == sev]
        if not gs:
            continue
        out.append("")
        out.append(st.bold(f"{title}: {len(fails) if sev == 'failure' else len(warns)} connections, "
                           f"{len(gs)} server/cause groups"))
        for g in gs:
            if shown >= MAX_GROUPS:
                out.append(st.dim(f"... {len(groups) - shown} more groups (use --format jsonl for all)"))
                break
            shown += 1
            if (g.server, sev) not in servers_done:
                servers_done.add((g.server, sev))
                names = ", ".join(n for n, _ in g.names.most_common(3))
                out.append("")
                out.append(st.bold(f"== {g.server}  [{names}]  {g.direction}"))
            d0 = g.items[0]
            mark = st.red("FAIL") if sev == "failure" else st.yellow("WARN")
            rej = f"rejected by {g.rejected_by}" if g.rejected_by else "rejected by ?" if sev == "failure" else ""
            conf = "/".join(f"{c}" for c, _ in g.confidence.most_common())
            cause = st.red(g.cause) if sev == "failure" else st.yellow(g.cause)
            out.append(f"  {mark} {cause}  x{len(g.items)}  {rej}  confidence {conf}  rule {d0.get('rule')}")
            out.append(f"      {st.dim('seen'.ljust(10))}{g.first} .. {g.last}; clients "
                       + ", ".join(f"{c} ({n})" for c, n in g.clients.most_common(MAX_CLIENTS_SHOWN))
                       + (f" +{len(g.clients) - MAX_CLIENTS_SHOWN} more" if len(g.clients) > MAX_CLIENTS_SHOWN else ""))
            out.extend(_wrap("why", str(d0.get("explanation") or ""), st))
            out.extend(_wrap("evidence", evidence_line(d0), st))
            cl = cert_line(d0)
            if cl:
                out.extend(_wrap("cert", cl, st))
            out.extend(_wrap("fix", str(d0.get("remediation") or ""), st))
            if d0.get("raise_confidence") and d0.get("confidence") != "high":
                out.extend(_wrap("confirm", str(d0.get("raise_confidence")), st))
            out.extend(_wrap("example", f"connection {d0.get('id')} at {d0.get('time')}", st))
    return "\n".join(out) + "\n"
