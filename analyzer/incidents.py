"""Incidents: failure diagnoses grouped by direction + server + cause.  Pure (no Kafka, no clock
of its own: callers pass ``now``).

An incident is *opened* by its first failure, *updated* as more arrive (at most once per
``update_interval`` seconds, and only when its count changed), and *resolved* once successful
handshakes to the same (direction, server) return -- ``resolve_successes`` of them after the
last failure, and that last failure at least ``resolve_hold`` seconds old (data time), so that
an intermittent failure (one bad instance behind a VIP failing one handshake in ten) stays ONE
open incident instead of opening and resolving over and over -- or after ``resolve_quiet``
seconds without a failure.

Cross-hop correlation: a router sensor sees the northbound half of a request path, a message
processor sensor the southbound half.  When a southbound incident is open for a backend while
northbound handshakes to the router keep succeeding in the same ``window``, the incident says
that client-facing requests are failing (the gateway answers 503) because of that backend, and
names the router endpoints and sensors on both sides.

Restart state: every incident belongs to the input partition its failures came from (summaries
are keyed by server, so one server's handshakes -- and so one incident key -- stay in one
partition), and so do the northbound successes (counted in one-second buckets).
:meth:`IncidentTracker.save_records` gives the records that bring one partition's saved
state up to date, :meth:`IncidentTracker.restore_records` loads it back; the service stores
them on a compacted topic with the input offset they reflect, so a restarted analyzer neither
forgets open incidents (and re-opens them) nor counts a replayed summary twice.
:meth:`IncidentTracker.take_dirty` names the partitions whose state changed since the last call.

Saved state, format version 2 (record keys are suffixes of the partition's state key ``K``)::

    K                     head  {"format": "tlsdiag-incidents", "version": 2, "gen": G,
                                 "nchunks": 512, "chunks": {"<chunk>": [gen, parts], ...},
                                 ...extra (the service: "offset", "data_time")}
    K/<chunk>/<gen>/<i>   part i of a chunk  {"format": "tlsdiag-incidents-chunk",
                                 "version": 2, "chunk": "<chunk>", "gen": gen, "part": i,
                                 "incidents": [...]}   (chunk "n": "north": [[sec, srv, sensor, n]])

An open incident lives in chunk ``int(id[:8], 16) % nchunks`` (its id is a hash, so chunks are
even); a save rewrites only the chunks with a changed incident (and "n" when a northbound
bucket changed), each under a new generation -- a key no record the current head names has --
then the head naming them, then tombstones for the records the previous head named and the new
one does not.  A chunk larger than ``RECORD_MAX_BYTES`` is split into parts.  Written in that
order to one partition of an idempotent producer, any crash leaves a prefix of those records:
without the new head, the old head and every record it names are intact (the old state);
with it, the new state is complete.  :meth:`~IncidentTracker.restore_records` loads exactly the
records the head names and returns the others (orphans of a crash) for deletion.  A format
version 1 state (one record ``K`` with everything) is still read; the next save rewrites it whole
in version 2.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Mapping

from .profiles import saved_count, saved_time
from .report import json_text as _state_dumps

__all__ = ["Incident", "IncidentTracker", "STATE_FORMAT", "STATE_VERSION", "CHUNK_FORMAT",
           "CHUNKED_VERSION", "NCHUNKS", "RECORD_MAX_BYTES"]

MAX_CLIENTS = 50          # distinct clients / sensors remembered per incident
MAX_NORTH_BUCKETS = 20_000  # (second, router endpoint, sensor) buckets kept per partition
STATE_FORMAT = "tlsdiag-incidents"
STATE_VERSION = 1           # restore(): one document per partition (read for upgrades, never written)
CHUNK_FORMAT = "tlsdiag-incidents-chunk"
CHUNKED_VERSION = 2         # save_records()/restore_records(): head + chunk records
NCHUNKS = 512               # 10,000 open incidents (max_open) -> ~20 (~25 KB) per chunk
RECORD_MAX_BYTES = 900_000  # a chunk record's bound (the broker's default limit is 1 MiB)
NORTH_CHUNK = "n"
_ID = re.compile(r"[0-9a-f]{16}")      # an incident id: 16 hex digits of a SHA-256
_SUFFIX = re.compile(r"/([^/]*)/([0-9]{1,18})/([0-9]{1,18})")   # a chunk record's: /c/gen/i
MAX_GEN = 10 ** 18 - 1                  # what 18 digits hold

NorthKey = tuple[int, str, "str | None"]
_SAMPLE_KEYS = ("id", "rule", "rejected_by", "explanation", "evidence", "remediation")


def _conn(d: Mapping[str, object]) -> Mapping[str, object]:
    c = d.get("connection")
    return c if isinstance(c, dict) else {}


def _loads(value: bytes | str | None) -> dict[str, Any] | None:
    """A JSON object, or None (absent, malformed or not an object)."""
    if not value:
        return None
    try:
        doc = json.loads(value)
    except (ValueError, RecursionError):        # (UnicodeDecodeError is a ValueError)
        return None
    return doc if isinstance(doc, dict) else None


def _iso(ts: float) -> str | None:
    """``ts`` as ISO-8601 UTC to the second; None when no datetime has it (NaN, inf, 1e308)."""
    import datetime as dt
    try:
        return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return None


@dataclass
class Incident:
    key: tuple[str, str, str]           # direction, server, cause
    id: str
    first_seen: float
    last_seen: float
    count: int = 0
    clients: dict[str, int] = field(default_factory=dict)
    clients_total: int = 0
    sensors: dict[str, int] = field(default_factory=dict)
    server_names: dict[str, int] = field(default_factory=dict)
    sample: Mapping[str, object] | None = None
    successes_since: int = 0
    state: str = "open"
    emitted_count: int = 0
    last_emit: float = 0.0
    impact: dict[str, object] | None = None
    part: int = 0                       # input partition the incident's summaries come from
    # state_json(): (fields that change with every mutation, the impact object, the JSON text)
    _state_memo: tuple[tuple[Any, ...], Any, str] | None = field(default=None, repr=False,
                                                                 compare=False)
    # the second of last_seen when the impact was last worked out (_correlate), and whether
    # failures came since, in that second (worked out again at the batch's end: tick)
    _correlated_at: float = field(default=-1.0, repr=False, compare=False)
    _correlate_due: bool = field(default=False, repr=False, compare=False)

    def add(self, d: Mapping[str, object], sensor: str | None, t: float) -> None:
        self.count += 1
        self.last_seen = max(self.last_seen, t)
        self.first_seen = min(self.first_seen, t)
        conn = _conn(d)
        client = str(conn.get("client") or "").rpartition(":")[0] or str(conn.get("client"))
        if client in self.clients:
            self.clients[client] += 1
        else:
            self.clients_total += 1
            if len(self.clients) < MAX_CLIENTS:
                self.clients[client] = 1
        if sensor:
            if sensor in self.sensors or len(self.sensors) < MAX_CLIENTS:
                self.sensors[sensor] = self.sensors.get(sensor, 0) + 1
        sn = conn.get("server_name")
        if isinstance(sn, str) and (sn in self.server_names or len(self.server_names) < MAX_CLIENTS):
            self.server_names[sn] = self.server_names.get(sn, 0) + 1
        if self.sample is None:
            self.sample = d
        self.successes_since = 0

    def to_event(self, event: str) -> dict[str, object]:
        direction, server, cause = self.key
        s = self.sample or {}
        return {
            "event": event,
            "incident": self.id,
            "key": "|".join(self.key),
            "state": self.state,
            "direction": direction,
            "server": server,
            "server_names": sorted(self.server_names),
            "cause": cause,
            "count": self.count,
            "first_seen": _iso(self.first_seen),
            "last_seen": _iso(self.last_seen),
            "affected_clients": self.clients_total,
            "clients": sorted(self.clients, key=lambda c: -self.clients[c])[:10],
            "sensors": sorted(self.sensors),
            "rule": s.get("rule"),
            "rejected_by": s.get("rejected_by"),
            "explanation": s.get("explanation"),
            "evidence": s.get("evidence"),
            "remediation": s.get("remediation"),
            "sample_connection": s.get("id"),
            "impact": self.impact,
        }

    def to_state(self) -> dict[str, Any]:
        return {"key": list(self.key), "id": self.id, "first_seen": self.first_seen,
                "last_seen": self.last_seen, "count": self.count, "clients": self.clients,
                "clients_total": self.clients_total, "sensors": self.sensors,
                "server_names": self.server_names,
                "sample": {k: self.sample.get(k) for k in _SAMPLE_KEYS} if self.sample else None,
                "successes_since": self.successes_since, "emitted_count": self.emitted_count,
                "last_emit": self.last_emit, "impact": self.impact}

    def state_json(self) -> str:
        """``json.dumps(self.to_state())`` (compact, not ASCII-escaped), re-encoded only when
        the incident changed since the last call.  Every change goes through :meth:`add`
        (count, first/last seen, clients, sensors, names, sample), the tracker's success
        counting (successes_since), ``_emit`` (emitted_count, last_emit) or ``_correlate``
        (a new impact object); those values and the impact's identity are the memo's key.
        Most open incidents do not change between two saves of their chunk."""
        fp = (self.count, self.first_seen, self.last_seen, self.clients_total,
              self.successes_since, self.emitted_count, self.last_emit)
        m = self._state_memo
        if m is not None and m[0] == fp and m[1] is self.impact:
            return m[2]
        text = _state_dumps(self.to_state())
        self._state_memo = (fp, self.impact, text)
        return text

    @classmethod
    def from_state(cls, d: Mapping[str, Any], part: int) -> "Incident":
        """Inverse of :meth:`to_state`; ValueError/TypeError/KeyError on a malformed item
        (counts are ints, time stamps in datetime's range, the id 16 hex digits)."""
        key = d["key"]
        if not (isinstance(key, list) and len(key) == 3 and all(isinstance(k, str) for k in key)):
            raise ValueError("bad incident key")
        iid = d["id"]
        if not (isinstance(iid, str) and _ID.fullmatch(iid)):
            raise ValueError("bad incident id")

        def counts(v: object) -> dict[str, int]:
            if not isinstance(v, dict):
                raise ValueError("bad counts")
            return {str(k): saved_count(n) for k, n in list(v.items())[:MAX_CLIENTS]}
        sample = d.get("sample")
        impact = d.get("impact")
        return cls(key=(key[0], key[1], key[2]), id=iid,
                   first_seen=saved_time(d["first_seen"]), last_seen=saved_time(d["last_seen"]),
                   count=saved_count(d["count"]), clients=counts(d.get("clients") or {}),
                   clients_total=saved_count(d.get("clients_total") or 0),
                   sensors=counts(d.get("sensors") or {}),
                   server_names=counts(d.get("server_names") or {}),
                   sample=sample if isinstance(sample, dict) else None,
                   successes_since=saved_count(d.get("successes_since") or 0),
                   emitted_count=saved_count(d.get("emitted_count") or 0),
                   last_emit=saved_time(d.get("last_emit") or 0.0),
                   impact=impact if isinstance(impact, dict) else None, part=part)


class IncidentTracker:
    def __init__(self, update_interval: float = 30.0, resolve_successes: int = 3,
                 resolve_quiet: float = 600.0, window: float = 120.0,
                 max_open: int = 10_000, resolve_hold: float = 60.0,
                 nchunks: int = NCHUNKS) -> None:
        self.update_interval = update_interval
        self.resolve_successes = resolve_successes
        self.resolve_quiet = resolve_quiet
        self.resolve_hold = resolve_hold
        self.window = window
        self.max_open = max_open
        self.nchunks = max(1, int(nchunks))
        self.open: dict[tuple[str, str, str], Incident] = {}
        self._by_endpoint: dict[tuple[str, str], set[tuple[str, str, str]]] = {}
        # northbound successes per input partition: (second, router endpoint, sensor) -> count,
        # in arrival order (bounded; pruned once older than any window that can still use them)
        self._north: dict[int, OrderedDict[NorthKey, int]] = {}
        self._dirty: set[int] = set()
        # saved state (format 2): (partition, chunk) -> its open incidents; per partition the
        # chunks changed since the last save, whether the northbound buckets changed, whether
        # everything must be rewritten (restored from format 1 or another chunk count), the
        # highest generation seen and the records the saved head names: chunk -> (gen, parts)
        self._chunks: dict[tuple[int, int], dict[tuple[str, str, str], Incident]] = {}
        self._dirty_chunks: dict[int, set[int]] = {}
        self._north_dirty: set[int] = set()
        self._full: set[int] = set()
        self._gen: dict[int, int] = {}
        self._layout: dict[int, dict[str, tuple[int, int]]] = {}
        self.opened = self.resolved = self.dropped = 0
        self.too_large = 0          # incidents left out of a save (one alone over the limit)
        self.malformed = 0          # saved records skipped on restore, wholly or in part

    # -- input --------------------------------------------------------------------------------
    def failure(self, d: Mapping[str, object], sensor: str | None, t: float,
                now: float, part: int = 0) -> list[dict[str, object]]:
        conn = _conn(d)
        key = (str(d.get("direction") or "unknown"), str(conn.get("server")), str(d.get("cause")))
        inc = self.open.get(key)
        events = []
        if inc is None:
            if len(self.open) >= self.max_open:
                self.dropped += 1
                return []
            # deterministic: the same first failure (a replay) gives the same incident id
            iid = hashlib.sha256(("%s|%s|%s|%.6f" % (key + (t,))).encode()).hexdigest()[:16]
            inc = Incident(key=key, id=iid, first_seen=t, last_seen=t, part=part)
            self._insert(inc)
            inc.add(d, sensor, t)
            self.opened += 1
            self._touch(inc)
            self._correlate(inc)
            events.append(self._emit(inc, "opened", now))
            return events
        inc.add(d, sensor, t)
        self._touch(inc)
        # the impact again at most once a second of data per incident: it walks every
        # northbound bucket (20,000: 4.2 ms), and a backend outage fails thousands a second
        changed = False
        if inc.last_seen // 1 != inc._correlated_at:
            changed = self._correlate(inc)
        else:
            inc._correlate_due = True
        if changed or (inc.count != inc.emitted_count and now - inc.last_emit >= self.update_interval):
            events.append(self._emit(inc, "updated", now))
        return events

    def success(self, direction: str, server: str, sensor: str | None, t: float,
                now: float, part: int = 0) -> list[dict[str, object]]:
        events = []
        if direction == "northbound" and self._add_north(part, t, server, sensor):
            # a new (second, router, sensor) bucket: an incident's impact depends only on which
            # buckets its window holds, so only a new one can give an impact-less incident one
            w = self.window
            for inc in list(self.open.values()):
                # only an incident whose window holds this success can gain an impact from it
                if inc.key[0] == "southbound" and inc.impact is None \
                        and inc.first_seen - w <= t <= inc.last_seen + w and self._correlate(inc):
                    self._touch(inc)
                    events.append(self._emit(inc, "updated", now))
        for key in list(self._by_endpoint.get((direction, server), ())):
            inc = self.open[key]
            if t < inc.last_seen:
                continue
            if inc.successes_since < self.resolve_successes:
                # counted up to the threshold only: only ">= resolve_successes" matters, and a
                # held incident then does not change (nor need saving) with every success
                inc.successes_since += 1
                self._touch(inc)
            if inc.successes_since >= self.resolve_successes \
                    and t - inc.last_seen >= self.resolve_hold:
                events.append(self._resolve(inc, now, "handshakes to this server succeed again"))
        return events

    def tick(self, now: float, data_time: float | None = None) -> list[dict[str, object]]:
        """Rate-limited updates that are due, and incidents resolved: quiet ones, and held
        ones (enough successes already) whose last failure is now ``resolve_hold`` old.
        ``data_time`` is the newest summary time seen (incidents age by data time, not wall
        time)."""
        events = []
        ref = data_time if data_time is not None else now
        for inc in list(self.open.values()):
            if ref - inc.last_seen >= self.resolve_quiet:
                events.append(self._resolve(inc, now, "no failure for %ds" % self.resolve_quiet))
            elif inc.successes_since >= self.resolve_successes \
                    and ref - inc.last_seen >= self.resolve_hold:
                events.append(self._resolve(inc, now, "handshakes to this server succeed again"))
            elif inc.count != inc.emitted_count and now - inc.last_emit >= self.update_interval:
                self._correlate(inc)
                self._touch(inc)
                events.append(self._emit(inc, "updated", now))
            elif inc._correlate_due and self._correlate(inc):
                # failures within one second were not correlated each (failure): at the
                # batch's end, an impact that changed is told now, not at the next update
                self._touch(inc)
                events.append(self._emit(inc, "updated", now))
        return events

    # -- restart state ------------------------------------------------------------------------
    def take_dirty(self) -> set[int]:
        """The partitions whose state changed since the last call (and forget them)."""
        d, self._dirty = self._dirty, set()
        return d

    def partitions(self) -> set[int]:
        return {inc.part for inc in self.open.values()} | set(self._north)

    def restore(self, part: int, doc: object) -> int:
        """Replace partition ``part``'s state with a format version 1 document (what analyzers before
        format 2 saved: ``{"format", "version": 1, "incidents": [to_state()...], "north": [...]}``);
        returns the number of open incidents restored.  Malformed items are skipped; a
        malformed document is ignored.  The next :meth:`save_records` rewrites it whole."""
        self.drop(part)
        if not isinstance(doc, dict) or doc.get("format") != STATE_FORMAT \
                or doc.get("version") != STATE_VERSION:
            return 0
        n, bad = self._load_items(part, doc.get("incidents"))
        if bad or self._load_north(part, doc.get("north")):
            self.malformed += 1
        self._dirty.discard(part)
        self._north_dirty.discard(part)
        self._full.add(part)
        return n

    def save_records(self, part: int, **extra: Any) -> list[tuple[str, bytes | None]]:
        """The records that bring partition ``part``'s saved state (format 2) up to date, in
        the order they must be written (to one Kafka partition): ``(key suffix, value)`` --
        the changed chunks' parts under a new generation, the head (suffix ``""``, with
        ``extra``), then tombstones (value None) for the records the previous head named and
        this one does not.  Assumes they will be written: the next call builds on them."""
        gen = self._gen.get(part, 0) + 1
        old = self._layout.get(part, {})
        new = dict(old)
        full = part in self._full
        if full:
            new = {}
            chunks = {c for (p, c) in self._chunks if p == part}
        else:
            chunks = self._dirty_chunks.get(part, set())
        out: list[tuple[str, bytes | None]] = []
        for c in sorted(chunks):
            name = str(c)
            incs = self._chunks.get((part, c))
            texts = [inc.state_json() for inc in incs.values()] if incs else []
            self._put_chunk(out, new, name, gen, "incidents", texts)
        if full or part in self._north_dirty:
            north: Mapping[NorthKey, int] = self._north.get(part) or {}
            texts = [_state_dumps([sec, srv, sensor, n]) for (sec, srv, sensor), n in north.items()]
            self._put_chunk(out, new, NORTH_CHUNK, gen, "north", texts)
        head = {"format": STATE_FORMAT, "version": CHUNKED_VERSION, "gen": gen,
                "nchunks": self.nchunks, "chunks": {k: list(v) for k, v in sorted(new.items())},
                **extra}
        out.append(("", _state_dumps(head).encode()))
        for name, (g, nparts) in sorted(old.items()):
            if new.get(name) != (g, nparts):
                out.extend(("/%s/%d/%d" % (name, g, i), None) for i in range(nparts))
        self._gen[part] = gen
        self._layout[part] = new
        self._dirty_chunks.pop(part, None)
        self._north_dirty.discard(part)
        self._full.discard(part)
        return out

    def restore_records(self, part: int, records: Mapping[str, bytes | str]
                        ) -> tuple[dict[str, Any] | None, int, list[str]]:
        """Replace partition ``part``'s state with the saved one: ``records`` maps the key
        suffix (``""`` for the head) of every live record under the partition's state key to
        its value.  Returns (the head document or None, the number of open incidents restored,
        the suffixes of the records the head does not name -- orphans of an interrupted save,
        to be deleted).  Reads a format 1 head too.  A head naming a record that is missing or
        malformed loads the rest (the missing suffixes are in the head's ``"missing"``).  Every
        record skipped as malformed, wholly or in part, counts in :attr:`malformed`."""
        self.drop(part)
        gens = [0]
        for suffix in records:
            m = _SUFFIX.fullmatch(suffix)
            if m is not None:
                gens.append(int(m[2]))
        head = _loads(records.get(""))
        named: set[str] = set()
        n = 0
        if head is not None and head.get("format") == STATE_FORMAT \
                and head.get("version") == STATE_VERSION:
            n = self.restore(part, head)            # format 1: rewritten whole at the next save
        elif head is not None and head.get("format") == STATE_FORMAT \
                and head.get("version") == CHUNKED_VERSION and isinstance(head.get("chunks"), dict):
            layout: dict[str, tuple[int, int]] = {}
            missing: list[str] = []
            bad = 0
            room = len(records) - 1                 # each part named is a record of its own
            for name, v in head["chunks"].items():
                # [gen, parts]: no more parts than records left (a hostile 1e9 is no loop)
                if not (type(v) is list and len(v) == 2 and type(v[0]) is int
                        and type(v[1]) is int and 0 <= v[0] <= MAX_GEN and 1 <= v[1] <= room):
                    bad += 1
                    continue
                g, nparts = v
                room -= nparts
                layout[name] = (g, nparts)
                for i in range(nparts):
                    suffix = "/%s/%d/%d" % (name, g, i)
                    named.add(suffix)
                    doc = _loads(records.get(suffix))
                    if doc is None or doc.get("format") != CHUNK_FORMAT or doc.get("chunk") != name \
                            or doc.get("gen") != g:
                        if records.get(suffix):
                            self.malformed += 1     # there, but not a record of this chunk
                        missing.append(suffix)
                        continue
                    if name == NORTH_CHUNK:
                        skipped = self._load_north(part, doc.get("north"))
                    else:
                        k, skipped = self._load_items(part, doc.get("incidents"))
                        n += k
                    if skipped:
                        self.malformed += 1
            self._layout[part] = layout
            if head.get("nchunks") != self.nchunks or missing or bad:
                self._full.add(part)                # another layout: rewrite it whole
            g = head.get("gen")
            if type(g) is int and 0 <= g <= MAX_GEN:
                gens.append(g)
            elif g is not None:
                bad += 1
            if bad:
                self.malformed += 1
            head = dict(head, missing=missing)
        elif head is not None:
            head = None
        if head is None and records.get(""):
            self.malformed += 1                     # a head, but none this reads
        self._gen[part] = max(gens)
        self._dirty.discard(part)
        self._dirty_chunks.pop(part, None)
        self._north_dirty.discard(part)
        orphans = sorted(s for s in records if s and s not in named)
        return head, n, orphans

    def forget_loaded(self, part: int) -> None:
        """Forget partition ``part``'s incidents and buckets but not where its saved state is:
        the next :meth:`save_records` replaces that whole (newer generation, tombstones)."""
        gen, layout = self._gen.get(part, 0), self._layout.get(part, {})
        self.drop(part)
        self._gen[part] = gen
        self._layout[part] = layout
        self._full.add(part)

    def drop(self, part: int) -> None:
        """Forget partition ``part``'s state (it was revoked: another instance owns it now)."""
        for inc in [i for i in self.open.values() if i.part == part]:
            self._forget(inc)
        self._north.pop(part, None)
        self._dirty.discard(part)
        self._dirty_chunks.pop(part, None)
        self._north_dirty.discard(part)
        self._full.discard(part)
        self._gen.pop(part, None)
        self._layout.pop(part, None)

    # -- internals ----------------------------------------------------------------------------
    def chunk_of(self, inc: Incident) -> int:
        return int(inc.id[:8], 16) % self.nchunks

    def _insert(self, inc: Incident) -> None:
        self.open[inc.key] = inc
        self._by_endpoint.setdefault(inc.key[:2], set()).add(inc.key)
        self._chunks.setdefault((inc.part, self.chunk_of(inc)), {})[inc.key] = inc

    def _touch(self, inc: Incident) -> None:
        self._dirty.add(inc.part)
        d = self._dirty_chunks.get(inc.part)
        if d is None:
            d = self._dirty_chunks[inc.part] = set()
        d.add(self.chunk_of(inc))

    def _put_chunk(self, out: list[tuple[str, bytes | None]], layout: dict[str, tuple[int, int]],
                   name: str, gen: int, field_name: str, texts: list[str]) -> None:
        """Append chunk ``name``'s records (parts of at most RECORD_MAX_BYTES) to ``out`` and
        name them in ``layout``; an empty chunk has no record."""
        if not texts:
            layout.pop(name, None)
            return
        pre = '{"format":"%s","version":%d,"chunk":%s,"gen":%d,"part":%%d,"%s":[' % (
            CHUNK_FORMAT, CHUNKED_VERSION, _state_dumps(name), gen, field_name)
        body = ",".join(texts).encode()
        if len(body) + len(pre) + 16 <= RECORD_MAX_BYTES:
            groups = [body]
        else:                               # rare: split at item boundaries
            groups, cur, size = [], [], 0
            for t in texts:
                b = t.encode()
                if len(b) + len(pre) + 16 > RECORD_MAX_BYTES:
                    self.too_large += 1     # one item alone over the limit (not expected)
                    continue
                if cur and size + len(b) + 1 + len(pre) + 16 > RECORD_MAX_BYTES:
                    groups.append(b",".join(cur))
                    cur, size = [], 0
                cur.append(b)
                size += len(b) + 1
            if cur:
                groups.append(b",".join(cur))
            if not groups:
                layout.pop(name, None)
                return
        for i, g in enumerate(groups):
            out.append(("/%s/%d/%d" % (name, gen, i), (pre % i).encode() + g + b"]}"))
        layout[name] = (gen, len(groups))

    def _load_items(self, part: int, items: object) -> tuple[int, int]:
        """Saved incidents (a list of :meth:`Incident.to_state`) into partition ``part``:
        (how many loaded, how many skipped as malformed)."""
        if not isinstance(items, list):
            return 0, int(items is not None)
        n = bad = 0
        for item in items:
            if len(self.open) >= self.max_open:
                self.dropped += 1
                break
            try:
                inc = Incident.from_state(item, part)
            except (KeyError, TypeError, ValueError, AttributeError):
                bad += 1
                continue
            if inc.key in self.open:
                continue
            self._insert(inc)
            n += 1
        return n, bad

    def _load_north(self, part: int, items: object) -> int:
        """Saved northbound buckets (``[sec, router, sensor, n]``) into partition ``part``;
        how many skipped as malformed."""
        if not isinstance(items, list):
            return int(items is not None)
        bad = 0
        for item in items:
            try:
                sec, srv, sensor, cnt = item
                self._add_north(part, saved_time(sec), str(srv),
                                None if sensor is None else str(sensor), saved_count(cnt))
            except (TypeError, ValueError):
                bad += 1
        return bad

    def _emit(self, inc: Incident, event: str, now: float) -> dict[str, object]:
        inc.emitted_count = inc.count
        inc.last_emit = now
        return inc.to_event(event)

    def _forget(self, inc: Incident) -> None:
        self.open.pop(inc.key, None)
        keys = self._by_endpoint.get(inc.key[:2])
        if keys is not None:
            keys.discard(inc.key)
            if not keys:
                del self._by_endpoint[inc.key[:2]]
        ck = (inc.part, self.chunk_of(inc))
        members = self._chunks.get(ck)
        if members is not None:
            members.pop(inc.key, None)
            if not members:
                del self._chunks[ck]

    def _resolve(self, inc: Incident, now: float, why: str) -> dict[str, object]:
        inc.state = "resolved"
        self._forget(inc)
        self._touch(inc)
        self.resolved += 1
        ev = self._emit(inc, "resolved", now)
        ev["resolution"] = why
        return ev

    def _correlate(self, inc: Incident) -> bool:
        """Attach (or refresh) the client-facing impact of a southbound incident.  True when
        the impact appeared or changed."""
        inc._correlated_at = inc.last_seen // 1         # (a float: NaN never equals)
        inc._correlate_due = False
        direction, server, cause = inc.key
        if direction != "southbound":
            return False
        lo, hi = inc.first_seen - self.window, inc.last_seen + self.window
        routers: dict[str, int] = {}
        sensors: set[str] = set()
        for buckets in self._north.values():
            for (sec, srv, sensor), cnt in buckets.items():
                if lo <= sec <= hi:
                    routers[srv] = routers.get(srv, 0) + cnt
                    if sensor:
                        sensors.add(sensor)
        if not routers:
            return False
        n = sum(routers.values())
        names = sorted(routers, key=lambda r: -routers[r])[:5]
        text = ("client-facing requests are failing: clients complete TLS with the router (%s, "
                "%d successful northbound handshakes in the same window) but the message "
                "processor cannot complete TLS with backend %s (%s), so the gateway answers "
                "them with HTTP 503 (service unavailable). Fix the southbound side; the "
                "northbound side is healthy." % (", ".join(names), n, server, cause))
        impact = {"client_facing": True, "http_status": 503, "northbound_successes": n,
                  "routers": names, "router_sensors": sorted(sensors),
                  "backend": server, "backend_sensors": sorted(inc.sensors), "text": text}
        old = inc.impact
        inc.impact = impact
        return old is None or old.get("routers") != names

    def _add_north(self, part: int, t: float, server: str, sensor: str | None,
                   n: int = 1) -> bool:
        """Count a northbound success; True when it made a new bucket."""
        buckets = self._north.get(part)
        if buckets is None:
            buckets = self._north[part] = OrderedDict()
        k = (int(t), server, sensor)
        self._dirty.add(part)
        self._north_dirty.add(part)
        if k in buckets:
            buckets[k] += n
            return False
        buckets[k] = n
        # a new bucket (about once a second per router endpoint): prune.  A bucket can only
        # matter to an incident whose window reaches back to it: drop the ones older than
        # every open incident's first failure (and than this success) minus the window.
        while len(buckets) > MAX_NORTH_BUCKETS:
            buckets.popitem(last=False)
        if next(iter(buckets))[0] < t - self.window - 1:
            oldest = min([i.first_seen for i in self.open.values()] + [t]) - self.window - 1
            while buckets and next(iter(buckets))[0] < oldest:
                buckets.popitem(last=False)
        return True
