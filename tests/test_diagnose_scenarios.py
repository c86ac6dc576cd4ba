"""End to end: real failure captures (tests/data/scenarios) and the shared corpus through
sensor.pipeline.summarize_paths and the diagnosis engine.

* scenarios: every connection gets the expected cause, direction and rejecting side; successful controls
  get no failure diagnosis (and the expected warning when the scenario names one);
* corpus (../shared/corpus): no failure diagnosis on any connection Zeek marks established; the causes
  given to the failed ones are printed (``pytest -s``) and must be real causes.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from analyzer.config import DiagnoseConfig, load_truststore, parse_local_nets
from analyzer.engine import Engine
from proto.names import is_tls13_name
from analyzer.causes import FAILURE_CAUSES

ROOT = Path(__file__).resolve().parents[1]
SCEN = ROOT / "tests" / "data" / "scenarios"
#: the shared corpus sits next to the checkout (/work/main -> /work/shared), or next to the worktrees' directory
CORPUS = next((p for p in (ROOT.parent / "shared" / "corpus", ROOT.parents[1] / "shared" / "corpus") if p.exists()),
              ROOT.parent / "shared" / "corpus")
EXAMPLE = ROOT / "examples" / "gateway-failures.pcap"

#: the gateway's own addresses in the scenario topology: Router (northbound server) and MP (southbound client)
GATEWAY_NETS = "10.10.1.1/32,10.10.3.1/32"


def _pipeline():
    return pytest.importorskip("sensor.pipeline", reason="sensor pipeline not built")


def _expected_rows() -> list[dict]:
    path = SCEN / "expected.jsonl"
    if not path.exists():
        pytest.skip(f"no scenario captures yet ({path} missing): run tests/scenarios/generate.py as root")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _engine(**kw) -> Engine:
    stores = {}
    root = SCEN / "pki" / "root.pem"
    if root.exists():
        stores["default"] = load_truststore(str(root))
    return Engine(DiagnoseConfig(local_nets=parse_local_nets(GATEWAY_NETS), truststores=stores, **kw))


def _diagnose(paths: list[Path], engine: Engine) -> tuple[dict[tuple[str, str], list[dict]], list[dict]]:
    pipeline = _pipeline()
    items = list(pipeline.summarize_paths([str(p) for p in paths]))
    summaries = [s for s, _ in items]
    by_conn: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for s, _ in items:
        by_conn.setdefault((s["client"], s["server"]), [])
    for d in engine.diagnose_pairs(items):
        by_conn[(d["connection"]["client"], d["connection"]["server"])].append(d)
    return by_conn, summaries


@pytest.fixture(scope="module")
def scenario_results():
    rows = _expected_rows()
    pcaps = sorted({SCEN / r["pcap"] for r in rows})
    missing = [p for p in pcaps if not p.exists()]
    if missing:
        pytest.skip(f"scenario pcaps missing: {missing[:3]}")
    by_conn, summaries = _diagnose(pcaps, _engine())
    return rows, by_conn, summaries


def _row_id(row: dict) -> str:
    return f"{row['scenario']}:{row['client']}"


def test_every_scenario_connection_is_summarized(scenario_results):
    rows, by_conn, _ = scenario_results
    missing = [_row_id(r) for r in rows if (r["client"], r["server"]) not in by_conn]
    assert not missing, f"no summary for {missing}"


#: Connections (``scenario:client``) whose failure the sensor is known not to show: a TLS 1.3 summary closed
#: before the server reacted to the client's Finished, so a server-side rejection after that point is not in
#: it.  Strict both ways: a connection missed that way and not listed fails the test, and so does a listed
#: one that is now diagnosed (take it off the list).  Empty since the sensor waits for that reaction
#: (e888050); add an id here only with the evidence in the commit.
KNOWN_GAPS: frozenset[str] = frozenset()


def _sensor_gap(s: dict | None) -> bool:
    """A TLS 1.3 summary the sensor closed before the server reacted to the client's Finished (no close seen)."""
    return bool(s and is_tls13_name(s.get("version")) and s.get("established")
                and not (s.get("close") or {}).get("fin") and not (s.get("close") or {}).get("rst"))


def _known_gap(row: dict, fails: list[dict], summary: dict | None) -> bool:
    return _row_id(row) in KNOWN_GAPS and not fails and _sensor_gap(summary)


def test_scenario_failures_diagnosed(scenario_results):
    rows, by_conn, summaries = scenario_results
    by_summary = {(s["client"], s["server"]): s for s in summaries}
    wrong, gaps = [], set()
    for r in rows:
        if not r.get("expected_cause"):
            continue
        fails = [d for d in by_conn.get((r["client"], r["server"]), []) if d["severity"] == "failure"]
        got = [(d["cause"], d["direction"], d["rejected_by"]) for d in fails]
        want = (r["expected_cause"], r["direction"], r["rejected_by"])
        if got != [want]:
            if _known_gap(r, fails, by_summary.get((r["client"], r["server"]))):
                gaps.add(_row_id(r))
                continue
            why = fails[0]["explanation"] if fails else "no failure diagnosis"
            wrong.append(f"{_row_id(r)} ({r['stacks']}): want {want}, got {got}: {why}")
    assert not wrong, "\n".join(wrong)
    assert not KNOWN_GAPS - gaps, f"known gaps now diagnosed (remove them from KNOWN_GAPS): {sorted(KNOWN_GAPS - gaps)}"


def test_scenario_successes_get_no_failure(scenario_results):
    rows, by_conn, _ = scenario_results
    wrong = []
    for r in rows:
        if r.get("expected_cause"):
            continue
        ds = by_conn.get((r["client"], r["server"]), [])
        fails = [d["cause"] for d in ds if d["severity"] == "failure"]
        if fails:
            wrong.append(f"{_row_id(r)} ({r['stacks']}): success diagnosed as {fails}")
        if r.get("expected_warning"):
            warns = [d["cause"] for d in ds if d["severity"] == "warning"]
            if r["expected_warning"] not in warns:
                wrong.append(f"{_row_id(r)}: expected warning {r['expected_warning']}, got {warns}")
    assert not wrong, "\n".join(wrong)


def test_scenarios_without_truststore_still_name_the_cause(scenario_results):
    """Without --truststore the wire alone must still give the same cause for every failure
    (the trust-dependent ones may fall back to the alert's own meaning)."""
    rows, _, summaries = scenario_results
    by_summary = {(s["client"], s["server"]): s for s in summaries}
    pcaps = sorted({SCEN / r["pcap"] for r in rows})
    by_conn, _ = _diagnose(pcaps, Engine(DiagnoseConfig(local_nets=parse_local_nets(GATEWAY_NETS))))
    wrong = []
    for r in rows:
        if not r.get("expected_cause"):
            continue
        fails = [d for d in by_conn.get((r["client"], r["server"]), []) if d["severity"] == "failure"]
        if [d["cause"] for d in fails] != [r["expected_cause"]]:
            if _known_gap(r, fails, by_summary.get((r["client"], r["server"]))):
                continue    # listed, and checked by test_scenario_failures_diagnosed
            wrong.append(f"{_row_id(r)}: want {r['expected_cause']}, got {[d['cause'] for d in fails]}")
    assert not wrong, "\n".join(wrong)


def test_every_failure_cause_comes_out_of_a_real_capture(scenario_results):
    """Each failure cause of the registry is the diagnosis of at least one real connection (the scenario
    captures: real TLS stacks in network namespaces), and is what that scenario expected."""
    rows, by_conn, _ = scenario_results
    diagnosed = {d["cause"] for ds in by_conn.values() for d in ds if d["severity"] == "failure"}
    expected = {r["expected_cause"] for r in rows if r.get("expected_cause")}
    missing = [c.id for c in FAILURE_CAUSES if c.id not in diagnosed or c.id not in expected]
    assert not missing, f"failure causes without a real capture: {missing}"


def test_example_capture(tmp_path):
    if not EXAMPLE.exists():
        pytest.skip(f"{EXAMPLE} not generated yet")
    by_conn, summaries = _diagnose([EXAMPLE], _engine())
    fails = [d for ds in by_conn.values() for d in ds if d["severity"] == "failure"]
    assert fails and {d["cause"] for d in fails} <= {c.id for c in FAILURE_CAUSES}


# ------------------------------------------------------------------------------------------- corpus


def _corpus_files(tmp: Path) -> list[Path]:
    if not CORPUS.exists():
        pytest.skip(f"shared corpus not present at {CORPUS}")
    return sorted(p for p in CORPUS.rglob("*.pcap*") if p.suffix in (".pcap", ".gz"))


def _endpoint(ip: str, port: object) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def test_corpus_no_failure_on_established_connections(tmp_path, capsys):
    files = _corpus_files(tmp_path)
    expected = [json.loads(line) for line in (CORPUS / "expected.jsonl").read_text().splitlines()]
    established: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for row in expected:
        if row.get("transport") == "tcp" and row.get("established") and row.get("client_port") is not None:
            established[row["file"]].add((_endpoint(row["client_ip"], row["client_port"]),
                                          _endpoint(row["server_ip"], row["server_port"])))
    pipeline = _pipeline()
    from sensor.capture import CaptureError
    wrong, failed_lines, checked = [], [], 0
    for path in files:
        rel = str(path.relative_to(CORPUS))
        items = []
        try:
            for item in pipeline.summarize_paths([str(path)]):
                items.append(item)
        except CaptureError:
            pass   # corrupt on purpose (bug-1450-*): what was read is still diagnosed
        engine = Engine(DiagnoseConfig())
        for d in engine.diagnose_pairs(items):
            conn = (d["connection"]["client"], d["connection"]["server"])
            flipped = (conn[1], conn[0])
            if d["severity"] != "failure":
                continue
            assert d["cause"] in {c.id for c in FAILURE_CAUSES}
            failed_lines.append(f"{rel}: {conn[0]} -> {conn[1]}: {d['cause']} ({d['confidence']}, "
                                f"rejected by {d['rejected_by']}): {d['explanation'][:160]}")
            if conn in established.get(rel, ()) or flipped in established.get(rel, ()):
                wrong.append(f"{rel} {conn}: established per Zeek but diagnosed {d['cause']}: {d['explanation']}")
        checked += len(established.get(rel, ()))
    with capsys.disabled():
        print(f"\ncorpus: {len(files)} files, {checked} established connections checked, "
              f"{len(failed_lines)} failed connections diagnosed:")
        for line in failed_lines:
            print("  " + line)
    assert checked >= 40
    assert not wrong, "\n".join(wrong)


def test_corpus_sha1_chains_are_not_mismatched():
    files = [CORPUS / "zeek" / n for n in ("ecdhe.pcap", "tls1.2.pcap", "google-duplicate.pcap")]
    if not all(p.exists() for p in files):
        pytest.skip("corpus files missing")
    pipeline = _pipeline()
    engine = Engine(DiagnoseConfig())
    ds = engine.diagnose_pairs(list(pipeline.summarize_paths([str(p) for p in files])))
    problems = [p["problem"] for d in ds for p in d["evidence"].get("server_certificates", {}).get("problems", [])]
    assert "issuer_mismatch" not in problems
    assert engine.stats.established >= 3
