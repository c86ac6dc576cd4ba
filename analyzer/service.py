"""``tlsdiag analyzer --kafka HOST:PORT --group NAME [--config FILE] [diagnose flags]``

A consumer group on ``tls.handshakes``; each batch:

    poll(timeout_ms, max_records) -> decode -> Engine.observe + Engine.diagnose (the code of
    ``tlsdiag diagnose``) -> diagnoses on ``tls.diagnoses`` (key = connection id; a warning's key
    is ``id/rule``), incident events on ``tls.incidents``, undecodable messages on the
    dead-letter topic -> commit.

Exactly-once by default: the batch's outputs and its consumer offsets are one Kafka
transaction (``send_offsets_to_transaction``), so a crash at any point (SIGKILL included)
either shows the whole batch or none of it to ``read_committed`` readers, and the restarted
analyzer (same transactional id, derived from the group and ``--instance``) fences the
dead one and re-processes the batch.  ``--at-least-once`` uses ``producer.flush()`` then
``consumer.commit()`` instead: nothing is lost; a replay re-sends diagnoses under the same
keys (idempotent for a keyed/compacted consumer).

Certificates: a group-less reader of the compacted ``tls.certs`` topic (every instance needs
every certificate) feeds a bounded store; a summary whose certificates have not arrived yet
waits up to ``cert_wait`` seconds for them.

Server profiles are kept per input partition (summaries are keyed by server, so a server's
handshakes stay in one partition) and snapshotted to the compacted ``tls.profiles`` topic
(key ``GROUP/TOPIC/PARTITION``); a partition's profiles are restored when it is assigned.
At-least-once, the changed profiles are written with every batch (after its outputs are
flushed, before its commit) rather than every ``profile_snapshot_s``, so that a replayed batch
is diagnosed with the same profiles as the first time.

Incident state is restored the same way, so that a restart (SIGKILL included) neither forgets
an open incident -- and opens it a second time -- nor counts a replayed summary twice.  Each
incident belongs to the input partition of its summaries; whenever a batch changes a
partition's incident state, the changed part of it is written to the profiles topic before the
batch's commit (inside its transaction; in at-least-once mode after a flush of the batch's
incident events): the chunk records holding a changed incident or the northbound-success
buckets (keys ``GROUP/TOPIC/PARTITION/incidents/CHUNK/GEN/PART``), then the head (key
``GROUP/TOPIC/PARTITION/incidents``) naming the chunk records that make up the state and the
input offset it reflects ("every record below this offset is counted"), then tombstones for
the chunk records it replaced -- all to one profiles partition (see analyzer/incidents.py: a
crash between any two of them leaves the old state or the new one, never a mix; records of an
interrupted save are deleted when the partition is restored).  When the
partition is assigned again, the state is loaded before its first record is processed, and a
replayed record below that offset still gets its diagnosis re-sent (same key, idempotent) but
does not touch the incidents again.  Incident ids are a hash of the key and the time of the
first failure, so a replay re-creates the same ids.  In at-least-once mode a crash can fall
between the flush of a batch's events and that of its state: the replay then re-applies the
batch to the older state (counts stay right) and would send its events again, so on
assignment the analyzer reads the tail of the incidents topic (``EMITTED_TAIL`` events per
partition) and does not re-send an "opened"/"resolved" already there for that incident id, nor
an "updated" whose count is not above the one already sent.

Signals only set a flag: the loop finishes its batch, commits, and closes.
"""
from __future__ import annotations

import gc
import json
import logging
import sys
import threading
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, fields
from typing import Any, Callable, Mapping

from orjson import dumps as _orjson_dumps

from cext.wire import kafka_partition
from tlsdiag.status import ExitStatus

from .config import ConfigError, DiagnoseConfig
from .engine import Engine, is_success
from .incidents import IncidentTracker
from .profiles import FORMAT, FORMAT_VERSION, Profile

__all__ = ["AnalyzerConfig", "Analyzer", "CertStore", "Webhook", "read_secret"]

log = logging.getLogger(__name__)

#: ``json.dumps(o, ensure_ascii=False, separators=(",", ":"))`` without building an encoder
#: per call (one per diagnosis and incident event)
_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _json_bytes(obj: object) -> bytes:
    """``_json(obj).encode()``: the same bytes for every diagnosis and incident event
    (compared on the bench corpus), from orjson, ~5x faster (the stdlib encoder was ~12 % of
    the analyzer's per-message CPU).  What orjson refuses (an int over 64 bits, a non-str
    key, a lone surrogate) goes through the stdlib encoder as before."""
    try:
        return _orjson_dumps(obj)
    except TypeError:               # orjson.JSONEncodeError is a TypeError
        return _json(obj).encode()

#: at-least-once: incident events read back per incidents-topic partition on assignment
EMITTED_TAIL = 5000

#: batch-driven cyclic GC (see BatchGC): every batch collects the young generation, every
#: GC_MIDDLE_EVERY-th batch the middle one, every GC_FULL_EVERY-th batch all of them
GC_MIDDLE_EVERY = 10
GC_FULL_EVERY = 100


class BatchGC:
    """The cyclic garbage collector run between batches instead of by allocation counts.

    A batch keeps some 100k young containers alive until its end (the consumer records, the
    decoded summaries and their lists, rendered summaries, diagnoses, kafka-python's
    per-record futures).  Python's allocation-triggered collections (gen0 every 700 net
    allocations) scanned them over and over while they were alive and promoted them to the
    older generations, whose collections then walked the whole heap (kafka-python's state,
    profiles, caches): ~25 % of the analyzer's CPU through the broker
    (bench/analyzer/kafka_throughput.py, RESULTS.md).  Here the automatic collector is off;
    after a batch -- when its objects have been freed by reference counting and only the few
    that outlive it (profiles, incidents) are young -- the young generation is collected,
    every ``GC_MIDDLE_EVERY``-th batch the middle one and every ``GC_FULL_EVERY``-th batch
    everything.  Cyclic garbage therefore lives at most one batch (``max_records``) before
    the collection that finds it.  What exists once the analyzer is set up is frozen (never
    scanned again)."""

    def __init__(self) -> None:
        self.batches = 0

    def start(self) -> None:
        gc.collect()
        gc.freeze()
        gc.disable()

    def after_batch(self) -> None:
        self.batches += 1
        n = self.batches
        gc.collect(2 if n % GC_FULL_EVERY == 0 else 1 if n % GC_MIDDLE_EVERY == 0 else 0)

    @staticmethod
    def stop() -> None:
        gc.enable()


@dataclass(frozen=True)
class AnalyzerConfig:
    kafka: str
    group: str = "tlsdiag-analyzer"
    instance: str = "0"
    topic_handshakes: str = "tls.handshakes"
    topic_certs: str = "tls.certs"
    topic_diagnoses: str = "tls.diagnoses"
    topic_incidents: str = "tls.incidents"
    topic_profiles: str = "tls.profiles"
    topic_dlq: str = "tls.handshakes.dlq"
    max_records: int = 2000
    poll_timeout_ms: int = 500
    exactly_once: bool = True
    warnings: bool = True
    cert_wait: float = 5.0
    cert_store: int = 100_000
    profile_snapshot_s: float = 10.0
    incident_update_s: float = 30.0
    incident_resolve_successes: int = 3
    incident_resolve_quiet_s: float = 600.0
    incident_resolve_hold_s: float = 60.0
    correlation_window_s: float = 120.0
    metrics_port: int | None = None
    metrics_host: str = "0.0.0.0"
    webhook_url: str | None = None
    webhook_secret_file: str | None = None
    stats_interval: int = 60
    batch_delay_ms: int = 0          # testing: pause inside each batch (crash-window tests)
    state_delay_ms: int = 0          # testing: at-least-once, pause between a batch's incident
    #                                  events and its incident state (crash-window tests)

    def describe(self) -> dict[str, object]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["webhook_url"] = _mask_url(self.webhook_url)
        return d


def _mask_url(url: str | None) -> str | None:
    if not url:
        return url
    from urllib.parse import urlsplit, urlunsplit
    u = urlsplit(url)
    netloc = u.hostname or ""
    if u.port:
        netloc += ":%d" % u.port
    return urlunsplit((u.scheme, netloc, u.path, "***" if u.query else "", ""))


class CertStore:
    """Bounded LRU ``sha256 -> (der, facts)``, fed by a group-less reader of ``tls.certs``."""

    def __init__(self, bootstrap: str, topic: str, size: int) -> None:
        from kafka import KafkaConsumer
        self.topic = topic
        self.size = size
        self._d: OrderedDict[bytes, tuple[bytes, dict[str, Any]]] = OrderedDict()
        self.bad = 0
        self._c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                group_id=None, client_id="tlsdiag-analyzer-certs",
                                max_partition_fetch_bytes=16 << 20, fetch_max_bytes=64 << 20)
        self._assigned: set[Any] = set()

    def _assign(self) -> None:
        from kafka import TopicPartition
        parts = self._c.partitions_for_topic(self.topic) or set()
        tps = {TopicPartition(self.topic, p) for p in parts}
        if tps and tps != self._assigned:
            new = tps - self._assigned
            self._c.assign(list(tps))
            self._c.seek_to_beginning(*new)
            self._assigned = tps

    def catch_up(self, deadline: float, need: set[bytes] | None = None) -> None:
        """Read until the end offsets (or ``need`` is satisfied), at most until ``deadline``."""
        from proto.summary import SchemaError, decode_certificate
        self._assign()
        while True:
            recs = self._c.poll(timeout_ms=100, max_records=5000)
            for batch in recs.values():
                for r in batch:
                    try:
                        sha, der, facts = decode_certificate(r.value)
                    except SchemaError:
                        self.bad += 1
                        continue
                    self._d[sha] = (der, facts)
                    self._d.move_to_end(sha)
                    if len(self._d) > self.size:
                        self._d.popitem(last=False)
            if need is not None and all(d in self._d for d in need):
                return
            if not recs:
                if need is None and self._at_end():
                    return
                if time.monotonic() >= deadline:
                    return
                if need is not None:
                    self._assign()      # the topic may have been created meanwhile

    def _at_end(self) -> bool:
        if not self._assigned:
            return True
        try:
            ends = self._c.end_offsets(list(self._assigned))
            return all(self._c.position(tp) >= off for tp, off in ends.items())
        except Exception:
            return True

    def get(self, sha: bytes) -> tuple[bytes, dict[str, Any]] | None:
        return self._d.get(sha)

    def __contains__(self, sha: bytes) -> bool:
        return sha in self._d

    def close(self) -> None:
        self._c.close()


class Webhook:
    """JSON POST of incident events from a thread: bounded queue, retries with exponential
    backoff, ``X-Tlsdiag-Signature: sha256=HMAC(secret, body)`` when a secret is set."""

    def __init__(self, url: str, secret: bytes | None, queue_max: int = 10_000,
                 retries: int = 5, timeout: float = 5.0) -> None:
        import queue
        self.url = url
        self.secret = secret
        self.retries = retries
        self.timeout = timeout
        self.q: "queue.Queue[dict[str, object]]" = queue.Queue(maxsize=queue_max)
        self.sent = self.failed = self.dropped = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, name="webhook", daemon=True)
        self._t.start()

    def put(self, event: Mapping[str, object]) -> None:
        import queue
        try:
            self.q.put_nowait(dict(event))
        except queue.Full:
            self.dropped += 1

    def _post(self, body: bytes) -> None:
        import hashlib
        import hmac
        import urllib.request
        headers = {"Content-Type": "application/json", "User-Agent": "tlsdiag-analyzer"}
        if self.secret:
            headers["X-Tlsdiag-Signature"] = "sha256=" + hmac.new(self.secret, body,
                                                                   hashlib.sha256).hexdigest()
        req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            if resp.status >= 300:
                raise OSError("HTTP %d" % resp.status)

    def _run(self) -> None:
        import queue
        while not (self._stop.is_set() and self.q.empty()):
            try:
                ev = self.q.get(timeout=0.5)
            except queue.Empty:
                continue
            body = json.dumps(ev, separators=(",", ":")).encode()
            delay = 0.5
            for attempt in range(self.retries + 1):
                try:
                    self._post(body)
                    self.sent += 1
                    break
                except Exception as exc:   # urllib raises many kinds; all mean "retry"
                    if attempt == self.retries:
                        self.failed += 1
                        log.warning("webhook: giving up on an event after %d attempts: %s",
                                    attempt + 1, exc)
                        break
                    time.sleep(delay)
                    delay = min(delay * 2, 30.0)

    def close(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._t.join(timeout)


def read_secret(env: Mapping[str, str], path: str | None) -> bytes | None:
    v = env.get("TLSDIAG_WEBHOOK_SECRET")
    if v:
        return v.encode()
    if path:
        try:
            with open(path, "rb") as fh:
                return fh.read(4096).strip() or None
        except OSError as e:
            raise ConfigError("webhook secret file %s: %s" % (path, e.strerror)) from None
    return None


class _DeferredSends:
    """The batch's producer sends, held until the batch is committed (``flush``,
    ``send_offsets_to_transaction``, ``commit_transaction``) and then handed to kafka-python
    in one tight loop.  Sent one by one while the batch was being processed, kafka-python's
    I/O thread woke for each new producer batch and, with a transaction open, polled in a
    loop for the whole batch: ~100 us of CPU per consumed summary on a second thread, and
    GIL hand-overs that slowed the processing thread (bench/analyzer/kafka_throughput.py).
    Nothing is visible earlier either way: read_committed readers see a transaction's
    records at its commit, and a crash before the commit replays the batch.

    A keyed record gets its partition here, ``(murmur2(key) & 0x7fffffff) % partitions`` --
    Kafka's default partitioning, the partition a Java or kafka-python producer would pick --
    computed by ``cext.wire.kafka_partition`` (C; a pure-Python twin without the build), so
    kafka-python's partitioner (pure-Python murmur2 and cluster lookups: ~25 of the ~75 us a
    send costs, bench/analyzer/producer_send.py) never runs.  Same key -> same partition, as
    idempotent keys and compaction need; nothing changes for consumers."""

    def __init__(self, producer: Any) -> None:
        self._p = producer
        self._q: list[tuple[str, Any, Any, Any]] = []

    def send(self, topic: str, key: Any = None, value: Any = None, headers: Any = None,
             partition: int | None = None) -> None:
        self._q.append((topic, key, value, headers, partition))

    def _drain(self) -> None:
        q, self._q = self._q, []
        send = self._p.send
        nparts: dict[str, int] = {}
        for topic, key, value, headers, part in q:
            if key is None or part is not None:
                send(topic, key=key, value=value, headers=headers, partition=part)
                continue
            n = nparts.get(topic)
            if n is None:
                n = nparts[topic] = len(self._p.partitions_for(topic) or ()) or 1
            send(topic, key=key, value=value, headers=headers,
                 partition=kafka_partition(key, n))

    def flush(self, timeout: float | None = None) -> None:
        self._drain()
        self._p.flush(timeout)

    def send_offsets_to_transaction(self, offsets: Any, group: Any) -> None:
        self._drain()
        self._p.send_offsets_to_transaction(offsets, group)

    def commit_transaction(self) -> None:
        self._drain()
        self._p.commit_transaction()

    def abort_transaction(self) -> None:
        self._q = []              # the batch is re-processed after the abort
        self._p.abort_transaction()

    def close(self, timeout: float | None = None) -> None:
        self._q = []              # uncommitted: replayed by the next run
        self._p.close(timeout=timeout)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._p, name)


class Analyzer:
    def __init__(self, cfg: AnalyzerConfig, diag: DiagnoseConfig,
                 hook: Callable[[str, object], None] | None = None) -> None:
        self.cfg = cfg
        self.diag = diag
        self.hook = hook
        self.stop_requested = False
        self.engines: dict[int, Engine] = {}
        self._dirty: set[int] = set()
        self._last_snapshot = 0.0
        self.incidents = IncidentTracker(cfg.incident_update_s, cfg.incident_resolve_successes,
                                         cfg.incident_resolve_quiet_s, cfg.correlation_window_s,
                                         resolve_hold=cfg.incident_resolve_hold_s)
        # per input partition: records below this offset are counted in the incident state
        self._inc_next: dict[int, int] = {}
        self._profile_parts: int | None = None     # partitions of the profiles topic
        # at-least-once: incident id -> [opened sent, highest count sent, resolved sent], as
        # read back from the incidents topic on assignment (see _load_emitted)
        self._emitted: dict[str, list[Any]] = {}
        self.c: Counter[str] = Counter()
        self.poison: Counter[str] = Counter()
        self.failures: Counter[tuple[str, str]] = Counter()
        self.webhook: Webhook | None = None
        self._data_time: float | None = None
        self.last_latency: float | None = None
        self.gc = BatchGC()

    # -- Kafka plumbing -----------------------------------------------------------------------
    def _connect(self) -> None:
        from kafka import KafkaConsumer, KafkaProducer
        from kafka.consumer.subscription_state import ConsumerRebalanceListener
        from tlsdiag.kafka_topics import ensure_topics
        cfg = self.cfg
        ensure_topics(cfg.kafka, {cfg.topic_handshakes: False, cfg.topic_certs: True,
                                  cfg.topic_profiles: True, cfg.topic_diagnoses: False,
                                  cfg.topic_incidents: False, cfg.topic_dlq: False})
        tid = "tlsdiag-%s-%s" % (cfg.group, cfg.instance) if cfg.exactly_once else None
        self.producer = KafkaProducer(
            bootstrap_servers=cfg.kafka, client_id="tlsdiag-analyzer-%s" % cfg.instance,
            acks="all", enable_idempotence=True, transactional_id=tid,
            # a long linger: the batch's commit/flush sends everything anyway, and fewer new
            # producer batches mean fewer wake-ups of kafka-python's I/O thread (GIL ping-pong)
            linger_ms=200, batch_size=1 << 20,
            compression_type=_compression(), max_request_size=8 << 20)
        if tid:
            self.producer.init_transactions()
        self.producer = _DeferredSends(self.producer)
        self.consumer = KafkaConsumer(
            bootstrap_servers=cfg.kafka, group_id=cfg.group,
            client_id="tlsdiag-analyzer-%s" % cfg.instance, enable_auto_commit=False,
            auto_offset_reset="earliest", isolation_level="read_committed",
            max_poll_records=cfg.max_records, max_partition_fetch_bytes=8 << 20)
        outer = self

        class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
            def on_partitions_revoked(self, revoked: Any) -> None:
                for tp in revoked:
                    outer.engines.pop(tp.partition, None)
                    outer._dirty.discard(tp.partition)
                    outer.incidents.drop(tp.partition)
                    outer._inc_next.pop(tp.partition, None)

            def on_partitions_assigned(self, assigned: Any) -> None:
                outer._restore_profiles([tp.partition for tp in assigned])
                if not outer.cfg.exactly_once and assigned:
                    outer._load_emitted()

        self.consumer.subscribe([cfg.topic_handshakes], listener=Listener())
        self.certs = CertStore(cfg.kafka, cfg.topic_certs, cfg.cert_store)
        self.certs.catch_up(time.monotonic() + 10)
        log.info("analyzer connected: group %s, %d certificates loaded", cfg.group,
                 len(self.certs._d))
        self.gc.start()

    def _profile_key(self, partition: int) -> str:
        return "%s/%s/%d" % (self.cfg.group, self.cfg.topic_handshakes, partition)

    def _incident_key(self, partition: int) -> str:
        return self._profile_key(partition) + "/incidents"

    def _restore_profiles(self, partitions: list[int]) -> None:
        """Read the compacted profiles topic to its end; the last snapshot per key wins.
        Restores the partitions' server profiles and incident state."""
        from kafka import KafkaConsumer, TopicPartition
        want = {self._profile_key(p): p for p in partitions}
        want_inc = {self._incident_key(p): p for p in partitions}
        for p in partitions:
            self.engines[p] = Engine(self.diag)
            self.incidents.drop(p)
            self._inc_next.pop(p, None)
        if not want:
            return
        c = KafkaConsumer(bootstrap_servers=self.cfg.kafka, group_id=None,
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
            deadline = time.monotonic() + 30
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
                self._load_incidents(p, {k: v for k, v in recs.items() if v is not None})
            for k, v in latest.items():
                n = self._load_profiles(self.engines[want[k]], v)
                log.info("restored %d profiles for partition %d", n, want[k])
                self.c["profiles_restored"] += n
        finally:
            c.close()

    def _load_emitted(self) -> None:
        """At-least-once: remember the incident events already on the incidents topic (its
        last ``EMITTED_TAIL`` per partition), so that a replayed batch does not send them
        again when the crash came after the flush of its events and before that of its state."""
        from kafka import KafkaConsumer, TopicPartition
        seen: dict[str, list[Any]] = {}
        c = KafkaConsumer(bootstrap_servers=self.cfg.kafka, group_id=None,
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
                deadline = time.monotonic() + 30
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
        self._emitted = seen
        log.info("%d incident(s) already on %s", len(seen), self.cfg.topic_incidents)

    def _state_partition(self, partition: int) -> int:
        """The profiles-topic partition of every incident-state record of input partition
        ``partition`` (the one its head key hashes to): one partition of an idempotent
        producer keeps them in the order they were sent, so a crash leaves a prefix."""
        n = self._profile_parts
        if n is None:             # fixed for the process's life: one partition per state
            n = self._profile_parts = len(
                self.producer.partitions_for(self.cfg.topic_profiles) or ()) or 1
        return kafka_partition(self._incident_key(partition).encode(), n)

    def _load_incidents(self, partition: int, records: Mapping[str, bytes]) -> None:
        """Restore a partition's incident state from its live records (key suffix -> value,
        ``""`` the head) and delete the records the head does not name (orphans of a save a
        crash interrupted: they belong to no state, and the next saves use newer generations)."""
        head, n, orphans = self.incidents.restore_records(partition, records)
        if orphans:
            key = self._incident_key(partition)
            tp = self._state_partition(partition)
            for suffix in orphans:        # sent with the first batch (in its transaction)
                self.producer.send(self.cfg.topic_profiles, key=(key + suffix).encode(),
                                   value=None, partition=tp)
            self.c["incident_state_orphans"] += len(orphans)
            log.info("partition %d: deleting %d incident state record(s) of an interrupted "
                     "save", partition, len(orphans))
        if head is None or not isinstance(head.get("offset"), int):
            if records.get(""):
                log.warning("ignoring a malformed incident state for partition %d", partition)
            self.incidents.forget_loaded(partition)
            return
        if head.get("missing"):
            self.c["incident_state_missing"] += len(head["missing"])
            log.warning("incident state of partition %d: %d record(s) it names are missing "
                        "or malformed; restored the rest", partition, len(head["missing"]))
        self._inc_next[partition] = head["offset"]
        dt = head.get("data_time")
        if isinstance(dt, (int, float)):
            self._data_time = dt if self._data_time is None else max(self._data_time, dt)
        self.c["incidents_restored"] += n
        log.info("restored %d open incident(s) for partition %d (counted up to offset %d)",
                 n, partition, head["offset"])

    def _snapshot_incidents(self) -> None:
        """Write the incident state of the partitions this batch changed (before the commit):
        per partition the changed chunks, the head, tombstones (``save_records``), all to one
        profiles partition.  At-least-once: after a flush of the batch's outputs, and with the
        changed profiles (every batch, not every ``profile_snapshot_s``), so that a replayed
        batch is diagnosed with the profiles it was first diagnosed with."""
        dirty = self.incidents.take_dirty()
        alo = not self.cfg.exactly_once
        if not dirty and not (alo and self._dirty):
            return
        if alo:
            # the events first: a state that says "counted" must not outlive unsent events
            self.producer.flush()
            if self.cfg.state_delay_ms:     # testing: widen the window before the state
                time.sleep(self.cfg.state_delay_ms / 1000.0)
            self._snapshot_profiles(force=True)
        too_large = self.incidents.too_large
        for p in sorted(dirty):
            key = self._incident_key(p)
            tp = self._state_partition(p)
            for suffix, value in self.incidents.save_records(
                    p, offset=self._inc_next.get(p, 0), data_time=self._data_time):
                self.producer.send(self.cfg.topic_profiles, key=(key + suffix).encode(),
                                   value=value, partition=tp)
                self.c["incident_state_records"] += 1
                self.c["incident_state_bytes"] += len(value or b"")
            self.c["incident_snapshots"] += 1
        if self.incidents.too_large != too_large:
            # one incident alone over RECORD_MAX_BYTES (its texts are bounded: not expected)
            self.c["incident_state_too_large"] += self.incidents.too_large - too_large
            log.warning("%d incident(s) too large to save (a restart may re-open them)",
                        self.incidents.too_large - too_large)

    @staticmethod
    def _load_profiles(engine: Engine, value: bytes | None) -> int:
        if not value:
            return 0
        try:
            doc = json.loads(value)
        except ValueError:
            return 0
        if not isinstance(doc, dict) or doc.get("format") != FORMAT \
                or doc.get("version") != FORMAT_VERSION:
            return 0
        n = 0
        for item in doc.get("profiles") or []:
            try:
                p = Profile.from_json(item)
            except (TypeError, ValueError):
                continue
            engine.profiles._insert((p.server, p.server_name), p)
            n += 1
        return n

    def _snapshot_profiles(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self._dirty or (not force and now - self._last_snapshot < self.cfg.profile_snapshot_s):
            return
        self._last_snapshot = now
        for p in sorted(self._dirty):
            eng = self.engines.get(p)
            if eng is None:
                continue
            doc = {"format": FORMAT, "version": FORMAT_VERSION,
                   "profiles": [x.to_json() for x in eng.profiles]}
            self.producer.send(self.cfg.topic_profiles, key=self._profile_key(p).encode(),
                               value=json.dumps(doc, separators=(",", ":")).encode())
            self.c["profile_snapshots"] += 1
        self._dirty.clear()

    # -- one batch ----------------------------------------------------------------------------
    def process_batch(self, records: Mapping[Any, list[Any]]) -> int:
        from proto.render import summary_to_json
        from proto.summary import SchemaError, decode_summary
        send = self.producer.send
        cfg = self.cfg
        now = time.time()
        n = 0
        decoded = []
        need: set[bytes] = set()
        for tp, batch in records.items():
            for r in batch:
                n += 1
                try:
                    if r.value is None:
                        raise SchemaError("empty message")
                    raw = decode_summary(r.value)
                except SchemaError as e:
                    reason = "unknown_version" if "version" in str(e) else "malformed"
                    self.poison[reason] += 1
                    send(cfg.topic_dlq, key=r.key, value=r.value,
                         headers=[("reason", str(e).encode()[:500]),
                                  ("source", ("%s/%d/%d" % (r.topic, r.partition, r.offset)).encode())])
                    continue
                digests = list(raw["certificates"]) + list(raw["client_certificates"])
                need.update(d for d in digests if d not in self.certs)
                decoded.append((tp.partition, raw, digests, r.timestamp, r.offset))
        if need:
            self.certs.catch_up(time.monotonic() + cfg.cert_wait, need)
            missing = [d for d in need if d not in self.certs]
            if missing:
                self.c["certificates_missing"] += len(missing)
                log.warning("%d certificate(s) referenced by summaries never arrived on %s",
                            len(missing), cfg.topic_certs)
        inc_next = self._inc_next
        for i, (part, raw, digests, ts_ms, offset) in enumerate(decoded):
            eng = self.engines.get(part)
            if eng is None:
                eng = self.engines[part] = Engine(self.diag)
            facts: dict[bytes, dict[str, Any]] = {}
            ders: dict[str, bytes] = {}
            for d in digests:
                got = self.certs.get(d)
                if got is not None:
                    ders[d.hex()] = got[0]
                    facts[d] = got[1]
            s = summary_to_json(raw, facts)
            sensor = s.get("sensor")
            t = float(s.get("end") or s.get("start") or now)
            self._data_time = t if self._data_time is None else max(self._data_time, t)
            if is_success(s):
                eng.observe(s, ders)
                self._dirty.add(part)
            diags = eng.diagnose(s, ders, warnings=cfg.warnings)
            self.c["summaries"] += 1
            # a replayed record (below the restored incident state's offset) is already counted
            fresh = offset >= inc_next.get(part, 0)
            if fresh:
                inc_next[part] = offset + 1
            else:
                self.c["incident_replays_skipped"] += 1
            if fresh and is_success(s):
                for ev in self.incidents.success(str(s.get("direction") or eng_direction(diags)),
                                                 str(s.get("server")), sensor, t, now, part):
                    self._incident(ev)
            for d in diags:
                if d.get("severity") == "failure":
                    key = str(d.get("id"))
                    self.failures[(str(d.get("cause")), str(d.get("direction")))] += 1
                    d["sensor"] = sensor
                    if fresh:
                        for ev in self.incidents.failure(
                                d, sensor if isinstance(sensor, str) else None, t, now, part):
                            self._incident(ev)
                elif cfg.warnings:
                    key = "%s/%s" % (d.get("id"), d.get("rule"))
                    d["sensor"] = sensor
                else:
                    continue
                send(cfg.topic_diagnoses, key=key.encode(), value=_json_bytes(d))
                self.c["diagnoses"] += 1
            if ts_ms and ts_ms > 0:
                self.last_latency = now - ts_ms / 1000.0
            if self.hook is not None:
                self.hook("record", i)
        for ev in self.incidents.tick(now, self._data_time):
            self._incident(ev)
        if cfg.exactly_once:
            self._snapshot_profiles()
        self._snapshot_incidents()
        if cfg.batch_delay_ms:     # testing: widen the window between produce and commit
            self.producer.flush()
            time.sleep(cfg.batch_delay_ms / 1000.0)
        return n

    def _incident(self, ev: dict[str, object]) -> None:
        if self._emitted:
            e = self._emitted.get(str(ev["incident"]))
            kind = ev["event"]
            if e is not None and ((kind == "opened" and e[0]) or (kind == "resolved" and e[2]) or (
                    kind == "updated" and int(ev["count"]) <= e[1])):   # type: ignore[call-overload]
                self.c["incident_events_already_sent"] += 1
                return
        self.producer.send(self.cfg.topic_incidents, key=str(ev["key"]).encode(),
                           value=_json_bytes(ev))
        self.c["incident_events"] += 1
        if self.webhook is not None:
            self.webhook.put(ev)

    def _commit(self, records: Mapping[Any, list[Any]]) -> None:
        from kafka.structs import OffsetAndMetadata
        offsets = {tp: OffsetAndMetadata(batch[-1].offset + 1, "", -1)
                   for tp, batch in records.items() if batch}
        if self.cfg.exactly_once:
            if offsets:
                self.producer.send_offsets_to_transaction(offsets, self.consumer.group_metadata())
            self.producer.commit_transaction()
        else:
            self.producer.flush()
            if offsets:
                self.consumer.commit(offsets)

    # -- the loop -----------------------------------------------------------------------------
    def run(self) -> int:
        # kafka-python's I/O thread and this loop share the GIL: every producer wake-up
        # (a socket write) waits for the switch interval; 5 ms by default made each send
        # cost milliseconds.  0.5 ms keeps the hand-over cheap.
        sys.setswitchinterval(0.0005)
        self._connect()
        last_stats = time.monotonic()
        try:
            while not self.stop_requested:
                records = self.consumer.poll(timeout_ms=self.cfg.poll_timeout_ms,
                                             max_records=self.cfg.max_records)
                if self.cfg.exactly_once:
                    self.producer.begin_transaction()
                try:
                    n = self.process_batch(records) if records else 0
                    if not records:
                        for ev in self.incidents.tick(time.time(), self._data_time):
                            self._incident(ev)
                        self._snapshot_incidents()
                    self._commit(records)
                except Exception:
                    if self.cfg.exactly_once:
                        try:
                            self.producer.abort_transaction()
                        except Exception:
                            pass
                    raise
                self.c["batches"] += 1 if n else 0
                self.gc.after_batch()
                if time.monotonic() - last_stats >= self.cfg.stats_interval:
                    last_stats = time.monotonic()
                    self._stats_line()
            if self.cfg.exactly_once:
                self.producer.begin_transaction()
            self._snapshot_profiles(force=True)
            self._snapshot_incidents()
            self._commit({})
        finally:
            self.gc.stop()
            self._stats_line()
            try:
                self.consumer.close(autocommit=False)
            finally:
                self.producer.close(timeout=10)
                self.certs.close()
                if self.webhook is not None:
                    self.webhook.close()
        return ExitStatus.SUCCESS

    def _stats_line(self) -> None:
        log.warning("stats: summaries=%d diagnoses=%d failures=%d poison=%d incidents_open=%d "
                    "incident_events=%d incidents_opened=%d incidents_resolved=%d "
                    "incident_state_records=%d incident_state_bytes=%d "
                    "incident_state_too_large=%d certs=%d", self.c["summaries"],
                    self.c["diagnoses"], sum(self.failures.values()), sum(self.poison.values()),
                    len(self.incidents.open), self.c["incident_events"], self.incidents.opened,
                    self.incidents.resolved, self.c["incident_state_records"],
                    self.c["incident_state_bytes"], self.c["incident_state_too_large"],
                    len(self.certs._d))

    def metrics(self) -> list[tuple[str, str, str, object]]:
        out: list[tuple[str, str, str, object]] = [
            ("handshake_failures_total", "counter", "failed handshakes diagnosed, by cause",
             {(("cause", c), ("direction", d)): n for (c, d), n in self.failures.items()}
             or {(("cause", "none"), ("direction", "none")): 0}),
            ("tlsdiag_analyzer_summaries_total", "counter", "summaries consumed",
             self.c["summaries"]),
            ("tlsdiag_analyzer_diagnoses_total", "counter", "diagnoses produced",
             self.c["diagnoses"]),
            ("tlsdiag_analyzer_poison_messages_total", "counter",
             "undecodable messages sent to the DLQ",
             {(("reason", r),): n for r, n in self.poison.items()} or {(("reason", "none"),): 0}),
            ("tlsdiag_analyzer_incidents_open", "gauge", "open incidents",
             len(self.incidents.open)),
            ("tlsdiag_analyzer_incident_events_total", "counter", "incident events produced",
             self.c["incident_events"]),
            ("tlsdiag_analyzer_certificates_missing_total", "counter",
             "referenced certificates that never arrived", self.c["certificates_missing"]),
        ]
        if self.last_latency is not None:
            out.append(("tlsdiag_analyzer_record_age_seconds", "gauge",
                        "age of the last processed record", float(self.last_latency)))
        if self.webhook is not None:
            out.append(("tlsdiag_analyzer_webhook_events_total", "counter", "webhook deliveries",
                        {(("result", "sent"),): self.webhook.sent,
                         (("result", "failed"),): self.webhook.failed,
                         (("result", "dropped"),): self.webhook.dropped}))
        return out


def eng_direction(diags: list[dict[str, object]]) -> str:
    for d in diags:
        if d.get("direction"):
            return str(d["direction"])
    return "unknown"


def _compression() -> str | None:
    from sensor.publisher import best_compression
    return best_compression()
