"""Line rate: the eBPF handshake filter vs libpcap, fed by a generator that is not the
bottleneck (root: network namespaces).

    python bench/live/linerate.py generators --pcap /tmp/tlsbench/hs-20k.pcap
    python bench/live/linerate.py sweep --pcap /tmp/tlsbench/bulk90-2k.pcap \\
        --backends pcap,ebpf --pps 100000,200000,400000,0 --loops 4

Two namespaces joined by a veth (offloads off); the sensor side runs one worker (sensor
capture backend + Summarizer + the finished-flow hook, no Kafka) in ``ebpf-lrrx``; the
generator sends from ``ebpf-lrtx``.

``generators`` measures which sender reaches the highest rate here, with nothing capturing:
one tcpreplay (``--preload-pcap --topspeed``), several tcpreplay processes on different
copies of the corpus, and a PACKET_TX_RING sender (C, compiled here with gcc; qdisc
bypass, 64-frame batches).  The kernel's pktgen is reported when /proc/net/pktgen exists
(``CONFIG_NET_PKTGEN`` is not set on this machine kind).  The rate that counts is what
the receiving veth accepted (its rx_packets), not what a sender claims.

``sweep`` pins the sender to CPU 0 -- the veth's receive softirq, where the filter and
libpcap's ring copy run, follows it -- and the sensor to CPU 1 (``--no-pin``: no pinning),
then offers each rate (``--pps``, 0 = as fast as the TX ring goes) to each backend:
the corpus is sent ``--loops`` times with the client addresses changed per loop (distinct
flows, as tcpreplay's --unique-ip), and a rate "holds" when the worker reported every
connection (summaries == connections x loops, the same outcome counts as ``summarize``
of the corpus) with no ring drops.  Per run: offered/delivered frames/s and Gbit/s, the
worker's CPU per handshake and per Gbit of bulk, its peak RSS, and the kernel counters.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, ROOT)

TX, RX = "ebpf-lrtx", "ebpf-lrrx"
TX_IF, RX_IF = "ebpflt0", "ebpflr0"

TXRING_C = r"""
/* PACKET_TX_RING sender: a pcap's frames, LOOPS times, at PPS frames/s (0 = as fast as
 * possible); per loop the client address (first byte 10) gets first byte 10 + loop, so
 * every loop is new flows.  Prints "sent N seconds S". */
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FRAME 2048
#define NFRAMES 8192
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);
                          return t.tv_sec + t.tv_nsec * 1e-9; }
int main(int argc, char **argv) {
    if (argc < 5) { fprintf(stderr, "usage: txring IF PCAP LOOPS PPS\n"); return 2; }
    int loops = atoi(argv[3]); double pps = atof(argv[4]);
    FILE *f = fopen(argv[2], "rb"); if (!f) { perror("pcap"); return 1; }
    fseek(f, 0, SEEK_END); long sz = ftell(f); fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(sz); if (fread(buf, 1, sz, f) != (size_t)sz) return 1;
    long n = 0, cap = 1 << 20; long *off = malloc(cap * sizeof(long)); int *len = malloc(cap * sizeof(int));
    for (long p = 24; p + 16 <= sz; ) { uint32_t il; memcpy(&il, buf + p + 8, 4);
        if (n == cap) { cap *= 2; off = realloc(off, cap * sizeof(long)); len = realloc(len, cap * sizeof(int)); }
        off[n] = p + 16; len[n++] = il; p += 16 + il; }
    int fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
    int v = TPACKET_V2; setsockopt(fd, SOL_PACKET, PACKET_VERSION, &v, sizeof(v));
    v = 1; setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &v, sizeof(v));
    struct tpacket_req req = { .tp_block_size = FRAME * 64, .tp_frame_size = FRAME,
                               .tp_block_nr = NFRAMES / 64, .tp_frame_nr = NFRAMES };
    if (setsockopt(fd, SOL_PACKET, PACKET_TX_RING, &req, sizeof(req))) { perror("ring"); return 1; }
    unsigned char *ring = mmap(0, (size_t)FRAME * NFRAMES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL),
                               .sll_ifindex = if_nametoindex(argv[1]) };
    if (bind(fd, (struct sockaddr *)&sll, sizeof(sll))) { perror("bind"); return 1; }
    long idx = 0, sent = 0; double t0 = now();
    for (int l = 0; l < loops; l++) {
        for (long i = 0; i < n; i++) {
            struct tpacket2_hdr *h = (void *)(ring + (idx % NFRAMES) * FRAME);
            while (h->tp_status != TP_STATUS_AVAILABLE) {
                if (h->tp_status == TP_STATUS_WRONG_FORMAT) { fprintf(stderr, "wrong format\n"); return 1; }
                sendto(fd, NULL, 0, 0, NULL, 0);
            }
            unsigned char *d = (unsigned char *)h + TPACKET2_HDRLEN - sizeof(struct sockaddr_ll);
            int L = len[i] > FRAME - 64 ? FRAME - 64 : len[i];
            memcpy(d, buf + off[i], L);
            if (L >= 34 && d[12] == 8 && d[13] == 0) {            /* IPv4: new flows per loop */
                if (d[26] == 10) d[26] = 10 + l; else if (d[30] == 10) d[30] = 10 + l;
            }
            h->tp_len = L; h->tp_status = TP_STATUS_SEND_REQUEST; idx++; sent++;
            if ((sent & 63) == 0) {
                sendto(fd, NULL, 0, MSG_DONTWAIT, NULL, 0);
                if (pps > 0) { double due = t0 + sent / pps; while (now() < due) ; }
            }
        }
    }
    sendto(fd, NULL, 0, 0, NULL, 0);
    for (long k = 0; k < NFRAMES; k++) {                       /* wait for the ring to drain */
        struct tpacket2_hdr *h = (void *)(ring + k * FRAME);
        while (h->tp_status == TP_STATUS_SEND_REQUEST || h->tp_status == TP_STATUS_SENDING)
            sendto(fd, NULL, 0, 0, NULL, 0);
    }
    printf("sent %ld seconds %.6f\n", sent, now() - t0);
    return 0;
}
"""


def sh(argv, check=True, ns=None):
    if ns:
        argv = ["ip", "netns", "exec", ns] + list(argv)
    return subprocess.run(argv, check=check, capture_output=True, text=True)


def setup():
    teardown()
    for ns in (TX, RX):
        sh(["ip", "netns", "add", ns])
        sh(["ip", "link", "set", "lo", "up"], ns=ns)
    sh(["ip", "link", "add", TX_IF, "netns", TX, "type", "veth", "peer", "name", RX_IF,
        "netns", RX])
    for ns, ifn in ((TX, TX_IF), (RX, RX_IF)):
        sh(["ip", "link", "set", ifn, "up"], ns=ns)
        sh(["ethtool", "-K", ifn, "tso", "off", "gso", "off", "gro", "off", "tx", "off"],
           ns=ns, check=False)


def teardown():
    have = sh(["ip", "netns", "list"], check=False).stdout
    for ns in (TX, RX):
        if re.search(r"^%s\b" % ns, have, re.M):
            sh(["ip", "netns", "del", ns], check=False)


def rx_counters():
    out = {}
    for k in ("rx_packets", "rx_bytes", "rx_dropped"):
        out[k] = int(sh(["cat", "/sys/class/net/%s/statistics/%s" % (RX_IF, k)], ns=RX).stdout)
    return out


def build_txring(tmp):
    src = os.path.join(tmp, "txring.c")
    exe = os.path.join(tmp, "txring")
    with open(src, "w") as fh:
        fh.write(TXRING_C)
    subprocess.run(["gcc", "-O2", "-o", exe, src], check=True)
    return exe


def cpu_jiffies():
    """System-wide (softirq, total) jiffies from /proc/stat."""
    with open("/proc/stat") as fh:
        f = [int(x) for x in fh.readline().split()[1:]]
    return f[6], sum(f[:8])


def loadavg():
    with open("/proc/loadavg") as fh:
        return fh.read().split()[0]


# ---------------------------------------------------------------------------------------------
# generators
# ---------------------------------------------------------------------------------------------

def run_generator(kind, pcaps, txring, loops):
    """Send; return (frames accepted by the rx veth, seconds, frames/s, Gbit/s)."""
    before = rx_counters()
    t0 = time.monotonic()
    if kind.startswith("tcpreplay"):
        procs = [subprocess.Popen(["ip", "netns", "exec", TX, "tcpreplay", "-i", TX_IF,
                                   "--preload-pcap", "--topspeed", "--loop=%d" % loops,
                                   "--unique-ip", p], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for p in pcaps]
    else:
        procs = [subprocess.Popen(["ip", "netns", "exec", TX, txring, TX_IF, p, str(loops), "0"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for p in pcaps]
    secs = []
    for p in procs:
        out = p.communicate()[0]
        # the senders' own clocks: sending only, not the preload (tcpreplay: "Actual: N
        # packets (B bytes) sent in S seconds"; txring: "sent N seconds S")
        m = re.search(r"sent in ([\d.]+) seconds", out) or re.search(r"seconds ([\d.]+)", out)
        if m:
            secs.append(float(m.group(1)))
    wall = max(secs) if secs else time.monotonic() - t0
    after = rx_counters()
    n = after["rx_packets"] - before["rx_packets"]
    b = after["rx_bytes"] - before["rx_bytes"]
    return {"generator": kind, "processes": len(pcaps), "frames": n, "seconds": round(wall, 3),
            "fps": round(n / wall), "gbps": round(b * 8 / wall / 1e9, 3),
            "rx_dropped": after["rx_dropped"] - before["rx_dropped"]}


def cmd_generators(a):
    tmp = tempfile.mkdtemp(prefix="lr-")
    try:
        txring = build_txring(tmp)
        copies = [a.pcap]
        for i in range(1, a.processes):
            c = os.path.join(tmp, "copy%d.pcap" % i)
            shutil.copy(a.pcap, c)
            copies.append(c)
        setup()
        res = []
        print("load average before: %s" % loadavg(), flush=True)
        for kind, pcaps in (("tcpreplay", copies[:1]), ("tcpreplay", copies),
                            ("txring", copies[:1]), ("txring", copies)):
            r = run_generator(kind, pcaps, txring, a.loops)
            res.append(r)
            print("%-10s x%d  %9d frames in %6.2f s  %8d frames/s  %.2f Gbit/s  rx_dropped %d"
                  % (r["generator"], r["processes"], r["frames"], r["seconds"], r["fps"],
                     r["gbps"], r["rx_dropped"]), flush=True)
        print("pktgen: %s" % ("available" if os.path.exists("/proc/net/pktgen") else
                              "not available (/proc/net/pktgen missing: CONFIG_NET_PKTGEN)"))
        print(json.dumps({"pcap": a.pcap, "load": loadavg(), "results": res}))
    finally:
        teardown()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


# ---------------------------------------------------------------------------------------------
# the sensor worker
# ---------------------------------------------------------------------------------------------

def cmd_worker(a):
    from sensor.backends import open_capture
    from sensor.pipeline import Summarizer
    cap, fallback = open_capture(a.backend, a.interface, buffer_mb=a.buffer_mb,
                                 ebpf_options={"map_size": a.map_size})
    stats_fd = -1
    if cap.backend == "ebpf":
        from sensor.ebpf import libbpf
        stats_fd = libbpf.enable_run_stats()      # the program's run time, for this run only
        prog = libbpf.prog_id(cap.filter.prog_fd)
    s = Summarizer(cap.linktype, idle_timeout=30.0)
    finished = getattr(cap, "finished", None)
    stop = False

    def on_term(_s, _f):
        nonlocal stop
        stop = True
    signal.signal(signal.SIGTERM, on_term)
    outcomes: dict = {}

    def emit(done):
        for raw, _certs in done:
            o = raw["outcome"]
            outcomes[o] = outcomes.get(o, 0) + 1
            if finished is not None:
                finished(raw)
    print("ready %s %s" % (cap.backend, fallback or ""), flush=True)
    first = last = None
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t_end = time.monotonic() + a.max_seconds
    while not stop and time.monotonic() < t_end:
        batches = cap.poll(0.2)
        now = time.monotonic()
        for buf, meta in batches:
            emit(s.feed(buf, meta))
        if batches:
            first = first or now
            last = now
        elif last is not None and now - last > a.idle:
            break
    emit(s.flush())
    ru = resource.getrusage(resource.RUSAGE_SELF)
    st = cap.stats()
    if stats_fd >= 0:
        info = json.loads(subprocess.run(["bpftool", "-j", "prog", "show", "id", str(prog)],
                                         capture_output=True, text=True).stdout or "{}")
        st["bpf_run_cnt"] = info.get("run_cnt", 0)
        st["bpf_run_time_s"] = round(info.get("run_time_ns", 0) / 1e9, 3)
        os.close(stats_fd)
    st.update(backend=cap.backend, outcomes=outcomes, summaries=sum(outcomes.values()),
              user_s=round(ru.ru_utime - ru0.ru_utime, 3),
              sys_s=round(ru.ru_stime - ru0.ru_stime, 3),
              cpu_s=round(ru.ru_utime + ru.ru_stime - ru0.ru_utime - ru0.ru_stime, 3),
              maxrss_mb=round(ru.ru_maxrss / 1024, 1),
              busy_s=round((last or 0) - (first or 0), 3))
    cap.close()
    print(json.dumps(st), flush=True)
    return 0


# ---------------------------------------------------------------------------------------------
# sweep
# ---------------------------------------------------------------------------------------------

def corpus_facts(pcap):
    """Connections, outcome counts (summarize), frames, bulk frames (make_corpus meta)."""
    from sensor.pipeline import summarize_paths
    outcomes: dict = {}
    for j, _ in summarize_paths([pcap]):
        outcomes[j["outcome"]] = outcomes.get(j["outcome"], 0) + 1
    meta_path = pcap[:-5] + ".meta.json"
    meta = json.load(open(meta_path)) if os.path.exists(meta_path) else {}
    return {"connections": sum(outcomes.values()), "outcomes": outcomes,
            "frames": meta.get("packets"), "bulk_frames": meta.get("bulk_packets", 0)}


def one_run(a, backend, pps, txring, facts):
    pin_rx = ["taskset", "-c", "1"] if a.pin else []
    pin_tx = ["taskset", "-c", "0"] if a.pin else []
    argv = ["ip", "netns", "exec", RX] + pin_rx + [sys.executable, os.path.abspath(__file__),
                                                  "worker",
            "--backend", backend, "--interface", RX_IF, "--buffer-mb", str(a.buffer_mb),
            "--map-size", str(a.map_size)]
    w = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    line = w.stdout.readline().split()
    assert line[:2] == ["ready", backend], line
    time.sleep(0.5)
    before = rx_counters()
    j0 = cpu_jiffies()
    t0 = time.monotonic()
    g = sh(pin_tx + [txring, TX_IF, a.pcap, str(a.loops), str(pps)], ns=TX)
    wall = time.monotonic() - t0
    j1 = cpu_jiffies()
    after = rx_counters()
    st = json.loads(w.communicate(timeout=900)[0].strip().splitlines()[-1])
    m = re.search(r"sent (\d+) seconds ([\d.]+)", g.stdout)
    sent, secs = (int(m.group(1)), float(m.group(2))) if m else (0, wall)
    delivered = after["rx_packets"] - before["rx_packets"]
    dbytes = after["rx_bytes"] - before["rx_bytes"]
    expected = {k: v * a.loops for k, v in facts["outcomes"].items()}
    handshakes = facts["connections"] * a.loops
    bulk_gbit = (facts["bulk_frames"] or 0) * a.loops * 1514 * 8 / 1e9
    ok = st["outcomes"] == expected and st["pcap_drop"] == 0 and delivered >= sent
    r = {
        "backend": backend, "pps_requested": pps or "max", "sent": sent,
        "offered_fps": round(sent / secs) if secs else None,
        "offered_gbps": round(dbytes * 8 / secs / 1e9, 3) if secs else None,
        "delivered": delivered, "captured": st["packets"], "pcap_drop": st["pcap_drop"],
        "summaries": st["summaries"], "expected": handshakes, "zero_loss": ok,
        "cpu_s": st["cpu_s"], "user_s": st["user_s"], "sys_s": st["sys_s"],
        "softirq_s": round((j1[0] - j0[0]) / os.sysconf("SC_CLK_TCK"), 2),
        # the sensor's CPU: its process, plus (eBPF) the filter's own run time in softirq
        "sensor_cpu_s": round(st["cpu_s"] + st.get("bpf_run_time_s", 0), 3),
        "cpu_us_per_handshake": round((st["cpu_s"] + st.get("bpf_run_time_s", 0))
                                      / handshakes * 1e6, 1),
        "cpu_s_per_bulk_gbit": round((st["cpu_s"] + st.get("bpf_run_time_s", 0)) / bulk_gbit, 3)
        if bulk_gbit else None,
        "maxrss_mb": st["maxrss_mb"], "load": loadavg(),
    }
    if backend == "ebpf":
        r["kernel"] = {k[5:]: v for k, v in st.items() if k.startswith("ebpf_")}
        r["bpf_run_time_s"] = st.get("bpf_run_time_s")
        r["bpf_ns_per_frame"] = round(st["bpf_run_time_s"] * 1e9 / max(st["bpf_run_cnt"], 1))\
            if st.get("bpf_run_cnt") else None
        r["kernel_dropped_pct"] = round(100 * st["ebpf_dropped"] / max(st["ebpf_seen"], 1), 1)
    if not ok and st["outcomes"] != expected:
        r["outcomes"] = st["outcomes"]
        r["outcomes_expected"] = expected
    return r


def cmd_sweep(a):
    facts = corpus_facts(a.pcap)
    tmp = tempfile.mkdtemp(prefix="lr-")
    try:
        txring = build_txring(tmp)
        setup()
        res = []
        print("corpus %s: %d connections, %s frames (%s bulk); loops %d; load %s" % (
            a.pcap, facts["connections"], facts["frames"], facts["bulk_frames"], a.loops,
            loadavg()), flush=True)
        for pps in [int(x) for x in a.pps.split(",")]:
            for backend in a.backends.split(","):
                r = one_run(a, backend, pps, txring, facts)
                res.append(r)
                print("%-5s pps=%-7s offered %8s fps %6s Gbit/s  captured %9d drop %7d  "
                      "summaries %6d/%-6d  cpu %6.2fs u%.2f/s%.2f (%6.1f us/handshake%s)  "
                      "softirq %.2fs%s  rss %5.1f MB%s  %s"
                      % (backend, r["pps_requested"], r["offered_fps"], r["offered_gbps"],
                         r["captured"], r["pcap_drop"], r["summaries"], r["expected"],
                         r["cpu_s"], r["user_s"], r["sys_s"], r["cpu_us_per_handshake"],
                         ", %.2f s/Gbit bulk" % r["cpu_s_per_bulk_gbit"]
                         if r["cpu_s_per_bulk_gbit"] else "", r["softirq_s"],
                         "  bpf %.2fs (%s ns/frame)" % (r["bpf_run_time_s"], r["bpf_ns_per_frame"])
                         if backend == "ebpf" else "", r["maxrss_mb"],
                         "  kernel dropped %.1f %%" % r["kernel_dropped_pct"]
                         if backend == "ebpf" else "",
                         "ZERO-LOSS" if r["zero_loss"] else "LOSS"), flush=True)
        print(json.dumps({"pcap": a.pcap, "facts": facts, "loops": a.loops, "results": res}))
    finally:
        teardown()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generators")
    g.add_argument("--pcap", required=True)
    g.add_argument("--loops", type=int, default=3)
    g.add_argument("--processes", type=int, default=2)
    s = sub.add_parser("sweep")
    s.add_argument("--pcap", required=True)
    s.add_argument("--backends", default="pcap,ebpf")
    s.add_argument("--pps", default="100000,200000,0")
    s.add_argument("--loops", type=int, default=3)
    s.add_argument("--buffer-mb", type=int, default=32)
    s.add_argument("--map-size", type=int, default=131072)
    s.add_argument("--no-pin", dest="pin", action="store_false",
                   help="do not pin the sender (and the veth softirq) to CPU 0 and the "
                        "sensor to CPU 1")
    w = sub.add_parser("worker")
    w.add_argument("--backend", required=True)
    w.add_argument("--interface", required=True)
    w.add_argument("--buffer-mb", type=int, default=32)
    w.add_argument("--map-size", type=int, default=131072)
    w.add_argument("--idle", type=float, default=3.0)
    w.add_argument("--max-seconds", type=float, default=900)
    a = ap.parse_args()
    if a.cmd != "worker" and os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    return {"generators": cmd_generators, "worker": cmd_worker, "sweep": cmd_sweep}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
