"""What endpoint hints cost (issue 13): the hooked processes and the sensor.

    sudo python3 bench/hints/overhead.py micro        # per probe hit, per TCP receive
    sudo python3 bench/hints/overhead.py handshakes   # CPU per handshake of client and server, probes on/off
    sudo python3 bench/hints/overhead.py sensor       # the sensor's own CPU per handshake, hints on/off
    sudo python3 bench/hints/overhead.py all --rounds 5

* ``micro``: the hooked functions called in a tight loop through ctypes, probes attached or not: the
  difference is the cost of one uprobe hit (``X509_STORE_CTX_get_error`` that reports nothing, as on every
  successful verification; ``ERR_set_error`` of another library, filtered in the kernel; of lib SSL, which
  emits an event), and of the tracepoint per TCP receive (every process on the host pays that one).
* ``handshakes``: N TLS 1.3 handshakes by one Python ``ssl`` client process against ``openssl s_server``
  in namespace ``hintbench`` -- successful ones (the client verifies the server, the server a client
  certificate) and failing ones (expired server certificate) -- rounds alternating probes off/on; CPU
  (user+sys) of the client (its own rusage) and of the server (/proc/PID/stat) per handshake.
* ``sensor``: the capture loop (``sensor.loop.Sensor``, libpcap on the namespace's lo, the joiner when
  on) in a child process while the client makes N failing handshakes: its CPU per handshake, hints off/on.

The machine is shared: each figure is the median of the rounds, with min..max; the load average is
printed with them.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sensor.ebpf.hints import HintProbes  # noqa: E402
from tests.scenarios import hints as HS  # noqa: E402

NS = "hintbench"
TICK = os.sysconf("SC_CLK_TCK")


def load() -> str:
    return "load %.1f" % os.getloadavg()[0]


def med(xs) -> str:
    return "%.3g (%.3g..%.3g)" % (statistics.median(xs), min(xs), max(xs))


# -- micro ---------------------------------------------------------------------------------------

def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_THREAD)
    return r.ru_utime + r.ru_stime


def micro(rounds: int, n: int = 200_000) -> dict:
    lib = ctypes.CDLL("libcrypto.so.3")
    lib.X509_STORE_CTX_new.restype = ctypes.c_void_p
    lib.X509_STORE_CTX_get_error.argtypes = [ctypes.c_void_p]
    lib.ERR_set_error.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p]
    ctx = lib.X509_STORE_CTX_new()
    get_error, set_error, clear = lib.X509_STORE_CTX_get_error, lib.ERR_set_error, lib.ERR_clear_error

    def loop_get():
        t = _cpu()
        for _ in range(n):
            get_error(ctx)
        return (_cpu() - t) / n

    def loop_err(libno):
        t = _cpu()
        for i in range(n // 10):
            set_error(libno, 65, None)
            if i % 256 == 0:
                clear()
        clear()
        return (_cpu() - t) / (n // 10)

    def loop_recv():
        a, b = socket.socket(), socket.socket()
        a.bind(("127.0.0.1", 0))
        a.listen(1)
        b.connect(a.getsockname())
        c, _ = a.accept()
        stop = threading.Event()

        def feed():
            chunk = b"x" * 512
            while not stop.is_set():
                try:
                    b.sendall(chunk * 64)
                except OSError:
                    return
        th = threading.Thread(target=feed, daemon=True)
        th.start()
        buf = bytearray(512)
        t = _cpu()
        for _ in range(n):
            c.recv_into(buf)
        per = (_cpu() - t) / n
        stop.set()
        for s in (c, b, a):
            s.close()
        return per

    res: dict = {k: {"off": [], "on": []} for k in ("get_error", "err_other_lib", "err_ssl", "tcp_recv")}
    for _ in range(rounds):
        for state in ("off", "on"):
            probes = HintProbes() if state == "on" else None
            try:
                res["get_error"][state].append(loop_get())
                res["err_other_lib"][state].append(loop_err(6))
                res["err_ssl"][state].append(loop_err(20))
                if probes is not None:
                    probes.poll()
                res["tcp_recv"][state].append(loop_recv())
            finally:
                if probes is not None:
                    probes.close()
    out = {}
    for k, v in res.items():
        d = [on - off for on, off in zip(v["on"], v["off"])]
        out[k] = {"off_ns": statistics.median(v["off"]) * 1e9, "on_ns": statistics.median(v["on"]) * 1e9,
                  "added_ns": statistics.median(d) * 1e9, "added_range_ns": (min(d) * 1e9, max(d) * 1e9)}
        print("%-14s off %7.0f ns  on %7.0f ns  added %6.0f ns per call (%.0f..%.0f)  [%s]" % (
            k, out[k]["off_ns"], out[k]["on_ns"], out[k]["added_ns"], *out[k]["added_range_ns"], load()))
    return out


# -- handshakes ----------------------------------------------------------------------------------

CLIENT = r'''
import json, resource, socket, ssl, sys, time
host, port, n, cafile, cert, key, sni = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7]
ctx = ssl.create_default_context(cafile=cafile)
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
if cert != "-":
    ctx.load_cert_chain(cert, key)
ok = failed = 0
r0 = resource.getrusage(resource.RUSAGE_SELF); t0 = time.monotonic()
for i in range(n):
    try:
        with ctx.wrap_socket(socket.create_connection((host, port)), server_hostname=sni) as t:
            t.sendall(b"GET / HTTP/1.0\r\n\r\n"); t.recv(64)
        ok += 1
    except (OSError, ssl.SSLError):
        failed += 1
r1 = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"ok": ok, "failed": failed, "cpu": (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime),
                  "wall": time.monotonic() - t0}))
'''


def _proc_cpu(pid: int) -> float:
    f = Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK


def _lab(pki: str, servers):
    HS.setup_netns(NS)
    return HS.start_servers(NS, pki, servers)


def handshakes(rounds: int, n: int, pki: str) -> dict:
    cases = {
        # (server, client cert, what) -- every verification of the probed library runs through the hooks
        "success, mTLS": (HS.Server("bench-mtls", 8701, HS.NORTH_SERVER, "s_server", "server-good", "intermediate",
                                    client_ca=True), "client-good"),
        "failure, expired server certificate": (HS.Server("bench-expired", 8702, HS.BACKEND, "s_server",
                                                          "server-expired", "intermediate"), None),
    }
    servers = [s for s, _ in cases.values()]
    procs = _lab(pki, servers)
    script = Path(pki, "bench_client.py")
    script.write_text(CLIENT)
    out: dict = {}
    try:
        for name, (srv, cert) in cases.items():
            spid = procs[servers.index(srv)].pid
            res = {"off": [], "on": []}
            for _ in range(rounds):
                for state in ("off", "on"):
                    probes = HintProbes() if state == "on" else None
                    try:
                        s0 = _proc_cpu(spid)
                        chain = HS._client_pem(pki, HS.Scenario("x", srv.name, "python", cert, "intermediate",
                                                                "", "")) if cert else "-"
                        r = subprocess.run(HS.ns_cmd(NS, [sys.executable, str(script), srv.addr, str(srv.port), str(n),
                                                          os.path.join(pki, "root.pem"), chain,
                                                          os.path.join(pki, (cert or "x") + ".key"), HS.NAME]),
                                           capture_output=True, text=True, check=True)
                        c = json.loads(r.stdout)
                        s1 = _proc_cpu(spid)
                        if probes is not None:
                            evs = len(probes.poll())
                            k = probes.kernel_counters()
                        else:
                            evs, k = 0, {}
                    finally:
                        if probes is not None:
                            probes.close()
                    res[state].append({"client_us": c["cpu"] / n * 1e6, "server_us": (s1 - s0) / n * 1e6,
                                       "ok": c["ok"], "failed": c["failed"], "events": evs,
                                       "verify_calls": k.get("verify_calls", 0), "err_calls": k.get("err_calls", 0)})
            out[name] = res
            for side in ("client_us", "server_us"):
                off = [x[side] for x in res["off"]]
                on = [x[side] for x in res["on"]]
                d = [b - a for a, b in zip(off, on)]
                print("%-38s %-7s CPU per handshake: off %s us, on %s us, on-off %s us  [%s]" % (
                    name, side[:-3], med(off), med(on), med(d), load()))
            last = res["on"][-1]
            print("%-38s per handshake with probes: %.2f events, %.2f verify-hook hits, %.2f lib-SSL errors "
                  "(%d ok, %d failed)" % (name, last["events"] / n, last["verify_calls"] / n, last["err_calls"] / n,
                                          last["ok"], last["failed"]))
    finally:
        HS.stop(procs)
        HS.delete_netns(NS)
    return out


# -- the sensor ----------------------------------------------------------------------------------

SENSOR = r'''
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from sensor.backends import open_capture
from sensor.loop import Sensor, SensorConfig
from sensor.hints import HintJoiner
from sensor.ebpf.hints import HintProbes
from proto.render import summary_to_json
from proto.summary import encode_summary
ns, port, hints, seconds = sys.argv[2], int(sys.argv[3]), sys.argv[4] == "on", float(sys.argv[5])
cap, _ = open_capture("pcap", "lo", ports=[port], netns=ns)
n = [0, 0]
def emit(raw, certs):
    n[0] += 1; n[1] += "endpoint_hints" in raw
    encode_summary(raw); summary_to_json(raw, s.summ.certs)
s = Sensor(SensorConfig(table={"idle_timeout": 2}), cap, emit, hints=HintJoiner(HintProbes()) if hints else None)
print("ready", flush=True)
r0 = resource.getrusage(resource.RUSAGE_SELF)
end = time.monotonic() + seconds
while time.monotonic() < end:
    s.step(0.2)
s.finish()
r1 = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"summaries": n[0], "with_hints": n[1], "cpu": (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)}))
'''


def sensor_cost(rounds: int, n: int, pki: str) -> dict:
    srv = HS.Server("bench-expired", 8703, HS.BACKEND, "s_server", "server-expired", "intermediate")
    procs = _lab(pki, [srv])
    client = Path(pki, "bench_client.py")
    client.write_text(CLIENT)
    worker = Path(pki, "bench_sensor.py")
    worker.write_text(SENSOR)
    res: dict = {"off": [], "on": []}
    try:
        for _ in range(rounds):
            for state in ("off", "on"):
                seconds = 4.0 + n * 0.012
                p = subprocess.Popen([sys.executable, str(worker), str(ROOT), NS, str(srv.port), state, str(seconds)],
                                     stdout=subprocess.PIPE, text=True)
                assert p.stdout.readline().strip() == "ready"
                subprocess.run(HS.ns_cmd(NS, [sys.executable, str(client), srv.addr, str(srv.port), str(n),
                                              os.path.join(pki, "root.pem"), "-", "-", HS.NAME]),
                               capture_output=True, check=True)
                out, _ = p.communicate(timeout=seconds + 60)
                r = json.loads(out.strip().splitlines()[-1])
                r["per_handshake_us"] = r["cpu"] / max(r["summaries"], 1) * 1e6
                res[state].append(r)
    finally:
        HS.stop(procs)
        HS.delete_netns(NS)
    off = [r["per_handshake_us"] for r in res["off"]]
    on = [r["per_handshake_us"] for r in res["on"]]
    print("sensor CPU per (failing) handshake: hints off %s us, on %s us (summaries %s, with hints %s)  [%s]" % (
        med(off), med(on), [r["summaries"] for r in res["on"]], [r["with_hints"] for r in res["on"]], load()))
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=("micro", "handshakes", "sensor", "all"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("-n", type=int, default=300, help="handshakes per round")
    ap.add_argument("--pki", default="/tmp/hintbench-pki")
    ap.add_argument("--json", help="write the figures here")
    a = ap.parse_args(argv)
    out = {"load_before": os.getloadavg()}
    pki = None
    if a.what in ("handshakes", "sensor", "all"):
        pki = HS.build_pki(a.pki)
    if a.what in ("micro", "all"):
        out["micro"] = micro(a.rounds)
    if a.what in ("handshakes", "all"):
        out["handshakes"] = handshakes(a.rounds, a.n, pki)
    if a.what in ("sensor", "all"):
        out["sensor"] = sensor_cost(a.rounds, a.n, pki)
    out["load_after"] = os.getloadavg()
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
