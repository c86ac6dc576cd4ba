"""The Cython wire core and its pure-Python twin are interchangeable (STYLE 32-33).

For every byte-crunching function: the same return value, or the same exception type and
reason, on random bytes and on mutated real messages from the test captures; and only
``MalformedMessage`` can come out of a parse function (never IndexError, struct.error ...).
``PacketDecoder`` gives the same segment tuples, counters and pending/done bookkeeping on
random and mutated real frames of every link type, from every frame source (one frame, a
pcapy-ng batch, the records of a pcap file), whole or split over ``--jobs`` partitions.
"""
from __future__ import annotations

import array
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import (LINKTYPES, NO_EXTENSIONS, fuzz_target, golden_frames, golden_messages,
                      load_py_wire, mutations, new_decoder)
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cext.errors import MAX_CERTIFICATES, REASONS, MalformedMessage

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.c_extension        # every test here needs both implementations

FAST = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def outcome(fn, *args):
    """``("ok", value)`` or ``("MalformedMessage", reason)``; any other exception is
    returned as ``("other", type name, message)`` so the comparison shows both sides."""
    try:
        return ("ok", fn(*args))
    except MalformedMessage as exc:
        return ("MalformedMessage", exc.reason)
    except Exception as exc:        # noqa: BLE001 - reported, and fails the test
        return ("other", type(exc).__name__, str(exc))


def assert_same(c_result, py_result):
    assert py_result[0] != "other", "pure-Python twin raised %r" % (py_result,)
    assert c_result[0] != "other", "Cython build raised %r" % (c_result,)
    if py_result[0] == "MalformedMessage":
        assert py_result[1] in REASONS
    assert c_result == py_result


# ---------------------------------------------------------------------------------------------
# default selection
# ---------------------------------------------------------------------------------------------

_SELECTION = ("import cext.wire as w; "
              "print(w.IMPLEMENTATION, w.FALLBACK_REASON, w.ENGINE.flows.__name__, sep='|')")


def _selection(env_extra: dict, block: str | None = None) -> list[str]:
    """``[IMPLEMENTATION, FALLBACK_REASON, flow table module]`` in a fresh interpreter;
    ``block`` names a module made unimportable there (as if it were not built)."""
    env = {k: v for k, v in os.environ.items() if k != "TLSDIAG_NO_EXTENSIONS"}
    env.update(env_extra)
    code = _SELECTION
    if block:
        code = ("import sys\n"
                "class Block:\n"
                "    def find_spec(self, name, path=None, target=None):\n"
                "        if name == %r:\n"
                "            raise ModuleNotFoundError('No module named %%r' %% name, name=name)\n"
                "sys.meta_path.insert(0, Block())\n" % block) + code
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=60)
    if r.returncode:
        return ["error", r.stderr.strip().splitlines()[-1]]
    return r.stdout.strip().split("|")


def test_c_extension_preferred_by_default(c_wire):
    assert _selection({}) == ["c", "None", "cext._flows"]
    assert _selection({"TLSDIAG_NO_EXTENSIONS": "1"}) == ["py", "None", "cext._flows_py"]
    assert _selection({"TLSDIAG_NO_EXTENSIONS": "0"}) == ["c", "None", "cext._flows"]


def test_missing_build_falls_back_with_its_reason():
    impl, reason, flows = _selection({}, block="cext._wire")
    assert (impl, flows) == ("py", "cext._flows_py")
    assert "compiled build is missing" in reason and "cext._wire" in reason


def test_partial_build_is_an_error(c_wire):
    """_wire built but not the engine (a stale build): refuse, rather than run half of each."""
    status, message = _selection({}, block="cext._flows")
    assert status == "error" and "ImportError" in message and "cext._flows" in message


@pytest.mark.skipif(not NO_EXTENSIONS, reason="only meaningful in the TLSDIAG_NO_EXTENSIONS run")
def test_selector_honours_no_extensions_in_this_process():
    from cext import wire
    assert wire.IMPLEMENTATION == "py" and wire.FALLBACK_REASON is None
    assert wire.ENGINE == wire.engine("py")
    assert wire.parse_client_hello is load_py_wire().parse_client_hello


def test_same_public_api(c_wire, py_wire):
    assert sorted(c_wire.__all__) == sorted(py_wire.__all__)
    assert c_wire.COUNTER_NAMES == py_wire.COUNTER_NAMES
    assert c_wire.MAX_RECORD == py_wire.MAX_RECORD == (1 << 14) + 2048


# ---------------------------------------------------------------------------------------------
# golden messages parse, identically
# ---------------------------------------------------------------------------------------------

def test_golden_messages_parse_identically(c_wire, py_wire):
    g = golden_messages()
    for body in g["client_hello"]:
        r = outcome(py_wire.parse_client_hello, body)
        assert r[0] == "ok" and r[1][2], r              # real cipher suites came out
        assert_same(outcome(c_wire.parse_client_hello, body), r)
    for body in g["server_hello"]:
        r = outcome(py_wire.parse_server_hello, body)
        assert r[0] == "ok", r
        assert_same(outcome(c_wire.parse_server_hello, body), r)
    for body, tls13 in g["certificate"]:
        r = outcome(py_wire.parse_certificate, body, tls13)
        assert r[0] == "ok" and len(r[1]) == 3, r       # the chains have 3 certificates
        assert all(der[:1] == b"\x30" for der in r[1])
        assert_same(outcome(c_wire.parse_certificate, body, tls13), r)


# ---------------------------------------------------------------------------------------------
# hello / certificate parsers
# ---------------------------------------------------------------------------------------------

@FAST
@given(data=st.binary(max_size=300))
@example(data=b"")
@example(data=bytes(38))
@example(data=bytes(34) + b"\x20")
def test_parse_client_hello_random(c_wire, py_wire, data):
    assert_same(outcome(c_wire.parse_client_hello, data), outcome(py_wire.parse_client_hello, data))


@FAST
@given(data=st.binary(max_size=200))
@example(data=b"")
@example(data=b"\x7f\x10" + bytes(32))
@example(data=b"\x7f\x10" + bytes(34))
def test_parse_server_hello_random(c_wire, py_wire, data):
    assert_same(outcome(c_wire.parse_server_hello, data), outcome(py_wire.parse_server_hello, data))


@FAST
@given(data=st.binary(max_size=200), tls13=st.booleans())
@example(data=b"", tls13=False)
@example(data=b"", tls13=True)
@example(data=b"\x00\x00\x00\x00", tls13=True)
def test_parse_certificate_random(c_wire, py_wire, data, tls13):
    assert_same(outcome(c_wire.parse_certificate, data, tls13),
                outcome(py_wire.parse_certificate, data, tls13))


@pytest.mark.parametrize("tls13", [False, True])
def test_certificate_count_is_capped(c_wire, py_wire, tls13):
    """A Certificate message's first MAX_CERTIFICATES are read, the rest only checked for
    framing: 64 empty certificates, 65 or 200,000 (which fit in a 1 MiB message and were each
    kept as an object in the chain memo: 31 MB a connection) give 64, a bad tail is still
    vector_overrun -- in both builds.  (That more were sent is a notice the engine notes: the
    weird too_many_certificates, tests/test_flows.py.)"""
    entry = b"\x00\x00\x00" + (b"\x00\x00" if tls13 else b"")
    for n, tail, want in ((MAX_CERTIFICATES, b"", ("ok", [b""] * MAX_CERTIFICATES)),
                          (MAX_CERTIFICATES + 1, b"", ("ok", [b""] * MAX_CERTIFICATES)),
                          (200_000, b"", ("ok", [b""] * MAX_CERTIFICATES)),
                          (200_000, b"\x00\x00\x09", ("MalformedMessage", "vector_overrun"))):
        certs = entry * n + tail
        body = (b"\x00" if tls13 else b"") + len(certs).to_bytes(3, "big") + certs
        got = outcome(py_wire.parse_certificate, body, tls13)
        assert got == want
        assert_same(outcome(c_wire.parse_certificate, body, tls13), got)


@FAST
@given(st.data(), mutations())
def test_parse_client_hello_mutated(c_wire, py_wire, data, mutate):
    body = mutate(data.draw(st.sampled_from(golden_messages()["client_hello"])))
    assert_same(outcome(c_wire.parse_client_hello, body), outcome(py_wire.parse_client_hello, body))


@FAST
@given(st.data(), mutations())
def test_parse_server_hello_mutated(c_wire, py_wire, data, mutate):
    body = mutate(data.draw(st.sampled_from(golden_messages()["server_hello"])))
    assert_same(outcome(c_wire.parse_server_hello, body), outcome(py_wire.parse_server_hello, body))


@FAST
@given(st.data(), mutations())
def test_parse_certificate_mutated(c_wire, py_wire, data, mutate):
    body, tls13 = data.draw(st.sampled_from(golden_messages()["certificate"]))
    body = mutate(body)
    assert_same(outcome(c_wire.parse_certificate, body, tls13),
                outcome(py_wire.parse_certificate, body, tls13))


def test_parse_functions_raise_only_malformed_message(py_wire, c_wire):
    """Every way a real ClientHello can be cut short or padded gives a value or
    MalformedMessage - checked exhaustively on every prefix, not sampled."""
    for impl in (py_wire, c_wire):
        for body in golden_messages()["client_hello"][:3]:
            for n in range(len(body) + 1):
                r = outcome(impl.parse_client_hello, body[:n])
                assert r[0] != "other", (impl.__name__, n, r)
                if n < len(body) and r[0] == "ok":
                    # a prefix can only be whole if it ends on an extension boundary
                    assert len(r[1][4]) < len(outcome(impl.parse_client_hello, body)[1][4])
        for body in golden_messages()["server_hello"]:
            for n in range(len(body) + 1):
                assert outcome(impl.parse_server_hello, body[:n])[0] != "other"


# ---------------------------------------------------------------------------------------------
# the ClientHello as the sensor keeps it: the offer key
# ---------------------------------------------------------------------------------------------

@FAST
@given(data=st.binary(max_size=400))
def test_parse_client_hello_key_random(c_wire, py_wire, data):
    assert_same(outcome(c_wire.parse_client_hello_key, data),
                outcome(py_wire.parse_client_hello_key, data))


@FAST
@given(st.data(), mutations())
def test_parse_client_hello_key_mutated(c_wire, py_wire, data, mutate):
    body = mutate(data.draw(st.sampled_from(golden_messages()["client_hello"])))
    c = outcome(c_wire.parse_client_hello_key, body)
    assert_same(c, outcome(py_wire.parse_client_hello_key, body))
    full = outcome(py_wire.parse_client_hello, body)
    # the same checks as the full parse: the same messages fail, with the same reason
    assert (c[0], c[1] if c[0] != "ok" else None) == (full[0], full[1] if full[0] != "ok" else None)


def _hello(exts: list, suites=(0x1301, 0x1302), sid=b"\x01" * 32, random=b"\x00" * 32) -> bytes:
    """A ClientHello body with ``exts`` = [(type, data), ...] in that order."""
    ext = b"".join(t.to_bytes(2, "big") + len(d).to_bytes(2, "big") + d for t, d in exts)
    cs = b"".join(c.to_bytes(2, "big") for c in suites)
    return (b"\x03\x03" + random + bytes([len(sid)]) + sid + len(cs).to_bytes(2, "big") + cs
            + b"\x01\x00" + len(ext).to_bytes(2, "big") + ext)


def _u16v(values, lbytes=2):
    b = b"".join(v.to_bytes(2, "big") for v in values)
    return len(b).to_bytes(lbytes, "big") + b


def test_offer_key_is_invariant_where_the_offer_is(c_wire, py_wire):
    """Extension order, GREASE values, the random, the session id, the SNI name and the key
    share bytes do not change the key; an offer that differs does."""
    import random as _random
    py_session = __import__("cext._session_py", fromlist=["x"])

    def exts(grease, sni, share_bytes):
        return [(grease, b""), (0, b"\x00\x0e\x00\x00\x0b" + sni),
                (10, _u16v([grease, 0x1D, 0x17])), (13, _u16v([0x0403, 0x0804])),
                (43, _u16v([grease, 0x0304, 0x0303], 1)), (16, b"\x00\x03\x02h2"),
                (51, _u16v([]) if False else (len(share_bytes) + 4).to_bytes(2, "big")
                 + b"\x00\x1d" + len(share_bytes).to_bytes(2, "big") + share_bytes),
                (0xFF01, b"\x00"), (23, b"")]

    rng = _random.Random(7)
    keys = set()
    for i in range(40):
        g = rng.choice([0x0A0A, 0x1A1A, 0x2A2A, 0xFAFA])
        e = exts(g, bytes(rng.choice(b"abcdefghijk") for _ in range(11)), rng.randbytes(32))
        rng.shuffle(e)
        body = _hello(e, suites=(g, 0x1301, 0x1302), sid=rng.randbytes(32),
                      random=rng.randbytes(32))
        for impl in (c_wire, py_wire):
            legacy, sid, sni, stripped, key = impl.parse_client_hello_key(body)
            assert key is not None and g not in stripped and len(stripped) == 8
            keys.add(key)
            # the key stands for the offer of the full message
            full = py_wire.parse_client_hello(body)
            a, b = py_session.offer_from_key(key), py_session._offer_of_hello(full)
            assert [getattr(a, f) for f in a.__slots__] == [getattr(b, f) for f in b.__slots__]
    assert len(keys) == 1
    other = _hello(exts(0x0A0A, b"x" * 11, b"y" * 32)[:-1])          # one extension less
    assert py_wire.parse_client_hello_key(other)[4] not in keys


def test_offer_key_falls_back_when_too_large(c_wire, py_wire):
    """A ClientHello whose offer key would pass KEY_MAX (or with more than EXT_MAX
    extensions) has none: its offer is computed from the full message, not memoized."""
    body = _hello([(0x1000 + i, b"") for i in range(600)])
    for impl in (c_wire, py_wire):
        assert impl.parse_client_hello_key(body)[4] is None
    body = _hello([(10, _u16v(range(1, 2100)))])
    for impl in (c_wire, py_wire):
        assert impl.parse_client_hello_key(body)[4] is None


@FAST
@given(start=st.floats(0, 4.3e9), client=st.text(max_size=50), server=st.text(max_size=300))
def test_connection_id(c_wire, py_wire, start, client, server):
    assert c_wire.connection_id(start, client, server) == \
        py_wire.connection_id(start, client, server)


def test_connection_id_out_of_range(c_wire, py_wire):
    for start in (-1.0, 1e300, 1e17, 0.0, 2.5e-7, 3.5e-7):
        assert c_wire.connection_id(start, "a", "b") == py_wire.connection_id(start, "a", "b")


# ---------------------------------------------------------------------------------------------
# PacketDecoder
# ---------------------------------------------------------------------------------------------

def decode_all(impl, linktype, frames, flows=None, done=(), skip=None):
    """Each frame through one decoder: the outcomes, the counters, the keys the decoder made
    pending and the finished ones it was given (``done``), still finished."""
    flows = {} if flows is None else flows
    flows.update((k, impl.Done(0.0)) for k in done)
    dec = new_decoder(impl, linktype, flows, skip)
    out = [outcome(dec.decode, ts, f) for ts, f in frames]
    return (out, dec.stats(), [k for k, v in flows.items() if v is None],
            [k for k, v in flows.items() if isinstance(v, impl.Done)])


def _skips(impl, skip: dict) -> dict:
    out = {}
    for k, (lo, hi) in skip.items():
        out[k] = impl.Skip()
        out[k].lo, out[k].hi = lo, hi
    return out


def assert_decoders_agree(c_wire, py_wire, linktype, frames, done_keys=(), skip=None):
    skip = skip or {}
    c = decode_all(c_wire, linktype, frames, done=done_keys, skip=_skips(c_wire, skip))
    p = decode_all(py_wire, linktype, frames, done=done_keys, skip=_skips(py_wire, skip))
    assert all(r[0] == "ok" for r in p[0]), [r for r in p[0] if r[0] != "ok"][:3]
    assert all(r[0] == "ok" for r in c[0]), [r for r in c[0] if r[0] != "ok"][:3]
    assert c[0] == p[0]
    assert c[1] == p[1], "stats differ"
    assert c[2] == p[2] and c[3] == p[3], "flow bookkeeping differs"
    return p


@pytest.mark.parametrize("linktype", LINKTYPES)
def test_decoder_golden_frames(c_wire, py_wire, linktype):
    frames = golden_frames(linktype)
    out, stats, flows, _done = assert_decoders_agree(c_wire, py_wire, linktype, frames)
    segs = [r[1] for r in out if r[1] is not None]
    assert stats["packets"] == len(frames)
    assert stats["emitted"] == len(segs) > 0
    assert stats["unsupported_linktype"] == stats["malformed_l3"] == stats["malformed_l4"] == 0
    assert flows, "no flow became pending"
    for ts, key, from_lo, flags, seq, payload, truncated in segs:
        assert len(key) in (12, 36) and isinstance(payload, bytes) and truncated is False


LINKTYPE = st.sampled_from(LINKTYPES)


@FAST
@given(linktype=LINKTYPE, frames=st.lists(st.binary(max_size=120), max_size=20))
def test_decoder_random_frames(c_wire, py_wire, linktype, frames):
    assert_decoders_agree(c_wire, py_wire, linktype, [(float(i), f) for i, f in enumerate(frames)])


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data(), LINKTYPE, st.lists(mutations(), min_size=1, max_size=6))
def test_decoder_mutated_frames(c_wire, py_wire, data, linktype, mutators):
    pool = golden_frames(linktype)
    frames = []
    for m in mutators:
        ts, f = data.draw(st.sampled_from(pool))
        frames.append((ts, f))                       # the real frame, then a mutant of it
        frames.append((ts, m(f)))
    # some keys already finished (the decoder drops their packets in C), some with
    # ciphertext to skip up to a sequence number
    keys = _golden_keys(linktype)
    done = data.draw(st.sets(st.sampled_from(keys), max_size=2))
    seqs = st.one_of(st.just(-1), st.integers(0, 0xFFFFFFFF))
    skip = data.draw(st.dictionaries(st.sampled_from(keys), st.tuples(seqs, seqs), max_size=2))
    assert_decoders_agree(c_wire, py_wire, linktype, frames, done, skip)


def _golden_keys(linktype):
    py = load_py_wire()
    out, _s, flows, _d = decode_all(py, linktype, golden_frames(linktype)[:40])
    return sorted(set(flows)) or [b"\x00" * 12]


@FAST
@given(st.data(), st.integers(0, 3))
def test_decoder_unknown_linktype(c_wire, py_wire, data, k):
    lt = (2, 9, 105, 127)[k]
    frames = [(0.0, data.draw(st.binary(max_size=60))) for _ in range(3)]
    _out, stats, _f, _d = assert_decoders_agree(c_wire, py_wire, lt, frames)
    assert stats["unsupported_linktype"] == 3


def _batch(frames):
    buf = b"".join(f for _ts, f in frames)
    meta, off = [], 0
    for ts, f in frames:
        meta.append(struct.pack("=IIII", int(ts), int((ts % 1) * 1e6), off, len(f)))
        off += len(f)
    return buf, b"".join(meta)


@pytest.mark.parametrize("linktype", (1, 113, 229))
def test_decode_batch_equals_decode(c_wire, py_wire, linktype):
    frames = golden_frames(linktype)
    buf, meta = _batch(frames)
    results = []
    for impl in (c_wire, py_wire):
        dec = new_decoder(impl, linktype)
        segs = dec.decode_batch(buf, meta)
        one = new_decoder(impl, linktype)
        each = [s for s in (one.decode(ts, f) for ts, f in frames) if s is not None]
        assert [s[1:] for s in segs] == [s[1:] for s in each]
        assert all(abs(a[0] - b[0]) < 2e-6 for a, b in zip(segs, each))
        results.append((segs, dec.stats()))
    assert results[0] == results[1]


def test_decode_batch_bad_offsets(c_wire, py_wire):
    frames = golden_frames(1)[:4]
    buf, meta = _batch(frames)
    bad = meta + struct.pack("=IIII", 1, 0, len(buf) - 2, 10)      # runs past buf
    r = [new_decoder(impl, 1) for impl in (c_wire, py_wire)]
    out = [d.decode_batch(buf, bad) for d in r]
    assert out[0] == out[1]
    assert r[0].stats() == r[1].stats()
    assert r[1].stats()["malformed_l3"] == 1


def test_decode_batch_empty_buffer(c_wire, py_wire):
    meta = struct.pack("=IIII", 1, 0, 0, 0) * 2
    r = [new_decoder(impl, 1) for impl in (c_wire, py_wire)]
    for d in r:
        d.decode_batch(b"", meta)
    assert r[0].stats() == r[1].stats()


# ---------------------------------------------------------------------------------------------
# the fuzz target, exercised in CI on hypothesis inputs
# ---------------------------------------------------------------------------------------------

FUZZ = fuzz_target()


def test_fuzz_target_runs_both_implementations(c_wire):
    assert FUZZ.IMPLS[1] is c_wire and len(FUZZ.IMPLS) == 2 and len(FUZZ.ENGINES) == 2
    for seed in FUZZ.seeds():
        FUZZ.one_input(seed)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(op=st.integers(0, FUZZ.N_TARGETS - 1), arg=st.integers(0, 255),
       body=st.binary(max_size=600))
def test_fuzz_target_one_input(op, arg, body):
    FUZZ.one_input(bytes([op, arg]) + body)


@FAST
@given(st.data(), LINKTYPE)
def test_decode_batch_hostile_meta(c_wire, py_wire, data, linktype):
    """Random batch descriptors over real frames: offsets and lengths that run past the
    buffer, zero lengths, overlapping records, a trailing partial descriptor."""
    frames = list(golden_frames(linktype)[:6])
    buf, _meta = _batch([(float(i), f) for i, (_ts, f) in enumerate(frames)])
    n = data.draw(st.integers(0, 8))
    meta = b"".join(struct.pack("=IIII", data.draw(st.integers(0, 2**32 - 1)),
                                data.draw(st.integers(0, 999_999)),
                                data.draw(st.integers(0, len(buf) + 10)),
                                data.draw(st.integers(0, 2000) | st.just(2**32 - 1)))
                    for _ in range(n)) + data.draw(st.binary(max_size=15))
    res = []
    for impl in (c_wire, py_wire):
        dec = new_decoder(impl, linktype)
        res.append((outcome(dec.decode_batch, buf, meta), dec.stats()))
    assert res[0][0][0] == "ok" and res[1][0][0] == "ok", res
    assert res[0][1] == res[1][1]
    c_segs, p_segs = res[0][0][1], res[1][0][1]
    assert [s[1:] for s in c_segs] == [s[1:] for s in p_segs]
    assert all(abs(a[0] - b[0]) < 1e-3 for a, b in zip(c_segs, p_segs))


def test_tls_start_check_stops_at_the_ip_payload(c_wire, py_wire):
    """A 2-byte segment of an unseen flow whose frame carries padding after the IP packet:
    the padding byte must not complete a TLS/SSLv2 record start (found by the fuzz target:
    the pure-Python twin read past the segment's end)."""
    tcp = struct.pack("!HHIIBBHHH", 40000, 443, 1, 1, 5 << 4, 0x10, 65535, 0, 0)
    payload = b"\xcf!"
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload), 0, 0, 64, 6, 0,
                     bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
    frame = ip + tcp + payload + b"\x01\x00\x00"                # padding after the packet
    for impl in (c_wire, py_wire):
        flows: dict = {}
        dec = impl.PacketDecoder(228, flows, {})
        assert dec.decode(1.0, frame) is None, impl.__name__
        assert dec.stats()["skip_untracked"] == 1 and flows == {}


def test_decode_int_time_is_a_float_in_both(c_wire, py_wire):
    """An int capture time comes out as a float from both builds (the Cython one converts it
    to ``double``): the summaries' ``start``/``end`` cannot differ in type."""
    ts, frame = golden_frames(1)[0]
    c = new_decoder(c_wire, 1).decode(int(ts), frame)
    p = new_decoder(py_wire, 1).decode(int(ts), frame)
    assert c == p and type(c[0]) is type(p[0]) is float


# Kafka's own vectors (clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java),
# as signed Java ints
KAFKA_MURMUR2 = {b"21": -973932308, b"foobar": -790332482,
                 b"a-little-bit-long-string": -985981536,
                 b"a-little-bit-longer-string": -1486304829,
                 b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
                 b"abc": 479470107}


def test_murmur2_kafka_vectors(wire_impl):
    for key, want in KAFKA_MURMUR2.items():
        assert wire_impl.murmur2(key) == want & 0xFFFFFFFF, key


@FAST
@given(key=st.binary(max_size=80), partitions=st.integers(1, 1000))
def test_kafka_partition_is_kafka_pythons(c_wire, py_wire, key, partitions):
    """The partition is the default partitioner's (kafka-python's pure-Python murmur2)."""
    from kafka.partitioner.default import murmur2
    want = (murmur2(key) & 0x7FFFFFFF) % partitions
    assert c_wire.kafka_partition(key, partitions) == py_wire.kafka_partition(key, partitions) == want


def test_kafka_partition_rejects_no_partitions(wire_impl):
    with pytest.raises(ValueError):
        wire_impl.kafka_partition(b"k", 0)


# ---------------------------------------------------------------------------------------------
# the compiled modules' stubs (cext/*.pyi) describe what they export
# ---------------------------------------------------------------------------------------------

def _stub(name: str) -> dict:
    """``{top-level name: ast node}`` of cext/<name>.pyi (imports re-exported ``as`` count)."""
    import ast
    tree = ast.parse((ROOT / "cext" / (name + ".pyi")).read_text())
    out = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            out[node.name] = node
        elif isinstance(node, ast.AnnAssign):
            out[node.target.id] = node
        elif isinstance(node, ast.Assign):
            out[node.targets[0].id] = node
        elif isinstance(node, ast.ImportFrom):
            out.update((a.asname, node) for a in node.names if a.asname == a.name)
    return out


_SINK_METHODS = {m for m in vars(__import__("cext._tls_py", fromlist=["x"]).Sink)
                  if not m.startswith("_")}


_WIRE_C_METHODS = {"client_hello", "client_hello_key", "server_hello", "certificate"}


def _params(fn) -> list[str]:
    import inspect
    return [p for p in inspect.signature(fn).parameters if p != "self"]


@pytest.mark.parametrize("name,twin", [("_wire", "cext._wire_py"), ("_tls", "cext._tls_py"),
                                       ("_session", "cext._session_py"),
                                       ("_flows", "cext._flows_py"), ("_render", "proto.render")])
def test_stubs_cover_the_compiled_api(c_wire, name, twin):
    import ast
    import importlib
    compiled = importlib.import_module("cext." + name)
    reference = importlib.import_module(twin)
    stub = _stub(name)
    assert set(reference.__all__) <= set(stub), "names missing from cext/%s.pyi" % name
    for attr, node in stub.items():
        if attr == "Segment":                       # a type alias of the stub only
            continue
        assert hasattr(compiled, attr), (name, attr)
        if isinstance(node, ast.FunctionDef):
            assert [a.arg for a in node.args.args] == _params(getattr(compiled, attr)), attr
        if isinstance(node, ast.ClassDef):
            cls, ref = getattr(compiled, attr), getattr(reference, attr)
            methods = {n.name: n for n in node.body if isinstance(n, ast.FunctionDef)}
            # (the reader's event methods and the wire parsers are C methods in the
            # compiled build, not Python ones: cext._tls_py.Sink, cext/_wire.pxd)
            c_only = _SINK_METHODS if attr != "Wire" else _WIRE_C_METHODS
            public = {m for m in dir(ref) if not m.startswith("_") and callable(getattr(ref, m))
                      and m not in c_only}
            assert public <= set(methods), (attr, public - set(methods))
            for m, fn in methods.items():
                assert hasattr(cls, m), (attr, m)
                if m == "__init__" or not any(isinstance(d, ast.Name) and d.id == "property"
                                              for d in fn.decorator_list):
                    want = [a.arg for a in fn.args.args if a.arg != "self"]
                    # (a compiled __init__ is a slot wrapper without a signature: the twin's)
                    assert want == _params(getattr(ref if m == "__init__" else cls, m)), (attr, m)


# ---------------------------------------------------------------------------------------------
# the --jobs partition and merge
# ---------------------------------------------------------------------------------------------

@FAST
@given(st.one_of(st.binary(min_size=12, max_size=12), st.binary(min_size=36, max_size=36)))
def test_key_hash(c_wire, py_wire, key):
    assert c_wire.key_hash(key) == py_wire.key_hash(key)
    # both directions of a connection: one key, so one hash; a 32-bit value
    assert 0 <= py_wire.key_hash(key) < 1 << 32


def test_key_hash_of_other_lengths_is_an_error(c_wire, py_wire):
    for impl in (c_wire, py_wire):
        for n in (0, 11, 13, 35, 37):
            with pytest.raises(ValueError):
                impl.key_hash(bytes(n))


@pytest.mark.parametrize("linktype", (1, 113, 229))
def test_decoder_shares_split_the_connections(c_wire, py_wire, linktype):
    """Three shares of the hashes: each connection's segments come out of exactly one, the one
    its key's hash falls in, the same in both builds, and together they are all of them."""
    frames = golden_frames(linktype)
    space = py_wire.SHARE_SPACE
    cuts = [(0, space // 5), (space // 5, space // 2), (space // 2, space)]

    def segments(impl, share):
        dec = impl.PacketDecoder(linktype, {}, {}, *share)
        return [seg for seg in (dec.decode(ts, f) for ts, f in frames) if seg is not None]

    for impl in (c_wire, py_wire):
        whole = segments(impl, (0, space))
        parts = [segments(impl, share) for share in cuts]
        assert sorted(whole) == sorted(seg for part in parts for seg in part)
        assert all(parts), "a share kept nothing: the test splits nothing"
        for (lo, hi), part in zip(cuts, parts):
            assert all(lo <= py_wire.key_hash(seg[1]) >> 16 < hi for seg in part)
    assert [segments(c_wire, s) for s in cuts] == [segments(py_wire, s) for s in cuts]


def _merge_parts(data, own: bool):
    """Parts for ``write_merged``: ordered keys (majors with repeats, so that ties between
    parts occur), results of any length (empty too), a count of at most all of them."""
    parts = []
    for i in range(data.draw(st.integers(1, 4))):
        keys = sorted(data.draw(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 2),
                                                   st.integers(0, 3)), max_size=40)))
        items = [bytes([97 + i]) * data.draw(st.integers(0, 9)) + b"\n" * (j % 2)
                 for j in range(len(keys))]
        n = data.draw(st.integers(0, len(keys)))
        flat = array.array("q", [x for k in keys for x in k])
        if i == 0 and own:
            parts.append((flat, n, items, None, None))
        else:
            parts.append((flat, n, None, bytearray(b"".join(items)),
                          array.array("Q", map(len, items))))
    return parts


def _written(impl, parts, tmp_path) -> tuple:
    path = tmp_path / ("out-" + impl.__name__)
    with open(path, "wb") as f:
        n = impl.write_merged(f.fileno(), parts)
    return n, path.read_bytes()


@FAST
@given(st.data(), st.booleans())
def test_write_merged(c_wire, py_wire, tmp_path_factory, data, own):
    parts = _merge_parts(data, own)
    tmp = tmp_path_factory.mktemp("merged")
    c, p = _written(c_wire, parts, tmp), _written(py_wire, parts, tmp)
    assert c == p
    # what it must be: every part's first n results, by key, ties to the lower part
    expect = []
    for i, (flat, n, items, blob, lens) in enumerate(parts):
        if items is None:
            at, items = 0, []
            for ln in lens:
                items.append(bytes(blob[at:at + ln]))
                at += ln
        expect += [((flat[3 * j], flat[3 * j + 1], flat[3 * j + 2]), i, items[j])
                   for j in range(n)]
    expect.sort(key=lambda x: x[:2])
    assert p == (len(p[1]), b"".join(x[2] for x in expect))
    for flat, *_rest in parts:
        for low in (0, 1, 7, 21, 1 << 62, 1 << 63, 1 << 64):
            want = sum(1 for j in range(len(flat) // 3) if flat[3 * j] < low)
            assert c_wire.keys_below(flat, low) == py_wire.keys_below(flat, low) == want


@FAST
@given(st.lists(st.binary(max_size=40), max_size=12), st.integers(-1, 13), st.integers(-2, 200),
       st.integers(-1, 250), st.integers(0, 200))
def test_copy_into(c_wire, py_wire, items, start, at, room, size):
    # a --jobs worker's results into its ring: as many as fit, the same bytes, or the same
    # error with nothing copied
    got = []
    for impl in (c_wire, py_wire):
        dest = bytearray(b"\xee" * size)
        try:
            ret = impl.copy_into(dest, at, room, items, start)
        except ValueError:
            ret = "ValueError"
        got.append((ret, bytes(dest)))
    assert got[0] == got[1]
    if not (0 <= start <= len(items) and 0 <= at <= size and room >= 0):
        assert got[0] == ("ValueError", b"\xee" * size)
        return
    cap, stop, blob = min(room, size - at), start, b""
    while stop < len(items) and len(blob) + len(items[stop]) <= cap:
        blob += items[stop]
        stop += 1
    assert got[0] == ((stop, at + len(blob)),
                      b"\xee" * at + blob + b"\xee" * (size - at - len(blob)))


def test_copy_into_refuses_what_is_not_bytes(c_wire, py_wire):
    for impl in (c_wire, py_wire):
        dest = bytearray(8)
        for items in ([b"ab", "cd"], [b"ab", None]):
            with pytest.raises(TypeError):
                impl.copy_into(dest, 0, 8, items, 0)
        for items in ((b"ab",), None):
            with pytest.raises(TypeError):
                impl.copy_into(dest, 0, 8, items, 0)
        assert dest == bytearray(8)
        # (past the room, an item is not looked at)
        assert impl.copy_into(dest, 6, 8, [b"ab", b"toolong", "not looked at"], 0) == (1, 8)


def test_a_shared_count_is_never_seen_half_written(c_wire, py_wire):
    """The --jobs ring's tail: one process writes it while another reads it.  A value that
    carries across bytes (2^56 - 1, 2^56) written over and over is read as one or the other,
    never half of each (struct's "=Q" read ~1 in 5 so here: a worker took a torn tail for
    room it did not have)."""
    import mmap
    import time
    a, b = (1 << 56) - 1, 1 << 56
    for impl in (c_wire, py_wire):
        m = mmap.mmap(-1, 64)
        impl.set_shared_count(m, a)
        pid = os.fork()
        if pid == 0:                # (the writer)
            end = time.monotonic() + 0.3
            while time.monotonic() < end:
                for _ in range(1000):
                    impl.set_shared_count(m, b)
                    impl.set_shared_count(m, a)
            os._exit(0)
        seen, end = set(), time.monotonic() + 0.3
        while time.monotonic() < end:
            seen.add(impl.shared_count(m))
        os.waitpid(pid, 0)
        assert seen <= {a, b} and seen, (impl.__name__, sorted(seen)[:4])
        for short in (bytearray(7), memoryview(bytearray(16))[:7]):
            with pytest.raises(ValueError):
                impl.shared_count(short)
    with pytest.raises(ValueError):         # (the compiled one: an 8-aligned count only)
        c_wire.shared_count(memoryview(bytearray(16))[1:9])


def test_write_merged_many_pieces(c_wire, py_wire, tmp_path):
    # more pieces than one writev takes (1024), alternating between two parts
    n = 5000
    own = array.array("q", [x for j in range(n) for x in (2 * j, 0, 0)])
    theirs = array.array("q", [x for j in range(n) for x in (2 * j + 1, 0, 0)])
    items = [b"%d\n" % (2 * j) for j in range(n)]
    worker = [b"%d\n" % (2 * j + 1) for j in range(n)]
    parts = [(own, n, items, None, None),
             (theirs, n, None, b"".join(worker), array.array("Q", map(len, worker)))]
    want = b"".join(b"%d\n" % j for j in range(2 * n))
    assert _written(c_wire, parts, tmp_path) == _written(py_wire, parts, tmp_path) \
        == (len(want), want)


def test_write_merged_refuses_parts_it_cannot_write(c_wire, py_wire, tmp_path):
    keys = array.array("q", [1, 0, 0, 2, 0, 0])
    bad = [
        ([(keys, 3, [b"a", b"b", b"c"], None, None)], ValueError),     # fewer keys
        ([(keys, 2, [b"a"], None, None)], ValueError),                  # fewer items
        ([(keys, 2, [b"a", "b"], None, None)], TypeError),              # not bytes
        ([(keys, -1, [b"a"], None, None)], ValueError),
        ([(keys, 2, None, b"ab", array.array("Q", [1]))], ValueError),  # fewer lengths
        ([(keys, 2, None, b"a", array.array("Q", [1, 1]))], ValueError),  # less data
    ]
    for impl in (c_wire, py_wire):
        with open(tmp_path / "out", "wb") as f:
            for parts, exc in bad:
                with pytest.raises(exc):
                    impl.write_merged(f.fileno(), parts)
        assert (tmp_path / "out").read_bytes() == b""


def test_write_merged_waits_on_a_full_non_blocking_output_with_the_callers_wait(c_wire, py_wire):
    """A non-blocking pipe fuller than it holds: with the caller's ``wait`` (the core has no
    I/O loop) every byte arrives, in order; without one it is a BlockingIOError."""
    import os
    import threading
    n = 3000
    keys = array.array("q", [x for j in range(n) for x in (j, 0, 0)])
    items = [b"%06d" % j + b"x" * 200 + b"\n" for j in range(n)]
    want = b"".join(items)
    for impl in (c_wire, py_wire):
        rd, wr = os.pipe()
        os.set_blocking(wr, False)
        waits = []
        got = bytearray()

        def drain():
            while chunk := os.read(rd, 65536):
                got.extend(chunk)

        def wait(fd):
            waits.append(fd)
            if len(waits) == 1:
                threading.Thread(target=drain, daemon=True).start()    # the reader comes late
            import select
            p = select.poll()
            p.register(fd, select.POLLOUT)
            p.poll()

        assert impl.write_merged(wr, [(keys, n, items, None, None)], wait) == len(want)
        os.close(wr)
        for _ in range(500):
            if len(got) == len(want):
                break
            threading.Event().wait(0.01)
        os.close(rd)
        assert bytes(got) == want and waits and set(waits) == {wr}
        rd, wr = os.pipe()
        os.set_blocking(wr, False)
        with pytest.raises(BlockingIOError):
            impl.write_merged(wr, [(keys, n, items, None, None)])
        os.close(rd)
        os.close(wr)
