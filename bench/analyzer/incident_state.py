"""Incident state written per batch: the old single record per partition (format 1,
``tests/support/incidents.format1_record``: the whole partition every batch, not saved at all over
900 KB) against the chunk records of format 2 (``IncidentTracker.save_records``: the changed
chunks, the head, tombstones).  Pure (no Kafka): the same tracker, the same batches.

    python bench/analyzer/incident_state.py                # open=10000, touched=50, 20 batches
    python bench/analyzer/incident_state.py --open 500 --touched 5

Scenario: ``--open`` backends of one input partition fail once (a big outage), then each
batch has failures for ``--touched`` of them (random) -- what a batch of a long outage does
to the state.  Prints, per batch on average: records, bytes, and the time to build them.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from analyzer import incidents as I  # noqa: E402
from tests.support.incidents import format1_record  # noqa: E402


def diag(i: int, server: str) -> dict[str, object]:
    """A diagnosis shaped like the engine's (sample texts of a few hundred bytes)."""
    return {"id": "c%d" % i, "cause": "expired_certificate", "direction": "southbound",
            "rule": "certificate-expired",
            "explanation": "the backend's certificate expired on 2026-11-27; the message "
                           "processor rejects it " + "(details) " * 30,
            "evidence": {"not_after": "2026-11-27T00:00:00Z", "subject": "CN=%s" % server,
                         "alerts": ["certificate_expired"]},
            "remediation": "renew the certificate of backend %s " % server + "(steps) " * 30,
            "rejected_by": "client",
            "connection": {"client": "10.1.%d.%d:%d" % (i % 250, i % 200, 40000 + i % 20000),
                           "server": server, "server_name": "b.example.test"}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--open", type=int, default=10_000)
    ap.add_argument("--touched", type=int, default=50, help="incidents changed per batch")
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--nchunks", type=int, default=I.NCHUNKS)
    a = ap.parse_args()
    rnd = random.Random(1)
    t = I.IncidentTracker(update_interval=30, max_open=max(a.open, 1),
                           nchunks=a.nchunks)
    servers = ["10.%d.%d.%d:443" % (20 + k // 65536, k // 256 % 256, k % 256)
               for k in range(a.open)]
    for k, s in enumerate(servers):
        t.failure(diag(k, s), "mp-1", 1000.0 + k * 0.001, now=1000.0)
    t.take_dirty()
    first = t.save_records(0, offset=a.open)
    old_b = new_b = new_r = 0
    old_skipped = 0
    new_t = 0.0
    i = a.open
    for b in range(a.batches):
        for s in rnd.sample(servers, min(a.touched, len(servers))):
            i += 1
            t.failure(diag(i, s), "mp-1", 2000.0 + i * 0.001, now=1000.0 + b)
        t.take_dirty()
        # (format 1's size only: its memoized writer went with it, so no build time)
        old = format1_record(t, 0, offset=i, data_time=2000.0)
        c1 = time.perf_counter()
        recs = t.save_records(0, offset=i, data_time=2000.0)
        new_t += time.perf_counter() - c1
        old_b += len(old)
        old_skipped += len(old) > I.RECORD_MAX_BYTES
        new_b += sum(len(v or b"") for _, v in recs)
        new_r += len(recs)
    n = a.batches
    print(json.dumps({
        "open_incidents": len(t.open), "touched_per_batch": a.touched, "batches": n,
        "nchunks": a.nchunks,
        "first_full_save": {"records": len(first),
                            "bytes": sum(len(v or b"") for _, v in first),
                            "largest_record": max(len(v or b"") for _, v in first)},
        "format1_per_batch": {"records": 1, "bytes": old_b // n,
                              "batches_not_saved_over_limit": old_skipped},
        "format2_per_batch": {"records": round(new_r / n, 1), "bytes": new_b // n,
                              "build_ms": round(new_t / n * 1000, 2)},
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
