"""pcapng captures are walked in place as classic pcap ones are (sensor.savefile,
``PacketDecoder.begin_pcapng``): what the walk gives is what libpcap gives for the same file --
the same connections with the same time stamps, the same counters, the same error after the
same packets -- for every byte order, time stamp resolution and offset, several interfaces,
blocks between the packets, and damage anywhere; what it does not read is libpcap's, whole.
A pcapng stream loses nothing before a bad block."""
from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensor import pipeline
from sensor.savefile import MORE, Layout, pcapng_header
from tests.support.fifo import from_a_fifo, read_capture
from tests.support.pcapng import (block, blocks, classic_records, epb, idb, option, packet_blocks,
                                  shb, to_pcapng)

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = sorted((ROOT / "tests" / "data" / "captures").glob("*.pcap"))
LONG = ROOT / "tests" / "data" / "scenarios-tls13" / "mixed_long.pcap"     # 13,798 packets
CHAIN = ROOT / "tests" / "data" / "captures" / "tls12_rsa_chain3.pcap"

#: pcapng variants of a classic capture; those marked True keep its time stamps exactly (the
#: output is the classic capture's), the others round them (libpcap's output either way)
VARIANTS = {
    "little": (dict(), True),
    "big": (dict(big=True), True),
    "nanoseconds": (dict(tsresol=(9,)), True),
    "picoseconds": (dict(tsresol=(12,), tsoffset=1_790_000_000, big=True), True),
    "milliseconds": (dict(tsresol=(3,)), False),
    "seconds": (dict(tsresol=(0,)), False),
    "offset": (dict(tsoffset=1_600_000_000), True),
    "negative_offset": (dict(tsoffset=-86400, tsresol=(9,)), True),
    "interfaces": (dict(tsresol=(None, 9, 6)), True),
    "blocks": (dict(extra_every=2), True),
    "packet_options": (dict(epb_options=True, big=True), True),
    "snaplen_0": (dict(snaplen=0), True),
    "snaplen_above_the_maximum": (dict(snaplen=262145, tsresol=(6, 6)), True),
}


def _libpcap(monkeypatch):
    """Files read by libpcap only from here on (the walk's open declines)."""
    monkeypatch.setattr(pipeline.PcapFile, "open", classmethod(lambda cls, path: None))


def _both(tmp_path, monkeypatch, data: bytes) -> tuple:
    """(walked, libpcap's) reading of ``data`` as a file."""
    path = tmp_path / "capture.pcapng"
    path.write_bytes(data)
    walked = read_capture(str(path))
    with monkeypatch.context() as m:
        _libpcap(m)
        by_libpcap = read_capture(str(path))
    return walked, by_libpcap


def _walked(data: bytes, tmp_path) -> bool:
    path = tmp_path / "w.pcapng"
    path.write_bytes(data)
    walked_file = pipeline.PcapFile.open(str(path))
    if walked_file is not None:
        walked_file.close()
    return walked_file is not None


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("capture", [p.stem for p in CAPTURES] + ["mixed_long"])
def test_walked_as_libpcap_reads_it(tmp_path, monkeypatch, capture, variant):
    src = LONG if capture == "mixed_long" else CAPTURES[[p.stem for p in CAPTURES].index(capture)]
    kw, exact = VARIANTS[variant]
    data = to_pcapng(src.read_bytes(), **kw)
    assert _walked(data, tmp_path)
    walked, by_libpcap = _both(tmp_path, monkeypatch, data)
    assert walked == by_libpcap
    assert walked[2] is None and walked[0]
    if exact:                   # the classic capture's own connections, to the microsecond
        assert walked == read_capture(str(src))


def _long() -> tuple:
    """mixed_long as pcapng, and where its packet blocks start."""
    ng = to_pcapng(LONG.read_bytes(), extra_every=500)
    return ng, packet_blocks(ng)


def _damaged() -> dict:
    ng, at = _long()
    lt, _snap, recs = classic_records(LONG.read_bytes())
    head = ng[:at[0]]

    def put(data: bytes, pos: int, fmt: str, *values) -> bytes:
        b = bytearray(data)
        struct.pack_into(fmt, b, pos, *values)
        return bytes(b)
    return {
        "cut": ng[:at[8 * 1024 + 305] + 100],           # inside a packet of the 9th batch
        "cut_in_header": ng[:at[0] - 30],
        "cut_at_a_block_header": ng[:at[5000] + 5],
        "length_not_a_multiple_of_4": put(ng, at[5000] + 4, "<I", 0x102),
        "length_too_short": put(ng, at[3000] + 4, "<I", 8),
        "trailer_differs": put(ng, at[3001] - 4, "<I", 0x40),
        "caplen_past_the_block": put(ng, at[7000] + 20, "<I", 0xFFFF),
        "unknown_interface": put(ng, at[4000] + 8, "<I", 7),
        "caplen_above_snaplen": to_pcapng(LONG.read_bytes(), snaplen=1400),
        "interface_mid_file": ng[:at[6000]] + idb(lt) + ng[at[6000]:],
        "other_linktype_mid_file": ng[:at[6000]] + idb(113) + ng[at[6000]:],
        "section_mid_file": ng[:at[6000]] + head + ng[at[6000]:],
        "huge_block": ng[:at[2000]] + block(0xBAD, bytes(17 << 20)) + ng[at[2000]:],
        "big_block": ng[:at[2000]] + block(0xBAD, bytes(9 << 20)) + ng[at[2000]:],
        "simple_packet_block": ng[:at[100]] + block(3, struct.pack("<I", 60) + recs[0][2][:60])
        + ng[at[100]:],
    }


DAMAGED = _damaged()


@pytest.mark.parametrize("name", sorted(DAMAGED))
def test_damage_is_read_as_libpcap_reads_it(tmp_path, monkeypatch, name):
    walked, by_libpcap = _both(tmp_path, monkeypatch, DAMAGED[name])
    assert walked == by_libpcap
    assert walked[0] or name == "cut_in_header"
    if name in ("interface_mid_file", "section_mid_file", "big_block", "simple_packet_block"):
        assert walked[2] is None        # (libpcap reads on: the walk hands over, no error)
    else:
        assert walked[2] is not None


# (a FIFO written in 64 KB pieces, read in windows down to 4 KB: blocks straddle them)
@pytest.mark.parametrize("window", [1 << 20, 4096])
@pytest.mark.parametrize("name", ["cut", "unknown_interface", "interface_mid_file",
                                  "caplen_above_snaplen", "cut_in_header", "big_block"])
def test_a_stream_gives_what_the_file_gives(tmp_path, monkeypatch, name, window):
    monkeypatch.setattr(pipeline.PcapStream, "WINDOW", window)
    path = tmp_path / "capture.pcapng"
    path.write_bytes(DAMAGED[name])
    from_file = read_capture(str(path))
    assert from_a_fifo(tmp_path, DAMAGED[name], 1 << 16) == from_file


def test_a_cut_stream_loses_nothing_before_the_cut(tmp_path):
    cut, _stats, error = from_a_fifo(tmp_path, DAMAGED["cut"], 1 << 16)
    # 8 batches of 1,024 and 305 packets of the 9th: those too (libpcap alone, reading the
    # stream in batches, lost the 305)
    assert error.startswith("X: corrupt capture after 8497 packets: truncated pcapng")
    whole = read_capture(str(LONG))[0]
    assert 400 < len(cut) < len(whole)


def test_a_stream_the_walk_leaves_to_libpcap_loses_nothing_before_a_bad_block(tmp_path):
    # (17 interfaces: libpcap's whole.  Read from a pipe a packet at a time: read in
    # batches, the 376 good packets of the batch with the bad block were lost with it)
    ng = bytearray(to_pcapng(_first_packets(1500), tsresol=(6,) * 17))
    assert not _walked(bytes(ng), tmp_path)
    bad = packet_blocks(bytes(ng))[1400]
    size = struct.unpack_from("<I", ng, bad + 4)[0]
    struct.pack_into("<I", ng, bad + size - 4, size + 4)        # (its trailer disagrees)
    path = tmp_path / "capture.pcapng"
    path.write_bytes(bytes(ng))
    from_file = read_capture(str(path))
    assert from_file[2].startswith("X: corrupt capture after 1400 packets")
    assert from_a_fifo(tmp_path, bytes(ng), 1 << 16) == from_file


def test_a_section_header_alone_is_an_empty_capture(tmp_path, monkeypatch):
    ng, at = _long()
    walked, by_libpcap = _both(tmp_path, monkeypatch, ng[:at[0]])
    assert walked == by_libpcap == ([], walked[1], None)
    assert not _walked(ng[:at[0]], tmp_path)        # (nothing to walk: libpcap says so)


def test_a_page_of_header_alone_is_an_empty_capture(tmp_path, monkeypatch):
    # (no packet block, and the file a whole page: nothing to walk after its header)
    head = shb() + idb(1)
    page = head + block(0xBAD, bytes(4096 - len(head) - 12))
    assert len(page) == 4096
    walked, by_libpcap = _both(tmp_path, monkeypatch, page)
    assert walked == by_libpcap and walked[0] == [] and walked[2] is None


def _seconds_out_of_range() -> dict:
    """pcapng captures whose seconds fall outside 32 bits (before 1970, after 2106), the walk
    stopping in them (a second interface mid-file, a cut): libpcap then reads them too."""
    _lt, _snap, recs = classic_records(CHAIN.read_bytes())
    early = shb() + idb(1, tsoffset=-5) + epb(0, 0, recs[0][2])
    late = shb() + idb(1) + b"".join(
        epb(0, (0xFFFFFFFF << 32) | i, frame) for i, (_s, _n, frame) in enumerate(recs))
    return {"before_1970": early + idb(1) + b"".join(epb(1, i, f)
                                                     for i, (_s, _n, f) in enumerate(recs)),
            "after_2106_cut": late[:-20]}


@pytest.mark.parametrize("name", ["before_1970", "after_2106_cut"])
def test_seconds_beyond_32_bits_from_a_stream(tmp_path, monkeypatch, name):
    data = _seconds_out_of_range()[name]
    walked, by_libpcap = _both(tmp_path, monkeypatch, data)
    assert walked == by_libpcap
    assert from_a_fifo(tmp_path, data, 1 << 16) == walked
    assert walked[0]


@pytest.mark.parametrize("build", ["c", "py"])
def test_a_file_changed_under_the_walk_ends_the_batch(build):
    # (a buffer rewritten between the batch check and the reading: no read outside it, no
    # endless loop -- the batch ends)
    from conftest import load_engine
    impl = load_engine(build).wire
    plain = _first_packets(200)                 # (a batch of 200: n below stays far from it)
    for ng in (True, False):
        data = bytearray(to_pcapng(plain, extra_every=2) if ng else plain)
        start = packet_blocks(bytes(data))[0] if ng else 24
        for at, value in ((8, 7), (8, 0xFFFF), (4, 0), (4, 0xFFFFFF), (20, 0xFFFF)):
            buf = bytearray(data)
            dec = impl.PacketDecoder(1, {}, {})
            if ng:
                dec.begin_pcapng(buf, start, len(buf), False, 262144, ((10 ** 6, 0),))
            else:
                dec.begin_pcap(buf, start, len(buf), False, False, 262144)
            assert dec.pcap_batch(1024) > 3
            dec.next()                              # (its first frame, read as it was)
            p = dec.pcap_pos
            struct.pack_into("<I", buf, p + at, value)
            struct.pack_into("<I", buf, p + at + 4 if ng else p + 8, value)
            n = 0
            while dec.next() and n < 100:
                n += 1
            assert n < 30


def _header(*blocks: bytes, big: bool = False) -> bytes:
    return b"".join(blocks) + epb(0, 0, bytes(60), big)


#: starts of pcapng captures that the walk leaves to libpcap whole
LEFT = {
    "version_1_2": _header(shb(version=(1, 2)), idb(1)),
    "binary_resolution": _header(shb(), idb(1, tsresol=0x86)),
    "resolution_above_10^-19": _header(shb(), idb(1, tsresol=20)),
    "second_interface_other_linktype": _header(shb(), idb(1), idb(113)),
    "second_interface_other_snaplen": _header(shb(), idb(1), idb(1, snaplen=1500)),
    "two_raw_ip_interfaces": _header(shb(), idb(101), idb(101)),
    "17_interfaces": _header(shb(), *[idb(1)] * 17),
    "packet_before_an_interface": _header(shb()) + idb(1),
    "no_interface": shb(),
    "section_before_a_packet": _header(shb(), idb(1), shb(), idb(1)),
    "byte_order": b"\x0a\x0d\x0d\x0a" + shb()[4:8] + b"\x1a\x2b\x3c\x3c" + shb()[12:],
    "tsresol_twice": _header(shb(), idb(1, tsresol=6, options=option(9, b"\x06"))),
    "tsoffset_short": _header(shb(), idb(1, options=option(14, bytes(4)))),
    "option_past_the_block": _header(shb(), idb(1)[:-8] + struct.pack("<HH", 3, 200)
                                     + idb(1)[-4:]),
}


@pytest.mark.parametrize("name", sorted(LEFT))
def test_what_the_walk_leaves_to_libpcap(tmp_path, monkeypatch, name):
    data = LEFT[name]
    assert not isinstance(pcapng_header(data, True), Layout)
    assert not _walked(data, tmp_path)
    walked, by_libpcap = _both(tmp_path, monkeypatch, data)
    assert walked == by_libpcap


def test_the_header_asks_for_more_until_it_decides():
    ng, at = _long()
    for n in (0, 3, 11, 40, at[0] - 1, at[0]):
        assert pcapng_header(ng[:n], False) == MORE
    assert pcapng_header(ng[:at[0] + 7], False) == MORE        # (its type, not its length)
    assert pcapng_header(ng[:at[0] + 8], False).start == at[0]
    assert pcapng_header(ng[:at[0]], True).start == at[0]       # (no packet: all header)
    assert pcapng_header(b"\xd4\xc3\xb2\xa1" + bytes(20), False) is None


def test_time_stamps_as_libpcap_makes_them(tmp_path, monkeypatch):
    # a connection of its own (a handshake's first four packets, under a new client port:
    # its start is their time) per interface resolution and offset and time stamp, chosen
    # to round and to wrap
    _lt, _snap, recs = classic_records(CHAIN.read_bytes())
    client = recs[0][2][34:36]
    ifaces = [(0, 0), (3, 0), (5, 0), (6, 0), (7, 0), (9, 0), (12, 0), (19, 0),
              (6, -5), (9, 4_000_000_000)]
    data = shb() + b"".join(idb(1, tsresol=r, tsoffset=o or None) for r, o in ifaces)
    port = 1024
    for k, (r, _o) in enumerate(ifaces):
        for t in (0, 1, 10 ** r - 1, (1_700_000_000 * 10 ** r + 123456789) % (1 << 64),
                  (1 << 64) - 1):
            for _sec, _nsec, frame in recs[:4]:
                frame = bytearray(frame)
                at = 34 if frame[34:36] == client else 36       # (the client's port)
                struct.pack_into("!H", frame, at, port)
                data += epb(k, t, bytes(frame))
            port += 1
    assert _walked(data, tmp_path)
    walked, by_libpcap = _both(tmp_path, monkeypatch, data)
    assert walked == by_libpcap
    starts = [summary["start"] for summary, _certs in walked[0]]
    assert len(starts) == 50 and len(set(starts)) > 20


def _first_packets(n: int) -> bytes:
    data = LONG.read_bytes()
    p = 24
    for _ in range(n):
        p += 16 + int.from_bytes(data[p + 8:p + 12], "little")
    return data[:p]


#: 1,100 packets of mixed_long (two batches) with two interfaces and blocks between packets
MUTABLE = to_pcapng(_first_packets(1100), tsresol=(6, 9), extra_every=3)
BLOCKS = [p for p, _type in blocks(MUTABLE)]


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(
    # a byte anywhere
    st.tuples(st.integers(0, len(MUTABLE) - 1), st.integers(0, 255)),
    # a byte of a block's header or fixed fields (type, lengths, interface, time, caplen)
    st.builds(lambda b, k, v: (BLOCKS[b % len(BLOCKS)] + k, v),
              st.integers(0, 1000), st.integers(0, 27), st.sampled_from([0, 1, 2, 3, 4, 6, 255]))),
    min_size=1, max_size=3))
def test_mutations_are_read_as_libpcap_reads_them(tmp_path_factory, monkeypatch, changes):
    data = bytearray(MUTABLE)
    for pos, value in changes:
        data[pos % len(data)] = value
    walked, by_libpcap = _both(tmp_path_factory.mktemp("m"), monkeypatch, bytes(data))
    assert walked == by_libpcap
