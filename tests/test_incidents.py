"""analyzer.incidents: grouping, rate-limited updates, resolution, cross-hop correlation (pure)."""
from __future__ import annotations

from analyzer.incidents import IncidentTracker


def diag(i, direction="southbound", server="10.0.3.2:443", cause="cipher_mismatch", client=None):
    return {"id": "c%d" % i, "cause": cause, "direction": direction, "rule": "R",
            "explanation": "why", "evidence": {"alerts": []}, "remediation": "fix it",
            "rejected_by": "server",
            "connection": {"client": client or "10.0.3.1:%d" % (40000 + i), "server": server,
                           "server_name": "backend.example.test"}}


def test_grouping_updates_and_resolution():
    t = IncidentTracker(update_interval=10, resolve_successes=2, resolve_quiet=600)
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
