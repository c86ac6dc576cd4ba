#!/usr/bin/env python3
"""Where a ``summarize --jobs N`` run spends its CPU (issue 14): each forked worker's user and
system time and wall (``getrusage`` in the worker, printed as it ends), then the whole run's
wall and the parent's own CPU (worker 0's share, start-up and the merge: ``summarize`` does
worker 0's share itself) against its children's.  One run; the output goes to a file in
memory.

    python3 bench/jobs_cpu.py /tmp/tlsbench/hs-100k.pcap --jobs 2

Run it from the checkout (``PYTHONPATH=.`` if tlsdiag is not installed from it).
"""
from __future__ import annotations

import argparse
import os
import resource
import runpy
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pcap")
    ap.add_argument("--jobs", default="2")
    ap.add_argument("--out", default="/dev/shm/tlsdiag-jobs-cpu.jsonl" if os.path.isdir("/dev/shm")
                    else "/tmp/tlsdiag-jobs-cpu.jsonl")
    a = ap.parse_args()
    import sensor.pipeline as pipeline
    worker = pipeline._worker

    def timed(conn, path, part, *rest):
        t = time.monotonic()
        try:
            return worker(conn, path, part, *rest)
        finally:
            r = resource.getrusage(resource.RUSAGE_SELF)
            print("  worker %d: user %.2f s sys %.2f s wall %.2f s"
                  % (part, r.ru_utime, r.ru_stime, time.monotonic() - t), file=sys.stderr)

    pipeline._worker = timed
    sys.argv = ["tlsdiag", "summarize", "--jobs", a.jobs, "--format", "jsonl", a.pcap]
    fd = os.open(a.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 1)
    t = time.monotonic()
    try:
        runpy.run_module("tlsdiag", run_name="__main__")
    except SystemExit:
        pass
    sys.stdout.flush()
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    print("wall %.2f s; parent user %.2f s sys %.2f s; workers user %.2f s sys %.2f s"
          % (time.monotonic() - t, s.ru_utime, s.ru_stime, c.ru_utime, c.ru_stime),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
