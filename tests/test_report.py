"""The text report (analyzer/report.py): every failure group printed under its own server's header.

Regression for issue 12: a server's ``==`` header was printed only the first time the server came up in the
count-sorted group list, so a later group of that server -- and the groups of other servers printed after
the header of the previous one -- landed under the wrong port (the 8490 group under 8482).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from analyzer.config import DiagnoseConfig, load_truststore, parse_local_nets
from analyzer.engine import Engine
from analyzer.report import Grouper, json_bytes, render

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "scenarios-tls13"

_HEADER = re.compile(r"^== (\S+)  \[.*\]  (\S+)$")
_GROUP = re.compile(r"^  (FAIL|WARN) (\S+)  x(\d+)  ")
_EXAMPLE = re.compile(r"^      example   connection (\S+) at ")


def _sections(text: str) -> list[tuple[str, str, str, int, str]]:
    """(section header server, direction, cause, count, example connection id) per group, as printed."""
    out = []
    server = direction = None
    pending: tuple[str, int] | None = None
    for line in text.splitlines():
        if line.startswith(("FAILED HANDSHAKES", "WARNINGS")):
            server = direction = None
        m = _HEADER.match(line)
        if m:
            server, direction = m.group(1), m.group(2)
            continue
        m = _GROUP.match(line)
        if m:
            assert server is not None, f"group before any server header: {line}"
            pending = (m.group(2), int(m.group(3)))
            continue
        m = _EXAMPLE.match(line)
        if m and pending is not None:
            out.append((server, direction, pending[0], pending[1], m.group(1)))
            pending = None
    return out


def _diag(d_id: str, server: str, cause: str, direction: str = "northbound", severity: str = "failure") -> dict:
    return {"id": d_id, "cause": cause, "severity": severity, "direction": direction, "rejected_by": "client",
            "confidence": "high", "time": "2026-12-02T00:00:00.000Z", "rule": "R", "explanation": "why",
            "evidence": {}, "remediation": "fix",
            "connection": {"client": "10.0.0.1:1000", "server": server, "server_name": "a.example"}}


def test_groups_of_one_server_stay_under_its_header():
    """Counts interleave servers (A:5, B:3, A:1, C:2): every group still prints under its own server."""
    ds = ([_diag(f"a{i}", "10.0.0.9:8482", "expired_certificate") for i in range(5)]
          + [_diag(f"b{i}", "10.0.0.9:8490", "hostname_mismatch") for i in range(3)]
          + [_diag("a9", "10.0.0.9:8482", "encrypted_failure")]
          + [_diag(f"c{i}", "10.0.0.9:8475", "unknown_certificate", "southbound") for i in range(2)]
          + [_diag("w1", "10.0.0.9:8490", "hostname_mismatch", severity="warning")])
    text = render(ds, None)
    server_of = {d["id"]: d["connection"]["server"] for d in ds}
    printed = _sections(text)
    assert len(printed) == 5
    for header, _direction, _cause, _n, example in printed:
        assert server_of[example] == header, text
    fails = [line for line in text.splitlines() if line.startswith("== ")]
    # one header per server among the failures (8482 first: most connections), then the warnings' own
    assert [h.split()[1] for h in fails] == ["10.0.0.9:8482", "10.0.0.9:8490", "10.0.0.9:8475", "10.0.0.9:8490"]


def test_grouper_order_keeps_servers_together():
    g = Grouper()
    for d in ([_diag("x", "s1:1", "c1")] * 4 + [_diag("y", "s2:1", "c2")] * 3 + [_diag("z", "s1:1", "c3")]):
        g.add(d)
    assert [(x.server, x.cause) for x in g.sorted()] == [("s1:1", "c1"), ("s1:1", "c3"), ("s2:1", "c2")]


def test_report_on_a_capture_with_several_servers_and_causes():
    """multi_server_report: 8 servers (4 per direction; 7 with failures), 24 failures of several causes,
    interleaved round-robin over 3 rounds.  Every group is under its server's header, each server's header
    appears once, the counts add up."""
    pipeline = pytest.importorskip("sensor.pipeline", reason="sensor pipeline not built")
    pcap = DATA / "multi_server_report.pcap"
    if not pcap.exists():
        pytest.skip(f"{pcap} missing")
    e = Engine(DiagnoseConfig(local_nets=parse_local_nets("10.10.1.1/32,10.10.3.1/32"),
                              truststores={"default": load_truststore(str(DATA / "pki" / "root.pem"))}))
    ds = [d for d in e.diagnose_pairs(pipeline.summarize_paths([str(pcap)])) if d["severity"] == "failure"]
    assert len(ds) == 24
    text = render(ds, e.stats.as_dict())
    server_of = {d["id"]: (d["connection"]["server"], d["direction"]) for d in ds}
    printed = _sections(text)
    assert sum(n for *_, n, _ in printed) == 24
    failing = {s for s, _ in server_of.values()}
    assert len(failing) == 7 and {s for s, *_ in printed} == failing     # the 8th server only succeeds
    assert len({c for _, _, c, _, _ in printed}) >= 6
    for header, direction, cause, _n, example in printed:
        assert server_of[example] == (header, direction), (header, cause, example)
    headers = [line.split()[1] for line in text.splitlines() if line.startswith("== ")]
    assert len(headers) == len(set(headers)) == 7
    assert "?" not in "".join(str(d["remediation"]) for d in ds)


# -- the diagnoses' JSON (diagnose --format jsonl, the analyzer's diagnoses topic) --------------------------

def _stdlib(obj: object) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


@pytest.mark.parametrize("capture", ["gateway-failures.pcap", "tls13-failures.pcap"])
def test_json_bytes_is_the_stdlib_encoding_of_every_diagnosis(capture):
    from sensor.pipeline import summarize_paths

    engine = Engine(DiagnoseConfig())
    pairs = list(summarize_paths([str(ROOT / "examples" / capture)]))
    diagnoses = [d for chunk in engine.diagnose_windows(pairs) for d in chunk]
    assert len(diagnoses) >= 10
    for d in diagnoses:
        assert json_bytes(d) == _stdlib(d)


def test_json_bytes_falls_back_to_the_stdlib_for_what_orjson_refuses():
    for obj in ({"id": 1 << 70}, {1: "int key"}, {"nested": [{"n": -(1 << 65)}], "name": "é"}):
        assert json_bytes(obj) == _stdlib(obj)
    # a lone surrogate (a hostile JSONL summary's "\udc80") has no UTF-8: escaped, it reads back the same
    obj = {"server_name": "lone \udc80 surrogate", "city": "Zürich"}
    assert json_bytes(obj) == b'{"server_name":"lone \\udc80 surrogate","city":"Z\\u00fcrich"}'
    assert json.loads(json_bytes(obj)) == obj


def test_json_bytes_floats():
    # what a diagnosis holds (age_s, rounded to ms) is spelled alike; tiny and non-finite ones are not
    for v in (0.0, 0.001, 1.5, 86400.125, 1733300000.123):
        assert json_bytes({"age_s": v}) == _stdlib({"age_s": v})
    assert json_bytes({"v": 1e-05}) == b'{"v":0.00001}'
    assert json_bytes({"v": float("nan")}) == b'{"v":null}'     # (the stdlib's NaN is not JSON)


def test_printable_escapes_what_a_terminal_acts_on():
    from proto.text import printable
    assert printable("api.example.test") == "api.example.test" and printable(443) == "443"
    assert printable("a\x1b[2J\x07\n\x7f\x9b\u00e9\udcff") == "a\\x1b[2J\\x07\\x0a\\x7f\\x9b\u00e9\\udcff"
    printable("\udcff").encode("utf-8")
