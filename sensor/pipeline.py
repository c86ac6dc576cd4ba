"""Capture batches -> segments -> flows -> summaries: the one pipeline that ``summarize``,
``diagnose``, ``watch`` and the sensor service all run."""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator

import orjson

from cext import wire
from proto.render import summary_to_json
from proto.x509facts import certificate_facts
from sensor.capture import CaptureError, FileCapture, unsupported_linktype

__all__ = ["Summarizer", "CertificateCache", "summarize_paths"]


class CertificateCache:
    """SHA-256 digest -> certificate facts (and DER), bounded LRU: each distinct
    certificate is parsed with ``cryptography`` once."""

    def __init__(self, size: int = 8192) -> None:
        self.size = size
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
        if len(self._facts) > self.size:
            old, _ = self._facts.popitem(last=False)
            self._der.pop(old, None)
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
    summary rendered by :func:`proto.render.summary_to_json`, what ``summarize`` and
    ``diagnose`` print.  ``fragments=True`` renders certificates as pre-serialized
    ``orjson.Fragment`` objects (output for ``orjson.dumps`` only).

    ``engine`` is the core to run (:data:`cext.wire.ENGINE`, the selected build, by default).
    """

    def __init__(self, linktype: int, certs: CertificateCache | None = None,
                 json: bool = False, fragments: bool = False, engine: wire.Engine | None = None,
                 **table) -> None:
        engine = wire.ENGINE if engine is None else engine
        self.table = engine.flow_table(**table)
        self.decoder = engine.decoder(linktype, self.table)
        self.certs = certs if certs is not None else CertificateCache()
        if json:
            self._attach = self._attach_json
        # what the JSON renderer looks certificate facts up in: the facts, or (for orjson
        # output only) their pre-serialized fragments
        self._facts = _Fragments(self.certs) if fragments else self.certs

    def feed(self, buf: bytes, meta: bytes) -> list:
        table = self.table
        table.begin_batch()
        self.decoder.decode_batch(buf, meta, table.segment)
        done = table.end_batch()
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
        out = []
        for raw, ders in done:
            for dg, der in ders:
                add(dg, der)
            out.append((summary_to_json(raw, facts), ders))
        return out

    def stats(self) -> dict:
        s = dict(self.decoder.stats())
        s.update(self.table.stats)
        for reason, n in self.table.reasons.items():
            s["weird." + reason] = n
        return s


def summarize_paths(paths, progress=None, stats: dict | None = None, fragments: bool = False,
                    **table) -> Iterator[tuple[dict, dict]]:
    """Yield ``(json_summary, {sha256_hex: der})`` per connection of each capture file.
    ``stats``, if given, accumulates the decoder / flow-table counters.  With
    ``fragments=True`` certificates are ``orjson.Fragment`` objects: the summaries are
    then only for ``orjson.dumps`` (what ``summarize --format jsonl`` does).

    Raises :class:`sensor.capture.CaptureError` for a file that cannot be read, after
    yielding every connection that could be read from it.
    """
    for path in paths:
        cap = FileCapture(path)
        with cap:
            if cap.linktype not in wire.LINKTYPES:
                raise CaptureError(unsupported_linktype(path, cap.linktype))
            s = Summarizer(cap.linktype, json=True, fragments=fragments, **table)
            error = None
            try:
                for buf, meta in cap:
                    for summary, ders in s.feed(buf, meta):
                        yield summary, {d.hex(): der for d, der in ders}
                    if progress is not None:
                        progress(cap)
            except CaptureError as exc:     # deliver what was read, then report
                error = exc
            for summary, ders in s.flush():
                yield summary, {d.hex(): der for d, der in ders}
            if stats is not None:
                for k, v in s.stats().items():
                    stats[k] = stats.get(k, 0) + v
            if error is not None:
                raise error


class _Fragments:
    """``get(digest)`` -> the certificate's JSON fragment (see CertificateCache.fragment)."""

    __slots__ = ("get",)

    def __init__(self, cache: CertificateCache) -> None:
        self.get = cache.fragment
