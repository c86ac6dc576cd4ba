"""The compiled per-segment engine against its pure-Python twin, in one process.

``cext._tls``, ``cext._session`` and ``cext._flows`` are ``cext/_*_py.py`` compiled by Cython
with the static types of ``cext/_*.pxd``.  Here both engines -- each with its own wire
module (``cext._wire`` / ``cext._wire_py``) -- read the same frames, real and hostile, and
must give byte-identical summaries (msgpack and JSON), the same counters and the same TLS
events.
"""
from __future__ import annotations

import random

import pytest
from conftest import (LINKTYPES, NO_EXTENSIONS, capture_paths, fuzz_target, golden_frames,
                      mutations, read_frames)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.c_extension        # every test here needs both implementations

SLOW = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


FUZZ = fuzz_target()        # its flow_summaries / tls_events run one engine


@pytest.fixture(scope="module")
def engines():
    if len(FUZZ.ENGINES) < 2:
        if NO_EXTENSIONS:
            pytest.skip("the compiled engine is not built and TLSDIAG_NO_EXTENSIONS is set")
        pytest.fail("the compiled engine (cext._tls, cext._flows) is not built: pip install -e .")
    py, c = FUZZ.ENGINES
    return c, py


def assert_agree(engines, linktype, frames, **limits) -> tuple:
    """Both engines on the same frames (an internal error in either raises)."""
    c, py = (FUZZ.flow_summaries(e, linktype, frames, **limits) for e in engines)
    assert c[0] == py[0], "summaries differ"
    assert c[1:] == py[1:], "counters differ"
    return py


def events(engine, chunks) -> list:
    return FUZZ.tls_events(engine, chunks)


def test_compiled_engine_is_compiled(engines):
    c, py = engines
    assert all(m.__file__.endswith(".so")
               for m in (c.wire, c.tls, c.session, c.flows, c.render, c.encap))
    assert [m.__name__ for m in py[1:]] == ["cext._wire_py", "cext._tls_py",
                                            "cext._session_py", "cext._flows_py", "proto.render",
                                            "cext._encap_py"]
    # the static types took effect: the compiled classes are extension types with fixed
    # attributes (the twin's TLSConnection takes any)
    with pytest.raises(AttributeError):
        c.connection().no_such_attribute = 1
    with pytest.raises(AttributeError):
        c.flow_table().no_such_attribute = 1
    py.connection().no_such_attribute = 1


def test_a_mixed_engine_fails_at_construction(engines):
    """The compiled table holds the compiled reader and session as C types: handed the
    twin's, it refuses at once (not per packet, inside its guard)."""
    c, py = engines
    with pytest.raises(TypeError):
        c.flows.FlowTable(py)
    with pytest.raises(TypeError):
        c.flows.FlowTable(c._replace(session=py.session))


def test_events_are_shared_by_both_builds(engines):
    """Both readers build the events of cext.events: the session record dispatches on
    one set of classes whichever reader made them."""
    from cext import events
    for e in engines:
        assert e.tls.ClientHello is events.ClientHello
        assert e.tls.NEED_DATA is events.NEED_DATA


@pytest.mark.parametrize("path", capture_paths(), ids=lambda p: p.name)
def test_every_test_capture_agrees(engines, path):
    linktype, frames = read_frames(path)
    out, stats, _reasons, _dec = assert_agree(engines, linktype, frames)
    assert out and stats["summaries"] == len(out)


@pytest.mark.parametrize("path", capture_paths(), ids=lambda p: p.name)
def test_live_batches_give_what_frame_by_frame_gives(engines, path):
    """The fuzz target's live-capture walk (pcapy-ng batches: ``begin_batch`` /
    ``FlowTable.decoded``, the sensor's path) gives, in each build and for batches of 1, 4
    and 8 frames, the summaries and counters of the frames handed over one by one; with
    descriptors that lie (an offset or a length past the buffer), both builds agree and
    count those frames as malformed."""
    linktype, frames = read_frames(path)
    frames = [f for _ts, f in frames]
    timed = [(1_000 + i // 8 + (i % 8) * 0.125, f) for i, f in enumerate(frames)]
    for engine in engines:
        want = FUZZ.flow_summaries(engine, linktype, timed)
        for arg in (0x00, 0x03, 0x07):
            assert FUZZ.batch_summaries(engine, linktype, frames, arg) == want
    c, py = (FUZZ.batch_summaries(e, linktype, frames, 0x45) for e in engines)
    assert c == py
    lying = sum(1 for k in range(len(frames)) if k % 3 == 2 and k % 2)
    assert py[3]["malformed_l3"] >= lying > 0 or len(frames) < 6


@pytest.mark.parametrize("linktype", LINKTYPES)
def test_all_link_types_agree(engines, linktype):
    out = assert_agree(engines, linktype, golden_frames(linktype))[0]
    assert len(out) >= len(capture_paths())       # every capture's connection at least once


@pytest.mark.parametrize("seed", range(4))
def test_reordered_duplicated_and_dropped_frames_agree(engines, seed):
    """Out-of-order delivery, retransmissions and holes through tight limits: the
    reassembly, gap and eviction paths."""
    rng = random.Random(seed)
    frames = list(golden_frames(1))
    for i in range(0, len(frames) - 4, 3):
        if rng.random() < 0.3:
            frames[i], frames[i + 2] = frames[i + 2], frames[i]
    frames = [f for f in frames if rng.random() > 0.05]
    frames += [frames[rng.randrange(len(frames))] for _ in range(len(frames) // 10)]
    assert_agree(engines, 1, frames, max_flows=4, max_ooo_segments=2, max_ooo_bytes=3000,
                 max_done=8, idle_timeout=0.05, close_linger=0.01, skip_min=512)


@SLOW
@given(st.data(), st.lists(mutations(), min_size=1, max_size=8))
def test_mutated_frames_agree(engines, data, mutators):
    pool = golden_frames(1)
    start = data.draw(st.integers(0, len(pool) - 1))
    frames = list(pool[start:start + 40])
    for m in mutators:
        i = data.draw(st.integers(0, len(frames) - 1))
        frames[i] = (frames[i][0], m(frames[i][1]))
    assert_agree(engines, 1, frames)


@SLOW
@given(st.lists(st.tuples(st.integers(0, 1), st.binary(max_size=300)), max_size=12))
def test_random_streams_give_the_same_events(engines, chunks):
    c, py = engines
    assert events(c, chunks) == events(py, chunks)


@SLOW
@given(st.data())
def test_stream_splits_give_the_same_events(engines, data):
    """A real connection's bytes cut at arbitrary points, with a byte flipped."""
    path = data.draw(st.sampled_from(capture_paths()))
    import conftest
    segs = conftest.tcp_segments(path)
    chunks = []
    for d, payload in segs:
        cut = data.draw(st.integers(0, len(payload)))
        chunks += [(d, payload[:cut]), (d, payload[cut:])]
    if data.draw(st.booleans()) and chunks:
        i = data.draw(st.integers(0, len(chunks) - 1))
        d, p = chunks[i]
        if p:
            j = data.draw(st.integers(0, len(p) - 1))
            chunks[i] = (d, p[:j] + bytes([p[j] ^ 0x5A]) + p[j + 1:])
    c, py = engines
    assert events(c, chunks) == events(py, chunks)
