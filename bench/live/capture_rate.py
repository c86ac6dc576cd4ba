"""Live capture rate on a veth fed by tcpreplay (root).

    python bench/live/capture_rate.py --pcap /tmp/tlsbench/hs-30k.pcap --pps 25000,50000,100000,0

Two namespaces joined by a veth (offloads off); tcpreplay sends the corpus from one end at
each --pps (0 = --topspeed); bench/live/capture_worker.py captures on the other end (promisc,
BPF "tcp", TPACKET_V3 via pcapy-ng, non-blocking next_batch drain) and summarizes.  A rate
"holds" when the worker saw every packet tcpreplay sent and libpcap counted zero drops.
Prints one line per rate and a JSON summary at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TX, RX = "tb-tx", "tb-rx"
TX_IF, RX_IF = "tbx0", "tbr0"


def sh(argv, check=True):
    return subprocess.run(argv, check=check, capture_output=True, text=True)


def nsx(ns, argv):
    return ["ip", "netns", "exec", ns] + argv


def setup():
    teardown()
    for ns in (TX, RX):
        sh(["ip", "netns", "add", ns])
        sh(nsx(ns, ["ip", "link", "set", "lo", "up"]))
    sh(["ip", "link", "add", TX_IF, "netns", TX, "type", "veth", "peer", "name", RX_IF, "netns", RX])
    for ns, ifn in ((TX, TX_IF), (RX, RX_IF)):
        sh(nsx(ns, ["ip", "link", "set", ifn, "up"]))
        sh(nsx(ns, ["ethtool", "-K", ifn, "tso", "off", "gso", "off", "gro", "off", "tx", "off"]),
           check=False)


def teardown():
    have = sh(["ip", "netns", "list"], check=False).stdout
    for ns in (TX, RX):
        if re.search(r"^%s\b" % ns, have, re.M):
            sh(["ip", "netns", "del", ns], check=False)


def one_rate(pcap, pps, workers, expected_packets):
    procs = []
    for i in range(workers):
        argv = [sys.executable, os.path.join(HERE, "capture_worker.py"), "--interface", RX_IF]
        if workers > 1:
            argv += ["--fanout-group", "77"]
        procs.append(subprocess.Popen(nsx(RX, argv), stdout=subprocess.PIPE, text=True))
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    time.sleep(0.5)
    rate = ["--topspeed"] if not pps else ["--pps=%d" % pps]
    t0 = time.monotonic()
    r = sh(nsx(TX, ["tcpreplay", "-i", TX_IF] + rate + [pcap]), check=False)
    wall = time.monotonic() - t0
    sent = re.search(r"Actual: (\d+) packets .*? in ([\d.]+) seconds", r.stdout)
    rated = re.search(r"Rated: [\d.]+ Bps, [\d.]+ Mbps, ([\d.]+) pps", r.stdout)
    stats = [json.loads(p.communicate(timeout=600)[0].strip().splitlines()[-1]) for p in procs]
    tot = {k: sum(s[k] for s in stats) for k in ("packets", "pcap_drop", "pcap_ifdrop",
                                                   "summaries", "cpu_s")}
    n_sent = int(sent.group(1)) if sent else expected_packets
    return {
        "pps_requested": pps or "topspeed", "pps_sent": float(rated.group(1)) if rated else None,
        "packets_sent": n_sent, "replay_seconds": float(sent.group(2)) if sent else wall,
        "packets_captured": tot["packets"], "pcap_drop": tot["pcap_drop"],
        "ifdrop": tot["pcap_ifdrop"], "summaries": tot["summaries"],
        "worker_cpu_s": round(tot["cpu_s"], 2), "workers": workers,
        "zero_loss": tot["packets"] == n_sent and tot["pcap_drop"] == 0,
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pcap", required=True)
    ap.add_argument("--pps", default="25000,50000,100000,0")
    ap.add_argument("--workers", type=int, default=1)
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    meta_path = a.pcap[:-5] + ".meta.json"
    meta = json.load(open(meta_path)) if os.path.exists(meta_path) else {}
    setup()
    results = []
    try:
        for pps in [int(x) for x in a.pps.split(",")]:
            res = one_rate(a.pcap, pps, a.workers, meta.get("packets", 0))
            res["connections"] = meta.get("connections")
            results.append(res)
            print("pps=%-9s sent=%-9s captured=%-8d drop=%-6d summaries=%-6d cpu=%.1fs %s" % (
                res["pps_requested"], res["pps_sent"], res["packets_captured"], res["pcap_drop"],
                res["summaries"], res["worker_cpu_s"], "ZERO-LOSS" if res["zero_loss"] else "LOSS"),
                flush=True)
    finally:
        teardown()
    print(json.dumps({"pcap": a.pcap, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
