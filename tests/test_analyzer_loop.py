"""The Kafka analyzer's loop without a broker: ``Analyzer`` with the fake producer/consumer of
tests/fake_kafka.py (transactions visible at commit, a group of one).  The same stamped test
captures as tests/test_analyzer_service.py (which runs the real process against a real broker,
SIGKILL included); here each behaviour is checked directly and in milliseconds: outputs and
their keys and partitions, dead letters, the certificate wait, incidents, commit/abort, and
the state a restarted instance restores."""
from __future__ import annotations

import gc
from collections import Counter
import hashlib
import json
import time

import msgpack
import pytest
from kafka.errors import KafkaTimeoutError
from kafka.partitioner.default import murmur2
from kafka.structs import TopicPartition

try:
    from tests.fake_kafka import FakeCluster, factories
    from tests.test_analyzer_service import TRUST, expected_failures, stamped
except ImportError:
    from fake_kafka import FakeCluster, factories
    from test_analyzer_service import TRUST, expected_failures, stamped

from analyzer.config import build_config
from analyzer.engine import Engine
from analyzer.service import Analyzer, AnalyzerConfig, CertStore
from analyzer.service import consumer as consumer_mod
from analyzer.service import state as state_mod
from cext.wire import kafka_partition
from proto import topics
from proto.summary import encode_certificate, encode_summary
from tests.support.stream import diagnose_stream

H = "t.handshakes"
TOPICS = {t: "t." + t for t in ("handshakes", "certs", "diagnoses", "incidents", "profiles",
                                "dlq")}


@pytest.fixture(scope="module")
def items():
    return stamped()


@pytest.fixture(scope="module")
def diag():
    return build_config({"truststore": str(TRUST)})


def config(**kw) -> AnalyzerConfig:
    kw = {"max_records": 7, "cert_wait": 0.2, **kw}
    return AnalyzerConfig(kafka="fake:9092", group="g",
                          **{"topic_" + k: v for k, v in TOPICS.items()}, **kw)


def analyzer(cluster: FakeCluster, diag, **kw) -> Analyzer:
    prod, cons = factories(cluster)
    an = Analyzer(config(**kw), diag, partition=kafka_partition, producer_factory=prod,
                  consumer_factory=cons)
    an.connect()
    return an


def publish(cluster: FakeCluster, items, certs=True) -> None:
    """As the sensor's publisher does: certificates keyed by SHA-256 hex, summaries keyed by
    server endpoint, Kafka's default partition."""
    n = len(cluster.partitions(H))
    for raw, cs in items:
        for sha, der, facts, *_ in cs if certs else ():
            k = sha.hex().encode()
            cluster.append(TOPICS["certs"], kafka_partition(k, len(cluster.partitions(
                TOPICS["certs"]))), k, encode_certificate(sha, der, facts))
        key = raw["server"].encode()
        cluster.append(H, kafka_partition(key, n), key, encode_summary(raw))


def drain(an: Analyzer) -> int:
    """Batches until a poll finds nothing; how many records."""
    total = 0
    while True:
        n = an.step()
        if not n:
            return total
        total += n


def drained(items, diag, **kw) -> tuple:
    """``items`` published to a fake cluster and read to the end by an analyzer:
    ``(cluster, analyzer)``."""
    cluster = FakeCluster()
    publish(cluster, items)
    an = analyzer(cluster, diag, **kw)
    drain(an)
    return cluster, an


def in_process_diagnoses(items, diag):
    """Every diagnosis of the in-process engine (as ``tlsdiag diagnose``), by output key."""
    out = {}
    for _, _, diags in diagnose_stream(items, Engine(diag)):
        for d in diags:
            key = d["id"] if d["severity"] == "failure" else "%s/%s" % (d["id"], d["rule"])
            out[key] = d
    return out


def incident_counts(cluster):
    final: dict = {}
    for r in cluster.records(TOPICS["incidents"]):
        e = json.loads(r.value)
        final[e["incident"]] = max(final.get(e["incident"], 0), e["count"])
    return final


def test_diagnoses_keyed_by_id_warnings_by_id_rule_in_kafkas_partition(items, diag):
    cluster = FakeCluster()
    publish(cluster, items)
    an = analyzer(cluster, diag)
    assert drain(an) == len(items)
    want = in_process_diagnoses(items, diag)
    assert any("/" in k for k in want) and any("/" not in k for k in want)   # both kinds
    recs = cluster.records(TOPICS["diagnoses"])
    got = {r.key.decode(): json.loads(r.value) for r in recs}
    assert len(recs) == len(got)                        # no key twice
    assert set(got) == set(want)
    for k, d in got.items():
        assert (d["severity"], d["rule"], d["cause"]) == (
            want[k]["severity"], want[k]["rule"], want[k]["cause"]), k
        assert d["sensor"] in ("router-1", "mp-1", "lab")
    n = len(cluster.partitions(TOPICS["diagnoses"]))
    for r in recs:                                      # Kafka's default partition
        assert r.partition == (murmur2(r.key) & 0x7FFFFFFF) % n
    # committed: the group's offsets are at the end of every input partition
    for p, log in enumerate(cluster.partitions(H)):
        assert cluster.committed[("g", TopicPartition(H, p))] == len(log)
    assert an.counters["summaries"] == len(items) and an.counters["certificates_missing"] == 0


def test_no_warnings_sends_failures_only(items, diag):
    cluster = FakeCluster()
    publish(cluster, items)
    drain(analyzer(cluster, diag, warnings=False))
    keys = {r.key.decode() for r in cluster.records(TOPICS["diagnoses"])}
    assert keys == set(expected_failures(items, str(TRUST)))


def test_poison_goes_to_the_dlq_with_reason_and_source_and_is_committed_past(items, diag):
    cluster = FakeCluster()
    publish(cluster, items[:5])
    bad = [(b"poison-1", b"\x00garbage\xff"),
           (b"poison-2", msgpack.packb({0: 99, 1: "x"}, use_bin_type=True)),
           (b"poison-3", None)]
    where = [cluster.append(H, 1, k, v) for k, v in bad]
    publish(cluster, items[5:10])
    an = analyzer(cluster, diag)
    assert drain(an) == 13
    dlq = cluster.records(TOPICS["dlq"])
    got = {r.key: r for r in dlq}
    assert len(dlq) == 3 and {k: r.value for k, r in got.items()} == dict(bad)  # as it came
    for (k, _), src in zip(bad, where):
        h = dict(got[k].headers)
        assert h["source"] == ("%s/%d/%d" % (H, src.partition, src.offset)).encode()
    assert b"unknown schema version" in dict(got[b"poison-2"].headers)["reason"]
    assert dict(got[b"poison-3"].headers)["reason"] == b"empty message"
    assert dict(got[b"poison-1"].headers)["reason"]
    assert an.poison == {"malformed": 2, "unknown_version": 1}
    assert cluster.committed[("g", TopicPartition(H, 1))] == len(cluster.partitions(H)[1])
    assert an.counters["summaries"] == 10                  # the rest was diagnosed


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), 1e308, -1e308,
                                 2 ** 64 - 1, 253402300800.0, -62135596801.0])
def test_a_summary_timed_outside_datetimes_range_goes_to_the_dlq_not_a_crash(items, diag, bad):
    """NaN, inf, 1e308, 2**64-1, year 10000: dead-lettered; it used to crash the incident
    event's time stamp, uncommitted, so every restart crashed on it again."""
    raw, cs = next((dict(r), c) for r, c in items
                   if not r.get("established") and r.get("outcome") == "alert")
    raw["start"] = raw["end"] = bad
    cluster = FakeCluster()
    publish(cluster, [(raw, cs)] + items[:5])
    an = analyzer(cluster, diag)
    assert drain(an) == 6
    dlq = cluster.records(TOPICS["dlq"])
    assert len(dlq) == 1 and dict(dlq[0].headers)["reason"] in (b"bad start field",
                                                                 b"bad end field")
    assert an.poison == {"malformed": 1} and an.counters["summaries"] == 5
    for p, log in enumerate(cluster.partitions(H)):            # committed past it
        assert cluster.committed.get(("g", TopicPartition(H, p)), 0) == len(log)


def test_a_late_certificate_is_waited_for_a_missing_one_counted(items, diag):
    def refs(raw):
        return set(raw["certificates"]) | set(raw["client_certificates"])
    raw1, certs1 = next((raw, cs) for raw, cs in items if cs)
    raw2, certs2 = next((raw, cs) for raw, cs in items if cs and not refs(raw) & refs(raw1))
    cluster = FakeCluster()
    an = analyzer(cluster, diag)                # connected: the certificates topic is empty
    assert len(an.certs) == 0
    publish(cluster, [(raw1, certs1)])          # its certificates arrive with it
    drain(an)
    assert an.counters["certificates_missing"] == 0 and all(d in an.certs for d in refs(raw1))
    publish(cluster, [(raw2, certs2)], certs=False)   # never arrive
    t = time.monotonic()
    drain(an)
    assert time.monotonic() - t >= an.cfg.cert_wait
    assert an.counters["certificates_missing"] == len(refs(raw2))
    assert len(cluster.records(TOPICS["diagnoses"])) >= 1


def test_incident_events_keyed_direction_server_cause_and_counted_once(items, diag):
    cluster = FakeCluster()
    publish(cluster, items)
    an = analyzer(cluster, diag, incident_update_s=0.0, warnings=False)
    drain(an)
    events = [(r.key.decode(), json.loads(r.value)) for r in cluster.records(TOPICS["incidents"])]
    opened = [e for _, e in events if e["event"] == "opened"]
    assert opened and all(e["remediation"] for e in opened)
    for key, e in events:
        assert key == e["key"] == "%s|%s|%s" % (e["direction"], e["server"], e["cause"])
    exp = expected_failures(items, str(TRUST))
    assert sum(incident_counts(cluster).values()) == len(exp)
    assert an.metrics()[0][3] and an.counters["incident_events"] == len(events)


def test_exactly_once_an_aborted_batch_shows_nothing_and_is_redone(items, diag):
    cluster = FakeCluster()
    publish(cluster, items)
    an = analyzer(cluster, diag, incident_update_s=0.0, warnings=False)
    assert an.step() == 7                            # one batch, committed

    def crash(_what, i):
        if i == 4:
            raise RuntimeError("crash inside the batch")
    committed = dict(cluster.committed)
    shown = len(cluster.records(TOPICS["diagnoses"]))
    an.hook = crash
    with pytest.raises(RuntimeError, match="crash inside"):
        an.step()
    prod = cluster.producers[0]
    assert prod.aborts == 1 and not prod.in_transaction
    assert cluster.committed == committed            # offsets not moved
    assert len(cluster.records(TOPICS["diagnoses"])) == shown    # nothing of it visible
    # a new instance (same group) redoes it from the committed offsets and the saved state
    drain(analyzer(cluster, diag, incident_update_s=0.0, warnings=False))
    keys = [r.key.decode() for r in cluster.records(TOPICS["diagnoses"])]
    exp = expected_failures(items, str(TRUST))
    assert len(keys) == len(set(keys)) and set(keys) == set(exp)
    assert sum(incident_counts(cluster).values()) == len(exp)
    opened = [json.loads(r.value)["incident"] for r in cluster.records(TOPICS["incidents"])
              if b'"event":"opened"' in r.value]
    assert len(opened) == len(set(opened))


def test_at_least_once_replay_below_the_restored_offset_is_resent_not_recounted(items, diag):
    """At-least-once, a crash after a batch's outputs and incident state were flushed and
    before its offsets were committed: the next instance restores the state (which counts the
    batch), replays the batch, re-sends its diagnoses under the same keys, and neither counts
    its failures again nor re-sends the incident events already on the topic."""
    cluster = FakeCluster(default_partitions=1)       # one input partition: batches in order
    publish(cluster, items)
    an = analyzer(cluster, diag, exactly_once=False, incident_update_s=0.0, warnings=False,
                  max_records=40)
    cluster.faults["commit"] = RuntimeError("killed before the commit")
    with pytest.raises(RuntimeError, match="killed"):
        an.step()
    first = [r.key for r in cluster.records(TOPICS["diagnoses"])]
    assert first and ("g", TopicPartition(H, 0)) not in cluster.committed
    assert an.counters["incident_snapshots"] == 1           # the state went out, counting 40 records
    events_before = len(cluster.records(TOPICS["incidents"]))
    del cluster.faults["commit"]
    an2 = analyzer(cluster, diag, exactly_once=False, incident_update_s=0.0, warnings=False,
                   max_records=40)
    assert drain(an2) == len(items)                  # the 40 again, then the rest
    assert an2.counters["incidents_restored"] > 0           # restored before the first record
    assert an2.counters["incident_replays_skipped"] == 40
    exp = expected_failures(items, str(TRUST))
    recs = cluster.records(TOPICS["diagnoses"])
    assert {r.key.decode() for r in recs} == set(exp)
    assert len(recs) == len(exp) + len(first)        # the replayed batch's, re-sent
    assert sum(incident_counts(cluster).values()) == len(exp)     # counted once
    ids = [json.loads(r.value)["incident"] for r in cluster.records(TOPICS["incidents"])
           if b'"event":"opened"' in r.value]
    assert len(ids) == len(set(ids)) and events_before > 0


def test_profiles_snapshot_and_restore_by_a_new_instance(items, diag):
    cluster = FakeCluster()
    publish(cluster, items)
    an = analyzer(cluster, diag)
    drain(an)
    an.producer.begin_transaction()                 # what run() does at shutdown
    an.state.snapshot_profiles(an.producer, force=True)
    an.commit({})
    snaps = cluster.latest(TOPICS["profiles"])
    mine = {k.decode() for k in snaps if k.count(b"/") == 2}
    assert mine and all(k.startswith("g/%s/" % H) for k in mine)
    learned = sum(len(e.profiles) for e in an.state.engines.values())
    an2 = analyzer(cluster, diag)
    an2.consumer.poll()                              # the first poll joins: restore
    assert an2.counters["profiles_restored"] == learned > 0
    # revoked: the partitions' state is dropped
    an2.consumer.revoke_all()
    assert not an2.state.engines and not an2.incidents.open


def test_malformed_state_records_are_skipped_counted_and_the_rest_restored(items, diag):
    """Hostile records under the analyzer's own state keys (what a compacted topic keeps for
    good) used to raise in the rebalance listener: no start, ever again.  Now each is skipped,
    counted in a metric and logged; the other partitions' state is restored."""
    cluster = FakeCluster()
    publish(cluster, items)
    an = analyzer(cluster, diag, exactly_once=False)
    drain(an)
    an.producer.begin_transaction()
    an.state.snapshot_profiles(an.producer, force=True)
    an.commit({})
    good = {p: len(e.profiles) for p, e in an.state.engines.items()}
    assert len(good) == 3 and all(good.values())
    nprof = len(cluster.partitions(TOPICS["profiles"]))
    prof = b'{"format":"tlsdiag-profiles","version":1,"profiles":%s}'
    inc = json.dumps({"format": "tlsdiag-incidents", "version": 1, "offset": 0, "incidents": [
        {"key": ["northbound", "1.2.3.4:443", "x"], "id": "zz", "first_seen": 1.0,
         "last_seen": 1.0, "count": 1},
        {"key": ["northbound", "1.2.3.4:443", "y"], "id": "abcdef0123456789",
         "first_seen": 1.0, "last_seen": 1e300, "count": 1}]}).encode()
    for k, v in [("g/%s/0" % H, prof % b'[{"server":"a:1","count":1e400}]'),
                 ("g/%s/1" % H, b"[" * 100_000),
                 ("g/%s/0/incidents" % H, b"[" * 100_000),
                 ("g/%s/1/incidents" % H, inc),
                 ("g/%s/2/incidents" % H,
                  b'{"format":"tlsdiag-incidents","version":2,"offset":0,"gen":1e400,'
                  b'"chunks":{"a":[1,1000000000]}}')]:
        cluster.append(TOPICS["profiles"], kafka_partition(k.encode(), nprof), k.encode(), v)
    an2 = analyzer(cluster, diag, exactly_once=False)
    t0 = time.monotonic()
    an2.consumer.poll()                              # the first poll joins: restore
    assert time.monotonic() - t0 < 5                 # no loop over a billion parts
    assert an2.counters["state_records_malformed"] == 5
    assert an2.counters["profiles_restored"] == good[2]           # partition 2's, intact
    metrics = {m[0]: m[3] for m in an2.metrics()}
    assert metrics["tlsdiag_analyzer_state_records_malformed_total"] == 5
    assert not an2.incidents.open
    publish(cluster, items[:3])
    assert drain(an2) == 3                           # and it runs


def test_state_records_of_a_partition_go_to_the_head_keys_partition(items, diag):
    cluster = FakeCluster()
    cluster.create_topic(TOPICS["profiles"], 5)
    publish(cluster, items)
    drain(analyzer(cluster, diag, incident_update_s=0.0))
    by_input: dict = {}
    for r in cluster.records(TOPICS["profiles"]):
        k = r.key.decode()
        if "/incidents" in k:
            by_input.setdefault(k.split("/incidents")[0], set()).add(r.partition)
    assert by_input
    for head, parts in by_input.items():
        assert parts == {kafka_partition((head + "/incidents").encode(), 5)}


def test_run_commits_a_last_transaction_and_closes_on_stop(items, diag):
    cluster = FakeCluster()
    publish(cluster, items)
    prod, cons = factories(cluster)
    created: list = []
    an = Analyzer(config(), diag, partition=kafka_partition, producer_factory=prod,
                  consumer_factory=cons, ensure_topics=lambda b, t: created.append((b, t)))

    def stop():
        an.stop_requested = True
    cluster.on_idle = stop
    try:
        an.run()
    finally:
        gc.unfreeze()
    assert created == [("fake:9092", {
        TOPICS["handshakes"]: topics.HANDSHAKES, TOPICS["certs"]: topics.CERTS,
        TOPICS["profiles"]: topics.PROFILES, TOPICS["diagnoses"]: topics.DIAGNOSES,
        TOPICS["incidents"]: topics.INCIDENTS, TOPICS["dlq"]: topics.DLQ})]
    p = cluster.producers[0]
    assert p.config["transactional_id"] == "tlsdiag-g-0"
    assert p.config["linger_ms"] == 200 and p.config["batch_size"] == 1 << 20
    assert p.closed and not p.in_transaction and p.aborts == 0
    assert all(c.closed for c in cluster.consumers)
    assert an.counters["summaries"] == len(items)
    # the shutdown saved the profiles (force), in the last committed transaction
    assert any(k.count(b"/") == 2 for k in cluster.latest(TOPICS["profiles"]))


def test_certstore_does_not_take_a_metadata_error_for_the_end(items):
    """CertStore.catch_up reads to the end offsets; when they cannot be read it keeps reading
    until its deadline instead of returning at once (which would start the analyzer without
    the certificates)."""
    cluster = FakeCluster()
    publish(cluster, items[:20])
    _, cons = factories(cluster)
    store = CertStore("fake:9092", TOPICS["certs"], 1000, cons)
    store.catch_up(time.monotonic() + 5)
    assert len(store) == len({c[0] for _, cs in items[:20] for c in cs}) > 0
    assert store._at_end()
    cluster.faults["end_offsets"] = KafkaTimeoutError("metadata")
    assert not store._at_end()
    t = time.monotonic()
    store.catch_up(t + 0.3)
    assert time.monotonic() - t >= 0.3
    del cluster.faults["end_offsets"]
    t = time.monotonic()
    store.catch_up(t + 5)
    assert time.monotonic() - t < 1


def test_certstore_is_bounded_by_bytes_too(items):
    """Certificates of a few hundred KB each (a record may hold 4 MB): the store keeps the
    newest within its byte budget, as within its count."""
    cluster = FakeCluster()
    ders = [bytes([i]) * 300_000 for i in range(10)]
    for der in ders:
        sha = hashlib.sha256(der).digest()
        k = sha.hex().encode()
        cluster.append(TOPICS["certs"], kafka_partition(k, len(cluster.partitions(TOPICS["certs"]))), k,
                       encode_certificate(sha, der, {}))
    _, cons = factories(cluster)
    store = CertStore("fake:9092", TOPICS["certs"], 1000, cons, max_bytes=1_000_000)
    store.catch_up(time.monotonic() + 5)
    assert len(store) == 3 and 900_000 < store._bytes <= 1_000_000
    assert store.bad == 0
    # the facts count too: a tiny DER with 100 KB of facts (~8x that as Python objects)
    cluster = FakeCluster()
    for i in range(10):
        der = bytes([i]) * 5
        sha = hashlib.sha256(der).digest()
        cluster.append(TOPICS["certs"], 0, sha.hex().encode(),
                       encode_certificate(sha, der, {"junk": ["x" * 100] * 1000}))
    _, cons = factories(cluster)
    store = CertStore("fake:9092", TOPICS["certs"], 1000, cons, max_bytes=2_000_000)
    store.catch_up(time.monotonic() + 5)
    assert len(store) == 2 and store._bytes <= 2_000_000


def test_a_dead_letter_too_large_for_kafka_keeps_its_head_and_says_how_long_it_was(items, diag):
    """A 1 MB value the broker took, copied to the DLQ with headers, would be over its limit:
    the copy keeps its first 512 KB and a ``truncated`` header (the analyzer stopped there, on
    every restart)."""
    cluster = FakeCluster()
    big = b"\x00" + b"x" * (1 << 20)
    cluster.append(H, 0, b"big", big)
    publish(cluster, items[:5])
    an = analyzer(cluster, diag)
    assert drain(an) == 6 and an.counters["summaries"] == 5
    (r,) = cluster.records(TOPICS["dlq"])
    assert r.value == big[:consumer_mod.DLQ_MAX_VALUE]
    assert dict(r.headers)["truncated"] == b"%d" % len(big)


def test_an_output_too_large_for_kafka_is_cut_and_counted(items, diag, monkeypatch):
    monkeypatch.setattr(consumer_mod, "OUTPUT_MAX_BYTES", 600)
    cluster, an = drained(items, diag)
    recs = cluster.records(TOPICS["diagnoses"])
    assert recs and an.counters["outputs_cut"] >= len(recs)
    for r in recs:                  # (600 bytes: not even the cut copies fit, their names do)
        d = json.loads(r.value)
        assert d["id"] and d["cause"] and d["cut"] is True and len(r.value) <= 600
    metrics = {m[0]: m[3] for m in an.metrics()}
    assert metrics["tlsdiag_analyzer_outputs_cut_total"] == an.counters["outputs_cut"]
    # what a 3.9 MB server name did to a diagnosis (15.6 MB), and lists without end, cut
    huge = {"id": "x", "connection": {"server_name": "a" * 3_900_000},
            "explanation": "b" * 3_900_000, "evidence": {"certs": [{"n": "c" * 5000}] * 100_000,
                                                         "deep": [[[[[[[[[["d"]]]]]]]]]]}}
    cut = json.dumps(consumer_mod._cut(huge))
    assert len(cut) < 100_000 and '"id": "x"' in cut


def test_at_least_once_a_record_kafka_refused_stops_the_batch_uncommitted(items, diag):
    """--at-least-once: a send that failed (the broker refused it) was dropped by the flush and
    the offsets committed past it; now the batch raises and nothing is committed."""
    cluster = FakeCluster()
    publish(cluster, items[:10])
    an = analyzer(cluster, diag, exactly_once=False)
    inner = an.producer._p
    send = inner.send

    def refusing(topic, **kw):
        f = send(topic, **kw)
        if topic == TOPICS["diagnoses"]:
            f.fail(KafkaTimeoutError("MessageSizeTooLargeError"))
        return f

    inner.send = refusing
    with pytest.raises(KafkaTimeoutError):
        drain(an)
    assert not [k for k in cluster.committed if k[0] == "g"]


def test_a_profiles_snapshot_keeps_the_newest_that_fit_in_a_record(items, diag, monkeypatch):
    monkeypatch.setattr(state_mod, "RECORD_MAX_BYTES", 1500)
    cluster, an = drained(items, diag)
    an.producer.begin_transaction()
    an.state.snapshot_profiles(an.producer, force=True)
    an.commit({})
    snaps = {k: v for k, v in cluster.latest(TOPICS["profiles"]).items() if k.count(b"/") == 2}
    assert snaps and all(len(v) <= 1500 for v in snaps.values())
    assert an.counters["profiles_not_saved"] > 0
    kept = sum(len(json.loads(v)["profiles"]) for v in snaps.values())
    an2 = analyzer(cluster, diag)
    an2.consumer.poll()
    assert an2.counters["profiles_restored"] == kept > 0


def test_a_summary_from_the_far_future_does_not_resolve_every_incident(items, diag):
    """One successful summary dated in the year 3000 (a sensor's broken clock) moved the data's
    clock there: every open incident resolved ("no failure for 600 s"), and every later one in
    the batch that opened it, also after a restart.  The clock stops near the host's own."""
    _, an = drained(items, diag)
    want = len(an.incidents.open)
    assert want > 0
    cluster = FakeCluster()
    ok = next((raw, cs) for raw, cs in items if raw.get("established"))
    future = dict(ok[0], start=32503680000.0, end=32503680000.5, id="f" * 16)
    # and a failure from the future: diagnosed, but no incident of its own, held open for ever
    bad = next((raw, cs) for raw, cs in items if not raw.get("established"))
    late = dict(bad[0], start=32503680000.0, end=32503680000.5, id="e" * 16,
                server="198.51.100.7:443")
    publish(cluster, items[: len(items) // 2] + [(future, ok[1]), (late, bad[1])]
            + items[len(items) // 2:])
    an = analyzer(cluster, diag)
    drain(an)
    assert len(an.incidents.open) == want and an.counters["data_time_ahead"] == 2
    assert "e" * 16 in {r.key.decode() for r in cluster.records(TOPICS["diagnoses"])}
    assert an.state.data_time <= time.time() + state_mod.CLOCK_AHEAD_S


def test_an_output_still_too_large_when_cut_keeps_its_identity(monkeypatch):
    """Texts cut to 1,000 characters are up to 4 KB each in UTF-8, and a diagnosis carries two
    chains of up to 16 certificates: when even the cut copy is over the bound, the record keeps
    what names it (id, cause, severity...) and says it was cut."""
    monkeypatch.setattr(consumer_mod, "OUTPUT_MAX_BYTES", 2000)
    an = Analyzer.__new__(Analyzer)
    an.counters = Counter()
    d = {"id": "x" * 16, "cause": "hostname_mismatch", "severity": "failure",
         "evidence": {"chain": [{"subject": "\U0001D538" * 2000}] * 16}}
    value = an._fit(d)
    assert len(value) <= 2000 and an.counters["outputs_cut"] == 1
    assert json.loads(value) == {"id": "x" * 16, "cause": "hostname_mismatch",
                                 "severity": "failure", "cut": True}
