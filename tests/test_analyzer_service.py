"""tlsdiag analyzer over a real Kafka broker: summaries of the test captures go through the
sensor's publisher; diagnoses are read back with kcat (read_committed).  The analyzer runs as
a real process and is killed with SIGKILL mid-batch; nothing may be lost or duplicated.
Poison messages go to the dead-letter topic.  (The loop itself -- keys, dead letters, the
certificate wait, commit/abort, the replay of a restored partition -- is also tested without a
broker in tests/test_analyzer_loop.py.)"""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgpack
import pytest

from tests.support.poll import wait_for
from tests.support.stream import diagnose_stream

try:
    from tests.kafka_broker import kcat, module_broker
    from tests.test_publisher import PCAPS, summaries_of
except ImportError:
    from kafka_broker import kcat, module_broker
    from test_publisher import PCAPS, summaries_of

from analyzer.config import parse_local_nets
from proto.direction import UNKNOWN, classify
from analyzer.engine import Engine
from proto import topics
from sensor.publisher import Publisher, PublisherConfig
from tlsdiag.kafka import best_compression, ensure_topics

pytestmark = pytest.mark.kafka

REPO = Path(__file__).resolve().parents[1]
LOCAL = parse_local_nets(["10.10.1.1/32", "10.10.3.1/32"])
TRUST = REPO / "tests" / "data" / "scenarios" / "pki" / "root.pem"


def stamped():
    """The test captures' summaries as the scenario sensors would send them: direction from
    the gateway's addresses, sensor id by hop."""
    out = []
    for raw, certs in summaries_of(PCAPS):
        d, _ = classify(raw["client"], raw["server"], None, LOCAL)
        raw["direction"] = None if d == UNKNOWN else d
        raw["sensor"] = {"northbound": "router-1", "southbound": "mp-1"}.get(d, "lab")
        out.append((raw, certs))
    return out


def _in_process(items, truststore):
    """In-process: the same Engine, streaming order (observe then diagnose per summary).
    Per item: (failure diagnosis or None, established)."""
    from analyzer.config import build_config
    eng = Engine(build_config({"truststore": truststore}))
    out = []
    for _, s, diags in diagnose_stream(items, eng):
        fails = [d for d in diags if d["severity"] == "failure"]
        out.append((fails[0] if fails else None, bool(s.get("established"))))
    return out


def expected_failures(items, truststore):
    return {d["id"]: d["cause"] for d, _ in _in_process(items, truststore) if d is not None}


def repeat_first_incident(items, truststore, n=4):
    """``items`` plus ``n`` more failures of the first failing connection (new ids and client
    ports) at the end of the stream: its incident -- opened early, before the kill, and never
    resolved (no success to that server follows, and no summary is 10 minutes newer) -- gets
    failures after the restart too.  Returns (items, incident key, its final count)."""
    import hashlib
    judged = _in_process(items, truststore)
    newest = max(raw["end"] for raw, _ in items)

    def key(d):
        return "%s|%s|%s" % (d["direction"], d["connection"]["server"], d["cause"])
    for i, (d, _) in enumerate(judged):
        server = items[i][0]["server"]
        if d is None or newest - items[i][0]["end"] > 300 or any(
                ok for (_, ok), (raw, _) in zip(judged[i:], items[i:]) if raw["server"] == server):
            continue
        raw, certs = items[i]
        extra = []
        for k in range(1, n + 1):
            r = dict(raw)
            r["id"] = hashlib.sha256(("%s-repeat-%d" % (raw["id"], k)).encode()).hexdigest()[:16]
            host, _, port = raw["client"].rpartition(":")
            r["client"] = "%s:%d" % (host, (int(port) + k) % 65536)
            extra.append((r, certs))
        count = sum(1 for x, _ in judged if x is not None and key(x) == key(d))
        return items + extra, key(d), count + n
    raise AssertionError("no failing connection without a later success to its server")


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    yield from module_broker(tmp_path_factory)


def publish(bootstrap, items, tmp, prefix):
    pub = Publisher(PublisherConfig(bootstrap=bootstrap, topic_handshakes=prefix + ".handshakes",
                                    topic_certs=prefix + ".certs", spool_dir=str(tmp / "spool"),
                                    compression=best_compression()),
                    ensure_topics=ensure_topics)
    pub.start()
    for raw, certs in items:
        pub.publish(raw, certs)
    assert pub.flush(60), pub.stats()
    pub.close()


def analyzer_cmd(bootstrap, prefix, group, *extra):
    cmd = [sys.executable, "-m", "tlsdiag", "analyzer", "--kafka", bootstrap, "--group", group,
           "--truststore", str(TRUST), "--no-warnings", "--stats-interval", "5"]
    for t in ("handshakes", "certs", "diagnoses", "incidents", "profiles", "dlq"):
        cmd += ["--topic-%s" % t, "%s.%s" % (prefix, t)]
    return cmd + list(extra)


def diag_keys(bootstrap, topic):
    return kcat(bootstrap, topic, fmt="%k\n")


def committed_to_the_end(bootstrap, group, topic):
    """The group's committed offsets are at the end of every partition of ``topic``: every
    record was processed and its outputs are out (committed with them, or flushed before)."""
    from kafka import KafkaConsumer, TopicPartition
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:                  # (never subscribes: reads the group's offsets, does not join it)
        tps = [TopicPartition(topic, p) for p in c.partitions_for_topic(topic) or ()]
        ends = c.end_offsets(tps)
        return bool(tps) and all((c.committed(tp) or 0) >= ends[tp] for tp in tps)
    finally:
        c.close()




@pytest.mark.parametrize("mode", ["exactly-once", "at-least-once", "at-least-once-before-state"])
def test_sigkill_mid_batch_loses_and_duplicates_nothing(broker, tmp_path, mode):
    """Exactly-once (transactions, the default): no key twice on tls.diagnoses.
    At-least-once (flush + commit): nothing lost; a key seen twice carries the same diagnosis
    (a replay re-sends the same output under the same key).  "before-state": killed between
    the flush of a batch's incident events and the save of its incident state, so the
    restarted analyzer replays that batch from an older state and must not send its incident
    events again.
    Both: the restarted analyzer restores the incident state, so no incident is opened twice
    and no failure is counted twice (or lost) in the incident counts."""
    items, first_key, first_count = repeat_first_incident(stamped(), str(TRUST))
    exp = expected_failures(items, str(TRUST))
    assert len(exp) >= 15, exp
    prefix = {"exactly-once": "k1", "at-least-once": "k1b"}.get(mode, "k1c")
    extra = [] if mode == "exactly-once" else ["--at-least-once"]
    # before-state: 1.5 s between the events' flush and the state: the kill below falls there
    crash_window = ["--state-delay-ms", "1500"] if mode == "at-least-once-before-state" else []
    publish(broker.bootstrap, items, tmp_path, prefix)
    # poison: not msgpack, and a summary of an unknown schema version
    from kafka import KafkaProducer
    p = KafkaProducer(bootstrap_servers=broker.bootstrap)
    p.send(prefix + ".handshakes", key=b"poison-1", value=b"\x00garbage\xff")
    p.send(prefix + ".handshakes", key=b"poison-2",
           value=msgpack.packb({0: 99, 1: "x"}, use_bin_type=True))
    p.flush()
    p.close()

    log1 = open(tmp_path / "a1.log", "wb")
    # --incident-update-s 0: every failure sends an "updated" event, so the last event of an
    # incident carries its final count
    a1 = subprocess.Popen(analyzer_cmd(broker.bootstrap, prefix, "g1", "--max-records", "3",
                                       "--batch-delay-ms", "400", "--incident-update-s", "0",
                                       *extra, *crash_window),
                          stdout=log1, stderr=subprocess.STDOUT, cwd=REPO)
    # kill it inside a batch (every batch sleeps 400 ms between producing its outputs and
    # committing them) once the first incident is open: at-least-once right away, inside the
    # batch that opened it (its events are out, its offsets not committed: it is replayed);
    # exactly-once, where the event shows once committed, inside a later batch
    def first_opened():
        return [e for e in kcat(broker.bootstrap, prefix + ".incidents", fmt="%s\n")
                if json.loads(e)["key"] == first_key]
    try:
        wait_for(first_opened, 90, "the first incident", poll=0.05)
        if mode == "exactly-once":
            time.sleep(0.2)
    finally:
        a1.send_signal(signal.SIGKILL)
        a1.wait(10)
    seen_before = diag_keys(broker.bootstrap, prefix + ".diagnoses")
    assert 0 < len(seen_before) < len(exp), (len(seen_before), len(exp))

    log2 = open(tmp_path / "a2.log", "wb")
    a2 = subprocess.Popen(analyzer_cmd(broker.bootstrap, prefix, "g1", "--incident-update-s",
                                       "0", "-v", *extra),
                          stdout=log2, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        wait_for(lambda: len(diag_keys(broker.bootstrap, prefix + ".diagnoses")) >= len(exp),
                 120, "all diagnoses")
        # every record committed: anything extra (a duplicate) is on the topic by now
        wait_for(lambda: committed_to_the_end(broker.bootstrap, "g1", prefix + ".handshakes"),
                 60, "the commit of the last batch")
        a2.send_signal(signal.SIGTERM)
        assert a2.wait(30) == 0, (tmp_path / "a2.log").read_text()
    finally:
        if a2.poll() is None:
            a2.kill()
    keys = diag_keys(broker.bootstrap, prefix + ".diagnoses")
    vals = [json.loads(x) for x in kcat(broker.bootstrap, prefix + ".diagnoses", fmt="%s\n")]
    if mode == "exactly-once":
        assert len(keys) == len(set(keys)), "duplicated keys: %s" % sorted(
            k for k in set(keys) if keys.count(k) > 1)
    else:
        seen: dict = {}
        for d in vals:        # idempotent: a replayed key carries the same diagnosis
            assert seen.setdefault(d["id"], (d["cause"], d["rule"])) == (d["cause"], d["rule"])
    assert set(keys) == set(exp)
    # same causes as the in-process engine
    assert {d["id"]: d["cause"] for d in vals} == exp
    assert all(d["sensor"] in ("router-1", "mp-1", "lab") for d in vals)
    # poison messages: in the DLQ with a reason, committed past (exactly once each)
    dlq = kcat(broker.bootstrap, prefix + ".dlq", fmt="%k %h\n")
    dlq_keys = [x.split(" ")[0] for x in dlq]
    if mode == "exactly-once":
        assert sorted(dlq_keys) == ["poison-1", "poison-2"]
    else:                     # a replayed batch may dead-letter its poison again
        assert set(dlq_keys) == {"poison-1", "poison-2"}
    assert any("unknown schema version" in x for x in dlq)
    # incidents were produced, grouped by direction+server+cause
    inc = [json.loads(x) for x in kcat(broker.bootstrap, prefix + ".incidents", fmt="%s\n")]
    opened = [e for e in inc if e["event"] == "opened"]
    assert opened and all(e["count"] >= 1 and e["remediation"] for e in opened)
    ids = [e["incident"] for e in opened]
    assert len(ids) == len(set(ids)), "incidents opened twice: %s" % sorted(
        i for i in set(ids) if ids.count(i) > 1)
    # a key is opened again only after its incident was resolved (one key: one partition, in
    # order)
    state: dict = {}
    for e in inc:
        if e["event"] == "opened":
            assert state.get(e["key"]) != "open", "opened twice while open: %s" % e["key"]
            state[e["key"]] = "open"
        elif e["event"] == "resolved":
            state[e["key"]] = "resolved"
    # every failure counted once in the incidents: none lost with the killed process's memory,
    # none counted again by the replay
    final: dict = {}
    for e in inc:
        final[e["incident"]] = max(final.get(e["incident"], 0), e["count"])
    assert sum(final.values()) == len(exp), (sum(final.values()), len(exp))
    if mode == "at-least-once-before-state":
        # it read back what the killed one had sent (and so did not send it again)
        assert "incident(s) already on" in (tmp_path / "a2.log").read_text()
    # the restarted analyzer loaded the incident state the killed one saved; the repeated
    # failures after the restart were added to the incident opened before it.  (Killed in the
    # window before its first state write, there may be no state to load: the events read back
    # above stand in for it, and the counts were checked above.)
    if mode != "at-least-once-before-state":
        assert "incident(s) for partition" in (tmp_path / "a2.log").read_text()
    first = [e for e in inc if e["key"] == first_key]
    assert [e["event"] for e in first].count("opened") == 1, first
    assert first[-1]["count"] == first_count and first[-1]["state"] == "open", first[-1]


def test_profiles_restored_after_restart(broker, tmp_path):
    """The compacted profiles topic carries each partition's learned profiles to the next
    instance: a restarted analyzer (new process, same group) logs them as restored."""
    items = stamped()
    prefix = "k2"
    publish(broker.bootstrap, items, tmp_path, prefix)
    cmd = analyzer_cmd(broker.bootstrap, prefix, "g2", "-v")
    a = subprocess.Popen(cmd, stdout=open(tmp_path / "p1.log", "wb"), stderr=subprocess.STDOUT,
                         cwd=REPO)
    try:
        wait_for(lambda: kcat(broker.bootstrap, prefix + ".profiles"), 90, "a profile snapshot")
        wait_for(lambda: committed_to_the_end(broker.bootstrap, "g2", prefix + ".handshakes"),
                 60, "every summary processed")
    finally:
        a.send_signal(signal.SIGTERM)
        a.wait(30)
    snaps = kcat(broker.bootstrap, prefix + ".profiles", fmt="%k\n")
    assert snaps and all(k.startswith("g2/k2.handshakes/") for k in snaps)
    b = subprocess.Popen(cmd, stdout=open(tmp_path / "p2.log", "wb"), stderr=subprocess.STDOUT,
                         cwd=REPO)
    try:
        wait_for(lambda: "restored" in (tmp_path / "p2.log").read_text(), 60, "profile restore")
    finally:
        b.send_signal(signal.SIGTERM)
        b.wait(30)
    text = (tmp_path / "p2.log").read_text()
    assert "restored" in text and "profiles for partition" in text


def test_webhook_retries_signature_and_metrics(broker, tmp_path):
    """Incident events reach a real HTTP endpoint, signed with the secret from the environment,
    after the endpoint failed the first attempts; metrics expose the failure counters."""
    import hashlib
    import hmac
    import socket
    import threading
    import urllib.request
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    got, attempts = [], []

    class H(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            attempts.append(1)
            if len(attempts) <= 2:            # the first two attempts fail: retried
                self.send_response(503)
                self.end_headers()
                return
            got.append((self.headers.get("X-Tlsdiag-Signature"), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        mport = s.getsockname()[1]
    items = stamped()
    prefix = "k3"
    publish(broker.bootstrap, items, tmp_path, prefix)
    env = dict(os.environ, TLSDIAG_WEBHOOK_SECRET="s3cret-for-test")
    a = subprocess.Popen(analyzer_cmd(broker.bootstrap, prefix, "g3", "--webhook-url",
                                      "http://127.0.0.1:%d/hook?token=abc" % srv.server_port,
                                      "--metrics-port", str(mport), "-v"),
                         stdout=open(tmp_path / "w.log", "wb"), stderr=subprocess.STDOUT,
                         cwd=REPO, env=env)
    try:
        wait_for(lambda: len(got) >= 3, 90, "webhook deliveries")
        metrics = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport, timeout=10).read()
    finally:
        a.send_signal(signal.SIGTERM)
        a.wait(30)
        srv.shutdown()
    for sig, body in got:
        assert sig == "sha256=" + hmac.new(b"s3cret-for-test", body, hashlib.sha256).hexdigest()
        ev = json.loads(body)
        assert ev["event"] in ("opened", "updated", "resolved") and ev["cause"]
    text = metrics.decode()
    assert 'handshake_failures_total{cause="' in text and 'direction="' in text
    assert "tlsdiag_analyzer_webhook_events_total" in text
    log = (tmp_path / "w.log").read_text()
    assert "abc" not in log and "s3cret" not in log      # secrets are not logged


def outage_items(items, truststore, n_servers, rounds, t0_offset=0.0):
    """A big outage: ``n_servers`` distinct backends failing with one cause (a southbound
    failure of the test captures, cloned onto 10.30.x.y:443 with new ids and clients), each
    ``rounds`` times.  Returns [(raw, certs)] in time order and the cause."""
    import hashlib
    for (d, _), (raw, certs) in zip(_in_process(items, truststore), items):
        if d is not None and d["direction"] == "southbound" and d["cause"] == "cipher_mismatch" \
                and not certs:
            break
    else:
        raise AssertionError("no southbound cipher mismatch in the test captures")
    out = []
    base = raw["end"] + t0_offset
    for r in range(rounds):
        for i in range(n_servers):
            c = dict(raw)
            k = r * n_servers + i
            c["id"] = hashlib.sha256(("outage-%s-%d-%s" % (raw["id"], k, t0_offset)).encode()
                                     ).hexdigest()[:16]
            c["server"] = "10.30.%d.%d:443" % (i // 250, i % 250 + 1)
            c["client"] = "10.10.3.1:%d" % (20000 + k % 40000)
            c["start"] = base + k * 0.005
            c["end"] = c["start"] + 0.001
            out.append((c, certs))
    return out, d["cause"]


@pytest.mark.parametrize("mode", ["exactly-once", "at-least-once"])
def test_big_outage_state_survives_sigkill(broker, tmp_path, mode):
    """More open incidents in one input partition than fit in one record of the old state
    format (1,200 backends failing with one cause, ~2 KB of state each: ~2.4 MB): the analyzer
    is SIGKILLed mid-stream and restarted, then every backend fails once more.  The state was
    saved (in bounded chunk records) and restored: no incident opened twice, every count is
    exactly 2 (not doubled by the replay, nothing lost), the state never skipped as too large,
    and no record on the profiles topic is over the broker's default limit."""
    n = 1200
    first, cause = outage_items(stamped(), str(TRUST), n, 1)
    second, _ = outage_items(stamped(), str(TRUST), n, 1, t0_offset=30.0)
    exp = expected_failures(first + second, str(TRUST))
    assert len(exp) == 2 * n and set(exp.values()) == {cause}
    prefix = "k4" if mode == "exactly-once" else "k4b"
    extra = [] if mode == "exactly-once" else ["--at-least-once"]
    # one input partition: all 1,200 incidents belong to it
    assert ensure_topics(broker.bootstrap,
                         {prefix + ".handshakes": dataclasses.replace(topics.HANDSHAKES,
                                                                      partitions=1)})
    publish(broker.bootstrap, first, tmp_path, prefix)

    a1 = subprocess.Popen(analyzer_cmd(broker.bootstrap, prefix, "g4", "--max-records", "50",
                                       "--batch-delay-ms", "1000", "--incident-update-s", "0",
                                       "-v", *extra),
                          stdout=open(tmp_path / "b1.log", "wb"), stderr=subprocess.STDOUT,
                          cwd=REPO)

    def opened():
        return {json.loads(e)["incident"]
                for e in kcat(broker.bootstrap, prefix + ".incidents", fmt="%s\n")
                if '"event":"opened"' in e}
    try:
        wait_for(lambda: len(opened()) >= 750, 240, "750 incidents opened", poll=0.1)
    finally:
        a1.send_signal(signal.SIGKILL)
        a1.wait(10)
    killed_at = len(opened())
    assert killed_at < n, "the analyzer finished before the kill: nothing tested"
    publish(broker.bootstrap, second, tmp_path, prefix)

    a2 = subprocess.Popen(analyzer_cmd(broker.bootstrap, prefix, "g4", "--max-records", "500",
                                       "--incident-update-s", "0", "-v", *extra),
                          stdout=open(tmp_path / "b2.log", "wb"), stderr=subprocess.STDOUT,
                          cwd=REPO)
    try:
        wait_for(lambda: len(set(diag_keys(broker.bootstrap, prefix + ".diagnoses"))) >= 2 * n,
                 240, "all diagnoses")
        wait_for(lambda: committed_to_the_end(broker.bootstrap, "g4", prefix + ".handshakes"),
                 60, "the commit of the last batch")
        a2.send_signal(signal.SIGTERM)
        assert a2.wait(60) == 0, (tmp_path / "b2.log").read_text()[-3000:]
    finally:
        if a2.poll() is None:
            a2.kill()
    log1, log2 = (tmp_path / "b1.log").read_text(), (tmp_path / "b2.log").read_text()
    import re
    restored = [int(x) for x in re.findall(r"restored (\d+) open incident\(s\)", log2)]
    # the state the killed analyzer saved held (nearly) every incident it had opened: far more
    # than the ~450 (2 KB each) the old single record could hold
    assert restored and restored[0] >= 700, (restored, log2[-2000:])
    assert "too large" not in log1 + log2 and "not saved" not in log1 + log2
    stats = re.findall(r"incident_state_too_large=(\d+)", log2)
    assert stats and set(stats) == {"0"}, stats
    inc = [json.loads(x) for x in kcat(broker.bootstrap, prefix + ".incidents", fmt="%s\n")]
    ids = [e["incident"] for e in inc if e["event"] == "opened"]
    keys = [e["key"] for e in inc if e["event"] == "opened"]
    assert len(ids) == len(set(ids)) == n and len(set(keys)) == n, (len(ids), len(set(ids)))
    assert not [e for e in inc if e["event"] == "resolved"]
    final: dict = {}
    for e in inc:
        final[e["incident"]] = max(final.get(e["incident"], 0), e["count"])
    assert sorted(set(final.values())) == [2], sorted(set(final.values()))
    assert len(final) == n
    # the profiles topic: bounded records; the incident state is head + chunk records
    sizes = kcat(broker.bootstrap, prefix + ".profiles", fmt="%S %k\n")
    state = [(int(s.split(" ", 1)[0]), s.split(" ", 1)[1]) for s in sizes
             if s.split(" ", 1)[1].startswith("g4/%s.handshakes/0/incidents" % prefix)]
    assert state and max(sz for sz, _ in state) <= 900_000
    assert any(k.count("/") == 6 for _, k in state)           # chunk records .../c/gen/part
