"""End to end on issue 12's TLS 1.3 captures (tests/data/scenarios-tls13: 13 real-stack pcaps, 956 connections):
every failure right in cause, direction and rejecting side, no success diagnosed as a failure, and the
chain memory naming the exact cause of TLS 1.3 failures whose server showed its chain in TLS 1.2.

Scored with ``tests/scenarios/compare13.py``'s own verdict function (the one the README's command uses), over
one engine run of all the captures, as ``tlsdiag diagnose --format jsonl tests/data/scenarios-tls13/*.pcap``
does.  The data itself is checked by test_scenarios_tls13_data.py.
"""

from __future__ import annotations

import collections
import json
import sys
from pathlib import Path

import pytest

from analyzer.causes import CAUSES
from analyzer.config import DiagnoseConfig, load_truststore, parse_local_nets
from analyzer.engine import Engine

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "scenarios-tls13"
sys.path.insert(0, str(ROOT / "tests" / "scenarios"))
import compare13  # noqa: E402

GATEWAY_NETS = "10.10.1.1/32,10.10.3.1/32"

#: Connections (``scenario:client``) the wire cannot diagnose exactly, with the reason.  Strict both ways: a
#: connection that is not right and not listed fails the test, and so does a listed one that is now right.
#: Empty: every one of the 179 failures is right (cause, direction, rejecting side) -- where the capture alone
#: cannot say more than ``encrypted_failure`` the expected line says so itself (``cause_source: none``).
KNOWN_GAPS: dict[str, str] = {}


def _pipeline():
    return pytest.importorskip("sensor.pipeline", reason="sensor pipeline not built")


def _rows() -> list[dict]:
    path = DATA / "expected.jsonl"
    if not path.exists():
        pytest.skip(f"{path} missing: run tests/scenarios/generate_tls13.py")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _engine(**kw) -> Engine:
    return Engine(DiagnoseConfig(local_nets=parse_local_nets(GATEWAY_NETS),
                                 truststores={"default": load_truststore(str(DATA / "pki" / "root.pem"))}, **kw))


def _run(engine: Engine, pcaps: list[Path]) -> dict[tuple[str, str], list[dict]]:
    items = list(_pipeline().summarize_paths([str(p) for p in pcaps]))
    by_conn: dict[tuple[str, str], list[dict]] = collections.defaultdict(list)
    for d in engine.diagnose_pairs(items):
        by_conn[(d["connection"]["client"], d["connection"]["server"])].append(d)
    return by_conn


@pytest.fixture(scope="module")
def results():
    rows = _rows()
    pcaps = sorted({DATA / r["pcap"] for r in rows})
    engine = _engine()
    return rows, _run(engine, pcaps), engine


def _id(r: dict) -> str:
    return f"{r['scenario']}:{r['client']}"


def test_every_connection_right(results):
    rows, by_conn, _ = results
    wrong, gaps = [], set()
    counts: collections.Counter[str] = collections.Counter()
    for r in rows:
        v, got = compare13.verdict(r, by_conn.get((r["client"], r["server"]), []))
        counts[v] += 1
        if v == "right":
            continue
        if _id(r) in KNOWN_GAPS:
            gaps.add(_id(r))
            continue
        wrong.append(f"{v}: {_id(r)} ({r['stacks']}): want {r['expected_cause']}/{r['direction']}/"
                     f"{r['rejected_by']}, got {got}")
    assert not wrong, "\n".join(wrong)
    assert set(KNOWN_GAPS) == gaps, f"known gaps now right (take them off KNOWN_GAPS): {sorted(set(KNOWN_GAPS) - gaps)}"
    assert counts["right"] == len(rows) - len(gaps) and counts["false_alarm"] == 0
    assert sum(1 for r in rows if r["expected_cause"]) == 179      # the failures of the capture set


def test_silent_classes_are_found_by_every_stack(results):
    """Issue 12's silent classes, per client stack: a client certificate rejected after the client's TLS 1.3
    flight, and a declined PSK (JSSE's encrypted abort at certificate rotation)."""
    rows, by_conn, _ = results
    seen: collections.Counter[tuple[str, str]] = collections.Counter()
    for r in rows:
        if r["issue_class"] not in ("client_cert_after_flight", "psk_rotation") or not r["expected_cause"]:
            continue
        fails = [d for d in by_conn[(r["client"], r["server"])] if d["severity"] == "failure"]
        assert len(fails) == 1, _id(r)
        stack = next((k for k, v in {"JSSE": "JSSE", "OpenSSL": "s_client", "Python": "Python"}.items()
                      if v in r["stacks"].split(" -> ")[0]), "?")
        seen[(r["issue_class"], stack)] += 1
        if r["kind"] == "psk_declined":
            assert r["psk_offered"] and not r["resumed"]
    for cls in ("client_cert_after_flight",):
        for stack in ("JSSE", "OpenSSL", "Python"):
            assert seen[(cls, stack)] >= 4, (cls, stack, seen)
    assert seen[("psk_rotation", "JSSE")] == 2


def test_memory_gives_exact_causes_with_their_age(results):
    """Every failure whose exact cause needs the chain seen earlier (``cause_source: memory``) gets it from
    the chain memory: the evidence names the earlier handshake and states the age, close to the one the
    capture shows (the expected line's ``memory_age_s``)."""
    rows, by_conn, _ = results
    mem = [r for r in rows if r["cause_source"] == "memory"]
    assert len(mem) >= 30
    for r in mem:
        (d,) = [d for d in by_conn[(r["client"], r["server"])] if d["severity"] == "failure"]
        assert d["cause"] == r["expected_cause"], _id(r)
        ev = d["evidence"].get("remembered_chain")
        assert ev is not None and ev["used"], (_id(r), d["rule"])
        assert abs(ev["age_s"] - r["memory_age_s"]) < 5, (_id(r), ev["age_s"], r["memory_age_s"])
        assert ev["seen_in"]["version"] == "TLSv1.2"
        assert "earlier" in d["explanation"] and "tlsdiag probe " + r["server"] in d["raise_confidence"]
        assert "?" not in d["remediation"], d["remediation"]


def test_no_memory_no_exact_cause():
    """memory_expired_south begins with three JSSE TLS 1.3 failures before any TLS 1.2 handshake showed the
    (expired) chain: they stay encrypted_failure -- the memory is causal, later sightings do not leak back."""
    rows = [r for r in _rows() if r["scenario"] == "memory_expired_south"]
    by_conn = _run(_engine(), [DATA / "memory_expired_south.pcap"])
    causes = [[d["cause"] for d in by_conn[(r["client"], r["server"])] if d["severity"] == "failure"] for r in rows]
    assert causes == [["encrypted_failure"]] * 3 + [["expired_certificate"]] * 5


def test_every_cause_of_the_registry_comes_out_of_a_real_capture(results):
    """Every cause of the registry, failures and warnings, is the diagnosis of a real connection of the two
    scenario sets (real TLS stacks in network namespaces).  The warning-only expiring_certificate needs the
    warning window widened to reach this PKI's certificates (valid ~13 months at capture time)."""
    rows, by_conn, _ = results
    got = {d["cause"] for ds in by_conn.values() for d in ds}
    old = sorted((ROOT / "tests" / "data" / "scenarios").glob("*.pcap"))
    if not old:
        pytest.skip("tests/data/scenarios not generated")
    e = Engine(DiagnoseConfig(local_nets=parse_local_nets(GATEWAY_NETS), truststores={
        "default": load_truststore(str(ROOT / "tests" / "data" / "scenarios" / "pki" / "root.pem"))}))
    got |= {d["cause"] for ds in _run(e, old).values() for d in ds}
    wide = _run(_engine(expiry_warning_days=400), [DATA / "multi_server_report.pcap"])
    got |= {d["cause"] for ds in wide.values() for d in ds if d["severity"] == "warning"}
    assert {c.id for c in CAUSES} <= got, sorted({c.id for c in CAUSES} - got)


def test_example_capture():
    """examples/tls13-failures.pcap (seven of these captures merged) against its expected file."""
    example = ROOT / "examples" / "tls13-failures.pcap"
    rows = [json.loads(line) for line in (ROOT / "examples" / "tls13-failures.expected.jsonl").read_text().splitlines()
            if line.strip()]
    by_conn = _run(_engine(), [example])
    verdicts = collections.Counter(compare13.verdict(r, by_conn.get((r["client"], r["server"]), []))[0] for r in rows)
    assert verdicts == {"right": 106}, verdicts
