"""The incident state the analyzer saves is built from per-incident memoized JSON
(``Incident.state_json``, the items of the chunk records ``save_records`` writes); it is byte
for byte the JSON of the incidents' ``to_state()`` encoded from scratch -- after every kind of change to an
incident: failures, successes, rate-limited updates, correlation with northbound successes,
resolution, restore."""
from __future__ import annotations

import json
import random

from analyzer.incidents import IncidentTracker
from tests.support.incidents import format1_record


def diag(i, server, cause, direction="southbound"):
    return {"id": "c%d" % i, "cause": cause, "direction": direction, "rule": "R-%s" % cause,
            "explanation": "why é", "evidence": {"alerts": [i % 3]}, "remediation": "fix",
            "rejected_by": "server",
            "connection": {"client": "10.0.3.%d:%d" % (i % 7, 40000 + i), "server": server,
                           "server_name": "b%d.example.test" % (i % 3)}}


def reference(t, part):
    """The partition's incidents, JSON-encoded from scratch."""
    return json.dumps([inc.to_state() for inc in t.open.values() if inc.part == part], ensure_ascii=False,
                      separators=(",", ":"))


def memo_text(t, part):
    """The same list from each incident's memoized JSON (what save_records writes)."""
    return "[%s]" % ",".join(inc.state_json() for inc in t.open.values() if inc.part == part)


def check_all(t):
    for part in range(3):
        assert memo_text(t, part) == reference(t, part)


def test_memoized_state_equals_snapshot_through_every_change():
    rnd = random.Random(4)
    t = IncidentTracker(update_interval=5, resolve_successes=3, resolve_quiet=300, window=30)
    servers = ["10.0.3.%d:443" % i for i in range(6)]
    seen_events = set()
    had_impact = False
    for k in range(3000):
        now = 1000.0 + k * 0.5
        data_t = 100.0 + k * 0.2
        r = rnd.random()
        server = rnd.choice(servers)
        part = servers.index(server) % 3
        if r < 0.25:
            evs = t.failure(diag(k, server, rnd.choice(["cipher_mismatch", "expired"]),
                                 rnd.choice(["southbound", "northbound"])),
                            "mp-%d" % (k % 2), data_t, now, part)
        elif r < 0.9:
            direction = rnd.choice(["southbound", "northbound"])
            evs = t.success(direction, server if direction == "southbound" else "10.0.1.1:443",
                            "r-1", data_t, now, part)
        else:
            evs = t.tick(now, data_t)
        seen_events.update(e["event"] for e in evs)
        had_impact = had_impact or any(inc.impact for inc in t.open.values())
        if k % 7 == 0:
            check_all(t)
        if k == 1500:             # a restore (partition 1) keeps the texts equal too
            doc = json.loads(format1_record(t, 1))
            t.restore(1, doc)
            check_all(t)
    check_all(t)
    assert seen_events == {"opened", "updated", "resolved"}
    assert had_impact                     # the correlation path was exercised


def test_memo_follows_changes():
    t = IncidentTracker(update_interval=0, resolve_successes=2, window=60, resolve_hold=0)
    t.failure(diag(0, "10.0.3.2:443", "expired"), "mp", 100.0, 1.0, 0)
    inc = next(iter(t.open.values()))
    first = inc.state_json()
    assert inc.state_json() is first                            # unchanged: the memo
    t.failure(diag(1, "10.0.3.2:443", "expired"), "mp", 101.0, 2.0, 0)
    second = memo_text(t, 0)
    assert second != "[%s]" % first and '"count":2' in second
    t.success("northbound", "10.0.1.1:443", "r-1", 101.5, 3.0, 0)  # correlation: impact
    third = memo_text(t, 0)
    assert '"client_facing":true' in third and third == reference(t, 0)
    t.success("southbound", "10.0.3.2:443", "mp", 102.0, 4.0, 0)   # successes_since
    assert memo_text(t, 0) == reference(t, 0) != third
    t.success("southbound", "10.0.3.2:443", "mp", 103.0, 5.0, 0)   # resolved: gone
    assert memo_text(t, 0) == "[]" and not t.open
