"""``tlsdiag summarize FILE... [--format jsonl|table]``: one handshake summary per TLS
connection of capture files."""
from __future__ import annotations

import argparse
import base64
import ctypes
import gc
import logging
import math
import os
import sys
import time

from proto.text import printable
from sensor.capture import CaptureError
from sensor.pipeline import summarize_paths
from tlsdiag import settings
from tlsdiag.commands import common
from tlsdiag.status import ExitStatus

log = logging.getLogger(__name__)

try:
    import orjson

    def _dumps(obj, _dumps=orjson.dumps, _opt=orjson.OPT_APPEND_NEWLINE) -> bytes:
        return _dumps(obj, option=_opt)
except ImportError:                                     # pragma: no cover
    import json

    def _dumps(obj) -> bytes:
        return (json.dumps(obj, separators=(",", ":"), ensure_ascii=False) + "\n").encode()


class _Batched:
    """Collects output lines and hands them to ``stream`` about 1 MB at a time (one write
    call each, passed straight to the file: a 300 MB JSONL run makes ~300 writes instead
    of ~37,000 8 KB ones)."""

    LIMIT = 1 << 20

    def __init__(self, stream) -> None:
        self.stream = stream
        self.lines: list[bytes] = []
        self.size = 0

    def write(self, line: bytes) -> None:
        self.lines.append(line)
        self.size += len(line)
        if self.size >= self.LIMIT:
            self._drain()

    def _drain(self) -> None:
        if self.lines:
            data = b"".join(self.lines)
            self.lines.clear()
            self.size = 0
            self.stream.write(data)     # whole or an error: tlsdiag.cli's standard output

    def flush(self) -> None:
        self._drain()
        self.stream.flush()


class _Progress:
    """A one-line progress bar on stderr, only on a terminal and only for large files."""

    MIN_SIZE = 32 << 20

    def __init__(self, stream) -> None:
        self.stream = stream
        self.on = stream.isatty()
        self.last = 0.0
        self.shown = False

    def __call__(self, cap) -> None:
        if not self.on or cap.size < self.MIN_SIZE:
            return
        now = time.monotonic()
        if now - self.last < 0.2:
            return
        self.last = now
        frac = min(cap.bytes_read / cap.size, 1.0)
        bar = "#" * int(frac * 30)
        self.stream.write("\r%s [%-30s] %3d%% %d packets" % (cap.path[-40:], bar, frac * 100,
                                                             cap.packets))
        self.stream.flush()
        self.shown = True

    def done(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False


def _jsonl_line(summary: dict, _certs) -> bytes:
    return _dumps(summary)


def _jsonl_certs_line(summary: dict, certs: dict) -> bytes:
    """``--certs``: the summary with its certificates' DER (base64, by SHA-256 hex)."""
    return _dumps({"summary": summary, "certs": {
        k: base64.b64encode(v).decode("ascii") for k, v in certs.items()}})


def _table_line(summary: dict, _certs) -> bytes:
    return (_table_row(summary) + "\n").encode()


def _table_row(s: dict) -> str:
    alert = s["last_alert"] or "-"
    return "%-22s %-22s %-14s %-40s %-24s %-5s %-18s %s" % (
        s["client"], s["server"], s["version"] or "-", (s["cipher"] or "-")[:40],
        printable(s["server_name"] or "-")[:24], "yes" if s["established"] else "no", alert[:18],
        s["history"])


def build_parser() -> argparse.ArgumentParser:
    p = common.parser("summarize", "One handshake summary per TLS connection of capture files "
                      "(schema: docs/summary-schema.md).")
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="pcap / pcapng, optionally .gz; - (standard input) or a pipe: pcap / "
                        "pcapng, read as it comes")
    p.add_argument("--format", choices=("jsonl", "table"), default="jsonl",
                   help="one JSON object per line (default), or a table for people")
    p.add_argument("--stats", action="store_true", help="print decoder/flow counters to stderr")
    p.add_argument("--jobs", type=jobs_count, default=1, metavar="N",
                   help="split each file's connections over N worker processes (same output, "
                        "in the same order; auto: one per CPU this process may use; default 1: "
                        "a gateway host's cores are the gateway's)")
    p.add_argument("--certs", action="store_true",
                   help="jsonl: write each line as {\"summary\": ..., \"certs\": {sha256: base64 DER}} so that "
                        "`tlsdiag diagnose --truststore` can verify the chains (the summary alone carries only "
                        "the certificates' facts)")
    return p


#: the most ``--jobs`` workers (``auto`` included)
MAX_JOBS = 64


def jobs_count(text: str) -> int:
    """``--jobs``: a worker count, 1 to 64, or ``auto``: the CPUs this process may use
    (:func:`usable_cpus`)."""
    if text == "auto":
        return min(usable_cpus(), MAX_JOBS)
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a number or auto: %r" % text) from None
    if not 1 <= n <= MAX_JOBS:
        raise argparse.ArgumentTypeError("must be 1 to %d, not %d" % (MAX_JOBS, n))
    return n


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity: ``taskset``, a cpuset), fewer under a
    CPU quota of its cgroup (a container's ``--cpus``, systemd's ``CPUQuota=``), rounded up;
    at least 1."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):           # (not Linux)
        n = os.cpu_count() or 1
    quota = cgroup_cpu_quota()
    if quota is not None:
        n = min(n, math.ceil(quota))
    return max(1, n)


def cgroup_cpu_quota(root: str = "/sys/fs/cgroup", own: str = "/proc/self/cgroup") -> "float | None":
    """The CPUs' worth of time this process's cgroup may use (its quota over its period:
    cgroup v2 ``cpu.max``, v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``), None without a
    quota or a cgroup file system to say.  Read in the process's own cgroup, else (a
    container sees its cgroup as the root) at the root of the hierarchy."""
    try:
        with open(own) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        rel = path.lstrip("/")
        if hierarchy == "0" and not controllers:                        # v2
            for d in dict.fromkeys((os.path.join(root, rel), root)):
                text = _read(os.path.join(d, "cpu.max"))
                if text is None:
                    continue
                fields = text.split()
                if len(fields) == 2 and fields[0] != "max":
                    return _ratio(fields[0], fields[1])
                break
        elif "cpu" in controllers.split(","):                           # v1
            for mount in dict.fromkeys((controllers, "cpu", "cpu,cpuacct", "cpuacct,cpu")):
                for d in dict.fromkeys((os.path.join(root, mount, rel), os.path.join(root, mount))):
                    quota = _read(os.path.join(d, "cpu.cfs_quota_us"))
                    period = _read(os.path.join(d, "cpu.cfs_period_us"))
                    if quota is None or period is None:
                        continue
                    return _ratio(quota, period) if quota.strip() != "-1" else None
    return None


def _read(path: str) -> "str | None":
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _ratio(quota: str, period: str) -> "float | None":
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


def tune_gc_for_batch() -> None:
    """For the batch commands (one pass over capture files): the per-connection objects
    form no reference cycles, so collect the young generation less often, and move what
    the imports created out of the collector's sight.  About 5 % of ``summarize``'s time
    on a handshake-only capture (callgrind, bench/)."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 10)


#: glibc's mallopt parameters: M_TRIM_THRESHOLD, M_MMAP_THRESHOLD
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def tune_malloc_for_batch() -> None:
    """For the batch commands: keep freed heap memory (up to 64 MB) for the next batch,
    and take blocks under 4 MB from the heap.  By default glibc gives the top of the heap
    back after each batch and maps each larger block afresh, so every batch faults its
    memory in again (zeroed pages): on the 100k handshake-only corpus a ``--jobs`` worker
    made ~3,000 ``brk`` calls, and ``--jobs 2`` took 143k minor faults against 40k for one
    worker (56k with this; ``strace -f -e trace=brk``, ``/usr/bin/time``).  Best effort:
    nothing on a C library without ``mallopt``.  Inherited by the ``--jobs`` workers
    (forked)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt(_M_TRIM_THRESHOLD, 64 << 20)
    mallopt(_M_MMAP_THRESHOLD, 4 << 20)


def main(argv=None) -> int:
    started = common.start("summarize", build_parser(), argv)
    if isinstance(started, int):
        return started
    args, values = started
    tune_gc_for_batch()
    tune_malloc_for_batch()
    out = _Batched(sys.stdout.buffer)
    progress = _Progress(sys.stderr)
    status = ExitStatus.SUCCESS
    if args.format == "table":
        out.write(("%-22s %-22s %-14s %-40s %-24s %-5s %-18s %s\n" % (
            "client", "server", "version", "cipher", "server_name", "est", "last_alert",
            "history")).encode())
    counters: dict | None = {} if args.stats else None
    if args.format == "jsonl":
        line_of = _jsonl_certs_line if args.certs else _jsonl_line
    else:
        line_of = _table_line
    for path in args.files:
        try:
            # each line made where the summary is; with --jobs, written by the workers to
            # their spools and copied from there to stdout: none passes through here
            output = None
            if args.jobs > 1:
                out.flush()
                output = sys.stdout.buffer.fileno()
            for line in summarize_paths([path], progress=progress, stats=counters,
                                        fragments=args.format == "jsonl", certs=args.certs,
                                        jobs=args.jobs, transform=line_of, output=output,
                                        **settings.flow_table(values)):
                out.write(line)
        except CaptureError as exc:
            progress.done()
            out.flush()
            print("tlsdiag summarize: error: %s" % exc, file=sys.stderr)
            status = ExitStatus.ERROR
        progress.done()
    out.flush()
    if counters is not None:
        for k in sorted(counters):
            print("%s=%d" % (k, counters[k]), file=sys.stderr)
    return status
