"""Endpoint hints joined to the wire summaries (issue 13): what the connection's own OpenSSL
reported (:mod:`sensor.ebpf.hints`), attached to the summary of that connection as its optional
``endpoint_hints`` field (:mod:`proto.hints`).

:class:`HintJoiner` sits between the summarizer and the emit of :class:`sensor.loop.Sensor`:

* :meth:`HintJoiner.poll` takes the probes' events (call it after reading a capture batch and
  before summarizing it: an endpoint raises its error before it writes the alert or the close that
  ends the connection on the wire, so those events are already in the ring buffer) and keeps
  them per connection -- its two endpoints, as summaries write them -- bounded in number and age;
* :meth:`HintJoiner.hold` takes a finished summary and :meth:`HintJoiner.release` gives it back
  ``hold`` seconds later with the hints of that connection attached (the peer of a rejecting
  endpoint may read the alert a moment after the wire is done; 0.3 s covers it on loopback and
  costs the sensor nothing but that latency).

A hint belongs to a summary when its endpoints are the summary's two endpoints and its time falls
in the connection's lifetime (``start`` - :data:`BEFORE` .. ``end`` + :data:`AFTER`): a 5-tuple
reused later by another connection gets its own hints.  The side of each hint is the side of its
socket's local endpoint.  Hints whose thread read the socket longer ago than
:data:`MAX_RECV_AGE` (see :mod:`sensor.ebpf.hints`, "Known limit"), or that have no socket, are
counted and dropped; hints no summary claims within :data:`TTL` are counted and dropped
(connections this capture does not see: other interfaces, ports not selected).

Nothing but :data:`proto.hints.ENDPOINT_KEYS` goes into a summary.
"""
from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from proto.hints import HINTS_VERSION, MAX_ENDPOINTS, MAX_ERRORS, make_endpoint

__all__ = ["HintJoiner", "MAX_RECV_AGE", "BEFORE", "AFTER", "TTL"]

log = logging.getLogger(__name__)

K_VERIFY, K_SSL_ERROR = 1, 2        # sensor.ebpf.hints (kept here: no import of the loader)
#: a hint whose thread last read its socket longer ago than this is not trusted to be about it
MAX_RECV_AGE = 1.0
#: a connection's hints: from this long before its first packet ...
BEFORE = 0.5
#: ... to this long after its last one
AFTER = 2.0
#: unclaimed hints are dropped after this many seconds
TTL = 60.0
MAX_CONNECTIONS = 65_536
MAX_EVENTS_PER_CONNECTION = 64
DEFAULT_HOLD = 0.3


def _key(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


class HintJoiner:
    """Keeps the hints of ``source`` (anything with ``poll() -> [HintEvent]``) until the summary
    of their connection claims them.  ``clock``: monotonic seconds (tests)."""

    def __init__(self, source: Any, hold: float = DEFAULT_HOLD,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.source = source
        self.hold_s = float(hold)
        self._clock = clock
        #: connection key -> [(wall time, event)], oldest connection first
        self._hints: OrderedDict[tuple[str, str], list] = OrderedDict()
        self._pending: deque = deque()          # (deadline, raw, certs)
        self._last_purge = 0.0
        self.events = 0
        self.unmapped = 0           # no socket, or a socket read too long ago
        self.joined = 0             # hints that went into a summary
        self.expired = 0            # hints no summary claimed
        self.summaries_with_hints = 0

    # -- the probes' side -------------------------------------------------------------------
    def poll(self) -> int:
        """Take the events reported since the last call; returns how many."""
        evs = self.source.poll()
        for e in evs:
            self.add(e)
        now = self._clock()
        if now - self._last_purge >= 1.0:
            self._last_purge = now
            self._purge(time.time() - TTL)
        return len(evs)

    def add(self, e: Any) -> None:
        self.events += 1
        if e.local is None or e.remote is None or e.recv_age is None \
                or e.recv_age > MAX_RECV_AGE:
            self.unmapped += 1
            return
        key = _key(e.local, e.remote)
        lst = self._hints.get(key)
        if lst is None:
            if len(self._hints) >= MAX_CONNECTIONS:
                _, old = self._hints.popitem(last=False)
                self.expired += len(old)
            lst = self._hints[key] = []
        if len(lst) < MAX_EVENTS_PER_CONNECTION:
            lst.append(e)

    def _purge(self, before: float) -> None:
        while self._hints:
            key, lst = next(iter(self._hints.items()))
            if lst and lst[-1].time >= before:
                break
            self._hints.popitem(last=False)
            self.expired += len(lst)

    # -- the summaries' side ----------------------------------------------------------------
    def attach(self, raw: dict) -> bool:
        """Put the hints of ``raw``'s connection into it (``endpoint_hints``); True if any."""
        client, server = raw.get("client"), raw.get("server")
        if not isinstance(client, str) or not isinstance(server, str):
            return False
        key = _key(client, server)
        lst = self._hints.get(key)
        if not lst:
            return False
        lo, hi = float(raw["start"]) - BEFORE, float(raw["end"]) + AFTER
        mine = [e for e in lst if lo <= e.time <= hi]
        if not mine:
            return False
        rest = [e for e in lst if not lo <= e.time <= hi]
        if rest:
            self._hints[key] = rest
        else:
            del self._hints[key]
        endpoints = self._endpoints(mine, client, server)
        if not endpoints:
            return False
        raw["endpoint_hints"] = {"v": HINTS_VERSION, "endpoints": endpoints}
        self.joined += len(mine)
        self.summaries_with_hints += 1
        return True

    @staticmethod
    def _endpoints(events: list, client: str, server: str) -> list[dict]:
        """One record per (side, process), in event order: the first verify error (its cause;
        a verify callback that goes on reports the consequences after it) and the errors."""
        groups: dict[tuple[int, int], dict] = {}
        for e in sorted(events, key=lambda e: e.time):
            side = 0 if e.local == client else 1 if e.local == server else None
            if side is None:
                continue
            g = groups.get((side, e.pid))
            if g is None:
                if len(groups) >= MAX_ENDPOINTS:
                    continue
                g = groups[(side, e.pid)] = {"comm": e.comm, "library": e.library,
                                             "verify": None, "errors": []}
            if e.kind == K_VERIFY:
                if g["verify"] is None:
                    g["verify"] = (e.code, e.depth)
            elif e.kind == K_SSL_ERROR and len(g["errors"]) < 4 * MAX_ERRORS:
                g["errors"].append(e.code)
        out = []
        for (side, pid), g in sorted(groups.items()):
            v = g["verify"]
            out.append(make_endpoint(side, pid, g["comm"], g["library"],
                                     v[0] if v else None, v[1] if v else None, g["errors"]))
        return out

    def hold(self, raw: dict, certs: list) -> None:
        self._pending.append((self._clock() + self.hold_s, raw, certs))

    def release(self, everything: bool = False) -> list[tuple[dict, list]]:
        """The held summaries whose time is up (all of them with ``everything``), hints
        attached, in the order they were held."""
        out = []
        now = self._clock()
        while self._pending and (everything or self._pending[0][0] <= now):
            _, raw, certs = self._pending.popleft()
            self.attach(raw)
            out.append((raw, certs))
        return out

    @property
    def held(self) -> int:
        return len(self._pending)

    def stats(self) -> dict[str, int]:
        s = {"hints_events": self.events, "hints_unmapped": self.unmapped,
             "hints_joined": self.joined, "hints_expired": self.expired,
             "hints_summaries": self.summaries_with_hints, "hints_held": len(self._pending),
             "hints_waiting": sum(map(len, self._hints.values()))}
        counters = getattr(self.source, "kernel_counters", None)
        if counters is not None:
            s.update({"hints_kernel_" + k: v for k, v in counters().items()})
        return s
