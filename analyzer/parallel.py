"""``diagnose --jobs N``: each window's diagnosis split by server over N forked worker processes.

Per window of connections (:data:`analyzer.engine.DEFAULT_WINDOW`), this process learns the window's
server profiles as one process does (``Engine.observe`` over every connection: the profiles are exactly
one process's, and so is what ``--profiles-save`` writes), then forks N workers.  Worker *i* diagnoses,
in input order, the connections whose server (the ``server`` text, ``ip:port``) hashes to *i*
(crc32): what the engine carries from one connection to the next -- the profiles it reads, the chains it
remembers for later TLS 1.3 failures -- is kept per server, so each worker sees for its servers what one
process sees.  What the caller makes of the diagnoses (a :class:`Fold`: ``diagnose``'s JSON lines, its
report's groups) is made in the workers, fed each diagnosis with its input position, and comes back; the
statistics are added up; when another window follows, each worker's remembered chains of its servers
come back for it.

The same diagnoses, in the same order, with the same statistics as one process -- as long as the chain
memory does not overflow (``profile_max_servers`` servers): each worker then evicts among its own.

The windows are read here, so the workers get them by ``fork``, without a copy; only the folds (and
between windows the chain memory) travel back, pickled -- not the diagnoses: 60k of them pickled to 65 MB,
1.1 s to unpickle here.
"""

from __future__ import annotations

import gc
import itertools
import multiprocessing
import multiprocessing.connection
import pickle
import traceback
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Protocol
from io import BytesIO

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from .engine import DEFAULT_WINDOW, Certs, Diagnosis, Engine, Meter, Stats, Summary, take_window

__all__ = ["fold_windows", "Fold", "JobsError", "WorkerFailed", "part_of"]


class Fold(Protocol):
    """What a caller of :func:`fold_windows` makes of diagnoses (picklable: it travels back from a
    worker)."""

    def add(self, position: int, diagnosis: Diagnosis) -> None: ...


class JobsError(RuntimeError):
    """A ``--jobs`` analysis worker could not be started, or ended without its result (a
    resource limit: the OOM killer, a signal)."""


class WorkerFailed(JobsError):
    """A ``--jobs`` analysis worker raised: a bug (its traceback is in the message)."""


def part_of(summary: Summary, jobs: int) -> int:
    """The worker of ``jobs`` that diagnoses this connection: by its server (a summary without a server
    text -- bad input, counted as such by any worker -- goes to the first)."""
    server = summary.get("server") if isinstance(summary, Mapping) else None
    return _part(server, jobs) if isinstance(server, str) else 0


def _part(server: str, jobs: int) -> int:
    return zlib.crc32(server.encode("utf-8", "surrogatepass")) % jobs


def fold_windows(engine: Engine, pairs: Iterable[tuple[Summary, Certs]], jobs: int, make: Callable[[], Fold],
                 window: int = DEFAULT_WINDOW, meter: Meter | None = None) -> Iterator[list[Fold]]:
    """Diagnose ``pairs`` per window of ``window`` connections, fewer once a window took ``meter``'s budget of
    input bytes (as :meth:`Engine.diagnose_windows`), and
    yield per window what ``make()`` objects made of its diagnoses: one per worker of ``jobs`` (see the
    module docstring), each fed ``add(position, diagnosis)`` for the diagnoses of its connections in input
    order -- the positions order the diagnoses of several workers as one process gives them.  ``jobs`` <= 1:
    one such object, fed in this process.  (With ``jobs`` > 1 the engine's chain memory is left as it was
    before the last window: nothing reads it after, and it is not brought back.)"""
    if jobs <= 1:
        n = 0
        for chunk in engine.diagnose_windows(pairs, window, meter):
            fold = make()
            for d in chunk:
                fold.add(n, d)
                n += 1
            yield [fold]
        return
    it = iter(pairs)
    end = object()
    items = take_window(it, window, meter)
    while items:
        since = meter.read if meter is not None else 0      # (the next window's bytes start here)
        nxt = next(it, end) if window > 0 or meter is not None else end
        yield _window(engine, items, jobs, make, more=nxt is not end)
        if nxt is end:
            return
        items = take_window(itertools.chain((nxt,), it), window, meter, since)


def _window(engine: Engine, items: list, jobs: int, make: Callable[[], Fold], more: bool) -> list[Fold]:
    gc.freeze()     # (as Engine.diagnose_windows: and the workers' collector leaves the window alone)
    try:
        parts: list[list[int]] = [[] for _ in range(jobs)]
        for k, (s, c) in enumerate(items):
            engine.observe(s, c)
            parts[part_of(s, jobs)].append(k)
        results = _run(engine, items, parts, jobs, make, more)
    finally:
        gc.unfreeze()
    folds = []
    for fold, stats, _memory, evicted in results:
        folds.append(fold)
        engine.stats.add(stats)
        engine.memory.evicted += evicted
    if more:     # each worker's servers as it left them (one worker's after the other's)
        engine.memory.adopt(itertools.chain.from_iterable(r[2] for r in results))
    return folds


def _run(engine: Engine, items: list, parts: list, jobs: int, make: Callable[[], Fold], more: bool) -> list:
    """Fork the workers, wait for every one's result: ``[(fold, stats, memory, evicted), ...]`` by
    worker."""
    ctx = multiprocessing.get_context("fork")
    conns: list = []
    procs: list = []
    finished = False
    try:
        for part in range(jobs):
            mine, theirs = ctx.Pipe(duplex=False)
            p = ctx.Process(target=_worker, name="tlsdiag-diagnose-%d" % part, daemon=True,
                            args=(theirs, engine, items, parts, part, jobs, make, more, list(conns)))
            try:
                p.start()
            except OSError as exc:          # (no process to be had: one line, not a traceback)
                mine.close()
                raise JobsError("cannot start --jobs worker %d: %s" % (part, exc.strerror or exc)) from None
            finally:
                theirs.close()
            conns.append(mine)
            procs.append(p)
        results: list = [None] * jobs
        waiting = dict(zip(conns, range(jobs)))
        while waiting:
            for c in multiprocessing.connection.wait(list(waiting)):
                i = waiting.pop(c)
                try:
                    msg = pickle.loads(c.recv_bytes())
                except EOFError:
                    p = procs[i]
                    p.join(timeout=1)
                    raise JobsError("--jobs worker %d ended without its result (exit code %s)"
                                    % (i, p.exitcode)) from None
                if msg[0] != "done":
                    raise WorkerFailed("--jobs worker %d failed:\n%s" % (i, msg[1]))
                results[i] = msg[1:]
        finished = True
        return results
    finally:
        for c in conns:
            c.close()
        for p in procs:
            if finished:
                p.join(timeout=5)
            if p.is_alive():
                p.kill()
            p.join()


def _worker(conn, engine: Engine, items: list, parts: list, part: int, jobs: int, make: Callable[[], Fold],
            more: bool, inherited: list) -> None:
    """Diagnose this worker's connections of the window (``parts[part]``: their positions) in input order
    into a ``make()``; send ``("done", fold, stats, memory, evicted)`` -- ``memory``: the remembered chains
    of this worker's servers, least recently used first, when another window follows -- or ``("fail",
    traceback)``."""
    for c in inherited:         # the parent's ends of the workers forked before this one
        c.close()
    try:
        engine.stats = Stats()
        evicted = engine.memory.evicted
        mine = parts[part]
        fold = make()
        diagnose, add = engine.diagnose, fold.add
        for k in mine:
            for d in diagnose(*items[k]):
                add(k, d)
        memory = engine.memory.entries(lambda server: _part(server, jobs) == part) if more else None
        conn.send_bytes(_dumps(("done", fold, engine.stats, memory, engine.memory.evicted - evicted)))
    except BaseException:       # noqa: B036 -- the parent must hear of any end
        try:
            conn.send_bytes(pickle.dumps(("fail", traceback.format_exc())))
        except OSError:         # the parent is gone or gave up
            pass
    finally:
        conn.close()


class _Pickler(pickle.Pickler):
    """Certificates (in the remembered chains) travel as their DER."""

    def reducer_override(self, obj):
        if isinstance(obj, x509.Certificate):
            return _certificate, (obj.public_bytes(Encoding.DER),)
        return NotImplemented


def _certificate(der: bytes) -> x509.Certificate:
    return x509.load_der_x509_certificate(der)


def _dumps(obj) -> bytes:
    f = BytesIO()
    _Pickler(f, pickle.HIGHEST_PROTOCOL).dump(obj)
    return f.getvalue()
