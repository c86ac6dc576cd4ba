"""An in-memory stand-in for a Kafka cluster, for broker-free unit tests of the analyzer's loop
and the sensor's publisher (helper module, not a test file).  The real broker is in
tests/kafka_broker.py; the tests through it stay the reference for Kafka's own behaviour.

Only what tlsdiag's Kafka code calls is modelled, with kafka-python's signatures and record
type (``ConsumerRecord``, ``TopicPartition``, ``OffsetAndMetadata``):

* topics are lists of partitions, each a list of records; a topic is created on first use
  with ``default_partitions`` (as auto-creation would), or explicitly with
  :meth:`FakeCluster.create_topic`;
* a transactional producer's records (and its consumer offsets) become visible together at
  ``commit_transaction`` and are dropped by ``abort_transaction`` -- what ``read_committed``
  readers of a real broker see; a plain producer's records are visible at once;
* a group consumer gets every partition of its topics at its first poll (a group of one),
  starting at the group's committed offsets, and calls its rebalance listener;
* ``faults`` make calls raise: ``cluster.faults["commit"] = RuntimeError("boom")``.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from kafka.consumer.fetcher import ConsumerRecord
from kafka.structs import OffsetAndMetadata, TopicPartition

__all__ = ["FakeCluster", "FakeConsumer", "FakeFuture", "FakeProducer", "record"]


def record(topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None,
           headers: Iterable[tuple[str, bytes]] = (), timestamp_ms: int | None = None
           ) -> ConsumerRecord:
    """A kafka-python ``ConsumerRecord`` as a consumer's poll returns it."""
    ts = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    headers = list(headers)
    return ConsumerRecord(topic, partition, -1, offset, ts, 0, key, value, headers, None,
                          len(key) if key is not None else -1,
                          len(value) if value is not None else -1,
                          sum(len(k) + len(v or b"") for k, v in headers))


class FakeCluster:
    def __init__(self, default_partitions: int = 3) -> None:
        self.default_partitions = default_partitions
        self.logs: dict[str, list[list[ConsumerRecord]]] = {}
        self.committed: dict[tuple[str, TopicPartition], int] = {}   # (group, tp) -> offset
        self.faults: dict[str, BaseException] = {}
        self.producers: list[FakeProducer] = []
        self.consumers: list[FakeConsumer] = []
        #: called by a group consumer's poll that finds nothing new (tests stop loops with it)
        self.on_idle: Callable[[], None] | None = None

    def fault(self, name: str) -> None:
        exc = self.faults.get(name)
        if exc is not None:
            raise exc

    def create_topic(self, name: str, partitions: int) -> None:
        self.logs.setdefault(name, [[] for _ in range(partitions)])

    def partitions(self, topic: str) -> list[list[ConsumerRecord]]:
        if topic not in self.logs:
            self.create_topic(topic, self.default_partitions)
        return self.logs[topic]

    def append(self, topic: str, partition: int, key: bytes | None, value: bytes | None,
               headers: Iterable[tuple[str, bytes]] = ()) -> ConsumerRecord:
        log = self.partitions(topic)[partition]
        r = record(topic, partition, len(log), key, value, headers)
        log.append(r)
        return r

    def records(self, topic: str) -> list[ConsumerRecord]:
        """Every record of ``topic``, partition by partition, in offset order."""
        return [r for part in self.logs.get(topic, []) for r in part]

    def latest(self, topic: str) -> dict[bytes | None, bytes | None]:
        """The last value per key (what compaction keeps)."""
        return {r.key: r.value for r in self.records(topic)}


class FakeFuture:
    """kafka-python's ``FutureRecordMetadata`` as the publisher reads it: ``is_done`` and
    ``exception`` (None = acknowledged)."""

    def __init__(self, done: bool = True, exception: BaseException | None = None) -> None:
        self.is_done = done
        self.exception = exception

    def ack(self) -> None:
        self.is_done, self.exception = True, None

    def fail(self, exc: BaseException) -> None:
        self.is_done, self.exception = True, exc


@dataclass
class FakeProducer:
    cluster: FakeCluster
    config: dict[str, Any] = field(default_factory=dict)
    pending: list[tuple[str, int, bytes | None, bytes | None, list[Any]]] = field(
        default_factory=list)
    offsets: list[tuple[dict[TopicPartition, OffsetAndMetadata], Any]] = field(
        default_factory=list)
    in_transaction: bool = False
    closed: bool = False
    transactions: int = 0
    aborts: int = 0
    _rr: int = 0

    @property
    def transactional(self) -> bool:
        return bool(self.config.get("transactional_id"))

    def partitions_for(self, topic: str) -> set[int]:
        self.cluster.fault("partitions_for")
        return set(range(len(self.cluster.partitions(topic))))

    def send(self, topic: str, key: bytes | None = None, value: bytes | None = None,
             headers: Any = None, partition: int | None = None) -> FakeFuture:
        self.cluster.fault("send")
        if partition is None:           # kafka-python's choice: not tested here
            partition = self._rr % len(self.cluster.partitions(topic))
            self._rr += 1
        if self.transactional:
            assert self.in_transaction, "send outside a transaction"
            self.pending.append((topic, partition, key, value, list(headers or ())))
        else:
            self.cluster.append(topic, partition, key, value, headers or ())
        return FakeFuture()

    def init_transactions(self) -> None:
        assert self.transactional

    def begin_transaction(self) -> None:
        assert not self.in_transaction
        self.in_transaction = True

    def send_offsets_to_transaction(self, offsets: dict[TopicPartition, OffsetAndMetadata],
                                    group: Any) -> None:
        assert self.in_transaction
        self.offsets.append((offsets, group))

    def commit_transaction(self) -> None:
        assert self.in_transaction
        self.cluster.fault("commit_transaction")
        for topic, partition, key, value, headers in self.pending:
            self.cluster.append(topic, partition, key, value, headers)
        for offsets, group in self.offsets:
            for tp, om in offsets.items():
                self.cluster.committed[(group, tp)] = om.offset
        self.pending, self.offsets = [], []
        self.in_transaction = False
        self.transactions += 1

    def abort_transaction(self) -> None:
        self.pending, self.offsets = [], []
        self.in_transaction = False
        self.aborts += 1

    def flush(self, timeout: float | None = None) -> None:
        self.cluster.fault("flush")

    def close(self, timeout: float | None = None, null_logger: bool = False) -> None:
        self.closed = True


class FakeConsumer:
    def __init__(self, cluster: FakeCluster, **config: Any) -> None:
        self.cluster = cluster
        self.config = config
        self.group = config.get("group_id")
        self.max_records = config.get("max_poll_records", 500)
        self.positions: dict[TopicPartition, int] = {}
        self.topics: list[str] = []
        self.listener: Any = None
        self.closed = False
        self._subscribed_assigned = False

    # -- group membership ---------------------------------------------------------------------
    def subscribe(self, topics: list[str], listener: Any = None) -> None:
        self.topics = list(topics)
        self.listener = listener

    def group_metadata(self) -> Any:
        return self.group

    def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        self.cluster.fault("commit")
        for tp, om in offsets.items():
            self.cluster.committed[(self.group, tp)] = om.offset

    def _join(self) -> None:
        tps = [TopicPartition(t, p) for t in self.topics
               for p in range(len(self.cluster.partitions(t)))]
        for tp in tps:
            self.positions[tp] = self.cluster.committed.get((self.group, tp), 0)
        self._subscribed_assigned = True
        if self.listener is not None:
            self.listener.on_partitions_assigned(tps)

    def revoke_all(self) -> None:
        """A rebalance that takes every partition away (the listener is told)."""
        tps = list(self.positions)
        if self.listener is not None:
            self.listener.on_partitions_revoked(tps)
        self.positions.clear()
        self._subscribed_assigned = False

    # -- manual assignment --------------------------------------------------------------------
    def partitions_for_topic(self, topic: str) -> set[int] | None:
        if topic not in self.cluster.logs:
            return None
        return set(range(len(self.cluster.logs[topic])))

    def assign(self, tps: list[TopicPartition]) -> None:
        for tp in tps:
            self.positions.setdefault(tp, 0)

    def seek_to_beginning(self, *tps: TopicPartition) -> None:
        for tp in tps:
            self.positions[tp] = 0

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset

    def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]

    def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        self.cluster.fault("end_offsets")
        return {tp: len(self.cluster.partitions(tp.topic)[tp.partition]) for tp in tps}

    def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: 0 for tp in tps}

    # -- reading ------------------------------------------------------------------------------
    def poll(self, timeout_ms: int = 0, max_records: int | None = None
             ) -> dict[TopicPartition, list[ConsumerRecord]]:
        self.cluster.fault("poll")
        if self.topics and not self._subscribed_assigned:
            self._join()
        left = max_records or self.max_records
        out: dict[TopicPartition, list[ConsumerRecord]] = {}
        for tp in sorted(self.positions):
            log = self.cluster.partitions(tp.topic)[tp.partition]
            pos = self.positions[tp]
            got = log[pos:pos + left]
            if got:
                out[tp] = got
                self.positions[tp] = pos + len(got)
                left -= len(got)
            if not left:
                break
        if not out and self.topics and self.cluster.on_idle is not None:
            self.cluster.on_idle()
        return out

    def close(self, autocommit: bool = True) -> None:
        self.closed = True


def factories(cluster: FakeCluster) -> tuple[Callable[..., FakeProducer],
                                             Callable[..., FakeConsumer]]:
    """``(producer_factory, consumer_factory)`` on ``cluster``, kafka-python's keyword
    arguments accepted (and kept in ``.config``)."""
    def producer(**config: Any) -> FakeProducer:
        p = FakeProducer(cluster, config)
        cluster.producers.append(p)
        return p

    def consumer(**config: Any) -> FakeConsumer:
        c = FakeConsumer(cluster, **config)
        cluster.consumers.append(c)
        return c
    return producer, consumer
