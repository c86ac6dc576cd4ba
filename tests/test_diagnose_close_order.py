"""A TLS 1.3 server refusing a client without a certificate, when the client's FIN comes
before the server's (a real capture: openssl s_server's shutdown delayed 300 ms with strace,
so the race the live topology test hits now and then happens every time).  The close order
must not decide the diagnosis: the server's encrypted alert, right after its Finished, is evidence enough."""

from __future__ import annotations

from pathlib import Path

from analyzer.config import DiagnoseConfig, parse_local_nets
from analyzer.engine import Engine
from sensor.pipeline import summarize_paths

DATA = Path(__file__).resolve().parent / "data" / "diagnose"


def test_certless_client_refused_whoever_closes_first():
    items = list(summarize_paths([str(DATA / "mtls_tls13_north_client_fin_first.pcap")]))
    assert len(items) == 1
    s = items[0][0]
    assert s["version"] == "TLSv1.3" and s["close"]["fin"][0] == "client"
    assert any(a["from"] == "server" for a in s["encrypted_alerts"])
    ds = Engine(DiagnoseConfig(role="router", local_nets=parse_local_nets(["10.10.1.1/32"]))).diagnose_pairs(items)
    failures = [d for d in ds if d["severity"] == "failure"]
    assert len(failures) == 1, ds
    assert failures[0]["cause"] == "client_certificate_missing"     # the 25-byte empty Certificate
    assert failures[0]["rejected_by"] == "server"
