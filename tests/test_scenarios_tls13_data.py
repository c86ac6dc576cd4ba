"""Consistency of the TLS 1.3 scenario captures (tests/data/scenarios-tls13, issue 12).

These tests check the data, not the diagnosis: every expected line points at a connection of its pcap
(with a real ClientHello and the recorded SNI, except TCP health checks), every connection has one line,
what the line says about the wire (record sizes, PSK, resumption, HelloRetryRequest, version) is what the
pcap holds, the PKI verifies at capture time, and the classes of issue 12 are all there with the stacks
the issue names.  Regenerate with
``sudo python3 tests/scenarios/generate_tls13.py --ns-prefix sc12 --out tests/data/scenarios-tls13``.
"""
from __future__ import annotations

import collections
import datetime as dt
import functools
import os
import sys

import dpkt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import verification

from analyzer.causes import FAILURE_CAUSES
from tests.support.stream import jsonl

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "scenarios"))
import wire13  # noqa: E402

DATA = os.environ.get("TLSDIAG_SCENARIOS13_DIR", os.path.join(ROOT, "tests", "data", "scenarios-tls13"))
EXPECTED = os.path.join(DATA, "expected.jsonl")

REQUIRED = ("pcap", "scenario", "client", "server", "server_name", "expected_cause", "expected_warning", "direction",
            "rejected_by", "stacks", "client_outcome", "capture_time", "observed", "notes", "client_error",
            "true_cause", "cause_source", "memory_age_s", "issue_class", "kind", "version", "psk_offered",
            "resumption_offered", "resumed", "hrr", "http_status", "hard", "records")
CLASSES = {"client_cert_after_flight", "psk_rotation", "tls12_memory", "mixed_traffic", "multi_server"}
SOURCES = {None, "cleartext alert", "cleartext chain", "size", "memory", "none"}
STACKS = {"JSSE": "Java 17 JSSE", "OpenSSL": "openssl s_client", "Python": "Python 3.11 ssl"}


@pytest.fixture(scope="module")
def expected() -> list[dict]:
    if not os.path.exists(EXPECTED):
        pytest.fail("missing %s: run tests/scenarios/generate_tls13.py" % EXPECTED)
    rows = jsonl(EXPECTED)
    assert rows, "expected.jsonl is empty"
    return rows


def _servers(rows: list[dict], pcap: str) -> set[str]:
    return {r["server"] for r in rows if r["pcap"] == pcap}


@functools.lru_cache(maxsize=32)
def _wire(pcap: str, servers: frozenset[str]) -> dict:
    return wire13.connections(os.path.join(DATA, pcap), set(servers))


@functools.lru_cache(maxsize=32)
def _frames(pcap: str) -> tuple[int, int, set[tuple[str, str]]]:
    """(linktype, largest frame, client->server pairs that opened with a SYN)."""
    syns = set()
    max_len = 0
    with open(os.path.join(DATA, pcap), "rb") as f:
        reader = dpkt.pcap.Reader(f)
        linktype = reader.datalink()
        for _ts, buf in reader:
            max_len = max(max_len, len(buf))
            ip = dpkt.ethernet.Ethernet(buf).data
            if isinstance(ip, dpkt.ip.IP) and isinstance(ip.data, dpkt.tcp.TCP):
                tcp = ip.data
                if tcp.flags & dpkt.tcp.TH_SYN and not tcp.flags & dpkt.tcp.TH_ACK:
                    syns.add((wire13._endpoint(ip.src, tcp.sport), wire13._endpoint(ip.dst, tcp.dport)))
    return linktype, max_len, syns


def _conn(rows: list[dict], row: dict) -> wire13.Conn:
    c = _wire(row["pcap"], frozenset(_servers(rows, row["pcap"]))).get((row["client"], row["server"]))
    assert c is not None, "%s: no connection %s -> %s" % (row["pcap"], row["client"], row["server"])
    return c


def test_expected_lines_well_formed(expected: list[dict]) -> None:
    for row in expected:
        missing = [k for k in REQUIRED if k not in row]
        assert not missing, (row["scenario"], missing)
        assert row["direction"] in ("northbound", "southbound")
        assert row["issue_class"] in CLASSES
        assert row["cause_source"] in SOURCES, row["cause_source"]
        for k in ("expected_cause", "true_cause"):
            assert row[k] is None or row[k] in {c.id for c in FAILURE_CAUSES}, (k, row[k])
        if row["expected_cause"] is None:
            assert row["rejected_by"] is None and row["true_cause"] is None
            assert row["client_outcome"] == "success", row
        else:
            assert row["rejected_by"] in ("client", "server")
            assert row["true_cause"] is not None
            assert row["client_outcome"] == "failure", row
            assert row["client_error"], row
        assert (row["memory_age_s"] is not None) == (row["cause_source"] == "memory"), row
        if row["cause_source"] == "memory":
            assert row["expected_cause"] == row["true_cause"] and row["memory_age_s"] > 0
        dt.datetime.fromisoformat(row["capture_time"])
        assert " -> " in row["stacks"]
        if row["direction"] == "northbound":
            assert row["server"].startswith("10.10.1.1:") and row["client"].startswith("10.10.1.2:")
        else:
            assert row["server"].startswith("10.10.3.2:") and row["client"].startswith("10.10.3.1:")


def test_pcaps_and_lines_match(expected: list[dict]) -> None:
    """Every pcap is described, every connection in it has exactly one line, a server port belongs to
    one pcap, frames are at most 1514 bytes (offloads off)."""
    pcaps = sorted(f for f in os.listdir(DATA) if f.endswith(".pcap"))
    assert sorted({r["pcap"] for r in expected}) == pcaps
    owner: dict[str, str] = {}
    for name in pcaps:
        linktype, max_len, syns = _frames(name)
        assert linktype == dpkt.pcap.DLT_EN10MB
        assert max_len <= 1514, "%s: %d-byte frame (offloads on?)" % (name, max_len)
        lines = [(r["client"], r["server"]) for r in expected if r["pcap"] == name]
        assert len(lines) == len(set(lines)), "duplicate lines in " + name
        assert syns == set(lines), name
        for srv in {s for _, s in lines}:
            assert owner.setdefault(srv, name) == name, "%s in %s and %s" % (srv, owner[srv], name)
        limit = 20_000_000 if name == "mixed_long.pcap" else 500_000
        assert os.path.getsize(os.path.join(DATA, name)) < limit, name


def test_lines_describe_their_pcap(expected: list[dict]) -> None:
    """The wire facts of each line are what its pcap holds (pcaps and lines come from the same run)."""
    for row in expected:
        c = _conn(expected, row)
        where = "%s %s" % (row["scenario"], row["client"])
        assert c.records == row["records"], where
        assert (c.version, c.psk_offered, c.resumption_offered, c.resumed, c.hrr) == (
            row["version"], row["psk_offered"], row["resumption_offered"], row["resumed"], row["hrr"]), where
        if row["kind"].startswith("health_tcp"):
            assert not c.client_hellos, where
        else:
            assert c.client_hellos and c.client_hellos[0].sni == row["server_name"], where


def test_pki_verifies_at_capture_time(expected: list[dict]) -> None:
    pki = os.path.join(DATA, "pki")

    def load(name: str) -> list[x509.Certificate]:
        with open(os.path.join(pki, name), "rb") as f:
            return x509.load_pem_x509_certificates(f.read())

    store = verification.Store(load("root.pem"))
    for when in (expected[0]["capture_time"], expected[-1]["capture_time"]):
        at = dt.datetime.fromisoformat(when)
        for leaf, name in (("server-good-chain.pem", "api.example.test"),
                           ("server-good-new-chain.pem", "backend.example.test"),
                           ("server-shop-chain.pem", "shop.example.test")):
            chain = load(leaf)
            verifier = verification.PolicyBuilder().store(store).time(at).build_server_verifier(x509.DNSName(name))
            verifier.verify(chain[0], chain[1:])
        with pytest.raises(verification.VerificationError):
            verifier.verify(load("server-expired.pem")[0], load("intermediate.pem"))
        with pytest.raises(verification.VerificationError):
            verifier.verify(chain[0], [])  # the intermediate is required


def test_pcaps_carry_the_committed_pki(expected: list[dict]) -> None:
    """A TLS 1.2 certificate on the wire is one of pki/ (the memory rows depend on it)."""
    def der(stem: str) -> bytes:
        with open(os.path.join(DATA, "pki", stem + ".pem"), "rb") as f:
            return x509.load_pem_x509_certificate(f.read()).public_bytes(Encoding.DER)
    known = {der(s) for s in ("server-good", "server-good-new", "server-expired", "server-wrongname", "server-shop")}
    seen = 0
    for row in expected:
        if row["version"] == "TLSv1.2":
            c = _conn(expected, row)
            if c.server_leaf is not None:
                assert c.server_leaf in known, row["scenario"]
                seen += 1
    assert seen >= 50


def _stack(row: dict) -> str | None:
    for short, prefix in STACKS.items():
        if row["stacks"].startswith(prefix):
            return short
    return None


def test_client_certificate_rejections_after_the_flight(expected: list[dict]) -> None:
    """Class 1: missing, expired and unknown-CA client certificates over TLS 1.3, from JSSE, OpenSSL and
    Python, against s_server and the Python server, both directions; JSSE's records are 16 bytes longer."""
    rows = [r for r in expected if r["issue_class"] == "client_cert_after_flight"]
    have = {(r["true_cause"], _stack(r), r["direction"], r["stacks"].split(" -> ")[1].split()[0])
            for r in rows if r["client_outcome"] == "failure"}
    for true in ("client_certificate_missing", "expired_certificate", "unknown_certificate"):
        for stack in STACKS:
            for direction in ("northbound", "southbound"):
                for server in ("openssl", "Python"):
                    assert (true, stack, direction, server) in have, (true, stack, direction, server)
    for r in rows:
        assert r["version"] == "TLSv1.3" and not r["resumed"]
        if r["expected_cause"] == "client_certificate_missing":
            # the empty Certificate is the client's first record after its CCS (its Finished may come
            # after the server's alert: the server does not wait for it)
            empty = {"JSSE": "C:CCS C:E(41) ", "OpenSSL": "C:CCS C:E(25) ", "Python": "C:CCS C:E(25) "}
            assert empty[_stack(r)] in r["records"], (r["stacks"], r["records"])
    assert sum(r["client_outcome"] == "success" for r in rows) >= 12      # the controls


def test_psk_rotation(expected: list[dict]) -> None:
    """Class 2: PSK accepted (success), PSK declined at an expired rotation (failure) and declined after
    the fix (success), from OpenSSL, Python and JSSE, both directions."""
    rows = [r for r in expected if r["issue_class"] == "psk_rotation"]
    for direction in ("northbound", "southbound"):
        for stack in STACKS:
            mine = [r for r in rows if r["direction"] == direction and _stack(r) == stack]
            assert any(r["resumed"] and r["client_outcome"] == "success" for r in mine), (direction, stack)
            assert any(r["psk_offered"] and not r["resumed"] and r["client_outcome"] == "failure"
                       and r["true_cause"] == "expired_certificate" for r in mine), (direction, stack)
            assert any(r["psk_offered"] and not r["resumed"] and r["client_outcome"] == "success"
                       for r in mine), (direction, stack)


def test_tls12_memory(expected: list[dict]) -> None:
    """Class 3: per server TLS 1.2 failures with the chain in clear and TLS 1.3 failures whose exact cause
    comes from them; one capture has TLS 1.3 failures before any TLS 1.2 handshake."""
    rows = [r for r in expected if r["issue_class"] == "tls12_memory"]
    by_pcap = collections.defaultdict(list)
    for r in rows:
        by_pcap[r["pcap"]].append(r)
    assert len(by_pcap) == 3
    causes = set()
    for pcap, rs in by_pcap.items():
        assert any(r["version"] == "TLSv1.2" and r["cause_source"] == "cleartext chain" for r in rs), pcap
        assert any(r["version"] == "TLSv1.3" and r["cause_source"] == "memory" for r in rs), pcap
        causes |= {r["true_cause"] for r in rs}
    assert causes == {"incomplete_chain", "hostname_mismatch", "expired_certificate"}
    first13 = [r for r in rows if r["version"] == "TLSv1.3" and r["cause_source"] != "memory"]
    assert first13 and all(r["expected_cause"] == "encrypted_failure" for r in first13)


def test_mixed_long(expected: list[dict]) -> None:
    rows = [r for r in expected if r["scenario"] == "mixed_long"]
    assert len(rows) >= 500
    failures = [r for r in rows if r["expected_cause"]]
    assert 20 <= len(failures) <= 0.2 * len(rows)
    kinds = collections.Counter(r["kind"].split("+")[0] for r in rows)
    for kind in ("full", "resumption", "psk_declined", "hrr", "health_tcp", "health_tcp_rst", "health_handshake",
                 "http_503", "mtls"):
        assert kinds[kind] >= 3, (kind, kinds)
    assert any(r["version"] == "TLSv1.2" and r["resumed"] for r in rows)
    assert any(r["version"] == "TLSv1.3" and r["resumed"] and r["hrr"] for r in rows)
    assert len({r["server"] for r in rows}) >= 8
    assert {r["direction"] for r in rows} == {"northbound", "southbound"}
    # the rotation: declined PSKs both failing (expired certificate) and succeeding (after the fix)
    assert any(r["psk_offered"] and not r["resumed"] and r["client_outcome"] == "failure" for r in rows)
    assert any(r["psk_offered"] and not r["resumed"] and r["client_outcome"] == "success" for r in rows)
    # loss and reordering: retransmitted segments, and gaps (a segment lost or held back before the
    # capture point, the Router, so only the client's direction shows them)
    retrans = gaps = 0
    with open(os.path.join(DATA, "mixed_long.pcap"), "rb") as f:
        seen: dict[tuple, int] = {}
        for _ts, buf in dpkt.pcap.Reader(f):
            ip = dpkt.ethernet.Ethernet(buf).data
            if not isinstance(ip, dpkt.ip.IP) or not isinstance(ip.data, dpkt.tcp.TCP) or not ip.data.data:
                continue
            tcp = ip.data
            key = (ip.src, tcp.sport, ip.dst, tcp.dport)
            end = (tcp.seq + len(tcp.data)) & 0xFFFFFFFF
            last = seen.get(key)
            if last is not None and tcp.seq != last:
                if ((last - tcp.seq) & 0xFFFFFFFF) < 0x80000000:
                    retrans += 1
                else:
                    gaps += 1
            if last is None or ((end - last) & 0xFFFFFFFF) < 0x80000000:
                seen[key] = end
    assert retrans >= 10 and gaps >= 1, (retrans, gaps)


def test_multi_server(expected: list[dict]) -> None:
    rows = [r for r in expected if r["scenario"] == "multi_server_report"]
    servers = {r["server"] for r in rows}
    causes = {r["expected_cause"] for r in rows} - {None}
    assert len(servers) >= 6 and len(causes) >= 5
    # interleaved: the server changes from one connection to the next most of the time
    changes = sum(a["server"] != b["server"] for a, b in zip(rows, rows[1:]))
    assert changes >= len(rows) // 2
