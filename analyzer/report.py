"""The human report: failures and warnings grouped by server and cause, with counts, first/last seen,
evidence and the fix. Plain text; colour only when asked (a terminal without NO_COLOR)."""

from __future__ import annotations

import json
import os
import textwrap
from collections import Counter
from dataclasses import dataclass, field
from typing import IO, Mapping, Sequence

from orjson import dumps as _orjson_dumps

from proto.text import printable

from .causes import cause_by_id

Diagnosis = Mapping[str, object]

WIDTH = 100
MAX_GROUPS = 200          # bound on groups printed; the rest are counted
MAX_CLIENTS_SHOWN = 3
MAX_COUNTED = 1000        # bound on distinct clients / names counted per group

#: ``json.dumps(o, ensure_ascii=False, separators=(",", ":"))`` without building an encoder per call:
#: compact JSON text, UTF-8 not escaped (also the incidents' state, :mod:`analyzer.incidents`)
json_text = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def json_bytes(obj: object) -> bytes:
    """A diagnosis (or incident event) as one line of compact JSON, UTF-8, no newline:
    ``json_text(obj).encode()``, from orjson (3.3 µs against 24 µs for hs-100k's 3 KB diagnoses, best of 5
    ``timeit``).  The same bytes, but for floats that the two spell differently -- none a diagnosis makes
    (its one float, a remembered chain's ``age_s``, is
    rounded to milliseconds); copied from a hostile JSONL summary, orjson writes ``0.00001`` for ``1e-05``
    and ``null`` for NaN and infinities (which are not JSON).  What orjson refuses (an int over 64 bits, a
    non-str key, a lone surrogate) goes through the stdlib encoder; text with a lone surrogate (no UTF-8 for
    it) is written ASCII-escaped (``\\udc80``: JSON that reads back as the same text)."""
    try:
        return _orjson_dumps(obj)
    except TypeError:               # orjson.JSONEncodeError is a TypeError
        text = json_text(obj)
    try:
        return text.encode()
    except UnicodeEncodeError:
        return json.dumps(obj, separators=(",", ":")).encode()


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
    """One (server, direction, cause, severity, rejecting side): counts and the first example, never every item."""

    server: str
    direction: str
    cause: str
    severity: str
    rejected_by: str | None
    count: int = 0
    example: Diagnosis | None = None
    first: str = "?"
    last: str = "?"
    clients: Counter[str] = field(default_factory=Counter)
    names: Counter[str] = field(default_factory=Counter)
    confidence: Counter[str] = field(default_factory=Counter)

    def add(self, d: Diagnosis, client: str, name: str) -> None:
        self.count += 1
        if self.example is None:
            self.example = d
        t = d.get("time")
        if isinstance(t, str):
            self.first = t if self.first == "?" else min(self.first, t)
            self.last = t if self.last == "?" else max(self.last, t)
        if client in self.clients or len(self.clients) < MAX_COUNTED:
            self.clients[client] += 1
        if name in self.names or len(self.names) < MAX_COUNTED:
            self.names[name] += 1
        self.confidence[str(d.get("confidence"))] += 1

    def merge(self, other: Group) -> None:
        """Add the later diagnoses ``other`` counted (of the same key): as if they had been added here
        (the clients and names each counted, up to :data:`MAX_COUNTED` of them, are those of the first
        diagnoses that named them)."""
        self.count += other.count
        if self.example is None:
            self.example = other.example
        for t in (other.first, other.last):
            if t != "?":
                self.first = t if self.first == "?" else min(self.first, t)
                self.last = t if self.last == "?" else max(self.last, t)
        for mine, theirs in ((self.clients, other.clients), (self.names, other.names)):
            for k, n in theirs.items():
                if k in mine or len(mine) < MAX_COUNTED:
                    mine[k] += n
        self.confidence.update(other.confidence)


class Grouper:
    """Streaming aggregation for the report: feed diagnoses, render once."""

    def __init__(self) -> None:
        self.groups: dict[tuple[str, str, str, str, str | None], Group] = {}
        self.failures = 0
        self.warnings = 0

    def add(self, d: Diagnosis) -> None:
        conn = d.get("connection") if isinstance(d.get("connection"), dict) else {}
        assert isinstance(conn, dict)
        server = str(conn.get("server") or "?")
        rej = d.get("rejected_by")
        key = (server, str(d.get("direction")), str(d.get("cause")), str(d.get("severity")),
               rej if isinstance(rej, str) else None)
        g = self.groups.get(key)
        if g is None:
            g = self.groups[key] = Group(*key)
        g.add(d, _host(str(conn.get("client") or "?")), str(conn.get("server_name") or "(no SNI)"))
        if d.get("severity") == "failure":
            self.failures += 1
        else:
            self.warnings += 1

    def merge(self, other: Grouper) -> None:
        """Add what ``other`` grouped of later diagnoses (a ``--jobs`` worker's: those of its servers)."""
        for key, g in other.groups.items():
            mine = self.groups.get(key)
            if mine is None:
                self.groups[key] = g
            else:
                mine.merge(g)
        self.failures += other.failures
        self.warnings += other.warnings

    def sorted(self) -> list[Group]:
        """Failures first, then warnings; within each, one block per server (and direction) -- the servers with
        the most connections first -- and its groups by count.  A server's groups are never split, so its
        header is printed once, above all of them."""
        totals: Counter[tuple[bool, str, str]] = Counter()
        for g in self.groups.values():
            totals[(g.severity != "failure", g.server, g.direction)] += g.count
        return sorted(self.groups.values(), key=lambda g: (
            g.severity != "failure", -totals[(g.severity != "failure", g.server, g.direction)], g.server, g.direction,
            -g.count, g.cause, g.rejected_by or ""))


def _host(ep: str) -> str:
    if ep.startswith("["):
        return ep[1:ep.find("]")] if "]" in ep else ep
    return ep.rpartition(":")[0] or ep


def evidence_line(d: Diagnosis) -> str:
    """The wire facts in one line: versions, suite, SNI, alerts, certificate."""
    ev = d.get("evidence") if isinstance(d.get("evidence"), dict) else {}
    assert isinstance(ev, dict)
    parts: list[str] = []
    cv = ev.get("client_versions")
    cv = cv if isinstance(cv, list) else []     # (a JSONL summary's fields come as they come)
    chosen = ev.get("version")
    picked = f"{chosen} {ev.get('cipher') or ''}".strip() if chosen else "no ServerHello"
    parts.append(f"offered {'/'.join(map(str, cv))} -> {picked}" if cv else picked)
    cc = ev.get("client_ciphers") or []
    cause = cause_by_id(d.get("cause"))
    if isinstance(cc, list) and cc and cause is not None and cause.offer_matters:
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
        ends = close.get("rst") or close.get("fin")
        who = ends[0] if isinstance(ends, list) and ends else None
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
    head = f"{'client' if side.startswith('client') else 'server'} chain of {len(certs)}: "
    if leaf.get("error"):           # (no name, issuer or dates to show)
        bits = [head + f"its first certificate unparseable ({leaf.get('error')})"]
    else:
        bits = [head + str(leaf.get("subject", "?")), f"issuer {leaf.get('issuer', '?')}",
                f"valid {leaf.get('not_before', '?')} .. {leaf.get('not_after', '?')}"]
    if isinstance(names, list) and names:
        bits.append("SAN " + ", ".join(map(str, names[:4])))
    probs = chain.get("problems") or []
    if isinstance(probs, list) and probs:
        bits.append("problems: " + ", ".join(str(p.get("problem")) for p in probs if isinstance(p, dict)))
    if not chain.get("truststore"):
        bits.append("no truststore given")
    return "; ".join(bits)


def _wrap(label: str, text: str, style: _Style) -> list[str]:
    pad = " " * 6
    lines = textwrap.wrap(printable(text), width=WIDTH - 6 - 10, break_long_words=False,
                          break_on_hyphens=False) or [""]
    head = f"{pad}{style.dim(label.ljust(10))}{lines[0]}"
    return [head] + [f"{pad}{' ' * 10}{ln}" for ln in lines[1:]]


def render(diagnoses: Sequence[Diagnosis] | Grouper, stats: Mapping[str, object] | None = None, *,
           colour: bool = False, notes: Sequence[str] = ()) -> str:
    """The report, from a list of diagnoses or an already fed :class:`Grouper`."""
    grouper = diagnoses if isinstance(diagnoses, Grouper) else None
    if grouper is None:
        grouper = Grouper()
        for d in diagnoses:  # type: ignore[union-attr]
            grouper.add(d)
    st = _Style(colour)
    out: list[str] = []
    if stats:
        nj = stats.get("not_judged") or {}
        nj_text = (", not judged " + ", ".join(f"{k} {v}" for k, v in nj.items())) if isinstance(nj, dict) and nj else ""
        out.append(st.bold(f"tlsdiag: {stats.get('summaries', 0)} connections: {stats.get('established', 0)} "
                           f"established, {stats.get('failed', 0)} failed{nj_text}"))
    for n in notes:
        out.append(st.dim(n))
    if not grouper.failures:
        out.append(st.green("No failed TLS handshakes."))
    groups = grouper.sorted()
    shown = 0
    for sev, title in (("failure", "FAILED HANDSHAKES"), ("warning", "WARNINGS (handshakes that worked)")):
        gs = [g for g in groups if g.severity == sev]
        if not gs:
            continue
        out.append("")
        out.append(st.bold(f"{title}: {grouper.failures if sev == 'failure' else grouper.warnings} connections, "
                           f"{len(gs)} server/cause groups"))
        header: tuple[str, str] | None = None
        for g in gs:
            if shown >= MAX_GROUPS:
                out.append(st.dim(f"... {len(groups) - shown} more groups (use --format jsonl for all)"))
                break
            shown += 1
            if (g.server, g.direction) != header:
                # every group of this server follows (Grouper.sorted): one header above them all, with the names
                # of all of them
                header = (g.server, g.direction)
                names: Counter[str] = Counter()
                for o in gs:
                    if (o.server, o.direction) == header:
                        names.update(o.names)
                out.append("")
                out.append(st.bold(f"== {printable(g.server)}  "
                                   f"[{', '.join(printable(n) for n, _ in names.most_common(3))}]  "
                                   f"{printable(g.direction)}"))
            d0 = g.example or {}
            mark = st.red("FAIL") if sev == "failure" else st.yellow("WARN")
            rej = f"rejected by {g.rejected_by}" if g.rejected_by else "rejected by ?" if sev == "failure" else ""
            conf = "/".join(f"{c}" for c, _ in g.confidence.most_common())
            cause = st.red(printable(g.cause)) if sev == "failure" else st.yellow(printable(g.cause))
            out.append(f"  {mark} {cause}  x{g.count}  {printable(rej)}  confidence {printable(conf)}  "
                       f"rule {printable(d0.get('rule'))}")
            out.append(f"      {st.dim('seen'.ljust(10))}{printable(g.first)} .. {printable(g.last)}; clients "
                       + ", ".join(f"{printable(c)} ({n})" for c, n in g.clients.most_common(MAX_CLIENTS_SHOWN))
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
