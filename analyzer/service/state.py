"""What the analyzer keeps per input partition -- the :class:`Engine` with its learned server
profiles, the incident state, the input offset below which records are already counted -- and
its persistence on the compacted profiles topic (docs/services.md, "Server profiles" and
"Incident state survives restarts").

Keys on the profiles topic: ``GROUP/TOPIC/PARTITION`` (the partition's profiles, one JSON
document), ``GROUP/TOPIC/PARTITION/incidents`` (the head of its incident state) and
``GROUP/TOPIC/PARTITION/incidents/CHUNK/GEN/PART`` (the chunk records the head names; see
:mod:`analyzer.incidents`).  Every incident-state record of one input partition goes to the
one profiles partition its head key hashes to, so the idempotent producer keeps their order
and a crash leaves a prefix.
"""
from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from kafka.structs import TopicPartition

from proto.summary import is_time

from ..config import DiagnoseConfig
from ..engine import Engine
from ..incidents import RECORD_MAX_BYTES, IncidentTracker
from ..profiles import FORMAT, FORMAT_VERSION, Profile, is_count
from .config import AnalyzerConfig
from .producer import Partitioner

__all__ = ["PartitionState", "EMITTED_TAIL"]

log = logging.getLogger(__name__)

#: at-least-once: incident events read back per incidents-topic partition on assignment
EMITTED_TAIL = 5000
#: the longest a restore (or the read-back of the incidents topic) reads on assignment
RESTORE_TIMEOUT_S = 30.0


#: how far ahead of this host's clock a summary's time may move the data's clock
CLOCK_AHEAD_S = 300.0


class PartitionState:
    """The per-input-partition state of one analyzer.  ``producer`` arguments are the
    analyzer's output producer (its writes join the batch's transaction); ``consumer_factory``
    makes the group-less readers of the profiles and incidents topics."""

    def __init__(self, cfg: AnalyzerConfig, diag: DiagnoseConfig, partition: Partitioner,
                 consumer_factory: Callable[..., Any], counters: Counter[str]) -> None:
        self.cfg = cfg
        self.diag = diag
        self._partition = partition
        self._consumer_factory = consumer_factory
        self.counters = counters
        self.engines: dict[int, Engine] = {}
        self.dirty: set[int] = set()          # partitions whose profiles changed since saved
        self._last_snapshot = 0.0
        self.incidents = IncidentTracker(cfg.incident_update_s, cfg.incident_resolve_successes,
                                         cfg.incident_resolve_quiet_s, cfg.correlation_window_s,
                                         resolve_hold=cfg.incident_resolve_hold_s)
        # per input partition: records below this offset are counted in the incident state
        self.inc_next: dict[int, int] = {}
        self._profile_parts: int | None = None     # partitions of the profiles topic
        # at-least-once: incident id -> [opened sent, highest count sent, resolved sent], as
        # read back from the incidents topic on assignment (see load_emitted)
        self.emitted: dict[str, list[Any]] = {}
        self.data_time: float | None = None     # the newest summary time seen (data time)

    def engine(self, partition: int) -> Engine:
        eng = self.engines.get(partition)
        if eng is None:
            eng = self.engines[partition] = Engine(self.diag)
        return eng

    def see_time(self, t: float) -> bool:
        """The data's clock moves on to ``t`` -- unless ``t`` is more than :data:`CLOCK_AHEAD_S`
        ahead of this host's clock (counted): one summary from a sensor whose clock is years
        ahead (or a hostile producer's) resolved every open incident and every later one at
        once, also after a restart (the clock is saved with the incident state).  Data from the
        past (a replay, a backlog) moves it as it comes.  False: ``t`` was not taken."""
        if t > time.time() + CLOCK_AHEAD_S:
            self.counters["data_time_ahead"] += 1
            return False
        self.data_time = t if self.data_time is None else max(self.data_time, t)
        return True

    def profile_key(self, partition: int) -> str:
        return "%s/%s/%d" % (self.cfg.group, self.cfg.topic_handshakes, partition)

    def incident_key(self, partition: int) -> str:
        return self.profile_key(partition) + "/incidents"

    # -- assignment -----------------------------------------------------------------------------
    def revoke(self, partitions: list[int]) -> None:
        for p in partitions:
            self.engines.pop(p, None)
            self.dirty.discard(p)
            self.incidents.drop(p)
            self.inc_next.pop(p, None)

    def restore(self, partitions: list[int], producer: Any) -> None:
        """Read the compacted profiles topic to its end; the last snapshot per key wins.
        Restores the partitions' server profiles and incident state."""
        want = {self.profile_key(p): p for p in partitions}
        want_inc = {self.incident_key(p): p for p in partitions}
        for p in partitions:
            self.engines[p] = Engine(self.diag)
            self.incidents.drop(p)
            self.inc_next.pop(p, None)
        if not want:
            return
        c = self._consumer_factory(bootstrap_servers=self.cfg.kafka, group_id=None,
                                   enable_auto_commit=False, isolation_level="read_committed",
                                   max_partition_fetch_bytes=16 << 20)
        try:
            parts = c.partitions_for_topic(self.cfg.topic_profiles) or set()
            tps = [TopicPartition(self.cfg.topic_profiles, p) for p in parts]
            if not tps:
                return
            c.assign(tps)
            c.seek_to_beginning(*tps)
            ends = c.end_offsets(tps)
            latest: dict[str, bytes] = {}
            # per partition: incident state key suffix -> latest value (None: deleted)
            inc_recs: dict[int, dict[str, bytes | None]] = {}
            deadline = time.monotonic() + RESTORE_TIMEOUT_S
            while time.monotonic() < deadline and any(c.position(tp) < ends[tp] for tp in tps):
                for batch in c.poll(timeout_ms=200).values():
                    for r in batch:
                        k = (r.key or b"").decode("utf-8", "replace")
                        if k in want:
                            latest[k] = r.value
                            continue
                        # the head GROUP/TOPIC/PARTITION/incidents, its records HEAD/c/gen/i
                        p = want_inc.get(k)
                        rest = ""
                        if p is None:
                            bits = k.rsplit("/", 3)
                            p = want_inc.get(bits[0]) if len(bits) == 4 else None
                            rest = "/" + "/".join(bits[1:])
                        if p is not None:
                            inc_recs.setdefault(p, {})[rest] = r.value
            for p, recs in sorted(inc_recs.items()):
                self._load_incidents(p, {k: v for k, v in recs.items() if v is not None},
                                     producer)
            for k, v in latest.items():
                n, bad = load_profiles(self.engines[want[k]], v)
                if bad:
                    self.counters["state_records_malformed"] += 1
                    log.warning("restored %d profiles for partition %d, skipped a malformed "
                                "profiles record or part of it (%s)", n, want[k], bad)
                else:
                    log.info("restored %d profiles for partition %d", n, want[k])
                self.counters["profiles_restored"] += n
        finally:
            c.close()

    def load_emitted(self) -> None:
        """At-least-once: remember the incident events already on the incidents topic (its
        last ``EMITTED_TAIL`` per partition), so that a replayed batch does not send them
        again when the crash came after the flush of its events and before that of its state."""
        seen: dict[str, list[Any]] = {}
        c = self._consumer_factory(bootstrap_servers=self.cfg.kafka, group_id=None,
                                   enable_auto_commit=False, max_partition_fetch_bytes=16 << 20)
        try:
            parts = c.partitions_for_topic(self.cfg.topic_incidents) or set()
            tps = [TopicPartition(self.cfg.topic_incidents, p) for p in parts]
            if tps:
                c.assign(tps)
                ends = c.end_offsets(tps)
                begins = c.beginning_offsets(tps)
                for tp in tps:
                    c.seek(tp, max(begins[tp], ends[tp] - EMITTED_TAIL))
                deadline = time.monotonic() + RESTORE_TIMEOUT_S
                while time.monotonic() < deadline and any(c.position(tp) < ends[tp] for tp in tps):
                    for batch in c.poll(timeout_ms=200).values():
                        for r in batch:
                            try:
                                ev = json.loads(r.value)
                                iid, kind = str(ev["incident"]), ev["event"]
                                count = int(ev.get("count") or 0)
                            except (ValueError, TypeError, KeyError, AttributeError):
                                continue
                            e = seen.setdefault(iid, [False, 0, False])
                            e[0] = e[0] or kind == "opened"
                            e[1] = max(e[1], count)
                            e[2] = e[2] or kind == "resolved"
        finally:
            c.close()
        self.emitted = seen
        log.info("%d incident(s) already on %s", len(seen), self.cfg.topic_incidents)

    def already_sent(self, ev: Mapping[str, Any]) -> bool:
        """At-least-once, after a restore: ``ev`` (an incident event) is on the incidents topic
        already -- the same "opened"/"resolved", or an "updated" not above the count sent."""
        e = self.emitted.get(str(ev["incident"]))
        if e is None:
            return False
        kind = ev["event"]
        return bool((kind == "opened" and e[0]) or (kind == "resolved" and e[2])
                    or (kind == "updated" and int(ev["count"]) <= e[1]))

    # -- incident state -------------------------------------------------------------------------
    def _state_partition(self, partition: int, producer: Any) -> int:
        """The profiles-topic partition of every incident-state record of input partition
        ``partition`` (the one its head key hashes to): one partition of an idempotent
        producer keeps them in the order they were sent, so a crash leaves a prefix."""
        n = self._profile_parts
        if n is None:             # fixed for the process's life: one partition per state
            n = self._profile_parts = len(
                producer.partitions_for(self.cfg.topic_profiles) or ()) or 1
        return self._partition(self.incident_key(partition).encode(), n)

    def _load_incidents(self, partition: int, records: Mapping[str, bytes], producer: Any) -> None:
        """Restore a partition's incident state from its live records (key suffix -> value,
        ``""`` the head) and delete the records the head does not name (orphans of a save a
        crash interrupted: they belong to no state, and the next saves use newer generations).
        Malformed records are skipped, counted and logged in one line; the rest is restored."""
        malformed = self.incidents.malformed
        head, n, orphans = self.incidents.restore_records(partition, records)
        if self.incidents.malformed != malformed:
            self.counters["state_records_malformed"] += self.incidents.malformed - malformed
            log.warning("incident state of partition %d: skipped %d malformed record(s)",
                        partition, self.incidents.malformed - malformed)
        if orphans:
            key = self.incident_key(partition)
            tp = self._state_partition(partition, producer)
            for suffix in orphans:        # sent with the first batch (in its transaction)
                producer.send(self.cfg.topic_profiles, key=(key + suffix).encode(),
                              value=None, partition=tp)
            self.counters["incident_state_orphans"] += len(orphans)
            log.info("partition %d: deleting %d incident state record(s) of an interrupted "
                     "save", partition, len(orphans))
        offset = None if head is None else head.get("offset")
        if not is_count(offset):
            if head is not None:
                self.counters["state_records_malformed"] += 1
                log.warning("ignoring a malformed incident state for partition %d", partition)
            self.incidents.forget_loaded(partition)
            return
        if head.get("missing"):
            self.counters["incident_state_missing"] += len(head["missing"])
            log.warning("incident state of partition %d: %d record(s) it names are missing "
                        "or malformed; restored the rest", partition, len(head["missing"]))
        self.inc_next[partition] = offset
        dt = head.get("data_time")
        if is_time(dt):
            self.see_time(dt)
        self.counters["incidents_restored"] += n
        log.info("restored %d open incident(s) for partition %d (counted up to offset %d)",
                 n, partition, offset)

    def snapshot_incidents(self, producer: Any) -> None:
        """Write the incident state of the partitions this batch changed (before the commit):
        per partition the changed chunks, the head, tombstones (``save_records``), all to one
        profiles partition.  At-least-once: after a flush of the batch's outputs, and with the
        changed profiles (every batch, not every ``profile_snapshot_s``), so that a replayed
        batch is diagnosed with the profiles it was first diagnosed with."""
        dirty = self.incidents.take_dirty()
        alo = not self.cfg.exactly_once
        if not dirty and not (alo and self.dirty):
            return
        if alo:
            # the events first: a state that says "counted" must not outlive unsent events
            producer.flush()
            if self.cfg.state_delay_ms:     # testing: widen the window before the state
                time.sleep(self.cfg.state_delay_ms / 1000.0)
            self.snapshot_profiles(producer, force=True)
        too_large = self.incidents.too_large
        for p in sorted(dirty):
            key = self.incident_key(p)
            tp = self._state_partition(p, producer)
            for suffix, value in self.incidents.save_records(
                    p, offset=self.inc_next.get(p, 0), data_time=self.data_time):
                producer.send(self.cfg.topic_profiles, key=(key + suffix).encode(),
                              value=value, partition=tp)
                self.counters["incident_state_records"] += 1
                self.counters["incident_state_bytes"] += len(value or b"")
            self.counters["incident_snapshots"] += 1
        if self.incidents.too_large != too_large:
            # one incident alone over RECORD_MAX_BYTES (its texts are bounded: not expected)
            self.counters["incident_state_too_large"] += self.incidents.too_large - too_large
            log.warning("%d incident(s) too large to save (a restart may re-open them)",
                        self.incidents.too_large - too_large)

    # -- profiles -------------------------------------------------------------------------------
    def snapshot_profiles(self, producer: Any, force: bool = False) -> None:
        now = time.monotonic()
        if not self.dirty or (not force and now - self._last_snapshot < self.cfg.profile_snapshot_s):
            return
        self._last_snapshot = now
        for p in sorted(self.dirty):
            eng = self.engines.get(p)
            if eng is None:
                continue
            # one record per partition, within RECORD_MAX_BYTES: the most recently used
            # profiles that fit (10,000 servers are ~0.8 MB; long random names can be more,
            # and a record the broker refuses stopped the analyzer) -- the rest are learned again
            items, size = [], 64
            for x in reversed(list(eng.profiles)):
                item = json.dumps(x.to_json(), separators=(",", ":"))
                size += len(item) + 1
                if size > RECORD_MAX_BYTES:
                    self.counters["profiles_not_saved"] += 1
                    continue
                items.append(item)
            value = ('{"format":%s,"version":%s,"profiles":[%s]}' % (
                json.dumps(FORMAT), json.dumps(FORMAT_VERSION), ",".join(reversed(items)))).encode()
            producer.send(self.cfg.topic_profiles, key=self.profile_key(p).encode(), value=value)
            self.counters["profile_snapshots"] += 1
        self.dirty.clear()


def load_profiles(engine: Engine, value: bytes | None) -> tuple[int, str | None]:
    """Put the profiles of one snapshot record into ``engine``: (how many, None or what is
    malformed in the record -- its good profiles are put all the same).  A record of another
    format or version holds none."""
    if not value:
        return 0, None
    try:
        doc = json.loads(value)
    except (ValueError, RecursionError):
        return 0, "not JSON"
    if not isinstance(doc, dict):
        return 0, "not a JSON object"
    if doc.get("format") != FORMAT or doc.get("version") != FORMAT_VERSION:
        return 0, None
    items = doc.get("profiles")
    if not isinstance(items, list):
        return 0, "'profiles' is not a list"
    n = bad = 0
    for item in items:
        try:
            p = Profile.from_json(item)
        except (TypeError, ValueError):
            bad += 1
            continue
        engine.profiles.put(p)
        n += 1
    return n, "%d malformed profile(s)" % bad if bad else None
