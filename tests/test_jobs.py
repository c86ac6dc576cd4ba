"""``--jobs N``: a file's connections split over N worker processes give the bytes one gives,
in the same order, with the same counters, whichever output (yielded, a file, a file opened to
append, a pipe) and however far one worker runs ahead of another; bad input stays a counted skip (or the
same CaptureError after the same connections); a worker's failure is an error, never a hang;
an output that cannot take more is one line from the CLI, as with one worker."""
from __future__ import annotations

import array
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import dpkt
import pytest

from cext import wire
from sensor import pipeline
from sensor.capture import CaptureError
from sensor.pipeline import WorkerError, summarize_paths

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "gateway-failures.pcap"
CAPTURES = sorted((ROOT / "tests" / "data" / "captures").glob("*.pcap*"))
BAD = sorted((ROOT / "tests" / "data" / "bad").glob("*.pcap*"))


def _line(summary: dict, certs) -> tuple:
    return (summary["id"], summary["client"], summary["server"], summary["ja4"],
            tuple(sorted(certs)))


def _run(paths, jobs: int, **kw) -> tuple[list, dict]:
    stats: dict = {}
    out = list(summarize_paths([str(p) for p in paths], stats=stats, jobs=jobs,
                               transform=_line, **kw))
    return out, stats


@pytest.mark.parametrize("jobs", [2, 3])
def test_same_output_same_order_same_stats(jobs):
    one, s1 = _run([EXAMPLE, *CAPTURES], 1)
    many, sn = _run([EXAMPLE, *CAPTURES], jobs)
    assert len(one) > 20
    assert many == one
    assert sn == s1


@pytest.mark.parametrize("path", BAD, ids=[p.name for p in BAD])
def test_bad_files_same_connections_same_stats_same_error(path):
    # not a capture at all (every worker finds so: the same CaptureError, not a worker's
    # failure), a huge caplen, a cut record (libpcap's error after the same connections)
    got = {}
    for jobs in (1, 2):
        stats: dict = {}
        out: list = []
        try:
            for item in summarize_paths([str(path)], stats=stats, jobs=jobs, transform=_line):
                out.append(item)
            error = None
        except CaptureError as exc:
            error = str(exc)
        got[jobs] = (out, stats, error)
    assert got[2] == got[1]
    assert got[1][2] is not None or path.name == "header_only.pcap"


def test_small_flow_table_still_one_output_per_connection():
    # past max_flows each worker evicts among its own connections (documented): the
    # connections are the same, their order may differ
    one, _ = _run([EXAMPLE], 1, max_flows=4)
    many, _ = _run([EXAMPLE], 2, max_flows=4)
    assert sorted(many) == sorted(one)


def test_truncated_file_same_connections_then_the_error(tmp_path):
    data = EXAMPLE.read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) * 2 // 3 + 7])     # mid-record
    got = {}
    for jobs in (1, 2):
        out: list = []
        with pytest.raises(CaptureError):
            for item in summarize_paths([str(cut)], jobs=jobs, transform=_line):
                out.append(item)
        got[jobs] = out
    assert got[1] and got[2] == got[1]


def _raise_in_worker(summary, certs):
    if os.getpid() != _PARENT:
        raise ValueError("boom in a worker")
    return summary["id"]


def _die_in_worker(summary, certs):
    if os.getpid() != _PARENT:
        os.kill(os.getpid(), signal.SIGKILL)
    return summary["id"]


_PARENT = os.getpid()


@pytest.mark.parametrize("transform, message", [(_raise_in_worker, "boom in a worker"),
                                                (_die_in_worker, "ended without its result")])
def test_a_worker_failure_is_an_error_not_a_hang(transform, message):
    t0 = time.monotonic()
    with pytest.raises(WorkerError, match=message):
        list(summarize_paths([str(EXAMPLE)], jobs=2, transform=transform))
    assert time.monotonic() - t0 < 3


def _jsonl(summary: dict, certs) -> bytes:
    return (" ".join(map(str, _line(summary, certs))) + "\n").encode()


@pytest.mark.parametrize("jobs", [2, 3])
def test_written_output_same_bytes(tmp_path, jobs):
    # summarize's path: the workers put their lines in their rings, written from there in
    # order to the output fd
    paths = [str(p) for p in (EXAMPLE, *CAPTURES)]
    one = b"".join(summarize_paths(paths, transform=_jsonl))
    out = tmp_path / "out.txt"
    with open(out, "wb") as f:
        f.write(b"before\n")
        f.flush()
        got = list(summarize_paths(paths, jobs=jobs, transform=_jsonl, output=f.fileno()))
        f.write(b"after\n")
    assert got == []
    assert out.read_bytes() == b"before\n" + one + b"after\n"


def _jsonl_or_boom_here(summary: dict, certs) -> bytes:
    if os.getpid() == _PARENT:
        raise ValueError("boom in worker 0, this process")
    return _jsonl(summary, certs)


def test_the_writing_process_is_worker_0(tmp_path, forks):
    # with an output, this process summarizes a share itself (two processes on two cores):
    # one worker forked for --jobs 2, two for 3; the yielding path forks them all
    paths = [str(EXAMPLE)]
    one = b"".join(summarize_paths(paths, transform=_jsonl))
    for jobs in (2, 3):
        del forks[:]
        out = tmp_path / ("out-%d" % jobs)
        with open(out, "wb") as f:
            assert list(summarize_paths(paths, jobs=jobs, transform=_jsonl,
                                        output=f.fileno())) == []
        assert out.read_bytes() == one
        assert len(forks) == jobs - 1
    del forks[:]
    assert b"".join(summarize_paths(paths, jobs=2, transform=_jsonl)) == one
    assert len(forks) == 2


def test_worker_0_failing_here_is_its_own_error_and_ends_the_others(tmp_path, forks):
    # (as with one process: the exception itself; the forked worker does not outlive it)
    t0 = time.monotonic()
    with open(tmp_path / "out", "wb") as f, pytest.raises(ValueError, match="worker 0"):
        list(summarize_paths([str(EXAMPLE)] * 2, jobs=2, transform=_jsonl_or_boom_here,
                             output=f.fileno()))
    assert time.monotonic() - t0 < 3
    assert forks
    for pid in forks:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


@pytest.mark.parametrize("path", BAD, ids=[p.name for p in BAD])
def test_bad_files_written_same_bytes_same_stats_same_error(tmp_path, path):
    # the same as the yielded output above, where this process reads a share itself
    got = {}
    for jobs in (1, 2):
        stats: dict = {}
        out = tmp_path / ("out-%d" % jobs)
        with open(out, "wb") as f:
            try:
                for line in summarize_paths([str(path)], stats=stats, jobs=jobs,
                                            transform=_jsonl, output=f.fileno()):
                    f.write(line)
                error = None
            except CaptureError as exc:
                error = str(exc)
        got[jobs] = (out.read_bytes(), stats, error)
    assert got[2] == got[1]


def test_worker_0_goes_on_alone_writing_as_it_goes(tiny_bounds, monkeypatch, tmp_path):
    # the forked worker keeps nothing; this process, slowed, keeps everything: its lines go
    # out as they come (the output has grown past half when its last line is made), not held
    # to the end
    space = wire.SHARE_SPACE
    monkeypatch.setattr(pipeline, "shares", lambda jobs, merging=False:
                        [(0, space)] + [(space, space)] * (jobs - 1))
    paths = [str(EXAMPLE)]
    one = b"".join(summarize_paths(paths, transform=_jsonl))
    out = tmp_path / "out"
    seen = []

    def slow(summary, certs):
        if os.getpid() == _PARENT:
            time.sleep(0.002)
            seen.append(os.fstat(fd).st_size)
        return _jsonl(summary, certs)
    with open(out, "wb") as f:
        fd = f.fileno()
        assert list(summarize_paths(paths, jobs=2, transform=slow, output=fd)) == []
    assert out.read_bytes() == one
    assert len(seen) == one.count(b"\n") and seen[-1] > len(one) // 2


def test_shares_cover_the_hashes_once():
    space = wire.SHARE_SPACE
    for jobs in range(1, 65):
        for merging in (False, True):
            split = pipeline.shares(jobs, merging)
            assert len(split) == jobs
            assert split[0][0] == 0 and split[-1][1] == space
            assert all(a[1] == b[0] for a, b in zip(split, split[1:]))
            sizes = [hi - lo for lo, hi in split]
            assert min(sizes) >= 0
            if merging and jobs > 1:        # worker 0 also merges: a smaller share
                assert sizes[0] < min(sizes[1:])
                assert max(sizes[1:]) - min(sizes[1:]) <= 1
            else:
                assert max(sizes) - min(sizes) <= 1
    assert pipeline.shares(2, True)[0][1] == round(space * (1 - pipeline.MERGE_SHARE) / 2)


def test_a_writing_worker_failure_is_an_error(tmp_path):
    with open(tmp_path / "out", "wb") as f, pytest.raises(WorkerError, match="boom"):
        list(summarize_paths([str(EXAMPLE)], jobs=2, transform=_raise_in_worker,
                             output=f.fileno()))


def test_output_closed_early_ends_promptly():
    # `tlsdiag summarize --jobs 2 big.pcap | head`: the workers must not outlive the error
    # (each used to hold the others' pipes open and wait on them)
    r, w = os.pipe()
    os.close(r)
    t0 = time.monotonic()
    try:
        with pytest.raises(BrokenPipeError):
            list(summarize_paths([str(EXAMPLE)] * 3, jobs=3, transform=_jsonl, output=w))
    finally:
        os.close(w)
    assert time.monotonic() - t0 < 3


@pytest.fixture
def tiny_bounds(monkeypatch):
    """Batches of 8 frames (many batches, and clock ticks, from small captures) and a worker
    left to wait when 2 batches ahead: every wait of the parallel path is taken.  (The
    workers are forked: they see these.)"""
    monkeypatch.setattr(pipeline, "BATCH", 8)
    monkeypatch.setattr(pipeline, "_LAG", 4 * 2 * 8)


def _client_hello() -> bytes:
    with open(EXAMPLE, "rb") as f:
        for _ts, frame in dpkt.pcap.Reader(f):
            tcp = dpkt.ethernet.Ethernet(frame).data.data
            if isinstance(tcp, dpkt.tcp.TCP) and tcp.data[:2] == b"\x16\x03":
                return bytes(tcp.data)
    raise AssertionError("no ClientHello in the example")


@pytest.fixture(scope="module")
def quiet_and_busy(tmp_path_factory) -> Path:
    """Eight clients that send a ClientHello and close (FIN) to a server that never answers;
    one connection of bare ACKs, one every 0.2 s for 5 s; from 2 s on, eight more clients that
    send a ClientHello and reset.  One table reports the first eight a second after their
    FIN, on the ACKs' clock, before the resets: a worker without the ACKs (the hash puts
    them in another) must too, not on its own clock when its first reset comes."""
    hello = _client_hello()
    frames = []
    isn = 1000

    def add(ts, src, sport, dst, dport, flags, seq, ack, data=b""):
        tcp = dpkt.tcp.TCP(sport=sport, dport=dport, seq=seq, ack=ack, flags=flags, data=data)
        ip = dpkt.ip.IP(src=bytes(src), dst=bytes(dst), p=dpkt.ip.IP_PROTO_TCP, data=tcp)
        ip.len = len(ip)
        eth = dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, data=ip,
                                     type=dpkt.ethernet.ETH_TYPE_IP)
        frames.append((ts, bytes(eth)))

    server = [10, 2, 0, 9]
    # (the eight that close, from 1000 s; the eight that reset, from 1002 s)
    for net, ports, start, step, last in ((0, 40000, 1000.0, 0.01, dpkt.tcp.TH_FIN),
                                          (1, 41000, 1002.0, 0.1, dpkt.tcp.TH_RST)):
        for k in range(8):
            client, port, t = [10, 1, net, 10 + k], ports + 7 * k, start + step * k
            add(t, client, port, server, 443, dpkt.tcp.TH_SYN, isn, 0)
            add(t + 0.001, server, 443, client, port, dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK, 5000,
                isn + 1)
            add(t + 0.002, client, port, server, 443, dpkt.tcp.TH_ACK, isn + 1, 5001)
            add(t + 0.003, client, port, server, 443, dpkt.tcp.TH_ACK | dpkt.tcp.TH_PUSH,
                isn + 1, 5001, hello)
            add(t + 0.004, client, port, server, 443, last | dpkt.tcp.TH_ACK,
                isn + 1 + len(hello), 5001)
    client, port = [10, 1, 9, 9], 50000
    add(1000.1, client, port, server, 8443, dpkt.tcp.TH_SYN, isn, 0)
    for j in range(25):
        add(1000.2 + 0.2 * j, client, port, server, 8443, dpkt.tcp.TH_ACK, isn + 1, 5001)
    frames.sort(key=lambda f: f[0])
    path = tmp_path_factory.mktemp("jobs") / "quiet-and-busy.pcap"
    with open(path, "wb") as f:
        w = dpkt.pcap.Writer(f)
        for ts, frame in frames:
            w.writepkt(frame, ts)
    return path


@pytest.mark.parametrize("jobs", [2, 3])
def test_a_worker_ends_its_batches_at_the_frames_clock(tiny_bounds, quiet_and_busy, jobs):
    one = list(summarize_paths([str(quiet_and_busy)], transform=_ending))
    assert [outcome for _c, outcome in one] == ["closed"] * 8 + ["reset"] * 8
    assert list(summarize_paths([str(quiet_and_busy)], jobs=jobs, transform=_ending)) == one


def _ending(summary: dict, certs) -> tuple:
    return summary["client"], summary["outcome"]


def test_a_worker_too_far_ahead_is_not_read(monkeypatch):
    monkeypatch.setattr(pipeline, "_LAG", 10)
    assert pipeline._readable({0, 1, 2}, [100, 111, 110]) == [0, 2]
    assert pipeline._readable({1, 2}, [1 << 63, 111, 110]) == [1, 2]   # 0 is done


@pytest.mark.parametrize("jobs", [2, 3])
def test_many_batches_same_output_same_stats(tiny_bounds, monkeypatch, jobs):
    # the workers never meet: each must end every batch at the clock one table reading every
    # connection would have (the time of the batch's latest frame), or connections expire
    # in other batches and come out in another order
    one, s1 = _run([EXAMPLE, *CAPTURES], 1)
    left: list = []           # workers left waiting while others were open

    def readable(open_, upto):
        got = pipeline_readable(open_, upto)
        left.append(len(open_) - len(got))
        return got
    pipeline_readable = pipeline._readable
    monkeypatch.setattr(pipeline, "_readable", readable)
    many, sn = _run([EXAMPLE, *CAPTURES], jobs)
    assert many == one
    assert sn == s1
    assert max(left) > 0      # the bound was reached, and nobody waited for ever


def _write_to(kind: str, path: Path, paths: list, jobs: int) -> bytes:
    """What ``summarize_paths(..., output=fd)`` leaves in a file written between b"before"
    and b"after" (``kind`` "file", "append") or read from a pipe ("pipe")."""
    if kind == "pipe":
        r, w = os.pipe()
        got = bytearray()
        reader = threading.Thread(target=lambda: [got.extend(b) for b in iter(
            lambda: os.read(r, 1 << 16), b"")])
        reader.start()
        try:
            os.write(w, b"before\n")
            assert list(summarize_paths(paths, jobs=jobs, transform=_jsonl, output=w)) == []
            os.write(w, b"after\n")
        finally:
            os.close(w)
            reader.join()
            os.close(r)
        return bytes(got)
    with open(path, "ab" if kind == "append" else "wb") as f:
        f.write(b"before\n")
        f.flush()
        assert list(summarize_paths(paths, jobs=jobs, transform=_jsonl,
                                    output=f.fileno())) == []
        f.write(b"after\n")
    return path.read_bytes()


@pytest.mark.parametrize("kind", ["file", "append", "pipe"])
def test_each_output_same_bytes_with_every_wait(tiny_bounds, tmp_path, kind):
    paths = [str(p) for p in (EXAMPLE, *CAPTURES)]
    one = b"".join(summarize_paths(paths, transform=_jsonl))
    assert _write_to(kind, tmp_path / "out", paths, 3) == b"before\n" + one + b"after\n"


@pytest.mark.parametrize("ring", [64, 700, 3000, 1 << 16])
@pytest.mark.parametrize("jobs", [2, 3])
def test_any_ring_size_same_bytes(tiny_bounds, monkeypatch, tmp_path, ring, jobs):
    # rings too small for one line (each message carries its lines), for a few (the end's
    # room skipped, waits for room: as the processes happen to run), for many
    log = tmp_path / "ring.log"
    monkeypatch.setattr(pipeline, "RING_BYTES", ring)
    put = pipeline._Ring.put

    def noting(self, items, conn):     # (in the forked workers: appended to a file)
        segs = put(self, items, conn)
        with open(log, "a") as f:
            f.write("".join("ring\n" if type(seg) is list else "inline\n" for seg in segs))
        return segs

    monkeypatch.setattr(pipeline._Ring, "put", noting)
    paths = [str(p) for p in (EXAMPLE, *CAPTURES)]
    one = b"".join(summarize_paths(paths, transform=_jsonl))
    assert _write_to("file", tmp_path / "out", paths, jobs) == b"before\n" + one + b"after\n"
    kinds = set(log.read_text().split())
    if ring == 64:
        assert kinds == {"inline"}
    elif ring == 1 << 16:
        assert kinds == {"ring"}
    else:
        assert "ring" in kinds


def _pieces(*sizes: int) -> list:
    return [bytes([65 + k % 26]) * n for k, n in enumerate(sizes)]


class _Writer:
    """The writing process's side of a :class:`pipeline._Ring`, here: what a worker's
    messages said, held, then written out (returned) and given back."""

    def __init__(self, ring) -> None:
        self.held = pipeline._Held(ring)

    def took(self, items: list, segs: list) -> None:
        n = len(items)
        self.held.took(array.array("q", [0] * 3 * n).tobytes(),
                       array.array("Q", map(len, items)).tobytes(), segs)

    def write(self, size: int) -> bytes:
        got = bytes(self.held.first(size))
        self.held.drop(size)
        return got


@pytest.fixture
def never():
    """A worker's pipe to a writing process that sends nothing (and ends when closed)."""
    ends = list(os.pipe())
    yield ends
    for fd in ends:
        if fd >= 0:
            os.close(fd)


def _sent_60(never) -> tuple:
    """A ring of 100 bytes whose first 60 a message has carried (not written out yet)."""
    ring = pipeline._Ring(100)
    writer = _Writer(ring)
    a = _pieces(60)
    writer.took(a, ring.put(a, never[0]))
    ring.sent = ring.head
    return ring, writer


def test_ring_pieces_in_place_the_ends_room_skipped(never):
    ring = pipeline._Ring(100)
    writer = _Writer(ring)
    a = _pieces(40, 40)
    segs = ring.put(a, never[0])
    assert segs == [[0, 80]] and bytes(ring.data[:80]) == b"".join(a)
    ring.sent = ring.head
    writer.took(a, segs)
    assert writer.write(80) == b"".join(a) and ring.tail() == 80
    b = _pieces(15, 10)         # 15 before the end; 10 does not fit there: from the start
    segs = ring.put(b, never[0])
    assert segs == [[80, 15], [100, 10]] and ring.head == 110
    writer.took(b, segs)
    assert writer.write(25) == b"".join(b)      # (in two pieces: copied together)
    assert ring.tail() == 110
    c = _pieces(70, 20, 10)     # 70 and 20 up to the end exactly, 10 from the start
    segs = ring.put(c, never[0])
    assert segs == [[110, 90], [200, 10]]       # (not one piece across the end)
    writer.took(c, segs)
    assert writer.write(90) == b"".join(c[:2]) and ring.tail() == 200
    assert writer.write(10) == c[2] and ring.tail() == 210
    assert not writer.held.segs


def test_ring_too_full_the_message_carries_the_rest(never):
    ring = pipeline._Ring(100)
    writer = _Writer(ring)
    a = _pieces(60, 60, 5)      # nothing sent before: no room to wait for
    segs = ring.put(a, never[0])
    assert segs == [[0, 60], b"".join(a[1:])]
    writer.took(a, segs)
    assert writer.write(125) == b"".join(a) and ring.tail() == 60
    assert ring.put(_pieces(101), never[0]) == [b"A" * 101]    # (more than the ring)


def test_ring_full_of_what_was_sent_waits_for_room(never):
    ring, writer = _sent_60(never)
    t0 = time.monotonic()
    later = threading.Timer(0.2, writer.write, (60,))
    later.start()
    b = _pieces(50, 55)
    segs = ring.put(b, never[0])        # 50 after a's; 55 waits for a's room, then from 0
    later.join()
    assert time.monotonic() - t0 >= 0.2
    # (then no room for 55 but what b's 50 hold, not sent yet: carried by the message)
    assert segs == [[100, 50], b[1]] and bytes(ring.data[:50]) == b[0]


def test_ring_room_given_back_between_the_look_and_the_wait_is_not_waited_for(never):
    # (put itself: the writer gives the room back right after put looked, and an earlier
    # wait took the waking byte)
    ring, writer = _sent_60(never)
    real, looks = ring.tail, []

    def tail():
        seen = real()
        looks.append(seen)
        if len(looks) == 1:     # put's look: then the writer gives back
            writer.write(60)
            ring.wake_r.recv(4096)
        return seen

    ring.tail = tail
    got: list = []
    putting = threading.Thread(target=lambda: got.append(ring.put(_pieces(50), never[0])),
                               daemon=True)
    putting.start()
    putting.join(5)
    assert got == [[[100, 50]]] and looks[0] == 0


def test_ring_no_wait_for_room_that_would_not_be_enough(never):
    # 80 cannot fit even once everything sent (60) is given back: 30 of this message are in
    # the ring too -- carried by the message at once, not after a wait
    ring, writer = _sent_60(never)
    later = threading.Timer(0.5, writer.write, (60,))
    later.start()
    t0 = time.monotonic()
    b = _pieces(30, 80)
    segs = ring.put(b, never[0])
    waited = time.monotonic() - t0
    later.join()
    assert segs == [[60, 30], b[1]]
    assert waited < 0.4


def test_room_given_back_to_a_worker_gone_is_no_sigpipe(tmp_path):
    # a program that imports the pipeline with SIGPIPE at its default (as tools piped into
    # `head` set it): the last room given back goes to a worker that has ended
    script = tmp_path / "run.py"
    script.write_text(
        "import os, signal, sys, time\n"
        "sys.path[:0] = [%r, %r]\n"
        "from sensor import pipeline\n"
        "import test_jobs as T\n"
        "signal.signal(signal.SIGPIPE, signal.SIG_DFL)\n"
        "write = pipeline._write_released\n"
        "def slow(*a):\n"
        "    time.sleep(0.05)\n"
        "    return write(*a)\n"
        "pipeline._write_released = slow\n"
        "fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)\n"
        "list(pipeline.summarize_paths([str(T.EXAMPLE)], jobs=2, transform=T._jsonl,"
        " output=fd))\n"
        "print('written', os.fstat(fd).st_size)\n" % (str(ROOT), str(ROOT / "tests")))
    one = b"".join(summarize_paths([str(EXAMPLE)], transform=_jsonl))
    r = subprocess.run([sys.executable, str(script), str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stdout) == (0, "written %d\n" % len(one)), r.stderr
    assert (tmp_path / "out").read_bytes() == one


@pytest.mark.parametrize("gone", ["pipe", "ring"])
def test_ring_waiting_ends_when_the_writing_process_is_gone(never, gone):
    ring, _writer = _sent_60(never)

    def leave():
        if gone == "pipe":
            os.close(never[1])  # (its end of the worker's pipe)
            never[1] = -1
        else:
            ring.wake_w.close()     # (its end of the waking pair)

    later = threading.Timer(0.2, leave)
    later.start()
    with pytest.raises(EOFError, match="writing process is gone"):
        ring.put(_pieces(60), never[0])
    later.join()


@pytest.mark.parametrize("jobs", ["1", "2"])
@pytest.mark.parametrize("out", ["/dev/full", "limited"])
def test_an_output_that_cannot_take_more_is_one_line(tmp_path, jobs, out):
    def limit() -> None:
        if out == "limited":
            resource.setrlimit(resource.RLIMIT_FSIZE, (3000, resource.RLIM_INFINITY))
    with open(out if out == "/dev/full" else tmp_path / "out", "wb") as f:
        p = subprocess.run([sys.executable, "-m", "tlsdiag", "summarize", str(EXAMPLE),
                            "--format", "jsonl", "--jobs", jobs], stdout=f,
                           stderr=subprocess.PIPE, text=True, cwd=ROOT, preexec_fn=limit,
                           timeout=60)
    assert p.returncode == 2, p.stderr
    msg = "No space left on device" if out == "/dev/full" else "File too large"
    assert p.stderr == "tlsdiag summarize: error: cannot write the output: %s\n" % msg


@pytest.mark.parametrize("command", ["summarize", "diagnose"])
def test_a_file_that_is_no_capture_is_one_line_with_jobs(command):
    bad = ROOT / "tests" / "data" / "bad" / "text.pcap"
    got = [subprocess.run([sys.executable, "-m", "tlsdiag", command, str(bad), "--jobs", jobs],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
           for jobs in ("1", "2")]
    one, two = got
    assert "Traceback" not in two.stderr
    assert "not a pcap or pcapng file" in two.stderr
    assert two.returncode == one.returncode == 2
    assert (two.stdout, two.stderr) == (one.stdout, one.stderr)
