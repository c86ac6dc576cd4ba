"""Endpoint hints live (issue 13): real TLS 1.3 failures between OpenSSL-based stacks (s_server/s_client,
Python ssl, curl; tests/scenarios/hints.py), diagnosed by ``tlsdiag watch --endpoint-hints`` and through
``tlsdiag sensor --endpoint-hints`` and Kafka, each with its exact cause and rejecting side -- and without
``--endpoint-hints`` the same scenarios give the wire's answers (what the hinted run recorded as
``wire_alone``).  Also: the servers start before the probes (covered), a library without the exported
functions is reported once, least privilege as ``nobody``, and no hint carries key material or plaintext.

Root and a network namespace (``hintlive``) are needed; everything skips, with the reason, only where the
kernel cannot load the uprobes (``sensor.ebpf.hints.HintProbes`` says why).
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sensor.ebpf import hints as probes  # noqa: E402
from tests.scenarios import hints as HS  # noqa: E402
from tests.support.poll import sensor_ready  # noqa: E402

NS = "hintlive"
pytestmark = pytest.mark.netns


# ---------------------------------------------------------------------------------------------
# the lab: a namespace, a PKI, the servers (started before any probe)
# ---------------------------------------------------------------------------------------------

def _need_probes() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: network namespaces and uprobes")
    for tool in ("ip", "openssl", "curl"):
        if not shutil.which(tool):
            pytest.skip("%s is not installed" % tool)
    try:
        probes.HintProbes().close()
    except probes.HintsUnavailable as exc:
        if "not built" in str(exc) and shutil.which("clang"):
            pytest.fail("%s -- clang is here: run python3 setup.py build_ext --inplace" % exc)
        pytest.skip("endpoint hints cannot load here: %s" % exc)


class Lab:
    def __init__(self, pki: str, servers: list, started: float) -> None:
        self.pki = pki
        self.servers = servers
        self.started = started


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    _need_probes()
    pki = HS.build_pki(str(tmp_path_factory.mktemp("pki")))
    HS.setup_netns(NS)
    procs = HS.start_servers(NS, pki)
    try:
        yield Lab(pki, procs, time.time())
    finally:
        HS.stop(procs)
        HS.delete_netns(NS)


def _start_ticks(pid: int) -> int:
    """The process's start time (clock ticks since boot, /proc/PID/stat field 22)."""
    stat = Path("/proc/%d/stat" % pid).read_text()
    return int(stat.rsplit(")", 1)[1].split()[19])


class Watch:
    """``tlsdiag watch`` in the background: its stdout (jsonl diagnoses) and stderr read as they come."""

    def __init__(self, lab: Lab, hints: bool, extra=()) -> None:
        cmd = [sys.executable, "-m", "tlsdiag", "watch", "-i", "lo", "--netns", NS, "--backend", "pcap",
               "--format", "jsonl", "--idle-timeout", "2", "--truststore", os.path.join(lab.pki, "root.pem")]
        for s in HS.SERVERS:
            cmd += ["--port", str(s.port)]
        for n in HS.LOCAL_NETS:
            cmd += ["--local-net", n]
        if hints:
            cmd.append("--endpoint-hints")
        cmd += list(extra)
        self.p = subprocess.Popen(cmd, cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.out: list[dict] = []
        self.err: list[str] = []
        self._t = [threading.Thread(target=self._read, args=(self.p.stdout, True), daemon=True),
                   threading.Thread(target=self._read, args=(self.p.stderr, False), daemon=True)]
        for t in self._t:
            t.start()
        want = ("endpoint hints" if hints else "capture backend")
        deadline = time.monotonic() + 30
        while not any(want in line for line in self.err):
            assert self.p.poll() is None and time.monotonic() < deadline, "".join(self.err)
            time.sleep(0.05)
        time.sleep(0.3)

    def _read(self, stream, is_out: bool) -> None:
        for line in stream:
            if is_out:
                self.out.append(json.loads(line))
            else:
                self.err.append(line)

    def failures(self) -> dict[str, dict]:
        return {d["connection"]["client"]: d for d in list(self.out) if d["severity"] == "failure"}

    def stop(self, wait_for=(), timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not set(wait_for) <= set(self.failures()):
            time.sleep(0.1)
        time.sleep(0.5)
        self.p.send_signal(signal.SIGINT)
        self.p.wait(timeout=30)
        for t in self._t:
            t.join(timeout=5)


@pytest.fixture(scope="module")
def runs(lab):
    """Every scenario once with --endpoint-hints (plus curl's wrong-name case), then once without."""
    out = {}
    for hints, base in ((True, 30000), (False, 30100)):
        w = Watch(lab, hints)
        watch_ticks = _start_ticks(w.p.pid)
        results = HS.run_clients(NS, lab.pki, HS.SCENARIOS + (HS.CURL_WRONG_NAME,), base)
        if hints:
            expect = [ep for sc, ep, _ in results[:-1]]
        else:       # what the hinted run says the wire alone diagnoses
            a = out[True][0].failures()
            expect = [ep for (_, ep_h, _), (_, ep, _) in zip(out[True][1], results)
                      if ep_h in a and a[ep_h]["evidence"].get("wire_alone", "kept") is not None]
        w.stop(wait_for=expect)
        out[hints] = (w, results, watch_ticks)
    return out


# ---------------------------------------------------------------------------------------------
# watch: with and without hints
# ---------------------------------------------------------------------------------------------

def test_every_scenario_gets_its_exact_cause_and_side_from_the_hints(lab, runs):
    w, results, watch_ticks = runs[True]
    # the servers ran before the probes were loaded: a process started before the sensor is covered
    for p in lab.servers:
        assert _start_ticks(p.pid) < watch_ticks
    got = w.failures()
    wrong = []
    for sc, ep, rc in results[:-1]:
        d = got.get(ep)
        if d is None or (d["cause"], d["rejected_by"]) != (sc.cause, sc.rejected_by):
            wrong.append((sc.name, sc.client, sc.server, ep, rc, d and (d["cause"], d["rejected_by"], d["rule"])))
            continue
        assert d["evidence"].get("endpoint_hints"), (sc, d)
        if d["rule"].startswith("TLS-HINT-"):
            assert d["evidence"]["cause_from"] == "endpoint_hint"
            assert "rests on the endpoint's own report" in d["explanation"]
        else:
            assert d["evidence"]["cause_from"] == "wire" and d["confidence"] == "high"
        # the gateway's names: the Router rejects client certificates, the MP rejects backends'
        rejecting = "the Router's OpenSSL" if sc.rejected_by == "server" else "the Message Processor's OpenSSL"
        assert rejecting in d["explanation"], d["explanation"]
        assert d["confidence"] == ("medium" if sc.cause == "incomplete_chain" else "high"), d
    assert not wrong, wrong
    assert "Traceback" not in "".join(w.err)


def test_the_cause_rests_on_the_hint_where_the_wire_says_less(runs):
    """Where the wire alone says encrypted_failure, nothing, or a lower confidence, the hint decides."""
    w, results, _ = runs[True]
    got = w.failures()
    by = {(sc.name, sc.client, sc.server): got[ep] for sc, ep, _ in results[:-1] if ep in got}

    def wire_says_less(d, cause):
        wa = d["evidence"]["wire_alone"]
        return wa is None or wa["cause"] != cause or wa["confidence"] != "high"

    for client in ("s_client", "curl", "python"):
        d = by[("client-expired", client, "router-mtls")]
        assert d["rule"] == "TLS-HINT-CERT-EXPIRED" and wire_says_less(d, "expired_certificate")
        assert "reported X509_V_ERR_CERT_HAS_EXPIRED (certificate has expired) at depth 0" in d["explanation"]
        d = by[("client-untrusted", client, "router-mtls")]
        assert d["rule"] == "TLS-HINT-CERT-UNKNOWN" and wire_says_less(d, "unknown_certificate")
        assert "X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN (self-signed certificate in certificate chain) at depth 1" \
            in d["explanation"]
    d = by[("client-expired", "s_client", "router-mtls-python")]
    assert d["rule"] == "TLS-HINT-CERT-EXPIRED" and wire_says_less(d, "expired_certificate")
    d = by[("server-wrong-name", "python", "backend-wrong-name")]
    assert d["rule"] == "TLS-HINT-CERT-HOSTNAME" and "X509_V_ERR_HOSTNAME_MISMATCH" in d["explanation"]


def test_without_hints_the_same_scenarios_give_the_wire_answers(runs):
    hinted, hres, _ = runs[True]
    plain, pres, _ = runs[False]
    assert not any("endpoint hints" in line for line in plain.err)
    with_h, without = hinted.failures(), plain.failures()
    assert all(not d["rule"].startswith("TLS-HINT") and "endpoint_hints" not in d["evidence"]
               for d in plain.out)
    compared = 0
    for (sc, ep_h, rc_h), (sc2, ep_p, rc_p) in zip(hres[:-1], pres[:-1]):
        assert sc == sc2
        d = with_h.get(ep_h)
        if d is None or rc_h != rc_p:
            # the client exited otherwise (s_client may close before it reads the server's alert):
            # another wire, another wire answer -- compared on the very same connections in
            # test_stripping_the_hints_gives_the_wire_answer
            continue
        wire = d["evidence"].get("wire_alone", "kept") if d["evidence"]["cause_from"] == "endpoint_hint" \
            else {"rule": d["rule"], "cause": d["cause"]}
        p = without.get(ep_p)
        if wire is None:
            assert p is None, (sc, p)                       # the wire alone: a success
        else:
            assert p is not None and (p["rule"], p["cause"]) == (wire["rule"], wire["cause"]), (sc, wire, p)
        compared += 1
    assert compared >= 0.8 * (len(hres) - 1), compared


def test_curl_s_own_name_check_is_not_seen_by_openssl(runs):
    """curl checks the server's name itself after a complete handshake: OpenSSL reports nothing, so the
    diagnosis stays the wire's (documented limit, docs/endpoint-hints.md)."""
    w, results, _ = runs[True]
    sc, ep, rc = results[-1]
    assert sc is HS.CURL_WRONG_NAME and rc != 0
    d = w.failures().get(ep)
    assert d is None or not d["rule"].startswith("TLS-HINT")


def test_a_library_without_the_exported_functions_is_reported_once(lab, tmp_path):
    bogus = tmp_path / "libnot-openssl.so"
    bogus.write_bytes(b"\x7fELF" + b"\0" * 100)
    libz = next((p for p in ("/lib/x86_64-linux-gnu/libz.so.1", "/usr/lib/x86_64-linux-gnu/libz.so.1")
                 if os.path.exists(p)), None)
    extra = ["--endpoint-hints-library", str(bogus), "--endpoint-hints-library", str(tmp_path / "missing.so")]
    if libz:
        extra += ["--endpoint-hints-library", libz]
    w = Watch(lab, True, extra)
    sc = next(s for s in HS.SCENARIOS if s.name == "client-expired" and s.client == "python")
    (_, ep, _), = HS.run_clients(NS, lab.pki, [sc], 30200)
    w.stop(wait_for=[ep])
    err = "".join(w.err)
    for path in [str(bogus), str(tmp_path / "missing.so")] + ([libz] if libz else []):
        lines = [line for line in w.err if path in line and "not hooked" in line]
        assert len(lines) == 1 and "WARNING" in lines[0], (path, err)
    assert "Traceback" not in err
    assert w.failures()[ep]["rule"] == "TLS-HINT-CERT-EXPIRED"


# ---------------------------------------------------------------------------------------------
# through the sensor and Kafka (what the analyzer service gets)
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    from kafka_broker import module_broker
    yield from module_broker(tmp_path_factory)


@pytest.mark.kafka
def test_through_the_sensor_and_kafka(lab, broker, tmp_path):
    from kafka_broker import kcat_messages

    from analyzer.config import build_config
    from analyzer.engine import Engine
    from proto.render import summary_to_json
    from proto.summary import decode_certificate, decode_summary

    cmd = [sys.executable, "-m", "tlsdiag", "sensor", "-i", "lo", "--netns", NS, "--backend", "pcap",
           "--kafka", broker.bootstrap, "--endpoint-hints", "--spool-dir", str(tmp_path / "spool"),
           "--idle-timeout", "2", "--stats-interval", "1"]
    for s in HS.SERVERS:
        cmd += ["--port", str(s.port)]
    p = subprocess.Popen(cmd, cwd=str(ROOT), stderr=subprocess.PIPE, text=True)
    err: list[str] = []
    t = threading.Thread(target=lambda: err.extend(p.stderr), daemon=True)
    t.start()
    deadline = time.monotonic() + 60
    while not any(sensor_ready(line) for line in err):
        assert p.poll() is None and time.monotonic() < deadline, "".join(err)
        time.sleep(0.1)
    time.sleep(0.5)
    chosen = [s for s in HS.SCENARIOS if (s.name, s.client) in (
        ("client-expired", "s_client"), ("server-expired", "python"), ("client-missing", "curl"),
        ("client-untrusted", "python"), ("server-no-intermediate", "curl"))]
    results = HS.run_clients(NS, lab.pki, chosen, 30300)
    time.sleep(4)
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=60)
    t.join(timeout=5)
    assert p.returncode == 0, "".join(err)
    assert any("stats: hints events=" in line for line in err), "".join(err)
    facts = {}
    for _, v in kcat_messages(broker.bootstrap, "tls.certs"):
        sha, _der, f = decode_certificate(v)
        facts[sha] = f
    engine = Engine(build_config({"local_nets": list(HS.LOCAL_NETS),
                                  "truststore": os.path.join(lab.pki, "root.pem")}))
    got = {}
    for _, v in kcat_messages(broker.bootstrap, "tls.handshakes"):
        s = summary_to_json(decode_summary(v), facts)
        engine.observe(s, {})
        for d in engine.diagnose(s, {}):
            if d["severity"] == "failure":
                got[s["client"]] = d
    for sc, ep, _ in results:
        d = got.get(ep)
        assert d is not None and (d["cause"], d["rejected_by"]) == (sc.cause, sc.rejected_by), (sc, d)
        assert d["evidence"]["endpoint_hints"]


# ---------------------------------------------------------------------------------------------
# least privilege (as nobody, setpriv)
# ---------------------------------------------------------------------------------------------

WORKER = r'''
import json, sys, time
sys.path.insert(0, sys.argv[1])
from sensor.ebpf.hints import HintProbes, HintsUnavailable
try:
    h = HintProbes()
except HintsUnavailable as e:
    print("unavailable", e, flush=True)
    sys.exit(3)
print("ready", flush=True)
end = time.time() + float(sys.argv[2])
evs = []
while time.time() < end:
    evs += h.poll()
    time.sleep(0.05)
print(json.dumps([e._asdict() for e in evs]))
'''


def test_least_privilege_as_nobody(lab):
    """Measured: CAP_BPF + CAP_PERFMON load the program and its tracepoint, but this kernel refuses the uprobe
    perf events without CAP_SYS_ADMIN; CAP_SYS_ADMIN alone is enough -- and hooks root's processes (no
    CAP_SYS_PTRACE: nothing under /proc/PID is read)."""
    for tool in ("setpriv", "unshare"):
        if not shutil.which(tool):
            pytest.skip("%s is not installed" % tool)
    from test_ebpf import _interpreter_for_nobody
    tmp = Path(tempfile.mkdtemp(prefix="hint-nobody-", dir="/tmp"))
    os.chmod(tmp, 0o777)
    script = tmp / "worker.py"
    script.write_text(WORKER)
    os.chmod(script, 0o644)
    try:
        prefix, py = _interpreter_for_nobody(tmp)

        def run(caps, seconds=3.0):
            c = ",".join(["-all"] + ["+" + x for x in caps])
            inner = ("%s exec setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=%s --ambient-caps=%s "
                     "--bounding-set=%s %s %s %s %s" % (prefix, c, c, c, py, script, ROOT, seconds))
            inner = inner.replace("PYTHONPATH=", "export PYTHONPATH=").replace(" exec setpriv", "; exec setpriv")
            return subprocess.Popen(["unshare", "-m", "sh", "-c", inner], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)

        p = run([])
        out, _ = p.communicate(timeout=60)
        assert p.returncode == 3 and "CAP_BPF" in out, out
        p = run(["bpf", "perfmon"])
        out, _ = p.communicate(timeout=60)
        assert p.returncode == 3 and "CAP_SYS_ADMIN" in out, out
        p = run(["sys_admin"])
        assert p.stdout.readline().strip() == "ready"
        sc = next(s for s in HS.SCENARIOS if s.name == "server-expired" and s.client == "s_client")
        (_, ep, _), = HS.run_clients(NS, lab.pki, [sc], 30400)
        out, err = p.communicate(timeout=60)
        evs = json.loads(out.strip().splitlines()[-1])
        mine = [e for e in evs if e["local"] == ep]
        assert any(e["kind"] == probes.K_VERIFY and e["code"] == 10 and e["depth"] == 0 for e in mine), evs
        assert all(e["remote"] == "%s:%d" % (sc.srv.addr, sc.srv.port) for e in mine)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# no hint carries key material or plaintext
# ---------------------------------------------------------------------------------------------

def _keylog_secrets(path: Path) -> list[bytes]:
    out = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3:
            out.append(bytes.fromhex(parts[2]))
    return out


class SensorRun:
    pass


KEYLOG_SCENARIOS = (("client-expired", "router-mtls"), ("server-expired", "backend-expired"),
                    ("client-missing", "router-mtls"), ("client-untrusted", "router-mtls"),
                    ("server-unknown-ca", "backend-unknown-ca"), ("client-expired", "router-mtls-python"))


@pytest.fixture(scope="module")
def sensor_run(lab, tmp_path_factory):
    """The capture loop in this process with the probes, the kernel's records kept whole; s_client logs its
    keys and sends a marker in its request."""
    from sensor.backends import open_capture
    from sensor.hints import HintJoiner
    from sensor.loop import Sensor, SensorConfig

    marker = "hint-marker-" + secrets.token_hex(8)
    keylog = tmp_path_factory.mktemp("keylog") / "keys.log"
    raw_records: list[bytes] = []

    class Recording(probes.HintProbes):
        def poll(self):                                   # keep the kernel's records as they are
            recs = self._rb.drain() if self._rb is not None else []
            raw_records.extend(recs)
            out = []
            rb, self._rb = self._rb, _Replay(recs)
            try:
                out = super().poll()
            finally:
                self._rb = rb
            return out

    class _Replay:
        def __init__(self, recs):
            self.recs = recs

        def drain(self):
            return self.recs

    cap, _ = open_capture("pcap", "lo", ports=[s.port for s in HS.SERVERS], netns=NS)
    summaries = []
    sensor = Sensor(SensorConfig(table={"idle_timeout": 2}), cap, lambda raw, certs: summaries.append((raw, certs)),
                    hints=HintJoiner(Recording()))
    done = threading.Event()

    def clients():
        time.sleep(0.3)
        for i, (name, server) in enumerate(KEYLOG_SCENARIOS):
            sc = next(s for s in HS.SCENARIOS if (s.name, s.client, s.server) == (name, "s_client", server))
            cmd = HS.client_command(sc, lab.pki, 30500 + i) + ["-keylogfile", str(keylog)]
            subprocess.run(HS.ns_cmd(NS, cmd), input=("GET /%s HTTP/1.0\r\n\r\n" % marker).encode(),
                           capture_output=True, timeout=30)
        done.set()

    t = threading.Thread(target=clients)
    t.start()
    try:
        while not done.is_set():
            sensor.step(0.1)
        end = time.monotonic() + 3.5
        while time.monotonic() < end:
            sensor.step(0.1)
        sensor.finish()
    finally:
        t.join()
        cap.close()
        sensor.hints.source.close()
    r = SensorRun()
    r.summaries, r.raw_records, r.keylog, r.marker = summaries, raw_records, keylog, marker
    return r


def test_no_hint_carries_key_material_or_plaintext(lab, sensor_run):
    """Handshakes whose keys are logged (s_client -keylogfile) and whose request carries a marker fail with
    hints; neither the records the kernel hands over (96 bytes each, whole), nor the summaries' msgpack,
    nor their JSON and diagnoses contain any logged secret, the marker, or a piece of a private key."""
    from cryptography.hazmat.primitives import serialization

    from analyzer.config import build_config
    from analyzer.engine import Engine
    from proto.render import summary_to_json
    from proto.summary import encode_summary

    summaries, raw_records, keylog, marker = (sensor_run.summaries, sensor_run.raw_records, sensor_run.keylog,
                                              sensor_run.marker)
    hinted = [raw for raw, _ in summaries if "endpoint_hints" in raw]
    assert len(hinted) == len(KEYLOG_SCENARIOS), [r.get("client") for r, _ in summaries]
    assert raw_records and all(len(r) == probes.EVENT.size for r in raw_records)
    secrets_ = _keylog_secrets(keylog)
    assert len(secrets_) >= 2 * len(KEYLOG_SCENARIOS)     # the handshake secrets at least, per connection
    keys = []
    for stem in ("client-expired", "server-expired", "server-good"):
        k = serialization.load_pem_private_key(Path(lab.pki, stem + ".key").read_bytes(), None)
        der = k.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
        keys += [der[i:i + 16] for i in range(32, len(der) - 16, 97)]
    engine = Engine(build_config({"local_nets": list(HS.LOCAL_NETS)}))
    blobs = [b"".join(raw_records)]
    for raw, certs in summaries:
        blobs.append(encode_summary(raw))
        s = summary_to_json(raw, {})
        blobs.append(json.dumps(s).encode())
        blobs.append(json.dumps(engine.diagnose(s, {})).encode())
    needles = [m for s in secrets_ for m in (s, s.hex().encode(), s.hex().upper().encode())]
    needles += [marker.encode()] + keys
    for blob in blobs:
        for n in needles:
            assert n not in blob
    # and what a hint holds is exactly the documented keys
    for raw in hinted:
        assert set(raw["endpoint_hints"]) == {"v", "endpoints"}
        for e in raw["endpoint_hints"]["endpoints"]:
            assert tuple(e) == ("side", "pid", "comm", "library", "verify_error", "verify_depth", "ssl_errors")
    assert re.search(r"X509_V_ERR_CERT_HAS_EXPIRED", json.dumps([summary_to_json(r, {}) for r in hinted]))


def test_stripping_the_hints_gives_the_wire_answer(sensor_run):
    """On the very same connections: the diagnosis of a summary without its hints is what the hinted diagnosis
    recorded as the wire's answer (``wire_alone``; None = a success on the wire)."""
    from analyzer.config import build_config
    from analyzer.engine import Engine
    from proto.render import summary_to_json
    from proto.summary import decode_summary, encode_summary

    def diagnose(raw):
        s = summary_to_json(decode_summary(encode_summary(raw)), {})
        return [d for d in Engine(build_config({"local_nets": list(HS.LOCAL_NETS)})).diagnose(s, {})
                if d["severity"] == "failure"]

    checked = 0
    for raw, _ in sensor_run.summaries:
        if "endpoint_hints" not in raw:
            continue
        (d,) = diagnose(raw)
        plain = diagnose({k: v for k, v in raw.items() if k != "endpoint_hints"})
        if d["evidence"]["cause_from"] == "wire":
            assert [(p["rule"], p["cause"]) for p in plain] == [(d["rule"], d["cause"])]
        elif d["evidence"]["wire_alone"] is None:
            assert plain == []
        else:
            w = d["evidence"]["wire_alone"]
            assert [(p["rule"], p["cause"], p["confidence"]) for p in plain] == [
                (w["rule"], w["cause"], w["confidence"])]
        assert all("endpoint_hints" not in p["evidence"] for p in plain)
        checked += 1
    assert checked == len(KEYLOG_SCENARIOS)
