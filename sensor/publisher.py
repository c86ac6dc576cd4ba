"""Summaries and certificates to Kafka without ever stalling capture.

The capture loop calls :meth:`Publisher.publish` (``put_nowait`` on a bounded queue: never
blocks).  One sender thread owns the Kafka producer (kafka-python, idempotent, acks=all,
lz4/zstd, linger/batch tuned) and a bounded on-disk :class:`Spool`:

* online: queue -> ``producer.send``, a run of messages per wake-up (the sender sleeps a few
  ms after a wake-up so that one wake-up sends many messages); the futures are kept in send
  order and reaped by the sender thread (no per-message callbacks): a failed one is spooled;
* a failed delivery, a send that raises, or too many unacknowledged messages -> offline:
  everything goes to the spool, in order;
* offline, every ``probe_interval`` s a fresh producer tries the oldest spool segment; when it
  is acknowledged the rest of the spool is replayed in order, then the queue again;
* only a full spool drops a message, counted (``spool_dropped``) and logged (rate-limited).

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
"""
from __future__ import annotations

import logging
import os
import struct
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass

from cext import wire
from proto.summary import encode_certificate, encode_summary

__all__ = ["Publisher", "PublisherConfig", "Spool", "best_compression"]

log = logging.getLogger(__name__)

KIND_SUMMARY = 0
KIND_CERT = 1
_REC = struct.Struct("!IBH")          # total length, kind, key length
_MAX_RECORD = 8 << 20
#: seconds a topic's partition count is used before it is read again from the metadata
PARTITIONS_TTL = 60.0


def best_compression() -> str | None:
    """zstd if the zstandard module is importable, else lz4, else none."""
    for name, mod in (("zstd", "zstandard"), ("lz4", "lz4")):
        try:
            __import__(mod)
            return name
        except ImportError:
            continue
    return None


@dataclass(frozen=True)
class PublisherConfig:
    bootstrap: str
    topic_handshakes: str = "tls.handshakes"
    topic_certs: str = "tls.certs"
    spool_dir: str | None = None
    spool_max_bytes: int = 256 << 20
    spool_segment_bytes: int = 4 << 20
    queue_max: int = 50_000
    cert_cache: int = 50_000
    compression: str | None = "auto"
    linger_ms: int = 20
    batch_size: int = 256 << 10
    delivery_timeout_ms: int = 600_000
    request_timeout_ms: int = 5_000
    stall_s: float = 3.0
    max_unacked: int = 50_000
    send_run: int = 2_000
    probe_interval: float = 2.0
    client_id: str = "tlsdiag-sensor"


class Spool:
    """Bounded, ordered, on-disk queue of ``(kind, key, value)`` records in segment files
    ``NNNNNNNNNNNN.spool``.  Survives a process restart (leftover segments are replayed)."""

    def __init__(self, directory: str, max_bytes: int, segment_bytes: int) -> None:
        self.dir = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        os.makedirs(directory, exist_ok=True)
        self._lock = threading.Lock()
        self._segments: deque[int] = deque(sorted(
            int(n.split(".")[0]) for n in os.listdir(directory)
            if n.endswith(".spool") and n.split(".")[0].isdigit()))
        self._sizes = {s: os.path.getsize(self._path(s)) for s in self._segments}
        self._next = (self._segments[-1] + 1) if self._segments else 1
        self._out = None
        self._out_seq: int | None = None
        self.records = 0     # approximate: exact for this process's appends/removals
        if self._segments:
            n = sum(self._count(s) for s in self._segments)
            self.records = n
            log.info("spool %s: %d records left from a previous run", directory, n)

    def _path(self, seq: int) -> str:
        return os.path.join(self.dir, "%012d.spool" % seq)

    def _count(self, seq: int) -> int:
        return len(self._read(seq))

    @property
    def bytes(self) -> int:
        return sum(self._sizes.values())

    def __len__(self) -> int:
        return self.records

    def append(self, items: list[tuple[int, bytes, bytes]]) -> int:
        """Append in order; returns how many did NOT fit (dropped)."""
        dropped = 0
        with self._lock:
            total = self.bytes
            for kind, key, value in items:
                rec = _REC.pack(_REC.size + len(key) + len(value), kind, len(key)) + key + value
                if total + len(rec) > self.max_bytes:
                    dropped += 1
                    continue
                if self._out is None or self._sizes[self._out_seq] >= self.segment_bytes:
                    self._rotate()
                self._out.write(rec)
                self._sizes[self._out_seq] += len(rec)
                total += len(rec)
                self.records += 1
            if self._out is not None:
                self._out.flush()
        return dropped

    def _rotate(self) -> None:
        if self._out is not None:
            self._out.close()
        seq = self._next
        self._next += 1
        self._out = open(self._path(seq), "ab")
        self._out_seq = seq
        self._segments.append(seq)
        self._sizes[seq] = 0

    def _read(self, seq: int) -> list[tuple[int, bytes, bytes]]:
        out = []
        try:
            with open(self._path(seq), "rb") as fh:
                data = fh.read()
        except OSError:
            return out
        pos = 0
        while pos + _REC.size <= len(data):
            ln, kind, kl = _REC.unpack_from(data, pos)
            if ln < _REC.size + kl or ln > _MAX_RECORD or pos + ln > len(data):
                log.warning("spool segment %s: torn record at %d, rest skipped", seq, pos)
                break
            key = data[pos + _REC.size:pos + _REC.size + kl]
            out.append((kind, key, data[pos + _REC.size + kl:pos + ln]))
            pos += ln
        return out

    def oldest(self) -> tuple[int, list[tuple[int, bytes, bytes]]] | None:
        """The oldest segment's records (the segment being written is closed first)."""
        with self._lock:
            if not self._segments:
                return None
            seq = self._segments[0]
            if seq == self._out_seq:
                self._out.close()
                self._out = None
                self._out_seq = None
        return seq, self._read(seq)

    def remove(self, seq: int, n: int) -> None:
        with self._lock:
            try:
                os.unlink(self._path(seq))
            except OSError:
                pass
            if self._segments and self._segments[0] == seq:
                self._segments.popleft()
            self._sizes.pop(seq, None)
            self.records = max(0, self.records - n)

    def rewrite(self, seq: int, items: list[tuple[int, bytes, bytes]], had: int) -> None:
        """Replace segment ``seq`` (``had`` records) with ``items``, keeping its place."""
        with self._lock:
            tmp = self._path(seq) + ".tmp"
            with open(tmp, "wb") as fh:
                for kind, key, value in items:
                    fh.write(_REC.pack(_REC.size + len(key) + len(value), kind, len(key)))
                    fh.write(key)
                    fh.write(value)
            os.replace(tmp, self._path(seq))
            self._sizes[seq] = os.path.getsize(self._path(seq))
            self.records = max(0, self.records - had + len(items))

    def close(self) -> None:
        with self._lock:
            if self._out is not None:
                self._out.close()
                self._out = None
                self._out_seq = None


class Publisher:
    """See the module docstring.  ``start()``, ``publish(raw, certs)`` ..., ``close(timeout)``."""

    def __init__(self, config: PublisherConfig, producer_factory=None) -> None:
        self.cfg = config
        # capture thread appends, sender thread pops; bounded by config.queue_max
        self._queue: deque[tuple[int, bytes, bytes]] = deque()
        self._wake = threading.Event()
        self._idle = False
        # a wake-up waits this long for more messages before sending the run
        self._gather_s = min(0.005, config.linger_ms / 4000)
        spool_dir = config.spool_dir or os.path.join(
            os.environ.get("TMPDIR", "/tmp"), "tlsdiag-spool-%d" % os.getpid())
        self.spool = Spool(spool_dir, config.spool_max_bytes, config.spool_segment_bytes)
        self._sent_certs: OrderedDict[bytes, None] = OrderedDict()
        self._failed: deque = deque()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._producer = None
        self._producer_factory = producer_factory or self._make_producer
        self._partitions: dict[str, int] = {}
        self._partitions_at = 0.0
        self.online = False
        # (future, item, send time) in send order; only the sender thread changes it
        self._inflight: deque = deque()
        self._topics_checked = False
        self._topics_thread: threading.Thread | None = None
        self._offline_since = 0.0
        self._last_probe = 0.0
        self._last_drop_log = 0.0
        self.compression = (best_compression() if config.compression == "auto"
                            else config.compression)
        self.c = {"published": 0, "certs_published": 0, "certs_cached": 0, "acked": 0,
                  "send_errors": 0, "spooled": 0, "spool_replayed": 0, "spool_dropped": 0,
                  "queue_overflow": 0, "bytes_published": 0}

    # -- capture-thread side ------------------------------------------------------------------
    def publish(self, raw: dict, certs: list) -> None:
        """Queue one summary and the certificates not sent yet.  Never blocks."""
        items = []
        for c in certs:
            digest, der, facts = c[0], c[1], c[2]
            if digest in self._sent_certs:
                self._sent_certs.move_to_end(digest)
                self.c["certs_cached"] += 1
                continue
            self._sent_certs[digest] = None
            if len(self._sent_certs) > self.cfg.cert_cache:
                self._sent_certs.popitem(last=False)
            items.append((KIND_CERT, digest.hex().encode(), encode_certificate(digest, der, facts)))
            self.c["certs_published"] += 1
        value = encode_summary(raw)
        items.append((KIND_SUMMARY, str(raw.get("server") or "").encode(), value))
        self.c["published"] += 1
        self.c["bytes_published"] += len(value)
        q = self._queue
        for it in items:
            if len(q) < self.cfg.queue_max:
                q.append(it)
            else:
                self.c["queue_overflow"] += 1
                self._to_spool([it])
        if self._idle:
            self._wake.set()

    # -- sender thread ------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tlsdiag-publisher", daemon=True)
        self._thread.start()

    def _make_producer(self):
        from kafka import KafkaProducer
        if not self._topics_checked and (self._topics_thread is None
                                         or not self._topics_thread.is_alive()):
            # in its own thread: an admin client waits up to 30 s for a broker that is away
            self._topics_thread = threading.Thread(target=self._ensure_topics, daemon=True,
                                                   name="tlsdiag-topics")
            self._topics_thread.start()
            # give it a moment, so that the producer's first metadata request does not
            # auto-create the certificates topic uncompacted first
            self._topics_thread.join(5.0)
        return KafkaProducer(
            bootstrap_servers=self.cfg.bootstrap, client_id=self.cfg.client_id,
            acks="all", enable_idempotence=True, compression_type=self.compression,
            linger_ms=self.cfg.linger_ms, batch_size=self.cfg.batch_size,
            delivery_timeout_ms=self.cfg.delivery_timeout_ms,
            request_timeout_ms=self.cfg.request_timeout_ms, max_block_ms=2000,
            reconnect_backoff_ms=200, reconnect_backoff_max_ms=2000,
            max_request_size=8 << 20, retry_backoff_ms=200)

    def _ensure_topics(self) -> None:
        from proto import topics
        from tlsdiag.kafka import ensure_topics
        self._topics_checked = ensure_topics(
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
        while inflight and inflight[0][0].is_done:
            fut, item, _t = inflight.popleft()
            if fut.exception is None:
                self.c["acked"] += 1
            else:
                self.c["send_errors"] += 1
                self._failed.append(item)

    def _refresh_partitions(self) -> None:
        now = time.monotonic()
        if now - self._partitions_at > PARTITIONS_TTL:
            self._partitions.clear()
            self._partitions_at = now

    def _partition(self, topic: str, key: bytes):
        """Kafka's default partition for ``key`` (see the module docstring); None (the
        producer's own choice) while the topic's partitions are unknown."""
        n = self._partitions.get(topic)
        if n is None:
            # the producer's metadata (it blocks up to max_block_ms for a new topic, as
            # send() would; a timeout raises to the caller, which spools)
            n = self._partitions[topic] = len(self._producer.partitions_for(topic) or ())
        return wire.kafka_partition(key, n) if n else None

    def _send_run(self, items: list[tuple[int, bytes, bytes]]) -> int:
        """Send ``items`` in order; returns how many were sent (fewer when a send raised:
        the caller keeps the rest, in order)."""
        self._refresh_partitions()
        send = self._producer.send
        topic_of = {KIND_CERT: self.cfg.topic_certs, KIND_SUMMARY: self.cfg.topic_handshakes}
        sent = []
        now = time.monotonic()
        for item in items:
            kind, key, value = item
            try:
                topic = topic_of[kind]
                fut = send(topic, key=key, value=value, partition=self._partition(topic, key))
            except Exception as exc:
                log.info("send failed (%s): spooling", _one_line(exc))
                self.c["send_errors"] += 1
                break
            sent.append((fut, item, now))
        self._inflight.extend(sent)
        return len(sent)

    def _oldest_unacked_age(self) -> float:
        inflight = self._inflight
        return time.monotonic() - inflight[0][2] if inflight else 0.0

    def _abandon_inflight(self) -> None:
        """Close the producer and spool what it never acknowledged, in send order."""
        self._reap()
        items = [item for fut, item, _t in self._inflight
                 if not (fut.is_done and fut.exception is None)]
        self.c["acked"] += len(self._inflight) - len(items)
        self._inflight = deque()
        self._close_producer()
        if items:
            log.warning("abandoning %d unacknowledged message(s) to the spool", len(items))
            self._to_spool(items)

    def _to_spool(self, items: list) -> None:
        dropped = self.spool.append(items)
        self.c["spooled"] += len(items) - dropped
        if dropped:
            self.c["spool_dropped"] += dropped
            now = time.monotonic()
            if now - self._last_drop_log > 10:
                self._last_drop_log = now
                log.warning("spool full (%d bytes): %d message(s) dropped, %d in total",
                            self.spool.bytes, dropped, self.c["spool_dropped"])

    def _set_online(self, online: bool, why: str = "") -> None:
        if online and not self.online:
            log.warning("Kafka at %s accepts messages again (%d spooled to replay)",
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
        n = self._send_run(items)
        self.c["spool_replayed"] += n
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
                self.c["internal_errors"] = self.c.get("internal_errors", 0) + 1
                log.exception("publisher sender loop error (continuing)")
                self._set_online(False, "internal error")
                time.sleep(0.5)

    def _step(self) -> bool:
        """One round of the sender loop; True when the thread should end.

        Healthy = nothing unacknowledged for longer than ``stall_s``.  The producer retries
        (idempotently: the broker drops re-sent batches) for ``delivery_timeout_ms``; while it
        is stalled new messages go to the spool; once everything in flight is acknowledged the
        spool is replayed, then the queue.  A producer stalled past its delivery timeout is
        abandoned and its unacknowledged messages spooled."""
        self._reap()
        self._drain_failed()
        stopping = self._stop.is_set()
        now = time.monotonic()
        if self._producer is None:
            if stopping:
                self._spool_queue()
                return True
            if now - self._last_probe >= self.cfg.probe_interval:
                self._last_probe = now
                try:
                    self._producer = self._producer_factory()
                    self._partitions.clear()
                except Exception as exc:
                    log.debug("producer: %s", _one_line(exc))
            if self._producer is None:
                self._set_online(False, "no broker")
                self._spool_queue(0.2)
                return False
        age = self._oldest_unacked_age()
        if age > self.cfg.stall_s or self._failed:
            self._set_online(False, "%d message(s) unacknowledged for %.0fs"
                             % (self._unacked, age))
            if age > self.cfg.delivery_timeout_ms / 1000 + 5:
                self._abandon_inflight()
            elif stopping:
                return True
            else:
                self._spool_queue(0.05)
            return False
        if not self.online:
            if self._unacked:
                # wait for what is in flight before replaying (keeps the order)
                if stopping:
                    return True
                self._spool_queue(0.05)
                return False
            self._set_online(True)
        if len(self.spool):
            if self._unacked < self.cfg.max_unacked // 2:
                self._replay_segment()
            else:
                time.sleep(0.01)
            return False
        if self._unacked >= self.cfg.max_unacked:
            time.sleep(0.01)
            return False
        items = self._take(min(self.cfg.send_run, self.cfg.max_unacked - self._unacked),
                           0.02 if self._inflight else 0.2)
        if not items:
            return stopping
        n = self._send_run(items)
        if n < len(items):
            self._to_spool(items[n:])
            self._set_online(False, "send raised")
        return False

    def _take(self, limit: int, wait: float) -> list[tuple[int, bytes, bytes]]:
        """Up to ``limit`` queued messages.  With fewer than a few dozen queued, first wait
        for more: for the first one up to ``wait`` s (``publish`` sets ``_wake`` only while
        the sender is idle), then ``_gather_s``, so that at a moderate rate one wake-up
        sends a run of messages instead of one."""
        q = self._queue
        if len(q) < 32:
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
        return [q.popleft() for _ in range(min(limit, len(q)))]

    def _spool_queue(self, wait: float = 0.0) -> None:
        items = self._take(10_000, wait) if wait else []
        q = self._queue
        while q and len(items) < 10_000:
            items.append(q.popleft())
        if items:
            self._to_spool(items)

    # -- shutdown / stats ---------------------------------------------------------------------
    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until the queue and spool are empty and every send is acknowledged."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (not self._queue and not len(self.spool) and self._unacked == 0
                    and self.online and not self._failed):
                return True
            time.sleep(0.05)
        return False

    def close(self, timeout: float = 10.0) -> None:
        """Flush what can be flushed in ``timeout``; what is left stays in the spool."""
        self.flush(timeout)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout + 5)
        p = self._producer
        if p is not None and self._unacked:
            try:
                p.flush(timeout=timeout)
            except Exception as exc:
                log.warning("producer flush: %s", _one_line(exc))
        never = self._unacked
        self._abandon_inflight()          # closes the producer; unacked -> spool
        self._drain_failed()
        self._spool_queue()
        self.spool.close()
        if never or len(self.spool):
            log.warning("shutdown: %d message(s) never acknowledged; %d message(s) left in "
                        "spool %s for the next start", never, len(self.spool), self.spool.dir)

    def stats(self) -> dict[str, int]:
        s = dict(self.c)
        s["queue_depth"] = len(self._queue)
        s["spool_depth"] = len(self.spool)
        s["spool_bytes"] = self.spool.bytes
        s["unacked"] = self._unacked
        s["online"] = int(self.online)
        return s


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
