"""The container images and docker/compose.yaml, built and run for real with podman.

``docker/build-local`` builds the three images the way this machine kind allows -- bases made
from Debian packages with mmdebstrap (the tarballs cached under ~/.cache/tlsdiag/containers),
wheels built on the host, the broker's jars from tools/kafka -- and podman-compose brings
docker/compose.yaml up: the broker, the analyzer, and the sensor capturing a veth whose peer (in
a namespace of ours) replays the scenario captures (examples/gateway-failures.pcap, 89
connections, 48 failures).  kcat on the host reads every diagnosis back: each expected cause,
direction and rejecting side, and nothing for the successes.

Needs root (a veth, rootful podman), podman + runc, mmdebstrap, tcpreplay, kcat and
podman-compose >= 1.1 (Debian bookworm's 1.0.3 cannot start a ``network_mode: host`` service,
podman-compose issues 397/1186; tools/install installs a newer one with pip).  Skips with the
reason where containers cannot run -- a failure instead when TLSDIAG_REQUIRE_CONTAINERS is set
(CI).  Cold: ~4 minutes (two base tarballs, two wheels); warm: ~2 minutes.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.ports import free_ports

try:
    from tests.kafka_broker import kcat
except ImportError:
    from kafka_broker import kcat

pytestmark = pytest.mark.netns

REPO = Path(__file__).resolve().parents[1]
PCAP = REPO / "examples" / "gateway-failures.pcap"
EXPECTED = REPO / "tests" / "data" / "scenarios" / "expected.jsonl"
IMAGES = ("kafka", "analyzer", "sensor")
TAG = "t%d" % os.getpid()
MIN_COMPOSE = (1, 1, 0)


def unavailable(reason: str):
    """Skip: containers cannot run here.  In CI (TLSDIAG_REQUIRE_CONTAINERS) that is a failure."""
    if os.environ.get("TLSDIAG_REQUIRE_CONTAINERS", "") not in ("", "0"):
        pytest.fail(reason + " (and TLSDIAG_REQUIRE_CONTAINERS is set)")
    pytest.skip(reason)


def compose_command() -> list[str] | None:
    """podman-compose >= 1.1: the one importable by this Python (pip), else the one on PATH."""
    cands = [[sys.executable, "-m", "podman_compose"]]
    if shutil.which("podman-compose"):
        cands.append([shutil.which("podman-compose")])
    for cmd in cands:
        out = subprocess.run(cmd + ["version"], capture_output=True, text=True)
        m = re.search(r"podman-compose(?:r)? version:?\s+(\d+)\.(\d+)\.(\d+)",
                      out.stdout + out.stderr)
        if out.returncode == 0 and m and tuple(map(int, m.groups())) >= MIN_COMPOSE:
            return cmd
    return None


def run(argv, env=None, timeout=600, check=True):
    out = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout)
    if check and out.returncode != 0:
        raise AssertionError("%s -> %d\n%s\n%s" % (" ".join(map(str, argv)), out.returncode,
                                                   out.stdout[-3000:], out.stderr[-3000:]))
    return out


@pytest.fixture(scope="module")
def images():
    """The three images, tagged TAG; yields (environment for podman, build-local's report)."""
    if os.geteuid() != 0:
        unavailable("containers: needs root (rootful podman, a veth for the sensor)")
    missing = [t for t in ("podman", "runc", "mmdebstrap", "tcpreplay", "kcat", "ip")
               if not shutil.which(t)]
    if missing:
        unavailable("containers: %s not installed (tools/install installs them)" %
                    ", ".join(missing))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TLSDIAG_")}
    printed = run([sys.executable, str(REPO / "docker" / "build-local"), "--print-env",
                   "--tag", TAG])
    for line in printed.stdout.splitlines():
        k, _, v = line.removeprefix("export ").partition("=")
        env[k] = v
    t0 = time.monotonic()
    out = run([sys.executable, str(REPO / "docker" / "build-local"), "--tag", TAG], env=env,
              timeout=1800, check=False)
    if out.returncode != 0:
        # can a container run at all here?  (podman build runs one per RUN step)
        probe = subprocess.run(["podman", "run", "--rm", "--net", "none", "--entrypoint",
                                "true", "localhost/tlsdiag-base:bookworm"], capture_output=True,
                               text=True, env=env, timeout=120)
        if probe.returncode != 0:
            unavailable("containers cannot run here: %s / %s" % (
                out.stderr.strip()[-300:], probe.stderr.strip()[-300:]))
        raise AssertionError("docker/build-local failed:\n" + out.stderr[-4000:])
    report = [json.loads(ln) for ln in out.stdout.splitlines() if ln.startswith("{")]
    built = {r["image"]: r for r in report if "image" in r}
    assert set(built) == {"localhost/tlsdiag-%s:%s" % (i, TAG) for i in IMAGES}, report
    print("\nbuild-local: %.0f s; %s" % (time.monotonic() - t0, "; ".join(
        "%s %.0f MB in %.0f s" % (r["image"], r["bytes"] / 1e6, r["seconds"])
        for r in built.values())))
    yield env, report
    for i in IMAGES:
        subprocess.run(["podman", "rmi", "--force", "localhost/tlsdiag-%s:%s" % (i, TAG)],
                       capture_output=True, env=env)


def in_image(env, image, entrypoint, *args, user=None):
    argv = ["podman", "run", "--rm", "--net", "none", "--entrypoint", entrypoint]
    if user:
        argv += ["--user", user]
    return subprocess.run(argv + ["localhost/tlsdiag-%s:%s" % (image, TAG), *args],
                          capture_output=True, text=True, env=env, timeout=300)


def test_images_hold_what_they_should(images):
    env, report = images
    for image in ("sensor", "analyzer"):
        out = in_image(env, image, "tlsdiag", "--version")
        assert out.returncode == 0 and "(wire: c)" in out.stdout, out.stdout + out.stderr
        # the virtualenv only: no compiler, no pip, no wheels
        out = in_image(env, image, "sh", "-c", "command -v gcc cc pip pip3; ls /host /wheels "
                       "/opt/tlsdiag/bin/pip* 2>/dev/null; id -u")
        assert out.stdout.split() == [out.stdout.split()[-1]] and out.stdout.split()[-1] != "0", \
            out.stdout
    # the sensor image ships no analyzer: its command says so, the module is not there
    out = in_image(env, "sensor", "tlsdiag", "analyzer", "--help")
    assert out.returncode != 0 and "analyzer is not available in this build" in out.stderr
    out = in_image(env, "sensor", "/opt/tlsdiag/bin/python", "-c", "import analyzer")
    assert out.returncode != 0 and "No module named 'analyzer'" in out.stderr
    out = in_image(env, "sensor", "tlsdiag", "sensor", "--help")
    assert out.returncode == 0 and "--interface" in out.stdout
    # the analyzer image: its --help (the default command) has the Alertmanager settings
    out = in_image(env, "analyzer", "tlsdiag", "analyzer", "--help")
    assert "--alertmanager-url" in out.stdout and "--webhook-url" in out.stdout
    # the broker: Java 17 from Debian, the pinned Kafka jars, not root
    out = in_image(env, "kafka", "sh", "-c", "java -version 2>&1; ls /opt/kafka/libs; id -u")
    assert 'openjdk version "17' in out.stdout, out.stdout + out.stderr
    version = re.search(r"<kafka.version>([^<]+)<", (REPO / "tools" / "kafka" / "pom.xml")
                        .read_text()).group(1)
    assert "kafka_2.13-%s.jar" % version in out.stdout
    assert out.stdout.split()[-1] != "0"


def expected_connections():
    return {(e["client"], e["server"]): e
            for e in map(json.loads, EXPECTED.read_text().splitlines())}


def container(env, project, service):
    out = run(["podman", "ps", "-a", "--filter", "label=com.docker.compose.project=" + project,
               "--filter", "label=com.docker.compose.service=" + service, "--format",
               "{{.Names}}"], env=env)
    names = out.stdout.split()
    assert len(names) == 1, (service, names)
    return names[0]


def logs(env, name):
    out = subprocess.run(["podman", "logs", name], capture_output=True, text=True, env=env)
    return out.stdout + out.stderr


def wait_for(pred, timeout, what, poll=1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(poll)
    raise AssertionError("timed out after %d s waiting for %s" % (timeout, what))


def metrics(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
        return r.read().decode()


def test_compose_up_captures_a_veth_and_diagnoses_reach_kcat(images):
    env, _ = images
    compose = compose_command()
    if compose is None:
        unavailable("containers: podman-compose >= %s is not installed (Debian bookworm's "
                    "1.0.3 cannot start network_mode: host; tools/install pip-installs a newer "
                    "one)" % ".".join(map(str, MIN_COMPOSE)))
    n = os.getpid() % 100000
    ns, tx, rx = "ops-ct%d" % n, "ops%dt" % n, "ops%dr" % n
    project = "opsct%d" % n
    ports = dict(zip(("kafka", "sensor", "analyzer"), free_ports(3)))
    env = dict(env, TLSDIAG_INTERFACE=rx, TLSDIAG_PORTS="",
               TLSDIAG_LOCAL_NETS="10.10.1.1/32,10.10.3.1/32", TLSDIAG_SENSOR_ID="ct-sensor",
               TLSDIAG_KAFKA_PORT=str(ports["kafka"]),
               TLSDIAG_SENSOR_METRICS_PORT=str(ports["sensor"]),
               TLSDIAG_ANALYZER_METRICS_PORT=str(ports["analyzer"]))
    base = compose + ["-p", project, "-f", str(REPO / "docker" / "compose.yaml")]
    bootstrap = "127.0.0.1:%d" % ports["kafka"]
    subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    try:
        # the capture's wire: a veth whose host end the sensor (host network) captures
        run(["ip", "netns", "add", ns])
        run(["ip", "link", "add", tx, "netns", ns, "type", "veth", "peer", "name", rx])
        run(["ip", "link", "set", rx, "up"])
        run(["ip", "-n", ns, "link", "set", tx, "up"])
        # the broker first, as Docker's compose does (depends_on: service_healthy; podman 4.3
        # runs no health checks, so podman-compose starts everything at once)
        t0 = time.monotonic()
        run(base + ["up", "-d", "kafka"], env=env, timeout=300)
        wait_for(lambda: "broker 1 at localhost:%d" % ports["kafka"] in subprocess.run(
            ["kcat", "-b", bootstrap, "-L", "-m", "3"], capture_output=True,
            text=True).stdout, 180, "the broker on the host's port")
        broker_up = time.monotonic() - t0
        run(base + ["up", "-d", "kafka", "analyzer", "sensor"], env=env, timeout=300)
        sensor = container(env, project, "sensor")
        analyzer = container(env, project, "analyzer")
        wait_for(lambda: "capturing on %s" % rx in logs(env, sensor), 120, "the sensor")
        up = time.monotonic() - t0
        replay = run(["ip", "netns", "exec", ns, "tcpreplay", "-i", tx, "--pps", "200",
                      str(PCAP)])
        assert "Successful packets:        1663" in replay.stdout, replay.stdout

        expected = expected_connections()
        failures = {k: e for k, e in expected.items() if e["expected_cause"]}

        def diagnoses():
            got = {}
            for line in kcat(bootstrap, "tls.diagnoses", fmt="%s\n"):
                d = json.loads(line)
                if d.get("severity") == "failure":
                    c = d["connection"]
                    got[(c["client"], c["server"])] = d
            return got if len(got) >= len(failures) else None
        try:
            got = wait_for(diagnoses, 240, "the diagnoses of the %d failures" % len(failures),
                           poll=3)
        except AssertionError:
            raise AssertionError("sensor log:\n%s\nanalyzer log:\n%s" % (
                logs(env, sensor)[-3000:], logs(env, analyzer)[-3000:]))
        took = time.monotonic() - t0
        # every connection summarized, every failure with its cause, direction and rejecting
        # side, no success diagnosed as a failure
        assert len(kcat(bootstrap, "tls.handshakes", fmt="%k\n")) == len(expected)
        assert set(got) == set(failures)
        wrong = [(k, e["scenario"], e["expected_cause"], got[k]["cause"])
                 for k, e in failures.items()
                 if (got[k]["cause"], got[k]["direction"], got[k]["rejected_by"], got[k]["sensor"])
                 != (e["expected_cause"], e["direction"], e["rejected_by"], "ct-sensor")]
        assert not wrong, wrong
        # incidents, and the tail tool of the compose file reading them in a container
        events = [json.loads(x) for x in kcat(bootstrap, "tls.incidents", fmt="%s\n")]
        opened = {e["key"] for e in events if e["event"] == "opened"}
        assert "northbound|10.10.1.1:8412|protocol_mismatch" in opened, sorted(opened)
        tail = run(base + ["--profile", "tools", "run", "--rm", "tail", "--once"], env=env,
                   check=False, timeout=120)
        assert tail.returncode == 1, tail.stdout + tail.stderr       # 1: incidents are open
        assert re.search(r"northbound\s+10\.10\.1\.1:8412\s+protocol_mismatch", tail.stdout), \
            tail.stdout[-3000:]
        # the metrics: the sensor's on the host network, the analyzer's published
        m = metrics(ports["sensor"])
        north = re.search(r'tlsdiag_sensor_summaries_total\{direction="northbound"\} (\d+)', m)
        assert north and int(north.group(1)) > 0, m
        assert 'tlsdiag_build_info{version="' in m and 'wire="c"} 1' in m
        m = metrics(ports["analyzer"])
        assert re.search(r'handshake_failures_total\{cause="protocol_mismatch",'
                         r'direction="northbound"\} [1-9]', m), m
        # SIGTERM: both services end cleanly (exit 0) within the stop timeout
        t1 = time.monotonic()
        run(base + ["stop", "-t", "30", "sensor", "analyzer"], env=env, timeout=120)
        stopped = time.monotonic() - t1
        for name in (sensor, analyzer):
            code = run(["podman", "inspect", "-f", "{{.State.ExitCode}}", name], env=env)
            assert code.stdout.strip() == "0", (name, code.stdout, logs(env, name)[-2000:])
        print("\ncompose: broker up %.0f s, sensor capturing %.0f s, all %d failures diagnosed "
              "%.0f s after the start; sensor and analyzer stopped in %.1f s" % (
                  broker_up, up, len(failures), took, stopped))
    finally:
        subprocess.run(base + ["down", "-v", "-t", "5"], capture_output=True, env=env,
                       timeout=300)
        subprocess.run(["ip", "link", "del", rx], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
