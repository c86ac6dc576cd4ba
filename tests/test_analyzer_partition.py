"""The analyzer picks the partition of its keyed records itself, with Kafka's default
partitioning (``cext.wire.kafka_partition``, murmur2 in C, injected by the command as it is
here) instead of kafka-python's partitioner: the same partition kafka-python (and a Java producer) would choose, so the same
key always lands in the same partition (idempotent re-sends after a replay, compaction);
key-less records keep kafka-python's partitioner.  (The records' arrival over a real broker
is covered by tests/test_analyzer_service.py.)"""
from __future__ import annotations

from kafka.partitioner.default import murmur2

from analyzer.service import DeferredSends
from cext.wire import kafka_partition


class Recorder:
    """Stands in for KafkaProducer in this unit test of the wrapper: records the calls."""

    def __init__(self, partitions):
        self.partitions = partitions
        self.sent = []
        self.flushed = 0

    def partitions_for(self, topic):
        return set(range(self.partitions[topic]))

    def send(self, topic, key=None, value=None, headers=None, partition=None):
        self.sent.append((topic, key, partition))

    def flush(self, timeout=None):
        self.flushed += 1


def default_partition(key: bytes, n: int) -> int:
    """kafka-python's DefaultPartitioner for a keyed record (the reference)."""
    return (murmur2(key) & 0x7FFFFFFF) % n


def test_keyed_outputs_get_kafkas_default_partition():
    rec = Recorder({"d": 3, "i": 5, "p": 1, "dlq": 3})
    w = DeferredSends(rec, kafka_partition)
    keys = [b"conn-%d" % i for i in range(200)] + [b"", b"northbound|10.0.3.2:443|expired",
                                                   "é/ü".encode()]
    for k in keys:
        w.send("d", key=k, value=b"v")
        w.send("i", key=k, value=b"v")
    w.send("p", key=b"group/topic/0", value=b"state")
    w.send("dlq", key=None, value=b"junk")
    assert rec.sent == []                   # held until the batch's flush/commit
    w.flush()
    assert rec.flushed == 1
    got = {(t, k): p for t, k, p in rec.sent}
    for k in keys:
        assert got[("d", k)] == default_partition(k, 3)
        assert got[("i", k)] == default_partition(k, 5)
    assert {got[("d", k)] for k in keys} == {0, 1, 2}      # spread over every partition
    assert got[("p", b"group/topic/0")] == 0
    assert got[("dlq", None)] is None                      # kafka-python's choice
    # a replay of the same keys: the same partitions
    rec.sent.clear()
    for k in keys:
        w.send("d", key=k, value=b"v2")
    w.flush()
    assert all(p == got[("d", k)] for _, k, p in rec.sent)
