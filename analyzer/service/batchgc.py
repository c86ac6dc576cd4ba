"""The cyclic garbage collector run between the analyzer's batches instead of by allocation
counts (measured in bench/live/RESULTS.md, "Garbage collection")."""
from __future__ import annotations

import gc

__all__ = ["BatchGC", "GC_MIDDLE_EVERY", "GC_FULL_EVERY"]

#: every batch collects the young generation, every GC_MIDDLE_EVERY-th batch the middle one,
#: every GC_FULL_EVERY-th batch all of them
GC_MIDDLE_EVERY = 10
GC_FULL_EVERY = 100


class BatchGC:
    """A batch keeps some 100k young containers alive until its end (consumer records, decoded
    summaries, diagnoses, kafka-python's per-record futures).  Collections triggered by
    allocation counts scanned them over and over while they were alive and promoted them, so
    the older generations' collections walked the whole heap: ~25 % of the analyzer's CPU
    through the broker.  Here the automatic collector is off; after a batch -- when its
    objects have been freed by reference counting -- the young generation is collected, every
    ``GC_MIDDLE_EVERY``-th batch the middle one and every ``GC_FULL_EVERY``-th batch
    everything, so cyclic garbage lives at most one batch.  What exists once the analyzer is
    set up is frozen (never scanned again)."""

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
