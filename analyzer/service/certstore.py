"""The analyzer's certificates: every instance reads the whole compacted ``tls.certs``."""
from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from proto.summary import SchemaError, decode_certificate
from proto.text import one_line

__all__ = ["CertStore"]

log = logging.getLogger(__name__)


#: the DER bytes the store keeps at most (with ``size``, the count): real chains are a few KB a
#: certificate, but a record may hold up to 4 MB (proto.summary.MAX_MESSAGE), and 300 such
#: records, a few KB each compressed on the broker, took 2.4 GB -- over the unit's MemoryMax --
#: at every start (the whole compacted topic is read then)
MAX_BYTES = 256 << 20


class CertStore:
    """Bounded LRU ``sha256 -> (der, facts)``, fed by a group-less reader of ``tls.certs``:
    at most ``size`` certificates and ``max_bytes`` of their DER.

    ``consumer_factory(**kwargs)`` makes the reader (kafka-python's ``KafkaConsumer`` by
    default)."""

    def __init__(self, bootstrap: str, topic: str, size: int,
                 consumer_factory: Callable[..., Any] = KafkaConsumer,
                 max_bytes: int = MAX_BYTES) -> None:
        self.topic = topic
        self.size = size
        self.max_bytes = max_bytes
        self._d: OrderedDict[bytes, tuple[bytes, dict[str, Any]]] = OrderedDict()
        self._bytes = 0                     # the store's weight (below), at most max_bytes
        self._weight: dict[bytes, int] = {}
        self.bad = 0
        self._c = consumer_factory(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                   group_id=None, client_id="tlsdiag-analyzer-certs",
                                   max_partition_fetch_bytes=16 << 20, fetch_max_bytes=64 << 20)
        self._assigned: set[TopicPartition] = set()
        self._end_unknown = False

    def _assign(self) -> None:
        parts = self._c.partitions_for_topic(self.topic) or set()
        tps = {TopicPartition(self.topic, p) for p in parts}
        if tps and tps != self._assigned:
            new = tps - self._assigned
            self._c.assign(list(tps))
            self._c.seek_to_beginning(*new)
            self._assigned = tps

    def catch_up(self, deadline: float, need: set[bytes] | None = None) -> None:
        """Read until the end offsets (or ``need`` is satisfied), at most until ``deadline``."""
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
                    self._bytes -= self._weight.pop(sha, 0)
                    self._d[sha] = (der, facts)
                    self._d.move_to_end(sha)
                    # the DER as it is, the facts as the Python objects they became (~8x the
                    # bytes they took in the record)
                    w = self._weight[sha] = len(der) + 8 * max(0, len(r.value) - len(der))
                    self._bytes += w
                    while len(self._d) > self.size or (self._bytes > self.max_bytes
                                                       and len(self._d) > 1):
                        gone, _ = self._d.popitem(last=False)
                        self._bytes -= self._weight.pop(gone, 0)
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
        """Every assigned partition read to its end offset.  Not knowing the end offsets (a
        metadata error) is not "at the end": the caller keeps reading until its deadline."""
        if not self._assigned:
            return True
        try:
            ends = self._c.end_offsets(list(self._assigned))
            at_end = all(self._c.position(tp) >= off for tp, off in ends.items())
        except Exception as exc:    # kafka-python raises KafkaError and others (timeouts)
            if not self._end_unknown:           # once until the end offsets are known again
                log.warning("%s: end offsets unknown (%s): reading on until the deadline",
                            self.topic, one_line(exc))
            self._end_unknown = True
            return False
        self._end_unknown = False
        return at_end

    def get(self, sha: bytes) -> tuple[bytes, dict[str, Any]] | None:
        return self._d.get(sha)

    def __contains__(self, sha: bytes) -> bool:
        return sha in self._d

    def __len__(self) -> int:
        return len(self._d)

    def close(self) -> None:
        self._c.close()
