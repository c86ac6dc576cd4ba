"""tlsdiag/settings.py: one table, one precedence (flag > TLSDIAG_* env > config file >
default), one rule for unknown keys, one-line errors, defaults read from the library types."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from analyzer.config import DiagnoseConfig
from analyzer.service import AnalyzerConfig
from sensor.publisher import PublisherConfig
from tlsdiag import settings
from tlsdiag.commands import analyzer as analyzer_cmd
from tlsdiag.commands import sensor as sensor_cmd
from tlsdiag.settings import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def load(command, argv=(), env=None, **kw):
    p = {"sensor": sensor_cmd.build_parser, "analyzer": analyzer_cmd.build_parser}[command]()
    return settings.load(command, p.parse_args(list(argv)), environ=env or {}, **kw)


def test_precedence_flag_env_file_default(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text('idle_timeout = 50\nqueue_max = 7\n[sensor]\nqueue_max = 8\nspool_max_mb = 3\n')
    base = ["-i", "lo", "--kafka", "k:9092", "--config", str(f)]
    v = load("sensor", base)
    assert (v["idle_timeout"], v["queue_max"], v["spool_max_mb"]) == (50.0, 8, 3)
    assert v.sources["queue_max"].endswith("queue_max") and v.sources["snaplen"] == "default"
    v = load("sensor", base, env={"TLSDIAG_QUEUE_MAX": "9", "TLSDIAG_SPOOL_MAX_MB": ""})
    assert (v["queue_max"], v["spool_max_mb"]) == (9, 3)          # an empty variable is unset
    v = load("sensor", base + ["--queue-max", "10"], env={"TLSDIAG_QUEUE_MAX": "9"})
    assert v["queue_max"] == 10 and v.sources["queue_max"] == "--queue-max"


def test_lists_from_flags_env_and_file(tmp_path):
    v = load("sensor", ["-i", "lo", "--kafka", "k", "--port", "443", "--port", "8443",
                        "--local-net", "10.0.0.0/8"])
    assert v["ports"] == (443, 8443) and [str(n) for n in v["local_nets"]] == ["10.0.0.0/8"]
    v = load("sensor", ["-i", "lo", "--kafka", "k"], env={"TLSDIAG_PORTS": "443, 8443",
                                                          "TLSDIAG_LOCAL_NETS": "10.1.0.0/16"})
    assert v["ports"] == (443, 8443) and [str(n) for n in v["local_nets"]] == ["10.1.0.0/16"]
    f = tmp_path / "s.json"
    f.write_text(json.dumps({"sensor": {"ports": [443], "role": "mp"}}))
    v = load("sensor", ["-i", "lo", "--kafka", "k", "--config", str(f)])
    assert v["ports"] == (443,) and v["role"] == "message-processor"


def test_diagnose_table_is_shared_and_own_table_wins(tmp_path):
    f = tmp_path / "host.toml"
    f.write_text('[diagnose]\nrole = "router"\ntruststore = "/etc/ssl/x.pem"\n'
                 '[sensor]\nlocal_nets = ["10.10.1.1/32"]\n'
                 '[analyzer]\nrole = "message-processor"\nmax_records = 5\n')
    s = load("sensor", ["-i", "lo", "--kafka", "k", "--config", str(f)])
    assert s["role"] == "router" and [str(n) for n in s["local_nets"]] == ["10.10.1.1/32"]
    a = load("analyzer", ["--kafka", "k", "--config", str(f)])
    assert a["role"] == "message-processor" and a["max_records"] == 5
    assert a["truststore"] == "/etc/ssl/x.pem" and a["local_nets"] == ()


@pytest.mark.parametrize("text,message", [
    ("rol = 1\n", "unknown setting 'rol'"),
    ("[sensr]\nrole = 1\n", "[sensr] is no command's table"),
    ("[sensor]\ngroup = \"g\"\n", "unknown setting 'group' in [sensor]"),
    ("[sensor]\nqueue_max = \"many\"\n", "queue_max: must be an integer, not 'many'"),
    ("[sensor]\nrole = \"gateway\"\n", "role must be one of"),
    ("[sensor\n", "is not valid TOML"),
])
def test_file_errors_are_one_line_naming_file_and_key(tmp_path, text, message):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as e:
        load("sensor", ["-i", "lo", "--kafka", "k", "--config", str(f)])
    assert message in str(e.value) and str(f) in str(e.value) and "\n" not in str(e.value)


def test_flag_and_env_errors_name_their_source():
    with pytest.raises(ConfigError, match=r"^--idle-timeout: must be a number"):
        load("sensor", ["-i", "lo", "--kafka", "k", "--idle-timeout", "soon"])
    with pytest.raises(ConfigError, match=r"^TLSDIAG_WORKERS: must be between 1 and 64"):
        load("sensor", ["-i", "lo", "--kafka", "k"], env={"TLSDIAG_WORKERS": "0"})
    with pytest.raises(ConfigError, match=r"--kafka is required \(or TLSDIAG_KAFKA"):
        load("sensor", ["-i", "lo"])


def test_booleans_negated_by_their_flag():
    a = load("analyzer", ["--kafka", "k"])
    assert a["exactly_once"] is True and a["warnings"] is True
    a = load("analyzer", ["--kafka", "k", "--at-least-once", "--no-warnings"])
    assert a["exactly_once"] is False and a["warnings"] is False
    a = load("analyzer", ["--kafka", "k"], env={"TLSDIAG_EXACTLY_ONCE": "no"})
    assert a["exactly_once"] is False
    with pytest.raises(ConfigError, match="must be true or false"):
        load("analyzer", ["--kafka", "k"], env={"TLSDIAG_WARNINGS": "maybe"})


def test_a_negating_flag_says_which_way_it_turns_its_setting():
    """--no-warnings turns warnings off, --endpoint-hints turns hints on: the help of such a
    flag says so, not only what the setting is when on."""
    import argparse
    parser = argparse.ArgumentParser()
    settings.add_arguments(parser, "watch")
    text = {a.option_strings[0]: a.help for a in parser._actions if a.option_strings}
    assert text["--no-warnings"].startswith("turns off: also report warnings")
    assert "[TLSDIAG_WARNINGS, on by default]" in text["--no-warnings"]
    assert text["--endpoint-hints"].startswith("turns on: ")
    assert "[TLSDIAG_ENDPOINT_HINTS, off by default]" in text["--endpoint-hints"]


def test_defaults_are_the_library_types_own():
    a = load("analyzer", ["--kafka", "k"])
    for f in ("group", "max_records", "cert_wait", "incident_resolve_hold_s", "topic_profiles",
              "topic_dlq", "exactly_once", "correlation_window_s"):
        assert a[f] == getattr(AnalyzerConfig(kafka="k"), f), f
    s = load("sensor", ["-i", "lo", "--kafka", "k"])
    pub = PublisherConfig(bootstrap="k", spool_dir="/x")
    assert s["spool_max_mb"] << 20 == pub.spool_max_bytes
    assert (s["topic_handshakes"], s["queue_max"]) == (pub.topic_handshakes, pub.queue_max)
    assert a["expiry_warning_days"] == DiagnoseConfig().expiry_warning_days
    from cext import wire as cext_wire
    from cext._flows_py import FlowTable
    table = FlowTable(cext_wire.engine("py"))
    assert (s["max_flows"], s["idle_timeout"]) == (table.max_flows, table.idle_timeout)
    assert s["reassembly_memcap_mb"] << 20 == table.max_buffered
    limits = settings.flow_table(load("sensor", ["-i", "lo", "--kafka", "k",
                                                 "--reassembly-memcap-mb", "3"]))
    assert limits == {"max_flows": table.max_flows, "idle_timeout": table.idle_timeout,
                      "max_buffered": 3 << 20}
    assert settings.load("watch", {"interface": "lo"}, environ={})["idle_timeout"] == 30.0


def test_analyzer_config_from_settings(tmp_path):
    f = tmp_path / "a.toml"
    f.write_text("[analyzer]\nincident_resolve_hold_s = 90\n")
    cfg = load("analyzer", ["--kafka", "k:9092", "--config", str(f)]).pick(AnalyzerConfig)
    assert cfg.incident_resolve_hold_s == 90.0 and cfg.kafka == "k:9092"
    cfg = load("analyzer", ["--kafka", "k:9092", "--incident-resolve-hold-s", "0"]).pick(
        AnalyzerConfig)
    assert cfg.incident_resolve_hold_s == 0.0
    f.write_text("[analyzer]\nincident_resolve_hold_s = \"soon\"\n")
    with pytest.raises(ConfigError, match="must be a number"):
        load("analyzer", ["--kafka", "k:9092", "--config", str(f)])


def test_secrets_are_masked_in_the_startup_line():
    a = load("analyzer", ["--kafka", "k", "--webhook-url", "https://h.example:8443/hook?token=s3"])
    assert "s3" not in json.dumps(a.describe())
    assert a.describe()["webhook_url"] == "https://h.example:8443/hook?***"


@pytest.mark.parametrize("command", sorted(settings.COMMANDS))
def test_every_setting_has_help_and_a_flag(command):
    out = subprocess.run([sys.executable, "-m", "tlsdiag", command, "--help"], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    for name in settings.COMMANDS[command]:
        s = settings.BY_NAME[name]
        assert s.help and len(s.help) > 15, name
        if not s.hidden:
            assert s.option in out.stdout and settings.env_name(name) in out.stdout, name


def test_spool_default_survives_a_restart(monkeypatch):
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.setenv("TMPDIR", "/var/tmp/x")
    v = load("sensor", ["-i", "eth0", "--kafka", "k", "--sensor-id", "gw1/eth0"])
    assert sensor_cmd.spool_dir(v) == "/var/tmp/x/tlsdiag-spool/gw1_eth0"
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/tlsdiag-sensor")
    assert sensor_cmd.spool_dir(v) == "/var/lib/tlsdiag-sensor/tlsdiag-spool/gw1_eth0"
    v = load("sensor", ["-i", "eth0", "--kafka", "k", "--spool-dir", "/s"])
    assert sensor_cmd.spool_dir(v) == "/s"


def test_the_sensor_command_does_not_need_the_analyzer():
    """The sensor image ships without analyzer/: its command, settings and loop import none."""
    code = ("import sys, tlsdiag.commands.sensor as m; from tlsdiag import settings; "
            "m.build_parser().format_help(); settings.load('sensor', {'interface': 'lo', "
            "'kafka': 'k'}, environ={}); "
            "print(sorted({k.split('.')[0] for k in sys.modules} & {'analyzer'}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr


def test_the_units_example_config_loads_with_endpoint_hints_on():
    """deploy/systemd/sensor.toml is what tlsdiag-sensor.service reads: every key a sensor
    setting, the hints on (issue 13), and the unit grants what they need."""
    f = ROOT / "deploy" / "systemd" / "sensor.toml"
    v = load("sensor", ["--config", str(f)])
    assert v["endpoint_hints"] is True and v.sources["endpoint_hints"].endswith("endpoint_hints")
    assert (v["role"], v["interface"], v["backend"]) == ("router", "eth0", "auto")
    assert v["ports"] == (443, 8443) or list(v["ports"]) == [443, 8443]
    unit = (ROOT / "deploy" / "systemd" / "tlsdiag-sensor.service").read_text()
    assert "AmbientCapabilities=CAP_NET_RAW CAP_BPF CAP_SYS_ADMIN\n" in unit
    assert "perf_event_open" in unit.split("SystemCallFilter=", 1)[1].splitlines()[0]


@pytest.mark.parametrize("name,text,message", [
    # (read whole or not at all: a bad value past the first MiB was not seen)
    ("big.toml", "#" + "x" * (1 << 20) + "\nqueue_max = \"many\"\n", "is larger than 1048576 bytes"),
    ("deep.json", "[" * 100_000 + "]" * 100_000, "is not valid JSON: nested too deeply"),
    ("deep.toml", "a = " + "[" * 100_000 + "]" * 100_000 + "\n", "is not valid TOML: nested too deeply"),
])
def test_config_files_too_large_or_too_deep_are_one_line_errors(tmp_path, name, text, message):
    f = tmp_path / name
    f.write_text(text)
    with pytest.raises(ConfigError) as e:
        load("sensor", ["-i", "lo", "--kafka", "k", "--config", str(f)])
    assert message in str(e.value) and "\n" not in str(e.value)


def test_blank_text_does_not_drop_a_default(tmp_path):
    # (an analyzer without a consumer group, a topic named None)
    for argv, where in ((["--group", ""], "--group"), (["--topic-handshakes", " "], "--topic-handshakes")):
        with pytest.raises(ConfigError, match="^%s: must not be empty" % where):
            load("analyzer", ["--kafka", "k", *argv])
    f = tmp_path / "c.toml"
    f.write_text('instance = ""\n')
    with pytest.raises(ConfigError, match="^config file .*: instance: must not be empty"):
        load("analyzer", ["--kafka", "k", "--config", str(f)])
    # (a setting without a default takes blank text as unset)
    assert load("analyzer", ["--kafka", "k", "--webhook-url", ""])["webhook_url"] is None


@pytest.mark.parametrize("url", ["ftp://[::1", "not a url", "http://x:99999/"])
def test_a_webhook_url_is_checked_and_never_breaks_the_startup_line(url):
    with pytest.raises(ConfigError, match="^--webhook-url: must be an http"):
        load("analyzer", ["--kafka", "k", "--webhook-url", url])
    # (what urlsplit cannot read is not shown at all)
    assert settings._mask(url) == ("not a url" if url == "not a url" else "***")


def test_a_host_is_an_address_or_a_name_not_a_filter():
    # (it is spliced into the BPF expression: "x or 1=1" changed what was captured)
    assert load("sensor", ["-i", "lo", "--kafka", "k", "--host", "10.0.0.1", "--host", "gw-1.example.test",
                           "--host", "fe80::1"])["hosts"] == ("10.0.0.1", "gw-1.example.test", "fe80::1")
    for bad in ("x or 1=1", "10.0.0.1)", "net 10.0.0.0/8"):
        with pytest.raises(ConfigError, match="^--host: .* is not valid here"):
            load("sensor", ["-i", "lo", "--kafka", "k", "--host", bad])
