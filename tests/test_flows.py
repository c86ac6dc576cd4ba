"""TCP reassembly and the flow table, on crafted frames around real TLS streams.

The client and server byte streams of real test captures are cut into segments and wrapped
in Ethernet/IPv4/TCP frames we build here (so every reordering, retransmission, overlap, hole,
truncation and encapsulation is under the test's control), then fed frame by frame through
``Summarizer.feed_frame`` with each wire implementation.
"""
from __future__ import annotations

import random
import struct
import tracemalloc

import pytest
from conftest import CAPTURES, ipv4_to_ipv6, load_engine, tcp_segments, v6_ext_headers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensor.pipeline import Summarizer

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
TLS12 = CAPTURES / "tls12_rsa_chain3.pcap"
TLS13 = CAPTURES / "tls13_openssl.pcap"
ALERT = CAPTURES / "alert_handshake_failure.pcap"
SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.large_base_example])

# fields that must not depend on how the bytes travelled
STABLE = ("client", "server", "version", "cipher", "curve", "server_name", "alpn", "established",
          "resumed", "history", "alerts", "client_versions", "client_ciphers",
          "client_extensions", "client_groups", "certificates", "ja4", "gaps", "truncated",
          "outcome", "id", "start")


# ---------------------------------------------------------------------------------------------
# frame crafting
# ---------------------------------------------------------------------------------------------

def _ip4(a: str) -> bytes:
    return bytes(int(x) for x in a.split("."))


class Conn:
    """Crafts the frames of one TCP connection between ``client`` and ``server``."""

    def __init__(self, client=("10.0.0.1", 40000), server=("10.0.0.2", 443),
                 isn=(1_000_000, 4_294_960_000)):
        # the server ISN wraps around 2^32 inside the handshake on purpose
        self.addr = (_ip4(client[0]), _ip4(server[0]))
        self.port = (client[1], server[1])
        self.isn = isn

    def packet(self, d: int, flags: int, off: int = 0, payload: bytes = b"") -> bytes:
        """The IPv4 packet of direction ``d`` (0 client, 1 server) carrying ``payload`` at
        stream offset ``off`` (relative to the ISN + 1)."""
        seq = (self.isn[d] + (0 if flags & SYN else 1 + off)) & 0xFFFFFFFF
        ack = (self.isn[1 - d] + 1) & 0xFFFFFFFF
        tcp = struct.pack("!HHIIBBHHH", self.port[d], self.port[1 - d], seq,
                          ack if flags & ACK else 0, 5 << 4, flags, 65535, 0, 0)
        total = 20 + len(tcp) + len(payload)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 1, 0x4000, 64, 6, 0,
                         self.addr[d], self.addr[1 - d])
        return ip + tcp + payload

    def frame(self, d, flags, off=0, payload=b"", vlan=b"") -> bytes:
        return ether(self.packet(d, flags, off, payload), vlan)

    def handshake(self) -> list:
        return [self.frame(0, SYN), self.frame(1, SYN | ACK), self.frame(0, ACK)]


def ether(pkt: bytes, vlan: bytes = b"") -> bytes:
    et = b"\x86\xdd" if pkt[0] >> 4 == 6 else b"\x08\x00"
    return b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01" + vlan + et + pkt


def pieces(path, size: int = 300, segs=None) -> list:
    """``[(d, offset, bytes)]``: the capture's segments (or ``segs``) cut into ``size``-byte
    pieces, original interleaving of directions kept, grouped per original segment."""
    offs = [0, 0]
    groups = []
    for d, p in (tcp_segments(path) if segs is None else segs):
        g = []
        for i in range(0, len(p), size):
            g.append((d, offs[d] + i, p[i:i + size]))
        offs[d] += len(p)
        groups.append(g)
    return groups


def frames_of(conn: Conn, groups, syn=True, close=None) -> list:
    out = conn.handshake() if syn else []
    for g in groups:
        for d, off, data in g:
            out.append(conn.frame(d, ACK | PSH, off, data))
    if close:
        ends = [sum(len(x) for g in groups for dd, _o, x in g if dd == d) for d in (0, 1)]
        for d, flags in close:
            out.append(conn.frame(d, flags | ACK, ends[d]))
    return out


def summarize(frames, impl, t0: float = 1000.0, linktype: int = 1, **table) -> tuple:
    """Feed ``frames`` one per 1 ms: ``(summaries emitted by feed_frame, by flush, stats)``."""
    s = Summarizer(linktype, engine=impl, **table)
    live = []
    for i, f in enumerate(frames):
        live += [raw for raw, _c in s.feed_frame(t0 + i / 1000, f)]
    flushed = [raw for raw, _c in s.flush()]
    return live, flushed, s.stats()


def one(live, flushed) -> dict:
    allx = live + flushed
    assert len(allx) == 1, [(r["client"], r["outcome"]) for r in allx]
    return allx[0]


def stable(raw: dict) -> dict:
    return {k: raw[k] for k in STABLE}


@pytest.fixture(scope="module")
def baseline12():
    """The in-order crafted TLS 1.2 connection, checked against the real capture."""
    live, flushed, _st = summarize(frames_of(Conn(), pieces(TLS12)), load_engine("py"))
    raw = one(live, flushed)
    assert live, "an established connection is summarized when its handshake is over"
    assert raw["version"] == 0x0303 and raw["cipher"] == 0xC030        # ECDHE_RSA AES256-GCM
    assert raw["server_name"] == "www.example.com"
    assert raw["history"] == "CsxknGIti" and raw["established"] is True
    assert len(raw["certificates"]) == 3 and raw["gaps"] == [] and raw["truncated"] is False
    assert raw["client"] == "10.0.0.1:40000" and raw["server"] == "10.0.0.2:443"
    return raw


@pytest.fixture(scope="module")
def baseline13():
    live, flushed, _st = summarize(frames_of(Conn(), pieces(TLS13)), load_engine("py"))
    raw = one(live, flushed)
    assert raw["version"] == 0x0304 and raw["history"] == "CsiI" and raw["established"]
    return raw


def test_in_order_matches_both_implementations(engine_impl, baseline12, baseline13):
    for path, base in ((TLS12, baseline12), (TLS13, baseline13)):
        raw = one(*summarize(frames_of(Conn(), pieces(path)), engine_impl)[:2])
        assert stable(raw) == stable(base)


# ---------------------------------------------------------------------------------------------
# reordering, retransmission, overlap
# ---------------------------------------------------------------------------------------------

@SETTINGS
@given(st.data())
def test_out_of_order_segments(engine_impl, baseline12, baseline13, data):
    path, base = data.draw(st.sampled_from(((TLS12, baseline12), (TLS13, baseline13))))
    groups = [data.draw(st.permutations(g)) for g in pieces(path, 200)]
    live, flushed, stats = summarize(frames_of(Conn(), groups), engine_impl)
    assert stable(one(live, flushed)) == stable(base)


def test_out_of_order_is_counted(engine_impl, baseline12):
    groups = [list(reversed(g)) for g in pieces(TLS12, 200)]
    live, flushed, stats = summarize(frames_of(Conn(), groups), engine_impl)
    assert stable(one(live, flushed)) == stable(baseline12)
    assert stats["out_of_order"] > 5


@SETTINGS
@given(st.data())
def test_retransmissions(engine_impl, baseline12, data):
    groups = pieces(TLS12, 200)
    out = []
    for g in groups:
        g = list(g)
        for _ in range(data.draw(st.integers(0, 3))):
            # a copy of an earlier piece of this segment, resent later
            i = data.draw(st.integers(0, len(g) - 1))
            g.insert(data.draw(st.integers(i + 1, len(g))), g[i])
        out.append(g)
    live, flushed, stats = summarize(frames_of(Conn(), out), engine_impl)
    assert stable(one(live, flushed)) == stable(baseline12)


@SETTINGS
@given(st.data())
def test_retransmissions_tls13(engine_impl, baseline13, data):
    groups = []
    for g in pieces(TLS13, 200):
        g = list(g)
        if data.draw(st.booleans()):
            i = data.draw(st.integers(0, len(g) - 1))
            g.insert(data.draw(st.integers(i + 1, len(g))), g[i])
        groups.append(g)
    live, flushed, stats = summarize(frames_of(Conn(), groups), engine_impl)
    assert stable(one(live, flushed)) == stable(baseline13)


def _with_big_server_record(n: int = 16000) -> list:
    """tls13_openssl's segments with an n-byte application_data record added to the end of
    the server's first flight (before the client's Finished): ciphertext the flow table
    lets the decoder skip (``FlowTable(skip_min=...)``)."""
    segs = list(tcp_segments(TLS13))
    i = max(k for k, (d, _p) in enumerate(segs[:6]) if d == 1)
    big = b"\x17\x03\x03" + n.to_bytes(2, "big") + bytes(range(256)) * (n // 256) \
        + bytes(n % 256)
    segs.insert(i + 1, (1, big))
    return segs


def _big_record_frames(order_seed=None):
    groups = pieces(None, 1448, _with_big_server_record())
    if order_seed is not None:
        rng = random.Random(order_seed)
        big = max(range(len(groups)), key=lambda k: sum(len(x) for _d, _o, x in groups[k]))
        g = groups[big]
        # reorder, and resend pieces around the skipped region
        rng.shuffle(g)
        g += [g[rng.randrange(len(g))] for _ in range(4)]
    return frames_of(Conn(), groups)


def test_big_ciphertext_record_skipped_in_decoder(engine_impl, baseline13):
    """The skipped region does not change the summary: same as with skipping disabled, and
    the decoder did drop segments of it."""
    live, flushed, stats = summarize(_big_record_frames(), engine_impl)
    raw = one(live, flushed)
    ref_live, ref_flushed, ref_stats = summarize(_big_record_frames(), engine_impl,
                                                 skip_min=1 << 30)
    ref = one(ref_live, ref_flushed)
    assert stable(raw) == stable(ref)
    assert raw["server_encrypted"] == ref["server_encrypted"]
    assert 16000 in raw["server_encrypted"]
    assert raw["history"] == baseline13["history"] and raw["established"]
    assert stats["skip_encrypted"] > 0 and ref_stats["skip_encrypted"] == 0


@pytest.mark.parametrize("seed", range(6))
def test_big_ciphertext_record_out_of_order_and_resent(engine_impl, seed):
    live, flushed, _stats = summarize(_big_record_frames(seed), engine_impl)
    raw = one(live, flushed)
    ref = one(*summarize(_big_record_frames(seed), engine_impl, skip_min=1 << 30)[:2])
    assert stable(raw) == stable(ref)
    assert raw["gaps"] == [] and raw["established"] and raw["history"] == "CsiI"


def test_retransmission_is_counted(engine_impl, baseline12):
    groups = [g + g for g in pieces(TLS12, 200)]           # every segment sent twice
    live, flushed, stats = summarize(frames_of(Conn(), groups), engine_impl)
    assert stable(one(live, flushed)) == stable(baseline12)
    assert stats["retransmissions"] > 5


@SETTINGS
@given(which=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_overlapping_segments(engine_impl, baseline12, baseline13, which, seed):
    """Pieces of 1-400 bytes that start up to 150 bytes before the previous one ended
    (repeating the same bytes, also across the original segment boundaries), in half of
    the segments delivered out of order."""
    path, base = (TLS12, baseline12) if which else (TLS13, baseline13)
    rng = random.Random(seed)
    segs = tcp_segments(path)
    whole = [b"".join(x for dd, x in segs if dd == d) for d in (0, 1)]
    offs = [0, 0]
    groups = []
    for d, p in segs:
        g, i = [], 0
        while i < len(p):
            back = min(rng.randint(0, 150), offs[d] + i)
            n = min(rng.randint(1, 400), len(p) - i)
            start = offs[d] + i - back
            g.append((d, start, whole[d][start:offs[d] + i + n]))
            i += n
        if rng.random() < 0.5:
            rng.shuffle(g)
        offs[d] += len(p)
        groups.append(g)
    live, flushed, stats = summarize(frames_of(Conn(), groups), engine_impl)
    assert stable(one(live, flushed)) == stable(base)


# ---------------------------------------------------------------------------------------------
# holes, truncation, close
# ---------------------------------------------------------------------------------------------

def test_hole_that_never_fills(engine_impl, baseline12):
    """A server piece inside the Certificate message never arrives: the gap is marked for
    the server, nothing of the server after the hole is parsed (no certificate, no key
    exchange, no CCS), the client side is still read."""
    groups = pieces(TLS12, 200)
    first_server = next(i for i, g in enumerate(groups) if g[0][0] == 1)
    del groups[first_server][2]                          # bytes 400-599 of the server stream
    live, flushed, stats = summarize(frames_of(Conn(), groups), engine_impl)
    raw = one(live, flushed)
    assert raw["gaps"] == [1]
    assert raw["certificates"] == [] and raw["established"] is False
    server_letters = [c for c in raw["history"] if c.islower()]
    assert server_letters == ["s"], raw["history"]       # the ServerHello, before the hole
    assert raw["history"].startswith("Cs") and "G" in raw["history"]   # client still read
    assert raw["version"] == 0x0303 and raw["outcome"] != "established"
    assert stats["gaps"] >= 0


def test_hole_then_buffer_cap(engine_impl):
    """Behind a hole, out-of-order data beyond max_ooo_segments is given up: gap marked."""
    groups = pieces(TLS12, 50)
    first_server = next(i for i, g in enumerate(groups) if g[0][0] == 1)
    del groups[first_server][1]
    live, flushed, stats = summarize(frames_of(Conn(), groups), engine_impl, max_ooo_segments=8)
    raw = one(live, flushed)
    assert raw["gaps"] == [1] and raw["certificates"] == []
    assert stats["gaps"] >= 1


@pytest.mark.parametrize("captured", [50, 100])
def test_snaplen_truncated_frame(engine_impl, captured):
    """A frame whose IP total length exceeds the captured bytes: truncated, gap for its
    sender; the captured bytes before the cut are read (the ServerHello, ~94 bytes, is whole
    in 100 captured payload bytes, cut in 50), nothing after the cut is."""
    c = Conn()
    frames = frames_of(c, pieces(TLS12, 1448))
    # the first server data frame (after 3 handshake frames and the client's hello)
    idx = 4
    assert frames[idx][14 + 20 + 13] & PSH and frames[idx][14 + 12:14 + 16] == c.addr[1]
    frames[idx] = frames[idx][:14 + 40 + captured]
    live, flushed, stats = summarize(frames, engine_impl)
    raw = one(live, flushed)
    assert raw["truncated"] is True and raw["gaps"] == [1]
    server_letters = "".join(ch for ch in raw["history"] if ch.islower())
    if captured == 50:
        assert raw["version"] is None and server_letters == ""
    else:
        assert raw["version"] == 0x0303 and server_letters == "s"
    assert raw["certificates"] == [] and not raw["established"]
    assert stats["truncated"] == 1


def test_fin_senders_in_close(engine_impl):
    c = Conn()
    frames = frames_of(c, pieces(ALERT), close=[(1, FIN), (0, FIN)])
    live, flushed, _st = summarize(frames, engine_impl)
    assert flushed == [] and len(live) == 1                # finished by the second FIN
    raw = live[0]
    assert raw["close"] == {"fin": [1, 0], "rst": []}
    assert raw["outcome"] == "alert" and raw["alerts"][0][:3] == (1, 2, 40)


def test_rst_sender_in_close(engine_impl):
    c = Conn()
    groups = pieces(ALERT)[:1]                              # the ClientHello only
    frames = frames_of(c, groups, close=[(1, RST)])
    live, flushed, _st = summarize(frames, engine_impl)
    assert flushed == [] and len(live) == 1
    raw = live[0]
    assert raw["close"] == {"fin": [], "rst": [1]}
    assert raw["outcome"] == "reset" and raw["history"] == "C"


def test_one_fin_is_not_the_end(engine_impl):
    c = Conn()
    frames = frames_of(c, pieces(ALERT)[:1], close=[(0, FIN)])
    live, flushed, _st = summarize(frames, engine_impl)
    assert live == [] and len(flushed) == 1
    assert flushed[0]["close"] == {"fin": [0], "rst": []}
    assert flushed[0]["outcome"] == "closed"


# ---------------------------------------------------------------------------------------------
# roles without a SYN
# ---------------------------------------------------------------------------------------------

def test_mid_stream_client_from_client_hello(engine_impl):
    """No SYN seen; the client uses the LOWER port, so only the ClientHello can tell."""
    c = Conn(client=("10.0.0.9", 1000), server=("10.0.0.2", 50000))
    raw = one(*summarize(frames_of(c, pieces(TLS12), syn=False), engine_impl)[:2])
    assert raw["client"] == "10.0.0.9:1000" and raw["server"] == "10.0.0.2:50000"
    assert raw["history"] == "CsxknGIti" and raw["server_name"] == "www.example.com"


def test_mid_stream_client_hello_lost(engine_impl):
    """The first segment seen is the server's (ServerHello): it is the server."""
    c = Conn(client=("10.0.0.9", 1000), server=("10.0.0.2", 50000))
    groups = pieces(TLS12)[1:]
    raw = one(*summarize(frames_of(c, groups, syn=False), engine_impl)[:2])
    assert raw["client"] == "10.0.0.9:1000" and raw["server"] == "10.0.0.2:50000"
    assert raw["history"].startswith("sxkn") and raw["version"] == 0x0303


def test_mid_stream_bulk_data_is_not_a_flow(engine_impl):
    c = Conn()
    frames = [c.frame(1, ACK | PSH, 5000, b"\x42" * 1000) for _ in range(5)]
    live, flushed, stats = summarize(frames, engine_impl)
    assert live == flushed == []
    assert stats["skip_untracked"] == 5 and stats["flows_created"] == 0


# ---------------------------------------------------------------------------------------------
# encapsulations
# ---------------------------------------------------------------------------------------------

def test_ipv6_with_extension_headers(engine_impl, baseline12):
    c = Conn()
    ext, first = v6_ext_headers()
    frames = [ether(ipv4_to_ipv6(f[14:], ext, first)) for f in frames_of(c, pieces(TLS12))]
    raw = one(*summarize(frames, engine_impl)[:2])
    assert raw["client"] == "[2001:db8::a00:1]:40000"
    assert raw["server"] == "[2001:db8::a00:2]:443"
    want = {k: v for k, v in stable(baseline12).items() if k not in ("client", "server", "id")}
    got = {k: v for k, v in stable(raw).items() if k not in ("client", "server", "id")}
    assert got == want


def test_ipv6_fragment_header_is_not_parsed(engine_impl):
    c = Conn()
    frag = bytes([6, 0, 0x00, 0x09, 0, 0, 0, 1])           # offset 1 (x8), M=1
    frames = [ether(ipv4_to_ipv6(f[14:], frag, 44)) for f in frames_of(c, pieces(TLS12))]
    live, flushed, stats = summarize(frames, engine_impl)
    assert live == flushed == [] and stats["ip_fragment"] == len(frames)


@pytest.mark.parametrize("vlan", [b"\x81\x00\x00\x64", b"\x88\xa8\x00\x0a\x81\x00\x00\x64",
                                  b"\x91\x00\x00\x0a\x81\x00\x00\x64"],
                         ids=["802.1Q", "QinQ-88a8", "QinQ-9100"])
def test_vlan_and_qinq(engine_impl, baseline12, vlan):
    c = Conn()
    frames = [f[:12] + vlan + f[12:] for f in frames_of(c, pieces(TLS12))]
    raw = one(*summarize(frames, engine_impl)[:2])
    assert stable(raw) == stable(baseline12)


# ---------------------------------------------------------------------------------------------
# emitted exactly once
# ---------------------------------------------------------------------------------------------

def test_each_summary_exactly_once(engine_impl):
    """Five interleaved connections (established, alert+FIN, RST, half-done, HRR-free 1.3),
    then more data, FINs and RSTs on the finished ones, then expire and flush: exactly one
    summary per connection, each with its own endpoints."""
    conns = [Conn(client=("10.0.0.%d" % (i + 1), 40000 + i)) for i in range(5)]
    streams = [
        frames_of(conns[0], pieces(TLS12)),
        frames_of(conns[1], pieces(ALERT), close=[(1, FIN), (0, FIN)]),
        frames_of(conns[2], pieces(ALERT)[:1], close=[(1, RST)]),
        frames_of(conns[3], pieces(TLS12)[:2]),
        frames_of(conns[4], pieces(TLS13)),
    ]
    frames = []
    for i in range(max(len(s) for s in streams)):          # round-robin interleaving
        frames += [s[i] for s in streams if i < len(s)]
    for k, c in enumerate(conns):                          # late traffic on every flow
        end = 60000
        frames += [c.frame(1, ACK | PSH, end + j * 100, b"\x17\x03\x03\x00\x5f" + bytes(95))
                   for j in range(20)]
        frames += [c.frame(0, ACK | FIN, end), c.frame(1, ACK | RST, end + 2000)]
    s = Summarizer(1, engine=engine_impl)
    got = []
    for i, f in enumerate(frames):
        got += s.feed_frame(1000 + i / 1000, f)
    got += s.expire(10_000.0)
    got += s.flush()
    got += s.flush()
    stats = s.stats()
    clients = sorted(raw["client"] for raw, _c in got)
    assert len(clients) == len(set(clients)), "a connection was summarized twice: %r" % clients
    # every connection produced exactly one summary
    assert sorted(clients) == ["10.0.0.%d:%d" % (i + 1, 40000 + i) for i in range(5)]
    assert stats["summaries"] == 5
    assert stats["skip_done"] > 0               # late packets of finished flows dropped in C


# ---------------------------------------------------------------------------------------------
# bounds
# ---------------------------------------------------------------------------------------------

def test_idle_eviction_via_expire(engine_impl):
    a = Conn(client=("10.0.0.1", 40000))
    b = Conn(client=("10.0.0.5", 40005))
    s = Summarizer(1, idle_timeout=120.0, engine=engine_impl)
    for f in frames_of(a, pieces(ALERT)[:1]):
        assert s.feed_frame(0.0, f) == []
    for f in frames_of(b, pieces(ALERT)[:1]):
        assert s.feed_frame(100.0, f) == []
    assert s.expire(119.0) == []
    out = s.expire(130.0)
    assert [raw["client"] for raw, _ in out] == ["10.0.0.1:40000"]
    assert out[0][0]["outcome"] == "timeout"
    assert s.table.live == 1
    assert s.expire(130.0) == []
    later = s.expire(300.0)
    assert [raw["client"] for raw, _ in later] == ["10.0.0.5:40005"]
    # (and the finished keys, without a packet for idle_timeout, are forgotten)
    assert s.table.flows == {} and s.flush() == []
    assert s.stats()["flows_timed_out"] == 2


def test_idle_eviction_from_packet_time(engine_impl):
    """process() expires idle flows by the packets' own clock (no wall clock)."""
    a = Conn(client=("10.0.0.1", 40000))
    b = Conn(client=("10.0.0.5", 40005))
    s = Summarizer(1, idle_timeout=60.0, engine=engine_impl)
    for f in frames_of(a, pieces(ALERT)[:1]):
        s.feed_frame(0.0, f)
    got = []
    for i, f in enumerate(frames_of(b, pieces(ALERT)[:1])):
        got += s.feed_frame(500.0 + i, f)
    assert [raw["client"] for raw, _ in got] == ["10.0.0.1:40000"]
    assert got[0][0]["outcome"] == "timeout"


def test_flow_table_full_evicts_oldest(engine_impl):
    conns = [Conn(client=("10.0.1.%d" % i, 41000 + i)) for i in range(1, 8)]
    s = Summarizer(1, max_flows=4, engine=engine_impl)
    got = []
    for i, c in enumerate(conns):
        for f in frames_of(c, pieces(ALERT)[:1]):
            got += s.feed_frame(float(i), f)
            assert s.table.live <= 4
    assert [raw["outcome"] for raw, _ in got] == ["evicted"] * 3
    assert [raw["client"] for raw, _ in got] == ["10.0.1.%d:%d" % (i, 41000 + i)
                                                 for i in (1, 2, 3)]
    assert len(s.flush()) == 4


def _syn_batch(start: int, n: int) -> tuple[bytes, bytes]:
    """``n`` SYN frames from distinct (address, port) pairs numbered from ``start``, as a
    pcapy-ng style ``(buf, meta)`` batch."""
    c = Conn()
    tmpl = bytearray(c.frame(0, SYN))
    fl = len(tmpl)
    buf = bytearray(tmpl * n)
    meta = bytearray(16 * n)
    pack = struct.pack_into
    for i in range(n):
        k = start + i
        base = i * fl
        pack("!I", buf, base + 14 + 12, 0x0A000000 | (k >> 8) & 0xFFFF)    # 10.x.y.0 source
        pack("!H", buf, base + 14 + 20, 1024 + (k & 0xFF) * 200 + (k >> 24))  # source port
        pack("=IIII", meta, 16 * i, 1000 + k // 100_000, 0, base, fl)
    return bytes(buf), bytes(meta)


SYN_FLOOD = 1_000_000
MAX_FLOWS = 10_000
#: tracemalloc peak for the whole flood.  The flow table holds <= MAX_FLOWS half-open flows
#: (~0.5 KB each with key, Flow and dict slot, ~5 MB); every evicted key goes to the
#: ``done`` set, bounded by max_done (default 2^20 keys, ~90 B each), which dominates:
#: measured 94.9 MB for 990,000 done keys.
HEAP_BOUND = 120 * 1024 * 1024


def _flood(engine, n, table):
    dec = engine.decoder(1, table)
    peak_flows = 0
    for start in range(0, n, 4096):
        buf, meta = _syn_batch(start, min(4096, n - start))
        out = table.process(dec.decode_batch(buf, meta))
        assert out == []                       # half-open flows carry no TLS
        peak_flows = max(peak_flows, table.live)
        assert table.live <= table.max_flows
        assert table.ndone <= table.max_done
    stats = dec.stats()
    assert stats["packets"] == stats["emitted"] == n
    assert table.stats["flows_created"] == n
    assert table.stats["flows_evicted"] == n - table.max_flows
    assert peak_flows == table.max_flows
    return peak_flows


@pytest.mark.c_extension
def test_syn_flood_million_half_open_flows(c_engine):
    """1,000,000 SYNs from distinct (address, port) pairs through the C decoder and a
    10,000-flow table: the table never holds more than 10,000 flows (checked after every
    4,096-packet batch), the oldest are evicted, nothing is summarized, and flows that never
    carried TLS leave nothing in the finished-flow set."""
    table = c_engine.flow_table(max_flows=MAX_FLOWS)
    _flood(c_engine, SYN_FLOOD, table)
    assert table.ndone == 0 and len(table.flows) == table.live
    assert len(table._flow_order) <= 2 * MAX_FLOWS + 1024


@pytest.mark.manual
@pytest.mark.c_extension
def test_syn_flood_million_heap_bound(c_engine):
    """The same flood under tracemalloc: Python heap peak below HEAP_BOUND.  About 75 s of
    CPU here (tracemalloc doubles the cost), so it runs only with --run-manual."""
    table = c_engine.flow_table(max_flows=MAX_FLOWS)
    tracemalloc.start()
    try:
        _flood(c_engine, SYN_FLOOD, table)
        _cur, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < HEAP_BOUND, "tracemalloc peak %.1f MB" % (peak / 2**20)


@pytest.mark.c_extension
def test_syn_flood_heap_with_small_table(c_engine):
    """100,000 SYNs, max_flows 2,000 under tracemalloc: the heap peak (measured 2.8 MB for
    200,000) stays below 8 MB - memory follows the configured bounds, not the number of
    SYNs."""
    table = c_engine.flow_table(max_flows=2000, max_done=5000)
    tracemalloc.start()
    try:
        _flood(c_engine, 100_000, table)
        _cur, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert table.ndone == 0
    assert peak < 8 * 1024 * 1024, "tracemalloc peak %.1f MB" % (peak / 2**20)


def test_finished_set_is_bounded_oldest_first(engine_impl):
    """300 complete TLS connections through a table with max_done 100: the finished-flow
    set holds the 100 most recent, and late packets of those are still dropped in C."""
    groups = pieces(TLS13)
    frames = []
    conns = [Conn(client=("10.0.%d.%d" % (i // 200, i % 200 + 1), 40000 + i)) for i in range(300)]
    for c in conns:
        frames += frames_of(c, groups)
    late = conns[-1].frame(0, ACK | PSH, 5000, b"\x17\x03\x03\x00\x10" + b"x" * 16)
    s = Summarizer(1, max_done=100, engine=engine_impl)
    out = []
    for i, f in enumerate(frames + [late]):
        out += s.feed_frame(1000.0 + i / 1000, f)
    stats = s.stats()
    assert len(out) == 300 and all(raw["established"] for raw, _ in out)
    assert s.table.ndone == 100 and len(s.table.done_keys()) == 100
    kept = set(s.table.done_keys())
    assert [raw["client"] for raw, _ in out][-1] == "10.0.1.100:40299"
    assert len(kept) == 100 and len(s.table._done_order) <= 2 * 100 + 1024
    assert stats["skip_done"] > 0 and stats["flows_created"] == 300


def test_random_interleaving_of_many_connections(engine_impl):
    """Twenty connections, frames shuffled across connections but in order within each
    direction of each one: twenty summaries, each one the baseline's."""
    rng = random.Random(7)
    conns = [Conn(client=("10.1.0.%d" % (i + 1), 30000 + i)) for i in range(20)]
    streams = [frames_of(c, pieces(TLS12)) for c in conns]
    frames = []
    pos = [0] * len(streams)
    while any(p < len(s) for p, s in zip(pos, streams)):
        k = rng.choice([i for i, s in enumerate(streams) if pos[i] < len(s)])
        frames.append(streams[k][pos[k]])
        pos[k] += 1
    live, flushed, stats = summarize(frames, engine_impl)
    allx = live + flushed
    assert len(allx) == 20
    assert {r["history"] for r in allx} == {"CsxknGIti"}
    assert sorted(r["client"] for r in allx) == sorted("10.1.0.%d:%d" % (i + 1, 30000 + i)
                                                        for i in range(20))


# ---------------------------------------------------------------------------------------------
# odd but legal packets
# ---------------------------------------------------------------------------------------------

def test_ethernet_padding_is_not_payload(engine_impl, baseline12):
    """Frames padded to the 60-byte Ethernet minimum with non-zero bytes (the IP total
    length, not the frame length, says where the segment ends)."""
    frames = [f + b"\xee" * max(0, 60 - len(f)) for f in frames_of(Conn(), pieces(TLS12))]
    assert sum(len(f) == 60 for f in frames) >= 3
    raw = one(*summarize(frames, engine_impl)[:2])
    assert stable(raw) == stable(baseline12)


def test_ipv4_options_and_tcp_options(engine_impl, baseline12):
    """IHL 6 (one word of NOP options) and a TCP header with 12 bytes of options."""
    out = []
    for f in frames_of(Conn(), pieces(TLS12)):
        ip, tcp = f[14:34], f[34:54]
        payload = f[54:]
        topts = b"\x01\x01\x08\x0a" + b"\x00\x00\x00\x01\x00\x00\x00\x00"     # NOP NOP TS
        tcp = tcp[:12] + bytes([(20 + len(topts)) // 4 << 4]) + tcp[13:] + topts
        total = 24 + len(tcp) + len(payload)
        ip = bytes([0x46]) + ip[1:2] + total.to_bytes(2, "big") + ip[4:] + b"\x01\x01\x01\x00"
        out.append(f[:14] + ip + tcp + payload)
    raw = one(*summarize(out, engine_impl)[:2])
    assert stable(raw) == stable(baseline12)


def test_port_reuse_after_finish_is_a_new_connection(engine_impl):
    """The same 5-tuple handshakes twice (the first finished on its FINs): two summaries."""
    c = Conn()
    first = frames_of(c, pieces(ALERT), close=[(1, FIN), (0, FIN)])
    c2 = Conn(isn=(77_000_000, 88_000_000))
    second = frames_of(c2, pieces(TLS12))
    live, flushed, stats = summarize(first + second, engine_impl)
    allx = live + flushed
    assert [r["history"] for r in allx] == ["Cl", "CsxknGIti"]
    assert {r["client"] for r in allx} == {"10.0.0.1:40000"}
    assert allx[0]["id"] != allx[1]["id"]


@pytest.mark.parametrize("late", ["syn", "syn_ack", "syn_bit"])
def test_a_syn_inside_the_connection_does_not_move_its_sequence(engine_impl, baseline12, late):
    """Once data flowed, a copy of the client's SYN (same ISN: a SPAN port's duplicate, a
    capture's reordering), of the server's SYN-ACK, or a stray SYN bit on a server ACK is
    counted and ignored, as a real stack ignores it -- it was taken for a new sequence start,
    and the rest of the handshake for a hole (a false failure)."""
    c = Conn()
    frames = frames_of(c, pieces(TLS12))
    extra = {"syn": c.frame(0, SYN), "syn_ack": c.frame(1, SYN | ACK),
             "syn_bit": ether(c.packet(1, ACK, 0)[:33] + bytes([ACK | SYN]) + c.packet(1, ACK, 0)[34:])}
    frames.insert(4, extra[late])                  # after the ClientHello's first piece
    live, flushed, stats = summarize(frames, engine_impl)
    assert stable(one(live, flushed)) == stable(baseline12)
    assert stats["syn_inside_connection"] == 1


@pytest.mark.parametrize("start", ["midstream", "syn_ack"])
def test_a_new_connection_after_one_met_without_its_syn(engine_impl, start):
    """The 5-tuple reused after a connection whose SYN the capture missed (met mid-stream, or
    at its SYN-ACK): the client's new SYN starts a new connection, summarized on its own; a
    copy of the missed SYN (just behind the client's data) does not."""
    c = Conn()
    first = frames_of(c, pieces(ALERT)[:1], syn=False)
    if start == "syn_ack":
        first.insert(0, c.frame(1, SYN | ACK))
    second = frames_of(Conn(isn=(77_000_000, 88_000_000)), pieces(TLS12))
    live, flushed, stats = summarize(first + second, engine_impl)
    got = sorted((r["history"], r["established"]) for r in live + flushed)
    assert got == [("C", False), ("CsxknGIti", True)]
    live, flushed, stats = summarize(first + [c.frame(0, SYN)], engine_impl)
    assert [r["history"] for r in live + flushed] == ["C"]
    assert stats["syn_inside_connection"] == 1


@pytest.mark.parametrize("side", [0, 1])
def test_a_rst_far_from_the_senders_data_is_not_taken(engine_impl, baseline12, side):
    """A RST 2^30 past where the sender's bytes are (a blind spoof) mid-handshake: counted and
    ignored, as a real stack ignores it (RFC 5961) -- it ended the connection, a false failure.
    One at the sender's next byte still ends it."""
    c = Conn()
    frames = frames_of(c, pieces(TLS12))
    pkt = bytearray(c.packet(side, RST | ACK, 0))
    seq = (int.from_bytes(pkt[24:28], "big") + (1 << 30)) & 0xFFFFFFFF
    pkt[24:28] = seq.to_bytes(4, "big")
    frames.insert(4, ether(bytes(pkt)))
    live, flushed, stats = summarize(frames, engine_impl)
    assert stable(one(live, flushed)) == stable(baseline12)
    assert stats["rst_out_of_window"] == 1
    frames = frames_of(c, pieces(TLS12))[:4] + [c.frame(0, RST | ACK, len(pieces(TLS12)[0][0][2]))]
    live, flushed, stats = summarize(frames, engine_impl)
    assert one(live, flushed)["close"]["rst"] == [0] and stats["rst_out_of_window"] == 0


def test_a_client_syn_with_a_new_isn_once_data_flowed_is_a_new_connection(engine_impl):
    """The client's SYN with another ISN after the hello (the eBPF filter starts over on it
    too): the first connection ends there, unfinished; the second is summarized on its own."""
    c = Conn()
    first = frames_of(c, pieces(ALERT)[:1])
    second = frames_of(Conn(isn=(77_000_000, 88_000_000)), pieces(TLS12))
    live, flushed, stats = summarize(first + second, engine_impl)
    got = sorted((r["history"], r["established"]) for r in live + flushed)
    assert got == [("C", False), ("CsxknGIti", True)] and stats["syn_inside_connection"] == 0


# ---------------------------------------------------------------------------------------------
# hostile packet sequences
# ---------------------------------------------------------------------------------------------

_STREAMS = None


def _real_bytes():
    global _STREAMS
    if _STREAMS is None:
        from conftest import stream_bytes
        _STREAMS = [s for p in (TLS12, TLS13, ALERT) for s in stream_bytes(p) if s]
    return _STREAMS


PACKET = st.tuples(
    st.integers(0, 2),                                     # which connection
    st.integers(0, 1),                                     # direction
    st.sampled_from((SYN, SYN | ACK, ACK, ACK | PSH, ACK | FIN, RST, ACK | RST, FIN | SYN,
                     0)),
    st.integers(-3000, 30000),                             # stream offset (may be behind)
    st.one_of(st.just(b""), st.binary(max_size=40),        # payload: nothing, noise,
              st.tuples(st.integers(0, 5), st.integers(0, 6000), st.integers(1, 1500))),
    st.booleans(),                                         # snaplen-cut this frame
)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(packets=st.lists(PACKET, max_size=60), gap=st.floats(0, 200))
def test_hostile_packet_sequences(engine_impl, packets, gap):
    """Any mix of flags, sequence numbers (behind, ahead, wrapped), noise and slices of real
    TLS streams, cut frames and idle gaps: no internal error (the per-packet guard never
    fires), the table stays within max_flows, every summary returned is counted once, and
    flush() empties the table; the bytes held for reassembly are counted exactly (each flow's
    own and the table's sum) and stay within the memcap."""
    conns = [Conn(client=("10.9.0.%d" % (i + 1), 50000 + i)) for i in range(3)]
    real = _real_bytes()
    frames = []
    for k, d, flags, off, payload, cut in packets:
        if isinstance(payload, tuple):
            s = real[payload[0] % len(real)]
            payload = s[payload[1] % len(s):][:payload[2]]
        f = conns[k].frame(d, flags, off, payload)
        if cut and payload:
            f = f[:14 + 40 + len(payload) // 2]
        frames.append(f)
    s = Summarizer(1, max_flows=2, idle_timeout=60.0, max_ooo_segments=4,
                   max_ooo_bytes=4000, max_buffered=6000, engine=engine_impl)
    got = []
    for i, f in enumerate(frames):
        got += s.feed_frame(1000.0 + i * gap / max(len(frames), 1), f)
        assert s.table.live <= 2
        assert_held_counted(s.table)
        assert s.table.buffered <= 6000
    got += s.expire(1e9)
    got += s.flush()
    assert s.table.live == 0 and s.flush() == [] and s.table.buffered == 0
    stats = s.stats()
    assert stats["internal_errors"] == 0
    assert stats["summaries"] == len(got)
    for raw, _certs in got:
        assert raw["client"] in {"10.9.0.%d:%d" % (i + 1, 50000 + i) for i in range(3)} | \
            {"10.0.0.2:443"}
        assert len(raw["history"]) <= 101


def test_a_chain_of_too_many_certificates_is_read_as_far_as_the_cap(engine_impl, baseline12):
    """A server sends its chain and 62 more (empty) certificates: the first MAX_CERTIFICATES
    are read, the weird too_many_certificates notes the rest, and the handshake goes on to
    be established -- refusing the message stopped the server's side there, and a working
    handshake read as a failed one."""
    from cext.errors import MAX_CERTIFICATES
    segs = list(tcp_segments(TLS12))
    first = next(i for i, (d, _p) in enumerate(segs) if d == 1)
    server = b"".join(p for d, p in segs[first:] if d == 1)
    sh = 5 + int.from_bytes(server[3:5], "big")                 # the ServerHello record
    assert server[sh + 5] == 11                                 # then the Certificate
    rec = server[sh:sh + 5 + int.from_bytes(server[sh + 3:sh + 5], "big")]
    msg = rec[5:]
    extra = b"\x00\x00\x00" * 62
    body = msg[4:]
    body = (int.from_bytes(body[:3], "big") + len(extra)).to_bytes(3, "big") + body[3:] + extra
    msg = b"\x0b" + len(body).to_bytes(3, "big") + body
    new = rec[:3] + len(msg).to_bytes(2, "big") + msg
    last = first                    # the server's first flight: its segments in a row, as one
    while last + 1 < len(segs) and segs[last + 1][0] == 1:
        last += 1
    flight = b"".join(p for _d, p in segs[first:last + 1])
    assert flight.startswith(server[:sh]) and rec in flight
    segs[first:last + 1] = [(1, flight.replace(rec, new, 1))]
    live, flushed, _st = summarize(frames_of(Conn(), pieces(TLS12, segs=segs)), engine_impl)
    raw = one(live, flushed)
    assert len(raw["certificates"]) == MAX_CERTIFICATES
    assert raw["certificates"][:3] == baseline12["certificates"]
    assert "too_many_certificates" in raw["weirds"]
    assert raw["established"] is True and raw["history"] == baseline12["history"]


def assert_held_counted(table) -> None:
    """Each live flow's ``held`` is what it holds (queued out-of-order bytes, its reader's
    incomplete record and message, its session's certificates); the table's ``buffered`` is
    their sum."""
    flows = table._current()
    for f in flows:
        want = f.ooo_bytes[0] + f.ooo_bytes[1] + (f.conn.buffered() if f.conn else 0) \
            + (f.session.cert_bytes if f.session else 0)
        assert f.held == want
    assert table.buffered == sum(f.held for f in flows)


def test_reassembly_memcap_sheds_the_largest(engine_impl, baseline12):
    """Six connections each stop inside the server's Certificate record, holding 1930 to
    3430 bytes of it, under a memcap of 16,000 bytes for the table: past the cap, the flows
    holding the most give up what they hold (a gap, the weird reassembly_memcap) until the
    table holds 3/4 of the cap -- here the last two.  The first four stay within the cap and
    read their whole chain when the rest arrives (then kept, counted, until the connection
    closes); the table never holds more than the cap, and nothing once flushed."""
    groups = pieces(TLS12, 100000)
    hello = groups[0][0][2]
    server = b"".join(p for g in groups for d, _o, p in g if d == 1)
    s = Summarizer(1, engine=engine_impl, max_buffered=16000)
    conns = [Conn(client=("10.0.2.%d" % i, 42000 + i)) for i in range(6)]
    got, t, held = [], 1000.0, []

    def feed(frames):
        nonlocal got, t
        for f in frames:
            t += 0.001
            got += s.feed_frame(t, f)
            assert_held_counted(s.table)
            assert s.table.buffered <= 16000
    for i, c in enumerate(conns):
        feed(c.handshake() + [c.frame(0, ACK | PSH, 0, hello),
                              c.frame(1, ACK | PSH, 0, server[:2000 + 300 * i])])
        held.append(s.table.buffered)
    assert held == [1930, 4160, 6690, 9520, 12650, 9520]
    assert s.stats()["reassembly_memcap"] == 2
    for i, c in enumerate(conns):
        n = 2000 + 300 * i
        feed([c.frame(1, ACK | PSH, n, server[n:]), c.frame(1, ACK | FIN, len(server)),
              c.frame(0, ACK | FIN, len(hello))])
    got += s.flush()
    assert s.table.buffered == 0
    by_client = {raw["client"]: raw for raw, _c in got}
    assert len(by_client) == 6
    for i in range(6):
        raw = by_client["10.0.2.%d:%d" % (i, 42000 + i)]
        if i < 4:
            assert raw["certificates"] == baseline12["certificates"]
            assert raw["gaps"] == [] and "reassembly_memcap" not in raw["weirds"]
        else:
            assert raw["certificates"] == [] and raw["history"].startswith("Cs")
            assert raw["gaps"] == [1] and raw["weirds"] == ["reassembly_memcap"]


def test_certificates_kept_count_against_the_memcap(engine_impl):
    """A client alone can send a ClientHello and a whole Certificate message (1 MiB of
    certificates) and stall: its session keeps them until the summary.  They count against
    the memcap, and a connection that gives up drops them (the summary has none)."""
    der = b"\x30" + bytes(40_000)
    body = b"".join(len(der).to_bytes(3, "big") + der for _ in range(20))
    msg = b"\x0b" + (len(body) + 3).to_bytes(3, "big") + len(body).to_bytes(3, "big") + body
    records = b"".join(b"\x16\x03\x03" + len(msg[i:i + 16384]).to_bytes(2, "big")
                       + msg[i:i + 16384] for i in range(0, len(msg), 16384))
    hello = pieces(TLS12, 100000)[0][0][2]
    s = Summarizer(1, engine=engine_impl, max_buffered=2 << 20)
    t = 1000.0
    for i in range(4):
        c = Conn(client=("10.0.3.%d" % i, 43000 + i))
        frames = c.handshake() + [c.frame(0, ACK | PSH, 0, hello)]
        frames += [c.frame(0, ACK | PSH, len(hello) + k, records[k:k + 1400])
                   for k in range(0, len(records), 1400)]
        for f in frames:
            t += 0.001
            s.feed_frame(t, f)
            assert_held_counted(s.table)
            assert s.table.buffered <= 2 << 20
    # the first two gave theirs up when the third and the fourth came (oldest of the largest)
    assert [f.session.cert_bytes for f in s.table._current()] == [0, 0, 800_020, 800_020]
    assert s.stats()["reassembly_memcap"] == 2
    out = sorted((raw for raw, _c in s.flush()), key=lambda raw: raw["client"])
    assert [len(raw["client_certificates"]) for raw in out] == [0, 0, 20, 20]
    assert ["reassembly_memcap" in raw["weirds"] for raw in out] == [True, True, False, False]
    assert s.table.buffered == 0


def _batched(frames, size):
    for i in range(0, len(frames), size):
        chunk = frames[i:i + size]
        buf = b"".join(chunk)
        meta, off = [], 0
        for k, f in enumerate(chunk):
            ts_us = (i + k) * 1000                          # 1 ms apart, like summarize()
            meta.append(struct.pack("=IIII", 1000 + ts_us // 1_000_000, ts_us % 1_000_000,
                                    off, len(f)))
            off += len(f)
        yield buf, b"".join(meta)


@pytest.mark.parametrize("size", [1, 7, 64, 4096])
def test_batches_equal_frame_by_frame(engine_impl, size):
    """Summarizer.feed (decode_batch, what summarize runs) gives the same summaries as
    feed_frame whatever the batch size: pending flows, the done set and ciphertext skips set
    up inside a batch apply to the rest of it."""
    conns = [Conn(client=("10.2.0.%d" % (i + 1), 45000 + i)) for i in range(4)]
    streams = [frames_of(conns[0], pieces(TLS12)),
               frames_of(conns[1], pieces(ALERT), close=[(1, FIN), (0, FIN)]),
               frames_of(conns[2], pieces(None, 1448, _with_big_server_record())),
               frames_of(conns[3], pieces(TLS13, 200))]
    frames = []
    for i in range(max(len(s) for s in streams)):
        frames += [s[i] for s in streams if i < len(s)]
    for c in conns:                                         # late traffic after the finish
        frames += [c.frame(1, ACK | PSH, 70000 + j * 100, b"\x17\x03\x03\x00\x5f" + bytes(95))
                   for j in range(5)]
    live, flushed, _stats = summarize(frames, engine_impl)
    want = sorted((r["client"], r["history"], r["outcome"], r["end"]) for r in live + flushed)
    assert len(want) == 4
    s = Summarizer(1, engine=engine_impl)
    got = []
    for buf, meta in _batched(frames, size):
        got += [raw for raw, _c in s.feed(buf, meta)]
    got += [raw for raw, _c in s.flush()]
    assert sorted((r["client"], r["history"], r["outcome"], round(r["end"], 3)) for r in got) \
        == [(a, b, c, round(d, 3)) for a, b, c, d in want]


def test_half_closed_failure_is_reported_after_the_linger(engine_impl):
    """The server rejects the ClientHello (fatal alert) and closes; the client's FIN never
    comes.  The summary is emitted ``close_linger`` (1 s) after the last packet, while other
    traffic goes on, not after the 120 s idle timeout."""
    failed = Conn(client=("10.0.0.7", 41000))
    groups = pieces(ALERT)
    frames = frames_of(failed, groups, close=[(1, FIN)])
    other = Conn(client=("10.0.0.8", 42000))
    later = frames_of(other, pieces(TLS13))
    s = Summarizer(1, engine=engine_impl)
    seen = []
    for i, f in enumerate(frames):
        seen += [(1000.0 + i / 1000, raw) for raw, _ in s.feed_frame(1000.0 + i / 1000, f)]
    assert seen == []
    for i, f in enumerate(later):                  # 0.5 s .. 2.5 s later
        ts = 1000.5 + i * 2.0 / len(later)
        seen += [(ts, raw) for raw, _ in s.feed_frame(ts, f)]
    stats = s.stats()
    failed_at = [ts for ts, raw in seen if raw["client"] == "10.0.0.7:41000"]
    assert len(failed_at) == 1 and 1001.0 <= failed_at[0] <= 1002.6
    raw = [r for _, r in seen if r["client"] == "10.0.0.7:41000"][0]
    assert raw["outcome"] == "alert" and raw["close"]["fin"] == [1]
    assert stats["flows_half_closed"] == 1 and stats["flows_timed_out"] == 0


# ---------------------------------------------------------------------------------------------
# the per-packet guard
# ---------------------------------------------------------------------------------------------

def _broken_session():
    """The twin's session record with a bug: every event of the reader raises."""
    def bug(self, *args):
        raise RuntimeError("bug")

    names = ("client_hello", "sslv2_client_hello", "server_hello", "hello_retry_request",
             "certificate", "server_key_exchange", "certificate_request", "handshake",
             "change_cipher_spec", "alert", "encrypted", "record")
    return type("BrokenSession", (load_engine("py").session.Session,),
                dict.fromkeys(names, bug))


def test_internal_errors_are_counted_and_logged_at_powers_of_two(caplog):
    """A bug that hits every flow: each is counted and finished as incomplete, but only the
    1st, 2nd, 4th, 8th ... get a log record with their traceback."""
    import types
    py = load_engine("py")
    broken = py._replace(session=types.SimpleNamespace(Session=_broken_session(),
                                                       Caches=py.session.Caches))
    s = Summarizer(1, engine=broken)
    s.decoder = broken.decoder(1, s.table)
    n = 20
    frames = []
    for i in range(n):
        frames += frames_of(Conn(client=("10.9.0.%d" % (i + 1), 40000 + i)), pieces(ALERT)[:1])
    with caplog.at_level("ERROR", logger=py.flows.__name__):
        for i, f in enumerate(frames):
            s.feed_frame(1000.0 + i / 1000, f)
    assert s.table.stats["internal_errors"] == n
    logged = [r for r in caplog.records if "internal error" in r.getMessage()]
    assert [r.args[-1] for r in logged] == [1, 2, 4, 8, 16]
    assert logged[0].getMessage().startswith("internal error on flow 10.9.0.1:40000 -> ")
    assert all(r.exc_info for r in logged)
