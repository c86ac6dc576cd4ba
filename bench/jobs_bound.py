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

``--time-split`` (a classic pcap) also times N processes each summarizing a range of the
capture's records -- N files cut at record boundaries near every 1/N of the bytes, made in
``--tmp`` before the rounds: the bound of a split by time, where no process reads what another
reads (the connections that cross a boundary are not handed over here, nor the clocks
reconciled, as a real design must).
"""
from __future__ import annotations

import argparse
import mmap
import os
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from sensor.savefile import pcap_header  # noqa: E402  (the walk's reading of the header)

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


def cut_by_time(pcap: str, parts: int, tmp: str) -> list[str]:
    """``pcap`` (classic) written as ``parts`` captures with its header, cut at the record
    boundaries nearest every 1/parts of its bytes."""
    with open(pcap, "rb") as f, mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as data:
        layout = pcap_header(data[:24])
        if layout is None:
            sys.exit("bench: --time-split reads classic pcap only")
        caplen = struct.Struct((">" if layout.big else "<") + "I")
        pos, cuts = layout.start, [layout.start]
        for k in range(1, parts):
            want = len(data) * k // parts
            while pos < want:
                pos += 16 + caplen.unpack_from(data, pos + 8)[0]
            cuts.append(pos)
        cuts.append(len(data))
        out = []
        for k in range(parts):
            path = os.path.join(tmp, "jobs-bound-%d-of-%d.pcap" % (k, parts))
            with open(path, "wb") as w:
                w.write(data[:layout.start])
                w.write(data[cuts[k]:cuts[k + 1]])
            out.append(path)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pcap")
    ap.add_argument("--parts", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--spin", type=int, default=30_000_000, help="loop count of the spin")
    ap.add_argument("--time-split", action="store_true",
                    help="also N processes each summarizing a range of the records")
    ap.add_argument("--tmp", default="/dev/shm" if os.path.isdir("/dev/shm") else "/tmp",
                    help="where --time-split's parts are written (default /dev/shm)")
    a = ap.parse_args()
    py = sys.executable
    cases = {
        "one process, all connections": [[py, "-c", PART, a.pcap, "0", "1"]],
        "%d processes, a share each" % a.parts: [[py, "-c", PART, a.pcap, str(k), str(a.parts)]
                                                 for k in range(a.parts)],
        "spin, one": [[py, "-c", SPIN % a.spin]],
        "spin, %d at once" % a.parts: [[py, "-c", SPIN % a.spin]] * a.parts,
    }
    pieces = cut_by_time(a.pcap, a.parts, a.tmp) if a.time_split else []
    if pieces:
        cases["%d processes, a range each" % a.parts] = [[py, "-c", PART, p, "0", "1"]
                                                         for p in pieces]
    walls: dict = {k: [] for k in cases}
    print("load before: %s" % Path("/proc/loadavg").read_text().strip())
    names = list(cases)
    try:
        for r in range(a.rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                walls[name].append(timed(cases[name]))
    finally:
        for p in pieces:
            os.unlink(p)
    print("load after: %s" % Path("/proc/loadavg").read_text().strip())
    med = {k: statistics.median(v) for k, v in walls.items()}
    for k, v in walls.items():
        print("%-32s median %.2f s  (%s)" % (k, med[k], " ".join("%.2f" % x for x in v)))
    one, many = names[0], names[1]
    print("summarize: %d shares at once x%.2f of one process (upper bound for --jobs %d)" % (
        a.parts, med[one] / med[many], a.parts))
    print("spin: %d at once take x%.2f the time of one (the machine's own parallel cost)" % (
        a.parts, med[names[3]] / med[names[2]]))
    if pieces:
        print("summarize: %d ranges at once x%.2f of one process (upper bound for a split by "
              "time)" % (a.parts, med[one] / med[names[4]]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
