"""Real-world captures against tshark (issue 15): tests/data/realworld/NAME.pcap, made on this
machine kind with real stacks between network namespaces (tests/realworld/make_captures.py,
how each was made in CAPTURES.json and tests/realworld/README.md), each checked against tshark's
dissection of the same file (NAME.tshark.jsonl, tests/realworld/oracle.py).

For every connection tshark saw a TLS handshake on, ``summarize_paths`` must give a summary for
the same client and server (inner endpoints for tunnelled traffic) with the same server_name,
negotiated version, cipher suite, number of server certificates, plaintext alerts, whether a
HelloRetryRequest was sent, and the JA4 of the ClientHello (the oracle computes it from the bytes
tshark shows, by the text of FoxIO's JA4.md).

KNOWN_WRONG lists the captures we get wrong today, with what is wrong; those tests are strict
xfails: when the decoder learns one, its test XPASSes and fails, and the entry must go.  Run in
both builds (``TLSDIAG_NO_EXTENSIONS=1`` for the pure-Python one).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from proto import names
from sensor.pipeline import summarize_paths

DATA = Path(__file__).resolve().parent / "data" / "realworld"
MANIFEST = json.loads((DATA / "CAPTURES.json").read_text())
CAPTURES = sorted(p.stem for p in DATA.glob("*.pcap"))

#: capture -> what we get wrong today (the input of the decoder work of issue 15)
KNOWN_WRONG = {
    # item 1: encapsulated traffic is not decoded (no connection found)
    **{"encap-%s" % e: "encapsulation not decoded: no connection found" for e in (
        "capwap", "erspan", "geneve", "gre", "gtpu", "ip4in6", "ip6in6", "ipip", "mpls",
        "pppoe", "sit", "vxlan")},
    # item 2: after PostgreSQL's one-byte 'S' the server's first flight is lost: TLS 1.2 has
    # no version, cipher or certificates (yet established); TLS 1.3 loses the HRR
    "starttls-postgres": "the server's first TLS flight after the one-byte 'S' is lost",
    # item 3: the chain that arrives after the client's RST is dropped (after a FIN it is kept)
    "late-after-rst": "server data after the client's RST dropped: 0 of 7 certificates",
    # item 4: a ClientHello the parser rejects, with no server data: no summary at all
    "malformed-hello-silent": "malformed ClientHello and no server reply: no summary",
}


def compare(name: str) -> list[str]:
    """The disagreements between our summaries of NAME.pcap and tshark's facts."""
    ours = [s for s, _ in summarize_paths([str(DATA / (name + ".pcap"))])]
    by_ends = {(s["client"], s["server"]): s for s in ours}
    problems = []
    for line in (DATA / (name + ".tshark.jsonl")).read_text().splitlines():
        t = json.loads(line)
        s = by_ends.get((t["client"], t["server"]))
        conn = "%s -> %s" % (t["client"], t["server"])
        if s is None:
            problems.append("%s: no summary (ours: %s)" % (
                conn, sorted("%s -> %s" % k for k in by_ends) or "none"))
            continue
        want = {
            "server_name": t["server_name"],
            "version": names.version_name(int(t["version"], 16)) if t["version"] else None,
            "cipher": names.cipher_name(int(t["cipher"], 16)) if t["cipher"] else None,
            "certificates": t["certificates"],
            "alerts": [(f, names.alert_level_name(lv), names.alert_description_name(d))
                       for f, lv, d in t["alerts"]],
            "hrr": t["hrr"],
            "ja4": t["ja4"],
        }
        got = {
            "server_name": s["server_name"], "version": s["version"], "cipher": s["cipher"],
            "certificates": len(s["certificates"]),
            "alerts": [(a["from"], a["level"], a["description"]) for a in s["alerts"]],
            "hrr": s["hrr"],
            "ja4": s["ja4"],
        }
        for key in want:
            if want[key] != got[key]:
                problems.append("%s: %s tshark %r ours %r" % (conn, key, want[key], got[key]))
    return problems


def test_every_capture_has_its_oracle_and_provenance():
    assert len(CAPTURES) >= 20
    for name in CAPTURES:
        entry = MANIFEST[name]
        assert entry["how"] in ("kernel", "userspace-encap", "real", "crafted"), name
        assert entry["what"], name
        # the oracle was made from this very file
        assert entry["pcap_sha256"] == hashlib.sha256(
            (DATA / (name + ".pcap")).read_bytes()).hexdigest(), name
        rows = (DATA / (name + ".tshark.jsonl")).read_text().splitlines()
        assert rows and all(json.loads(r)["client_hello"] for r in rows), name
    assert set(KNOWN_WRONG) <= set(CAPTURES)


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=KNOWN_WRONG[n]))
    if n in KNOWN_WRONG else n for n in CAPTURES])
def test_summaries_agree_with_tshark(name):
    problems = compare(name)
    assert problems == [], "\n".join(problems)
