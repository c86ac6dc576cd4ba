"""`tlsdiag diagnose`: config precedence, exit codes, JSONL and text output, report rendering."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from pathlib import Path

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


def test_jsonl_of_a_lone_surrogate_is_utf8_json(tmp_path, pki):
    # a JSONL summary's "\udc80" (no UTF-8 for it): the diagnosis line is ASCII-escaped JSON that reads
    # back as the same text (the stdlib's line, written to a UTF-8 stream, was an error or a stray byte)
    bad = make_summary(established=False, history="CsxknL", chain=[pki.expired, pki.inter],
                       sni="old.example.com\udc80", alerts=[alert("client", "certificate_expired", "server_hello_done")])
    path = write_jsonl(tmp_path / "s.jsonl", [(bad, [pki.expired, pki.inter])])
    rc, out, err = run(path, "--format", "jsonl")
    assert rc == 1 and err == ""
    out.encode("utf-8")                 # (strict: no lone surrogate left in the text)
    (o,) = [json.loads(line) for line in out.splitlines()]
    assert o["connection"]["server_name"] == "old.example.com\udc80" and "\\udc80" in out


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


@pytest.mark.parametrize("content", [
    "[" * 100_000 + "]" * 100_000,
    '{"format":"tlsdiag-profiles","version":1,"profiles":[{"server":"a:1","count":1e400}]}',
    '{"format":"tlsdiag-profiles","version":1,"profiles":[{"server":"a:1","groups":{"x":1e400}}]}',
    b"\xff\xfe\x80",
])
def test_a_malformed_profiles_file_is_one_line_and_exit_2(files, tmp_path, content):
    prof = tmp_path / "profiles.json"
    (prof.write_bytes if isinstance(content, bytes) else prof.write_text)(content)
    rc, out, err = run(files["good"], "--profiles-load", str(prof))
    assert rc == 2 and out == "" and err.count("\n") == 1 and str(prof) in err
    assert err.startswith("tlsdiag diagnose: ") and "Traceback" not in err


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
    # (a bundle with one block that does not read was said to hold no PEM certificates)
    (tmp_path / "torn.pem").write_bytes(pki.root.pem + b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(ConfigError, match=r"torn.pem holds a PEM certificate that does not read \(block 2 of 2\)$"):
        load_truststore(str(tmp_path / "torn.pem"))
    with pytest.raises(ConfigError, match="^truststore /dev/null is not a file or a directory$"):
        load_truststore("/dev/null")


def test_report_render_handles_empty_and_bounds():
    text = render([], {"summaries": 0, "established": 0, "failed": 0, "not_judged": {}})
    assert "No failed TLS handshakes" in text
    many = [{"severity": "failure", "cause": "unknown", "connection": {"server": f"10.0.{i // 250}.{i % 250}:443",
             "client": "1.1.1.1:1"}, "direction": "unknown", "evidence": {}, "id": str(i), "time": "t"} for i in range(500)]
    text = render(many, None)
    assert "more groups" in text


def test_summarize_output_fed_back_with_a_truststore(tmp_path):
    """issue 12: `summarize --format jsonl` lines carry the certificates' facts, not their bytes; fed back to
    `diagnose --truststore` every root looked "not in the truststore" (45 of 48 right on examples/, at high
    confidence).  Now such chains are judged without the truststore, the report says so, and
    `summarize --certs` carries the bytes: both give the capture's own diagnoses."""
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    pcap = root / "examples" / "gateway-failures.pcap"
    trust = root / "tests" / "data" / "scenarios" / "pki" / "root.pem"
    if not pcap.exists():
        pytest.skip("examples/gateway-failures.pcap not generated")
    plain, with_certs = tmp_path / "s.jsonl", tmp_path / "c.jsonl"
    for path, extra in ((plain, []), (with_certs, ["--certs"])):
        with open(path, "wb") as f:
            subprocess.run([sys.executable, "-m", "tlsdiag", "summarize", *extra, str(pcap)], stdout=f, check=True,
                           cwd=root)
    assert "certs" not in json.loads(plain.read_text().splitlines()[0])
    assert set(json.loads(with_certs.read_text().splitlines()[0])) == {"summary", "certs"}
    opts = ["--local-net", "10.10.1.1/32", "--local-net", "10.10.3.1/32", "--truststore", str(trust)]

    def causes(*argv: str) -> tuple[dict, str]:
        rc, out, err = run(*argv, "--format", "jsonl", *opts)
        assert rc == 1
        return ({d["id"]: (d["cause"], d["direction"], d["rejected_by"]) for d in map(json.loads, out.splitlines())
                 if d["severity"] == "failure"}, err)

    want, err0 = causes(str(pcap))
    got_plain, err_plain = causes(str(plain))
    got_certs, err_certs = causes(str(with_certs))
    assert len(want) == 48 and got_plain == want and got_certs == want
    assert err0 == "" and err_certs == ""
    assert "without the certificates' bytes" in err_plain and "summarize --certs" in err_plain
    rc, text, _ = run(str(plain), *opts)
    assert "judged without the truststore" in text and "not in the truststore" not in text


@pytest.mark.parametrize("data,message", [
    (b'\xff\xfe\x80garbage\n', "2: not UTF-8 (byte 1 of the line)"),
    (b"[" * 100_000 + b"]" * 100_000 + b"\n", "2: not JSON this reader takes (nested too deeply)"),
    (b'{"client":"1.2.3.4:1","server":"5.6.7.8:443","start":' + b"9" * 5000 + b"}\n",
     "2: not JSON this reader takes (a number of more than 4300 digits)"),
])
def test_a_jsonl_line_this_reader_cannot_take_is_a_one_line_error_and_the_rest_goes_on(files, tmp_path, data,
                                                                                       message):
    # (was a traceback, exit 1 -- "failures diagnosed" -- and no output for any file)
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(open(files["good"], "rb").readline() + data)
    rc, out, err = run(str(broken), files["bad"], "--format", "jsonl")
    assert rc == 2 and err == f"tlsdiag diagnose: {broken}:{message}\n"
    assert sorted(json.loads(line)["cause"] for line in out.splitlines()) == \
        ["expired_certificate", "sni_required"]


def test_a_jsonl_line_over_the_limit_is_not_read_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "MAX_JSONL_LINE", 1000)
    seen = []
    real = open

    class Counting:
        def __init__(self, f):
            self.f = f

        def readline(self, n):
            seen.append(n)
            return self.f.readline(n)

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.f.close()
    monkeypatch.setattr(cli, "open", lambda path, mode: Counting(real(path, mode)), raising=False)
    # (diagnose's own name lookup finds the module global before the builtin)
    big = tmp_path / "big.jsonl"
    big.write_bytes(b"a" * 50_000)          # (no end of line: /dev/zero was read until memory ran out)
    rc, _, err = run(str(big))
    assert rc == 2 and err == f"tlsdiag diagnose: {big}:1: line longer than 1000 bytes\n" and seen == [1001]


def test_text_report_of_wrong_typed_fields(tmp_path, pki):
    # a JSONL summary's fields as they come: the evidence line takes what it can, --format jsonl already did
    base = make_summary(established=False, version=None, cipher=None, history="Cr", sni=None, alerts=[])
    for extra in ({"client_versions": 1.5}, {"close": {"rst": 1.5}}, {"close": {"fin": {"a": 1}}}):
        path = write_jsonl(tmp_path / "w.jsonl", [(dict(base, **extra), [])])
        rc, out, err = run(path)
        assert rc == 1 and err == "" and "FAILED HANDSHAKES: 1 connections" in out, extra


def test_what_a_peer_chose_cannot_drive_the_terminal(tmp_path, pki):
    # a client's SNI with a screen clear, a window title, a bell, a line break, a C1 CSI; a lone surrogate
    evil = "\x1b[2J\x1b]0;PWN\x07x\nFAIL forged\x9b1m"
    bad = make_summary(established=False, history="CsxknL", chain=[pki.expired, pki.inter], sni=evil,
                       alerts=[alert("client", "certificate_expired", "server_hello_done")])
    odd = make_summary(established=False, version=None, cipher=None, history="Cr", sni="\udcff", alerts=[],
                       client="10.9.9.9:1")
    path = write_jsonl(tmp_path / "e.jsonl", [(bad, [pki.expired, pki.inter]), (odd, [])])
    rc, out, err = run(path)
    assert rc == 1 and err == ""
    out.encode("utf-8")             # (strict: was a UnicodeEncodeError on a real stdout)
    assert not any(c in out for c in "\x1b\x07\x9b\udcff") and "\\x1b[2J\\x1b]0;PWN\\x07x\\x0aFAIL forged" in out
    assert not any(line.startswith("FAIL forged") for line in out.splitlines()) and "\\udcff" in out
    rc, out, _ = run(path, "--color", "always")
    assert out.count("\x1b") == out.count("\x1b[")       # (only the report's own colours)
    assert "\x1b[2J" not in out and "\x1b]" not in out


def test_objects_that_are_not_summaries_are_noted(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{}\n{"summary": {}}\n{"summary": 5}\n')
    rc, out, err = run(str(path))
    assert rc == 0 and "3 JSON objects skipped: not a connection summary" in out and err == ""
    rc, out, err = run(str(path), "--format", "jsonl")
    assert rc == 0 and out == "" and err == ("tlsdiag diagnose: note: 3 JSON objects skipped: not a connection "
                                             "summary (no client and server text; see docs/summary-schema.md)\n")


@pytest.mark.parametrize("exc", [RuntimeError("boom"), OSError(5, "Input/output error")])
def test_a_bug_is_exit_3_with_its_traceback_not_1(monkeypatch, capsys, exc):
    # (Python's own exit status for a traceback is 1: diagnose's "failures found")
    from tlsdiag import cli as top

    def broken(argv):
        raise exc
    monkeypatch.setattr(cli, "main", broken)
    assert top.main(["diagnose", "x.pcap"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and str(exc.args[-1]) in err
    assert err.endswith("tlsdiag diagnose: internal error (a bug in tlsdiag: please report the traceback "
                        "above); exit status 3\n")


class _Listed:
    """A fold that keeps every diagnosis with its position (picklable: it comes back from a worker)."""

    def __init__(self):
        self.got = []

    def add(self, position, d):
        self.got.append((position, d))


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_window_of_jsonl_is_bounded_by_its_bytes(tmp_path, monkeypatch, jobs):
    """A window holds DEFAULT_WINDOW connections, or fewer once it took DEFAULT_WINDOW_BYTES of JSONL:
    lines may be up to 16 MB each, so 200,000 of them would bound nothing.  Ten refused hellos of ~300 KB
    each (a field the engine ignores pads them) against a budget of 1 MB: windows of 4, 4 and 2 -- and the
    same ten diagnoses as one window gives."""
    from analyzer import engine as engine_mod
    from analyzer.config import DiagnoseConfig
    from analyzer.engine import Engine, Meter
    from analyzer.parallel import fold_windows
    lines = [make_summary(client=f"10.1.0.{i}:5{i:04d}", established=False, version=None, cipher=None,
                          history="Cl", alerts=[alert("server", "handshake_failure", "client_hello")],
                          pad="x" * 300_000) for i in range(10)]
    path = tmp_path / "big.jsonl"
    path.write_text("".join(json.dumps(s) + "\n" for s in lines))

    def windows(meter):
        errors: list = []
        inputs = cli.iter_inputs([str(path)], errors, meter=meter)
        out = [sorted((x for f in folds for x in f.got), key=lambda x: x[0])
               for folds in fold_windows(Engine(DiagnoseConfig()), inputs, jobs, _Listed, meter=meter)]
        assert not errors
        return out

    bounded = windows(Meter(budget=1 << 20))
    assert [len(w) for w in bounded] == [4, 4, 2]
    whole = windows(None)
    assert [len(w) for w in whole] == [10]
    assert [d for w in bounded for _k, d in w] == [d for _k, d in whole[0]]
    # the command itself: the same ten failures, with the budget made small
    monkeypatch.setattr(engine_mod.Meter.__init__, "__defaults__", (1 << 20,))
    code, out, _err = run("--format", "jsonl", "--jobs", str(jobs), str(path))
    assert code == 1 and len(out.splitlines()) == 10


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_certificate_the_parser_cannot_read_is_diagnosed_with_the_rest(tmp_path, jobs):
    """One byte of a captured server certificate changed so that cryptography raises KeyError
    (an unknown string tag in a name), not ValueError: every connection of every file is still
    diagnosed, that one with a warning whose fix is about a malformed certificate."""
    src = Path(__file__).resolve().parent / "data" / "captures" / "tls12_rsa_chain3.pcap"
    data = bytearray(src.read_bytes())
    data[data.index(b"\x06\x03\x55\x04\x03\x0c") + 5] = 0xFA       # CN's UTF8String tag
    bad = tmp_path / "bad-cert.pcap"
    bad.write_bytes(bytes(data))
    example = Path(__file__).resolve().parents[1] / "examples" / "gateway-failures.pcap"
    alone = subprocess.run([sys.executable, "-m", "tlsdiag", "diagnose", "--format", "jsonl", str(example)],
                           capture_output=True, text=True, timeout=120)
    both = subprocess.run([sys.executable, "-m", "tlsdiag", "diagnose", "--format", "jsonl", "--jobs", jobs,
                           str(example), str(bad)], capture_output=True, text=True, timeout=120)
    assert both.returncode == 1 and "Traceback" not in both.stderr, both.stderr
    lines = [json.loads(x) for x in both.stdout.splitlines()]
    assert both.stdout.startswith(alone.stdout) and len(lines) == len(alone.stdout.splitlines()) + 1
    last = lines[-1]
    assert (last["severity"], last["cause"]) == ("warning", "certificate_rejected")
    assert "unparseable DER: KeyError" in last["explanation"]
    assert last["remediation"].startswith("A certificate of this chain is not well-formed X.509")
