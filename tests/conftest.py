"""Shared fixtures for the wire-core tests: the C / pure-Python implementation pair (multidict's
``c_extension`` mark and ``--no-c-extensions`` option), and golden material read once from the
test captures with dpkt (reassembled TCP streams, real hello bodies, real frames).

The compiled core must be present unless ``TLSDIAG_NO_EXTENSIONS`` is set: CI builds it, so a
missing build FAILS the "c" runs instead of skipping them.  An implementation is always a whole
engine of one build (``cext.wire.engine``): nothing is patched to pair modules.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import struct
from functools import lru_cache
from pathlib import Path

import dpkt
import pytest

from cext import wire

HERE = Path(__file__).resolve().parent
CAPTURES = HERE / "data" / "captures"
BAD = HERE / "data" / "bad"
SHARED = HERE.parents[1] / "shared"
NO_EXTENSIONS = os.environ.get("TLSDIAG_NO_EXTENSIONS", "") not in ("", "0")

#: every link type the decoder reads (LINKTYPE_* values)
LINKTYPES = (1, 113, 276, 0, 108, 12, 101, 228, 229)


# ---------------------------------------------------------------------------------------------
# the implementation pair
# ---------------------------------------------------------------------------------------------

def pytest_addoption(parser):
    parser.addoption("--no-c-extensions", action="store_true", default=False,
                     help="deselect the tests of the compiled cext._wire")
    parser.addoption("--run-manual", action="store_true", default=False,
                     help="also run the tests marked manual (minutes of CPU for little extra "
                          "assurance, e.g. the traced million-SYN flood; not in CI)")


def pytest_collection_modifyitems(config, items):
    if not config.getoption("--run-manual"):
        skip = pytest.mark.skip(reason="marked manual: run with --run-manual")
        for item in items:
            if item.get_closest_marker("manual"):
                item.add_marker(skip)
    if not config.getoption("--no-c-extensions"):
        return
    keep, drop = [], []
    for item in items:
        (drop if item.get_closest_marker("c_extension") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def load_engine(name: str):
    """The core ``name`` (``cext.wire.engine``); a missing compiled build fails the test
    unless TLSDIAG_NO_EXTENSIONS is set."""
    try:
        return wire.engine(name)
    except ImportError as exc:
        if NO_EXTENSIONS:
            pytest.skip("the compiled core is not built and TLSDIAG_NO_EXTENSIONS is set")
        pytest.fail("the compiled core is not built (pip install -e .): %s" % exc)


def load_c_wire():
    """``cext._wire``; a missing build fails the test unless TLSDIAG_NO_EXTENSIONS is set."""
    return load_engine("c").wire


def load_py_wire():
    return importlib.import_module("cext._wire_py")


_IMPLS = [pytest.param("c", id="c", marks=pytest.mark.c_extension), pytest.param("py", id="py")]


@pytest.fixture(scope="session", params=_IMPLS)
def engine_impl(request):
    """Each core in turn, whole: wire, TLS reader, session and flow table of one build
    (session scoped, so hypothesis accepts it)."""
    return load_engine(request.param)


@pytest.fixture(scope="session", params=_IMPLS)
def wire_impl(request):
    """Each wire module in turn (session scoped, so hypothesis accepts it)."""
    return load_c_wire() if request.param == "c" else load_py_wire()


@pytest.fixture(scope="session")
def c_engine():
    return load_engine("c")


@pytest.fixture(scope="session")
def c_wire():
    return load_c_wire()


@pytest.fixture(scope="session")
def py_wire():
    return load_py_wire()


def new_decoder(impl, linktype: int, flows=None, skip=None):
    """``impl.PacketDecoder`` over fresh (or the given) ``flows`` / ``skip`` dicts."""
    return impl.PacketDecoder(linktype, {} if flows is None else flows,
                              {} if skip is None else skip)


# ---------------------------------------------------------------------------------------------
# golden material from the test captures
# ---------------------------------------------------------------------------------------------

def capture_paths() -> list[Path]:
    paths = sorted(CAPTURES.glob("*.pcap"))
    assert len(paths) >= 8, "test captures missing from %s" % CAPTURES
    return paths


@lru_cache(maxsize=None)
def read_frames(path: Path) -> tuple:
    """``((ts, frame), ...)`` and the link type, read with dpkt."""
    with open(path, "rb") as fh:
        r = dpkt.pcap.Reader(fh)
        return r.datalink(), tuple((ts, bytes(buf)) for ts, buf in r)


@lru_cache(maxsize=None)
def tcp_segments(path: Path) -> tuple:
    """The payload-carrying TCP segments of the capture's one connection, in capture order
    and with retransmitted bytes removed: ``((direction, payload), ...)`` with direction 0
    for the SYN sender (client) and 1 for the server."""
    lt, frames = read_frames(path)
    assert lt == 1
    client = None
    nxt: dict = {}
    out = []
    for _ts, buf in frames:
        ip = dpkt.ethernet.Ethernet(buf).data
        tcp = ip.data
        if not isinstance(tcp, dpkt.tcp.TCP):
            continue
        src = (bytes(ip.src), tcp.sport)
        if tcp.flags & dpkt.tcp.TH_SYN:
            if not tcp.flags & dpkt.tcp.TH_ACK:
                client = src
            nxt[src] = (tcp.seq + 1) & 0xFFFFFFFF
            continue
        assert client is not None, "%s: no SYN" % path
        d = 0 if src == client else 1
        data = bytes(tcp.data)
        if not data:
            continue
        expect = nxt[src]
        back = (expect - tcp.seq) & 0xFFFFFFFF
        if back >= 1 << 31:
            raise AssertionError("%s: hole in the capture" % path)
        if back >= len(data):
            continue                                    # pure retransmission
        data = data[back:]
        nxt[src] = (expect + len(data)) & 0xFFFFFFFF
        out.append((d, data))
    return tuple(out)


def stream_bytes(path: Path) -> tuple[bytes, bytes]:
    segs = tcp_segments(path)
    return (b"".join(p for d, p in segs if d == 0), b"".join(p for d, p in segs if d == 1))


def split_records(buf: bytes) -> list:
    """The complete TLS records of ``buf`` (test helper: no checks), ``(type, fragment)``."""
    out, pos = [], 0
    while pos + 5 <= len(buf):
        ln = (buf[pos + 3] << 8) | buf[pos + 4]
        if pos + 5 + ln > len(buf):
            break
        out.append((buf[pos], buf[pos + 5:pos + 5 + ln]))
        pos += 5 + ln
    return out


def split_handshakes(buf: bytes) -> list:
    """The complete handshake messages of ``buf`` (test helper), ``(type, body)``."""
    out, pos = [], 0
    while pos + 4 <= len(buf):
        ln = int.from_bytes(buf[pos + 1:pos + 4], "big")
        if pos + 4 + ln > len(buf):
            break
        out.append((buf[pos], buf[pos + 4:pos + 4 + ln]))
        pos += 4 + ln
    return out


@lru_cache(maxsize=None)
def golden_messages() -> dict:
    """Real handshake bodies from the test captures, read once with the helpers above:
    ``{"client_hello": [...], "server_hello": [...], "certificate": [(body, tls13), ...],
    "records": [stream prefixes], "handshakes": [handshake-layer bytes]}``."""
    py = load_py_wire()
    out: dict = {"client_hello": [], "server_hello": [], "certificate": [], "records": [],
                 "handshakes": []}
    for path in capture_paths():
        for d, stream in enumerate(stream_bytes(path)):
            out["records"].append(stream[:4096])
            hs = b"".join(frag for ct, frag in split_records(stream) if ct == 22)
            msgs = split_handshakes(hs)
            if hs:
                out["handshakes"].append(hs[:4096])
            for mt, body in msgs:
                if mt == 1 and d == 0:
                    out["client_hello"].append(body)
                elif mt == 2 and d == 1:
                    out["server_hello"].append(body)
                elif mt == 11:
                    out["certificate"].append((body, False))
                    out["certificate"].append((_as_tls13_certificate(py, body), True))
    assert out["client_hello"] and out["server_hello"] and out["certificate"]
    return out


def _as_tls13_certificate(py, body: bytes) -> bytes:
    """The TLS 1.2 Certificate ``body`` re-encoded as RFC 8446 4.4.2 (empty request context,
    one empty extension block per entry) - TLS 1.3 ones travel encrypted in the captures."""
    entries = b"".join(len(der).to_bytes(3, "big") + der + b"\x00\x00"
                       for der in py.parse_certificate(body, False))
    return b"\x00" + len(entries).to_bytes(3, "big") + entries


# ---------------------------------------------------------------------------------------------
# hypothesis: mutations of golden bytes
# ---------------------------------------------------------------------------------------------

def mutations():
    """A strategy for a function bytes -> bytes applying 1-4 random edits (flip a byte, set
    a byte to an edge value, insert, delete a range, truncate, duplicate a slice, write a
    length just around the number of bytes left)."""
    from hypothesis import strategies as st

    edit = st.tuples(st.sampled_from(("flip", "set", "insert", "delete", "truncate", "dup",
                                      "len16", "len8")),
                     st.integers(0, 1 << 16), st.integers(0, 255), st.integers(1, 64),
                     st.binary(min_size=1, max_size=8))

    def apply(edits):
        def mutate(b: bytes) -> bytes:
            b = bytearray(b)
            for op, pos, val, ln, blob in edits:
                i = pos % (len(b) + 1)
                if op == "flip" and b:
                    b[i % len(b)] ^= 1 << (val % 8)
                elif op == "set" and b:
                    b[i % len(b)] = (0x00, 0xFF, 0x7F, 0x80, val)[val % 5]
                elif op == "insert":
                    b[i:i] = blob
                elif op == "delete":
                    del b[i:i + ln]
                elif op == "truncate":
                    del b[i:]
                elif op == "dup":
                    b[i:i] = b[i:i + ln]
                elif op == "len16" and len(b) >= 2:
                    # a length field near the bytes that remain: off-by-a-few overruns
                    i = min(i, len(b) - 2)
                    b[i:i + 2] = ((len(b) - i + (val % 9) - 4) & 0xFFFF).to_bytes(2, "big")
                elif op == "len8" and b:
                    i = i % len(b)
                    b[i] = (len(b) - i + (val % 9) - 4) & 0xFF
            return bytes(b)
        return mutate

    return st.lists(edit, min_size=1, max_size=4).map(apply)


# ---------------------------------------------------------------------------------------------
# frame builders (real TCP segments, any link layer)
# ---------------------------------------------------------------------------------------------

V6_PREFIX = bytes.fromhex("20010db8") + bytes(8)


def ip_packet(frame: bytes) -> bytes:
    """The IP packet inside an Ethernet frame."""
    et = struct.unpack_from("!H", frame, 12)[0]
    off = 14
    while et in (0x8100, 0x88A8):
        et = struct.unpack_from("!H", frame, off + 2)[0]
        off += 4
    return frame[off:]


def ipv4_to_ipv6(pkt: bytes, ext: bytes = b"", first_nh: int = 6) -> bytes:
    """Wrap the TCP segment of an IPv4 packet in IPv6 (addresses 2001:db8::a.b.c.d, from the
    IPv4 ones), optionally behind extension headers ``ext`` whose first next-header value is
    ``first_nh``."""
    ihl = (pkt[0] & 15) * 4
    total = struct.unpack_from("!H", pkt, 2)[0] or len(pkt)
    l4 = pkt[ihl:total]
    src, dst = V6_PREFIX + pkt[12:16], V6_PREFIX + pkt[16:20]
    nh = first_nh if ext else 6
    hdr = struct.pack("!IHBB", 0x60000000, len(ext) + len(l4), nh, 64) + src + dst
    return hdr + ext + l4


def v6_ext_headers() -> tuple[bytes, int]:
    """Hop-by-hop (PadN) -> destination options (PadN) -> routing type 0 (segments left 0)
    -> TCP: ``(bytes, first next header)``."""
    hbh = bytes([60, 0, 1, 4, 0, 0, 0, 0])                # nh=dest opts, len 8, PadN
    dst = bytes([43, 1, 1, 12]) + bytes(12)               # nh=routing, len 16, PadN(12)
    rt = bytes([6, 0, 0, 0, 0, 0, 0, 0])                  # nh=TCP, len 8, type 0, left 0
    return hbh + dst + rt, 0


def wrap(linktype: int, pkt: bytes) -> bytes:
    """An IP packet as a frame of ``linktype``."""
    v6 = (pkt[0] >> 4) == 6
    et = 0x86DD if v6 else 0x0800
    if linktype == 1:
        return b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01" + struct.pack("!H", et) + pkt
    if linktype == 113:      # Linux cooked v1: pkttype, hatype, halen, addr[8], protocol
        return struct.pack("!HHH8sH", 0, 1, 6, b"\x02\x00\x00\x00\x00\x01", et) + pkt
    if linktype == 276:      # Linux cooked v2: protocol, reserved, ifindex, hatype, pkttype, halen, addr
        return struct.pack("!HHIHBB8s", et, 0, 2, 1, 0, 6, b"\x02\x00\x00\x00\x00\x01") + pkt
    if linktype == 0:        # BSD loopback, host (little-endian here) byte order family
        return struct.pack("<I", 30 if v6 else 2) + pkt
    if linktype == 108:      # OpenBSD loopback, network byte order
        return struct.pack("!I", 24 if v6 else 2) + pkt
    if linktype in (12, 101, 228, 229):
        return pkt
    raise ValueError(linktype)


@lru_cache(maxsize=None)
def golden_frames(linktype: int) -> tuple:
    """Every frame of every test capture as ``linktype`` (IPv6 for 229, IPv4 for 228,
    both for the others)."""
    out = []
    for path in capture_paths():
        _lt, frames = read_frames(path)
        for ts, f in frames:
            pkt = ip_packet(f)
            if linktype != 229:
                out.append((ts, wrap(linktype, pkt)))
            if linktype not in (1, 228):
                out.append((ts, wrap(linktype, ipv4_to_ipv6(pkt))))
        if linktype == 1:
            # VLAN and QinQ variants of the same frames
            for ts, f in frames:
                out.append((ts, f[:12] + b"\x81\x00\x00\x07" + f[12:]))
                out.append((ts, f[:12] + b"\x88\xa8\x00\x05\x81\x00\x00\x07" + f[12:]))
    return tuple(out)


@lru_cache(maxsize=None)
def fuzz_target():
    """The fuzz target's module (``tests/fuzz/fuzz_wire.py``, not a package module), loaded
    once: its ``one_input``, ``ENGINES``, ``flow_summaries`` and ``tls_events`` serve the
    equivalence tests too."""
    spec = importlib.util.spec_from_file_location("fuzz_wire", HERE / "fuzz" / "fuzz_wire.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def forks(monkeypatch) -> list:
    """The pids of the processes this test process forks from here on (``os.fork``)."""
    pids = []
    fork = os.fork

    def noted_fork():
        pid = fork()
        if pid:
            pids.append(pid)
        return pid
    monkeypatch.setattr(os, "fork", noted_fork)
    return pids
