"""analyzer.incidents: grouping, rate-limited updates, resolution, cross-hop correlation (pure)."""
from __future__ import annotations

from analyzer.incidents import IncidentTracker
from tests.support.incidents import format1_document, north_buckets


def diag(i, direction="southbound", server="10.0.3.2:443", cause="cipher_mismatch", client=None):
    return {"id": "c%d" % i, "cause": cause, "direction": direction, "rule": "R",
            "explanation": "why", "evidence": {"alerts": []}, "remediation": "fix it",
            "rejected_by": "server",
            "connection": {"client": client or "10.0.3.1:%d" % (40000 + i), "server": server,
                           "server_name": "backend.example.test"}}


def test_grouping_updates_and_resolution():
    t = IncidentTracker(update_interval=10, resolve_successes=2, resolve_quiet=600, resolve_hold=0)
    ev = t.failure(diag(0), "mp-1", 100.0, now=1000.0)
    assert [e["event"] for e in ev] == ["opened"] and ev[0]["count"] == 1
    # more failures inside the update interval: no event (rate limit)
    for i in range(1, 5):
        assert t.failure(diag(i), "mp-1", 100.0 + i, now=1001.0) == []
    # another cause on the same server is another incident
    ev2 = t.failure(diag(9, cause="protocol_mismatch"), "mp-1", 105.0, now=1002.0)
    assert ev2[0]["event"] == "opened" and ev2[0]["incident"] != ev[0]["incident"]
    # after the interval: one update carrying the count, clients, sensors, first/last seen
    up = t.tick(now=1011.0, data_time=105.0)
    assert len(up) == 1 and up[0]["event"] == "updated" and up[0]["count"] == 5
    assert up[0]["affected_clients"] == 1 and up[0]["sensors"] == ["mp-1"]   # same host
    assert up[0]["first_seen"] < up[0]["last_seen"]
    assert up[0]["remediation"] == "fix it" and up[0]["sample_connection"] == "c0"
    assert t.tick(now=1030.0, data_time=105.0) == []                         # nothing new
    # successes to that server resolve both of its incidents, after 2 of them
    assert t.success("southbound", "10.0.3.2:443", "mp-1", 110.0, now=1031.0) == []
    res = t.success("southbound", "10.0.3.2:443", "mp-1", 111.0, now=1032.0)
    assert sorted(e["cause"] for e in res) == ["cipher_mismatch", "protocol_mismatch"]
    assert all(e["event"] == "resolved" and e["state"] == "resolved" for e in res)
    assert not t.open
    # a new failure opens a new incident (new id)
    again = t.failure(diag(20), "mp-1", 200.0, now=1040.0)
    assert again[0]["event"] == "opened" and again[0]["incident"] != ev[0]["incident"]


def test_an_incident_timed_outside_datetimes_range_has_no_time_not_a_crash():
    for t in (float("nan"), float("inf"), -float("inf"), 1e308, 2.0 ** 64, 253402300800.0):
        ev = IncidentTracker().failure(diag(0), "mp-1", t, now=1.0)
        assert ev[0]["event"] == "opened" and ev[0]["first_seen"] is None, t
        assert ev[0]["last_seen"] is None


def test_quiet_incidents_resolve_by_data_time():
    t = IncidentTracker(resolve_quiet=60)
    t.failure(diag(0, direction="northbound", server="10.0.1.1:443"), "r", 100.0, now=1.0)
    assert t.tick(now=2.0, data_time=150.0) == []
    ev = t.tick(now=3.0, data_time=161.0)
    assert ev[0]["event"] == "resolved" and "no failure" in ev[0]["resolution"]


def test_cross_hop_backend_failure_explains_client_facing_503():
    t = IncidentTracker(window=60)
    # northbound successes to the router first, then southbound failures to the backend
    for i in range(3):
        t.success("northbound", "10.0.1.1:443", "router-1", 100.0 + i, now=1.0)
    ev = t.failure(diag(0), "mp-1", 110.0, now=2.0)
    imp = ev[0]["impact"]
    assert imp["client_facing"] and imp["http_status"] == 503
    assert imp["routers"] == ["10.0.1.1:443"] and imp["router_sensors"] == ["router-1"]
    assert imp["backend"] == "10.0.3.2:443" and imp["backend_sensors"] == ["mp-1"]
    assert "503" in imp["text"] and "10.0.3.2:443" in imp["text"]


def test_cross_hop_when_router_successes_come_later():
    t = IncidentTracker(window=60)
    ev = t.failure(diag(0), "mp-1", 100.0, now=1.0)
    assert ev[0]["impact"] is None
    up = t.success("northbound", "10.0.1.1:443", "router-1", 120.0, now=2.0)
    assert up and up[0]["event"] == "updated" and up[0]["impact"]["client_facing"]


def test_a_failure_storm_works_out_the_impact_once_a_second(monkeypatch):
    """A backend outage fails thousands of handshakes a second; the client-facing impact
    walks every northbound bucket (20,000: 4.2 ms a failure, the analyzer's whole budget at
    240 failures a second).  It is worked out again once per second of the incident's data:
    a router that starts succeeding shows in the next second's failure."""
    t = IncidentTracker(window=60)
    for i in range(3):
        t.success("northbound", "10.0.1.1:443", "router-1", 100.0 + i, now=1.0)
    walks = []
    real = IncidentTracker._correlate
    monkeypatch.setattr(IncidentTracker, "_correlate",
                        lambda self, inc: walks.append(inc.last_seen) or real(self, inc))
    ev = []
    for i in range(1000):                               # 1000 failures in 100.0-102.5 s
        ev += t.failure(diag(i), "mp-1", 100.0 + i * 0.0025, now=2.0)
    assert [int(x) for x in walks] == [100, 101, 102]
    assert ev[0]["impact"]["routers"] == ["10.0.1.1:443"]
    t.success("northbound", "10.0.2.1:443", "router-2", 102.6, now=2.1)   # a bucket: walked
    t.success("northbound", "10.0.2.1:443", "router-2", 102.7, now=2.2)   # (not a new one)
    t.success("northbound", "10.0.2.1:443", "router-2", 102.8, now=2.3)
    t.success("northbound", "10.0.2.1:443", "router-2", 102.9, now=2.4)   # more than router-1
    ev = t.failure(diag(1000), "mp-1", 103.0, now=3.0)
    assert ev and ev[0]["event"] == "updated"
    assert ev[0]["impact"]["routers"] == ["10.0.2.1:443", "10.0.1.1:443"]
    assert [int(x) for x in walks] == [100, 101, 102, 103]
    # a burst that ends within one second: the batch's end (tick) tells the new impact,
    # not the next rate-limited update
    for k in range(5):
        t.success("northbound", "10.0.4.1:443", "router-4", 103.1 + k / 100, now=3.1)
    for k in range(5):
        t.success("northbound", "10.0.4.1:443", "router-4", 103.2, now=3.1)
    assert t.failure(diag(1001), "mp-1", 103.5, now=3.2) == []     # (the same second)
    ev = t.tick(3.3, data_time=103.5)
    assert [e["event"] for e in ev] == ["updated"]
    assert ev[0]["impact"]["routers"][0] == "10.0.4.1:443"
    assert t.tick(3.4, data_time=103.5) == []


def test_no_correlation_outside_the_window_or_for_northbound_incidents():
    t = IncidentTracker(window=30)
    t.success("northbound", "10.0.1.1:443", "router-1", 10.0, now=1.0)
    ev = t.failure(diag(0), "mp-1", 100.0, now=2.0)
    assert ev[0]["impact"] is None
    ev = t.failure(diag(1, direction="northbound", server="10.0.1.1:443"), "router-1", 100.0, now=3.0)
    assert ev[0]["impact"] is None


def test_bounded():
    t = IncidentTracker(max_open=3)
    for i in range(5):
        t.failure(diag(i, server="10.0.3.%d:443" % i), "mp", 1.0, now=1.0)
    assert len(t.open) == 3 and t.dropped == 2


def test_format1_restore_per_partition():
    """A partition's open incidents and northbound buckets survive format 1 (what analyzers before format 2
    saved) -> JSON -> restore
    into a new tracker: later failures update the same incident (no second 'opened', same id,
    counts continue), successes keep counting towards resolution, correlation still works."""
    import json
    t = IncidentTracker(update_interval=0, resolve_successes=3, window=60, resolve_hold=0)
    t.success("northbound", "10.0.1.1:443", "router-1", 99.0, now=1.0, part=2)
    a = t.failure(diag(0), "mp-1", 100.0, now=1.0, part=0)[0]
    t.failure(diag(1), "mp-1", 101.0, now=1.0, part=0)
    t.success("southbound", "10.0.3.2:443", "mp-1", 102.0, now=1.0, part=0)   # 1 of 3
    t.failure(diag(2, server="10.0.3.9:443"), "mp-1", 100.0, now=1.0, part=1)
    assert t.take_dirty() == {0, 1, 2} and t.take_dirty() == set()
    docs = {p: json.loads(json.dumps(format1_document(t, p))) for p in t.partitions()}
    assert len(docs[0]["incidents"]) == 1 and len(docs[1]["incidents"]) == 1
    assert docs[2]["north"] == [[99, "10.0.1.1:443", "router-1", 1]]

    u = IncidentTracker(update_interval=0, resolve_successes=3, window=60, resolve_hold=0)
    assert u.restore(0, docs[0]) == 1 and u.restore(2, docs[2]) == 0
    assert set(k[1] for k in u.open) == {"10.0.3.2:443"}          # partition 1 not restored
    assert u.take_dirty() == set()
    ev = u.failure(diag(3), "mp-1", 103.0, now=2.0, part=0)
    assert [e["event"] for e in ev] == ["updated"]
    assert ev[0]["incident"] == a["incident"] and ev[0]["count"] == 3
    assert ev[0]["first_seen"] == a["first_seen"] and ev[0]["remediation"] == "fix it"
    assert ev[0]["impact"]["routers"] == ["10.0.1.1:443"]          # buckets came back too
    assert u.take_dirty() == {0}
    # three successes after the last failure resolve it
    for i in range(3):
        res = u.success("southbound", "10.0.3.2:443", "mp-1", 110.0 + i, now=3.0, part=0)
    assert [e["event"] for e in res] == ["resolved"] and not u.open
    assert format1_document(u, 0)["incidents"] == []


def test_restore_replaces_and_drop_forgets_a_partition():
    t = IncidentTracker()
    t.failure(diag(0), "mp-1", 100.0, now=1.0, part=0)
    t.success("northbound", "10.0.1.1:443", "router-1", 100.0, now=1.0, part=0)
    doc = format1_document(t, 0)
    t.failure(diag(1, cause="protocol_mismatch"), "mp-1", 101.0, now=1.0, part=0)
    assert len(t.open) == 2
    assert t.restore(0, doc) == 1 and len(t.open) == 1              # replaced, not merged
    t.drop(0)
    assert not t.open and format1_document(t, 0) == {**doc, "incidents": [], "north": []}
    # malformed state: ignored, never a traceback
    for bad in (None, [], {"format": "x"}, {**doc, "version": 99},
                {**doc, "incidents": [{"key": "nope"}, 5, {"key": ["a", "b", "c"]}],
                 "north": [[1, 2], "x", [None, "s", None, "n"]]}):
        assert t.restore(0, bad) == 0 and not t.open


def test_northbound_buckets_bounded_and_pruned():
    from analyzer import incidents as I
    t = IncidentTracker(window=10)
    for i in range(1000):
        t.success("northbound", "10.0.1.1:443", "r", float(i), now=1.0, part=0)
    # nothing open: only the last window of seconds is kept
    assert north_buckets(t, 0) <= 12
    t.failure(diag(0), "mp", 995.0, now=1.0, part=0)
    for i in range(1000, 1000 + I.MAX_NORTH_BUCKETS + 50):
        t.success("northbound", "10.0.1.1:443", "r", float(i), now=1.0, part=0)
    assert north_buckets(t, 0) <= I.MAX_NORTH_BUCKETS
