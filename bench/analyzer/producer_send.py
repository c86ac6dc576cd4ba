"""CPU per ``KafkaProducer.send`` as the analyzer uses it (transactional, idempotent, zstd,
linger 200 ms, 1 MiB batches), with kafka-python's default partitioner (pure-Python murmur2)
and with an explicit partition (``cext.wire.kafka_partition(key, n)``: Kafka's default
partition computed in C, what analyzer.service.DeferredSends and the sensor's publisher do).

    python bench/analyzer/producer_send.py [--n 20000] [--value-bytes 2500]

Starts a broker (tools/kafka/kafka.sh) in a temporary directory.  CPU is this process'
(the send loop plus kafka-python's I/O thread while the loop runs).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from kafka_broker import start_broker  # noqa: E402

from cext.wire import kafka_partition  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--value-bytes", type=int, default=2500)
    ap.add_argument("--partitions", type=int, default=3)
    a = ap.parse_args()
    from kafka import KafkaProducer
    tmp = Path(tempfile.mkdtemp(prefix="tlsdiag-prodbench-"))
    broker = start_broker(tmp / "kafka")
    try:
        broker.create_topic("t", partitions=a.partitions)
        p = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", enable_idempotence=True,
                          transactional_id="bench", linger_ms=200, batch_size=1 << 20,
                          compression_type="zstd", max_request_size=8 << 20)
        p.init_transactions()
        val = b"x" * a.value_bytes
        for mode in ("default", "explicit", "default", "explicit"):
            p.begin_transaction()
            keys = [("conn-%08d-%s" % (i, mode)).encode() for i in range(a.n)]
            t = time.process_time()
            if mode == "default":
                for k in keys:
                    p.send("t", key=k, value=val)
            else:
                for k in keys:
                    p.send("t", key=k, value=val, partition=kafka_partition(k, a.partitions))
            dt = time.process_time() - t
            p.commit_transaction()
            print("%-8s partitioner: %.1f us CPU per send" % (mode, dt / a.n * 1e6), flush=True)
        p.close()
    finally:
        broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
