"""One live-capture worker for the bench: sensor.live.LiveCapture + Summarizer, no Kafka.

Prints "ready" when capturing, stops after --idle seconds without packets (once traffic was
seen) or on SIGTERM, and prints one JSON line of counters (packets, pcap drops, summaries,
CPU seconds, busy wall time)."""
from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from sensor.live import LiveCapture  # noqa: E402
from sensor.pipeline import Summarizer  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--interface", required=True)
    ap.add_argument("--bpf", default="tcp")
    ap.add_argument("--idle", type=float, default=3.0)
    ap.add_argument("--max-seconds", type=float, default=600)
    ap.add_argument("--fanout-group", type=int)
    ap.add_argument("--buffer-mb", type=int, default=int(os.environ.get("BENCH_BUFFER_MB", "64")))
    a = ap.parse_args()
    cap = LiveCapture(a.interface, bpf=a.bpf, buffer_mb=a.buffer_mb, fanout_group=a.fanout_group)
    s = Summarizer(cap.linktype, idle_timeout=30.0)
    stop = False

    def on_term(_s, _f):
        nonlocal stop
        stop = True
    signal.signal(signal.SIGTERM, on_term)
    print("ready", flush=True)
    summaries = 0
    first = last = None
    t_end = time.monotonic() + a.max_seconds
    while not stop and time.monotonic() < t_end:
        batches = cap.poll(0.2)
        now = time.monotonic()
        for buf, meta in batches:
            summaries += len(s.feed(buf, meta))
        if batches:
            first = first or now
            last = now
        elif last is not None and now - last > a.idle:
            break
    summaries += len(s.flush())
    ru = resource.getrusage(resource.RUSAGE_SELF)
    st = cap.stats()
    st.update(summaries=summaries, cpu_s=round(ru.ru_utime + ru.ru_stime, 3),
              busy_s=round((last or 0) - (first or 0), 3))
    print(json.dumps(st), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
