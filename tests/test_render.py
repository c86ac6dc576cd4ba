"""One JSON renderer (``proto.render.summary_to_json``) on every path: what ``summarize`` and
``diagnose`` print (``Summarizer(json=True)``), the bytes ``summarize`` writes with
pre-serialized certificate fragments, and what the analyzer renders from the msgpack wire
form are the same JSON, keyed by ``proto.summary.JSON_FIELDS`` in order.

Checked byte for byte on every capture of the test data and, when ``../shared`` is beside
the checkout, on every capture of the conformance corpus.
"""
from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from proto.render import summary_to_json
from proto.summary import JSON_FIELDS, decode_summary, encode_summary
from sensor.capture import CaptureError, FileCapture
from sensor.pipeline import Summarizer

HERE = Path(__file__).resolve().parent
LOCAL = sorted(p for p in (HERE / "data").rglob("*")
               if p.suffix in (".pcap", ".pcapng", ".gz") and "bad" not in p.parts)
SHARED_CORPUS = HERE.parents[1] / "shared" / "corpus"


def _both(path: Path):
    """(rendered from the raw summaries, as the json mode renders them, the raw summaries,
    with certificate fragments) for one capture."""
    out = {}
    for json_mode in (False, True, "fragments"):
        items = []
        with FileCapture(str(path)) as cap:
            s = Summarizer(cap.linktype, json=bool(json_mode),
                           fragments=json_mode == "fragments")
            try:
                for buf, meta in cap:
                    items += s.feed(buf, meta)
            except CaptureError:
                pass
            items += s.flush()
        out[json_mode] = (items, s.certs)
    (raw_items, cache), (json_items, _) = out[False], out[True]
    fragment_items = out["fragments"][0]
    return ([summary_to_json(raw, cache) for raw, _ in raw_items],
            [j for j, _ in json_items], [raw for raw, _ in raw_items],
            [j for j, _ in fragment_items])


def _check(path: Path) -> int:
    from_raw, from_session, raws, with_fragments = _both(path)
    assert len(from_raw) == len(from_session) == len(with_fragments)
    for a, b, c in zip(from_raw, from_session, with_fragments):
        assert orjson.dumps(a) == orjson.dumps(b) == orjson.dumps(c), path.name
        assert a == b
        assert tuple(a) == JSON_FIELDS
    for raw, rendered in zip(raws, from_raw):
        # and through the wire format, as the analyzer sees it
        assert summary_to_json(decode_summary(encode_summary(raw)), {}) == \
            summary_to_json(raw, {})
    return len(from_raw)


def test_local_captures_render_identically():
    assert len(LOCAL) >= 40
    total = sum(_check(p) for p in LOCAL)
    assert total >= 100


def test_corpus_renders_identically():
    if not SHARED_CORPUS.is_dir():
        pytest.skip("../shared/corpus is not beside the checkout (only in CI and dev)")
    files = sorted(p for p in SHARED_CORPUS.rglob("*") if p.suffix in (".pcap", ".pcapng",
                                                                       ".trace", ".gz"))
    assert files
    assert sum(_check(p) for p in files) >= 50
