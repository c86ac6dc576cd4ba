"""``--jobs N``: a file's connections split over N worker processes give the bytes one gives,
in the same order, with the same counters; bad input stays a counted skip (or the same
CaptureError after the same connections); a worker's failure is an error, never a hang."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from sensor.capture import CaptureError
from sensor.pipeline import WorkerError, summarize_paths

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "gateway-failures.pcap"
CAPTURES = sorted((ROOT / "tests" / "data" / "captures").glob("*.pcap*"))


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
def test_spooled_output_same_bytes(tmp_path, jobs):
    # summarize's path: the workers spool their lines, copied in order to the output fd
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


def test_a_spooling_worker_failure_is_an_error(tmp_path):
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
