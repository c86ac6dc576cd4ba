"""deploy/prometheus/tlsdiag-rules.yml: valid for Prometheus (``promtool check rules``), its
unit tests pass (``promtool test rules`` with tlsdiag-rules.test.yml: each alert fires on its
series after its ``for`` and not on the look-alikes), every alert is tested firing, and every
metric a rule reads is one tlsdiag exports (a renamed metric would silently disarm a rule)."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "deploy" / "prometheus" / "tlsdiag-rules.yml"
RULE_TESTS = REPO / "deploy" / "prometheus" / "tlsdiag-rules.test.yml"
#: where the metrics are made (tlsdiag/metrics.py renders what these return)
EXPORTERS = ("tlsdiag/commands/sensor.py", "tlsdiag/commands/common.py",
             "analyzer/service/consumer.py", "analyzer/service/alertmanager.py")


def promtool(*args):
    exe = shutil.which("promtool")
    if exe is None:
        pytest.skip("promtool is not installed (apt-get install prometheus; .ci/run installs it)")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=120)


def rules():
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def test_promtool_check_rules():
    out = promtool("check", "rules", str(RULES))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: %d rules found" % len(rules()) in out.stdout, out.stdout


def test_promtool_unit_tests():
    out = promtool("test", "rules", str(RULE_TESTS))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_example_configurations_are_valid():
    """deploy/prometheus/prometheus.yml (with the rules it loads) and
    deploy/alertmanager/alertmanager.yml, as Prometheus' and Alertmanager's own tools read them."""
    out = promtool("check", "config", str(REPO / "deploy" / "prometheus" / "prometheus.yml"))
    assert out.returncode == 0 and "SUCCESS: 1 rule files found" in out.stdout, \
        out.stdout + out.stderr
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip("amtool is not installed (apt-get install prometheus-alertmanager)")
    out = subprocess.run([amtool, "check-config", str(REPO / "deploy" / "alertmanager" /
                                                      "alertmanager.yml")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "SUCCESS" in out.stdout, out.stdout + out.stderr


def test_every_alert_is_tested_firing_and_says_what_to_do():
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    fired = {t["alertname"] for group in tests for t in group.get("alert_rule_test", [])
             if t.get("exp_alerts")}
    alerts = [r for r in rules() if "alert" in r]
    assert {r["alert"] for r in alerts} == fired
    for r in alerts:
        assert r["labels"]["severity"] in ("critical", "warning", "info"), r
        assert r["annotations"]["summary"] and r["annotations"]["description"], r


def test_rules_read_only_metrics_tlsdiag_exports():
    exported = set()
    for f in EXPORTERS:
        exported |= set(re.findall(r'"((?:tlsdiag|handshake)_[a-z0-9_]+)"',
                                   (REPO / f).read_text()))
    assert {"handshake_failures_total", "tlsdiag_sensor_summaries_total",
            "tlsdiag_analyzer_record_age_seconds", "tlsdiag_build_info"} <= exported
    used = set()
    for r in rules():
        expr = re.sub(r"\btlsdiag:[a-z0-9_:]+", "", r["expr"])     # recorded series
        used |= set(re.findall(r"\b((?:tlsdiag|handshake)_[a-z0-9_]+)\b", expr))
    assert used and used <= exported, sorted(used - exported)
    # and every recording rule a rule reads is defined here
    records = {r["record"] for r in rules() if "record" in r}
    for r in rules():
        for name in re.findall(r"\b(tlsdiag:[a-z0-9_:]+)\b", r["expr"]):
            assert name in records, (name, r)
