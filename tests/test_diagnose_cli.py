"""`tlsdiag diagnose`: config precedence, exit codes, JSONL and text output, report rendering."""

from __future__ import annotations

import base64
import io
import json

import pytest

from analyzer.config import ConfigError, build_config, load_truststore
from analyzer.report import render, want_colour
from tests.support.pki import make_pki
from tests.support.summaries import alert, make_summary
from tlsdiag import settings
from tlsdiag.commands import diagnose as cli


@pytest.fixture(scope="module")
def pki():
    return make_pki()


def write_jsonl(path, pairs):
    with open(path, "w") as f:
        for s, chain in pairs:
            f.write(json.dumps({"summary": s, "certs": {c.sha256: base64.b64encode(c.der).decode() for c in chain}}))
            f.write("\n")
    return str(path)


def run(*argv):
    out, err = io.StringIO(), io.StringIO()
    rc = cli.run(list(argv), out, err)
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture()
def files(tmp_path, pki):
    good = [(make_summary(chain=[pki.leaf, pki.inter], client=f"10.1.0.{i}:4000"), [pki.leaf, pki.inter])
            for i in range(3)]
    bad = [(make_summary(established=False, history="CsxknL", chain=[pki.expired, pki.inter], sni="old.example.com",
                         alerts=[alert("client", "certificate_expired", "server_hello_done")]), [pki.expired, pki.inter]),
           (make_summary(established=False, version=None, cipher=None, history="Cl", sni=None,
                         alerts=[alert("server", "handshake_failure", "client_hello")]), [])]
    root = tmp_path / "root.pem"
    root.write_bytes(pki.root.pem)
    return {"good": write_jsonl(tmp_path / "good.jsonl", good), "bad": write_jsonl(tmp_path / "bad.jsonl", good + bad),
            "root": str(root), "dir": tmp_path}


def test_exit_0_when_no_failures(files):
    rc, out, err = run(files["good"])
    assert rc == 0 and "No failed TLS handshakes" in out and err == ""


def test_exit_1_and_jsonl(files):
    rc, out, _ = run(files["bad"], "--format", "jsonl", "--role", "message-processor", "--truststore", files["root"])
    assert rc == 1
    objs = [json.loads(line) for line in out.splitlines()]
    causes = sorted(o["cause"] for o in objs if o["severity"] == "failure")
    assert causes == ["expired_certificate", "sni_required"]
    for o in objs:
        assert set(o) >= {"cause", "severity", "direction", "rejected_by", "confidence", "time", "connection",
                          "evidence", "remediation", "id", "rule"}
        assert o["direction"] == "southbound"
        assert o["evidence"]["server_certificates"]["truststore"] if o["cause"] == "expired_certificate" else True


def test_text_report_groups_and_shows_fix(files):
    rc, out, _ = run(files["bad"], "--role", "message-processor")
    assert rc == 1
    assert "FAILED HANDSHAKES: 2 connections" in out
    assert "expired_certificate" in out and "renew it on the backend" in out
    assert "sni_required" in out and "conf_system_jsse.enableSNIExtension=true" in out
    assert "\x1b[" not in out          # not a terminal -> no colour


def test_colour_always_and_no_color_env(files, monkeypatch):
    rc, out, _ = run(files["bad"], "--color", "always")
    assert "\x1b[1;31m" in out

    class Tty(io.StringIO):
        def isatty(self):
            return True
    assert want_colour(Tty(), {}) is True
    assert want_colour(Tty(), {"NO_COLOR": ""}) is False
    assert want_colour(io.StringIO(), {}) is False


@pytest.mark.parametrize("argv,msg", [
    (["--role", "gateway"], "role must be one of"),
    (["--local-net", "10.0.0.0/33"], "not a CIDR"),
    (["--target", "nohostport"], "HOST:PORT=NAME"),
    (["--expiry-warning-days", "soon"], "must be an integer"),
    (["--truststore", "/nonexistent.pem"], "does not exist"),
    (["--format", "xml"], "invalid choice"),
])
def test_usage_errors_exit_2_one_line(files, argv, msg):
    rc, out, err = run(files["good"], *argv)
    assert rc == 2 and msg in err and err.count("\n") == 1 and "Traceback" not in err


def test_input_errors_exit_2(tmp_path):
    rc, _, err = run(str(tmp_path / "missing.pcap"))
    assert rc == 2 and "no such file" in err
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    rc, _, err = run(str(bad))
    assert rc == 2 and "not JSON" in err


def test_profiles_save_then_load(files, tmp_path):
    prof = tmp_path / "profiles.json"
    rc, _, _ = run(files["good"], "--profiles-save", str(prof))
    assert rc == 0 and json.loads(prof.read_text())["profiles"][0]["count"] == 3
    # a failure alone is explained with the saved profile: all successes sent SNI
    only_fail = write_jsonl(tmp_path / "f.jsonl", [(make_summary(
        established=False, version=None, cipher=None, history="Cl", sni=None,
        alerts=[alert("server", "handshake_failure", "client_hello")]), [])])
    rc, out, _ = run(only_fail, "--format", "jsonl", "--profiles-load", str(prof))
    d = json.loads(out.splitlines()[0])
    assert rc == 1 and d["rule"] == "TLS-HELLO-REFUSED-PROFILE-SNI"
    rc, _, _ = run(only_fail, "--format", "jsonl")
    assert rc == 1


def _config(cli_values, environ, config_file):
    args = {"config": config_file, **cli_values}
    return build_config(settings.diagnose_values(settings.load("diagnose", args, environ=environ)))


def test_config_precedence_cli_env_file(tmp_path, pki):
    f = tmp_path / "tlsdiag.toml"
    f.write_text('[diagnose]\nrole = "router"\nexpiry_warning_days = 10\nlocal_nets = ["10.0.0.0/8"]\n'
                 'targets = {"10.0.0.5:443" = "api.example.com"}\n')
    cfg = _config({}, {}, str(f))
    assert (cfg.role, cfg.expiry_warning_days, [str(n) for n in cfg.local_nets]) == ("router", 10, ["10.0.0.0/8"])
    assert cfg.targets == {"10.0.0.5:443": "api.example.com"}
    cfg = _config({}, {"TLSDIAG_ROLE": "message-processor", "TLSDIAG_EXPIRY_WARNING_DAYS": "5"}, str(f))
    assert (cfg.role, cfg.expiry_warning_days) == ("message-processor", 5)
    cfg = _config({"role": "router"}, {"TLSDIAG_ROLE": "message-processor"}, str(f))
    assert cfg.role == "router"
    j = tmp_path / "c.json"
    j.write_text(json.dumps({"role": "mp"}))
    assert _config({}, {}, str(j)).role == "message-processor"
    bad = tmp_path / "bad.toml"
    bad.write_text("rol = 1\n")
    with pytest.raises(ConfigError, match="unknown setting"):
        _config({}, {}, str(bad))
    with pytest.raises(ConfigError, match="unknown setting"):
        build_config({"rol": 1})


def test_truststore_directory_and_bundle(tmp_path, pki):
    d = tmp_path / "trust"
    d.mkdir()
    (d / "a.pem").write_bytes(pki.root.pem)
    (d / "b.crt").write_bytes(pki.other_root.pem + pki.root.pem)
    ts = load_truststore(str(d))
    assert len(ts) == 2                      # duplicate root de-duplicated
    (tmp_path / "empty.pem").write_text("nothing here")
    with pytest.raises(ConfigError, match="no PEM certificates"):
        load_truststore(str(tmp_path / "empty.pem"))


def test_report_render_handles_empty_and_bounds():
    text = render([], {"summaries": 0, "established": 0, "failed": 0, "not_judged": {}})
    assert "No failed TLS handshakes" in text
    many = [{"severity": "failure", "cause": "unknown", "connection": {"server": f"10.0.{i // 250}.{i % 250}:443",
             "client": "1.1.1.1:1"}, "direction": "unknown", "evidence": {}, "id": str(i), "time": "t"} for i in range(500)]
    text = render(many, None)
    assert "more groups" in text
