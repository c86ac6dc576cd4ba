"""The analyzer's summary decoding: ``decode_summary`` checks the fields of an ordinary
summary a group at a time (``_fast_ok``) and hands anything that group check does not accept
to the field-by-field reference (``_decode_slow``).  Both must accept exactly the same
messages, return the same summary (same keys in the same order, same values of the same
types) and reject with the same error -- on real summaries and on hostile ones."""
from __future__ import annotations

import math
from pathlib import Path

import msgpack
import pytest
from conftest import capture_paths, mutations, read_frames
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from proto import summary as S
from proto.render import summary_to_json
from proto.summary import FIELDS, SchemaError, decode_summary, encode_summary
from sensor.pipeline import Summarizer

SETTINGS = settings(max_examples=400, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _raws():
    out = []
    for path in capture_paths():
        lt, frames = read_frames(path)
        s = Summarizer(lt)
        for ts, f in frames:
            out += [r for r, _ in s.feed_frame(ts, f)]
        out += [r for r, _ in s.flush()]
    from sensor.capture import FileCapture        # every cause, both directions
    for path in sorted((Path(__file__).parent / "data" / "scenarios").glob("*.pcap")):
        with FileCapture(str(path)) as cap:
            s = Summarizer(cap.linktype)
            for buf, meta in cap:
                out += [r for r, _ in s.feed(buf, meta)]
            out += [r for r, _ in s.flush()]
    return out


RAWS = _raws()
VALID = [encode_summary(r) for r in RAWS]


def _typed(v):
    """A value with its types spelled out: 1 and True and 1.0 compare equal in Python."""
    if isinstance(v, list):
        return ["list"] + [_typed(x) for x in v]
    if isinstance(v, dict):
        return ["dict"] + [(_typed(k), _typed(x)) for k, x in v.items()]
    if isinstance(v, float) and math.isnan(v):
        return ("float", "nan")
    return (type(v).__name__, v)


def outcome(fn, data):
    try:
        return "ok", _typed(fn(data))
    except SchemaError as e:
        return "error", str(e)


def same(data):
    fast, slow = outcome(decode_summary, data), outcome(S._decode_slow, data)
    assert fast == slow
    return fast[0] == "ok"


def test_real_summaries_take_the_fast_path_and_decode_alike():
    assert len(VALID) > 20
    for data in VALID:
        m = S._unpack(data)
        raw = S._TEMPLATE.copy()
        for name in S._LIST_FIELDS:
            raw[name] = []
        raw.update(zip(map(S._NAME_OF_GET, m), m.values()))
        raw.pop(None, None)
        assert S._fast_ok(raw)                 # the group check accepts ordinary summaries
        assert same(data)
        assert list(decode_summary(data)) == [f for f in FIELDS if f not in S.OPTIONAL_FIELDS]


# values that compare equal to valid ones but are of another type, edge values of each range
TRICKY = st.sampled_from([True, False, 1.0, 0.0, -0.0, float("nan"), float("inf"), 0, 1, -1,
                          0xFFFFFF, 0x1000000, 2 ** 64 - 1, -2 ** 63, "", "x", b"", b"\0" * 32,
                          b"\0" * 31, None, [], [[], []], [[0], []], [[2], []], [[0, 1], [1]],
                          [[0, 0, 0], []], [0], [[]], [1, 1], [0, 1, 0], {}, {0: 1},
                          [0, 1, 2, 3], [1, 2, 255, -1], [1, 2, 256, 0], [0, 255, 255, 255]])
LEAF = st.one_of(TRICKY, st.none(), st.booleans(), st.integers(-2 ** 63, 2 ** 64 - 1),
                 st.floats(), st.text(max_size=4), st.binary(max_size=33))
VALUE = st.recursive(LEAF, lambda v: st.lists(v, max_size=5), max_leaves=10)


@SETTINGS
@given(i=st.integers(0, 10_000),
       fields=st.dictionaries(st.sampled_from(sorted(FIELDS.values())), VALUE, max_size=4))
@example(i=0, fields={FIELDS["client_ciphers"]: [4865, True]})
@example(i=0, fields={FIELDS["client_ciphers"]: [4865, 1.0]})
@example(i=0, fields={FIELDS["client_encrypted"]: [0x1000000]})
@example(i=0, fields={FIELDS["client_versions"]: [-1]})
@example(i=0, fields={FIELDS["established"]: 1})
@example(i=0, fields={FIELDS["certificates"]: [b"\0" * 31]})
@example(i=0, fields={FIELDS["certificates"]: ["\0" * 32]})
@example(i=0, fields={FIELDS["close"]: [[], [], []]})
@example(i=0, fields={FIELDS["close"]: 0})
@example(i=0, fields={FIELDS["alerts"]: 0})
@example(i=0, fields={FIELDS["gaps"]: ""})
@example(i=0, fields={FIELDS["client_alpn"]: [b"h2"]})
@example(i=0, fields={FIELDS["weirds"]: "ab"})
@example(i=0, fields={FIELDS["id"]: None})
@example(i=0, fields={FIELDS["start"]: True})
@example(i=0, fields={FIELDS["start"]: float("nan")})
@example(i=0, fields={FIELDS["end"]: float("inf")})
@example(i=0, fields={FIELDS["start"]: 2 ** 64 - 1})
@example(i=0, fields={FIELDS["end"]: 253402300800.0})
@example(i=0, fields={FIELDS["version"]: True})
@example(i=0, fields={FIELDS["sensor"]: b"s"})
def test_wrong_shapes_fast_equals_reference(i, fields):
    m = msgpack.unpackb(VALID[i % len(VALID)], strict_map_key=False)
    m.update(fields)
    data = msgpack.packb(m, use_bin_type=True)
    if same(data):
        summary_to_json(decode_summary(data), {})       # accepted must render


@SETTINGS
@given(i=st.integers(0, 10_000),
       keys=st.lists(st.one_of(st.booleans(), st.floats(), st.text(max_size=2),
                               st.integers(-5, 100), st.just(2 ** 64 - 1)), max_size=3))
def test_odd_keys_fast_equals_reference(i, keys):
    """Bool, float, string, negative and unknown keys: ignored alike (a newer writer's)."""
    m = msgpack.unpackb(VALID[i % len(VALID)], strict_map_key=False)
    for k in keys:
        m[k] = "x"
    try:
        data = msgpack.packb(m, use_bin_type=True)
    except (TypeError, ValueError):
        return
    same(data)


@SETTINGS
@given(i=st.integers(0, 10_000), mutate=mutations())
def test_mutated_bytes_fast_equals_reference(i, mutate):
    same(mutate(VALID[i % len(VALID)]))


@pytest.mark.parametrize("t", [float("nan"), float("inf"), -float("inf"), 1e308, -1e308,
                               2 ** 64 - 1, S.MAX_TIME + 1, S.MAX_TIME + 0.5, S.MIN_TIME - 1])
@pytest.mark.parametrize("name", ["start", "end"])
def test_time_stamps_outside_datetimes_range_are_rejected(name, t):
    """What no datetime holds is a SchemaError (dead-lettered), not a crash downstream."""
    m = msgpack.unpackb(VALID[0], strict_map_key=False)
    m[FIELDS[name]] = t
    data = msgpack.packb(m, use_bin_type=True)
    assert outcome(decode_summary, data) == ("error", "bad %s field" % name)
    assert same(data) is False


@pytest.mark.parametrize("t", [S.MIN_TIME, S.MAX_TIME, float(S.MAX_TIME), 0, 0.0, 1.7e9])
def test_time_stamps_at_datetimes_range_edges_are_accepted(t):
    m = msgpack.unpackb(VALID[0], strict_map_key=False)
    m[FIELDS["start"]] = m[FIELDS["end"]] = t
    data = msgpack.packb(m, use_bin_type=True)
    assert same(data)
    assert summary_to_json(decode_summary(data), {})["start"] == t


def test_missing_required_field_same_error():
    m = msgpack.unpackb(VALID[0], strict_map_key=False)
    del m[FIELDS["server"]]
    with pytest.raises(SchemaError, match="missing field 'server'"):
        decode_summary(msgpack.packb(m, use_bin_type=True))
    m = msgpack.unpackb(VALID[0], strict_map_key=False)
    m[FIELDS["client_ciphers"]] = [4865, True]
    with pytest.raises(SchemaError, match="bad client_ciphers field"):
        decode_summary(msgpack.packb(m, use_bin_type=True))


@pytest.mark.parametrize("data", [b"\xc1", b"\x91" * 5000 + b"\xc0"])
def test_what_msgpack_refuses_has_a_reason_on_the_dead_letter(data):
    # (msgpack's own text is empty for these: the DLQ's reason header said only "not msgpack: ")
    for decode in (decode_summary, S.decode_certificate):
        with pytest.raises(SchemaError) as e:
            decode(data)
        assert str(e.value) in ("not msgpack: FormatError", "not msgpack: StackError")
