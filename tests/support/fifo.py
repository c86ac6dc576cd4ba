"""A capture read in process as ``summarize`` reads it -- from a file, or written into a FIFO
piece by piece while it is read -- with what it gave: the connections, the counters, the
error (the path taken out)."""
from __future__ import annotations

import os
import threading

from sensor.capture import CaptureError
from sensor.pipeline import summarize_paths

__all__ = ["read_capture", "from_a_fifo"]


def read_capture(path: str, transform=None, jobs: int = 1) -> tuple:
    """``(connections, stats, error text with the path taken out)``; a connection is
    ``transform(summary, certs)`` (``(summary, certs)`` without one)."""
    stats: dict = {}
    out: list = []
    error = None
    try:
        for item in summarize_paths([path], stats=stats, transform=transform, jobs=jobs):
            out.append(item)
    except CaptureError as exc:
        error = str(exc).replace(path, "X")
    return out, stats, error


def from_a_fifo(tmp_path, data: bytes, piece: int, transform=None) -> tuple:
    """:func:`read_capture` of ``data`` written into a FIFO ``piece`` bytes at a time."""
    fifo = str(tmp_path / "capture.fifo")
    os.mkfifo(fifo)

    def write() -> None:
        with open(fifo, "wb", buffering=0) as w:
            for i in range(0, len(data), piece):
                try:
                    w.write(data[i:i + piece])
                except BrokenPipeError:     # (the reader stopped early: an error)
                    return
    t = threading.Thread(target=write, daemon=True)
    t.start()
    try:
        return read_capture(fifo, transform)
    finally:
        t.join(timeout=30)
        assert not t.is_alive()
