"""CPU per summary of the sensor's publisher (``sensor.publisher.Publisher``) through a real
broker: the capture thread's ``publish`` (msgpack encoding, queue), the sender thread and
kafka-python's I/O thread, all counted as this process' CPU.

    python bench/live/publisher_cpu.py --pcap /tmp/tlsbench/hs-30k.pcap [--rate 5000] [--n 100000]

Starts a broker (tools/kafka/kafka.sh) in a temporary directory.  The corpus' summaries (real
ones, from the sensor pipeline) are published at --rate per second (0 = as fast as
``publish`` returns), each with a fresh id, then flushed until every one is acknowledged.
Prints the CPU split per thread (from /proc/self/task) and the totals in us per summary.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

sys.path.insert(0, str(REPO / "bench" / "live"))

from kafka_broker import start_broker  # noqa: E402
from latency import _cpu_s, corpus_items  # noqa: E402
from sensor.publisher import Publisher, PublisherConfig  # noqa: E402
from tlsdiag.kafka import best_compression, ensure_topics  # noqa: E402


def thread_cpu() -> dict[str, float]:
    """CPU seconds of each thread of this process, by thread name."""
    tck = os.sysconf("SC_CLK_TCK")
    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, float] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            st = Path("/proc/self/task/%s/stat" % tid).read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = names.get(int(tid), "tid-%s" % tid)
        if name.startswith("kafka-python-producer"):
            name = "kafka-python-producer"
        out[name] = out.get(name, 0.0) + (int(st[11]) + int(st[12])) / tck
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pcap", required=True)
    ap.add_argument("--rate", type=float, default=5000)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--partitions", type=int, default=3)
    a = ap.parse_args()

    items = corpus_items(a.pcap)
    tmp = Path(tempfile.mkdtemp(prefix="tlsdiag-pubcpu-"))
    broker = start_broker(tmp / "kafka")
    try:
        broker.create_topic("tls.handshakes", partitions=a.partitions)
        broker.create_topic("tls.certs", partitions=1, compact=True)
        pub = Publisher(PublisherConfig(bootstrap=broker.bootstrap, spool_dir=str(tmp / "spool"),
                                        compression=best_compression()),
                        ensure_topics=ensure_topics)
        pub.start()
        for raw, certs in items[:50]:
            pub.publish(dict(raw, id="warm-%s" % raw["id"]), certs)
        pub.flush(60)
        cpu0, b0, t0 = thread_cpu(), (_cpu_s(broker.pid or -1) or 0.0), time.monotonic()
        for i in range(a.n):
            raw, certs = items[i % len(items)]
            now = time.time()
            pub.publish(dict(raw, id="b%07d" % i, start=now - 0.05, end=now), certs)
            if a.rate:
                ahead = t0 + (i + 1) / a.rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
        sent_s = time.monotonic() - t0
        ok = pub.flush(300)
        wall = time.monotonic() - t0
        cpu1, b1 = thread_cpu(), (_cpu_s(broker.pid or -1) or 0.0)
        per = {k: round((v - cpu0.get(k, 0.0)) / a.n * 1e6, 1) for k, v in cpu1.items()
               if v - cpu0.get(k, 0.0) > 0}
        st = pub.stats()
        pub.close()
        print(json.dumps({
            "summaries": a.n, "rate": a.rate, "publish_rate": round(a.n / sent_s),
            "flushed": ok, "wall_s": round(wall, 2), "acked": st["acked"],
            "spooled": st["spooled"], "send_errors": st["send_errors"],
            "cpu_us_per_summary_by_thread": per,
            "cpu_us_per_summary": round(sum(per.values()), 1),
            "broker_cpu_us_per_summary": round((b1 - b0) / a.n * 1e6, 1),
            "load_avg": os.getloadavg()[0],
        }, indent=1))
    finally:
        broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
