"""Incidents in Prometheus Alertmanager (analyzer/service/alertmanager.py).

Without anything running: the alert of an incident event (labels, annotations, startsAt /
endsAt), re-sends, resolved-alert retention, ownership after a resync, the bounds, a dead
Alertmanager next to a live one, refused alerts, a blocking POST that never blocks ``put``.

For real (``test_real_alertmanager_gets_opened_and_resolved_incidents``): Debian's
``prometheus-alertmanager`` on loopback with its own configuration, a real Kafka broker and the
real ``tlsdiag analyzer`` command; summaries go through the sensor's publisher; the alerts are
read back with ``amtool`` and Alertmanager's own API, and the resolved ones arrive as
``resolved`` notifications at a webhook receiver Alertmanager calls.
"""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from analyzer.config import build_config
from analyzer.engine import Engine, is_success
from analyzer.service.alertmanager import (ALERTNAME, RESOLVED_RETENTION_S, Alertmanager,
                                           alert_of, api_url, severity_of)
from tests.support.ports import free_port
from tests.support.stream import diagnose_stream

try:
    from tests.kafka_broker import kcat, module_broker
    from tests.test_analyzer_service import TRUST, analyzer_cmd, publish, stamped
except ImportError:
    from kafka_broker import kcat, module_broker
    from test_analyzer_service import TRUST, analyzer_cmd, publish, stamped

REPO = Path(__file__).resolve().parents[1]


def event(kind="opened", direction="northbound", server="10.1.0.1:443", cause="expired_certificate",
          count=3, first="2026-12-01T10:00:00Z", impact=None, **extra):
    ev = {"event": kind, "incident": "abcd0123abcd0123", "key": "%s|%s|%s" % (direction, server,
                                                                           cause),
          "state": "resolved" if kind == "resolved" else "open", "direction": direction,
          "server": server, "server_names": ["api.example.test"], "cause": cause,
          "count": count, "first_seen": first, "last_seen": "2026-12-01T10:05:00Z",
          "affected_clients": 2, "clients": ["10.2.0.1", "10.2.0.2"], "sensors": ["router-1"],
          "rule": "TLS-CERT-EXPIRED", "rejected_by": "client",
          "explanation": "the server's certificate expired on 2026-11-30",
          "evidence": {"client_versions": ["TLSv1.3"], "version": "TLSv1.3",
                       "cipher": "TLS_AES_128_GCM_SHA256", "server_name": "api.example.test",
                       "alerts": [{"from": "client", "level": "fatal",
                                   "description": "certificate_expired"}]},
          "remediation": "renew the certificate of the virtual host",
          "sample_connection": "c0ffee", "impact": impact}
    ev.update(extra)
    return ev


def ts(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


class Clock:
    def __init__(self, t=1_800_000_000.0):
        self.t = t

    def __call__(self):
        return self.t


class Posts:
    """A fake transport: records every POST; ``fail[url]`` = an exception to raise there."""

    def __init__(self):
        self.calls = []
        self.fail = {}

    def __call__(self, url, body, headers, timeout):
        if url in self.fail:
            raise self.fail[url]
        self.calls.append((url, json.loads(body), dict(headers)))

    def alerts(self, url=None):
        return [a for u, body, _ in self.calls if url in (None, u) for a in body]


def manager(urls=("http://am1:9093",), **kw):
    clock, posts = Clock(), Posts()
    am = Alertmanager(list(urls), resend_s=60, clock=clock, post=posts, start=False, **kw)
    return am, clock, posts


def drain(am):
    while not am.q.empty():
        am.apply(*am.q.get_nowait())


# -- the alert ---------------------------------------------------------------------------------

def test_alert_labels_and_annotations():
    a = alert_of(event())
    assert a["labels"] == {"alertname": ALERTNAME, "direction": "northbound",
                           "server": "10.1.0.1:443", "cause": "expired_certificate",
                           "severity": "critical"}
    an = a["annotations"]
    assert an["summary"] == ("TLS handshakes northbound to 10.1.0.1:443 (api.example.test) fail: "
                             "expired_certificate (3 failures from 2 clients)")
    assert an["description"] == "the server's certificate expired on 2026-11-30"
    assert an["fix"] == "renew the certificate of the virtual host"
    assert "client fatal certificate_expired" in an["evidence"]
    assert "offered TLSv1.3 -> TLSv1.3 TLS_AES_128_GCM_SHA256" in an["evidence"]
    assert an["incident"] == "abcd0123abcd0123" and an["count"] == "3"
    assert an["clients"] == "10.2.0.1, 10.2.0.2" and an["first_seen"] == "2026-12-01T10:00:00Z"
    assert "impact" not in an and "resolution" not in an     # absent values are left out
    assert all(isinstance(v, str) for v in an.values())


def test_severity_is_critical_when_clients_see_it():
    assert severity_of(event(direction="northbound")) == "critical"
    assert severity_of(event(direction="southbound")) == "warning"
    impact = {"client_facing": True, "http_status": 503, "text": "clients get 503"}
    assert severity_of(event(direction="southbound", impact=impact)) == "critical"
    assert alert_of(event(direction="southbound", impact=impact))["annotations"]["impact"] == \
        "clients get 503"


def test_api_url():
    assert api_url("http://am:9093") == ("http://am:9093/api/v2/alerts",
                                         {"Content-Type": "application/json",
                                          "User-Agent": "tlsdiag-analyzer"})
    url, headers = api_url("https://ops:s3cret@am.example/prefix/")
    assert url == "https://am.example/prefix/api/v2/alerts"
    assert headers["Authorization"] == "Basic b3BzOnMzY3JldA=="
    assert api_url("http://am:9093/api/v2/alerts")[0] == "http://am:9093/api/v2/alerts"
    with pytest.raises(ValueError):
        api_url("ftp://am")


# -- sending -----------------------------------------------------------------------------------

def test_open_then_resolved_then_forgotten():
    am, clock, posts = manager()
    am.put(event("opened"))
    drain(am)
    am.tick(clock())
    [a] = posts.alerts()
    assert a["startsAt"] == "2026-12-01T10:00:00.000Z"
    # open: it ends 4 re-sends from now unless re-posted (a dead analyzer's alerts expire)
    assert ts(a["endsAt"]) == pytest.approx(clock() + 240, abs=0.01)
    # nothing new, nothing due: nothing sent
    clock.t += 30
    am.tick(clock())
    assert len(posts.calls) == 1
    # re-sent every resend_s with a later endsAt
    clock.t += 31
    am.tick(clock())
    assert len(posts.calls) == 2
    assert ts(posts.alerts()[-1]["endsAt"]) == pytest.approx(clock() + 240, abs=0.01)
    # resolved: endsAt = when it resolved
    clock.t += 5
    resolved_at = clock()
    am.put(event("resolved", resolution="handshakes to this server succeed again"))
    drain(am)
    clock.t += 1
    am.tick(clock())
    last = posts.alerts()[-1]
    assert ts(last["endsAt"]) == pytest.approx(resolved_at, abs=0.01)
    assert last["annotations"]["resolution"] == "handshakes to this server succeed again"
    # re-sent (resolved) with every re-send during the retention, then forgotten
    n = len(posts.calls)
    clock.t += 60
    am.tick(clock())
    assert len(posts.calls) == n + 1 and ts(posts.alerts()[-1]["endsAt"]) == \
        pytest.approx(resolved_at, abs=0.01)
    clock.t += RESOLVED_RETENTION_S
    am.tick(clock())
    assert not am.alerts and len(posts.calls) == n + 1
    assert am.sent == len(posts.alerts())


def test_starts_never_after_ends():
    am, clock, posts = manager()
    future = datetime.fromtimestamp(clock() + 3600).astimezone().isoformat()
    am.put(event("resolved", first=future))
    drain(am)
    am.tick(clock())
    [a] = posts.alerts()
    assert a["startsAt"] == a["endsAt"]


def test_resync_drops_alerts_this_instance_no_longer_owns():
    am, clock, posts = manager()
    mine = event("opened", server="10.1.0.1:443")
    moved = event("opened", server="10.1.0.2:443")
    gone = event("resolved", server="10.1.0.3:443")
    for e in (mine, moved, gone):
        am.put(e)
    drain(am)
    # a rebalance took 10.1.0.2's partition away: the new owner re-sends it, we stop; the
    # resolved one stays (re-sent during its retention)
    am.resync([mine])
    drain(am)
    assert set(am.alerts) == {mine["key"], gone["key"]}
    am.tick(clock())
    assert {a["labels"]["server"] for a in posts.alerts()} == {"10.1.0.1:443", "10.1.0.3:443"}
    # the resync was the re-send: the next one is resend_s later
    posts.calls.clear()
    clock.t += 59
    am.tick(clock())
    assert not posts.calls
    assert am.next_sync == pytest.approx(clock() + 1, abs=0.01)


def test_a_severity_change_resolves_the_old_label_set():
    """Alertmanager identifies an alert by its labels: when a southbound incident gains its
    client-facing impact (warning -> critical) the warning is resolved and the critical one
    fires; the resolve of the incident resolves the one that fires."""
    am, clock, posts = manager()
    impact = {"client_facing": True, "text": "clients get 503"}
    south = event("opened", direction="southbound")
    am.put(south)
    drain(am)
    am.tick(clock())
    clock.t += 1
    am.put(event("updated", direction="southbound", impact=impact))
    drain(am)
    am.tick(clock())
    sent = posts.alerts()
    assert [(a["labels"]["severity"], ts(a["endsAt"]) <= clock()) for a in sent] == [
        ("warning", False), ("warning", True), ("critical", False)]
    assert sent[1]["annotations"]["resolution"] == "continues with severity critical"
    # the resolved event lost the impact (warning): it still resolves the critical alert
    clock.t += 1
    am.put(event("resolved", direction="southbound"))
    drain(am)
    am.tick(clock())
    last = posts.alerts()[-1]
    assert last["labels"]["severity"] == "critical" and ts(last["endsAt"]) == clock()
    # escalated again later (a new incident with the same key): the retired warning twin is
    # no longer re-sent as resolved once warning fires again
    clock.t += 1
    am.put(event("opened", direction="southbound", first="2026-12-01T11:00:00Z"))
    drain(am)
    assert "southbound|10.1.0.1:443|expired_certificate|warning" not in am.alerts
    assert am.alerts["southbound|10.1.0.1:443|expired_certificate"]["labels"]["severity"] == \
        "warning"


def test_one_post_per_burst_and_batches_of_500():
    am, clock, posts = manager()
    for i in range(1200):
        am.put(event("opened", server="10.1.%d.%d:443" % (i // 250, i % 250)))
    drain(am)
    am.tick(clock())
    assert [len(body) for _, body, _ in posts.calls] == [500, 500, 200]


def test_bounded_queue_and_table_never_block():
    am, clock, posts = manager(queue_max=10, max_alerts=5)
    for i in range(15):
        am.put(event("opened", server="10.9.0.%d:443" % i))
    assert am.dropped == 5 and am.q.qsize() == 10
    drain(am)
    assert len(am.alerts) == 5 and am.dropped == 10        # the least recently changed went
    assert list(am.alerts)[0].startswith("northbound|10.9.0.5:443")


def test_a_dead_alertmanager_delays_nobody_and_recovers():
    am, clock, posts = manager(urls=("http://live:9093", "http://dead:9093"))
    posts.fail["http://dead:9093/api/v2/alerts"] = urllib.error.URLError("connection refused")
    am.put(event("opened"))
    drain(am)
    am.tick(clock())
    assert len(posts.alerts("http://live:9093/api/v2/alerts")) == 1
    dead = am.targets[1]
    assert dead.pending and not dead.ok and dead.backoff == 0.5 and am.failed == 1
    metrics = {m[0]: m[3] for m in am.metrics()}
    assert metrics["tlsdiag_analyzer_alertmanager_up"] == 0
    assert metrics["tlsdiag_analyzer_alertmanager_pending"] == 1
    # backing off: no attempt before retry_at, then exponential
    am.tick(clock() + 0.2)
    assert am.failed == 1
    am.tick(clock() + 0.6)
    assert am.failed == 2 and dead.backoff == 1.0
    for _ in range(10):
        am.tick(dead.retry_at)
    assert dead.backoff == 30.0
    # it comes back: what it missed arrives
    del posts.fail["http://dead:9093/api/v2/alerts"]
    am.tick(dead.retry_at)
    assert len(posts.alerts("http://dead:9093/api/v2/alerts")) == 1
    assert dead.ok and not dead.pending and dead.backoff == 0.0
    assert {m[0]: m[3] for m in am.metrics()}["tlsdiag_analyzer_alertmanager_up"] == 1


def test_refused_alerts_are_not_retried():
    am, clock, posts = manager()
    url = "http://am1:9093/api/v2/alerts"
    posts.fail[url] = urllib.error.HTTPError(url, 400, "Bad Request", {}, None)
    am.put(event("opened"))
    drain(am)
    am.tick(clock())
    assert am.failed == 1 and not am.targets[0].pending and am.targets[0].retry_at == 0


def test_put_returns_at_once_while_a_post_hangs():
    gate = threading.Event()

    def slow_post(url, body, headers, timeout):
        gate.wait(10)

    am = Alertmanager(["http://am1:9093"], resend_s=60, post=slow_post)
    try:
        am.put(event("opened"))
        time.sleep(0.3)                   # the thread is inside the POST now
        t0 = time.monotonic()
        for i in range(5000):
            am.put(event("updated", count=i))
        assert time.monotonic() - t0 < 1.0
    finally:
        gate.set()
        am.close(5)
    assert not am._t.is_alive()


# -- for real: Alertmanager, Kafka, the analyzer command ----------------------------------------

class Receiver:
    """The webhook receiver Alertmanager notifies (``send_resolved``): every alert of every
    notification, with its status."""

    def __init__(self):
        self.alerts = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):   # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                for a in body.get("alerts", []):
                    a["_received"] = time.time()        # when Alertmanager notified
                outer.alerts.extend(body.get("alerts", []))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


@pytest.fixture
def alertmanager(tmp_path):
    exe = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if exe is None or not shutil.which("amtool"):
        pytest.skip("Alertmanager is not installed (apt-get install prometheus-alertmanager; "
                    ".ci/run installs it)")
    rx = Receiver()
    port = free_port()
    cfg = tmp_path / "alertmanager.yml"
    # every alert its own group, notified at once and again at every change (resolved too)
    cfg.write_text("""route:
  receiver: test
  group_by: ['...']
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: test
    webhook_configs:
      - url: http://127.0.0.1:%d/
        send_resolved: true
""" % rx.port)
    out = open(tmp_path / "alertmanager.log", "wb")
    proc = subprocess.Popen([exe, "--config.file", str(cfg), "--storage.path",
                             str(tmp_path / "am-data"), "--web.listen-address",
                             "127.0.0.1:%d" % port, "--cluster.listen-address=",
                             "--log.level=info"], stdout=out, stderr=subprocess.STDOUT)
    url = "http://127.0.0.1:%d" % port
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url + "/-/ready", timeout=2).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("Alertmanager did not start: %s" % (
                    (tmp_path / "alertmanager.log").read_text()[-2000:]))
            time.sleep(0.2)
    yield url, rx
    proc.terminate()
    proc.wait(10)
    rx.close()


def amtool_alerts(url):
    out = subprocess.run(["amtool", "alert", "query", "--alertmanager.url", url, "-o", "json"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def api_alerts(url):
    with urllib.request.urlopen(url + "/api/v2/alerts", timeout=10) as r:
        return json.loads(r.read())


def wait_for(pred, timeout, what, poll=0.3, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        if proc is not None and proc.poll() is not None:
            raise AssertionError("the analyzer exited (%s) before %s" % (proc.returncode, what))
        time.sleep(poll)
    raise AssertionError("timed out waiting for %s" % what)


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    yield from module_broker(tmp_path_factory)


def failing_and_success():
    """The test captures' summaries (as the scenario sensors send them), the failing ones
    whose direction is known (and the (server, direction) pairs they fail on), and one
    successful summary."""
    items = stamped()
    eng = Engine(build_config({"truststore": str(TRUST)}))
    failing, fails, ok = set(), [], None
    for (raw, certs), (_, s, diags) in zip(items, diagnose_stream(items, eng)):
        if any(d["severity"] == "failure" for d in diags):
            # (a failure after an established handshake also counts as a success to its
            # server: it would resolve its incident with --incident-resolve-successes 1)
            if raw.get("direction") and not is_success(s):
                failing.add((raw["server"], raw["direction"]))
                fails.append((raw, certs))
        elif ok is None and is_success(s):
            ok = (raw, certs)
    return items, fails, failing, ok


def key_of(alert):
    return "|".join(alert["labels"][k] for k in ("direction", "server", "cause"))


@pytest.mark.kafka
def test_real_alertmanager_gets_opened_and_resolved_incidents(alertmanager, broker, tmp_path):
    """Through the real analyzer: each incident an active alert (amtool) with its labels,
    annotations and startsAt; re-sent (endsAt moves on); resolved (endsAt = when it resolved,
    as Alertmanager's resolved notification says) -- while a second, dead Alertmanager of the
    list delays nothing."""
    am_url, receiver = alertmanager
    items, fails, failing, ok = failing_and_success()
    assert len(failing) >= 5 and ok is not None
    assert {d for _, d in failing} == {"northbound", "southbound"}
    publish(broker.bootstrap, fails, tmp_path / "p1", "am")
    dead = free_port()
    log = open(tmp_path / "analyzer.log", "wb")
    # the captures are days apart in data time: no incident resolves for being quiet; every
    # failure sends an event, so the topic's last event of an incident has its count (the
    # alerts' resyncs carry the current count)
    cmd = analyzer_cmd(broker.bootstrap, "am", "am-g", "--incident-update-s", "0",
                       "--incident-resolve-successes", "1",
                       "--incident-resolve-hold-s", "0", "--incident-resolve-quiet-s", "9e6",
                       "--alertmanager-url", am_url,
                       "--alertmanager-url", "http://127.0.0.1:%d" % dead,
                       "--alertmanager-resend-s", "2", "-vv")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        def incident_events():
            return [json.loads(e) for e in kcat(broker.bootstrap, "am.incidents", fmt="%s\n")]
        wait_for(lambda: {tuple(e["key"].split("|")[1::-1]) for e in incident_events()}
                 >= set(failing), 120, "an incident per failing server", proc=proc)
        last = {}
        for e in incident_events():
            last[e["key"]] = e
        assert all(e["event"] != "resolved" for e in last.values())

        def active():
            got = {key_of(a): a for a in amtool_alerts(am_url)
                   if a["labels"]["alertname"] == ALERTNAME}
            return got if set(got) >= set(last) else None
        alerts = wait_for(active, 60, "the alerts in Alertmanager (amtool)")
        for key, ev in last.items():
            a = alerts[key]
            assert a["status"]["state"] == "active"
            assert a["labels"]["severity"] == severity_of(ev)
            an = a["annotations"]
            assert an["incident"] == ev["incident"] and an["count"] == str(ev["count"])
            assert an["fix"] == ev["remediation"] and an["description"] == ev["explanation"]
            assert an["summary"].startswith("TLS handshakes %s to %s" % (ev["direction"],
                                                                          ev["server"]))
            assert an["evidence"]
            assert ts(a["startsAt"]) == pytest.approx(ts(ev["first_seen"]), abs=1)
        # re-sent every 2 s: endsAt (the post's time + 4 x 2 s) moves on
        key0 = sorted(last)[0]
        ends0 = ts(alerts[key0]["endsAt"])
        wait_for(lambda: ts(next(a for a in api_alerts(am_url)
                                 if key_of(a) == key0)["endsAt"]) > ends0 + 1, 20,
                 "a re-send (a later endsAt)")
        # and Alertmanager notified its receiver of each, firing
        wait_for(lambda: {(key_of(a), a["status"]) for a in receiver.alerts}
                 >= {(k, "firing") for k in last}, 30, "firing notifications")

        # a success to each failing server, after its failures: every incident resolves.
        # The northbound ones first: they also give the southbound incidents in their window a
        # client-facing impact (HTTP 503), which escalates those alerts to critical
        newest = max(raw["end"] for raw, _ in items)
        raw_ok, certs_ok = ok

        def successes(direction, base):
            out = []
            for i, (server, d) in enumerate(sorted(failing)):
                if d == direction:
                    r = dict(raw_ok, server=server, direction=d, id="%016x" % (base + i))
                    r["start"], r["end"] = newest + 5 + i, newest + 5.1 + i
                    out.append((r, certs_ok))
            return out
        publish(broker.bootstrap, successes("northbound", 0xa1e4700), tmp_path / "p2", "am")
        north = {k for k in last if k.startswith("northbound|")}
        wait_for(lambda: {e["key"] for e in incident_events() if e["event"] == "resolved"}
                 >= north, 90, "the northbound incidents' resolved events", proc=proc)
        events = incident_events()
        escalated = {e["key"] for e in events if e["key"].startswith("southbound|")
                     and e["event"] == "updated" and (e.get("impact") or {}).get("client_facing")}
        assert escalated, "no southbound incident gained a client-facing impact"
        # Alertmanager: the warning resolved ("continues with severity critical"), the critical
        # alert fired -- both notified
        wait_for(lambda: {(key_of(a), a["labels"]["severity"], a["status"],
                           a["annotations"].get("resolution")) for a in receiver.alerts}
                 >= {(k, s, st, r) for k in escalated for s, st, r in (
                     ("warning", "resolved", "continues with severity critical"),
                     ("critical", "firing", None))}, 30, "the escalation's notifications")
        publish(broker.bootstrap, successes("southbound", 0xa1e4800), tmp_path / "p3", "am")
        wait_for(lambda: {e["key"] for e in incident_events() if e["event"] == "resolved"}
                 >= set(last), 90, "resolved events", proc=proc)
        resolved = {e["key"]: e for e in incident_events() if e["event"] == "resolved"}
        # no longer active (endsAt passed) ...
        wait_for(lambda: not [a for a in amtool_alerts(am_url)
                              if a["labels"]["alertname"] == ALERTNAME], 30,
                 "no active alert left (amtool)")

        # ... and Alertmanager sent "resolved" notifications: endsAt = when each resolved
        def resolved_notes():
            got = {key_of(a): a for a in receiver.alerts if a["status"] == "resolved"
                   and a["annotations"].get("resolution") == resolved.get(key_of(a), {}).get(
                       "resolution")}
            return got if set(got) >= set(resolved) else None
        notes = wait_for(resolved_notes, 30, "resolved notifications")
        for key, ev in resolved.items():
            n = notes[key]
            assert n["labels"]["severity"] == ("critical" if key in escalated else
                                               severity_of(last[key]))
            assert ts(n["startsAt"]) == pytest.approx(ts(ev["first_seen"]), abs=1)
            assert ts(n["startsAt"]) <= ts(n["endsAt"]) <= n["_received"]
        # the dead Alertmanager was tried (and logged once), and it held nothing up
        text = (tmp_path / "analyzer.log").read_text()
        assert text.count("alertmanager http://127.0.0.1:%d/api/v2/alerts: cannot post "
                          "alerts" % dead) == 1, text[-3000:]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, text[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
