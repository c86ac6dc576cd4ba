"""``tlsdiag tail --kafka HOST:PORT [--topic tls.incidents] [--once]``

A live view of open incidents: reads ``tls.incidents`` from the beginning (no consumer group,
nothing committed) and keeps the latest event per incident key.  On a terminal it redraws the
open ones every second, worst first; into a pipe or a file it writes one line per incident
event as it arrives (a log that grows with events, not with time), never cut short.
``--once`` prints the current view after catching up and exits (for scripts; exit 1 when
incidents are open).
"""
from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import signal
import sys
import time
from typing import IO, Any

from kafka import KafkaConsumer, TopicPartition

from proto.text import printable
from tlsdiag.commands import common
from tlsdiag.kafka import reachable
from tlsdiag.status import ExitStatus

__all__ = ["main", "render", "View"]

log = logging.getLogger(__name__)
MAX_INCIDENTS = 10_000


def _text(v: Any) -> str:
    """A field as text: a string (with what a terminal would act on escaped: a server name or a
    certificate subject in it came from a peer) or a number, anything else (a list, a dict:
    from a malformed event) as ``?``."""
    if isinstance(v, str):
        return printable(v)
    return str(v) if v is None or isinstance(v, (int, float)) else "?"


def _count(v: Any) -> int:
    """An event's ``count`` as an int, 0 when it is not a finite number."""
    if isinstance(v, int):
        return v
    return int(v) if isinstance(v, float) and math.isfinite(v) else 0


def render(incidents: dict[str, dict[str, Any]], malformed: int = 0, evicted: int = 0) -> str:
    open_ = [e for e in incidents.values() if e.get("state") != "resolved"]
    open_.sort(key=lambda e: (-_count(e.get("count")), _text(e.get("key"))))
    lines = ["tlsdiag: %d open incident(s), %d resolved%s%s   %s" % (
        len(open_), len(incidents) - len(open_),
        ", %d oldest open dropped (too many)" % evicted if evicted else "",
        ", %d malformed event(s) skipped" % malformed if malformed else "",
        time.strftime("%H:%M:%S"))]
    if not open_:
        lines.append("  (none)")
    for e in open_:
        lines.append("%-10s %-28s %-26s %6d  clients %-4s last %s" % (
            _text(e.get("direction")), _text(e.get("server"))[:28], _text(e.get("cause"))[:26],
            _count(e.get("count")), _text(e.get("affected_clients")), _text(e.get("last_seen"))))
        imp = e.get("impact")
        if isinstance(imp, dict) and imp.get("text"):
            lines.append("    IMPACT: " + _text(imp["text"]))
        if e.get("remediation"):
            lines.append("    fix: " + _text(e["remediation"]))
    return "\n".join(lines) + "\n"


def event_line(e: dict[str, Any]) -> str:
    """One incident event as one line (for a log file or a pipe)."""
    fix = " fix: %s" % _text(e["remediation"]) if e.get("remediation") else ""
    return "%s %-8s %s %s %s %s count=%s clients=%s last=%s%s\n" % (
        time.strftime("%Y-%m-%dT%H:%M:%S"), _text(e.get("event") or e.get("state")),
        *(_text(e.get(k)) for k in ("incident", "direction", "server", "cause", "count",
                                    "affected_clients", "last_seen")), fix)


class View:
    """The latest event per incident key, at most ``limit`` incidents (past it the resolved
    ones go first, then the oldest open ones: ``evicted``), and the malformed events skipped
    (``malformed``)."""

    def __init__(self, limit: int = MAX_INCIDENTS) -> None:
        self.incidents: dict[str, dict[str, Any]] = {}
        self.limit = limit
        self.malformed = 0
        self.evicted = 0

    def take(self, value: Any) -> dict[str, Any] | None:
        """Keep the incident event ``value`` (JSON); None (counted) when it is not one."""
        try:
            ev = json.loads(value)
        except (ValueError, TypeError, RecursionError):
            ev = None
        key = ev.get("key") if isinstance(ev, dict) else None
        if not key or not isinstance(key, (str, int)):
            self.malformed += 1
            return None
        inc = self.incidents
        inc.pop(str(key), None)                    # the dict's order: oldest event first
        inc[str(key)] = ev
        if len(inc) > self.limit:
            keep = self.limit - self.limit // 10   # a tenth at once: not a scan per event
            for k in [k for k, v in inc.items() if v.get("state") == "resolved"][
                    :len(inc) - keep]:
                del inc[k]
            for k in list(itertools.islice(inc, max(0, len(inc) - keep))):
                del inc[k]
                self.evicted += 1
        return ev

    def render(self) -> str:
        return render(self.incidents, self.malformed, self.evicted)


def build_parser() -> argparse.ArgumentParser:
    p = common.parser("tail", "Live terminal view of the open incidents on the incidents topic.")
    p.add_argument("--topic", dest="topic_incidents", metavar="TOPIC", help=argparse.SUPPRESS)
    p.add_argument("--once", action="store_true", help="print once after catching up, then exit "
                   "(exit status 1 when incidents are open)")
    p.add_argument("--interval", type=common.seconds, default=1.0, metavar="S",
                   help="seconds between redraws (default 1)")
    return p


def run(argv: list[str], out: IO[str]) -> int:
    started = common.start("tail", build_parser(), argv)
    if isinstance(started, int):
        return started
    a, v = started
    a.kafka, a.topic = v["kafka"], v["topic_incidents"]
    why = reachable(a.kafka, 5_000)
    if why is not None:
        return common.fail("tail", "cannot reach Kafka at %s (%s): check --kafka and that the "
                           "broker runs" % (a.kafka, why))
    try:
        c = KafkaConsumer(bootstrap_servers=a.kafka, group_id=None, enable_auto_commit=False,
                          isolation_level="read_committed", bootstrap_timeout_ms=5_000,
                          reconnect_backoff_max_ms=1_000)
    except Exception as e:
        return common.fail("tail", "cannot reach Kafka at %s: %s" % (a.kafka, e))
    tty = out.isatty()
    view = View()
    stop = False

    def on_stop(_s: int, _f: object) -> None:
        nonlocal stop
        stop = True
    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    assigned: list[Any] = []
    last = 0.0
    try:
        while not stop:
            if not assigned:
                parts = c.partitions_for_topic(a.topic) or set()
                assigned = [TopicPartition(a.topic, x) for x in parts]
                if assigned:
                    c.assign(assigned)
                    c.seek_to_beginning(*assigned)
            recs = c.poll(timeout_ms=300) if assigned else {}
            for batch in recs.values():
                for r in batch:
                    ev = view.take(r.value)
                    if ev is not None and not tty and not a.once:
                        out.write(event_line(ev))
            if a.once:
                caught = bool(assigned) and all(
                    c.position(tp) >= off for tp, off in c.end_offsets(assigned).items())
                if caught or (not assigned and time.monotonic() > last + 5):
                    out.write(view.render())
                    return ExitStatus.FAILURES if any(
                        v.get("state") != "resolved" for v in view.incidents.values()) \
                        else ExitStatus.SUCCESS
                if not last:
                    last = time.monotonic()
                continue
            if not tty:
                if recs:
                    out.flush()
            elif time.monotonic() - last >= a.interval:
                last = time.monotonic()
                out.write("\x1b[H\x1b[2J")
                out.write(view.render())
                out.flush()
    except KeyboardInterrupt:
        pass
    finally:
        c.close()
    return ExitStatus.SUCCESS


def main(argv: list[str] | None = None) -> int:
    return run(list(sys.argv[1:] if argv is None else argv), sys.stdout)
