"""Analyzer throughput through a real broker: N summaries pre-loaded on ``tls.handshakes``,
then one ``tlsdiag analyzer`` process started; time until the group's committed offsets reach
the end of the topic (exactly-once: the offsets commit in the same transaction as the
batch's diagnoses, so that is the moment the last diagnosis is readable on tls.diagnoses).

    python bench/analyzer/kafka_throughput.py                  # 100k messages, exactly-once
    python bench/analyzer/kafka_throughput.py --n 20000 --at-least-once

The stream is the one of bench/analyzer/throughput.py (hs-30k mix + ~1 % scenario failures,
SNI per server, the scenario truststore and local nets), keyed by server endpoint over
``--partitions`` partitions, lz4/zstd batches like the sensor's publisher; certificates on
the compacted ``tls.certs`` topic first.  The broker is tools/kafka/kafka.sh (Kafka 4.x KRaft,
loopback) in a temporary directory; everything is stopped at the end.

Reports: the steady rate (messages committed after the first commit / time from the first
commit to the last), the total from the analyzer's start (process start, group join and
certificate catch-up included), and the number of diagnoses on tls.diagnoses (read_committed,
by kcat) against the offline count.
"""
from __future__ import annotations

import argparse
import json
import os
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

import throughput as T  # noqa: E402
from kafka_broker import start_broker  # noqa: E402


def committed_and_end(admin, consumer, group: str, tps) -> tuple[int, int]:
    from kafka.errors import KafkaError
    try:
        if hasattr(admin, "list_group_offsets"):           # kafka-python >= 3
            offs = admin.list_group_offsets({group: None}).get(group) or {}
        else:
            offs = admin.list_consumer_group_offsets(group)
    except KafkaError:          # no coordinator yet: the group has not started
        offs = {}
    done = sum(o.offset for tp, o in offs.items() if tp in tps and o.offset >= 0)
    end = sum(consumer.end_offsets(list(tps)).values())
    return done, end


def count_diagnoses(bootstrap: str, topic: str) -> int:
    out = subprocess.run(["kcat", "-C", "-b", bootstrap, "-t", topic, "-e", "-q",
                          "-X", "isolation.level=read_committed", "-f", "%k\n"],
                         capture_output=True, timeout=300)
    return len(set(out.stdout.splitlines()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pcap", default=str(T.WORK / "hs-30k.pcap"))
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--at-least-once", action="store_true")
    ap.add_argument("--instances", type=int, default=1,
                    help="analyzer processes in the consumer group (default 1; give "
                         "--partitions >= this)")
    ap.add_argument("--max-records", type=int, default=None)
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--analyzer-arg", action="append", default=[],
                    help="extra argument for tlsdiag analyzer (repeatable)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--entry", help="command instead of 'python -m tlsdiag analyzer' (experiments)")
    ap.add_argument("--py-spy", metavar="FILE",
                    help="py-spy record the analyzer (collapsed stacks, all threads) into FILE "
                         "for --py-spy-seconds from 5 s after its start")
    ap.add_argument("--py-spy-seconds", type=int, default=20)
    a = ap.parse_args()

    pcap = a.pcap if os.path.exists(a.pcap) else None
    corpus, certs = T.load_corpus(pcap, True, False)
    stream = T.build_stream(corpus, a.n, a.partitions, T_SCEN_EVERY)
    print("stream: %d messages, %d certificates, %d partitions" % (
        len(stream), len(certs), a.partitions), flush=True)

    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import KafkaAdminClient
    from proto.summary import encode_certificate
    from tlsdiag.kafka import best_compression

    tmp = Path(tempfile.mkdtemp(prefix="tlsdiag-anbench-"))
    broker = start_broker(tmp / "kafka")
    ans: list[subprocess.Popen] = []
    load_before = os.getloadavg()[0]
    try:
        broker.create_topic("tls.handshakes", partitions=a.partitions)
        broker.create_topic("tls.certs", partitions=1, compact=True)
        comp = best_compression()
        prod = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=50,
                             batch_size=1 << 20, compression_type=comp,
                             max_request_size=8 << 20)
        for sha, (der, facts) in certs.items():
            prod.send("tls.certs", key=sha.hex().encode(), value=encode_certificate(sha, der, facts))
        t = time.monotonic()
        for p, key, value in stream:
            prod.send("tls.handshakes", key=key, value=value, partition=p)
        prod.flush(300)
        prod.close()
        print("produced %d summaries in %.1fs (%s)" % (len(stream), time.monotonic() - t, comp),
              flush=True)

        entry = a.entry.split() if a.entry else [sys.executable, "-m", "tlsdiag", "analyzer"]
        cmd = entry + ["--kafka", broker.bootstrap,
               "--group", "bench", "--no-warnings", "--stats-interval", "5",
               "--truststore", T.SCEN_ARGS["truststore"]]
        for net in T.SCEN_ARGS["local_nets"]:
            cmd += ["--local-net", net]
        if a.at_least_once:
            cmd.append("--at-least-once")
        if a.max_records:
            cmd += ["--max-records", str(a.max_records)]
        cmd += a.analyzer_arg
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
        cons = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None)
        tps = {TopicPartition("tls.handshakes", p) for p in range(a.partitions)}
        t_start = time.monotonic()
        ans = [subprocess.Popen(cmd + ["--instance", str(k)], cwd=REPO,
                                stdout=open(tmp / ("analyzer-%d.log" % k), "wb"),
                                stderr=subprocess.STDOUT) for k in range(a.instances)]
        an = ans[0]
        spy = None
        if a.py_spy:
            time.sleep(5)
            spy = subprocess.Popen(["py-spy", "record", "--pid", str(an.pid), "--threads", "--idle", "-r", "100",
                                    "-d", str(a.py_spy_seconds), "-f", "raw", "-o", a.py_spy],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        first = None
        samples = []
        done = end = 0
        while time.monotonic() - t_start < a.timeout:
            time.sleep(0.25)
            done, end = committed_and_end(admin, cons, "bench", tps)
            now = time.monotonic()
            if done and first is None:
                first = (now, done)
            samples.append((now - t_start, done))
            if end and done >= end:
                break
            if any(x.poll() is not None for x in ans):
                print("analyzer exited with %s" % [x.returncode for x in ans], file=sys.stderr)
                break
        t_end = time.monotonic()
        cpu = None
        threads: dict[str, float] = {}
        tck = os.sysconf("SC_CLK_TCK")
        try:
            cpu = 0.0
            for x in ans:
                st = Path("/proc/%d/stat" % x.pid).read_text().rsplit(")", 1)[1].split()
                cpu += (int(st[11]) + int(st[12])) / tck
                for task in Path("/proc/%d/task" % x.pid).iterdir():
                    raw = (task / "stat").read_text()
                    name = raw[raw.index("(") + 1:raw.rindex(")")]
                    st = raw.rsplit(")", 1)[1].split()
                    threads["%s-%s" % (name, task.name)] = (int(st[11]) + int(st[12])) / tck
        except (OSError, ValueError, IndexError):
            cpu = None
        if spy is not None:
            spy.wait()
        ndiag = count_diagnoses(broker.bootstrap, "tls.diagnoses")
        steady = (done - first[1]) / (t_end - first[0]) if first and t_end > first[0] else None
        res = {
            "messages": len(stream), "committed": done, "end": end,
            "mode": "at-least-once" if a.at_least_once else "exactly-once",
            "instances": a.instances, "load_avg_before": load_before,
            "total_s": round(t_end - t_start, 2),
            "first_commit_s": round(first[0] - t_start, 2) if first else None,
            "steady_msgs_per_s": round(steady) if steady else None,
            "overall_msgs_per_s": round(done / (t_end - t_start)),
            "analyzer_cpu_s": cpu,
            "analyzer_cpu_us_per_msg": round(cpu / done * 1e6, 1) if cpu and done else None,
            "analyzer_thread_cpu_s": threads,
            "diagnoses_on_topic": ndiag, "load_avg": os.getloadavg()[0],
            "compression": comp,
        }
        print(json.dumps(res, indent=1))
        for k in range(a.instances):
            print("analyzer %d log tail:\n" % k + (tmp / ("analyzer-%d.log" % k)).read_text()[-800:],
                  file=sys.stderr)
        admin.close()
        cons.close()
    finally:
        for x in ans:
            if x.poll() is None:
                x.terminate()
        for x in ans:
            try:
                x.wait(30)
            except subprocess.TimeoutExpired:
                x.kill()
        broker.stop()
        if not a.keep:
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


T_SCEN_EVERY = 100

if __name__ == "__main__":
    sys.exit(main())
