"""``diagnose --jobs N``: each window's diagnosis split by server over N worker processes gives what one
process gives -- the same report, the same JSON lines in the same order, the same profiles saved -- on the
bundled failure captures, also with windows of one connection (the remembered chains carried from window to
window through the workers)."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from analyzer.config import DiagnoseConfig
from analyzer.engine import Engine
from analyzer.parallel import WorkerFailed, fold_windows, part_of
from analyzer.report import Grouper, render
from sensor.pipeline import summarize_paths
from tests.support.summaries import MODERN_SUITES, alert, make_summary

ROOT = Path(__file__).resolve().parents[1]
CAPTURES = sorted((ROOT / "tests" / "data" / "scenarios").glob("*.pcap")) \
    + sorted((ROOT / "tests" / "data" / "scenarios-tls13").glob("*.pcap")) \
    + [ROOT / "examples" / "gateway-failures.pcap"]
#: the chain a TLS 1.2 handshake showed, recalled for a later TLS 1.3 failure of the same server
MEMORY = sorted((ROOT / "tests" / "data" / "scenarios-tls13").glob("memory_*.pcap"))


@pytest.fixture(scope="module")
def pairs() -> list:
    return list(summarize_paths([str(p) for p in CAPTURES]))


class _Listed:
    """A fold that keeps every diagnosis with its position."""

    def __init__(self) -> None:
        self.got: list = []

    def add(self, position: int, d: dict) -> None:
        self.got.append((position, d))


def _diagnoses(pairs: list, jobs: int, window: int, config: DiagnoseConfig | None = None
               ) -> tuple[list, dict, list]:
    engine = Engine(config or DiagnoseConfig())
    out = []
    for folds in fold_windows(engine, pairs, jobs, _Listed, window=window):
        out += [d for _k, d in sorted((x for f in folds for x in f.got), key=lambda x: x[0])]
    profiles = [p.to_json() for p in engine.profiles]
    return out, engine.stats.as_dict(), profiles


def test_the_captures_spread_over_the_workers(pairs):
    # (else the tests below would not compare anything split)
    for jobs in (2, 3):
        assert len({part_of(s, jobs) for s, _c in pairs}) == jobs


@pytest.mark.parametrize("jobs", [2, 3])
@pytest.mark.parametrize("window", [0, 1, 5])
def test_same_diagnoses_same_order_same_state(pairs, jobs, window):
    one = _diagnoses(pairs, 1, window)
    assert one[0] and any(d["severity"] == "failure" for d in one[0])
    assert _diagnoses(pairs, jobs, window) == one


def test_a_chain_remembered_in_one_window_is_recalled_in_the_next():
    pairs = list(summarize_paths([str(p) for p in MEMORY]))
    one = _diagnoses(pairs, 1, 1)[0]
    assert any("remembered" in str(d) for d in one)
    # one connection per window: every window's memory came back from the workers
    assert _diagnoses(pairs, 2, 1)[0] == one


def test_exact_when_the_profile_store_overflows():
    # more (server, SNI) keys than profile_max_servers: one process evicts by the order of all of
    # them, and --jobs must too (the profiles are learned in one process, in input order; workers
    # that learned only their own servers' evicted otherwise -- tried: hs-100k's 84,670 keys
    # against 10,000 told them apart).  No chain in clear: the chain memory (the same bound,
    # inexact past it by design) stays empty
    rng = random.Random(7)
    pairs = []
    for _ in range(400):
        server, sni = f"10.9.{rng.randrange(16)}.1:443", f"h{rng.randrange(5)}.example"
        if rng.random() < 0.7:
            s = make_summary(server=server, sni=sni, version=rng.choice(["TLSv1.2", "TLSv1.3"]),
                             cipher=rng.choice(MODERN_SUITES))
        else:
            s = make_summary(server=server, sni=sni, established=False, version=None, cipher=None,
                             history="Cl", client_versions=["TLSv1.0", "TLSv1.1"],
                             alerts=[alert("server", "protocol_version", "client_hello")])
        pairs.append((s, {}))
    config = DiagnoseConfig(profile_max_servers=12)
    for window in (0, 100):
        one = _diagnoses(pairs, 1, window, config)
        failures = [d for d in one[0] if d["severity"] == "failure"]
        # (the failures read the servers' profiles, evicted and learned again along the way)
        assert len(failures) > 50 and sum("server_profile" in d["evidence"] for d in failures) > 20
        assert len({(s["server"], s["server_name"]) for s, _c in pairs}) == 80 > len(one[2]) == 12
        assert _diagnoses(pairs, 2, window, config) == one


def test_the_groups_of_split_diagnoses_merged_are_the_groups_of_all(pairs):
    all_ = _diagnoses(pairs, 1, 0)[0]
    whole = Grouper()
    for d in all_:
        whole.add(d)
    halves = [Grouper(), Grouper()]
    for d in all_:
        halves[part_of({"server": d["connection"]["server"]}, 2)].add(d)
    assert halves[0].groups and halves[1].groups
    merged = Grouper()
    for h in halves:
        merged.merge(h)
    assert render(merged) == render(whole)
    # and a group counted in two windows: counts added, the first example kept
    twice = Grouper()
    for chunk in (all_[:len(all_) // 2], all_[len(all_) // 2:]):
        g = Grouper()
        for d in chunk:
            g.add(d)
        twice.merge(g)
    assert render(twice) == render(whole)


class _Failing:
    def add(self, position: int, d: dict) -> None:
        raise ValueError("boom in a worker")


def test_a_failing_worker_is_a_bug_with_its_traceback(pairs):
    """A worker that raised is a bug (``WorkerFailed``: diagnose lets it reach tlsdiag.cli, exit
    status 3, as in one process), not a JobsError of resources (exit status 2)."""
    with pytest.raises(WorkerFailed, match="(?s)worker.*failed.*Traceback.*boom in a worker"):
        for _folds in fold_windows(Engine(DiagnoseConfig()), pairs, 2, _Failing):
            pass


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tlsdiag", "diagnose", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)


@pytest.mark.parametrize("fmt, warnings, jobs", [("text", True, "2"), ("text", False, "3"),
                                                 ("jsonl", True, "3"), ("jsonl", False, "2")])
def test_the_command_gives_the_same_bytes(tmp_path, fmt, warnings, jobs):
    files = [str(p) for p in CAPTURES]
    extra = [] if warnings else ["--no-warnings"]
    got = {}
    for jobs in ("1", jobs):
        saved = tmp_path / f"profiles-{jobs}.json"
        p = _cli(*files, "--format", fmt, "--jobs", jobs, "--color", "never",
                 "--profiles-save", str(saved), *extra)
        assert p.returncode == 1, p.stderr      # failures diagnosed
        got[jobs] = (p.stdout, p.stderr, saved.read_bytes())
    assert got["1"][0].count("\n") > 20
    assert got[jobs] == got["1"]
