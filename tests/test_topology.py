"""End to end over real namespaces, real TLS stacks and a real broker.

client -> router (northbound TLS, sensor "router-1" capturing live on the router's veth) ->
MP -> backend (southbound TLS, sensor "mp-1" capturing live on the MP's veth).  The analyzer
consumes both; kcat reads diagnoses, incidents and summaries back.

The sensors open their capture inside the router / MP namespace (``--netns``) and keep
their Kafka connection in the root namespace, where the test broker listens on loopback.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.poll import sensor_ready, wait_for

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "scenarios"))

try:
    from tests.kafka_broker import kcat, kcat_messages, module_broker
except ImportError:
    from kafka_broker import kcat, kcat_messages, module_broker

from proto.names import is_tls13
from proto.summary import decode_summary
from topology import netns as T

pytestmark = [pytest.mark.kafka, pytest.mark.netns, pytest.mark.slow]

REPO = HERE.parent
PKI = HERE / "data" / "scenarios" / "pki"
SECRET = "tlsdiag-SECRET-7f3a91c2e5"
API, BE = "api.example.test", "backend.example.test"


def _need_root():
    if os.geteuid() != 0:
        pytest.skip("needs root: creates network namespaces and captures on their interfaces")
    for tool in ("ip", "ethtool", "openssl", "curl", "kcat", "ss"):
        if shutil.which(tool) is None:
            pytest.skip("%s is not installed" % tool)


@pytest.fixture(scope="module")
def topo():
    _need_root()
    T.setup()
    procs: list[subprocess.Popen] = []
    try:
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(5)
        T.teardown()


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    yield from module_broker(tmp_path_factory)


def _server(procs, ns, argv, log: Path):
    p = subprocess.Popen(T.nsx(ns, argv), stdin=subprocess.PIPE, stdout=open(log, "wb"),
                         stderr=subprocess.STDOUT)
    procs.append(p)
    return p


def _run(ns, argv, stdin=b"", timeout=15):
    return subprocess.run(T.nsx(ns, argv), input=stdin, capture_output=True, timeout=timeout)




def test_topology_end_to_end(topo, broker, tmp_path):
    procs = topo
    b = broker.bootstrap
    py = sys.executable
    common = ["--kafka", b, "--idle-timeout", "5", "--stats-interval", "5", "-v"]
    router = subprocess.Popen(
        [py, "-m", "tlsdiag", "sensor", "--netns", T.ROUTER_NS, "--interface", T.ROUTER_IF,
         "--role", "router", "--sensor-id", "router-1", "--port", "8443", "--port", "8444",
         "--spool-dir", str(tmp_path / "spool-r")] + common,
        stdout=open(tmp_path / "router.log", "wb"), stderr=subprocess.STDOUT, cwd=REPO)
    mp = subprocess.Popen(
        [py, "-m", "tlsdiag", "sensor", "--netns", T.MP_NS, "--interface", T.MP_IF,
         "--role", "message-processor", "--sensor-id", "mp-1", "--port", "9443",
         "--spool-dir", str(tmp_path / "spool-m")] + common,
        stdout=open(tmp_path / "mp.log", "wb"), stderr=subprocess.STDOUT, cwd=REPO)
    procs += [router, mp]
    analyzer = subprocess.Popen(
        [py, "-m", "tlsdiag", "analyzer", "--kafka", b, "--group", "topo",
         "--truststore", str(PKI / "root.pem"), "--incident-update-s", "1",
         "--correlation-window-s", "300", "--stats-interval", "5", "-v"],
        stdout=open(tmp_path / "analyzer.log", "wb"), stderr=subprocess.STDOUT, cwd=REPO)
    procs.append(analyzer)
    for name in ("router", "mp"):
        wait_for(lambda: sensor_ready((tmp_path / ("%s.log" % name)).read_text()), 60,
              "the %s sensor to capture" % name)

    cert = ["-cert", str(PKI / "server-good.pem"), "-key", str(PKI / "server-good.key"),
            "-cert_chain", str(PKI / "intermediate.pem")]
    _server(procs, T.ROUTER_NS, ["openssl", "s_server", "-accept", "%s:8443" % T.ROUTER,
                                 "-www"] + cert, tmp_path / "srv-ok.log")
    _server(procs, T.ROUTER_NS, ["openssl", "s_server", "-accept", "%s:8444" % T.ROUTER,
                                 "-www", "-no_tls1", "-no_tls1_1"] + cert, tmp_path / "srv-v.log")
    _server(procs, T.BACKEND_NS, ["openssl", "s_server", "-accept", "%s:9443" % T.BACKEND,
                                  "-www", "-tls1_2", "-cipher", "ECDHE-RSA-CHACHA20-POLY1305"]
            + cert, tmp_path / "srv-c.log")
    T.wait_listen(T.ROUTER_NS, 8443)
    T.wait_listen(T.ROUTER_NS, 8444)
    T.wait_listen(T.BACKEND_NS, 9443)

    curl_ok = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
               "--cacert", str(PKI / "root.pem"), "--resolve", "%s:8443:%s" % (API, T.ROUTER),
               "-H", "Authorization: Bearer " + SECRET, "https://%s:8443/?q=%s" % (API, SECRET)]
    # northbound successes (the secret travels as application data), before and after failures
    for _ in range(3):
        r = _run(T.CLIENT_NS, curl_ok)
        assert r.stdout == b"200", r.stderr
    # northbound protocol mismatch: a TLS 1.0-only client against a TLS 1.2+ router
    for _ in range(2):
        r = _run(T.CLIENT_NS, ["openssl", "s_client", "-connect", "%s:8444" % T.ROUTER,
                               "-servername", API, "-tls1", "-cipher", "DEFAULT@SECLEVEL=0"],
                 stdin=b"")
        assert b"Cipher is (NONE)" in r.stdout or r.returncode != 0
    # southbound cipher mismatch: the MP offers AES-GCM only, the backend takes CHACHA20 only
    for _ in range(2):
        r = _run(T.MP_NS, ["openssl", "s_client", "-connect", "%s:9443" % T.BACKEND,
                           "-servername", BE, "-tls1_2", "-cipher",
                           "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384"], stdin=b"")
        assert r.returncode != 0
    # the secret in clear text on a captured port (not TLS: must not be published either)
    _run(T.CLIENT_NS, [sys.executable, "-c",
                       "import socket;s=socket.create_connection(('%s',8443),timeout=5);"
                       "s.sendall(b'GET /%s HTTP/1.0\\r\\n\\r\\n');s.recv(100)" % (T.ROUTER, SECRET)])
    for _ in range(2):
        assert _run(T.CLIENT_NS, curl_ok).stdout == b"200"

    def diagnoses():
        out = {}
        for v in kcat(b, "tls.diagnoses", fmt="%s\n"):
            d = json.loads(v)
            out.setdefault((d["cause"], d["direction"], d["severity"]), []).append(d)
        return out

    # both connections of each kind: the second one's summary can come a batch later
    got = wait_for(lambda: (lambda d: d if len(d.get(("protocol_mismatch", "northbound", "failure"), ())) >= 2
                         and len(d.get(("cipher_mismatch", "southbound", "failure"), ())) >= 2
                         else None)(diagnoses()),
                90, "2 protocol_mismatch northbound and 2 cipher_mismatch southbound diagnoses")
    pm = got[("protocol_mismatch", "northbound", "failure")]
    cm = got[("cipher_mismatch", "southbound", "failure")]
    assert len(pm) == 2 and len(cm) == 2, {k: len(v) for k, v in got.items()}
    assert all(d["sensor"] == "router-1" and d["connection"]["server"] == "%s:8444" % T.ROUTER
               for d in pm)
    assert all(d["sensor"] == "mp-1" and d["connection"]["server"] == "%s:9443" % T.BACKEND
               for d in cm)
    assert all(d["rejected_by"] == "server" for d in cm)
    # no failure diagnosed for the successful connections (nor for the clear-text one)
    assert not [d for v in got.values() for d in v
                if d["severity"] == "failure" and d["connection"]["server"] == "%s:8443" % T.ROUTER]

    # the successes are on tls.handshakes, northbound, from the router sensor
    summaries = [decode_summary(v) for _, v in kcat_messages(b, "tls.handshakes")]
    ok = [s for s in summaries if s["established"] and s["server"] == "%s:8443" % T.ROUTER]
    assert len(ok) >= 5, [(s["server"], s["outcome"]) for s in summaries]
    assert all(s["direction"] == "northbound" and s["sensor"] == "router-1" for s in ok)
    assert all(s["server_name"] == API for s in ok)

    # incidents: one per (direction, server, cause); the southbound one carries the
    # client-facing impact (northbound handshakes to the router succeed in the same window)
    def cross_hop():
        evs = [json.loads(v) for v in kcat(b, "tls.incidents", fmt="%s\n")]
        hit = [e for e in evs if e["direction"] == "southbound" and e["cause"] == "cipher_mismatch"
               and isinstance(e.get("impact"), dict) and e["impact"].get("client_facing")]
        return (evs, hit) if hit else None
    evs, hit = wait_for(cross_hop, 60, "a cross-hop incident")
    imp = hit[-1]["impact"]
    assert imp["http_status"] == 503 and "%s:8443" % T.ROUTER in imp["routers"]
    assert imp["backend"] == "%s:9443" % T.BACKEND and "router-1" in imp["router_sensors"]
    assert "503" in imp["text"] and "backend" in imp["text"]
    assert hit[-1]["sensors"] == ["mp-1"] and hit[-1]["count"] == 2
    north = [e for e in evs if e["direction"] == "northbound" and e["cause"] == "protocol_mismatch"]
    assert north and north[-1]["server"] == "%s:8444" % T.ROUTER

    # the tail view shows both open incidents
    r = subprocess.run([py, "-m", "tlsdiag", "tail", "--kafka", b, "--once"], capture_output=True,
                       text=True, timeout=60, cwd=REPO)
    assert r.returncode == 1, r.stderr
    assert "cipher_mismatch" in r.stdout and "protocol_mismatch" in r.stdout
    assert "IMPACT" in r.stdout

    # graceful shutdown: SIGTERM flushes and exits 0
    for p in (router, mp, analyzer):
        p.send_signal(signal.SIGTERM)
    for p, name in ((router, "router"), (mp, "mp"), (analyzer, "analyzer")):
        assert p.wait(60) == 0, (tmp_path / ("%s.log" % name)).read_text()[-3000:]
    assert "pcap_drop=0" in (tmp_path / "router.log").read_text()

    # the secret never reaches Kafka, in any topic
    meta = subprocess.run(["kcat", "-L", "-b", b, "-J"], capture_output=True, timeout=60)
    topics = [t["topic"] for t in json.loads(meta.stdout)["topics"]]
    assert "tls.handshakes" in topics and "tls.diagnoses" in topics
    dump = b""
    for t in topics:
        dump += kcat(b, t, fmt="%k %s %h\n", binary=True)
    assert len(dump) > 10_000
    assert SECRET.encode() not in dump


# ---------------------------------------------------------------------------------------------
# every cause: the scenario generator's servers and clients (tests/scenarios/generate.py), live
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def scenario_topo(tmp_path_factory):
    """The scenario generator's own namespaces (tdPID-client/-router/-mp/-backend, 10.10.x)
    and its Java client, compiled into a temporary directory."""
    _need_root()
    for tool in ("java", "javac", "keytool"):
        if shutil.which(tool) is None:
            pytest.skip("%s is not installed (the scenario clients need it)" % tool)
    import generate as G
    G.set_ns_prefix("td%d" % (os.getpid() % 100000))     # this test run's own namespaces
    tmp = tmp_path_factory.mktemp("scen")
    env = G.Env(str(PKI), str(tmp))
    G.prepare(env)
    G.setup()
    try:
        yield G, env
    finally:
        G.teardown()


def _run_scenario_live(G, env, sc, logdir: Path) -> None:
    server = subprocess.Popen(T.nsx(sc.server_ns, sc.server),
                              stdin=subprocess.DEVNULL if sc.extra.get("stdin_eof") else subprocess.PIPE,
                              stdout=open(logdir / (sc.name + ".server.log"), "wb"),
                              stderr=subprocess.STDOUT, cwd=env.tmp)
    try:
        G.wait_listen(sc.server_ns, sc.port)
        for run in sc.runs:
            try:
                subprocess.run(T.nsx(sc.client_ns, run.argv), input=run.stdin, capture_output=True,
                               timeout=30, cwd=env.tmp)
            except subprocess.TimeoutExpired:
                pass
            time.sleep(0.4)
    finally:
        G.stop(server)


#: Scenario runs (``scenario:stack``) whose failure the live sensor is known not to show: a TLS 1.3 summary
#: closed before the server reacted to the client's Finished (see tests/test_diagnose_scenarios.py
#: KNOWN_GAPS).  Strict both ways: an unlisted run missed that way fails, and so does a listed run that is
#: now diagnosed.  Empty since the sensor waits for that reaction (e888050, 8 live runs in a row in a5ca623).
KNOWN_LIVE_GAPS: frozenset[str] = frozenset()


def test_topology_every_cause(scenario_topo, broker, tmp_path):
    """Every scenario of the generator, replayed live through the sensors and the analyzer: each
    connection's failure diagnosis (cause, direction, rejected_by) read back from Kafka matches
    the scenario's expected cause, and no successful connection gets a failure."""
    G, env = scenario_topo
    b = broker.bootstrap
    py = sys.executable
    topics = {t: "ec.%s" % t for t in ("handshakes", "certs", "diagnoses", "incidents",
                                        "profiles", "dlq")}
    sensors = []
    for ns, ifn, role, sid in ((G.ns("router"), "r-c", "router", "router-1"),
                               (G.ns("mp"), "m-b", "message-processor", "mp-1")):
        sensors.append(subprocess.Popen(
            [py, "-m", "tlsdiag", "sensor", "--netns", ns, "--interface", ifn, "--role", role,
             "--sensor-id", sid, "--kafka", b, "--idle-timeout", "5",
             "--topic-handshakes", topics["handshakes"], "--topic-certs", topics["certs"],
             "--spool-dir", str(tmp_path / ("spool-" + sid)), "-v"],
            stdout=open(tmp_path / (sid + ".log"), "wb"), stderr=subprocess.STDOUT, cwd=REPO))
    cmd = [py, "-m", "tlsdiag", "analyzer", "--kafka", b, "--group", "every-cause",
           "--truststore", str(PKI / "root.pem"), "--no-warnings"]
    for t, name in topics.items():
        cmd += ["--topic-" + t, name]
    analyzer = subprocess.Popen(cmd, stdout=open(tmp_path / "analyzer.log", "wb"),
                                stderr=subprocess.STDOUT, cwd=REPO)
    try:
        for sid in ("router-1", "mp-1"):
            wait_for(lambda: sensor_ready((tmp_path / (sid + ".log")).read_text()), 60,
                  "sensor %s" % sid)
        scs = G.scenarios(env)
        n_runs = sum(len(sc.runs) for sc in scs)
        for sc in scs:
            _run_scenario_live(G, env, sc, tmp_path)
        time.sleep(7)        # idle timeout for connections whose close was not seen
        for p in sensors:
            p.send_signal(signal.SIGTERM)
        for p in sensors:
            assert p.wait(60) == 0

        def summaries():
            return [decode_summary(v) for _, v in kcat_messages(b, topics["handshakes"])]
        wait_for(lambda: len(summaries()) >= n_runs, 60, "%d summaries" % n_runs)

        def diags():
            return [json.loads(v) for v in kcat(b, topics["diagnoses"], fmt="%s\n")]
        prev = [-1]

        def settled():
            n = len(diags())
            ok = n == prev[0] and n > 0
            prev[0] = n
            return ok
        wait_for(settled, 120, "diagnoses to settle")
    finally:
        for p in sensors:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        analyzer.send_signal(signal.SIGTERM)
        analyzer.wait(60)
    by_id = {}
    all_diags = diags()
    for d in all_diags:
        by_id.setdefault(d["id"], []).append(d)
    sums = summaries()
    # kept beside the logs for a post-mortem of a mismatch
    (tmp_path / "summaries.jsonl").write_text("".join(json.dumps(s, default=str) + "\n" for s in sums))
    (tmp_path / "diagnoses.jsonl").write_text("".join(json.dumps(d) + "\n" for d in all_diags))
    wrong, gaps, checked = [], set(), set()
    for sc in scs:
        endpoint = "%s:%d" % (sc.server_ip, sc.port)
        conns = sorted((s for s in sums if s["server"] == endpoint), key=lambda s: s["start"])
        if len(conns) != len(sc.runs):
            wrong.append("%s: %d client runs, %d summaries" % (sc.name, len(sc.runs), len(conns)))
            continue
        for run, s in zip(sc.runs, conns):
            fails = [d for d in by_id.get(s["id"], []) if d["severity"] == "failure"]
            got = [(d["cause"], d["direction"], d["rejected_by"]) for d in fails]
            want = [(run.cause, sc.direction, run.rejected_by)] if run.cause else []
            if run.cause:
                checked.add((run.cause, sc.direction))
            assert s["sensor"] == ("router-1" if sc.direction == "northbound" else "mp-1")
            if got != want:
                line = ("%s (%s): want %s, got %s [summary %s: outcome %s, established %s, history %s, "
                        "close %s, encrypted_alerts %s, client_encrypted %s, server_encrypted %s; all "
                        "summaries and diagnoses: %s]" % (
                            sc.name, run.stack, want, got, s["id"], s["outcome"], s["established"],
                            s["history"], s["close"], s["encrypted_alerts"], s["client_encrypted"],
                            s["server_encrypted"], tmp_path))
                established13 = (s["established"] and is_tls13(s["version"])
                                 and not s["close"]["fin"] and not s["close"]["rst"])
                run_id = "%s:%s" % (sc.name, run.stack)
                if run_id in KNOWN_LIVE_GAPS and run.cause and not fails and established13:
                    gaps.add(run_id)
                else:
                    wrong.append(line)
    assert not wrong, "\n".join(wrong)
    assert not KNOWN_LIVE_GAPS - gaps, "known gaps now diagnosed (remove them from KNOWN_LIVE_GAPS): %s" % (
        sorted(KNOWN_LIVE_GAPS - gaps))
    # every cause of the scenario table was produced live, in its direction
    assert len(checked) >= 20, sorted(checked)


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sensor_reassembly_memcap_live(broker, tmp_path):
    """tlsdiag sensor on lo with a 1 MiB reassembly memcap: two clients each send 700 KB of a
    ClientHello that announces 1 MiB - 1 (in full 16 KiB records) to a server that reads and
    never answers.  The sensor holds what they sent until the memcap, then gives up the
    connection holding the most (the first, once the second passed 350 KB): what it holds
    does not grow with the attacker's bytes.  On Kafka the first's summary says so (a client
    gap, the weird reassembly_memcap), the second's does not; the metrics count one, and
    nothing is held at the end.  (With the default snap length: lo's offload-sized frames,
    64 KiB of IP, are captured whole.)"""
    _need_root()
    import socket
    import threading
    import urllib.request
    b = broker.bootstrap
    port, mport = _free_port(), _free_port()
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", port))
    lsock.listen(2)

    def drain():
        conn, _ = lsock.accept()
        with conn:
            while conn.recv(1 << 16):
                pass
    readers = [threading.Thread(target=drain, daemon=True) for _ in range(2)]
    for r in readers:
        r.start()
    log = tmp_path / "sensor.log"
    sensor = subprocess.Popen(
        [sys.executable, "-m", "tlsdiag", "sensor", "--interface", "lo", "--kafka", b,
         "--port", str(port), "--sensor-id", "lo-memcap", "--metrics-port", str(mport),
         "--reassembly-memcap-mb", "1", "--topic-handshakes", "memcap.handshakes",
         "--topic-certs", "memcap.certs", "--spool-dir", str(tmp_path / "spool"), "-v"],
        stdout=open(log, "wb"), stderr=subprocess.STDOUT, cwd=REPO)
    hello = b"\x01" + ((1 << 20) - 1).to_bytes(3, "big") + b"\x03\x03" + bytes(700_000)
    records = b"".join(b"\x16\x03\x01" + len(hello[i:i + 16384]).to_bytes(2, "big")
                       + hello[i:i + 16384] for i in range(0, len(hello), 16384))

    def metrics() -> str:
        return urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport,
                                      timeout=10).read().decode()
    try:
        wait_for(lambda: sensor_ready(log.read_text()), 60, "the sensor")
        first = socket.create_connection(("127.0.0.1", port))
        second = socket.create_connection(("127.0.0.1", port))
        ports = first.getsockname()[1], second.getsockname()[1]
        with first, second:
            first.sendall(records)
            wait_for(lambda: "tlsdiag_sensor_reassembly_bytes 7" in metrics(), 30,
                     "the first's 700 KB held")
            second.sendall(records)
            wait_for(lambda: "tlsdiag_sensor_reassembly_memcap_total 1" in metrics(), 30,
                     "the memcap counted")
        for r in readers:
            r.join(10)
        wait_for(lambda: len(kcat_messages(b, "memcap.handshakes")) == 2, 30, "two summaries")
        got = {(s := decode_summary(v))["client"]: s
               for _, v in kcat_messages(b, "memcap.handshakes")}
        cut, kept = (got["127.0.0.1:%d" % p] for p in ports)
        assert cut["gaps"] == [0] and "reassembly_memcap" in cut["weirds"], cut   # 0: client
        assert kept["gaps"] == [] and "reassembly_memcap" not in kept["weirds"], kept
        assert cut["history"] == kept["history"] == "C"
        # lo's frames of 64 KiB of IP were captured whole (the default snap length)
        assert cut["truncated"] is kept["truncated"] is False
        assert "tlsdiag_sensor_reassembly_memcap_total 1\n" in metrics()
        wait_for(lambda: "tlsdiag_sensor_reassembly_bytes 0\n" in metrics(), 30, "none held")
        assert 'tlsdiag_sensor_internal_errors_total{where="flow_table"} 0' in metrics()
        sensor.send_signal(signal.SIGTERM)
        assert sensor.wait(30) == 0, log.read_text()[-2000:]
    finally:
        if sensor.poll() is None:
            sensor.kill()
        lsock.close()


def test_sensor_sighup_reload_and_metrics(broker, tmp_path):
    """tlsdiag sensor on lo: SIGHUP re-reads the config file (the role, so the direction stamped
    on summaries changes), the Prometheus endpoint counts it, SIGTERM exits 0."""
    _need_root()
    import socket
    import urllib.request
    b = broker.bootstrap
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        mport = s.getsockname()[1]
    conf = tmp_path / "sensor.toml"
    conf.write_text('[sensor]\nrole = "router"\nports = [%d]\nstats_interval = 2\n' % port)
    cert = ["-cert", str(PKI / "server-good.pem"), "-key", str(PKI / "server-good.key")]
    srv = subprocess.Popen(["openssl", "s_server", "-accept", "127.0.0.1:%d" % port, "-www"]
                           + cert, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    log = tmp_path / "sensor.log"
    sensor = subprocess.Popen(
        [sys.executable, "-m", "tlsdiag", "sensor", "--interface", "lo", "--kafka", b,
         "--config", str(conf), "--sensor-id", "lo-1", "--metrics-port", str(mport),
         "--topic-handshakes", "hup.handshakes", "--topic-certs", "hup.certs",
         "--spool-dir", str(tmp_path / "spool"), "-v"],
        stdout=open(log, "wb"), stderr=subprocess.STDOUT, cwd=REPO)

    def connect():
        r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                            "-servername", API], input=b"", capture_output=True, timeout=15)
        assert b"Verify return code" in r.stdout

    def directions():
        return [decode_summary(v)["direction"] for _, v in kcat_messages(b, "hup.handshakes")]
    try:
        wait_for(lambda: sensor_ready(log.read_text()), 60, "the sensor")
        connect()
        wait_for(lambda: directions() == ["northbound"], 30, "a northbound summary")
        conf.write_text('[sensor]\nrole = "message-processor"\nports = [%d]\n' % port)
        sensor.send_signal(signal.SIGHUP)
        wait_for(lambda: "SIGHUP: config reloaded" in log.read_text(), 30, "the reload")
        connect()
        wait_for(lambda: directions() == ["northbound", "southbound"], 30, "a southbound summary")
        text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport, timeout=10).read()
        text = text.decode()
        assert 'tlsdiag_sensor_summaries_total{direction="northbound"} 1' in text
        assert 'tlsdiag_sensor_summaries_total{direction="southbound"} 1' in text
        assert "tlsdiag_sensor_pcap_dropped_total 0" in text
        assert "tlsdiag_sensor_kafka_online 1" in text
        sensor.send_signal(signal.SIGTERM)
        assert sensor.wait(30) == 0, log.read_text()[-2000:]
        assert "stats: packets=" in log.read_text()
    finally:
        if sensor.poll() is None:
            sensor.kill()
        srv.kill()
        srv.wait(5)
