"""Consistency of the generated handshake-failure scenarios (tests/data/scenarios, examples/).

These tests check the data, not the diagnosis: every expected line points at a pcap that parses
with dpkt and holds that connection with a real TLS ClientHello (with the recorded SNI), the
PKI verifies, and the merged example holds exactly the scenario connections.
Regenerate with ``sudo python3 tests/scenarios/generate.py --out tests/data/scenarios --examples examples``.
"""
from __future__ import annotations

import datetime as dt
import functools
import os
import socket
import struct

import dpkt
import pytest
from cryptography import x509
from cryptography.x509 import verification

from tests.support.stream import jsonl

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("TLSDIAG_SCENARIOS_DIR", os.path.join(ROOT, "tests", "data", "scenarios"))
EXPECTED = os.path.join(DATA, "expected.jsonl")
EXAMPLE_DIR = os.environ.get("TLSDIAG_EXAMPLES_DIR", os.path.join(ROOT, "examples"))
EXAMPLE = os.path.join(EXAMPLE_DIR, "gateway-failures.pcap")
EXAMPLE_EXPECTED = os.path.join(EXAMPLE_DIR, "gateway-failures.expected.jsonl")

CAUSES = {
    "protocol_mismatch", "cipher_mismatch", "sni_required", "sni_unrecognized", "hostname_mismatch",
    "incomplete_chain", "expired_certificate", "not_yet_valid_certificate", "unknown_certificate",
    "certificate_rejected", "client_certificate_missing", "encrypted_failure", "unknown",
}
REQUIRED = ("pcap", "scenario", "client", "server", "expected_cause", "direction", "rejected_by", "stacks",
            "notes", "capture_time")


@pytest.fixture(scope="module")
def expected() -> list[dict]:
    if not os.path.exists(EXPECTED):
        pytest.fail("missing %s: run tests/scenarios/generate.py" % EXPECTED)
    rows = jsonl(EXPECTED)
    assert rows, "expected.jsonl is empty"
    return rows


def _endpoint(addr: bytes, port: int) -> str:
    return "%s:%d" % (socket.inet_ntoa(addr), port)


@functools.lru_cache(maxsize=64)
def _flows(path: str) -> tuple[dict[tuple[str, str], dict], int, int]:
    """Per (src, dst) endpoint pair: SYN seen, payload segments {seq: bytes}; plus max frame, linktype."""
    flows: dict[tuple[str, str], dict] = {}
    max_len = 0
    with open(path, "rb") as f:
        reader = dpkt.pcap.Reader(f)
        linktype = reader.datalink()
        for _ts, buf in reader:
            max_len = max(max_len, len(buf))
            eth = dpkt.ethernet.Ethernet(buf)
            ip = eth.data
            if not isinstance(ip, dpkt.ip.IP) or not isinstance(ip.data, dpkt.tcp.TCP):
                continue
            tcp = ip.data
            key = (_endpoint(ip.src, tcp.sport), _endpoint(ip.dst, tcp.dport))
            fl = flows.setdefault(key, {"syn": False, "isn": None, "segs": {}})
            if tcp.flags & dpkt.tcp.TH_SYN:
                fl["syn"] = fl["syn"] or not tcp.flags & dpkt.tcp.TH_ACK  # a client's opening SYN
                fl["isn"] = tcp.seq
            elif tcp.data:
                fl["segs"].setdefault(tcp.seq, bytes(tcp.data))
    return flows, max_len, linktype


def _stream(fl: dict) -> bytes:
    """In-order client payload from the SYN on (no gaps tolerated)."""
    assert fl["isn"] is not None, "no SYN"
    out = b""
    nxt = (fl["isn"] + 1) & 0xFFFFFFFF
    while nxt in fl["segs"]:
        seg = fl["segs"][nxt]
        out += seg
        nxt = (nxt + len(seg)) & 0xFFFFFFFF
    return out


def _client_hello(data: bytes) -> tuple[bytes, str | None]:
    """Return (ClientHello body, SNI or None); asserts it is a well-formed TLS ClientHello."""
    assert len(data) >= 9, "no TLS record from the client"
    ctype, ver, rlen = data[0], data[1:3], struct.unpack("!H", data[3:5])[0]
    assert ctype == 22 and ver[0] == 3, "first client record is not a TLS handshake record"
    assert len(data) >= 5 + rlen, "ClientHello record truncated"
    hs = data[5:5 + rlen]
    assert hs[0] == 1, "first handshake message is not a ClientHello"
    hlen = int.from_bytes(hs[1:4], "big")
    body = hs[4:4 + hlen]
    assert len(body) == hlen, "ClientHello spans records (unexpected here)"
    i = 2 + 32
    i += 1 + body[i]                                          # session id
    i += 2 + struct.unpack("!H", body[i:i + 2])[0]             # cipher suites
    i += 1 + body[i]                                          # compression
    sni = None
    if i < len(body):
        end = i + 2 + struct.unpack("!H", body[i:i + 2])[0]
        i += 2
        while i + 4 <= end:
            etype, elen = struct.unpack("!HH", body[i:i + 4])
            ext = body[i + 4:i + 4 + elen]
            if etype == 0:
                nlen = struct.unpack("!H", ext[3:5])[0]
                sni = ext[5:5 + nlen].decode("ascii")
            i += 4 + elen
        assert i == end, "ClientHello extensions do not add up"
    return body, sni


def test_expected_lines_well_formed(expected: list[dict]) -> None:
    for row in expected:
        missing = [k for k in REQUIRED if k not in row]
        assert not missing, (row.get("scenario"), missing)
        assert row["direction"] in ("northbound", "southbound")
        assert row["rejected_by"] in ("client", "server", None)
        assert row["expected_cause"] is None or row["expected_cause"] in CAUSES, row["expected_cause"]
        if row["expected_cause"] is None:
            assert row["rejected_by"] is None
            assert row["client_outcome"] == "success", row
        else:
            assert row["rejected_by"] is not None
            assert row["client_outcome"] == "failure", row
        assert row.get("expected_warning") in (None, "hostname_mismatch")
        dt.datetime.fromisoformat(row["capture_time"])
        assert " -> " in row["stacks"]


def test_every_cause_is_covered(expected: list[dict]) -> None:
    seen = {r["expected_cause"] for r in expected}
    wanted = CAUSES
    assert wanted <= seen, "causes without a scenario: %s" % sorted(wanted - seen)
    assert None in seen, "no successful control handshakes"
    for cause in ("protocol_mismatch", "cipher_mismatch", "sni_required", "hostname_mismatch",
                  "incomplete_chain", "expired_certificate", "not_yet_valid_certificate",
                  "unknown_certificate", "client_certificate_missing", "encrypted_failure"):
        dirs = {r["direction"] for r in expected if r["expected_cause"] == cause}
        assert dirs == {"northbound", "southbound"}, (cause, dirs)


def test_each_connection_in_its_pcap(expected: list[dict]) -> None:
    cache: dict[str, tuple] = {}
    for row in expected:
        path = os.path.join(DATA, row["pcap"])
        assert os.path.exists(path), path
        if path not in cache:
            cache[path] = _flows(path)
        flows, max_len, linktype = cache[path]
        assert linktype == dpkt.pcap.DLT_EN10MB
        assert max_len <= 1514, "%s: %d-byte frame (offloads on?)" % (row["pcap"], max_len)
        fl = flows.get((row["client"], row["server"]))
        assert fl is not None and fl["syn"], "%s: no connection %s -> %s" % (row["pcap"], row["client"],
                                                                             row["server"])
        _body, sni = _client_hello(_stream(fl))
        assert sni == row.get("server_name"), (row["scenario"], row["client"], sni, row.get("server_name"))
        if row["direction"] == "northbound":
            assert row["server"].startswith("10.10.1.1:") and row["client"].startswith("10.10.1.2:")
        else:
            assert row["server"].startswith("10.10.3.2:") and row["client"].startswith("10.10.3.1:")


def test_pcaps_and_lines_match(expected: list[dict]) -> None:
    """Every pcap is described, every connection in it has exactly one line, ports are distinct."""
    pcaps = sorted(f for f in os.listdir(DATA) if f.endswith(".pcap"))
    assert sorted({r["pcap"] for r in expected}) == pcaps
    port_of: dict[str, str] = {}
    for name in pcaps:
        flows, _, _ = _flows(os.path.join(DATA, name))
        syns = {k for k, v in flows.items() if v["syn"]}
        lines = {(r["client"], r["server"]) for r in expected if r["pcap"] == name}
        assert syns == lines, name
        assert len(lines) == sum(1 for r in expected if r["pcap"] == name), "duplicate lines in " + name
        ports = {r["server"] for r in expected if r["pcap"] == name}
        assert len(ports) == 1, name
        port = ports.pop().rsplit(":", 1)[1]
        assert port not in port_of, "port %s used by %s and %s" % (port, port_of.get(port), name)
        port_of[port] = name
        assert os.path.getsize(os.path.join(DATA, name)) < 200_000, name


def test_pki_verifies_at_capture_time(expected: list[dict]) -> None:
    pki = os.path.join(DATA, "pki")

    def load(name: str) -> list[x509.Certificate]:
        with open(os.path.join(pki, name), "rb") as f:
            return x509.load_pem_x509_certificates(f.read())

    when = dt.datetime.fromisoformat(expected[0]["capture_time"])
    store = verification.Store(load("root.pem"))
    verifier = (verification.PolicyBuilder().store(store).time(when)
                .build_server_verifier(x509.DNSName("api.example.test")))
    chain = load("server-good-chain.pem")
    verifier.verify(chain[0], chain[1:])
    with pytest.raises(verification.VerificationError):
        verifier.verify(load("server-expired.pem")[0], load("intermediate.pem"))
    with pytest.raises(verification.VerificationError):
        verifier.verify(chain[0], [])  # the intermediate is required


def test_example_is_the_merge(expected: list[dict]) -> None:
    assert os.path.exists(EXAMPLE), EXAMPLE
    flows, max_len, _ = _flows(EXAMPLE)
    conns = {k for k, v in flows.items() if v["syn"]}
    assert conns == {(r["client"], r["server"]) for r in expected}
    assert len(conns) == len(expected), "connections collide in the merged example"
    assert max_len <= 1514
    rows = jsonl(EXAMPLE_EXPECTED)
    assert [(r["client"], r["server"], r["expected_cause"]) for r in rows] == \
        [(r["client"], r["server"], r["expected_cause"]) for r in expected]


def _server_stream(flows: dict, row: dict) -> bytes:
    return _stream(flows[(row["server"], row["client"])])


@pytest.mark.parametrize("scenario, leaf, chain", [
    ("ok_tls12_north", "server-good.pem", "intermediate.pem"),
    ("expired_north", "server-expired.pem", "intermediate.pem"),
    ("not_yet_valid_south", "server-notyet.pem", "intermediate.pem"),
    ("hostname_mismatch_north", "server-wrongname.pem", "intermediate.pem"),
    ("untrusted_root_south", "server-untrusted.pem", "untrusted-root.pem"),
    ("self_signed_north", "server-selfsigned.pem", None),
    ("incomplete_chain_north", "server-good.pem", None),
])
def test_pcaps_carry_the_committed_pki(expected: list[dict], scenario: str, leaf: str, chain: str | None) -> None:
    """The certificates on the wire are the ones in pki/ (pcaps and PKI come from the same run)."""
    from cryptography.hazmat.primitives.serialization import Encoding

    def der(name: str) -> bytes:
        with open(os.path.join(DATA, "pki", name), "rb") as f:
            return x509.load_pem_x509_certificate(f.read()).public_bytes(Encoding.DER)

    row = next(r for r in expected if r["scenario"] == scenario)
    flows, _, _ = _flows(os.path.join(DATA, row["pcap"]))
    server_bytes = _server_stream(flows, row)
    assert der(leaf) in server_bytes
    inter = der("intermediate.pem")
    if chain is None:
        assert inter not in server_bytes
    else:
        assert der(chain) in server_bytes
