"""End-to-end latency, handshake end -> diagnosis on Kafka, at a fixed handshake rate.

    python bench/live/latency.py --pcap /tmp/tlsbench/hs-30k.pcap --rate 5000 --seconds 20

Starts a broker (tools/kafka/kafka.sh, in a temporary directory) and ``tlsdiag analyzer``
(default: transactional exactly-once; ``--at-least-once`` to compare; ``--instances N``
starts N analyzers in the same consumer group, ``--instance`` 0..N-1, which share the
partitions of tls.handshakes -- give it ``--partitions`` >= N).  The corpus'
summaries (real ones, from the sensor pipeline) are published through the sensor's publisher
at --rate per second, each re-stamped with a fresh id and ``end`` = the moment it is handed to
the publisher, i.e. the moment the capture loop would have finished the handshake.
Latency = the Kafka timestamp of the diagnosis record (CreateTime, set by the analyzer's
producer) - ``end``; read back with kcat.  Also prints the median summary size on the wire
(msgpack value bytes, and broker log bytes per summary after lz4/zstd batching).

This covers publisher -> Kafka -> analyzer -> Kafka.  Capture -> summary is measured by
capture_rate.py (the wire core summarizes in microseconds; the only wait there is the
sensor's poll interval of <= 0.2 s when the wire goes quiet).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from kafka_broker import start_broker  # noqa: E402
from proto.summary import encode_summary  # noqa: E402
from sensor.capture import FileCapture  # noqa: E402
from sensor.pipeline import Summarizer  # noqa: E402
from sensor.publisher import Publisher, PublisherConfig  # noqa: E402
from tlsdiag.kafka import best_compression, ensure_topics  # noqa: E402


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def corpus_items(pcap: str) -> list:
    """The ``(raw, certs)`` summaries of a capture, from the sensor pipeline."""
    items = []
    with FileCapture(pcap) as cap:
        s = Summarizer(cap.linktype)
        for buf, meta in cap:
            items.extend(s.feed(buf, meta))
        items.extend(s.flush())
    return items


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pcap", required=True)
    ap.add_argument("--rate", type=float, default=5000)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--at-least-once", action="store_true")
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--instances", type=int, default=1,
                    help="analyzer processes in the consumer group (default 1)")
    ap.add_argument("--analyzer-arg", action="append", default=[],
                    help="extra argument for tlsdiag analyzer (repeatable)")
    a = ap.parse_args()

    items = corpus_items(a.pcap)
    sizes = [len(encode_summary(r)) for r, _ in items]
    print("corpus: %d summaries, median msgpack size %d B (p90 %d)" % (
        len(items), statistics.median(sizes), pct(sizes, 90)), flush=True)

    load_before = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="tlsdiag-lat-"))
    broker = start_broker(tmp / "kafka")
    ans: list[subprocess.Popen] = []
    try:
        broker.create_topic("tls.handshakes", partitions=a.partitions)
        broker.create_topic("tls.certs", partitions=1, compact=True)
        cmd = [sys.executable, "-m", "tlsdiag", "analyzer", "--kafka", broker.bootstrap,
               "--group", "bench", "--no-warnings", "--stats-interval", "5"]
        if a.at_least_once:
            cmd.append("--at-least-once")
        cmd += a.analyzer_arg
        ans = [subprocess.Popen(cmd + ["--instance", str(k)], cwd=REPO,
                                stdout=open(tmp / ("analyzer-%d.log" % k), "wb"),
                                stderr=subprocess.STDOUT) for k in range(a.instances)]
        pub = Publisher(PublisherConfig(bootstrap=broker.bootstrap, spool_dir=str(tmp / "spool"),
                                        compression=best_compression()),
                        ensure_topics=ensure_topics)
        pub.start()
        # warm up: the analyzer joins its group and reads the certificates
        for raw, certs in items[:50]:
            pub.publish(dict(raw, id="warm-%s" % raw["id"], start=time.time(), end=time.time()),
                        certs)
        pub.flush(60)
        time.sleep(8)
        ends: dict[str, float] = {}
        n = int(a.rate * a.seconds)
        # CPU seconds of each party from here to the end of the run (publish + drain)
        cpu0 = {"analyzers": sum(_cpu_s(an.pid) or 0.0 for an in ans),
                "broker": _cpu_s(broker.pid or -1) or 0.0, "publisher": _self_cpu_s()}
        t0 = time.monotonic()
        print("publishing %d summaries at %.0f/s" % (n, a.rate), flush=True)
        for i in range(n):
            raw, certs = items[i % len(items)]
            now = time.time()
            sid = "b%07d" % i
            ends[sid] = now
            pub.publish(dict(raw, id=sid, start=now - 0.05, end=now), certs)
            ahead = t0 + (i + 1) / a.rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        sent_s = time.monotonic() - t0
        load_during = os.getloadavg()[0]
        pub.flush(120)
        pub.close()
        print("published in %.1fs (%.0f/s)" % (sent_s, n / sent_s), flush=True)
        deadline = time.time() + 900
        lats: list[float] = []
        stable = 0
        while time.time() < deadline and stable < 3:
            time.sleep(3)
            out = subprocess.run(["kcat", "-C", "-b", broker.bootstrap, "-t", "tls.diagnoses",
                                  "-e", "-q", "-f", "%T %k\n"], capture_output=True, text=True)
            new = [int(ts) / 1000 - ends[k] for ts, k in
                   (ln.split(" ", 1) for ln in out.stdout.splitlines()) if k in ends]
            stable = stable + 1 if new and len(new) == len(lats) else 0
            lats = new
        cpu = [_cpu_s(an.pid) for an in ans]
        cpu1 = {"analyzers": sum(c or 0.0 for c in cpu),
                "broker": _cpu_s(broker.pid or -1) or 0.0, "publisher": _self_cpu_s()}
        # (the drain polls above are kcat subprocesses: not counted)
        cpu_per = {k: round((cpu1[k] - cpu0[k]) / n * 1e6, 1) for k in cpu0}
        log_bytes = sum(f.stat().st_size for f in (tmp / "kafka" / "data").glob(
            "tls.handshakes-*/*.log"))
        res = {
            "rate": a.rate, "summaries": n, "publish_rate": round(n / sent_s),
            "diagnoses": len(lats), "mode": "at-least-once" if a.at_least_once else "exactly-once",
            "latency_p50_ms": round(pct(lats, 50) * 1000, 1) if lats else None,
            "latency_p90_ms": round(pct(lats, 90) * 1000, 1) if lats else None,
            "latency_p99_ms": round(pct(lats, 99) * 1000, 1) if lats else None,
            "latency_max_ms": round(max(lats) * 1000, 1) if lats else None,
            "summary_msgpack_median_bytes": statistics.median(sizes),
            "broker_log_bytes_per_summary": round(log_bytes / (n + 50), 1),
            "compression": pub.compression,
            "instances": a.instances, "partitions": a.partitions,
            "analyzer_cpu_s": cpu,
            "cpu_us_per_summary_during_run": cpu_per,
            "analyzer_cpu_us_per_summary": round(sum(c for c in cpu if c) / (n + 50) * 1e6, 1)
            if all(cpu) else None,
            "load_avg_before": load_before, "load_avg_end_of_publish": load_during,
        }
        print(json.dumps(res, indent=1))
        for k in range(a.instances):
            print(open(tmp / ("analyzer-%d.log" % k)).read()[-600:], file=sys.stderr)
    finally:
        for an in ans:
            an.terminate()
        for an in ans:
            try:
                an.wait(30)
            except subprocess.TimeoutExpired:
                an.kill()
        broker.stop()
    return 0


def _self_cpu_s() -> float:
    """This process' CPU seconds (the publisher: its loop and kafka-python's thread)."""
    t = os.times()
    return t.user + t.system


def _cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a running process (its threads included)."""
    try:
        st = Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()
        return (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


if __name__ == "__main__":
    sys.exit(main())
