"""Analyzer per-message cost, offline: the exact per-batch code the Kafka analyzer runs
(``Analyzer.process_batch``: decode_summary -> cert lookup -> summary_to_json -> observe ->
diagnose -> incidents -> JSON encode -> producer.send), fed pre-encoded msgpack summaries in
batches of ``--batch`` (the service's max_records), with a producer that only collects what
is sent.  No broker: this is the analyzer's own CPU cost per message.

    python bench/analyzer/throughput.py                       # hs-30k mix + scenarios, 100k msgs
    python bench/analyzer/throughput.py --n 20000 --rounds 1 --profile /tmp/an.prof
    TLSDIAG_NO_EXTENSIONS=1 python bench/analyzer/throughput.py

Corpus: the summaries of ``--pcap`` (default ``$WORK/hs-30k.pcap`` of bench/run.py: 90 %
successful TLS 1.2/1.3 handshakes with real chains, 10 % handshake_failure /
protocol_version alerts) plus, with ``--scenarios`` (default on), every connection of the
real-failure captures in tests/data/scenarios (89 connections: each cause, both directions,
with the scenario truststore and local nets) spread through the stream (~1 % of messages).
Messages get fresh ids and increasing times, so incidents open, update and resolve.  The
summaries are cached in ``$WORK/analyzer-corpus-*.msgpack`` (``--rebuild`` to redo).

Prints messages/s, microseconds per message, the diagnoses and incident events produced,
and a SHA-256 over the diagnosis records (key + value, in order) so that an optimisation can
be checked to produce byte-identical diagnoses (``--check-digest HEX``).
"""
from __future__ import annotations

import argparse
import gc
import glob
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
import zlib
from collections import namedtuple
from pathlib import Path

import msgpack

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from proto.summary import decode_summary, encode_summary  # noqa: E402

WORK = Path(os.environ.get("WORK") or os.path.join(os.environ.get("TMPDIR", "/tmp"), "tlsbench"))
SCEN = REPO / "tests" / "data" / "scenarios"
SCEN_ARGS = {"local_nets": ["10.10.1.1/32", "10.10.3.1/32"],
             "truststore": str(SCEN / "pki" / "root.pem")}

#: --callgrind: instrument only the timed loop (run under
#: ``valgrind --tool=callgrind --instr-atstart=no``); instructions per message are stable
#: while the machine is loaded, wall time is not
CALLGRIND = False

Record = namedtuple("Record", "topic partition offset key value timestamp")
TP = namedtuple("TP", "topic partition")


def summarize(pcap: str) -> tuple[list[bytes], dict[bytes, tuple[bytes, dict]]]:
    """(encoded summaries, {digest: (der, facts)}) of one capture."""
    from sensor.capture import FileCapture
    from sensor.pipeline import Summarizer
    msgs: list[bytes] = []
    certs: dict[bytes, tuple[bytes, dict]] = {}
    with FileCapture(pcap) as cap:
        s = Summarizer(cap.linktype)
        items = []
        for buf, meta in cap:
            items.extend(s.feed(buf, meta))
        items.extend(s.flush())
    for raw, cs in items:
        for c in cs:
            certs[c[0]] = (c[1], c[2])
        msgs.append(encode_summary(raw))
    return msgs, certs


def load_corpus(pcap: str | None, scenarios: bool, rebuild: bool):
    """{'main': [msg], 'scen': [msg]}, {digest: (der, facts)} — cached."""
    parts = []
    if pcap:
        st = os.stat(pcap)
        parts.append((Path(pcap).stem, st.st_size, "main", [pcap]))
    if scenarios:
        files = sorted(glob.glob(str(SCEN / "*.pcap")))
        parts.append(("scenarios", sum(os.stat(f).st_size for f in files), "scen", files))
    out: dict[str, list[bytes]] = {"main": [], "scen": []}
    certs: dict[bytes, tuple[bytes, dict]] = {}
    for name, size, kind, files in parts:
        cache = WORK / ("analyzer-corpus-%s-%d.msgpack" % (name, size))
        if cache.exists() and not rebuild:
            doc = msgpack.unpackb(cache.read_bytes(), raw=False, strict_map_key=False)
        else:
            msgs: list[bytes] = []
            cs: dict[bytes, tuple[bytes, dict]] = {}
            for f in files:
                m, c = summarize(f)
                msgs.extend(m)
                cs.update(c)
            doc = {"msgs": msgs, "certs": [[k, v[0], v[1]] for k, v in cs.items()]}
            WORK.mkdir(parents=True, exist_ok=True)
            cache.write_bytes(msgpack.packb(doc, use_bin_type=True))
        out[kind].extend(doc["msgs"])
        for k, der, facts in doc["certs"]:
            certs[k] = (der, facts)
    return out, certs


def build_stream(corpus: dict[str, list[bytes]], n: int, partitions: int,
                 scen_every: int, sni_per_server: bool = True) -> list[tuple[int, bytes, bytes]]:
    """n (partition, key, msgpack) with fresh ids and times, partitioned by server like the
    sensor's publisher (keyed by server endpoint).

    ``sni_per_server``: the bench corpus draws a random SNI per connection (24k distinct
    names over 1,500 servers); real clients of a server send one or a few names, so by
    default each server keeps the first name seen for it (connections without SNI keep
    none).  ``False`` keeps the corpus' names: every chain check is then new (worst case)."""
    main, scen = corpus["main"], corpus["scen"]
    base = [decode_summary(m) for m in main] or [decode_summary(m) for m in scen]
    if sni_per_server:
        first: dict[str, str] = {}
        for r in base:
            if r["server_name"]:
                r["server_name"] = first.setdefault(r["server"], r["server_name"])
    sc = [decode_summary(m) for m in scen]
    t0 = 1_800_000_000.0
    out = []
    j = 0
    for i in range(n):
        if sc and scen_every and i % scen_every == scen_every - 1:
            raw = sc[j % len(sc)]
            j += 1
        else:
            raw = base[i % len(base)]
        dur = float(raw["end"]) - float(raw["start"])
        t = t0 + i * 0.0002        # 5,000 handshakes/s of data time
        r = dict(raw, id="m%08d" % i, start=t, end=t + max(0.0, min(dur, 5.0)))
        key = str(r["server"]).encode()
        out.append((zlib.crc32(key) % partitions, key, encode_summary(r)))
    return out


class NullProducer:
    """Collects (topic, key, value): the service's producer.send signature, no I/O."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []

    def send(self, topic, key=None, value=None, headers=None, partition=None):
        self.sent.append((topic, key, value))

    def flush(self, timeout=None):
        pass

    def partitions_for(self, topic):
        return {0, 1, 2}


class DictCerts:
    def __init__(self, d: dict[bytes, tuple[bytes, dict]]) -> None:
        self._d = d

    def get(self, sha):
        return self._d.get(sha)

    def __contains__(self, sha):
        return sha in self._d

    def catch_up(self, deadline, need=None):
        pass


#: --gc: None = the analyzer service's own GC (analyzer.service.BatchGC: automatic collection
#: off, a collection after every batch, as ``tlsdiag analyzer`` runs), "default" = Python's
#: automatic collection with its default thresholds, or "T0,T1,T2" thresholds
GC_MODE: str | None = None


def make_analyzer(certs, scen_config: bool, warnings: bool = False):
    import gc
    from analyzer.config import build_config
    from analyzer.service import Analyzer, AnalyzerConfig
    from cext.wire import kafka_partition
    diag = build_config(dict(SCEN_ARGS) if scen_config else {})
    an = Analyzer(AnalyzerConfig(kafka="bench:0", warnings=warnings), diag,
                  partition=kafka_partition)
    an.producer = NullProducer()
    an.certs = DictCerts(certs)
    gc.unfreeze()
    gc.enable()
    if GC_MODE == "default":
        gc.set_threshold(700, 10, 10)
    elif GC_MODE:
        gc.set_threshold(*(int(x) for x in GC_MODE.split(",")))
    else:
        gc.set_threshold(700, 10, 10)
        an.gc.start()          # what Analyzer.run does once connected
        an.batch_gc = True
    return an


def run_once(stream, certs, batch: int, scen_config: bool, warnings: bool = False,
             topic: str = "tls.handshakes", warmup: int = 0):
    an = make_analyzer(certs, scen_config, warnings)
    batches = []
    for i in range(0, len(stream), batch):
        recs: dict = {}
        for k, (p, key, val) in enumerate(stream[i:i + batch]):
            recs.setdefault(TP(topic, p), []).append(
                Record(topic, p, i + k, key, val, int(time.time() * 1000)))
        batches.append(recs)
    nwarm = -(-warmup // batch) if warmup > 0 else 0
    after = an.gc.after_batch if getattr(an, "batch_gc", False) else (lambda: None)
    for recs in batches[:nwarm]:
        an.process_batch(recs)
        after()
    batches = batches[nwarm:]
    gc.collect()
    if CALLGRIND:
        subprocess.run(["callgrind_control", "-i", "on", str(os.getpid())], check=False,
                       stdout=subprocess.DEVNULL)
    t = time.perf_counter()
    for recs in batches:
        an.process_batch(recs)
        after()                # the service's collection between batches
    dt = time.perf_counter() - t
    an.timed_messages = sum(len(b) for recs in batches for b in recs.values())
    if CALLGRIND:
        subprocess.run(["callgrind_control", "-i", "off", str(os.getpid())], check=False,
                       stdout=subprocess.DEVNULL)
    return dt, an


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pcap", default=str(WORK / "hs-30k.pcap"))
    ap.add_argument("--no-scenarios", action="store_true")
    ap.add_argument("--scen-every", type=int, default=100,
                    help="one scenario connection every N messages (default 100)")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=0,
                    help="process the first N messages (whole batches) untimed: caches, "
                         "chain checks of new servers, first profile snapshot")
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--random-sni", action="store_true",
                    help="keep the corpus' random SNI per connection (worst case for caches)")
    ap.add_argument("--warnings", action="store_true",
                    help="analyzer with warnings on (default off, like bench/live)")
    ap.add_argument("--gc", metavar="MODE",
                    help="'default' (Python's automatic GC) or T0,T1,T2 thresholds; "
                         "default: the analyzer service's BatchGC")
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--profile", metavar="FILE", help="cProfile one round into FILE")
    ap.add_argument("--check-digest", metavar="HEX")
    ap.add_argument("--dump", metavar="FILE", help="write the diagnosis records (key TAB value)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--callgrind", action="store_true",
                    help="toggle callgrind instrumentation around the timed loop: "
                         "valgrind --tool=callgrind --instr-atstart=no python THIS --callgrind "
                         "--n 3000 --rounds 1; Ir / messages = instructions per message")
    a = ap.parse_args()
    global CALLGRIND, GC_MODE
    CALLGRIND = a.callgrind
    GC_MODE = a.gc

    pcap = a.pcap if a.pcap and os.path.exists(a.pcap) else None
    if a.pcap and not pcap:
        print("note: %s not found, using the scenario captures only" % a.pcap, file=sys.stderr)
    corpus, certs = load_corpus(pcap, not a.no_scenarios, a.rebuild)
    stream = build_stream(corpus, a.n, a.partitions, 0 if a.no_scenarios else a.scen_every,
                          not a.random_sni)
    scen_cfg = not a.no_scenarios
    from cext import wire
    impl = getattr(wire, "IMPLEMENTATION", "?")
    print("corpus: %d + %d scenario summaries, %d certificates; stream %d messages "
          "(median %d B), batch %d, wire impl %s" % (
              len(corpus["main"]), len(corpus["scen"]), len(certs), len(stream),
              statistics.median(len(v) for _, _, v in stream), a.batch, impl), flush=True)
    if a.profile:
        import cProfile
        import pstats
        pr = cProfile.Profile()
        pr.enable()
        dt, an = run_once(stream, certs, a.batch, scen_cfg, a.warnings, warmup=a.warmup)
        pr.disable()
        pr.dump_stats(a.profile)
        pstats.Stats(pr).sort_stats("tottime").print_stats(25)
        return 0
    times = []
    digest = None
    an = None
    for _ in range(a.rounds):
        dt, an = run_once(stream, certs, a.batch, scen_cfg, a.warnings, warmup=a.warmup)
        times.append(dt)
        h = hashlib.sha256()
        nd = 0
        for topic, key, value in an.producer.sent:
            if topic == "tls.diagnoses":
                value = value.replace(str(REPO).encode(), b"REPO")   # the truststore path
                h.update(key or b"")
                h.update(b"\0")
                h.update(value)
                h.update(b"\n")
                nd += 1
        d = h.hexdigest()
        if digest is not None and d != digest:
            print("WARNING: diagnosis digest differs between rounds", file=sys.stderr)
        digest = d
        nt = an.timed_messages
        print("  round: %.3f s, %.0f msgs/s, %.1f us/msg" % (dt, nt / dt, dt / nt * 1e6),
              flush=True)
    if a.dump:
        with open(a.dump, "wb") as fh:
            for topic, key, value in an.producer.sent:
                if topic == "tls.diagnoses":
                    value = value.replace(str(REPO).encode(), b"REPO")
                    fh.write((key or b"") + b"\t" + value + b"\n")
    best = min(times)
    topics: dict[str, int] = {}
    for topic, _, _ in an.producer.sent:
        topics[topic] = topics.get(topic, 0) + 1
    nt = an.timed_messages
    res = {"messages": len(stream), "timed_messages": nt, "best_s": round(best, 3),
           "median_s": round(statistics.median(times), 3),
           "msgs_per_s": round(nt / best), "us_per_msg": round(best / nt * 1e6, 2),
           "sent": topics, "diagnoses_digest": digest, "impl": impl,
           "load_avg": os.getloadavg()[0]}
    print(json.dumps(res, indent=None if a.json else 1))
    if a.check_digest and a.check_digest != digest:
        print("DIGEST MISMATCH: expected %s" % a.check_digest, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
