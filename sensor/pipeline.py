"""Capture batches -> segments -> flows -> summaries: the one pipeline that ``summarize``,
``diagnose``, ``watch`` and the sensor service all run.

Capture files are read in batches of :data:`sensor.capture.BATCH` packets (the flow table
looks for idle flows between batches, so the batch is part of the output's order).  A plain
classic pcap or pcapng file is read here, a window at a time into one reused buffer, its
records (blocks) walked in C by the decoder (no libpcap), and so is such a stream, read into
memory as it comes (:mod:`sensor.savefile` reads their headers), and so is a gzip
file's decompression (:class:`sensor.capture.Gunzip`, a pipe); anything else -- other
versions, a record libpcap would refuse or read differently (a truncated file, a caplen above
libpcap's maximum, a new pcapng section or interface) -- goes through
:class:`sensor.capture.FileCapture` (libpcap), from the batch where it starts.  (A classic
record above the file's snap length is walked: cut to it, as libpcap cuts it.)
"""
from __future__ import annotations

import array
import bisect
import fcntl
import mmap
import multiprocessing
import multiprocessing.connection
import os
import pickle
import select
import signal
import socket
import stat
import traceback
from collections import OrderedDict, deque
from collections.abc import Iterator
from functools import lru_cache
from itertools import chain

import orjson

from cext import wire
from proto.x509facts import certificate_facts
from sensor.capture import (BATCH, CaptureError, FileCapture, Gunzip, StreamRelay, is_gzip,
                            is_stream, not_a_capture, unsupported_linktype)
from sensor.savefile import MORE, NG_MAGIC, Layout, pcap_header, pcapng_header

__all__ = ["Summarizer", "CertificateCache", "PcapFile", "WorkerError", "summarize_paths",
           "wait_writable"]


class CertificateCache:
    """SHA-256 digest -> certificate facts (and DER), bounded LRU: each distinct
    certificate is parsed with ``cryptography`` once.  Bounded by count and by the bytes of
    the DER it holds (a certificate may be up to a handshake message's 1 MiB: 8192 of those,
    sent by whoever wants the sensor's memory, were 8 GiB)."""

    #: DER bytes held at most (real certificates are 1-2 kB: 8192 of them are ~12 MB)
    MAX_BYTES = 64 << 20

    def __init__(self, size: int = 8192, max_bytes: int = MAX_BYTES) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self._bytes = 0
        self._facts: OrderedDict = OrderedDict()
        self._der: dict = {}
        self._json: dict = {}

    def add(self, digest: bytes, der: bytes) -> tuple[dict, bool]:
        """Facts for ``der``; the flag says it was new to the cache."""
        f = self._facts.get(digest)
        if f is not None:
            self._facts.move_to_end(digest)
            return f, False
        f = certificate_facts(der)
        self._facts[digest] = f
        self._der[digest] = der
        self._bytes += len(der)
        while len(self._facts) > self.size or (self._bytes > self.max_bytes and len(self._facts) > 1):
            old, _ = self._facts.popitem(last=False)
            self._bytes -= len(self._der.pop(old))
            self._json.pop(old, None)
        return f, True

    def fragment(self, digest: bytes):
        """The facts as pre-serialized JSON (``orjson.Fragment``), made once per certificate:
        ``summarize`` writes a chain without serializing its facts again per connection."""
        j = self._json.get(digest)
        if j is None:
            f = self._facts.get(digest)
            if f is None:
                return None
            j = self._json[digest] = orjson.Fragment(orjson.dumps(f))
        return j

    def facts(self, digest: bytes):
        return self._facts.get(digest)

    def der(self, digest: bytes):
        return self._der.get(digest)

    def __getitem__(self, digest: bytes) -> dict:
        return self._facts[digest]

    def get(self, digest: bytes, default=None):
        return self._facts.get(digest, default)


class Summarizer:
    """Owns a flow table, a packet decoder and the certificate cache.

    ``feed(buf, meta)`` and ``flush()`` return finished connections as ``(raw, certs)``:
    ``raw`` the raw summary (:mod:`proto.summary`), ``certs`` a list of
    ``(digest, der, facts, new)`` for the certificates it references.

    With ``json=True`` they come as ``(json_summary, [(digest, der), ...])`` instead: the raw
    summary rendered by :func:`proto.render.summary_to_json` (the engine's build of it, with
    this summarizer's memo of offer names), what ``summarize`` and ``diagnose`` print.
    ``fragments=True`` renders certificates as pre-serialized ``orjson.Fragment`` objects
    (output for ``orjson.dumps`` only).

    ``engine`` is the core to run (:data:`cext.wire.ENGINE`, the selected build, by default).
    ``share`` ``(lo, hi)`` reads only the connections whose key hashes there (``--jobs``,
    :func:`shares`; the keys of :attr:`table` then order its outputs among the others').
    """

    #: distinct client offers whose names the renderer keeps (a client stack sends one) ...
    OFFER_MEMO = 4096
    #: ... of at most this many code points (a browser's has ~50, a scanner's a few hundred;
    #: a 94 KB ClientHello's 47,000 kept 3.2 MB an entry): larger ones are named, not kept
    OFFER_MEMO_CODES = 256

    def __init__(self, linktype: int, certs: CertificateCache | None = None,
                 json: bool = False, fragments: bool = False, engine: wire.Engine | None = None,
                 share: "tuple[int, int] | None" = None, **table) -> None:
        engine = wire.ENGINE if engine is None else engine
        self._render = engine.render.summary_to_json
        #: the renderer's names of the client offers of this traffic (for orjson only:
        #: serialized once)
        names = engine.render.offer_names
        if fragments:
            names = _serialized(names)
        self.offer_names = _memo(names, self.OFFER_MEMO, self.OFFER_MEMO_CODES)
        self.table = engine.flow_table(**table)
        self.decoder = engine.decoder(linktype, self.table, share)
        if share is not None:
            self.table.ordered()
        self.certs = certs if certs is not None else CertificateCache()
        if json:
            self._attach = self._attach_json
        # what the JSON renderer looks certificate facts up in: the facts, or (for orjson
        # output only) their pre-serialized fragments
        self._facts = _Fragments(self.certs) if fragments else self.certs

    def feed(self, buf: bytes, meta: bytes) -> list:
        self.decoder.begin_batch(buf, meta)
        done = self.table.decoded(self.decoder)
        return self._attach(done) if done else done

    def feed_decoded(self) -> list:
        """The segments of the frame source the caller began on :attr:`decoder` (the pcap
        records of a batch: ``begin_pcap`` / ``pcap_batch``), as :meth:`feed`."""
        done = self.table.decoded(self.decoder)
        return self._attach(done) if done else done

    def feed_frame(self, ts: float, frame: bytes) -> list:
        seg = self.decoder.decode(ts, frame)
        if seg is None:
            return []
        return self._attach(self.table.process([seg]))

    def expire(self, now: float) -> list:
        return self._attach(self.table.expire(now))

    def flush(self, reason: str = "incomplete") -> list:
        return self._attach(self.table.flush(reason))

    def _attach(self, done: list) -> list:
        add = self.certs.add
        out = []
        for raw, ders in done:
            out.append((raw, [(dg, der) + add(dg, der) for dg, der in ders]))
        return out

    def _attach_json(self, done: list) -> list:
        add = self.certs.add
        facts = self._facts
        render, offers = self._render, self.offer_names
        out = []
        for raw, ders in done:
            for dg, der in ders:
                add(dg, der)
            out.append((render(raw, facts, offers), ders))
        return out

    def stats(self) -> dict:
        return _merged_stats([self.decoder.counters], [self.table.stats], [self.table.reasons],
                             self.decoder.encap.stats())


def _merged_stats(counters: list, tables: list, reasons: list, encap: dict) -> dict:
    """The stats of one summarizer, or of ``--jobs`` workers' (whose decoders each count
    every frame in GLOBAL_COUNTERS, and their own connections' in the others; ``encap``,
    the tunnel counters (issue 15), are of every frame too: one decoder's)."""
    raw = [sum(c[i] for c in counters) for i in range(len(counters[0]))]
    for i in wire.GLOBAL_COUNTERS:
        raw[i] = counters[0][i]
    s = wire.counters_as_stats(raw)
    s.update(encap)
    for t in tables:
        for k, v in t.items():
            s[k] = s.get(k, 0) + v
    for r in reasons:
        for reason, n in r.items():
            s["weird." + reason] = s.get("weird." + reason, 0) + n
    return s


def summarize_paths(paths, progress=None, stats: dict | None = None, fragments: bool = False,
                    certs: bool = True, jobs: int = 1, transform=None,
                    output: int | None = None, **table) -> Iterator[tuple[dict, dict | None]]:
    """Yield ``(json_summary, {sha256_hex: der})`` per connection of each capture file
    (``certs=False``: ``(json_summary, None)``; with ``transform``: what
    ``transform(json_summary, certs)`` returns).  ``stats``, if given, accumulates the
    decoder / flow-table counters.  With ``fragments=True`` certificates are
    ``orjson.Fragment`` objects: the summaries are then only for ``orjson.dumps`` (what
    ``summarize --format jsonl`` does).

    ``jobs`` > 1 splits each file's connections over that many worker processes (by a hash
    of the connection's endpoints: each reads the whole file and keeps its share), which run
    ``transform`` (its results must pickle); the output is the same, in the same order, as
    with one -- as long as the flow table does not overflow (``max_flows``, ``max_done``:
    then each worker evicts among its own connections; ``max_buffered``: each worker has that
    budget for its own).  With ``output`` (a file
    descriptor, the caller's own buffered writes flushed) and ``jobs`` > 1, ``transform``
    returns bytes, and this process is worker 0 (with a smaller share: it also merges): the
    others put theirs in shared memory, written from there to ``output`` in order with its own;
    nothing is yielded (the others' results do not pass through Python here).

    Raises :class:`sensor.capture.CaptureError` for a file that cannot be read, after
    yielding every connection that could be read from it.
    """
    for path in paths:
        if jobs > 1 and not is_stream(path):   # (a stream cannot be read by each worker)
            yield from _parallel(path, jobs, progress, stats, fragments, certs, transform, table,
                                 output)
            continue
        for kind, value in _summaries(path, progress, fragments, certs, transform, table):
            if kind == "out":
                yield from value[0]
            elif kind == "stats" and stats is not None:
                for k, v in value.items():
                    stats[k] = stats.get(k, 0) + v
            elif kind == "error":
                raise value


def _summaries(path: str, progress, fragments: bool, certs: bool, transform, table: dict,
               share: "tuple[int, int] | None" = None, holder: list | None = None,
               fd: "int | None" = None):
    """One file's ``("out", (items, keys))`` per batch, then ``("stats", dict)`` (and
    ``("counters", (decoder counters, table stats, reasons, tunnel stats))``), then ``("error",
    CaptureError)`` if it could not be read to its end."""
    walked, cap, gz = _open(path, fd)
    linktype = walked.linktype if walked is not None else cap.linktype
    try:
        if linktype not in wire.LINKTYPES:
            raise CaptureError(unsupported_linktype(path, linktype))
        s = Summarizer(linktype, json=True, fragments=fragments, share=share,
                       **table)
        keys = s.table
        if holder is not None:
            holder.append(s)

        def items(done):
            if transform is not None:
                return [transform(summary, {d.hex(): der for d, der in ders} if certs else None)
                        for summary, ders in done]
            return [(summary, {d.hex(): der for d, der in ders} if certs else None)
                    for summary, ders in done]

        error = None
        try:
            for done in _batches(s, path, walked, cap, progress):
                yield "out", (items(done), keys.keys)
        except CaptureError as exc:     # deliver what was read, then report
            error = exc
        if gz is not None:              # (a gzip file's own error is why its capture ended)
            _close(walked, cap)
            late = gz.error()
            if late is not None:
                error = CaptureError(late)
        done = s.flush()
        yield "out", (items(done), keys.keys)
        yield "counters", (s.decoder.counters, s.table.stats, s.table.reasons,
                           s.decoder.encap.stats())
        yield "stats", s.stats()
        if error is not None:
            yield "error", error
    finally:
        _close(walked, cap)
        if gz is not None:
            gz.close()


def _close(walked, cap) -> None:
    if walked is not None:
        walked.close()
    if cap is not None:
        cap.close()


class _Progress:
    """What ``summarize``'s progress line reads of a capture (from a ``--jobs`` worker)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.size = self.bytes_read = self.packets = 0


def _parallel(path: str, jobs: int, progress, stats, fragments, certs, transform, table,
              output: int | None = None):
    """One file through ``jobs`` worker processes (see :func:`summarize_paths`).

    The workers do not wait for each other: each reads every frame (so each has the clock of one
    table reading them all) and keeps its share of the connections.  (A gzip file is
    decompressed once, into a pipe per worker: there the fastest waits while the slowest's pipe
    is full.) Each sends its results in order with their order keys and a watermark; what every
    worker's watermark has passed is merged here and given out.  A worker more than :data:`_LAG`
    frames ahead of the slowest is not read until that one catches up: its pipe fills and it
    waits, so what is held here stays bounded.

    With ``output`` (a file descriptor), this process is worker 0 itself (``jobs`` - 1 are
    forked): between its batches it reads the others' messages, and it waits on them only
    when it is :data:`_LAG` ahead.  Each forked worker copies its ``transform`` results
    (bytes) into a ring of shared memory of its own (:class:`_Ring`) and sends only their
    keys, lengths and place, packed (:class:`_Held`); the released ones are written to
    ``output`` from the ring, in order with this process's own results, by one compiled call
    (:func:`cext.wire.write_merged`: ``writev``), and their room given back.  So on two cores
    there are two processes, and the others' share of the output is copied once more than
    this process's own, in memory.  Otherwise (the results are yielded, and the caller has its
    own work between them) all ``jobs`` are forked and their results travel pickled."""
    ctx = multiprocessing.get_context("fork")
    first = 1 if output is not None else 0      # parts below it: this process's own
    # (index i: part i; this process's own part has no pipe, process or ring)
    conns: list = [None] * first
    procs: list = [None] * first
    rings: list = [None] * first
    finished = started = False
    own = own_fd = None
    # a gzip file is decompressed once, here, into a pipe per worker
    gz = Gunzip(path, jobs) if _is_gzip_file(path) else None
    try:
        split = shares(jobs, first > 0)
        for part in range(first, jobs):
            ring = _Ring(RING_BYTES) if output is not None else None
            rings.append(ring)
            mine, theirs = ctx.Pipe()
            p = ctx.Process(target=_worker, name="tlsdiag-job-%d" % part, daemon=True,
                            args=(theirs, path, part, split[part], fragments, certs, transform,
                                  table, progress is not None, ring,
                                  conns[first:], rings[first:-1],
                                  gz.fds if gz is not None else []))
            try:
                p.start()
            except OSError as exc:      # (no process to be had: one line, not a traceback)
                mine.close()
                raise CaptureError("%s: cannot start --jobs worker %d: %s" % (
                    path, part, exc.strerror or exc)) from None
            finally:
                theirs.close()
                if ring is not None:
                    ring.forked()       # (its reading end is the worker's only)
            conns.append(mine)
            procs.append(p)
        if gz is not None:
            if first:
                own_fd = gz.fds.pop(0)  # (this process's pipe; the workers closed theirs)
            gz.close_fd()               # (the workers': a worker gone, its pipe ends)
        holder: list = []
        if first:
            own = _summaries(path, progress, fragments, certs, transform, table, split[0],
                             holder, own_fd)
        #: each part's results not given out yet, in its (key) order: a list of (key, item)
        #: (results yielded), or a :class:`_Held` (results written)
        queues: list = [_Held(rings[i]) if output is not None else [] for i in range(jobs)]
        upto = [-1] * jobs                  # each part's watermark
        ended: list = []    # each part's (part, counters, table stats, reasons, tunnel stats)
        error = None
        shown = _Progress(path)
        open_ = set(range(first, jobs))
        mine = first > 0                    # this process's own part not done yet
        released = steps = 0
        while mine or open_:
            ahead = mine and upto[0] - min(upto) <= _LAG
            if ahead:                       # a batch of this process's own part
                started = True              # (its capture has taken own_fd)
                try:
                    kind, value = next(own)
                except StopIteration:
                    kind = "end"
                except CaptureError as exc:     # not a capture it can read (as a worker)
                    raise _unreadable(gz, str(exc), exc.empty) from None
                if kind == "out":
                    items, keys = value
                    queues[0].add(keys, items)
                    upto[0] = 4 * holder[0].table.frame + 3
                elif kind == "counters":
                    ended.append((0,) + value)
                elif kind == "error":
                    error = error or str(value)
                elif kind == "end":
                    upto[0] = 1 << 63
                    mine = ahead = False
            # the others' messages: looked for every few batches, waited for only when this
            # process may not go on
            steps += 1
            looking = open_ and not (ahead and steps % _LOOK)
            ready = [conns[i] for i in _readable(open_, upto)] if looking else []
            for c in multiprocessing.connection.wait(ready, 0 if ahead else None) if ready \
                    else ():
                i = conns.index(c)
                try:
                    msg = pickle.loads(c.recv_bytes())
                except EOFError:
                    raise WorkerError("--jobs worker %d of %s ended without its result (exit "
                                      "code %s)" % (i, path, _exitcode(procs[i]))) from None
                kind = msg[0]
                if kind == "out":
                    _, mark, items, prog = msg
                    if output is None:
                        queues[i] += items
                    else:
                        queues[i].took(*items)
                    upto[i] = mark
                    if prog is not None and progress is not None:
                        shown.size, shown.bytes_read, shown.packets = prog
                        progress(shown)
                elif kind == "capture":             # not a capture it can read
                    raise _unreadable(gz, msg[1], msg[2])
                elif kind == "done":
                    if rings[i] is not None:
                        rings[i].close()    # (it waits no more: nobody to wake)
                    ended.append((i,) + msg[1:5])
                    error = error or msg[5]
                    upto[i] = 1 << 63
                    open_.discard(i)
                else:                               # "fail": the others may wait on it
                    raise WorkerError("--jobs worker %d failed on %s:\n%s" % (i, path, msg[1]))
            low = min(upto)
            if low > released:
                released = low
                yield from _release(queues, low, output)
        yield from _release(queues, 1 << 63, output)
        finished = True
        if gz is not None:                  # (a gzip file's own error is why it ended)
            error = gz.error() or error
    finally:
        if own is not None:
            own.close()         # (its capture, and with it own_fd, closed)
        if own_fd is not None and not started:
            os.close(own_fd)
        for c in conns:
            if c is not None:
                c.close()       # a worker blocked on its pipe gets EOF/EPIPE and ends
        for p in procs:         # (after "done" a worker only exits; else no need to wait)
            if p is None:
                continue
            if finished:
                p.join(timeout=5)
            if p.is_alive():
                p.kill()
            p.join()
        for ring in rings:
            if ring is not None:
                ring.close()    # (a worker waiting for room sees the end)
        if gz is not None:
            gz.close()
    if stats is not None:
        ended.sort(key=_first)
        merged = _merged_stats([e[1] for e in ended], [e[2] for e in ended],
                               [e[3] for e in ended], ended[0][4])
        for k, v in merged.items():
            stats[k] = stats.get(k, 0) + v
    if error is not None:
        raise CaptureError(error)


def _unreadable(gz: "Gunzip | None", text: str, empty: bool) -> CaptureError:
    """A part's error for a file that is not a capture it can read: if nothing came out of a
    gzip file (``empty``), the decompression's error says why, if it has one."""
    return CaptureError((gz.error() if gz is not None and empty else None) or text)


#: the share of the connections that worker 0 leaves to the others when it is this process
#: and also writes everyone's output (``summarize``): of the whole, taken from it and spread
#: over the others.  The merge costs this process its writes (~0.08 s on hs-100k) over a
#: ~1.2 s share (and, before the workers' rings, reading their bytes back, ~0.04 s).  With the
#: merge in one compiled call (``cext.wire.write_merged``), ``--jobs 2`` on hs-100k took
#: 1.27-1.40 s (median 1.31) at 0.06 against 1.35-1.37 s at 0.09, 1.30-1.34 s at 0.045 and
#: 1.29-1.36 s at 0.075 (6 interleaved rounds, 2026-12-05); before it, 0.09 was the best.
#: With the rings, 0.08 was no better (1.17-1.29 s against 1.11-1.27 s, 7 rounds).
MERGE_SHARE = 0.06


def shares(jobs: int, merging: bool = False) -> list:
    """Each of ``jobs`` parts' range ``(lo, hi)`` of :data:`cext.wire.SHARE_SPACE` (the key
    hashes it keeps): equal, or (``merging``: part 0 is the process that also merges) part
    0's smaller by :data:`MERGE_SHARE` of the whole, the others larger by their part of it
    (none below nothing)."""
    space = wire.SHARE_SPACE
    if jobs == 1:
        return [(0, space)]
    part0 = 1.0 / jobs
    if merging:
        part0 = max(0.0, (1.0 + MERGE_SHARE) / jobs - MERGE_SHARE)
    cuts = [0] + [round(space * (part0 + (1.0 - part0) * k / (jobs - 1)))
                  for k in range(jobs - 1)] + [space]
    return list(zip(cuts, cuts[1:]))


#: this process's own batches between two looks at the other workers' messages (a look
#: costs a ``select``; a worker sends every 8 of its batches)
_LOOK = 8


#: how far (in watermark units: 4 per frame) a ``--jobs`` worker may run ahead of the
#: slowest before it is left to wait: 64 batches
_LAG = 4 * 64 * BATCH


def _readable(open_: set, upto: list) -> list:
    """The workers to read now: the open ones at most :data:`_LAG` ahead of the slowest (one
    further ahead waits, its pipe full, until that one catches up)."""
    low = min(upto)
    return [i for i in sorted(open_) if upto[i] - low <= _LAG]


class _Held:
    """A part's results not written yet, in order (``--jobs`` with an output): their order
    keys, flat int64 ``(major, minor, created)`` triples (:func:`cext.wire.keys_below`), and
    the results themselves (this process's own part: ``items``, bytes) or, for a worker's,
    their lengths (``lens``, uint64) and where their bytes are, back to back (``segs``: pieces
    of its :class:`_Ring`, ``[start, size]``, or bytes a message carried itself)."""

    __slots__ = ("keys", "items", "lens", "segs", "ring", "buffer")

    def __init__(self, ring: "_Ring | None") -> None:
        self.keys = array.array("q")
        self.ring = ring
        self.items: "list | None" = [] if ring is None else None
        self.lens = None if ring is None else array.array("Q")
        self.segs: deque = deque()
        self.buffer = bytearray()       # (a worker's released bytes, when not in one piece)

    def add(self, keys: list, items: list) -> None:
        """This process's own results of a batch, with their keys (tuples)."""
        self.keys.extend(chain.from_iterable(keys))
        self.items += items

    def took(self, keys: bytes, lens: bytes, segs: list) -> None:
        """A worker's message: the keys and lengths of its results, and where they are."""
        self.keys.frombytes(keys)
        self.lens.frombytes(lens)
        for seg in segs:
            self.segs.append(seg if type(seg) is list else memoryview(seg))

    def first(self, size: int) -> memoryview:
        """A worker's first ``size`` bytes: where they are in its ring when they are in one
        piece there (the usual case), else copied together."""
        ring, seg = self.ring, self.segs[0]
        if type(seg) is list and seg[1] >= size:
            at = seg[0] % ring.size
            return ring.data[at:at + size]
        if len(self.buffer) < size:
            self.buffer = bytearray(max(size, 2 * len(self.buffer)))
        out = memoryview(self.buffer)
        got = 0
        for seg in self.segs:
            if got == size:
                break
            if type(seg) is list:
                at = seg[0] % ring.size
                n = min(seg[1], size - got)
                out[got:got + n] = ring.data[at:at + n]
            else:
                n = min(len(seg), size - got)
                out[got:got + n] = seg[:n]
            got += n
        return out[:size]

    def drop(self, size: int) -> None:
        """A worker's first ``size`` bytes are written: their room in its ring given back."""
        tail = None
        segs = self.segs
        while size:
            seg = segs[0]
            if type(seg) is list:
                n = min(seg[1], size)
                seg[0] += n
                seg[1] -= n
                tail = seg[0]
                if not seg[1]:
                    segs.popleft()
            else:
                n = min(len(seg), size)
                if n == len(seg):
                    segs.popleft()
                else:
                    segs[0] = seg[n:]
            size -= n
        if tail is not None:
            self.ring.give_back(tail)


#: the bytes of a ``--jobs`` worker's results on their way to the writing process, at most
#: (its ring: ~3,500 results of handshake-only connections, ~2.3 KB each; hs-100k had 1.7 MB
#: in it at most)
RING_BYTES = 8 << 20

class _Ring:
    """Shared memory (mapped before the fork) that a forked ``--jobs`` worker copies its
    results into and the writing process writes them out from.  Two byte counts since the
    start say what is where: the worker's *head*, the bytes it has put in, and the writing
    process's *tail*, the bytes it has written out and given back (kept in the mapping's first
    8 bytes; a byte down a socket pair wakes a worker waiting for room).  A ring offset is a count's
    remainder by the size; a result never wraps round the end (the end's room is skipped).

    The worker waits for room only while results it sent before are still to be written (the
    writing process writes them without it); what does not fit even then, the message carries
    itself.  So the two never wait on each other, and the memory stays bounded (the worker's
    head goes round the whole ring: it is resident in both processes once a run's output is
    larger)."""

    _HEADER = 64

    def __init__(self, size: int) -> None:
        self.size = size
        self.map = mmap.mmap(-1, self._HEADER + size)   # (MAP_SHARED: both see the bytes)
        self.data = memoryview(self.map)[self._HEADER:]
        # (a socket pair: a byte sent to a worker that is gone is an error, never a SIGPIPE)
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.head = 0           # (the worker's) bytes put in
        self.sent = 0           # (the worker's) ... of them in messages sent

    def tail(self) -> int:
        return wire.shared_count(self.map)

    def forked(self) -> None:
        """In the writing process, its worker forked: the waking end is the worker's."""
        self.wake_r.close()

    def close(self) -> None:
        """In the writing process: its worker is done, or this is the end (a worker still
        waiting for room ends); in a later worker, inherited."""
        self.wake_w.close()
        self.wake_r.close()

    def in_worker(self) -> None:
        """In its worker: the waking end held there, it would never see the writer go."""
        self.wake_w.close()

    def give_back(self, tail: int) -> None:
        """In the writing process: the bytes up to ``tail`` are written out."""
        wire.set_shared_count(self.map, tail)
        try:
            self.wake_w.send(b"\0", socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL)
        except OSError:         # (full of bytes not taken yet; or the worker is gone, done)
            pass

    def put(self, items: list, conn) -> list:
        """In the worker: ``items`` (bytes) copied in; returns where they are, back to back:
        ``[start, size]`` pieces of the ring, and last the bytes that did not fit."""
        segs: list = []
        i, n, size = 0, len(items), self.size
        while i < n:
            at = self.head % size
            tail = self.tail()
            room = size - (self.head - tail)
            end = size - at         # (room up to the ring's end)
            j, after = wire.copy_into(self.data, at, min(room, end), items, i)
            total = after - at
            if j > i:
                if total:
                    if at and segs and segs[-1][0] + segs[-1][1] == self.head:
                        segs[-1][1] += total
                    else:
                        segs.append([self.head, total])
                    self.head += total
                i = j
                continue
            need = len(items[i])
            if room - end >= need:      # room from the start: skip the end's
                self.head += end
            elif tail < self.sent and (need if need <= end else end + need) <= \
                    size - (self.head - self.sent):
                # room comes as what was sent is written out (and there will be enough)
                self._wait(conn, tail)
            else:
                segs.append(b"".join(items[i:]))
                break
        return segs

    def _wait(self, conn, tail: int) -> None:
        """In the worker: until the writing process gives back more than ``tail`` (EOFError:
        it is gone)."""
        while True:
            try:
                while True:
                    if not self.wake_r.recv(4096):
                        raise EOFError("the --jobs writing process is gone")
            except BlockingIOError:
                pass
            if self.tail() != tail:
                return
            ready, _, _ = select.select([self.wake_r, conn], [], [])
            if conn in ready:       # (the writing process never sends: its end is closed)
                raise EOFError("the --jobs writing process is gone")


def _release(queues: list, low: int, output):
    """Give out every queued result with a key below the watermark ``low``, in key order:
    yield them, or (``output``) write them there -- a worker's bytes from where they are (its
    ring), this process's own as they are."""
    if output is not None:
        _write_released(queues, low, output)
        return
    parts = []
    for q in queues:
        n = bisect.bisect_left(q, (low,), key=_major)
        if n:
            parts.append(q[:n])
            del q[:n]
    if len(parts) == 1:
        for _key, item in parts[0]:
            yield item
    elif parts:                     # each part is in order: a merge of sorted runs
        for _key, item in sorted([x for q in parts for x in q], key=_first):
            yield item


def _write_released(queues: list, low: int, output: int) -> None:
    """:func:`_release` to an output: the results below ``low`` of every part, written in key
    order (:func:`cext.wire.write_merged`), then dropped (a worker's room given back)."""
    parts, taken = [], []
    for q in queues:
        n = wire.keys_below(q.keys, low)
        size = 0
        if q.items is not None:
            parts.append((q.keys, n, q.items, None, None))
        else:
            size = sum(q.lens[:n]) if n else 0
            parts.append((q.keys, n, None, q.first(size) if size else None, q.lens))
        taken.append((n, size))
    if not any(n for n, _size in taken):
        return
    wire.write_merged(output, parts, wait_writable)
    del parts
    for q, (n, size) in zip(queues, taken):
        del q.keys[:3 * n]
        if q.items is not None:
            del q.items[:n]
            continue
        del q.lens[:n]
        if size:
            q.drop(size)


def wait_writable(fd: int) -> None:
    """Until the output ``fd`` takes more: a non-blocking output (a pipe its reader set so) that
    is full waits for its reader, as a blocking one would (also tlsdiag.cli's standard
    output)."""
    p = select.poll()
    p.register(fd, select.POLLOUT)
    p.poll()


class WorkerError(RuntimeError):
    """A ``--jobs`` worker process failed (a bug or a resource limit, not bad input: that
    is a counted skip, or a :class:`CaptureError`)."""


def _exitcode(p) -> "int | None":
    p.join(timeout=1)
    return p.exitcode


def _first(x):
    return x[0]


def _major(x):
    return (x[0][0],)


def _worker(conn, path, part, share, fragments, certs, transform, table, progress,
            ring, inherited: list, inherited_rings: list, gunzipped: list) -> None:
    """A ``--jobs`` worker: its share of one file's connections, batch by batch, with their
    order keys and a watermark (every key of a later batch sorts after it); its counters at
    the end.  With a ``ring`` (:class:`_Ring`), the results (bytes) are copied there and only
    their keys, lengths and place sent, packed.  Any exception goes to the parent as
    ``("fail", traceback)``, a file that cannot be read at all as ``("capture", text,
    empty)`` (``empty``: not a byte came out of it).
    ``gunzipped``: a gzip file's decompression, a pipe per worker (this one's:
    ``gunzipped[part]``), else empty."""
    def send(msg) -> None:
        conn.send_bytes(pickle.dumps(msg, pickle.HIGHEST_PROTOCOL))

    def given(keys: list, items: list):
        """What a message carries of ``items``: in the ring, their keys, lengths and place
        (as :meth:`_Held.took` takes them); else the ``(key, item)`` pairs."""
        if ring is None:
            return list(zip(keys, items))
        return (array.array("q", chain.from_iterable(keys)).tobytes(),
                array.array("Q", map(len, items)).tobytes(), ring.put(items, conn))

    def out(mark: int, prog) -> None:
        send(("out", mark, given(keys, results), prog))
        if ring is not None:
            ring.sent = ring.head

    # the parent's ends of the workers forked before this one: held here, they would keep
    # those workers from seeing the parent close them (and its end of their waking pairs)
    for c in inherited:
        c.close()
    for r in inherited_rings:
        if r is not None:
            r.close()
    if ring is not None:
        ring.in_worker()
    mine = None
    for i, fd in enumerate(gunzipped):  # (the others': held here, a pipe would never end)
        if i == part:
            mine = fd
        else:
            os.close(fd)
    shown = _Progress(path) if progress and part == 0 else None
    note = _noting(shown) if shown is not None else None
    try:
        keys: list = []             # the results not sent yet, and their keys
        results: list = []
        counters = error = None
        n = 0
        holder: list = []
        src = _summaries(path, note, fragments, certs, transform, table, share, holder,
                         mine)
        for kind, value in src:
            if kind == "out":
                batch, batch_keys = value
                results += batch
                keys += batch_keys
                n += 1
                # a later batch's keys have a major of at least 4 x (this batch's last frame
                # + 1): everything below that is final.  Send now and then
                if len(keys) >= 256 or n % 8 == 0:
                    out(4 * holder[0].table.frame + 3, _prog(shown))
                    keys, results = [], []
            elif kind == "counters":
                counters = value
            elif kind == "error":
                error = str(value)
        out(1 << 63, _prog(shown))
        send(("done",) + tuple(counters) + (error,))
    except CaptureError as exc:     # the file cannot be read at all (every worker finds so)
        try:
            send(("capture", str(exc), exc.empty))
        except OSError:
            pass
    except BaseException:           # noqa: B036 -- the parent must hear of any end
        try:
            send(("fail", traceback.format_exc()))
        except OSError:             # the parent is gone or gave up: nobody to tell
            pass
    finally:
        conn.close()


def _noting(shown: _Progress):
    """A progress callback that notes a capture's counters in ``shown``."""
    def note(cap) -> None:
        shown.size, shown.bytes_read, shown.packets = cap.size, cap.bytes_read, cap.packets
    return note


def _prog(shown: "_Progress | None"):
    return None if shown is None else (shown.size, shown.bytes_read, shown.packets)


def _batches(s: Summarizer, path: str, walked: "PcapFile | None", cap, progress):
    """The finished connections of each batch of the file: from the walked pcap while its
    records are plain, then (or else) through libpcap from the batch where they stop."""
    skip = 0
    if walked is not None:
        for done in walked.batches(s):
            yield done
            if progress is not None:
                progress(walked)
        if walked.complete:
            return
        cap, skip = walked.rest()       # a record libpcap reads differently: from this batch
    try:
        for i, (buf, meta) in enumerate(cap):
            if i < skip:
                continue                # (read already; counted by FileCapture, for salvage)
            yield s.feed(buf, meta)
            if progress is not None:
                progress(cap)
    finally:
        cap.close()


def _open(path: str, fd: "int | None" = None) -> tuple:
    """``(walked, None, gunzip)`` for a plain classic pcap or pcapng capture (a file, a window
    at a time; a stream or a gzip file's decompression, as it comes), else ``(None,
    FileCapture, gunzip)``; ``gunzip`` is the :class:`sensor.capture.Gunzip` of a gzip file
    (else None), whose :meth:`~sensor.capture.Gunzip.error` is asked once the capture is
    closed.  ``fd``: the gzip file ``path`` decompressed there (a ``--jobs`` worker's; the
    parent asks)."""
    gz = None
    if fd is None and not is_stream(path):
        walked = PcapFile.open(path)
        if walked is not None:
            return walked, None, None
        if not _is_gzip_file(path):
            return None, FileCapture(path), None
        gz = Gunzip(path)
        fd = gz.fds.pop()
    try:
        stream = PcapStream.open(path, fd)
    except CaptureError:
        if gz is not None:
            gz.close()
        raise
    if stream.linktype is not None:
        return stream, None, gz
    error = not_a_capture(path, stream.head, "stream" if is_stream(path) else "file")
    if error is not None:
        stream.close()
        if gz is not None:
            if not stream.head:         # (nothing came out: gzip says why, if it knows)
                error = gz.error() or error
            gz.close()
        # (empty: a --jobs worker's parent asks its gzip decompression why)
        raise CaptureError(error, empty=not stream.head)
    try:
        cap, _skip = stream.rest()      # (a pcapng or pcap one the walk leaves): libpcap's
    except CaptureError:
        if gz is not None:
            gz.close()
        raise
    return None, cap, gz


def _is_gzip_file(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return is_gzip(fh.read(2))
    except OSError:                     # (FileCapture says why)
        return False


#: the most bytes read to find where a pcapng capture's first packet block is (its section
#: header, interfaces and any other blocks before it): beyond, it is libpcap's
_NG_HEAD_MAX = 32 << 20


def _pcapng_layout(read, want: int) -> "Layout | None":
    """The layout of a pcapng capture if the walk reads it: ``read(n)`` gives ``(its first n
    bytes -- fewer at its end --, whether that is its end)``, asked for 4 times more until
    :func:`sensor.savefile.pcapng_header` decides (or :data:`_NG_HEAD_MAX`: libpcap's)."""
    while True:
        data, at_eof = read(want)
        layout = pcapng_header(data, at_eof)
        if layout != MORE:
            return layout
        if want >= _NG_HEAD_MAX or at_eof:
            return None
        want = min(4 * want, _NG_HEAD_MAX)


def _pcapng_file(fd: int, size: int) -> "Layout | None":
    """The layout of the pcapng file ``fd`` if the walk reads it."""
    def read(n: int) -> tuple:
        head = os.pread(fd, min(n, size), 0)
        return head, len(head) == size
    return _pcapng_layout(read, 1 << 16)


class PcapFile:
    """A classic pcap or pcapng file walked a window at a time: the decoder walks its records
    (blocks) there, :data:`BATCH` packets at a time (the batches libpcap's reader would give).
    ``open`` returns None for the rest: gzip (walked from a pipe, as a :class:`PcapStream`),
    and what only :class:`FileCapture` reads (other versions, link-type flags in the header,
    pcapng that :mod:`sensor.savefile` leaves to libpcap, a capture without records).

    A window is the file's bytes mapped (``mmap``, :attr:`MAP_WINDOW`), for a file of at
    least :attr:`MAP_MIN` bytes that can have a read lease (:class:`_Lease`: no SIGBUS if it
    is cut short), else read (``preadv``) into one buffer, reused.  Mapped, the bytes are not
    copied: most of a bulk capture's are ciphertext the decoder never reads, and ``--jobs``
    processes share the pages instead of copying them each (2026-12-04, Intel host,
    ``bench/jobs.py`` 5-7 rounds: bulk90-10k 0.88 s against 1.14 s for one worker; hs-100k
    even for one, and ``--jobs 2`` 1.20 s against 1.24-1.31 s).  Smaller files are read:
    mapping each window costs its page tables.  (On the AMD host of 57989a3, a mapping lost to
    reading -- hs-100k one worker 2.66 s against 2.42 s, bulk90-10k 1.21 s against 0.97 s --
    but there each window was 1 MB, and reading read some bytes twice, as it did until
    ccb0425.)  What a mapping costs depends on how the file is held in the page cache: read
    from the disk, Linux 6.x caches it in folios of up to 2 MB, mapped an entry per 2 MB; a
    file written in small pieces and still cached may stay in 4 KB folios, 16 mapped per
    fault and counted one by one by each process (2026-12-05, Intel host, 6.18: the walk
    alone of hs-100k 0.14 s against 0.25-0.29 s; ``bench/run.py``'s ``settle_cache``)."""

    #: bytes read at a time (more for a batch that does not fit)
    WINDOW = 1 << 20
    #: the largest window kept for the batches after the one that needed it
    NEED_KEPT = 16 << 20
    #: a file of at least MAP_MIN bytes is walked through mappings of MAP_WINDOW bytes, when
    #: it can have a read lease (see the class's docstring)
    MAP_MIN = 64 << 20
    MAP_WINDOW = 16 << 20

    def __init__(self, path: str, fd: int, size: int, layout: "Layout | None") -> None:
        self.path = path
        self.size = size
        self.linktype = layout.linktype if layout is not None else None
        self.packets = 0
        self.bytes_read = layout.start if layout is not None else 0
        #: True once every record was read here (else the rest is libpcap's)
        self.complete = False
        self._fd = fd
        self._layout = layout
        self._buffer: "bytearray | None" = None
        self._held_from = self._held = 0    # the file's bytes in the buffer: from, how many
        self._need = 0                  # bytes the next window must hold (a big batch)
        self._batches = 0
        self._stop = self.bytes_read    # where a record libpcap reads differently starts
        self._lease: "_Lease | None" = None     # mapped while it is held (and not broken)

    @classmethod
    def open(cls, path: str) -> "PcapFile | None":
        if is_stream(path):             # (opened here, its first bytes would be gone)
            return None
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return None
        try:
            size = os.fstat(fd).st_size
            head = os.pread(fd, 24, 0)
            layout = pcap_header(head)
            if layout is None and head[:4] == NG_MAGIC:
                layout = _pcapng_file(fd, size)
        except OSError:
            os.close(fd)
            return None
        if layout is None or size <= layout.start:     # (no record: libpcap's to say so)
            os.close(fd)
            return None
        try:                            # (the kernel's read-ahead, doubled)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        except (OSError, AttributeError):
            pass
        walked = cls(path, fd, size, layout)
        if size >= cls.MAP_MIN and stat.S_ISREG(os.fstat(fd).st_mode):
            walked._lease = _Lease.take(fd)
        return walked

    def _begin(self, dec, data, pos: int, length: int, at_eof: bool) -> None:
        lay = self._layout
        if lay.ifaces is None:
            dec.begin_pcap(data, pos, length, lay.big, lay.nsec, lay.snap, at_eof)
        else:
            dec.begin_pcapng(data, pos, length, lay.big, lay.snap, lay.ifaces, at_eof)

    def batches(self, s: Summarizer):
        """The finished connections of each batch, while the records are ones libpcap reads
        the same way; :attr:`complete` says whether that was to the end."""
        dec = s.decoder
        pos = self._layout.start
        while True:
            data, base, length, at_eof = self._window(pos)
            self._begin(dec, data, pos - base, length, at_eof)
            first = pos
            while True:
                n = dec.pcap_batch(BATCH)
                if n == -2:             # the batch runs past the window: one from its start
                    at = base + dec.pcap_pos
                    # (the whole window was not enough for it: twice as much, from now on
                    # -- the next batches are likely as large -- unless that is more than
                    # NEED_KEPT: then for this batch only)
                    if at == first:
                        self._need = 2 * (base + length - at)
                    elif self._need > self.NEED_KEPT:
                        self._need = 0
                    pos = at
                    break
                if n < 0:               # not a record libpcap reads the same way
                    self._stop = base + dec.pcap_pos
                    return
                if n == 0:
                    self.complete = True
                    return
                start = dec.pcap_pos
                done = s.feed_decoded()
                self.packets += n
                self._batches += 1
                self.bytes_read += dec.pcap_pos - start
                pos = base + dec.pcap_pos
                yield done
                if self._lease is not None and self._lease.broken:
                    break           # (mapped no longer, from the next batch on: _Lease)

    def _window(self, pos: int) -> tuple:
        """``(data, base, length, at_eof)``: the file's bytes from ``base`` = ``pos`` on, in
        the buffer, at least :attr:`_need` of them if the file has them; fewer at its end, or
        if it was cut short since it was opened (``at_eof``: its walk ends there).

        The bytes of the last window from ``pos`` on (a batch that ran past its end) are
        moved to the front of the buffer, not read again: only what follows them is read.
        (Read again, a batch a window could not hold cost the next window's bytes twice:
        the 90 %-bulk corpus, whose batches of 1024 frames are ~1.4 MB, was read 2.17
        times over.)"""
        if self._lease is not None:
            if not self._lease.broken:
                mapped = self._mapped(pos)
                if mapped is not None:
                    return mapped
            self._give_back()           # (another process would write the file): read on
        length = min(max(self.WINDOW, self._need), self.size - pos)
        keep = 0
        if self._buffer is not None and self._held_from <= pos < self._held_from + self._held:
            keep = min(self._held_from + self._held - pos, length)
        held = self._buffer
        if held is None or len(held) < length:
            self._buffer = bytearray(max(length, self.WINDOW))
        view = memoryview(self._buffer)
        at = pos - self._held_from
        if keep and (at or self._buffer is not held):
            view[:keep] = memoryview(held)[at:at + keep]    # (memmove: they may overlap)
        have = keep
        while have < length:
            try:
                n = os.preadv(self._fd, [view[have:length]], pos + have)
            except OSError as exc:
                raise CaptureError("%s: %s" % (self.path, exc.strerror or exc)) from None
            if n == 0:                  # (cut short since it was opened)
                break
            have += n
        self._held_from, self._held = pos, have
        return view[:have], pos, have, have < length or pos + have == self.size

    def _mapped(self, pos: int) -> "tuple | None":
        """As :meth:`_window`, the bytes mapped (None: the file cannot be mapped).  Only what
        the file still has is mapped: one cut short since it was opened ends there."""
        length = min(max(self.MAP_WINDOW, self._need), self.size - pos)
        try:
            have = max(0, min(length, os.fstat(self._fd).st_size - pos))
            if not have:
                return memoryview(b""), pos, 0, True
            base = pos - pos % mmap.ALLOCATIONGRANULARITY
            view = memoryview(mmap.mmap(self._fd, pos - base + have, mmap.MAP_SHARED,
                                        mmap.PROT_READ, offset=base))
        except (OSError, ValueError):
            return None
        return view[pos - base:], pos, have, have < length or pos + have == self.size

    def _give_back(self) -> None:
        if self._lease is not None:
            self._lease.give_back()
            self._lease = None

    def rest(self) -> tuple:
        """``(FileCapture, batches to skip)``: libpcap's reader for the records from the
        batch where this walk stopped on."""
        self._give_back()               # (libpcap reads: nothing is mapped from here on)
        return FileCapture(self.path), self._batches

    def close(self) -> None:
        self._give_back()
        self._buffer = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_F_SETLEASE = getattr(fcntl, "F_SETLEASE", 1024)


class _Lease:
    """A read lease on a file walked through mappings (``fcntl(2)``, ``F_SETLEASE``).

    A mapped file cut short under the walk would kill it with SIGBUS (reading, the walk just
    ends at the cut).  Under a read lease, another process that opens the file to write it or
    cuts it waits until the lease is given back, and this one gets SIGIO: the handler marks the
    lease broken, the walk gives it back at its next window and reads (``preadv``) from there
    on, so the cut comes between two windows, as it would reading.  (The kernel waits
    ``/proc/sys/fs/lease-break-time``, 45 s by default, before it breaks a lease itself; a
    window is walked in tens of milliseconds.  A walk that was made to wait longer -- its
    output read slowly -- looks at the lease before its next batch: broken, it reads from
    that batch on instead of touching the mapping.)  No lease, no mapping: a file another process
    has open to write, one this user does not own (without CAP_LEASE), a file system without
    leases, a thread other than the main one (Python's signal handlers), or a second file at
    once in this process."""

    #: this process's lease (one at a time)
    held: "_Lease | None" = None

    def __init__(self, fd: int, before) -> None:
        self.fd = fd
        self.broken = False
        self._before = before       # SIGIO's handler before this lease

    @classmethod
    def take(cls, fd: int) -> "_Lease | None":
        if cls.held is not None:
            return None
        try:
            before = signal.signal(signal.SIGIO, _lease_broken)
        except (ValueError, OSError):   # (not the main thread: Python's handlers run there)
            return None
        try:
            fcntl.fcntl(fd, _F_SETLEASE, fcntl.F_RDLCK)
        except OSError:
            _restore_sigio(before)
            return None
        cls.held = cls(fd, before)
        return cls.held

    def give_back(self) -> None:
        if _Lease.held is not self:
            return
        try:
            fcntl.fcntl(self.fd, _F_SETLEASE, fcntl.F_UNLCK)
        except OSError:
            pass
        _Lease.held = None
        _restore_sigio(self._before)


def _restore_sigio(before) -> None:
    """SIGIO's handler as it was before a lease (none set from Python: the default)."""
    signal.signal(signal.SIGIO, before if before is not None else signal.SIG_DFL)


def _lease_broken(_signum, _frame) -> None:
    if _Lease.held is not None:
        _Lease.held.broken = True


class PcapStream(PcapFile):
    """A classic pcap or pcapng stream (a pipe, standard input) walked as it comes, like a
    file: its batches are read into memory (at least :attr:`WINDOW` bytes, a batch's worth if
    more) and walked there, each byte read once.  What follows a record (block) libpcap refuses
    or reads differently -- a stream cut short, a caplen above libpcap's maximum, a new pcapng
    section or interface -- goes to libpcap through a :class:`StreamRelay`, from the start of
    its batch: nothing is lost.  (libpcap alone would lose the good packets of a batch with a
    bad record; a stream cannot be read again.) ``linktype`` is None for a stream that the walk
    does not read: all of it goes to libpcap (:meth:`rest`)."""

    @classmethod
    def open(cls, path: str, fd: "int | None" = None) -> "PcapStream":
        """The stream ``path`` (``-``: standard input), or the one it names read from ``fd``
        (which it takes: a :class:`sensor.capture.Gunzip`'s)."""
        try:
            if fd is None:
                fd = os.dup(0) if path == "-" else os.open(path, os.O_RDONLY)
        except OSError as exc:
            raise CaptureError("%s: %s" % (path, exc.strerror or exc)) from None
        self = cls(path, fd, 0, None)
        self._eof = False
        try:    # a pipe's buffer as large as a window: the writer runs ahead of the walk
            fcntl.fcntl(fd, _F_SETPIPE_SZ, self.WINDOW)
        except OSError:                 # (not a pipe; or above the user's limit)
            pass
        try:
            self._data, self._base = self._read(memoryview(b""), 24), 0
            layout = pcap_header(bytes(self._data))
            if layout is None and self._data[:4] == NG_MAGIC:
                # (from 24 bytes up, no more than it needs: a live stream's may trickle)
                layout = _pcapng_layout(self._more, 24)
        except CaptureError:
            self.close()
            raise
        if isinstance(layout, Layout):
            self._layout, self.linktype = layout, layout.linktype
            self.bytes_read = self._stop = layout.start
        #: its file header (section header and interfaces), or all read of one not walked
        self.head = bytes(self._data[:layout.start] if self.linktype is not None else self._data)
        return self

    def _more(self, want: int) -> tuple:
        """The stream's first ``want`` bytes, or all of it if it ends before: read on."""
        if len(self._data) < want and not self._eof:
            self._data = self._read(self._data, want)
        return self._data, self._eof

    def _read(self, tail: memoryview, want: int) -> memoryview:
        """``tail`` and what the stream gives next, until there are ``want`` bytes or it
        ends: read into a new buffer (the decoder holds a view of the last one)."""
        buf = bytearray(max(want, len(tail)))
        view = memoryview(buf)
        have = len(tail)
        view[:have] = tail
        while have < want and not self._eof:
            try:
                n = os.readv(self._fd, [view[have:]])
            except OSError as exc:
                raise CaptureError("%s: %s" % (self.path, exc.strerror or exc)) from None
            self._eof = n == 0
            have += n
        return view[:have]

    def _window(self, pos: int) -> tuple:
        self._data = self._read(self._data[pos - self._base:], max(self.WINDOW, self._need))
        self._base = pos
        return self._data, pos, len(self._data), self._eof

    def rest(self) -> tuple:
        """The stream from the start of the batch where the walk stopped on (all of it, for
        one it does not walk), read by libpcap a packet at a time: the good packets before a
        record (block) it refuses are read, not lost with their batch (a stream cannot be
        read again).  That reads five times slower than libpcap's batches, for what the walk
        leaves: the rest after such a record, and streams of rare forms (see
        :mod:`sensor.savefile`)."""
        head = self.head
        if self.linktype is not None:   # (libpcap's reader starts at the file header)
            head += self._data[self._stop - self._base:]
        fd, self._fd = self._fd, -1
        self._data = memoryview(b"")
        try:
            relay = StreamRelay(fd, head)
        except OSError as exc:          # (no process or pipe to be had)
            os.close(fd)
            raise CaptureError("%s: cannot read on after %d packets: %s" % (
                self.path, self.packets, exc.strerror or exc)) from None
        return FileCapture(self.path, relay=relay, packets=self.packets, one_at_a_time=True), 0


def _memo(offer_names, entries: int, codes: int):
    """``offer_names`` memoized (``entries`` offers, least recently used out) for the offers
    of at most ``codes`` code points."""
    kept = lru_cache(maxsize=entries)(offer_names)

    def names(key: tuple) -> tuple:
        if len(key[0]) + len(key[1]) + len(key[2]) + len(key[3]) + len(key[4]) <= codes:
            return kept(key)
        return offer_names(key)
    names.cache_info = kept.cache_info
    return names


def _serialized(offer_names):
    """``offer_names``, each list of names pre-serialized (``orjson.Fragment``)."""
    def serialized(key: tuple) -> tuple:
        return tuple([orjson.Fragment(orjson.dumps(list(v))) for v in offer_names(key)])
    return serialized


class _Fragments:
    """``get(digest)`` -> the certificate's JSON fragment (see CertificateCache.fragment)."""

    __slots__ = ("get",)

    def __init__(self, cache: CertificateCache) -> None:
        self.get = cache.fragment
