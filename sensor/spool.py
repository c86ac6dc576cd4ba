"""The sensor's on-disk spool: a bounded, ordered queue of ``(kind, key, value)`` records in
segment files ``NNNNNNNNNNNN.spool`` under one directory.  The publisher writes to it while
Kafka is away and replays it, oldest segment first, when Kafka is back.  It survives a process
restart: a publisher started on the same directory replays the segments left there first
(which is why the directory must be stable across restarts, not per process).

A record is ``!IBH`` (total length, kind, key length), the key, the value.  A torn record at
the end of a segment (a crash mid-write) ends that segment's replay; a record of a kind not in
``kinds`` (a bit flip, a foreign file) is skipped.  Both are counted (``torn``), logged and cut
out of the segment, at start (leftover segments) or when the replay reads them.  Only names
``NNNNNNNNNNNN.spool`` are segments; other files are ignored.
"""
from __future__ import annotations

import logging
import os
import struct
import threading
from collections import deque

__all__ = ["Spool"]

log = logging.getLogger(__name__)

_REC = struct.Struct("!IBH")          # total length, kind, key length
#: a longer record is taken for a torn one (no summary or certificate is near this)
_MAX_RECORD = 8 << 20


class Spool:
    """Bounded, ordered, on-disk queue of ``(kind, key, value)`` records in segment files
    ``NNNNNNNNNNNN.spool``.  Survives a process restart (leftover segments are replayed)."""

    def __init__(self, directory: str, max_bytes: int, segment_bytes: int,
                 kinds: frozenset[int] | None = None) -> None:
        self.dir = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.kinds = kinds           # None: any kind
        os.makedirs(directory, exist_ok=True)
        self._lock = threading.Lock()
        self._segments: deque[int] = deque(sorted(self._scan()))
        self._sizes = {s: os.path.getsize(self._path(s)) for s in self._segments}
        self._next = (self._segments[-1] + 1) if self._segments else 1
        self._out = None
        self._out_seq: int | None = None
        self.records = 0     # approximate: exact for this process's appends/removals
        self.torn = 0        # records skipped: torn, or of an unknown kind
        if self._segments:
            n = sum(self._count(s) for s in self._segments)
            self.records = n
            log.info("spool %s: %d records left from a previous run", directory, n)

    def _scan(self) -> list[int]:
        """The segments' numbers; names that are not ``NNNNNNNNNNNN.spool`` (``².spool``,
        ``1.spool``) are ignored, logged."""
        seqs, other = [], []
        for n in os.listdir(self.dir):
            if not n.endswith(".spool"):
                continue
            stem = n[:-len(".spool")]
            if stem.isascii() and stem.isdigit() and n == "%012d.spool" % int(stem):
                seqs.append(int(stem))
            else:
                other.append(n)
        if other:
            log.warning("spool %s: %d file(s) not named like a segment ignored (%r ...)",
                        self.dir, len(other), sorted(other)[0])
        return seqs

    def _path(self, seq: int) -> str:
        return os.path.join(self.dir, "%012d.spool" % seq)

    def _count(self, seq: int) -> int:
        """Records in leftover segment ``seq``; unusable ones are noted and cut out of it."""
        torn = self.torn
        items = self._read(seq, note=True)
        if self.torn > torn:
            try:
                self._write(seq, items)
            except OSError as exc:       # the replay skips them again
                log.warning("spool segment %s: %s", seq, exc)
        return len(items)

    @property
    def bytes(self) -> int:
        return sum(self._sizes.values())

    def __len__(self) -> int:
        return self.records

    def append(self, items: list[tuple[int, bytes, bytes]]) -> int:
        """Append in order; returns how many did NOT fit (dropped)."""
        dropped = 0
        with self._lock:
            total = self.bytes
            for kind, key, value in items:
                rec = _REC.pack(_REC.size + len(key) + len(value), kind, len(key)) + key + value
                if total + len(rec) > self.max_bytes:
                    dropped += 1
                    continue
                if self._out is None or self._sizes[self._out_seq] >= self.segment_bytes:
                    self._rotate()
                self._out.write(rec)
                self._sizes[self._out_seq] += len(rec)
                total += len(rec)
                self.records += 1
            if self._out is not None:
                self._out.flush()
        return dropped

    def _rotate(self) -> None:
        if self._out is not None:
            self._out.close()
        seq = self._next
        self._next += 1
        self._out = open(self._path(seq), "ab")
        self._out_seq = seq
        self._segments.append(seq)
        self._sizes[seq] = 0

    def _read(self, seq: int, note: bool = False) -> list[tuple[int, bytes, bytes]]:
        """The segment's usable records; with ``note`` the unusable ones are counted in
        ``torn`` and logged (one line per segment)."""
        out = []
        try:
            with open(self._path(seq), "rb") as fh:
                data = fh.read()
        except OSError:
            return out
        pos = 0
        bad, why = 0, ""
        while pos < len(data):
            ln, kind, kl = (_REC.unpack_from(data, pos) if pos + _REC.size <= len(data)
                            else (0, 0, 0))
            if ln < _REC.size + kl or ln > _MAX_RECORD or pos + ln > len(data):
                bad, why = bad + 1, why or "torn record at %d, rest skipped" % pos
                break
            if self.kinds is not None and kind not in self.kinds:
                bad, why = bad + 1, why or "record of unknown kind %d at %d" % (kind, pos)
            else:
                key = data[pos + _REC.size:pos + _REC.size + kl]
                out.append((kind, key, data[pos + _REC.size + kl:pos + ln]))
            pos += ln
        if bad and note:
            self.torn += bad
            log.warning("spool segment %s: %d unusable record(s) skipped (%s)", seq, bad, why)
        return out

    def oldest(self) -> tuple[int, list[tuple[int, bytes, bytes]]] | None:
        """The oldest segment's records (the segment being written is closed first)."""
        with self._lock:
            if not self._segments:
                return None
            seq = self._segments[0]
            if seq == self._out_seq:
                self._out.close()
                self._out = None
                self._out_seq = None
        return seq, self._read(seq, note=True)

    def remove(self, seq: int, n: int) -> None:
        with self._lock:
            try:
                os.unlink(self._path(seq))
            except OSError:
                pass
            if self._segments and self._segments[0] == seq:
                self._segments.popleft()
            self._sizes.pop(seq, None)
            self.records = max(0, self.records - n)

    def rewrite(self, seq: int, items: list[tuple[int, bytes, bytes]], had: int) -> None:
        """Replace segment ``seq`` (``had`` records) with ``items``, keeping its place."""
        with self._lock:
            self._write(seq, items)
            self.records = max(0, self.records - had + len(items))

    def _write(self, seq: int, items: list[tuple[int, bytes, bytes]]) -> None:
        tmp = self._path(seq) + ".tmp"
        with open(tmp, "wb") as fh:
            for kind, key, value in items:
                fh.write(_REC.pack(_REC.size + len(key) + len(value), kind, len(key)))
                fh.write(key)
                fh.write(value)
        os.replace(tmp, self._path(seq))
        self._sizes[seq] = os.path.getsize(self._path(seq))

    def close(self) -> None:
        with self._lock:
            if self._out is not None:
                self._out.close()
                self._out = None
                self._out_seq = None
