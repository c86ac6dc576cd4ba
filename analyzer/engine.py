"""The diagnosis engine: summaries + certificate DERs in, diagnoses out. Pure (no capture, no Kafka).

``Engine.observe`` learns server profiles from successful handshakes; ``Engine.diagnose`` returns the one
failure diagnosis of a failed connection, or the warnings of a successful one, as JSON-ready dicts.
``diagnose_pairs`` is the batch form used for files: learn from every success first, then diagnose.
The Kafka analyzer runs the same ``observe`` + ``diagnose`` per summary.
"""

from __future__ import annotations

import datetime as dt
import gc
import itertools
import logging
from collections import Counter
from dataclasses import dataclass, field, fields
from collections.abc import Iterable, Iterator, Mapping, Sequence

from . import certs
from .causes import (EXPIRED_CERTIFICATE, EXPIRING_CERTIFICATE, INCOMPLETE_CHAIN, NOT_YET_VALID_CERTIFICATE,
                     Cause)
from .certs import CertChecker, ChainReport
from .ctx import CLIENT_HELLO_LETTER, FAILED_OUTCOMES, VERSION_RANK, Ctx, version_rank
from . import records
from .memory import ChainMemory, Recalled
from .hints import endpoint_hints, hint_failed, ignored_verifications, verify_cause, who
from .rules import (HIGH, LOW, Finding, abandoned_with_cert_problem, first_match,
                    tls13_abandoned_with_remembered_problem, tls13_client_never_finished,
                    tls13_server_dropped_certless_client, tls13_server_rejected_flight)
from proto.direction import classify, normalize_hostport
from proto.lru import lru_get, lru_put
from proto.names import is_tls13_name

from .config import ConfigError, DiagnoseConfig
from .profiles import Profile, ProfileStore
from .remediation import remediation

log = logging.getLogger(__name__)

UTC = dt.timezone.utc

Summary = Mapping[str, object]
Diagnosis = dict[str, object]
Certs = Mapping[str, bytes]

#: connections held at once by ``diagnose_windows`` (bounded memory on huge captures)
DEFAULT_WINDOW = 200_000
#: ... and the most bytes of input (a :class:`Meter`'s: JSONL lines) a window holds: lines may be
#: up to 16 MB each (``diagnose``'s MAX_JSONL_LINE), so a count alone bounds nothing.  ~2 KB a line
#: on handshake traffic: 200,000 of them are ~450 MB, under it
DEFAULT_WINDOW_BYTES = 512 << 20


class Meter:
    """The bytes of input read so far (the reader adds each line's); a window ends once it has taken
    ``budget`` bytes since it began (see :func:`take_window`)."""

    __slots__ = ("read", "budget")

    def __init__(self, budget: int = DEFAULT_WINDOW_BYTES) -> None:
        self.read = 0
        self.budget = budget


def take_window(it: Iterator[tuple[Summary, Certs]], window: int, meter: Meter | None = None,
                since: int | None = None) -> list:
    """The next window of ``it``: ``window`` connections (0: all), fewer once ``meter`` says the window
    took its budget of bytes (at least one connection, whatever its size) -- counted from ``since`` (the
    meter's reading before the window's first connection was read), else from now."""
    if meter is None:
        return list(itertools.islice(it, window)) if window > 0 else list(it)
    stop = (meter.read if since is None else since) + meter.budget
    items = []
    for x in it:
        items.append(x)
        if len(items) == window or meter.read >= stop:
            break
    return items


#: (client host, server host, sensor direction) -> direction memo entries (least recently used
#: dropped beyond)
DIRECTION_CACHE_MAX = 65536

#: the certificate problem whose certificate a cause's fix text describes (else the leaf)
_FACT_PROBLEMS: Mapping[Cause, tuple[str, ...]] = {
    EXPIRED_CERTIFICATE: (certs.EXPIRED,), NOT_YET_VALID_CERTIFICATE: (certs.NOT_YET_VALID,),
    EXPIRING_CERTIFICATE: (certs.EXPIRING_SOON,), INCOMPLETE_CHAIN: (certs.MISSING_ISSUER, certs.ISSUER_MISMATCH),
}


def is_success(s: Summary) -> bool:
    return bool(s.get("established"))


def has_client_hello(s: Summary) -> bool:
    return bool(s.get("client_versions")) or CLIENT_HELLO_LETTER in str(s.get("history") or "")


def is_failed(s: Summary) -> bool:
    return (not s.get("established") and str(s.get("outcome") or "") in FAILED_OUTCOMES and has_client_hello(s))


#: isinstance(n, int) without a generator frame (every TLS 1.3 success is checked)
_is_int = int.__instancecheck__


def _maybe_not_success(s: Summary, memory: ChainMemory | None = None) -> bool:
    """Cheap pre-check on the raw summary: could an 'established' connection still be a failure
    (client encrypted alert after the handshake, a TLS 1.3 record pattern of a rejection, or -- with a chain
    remembered for the server -- a TLS 1.3 client that hung up right after the handshake)?"""
    v = s.get("version")
    if is_tls13_name(v):
        ce = s.get("client_encrypted")
        if not isinstance(ce, list) or not ce or not all(map(_is_int, ce)):
            return True
        cipher = s.get("cipher")
        if max(ce) < records.MIN_FINISHED_RECORD or records.client_sent_empty_certificate(ce, cipher):
            return True
        se = s.get("server_encrypted")
        if isinstance(se, list) and 1 < len(se) < records.MAX_RECORDS and all(map(_is_int, se)) \
                and se[-1] < records.MIN_FINISHED_RECORD:
            return True
        return bool(memory and records.client_closed_without_data(ce, cipher)
                    and memory.has(str(s.get("server")), _sni(s)))
    if s.get("encrypted_alerts"):
        return True
    close = s.get("close")
    if isinstance(close, dict):
        for key in ("fin", "rst"):
            seq = close.get(key)
            if isinstance(seq, list) and seq:
                return bool(seq[0] == "client")
    return False


def _sni(s: Summary) -> str | None:
    v = s.get("server_name")
    return v if isinstance(v, str) else None


def _full_tls13(s: Summary) -> bool:
    """A TLS 1.3 handshake with a Certificate from the server (not a PSK resumption)."""
    return is_tls13_name(s.get("version")) and not s.get("resumed")


def _iso(ts: object) -> str | None:
    if not isinstance(ts, (int, float)):
        return None
    try:
        return dt.datetime.fromtimestamp(float(ts), UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return None


def _when(s: Summary) -> dt.datetime:
    for key in ("start", "end"):
        t = s.get(key)
        if isinstance(t, (int, float)):
            try:
                return dt.datetime.fromtimestamp(float(t), UTC)
            except (OverflowError, OSError, ValueError):
                pass
    return dt.datetime.now(UTC)


@dataclass
class Stats:
    summaries: int = 0
    established: int = 0
    failed: int = 0
    not_judged: Counter[str] = field(default_factory=Counter)
    failures_by_cause: Counter[str] = field(default_factory=Counter)
    warnings_by_cause: Counter[str] = field(default_factory=Counter)
    bad_input: int = 0

    def as_dict(self) -> dict[str, object]:
        return {"summaries": self.summaries, "established": self.established, "failed": self.failed,
                "not_judged": dict(self.not_judged), "failures_by_cause": dict(self.failures_by_cause),
                "warnings_by_cause": dict(self.warnings_by_cause), "bad_input": self.bad_input}

    def add(self, other: Stats) -> None:
        """Add ``other``'s counts (a ``--jobs`` worker's) to these, field by field."""
        for f in fields(self):
            mine = getattr(self, f.name)
            if isinstance(mine, Counter):
                mine.update(getattr(other, f.name))
            else:
                setattr(self, f.name, mine + getattr(other, f.name))


class Engine:
    def __init__(self, config: DiagnoseConfig | None = None) -> None:
        self.config = config or DiagnoseConfig()
        self.checker = CertChecker(self.config.truststores, self.config.expiry_warning_days)
        self.profiles = ProfileStore(self.config.profile_max_servers)
        self.memory = ChainMemory(self.config.profile_max_servers)
        self.stats = Stats()
        self._targets = dict(self.config.targets)
        self._direction_cache: dict[tuple[str, str, str | None], tuple[str, str]] = {}
        self._local_cache: dict[str, bool] = {}     # host -> in --local-net (bounded by classify)

    # -- learning ---------------------------------------------------------------------------------------
    def observe(self, summary: Summary, certs: Certs | None = None) -> None:
        """Learn from a successful handshake (failed ones teach nothing about what the server accepts)."""
        if is_success(summary) and "endpoint_hints" in summary and hint_failed(summary):
            return      # established on the wire, but an endpoint's TLS library ended it: no success
        if is_success(summary) and not summary.get("resumed"):
            self.profiles.learn(summary)
        elif is_success(summary):
            # a resumed session still shows the version and suite the server chose
            self.profiles.learn({k: v for k, v in summary.items() if k != "certificates"})

    # -- diagnosis --------------------------------------------------------------------------------------
    def diagnose(self, summary: Summary, certs: Certs | None = None, warnings: bool = True) -> list[Diagnosis]:
        """Failure diagnosis (exactly one) for a failed connection; warnings for a successful one; else [].
        ``warnings=False``: a successful connection's warnings are counted in ``stats`` but not rendered
        (the analyzer's ``--no-warnings``; rendering is most of their cost)."""
        self.stats.summaries += 1
        if not isinstance(summary, Mapping) or not isinstance(summary.get("server"), str) \
                or not isinstance(summary.get("client"), str):
            self.stats.bad_input += 1
            return []
        ders = certs or {}
        success = is_success(summary)
        failed = not success and is_failed(summary)
        if success:
            self.stats.established += 1
        elif not failed:
            outcome = str(summary.get("outcome") or "unknown")
            self.stats.not_judged[outcome if has_client_hello(summary) else "no_client_hello"] += 1
            return []
        else:
            self.stats.failed += 1
        ctx, direction_reason = self._context(summary, ders, failed, remember=True)
        if ctx is None:      # fast path: a clean success
            if success and self.memory and _full_tls13(summary):
                self._tls13_success(summary)
            return []
        hinted = success and "endpoint_hints" in summary and hint_failed(summary)
        wire_failed = success and (abandoned_with_cert_problem(ctx) or tls13_client_never_finished(ctx)
                                   or tls13_server_rejected_flight(ctx) or tls13_server_dropped_certless_client(ctx)
                                   or tls13_abandoned_with_remembered_problem(ctx))
        if wire_failed or hinted:
            # "established" on the wire, but the client closed without data over a certificate problem, or
            # (TLS 1.3) it answered the server's flight with an encrypted alert instead of its Finished, or the
            # server answered the client's flight with an alert -- or an endpoint's own TLS library says it
            # ended the handshake (endpoint hints)
            self.stats.established -= 1
            self.stats.failed += 1
            failed = True
            ctx, direction_reason = self._context(summary, ders, True)
            assert ctx is not None
            if not wire_failed:
                ctx._cache["wire_success"] = True      # a failure by the hints alone: the wire saw a success
        elif success and self.memory and _full_tls13(summary) and not records.client_closed_without_data(
                ctx.client_records, ctx.s.get("cipher")):
            self._tls13_success(summary)
        if failed:
            rule, finding = first_match(ctx)
            d = self._render(ctx, rule.id, rule.cause, "failure", finding, direction_reason)
            self.stats.failures_by_cause[rule.cause.id] += 1
            return [d]
        out = []
        if not warnings:        # counted only: the causes, without building the findings' texts
            for cause in self._warning_causes(ctx):
                self.stats.warnings_by_cause[cause.id] += 1
            return out
        for rule_id, cause, finding in self._warnings(ctx):
            out.append(self._render(ctx, rule_id, cause, "warning", finding, direction_reason))
            self.stats.warnings_by_cause[cause.id] += 1
        return out

    def diagnose_pairs(self, pairs: Iterable[tuple[Summary, Certs]]) -> list[Diagnosis]:
        """Batch: learn from every success first, then diagnose every connection, in input order."""
        out: list[Diagnosis] = []
        for chunk in self.diagnose_windows(pairs, window=0):
            out.extend(chunk)
        return out

    def diagnose_windows(self, pairs: Iterable[tuple[Summary, Certs]], window: int = DEFAULT_WINDOW,
                         meter: Meter | None = None) -> Iterator[list[Diagnosis]]:
        """Streaming batch with bounded memory: per window of ``window`` connections (0 = all at once; fewer
        once a window took ``meter``'s budget of input bytes), learn from the window's successes, then
        diagnose it. Profiles carry over, so later windows also use what earlier ones learned."""
        it = iter(pairs)
        while True:
            items = take_window(it, window, meter)
            if not items:
                return
            # a window's summaries are long-lived: keep the cyclic GC from re-scanning them on every
            # collection (measured: up to half the diagnosis time on 100k summaries)
            gc.freeze()
            try:
                for s, c in items:
                    self.observe(s, c)
                out: list[Diagnosis] = []
                for s, c in items:
                    out.extend(self.diagnose(s, c))
            finally:
                gc.unfreeze()
            yield out
            if window <= 0 and meter is None:
                return

    # -- internals --------------------------------------------------------------------------------------
    def _hostname(self, s: Summary) -> tuple[str | None, str | None]:
        sni = s.get("server_name")
        if isinstance(sni, str) and sni:
            return sni, "sni"
        if self._targets:
            try:
                key = normalize_hostport(str(s.get("server")))
            except ConfigError:
                return None, None
            name = self._targets.get(key)
            if name:
                return name, "target"
        return None, None

    def _tls13_success(self, s: Summary) -> None:
        t = s.get("start")
        if isinstance(t, (int, float)):
            self.memory.succeeded(str(s.get("server")), _sni(s), float(t))

    def _remember(self, s: Summary, chain: ChainReport, ders: Certs) -> None:
        """Keep the server chain this connection showed in clear (any outcome) for later encrypted failures."""
        t = s.get("start")
        if not isinstance(t, (int, float)):
            return
        sizes = [len(ders[c.sha256]) for c in chain.chain if c.sha256 in ders]
        v = s.get("version")
        self.memory.remember(str(s.get("server")), _sni(s), chain.chain,
                             sizes if len(sizes) == len(chain.chain) else None, float(t),
                             version=v if isinstance(v, str) else None,
                             outcome=str(s.get("outcome") or "") or None,
                             connection=str(s.get("id")) if s.get("id") is not None else None,
                             client=str(s.get("client")))

    def _recall(self, s: Summary, direction: str, when: dt.datetime) -> Recalled | None:
        """The chain remembered for this TLS 1.3 connection's server, checked at its time and name."""
        t = s.get("start")
        if not self.memory or not isinstance(t, (int, float)) or not _full_tls13(s):
            return None
        hit = self.memory.recall(str(s.get("server")), _sni(s), float(t))
        if hit is None:
            return None
        seen, contradicted = hit
        host, src = self._hostname(s)
        report = self.checker.check_chain(seen.chain, side="server", when=when, hostname=host, hostname_source=src,
                                          direction=direction)
        se = s.get("server_encrypted")
        cipher = s.get("cipher")
        sizes = [int(x) for x in se if isinstance(x, int)] if isinstance(se, list) else []
        rec = records.server_certificate_record(sizes, cipher)
        record, expected = None, None
        if rec is not None:
            record = rec[0]
            expected = seen.tls13_record_len(records.tag_len(cipher), rec[1])
        return Recalled(seen, report, max(0.0, float(t) - seen.last_seen), record, expected, contradicted)

    def _context(self, s: Summary, ders: Certs, failed: bool, remember: bool = False) -> tuple[Ctx | None, str]:
        """The rules' view of one connection; None for a success with nothing to say (no certificate
        problem, and nothing on the wire that could make it a failure after all).  ``remember``: keep the
        server chain it shows in the chain memory (once per connection)."""
        facts = s.get("certificates")
        cfacts = s.get("client_certificates")
        hinted = "endpoint_hints" in s
        if not failed and not facts and not cfacts and not hinted and not _maybe_not_success(s, self.memory):
            # fast path (most messages: a clean success without visible certificates, e.g. TLS 1.3):
            # nothing below could find a problem, so no direction, no clock, no chain check
            return None, ""
        client, server = str(s["client"]), str(s["server"])
        sd = s.get("direction")
        dkey = (client.rpartition(":")[0], server.rpartition(":")[0], sd if isinstance(sd, str) else None)
        hit = lru_get(self._direction_cache, dkey)
        if hit is None:
            hit = lru_put(self._direction_cache, dkey,
                          classify(client, server, self.config.role, self.config.local_nets, dkey[2],
                                   self._local_cache), DIRECTION_CACHE_MAX)
        direction, reason = hit
        server_chain = client_chain = None
        when = _when(s) if facts or cfacts else dt.datetime.now(UTC)
        if isinstance(facts, list) and facts:
            host, src = self._hostname(s)
            server_chain = self.checker.check([f for f in facts if isinstance(f, dict)], ders, side="server",
                                              when=when, hostname=host, hostname_source=src, direction=direction)
            if remember and server_chain is not None:
                self._remember(s, server_chain, ders)
        if isinstance(cfacts, list) and cfacts:
            client_chain = self.checker.check([f for f in cfacts if isinstance(f, dict)], ders, side="client",
                                              when=when, hostname=None, hostname_source=None, direction=direction)
        if not failed and not hinted and not _maybe_not_success(s, self.memory) \
                and not (server_chain and server_chain.problems) and not (client_chain and client_chain.problems):
            return None, reason
        sni = s.get("server_name")
        prof: Profile | None = None
        sprof: Profile | None = None
        if failed:
            min_n = self.config.profile_min_successes
            prof = self.profiles.get(server, sni if isinstance(sni, str) else None)
            sprof = self.profiles.for_server(server)
            prof = prof if prof is not None and prof.count >= min_n else None
            sprof = sprof if sprof is not None and sprof.count >= min_n else None
        recalled = self._recall(s, direction, when if facts or cfacts else _when(s)) if server_chain is None else None
        ctx = Ctx(s=s, direction=direction, failed=failed, server_chain=server_chain, client_chain=client_chain,
                  profile=prof, server_profile=sprof, memory=recalled)
        return ctx, reason

    @staticmethod
    def _chain_problems(ctx: Ctx) -> Iterator[tuple[ChainReport, certs.Problem, Cause]]:
        """``(chain, problem, cause)`` for the first problem of each cause of each chain."""
        for chain in (ctx.server_chain, ctx.client_chain):
            if chain is None:
                continue
            seen: set[Cause] = set()
            for p in chain.problems:
                cause = certs.PROBLEM_CAUSE[p.code]
                if cause not in seen:
                    seen.add(cause)
                    yield chain, p, cause

    def _warning_causes(self, ctx: Ctx) -> list[Cause]:
        """The causes of ``_warnings(ctx)``, in order, without rendering them."""
        if "endpoint_hints" in ctx.s:
            return [c for _r, c, _f in self._warnings(ctx)]
        return [cause for _chain, _p, cause in self._chain_problems(ctx)]

    @staticmethod
    def _hint_warnings(ctx: Ctx) -> list[tuple[str, Cause, Finding]]:
        """An endpoint's OpenSSL found the peer's certificate bad and the handshake went on anyway (the application
        did not enforce it, or decides after the handshake, as nginx's ssl_verify_client does: HTTP 400)."""
        out = []
        for h in ignored_verifications(ctx):
            assert h.verify_code is not None
            peer = "client" if h.side == "server" else "server"
            chain = ctx.client_chain if peer == "client" else ctx.server_chain
            cause, _exact = verify_cause(h.verify_code, h.depth, chain)
            depth = f" at depth {h.depth}" if h.depth is not None else ""
            why = (f"handshake completed, but {who(ctx, h.side)}'s OpenSSL ({h.process()}) reported "
                   f"{h.verify_error} ({h.verify_text}){depth} verifying the {peer}'s certificate and the handshake "
                   f"went on: the application did not enforce the verification (or decides after the handshake, "
                   f"as nginx's ssl_verify_client does). This rests on an endpoint hint, not on the wire")
            out.append((cause.warning_rule or "TLS-WARN-CERT", cause,
                        Finding(None, HIGH, why, None, {"certificate_side": peer, "cause_from": "endpoint_hint",
                                                        "endpoint_hints": [e.as_evidence()
                                                                           for e in endpoint_hints(ctx)]})))
        return out

    def _warnings(self, ctx: Ctx) -> list[tuple[str, Cause, Finding]]:
        out: list[tuple[str, Cause, Finding]] = []
        for chain, p, cause in self._chain_problems(ctx):
            whose = "server" if chain.side == "server" else "client"
            conf = LOW if p.code == certs.MISSING_ISSUER and chain.truststore is None else HIGH
            raise_ = ("a truststore (--truststore) to tell a missing intermediate from a root that issued the "
                      "leaf directly" if conf == LOW else None)
            why = (f"handshake succeeded, but the {whose} certificate has a problem"
                   f"{' the client accepted' if whose == 'server' else ' the server accepted'}: {p.detail}")
            out.append((cause.warning_rule or "TLS-WARN-CERT", cause,
                        Finding(None, conf, why, raise_, {"certificate_side": whose},
                                fix="unparseable" if p.code == certs.UNPARSEABLE else None)))
        if "endpoint_hints" in ctx.s:       # what an endpoint found and let pass, unless the chain says it already
            seen = {(f.evidence.get("certificate_side"), c) for _r, c, f in out}
            out += [w for w in self._hint_warnings(ctx) if (w[2].evidence.get("certificate_side"), w[1]) not in seen]
        return out

    def _render(self, ctx: Ctx, rule_id: str, cause: Cause, severity: str, f: Finding,
                direction_reason: str) -> Diagnosis:
        s = ctx.s
        evidence = self._evidence(ctx, cause, f) if severity == "failure" else self._warning_evidence(ctx, f)
        evidence["direction_from"] = direction_reason
        facts = self._remediation_facts(ctx, cause, f)
        return {
            "id": s.get("id"),
            "cause": cause.id,
            "severity": severity,
            "direction": ctx.direction,
            "rejected_by": f.rejected_by,
            "confidence": f.confidence,
            "raise_confidence": f.raise_confidence,
            "time": _iso(s.get("start")),
            "connection": {"client": s.get("client"), "server": s.get("server"), "server_name": s.get("server_name")},
            "rule": rule_id,
            "explanation": f.why,
            "evidence": evidence,
            "remediation": remediation(cause, ctx.direction, self._fix_side(severity, f), facts, f.fix),
        }

    @staticmethod
    def _evidence(ctx: Ctx, cause: Cause, f: Finding) -> dict[str, object]:
        s = ctx.s
        ev: dict[str, object] = {
            "outcome": s.get("outcome"),
            "history": s.get("history"),
            "alerts": s.get("alerts") or [],
            "client_versions": s.get("client_versions") or [],
            "version": s.get("version"),
            "cipher": s.get("cipher"),
            "client_ciphers": s.get("client_ciphers") or [],
            "server_name": s.get("server_name"),
        }
        for key in ("hrr", "certificate_request", "client_certificate_empty", "resumed"):
            if s.get(key):
                ev[key] = True
        for key in ("close", "encrypted_alerts", "weirds", "gaps"):
            v = s.get(key)
            if v:
                ev[key] = v
        if s.get("truncated"):
            ev["truncated"] = True
        prof = ctx.refusal_profile()
        if prof is not None:
            ev["server_profile"] = {"summary": prof.describe(), "versions": dict(prof.versions),
                                    "ciphers": dict(prof.ciphers.most_common(8)), "with_sni": prof.with_sni,
                                    "without_sni": prof.without_sni, "successes": prof.count}
        if ctx.server_chain is not None:
            ev["server_certificates"] = ctx.server_chain.evidence()
        if ctx.client_chain is not None:
            ev["client_certificates"] = ctx.client_chain.evidence()
        ev.update(f.evidence)
        return ev

    @staticmethod
    def _fix_side(severity: str, f: Finding) -> str | None:
        """Which fix text: for a warning, the one for the side that would reject that certificate."""
        if severity == "failure":
            return f.rejected_by
        return "server" if f.evidence.get("certificate_side") == "client" else "client"

    @staticmethod
    def _warning_evidence(ctx: Ctx, f: Finding) -> dict[str, object]:
        """Warnings come once per connection: the handshake facts and the certificate, not the whole offer."""
        s = ctx.s
        ev: dict[str, object] = {"outcome": s.get("outcome"), "version": s.get("version"), "cipher": s.get("cipher"),
                                 "server_name": s.get("server_name")}
        chain = ctx.client_chain if f.evidence.get("certificate_side") == "client" else ctx.server_chain
        if chain is not None:
            ev["client_certificates" if chain is ctx.client_chain else "server_certificates"] = chain.evidence()
        ev.update(f.evidence)
        return ev

    def _remediation_facts(self, ctx: Ctx, cause: Cause, f: Finding) -> dict[str, object]:
        s = ctx.s
        sni = s.get("server_name")
        host, _ = self._hostname(s)
        facts: dict[str, object] = {
            "server": s.get("server"), "client": s.get("client"), "sni": sni, "version": s.get("version"),
            "target": host or "the backend's host name", "hostname": host, "rejected_by": f.rejected_by or "peer",
        }
        if ctx.failed:      # the offer and the profile only matter to failure fixes
            prof = ctx.refusal_profile()
            suggest = None
            if prof and prof.versions:
                suggest = max(prof.versions, key=lambda v: version_rank(v) or -1)
            offered = sorted(ctx.offered_versions(), key=lambda v: VERSION_RANK.get(v, 99))
            facts.update({
                "offered": "/".join(offered) if offered else None,
                "server_versions": "/".join(sorted(prof.versions)) if prof and prof.versions else None,
                "suggest_version": suggest or "TLSv1.0", "n_offered": len(ctx.client_ciphers),
                "server_suites": (", ".join(k for k, _ in prof.ciphers.most_common(3))
                                  if prof and prof.ciphers else None),
                "client_groups": ", ".join(map(str, ctx.list_field("client_groups")[:6])) or None,
                "server_groups": (", ".join(k for k, _ in prof.groups.most_common(3))
                                  if prof and prof.groups else None),
            })
        chain: ChainReport | None = None
        if f.rejected_by == "server" and ctx.client_chain is not None:
            chain = ctx.client_chain
        elif ctx.server_chain is not None:
            chain = ctx.server_chain
        elif f.rejected_by != "server" and ctx.memory is not None and ctx.memory.usable:
            chain = ctx.memory.report       # TLS 1.3: the server chain seen in clear earlier
        if f.evidence.get("certificate_side") == "client":
            chain = ctx.client_chain
        for h in endpoint_hints(ctx) if "endpoint_hints" in s else ():
            if h.side == f.rejected_by and h.verify_error:
                facts.update({"verify_error": h.verify_error, "verify_text": h.verify_text,
                              "verify_depth": h.depth})
        if chain is not None and chain.chain:
            wanted = _FACT_PROBLEMS.get(cause, ())
            p = chain.first(wanted)
            cert = chain.chain[p.index] if p is not None and 0 <= p.index < len(chain.chain) else chain.chain[0]
            names = list(cert.san_dns) + list(cert.san_ip) or [f"CN={cn}" for cn in cert.common_names]
            facts.update({
                "subject": cert.subject or None, "issuer": cert.issuer or None,
                "missing_issuer": cert.issuer or None,
                "not_after": certs.iso(cert.not_after) if cert.not_after else None,
                "not_before": certs.iso(cert.not_before) if cert.not_before else None,
                "cert_names": ", ".join(names[:6]) or None,
            })
        return facts


def failures(diagnoses: Sequence[Diagnosis]) -> list[Diagnosis]:
    return [d for d in diagnoses if d.get("severity") == "failure"]
