"""Summaries and certificates to Kafka without ever stalling capture.

The capture loop calls :meth:`Publisher.publish` (an append to a bounded queue: never
blocks).  One sender thread owns the Kafka producer (kafka-python, idempotent, acks=all,
lz4/zstd, linger/batch tuned) and a bounded on-disk :class:`sensor.spool.Spool`.  Each round
of the sender is in one of the :class:`SenderState` states:

* ``ONLINE``: queue -> ``producer.send``, a run of messages per wake-up (the sender sleeps a
  few ms after a wake-up so that one wake-up sends many messages); the futures are kept in
  send order and reaped by the sender thread (no per-message callbacks): a failed one is
  spooled;
* ``STALLED``: something has been unacknowledged for ``stall_s`` -> new messages go to the
  spool, in order, while the producer keeps retrying (idempotently);
* ``DRAINING``: no longer stalled, but what was sent before the stall is still in flight:
  the queue still goes to the spool until it is acknowledged (keeps the order);
* ``REPLAYING``: the spool is sent, oldest segment first, before the queue;
* ``OFFLINE``: no producer (none could be created, or a stalled one was abandoned after its
  delivery timeout): every ``probe_interval`` s a new one is tried; the queue goes to the
  spool.

Only a full spool drops a message, counted (``spool_dropped``) and logged (rate-limited).  A
spool record the replay cannot use (torn, unknown kind) is skipped, counted (``spool_torn``); a
message ``send`` raises on for itself (not a Kafka error of the moment: a bug, a bad record)
is dropped, counted (``internal_errors``); a message too large for the producer
(``max_request_size``, below Kafka's default ``max.message.bytes``) is dropped, counted
(``rejected``) and logged: neither is retried for ever.  A record the broker refuses for
itself (a topic whose ``max.message.bytes`` is lower; an invalid record) is worse: the
idempotent producer then fails every later batch with the same error (so it does after any
error it cannot retry).  The producer is abandoned -- what it had not delivered spooled, in
order -- and a new one made; the messages that failed with such an error are sent again one
at a time, each awaited, before anything else: one refused on its own is dropped
(``rejected``), the others go on.  A message the broker refuses costs two reconnects, not the
sensor's output from then on, and no other message.

If the queue is full (the sender cannot keep up, or the disk is slow) the capture thread
appends to the spool itself; those messages are replayed before newer queued ones, so under
overload a few messages can overtake older queued ones.

Summaries go to ``tls.handshakes`` keyed by server endpoint (one server's handshakes stay in
order in one partition); each distinct certificate goes once to the compacted ``tls.certs``
keyed by its SHA-256 hex, remembered in a bounded LRU "already sent" set.

The partition of every keyed record is chosen here with Kafka's default partitioning,
``murmur2(key) % partitions`` (:func:`cext.wire.kafka_partition`, in C): the partition a
Java or kafka-python producer would choose, without kafka-python's pure-Python murmur2
(about a third of a send's CPU).  The partition counts are re-read every
``PARTITIONS_TTL`` seconds and with each new producer.

The application injects what this package may not import: ``ensure_topics`` (topic creation,
``tlsdiag.kafka``) and the resolved compression codec.
"""
from __future__ import annotations

import enum
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kafka import KafkaProducer
from kafka.errors import InvalidRecordError, KafkaError, MessageSizeTooLargeError

from cext import wire
from proto import topics
from proto.summary import encode_certificate, encode_summary
from proto.text import one_line
from sensor.spool import Spool

__all__ = ["Publisher", "PublisherConfig", "SenderState", "KIND_SUMMARY", "KIND_CERT"]

log = logging.getLogger(__name__)

KIND_SUMMARY = 0
KIND_CERT = 1
#: seconds a topic's partition count is used before it is read again from the metadata
PARTITIONS_TTL = 60.0
#: with fewer messages queued than this, the sender waits a moment for more before a run
GATHER_BELOW = 32
#: at most this many queued messages go to the spool per sender round
SPOOL_RUN = 10_000

#: ``ensure_topics(bootstrap, {name: proto.topics.Topic})`` -> names created, None when the
#: broker could not be asked (``tlsdiag.kafka.ensure_topics``)
EnsureTopics = Callable[[str, Mapping[str, topics.Topic]], "list[str] | None"]


@dataclass(frozen=True)
class PublisherConfig:
    bootstrap: str
    #: required: a restarted sensor replays what the last one left here, so it must be the
    #: same directory across restarts (the command supplies the default)
    spool_dir: str
    topic_handshakes: str = topics.HANDSHAKES.name
    topic_certs: str = topics.CERTS.name
    spool_max_bytes: int = 256 << 20
    spool_segment_bytes: int = 4 << 20
    queue_max: int = 50_000
    cert_cache: int = 50_000
    #: kafka-python's ``compression_type`` (zstd, lz4, gzip, snappy or None); the command
    #: resolves "auto" (``tlsdiag.kafka.best_compression``)
    compression: str | None = None
    linger_ms: int = 20
    batch_size: int = 256 << 10
    delivery_timeout_ms: int = 600_000
    request_timeout_ms: int = 5_000
    #: how long send() may block on metadata or a full buffer (a timeout spools the rest)
    max_block_ms: int = 2_000
    #: how long creating a producer may wait for a broker to answer (it blocks the sender
    #: thread meanwhile); None: kafka-python's default (30 s in kafka-python 3)
    bootstrap_timeout_ms: int | None = 2_000
    reconnect_backoff_ms: int = 200
    reconnect_backoff_max_ms: int = 2_000
    retry_backoff_ms: int = 200
    #: also the cap on one message (larger ones are dropped, counted as ``rejected``): below
    #: Kafka's default max.message.bytes (1048588), so that the broker does not refuse one
    max_request_size: int = 1_000_000
    stall_s: float = 3.0
    max_unacked: int = 50_000
    send_run: int = 2_000
    probe_interval: float = 2.0
    client_id: str = "tlsdiag-sensor"


class SenderState(enum.Enum):
    """What one round of the sender does (see the module docstring)."""
    OFFLINE = "offline"
    STALLED = "stalled"
    DRAINING = "draining"
    REPLAYING = "replaying"
    ONLINE = "online"


_COUNTERS = ("published", "certs_published", "certs_cached", "acked", "send_errors", "spooled",
             "spool_replayed", "spool_dropped", "queue_overflow", "bytes_published",
             "internal_errors", "rejected")

#: what Kafka says of one record itself: sending it again gives the same answer
_REJECTED = (MessageSizeTooLargeError, InvalidRecordError)


class Publisher:
    """See the module docstring.  ``start()``, ``publish(raw, certs)`` ..., ``close(timeout)``.

    ``producer_factory()`` returns a producer with kafka-python's ``send`` / ``flush`` /
    ``close`` / ``partitions_for`` (default: a ``KafkaProducer`` from the config, after
    ``ensure_topics`` had a chance to create the topics compacted)."""

    def __init__(self, config: PublisherConfig,
                 producer_factory: Callable[[], Any] | None = None,
                 ensure_topics: EnsureTopics | None = None) -> None:
        self.cfg = config
        # capture thread appends, sender thread pops; bounded by config.queue_max
        self._queue: deque[tuple[int, bytes, bytes]] = deque()
        self._wake = threading.Event()
        self._idle = False
        # a wake-up waits this long for more messages before sending the run
        self._gather_s = min(0.005, config.linger_ms / 4000)
        self.spool = Spool(config.spool_dir, config.spool_max_bytes, config.spool_segment_bytes,
                           frozenset((KIND_SUMMARY, KIND_CERT)))
        self._sent_certs: OrderedDict[bytes, None] = OrderedDict()
        self._failed: deque[tuple[int, bytes, bytes]] = deque()
        self._poisoned = False          # a delivery failed for good: abandon the producer
        # what failed with an error that is not of the moment: sent again one at a time
        self._suspects: deque[tuple[int, bytes, bytes]] = deque()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._producer: Any = None
        self._producer_factory = producer_factory or self._make_producer
        self._producer_failing = False     # the last producer creation failed (logged once)
        self._ensure_topics = ensure_topics
        self._partitions: dict[str, int] = {}
        self._partitions_at = 0.0
        self.online = False
        self.state = SenderState.OFFLINE
        # (future, item, send time) in send order; only the sender thread changes it
        self._inflight: deque[tuple[Any, tuple[int, bytes, bytes], float]] = deque()
        # taken from the queue by the sender, not yet in flight or spooled (flush waits for
        # them); set before they leave the queue, cleared after they are in flight/spooled
        self._in_hand = 0
        self._topics_checked = ensure_topics is None
        self._topics_thread: threading.Thread | None = None
        self._last_probe = 0.0
        self._last_drop_log = 0.0
        # written by the capture thread (publish, a queue overflow to the spool) and the
        # sender thread (acks, errors, spooling): every update and the read hold the lock
        self._counts_lock = threading.Lock()
        self._counts = dict.fromkeys(_COUNTERS, 0)

    def _count(self, name: str, n: int = 1) -> int:
        """Add ``n`` to counter ``name``; its new value."""
        with self._counts_lock:
            self._counts[name] += n
            return self._counts[name]

    # -- capture-thread side ------------------------------------------------------------------
    def publish(self, raw: dict[str, Any], certs: list[Any]) -> None:
        """Queue one summary and the certificates not sent yet.  Never blocks."""
        items = []
        cached = 0
        for c in certs:
            digest, der, facts = c[0], c[1], c[2]
            if digest in self._sent_certs:
                self._sent_certs.move_to_end(digest)
                cached += 1
                continue
            self._sent_certs[digest] = None
            if len(self._sent_certs) > self.cfg.cert_cache:
                self._sent_certs.popitem(last=False)
            items.append((KIND_CERT, digest.hex().encode(), encode_certificate(digest, der, facts)))
        value = encode_summary(raw)
        items.append((KIND_SUMMARY, str(raw.get("server") or "").encode(), value))
        with self._counts_lock:            # one lock round per summary
            c = self._counts
            c["certs_cached"] += cached
            c["certs_published"] += len(items) - 1
            c["published"] += 1
            c["bytes_published"] += len(value)
        q = self._queue
        for it in items:
            if len(q) < self.cfg.queue_max:
                q.append(it)
            else:
                self._count("queue_overflow")
                self._to_spool([it])
        if self._idle:
            self._wake.set()

    # -- sender thread ------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tlsdiag-publisher", daemon=True)
        self._thread.start()

    def _make_producer(self) -> KafkaProducer:
        if not self._topics_checked and (self._topics_thread is None
                                         or not self._topics_thread.is_alive()):
            # in its own thread: an admin client waits up to 30 s for a broker that is away
            self._topics_thread = threading.Thread(target=self._check_topics, daemon=True,
                                                   name="tlsdiag-topics")
            self._topics_thread.start()
            # give it a moment, so that the producer's first metadata request does not
            # auto-create the certificates topic uncompacted first
            self._topics_thread.join(5.0)
        cfg = self.cfg
        extra = ({} if cfg.bootstrap_timeout_ms is None
                 else {"bootstrap_timeout_ms": cfg.bootstrap_timeout_ms})
        return KafkaProducer(
            bootstrap_servers=cfg.bootstrap, client_id=cfg.client_id,
            acks="all", enable_idempotence=True, compression_type=cfg.compression,
            linger_ms=cfg.linger_ms, batch_size=cfg.batch_size,
            delivery_timeout_ms=cfg.delivery_timeout_ms,
            request_timeout_ms=cfg.request_timeout_ms, max_block_ms=cfg.max_block_ms,
            reconnect_backoff_ms=cfg.reconnect_backoff_ms,
            reconnect_backoff_max_ms=cfg.reconnect_backoff_max_ms,
            max_request_size=cfg.max_request_size, retry_backoff_ms=cfg.retry_backoff_ms, **extra)

    def _check_topics(self) -> None:
        assert self._ensure_topics is not None
        self._topics_checked = self._ensure_topics(
            self.cfg.bootstrap, {self.cfg.topic_handshakes: topics.HANDSHAKES,
                                 self.cfg.topic_certs: topics.CERTS}) is not None

    @property
    def _unacked(self) -> int:
        return len(self._inflight)

    def _reap(self) -> None:
        """Count the acknowledged messages at the head of the in-flight queue; a failed one
        goes to ``_failed`` (spooled by the sender loop).  Stops at the first pending one, so
        messages are accounted for in send order."""
        inflight = self._inflight
        acked = errors = 0
        while inflight and inflight[0][0].is_done:
            fut, item, _t = inflight.popleft()
            exc = fut.exception
            if exc is None:
                acked += 1
            elif isinstance(exc, KafkaError) and not exc.retriable:
                # the idempotent producer fails every later batch after such an error (it is
                # fatal to its sequence numbers): a new one; which message it was, the
                # messages that failed so tell, each sent alone (module docstring)
                errors += 1
                self._poisoned = True
                self._suspects.append(item)
            else:
                errors += 1
                self._failed.append(item)
        if acked or errors:
            with self._counts_lock:
                self._counts["acked"] += acked
                self._counts["send_errors"] += errors

    def _refresh_partitions(self) -> None:
        now = time.monotonic()
        if now - self._partitions_at > PARTITIONS_TTL:
            self._partitions.clear()
            self._partitions_at = now

    def _partition(self, topic: str, key: bytes) -> int | None:
        """Kafka's default partition for ``key`` (see the module docstring); None (the
        producer's own choice) while the topic's partitions are unknown."""
        n = self._partitions.get(topic)
        if n is None:
            # the producer's metadata (it blocks up to max_block_ms for a new topic, as
            # send() would; a timeout raises to the caller, which spools)
            n = self._partitions[topic] = len(self._producer.partitions_for(topic) or ())
        return wire.kafka_partition(key, n) if n else None

    def _send_run(self, items: list[tuple[int, bytes, bytes]]) -> int:
        """Send ``items`` in order; returns how many were done with: sent, or dropped as
        unsendable (fewer when Kafka refused one for now: the caller keeps the rest, in
        order)."""
        self._refresh_partitions()
        send = self._producer.send
        topic_of = {KIND_CERT: self.cfg.topic_certs, KIND_SUMMARY: self.cfg.topic_handshakes}
        sent = []
        now = time.monotonic()
        done = 0
        for item in items:
            kind, key, value = item
            try:
                topic = topic_of[kind]
                fut = send(topic, key=key, value=value, partition=self._partition(topic, key))
            except _REJECTED as exc:
                self._reject(item, exc)             # too large for the producer
            except Exception as exc:
                if isinstance(exc, KafkaError):
                    log.info("send failed (%s): spooling", one_line(exc))
                    self._count("send_errors")
                    break
                # a bug, a bad record: it would fail every retry
                self._drop_unsendable(item)
            else:
                sent.append((fut, item, now))
            done += 1
        self._inflight.extend(sent)
        return done

    def _drop_unsendable(self, item: tuple[int, bytes, bytes]) -> None:
        """Count (``internal_errors``) and drop a message ``send`` refused for itself, not for
        Kafka being away; logged the 1st, 2nd, 4th ... time, with the traceback."""
        n = self._count("internal_errors")
        if n & (n - 1) == 0:
            log.exception("message of kind %d, key %r, %d bytes cannot be sent: dropped (%d so "
                          "far; logged at powers of 2)", item[0], item[1][:64], len(item[2]), n)

    def _send_suspect(self) -> None:
        """Send the oldest message that failed for good, alone, and wait for it: refused on
        its own, it is dropped (``rejected``) and the producer -- failing everything now --
        replaced; delivered, the next one; anything else, it waits for a new producer."""
        item = self._suspects[0]
        before = len(self._inflight)
        if self._send_run([item]) == 0:             # send() raised a Kafka error: later
            self._abandon_inflight()
            return
        if len(self._inflight) == before:           # send() refused it itself (too large)
            self._suspects.popleft()
            return
        try:
            self._producer.flush(timeout=self.cfg.request_timeout_ms / 1000.0 * 2)
        except Exception as exc:                    # (a timeout: as if it had failed)
            log.info("flush of a message sent alone: %s", one_line(exc))
        fut = self._inflight.pop()[0]               # (tracked here, not by the reap)
        if fut.is_done and fut.exception is None:
            self._suspects.popleft()
            self._count("acked")
        elif fut.is_done and isinstance(fut.exception, _REJECTED):
            self._suspects.popleft()
            self._reject(item, fut.exception)
            self._abandon_inflight()
        else:                                       # (still the oldest: tried again)
            self._count("send_errors")
            self._abandon_inflight()

    def _reject(self, item: tuple[int, bytes, bytes], exc: BaseException) -> None:
        """Count (``rejected``) and drop a message Kafka refuses for itself (see the module
        docstring); logged the 1st, 2nd, 4th ... time."""
        n = self._count("rejected")
        if n & (n - 1) == 0:
            log.warning("Kafka refuses a message of kind %d, key %r, %d bytes (%s): dropped (%d "
                        "so far; logged at powers of 2)%s", item[0], item[1][:64], len(item[2]),
                        one_line(exc), n, "; the topic's max.message.bytes, or the producer's "
                        "max_request_size, is below it" if isinstance(
                            exc, MessageSizeTooLargeError) else "")

    def _oldest_unacked_age(self) -> float:
        inflight = self._inflight
        return time.monotonic() - inflight[0][2] if inflight else 0.0

    def _abandon_inflight(self) -> None:
        """Close the producer and spool what it never acknowledged, in send order."""
        self._reap()
        self._drain_failed()            # (what failed was sent before what is in flight)
        items = [item for fut, item, _t in self._inflight
                 if not (fut.is_done and fut.exception is None)]
        self._count("acked", len(self._inflight) - len(items))
        self._inflight = deque()
        self._close_producer()
        self._poisoned = False          # (its reap may have found failures that poison it)
        if items:
            log.warning("abandoning %d unacknowledged message(s) to the spool", len(items))
            self._to_spool(items)

    def _to_spool(self, items: list[tuple[int, bytes, bytes]]) -> None:
        dropped = self.spool.append(items)
        with self._counts_lock:
            self._counts["spooled"] += len(items) - dropped
            self._counts["spool_dropped"] += dropped
            total = self._counts["spool_dropped"]
        if dropped:
            now = time.monotonic()
            if now - self._last_drop_log > 10:
                self._last_drop_log = now
                log.warning("spool full (%d bytes): %d message(s) dropped, %d in total",
                            self.spool.bytes, dropped, total)

    def _set_online(self, online: bool, why: str = "") -> None:
        if online and not self.online:
            log.info("Kafka at %s accepts messages again (%d spooled to replay)",
                        self.cfg.bootstrap, len(self.spool))
        elif not online and self.online:
            log.warning("Kafka unavailable (%s): spooling to %s", why, self.spool.dir)
        self.online = online

    def _close_producer(self) -> None:
        p, self._producer = self._producer, None
        if p is not None:
            try:
                p.close(timeout=0, null_logger=True)
            except Exception:
                pass

    def _drain_failed(self) -> None:
        if self._failed:
            items = []
            while self._failed:
                items.append(self._failed.popleft())
            self._to_spool(items)

    def _replay_segment(self) -> None:
        """Hand the oldest spool segment to the producer (tracked like any send) and remove
        it; what the producer refuses goes back to the head of the spool, in order."""
        got = self.spool.oldest()
        if got is None:
            return
        seq, items = got
        before = len(self._inflight)
        n = self._send_run(items)
        self._count("spool_replayed", len(self._inflight) - before)
        if n < len(items):
            self.spool.rewrite(seq, items[n:], len(items))
            self._set_online(False, "replay send failed")
        else:
            self.spool.remove(seq, len(items))

    def _run(self) -> None:
        while True:
            try:
                if self._step():
                    return
            except Exception:
                self._count("internal_errors")
                log.exception("publisher sender loop error (continuing)")
                self._set_online(False, "internal error")
                time.sleep(0.5)

    def _state(self) -> SenderState:
        if self._producer is None:
            return SenderState.OFFLINE
        if self._oldest_unacked_age() > self.cfg.stall_s:
            return SenderState.STALLED
        if not self.online and self._unacked:
            return SenderState.DRAINING
        if len(self.spool):
            return SenderState.REPLAYING
        return SenderState.ONLINE

    def _step(self) -> bool:
        """One round of the sender loop; True when the thread should end.

        Healthy = nothing unacknowledged for longer than ``stall_s``.  The producer retries
        (idempotently: the broker drops re-sent batches) for ``delivery_timeout_ms``; while it
        is stalled new messages go to the spool; once everything in flight is acknowledged the
        spool is replayed, then the queue.  A producer stalled past its delivery timeout is
        abandoned and its unacknowledged messages spooled."""
        self._reap()
        self._drain_failed()
        if self._poisoned:
            self._abandon_inflight()
        if self._suspects and self._producer is not None and not self._stop.is_set():
            self._send_suspect()
            return False
        self.state = state = self._state()
        if state in (SenderState.REPLAYING, SenderState.ONLINE) and not self.online:
            self._set_online(True)
        return self._ROUNDS[state](self, self._stop.is_set())

    def _offline(self, stopping: bool) -> bool:
        if stopping:
            self._spool_queue()
            return True
        now = time.monotonic()
        if now - self._last_probe >= self.cfg.probe_interval:
            self._last_probe = now
            try:
                self._producer = self._producer_factory()
                self._partitions.clear()
            except Exception as exc:
                if self._producer_failing:
                    log.debug("producer: %s", one_line(exc))
                else:        # once per outage; the spool and the online gauge tell the rest
                    log.warning("cannot create a Kafka producer for %s (retrying every %gs, "
                                "spooling meanwhile): %s", self.cfg.bootstrap,
                                self.cfg.probe_interval, one_line(exc))
                self._producer_failing = True
            else:
                self._producer_failing = False
                return False          # the next round sends (or waits for the broker)
        self._set_online(False, "no broker")
        self._spool_queue(0.2)
        return False

    def _stalled(self, stopping: bool) -> bool:
        age = self._oldest_unacked_age()
        self._set_online(False, "%d message(s) unacknowledged for %.0fs" % (self._unacked, age))
        if age > self.cfg.delivery_timeout_ms / 1000 + 5:
            self._abandon_inflight()
        elif stopping:
            return True
        else:
            self._spool_queue(0.05)
        return False

    def _draining(self, stopping: bool) -> bool:
        # wait for what is in flight before replaying (keeps the order)
        if stopping:
            return True
        self._spool_queue(0.05)
        return False

    def _replaying(self, stopping: bool) -> bool:
        if self._unacked < self.cfg.max_unacked // 2:
            self._replay_segment()
        else:
            time.sleep(0.01)
        return False

    def _online(self, stopping: bool) -> bool:
        if self._unacked >= self.cfg.max_unacked:
            time.sleep(0.01)
            return False
        items = self._take(min(self.cfg.send_run, self.cfg.max_unacked - self._unacked),
                           0.02 if self._inflight else 0.2)
        if not items:
            return stopping
        try:
            n = self._send_run(items)
            if n < len(items):
                self._to_spool(items[n:])
                self._set_online(False, "send raised")
        finally:
            self._in_hand = 0
        return False

    _ROUNDS: dict[SenderState, Callable[[Publisher, bool], bool]] = {
        SenderState.OFFLINE: _offline, SenderState.STALLED: _stalled,
        SenderState.DRAINING: _draining, SenderState.REPLAYING: _replaying,
        SenderState.ONLINE: _online}

    def _take(self, limit: int, wait: float) -> list[tuple[int, bytes, bytes]]:
        """Up to ``limit`` queued messages.  With fewer than ``GATHER_BELOW`` queued, first
        wait for more: for the first one up to ``wait`` s (``publish`` sets ``_wake`` only
        while the sender is idle), then ``_gather_s``, so that at a moderate rate one wake-up
        sends a run of messages instead of one."""
        q = self._queue
        if len(q) < GATHER_BELOW:
            if not q:
                self._idle = True
                if not q:
                    self._wake.wait(wait)
                self._idle = False
                self._wake.clear()
                if not q:
                    return []
            if self._gather_s and not self._stop.is_set():
                time.sleep(self._gather_s)
        n = min(limit, len(q))
        # counted before they leave the queue: flush() checks the queue, then _in_hand
        self._in_hand = n
        return [q.popleft() for _ in range(n)]

    def _spool_queue(self, wait: float = 0.0) -> None:
        items = self._take(SPOOL_RUN, wait) if wait else []
        q = self._queue
        while q and len(items) < SPOOL_RUN:
            items.append(q.popleft())
        if items:
            self._to_spool(items)
        self._in_hand = 0

    # -- shutdown / stats ---------------------------------------------------------------------
    def flush(self, timeout: float = 30.0, while_offline: bool = True) -> bool:
        """Wait until the queue and spool are empty and every send is acknowledged.  With
        ``while_offline=False`` give up as soon as Kafka is known to be away (nothing would
        be delivered before the timeout: what is left goes to the spool)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (not self._queue and not self._in_hand and not len(self.spool)
                    and self._unacked == 0 and self.online and not self._failed
                    and not self._suspects):
                return True
            if not while_offline and not self.online:
                return False
            time.sleep(0.05)
        return False

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what can be delivered within ``timeout`` seconds in all (less when Kafka is
        away); what is left goes to the spool, for the next start."""
        deadline = time.monotonic() + timeout
        self.flush(timeout, while_offline=False)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            # the sender may be in a call bounded by bootstrap_timeout_ms / max_block_ms
            self._thread.join(max(deadline - time.monotonic(),
                                  max(self.cfg.max_block_ms, self.cfg.bootstrap_timeout_ms or 0)
                                  / 1000.0 + 0.5))
        p = self._producer
        if p is not None and self._unacked and self.online:
            try:
                p.flush(timeout=max(0.1, deadline - time.monotonic()))
            except Exception as exc:
                log.warning("producer flush: %s", one_line(exc))
            self._reap()                  # what the flush delivered is not "never acked"
        never = self._unacked
        self._abandon_inflight()          # closes the producer; unacked -> spool
        self._drain_failed()
        if self._suspects:                # (after what followed them: a rare reordering)
            self._to_spool(list(self._suspects))
            self._suspects.clear()
        self._spool_queue()
        self.spool.close()
        if never or len(self.spool):
            log.warning("shutdown: %d message(s) never acknowledged; %d message(s) left in "
                        "spool %s for the next start", never, len(self.spool), self.spool.dir)

    def stats(self) -> dict[str, int]:
        with self._counts_lock:
            s = dict(self._counts)
        s["queue_depth"] = len(self._queue)
        s["spool_depth"] = len(self.spool)
        s["spool_bytes"] = self.spool.bytes
        s["spool_torn"] = self.spool.torn
        s["unacked"] = self._unacked
        s["online"] = int(self.online)
        return s
