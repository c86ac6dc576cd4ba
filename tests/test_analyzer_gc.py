"""The analyzer's batch-driven garbage collection (analyzer.service.batchgc.BatchGC): no automatic
collection while a batch runs, and cyclic garbage made during a batch is gone after the
collection that follows it -- also once it has aged into the older generations."""
from __future__ import annotations

import gc
import weakref

from analyzer.service import batchgc as service


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> weakref.ref:
    a, b = Node(), Node()
    a.other, b.other = b, a          # unreachable once we return: only the GC frees it
    return weakref.ref(a)


def test_batch_gc_collects_between_batches():
    bgc = service.BatchGC()
    try:
        bgc.start()
        assert not gc.isenabled()
        young = cycle()
        assert young() is not None                  # nothing collects during a batch
        bgc.after_batch()
        assert young() is None                      # the young generation after each batch
        # garbage that survived into an older generation (made reachable from a young
        # survivor, then dropped) is found by the middle/full collections
        keep = [Node()]
        bgc.after_batch()                           # `keep` moves to the middle generation
        a = Node()
        a.other = a
        keep[0].other = a
        ref = weakref.ref(a)
        del a
        for _ in range(service.GC_FULL_EVERY):
            bgc.after_batch()
        keep[0].other = None                        # now unreachable, and old
        for _ in range(service.GC_FULL_EVERY):
            bgc.after_batch()
        assert ref() is None
    finally:
        bgc.stop()
        gc.unfreeze()
    assert gc.isenabled()
