"""Incident events per failure on the bench corpus, with and without the resolve hold.

The stream of bench/analyzer/throughput.py (hs-30k mix: 10 % of handshakes to a server fail,
plus ~1 % scenario failures), but at ``--rate`` handshakes per second of DATA time (the
throughput benches compress 30,000 messages into 6 s, shorter than any hold) and with the
analyzer's wall clock following data time (rate-limited updates as in a live run).  Runs
``Analyzer.process_batch`` offline (no broker) once per ``--hold`` value and prints failures,
incidents opened/resolved and incident events (and per failure), and the incident state
written per batch (records, bytes) against what the single-record format 1 would have written.

    python bench/analyzer/incident_flapping.py --n 30000 --rate 50 --hold 0 --hold 60
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE))

import throughput as T  # noqa: E402

from tests.support.incidents import format1_record  # noqa: E402


def retime(stream, rate: float):
    from proto.summary import decode_summary, encode_summary
    out = []
    t0 = 1_800_000_000.0
    for i, (p, key, val) in enumerate(stream):
        r = decode_summary(val)
        dur = max(0.0, min(float(r["end"]) - float(r["start"]), 5.0))
        t = t0 + i / rate
        out.append((p, key, encode_summary(dict(r, start=t, end=t + dur))))
    return out


def run(stream, certs, hold: float, batch: int) -> dict[str, object]:
    import analyzer.service.consumer as S
    from cext.wire import kafka_partition
    from analyzer.config import build_config
    clock = [0.0]
    # the analyzer's wall clock = the data time of the batch (as in a live run)
    S.time = types.SimpleNamespace(time=lambda: clock[0], monotonic=time.monotonic,
                                   sleep=time.sleep)
    try:
        an = S.Analyzer(S.AnalyzerConfig(kafka="bench:0", incident_resolve_hold_s=hold),
                        build_config(dict(T.SCEN_ARGS)), partition=kafka_partition)
        an.producer = T.NullProducer()
        an.certs = T.DictCerts(certs)
        tr = an.incidents
        save = tr.save_records
        v1 = [0, 0]            # what format 1 would have written: bytes, records

        def save_and_compare(part, **extra):
            text = format1_record(tr, part, **extra)
            v1[0] += len(text)
            v1[1] += 1
            return save(part, **extra)
        tr.save_records = save_and_compare
        from proto.summary import decode_summary
        for i in range(0, len(stream), batch):
            recs: dict = {}
            chunk = stream[i:i + batch]
            clock[0] = float(decode_summary(chunk[-1][2])["end"])
            for k, (p, key, val) in enumerate(chunk):
                recs.setdefault(T.TP("tls.handshakes", p), []).append(
                    T.Record("tls.handshakes", p, i + k, key, val, int(clock[0] * 1000)))
            an.process_batch(recs)
            nb = getattr(an, "_bench_batches", 0) + 1
            an._bench_batches = nb
    finally:
        S.time = time
    events = [json.loads(v) for topic, _, v in an.producer.sent if topic == "tls.incidents"]
    fails = sum(an.failures.values())
    kinds = {k: sum(1 for e in events if e["event"] == k) for k in ("opened", "updated",
                                                                   "resolved")}
    return {"hold_s": hold, "failures": fails, "incident_events": len(events), **kinds,
            "open_at_end": len(an.incidents.open),
            "events_per_failure": round(len(events) / fails, 3) if fails else None,
            "batches": an._bench_batches,
            "state_per_batch_format2": {"records": round(an.c["incident_state_records"]
                                                         / an._bench_batches, 1),
                                        "bytes": an.c["incident_state_bytes"] // an._bench_batches},
            "state_per_batch_format1": {"records": round(v1[1] / an._bench_batches, 1),
                                        "bytes": v1[0] // an._bench_batches},
            "opened_per_failure": round(kinds["opened"] / fails, 3) if fails else None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pcap", default=str(T.WORK / "hs-30k.pcap"))
    ap.add_argument("--n", type=int, default=30_000)
    ap.add_argument("--rate", type=float, default=50.0, help="handshakes/s of data time")
    ap.add_argument("--hold", type=float, action="append", default=[])
    ap.add_argument("--batch", type=int, default=2000)
    ap.add_argument("--partitions", type=int, default=3)
    a = ap.parse_args()
    corpus, certs = T.load_corpus(a.pcap, True, False)
    stream = retime(T.build_stream(corpus, a.n, a.partitions, 100), a.rate)
    print("stream: %d messages over %.0f s of data time" % (len(stream), len(stream) / a.rate))
    for hold in a.hold or [0.0, 60.0]:
        print(json.dumps(run(stream, certs, hold, a.batch)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
