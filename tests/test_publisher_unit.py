"""The sensor's publisher without a broker: its sender state machine (``Publisher._step``)
driven round by round with a fake producer (tests/fake_kafka.py's futures) and a fake clock,
so outages, stalls and delivery timeouts take no real time.  tests/test_publisher.py does the
same against a real broker (outage included) and remains the reference for Kafka itself."""
from __future__ import annotations

import logging
import struct
import threading
import types
from typing import Any

import pytest
from kafka.errors import (KafkaTimeoutError, MessageSizeTooLargeError,
                          TopicAuthorizationFailedError)

try:
    from tests.fake_kafka import FakeFuture
    from tests.test_publisher import PCAPS, _numbered, summaries_of
except ImportError:
    from fake_kafka import FakeFuture
    from test_publisher import PCAPS, _numbered, summaries_of

import sensor.publisher as P
from cext.wire import kafka_partition
from proto.summary import decode_certificate, decode_summary
from sensor.publisher import Publisher, PublisherConfig, SenderState
from sensor.spool import Spool


class Clock:
    """``time.monotonic`` / ``time.sleep`` of the publisher module: sleeping advances it."""

    def __init__(self) -> None:
        self.t = 1000.0

    def monotonic(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(P, "time", types.SimpleNamespace(monotonic=c.monotonic, sleep=c.sleep))
    return c


class Broker:
    """What the fake producers talk to.  ``reachable`` False: creating a producer raises (as
    kafka-python does when no broker answers); ``up`` False: sends are accepted but never acknowledged
    until it is up again (then in send order); ``raise_after``: that many more sends succeed,
    then ``send`` raises (a full buffer, a metadata timeout)."""

    def __init__(self, partitions: int = 3) -> None:
        self.partitions = partitions
        self.reachable = True
        self.up = True
        self.raise_after: int | None = None
        self.delivered: list[tuple[str, bytes, bytes, int | None]] = []
        # sent, not acknowledged: (future, record, the producer that holds it)
        self.pending: list[tuple[FakeFuture, tuple[str, bytes, bytes, int | None], Any]] = []
        self.producers: list[FakeProducer] = []
        self.lock = threading.Lock()
        self.gate: threading.Event | None = None      # set: send() waits for it
        self.in_send = threading.Event()

    def factory(self) -> FakeProducer:
        if not self.reachable:
            # what KafkaProducer() raises when no bootstrap server answers (kafka-python 3)
            raise KafkaTimeoutError("Unable to bootstrap from fake:9092")
        p = FakeProducer(self)
        self.producers.append(p)
        return p

    def set_up(self, up: bool) -> None:
        with self.lock:
            self.up = up
            if up:
                for fut, rec, producer in self.pending:
                    if not producer.closed:       # a closed producer's sends are lost
                        fut.ack()
                        self.delivered.append(rec)
                self.pending = []

    def summaries(self) -> list[str]:
        """The delivered summaries' ids, in delivery order."""
        return [decode_summary(v)["id"] for t, _, v, _ in self.delivered if t == "h"]


class FakeProducer:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.closed = False

    def partitions_for(self, topic):
        return set(range(self.broker.partitions))

    def send(self, topic, key=None, value=None, partition=None):
        b = self.broker
        if b.gate is not None:
            b.in_send.set()
            b.gate.wait(10)
        with b.lock:
            if b.raise_after is not None:
                if b.raise_after == 0:
                    raise KafkaTimeoutError("Failed to allocate memory within the configured "
                                            "max blocking time")
                b.raise_after -= 1
            rec = (topic, key, value, partition)
            if b.up:
                b.delivered.append(rec)
                return FakeFuture()
            fut = FakeFuture(done=False)
            b.pending.append((fut, rec, self))
            return fut

    def flush(self, timeout=None):
        pass

    def close(self, timeout=None, null_logger=False):
        self.closed = True


@pytest.fixture(scope="module")
def raws():
    return _numbered(summaries_of(PCAPS[:3]), 400)


@pytest.fixture(scope="module")
def with_certs():
    return [(raw, certs) for raw, certs in summaries_of(PCAPS) if certs]


def make(tmp_path, broker: Broker, **kw) -> Publisher:
    cfg = PublisherConfig(bootstrap="fake:9092", spool_dir=str(tmp_path / "spool"),
                          topic_handshakes="h", topic_certs="c",
                          **{"stall_s": 1.0, "probe_interval": 2.0, **kw})
    return Publisher(cfg, producer_factory=broker.factory)


def rounds(pub: Publisher, n: int = 1) -> list[SenderState]:
    """``n`` rounds of the sender (on this thread); the state of each."""
    out = []
    for _ in range(n):
        pub._step()
        out.append(pub.state)
    return out


def until(pub: Publisher, pred, limit: int = 50) -> list[SenderState]:
    out = []
    for _ in range(limit):
        if pred():
            return out
        out += rounds(pub)
    raise AssertionError("not reached in %d rounds: %s" % (limit, pub.stats()))


def test_online_sends_in_order_certificates_once_kafkas_partition(tmp_path, clock, with_certs):
    b = Broker()
    pub = make(tmp_path, b)
    items = with_certs[:12]
    for raw, certs in items:
        pub.publish(raw, certs)
    assert rounds(pub, 2) == [SenderState.OFFLINE, SenderState.ONLINE]   # connect, send
    until(pub, lambda: not pub._queue and not pub._unacked)
    assert b.summaries() == [raw["id"] for raw, _ in items]
    certs = [(k, decode_certificate(v)) for t, k, v, _ in b.delivered if t == "c"]
    digests = {c[0] for _, cs in items for c in cs}
    assert sorted(k for k, _ in certs) == sorted(d.hex().encode() for d in digests)  # once each
    for k, (sha, _, _) in certs:
        assert k == sha.hex().encode()
    for topic, key, value, part in b.delivered:
        assert part == kafka_partition(key, 3)
        if topic == "h":
            assert key.decode() == decode_summary(value)["server"]
    # each certificate before the first summary that refers to it
    pos = {k: i for i, (t, k, _, _) in enumerate(b.delivered) if t == "c"}
    for i, (t, _, v, _) in enumerate(b.delivered):
        if t == "h":
            assert all(pos[d.hex().encode()] < i for d in decode_summary(v)["certificates"])
    st = pub.stats()
    assert st["online"] == 1 and st["acked"] == len(b.delivered) and st["spooled"] == 0
    assert st["published"] == len(items) and st["certs_published"] == len(digests)


def test_stall_spools_then_replays_in_order_before_newer_messages(tmp_path, clock, raws):
    """Sent but unacknowledged for stall_s: new messages go to the spool.  Kafka back: what
    was in flight is acknowledged, the spool is replayed, then the queue -- one order."""
    b = Broker()
    pub = make(tmp_path, b)
    ids = [r["id"] for r in raws[:60]]
    for raw in raws[:10]:
        pub.publish(raw, [])
    until(pub, lambda: len(b.delivered) == 10)
    b.set_up(False)
    for raw in raws[10:20]:
        pub.publish(raw, [])
    until(pub, lambda: len(b.pending) == 10)              # in flight, not acknowledged
    assert pub.state == SenderState.ONLINE and pub._unacked >= 10
    clock.sleep(1.5)                                      # past stall_s
    for raw in raws[20:45]:
        pub.publish(raw, [])
    assert rounds(pub) == [SenderState.STALLED]
    assert not pub.online and len(pub.spool) == 25 and not pub._queue
    for raw in raws[45:50]:
        pub.publish(raw, [])
    rounds(pub)
    assert len(pub.spool) == 30
    for raw in raws[50:60]:                               # queued when Kafka comes back
        pub.publish(raw, [])
    b.set_up(True)
    # the spooled ones go out before the queue
    states = until(pub, lambda: not pub._queue and not len(pub.spool) and not pub._unacked)
    assert states[0] == SenderState.REPLAYING and SenderState.ONLINE in states
    assert states.index(SenderState.ONLINE) > states.index(SenderState.REPLAYING)
    assert b.summaries() == ids
    st = pub.stats()
    assert st["spooled"] == 30 and st["spool_replayed"] == 30 and st["acked"] == 60
    assert st["online"] == 1 and st["spool_dropped"] == 0


def test_a_send_that_raises_spools_the_rest_and_waits_for_the_in_flight(tmp_path, clock, raws):
    """send() raising mid-run (full buffer, metadata timeout): the rest of the run is spooled;
    while what was sent before is unacknowledged the sender drains (queue -> spool) rather than
    replaying, so the replay cannot overtake it."""
    b = Broker()
    pub = make(tmp_path, b)
    rounds(pub)                                           # producer created
    b.set_up(False)
    b.raise_after = 3
    for raw in raws[:8]:
        pub.publish(raw, [])
    assert rounds(pub) == [SenderState.ONLINE]
    assert pub._unacked == 3 and len(pub.spool) == 5 and not pub.online
    b.raise_after = None
    for raw in raws[8:12]:
        pub.publish(raw, [])
    assert rounds(pub) == [SenderState.DRAINING]
    assert len(pub.spool) == 9 and pub._unacked == 3
    b.set_up(True)
    until(pub, lambda: not len(pub.spool) and not pub._unacked and not pub._queue)
    assert b.summaries() == [r["id"] for r in raws[:12]]
    assert pub.stats()["send_errors"] == 1


def test_no_broker_spools_and_logs_the_reason_once(tmp_path, clock, raws, caplog):
    b = Broker()
    b.reachable = False
    pub = make(tmp_path, b, probe_interval=2.0)
    caplog.set_level(logging.DEBUG, logger="sensor.publisher")
    for k in range(3):                                    # three failed attempts
        for raw in raws[k * 10:k * 10 + 10]:
            pub.publish(raw, [])
        assert rounds(pub) == [SenderState.OFFLINE]
        clock.sleep(2.0)
    assert len(pub.spool) == 30 and pub.stats()["online"] == 0
    failures = [r for r in caplog.records if "producer" in r.getMessage()]
    assert [r.levelno for r in failures] == [logging.WARNING, logging.DEBUG, logging.DEBUG]
    assert "Unable to bootstrap" in failures[0].getMessage()
    assert "fake:9092" in failures[0].getMessage()
    b.reachable = True
    caplog.clear()
    until(pub, lambda: not len(pub.spool) and not pub._unacked)
    assert b.summaries() == [r["id"] for r in raws[:30]]
    b.reachable = False                                   # a new outage: logged again
    pub._close_producer()
    clock.sleep(2.0)
    rounds(pub)
    assert [r.levelno for r in caplog.records if "create a Kafka producer" in r.getMessage()] \
        == [logging.WARNING]


def test_stalled_past_the_delivery_timeout_abandons_the_producer(tmp_path, clock, raws):
    b = Broker()
    pub = make(tmp_path, b, delivery_timeout_ms=10_000)
    b.set_up(False)
    for raw in raws[:5]:
        pub.publish(raw, [])
    until(pub, lambda: len(b.pending) == 5)
    clock.sleep(16.0)                                     # delivery timeout + 5 s
    assert rounds(pub) == [SenderState.STALLED]
    assert pub._producer is None and b.producers[0].closed
    assert len(pub.spool) == 5 and pub._unacked == 0       # what it held, spooled in order
    b.set_up(True)
    clock.sleep(2.0)
    until(pub, lambda: not len(pub.spool) and not pub._unacked)
    # the abandoned producer's sends were never acknowledged; the replay delivered them
    assert b.summaries() == [r["id"] for r in raws[:5]]
    assert len(b.producers) == 2


def test_a_full_spool_drops_and_counts(tmp_path, clock, raws):
    b = Broker()
    b.reachable = False
    pub = make(tmp_path, b, spool_max_bytes=16 << 10, spool_segment_bytes=4 << 10)
    for raw in raws[:300]:
        pub.publish(raw, [])
    rounds(pub)
    st = pub.stats()
    assert st["spooled"] + st["spool_dropped"] == 300
    assert st["spool_dropped"] > 0 and st["spooled"] > 0 and st["spool_bytes"] <= 16 << 10
    assert st["acked"] == 0


def test_a_restarted_publisher_replays_the_spool_of_the_last_one(tmp_path, clock, raws):
    """The spool directory is the config's (not per process): a publisher started on it
    sends what the stopped one spooled, in order, before its own messages."""
    b = Broker()
    b.reachable = False
    pub = make(tmp_path, b)
    for raw in raws[:40]:
        pub.publish(raw, [])
    rounds(pub)
    pub.close(timeout=0)
    assert len(pub.spool) == 40
    b.reachable = True
    pub2 = make(tmp_path, b)                              # same spool_dir
    assert len(pub2.spool) == 40
    for raw in raws[40:50]:
        pub2.publish(raw, [])
    until(pub2, lambda: not len(pub2.spool) and not pub2._unacked and not pub2._queue)
    assert b.summaries() == [r["id"] for r in raws[:50]]
    assert pub2.stats()["spool_replayed"] == 40


def test_spool_dir_is_required():
    with pytest.raises(TypeError):
        PublisherConfig(bootstrap="fake:9092")        # type: ignore[call-arg]


def test_sender_thread_and_capture_thread_account_for_every_message(tmp_path, raws):
    """The real sender thread and a capture thread publishing at once, through an outage:
    every message acknowledged once, in order, and the counters (written from both threads)
    add up."""
    b = Broker()
    pub = make(tmp_path, b, stall_s=0.05, probe_interval=0.01)
    pub.start()
    half = len(raws) // 2
    for raw in raws[:half]:
        pub.publish(raw, [])
    b.set_up(False)
    for raw in raws[half:]:
        pub.publish(raw, [])
    done = threading.Event()
    threading.Timer(0.3, lambda: (b.set_up(True), done.set())).start()
    done.wait(5)
    assert pub.flush(20), pub.stats()
    pub.close()
    assert b.summaries() == [r["id"] for r in raws]
    st = pub.stats()
    assert st["published"] == st["acked"] == len(b.delivered) == len(raws)
    assert st["spooled"] == st["spool_replayed"] and st["spool_dropped"] == 0


def test_flush_is_not_done_while_the_sender_holds_a_run(tmp_path, raws):
    """A run taken from the queue but not yet handed to the producer is neither queued nor in
    flight: flush() must still wait for it (it returned early, and close() then logged every
    message of the run as "never acknowledged")."""
    b = Broker()
    pub = make(tmp_path, b)
    pub.start()
    try:
        pub.publish(raws[0], [])
        assert pub.flush(10)
        b.gate = threading.Event()
        for raw in raws[1:10]:
            pub.publish(raw, [])
        assert b.in_send.wait(10)                          # the sender is inside the run
        assert not pub.flush(0.3)
        b.gate.set()
        assert pub.flush(10)
    finally:
        if b.gate is not None:
            b.gate.set()
        pub.close()
    assert b.summaries() == [r["id"] for r in raws[:10]]


def _bad_kind_record() -> bytes:
    """A spool record with valid framing but kind 9 (a bit flip, a foreign file)."""
    return struct.pack("!IBH", 9, 9, 1) + b"k" + b"v"


def test_unusable_spool_records_are_skipped_counted_and_logged_once(tmp_path, clock, raws,
                                                                    caplog):
    """A record of an unknown kind in a leftover segment, or written into one while the
    sender runs, and a torn tail: each skipped, counted (spool_torn) and logged once; the
    records around them and everything published later are delivered (an unknown kind was
    replayed for ever: nothing was delivered again)."""
    b = Broker()
    b.reachable = False
    pub = make(tmp_path, b, spool_segment_bytes=1)          # a segment per message
    for raw in raws[:3]:
        pub.publish(raw, [])
    rounds(pub)
    pub.close(timeout=0)
    segs = sorted((tmp_path / "spool").iterdir())
    assert len(segs) == 3
    with open(segs[1], "ab") as fh:                        # between the 2nd and the 3rd
        fh.write(_bad_kind_record())
    caplog.set_level(logging.WARNING, logger="sensor.spool")
    b.reachable = True
    pub2 = make(tmp_path, b)
    assert len(pub2.spool) == 3 and pub2.stats()["spool_torn"] == 1
    b.set_up(False)
    for raw in raws[3:6]:
        pub2.publish(raw, [])
    until(pub2, lambda: len(b.pending) == 3)                # in flight, not acknowledged
    clock.sleep(1.5)                                        # stalled: the next go to the spool
    for raw in raws[6:8]:
        pub2.publish(raw, [])
    rounds(pub2)
    seg = sorted((tmp_path / "spool").iterdir())[-1]
    with open(seg, "ab") as fh:                             # after the 8th, then a torn one
        fh.write(_bad_kind_record() + struct.pack("!IBH", 100, 0, 1) + b"k")
    for raw in raws[8:50]:
        pub2.publish(raw, [])
    b.set_up(True)
    until(pub2, lambda: not len(pub2.spool) and not pub2._unacked and not pub2._queue, 300)
    assert b.summaries() == [r["id"] for r in raws[:50]]
    st = pub2.stats()
    assert st["spool_torn"] == 3 and st["acked"] == 50 and st["internal_errors"] == 0
    warned = [r.getMessage() for r in caplog.records if "unusable record" in r.getMessage()]
    assert len(warned) == 2, warned                        # one per segment, once
    assert "unknown kind 9" in warned[0] and "unknown kind 9" in warned[1]


def _send_raises(monkeypatch, summary_id: str, exc: Exception) -> None:
    """The fake producers' send raises ``exc`` on the summary ``summary_id``, every time."""
    real_send = FakeProducer.send

    def send(self, topic, key=None, value=None, partition=None):
        if decode_summary(value)["id"] == summary_id:
            raise exc
        return real_send(self, topic, key, value, partition)
    monkeypatch.setattr(FakeProducer, "send", send)


@pytest.mark.parametrize("exc, counter", [(TypeError("a bug"), "internal_errors"),
                                          (MessageSizeTooLargeError("too large"), "rejected")])
def test_a_message_send_raises_on_for_itself_is_dropped_not_retried(tmp_path, clock, raws,
                                                                    monkeypatch, exc, counter):
    """send() raising something other than a Kafka error of the moment (a bug, a bad record;
    a message too large for the producer): that message is dropped, counted (internal_errors;
    rejected) and logged; the others go on (it was spooled and replayed for ever, and
    everything behind it waited)."""
    b = Broker()
    pub = make(tmp_path, b)
    bad = raws[2]["id"]
    _send_raises(monkeypatch, bad, exc)
    for raw in raws[:5]:
        pub.publish(raw, [])
    until(pub, lambda: not pub._queue and not pub._unacked)
    assert b.summaries() == [r["id"] for r in raws[:5] if r["id"] != bad]
    st = pub.stats()
    assert st[counter] == 1 and st["spooled"] == 0 and st["send_errors"] == 0
    assert st["internal_errors"] + st["rejected"] == 1


@pytest.mark.parametrize("error, dropped", [
    (MessageSizeTooLargeError("the topic's max.message.bytes"), 1),
    (TopicAuthorizationFailedError("no write"), 0),
])
def test_a_delivery_that_fails_for_good_replaces_the_producer(tmp_path, clock, raws,
                                                             monkeypatch, error, dropped):
    """A delivery fails with an error the producer cannot retry -- here that of a 50 KB
    certificate, sent amid summaries; kafka-python's idempotent producer then fails every
    later batch with it (the fake's, from that send on).  Before, every message after it was
    spooled and replayed in a loop and none delivered.  Now the producer is replaced, the
    messages that failed so are sent again one at a time: a record refused on its own (too
    large: the fake's broker refuses certificates over 10,000 bytes) is dropped, counted
    ``rejected`` -- nothing else is, though every message after it failed with the same error,
    a larger summary too -- and the rest arrives in order.  (An authorization error of the moment: nothing is dropped.)"""
    b = Broker()
    pub = make(tmp_path, b, probe_interval=0.5)
    big = (b"\x01" * 32, b"\x30" + bytes(50_000), {})
    real_send = FakeProducer.send
    denied = {"on": True}

    def send(self, topic, key=None, value=None, partition=None):
        fatal = getattr(self, "fatal", None)
        refused = topic == "c" and len(value) > 10_000
        if fatal is None and refused and (dropped or denied["on"]):
            fatal = self.fatal = error
        if fatal is not None:
            return FakeFuture(done=True, exception=fatal)
        return real_send(self, topic, key, value, partition)
    monkeypatch.setattr(FakeProducer, "send", send)
    sent = [dict(raw, server_name="a" * 30_000) if i == 5 else raw      # a large summary
            for i, raw in enumerate(raws[:10])]
    for i, raw in enumerate(sent):
        pub.publish(raw, [big] if i == 3 else [])
    rounds(pub, 3)
    denied["on"] = False                                        # (the grant arrives)
    for _ in range(6):
        clock.sleep(1.0)                                        # past probe_interval
        rounds(pub, 4)
    until(pub, lambda: not pub._queue and not pub._unacked and not len(pub.spool)
          and not pub._suspects)
    assert b.summaries() == [r["id"] for r in raws[:10]]
    certs = [v for t, _k, v, _p in b.delivered if t == "c"]
    assert len(certs) == 1 - dropped
    st = pub.stats()
    assert st["rejected"] == dropped and st["spool_dropped"] == 0, st
    assert len(b.producers) >= 2


def test_a_spool_replay_drops_what_send_raises_on_for_itself(tmp_path, clock, raws, monkeypatch):
    b = Broker()
    b.reachable = False
    pub = make(tmp_path, b)
    for raw in raws[:5]:
        pub.publish(raw, [])
    rounds(pub)
    assert len(pub.spool) == 5
    b.reachable = True
    bad = raws[1]["id"]
    _send_raises(monkeypatch, bad, KeyError(9))
    clock.sleep(2.0)
    until(pub, lambda: not len(pub.spool) and not pub._unacked)
    assert b.summaries() == [r["id"] for r in raws[:5] if r["id"] != bad]
    st = pub.stats()
    assert st["internal_errors"] == 1 and st["spool_replayed"] == 4


def test_spool_files_not_named_like_a_segment_are_ignored(tmp_path, caplog):
    """``².spool`` (str.isdigit() is True, int() raises) stopped the sensor at start;
    ``1.spool`` was taken for segment 1 (000000000001.spool, which does not exist)."""
    d = tmp_path / "spool"
    d.mkdir()
    for name in ("².spool", "1.spool", "x.spool", "０００００００００００２.spool"):
        (d / name).write_bytes(_bad_kind_record())
    sp = Spool(str(d), 1 << 20, 1 << 20)
    assert len(sp) == 0 and not sp._segments
    sp.append([(0, b"k", b"v")])
    assert sp.oldest() == (1, [(0, b"k", b"v")])
    assert [r.levelno for r in caplog.records if "not named like" in r.getMessage()] \
        == [logging.WARNING]
