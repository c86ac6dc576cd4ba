"""Chunking does not matter to the TLS reader (h11's ``tr()``), and hostile streams only ever
give events, NEED_DATA or one ProtocolError per direction (STYLE 14-18, 33).

The byte streams are the two reassembled directions of each test capture (read with dpkt),
fed with their original interleaving: segment by segment, whole (runs of one direction
coalesced), byte by byte, and in random splits, through the reader of each build.
"""
from __future__ import annotations

import pytest
from conftest import (capture_paths, golden_messages, load_engine, mutations, split_records,
                      stream_bytes, tcp_segments)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cext import events as tls_events
from cext.errors import REASONS, ProtocolError
from cext.events import (MAX_BUFFER, MAX_HANDSHAKE, NEED_DATA, Certificate, ClientHello,
                         EncryptedRecord, HandshakeMessage)

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PATHS = capture_paths()
IDS = [p.stem for p in PATHS]


def feed_events(engine, chunks) -> list:
    """``feed()`` API: events in order, errors as ``("error", direction, reason)``."""
    conn = engine.connection()
    out: list = []
    for d, data in chunks:
        events, error = conn.feed(d, data)
        out.extend(events)
        if error is not None:
            out.append(("error", d, error.reason))
    return out


def next_event_events(engine, chunks) -> list:
    """h11 API: ``receive_data`` then ``next_event`` until NEED_DATA after every chunk."""
    conn = engine.connection()
    out: list = []
    for d, data in chunks:
        conn.receive_data(d, data)
        while True:
            try:
                ev = conn.next_event()
            except ProtocolError as exc:
                out.append(("error", exc.reason))
                continue
            if ev is NEED_DATA:
                break
            out.append(ev)
    assert conn.next_event() is NEED_DATA
    return out


def coalesced(segs):
    out: list = []
    for d, p in segs:
        if out and out[-1][0] == d:
            out[-1] = (d, out[-1][1] + p)
        else:
            out.append((d, p))
    return out


def bytewise(segs):
    return [(d, p[i:i + 1]) for d, p in segs for i in range(len(p))]


def split_at(segs, cuts):
    """Split every segment at the (relative) cut points drawn for it."""
    out = []
    for (d, p), points in zip(segs, cuts):
        last = 0
        for c in sorted({c % (len(p) + 1) for c in points}):
            out.append((d, p[last:c]))
            last = c
        out.append((d, p[last:]))
    return out


@pytest.fixture(scope="module")
def reference():
    """Events of every capture, segment by segment, with the pure-Python core."""
    py = load_engine("py")
    return {p.stem: feed_events(py, tcp_segments(p)) for p in PATHS}


def test_reference_events_are_real(reference):
    """The reference streams parse without error into the handshakes the captures hold."""
    for name, events in reference.items():
        assert not any(isinstance(e, tuple) and e and e[0] == "error" for e in events), name
        kinds = [type(e).__name__ for e in events]
        assert kinds[0] == "ClientHello", (name, kinds)
        if name.startswith("alert"):
            assert "Alert" in kinds and "ServerHello" not in kinds, (name, kinds)
        else:
            assert "ServerHello" in kinds and "EncryptedRecord" in kinds, (name, kinds)
    assert "HelloRetryRequest" in [type(e).__name__ for e in reference["tls13_hrr"]]
    certs = [e for e in reference["tls12_rsa_chain3"] if isinstance(e, Certificate)]
    assert len(certs) == 1 and len(certs[0].certificates) == 3


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_whole_segmented_and_bytewise_agree(engine_impl, reference, path):
    segs = tcp_segments(path)
    want = reference[path.stem]
    assert feed_events(engine_impl, segs) == want
    assert feed_events(engine_impl, coalesced(segs)) == want
    assert feed_events(engine_impl, bytewise(segs)) == want
    got = next_event_events(engine_impl, bytewise(segs))
    assert got == want


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_trailing_garbage_after_the_stream(engine_impl, reference, path):
    """h11's tr() third leg: extra bytes after the stream never change the events before
    them (they may add an error or more events, never rewrite history)."""
    segs = coalesced(tcp_segments(path))
    want = reference[path.stem]
    got = feed_events(engine_impl, segs + [(0, b"\x00\xff" * 8), (1, b"\x63" * 9)])
    assert got[:len(want)] == want


@SETTINGS
@given(data=st.data())
def test_random_splits_give_the_same_events(engine_impl, reference, data):
    path = data.draw(st.sampled_from(PATHS), label="capture")
    segs = tcp_segments(path)
    cuts = [data.draw(st.lists(st.integers(0, 1 << 16), max_size=6)) for _ in segs]
    chunks = split_at(segs, cuts)
    assert feed_events(engine_impl, chunks) == reference[path.stem]
    assert next_event_events(engine_impl, chunks) == reference[path.stem]


# ---------------------------------------------------------------------------------------------
# hostile streams
# ---------------------------------------------------------------------------------------------

def assert_only_events_or_one_error_per_direction(engine, chunks):
    """next_event() yields events, NEED_DATA, or a ProtocolError with a reason in REASONS -
    at most once per direction; after it, that direction is in ERROR and stays silent."""
    conn = engine.connection()
    errors = 0
    dirs = {d for d, _ in chunks}
    for d, data in chunks:
        conn.receive_data(d, data)
        while True:
            try:
                ev = conn.next_event()
            except ProtocolError as exc:
                assert exc.reason in REASONS, exc.reason
                errors += 1
                continue
            if ev is NEED_DATA:
                break
            assert type(ev).__name__ in tls_events.__all__, ev
            assert ev.direction == d
    assert errors <= len(dirs)
    broken = [d for d in (0, 1) if conn.state(d) == "ERROR"]
    assert len(broken) == errors
    for d in broken:                   # a failed direction ignores further data
        events, error = conn.feed(d, b"\x16\x03\x01\x00\x04\x01\x00\x00\x00")
        assert list(events) == [] and error is None
    return errors


CHUNK = st.tuples(st.integers(0, 1), st.binary(min_size=1, max_size=64))


@SETTINGS
@given(chunks=st.lists(CHUNK, max_size=30))
def test_random_garbage(engine_impl, chunks):
    assert_only_events_or_one_error_per_direction(engine_impl, chunks)


RECORD_HEAD = st.tuples(st.sampled_from((20, 21, 22, 23, 24, 25, 63, 0x80, 0x16)),
                        st.sampled_from((0x0300, 0x0301, 0x0303, 0x0304, 0x0305, 0x0200)),
                        st.binary(max_size=80))


@SETTINGS
@given(records=st.lists(st.tuples(st.integers(0, 1), RECORD_HEAD), max_size=20),
       lie=st.integers(-3, 3))
def test_plausible_records(engine_impl, records, lie):
    """Streams of well-formed-looking record headers around random handshake bytes (deeper
    than pure noise), with record lengths off by ``lie`` bytes."""
    chunks = []
    for d, (ct, ver, body) in records:
        ln = max(len(body) + lie, 0)
        chunks.append((d, bytes([ct]) + ver.to_bytes(2, "big") + ln.to_bytes(2, "big") + body))
    assert_only_events_or_one_error_per_direction(engine_impl, chunks)


@SETTINGS
@given(st.data(), mutations())
def test_mutated_real_streams(engine_impl, data, mutate):
    path = data.draw(st.sampled_from(PATHS), label="capture")
    segs = coalesced(tcp_segments(path))
    i = data.draw(st.integers(0, len(segs) - 1), label="segment")
    segs[i] = (segs[i][0], mutate(segs[i][1]))
    assert_only_events_or_one_error_per_direction(engine_impl, segs)


@SETTINGS
@given(st.data(), mutations())
def test_mutated_hellos_in_records(engine_impl, data, mutate):
    """A mutated real ClientHello / ServerHello / Certificate inside correct record and
    handshake framing reaches the parsers (not just the framer)."""
    g = golden_messages()
    kind = data.draw(st.sampled_from(((1, 0, "client_hello"), (2, 1, "server_hello"),
                                      (11, 1, "certificate"))))
    mt, d, name = kind
    body = data.draw(st.sampled_from(g[name]))
    body = mutate(body[0] if isinstance(body, tuple) else body)
    hs = bytes([mt]) + len(body).to_bytes(3, "big") + body
    recs = b"".join(b"\x16\x03\x03" + len(hs[i:i + 16384]).to_bytes(2, "big") + hs[i:i + 16384]
                    for i in range(0, len(hs), 16384))
    chunks = [(d, recs)]
    if d == 1:                         # a ServerHello / Certificate answers a ClientHello
        ch = g["client_hello"][0]
        chunks.insert(0, (0, b"\x16\x03\x01" + (len(ch) + 4).to_bytes(2, "big") + b"\x01"
                          + len(ch).to_bytes(3, "big") + ch))
    assert_only_events_or_one_error_per_direction(engine_impl, chunks)


def test_malformed_client_hello_gives_vector_overrun(engine_impl):
    ch = golden_messages()["client_hello"][0]
    bad = ch[:35] + b"\xff" + ch[36:]               # session id length 255 > what follows
    hs = b"\x01" + len(bad).to_bytes(3, "big") + bad
    events = feed_events(engine_impl, [(0, b"\x16\x03\x01" + len(hs).to_bytes(2, "big") + hs)])
    # issue 15: the ClientHello is still reported (as a handshake message: its fields do not
    # parse), so that the connection is summarized, then the error that names what was wrong
    assert events == [HandshakeMessage(0, 1, len(bad)), ("error", 0, "vector_overrun")]


def test_record_overflow_and_handshake_cap(engine_impl):
    assert feed_events(engine_impl, [(1, b"\x17\x03\x03\xff\xff")]) == \
        [("error", 1, "record_overflow")]
    conn = engine_impl.connection(max_handshake=100)
    events, err = conn.feed(0, b"\x16\x03\x03\x00\x04\x01\x00\x01\x00")
    assert events == [] and err.reason == "handshake_too_long"


def test_incomplete_input_is_need_data(engine_impl):
    """Short input is not bad input: every proper prefix of a ClientHello record is
    NEED_DATA, and the whole record is one ClientHello."""
    ch = golden_messages()["client_hello"][0]
    rec = b"\x16\x03\x01" + (len(ch) + 4).to_bytes(2, "big") + b"\x01" \
        + len(ch).to_bytes(3, "big") + ch
    for n in range(1, len(rec)):
        conn = engine_impl.connection()
        conn.receive_data(0, rec[:n])
        assert conn.next_event() is NEED_DATA, n
    conn = engine_impl.connection()
    conn.receive_data(0, rec)
    ev = conn.next_event()
    assert isinstance(ev, ClientHello) and conn.next_event() is NEED_DATA


def test_error_raised_once_after_earlier_events(engine_impl):
    ch = golden_messages()["client_hello"][0]
    rec = b"\x16\x03\x01" + (len(ch) + 4).to_bytes(2, "big") + b"\x01" \
        + len(ch).to_bytes(3, "big") + ch
    conn = engine_impl.connection()
    conn.receive_data(0, rec + b"\x16\x07\x07\x00\x00")
    assert isinstance(conn.next_event(), ClientHello)
    with pytest.raises(ProtocolError) as exc:
        conn.next_event()
    assert exc.value.reason == "bad_record_version"
    assert conn.next_event() is NEED_DATA
    conn.receive_data(0, rec)
    assert conn.next_event() is NEED_DATA and conn.state(0) == "ERROR"


# ---------------------------------------------------------------------------------------------
# bounded buffering
# ---------------------------------------------------------------------------------------------

def test_handshake_message_above_cap_is_refused_at_once(engine_impl):
    """A handshake header announcing 16 MB: refused on the header, nothing buffered."""
    conn = engine_impl.connection()
    events, err = conn.feed(0, b"\x16\x03\x01\x00\x04\x01\xff\xff\xff")
    assert list(events) == [] and err.reason == "handshake_too_long"
    assert conn.buffered() == 0


def test_large_handshake_message_buffer_stays_bounded(engine_impl):
    """A 1 MB - 1 certificate message in 16 KB records: buffered bytes never exceed the
    per-direction cap, the message is delivered once complete (as a Certificate event)."""
    n = MAX_HANDSHAKE - 1
    der = b"\x30" + bytes(n - 6 - 1)
    body = (len(der) + 3).to_bytes(3, "big") + len(der).to_bytes(3, "big") + der
    assert len(body) == n
    hs = b"\x0b" + n.to_bytes(3, "big") + body
    recs = [b"\x16\x03\x03" + len(hs[i:i + 16384]).to_bytes(2, "big") + hs[i:i + 16384]
            for i in range(0, len(hs), 16384)]
    conn = engine_impl.connection()
    got = []
    for r in recs:
        events, err = conn.feed(1, r)
        assert err is None
        got += events
        assert conn.buffered() <= MAX_BUFFER
    assert [type(e).__name__ for e in got] == ["Certificate"]
    assert got[0].certificates == (der,)
    assert conn.buffered() == 0


def test_handshake_in_one_byte_records_is_read_once(engine_impl):
    """A real server's handshake (ServerHello, a 3-certificate chain ... NewSessionTicket) in
    records of one byte each gives the events of its original records -- and while a message
    is still short, a fragment is only kept: the bytes held so far are not copied again per
    record, nor kept as an object each.  (They were: a 1 MiB message in 1-byte records, 6 MB
    on the wire, took 12 s of CPU in the compiled build.)"""
    path = next(p for p in PATHS if p.stem == "tls12_rsa_chain3")
    server = stream_bytes(path)[1]
    recs = split_records(server)
    flight = b"".join(f for ct, f in recs[:5])
    assert [ct for ct, f in recs[:5]] == [22] * 5 and recs[5][0] == 20
    want = feed_events(engine_impl, [(1, b"".join(b"\x16\x03\x03" + len(f).to_bytes(2, "big")
                                                  + f for ct, f in recs[:5]))])
    assert [type(e).__name__ for e in want] == ["ServerHello", "Certificate",
                                                "ServerKeyExchange", "HandshakeMessage",
                                                "HandshakeMessage"]
    tiny = [b"\x16\x03\x03\x00\x01" + flight[i:i + 1] for i in range(len(flight))]
    conn = engine_impl.connection()
    got, held = [], None
    cert_at = len(recs[0][1])                       # the Certificate message's first byte
    for i, rec in enumerate(tiny):
        events, err = conn.feed(1, rec)
        assert err is None
        got += events
        if cert_at + 4 <= i < cert_at + 4000:       # its header read, the message short
            d = conn.dirs[1]
            if held is None:
                held = d.hs_more
            assert d.hs_more is held and len(d.hs) == 4, i     # appended to, not joined again
            assert conn.buffered() == len(held) == i + 1 - cert_at
    assert got == want
    assert conn.buffered() == 0


def test_ciphertext_is_not_buffered(engine_impl):
    """After a TLS 1.2 ChangeCipherSpec, 1 MB of application data in odd-sized chunks
    leaves at most a record header buffered."""
    rec = b"\x17\x03\x03\x40\x00" + bytes(0x4000)
    stream = b"\x14\x03\x03\x00\x01\x01" + rec * 64
    conn = engine_impl.connection()
    n = 0
    for i in range(0, len(stream), 1000):
        events, err = conn.feed(0, stream[i:i + 1000])
        assert err is None
        n += sum(isinstance(e, EncryptedRecord) for e in events)
        assert conn.buffered() < 5
    assert n == 64


# ---------------------------------------------------------------------------------------------
# SSLv2-framed hellos
# ---------------------------------------------------------------------------------------------

def sslv2_client_hello(version=0x0301, specs=(0x010080, 0x00002F, 0x000035), sid=b"",
                       challenge=b"\x11" * 16) -> bytes:
    cs = b"".join(s.to_bytes(3, "big") for s in specs)
    body = bytes([1]) + version.to_bytes(2, "big") + len(cs).to_bytes(2, "big") \
        + len(sid).to_bytes(2, "big") + len(challenge).to_bytes(2, "big") + cs + sid + challenge
    return (0x8000 | len(body)).to_bytes(2, "big") + body


def sslv2_server_hello(cert=b"\x30\x03\x02\x01\x05", specs=(0x010080,)) -> bytes:
    cs = b"".join(s.to_bytes(3, "big") for s in specs)
    conn_id = b"\x22" * 16
    body = bytes([4, 0, 1]) + (2).to_bytes(2, "big") + len(cert).to_bytes(2, "big") \
        + len(cs).to_bytes(2, "big") + len(conn_id).to_bytes(2, "big") + cert + cs + conn_id
    return (0x8000 | len(body)).to_bytes(2, "big") + body


def _v3_server_flight() -> bytes:
    sh = golden_messages()["server_hello"][0]
    hs = b"\x02" + len(sh).to_bytes(3, "big") + sh
    return b"\x16\x03\x03" + len(hs).to_bytes(2, "big") + hs + b"\x14\x03\x03\x00\x01\x01"


SSLV2_STREAMS = {
    "v2_hello_v3_answer": [(0, sslv2_client_hello()), (1, _v3_server_flight()),
                           (0, b"\x14\x03\x01\x00\x01\x01" + b"\x17\x03\x01\x00\x20" + bytes(32))],
    "v2_both": [(0, sslv2_client_hello(version=2)), (1, sslv2_server_hello()),
                (0, b"\x80\x21" + bytes(33))],
}


@pytest.mark.parametrize("name", sorted(SSLV2_STREAMS))
def test_sslv2_hellos(engine_impl, name):
    segs = SSLV2_STREAMS[name]
    want = feed_events(engine_impl, segs)
    kinds = [type(e).__name__ for e in want]
    assert kinds[0] == "ClientHello" and want[0].sslv2 is True
    assert want[0].cipher_suites == (0x010080, 0x00002F, 0x000035)
    assert "ServerHello" in kinds and not any(isinstance(e, tuple) and e[0] == "error"
                                              for e in want)
    if name == "v2_both":
        assert want[1].sslv2 is True and want[1].cipher_suite == 0x010080
        assert [type(e).__name__ for e in want[2:]] == ["Certificate", "EncryptedRecord"]
    assert feed_events(engine_impl, bytewise(segs)) == want
    assert next_event_events(engine_impl, bytewise(segs)) == want


@SETTINGS
@given(st.data())
def test_sslv2_random_splits(engine_impl, data):
    segs = SSLV2_STREAMS[data.draw(st.sampled_from(sorted(SSLV2_STREAMS)))]
    cuts = [data.draw(st.lists(st.integers(0, 1 << 16), max_size=4)) for _ in segs]
    assert feed_events(engine_impl, split_at(segs, cuts)) == feed_events(engine_impl, segs)


@SETTINGS
@given(st.data(), mutations())
def test_sslv2_mutated(engine_impl, data, mutate):
    segs = list(SSLV2_STREAMS[data.draw(st.sampled_from(sorted(SSLV2_STREAMS)))])
    i = data.draw(st.integers(0, len(segs) - 1))
    segs[i] = (segs[i][0], mutate(segs[i][1]))
    assert_only_events_or_one_error_per_direction(engine_impl, segs)


def test_starttls_preamble_is_skipped(engine_impl, reference):
    """SMTP before STARTTLS, each line its own segment (as the protocol's turn-taking makes
    it): the plaintext is counted and skipped, the TLS that follows reads as without it."""
    path = next(p for p in PATHS if p.stem == "tls12_rsa_chain3")
    pre = [(1, b"220 mx.example.com ESMTP\r\n"), (0, b"EHLO client\r\n"),
           (1, b"250-mx.example.com\r\n250 STARTTLS\r\n"), (0, b"STARTTLS\r\n"),
           (1, b"220 2.0.0 Ready to start TLS\r\n")]
    conn = engine_impl.connection()
    got = []
    for d, data in pre + list(tcp_segments(path)):
        events, err = conn.feed(d, data)
        assert err is None
        got += events
    assert got == reference[path.stem]
    assert conn.plaintext() == sum(len(p) for _d, p in pre)
