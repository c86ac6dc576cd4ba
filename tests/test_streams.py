"""A capture from a stream (a pipe, a FIFO, standard input) gives what the same capture gives
from a file -- the same connections in the same order, the same counters, the same error after
the same packets -- however the stream's bytes arrive and however small the window it is read
in; a classic pcap stream that ends in a bad record loses none of the good ones before it.  And
a file walked in place gives what libpcap gives for it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
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


@pytest.fixture
def mapped(monkeypatch):
    """Files of any size walked through mappings (of 64 KB: batches larger than a window
    make it grow), while they have a read lease; how many windows were mapped."""
    monkeypatch.setattr(pipeline.PcapFile, "MAP_MIN", 0)
    monkeypatch.setattr(pipeline.PcapFile, "MAP_WINDOW", 1 << 16)
    windows = []
    mapping = pipeline.PcapFile._mapped

    def counted(self, pos):
        got = mapping(self, pos)
        windows.append(got is not None)
        return got

    monkeypatch.setattr(pipeline.PcapFile, "_mapped", counted)
    return windows


#: pcapng forms of the long capture, walked mapped too: blocks between the packets; big-endian
#: with two interfaces of different time stamp resolutions
NG_CASES = {
    "long_pcapng": lambda: to_pcapng(CASES["long"], extra_every=50),
    "long_pcapng_big": lambda: to_pcapng(CASES["long"], big=True, tsresol=(6, 9)),
}


@pytest.mark.parametrize("name", sorted(CASES) + sorted(NG_CASES) + [
    "huge_caplen", "truncated_mid_header", "truncated_mid_packet", "header_only"])
def test_a_mapped_walk_reads_what_a_read_walk_reads(tmp_path, monkeypatch, mapped, name):
    data = CASES[name] if name in CASES else NG_CASES[name]() if name in NG_CASES else \
        (BAD / (name + ".pcap")).read_bytes()
    path = tmp_path / "capture.pcap"
    path.write_bytes(data)
    through_maps = _read(str(path))
    assert pipeline._Lease.held is None             # (given back when the walk ended)
    monkeypatch.setattr(pipeline.PcapFile, "MAP_MIN", 1 << 62)
    assert through_maps == _read(str(path))
    # (the file header alone, or cut inside it: not walked, nothing mapped)
    assert any(mapped) == (name not in ("header_cut", "header_only"))


def test_jobs_walking_through_mappings_give_what_one_walk_gives(tmp_path, mapped):
    # (the forked workers map too: the class's sizes are theirs as well, and each takes a
    # lease of its own on its own descriptor)
    path = tmp_path / "capture.pcap"
    path.write_bytes(CASES["long"])
    one = _read(str(path))
    assert any(mapped)
    assert read_capture(str(path), _line, jobs=2) == one
    assert read_capture(str(path), _line, jobs=3) == one


def test_a_file_open_to_write_is_read_not_mapped(tmp_path, mapped):
    # (no read lease while another open file description may write it: a mapping could then
    # be cut under the walk)
    path = tmp_path / "capture.pcap"
    path.write_bytes(CASES["long"])
    expected = _read(str(path))
    assert any(mapped)
    mapped.clear()
    with open(path, "ab"):
        assert _read(str(path)) == expected
    assert mapped == []


def test_a_walk_in_another_thread_reads_not_maps(tmp_path, mapped):
    # (SIGIO's handler, which the lease needs, can only be set in the main thread)
    import threading
    path = tmp_path / "capture.pcap"
    path.write_bytes(CASES["long"])
    expected = _read(str(path))
    mapped.clear()
    got = []
    t = threading.Thread(target=lambda: got.append(_read(str(path))))
    t.start()
    t.join()
    assert got == [expected] and mapped == []


#: a walk through mappings of the capture argv[1] (64 KB windows) while another process cuts it
#: to argv[2] bytes as soon as the first window is mapped: read_capture's result as JSON
_CUT_WHILE_MAPPED = """
import json, os, subprocess, sys, time
from sensor import pipeline
from tests.support.fifo import read_capture
path, cut = sys.argv[1], int(sys.argv[2])
pipeline.PcapFile.MAP_MIN, pipeline.PcapFile.MAP_WINDOW = 0, 1 << 16
mapping, give_back = pipeline.PcapFile._mapped, pipeline.PcapFile._give_back
child = []

def first_then_cut(self, pos):
    got = mapping(self, pos)
    if not child:
        child.append(subprocess.Popen([sys.executable, "-c", "import os, sys; "
                                       "os.truncate(sys.argv[1], int(sys.argv[2]))", path,
                                       str(cut)]))
        # the cut waits on the lease: this process hears of it, the window stays whole
        deadline = time.monotonic() + 20
        while not self._lease.broken and time.monotonic() < deadline:
            time.sleep(0.005)
        assert self._lease.broken and child[0].poll() is None
    return got

def then_wait(self):
    held = self._lease is not None
    give_back(self)
    if held and child:      # (the cut is done before the walk reads on)
        assert child[0].wait(timeout=20) == 0

pipeline.PcapFile._mapped, pipeline.PcapFile._give_back = first_then_cut, then_wait
out, stats, error = read_capture(path, lambda s, c: [s["id"], s["history"], sorted(c)])
print(json.dumps([out, stats, error]))
"""


def test_a_file_cut_short_by_another_process_while_mapped(tmp_path):
    # cut inside the first mapped window, while the walk has it: without the lease the walk
    # reads pages no longer in the file and dies of SIGBUS; with it, the cut waits until the
    # walk gives the lease back at its next window, which it reads, as the cut file is read
    path = tmp_path / "capture.pcap"
    path.write_bytes(CASES["long"])
    cut_file = tmp_path / "cut.pcap"
    cut = 30000
    cut_file.write_bytes(CASES["long"][:cut])
    script = tmp_path / "walk.py"
    script.write_text(_CUT_WHILE_MAPPED)
    run = subprocess.run([sys.executable, str(script), str(path), str(cut)],
                         capture_output=True, text=True, timeout=120, cwd=str(ROOT),
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert run.returncode == 0, run.stderr[-2000:]
    out, stats, error = json.loads(run.stdout)
    expected = subprocess.run(
        [sys.executable, "-c", "import json, sys\nfrom tests.support.fifo import read_capture\n"
         "print(json.dumps(read_capture(sys.argv[1], lambda s, c: [s['id'], s['history'], "
         "sorted(c)])))", str(cut_file)],
        capture_output=True, text=True, timeout=120, cwd=str(ROOT),
        env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert [out, stats, error.replace(str(path), "X") if error else error] == \
        json.loads(expected.stdout.replace(str(cut_file), "X"))
    assert os.path.getsize(path) == cut
    assert out and error is not None and "truncated" in error


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
