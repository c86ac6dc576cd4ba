"""The packaging the issue asks for, checked by the tools that consume it: the compose file by
``docker compose config`` (or Debian's ``docker-compose config``: no engine is needed to
validate), the systemd units by ``systemd-analyze verify``."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker" / "compose.yaml"
UNITS = REPO / "deploy" / "systemd"


def compose_cli() -> list[str] | None:
    if shutil.which("docker") and subprocess.run(
            ["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def test_compose_file_validates_and_wires_the_services():
    cli = compose_cli()
    if cli is None:
        pytest.skip("neither 'docker compose' nor 'docker-compose' is installed (.ci/run "
                    "installs Debian's docker-compose)")
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "TLSDIAG_INTERFACE": "eth9"}
    out = subprocess.run(cli + ["-f", str(COMPOSE), "config"], capture_output=True, text=True,
                         env=env, cwd=REPO)
    assert out.returncode == 0, out.stderr
    import yaml   # the rendered config, as the engine would get it (YAML; JSON is YAML too)
    doc = yaml.safe_load(out.stdout)
    services = doc["services"]
    assert {"kafka", "sensor", "analyzer", "tail"} <= set(services), sorted(services)
    # no registry image: the broker is built from the repository too (tests/test_containers.py
    # builds and runs all three)
    for name in ("kafka", "sensor", "analyzer"):
        assert services[name]["image"].startswith("tlsdiag-%s:" % name), services[name]["image"]
        assert services[name]["build"]["args"]["BASE"], services[name]["build"]
    assert services["sensor"]["build"]["args"]["BASE"] == "python:3.11-slim-bookworm"
    assert services["kafka"]["build"]["args"]["BASE"] == "debian:bookworm-slim"
    sensor = services["sensor"]
    assert sensor.get("network_mode") == "host"
    assert "NET_RAW" in sensor.get("cap_add", [])
    assert "ALL" in sensor.get("cap_drop", [])
    assert "--interface=eth9" in sensor["command"]       # the variable reaches the sensor
    assert "no-new-privileges:true" in sensor.get("security_opt", [])
    for name in ("kafka", "sensor", "analyzer"):
        build = services[name]["build"]
        assert Path(build["context"]).resolve() == REPO
        assert (REPO / "docker" / Path(build["dockerfile"]).name).exists()


@pytest.mark.parametrize("unit", ["tlsdiag-sensor.service", "tlsdiag-analyzer.service"])
def test_systemd_unit_verifies(unit, tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed (.ci/run installs systemd)")
    exe = shutil.which("tlsdiag")
    if exe is None:
        pytest.fail("the tlsdiag entry point is not on PATH (pip install -e .)")
    text = (UNITS / unit).read_text()
    assert "ExecStart=/usr/local/bin/tlsdiag " in text
    # verify needs the executable to exist: the unit as it would be installed on this host
    (tmp_path / unit).write_text(text.replace("/usr/local/bin/tlsdiag", exe))
    out = subprocess.run(["systemd-analyze", "verify", str(tmp_path / unit)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    noise = [ln for ln in out.stderr.splitlines() if unit in ln]
    assert not noise, noise
    if unit == "tlsdiag-sensor.service":
        assert "AmbientCapabilities=CAP_NET_RAW" in text
        assert "NoNewPrivileges=yes" in text


@pytest.mark.parametrize("image,base", [("sensor", "python:3.11-slim-bookworm"),
                                        ("analyzer", "python:3.11-slim-bookworm"),
                                        ("kafka", "debian:bookworm-slim")])
def test_dockerfiles_take_their_base_as_an_argument(image, base):
    """Docker elsewhere builds them as they are (the python / debian image); docker/build-local
    passes a base made from Debian packages.  Every stage starts from that base."""
    text = (REPO / "docker" / ("Dockerfile." + image)).read_text()
    assert "ARG BASE=%s\n" % base in text
    froms = [ln for ln in text.splitlines() if ln.startswith("FROM ")]
    assert froms and all(ln.split()[1] == "${BASE}" for ln in froms), froms
    if image == "sensor":   # the sensor image is built without the analyzer's sources
        assert "COPY analyzer" not in text
        assert "install-venv.sh sensor" in text
