"""The analyzer's output producer: a batch's sends held until its commit, each keyed record
given Kafka's default partition by an injected partitioner."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["DeferredSends", "Partitioner"]

#: ``partition(key, n_partitions) -> int``: Kafka's default partitioning,
#: ``(murmur2(key) & 0x7fffffff) % n`` (the application passes ``cext.wire.kafka_partition``,
#: in C; tests may pass kafka-python's pure-Python reference)
Partitioner = Callable[[bytes, int], int]


class DeferredSends:
    """The batch's producer sends, held until the batch is committed (``flush``,
    ``send_offsets_to_transaction``, ``commit_transaction``) and then handed to kafka-python
    in one tight loop: sent one by one while the batch is processed, kafka-python's I/O
    thread would wake for each new producer batch and, with a transaction open, poll for the
    whole batch, taking the GIL from the processing thread.  Nothing is visible earlier
    either way: read_committed readers see a transaction's records at its commit, and a crash
    before the commit replays the batch.

    A keyed record without an explicit partition gets ``partition(key, partitions)``: the
    partition a Java or kafka-python producer would pick, so the same key always lands in the
    same partition (idempotent keys, compaction), while kafka-python's own partitioner
    (pure-Python murmur2 and cluster lookups) never runs.  Key-less records keep
    kafka-python's choice.  Measured: bench/live/RESULTS.md, "Analyzer throughput" (the
    kafka-python I/O thread's CPU) and bench/analyzer/producer_send.py."""

    def __init__(self, producer: Any, partition: Partitioner) -> None:
        self._p = producer
        self._partition = partition
        self._q: list[tuple[str, Any, Any, Any, int | None]] = []
        self._sent: list[Any] = []        # the handed-over sends' futures, until checked

    def send(self, topic: str, key: Any = None, value: Any = None, headers: Any = None,
             partition: int | None = None) -> None:
        self._q.append((topic, key, value, headers, partition))

    def partitions_for(self, topic: str) -> Any:
        return self._p.partitions_for(topic)

    def _drain(self) -> None:
        q, self._q = self._q, []
        send = self._p.send
        partition = self._partition
        nparts: dict[str, int] = {}
        sent = self._sent
        for topic, key, value, headers, part in q:
            if key is None or part is not None:
                sent.append(send(topic, key=key, value=value, headers=headers, partition=part))
                continue
            n = nparts.get(topic)
            if n is None:
                n = nparts[topic] = len(self._p.partitions_for(topic) or ()) or 1
            sent.append(send(topic, key=key, value=value, headers=headers,
                             partition=partition(key, n)))

    def _raise_failed(self) -> None:
        """After a flush: a record Kafka refused (too large, ...) is an error here -- the
        batch is not committed (at-least-once committed its offsets past records that never
        arrived, without a word; a transaction's commit waited for ever)."""
        sent, self._sent = self._sent, []
        for f in sent:
            exc = getattr(f, "exception", None) if getattr(f, "is_done", False) else None
            if exc is not None:
                raise exc

    def flush(self, timeout: float | None = None) -> None:
        self._drain()
        self._p.flush(timeout)
        self._raise_failed()

    def send_offsets_to_transaction(self, offsets: Any, group: Any) -> None:
        self._drain()
        self._p.send_offsets_to_transaction(offsets, group)

    def commit_transaction(self) -> None:
        self._drain()
        self._p.flush()
        self._raise_failed()
        self._p.commit_transaction()

    def begin_transaction(self) -> None:
        self._p.begin_transaction()

    def abort_transaction(self) -> None:
        self._q, self._sent = [], []      # the batch is re-processed after the abort
        self._p.abort_transaction()

    def close(self, timeout: float | None = None) -> None:
        self._q, self._sent = [], []      # uncommitted: replayed by the next run
        self._p.close(timeout=timeout)
