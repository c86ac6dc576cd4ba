"""Tests of the tlsdiag-JSONL -> shared-peer-format converter (pytest bench/)."""
from __future__ import annotations

import io
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import convert  # noqa: E402

CIPHERS, ALERTS, SOURCE = None, None, None


def tables():
    global CIPHERS, ALERTS, SOURCE
    if CIPHERS is None:
        shared = HERE.parents[1] / "shared" / "bench"
        sys.path.insert(0, str(shared))
        CIPHERS, ALERTS, SOURCE = convert.load_tables()
    return CIPHERS, ALERTS


def conv(records):
    c, a = tables()
    out = io.StringIO()
    lines = [json.dumps(r) if isinstance(r, dict) else r for r in records]
    st = convert.convert_lines(lines, out, c, a)
    return [json.loads(x) for x in out.getvalue().splitlines()], st


def test_tls13_names_to_codes():
    rows, st = conv([{"client": "10.0.0.1:5000", "server": "198.18.0.1:443", "version": "TLSv1.3",
                      "cipher": "TLS_AES_128_GCM_SHA256", "server_name": "a.example", "alerts": []}])
    assert rows == [{"client": "10.0.0.1:5000", "server": "198.18.0.1:443", "sni": "a.example",
                     "version": "TLS1.3", "cipher": "0x1301", "alert": None}]
    assert st.connections == 1 and st.unmapped_cipher == 0


def test_tls12_cipher_and_first_alert():
    rows, _ = conv([{"client": "[2001:db8::1]:5000", "server": "[2001:db8::2]:443", "version": "TLSv1.2",
                     "cipher": "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "server_name": None,
                     "alerts": [{"from": "server", "level": "fatal", "description": "handshake_failure",
                                 "after": "client_hello"},
                                {"from": "client", "level": "fatal", "description": "protocol_version",
                                 "after": "client_hello"}]}])
    r = rows[0]
    assert (r["version"], r["cipher"], r["alert"], r["sni"]) == ("TLS1.2", "0xc030", 40, None)


def test_no_server_hello_and_unknowns():
    rows, st = conv([{"client": "1.1.1.1:1", "server": "2.2.2.2:2", "version": None, "cipher": None,
                      "alerts": [{"description": "protocol_version"}]},
                     {"client": "1.1.1.1:3", "server": "2.2.2.2:4", "version": "unknown-0x7e01",
                      "cipher": "unknown-0x0a0a", "alerts": [{"description": "unknown-201"}]}])
    assert (rows[0]["version"], rows[0]["cipher"], rows[0]["alert"]) == (None, None, 70)
    assert (rows[1]["version"], rows[1]["cipher"], rows[1]["alert"]) == ("unknown-0x7e01", "0x0a0a", 201)
    assert st.unmapped_version == 1 and st.unmapped_cipher == 0 and st.unmapped_alert == 0


def test_bad_lines_counted_not_raised():
    rows, st = conv(["{not json", "[1,2]", json.dumps({"type": "certificate", "sha256": "ab"}),
                     json.dumps({"client": "1.1.1.1:1", "server": "2.2.2.2:2", "cipher": "NO_SUCH_SUITE"})])
    assert st.lines == 4 and st.bad_lines == 2 and st.connections == 1
    assert rows[0]["cipher"] == "NO_SUCH_SUITE" and st.unmapped_cipher == 1
