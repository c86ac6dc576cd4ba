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
        assert d["cause"] == EXPECTED[port], d["explanation"]
        if d["evidence"]["version"] == "TLSv1.3":
            # the certificate is encrypted: the cause comes from the chain the same server showed in clear to
            # the TLS 1.2 clients just before, with its age in the evidence
            assert d["rule"].startswith("TLS13-REMEMBERED-") and d["confidence"] == "medium"
            mem = d["evidence"]["remembered_chain"]
            assert mem["used"] and mem["seen_in"]["version"] == "TLSv1.2" and 0 <= mem["age_s"] < 60
            assert "sent in clear" in d["explanation"]
    rules = sorted({d["rule"] for d in ds if d["evidence"]["version"] == "TLSv1.2"})
    assert any(r.startswith("TLS-CLOSE-AFTER-HANDSHAKE-") for r in rules)   # Node: FIN after the handshake
    assert any(r.startswith("TLS-CERT-") for r in rules)                    # Go: bad_certificate alert


def test_tls13_rejections_without_memory_stay_encrypted_failure():
    """The same TLS 1.3 rejections with no TLS 1.2 handshake before them: nothing was ever seen in clear, so
    the cause stays encrypted_failure and the evidence says what would confirm it (the probe)."""
    pipeline = pytest.importorskip("sensor.pipeline")
    e = Engine(DiagnoseConfig(role="router",
                              truststores={"default": load_truststore(str(DATA / "node_go_root.pem"))}))
    items = [it for it in pipeline.summarize_paths([str(DATA / "node_go_clients.pcap")])
             if it[0]["version"] == "TLSv1.3"]
    ds = e.diagnose_pairs(items)
    assert len(ds) == 8 and {d["cause"] for d in ds} == {"encrypted_failure"}
    for d in ds:
        assert d["rejected_by"] == "client" and "tlsdiag probe 127.0.0.1:94" in d["raise_confidence"]
