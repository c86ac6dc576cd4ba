"""The analyzer picks the partition of its keyed diagnosis and incident records itself
(crc32(key) % partitions) instead of kafka-python's pure-Python murmur2: the same key always
lands in the same partition (idempotent re-sends after a replay, compaction), from any
process; other topics and key-less records keep kafka-python's partitioner.  (The records'
arrival over a real broker is covered by tests/test_analyzer_service.py.)"""
from __future__ import annotations

import zlib

from analyzer.service import _DeferredSends


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


def test_keyed_outputs_get_a_stable_partition():
    rec = Recorder({"d": 3, "i": 5, "p": 1, "dlq": 3})
    w = _DeferredSends(rec, frozenset({"d", "i"}))
    keys = [b"conn-%d" % i for i in range(200)]
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
        assert got[("d", k)] == zlib.crc32(k) % 3
        assert got[("i", k)] == zlib.crc32(k) % 5
    assert {got[("d", k)] for k in keys} == {0, 1, 2}      # spread over every partition
    assert got[("p", b"group/topic/0")] is None             # default partitioner
    assert got[("dlq", None)] is None
    # a replay of the same keys: the same partitions
    rec.sent.clear()
    for k in keys:
        w.send("d", key=k, value=b"v2")
    w.flush()
    assert all(p == got[("d", k)] for _, k, p in rec.sent)

