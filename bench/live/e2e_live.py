"""Live end to end (root): tcpreplay on a veth -> ``tlsdiag sensor`` (live capture, Kafka) ->
``tlsdiag analyzer`` -> tls.diagnoses.  Latency per diagnosis = its Kafka timestamp - the
``end`` of its summary (the kernel capture time of the connection's last packet before it was
summarized), so it covers capture, summarizing, publishing, the analyzer and its commit.

    python bench/live/e2e_live.py --pcap /tmp/tlsbench/hs-30k.pcap --pps 12000
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(HERE))

import capture_rate as CR  # noqa: E402
from kafka_broker import start_broker  # noqa: E402
from latency import pct  # noqa: E402
from proto.summary import decode_summary  # noqa: E402


def kcat_framed(bootstrap, topic):
    data = subprocess.run(["kcat", "-C", "-b", bootstrap, "-t", topic, "-e", "-q", "-f",
                           "%T:%K:%k%S:%s"], capture_output=True).stdout
    out, pos = [], 0
    while pos < len(data):
        i = data.index(b":", pos)
        ts = int(data[pos:i])
        j = data.index(b":", i + 1)
        klen = int(data[i + 1:j])
        key = data[j + 1:j + 1 + klen]
        k = data.index(b":", j + 1 + klen)
        vlen = int(data[j + 1 + klen:k])
        out.append((ts, key, data[k + 1:k + 1 + vlen]))
        pos = k + 1 + vlen
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pcap", required=True)
    ap.add_argument("--pps", type=int, default=12000)
    ap.add_argument("--limit", type=int, default=0, help="tcpreplay --limit packets (0 = all)")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tlsdiag-e2e-"))
    broker = start_broker(tmp / "kafka")
    procs = []
    CR.setup()
    try:
        broker.create_topic("tls.handshakes", partitions=3)
        broker.create_topic("tls.certs", partitions=1, compact=True)
        py = sys.executable
        sensor = subprocess.Popen(
            [py, "-m", "tlsdiag", "sensor", "--netns", CR.RX, "--interface", CR.RX_IF,
             "--kafka", broker.bootstrap, "--sensor-id", "bench", "--idle-timeout", "5",
             "--spool-dir", str(tmp / "spool"), "--stats-interval", "5", "-v"],
            cwd=REPO, stdout=open(tmp / "sensor.log", "wb"), stderr=subprocess.STDOUT)
        analyzer = subprocess.Popen(
            [py, "-m", "tlsdiag", "analyzer", "--kafka", broker.bootstrap, "--group", "e2e",
             "--no-warnings", "--stats-interval", "5"],
            cwd=REPO, stdout=open(tmp / "analyzer.log", "wb"), stderr=subprocess.STDOUT)
        procs += [sensor, analyzer]
        deadline = time.time() + 60
        while "capturing on" not in (tmp / "sensor.log").read_text() and time.time() < deadline:
            time.sleep(0.5)
        time.sleep(8)       # analyzer joins its group
        argv = ["tcpreplay", "-i", CR.TX_IF, "--pps=%d" % a.pps]
        if a.limit:
            argv.append("--limit=%d" % a.limit)
        r = subprocess.run(CR.nsx(CR.TX, argv + [a.pcap]), capture_output=True, text=True)
        print(r.stdout.strip().splitlines()[-8:] if r.stdout else r.stderr, flush=True)
        prev, stable = -1, 0
        while stable < 3:
            time.sleep(4)
            n = len(kcat_framed(broker.bootstrap, "tls.diagnoses"))
            stable = stable + 1 if n == prev and n > 0 else 0
            prev = n
        sensor.terminate()
        sensor.wait(60)
        ends = {}
        for ts, key, val in kcat_framed(broker.bootstrap, "tls.handshakes"):
            s = decode_summary(val)
            ends[s["id"]] = (s["end"], ts / 1000)
        lat, pub = [], []
        for ts, key, val in kcat_framed(broker.bootstrap, "tls.diagnoses"):
            k = key.decode()
            if k in ends:
                lat.append(ts / 1000 - ends[k][0])
                pub.append(ends[k][1] - ends[k][0])
        sensor_log = (tmp / "sensor.log").read_text()
        stats = [ln for ln in sensor_log.splitlines() if "stats:" in ln][-1:]
        res = {"pps": a.pps, "summaries": len(ends), "diagnoses": len(lat),
               "e2e_p50_ms": round(pct(lat, 50) * 1000, 1), "e2e_p99_ms": round(pct(lat, 99) * 1000, 1),
               "capture_to_kafka_p50_ms": round(pct(pub, 50) * 1000, 1),
               "capture_to_kafka_p99_ms": round(pct(pub, 99) * 1000, 1),
               "sensor_stats": stats}
        print(json.dumps(res, indent=1))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        CR.teardown()
        broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
