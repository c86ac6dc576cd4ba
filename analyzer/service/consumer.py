"""The analyzer's loop: ``poll -> process_batch -> commit`` until the stop flag is set, one
Kafka transaction per batch by default (docs/services.md, "Analyzer")."""
from __future__ import annotations

import functools
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer
from kafka.structs import OffsetAndMetadata

from proto import topics
from proto.render import summary_to_json
from proto.summary import SchemaError, decode_summary

from ..config import DiagnoseConfig
from ..engine import is_success
from ..report import json_bytes as _json_bytes
from .batchgc import BatchGC
from .certstore import CertStore
from .config import AnalyzerConfig
from .producer import DeferredSends, Partitioner
from .state import PartitionState
from .webhook import Webhook

__all__ = ["Analyzer", "EnsureTopics"]

log = logging.getLogger(__name__)

#: an output record's bound, under the broker's default limit (1 MiB): a larger diagnosis or
#: incident event is sent with its long texts and lists cut (counted), a larger dead letter
#: with its value cut (a header says how long it was) -- a record Kafka refuses stops the batch
OUTPUT_MAX_BYTES = 900_000
#: a dead letter's value at most (the original stays on its topic until retention)
DLQ_MAX_VALUE = 512 * 1024

#: ``ensure_topics(bootstrap, {name: proto.topics.Topic})`` (``tlsdiag.kafka.ensure_topics``)
EnsureTopics = Callable[[str, Mapping[str, topics.Topic]], Any]

class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, analyzer: Analyzer) -> None:
        self._an = analyzer

    def on_partitions_revoked(self, revoked: Any) -> None:
        self._an.state.revoke([tp.partition for tp in revoked])

    def on_partitions_assigned(self, assigned: Any) -> None:
        self._an.assigned([tp.partition for tp in assigned])


class Analyzer:
    """A consumer-group member on the handshakes topic.

    Injected by the application (this package imports no other of ours but ``proto``):
    ``partition`` (Kafka's default partitioner, ``cext.wire.kafka_partition``),
    ``ensure_topics`` (topic creation; None: none), ``compression`` (the producer's codec).
    ``producer_factory(**kwargs)`` / ``consumer_factory(**kwargs)`` make the Kafka clients
    (kafka-python's classes by default; fakes in tests).  ``hook("record", i)`` is called after
    each record of a batch (tests)."""

    def __init__(self, cfg: AnalyzerConfig, diag: DiagnoseConfig, *, partition: Partitioner,
                 producer_factory: Callable[..., Any] = KafkaProducer,
                 consumer_factory: Callable[..., Any] = KafkaConsumer,
                 compression: str | None = None, ensure_topics: EnsureTopics | None = None,
                 hook: Callable[[str, object], None] | None = None) -> None:
        self.cfg = cfg
        self.diag = diag
        self.hook = hook
        self._partition = partition
        tuning = {"reconnect_backoff_ms": cfg.reconnect_backoff_ms,
                  "reconnect_backoff_max_ms": cfg.reconnect_backoff_max_ms,
                  "bootstrap_timeout_ms": cfg.bootstrap_timeout_ms}
        producer_factory = functools.partial(producer_factory, **tuning)
        consumer_factory = functools.partial(consumer_factory, **tuning)
        self._producer_factory = producer_factory
        self._consumer_factory = consumer_factory
        self._compression = compression
        self._ensure_topics = ensure_topics
        self.stop_requested = False
        self.counters: Counter[str] = Counter()
        self.poison: Counter[str] = Counter()
        self.failures: Counter[tuple[str, str]] = Counter()
        self.state = PartitionState(cfg, diag, partition, consumer_factory, self.counters)
        self.incidents = self.state.incidents
        self.webhook: Webhook | None = None
        #: further incident sinks (the Alertmanager client): ``put(event)``, ``resync_due()``,
        #: ``resync(open incidents' events)``, ``metrics()``, ``close()``
        self.sinks: list[Any] = []
        self._resync = False        # partitions (and so incidents) came or went
        self.last_latency: float | None = None
        self.gc = BatchGC()
        self.producer: Any = None
        self.consumer: Any = None
        self.certs: Any = None

    # -- Kafka plumbing -----------------------------------------------------------------------
    def connect(self) -> None:
        """Create the topics (when missing), the transactional producer, the group consumer
        (subscribed, rebalances restore state) and the certificate store (caught up)."""
        cfg = self.cfg
        if self._ensure_topics is not None:
            self._ensure_topics(cfg.kafka, {
                cfg.topic_handshakes: topics.HANDSHAKES, cfg.topic_certs: topics.CERTS,
                cfg.topic_profiles: topics.PROFILES, cfg.topic_diagnoses: topics.DIAGNOSES,
                cfg.topic_incidents: topics.INCIDENTS, cfg.topic_dlq: topics.DLQ})
        tid = "tlsdiag-%s-%s" % (cfg.group, cfg.instance) if cfg.exactly_once else None
        producer = self._producer_factory(
            bootstrap_servers=cfg.kafka, client_id="tlsdiag-analyzer-%s" % cfg.instance,
            acks="all", enable_idempotence=True, transactional_id=tid,
            linger_ms=cfg.producer_linger_ms, batch_size=cfg.producer_batch_size,
            compression_type=self._compression, max_request_size=cfg.producer_max_request_size)
        if tid:
            producer.init_transactions()
        self.producer = DeferredSends(producer, self._partition)
        self.consumer = self._consumer_factory(
            bootstrap_servers=cfg.kafka, group_id=cfg.group,
            client_id="tlsdiag-analyzer-%s" % cfg.instance, enable_auto_commit=False,
            # static membership (KIP-345): a restarted instance takes its partitions back at
            # once instead of waiting out the old member's session (45 s) -- e.g. after a
            # stop while the broker was away, when the old member could not leave the group.
            # The instance id must be unique in the group, as the transactional id already is.
            group_instance_id="tlsdiag-analyzer-%s" % cfg.instance,
            auto_offset_reset="earliest", isolation_level="read_committed",
            max_poll_records=cfg.max_records, max_partition_fetch_bytes=8 << 20)
        self.consumer.subscribe([cfg.topic_handshakes], listener=_Rebalance(self))
        self.certs = CertStore(cfg.kafka, cfg.topic_certs, cfg.cert_store,
                               self._consumer_factory)
        self.certs.catch_up(time.monotonic() + 10)
        log.info("analyzer connected: group %s, %d certificates loaded", cfg.group,
                 len(self.certs))

    def assigned(self, partitions: list[int]) -> None:
        """New input partitions: their state is restored before their first record."""
        self.state.restore(partitions, self.producer)
        self._resync = True
        if not self.cfg.exactly_once and partitions:
            self.state.load_emitted()

    # -- one batch ----------------------------------------------------------------------------
    def process_batch(self, records: Mapping[Any, list[Any]]) -> int:
        """Diagnose one poll's records (``{TopicPartition: [ConsumerRecord]}``) and send the
        outputs: diagnoses, incident events, dead letters, state.  Returns the record count.
        Committing is the caller's (``commit``)."""
        now = time.time()
        n, decoded, need = self._decode(records)
        if need:
            self._catch_up(need)
        for i, (part, raw, digests, ts_ms, offset) in enumerate(decoded):
            self._diagnose(part, raw, digests, offset, now)
            if ts_ms and ts_ms > 0:
                self.last_latency = now - ts_ms / 1000.0
            if self.hook is not None:
                self.hook("record", i)
        self._end_batch(now)
        return n

    def _decode(self, records: Mapping[Any, list[Any]]) -> tuple[int, list[Any], set[bytes]]:
        """The batch's record count, its summaries that decode (with their partition,
        certificate digests, timestamp and offset) and the digests not yet in the store; a
        record that does not decode goes to the dead-letter topic with its reason."""
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
                    self._dead_letter(r, e)
                    continue
                digests = list(raw["certificates"]) + list(raw["client_certificates"])
                need.update(d for d in digests if d not in self.certs)
                decoded.append((tp.partition, raw, digests, r.timestamp, r.offset))
        return n, decoded, need

    def _dead_letter(self, r: Any, e: SchemaError) -> None:
        reason = "unknown_version" if "version" in str(e) else "malformed"
        self.poison[reason] += 1
        value, headers = r.value, [("reason", str(e).encode()[:500]),
                                   ("source", ("%s/%d/%d" % (r.topic, r.partition,
                                                             r.offset)).encode())]
        if value is not None and len(value) > DLQ_MAX_VALUE:
            headers.append(("truncated", b"%d" % len(value)))
            value = value[:DLQ_MAX_VALUE]
        key = r.key[:1024] if isinstance(r.key, bytes) else r.key
        self.producer.send(self.cfg.topic_dlq, key=key, value=value, headers=headers)

    def _catch_up(self, need: set[bytes]) -> None:
        """Wait (up to ``cert_wait``) for the certificates the batch references."""
        cfg = self.cfg
        self.certs.catch_up(time.monotonic() + cfg.cert_wait, need)
        missing = [d for d in need if d not in self.certs]
        if missing:
            self.counters["certificates_missing"] += len(missing)
            log.warning("%d certificate(s) referenced by summaries never arrived on %s",
                        len(missing), cfg.topic_certs)

    def _diagnose(self, part: int, raw: dict[str, Any], digests: list[bytes], offset: int,
                  now: float) -> None:
        """One summary through its partition's engine: the profile learned, the diagnoses
        sent, the incidents told (unless the record is a replay the restored incident state
        has counted already)."""
        st = self.state
        eng = st.engine(part)
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
        # a summary from the future (a sensor's clock far ahead, see_time) is diagnosed but
        # not counted in the incidents: its time would hold an incident open for ever
        ahead = not st.see_time(t)
        success = is_success(s)
        if success:
            eng.observe(s, ders)
            st.dirty.add(part)
        diags = eng.diagnose(s, ders, warnings=self.cfg.warnings)
        self.counters["summaries"] += 1
        # a replayed record (below the restored incident state's offset) is already counted
        fresh = offset >= st.inc_next.get(part, 0)
        if fresh:
            st.inc_next[part] = offset + 1
        else:
            self.counters["incident_replays_skipped"] += 1
        if fresh and success and not ahead:
            for ev in self.incidents.success(str(s.get("direction") or eng_direction(diags)),
                                             str(s.get("server")), sensor, t, now, part):
                self._incident(ev)
        self._send_diagnoses(diags, sensor, fresh and not ahead, t, now, part)

    def _send_diagnoses(self, diags: list[dict[str, Any]], sensor: Any, fresh: bool, t: float,
                        now: float, part: int) -> None:
        """A summary's failures (each also told to the incidents when ``fresh``) and, with
        ``warnings``, its warnings, to the diagnoses topic."""
        warnings = self.cfg.warnings
        for d in diags:
            if d.get("severity") == "failure":
                key = str(d.get("id"))
                self.failures[(str(d.get("cause")), str(d.get("direction")))] += 1
                d["sensor"] = sensor
                if fresh:
                    for ev in self.incidents.failure(
                            d, sensor if isinstance(sensor, str) else None, t, now, part):
                        self._incident(ev)
            elif warnings:
                key = "%s/%s" % (d.get("id"), d.get("rule"))
                d["sensor"] = sensor
            else:
                continue
            self.producer.send(self.cfg.topic_diagnoses, key=key.encode()[:1024],
                               value=self._fit(d))
            self.counters["diagnoses"] += 1

    def _end_batch(self, now: float) -> None:
        """The batch's end: incidents resolved by time, the state snapshots."""
        st = self.state
        for ev in self.incidents.tick(now, st.data_time):
            self._incident(ev)
        if self.cfg.exactly_once:
            st.snapshot_profiles(self.producer)
        st.snapshot_incidents(self.producer)
        if self.cfg.batch_delay_ms:     # testing: widen the window between produce and commit
            self.producer.flush()
            time.sleep(self.cfg.batch_delay_ms / 1000.0)

    def _incident(self, ev: dict[str, object]) -> None:
        if self.state.emitted and self.state.already_sent(ev):
            self.counters["incident_events_already_sent"] += 1
            return
        self.producer.send(self.cfg.topic_incidents, key=str(ev["key"]).encode()[:1024],
                           value=self._fit(ev))
        self.counters["incident_events"] += 1
        if self.webhook is not None:
            self.webhook.put(ev)
        for sink in self.sinks:
            sink.put(ev)

    def _outputs_cut(self) -> int:
        return self.counters["outputs_cut"] + self.counters["profiles_not_saved"]

    def _fit(self, d: Mapping[str, Any]) -> bytes:
        """``d`` as JSON within :data:`OUTPUT_MAX_BYTES`: cut (counted) if it is larger."""
        value = _json_bytes(d)
        if len(value) <= OUTPUT_MAX_BYTES:
            return value
        self.counters["outputs_cut"] += 1
        value = _json_bytes(_cut(d))
        if len(value) <= OUTPUT_MAX_BYTES:
            return value
        # (multi-byte texts in many certificates' fields: still too large) the record's identity
        return _json_bytes({k: _cut(d.get(k)) for k in _ESSENTIAL if k in d} | {"cut": True})

    def commit(self, records: Mapping[Any, list[Any]]) -> None:
        """Past ``records`` (one poll's): the transaction's commit with the consumer offsets,
        or at-least-once a flush of the outputs then the offsets' commit."""
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
    def step(self) -> int:
        """One poll and its batch, committed (an idle poll still ticks the incidents); on an
        exception the transaction is aborted and the exception re-raised."""
        records = self.consumer.poll(timeout_ms=self.cfg.poll_timeout_ms,
                                     max_records=self.cfg.max_records)
        if self.cfg.exactly_once:
            self.producer.begin_transaction()
        try:
            n = self.process_batch(records) if records else 0
            if not records:
                for ev in self.incidents.tick(time.time(), self.state.data_time):
                    self._incident(ev)
                self.state.snapshot_incidents(self.producer)
            self.commit(records)
        except Exception:
            if self.cfg.exactly_once:
                try:
                    self.producer.abort_transaction()
                except Exception:
                    pass      # the original error is the one to report
            raise
        self.counters["batches"] += 1 if n else 0
        return n

    def run(self) -> None:
        """Connect, then batches until ``stop_requested``; then the state is saved, the last
        transaction committed and everything closed."""
        self.connect()
        self.gc.start()
        last_stats = time.monotonic()
        try:
            while not self.stop_requested:
                self.step()
                self.gc.after_batch()
                if self.sinks:
                    self._resync_sinks()
                if time.monotonic() - last_stats >= self.cfg.stats_interval:
                    last_stats = time.monotonic()
                    self._stats_line()
            if self.cfg.exactly_once:
                self.producer.begin_transaction()
            self.state.snapshot_profiles(self.producer, force=True)
            self.state.snapshot_incidents(self.producer)
            self.commit({})
        finally:
            self.gc.stop()
            self._stats_line()
            try:
                self.consumer.close(autocommit=False)
            finally:
                self.producer.close(timeout=self.cfg.close_timeout_s)
                self.certs.close()
                if self.webhook is not None:
                    self.webhook.close()
                for sink in self.sinks:
                    sink.close()

    def _resync_sinks(self) -> None:
        """Hand the sinks the incidents this instance owns now: after a rebalance, and when
        a sink asks (the Alertmanager client, every re-send interval)."""
        due = [s for s in self.sinks if self._resync or s.resync_due()]
        self._resync = False
        if due:
            events = [inc.to_event("open") for inc in self.incidents.open.values()]
            for sink in due:
                sink.resync(events)

    def _stats_line(self) -> None:
        log.info("stats: summaries=%d diagnoses=%d failures=%d poison=%d incidents_open=%d "
                    "incident_events=%d incidents_opened=%d incidents_resolved=%d "
                    "incident_state_records=%d incident_state_bytes=%d "
                    "incident_state_too_large=%d outputs_cut=%d certs=%d", self.counters["summaries"],
                    self.counters["diagnoses"], sum(self.failures.values()), sum(self.poison.values()),
                    len(self.incidents.open), self.counters["incident_events"], self.incidents.opened,
                    self.incidents.resolved, self.counters["incident_state_records"],
                    self.counters["incident_state_bytes"], self.counters["incident_state_too_large"],
                    self._outputs_cut(), len(self.certs))

    def metrics(self) -> list[tuple[str, str, str, object]]:
        out: list[tuple[str, str, str, object]] = [
            ("handshake_failures_total", "counter", "failed handshakes diagnosed, by cause",
             {(("cause", c), ("direction", d)): n for (c, d), n in self.failures.items()}
             or {(("cause", "none"), ("direction", "none")): 0}),
            ("tlsdiag_analyzer_summaries_total", "counter", "summaries consumed",
             self.counters["summaries"]),
            ("tlsdiag_analyzer_diagnoses_total", "counter", "diagnoses produced",
             self.counters["diagnoses"]),
            ("tlsdiag_analyzer_poison_messages_total", "counter",
             "undecodable messages sent to the DLQ",
             {(("reason", r),): n for r, n in self.poison.items()} or {(("reason", "none"),): 0}),
            ("tlsdiag_analyzer_incidents_open", "gauge", "open incidents",
             len(self.incidents.open)),
            ("tlsdiag_analyzer_incident_events_total", "counter", "incident events produced",
             self.counters["incident_events"]),
            ("tlsdiag_analyzer_certificates_missing_total", "counter",
             "referenced certificates that never arrived", self.counters["certificates_missing"]),
            ("tlsdiag_analyzer_state_records_malformed_total", "counter",
             "malformed profiles/incident state records skipped on restore",
             self.counters["state_records_malformed"]),
            ("tlsdiag_analyzer_outputs_cut_total", "counter",
             "diagnoses and incident events cut to fit a Kafka record, and learned server "
             "profiles left out of a snapshot record", self._outputs_cut()),
        ]
        if self.last_latency is not None:
            out.append(("tlsdiag_analyzer_record_age_seconds", "gauge",
                        "age of the last processed record", float(self.last_latency)))
        if self.webhook is not None:
            out.append(("tlsdiag_analyzer_webhook_events_total", "counter", "webhook deliveries",
                        {(("result", "sent"),): self.webhook.sent,
                         (("result", "failed"),): self.webhook.failed,
                         (("result", "dropped"),): self.webhook.dropped}))
        for sink in self.sinks:
            out.extend(sink.metrics())
        return out


def eng_direction(diags: list[dict[str, object]]) -> str:
    for d in diags:
        if d.get("direction"):
            return str(d["direction"])
    return "unknown"


#: what a diagnosis or an incident event keeps when even its cut copy is too large
_ESSENTIAL = ("id", "key", "incident", "event", "cause", "severity", "direction", "rejected_by",
              "confidence", "time", "rule", "count", "status", "sensor")


def _cut(v: Any, depth: int = 0) -> Any:
    """``v`` with every text cut to 1,000 characters and every list to 32 items (nested maps
    8 deep at most): a bounded copy of an output too large to send whole."""
    if isinstance(v, str):
        return v if len(v) <= 1000 else v[:1000] + "... (cut)"
    if depth >= 8:
        return None
    if isinstance(v, Mapping):
        return {str(k)[:1000]: _cut(x, depth + 1) for k, x in list(v.items())[:256]}
    if isinstance(v, (list, tuple)):
        return [_cut(x, depth + 1) for x in v[:32]]
    return v
