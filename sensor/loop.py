"""The capture loop of ``tlsdiag sensor`` and ``tlsdiag watch``: a capture source, the
summarizer, the direction stamp, counters.  No Kafka, no settings, no signals: the commands
(:mod:`tlsdiag.commands.sensor`, :mod:`tlsdiag.commands.watch`) own those and call
:meth:`Sensor.step` in their loop.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from proto.direction import UNKNOWN, IPNetwork, classify
from sensor.pipeline import Summarizer

__all__ = ["Sensor", "SensorConfig"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SensorConfig:
    """What the loop itself needs.  ``table``: the flow table's limits (``FlowTable``
    keyword arguments: ``max_flows``, ``idle_timeout``, ``max_buffered``); what it leaves
    out, the flow table's defaults."""
    sensor_id: str = "sensor"
    role: str | None = None
    local_nets: tuple[IPNetwork, ...] = ()
    table: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def describe(self) -> dict[str, object]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["local_nets"] = [str(n) for n in self.local_nets]
        d["table"] = dict(self.table)
        return d


class Sensor:
    """Capture loop state: the summarizer, counters, the direction decision.  ``emit`` is
    called with each finished ``(raw, certs)``; the sensor service passes the publisher's
    ``publish``, ``tlsdiag watch`` its diagnosis.

    ``hints``: a :class:`sensor.hints.HintJoiner` (``--endpoint-hints``) -- its events are taken
    after each capture batch is read and before it is summarized, and each summary is held
    there briefly and emitted with the hints of its connection joined."""

    def __init__(self, cfg: SensorConfig, capture: Any,
                 emit: Callable[[dict, list], None], hints: Any = None) -> None:
        self.cfg = cfg
        self.cap = capture
        self.emit = emit
        self.hints = hints
        self.summ = Summarizer(capture.linktype, **cfg.table)
        self.summaries = 0
        self.by_direction: dict[str, int] = {}
        self.emit_errors = 0
        self.stop_requested = False
        self.reload_requested = False
        self._last_expire = 0.0
        # the eBPF capture drops the rest of a connection once told it is summarized
        self._finished = getattr(capture, "finished", None)

    def direction(self, raw: dict) -> str | None:
        d, _ = classify(str(raw.get("client")), str(raw.get("server")), self.cfg.role,
                        self.cfg.local_nets)
        return None if d == UNKNOWN else d

    def _out(self, done: list) -> None:
        for raw, certs in done:
            raw["sensor"] = self.cfg.sensor_id
            raw["direction"] = self.direction(raw)
            self.summaries += 1
            key = raw["direction"] or "unknown"
            self.by_direction[key] = self.by_direction.get(key, 0) + 1
            if self._finished is not None:
                self._finished(raw)
            if self.hints is not None:
                self.hints.hold(raw, certs)
            else:
                self._emit(raw, certs)

    def _emit(self, raw: dict, certs: list) -> None:
        try:
            self.emit(raw, certs)
        except Exception:
            self.emit_errors += 1
            log.exception("emit failed")

    def step(self, timeout: float = 0.2) -> None:
        batches = self.cap.poll(timeout)
        if self.hints is not None:
            self.hints.poll()           # after the read: what the batch's packets followed
        for buf, meta in batches:
            done = self.summ.feed(buf, meta)
            if done:
                self._out(done)
        now = time.time()
        if now - self._last_expire >= 1.0:
            self._last_expire = now
            done = self.summ.expire(now)
            if done:
                self._out(done)
        if self.hints is not None:
            for raw, certs in self.hints.release():
                self._emit(raw, certs)

    def finish(self) -> None:
        self._out(self.summ.flush("incomplete"))
        if self.hints is not None:
            self.hints.poll()
            for raw, certs in self.hints.release(everything=True):
                self._emit(raw, certs)

    def stats(self) -> dict:
        s = dict(self.cap.stats())
        s.update(self.summ.stats())
        s["summaries_emitted"] = self.summaries
        s["emit_errors"] = self.emit_errors
        if self.hints is not None:
            s.update(self.hints.stats())
        return s
