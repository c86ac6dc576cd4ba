#!/usr/bin/env python3
"""What ``--jobs N`` could reach at best on this machine (issue 14): N processes, each
reading the whole capture and summarizing its share of the connections (the ``--jobs``
partition) with no coordination at all -- no clock meetings, no merge, output rendered and
dropped -- timed against one process doing all of it, in interleaved rounds.  A CPU-bound
spin of the same length, alone and N at once, shows what the machine itself gives.

    python3 bench/jobs_bound.py /tmp/tlsbench/hs-100k.pcap --parts 2 --rounds 5

The ratios are upper bounds for any design that splits connections by hash: the workers
here do less than real ``--jobs`` workers must (the idle-timeout clock a single worker would
read, the output in a single worker's order).
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: one share of the capture's connections, rendered as ``summarize`` renders them
PART = """
import sys
from sensor import pipeline
from tlsdiag.commands.summarize import _jsonl_line, tune_gc_for_batch, tune_malloc_for_batch
tune_gc_for_batch()
tune_malloc_for_batch()
part, nparts = int(sys.argv[2]), int(sys.argv[3])
for kind, value in pipeline._summaries(sys.argv[1], None, True, False, _jsonl_line, {},
                                       pipeline.shares(nparts)[part] if nparts > 1 else None):
    pass
"""

SPIN = "x = 0\nfor i in range(%d): x += i\n"


def timed(cmds: list[list[str]]) -> float:
    """Wall time of ``cmds`` run at once, until the last one ends."""
    t = time.perf_counter()
    procs = [subprocess.Popen(c, cwd=REPO) for c in cmds]
    for p in procs:
        if p.wait():
            sys.exit("bench: %s failed" % p.args)
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pcap")
    ap.add_argument("--parts", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--spin", type=int, default=30_000_000, help="loop count of the spin")
    a = ap.parse_args()
    py = sys.executable
    cases = {
        "one process, all connections": [[py, "-c", PART, a.pcap, "0", "1"]],
        "%d processes, a share each" % a.parts: [[py, "-c", PART, a.pcap, str(k), str(a.parts)]
                                                 for k in range(a.parts)],
        "spin, one": [[py, "-c", SPIN % a.spin]],
        "spin, %d at once" % a.parts: [[py, "-c", SPIN % a.spin]] * a.parts,
    }
    walls: dict = {k: [] for k in cases}
    print("load before: %s" % Path("/proc/loadavg").read_text().strip())
    names = list(cases)
    for r in range(a.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            walls[name].append(timed(cases[name]))
    print("load after: %s" % Path("/proc/loadavg").read_text().strip())
    med = {k: statistics.median(v) for k, v in walls.items()}
    for k, v in walls.items():
        print("%-32s median %.2f s  (%s)" % (k, med[k], " ".join("%.2f" % x for x in v)))
    one, many = names[0], names[1]
    print("summarize: %d shares at once x%.2f of one process (upper bound for --jobs %d)" % (
        a.parts, med[one] / med[many], a.parts))
    print("spin: %d at once take x%.2f the time of one (the machine's own parallel cost)" % (
        a.parts, med[names[3]] / med[names[2]]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
