"""A gzip-compressed capture file is decompressed as it is read, by a child process into a
pipe, and walked like a stream: no temporary file, the same connections as the plain file,
and when its gzip data is cut short or corrupt, the connections read before that, then that
error -- whatever the decompressed bytes looked like where they stopped."""
from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import pytest

from sensor import capture
from sensor.capture import CaptureError, FileCapture
from sensor.pipeline import summarize_paths
from tests.support.fifo import read_capture
from tests.support.pcapng import to_pcapng

ROOT = Path(__file__).resolve().parent.parent
LONG = ROOT / "tests" / "data" / "scenarios-tls13" / "mixed_long.pcap"     # 13,798 packets
PLAIN = LONG.read_bytes()
GZ = gzip.compress(PLAIN)


def _read(tmp_path, data: bytes, name: str = "capture.pcap.gz", **kw) -> tuple:
    path = tmp_path / name
    path.write_bytes(data)
    out, stats, error = read_capture(str(path), **kw)
    return out, stats, error


@pytest.fixture(scope="module")
def whole() -> tuple:
    return read_capture(str(LONG))


def _reaped(pids: list) -> bool:
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            continue
        return False
    return True


def test_the_plain_files_connections_and_no_temporary_file(tmp_path, monkeypatch, whole, forks):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    assert _read(tmp_path, GZ) == whole
    assert list(tmp.iterdir()) == []
    assert len(forks) == 1 and _reaped(forks)       # (the decompressing child)


def test_concatenated_members_are_one_capture(tmp_path, whole):
    cut = len(PLAIN) // 3                            # (inside a record)
    data = gzip.compress(PLAIN[:cut]) + gzip.compress(PLAIN[cut:2 * cut]) \
        + gzip.compress(PLAIN[2 * cut:])
    assert _read(tmp_path, data) == whole


def test_pcapng_inside_is_walked(tmp_path):
    ng = to_pcapng(LONG.read_bytes(), extra_every=100)
    plain = tmp_path / "plain.pcapng"
    plain.write_bytes(ng)
    assert _read(tmp_path, gzip.compress(ng), "c.pcapng.gz") == read_capture(str(plain))


@pytest.mark.parametrize("at", [0.5, 0.999])
def test_cut_short_gives_what_was_read_then_says_so(tmp_path, whole, forks, at):
    out, _stats, error = _read(tmp_path, GZ[:int(len(GZ) * at)])
    assert error == "X: truncated gzip data"
    assert 0 < len(out) < len(whole[0])
    half = len(out) // 2                # (those finished well before the cut: the same)
    assert out[:half] == whole[0][:half]
    assert _reaped(forks)


def test_cut_at_a_record_boundary(tmp_path, whole):
    # the decompressed data ends cleanly between records: only gzip knows it was cut
    first = 24 + 16 + int.from_bytes(PLAIN[32:36], "little")    # (header, first record)
    stream = zlib.compressobj(wbits=31)
    head = stream.compress(PLAIN[:first]) + stream.flush(zlib.Z_FULL_FLUSH)
    out, _stats, error = _read(tmp_path, head)
    assert error == "X: truncated gzip data" and out == []


def test_corrupt_data_gives_what_was_read_then_says_so(tmp_path, whole):
    bad = bytearray(GZ)
    bad[-8] ^= 0xFF                                  # (the CRC: found at the end)
    out, _stats, error = _read(tmp_path, bytes(bad))
    assert error.startswith("X: corrupt gzip data: ") and "incorrect data check" in error
    # (all but the output of zlib's last call, lost with its error)
    assert len(whole[0]) // 2 < len(out) < len(whole[0])
    assert out[:len(out) // 2] == whole[0][:len(out) // 2]


@pytest.mark.parametrize("data,message", [
    (gzip.compress(b""), "X: not a pcap or pcapng file (it is empty)"),
    (gzip.compress(b"GET / HTTP/1.1\r\n" * 100), "X: not a pcap or pcapng file"),
    (b"\x1f\x8b garbage", "X: corrupt gzip data: Error -3 while decompressing data: "
                          "unknown compression method"),
    (b"\x1f\x8b", "X: truncated gzip data"),
], ids=["empty", "text", "garbage", "magic_only"])
def test_not_a_capture_inside(tmp_path, forks, data, message):
    assert _read(tmp_path, data) == ([], {}, message)
    assert _reaped(forks)


def test_a_bomb_is_stopped_where_it_stops_being_a_capture(tmp_path, forks):
    # 2 GB of zeros, 2 MB compressed: read up to its first window only (not a capture), the
    # one error, the child reaped
    z = zlib.compressobj(9, wbits=31)
    block = bytes(1 << 20)
    bomb = b"".join(z.compress(block) for _ in range(2048)) + z.flush()
    assert len(bomb) < 4 << 20
    assert _read(tmp_path, bomb) == ([], {}, "X: not a pcap or pcapng file")
    assert len(forks) == 1 and _reaped(forks)


@pytest.mark.parametrize("name", ["whole", "cut", "corrupt", "text"])
def test_jobs_decompress_once_and_give_what_one_gives(tmp_path, forks, name):
    bad = bytearray(GZ)
    bad[-8] ^= 0xFF
    data = {"whole": GZ, "cut": GZ[:len(GZ) // 2], "corrupt": bytes(bad),
            "text": gzip.compress(b"GET / HTTP/1.1\r\n" * 100)}[name]
    one = _read(tmp_path, data)
    del forks[:]
    assert _read(tmp_path, data, jobs=2) == one
    # one decompressing child and two workers, all reaped
    assert len(forks) == 3 and _reaped(forks)


@pytest.mark.parametrize("name", ["whole", "cut", "text"])
def test_jobs_writing_decompress_once_and_write_what_one_gives(tmp_path, forks, name):
    # summarize's path: this process reads a share itself, from its own pipe
    data = {"whole": GZ, "cut": GZ[:len(GZ) // 2],
            "text": gzip.compress(b"GET / HTTP/1.1\r\n" * 100)}[name]
    path = tmp_path / "capture.pcap.gz"
    path.write_bytes(data)
    got = []
    for jobs in (1, 2):
        del forks[:]
        out = tmp_path / ("out-%d" % jobs)
        with open(out, "wb") as f:
            try:
                for line in summarize_paths([str(path)], jobs=jobs, transform=_line,
                                            output=f.fileno()):
                    f.write(line)
                error = None
            except CaptureError as exc:
                error = str(exc).replace(str(path), "X")
        got.append((out.read_bytes(), error))
        # one decompressing child, and for --jobs 2 one worker (a cut file: libpcap's
        # relays too), all reaped
        assert _reaped(forks)
        if name == "whole":
            assert len(forks) == jobs
    assert got[1] == got[0]
    assert got[0][0] or got[0][1]


def _line(summary: dict, certs) -> bytes:
    return ("%s %s %s\n" % (summary["id"], summary["client"], summary["ja4"])).encode()


def _open_fds() -> set:
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            out.add((fd, os.readlink("/proc/self/fd/" + fd)))
        except OSError:                         # (the listing's own)
            pass
    return out


@pytest.mark.parametrize("jobs", [1, 2, "2, writing"])
def test_no_process_for_what_follows_leaves_nothing_behind(tmp_path, monkeypatch, jobs):
    # the decompressing child is had, the next process (libpcap's relay, a --jobs worker)
    # is not: one error, every child reaped, every pipe of ours closed
    pids = []
    fork = os.fork

    def second_fails():
        if pids:
            raise BlockingIOError(11, "Resource temporarily unavailable")
        pid = fork()
        if pid:
            pids.append(pid)
        return pid
    ng = to_pcapng(PLAIN, tsresol=(0x86,))      # (left to libpcap whole: the relay)
    path = tmp_path / "c.pcapng.gz"
    path.write_bytes(gzip.compress(ng))
    before = _open_fds()
    monkeypatch.setattr(os, "fork", second_fails)
    if jobs == "2, writing":            # (this process reads a share itself)
        with open(tmp_path / "out", "wb") as f:
            before = _open_fds()
            try:
                list(summarize_paths([str(path)], jobs=2, transform=_line, output=f.fileno()))
            except CaptureError as exc:
                error = str(exc).replace(str(path), "X")
            monkeypatch.undo()
            leaked = _open_fds() - before
    else:
        out, _stats, error = read_capture(str(path), jobs=jobs)
        monkeypatch.undo()
        assert out == []
        leaked = _open_fds() - before
    assert error == {
        1: "X: cannot read on after 0 packets: Resource temporarily unavailable",
        2: "X: cannot start --jobs worker 0: Resource temporarily unavailable",
        "2, writing": "X: cannot start --jobs worker 1: Resource temporarily unavailable",
    }[jobs]
    assert len(pids) == 1 and _reaped(pids)
    # (multiprocessing's own two pipes, made for the worker that could not be forked, stay
    # open: its Popen does not close them when the fork fails; this process's own pipe from
    # the decompression is closed)
    assert len(leaked) == (0 if jobs == 1 else 4)


def test_a_child_that_does_not_finish_is_an_error(tmp_path, monkeypatch, whole):
    # (killed, or failed in a way it cannot report: its status never comes)
    def dies(path, outputs, chunk):
        for fd in outputs:
            os.write(fd, PLAIN[:len(PLAIN) // 2 - len(PLAIN) // 2 % 4096])
        os._exit(3)
    monkeypatch.setattr(capture, "_gunzip", dies)
    out, _stats, error = _read(tmp_path, GZ)
    assert error == "X: decompression stopped before the end of the file (its process was " \
                    "killed or failed)"
    assert 0 < len(out) < len(whole[0])


@pytest.mark.parametrize("jobs", [1, 2])
@pytest.mark.parametrize("size", [100_000, 3_000_000])
def test_text_cut_short_is_not_a_capture_whatever_its_size(tmp_path, jobs, size):
    # (something came out, and it is not a capture: that, not the gzip data's end, is why)
    text = gzip.compress(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n" * (size // 36))
    out = _read(tmp_path, text[:len(text) // 2], jobs=jobs)
    assert out == ([], {}, "X: not a pcap or pcapng file")


def test_no_process_is_one_error(tmp_path, monkeypatch):
    def no_fork():
        raise BlockingIOError(11, "Resource temporarily unavailable")
    monkeypatch.setattr(os, "fork", no_fork)
    assert _read(tmp_path, GZ) == (
        [], {}, "X: cannot decompress: Resource temporarily unavailable")


def test_file_capture_reads_it_too(tmp_path):
    # (FileCapture: libpcap on the pipe; every packet, then the gzip error last)
    path = tmp_path / "c.pcap.gz"
    path.write_bytes(GZ)
    with FileCapture(str(path)) as cap:
        assert sum(len(meta) // 16 for _buf, meta in cap) == 13798
    path.write_bytes(GZ[:len(GZ) // 2])
    with FileCapture(str(path)) as cap, pytest.raises(CaptureError, match="truncated gzip data"):
        for _batch in cap:
            pass
