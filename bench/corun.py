#!/usr/bin/env python3
"""Do two ``summarize --jobs 1`` processes slow each other down on this host (issue 14)?

Each round times one run alone, then two at once (each to its own output in ``/dev/shm``), with
``bench/jobs_bound.py``'s timer, on a frozen snapshot of ``--rev`` (``bench/run.py``'s).  If two
at once took much longer than one, no split of a file over two processes could reach 2x here.

    python3 bench/corun.py /tmp/tlsbench/hs-100k.pcap --rev 63904cb --rounds 5
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import jobs_bound  # noqa: E402  (the timer of commands run at once)
import run as bench_run  # noqa: E402  (the snapshots)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pcap")
    ap.add_argument("--rev", default="HEAD")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--work", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "tlsbench"))
    a = ap.parse_args()
    os.environ["PYTHONPATH"] = bench_run.make_snapshot(a.work, a.rev)
    out = "/dev/shm" if os.path.isdir("/dev/shm") else a.work

    def cmd(i: int) -> list[str]:
        return ["sh", "-c", '"$0" -m tlsdiag summarize "$1" --format jsonl --jobs 1 > "$2"',
                sys.executable, a.pcap, os.path.join(out, "corun-%d.jsonl" % i)]
    ratios = []
    for r in range(a.rounds):
        one = jobs_bound.timed([cmd(0)])
        two = jobs_bound.timed([cmd(0), cmd(1)])
        ratios.append(two / one)
        print("round %d: one %.2f s, two at once %.2f s: x%.2f" % (r + 1, one, two, ratios[-1]),
              flush=True)
    for i in (0, 1):
        Path(out, "corun-%d.jsonl" % i).unlink(missing_ok=True)
    print("two at once: x%.2f the time of one (median of %d rounds)"
          % (statistics.median(ratios), len(ratios)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
