"""The summary contract (proto.summary): one field table that the wire format, the JSON
renderer and docs/summary-schema.md agree with; every summary of the test captures survives
the msgpack round trip, and anything that is not a summary of our schema is a SchemaError -
never another exception (STYLE 23, 33)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import msgpack
import pytest
from conftest import capture_paths, mutations, read_frames
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from proto.render import summary_to_json
from proto.summary import (FIELD, FIELDS, JSON_FIELDS, MAX_MESSAGE, OPTIONAL_FIELDS, SCHEMA_VERSION,
                           SchemaError,
                           decode_certificate, decode_summary, encode_certificate, encode_summary)
from sensor.pipeline import Summarizer

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _summaries():
    out = []
    for path in capture_paths():
        lt, frames = read_frames(path)
        s = Summarizer(lt)
        done = []
        for ts, f in frames:
            done += s.feed_frame(ts, f)
        done += s.flush()
        assert len(done) == 1, path
        raw, certs = done[0]
        facts = {c[0]: c[2] for c in certs}
        out.append((path.stem, raw, facts, certs))
    return out


SUMMARIES = _summaries()
IDS = [s[0] for s in SUMMARIES]


@pytest.mark.parametrize("name,raw,facts,certs", SUMMARIES, ids=IDS)
def test_round_trip(name, raw, facts, certs):
    data = encode_summary(raw)
    assert isinstance(data, bytes) and len(data) < 4096
    back = decode_summary(data)
    assert summary_to_json(back, facts) == summary_to_json(raw, facts)
    # the raw fields the analyzer reads, equal up to list/tuple
    for k in ("version", "cipher", "curve", "server_name", "history", "established", "outcome",
              "certificates", "client_ciphers", "alerts", "close", "gaps", "truncated", "start",
              "end"):
        assert _lists(back[k]) == _lists(raw[k]), k


def _lists(v):
    if isinstance(v, (list, tuple)):
        return [_lists(x) for x in v]
    if isinstance(v, dict):
        return {k: _lists(x) for k, x in v.items()}
    return v


@pytest.mark.parametrize("name,raw,facts,certs", SUMMARIES, ids=IDS)
def test_certificate_records_round_trip(name, raw, facts, certs):
    assert len(certs) == len(raw["certificates"] + raw["client_certificates"])
    for digest, der, f, _new in certs:
        sha, der2, f2 = decode_certificate(encode_certificate(digest, der, f))
        assert (sha, der2) == (digest, der)
        assert f2 == msgpack.unpackb(msgpack.packb(f, use_bin_type=True), raw=False)


def test_summaries_cover_the_interesting_fields():
    """The round trip above is only as good as its inputs: they include certificates,
    alerts, an HRR, TLS 1.2 and 1.3 and a FIN close."""
    raws = [s[1] for s in SUMMARIES]
    assert any(r["certificates"] for r in raws)
    assert any(r["alerts"] for r in raws)
    assert any(r["hrr"] for r in raws)
    assert {r["version"] for r in raws} >= {0x0303, 0x0304, None}
    assert any(r["close"]["fin"] for r in raws)


def _valid():
    return encode_summary(SUMMARIES[2][1])


# ---------------------------------------------------------------------------------------------
# hostile messages
# ---------------------------------------------------------------------------------------------

def decode_or_schema_error(data):
    try:
        return decode_summary(data)
    except SchemaError:
        return None


@SETTINGS
@given(data=st.binary(max_size=400))
@example(data=b"")
@example(data=b"\xc1")                                # never-used msgpack byte
@example(data=b"\xdd\xff\xff\xff\xff")                 # array32 of 4G elements
@example(data=b"\xdf\xff\xff\xff\xff")                 # map32 of 4G entries
@example(data=b"\xc6\xff\xff\xff\xff")                 # bin32 of 4 GB
@example(data=b"\x91" * 5000)                          # deeply nested arrays
def test_garbage_is_schema_error(data):
    assert decode_or_schema_error(data) is None          # random bytes are never a summary
    with pytest.raises(SchemaError):
        decode_certificate(data)


def test_every_truncation_is_schema_error():
    data = _valid()
    for n in range(len(data)):
        with pytest.raises(SchemaError):
            decode_summary(data[:n])


@pytest.mark.parametrize("version", [None, 0, 2, 99, -1, "1", 1.0001])
def test_wrong_schema_version(version):
    m = msgpack.unpackb(_valid(), strict_map_key=False)
    if version is None:
        del m[0]
    else:
        m[0] = version
    with pytest.raises(SchemaError, match="schema version"):
        decode_summary(msgpack.packb(m, use_bin_type=True))


def test_not_a_map_and_missing_fields():
    for obj in ([1, 2], "x", 7, None, {}, {0: SCHEMA_VERSION}):
        with pytest.raises(SchemaError):
            decode_summary(msgpack.packb(obj))
    m = msgpack.unpackb(_valid(), strict_map_key=False)
    for name in ("id", "client", "server", "history", "outcome"):
        broken = dict(m)
        del broken[FIELDS[name]]
        with pytest.raises(SchemaError, match="missing"):
            decode_summary(msgpack.packb(broken, use_bin_type=True))


def test_oversized_messages():
    with pytest.raises(SchemaError, match="too large"):
        decode_summary(b"\x00" * (MAX_MESSAGE + 1))
    m = msgpack.unpackb(_valid(), strict_map_key=False)
    m[FIELDS["weirds"]] = ["w%d" % i for i in range(90_000)]      # under the limit as a whole
    assert len(decode_summary(msgpack.packb(m))["weirds"]) == 90_000
    m[FIELDS["weirds"]] = ["x" * 60_000] * 80                      # over it
    with pytest.raises(SchemaError):
        decode_summary(msgpack.packb(m))


def test_newer_writers_fields_are_ignored():
    m = msgpack.unpackb(_valid(), strict_map_key=False)
    m[999] = {"future": [1, 2, 3]}
    back = decode_summary(msgpack.packb(m, use_bin_type=True))
    assert back == decode_summary(_valid())


@SETTINGS
@given(mutate=mutations())
def test_mutated_summaries_never_raise_anything_else(mutate):
    decode_or_schema_error(mutate(_valid()))


# msgpack values of any shape under the summary's keys
LEAF = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**64 - 1), st.floats(),
                 st.text(max_size=8), st.binary(max_size=40))
VALUE = st.recursive(LEAF, lambda v: st.lists(v, max_size=4)
                     | st.dictionaries(st.integers(0, 50), v, max_size=4), max_leaves=12)


@SETTINGS
@given(fields=st.dictionaries(st.sampled_from(sorted(FIELDS.values())), VALUE, max_size=6))
def test_wrong_field_types_are_schema_errors(fields):
    """A message of our schema version whose fields hold values of the wrong shape.  Decoding
    must raise SchemaError or return a summary (never another exception)."""
    m = msgpack.unpackb(_valid(), strict_map_key=False)
    m.update(fields)
    decode_or_schema_error(msgpack.packb(m, use_bin_type=True))


@SETTINGS
@given(fields=st.dictionaries(st.sampled_from(sorted(FIELDS.values())), VALUE, max_size=6))
def test_decoded_summaries_always_render(fields):
    """What decode_summary accepts, summary_to_json can render: otherwise a poison message
    gets past the schema check and crashes the consumer."""
    m = msgpack.unpackb(_valid(), strict_map_key=False)
    m.update(fields)
    raw = decode_or_schema_error(msgpack.packb(m, use_bin_type=True))
    if raw is not None:                 # rejected is fine; accepted must render
        summary_to_json(raw, {})


def test_certificates_nil_is_schema_error():
    m = msgpack.unpackb(_valid(), strict_map_key=False)
    m[FIELDS["certificates"]] = None
    with pytest.raises(SchemaError):
        decode_summary(msgpack.packb(m, use_bin_type=True))


def test_alert_side_out_of_range_is_schema_error():
    m = msgpack.unpackb(_valid(), strict_map_key=False)
    m[FIELDS["alerts"]] = [[5, 2, 40, 1]]
    with pytest.raises(SchemaError, match="bad alerts field"):
        decode_summary(msgpack.packb(m, use_bin_type=True))
    m[FIELDS["alerts"]] = [[1, 2, 40, 1]]           # the same alert from a real side is fine
    assert decode_summary(msgpack.packb(m, use_bin_type=True))["alerts"] == [[1, 2, 40, 1]]


@SETTINGS
@given(data=st.binary(max_size=200), mutate=mutations())
def test_certificate_records_hostile(data, mutate):
    der = b"\x30\x03\x02\x01\x00"
    good = encode_certificate(hashlib.sha256(der).digest(), der, {"subject": "CN=x"})
    for blob in (data, mutate(good)):
        try:
            sha, der, facts = decode_certificate(blob)
        except SchemaError:
            continue
        assert isinstance(sha, bytes) and len(sha) == 32 and isinstance(der, bytes)
        assert isinstance(facts, dict) and hashlib.sha256(der).digest() == sha


def test_a_certificate_record_under_another_digest_is_refused():
    """A record filed under one certificate's digest but holding another's DER (a hostile or
    confused producer) would be judged in the first one's place: a schema error, counted."""
    der, other = b"\x30\x03\x02\x01\x00", b"\x30\x03\x02\x01\x01"
    assert decode_certificate(encode_certificate(hashlib.sha256(der).digest(), der, {}))[1] == der
    with pytest.raises(SchemaError, match="does not hash to its digest"):
        decode_certificate(encode_certificate(hashlib.sha256(der).digest(), other, {}))


# ---------------------------------------------------------------------------------------------
# the field table
# ---------------------------------------------------------------------------------------------

SCHEMA_DOC = Path(__file__).resolve().parents[1] / "docs" / "summary-schema.md"
BEGIN, END = "<!-- FIELD table: generated from proto.summary.FIELD -->", "<!-- end of FIELD table -->"


def field_table_markdown() -> str:
    """docs/summary-schema.md's field table, as FIELD says it."""
    rows = ["| field | msgpack key | JSON type | meaning |", "|---|---|---|---|"]
    for f in FIELD:
        rows.append("| `%s` | %s | %s | %s |" % (
            f.name, "-- (JSON only)" if f.key is None else f.key,
            "-- (raw / msgpack only)" if f.json is None else f.json.replace("|", "\\|"),
            f.doc))
    return "\n".join(rows)


def test_schema_doc_is_the_field_table():
    text = SCHEMA_DOC.read_text()
    assert BEGIN in text and END in text
    doc = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    want = field_table_markdown()
    assert doc == want, "docs/summary-schema.md is out of date; its table is:\n" + want


def test_field_table_is_consistent():
    names = [f.name for f in FIELD]
    assert len(names) == len(set(names))
    keys = [f.key for f in FIELD if f.key is not None]
    assert sorted(keys) == list(range(1, len(keys) + 1))     # append-only, no holes
    assert list(FIELDS.values()) == sorted(keys)
    for f in FIELD:
        assert f.kind in ("required", "nullable", "bool", "list", "optional"), f
        assert (f.key is None) == (f.check is None), f   # JSON-only fields are not on the wire
        assert f.doc and "\n" not in f.doc, f


@pytest.mark.parametrize("name,raw,facts,certs", SUMMARIES, ids=IDS)
def test_the_sensor_fills_every_wire_field_and_renders_json_fields(name, raw, facts, certs):
    assert set(raw) == set(FIELDS) - set(OPTIONAL_FIELDS)
    assert tuple(summary_to_json(raw, facts)) == JSON_FIELDS


def test_absent_fields_decode_to_their_kind():
    """A summary with only the required fields: every other field decodes to its kind's
    absent value (the encoder leaves null, false and [] out)."""
    raw = {f.name: (["x"] if f.kind == "required" else None) for f in FIELD
           if f.key and f.kind != "optional"}
    raw.update(id="i", client="c", server="s", history="", outcome="o", start=1.0, end=2.0)
    back = decode_summary(encode_summary(raw))
    absent = {"nullable": None, "bool": False, "list": []}
    for f in FIELD:
        if f.kind == "optional":
            assert f.name not in back, f.name            # absent stays absent
        elif f.key is not None and f.kind != "required":
            want = {"fin": [], "rst": []} if f.name == "close" else absent[f.kind]
            assert back[f.name] == want and type(back[f.name]) is type(want), f.name


def test_a_text_longer_than_a_handshake_holds_is_a_schema_error():
    """A server name cannot come from a ClientHello longer than its extension's 2^16 - 1 bytes,
    each written as 4 characters at most (``\\xc3``: the longest a sensor writes is accepted);
    a longer one is refused (dead-lettered), not turned into a diagnosis larger than Kafka
    takes."""
    longest = "\\xc3" * ((1 << 16) - 1)
    m = msgpack.unpackb(_valid(), strict_map_key=False)
    m[FIELDS["server_name"]] = longest
    assert decode_summary(msgpack.packb(m, use_bin_type=True))["server_name"] == longest
    m[FIELDS["server_name"]] = longest + "a"
    with pytest.raises(SchemaError, match="max_str_len"):
        decode_summary(msgpack.packb(m, use_bin_type=True))
