"""Summaries and certificates to Kafka without ever stalling capture.

The capture loop calls :meth:`Publisher.publish` (``put_nowait`` on a bounded queue: never
blocks).  One sender thread owns the Kafka producer (kafka-python, idempotent, acks=all,
lz4/zstd, linger/batch tuned) and a bounded on-disk :class:`Spool`:

* online: queue -> ``producer.send``; delivery callbacks only count, and hand a failed
  message back (a deque) so the sender thread spools it;
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
import queue
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
        self._queue: queue.Queue = queue.Queue(maxsize=config.queue_max)
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
        self._inflight: dict[int, tuple[tuple[int, bytes, bytes], float]] = {}
        self._seq = 0
        self._topics_checked = False
        self._topics_thread: threading.Thread | None = None
        self._offline_since = 0.0
        self._lock = threading.Lock()
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
        for it in items:
            try:
                self._queue.put_nowait(it)
            except queue.Full:
                self.c["queue_overflow"] += 1
                self._to_spool([it])

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
        from tlsdiag.kafka_topics import ensure_topics
        self._topics_checked = ensure_topics(
            self.cfg.bootstrap, {self.cfg.topic_handshakes: False,
                                 self.cfg.topic_certs: True}) is not None

    def _topic(self, kind: int) -> str:
        return self.cfg.topic_certs if kind == KIND_CERT else self.cfg.topic_handshakes

    @property
    def _unacked(self) -> int:
        return len(self._inflight)

    def _on_ok(self, seq: int, _md) -> None:      # Future.add_callback(f, *args): f(*args, v)
        with self._lock:
            if self._inflight.pop(seq, None) is not None:
                self.c["acked"] += 1

    def _on_err(self, seq: int, exc) -> None:
        with self._lock:
            got = self._inflight.pop(seq, None)
            if got is None:
                return                  # abandoned already (spooled)
            self.c["send_errors"] += 1
        self._failed.append(got[0])

    def _partition(self, topic: str, key: bytes):
        """Kafka's default partition for ``key`` (see the module docstring); None (the
        producer's own choice) while the topic's partitions are unknown."""
        now = time.monotonic()
        if now - self._partitions_at > PARTITIONS_TTL:
            self._partitions.clear()
            self._partitions_at = now
        n = self._partitions.get(topic)
        if n is None:
            # the producer's metadata (it blocks up to max_block_ms for a new topic, as
            # send() would; a timeout raises to the caller, which spools)
            n = self._partitions[topic] = len(self._producer.partitions_for(topic) or ())
        return wire.kafka_partition(key, n) if n else None

    def _send(self, item: tuple[int, bytes, bytes]) -> bool:
        kind, key, value = item
        try:
            topic = self._topic(kind)
            fut = self._producer.send(topic, key=key, value=value,
                                      partition=self._partition(topic, key))
        except Exception as exc:
            log.info("send failed (%s): spooling", _one_line(exc))
            self.c["send_errors"] += 1
            return False
        with self._lock:
            self._seq += 1
            seq = self._seq
            self._inflight[seq] = (item, time.monotonic())
        fut.add_callback(self._on_ok, seq)
        fut.add_errback(self._on_err, seq)
        return True

    def _oldest_unacked_age(self) -> float:
        with self._lock:
            if not self._inflight:
                return 0.0
            first = next(iter(self._inflight.values()))
        return time.monotonic() - first[1]

    def _abandon_inflight(self) -> None:
        """Close the producer and spool what it never acknowledged, in send order.  Late
        callbacks of the old producer find nothing and are ignored."""
        with self._lock:
            items = [v[0] for v in self._inflight.values()]
            self._inflight = {}
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
        for i, it in enumerate(items):
            if not self._send(it):
                self.spool.rewrite(seq, items[i:], len(items))
                self.c["spool_replayed"] += i
                self._set_online(False, "replay send failed")
                return
        self.spool.remove(seq, len(items))
        self.c["spool_replayed"] += len(items)

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
        try:
            item = self._queue.get(timeout=0.2)
        except queue.Empty:
            return stopping
        if not self._send(item):
            self._to_spool([item])
            self._set_online(False, "send raised")
        return False

    def _spool_queue(self, wait: float = 0.0) -> None:
        items = []
        try:
            if wait:
                items.append(self._queue.get(timeout=wait))
            while len(items) < 10_000:
                items.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        if items:
            self._to_spool(items)

    # -- shutdown / stats ---------------------------------------------------------------------
    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until the queue and spool are empty and every send is acknowledged."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (self._queue.empty() and not len(self.spool) and self._unacked == 0
                    and self.online and not self._failed):
                return True
            time.sleep(0.05)
        return False

    def close(self, timeout: float = 10.0) -> None:
        """Flush what can be flushed in ``timeout``; what is left stays in the spool."""
        self.flush(timeout)
        self._stop.set()
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
        s["queue_depth"] = self._queue.qsize()
        s["spool_depth"] = len(self.spool)
        s["spool_bytes"] = self.spool.bytes
        s["unacked"] = self._unacked
        s["online"] = int(self.online)
        return s


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
