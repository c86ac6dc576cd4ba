"""Incidents as Prometheus Alertmanager alerts (API v2, ``POST /api/v2/alerts``), from a thread.

Alertmanager is where on-call routing, grouping, silences and receivers (PagerDuty, Opsgenie,
Slack, email) already live: every incident is one alert there, labelled ``alertname``,
``direction``, ``server``, ``cause`` and ``severity`` (the incident's key, so one incident is one
alert and Alertmanager can group by any of them), annotated with the summary, evidence, fix and
the rest (:func:`alert_of`).

Alertmanager expects its clients to keep re-sending what still fires (as Prometheus does):

* an open incident is posted with ``startsAt`` = its first failure and ``endsAt`` = now + 4 x
  ``resend_s``, and re-posted every ``resend_s``: if the analyzer dies, its alerts expire on
  their own four intervals later instead of firing forever;
* a resolved incident is posted with ``endsAt`` = the time it resolved, and re-posted with every
  re-send for 15 minutes (Prometheus' resolved-alert retention), so an Alertmanager that missed
  the first post -- down, restarting, or a peer of an HA cluster -- still learns of it;
* every URL (each member of an HA cluster, as Alertmanager's docs ask) gets every alert; each
  has its own pending set and exponential backoff (0.5 s .. 30 s), so a dead one delays nobody.

The analyzer's loop only calls :meth:`put` (a bounded queue, never blocking: a full queue drops
the event, counted) and, every ``resend_s``, :meth:`resync` with its open incidents -- the
incidents this instance owns now (a rebalance moves partitions, and their incidents, between
instances; a restart restores them), so alerts it no longer owns stop being re-sent here.
"""
from __future__ import annotations

import base64
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from urllib.parse import urlsplit, urlunsplit

from proto.text import one_line

from ..report import cert_line, evidence_line

__all__ = ["Alertmanager", "alert_of", "severity_of", "api_url", "ALERTNAME"]

log = logging.getLogger(__name__)

ALERTNAME = "TLSHandshakeFailure"
API_PATH = "/api/v2/alerts"
#: a resolved alert is re-sent this long (Prometheus' resolvedRetention)
RESOLVED_RETENTION_S = 900.0
#: alerts kept (open + recently resolved); the incident tracker keeps at most 10,000 open
MAX_ALERTS = 20_000
#: alerts per POST
BATCH = 500
#: characters per annotation (the evidence line of a long alert history is the longest)
ANNOTATION_MAX = 4096
BACKOFF_MIN, BACKOFF_MAX = 0.5, 30.0

#: ``post(url, body, headers, timeout)`` -> None; raises on failure (an ``urllib.error.HTTPError``
#: with a 4xx code other than 429 is permanent: those alerts are dropped, not retried)
Post = Callable[[str, bytes, Mapping[str, str], float], None]


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _parse_iso(v: object) -> float | None:
    if not isinstance(v, str) or not v:
        return None
    try:
        return datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def severity_of(ev: Mapping[str, object]) -> str:
    """``critical`` when clients of the gateway see the failure -- a northbound incident, or a
    southbound one whose correlated impact says client-facing requests fail (HTTP 503) --
    else ``warning``."""
    impact = ev.get("impact")
    if ev.get("direction") == "northbound" or (isinstance(impact, dict)
                                                and impact.get("client_facing")):
        return "critical"
    return "warning"


def _text(v: object) -> str | None:
    if v is None or v == "" or v == []:
        return None
    if isinstance(v, (list, tuple)):
        v = ", ".join(map(str, v))
    t = str(v)
    return t if len(t) <= ANNOTATION_MAX else t[:ANNOTATION_MAX - 3] + "..."


def alert_of(ev: Mapping[str, object]) -> dict[str, object]:
    """The Alertmanager alert of an incident event (``analyzer.incidents.Incident.to_event``),
    without ``endsAt`` (the sender sets it) and with ``startsAt`` = the first failure."""
    direction, server, cause = (str(ev.get(k) or "unknown") for k in ("direction", "server",
                                                                        "cause"))
    count = ev.get("count")
    clients = ev.get("affected_clients")
    names = ev.get("server_names") or []
    summary = "TLS handshakes %s to %s%s fail: %s (%s failure%s from %s client%s)" % (
        direction, server, " (%s)" % ", ".join(map(str, names[:3])) if isinstance(names, list)
        and names else "", cause, count, "" if count == 1 else "s", clients,
        "" if clients == 1 else "s")
    evidence = evidence_line(ev)   # reads evidence/cause/rejected_by, as of a diagnosis
    certs = cert_line(ev)
    impact = ev.get("impact")
    annotations = {
        "summary": summary,
        "description": ev.get("explanation"),
        "evidence": evidence + ("; " + certs if certs else ""),
        "fix": ev.get("remediation"),
        "impact": impact.get("text") if isinstance(impact, dict) else None,
        "incident": ev.get("incident"),
        "count": count,
        "affected_clients": clients,
        "clients": ev.get("clients"),
        "server_names": names,
        "sensors": ev.get("sensors"),
        "first_seen": ev.get("first_seen"),
        "last_seen": ev.get("last_seen"),
        "rule": ev.get("rule"),
        "rejected_by": ev.get("rejected_by"),
        "sample_connection": ev.get("sample_connection"),
        "resolution": ev.get("resolution"),
    }
    alert: dict[str, object] = {
        "labels": {"alertname": ALERTNAME, "direction": direction, "server": server,
                   "cause": cause, "severity": severity_of(ev)},
        "annotations": {k: t for k, v in annotations.items() if (t := _text(v)) is not None},
    }
    starts = _parse_iso(ev.get("first_seen"))
    if starts is not None:
        alert["_starts"] = starts
    return alert


def api_url(url: str) -> tuple[str, dict[str, str]]:
    """``(URL of the v2 alerts endpoint, headers)`` for an Alertmanager base URL (or the
    endpoint itself); credentials in the URL become a Basic Authorization header."""
    u = urlsplit(url.strip())
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ValueError("not an http(s) URL: %r" % url)
    headers = {"Content-Type": "application/json", "User-Agent": "tlsdiag-analyzer"}
    if u.username is not None:
        cred = "%s:%s" % (u.username, u.password or "")
        headers["Authorization"] = "Basic " + base64.b64encode(cred.encode()).decode()
    host = u.hostname if ":" not in u.hostname else "[%s]" % u.hostname
    netloc = host + (":%d" % u.port if u.port else "")
    path = u.path.rstrip("/")
    if not path.endswith(API_PATH):
        path += API_PATH
    return urlunsplit((u.scheme, netloc, path, u.query, "")), headers


def masked(url: str) -> str:
    """The URL for logs: no credentials, no query."""
    u = urlsplit(url)
    netloc = (u.hostname or "") + (":%d" % u.port if u.port else "")
    return urlunsplit((u.scheme, netloc, u.path, "***" if u.query else "", ""))


def _urllib_post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> None:
    req = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        resp.read()


class _Target:
    """One Alertmanager: its endpoint, the alert keys it has yet to get, its backoff."""

    def __init__(self, url: str) -> None:
        self.url, self.headers = api_url(url)
        self.name = masked(self.url)
        self.pending: set[str] = set()
        self.retry_at = 0.0
        self.backoff = 0.0
        self.ok = True          # the last POST succeeded


class Alertmanager:
    """Incident events -> Alertmanager alerts, from a daemon thread (module docstring)."""

    def __init__(self, urls: Sequence[str], resend_s: float = 60.0, timeout_s: float = 5.0,
                 queue_max: int = 10_000, max_alerts: int = MAX_ALERTS,
                 clock: Callable[[], float] = time.time, post: Post | None = None,
                 start: bool = True) -> None:
        if not urls:
            raise ValueError("no Alertmanager URL")
        self.targets = [_Target(u) for u in urls]
        self.resend_s = float(resend_s)
        self.timeout_s = float(timeout_s)
        self.max_alerts = max_alerts
        self.clock = clock
        self._post = post or _urllib_post
        self.q: queue.Queue[tuple[str, float, object]] = queue.Queue(maxsize=queue_max)
        #: key -> alert (labels, annotations, "_starts"); insertion order = least recently
        #: changed first (the bound evicts from there)
        self.alerts: OrderedDict[str, dict[str, object]] = OrderedDict()
        #: key -> when it resolved (only resolved alerts are here)
        self.resolved_at: dict[str, float] = {}
        self.sent = self.failed = self.dropped = 0
        self.next_sync = clock() + self.resend_s
        self._next_resend = clock() + self.resend_s
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, name="alertmanager", daemon=True)
        if start:
            self._t.start()

    # -- the analyzer loop's side (never blocks) ------------------------------------------------
    def put(self, event: Mapping[str, object]) -> None:
        """An incident event (opened / updated / resolved)."""
        try:
            self.q.put_nowait(("event", self.clock(), dict(event)))
        except queue.Full:
            self.dropped += 1

    def resync_due(self) -> bool:
        return self.clock() >= self.next_sync

    def resync(self, open_events: Iterable[Mapping[str, object]]) -> None:
        """The incidents this instance has open now (``Incident.to_event``): alerts it does not
        own any more (not open, not resolved here) stop being sent."""
        try:
            self.q.put_nowait(("sync", self.clock(), [dict(e) for e in open_events]))
            self.next_sync = self.clock() + self.resend_s
        except queue.Full:
            self.dropped += 1

    def close(self, timeout: float = 2.0) -> None:
        """Deliver what is pending (one last attempt, bounded by ``timeout``: a stopping
        service must not wait on an Alertmanager), then stop the thread."""
        self._stop.set()
        if self._t.is_alive():
            self._t.join(timeout)

    def metrics(self) -> list[tuple[str, str, str, object]]:
        return [
            ("tlsdiag_analyzer_alertmanager_alerts_total", "counter",
             "alerts posted to Alertmanager (re-sends included) or given up, by result",
             {(("result", "sent"),): self.sent, (("result", "failed"),): self.failed,
              (("result", "dropped"),): self.dropped}),
            ("tlsdiag_analyzer_alertmanager_pending", "gauge",
             "alerts waiting to be posted (the most of any Alertmanager)",
             max(len(t.pending) for t in self.targets)),
            ("tlsdiag_analyzer_alertmanager_up", "gauge",
             "1 when the last POST to every Alertmanager succeeded",
             int(all(t.ok for t in self.targets))),
        ]

    # -- the thread -----------------------------------------------------------------------------
    def apply(self, kind: str, at: float, payload: object) -> None:
        """Update the alert table from one queued item (the thread's; tests call it)."""
        if kind == "event":
            assert isinstance(payload, dict)
            self._set(payload, at)
        elif kind == "sync":
            assert isinstance(payload, list)
            keys = {str(e.get("key")) for e in payload}
            for key in [k for k in self.alerts if k not in keys and k not in self.resolved_at]:
                del self.alerts[key]
                for t in self.targets:
                    t.pending.discard(key)
            for ev in payload:
                self._set(ev, at)
            self._next_resend = at + self.resend_s      # that was the re-send

    def _set(self, ev: Mapping[str, object], at: float) -> None:
        key = str(ev.get("key") or "|".join(str(ev.get(k)) for k in ("direction", "server",
                                                                     "cause")))
        alert = alert_of(ev)
        resolved = ev.get("event") == "resolved"
        old = self.alerts.get(key)
        if old is not None and key not in self.resolved_at and old["labels"] != alert["labels"]:
            # the severity changed (a southbound incident gained or lost its client-facing
            # impact): for Alertmanager another label set is another alert
            if resolved:
                alert["labels"] = old["labels"]          # resolve the one that fired
            else:                                        # resolve the old one, fire the new
                retired = "%s|%s" % (key, old["labels"]["severity"])
                old = dict(old, annotations=dict(old["annotations"], resolution=(
                    "continues with severity %s" % alert["labels"]["severity"])))
                self._store(retired, old, at)
        if not resolved:
            # a label set firing again: its retired twin must not be re-sent as resolved
            twin = "%s|%s" % (key, alert["labels"]["severity"])
            if twin in self.alerts:
                del self.alerts[twin]
                self.resolved_at.pop(twin, None)
                for t in self.targets:
                    t.pending.discard(twin)
        self._store(key, alert, at if resolved else None)

    def _store(self, key: str, alert: dict[str, object], resolved_at: float | None) -> None:
        if resolved_at is None:
            self.resolved_at.pop(key, None)
        else:
            self.resolved_at[key] = resolved_at
        self.alerts.pop(key, None)
        self.alerts[key] = alert
        for t in self.targets:
            t.pending.add(key)
        while len(self.alerts) > self.max_alerts:
            old, _ = self.alerts.popitem(last=False)
            self.resolved_at.pop(old, None)
            for t in self.targets:
                t.pending.discard(old)
            self.dropped += 1

    def payload(self, keys: Iterable[str], now: float) -> list[dict[str, object]]:
        """The alerts of ``keys`` as posted at ``now``: open ones end 4 re-sends from now,
        resolved ones when they resolved; ``startsAt`` is never after ``endsAt``."""
        out = []
        for key in keys:
            a = self.alerts.get(key)
            if a is None:
                continue
            ends = self.resolved_at.get(key, now + 4 * self.resend_s)
            starts = min(float(a.get("_starts", ends)), ends)    # type: ignore[arg-type]
            out.append({"labels": a["labels"], "annotations": a["annotations"],
                        "startsAt": _rfc3339(starts), "endsAt": _rfc3339(ends)})
        return out

    def tick(self, now: float) -> None:
        """Re-send everything that is due, drop resolved alerts past their retention, and post
        what each Alertmanager has pending (unless it is backing off)."""
        if now >= self._next_resend:
            self._next_resend = now + self.resend_s
            for key in [k for k, t in self.resolved_at.items()
                        if now - t > RESOLVED_RETENTION_S]:
                del self.resolved_at[key]
                self.alerts.pop(key, None)
                for t in self.targets:
                    t.pending.discard(key)
            for t in self.targets:
                t.pending.update(self.alerts)
        for t in self.targets:
            if t.pending and now >= t.retry_at:
                self._deliver(t, now)

    def _deliver(self, t: _Target, now: float) -> None:
        keys = [k for k in self.alerts if k in t.pending]
        t.pending.intersection_update(self.alerts)
        for i in range(0, len(keys), BATCH):
            chunk = keys[i:i + BATCH]
            body = json.dumps(self.payload(chunk, now), separators=(",", ":")).encode()
            try:
                self._post(t.url, body, t.headers, self.timeout_s)
            except Exception as exc:     # urllib raises many kinds
                permanent = isinstance(exc, urllib.error.HTTPError) and \
                    400 <= exc.code < 500 and exc.code != 429
                if permanent:
                    # Alertmanager refused these alerts: re-sending the same would not help
                    self.failed += len(chunk)
                    t.pending.difference_update(chunk)
                    log.warning("alertmanager %s refused %d alerts: %s", t.name, len(chunk),
                                _reason(exc))
                    continue
                t.backoff = min(max(t.backoff * 2, BACKOFF_MIN), BACKOFF_MAX)
                t.retry_at = now + t.backoff
                if t.ok:
                    log.warning("alertmanager %s: cannot post alerts (%s); retrying with "
                                "backoff", t.name, _reason(exc))
                else:
                    log.debug("alertmanager %s: still failing: %s", t.name, _reason(exc))
                self.failed += len(chunk)
                t.ok = False
                return
            self.sent += len(chunk)
            if log.isEnabledFor(logging.DEBUG):
                log.debug("alertmanager %s: posted %s", t.name, ", ".join(
                    "%s %s" % (k, "resolved" if k in self.resolved_at else "open")
                    for k in chunk))
            t.pending.difference_update(chunk)
            if not t.ok:
                log.warning("alertmanager %s accepts alerts again", t.name)
            t.ok = True
            t.backoff = 0.0

    def _run(self) -> None:
        while True:
            stopping = self._stop.is_set()
            try:
                item = self.q.get(timeout=0 if stopping else 0.2)
                self.apply(*item)
                for _ in range(1000):           # the rest of a burst, then post once
                    self.apply(*self.q.get_nowait())
            except queue.Empty:
                pass
            if stopping and self.q.empty():
                for t in self.targets:      # one last attempt each, backing off or not
                    t.retry_at = 0.0
                self.tick(self.clock())
                return
            self.tick(self.clock())


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        try:
            detail = exc.read(300).decode("utf-8", "replace").strip()
        except Exception:
            detail = ""
        return "HTTP %d %s" % (exc.code, detail or exc.reason)
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return one_line(exc)
