#!/usr/bin/env python3
"""``--jobs N`` against one worker, and one revision against another (issue 14).

Interleaved rounds of ``python -m tlsdiag summarize PCAP --format jsonl --jobs J`` (or
``diagnose``: ``--command``) for every J of ``--jobs`` and every revision of ``--rev`` (each
a frozen ``git archive`` copy built in place, as ``bench/run.py --snapshot``), order rotated
each round, every run timed by ``rusage_exec`` (wall, CPU and max RSS of the process tree).
Every run's output must be byte-identical to the first run's: a difference stops the bench.
Prints the medians and the speed-up of each J against ``--jobs 1`` of the same revision, with
the load average before and after (the machine is shared: read the CPU column when the load
is high).

    python3 bench/jobs.py /tmp/tlsbench/hs-100k.pcap --jobs 1,2 --rounds 5
    python3 bench/jobs.py PCAP --jobs 1,2 --rev d015d6a,HEAD --rounds 5
    python3 bench/jobs.py PCAP --jobs 1,2 --command diagnose --rounds 3

Several captures are timed in the same rounds -- the same traffic in other formats (``editcap
-F pcapng``), whose output must be the same bytes too:

    python3 bench/jobs.py /tmp/tlsbench/hs-100k.pcap /tmp/tlsbench/hs-100k.pcapng --jobs 1,2

The 100k handshake-only corpus is ``../shared/bench/make_corpus.py``'s, as ``bench/run.py``
makes it (``$WORK/hs-100k.pcap``).

The host's two vCPUs are not always two cores' worth (a shared machine): each round also times
a CPU-bound spin alone and two at once (``--spin``, on by default; ``bench/jobs_bound.py``'s),
and the table says per revision the median of the rounds' own ``--jobs 1`` / ``--jobs N``
ratios -- all rounds, and the rounds in which two spins at once took at most x1.10 the time
of one (the host gave two cores).  Only the first is the issue's figure; the second says what
the design does when the machine is not the limit.
"""
from __future__ import annotations

import argparse
import filecmp
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import jobs_bound  # noqa: E402  (bench/jobs_bound.py: the spin, commands timed at once)
import run as bench_run  # noqa: E402  (bench/run.py: the launcher and the snapshots)

#: two spins at once taking at most this times one: the host gave the round two cores
TWO_CORES = 1.10


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pcap", nargs="+", help="capture(s): the same connections, any format")
    ap.add_argument("--jobs", default="1,2", help="comma-separated worker counts (default 1,2)")
    ap.add_argument("--rev", default="HEAD", help="comma-separated git revisions (default HEAD)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--command", choices=("summarize", "diagnose"), default="summarize",
                    help="what is timed: summarize --format jsonl (default), or diagnose --format "
                         "jsonl (exit status 1 -- failures diagnosed -- is a success here)")
    ap.add_argument("--work", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "tlsbench"))
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--out", default=None,
                    help="where the runs write their output (default: /dev/shm/tlsbench-out "
                         "where there is a /dev/shm, else WORK/out): a file system in memory, "
                         "so that no run waits on a disk -- on this host a run writing its "
                         "229 MB to the disk took up to 11.9 s of wall time for 4.3 s of CPU")
    ap.add_argument("--cache", choices=bench_run.CACHE_STATES, default="read",
                    help=bench_run.CACHE_HELP)
    ap.add_argument("--spin", type=int, default=10_000_000,
                    help="loop count of the per-round spin (one, then two at once; "
                         "bench/jobs_bound.py's); 0: none")
    a = ap.parse_args()
    for pcap in a.pcap:
        if not os.path.isfile(pcap):
            ap.error("no such capture: %s" % pcap)
    jobs = [int(j) for j in a.jobs.split(",")]
    outdir = a.out or ("/dev/shm/tlsbench-out" if os.path.isdir("/dev/shm")
                       else os.path.join(a.work, "out"))
    os.makedirs(outdir, exist_ok=True)
    launcher = bench_run.build_launcher(a.work)
    snaps = {rev: bench_run.make_snapshot(a.work, rev) for rev in a.rev.split(",")}
    cases = [(pcap, rev, j) for pcap in a.pcap for rev in snaps for j in jobs]
    runs: dict = {c: [] for c in cases}
    first = None
    spins: list = []
    print("output to %s" % outdir)
    for pcap in a.pcap:
        print(bench_run.settle_cache(pcap, a.cache), flush=True)
    print("load before: %s" % Path("/proc/loadavg").read_text().strip())
    for r in range(a.rounds):
        order = cases[r % len(cases):] + cases[:r % len(cases)]
        for pcap, rev, j in order:
            env = dict(os.environ, PYTHONPATH=snaps[rev])
            env.pop("TLSDIAG_NO_EXTENSIONS", None)
            what = "%s %s --jobs %d" % (os.path.basename(pcap), rev, j)
            out = os.path.join(outdir, "jobs-%d.jsonl" % cases.index((pcap, rev, j)))
            res = bench_run.run_timed(launcher, [sys.executable, "-m", "tlsdiag", a.command,
                                                 pcap, "--format", "jsonl", "--jobs", str(j)],
                                      env, out, out + ".err", a.timeout)
            if res["rc"] not in ((0, 1) if a.command == "diagnose" else (0,)):
                sys.exit("bench: %s failed (rc %s): %s" % (what, res["rc"], res["summary"]))
            if first is None:
                first = out + ".first"
                os.replace(out, first)
            elif not filecmp.cmp(first, out, shallow=False):
                sys.exit("bench: %s wrote other bytes than the first run" % what)
            runs[(pcap, rev, j)].append(res)
            print("round %d %-40s wall %.2f s cpu %.2f s rss %d MB" % (
                r + 1, what, res["wall"], res["cpu"], res["maxrss_kb"] // 1024), flush=True)
        if a.spin:
            spins.append(_spin_factor(a.spin))
            print("round %d host: two spins at once x%.2f the time of one" % (r + 1, spins[-1]),
                  flush=True)
    print("load after: %s" % Path("/proc/loadavg").read_text().strip())
    for path in Path(outdir).glob("jobs-*.jsonl*"):     # (in memory: give it back)
        path.unlink()
    print("\n| capture | revision | --jobs | wall median (min-max) | CPU median | max RSS "
          "| vs --jobs 1 |")
    print("|---|---|---|---|---|---|---|")
    for pcap, rev, j in cases:
        walls = [x["wall"] for x in runs[(pcap, rev, j)]]
        base = statistics.median(x["wall"] for x in runs[(pcap, rev, jobs[0])])
        print("| %s | %s | %d | %.2f s (%.2f-%.2f) | %.2f s | %d MB | x%.2f |" % (
            os.path.basename(pcap), rev, j, statistics.median(walls), min(walls), max(walls),
            statistics.median(x["cpu"] for x in runs[(pcap, rev, j)]),
            max(x["maxrss_kb"] for x in runs[(pcap, rev, j)]) // 1024,
            base / statistics.median(walls)))
    if len(jobs) > 1:
        print()
        two = [r for r, f in enumerate(spins) if f <= TWO_CORES]
        if spins:
            print("host: two spins at once x%.2f of one (median); %d of %d rounds at most x%.2f"
                  % (statistics.median(spins), len(two), len(spins), TWO_CORES))
        for pcap in a.pcap:
            for rev in snaps:
                for j in jobs[1:]:
                    ratios = [b["wall"] / x["wall"] for b, x in zip(runs[(pcap, rev, jobs[0])],
                                                                    runs[(pcap, rev, j)])]
                    line = "%s %s --jobs %d: each round's --jobs %d / --jobs %d, median x%.2f" % (
                        os.path.basename(pcap), rev, j, jobs[0], j, statistics.median(ratios))
                    if spins and two:
                        line += "; in the rounds the host gave two cores x%.2f" % (
                            statistics.median([ratios[r] for r in two]))
                    elif spins:
                        line += "; no round had two cores"
                    print(line)
    return 0


def _spin_factor(loops: int) -> float:
    """How much longer two CPU-bound spins take at once than one alone."""
    spin = [sys.executable, "-c", jobs_bound.SPIN % loops]
    one = jobs_bound.timed([spin])
    return jobs_bound.timed([spin, spin]) / one


if __name__ == "__main__":
    sys.exit(main())
