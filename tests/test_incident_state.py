"""The incident state saved in chunk records (analyzer.incidents, format 2): 10,000 open
incidents in one partition round-trip with every record under the limit; a one-incident change
rewrites one chunk; any prefix of a save's records (what a SIGKILL leaves in at-least-once
mode) restores to exactly the old or the new state; orphans of an interrupted save are named
for deletion; a format 1 state is still read.  And the resolve hold: an intermittent failure
is one incident, resolved only once its last failure is ``resolve_hold`` old (data time)."""
from __future__ import annotations

import json
import random

import pytest

from analyzer import incidents as I
from analyzer.incidents import IncidentTracker
from tests.support.incidents import format1_record


def diag(i, server, cause="certificate_expired", direction="southbound"):
    return {"id": "c%d" % i, "cause": cause, "direction": direction, "rule": "R-%s" % cause,
            "explanation": "the backend's certificate expired é " + "x" * 300,
            "evidence": {"not_after": "2026-01-01T00:00:00Z", "alerts": [i % 5]},
            "remediation": "renew the certificate " + "y" * 300, "rejected_by": "client",
            "connection": {"client": "10.0.3.%d:%d" % (i % 7, 40000 + i % 20000),
                           "server": server, "server_name": "b%d.example.test" % (i % 3)}}


def server(i):
    return "10.%d.%d.%d:443" % (20 + i // 65536, i // 256 % 256, i % 256)


def apply(topic, records):
    """A compacted topic after ``records``: the latest value per key, tombstones delete."""
    out = dict(topic)
    for k, v in records:
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


def state(t, part=0):
    """Canonical view of a partition's state (order-free)."""
    incs = sorted((inc.to_state() for inc in t.open.values() if inc.part == part),
                  key=lambda d: d["key"])
    return json.dumps({"incidents": incs,
                       "north": sorted(map(list, (t._north.get(part) or {}).items()))},
                      sort_keys=True)


def restored(topic, **kw):
    u = IncidentTracker(**kw)
    head, n, orphans = u.restore_records(0, topic)
    return u, head, n, orphans


def v1_record(t, part, **extra):
    """The format 1 record (one document per partition) analyzers before format 2 wrote."""
    return format1_record(t, part, **extra)


def test_ten_thousand_open_incidents_round_trip_in_bounded_records():
    t = IncidentTracker(update_interval=30, max_open=10_000)
    for i in range(10_000):
        assert t.failure(diag(i, server(i)), "mp-1", 1000.0 + i * 0.01, now=1.0)
    t.success("northbound", "10.0.1.1:443", "router-1", 1050.0, now=1.0)
    assert len(t.open) == 10_000 and t.dropped == 0
    # the old single record would be ~10 MB: far over the limit (it was not saved at all)
    assert len(v1_record(t, 0, offset=1)) > 10 * I.RECORD_MAX_BYTES
    recs = t.save_records(0, offset=10_001, data_time=1100.0)
    assert recs[-1][0] == "" or any(k == "" for k, _ in recs)
    sizes = [len(v) for _, v in recs if v is not None]
    assert max(sizes) <= I.RECORD_MAX_BYTES, max(sizes)
    assert len(recs) == I.NCHUNKS + 2                    # every chunk + north + head
    assert max(sizes[:-1]) < 100_000                     # ~20 incidents a chunk
    topic = apply({}, recs)
    u, head, n, orphans = restored(topic, max_open=10_000)
    assert n == 10_000 and orphans == [] and head["offset"] == 10_001
    assert head["data_time"] == 1100.0 and head["missing"] == []
    assert state(u) == state(t)

    # one incident changes: one chunk record, the head, one tombstone (the replaced chunk)
    t.take_dirty()
    t.failure(diag(10_001, server(17)), "mp-1", 2000.0, now=2.0)
    assert t.take_dirty() == {0}
    recs = t.save_records(0, offset=10_002, data_time=2000.0)
    assert [v is None for _, v in recs] == [False, False, True], [k for k, _ in recs]
    assert recs[1][0] == "" and recs[2][0].rsplit("/", 2)[0] == recs[0][0].rsplit("/", 2)[0]
    assert sum(len(v) for _, v in recs if v) < 200_000   # not O(open incidents)
    topic = apply(topic, recs)
    assert len(topic) == I.NCHUNKS + 2                   # nothing left behind
    u, head, n, orphans = restored(topic, max_open=10_000, update_interval=0)
    assert n == 10_000 and orphans == [] and head["offset"] == 10_002
    assert state(u) == state(t)
    # the restored tracker continues: the incident is not opened again, its count goes on
    ev = u.failure(diag(10_002, server(17)), "mp-1", 2001.0, now=3.0)
    assert [e["event"] for e in ev] == ["updated"] and ev[0]["count"] == 3
    # and its next save builds on the restored layout (one chunk, head, one tombstone)
    recs = u.save_records(0, offset=10_003)
    assert [v is None for _, v in recs] == [False, False, True]
    topic = apply(topic, recs)
    w, head, n, orphans = restored(topic, max_open=10_000)
    assert n == 10_000 and not orphans and state(w) == state(u)


def test_unchanged_partition_writes_only_its_head_and_north_only_when_it_changed():
    t = IncidentTracker()
    # northbound: a new northbound bucket does not change it (no correlation)
    t.failure(diag(0, server(0), direction="northbound"), "mp", 100.0, now=1.0)
    topic = apply({}, t.save_records(0, offset=1))
    assert sorted(k.split("/")[1] for k in topic if k) == [str(t.chunk_of(next(iter(
        t.open.values()))))]
    t.success("northbound", "10.0.1.1:443", "r", 101.0, now=1.0)       # a new north bucket
    recs = t.save_records(0, offset=2)
    assert [k.split("/")[1] if k else "" for k, v in recs if v] == ["n", ""]
    t.success("northbound", "10.0.1.1:443", "r", 101.5, now=1.0)       # same bucket, +1
    recs = t.save_records(0, offset=3)
    assert [k.split("/")[1] if k else "" for k, v in recs] == ["n", "", "n"]   # + tombstone
    topic = apply(apply(topic, t.save_records(0, offset=3)), [])
    recs = t.save_records(0, offset=4)                  # nothing changed: the head alone
    assert [k for k, _ in recs] == [""]


def _history(tiny_records):
    """A tracker through a few saves, with resolutions, new incidents, north buckets, and
    (``tiny_records``) chunks split into several parts."""
    rnd = random.Random(7)
    t = IncidentTracker(update_interval=5, resolve_successes=2, resolve_hold=0, window=30,
                        nchunks=4)
    saves = []
    topic: dict = {}
    for step in range(6):
        for k in range(40):
            i = step * 40 + k
            if rnd.random() < 0.7:
                t.failure(diag(i, server(rnd.randrange(25))), "mp", 100.0 + i, now=float(i))
            elif rnd.random() < 0.5:
                t.success("southbound", server(rnd.randrange(25)), "mp", 100.0 + i,
                          now=float(i))
            else:
                t.success("northbound", "10.0.1.%d:443" % rnd.randrange(3), "r", 100.0 + i,
                          now=float(i))
        t.tick(now=step * 40 + 40.0, data_time=100.0 + step * 40 + 40)
        t.take_dirty()
        recs = t.save_records(0, offset=step * 40 + 40, data_time=140.0 + step * 40)
        saves.append((topic, recs, state(t), step * 40 + 40))
        topic = apply(topic, recs)
    return saves


@pytest.mark.parametrize("tiny_records", [False, True])
def test_every_crash_prefix_restores_the_old_or_the_new_state(monkeypatch, tiny_records):
    if tiny_records:          # chunks of ~10 incidents split into parts of ~3
        monkeypatch.setattr(I, "RECORD_MAX_BYTES", 3_000)
    saves = _history(tiny_records)
    if tiny_records:
        assert any(int(k.rsplit("/", 1)[1]) > 0 for _, recs, _, _ in saves for k, _ in recs if k)
    old_state, old_offset = state(IncidentTracker()), None
    for before, recs, new_state, new_offset in saves:
        assert any(v is None for _, v in recs) or before == {}
        head_at = [k for k, _ in recs].index("")
        for cut in range(len(recs) + 1):
            topic = apply(before, recs[:cut])
            u, head, n, orphans = restored(topic, update_interval=5, resolve_successes=2,
                                           resolve_hold=0, window=30, nchunks=4)
            got = state(u)
            if cut <= head_at:            # the new head not written: the old state, exactly
                assert got == old_state, cut
                assert (head or {}).get("offset") == old_offset
            else:
                assert got == new_state, cut
                assert head["offset"] == new_offset and head["missing"] == []
            # the orphans are exactly the records the head does not name; deleting them
            # leaves the state unchanged and nothing else to delete
            cleaned = apply(topic, [(s, None) for s in orphans])
            v, head2, _, orphans2 = restored(cleaned, update_interval=5, resolve_successes=2,
                                             resolve_hold=0, window=30, nchunks=4)
            assert orphans2 == [] and state(v) == got
            if cut < len(recs):
                # the restarted analyzer saves again: its generation is new, so its records
                # never overwrite one the head names, and the result restores exactly
                v.failure(diag(9999, server(3)), "mp", 1000.0, now=1000.0)
                again = v.save_records(0, offset=777)
                named = {k for k, v in again if k and v is not None}
                assert not named & set(cleaned)
                w, head3, _, orphans3 = restored(apply(cleaned, again), update_interval=5,
                                                 resolve_successes=2, resolve_hold=0,
                                                 window=30, nchunks=4)
                assert orphans3 == [] and state(w) == state(v) and head3["offset"] == 777
        old_state, old_offset = new_state, new_offset


def test_orphans_of_an_interrupted_save_are_named_and_generations_stay_new():
    t = IncidentTracker(nchunks=8)
    for i in range(30):
        t.failure(diag(i, server(i)), "mp", 100.0 + i, now=1.0)
    topic = apply({}, t.save_records(0, offset=30))
    for i in range(30, 40):
        t.failure(diag(i, server(i)), "mp", 100.0 + i, now=1.0)
    recs = t.save_records(0, offset=40)
    chunk_recs = [(k, v) for k, v in recs if k and v is not None]
    assert chunk_recs
    crashed = apply(topic, chunk_recs)           # chunks written, the head not
    u, head, n, orphans = restored(crashed, nchunks=8)
    assert head["offset"] == 30 and n == 30
    assert orphans == sorted(k for k, _ in chunk_recs)
    top_gen = max(int(k.split("/")[2]) for k in crashed if k)
    u.failure(diag(99, server(99)), "mp", 500.0, now=1.0)
    nxt = u.save_records(0, offset=31)
    assert all(int(k.split("/")[2]) > top_gen for k, v in nxt if k and v is not None)


def test_format_1_state_is_read_and_rewritten_whole():
    t = IncidentTracker(nchunks=8)
    for i in range(20):
        t.failure(diag(i, server(i % 12)), "mp", 100.0 + i, now=1.0)
    t.success("northbound", "10.0.1.1:443", "r", 110.0, now=1.0)
    v1 = v1_record(t, 0, offset=21, data_time=119.0)                   # what 1.x wrote
    topic = {"": v1}
    u, head, n, orphans = restored(topic, nchunks=8)
    assert n == 12 and head["offset"] == 21 and head["data_time"] == 119.0 and not orphans
    assert state(u) == state(t)
    # a change to one incident: the first save writes the whole state in format 2 (no
    # tombstone: the format 1 record has the head's key and is replaced by the head)
    u.failure(diag(50, server(0)), "mp", 200.0, now=2.0)
    recs = u.save_records(0, offset=22)
    assert all(v is not None for _, v in recs)
    assert json.loads(dict(recs)[""])["version"] == 2
    # crashed before that head: still the format 1 state, the new records are orphans
    w, head, n, orphans = restored(apply(topic, recs[:-1]), nchunks=8)
    assert head["version"] == 1 and n == 12 and state(w) == state(t)
    assert orphans == sorted(k for k, _ in recs[:-1])
    w, head, n, orphans = restored(apply(topic, recs), nchunks=8)
    assert head["version"] == 2 and n == 12 and not orphans and state(w) == state(u)


def test_another_chunk_count_rewrites_everything_and_deletes_the_old_records():
    t = IncidentTracker(nchunks=8)
    for i in range(40):
        t.failure(diag(i, server(i)), "mp", 100.0 + i, now=1.0)
    topic = apply({}, t.save_records(0, offset=40))
    u, head, n, orphans = restored(topic, nchunks=16)
    assert n == 40 and not orphans
    u.failure(diag(100, server(1)), "mp", 300.0, now=1.0)
    recs = u.save_records(0, offset=41)
    topic2 = apply(topic, recs)
    assert set(topic2) == {k for k, v in recs if v is not None}      # old records deleted
    w, head, n, orphans = restored(topic2, nchunks=16)
    assert n == 40 and not orphans and head["nchunks"] == 16 and state(w) == state(u)


def test_missing_or_malformed_records_are_reported_never_a_traceback():
    t = IncidentTracker(nchunks=4)
    for i in range(12):
        t.failure(diag(i, server(i)), "mp", 100.0 + i, now=1.0)
    topic = apply({}, t.save_records(0, offset=12))
    gone = sorted(k for k in topic if k)[0]
    broken = dict(topic)
    del broken[gone]
    u, head, n, orphans = restored(broken, nchunks=4)
    assert head["missing"] == [gone] and 0 < n < 12
    broken[gone] = b"{not json"
    u, head, n, _ = restored(broken, nchunks=4)
    assert head["missing"] == [gone] and 0 < n < 12
    # a missing record makes the next save rewrite the whole state
    u.failure(diag(50, server(50)), "mp", 200.0, now=1.0)
    fixed = apply(broken, u.save_records(0, offset=13))
    w, head, n2, orphans = restored(fixed, nchunks=4)
    assert head["missing"] == [] and n2 == n + 1 and not orphans
    for bad in ({"": b"\xff\xfe"}, {"": b"[]"}, {"": b'{"format":"x"}'},
                {"": b'{"format":"tlsdiag-incidents","version":2,"chunks":5}'},
                {"/1/x/0": b"{}", "/zz": b"1"}):
        u, head, n, orphans = restored(bad)
        assert head is None and n == 0 and not u.open
        assert orphans == sorted(k for k in bad if k)


def test_hostile_records_are_skipped_counted_and_the_rest_restored():
    """Whatever a record holds -- deep JSON, 1e400, NaN, a non-hex id, a billion parts, a
    5,000-digit generation -- restore neither raises nor loops: the record (or its bad items)
    is skipped and counted in ``malformed``, the rest restored."""
    t = IncidentTracker(nchunks=4)
    for i in range(12):
        t.failure(diag(i, server(i)), "mp", 100.0 + i, now=1.0)
    t.success("northbound", "10.0.1.1:443", "router-1", 105.0, now=1.0)
    topic = apply({}, t.save_records(0, offset=12))
    chunks = sorted(k for k in topic if k and not k.startswith("/n/"))
    north = next(k for k in topic if k.startswith("/n/"))
    good = json.loads(topic[chunks[0]])
    item = good["incidents"][0]
    good["incidents"] += [dict(item, id="zz"), dict(item, id=5), dict(item, last_seen=1e400),
                          dict(item, first_seen=float("nan")), dict(item, count=1e400),
                          dict(item, count="5"), dict(item, clients={"a": 1e400}),
                          dict(item, last_emit=-1e300), 5, [1]]
    hostile = dict(topic)
    hostile[chunks[0]] = json.dumps(good).encode()           # 1e400 -> Infinity
    hostile[chunks[1]] = b"[" * 100_000
    ndoc = json.loads(topic[north])
    ndoc["north"] += [[1e400, "r", None, 1], [1.0, "r", None, 1e400], "abcd", 5]
    hostile[north] = json.dumps(ndoc).encode()
    head = json.loads(topic[""])
    head["chunks"]["9"] = [1, 10 ** 9]
    head["chunks"]["8"] = [1e400, 1]
    head["chunks"]["7"] = "x"
    hostile[""] = json.dumps(head).encode()
    hostile["/0/" + "9" * 5000 + "/0"] = b"{}"
    hostile["/0/\u00b2/0"] = b"{}"
    u, head2, n, orphans = restored(hostile, nchunks=4)
    assert n == 12 - len(json.loads(topic[chunks[1]])["incidents"])     # only the deep one's
    assert head2["missing"] == [chunks[1]] and head2["offset"] == 12
    assert u.malformed == 4                    # head, two chunks, north
    assert len(u._north[0]) == len(t._north[0])
    assert "/0/" + "9" * 5000 + "/0" in orphans
    # the next save rewrites it whole, and that restores cleanly
    fixed = apply(hostile, u.save_records(0, offset=13))
    w, head3, n3, _ = restored(fixed, nchunks=4)
    assert n3 == n and head3["missing"] == [] and w.malformed == 0
    # a format 1 document with the same items; a head that is not one
    v1 = json.loads(v1_record(t, 0, offset=12))
    v1["incidents"] += good["incidents"][-10:]
    u, head4, n4, _ = restored({"": json.dumps(v1).encode()})
    assert n4 == 12 and u.malformed == 1
    for bad in (b"[" * 100_000, b'{"format":"tlsdiag-incidents","version":2,"chunks":5}'):
        u, head5, _, _ = restored({"": bad})
        assert head5 is None and u.malformed == 1


# -- resolve hold -----------------------------------------------------------------------------

def intermittent(t, seconds, p_fail=0.1, seed=3, start=1000.0, backend="10.0.3.9:443"):
    """One handshake a second to ``backend`` for ``seconds`` of data time, one in ten failing
    (one bad instance behind a VIP); ``now`` follows data time.  Returns the events."""
    rnd = random.Random(seed)
    events = []
    for s in range(seconds):
        ts = start + s
        if rnd.random() < p_fail:
            events += t.failure(diag(s, backend), "mp-1", ts, now=ts)
        else:
            events += t.success("southbound", backend, "mp-1", ts, now=ts)
        if s % 5 == 0:
            events += t.tick(now=ts, data_time=ts)
    return events


def test_intermittent_failure_is_one_incident_resolved_only_after_the_hold():
    t = IncidentTracker(update_interval=30, resolve_successes=3, resolve_hold=60)
    evs = intermittent(t, 600)
    kinds = [e["event"] for e in evs]
    (inc,) = t.open.values()
    fails = inc.count
    assert fails >= 40
    assert kinds.count("opened") == 1 and kinds.count("resolved") == 0
    assert 5 <= kinds.count("updated") <= 600 // 30 + 1          # rate-limited
    last_failure = inc.last_seen
    # the failures stop, successes go on: resolved once the last failure is 60 s old
    rest = []
    for s in range(600, 700):
        ts = 1000.0 + s
        rest += [(ts, e) for e in t.success("southbound", "10.0.3.9:443", "mp-1", ts, now=ts)]
    assert [e["event"] for _, e in rest] == ["resolved"]
    assert not t.open
    assert 60 <= rest[0][0] - last_failure <= 62
    assert rest[0][1]["count"] == fails


def test_hold_zero_is_the_old_behaviour_flapping():
    t = IncidentTracker(update_interval=30, resolve_successes=3, resolve_hold=0)
    kinds = [e["event"] for e in intermittent(t, 600)]
    assert kinds.count("opened") >= 20 and kinds.count("resolved") >= 20


def test_held_incident_resolves_in_tick_by_data_time():
    t = IncidentTracker(resolve_successes=3, resolve_hold=60)
    t.failure(diag(0, "10.0.3.9:443"), "mp", 100.0, now=1.0)
    for k in range(3):                               # enough successes, within the hold
        assert t.success("southbound", "10.0.3.9:443", "mp", 101.0 + k, now=2.0) == []
    assert t.tick(now=500.0, data_time=159.0) == []  # 59 s of data time: still held
    ev = t.tick(now=501.0, data_time=160.0)
    assert [e["event"] for e in ev] == ["resolved"] and not t.open
    assert ev[0]["resolution"] == "handshakes to this server succeed again"
    # a failure within the hold resets the success count: not resolved by tick
    t.failure(diag(1, "10.0.3.9:443"), "mp", 200.0, now=1.0)
    for k in range(3):
        t.success("southbound", "10.0.3.9:443", "mp", 201.0 + k, now=2.0)
    t.failure(diag(2, "10.0.3.9:443"), "mp", 210.0, now=3.0)
    assert "resolved" not in [e["event"] for e in t.tick(now=600.0, data_time=300.0)]
    assert t.open
