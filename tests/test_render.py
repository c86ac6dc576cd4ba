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


def test_renderer_twins_agree_on_every_code_point():
    """The compiled renderer (cext._render, built from proto/render.py) = the twin, on summaries
    carrying every code point kind: registered, GREASE, unassigned, SSLv2 cipher kinds, drafts;
    and the memoized offer names = the unmemoized ones."""
    from functools import lru_cache

    from cext import wire as cwire
    from proto import names
    engines = [cwire.engine("py")]
    try:
        engines.append(cwire.engine("c"))
    except ImportError:
        pass
    base = summary_to_json.__globals__["_TEMPLATE"]
    raws = []
    codes = [0x0A0A, 0x1301, 0x1234, 0xC02F, 0x010080, 0x7F17, 0x0304, 0x0300, 0xFFFF, 0, 2,
             0x0200, 0x001D, 0x0403, 0x5A5A]
    for i in range(len(codes)):
        c = codes[i:] + codes[:i]
        raws.append({
            "id": "x%d" % i, "client": "a", "server": "b", "start": 1.5, "end": 2.5,
            "version": c[0] if c[0] <= 0xFFFF else None, "cipher": c[1], "curve": c[2],
            "curve_from_ske": False, "server_name": None, "alpn": None, "established": i & 1 == 0,
            "resumed": False, "history": "Cc", "alerts": [(i & 1, 2, c[3] & 0xFF, -1 if i & 2 else 1)],
            "client_legacy_version": 0x0303, "client_versions": c[:3], "client_ciphers": c,
            "client_extensions": c[2:], "client_groups": c[1:], "client_alpn": ["h2"],
            "client_signature_algorithms": c[3:], "client_key_shares": c[:2], "client_psk": True,
            "client_sslv2": False, "hrr": False, "certificates": [b"\1" * 32],
            "client_certificates": [], "certificate_request": False,
            "client_certificate_empty": False, "ja4": None, "close": {"fin": [1, 0], "rst": []},
            "client_encrypted": [1], "server_encrypted": [], "encrypted_alerts": [(1, 30)],
            "gaps": [0], "truncated": False, "weirds": ["w"], "outcome": "alert", "sensor": None,
            "direction": None})
    for raw in raws:
        want = summary_to_json(raw, {})
        assert tuple(want) == JSON_FIELDS and set(base) == set(JSON_FIELDS)
        assert want["client_ciphers"] == [names.cipher_name(c) for c in raw["client_ciphers"]]
        assert want["client_versions"] == [names.version_name(c) for c in raw["client_versions"]]
        assert want["client_extensions"] == [names.extension_name(c)
                                             for c in raw["client_extensions"]]
        assert want["cipher"] == names.cipher_name(raw["cipher"])
        for eng in engines:
            memo = lru_cache(maxsize=4)(eng.render.offer_names)
            for _ in range(2):
                got = eng.render.summary_to_json(raw, {}, memo)
                assert orjson.dumps(got) == orjson.dumps(want), eng.implementation
                assert got == want
        assert memo.cache_info().hits >= 1


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
