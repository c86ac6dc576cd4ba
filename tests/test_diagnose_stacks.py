"""Stacks the scenario generator does not use (Node.js, Go): their rejections, diagnosed from a real capture."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analyzer.config import DiagnoseConfig, load_truststore
from analyzer.engine import Engine

DATA = Path(__file__).resolve().parent / "data" / "diagnose"

#: port -> cause of the TLS 1.2 rejections (Go alerts, Node closes after the handshake)
EXPECTED = {
    9441: "hostname_mismatch",
    9442: "expired_certificate",
    9443: "incomplete_chain",
    9444: "unknown_certificate",
}


def test_node_and_go_rejections():
    pipeline = pytest.importorskip("sensor.pipeline")
    e = Engine(DiagnoseConfig(role="router",
                              truststores={"default": load_truststore(str(DATA / "node_go_root.pem"))}))
    items = list(pipeline.summarize_paths([str(DATA / "node_go_clients.pcap")]))
    assert len(items) == 16
    ds = e.diagnose_pairs(items)
    assert len(ds) == 16 and all(d["severity"] == "failure" for d in ds), json.dumps(ds)[:500]
    for d in ds:
        port = int(d["connection"]["server"].rsplit(":", 1)[1])
        assert d["rejected_by"] == "client" and d["direction"] == "northbound"
        if d["evidence"]["version"] == "TLSv1.3":
            assert d["cause"] == "encrypted_failure"
        else:
            assert d["cause"] == EXPECTED[port], d["explanation"]
    rules = sorted({d["rule"] for d in ds if d["evidence"]["version"] == "TLSv1.2"})
    assert any(r.startswith("TLS-CLOSE-AFTER-HANDSHAKE-") for r in rules)   # Node: FIN after the handshake
    assert any(r.startswith("TLS-CERT-") for r in rules)                    # Go: bad_certificate alert
