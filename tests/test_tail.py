"""``tlsdiag tail``'s view of the incidents topic, without a broker: hostile events are
skipped and counted, rendering never raises, and the view is bounded.  (With a broker:
tests/test_topology.py.)"""
from __future__ import annotations

import json

import pytest

from tlsdiag.commands.tail import View, event_line, render


def _event(key: str, **kw) -> bytes:
    return json.dumps({"key": key, "state": "open", "direction": "inbound",
                       "server": "10.0.0.1:443", "cause": "expired", "count": 3, **kw}).encode()


def test_malformed_events_are_skipped_and_counted():
    """A deep-JSON event raised RecursionError out of the poll loop (tail died)."""
    v = View()
    bad = [b"[" * 100_000 + b"]" * 100_000, b'{"key":' * 50_000, b"\xff\xfe", b"{", b"5",
           b"[]", b'{"count": 1}', b'{"key": ""}', b'{"key": [1]}', b'{"key": {"a": 1}}', None]
    for value in bad:
        assert v.take(value) is None
    assert v.take(_event("a")) is not None
    assert v.malformed == len(bad) and list(v.incidents) == ["a"]
    assert "%d malformed event(s) skipped" % len(bad) in v.render()


@pytest.mark.parametrize("value", ['"x"', "1e400", "[1]", "{}", "null", "-1", "NaN",
                                   "Infinity", "true", "1.5",
                                   "[" * 500 + "]" * 500])
def test_render_and_event_line_take_any_json_value(value):
    """count "x" raised ValueError, 1e400 OverflowError, [1] TypeError -- on every redraw."""
    v = View()
    fields = ("count", "direction", "server", "cause", "affected_clients", "last_seen",
              "remediation", "event", "incident", "state")
    for i, f in enumerate(fields):
        assert v.take(b'{"key": "k%d", "%s": %s}' % (i, f.encode(), value.encode()))
    assert v.take(b'{"key": "imp", "impact": {"text": %s}}' % value.encode())
    v.take(b'{"key": "k", "count": %s}' % value.encode())
    out = v.render()
    assert out.startswith("tlsdiag: ") and v.malformed == 0
    for e in v.incidents.values():
        assert event_line(e).endswith("\n")
    render({"k": {"count": json.loads(value), "key": "k"}})


def test_the_view_is_bounded_oldest_open_incidents_evicted_first():
    """Past the limit resolved incidents went, open ones never: distinct keys grew the dict
    without bound.  Now the resolved go first, then the oldest open ones (counted, shown)."""
    v = View(limit=100)
    v.take(_event("resolved", state="resolved"))
    for i in range(1000):
        v.take(_event("o%04d" % i))
        assert len(v.incidents) <= 100
    assert "resolved" not in v.incidents
    assert "o0999" in v.incidents and "o0000" not in v.incidents
    assert v.evicted == 1000 - len(v.incidents)           # open ones only
    assert "%d oldest open dropped" % v.evicted in v.render()


def test_a_new_event_for_an_incident_makes_it_the_newest():
    v = View(limit=10)
    for i in range(10):
        v.take(_event("o%d" % i))
    v.take(_event("o0", count=9))                      # o0 updated: o1 is now the oldest
    v.take(_event("new"))
    assert "o0" in v.incidents and "o1" not in v.incidents
    assert v.incidents["o0"]["count"] == 9


def test_what_a_peer_chose_cannot_drive_the_terminal():
    # (a server name in the remediation text, a cause: ESC sequences reached the terminal raw)
    v = View()
    v.take(_event("a", server="10.0.0.1:443\x1b[2J", remediation="renew api.example\x1b]0;PWN\x07\nFAIL x"))
    for text in (v.render(), event_line(v.incidents["a"])):
        assert "\x1b" not in text and "\x07" not in text and "\\x1b]0;PWN\\x07\\x0aFAIL x" in text


@pytest.mark.parametrize("value", ["nan", "-1", "0", "inf"])
def test_an_interval_that_never_redraws_is_a_usage_error(value):
    # (nan never compared true: the view was never drawn; -1 and 0 redrew on every poll)
    from tlsdiag.commands.common import UsageError
    from tlsdiag.commands.tail import build_parser
    with pytest.raises(UsageError, match="^argument --interval: must be more than 0 seconds"):
        build_parser().parse_args(["--kafka", "k:1", "--interval", value])
