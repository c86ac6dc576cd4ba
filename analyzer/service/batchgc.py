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
    """The collector run by batch, not by allocation count.  A batch keeps its young
    containers (consumer records, decoded summaries, diagnoses, futures) alive until its end,
    so collections by allocation count would scan them while alive and promote them into the
    older generations.  Here the automatic collector is off; after a batch -- its objects
    freed by reference counting -- the young generation is collected, every
    ``GC_MIDDLE_EVERY``-th batch the middle one and every ``GC_FULL_EVERY``-th batch
    everything, so cyclic garbage lives at most one batch.  What exists once the analyzer is
    set up is frozen (never scanned again).  Measured: bench/live/RESULTS.md, "Garbage
    collection"."""

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
