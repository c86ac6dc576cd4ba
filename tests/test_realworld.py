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

import dpkt
import pytest

from proto import names
from sensor.pipeline import Summarizer, summarize_paths

DATA = Path(__file__).resolve().parent / "data" / "realworld"
MANIFEST = json.loads((DATA / "CAPTURES.json").read_text())
CAPTURES = sorted(p.stem for p in DATA.glob("*.pcap"))

#: capture -> what we get wrong today (the input of the decoder work of issue 15)
KNOWN_WRONG: dict = {
    # (empty since the decoder work of issue 15: tunnels, STARTTLS after a one-byte reply,
    # server data after the client's RST, a malformed ClientHello without reply)
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


def test_a_malformed_client_hello_is_summarized_with_its_weird():
    """Item 4: a ClientHello the parser rejects (cipher_suites length 0xfff0), with no server
    reply, still yields a summary; its history has the ClientHello and the weird says why."""
    out = [s for s, _ in summarize_paths([str(DATA / "malformed-hello-silent.pcap")])]
    assert len(out) == 1
    assert out[0]["history"] == "C" and out[0]["weirds"] == ["vector_overrun"]
    assert out[0]["ja4"] is None and out[0]["server_name"] is None


def test_the_grace_after_a_client_reset_is_bounded():
    """Item 3: the chain that arrives after the client's RST is read, and the flow then ends
    as reset (the RSTs the client answers the late segments with end it once the server's
    message is complete)."""
    out = [s for s, _ in summarize_paths([str(DATA / "late-after-rst.pcap")])]
    assert len(out) == 2
    for s in out:
        assert s["outcome"] == "reset" and s["close"]["rst"] == ["client"]
        assert len(s["certificates"]) == 7


@pytest.mark.parametrize("rst_at_zero", [False, True], ids=["capture_time", "rst_at_time_0"])
def test_the_grace_after_a_client_reset_ends_after_close_linger(rst_at_zero):
    """Item 3, the bound: the first connection of late-after-rst up to the first late server
    segment (the chain still incomplete), then silence: the flow waits for the rest, and is
    finished as reset once close_linger has passed since the RST, not at the idle timeout.
    (Also with the clock shifted so that the RST is at time 0.0.)"""
    with open(DATA / "late-after-rst.pcap", "rb") as fh:
        frames = list(dpkt.pcap.Reader(fh))[:9]      # SYN ... the RST, one late segment
    if rst_at_zero:
        frames = [(ts - frames[7][0], f) for ts, f in frames]
    s = Summarizer(1, json=True, close_linger=1.0, idle_timeout=120.0)
    out = []
    for ts, frame in frames:
        out += s.feed_frame(ts, frame)
    rst_ts = frames[7][0]
    assert out == []                                  # lingering after the RST
    assert s.expire(rst_ts + 0.9) == []
    done = s.expire(rst_ts + 1.1)
    assert len(done) == 1 and done[0][0]["outcome"] == "reset"
    assert done[0][0]["history"] == "Cs"              # the ServerHello; the chain never came


def test_server_data_after_the_grace_ends_the_flow():
    """Item 3, the bound with data: the next server segment, arriving more than close_linger
    after the RST, is not read -- it finishes the flow."""
    with open(DATA / "late-after-rst.pcap", "rb") as fh:
        frames = list(dpkt.pcap.Reader(fh))[:11]
    rst_ts = frames[7][0]
    frames = frames[:9] + [(rst_ts + 1.5, frames[10][1])]  # the 2nd late segment, too late
    s = Summarizer(1, json=True, close_linger=1.0, idle_timeout=120.0)
    out = []
    for ts, frame in frames[:9]:
        out += s.feed_frame(ts, frame)
    assert out == []
    done = s.feed_frame(*frames[9])
    assert len(done) == 1 and done[0][0]["outcome"] == "reset"
    assert done[0][0]["end"] < rst_ts + 1.0              # that segment was not read
