"""Tunnel decapsulation (issue 15, item 1; ``cext/_encap_py.py``), in both builds.

The real captures of each encapsulation are in tests/test_realworld.py (checked against
tshark).  Here the IP packets of a real TLS 1.2 capture are wrapped, frame by frame, in each
encapsulation and its variants as the RFCs lay them out (built here, field by field): the
summary must be the very summary of the plain capture, and the counters must say which layers
were removed.  Truncated and malformed tunnel headers and too deep nesting are counted skips;
the compiled and the pure-Python decoder agree on every frame, mutated ones included.
"""
from __future__ import annotations

import random
import struct
from pathlib import Path

import dpkt
import pytest
from conftest import CAPTURES, load_engine

from sensor.pipeline import Summarizer, summarize_paths
from tlsdiag.commands.sensor import tunnel_metrics
from tlsdiag.metrics import render

TLS12 = CAPTURES / "tls12_rsa_chain3.pcap"
MAC = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02"


def _frames():
    with open(TLS12, "rb") as fh:
        out = [(ts, bytes(buf)) for ts, buf in dpkt.pcap.Reader(fh)]
    assert all(f[12:14] == b"\x08\x00" for _, f in out)        # untagged Ethernet, IPv4
    return out


FRAMES = _frames()


# ---------------------------------------------------------------------------------------------
# headers, as the RFCs lay them out
# ---------------------------------------------------------------------------------------------

def eth(et: int, payload: bytes, vlan: int | None = None) -> bytes:
    tag = struct.pack("!HH", 0x8100, vlan) if vlan is not None else b""
    return MAC + tag + struct.pack("!H", et) + payload


def ipv4(proto: int, payload: bytes, src=b"\xc0\x00\x02\x01", dst=b"\xc0\x00\x02\x02",
         frag: int = 0) -> bytes:
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, frag, 64, proto, 0,
                       src, dst) + payload


def ipv6(nh: int, payload: bytes) -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), nh, 64, b"\x20\x01" + b"\0" * 13
                       + b"\x01", b"\x20\x01" + b"\0" * 13 + b"\x02") + payload


def udp(dport: int, payload: bytes, sport: int = 49152) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def gre(pt: int, payload: bytes, csum=False, key=None, seq=None) -> bytes:
    """RFC 2784 / 2890."""
    flags = (0x80 if csum else 0) | (0x20 if key is not None else 0) \
        | (0x10 if seq is not None else 0)
    h = struct.pack("!BBH", flags, 0, pt)
    if csum:
        h += b"\0\0\0\0"
    if key is not None:
        h += struct.pack("!I", key)
    if seq is not None:
        h += struct.pack("!I", seq)
    return h + payload


def erspan2(frame: bytes, session: int = 123) -> bytes:
    """ERSPAN type II header: ver 1, VLAN, COS, En, T, session id; reserved, index."""
    return struct.pack("!HHI", (1 << 12), session & 0x3FF, 7) + frame


def erspan3(frame: bytes, ft: int = 0, platform: bool = False) -> bytes:
    """ERSPAN type III: ver 2 ...; timestamp; SGT, P, FT, HW ID, D, Gra, O."""
    w3 = (ft << 10) | (1 if platform else 0)
    h = struct.pack("!HHIHH", (2 << 12), 123, 0xDEADBEEF, 0, w3)
    return h + (b"\0" * 8 if platform else b"") + frame


def vxlan(frame: bytes, vni: int = 42) -> bytes:
    return struct.pack("!II", 0x08000000, vni << 8) + frame


def geneve(pt: int, payload: bytes, options: bytes = b"") -> bytes:
    assert len(options) % 4 == 0
    return struct.pack("!BBHI", len(options) // 4, 0, pt, 42 << 8) + options + payload


def gtpu(packet: bytes, exts: list[bytes] | None = None, msg: int = 0xFF) -> bytes:
    """TS 29.281: G-PDU; with ``exts`` the E flag, seq/N-PDU/next type and the extension
    headers (each given as its content, padded to 4n - 2 bytes here)."""
    if not exts:
        return struct.pack("!BBHI", 0x30, msg, len(packet), 0xC0FFEE) + packet
    body = b""
    types = [0x85] * len(exts)
    for i, content in enumerate(exts):
        nxt = types[i + 1] if i + 1 < len(exts) else 0
        words = (len(content) + 2 + 3) // 4
        content = content.ljust(words * 4 - 2, b"\0")
        body += bytes([words]) + content + bytes([nxt])
    opt = struct.pack("!HBB", 7, 0, types[0])
    return struct.pack("!BBHI", 0x34, msg, 4 + len(body) + len(packet), 0xC0FFEE) + opt + body \
        + packet


def capwap(frame: bytes) -> bytes:
    """RFC 5415 data channel, HLEN 2 words, WBID 1, T = 0: an 802.3 frame."""
    hlen, wbid = 2, 1
    bits = (hlen << 19) | (wbid << 9)
    return b"\x00" + bits.to_bytes(3, "big") + b"\0\0\0\0" + frame


def mpls(labels: list[int], payload: bytes) -> bytes:
    out = b""
    for i, label in enumerate(labels):
        out += struct.pack("!I", (label << 12) | (1 << 8 if i == len(labels) - 1 else 0) | 64)
    return out + payload


def pppoe(packet: bytes, v6: bool = False) -> bytes:
    ppp = struct.pack("!H", 0x0057 if v6 else 0x0021) + packet
    return struct.pack("!BBHH", 0x11, 0, 0x2A17, len(ppp)) + ppp


#: name -> (wrap(ip_packet) -> outer Ethernet frame, the counters it must raise)
WRAPS = {
    "ipip": (lambda p: eth(0x0800, ipv4(4, p)), {"encap_ipip": 1}),
    "ip4in6": (lambda p: eth(0x86DD, ipv6(4, p)), {"encap_ipip": 1}),
    "gre": (lambda p: eth(0x0800, ipv4(47, gre(0x0800, p))), {"encap_gre": 1}),
    "gre_key_seq_csum": (lambda p: eth(0x0800, ipv4(47, gre(0x0800, p, True, 7, 9))),
                         {"encap_gre": 1}),
    "gretap_vlan": (lambda p: eth(0x86DD, ipv6(47, gre(0x6558, eth(0x0800, p, vlan=5), key=1))),
                    {"encap_gre": 1}),
    "erspan1": (lambda p: eth(0x0800, ipv4(47, gre(0x88BE, eth(0x0800, p)))),
                {"encap_gre": 1, "encap_erspan": 1}),
    "erspan2": (lambda p: eth(0x0800, ipv4(47, gre(0x88BE, erspan2(eth(0x0800, p)), seq=1))),
                {"encap_gre": 1, "encap_erspan": 1}),
    "erspan3": (lambda p: eth(0x0800, ipv4(47, gre(0x22EB, erspan3(eth(0x0800, p)), seq=1))),
                {"encap_gre": 1, "encap_erspan": 1}),
    "erspan3_platform": (lambda p: eth(0x0800, ipv4(47, gre(0x22EB, erspan3(
        eth(0x0800, p), platform=True), seq=1))), {"encap_gre": 1, "encap_erspan": 1}),
    "erspan3_ip": (lambda p: eth(0x0800, ipv4(47, gre(0x22EB, erspan3(p, ft=2), seq=1))),
                   {"encap_gre": 1, "encap_erspan": 1}),
    "vxlan": (lambda p: eth(0x0800, ipv4(17, udp(4789, vxlan(eth(0x0800, p))))),
              {"encap_vxlan": 1}),
    "vxlan_linux_port_v6": (lambda p: eth(0x86DD, ipv6(17, udp(8472, vxlan(eth(0x0800, p))))),
                            {"encap_vxlan": 1}),
    "geneve_options": (lambda p: eth(0x0800, ipv4(17, udp(6081, geneve(
        0x6558, eth(0x0800, p), options=b"\x01\x02\x03\x01" + b"\xaa" * 4)))),
        {"encap_geneve": 1}),
    "geneve_ip": (lambda p: eth(0x0800, ipv4(17, udp(6081, geneve(0x0800, p)))),
                  {"encap_geneve": 1}),
    "gtpu": (lambda p: eth(0x0800, ipv4(17, udp(2152, gtpu(p), sport=2152))),
             {"encap_gtpu": 1}),
    "gtpu_extensions": (lambda p: eth(0x0800, ipv4(17, udp(2152, gtpu(
        p, exts=[b"\x01\x09", b"\x00" * 5]), sport=2152))), {"encap_gtpu": 1}),
    "capwap": (lambda p: eth(0x0800, ipv4(17, udp(5247, capwap(eth(0x0800, p))))),
               {"encap_capwap": 1}),
    "capwap_from_ac": (lambda p: eth(0x0800, ipv4(17, udp(50000, capwap(eth(0x0800, p)),
                                                          sport=5247))), {"encap_capwap": 1}),
    "mpls_stack": (lambda p: eth(0x8847, mpls([1000, 200, 100], p)), {"encap_mpls": 1}),
    "mpls_pw_control_word": (lambda p: eth(0x8847, mpls([16], b"\0\0\0\0" + eth(0x0800, p))),
                             {"encap_mpls": 1}),
    "mpls_over_gre": (lambda p: eth(0x0800, ipv4(47, gre(0x8847, mpls([7], p)))),
                      {"encap_gre": 1, "encap_mpls": 1}),
    "pppoe": (lambda p: eth(0x8864, pppoe(p)), {"encap_pppoe": 1}),
    "pppoe_vlan": (lambda p: eth(0x8864, pppoe(p), vlan=100), {"encap_pppoe": 1}),
    "nested_vxlan_gre_ipip": (lambda p: eth(0x0800, ipv4(4, ipv4(47, gre(0x6558, eth(
        0x0800, ipv4(17, udp(4789, vxlan(eth(0x0800, p))))))))),
        {"encap_ipip": 1, "encap_gre": 1, "encap_vxlan": 1}),
}


def _summaries(impl: str, frames) -> tuple[list, dict]:
    s = Summarizer(1, json=True, engine=load_engine(impl))
    out = []
    for ts, frame in frames:
        out += s.feed_frame(ts, frame)
    out += s.flush()
    return [summary for summary, _ in out], s.stats()


@pytest.fixture(scope="module", params=["c", "py"])
def plain(request):
    return request.param, _summaries(request.param, FRAMES)


@pytest.mark.parametrize("name", sorted(WRAPS))
def test_a_wrapped_capture_summarizes_as_the_plain_one(name, plain):
    impl, (want, plain_stats) = plain
    wrap, raised = WRAPS[name]
    got, stats = _summaries(impl, [(ts, wrap(f[14:])) for ts, f in FRAMES])
    assert len(want) == 1 and got == want
    n = len(FRAMES)
    for key, value in stats.items():
        if key.startswith("encap_"):
            assert value == raised.get(key, 0) * n, key
    assert stats["emitted"] == plain_stats["emitted"]


def _decode_all(impl: str, frames) -> tuple[list, dict]:
    dec = load_engine(impl).wire.PacketDecoder(1, {}, {})
    return [dec.decode(1.0, f) for f in frames], dec.stats()


# malformed or truncated tunnel headers: a counted skip, no segment
SYN = FRAMES[0][1][14:]
MALFORMED = {
    "vxlan_without_i_flag": (eth(0x0800, ipv4(17, udp(4789, b"\0" * 8 + eth(0x0800, SYN)))),
                             "encap_vxlan_malformed"),
    "vxlan_truncated": (eth(0x0800, ipv4(17, udp(4789, vxlan(b"\x02\x00")))),
                        "encap_vxlan_malformed"),
    "geneve_version_1": (eth(0x0800, ipv4(17, udp(6081, b"\x40" + geneve(0x6558, eth(
        0x0800, SYN))[1:]))), "encap_geneve_malformed"),
    "geneve_options_overrun": (eth(0x0800, ipv4(17, udp(6081, b"\x3f" + b"\0" * 7))),
                               "encap_geneve_malformed"),
    "gre_truncated_key": (eth(0x0800, ipv4(47, b"\x20\x00\x08\x00\x00")), "encap_gre_malformed"),
    "gre_inner_not_ipv4": (eth(0x0800, ipv4(47, gre(0x0800, b"\x60" + SYN[1:]))),
                           "encap_gre_malformed"),
    "erspan2_bad_version": (eth(0x0800, ipv4(47, gre(0x88BE, b"\x30" + erspan2(eth(
        0x0800, SYN))[1:], seq=1))), "encap_erspan_malformed"),
    "gtpu_version_2": (eth(0x0800, ipv4(17, udp(2152, b"\x50" + gtpu(SYN)[1:]))),
                       "encap_gtpu_malformed"),
    "gtpu_extension_overrun": (eth(0x0800, ipv4(17, udp(2152, struct.pack(
        "!BBHIHBB", 0x34, 0xFF, 8, 1, 0, 0, 0x85) + b"\x40\x00")) ), "encap_gtpu_malformed"),
    "capwap_hlen_overrun": (eth(0x0800, ipv4(17, udp(5247, b"\x00\xf8" + b"\0" * 6))),
                            "encap_capwap_malformed"),
    "mpls_no_bottom_of_stack": (eth(0x8847, struct.pack("!I", 16 << 12) * 9 + SYN),
                                "encap_mpls_malformed"),
    "mpls_truncated": (eth(0x8847, b"\x00\x01"), "encap_mpls_malformed"),
    "pppoe_bad_version": (eth(0x8864, b"\x21" + pppoe(SYN)[1:]), "encap_pppoe_malformed"),
    "pppoe_truncated": (eth(0x8864, b"\x11\x00\x2a"), "encap_pppoe_malformed"),
    "ipip_truncated": (eth(0x0800, ipv4(4, SYN[:12])), "encap_ipip_malformed"),
    "ipip_inner_version_6": (eth(0x0800, ipv4(4, b"\x65" + SYN[1:])), "encap_ipip_malformed"),
    "too_deep": (eth(0x0800, ipv4(4, ipv4(4, ipv4(4, ipv4(4, ipv4(4, SYN)))))),
                 "encap_too_deep"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_a_bad_tunnel_header_is_a_counted_skip(name, engine_impl):
    frame, counter = MALFORMED[name]
    segs, stats = _decode_all(engine_impl.implementation, [frame])
    assert segs == [None]
    assert stats[counter] == 1
    assert sum(v for k, v in stats.items() if k.endswith("_malformed") or k == "encap_too_deep") \
        == 1
    assert stats["not_tcp"] == stats["not_ip"] == stats["malformed_l3"] == 0


def test_four_layers_are_read_and_a_fifth_is_not(engine_impl):
    four = eth(0x0800, ipv4(4, ipv4(4, ipv4(4, ipv4(4, SYN)))))
    segs, stats = _decode_all(engine_impl.implementation, [four])
    assert segs[0] is not None and stats["encap_ipip"] == 4 and stats["encap_too_deep"] == 0


NOT_TUNNELS = {
    # (frame, the counter the decoder raised before tunnels were read, and still does)
    "dns": (eth(0x0800, ipv4(17, udp(53, b"\0" * 12))), "not_tcp"),
    "short_udp": (eth(0x0800, ipv4(17, b"\x12\xb5")), "not_tcp"),
    "icmp": (eth(0x0800, ipv4(1, b"\x08\x00" + b"\0" * 6)), "not_tcp"),
    "arp": (eth(0x0806, b"\0" * 28), "not_ip"),
    "gre_fragment": (eth(0x0800, ipv4(47, gre(0x0800, SYN), frag=0x2000)), "not_tcp"),
    "gre_version_1_pptp": (eth(0x0800, ipv4(47, b"\x30\x01\x88\x0b" + b"\0" * 8)), "not_tcp"),
    "gtpu_echo": (eth(0x0800, ipv4(17, udp(2152, gtpu(b"", msg=1)))), "not_tcp"),
    "capwap_dtls": (eth(0x0800, ipv4(17, udp(5247, b"\x01" + b"\0" * 7))), "not_tcp"),
    "pppoe_lcp": (eth(0x8864, struct.pack("!BBHHH", 0x11, 0, 1, 2, 0xC021)), "not_ip"),
    "pppoe_discovery": (eth(0x8863, b"\x11\x09\0\0\0\0"), "not_ip"),
    "outer_ipv4_bad_ihl": (eth(0x0800, b"\x44" + ipv4(47, gre(0x0800, SYN))[1:]),
                           "malformed_l3"),
}


@pytest.mark.parametrize("name", sorted(NOT_TUNNELS))
def test_what_is_no_tunnel_is_counted_as_before(name, engine_impl):
    frame, counter = NOT_TUNNELS[name]
    segs, stats = _decode_all(engine_impl.implementation, [frame])
    assert segs == [None] and stats[counter] == 1
    assert all(v == 0 for k, v in stats.items() if k.startswith("encap_"))


def test_an_inner_packet_that_is_not_tcp_is_counted_as_such(engine_impl):
    """Decapsulated, then the decoder's own counters: UDP in VXLAN is not_tcp, ARP not_ip."""
    frames = [eth(0x0800, ipv4(17, udp(4789, vxlan(eth(0x0800, ipv4(17, udp(53, b"x"))))))),
              eth(0x0800, ipv4(17, udp(4789, vxlan(eth(0x0806, b"\0" * 28)))))]
    segs, stats = _decode_all(engine_impl.implementation, frames)
    assert segs == [None, None]
    assert stats["encap_vxlan"] == 2 and stats["not_tcp"] == 1 and stats["not_ip"] == 1


def test_both_builds_agree_on_mutated_tunnel_frames():
    """Random byte flips and truncations of every wrapped and malformed frame: the same
    segments and counters from the compiled and the pure-Python decoder."""
    load_engine("c")
    rng = random.Random(15)
    frames = [wrap(f[14:]) for wrap, _ in WRAPS.values() for _, f in FRAMES[:4]]
    frames += [f for f, _ in MALFORMED.values()] + [f for f, _ in NOT_TUNNELS.values()]
    mutated = []
    for f in frames:
        mutated.append(f)
        for _ in range(30):
            b = bytearray(f)
            for _ in range(rng.randint(1, 4)):
                i = rng.randrange(min(len(b), 120))
                b[i] = rng.randrange(256)
            mutated.append(bytes(b))
            mutated.append(f[:rng.randrange(len(f))])
    c = _decode_all("c", mutated)
    py = _decode_all("py", mutated)
    assert c == py
    assert c[1]["emitted"] > 0 and any(v for k, v in c[1].items() if k.endswith("_malformed"))


def test_the_tunnel_counters_reach_the_sensor_metrics(tmp_path):
    """The encap_* counters are in the decoder's stats (summarize --stats, the sensor's stats
    line) and in the sensor's Prometheus metrics, by encapsulation."""
    stats: dict = {}
    erspan = Path(__file__).resolve().parent / "data" / "realworld" / "encap-erspan.pcap"
    assert len(list(summarize_paths([str(erspan)], stats=stats))) == 2
    text = render(tunnel_metrics(stats))
    assert 'tlsdiag_sensor_decapsulated_total{encapsulation="erspan"} %d' % stats[
        "encap_erspan"] in text
    assert stats["encap_erspan"] == stats["encap_gre"] > 0
    assert 'tlsdiag_sensor_decapsulation_skipped_total{encapsulation="any",reason="too_deep"} 0' \
        in text
