"""A capture from a stream (a pipe, a FIFO, standard input) gives what the same capture gives
from a file -- the same connections in the same order, the same counters, the same error after
the same packets -- however the stream's bytes arrive and however small the window it is read
in; a classic pcap stream that ends in a bad record loses none of the good ones before it.  And
a file walked in place gives what libpcap gives for it."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from sensor import pipeline
from tests.support.fifo import from_a_fifo, read_capture
from tests.support.pcapng import to_pcapng

ROOT = Path(__file__).resolve().parent.parent
BAD = ROOT / "tests" / "data" / "bad"
LONG = ROOT / "tests" / "data" / "scenarios-tls13" / "mixed_long.pcap"     # 13,798 packets
CHAIN = ROOT / "tests" / "data" / "captures" / "tls12_rsa_chain3.pcap"


def _line(summary: dict, certs) -> tuple:
    return (summary["id"], summary["client"], summary["server"], summary["history"],
            summary["ja4"], tuple(sorted(certs)))


def _read(path: str) -> tuple:
    return read_capture(path, _line)


def _from_a_fifo(tmp_path, data: bytes, piece: int) -> tuple:
    return from_a_fifo(tmp_path, data, piece, _line)


def _cases() -> dict:
    chain = CHAIN.read_bytes()
    long = LONG.read_bytes()
    return {
        "long": long,
        # cut inside a record of its 9th batch
        "long_cut": long[:1800000],
        # cut inside the file header
        "header_cut": chain[:20],
        # records above the file header's snap length: walked, cut to it as libpcap cuts them
        "snaplen_200": chain[:16] + (200).to_bytes(4, "little") + chain[20:],
        "long_snaplen": long[:16] + (1400).to_bytes(4, "little") + long[20:],
    }


CASES = _cases()


@pytest.fixture(params=[1 << 20, 4096, 64], ids=["1MB", "4KB", "64B"])
def window(request, monkeypatch):
    """The stream's (and a file's) window: batches larger than it make it grow."""
    monkeypatch.setattr(pipeline.PcapFile, "WINDOW", request.param)     # (PcapStream's too)
    return request.param


# (7-byte writes only of the small captures: 2.9 MB so would be slow; 1000 covers them)
@pytest.mark.parametrize("name,piece", [(name, piece) for name in sorted(CASES)
                                        for piece in (1 << 16, 1000, 7)
                                        if piece > 7 or len(CASES[name]) < 100000])
def test_a_stream_gives_what_the_file_gives(tmp_path, window, name, piece):
    path = tmp_path / "capture.pcap"
    path.write_bytes(CASES[name])
    from_file = _read(str(path))
    from_stream = _from_a_fifo(tmp_path, CASES[name], piece)
    assert from_stream == from_file
    if name.startswith("long"):
        assert len(from_file[0]) > 400


def test_the_long_cut_capture_loses_nothing_before_the_cut(tmp_path):
    whole, _stats, error = _read(str(LONG))
    assert error is None
    cut, _stats, error = _from_a_fifo(tmp_path, CASES["long_cut"], 1 << 16)
    assert error == "X: corrupt capture after 8497 packets: truncated dump file; tried to " \
                    "read 207 captured bytes, only got 17"
    # 8,497 = 8 batches of 1,024 and 305 packets of the 9th: those too are read
    assert 400 < len(cut) < len(whole)


@pytest.mark.parametrize("name", sorted(CASES) + ["huge_caplen", "truncated_mid_header",
                                                  "truncated_mid_packet", "header_only"])
def test_the_walk_reads_what_libpcap_reads(tmp_path, monkeypatch, name):
    # (records above the snap length are cut to it, as libpcap cuts them; one above libpcap's
    # maximum is its error, from its batch on)
    data = CASES[name] if name in CASES else (BAD / (name + ".pcap")).read_bytes()
    path = tmp_path / "capture.pcap"
    path.write_bytes(data)
    walked_file = pipeline.PcapFile.open(str(path))
    assert (walked_file is None) == (name in ("header_cut", "header_only"))
    if walked_file is not None:
        walked_file.close()
    walked = _read(str(path))
    monkeypatch.setattr(pipeline.PcapFile, "open", classmethod(lambda cls, path: None))
    assert walked == _read(str(path))
    if name in ("snaplen_200", "long_snaplen"):
        assert walked[2] is None and walked[0]


@pytest.mark.parametrize("cut", [24 + 16 + 40, 100000, 1 << 20])
def test_a_file_cut_short_while_it_is_read_reads_as_the_cut_file(tmp_path, monkeypatch, window,
                                                                 cut):
    # (its size is taken when it is opened; the windows read after the cut are short: the
    # walk ends there, as the cut file's own reading ends -- through a mapping it was SIGBUS)
    path = tmp_path / "capture.pcap"
    path.write_bytes(CASES["long"])
    cut_file = tmp_path / "cut.pcap"
    cut_file.write_bytes(CASES["long"][:cut])
    expected = _read(str(cut_file))
    opened = pipeline.PcapFile.open

    def open_then_cut(cls, name):
        walked_file = opened(name)
        os.truncate(name, cut)
        return walked_file

    monkeypatch.setattr(pipeline.PcapFile, "open", classmethod(open_then_cut))
    got = _read(str(path))
    assert got == expected
    assert got[2] is not None and "truncated" in got[2]     # (libpcap's error for the cut)
    assert cut < 1 << 20 or len(got[0]) > 50               # (the largest cut: after many)


@pytest.mark.parametrize("window_size", [1 << 20, 65536, 4096])
def test_a_file_is_read_once_whatever_its_batches(tmp_path, monkeypatch, window_size):
    # a batch that runs past a window's end is moved to the front of the next one, not read
    # again: at 4 KB every batch (1024 records, ~200 KB here) is larger than the window, and
    # each was read about twice over before
    monkeypatch.setattr(pipeline.PcapFile, "WINDOW", window_size)
    path = tmp_path / "capture.pcap"
    path.write_bytes(CASES["long"])
    expected = _read(str(path))
    read = []
    preadv = os.preadv

    def counted(fd, buffers, offset):
        n = preadv(fd, buffers, offset)
        read.append((offset, n))
        return n

    monkeypatch.setattr(pipeline.os, "preadv", counted)
    assert _read(str(path)) == expected
    # (the walk starts after the 24-byte file header; each read goes on where the last ended)
    assert sum(n for _at, n in read) == len(CASES["long"]) - 24
    assert [at for at, _n in read] == [24 + sum(n for _at, n in read[:i])
                                      for i in range(len(read))]


@pytest.mark.parametrize("name", ["snaplen_200", "long_snaplen"])
def test_records_above_the_snap_length_need_no_relay(tmp_path, forks, name):
    # (walked, cut to the snap length: libpcap is not needed for the rest of the stream)
    out, _stats, error = _from_a_fifo(tmp_path, CASES[name], 1 << 16)
    assert out and error is None and forks == []


def test_the_relay_process_is_reaped(tmp_path, forks):
    # (after a record libpcap reads differently the rest of the stream goes to libpcap
    # through a child process: none is left behind)
    _from_a_fifo(tmp_path, CASES["long_cut"], 1 << 16)
    assert len(forks) == 1
    with pytest.raises(ChildProcessError):      # (reaped: no longer this process's child)
        os.waitpid(forks[0], os.WNOHANG)


@pytest.mark.parametrize("name", ["long_cut", "pcapng_cut", "pcapng_libpcap"])
def test_no_process_for_the_relay_is_one_error(tmp_path, monkeypatch, name):
    # (the rest of the stream needs a child process: without one, a CaptureError after what
    # was read, not a traceback)
    def no_fork():
        raise BlockingIOError(11, "Resource temporarily unavailable")
    monkeypatch.setattr(os, "fork", no_fork)
    ng = ROOT / "tests" / "data" / "captures" / "tls13_hrr.pcapng"
    data = {  # (a pcapng stream walked, then cut; one that libpcap reads from its start)
        "pcapng_cut": ng.read_bytes()[:-20],
        "pcapng_libpcap": to_pcapng(CHAIN.read_bytes(), tsresol=(0x86,)),
    }.get(name) or CASES[name]
    out, _stats, error = _from_a_fifo(tmp_path, data, 1 << 16)
    assert error.startswith("X: cannot read on after ") and error.endswith(
        " packets: Resource temporarily unavailable")
    assert (out == []) == name.startswith("pcapng")
