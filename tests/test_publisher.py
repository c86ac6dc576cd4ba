"""sensor.publisher against a real Kafka broker (tools/kafka/kafka.sh); kcat is the
independent reader.  No mocks.  (Its sender state machine is also tested round by round,
without a broker, in tests/test_publisher_unit.py.)"""
from __future__ import annotations

import hashlib
import random
import threading
import time
from pathlib import Path

import pytest

from tests.support.poll import wait_for

try:
    from tests.kafka_broker import kcat, kcat_messages, module_broker
except ImportError:
    from kafka_broker import kcat, kcat_messages, module_broker

from proto.summary import decode_certificate, decode_summary
from sensor.pipeline import Summarizer
from sensor.capture import FileCapture
from sensor.publisher import Publisher, PublisherConfig
from tlsdiag.kafka import best_compression, ensure_topics

HERE = Path(__file__).resolve().parent
PCAPS = sorted((HERE / "data" / "captures").glob("*.pcap")) + \
    sorted((HERE / "data" / "scenarios").glob("*.pcap"))


def summaries_of(paths):
    out = []
    for p in paths:
        with FileCapture(str(p)) as cap:
            s = Summarizer(cap.linktype)
            for buf, meta in cap:
                out.extend(s.feed(buf, meta))
            out.extend(s.flush())
    return out


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    yield from module_broker(tmp_path_factory)


def make_pub(broker_bootstrap: str, tmp_path: Path, name: str, topics=True, **kw) -> Publisher:
    """As the sensor command makes it (compression, topic creation), unless ``topics`` is
    False (no topic creation: nothing to create it on)."""
    cfg = PublisherConfig(bootstrap=broker_bootstrap, topic_handshakes="%s.handshakes" % name,
                          topic_certs="%s.certs" % name, spool_dir=str(tmp_path / "spool"),
                          compression=best_compression(), **kw)
    pub = Publisher(cfg, ensure_topics=ensure_topics if topics else None)
    pub.start()
    return pub


def dead_port() -> str:
    """host:port where nothing listens."""
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return "127.0.0.1:%d" % port




@pytest.mark.kafka
def test_summaries_and_certificates_arrive(broker, tmp_path):
    items = summaries_of(PCAPS)
    assert len(items) >= 20
    pub = make_pub(broker.bootstrap, tmp_path, "t1")
    digests = {}
    for raw, certs in items:
        for c in certs:
            digests[c[0]] = c[1]
        pub.publish(raw, certs)
    assert pub.flush(60), pub.stats()
    pub.close()
    st = pub.stats()
    assert st["published"] == len(items) and st["send_errors"] == 0 and st["spool_dropped"] == 0

    msgs = kcat_messages(broker.bootstrap, "t1.handshakes")
    assert len(msgs) == len(items)
    # keyed by server endpoint; values decode to the same summaries
    assert sorted(k.decode() for k, _ in msgs) == sorted(raw["server"] for raw, _ in items)
    got = sorted(decode_summary(v)["id"] for _, v in msgs)
    assert got == sorted(raw["id"] for raw, _ in items)

    # the certificates topic was created compacted (keys are identities)
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        cfg = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "t1.certs")])
    finally:
        admin.close()
    assert cfg["topic"]["t1.certs"]["cleanup.policy"]["value"] == "compact"

    certs = kcat_messages(broker.bootstrap, "t1.certs")
    assert digests, "the test captures hold certificates"
    # each distinct certificate exactly once, keyed by its SHA-256 hex
    assert sorted(k.decode() for k, _ in certs) == sorted(d.hex() for d in digests)
    for k, v in certs:
        sha, der, facts = decode_certificate(v)
        assert hashlib.sha256(der).hexdigest() == k.decode() == sha.hex()
        assert isinstance(facts, dict)

    # publishing the same certificates again sends none of them (the already-sent cache)
    pub2 = make_pub(broker.bootstrap, tmp_path / "2", "t1")
    pub2._sent_certs.update((d, None) for d in digests)
    for raw, certs in items[:5]:
        pub2.publish(raw, certs)
    assert pub2.flush(30)
    pub2.close()
    assert pub2.stats()["certs_published"] == 0
    assert len(kcat(broker.bootstrap, "t1.certs")) == len(digests)


@pytest.mark.kafka
def test_records_get_kafkas_default_partition(broker, tmp_path):
    """Every summary lands in the partition Kafka's default partitioner gives its key
    (murmur2, here kafka-python's own pure-Python one as the reference), read back by kcat."""
    from kafka.partitioner.default import murmur2
    broker.create_topic("t5.handshakes", partitions=5)
    items = summaries_of(PCAPS[:4])
    pub = make_pub(broker.bootstrap, tmp_path, "t5")
    raws = _numbered(items, 60)
    for raw in raws:
        pub.publish(raw, [])
    assert pub.flush(60), pub.stats()
    pub.close()
    lines = kcat(broker.bootstrap, "t5.handshakes", fmt="%k %p\n")
    assert len(lines) == len(raws)
    got = {k: int(p) for k, p in (line.split() for line in lines)}
    want = {raw["server"]: (murmur2(raw["server"].encode()) & 0x7FFFFFFF) % 5 for raw in raws}
    assert got == want
    assert len(set(got.values())) == 5                 # and it did spread them


def _numbered(items, n):
    """n summaries with unique server endpoints (so the Kafka key identifies each one)."""
    base = [raw for raw, _ in items if raw.get("server")]
    out = []
    for i in range(n):
        raw = dict(base[i % len(base)])
        raw["server"] = "10.%d.%d.%d:443" % (i >> 16 & 255, i >> 8 & 255, i & 255)
        raw["id"] = "n%06d" % i
        out.append(raw)
    return out


@pytest.mark.kafka
@pytest.mark.slow
def test_broker_down_30s_every_summary_arrives_once(broker, tmp_path):
    items = summaries_of(PCAPS[:6])
    n = 6000
    raws = _numbered(items, n)
    pub = make_pub(broker.bootstrap, tmp_path, "t2", probe_interval=1.0)
    stop_at = {}

    def feeder():
        # ~100 summaries/s for ~60 s: the outage is in the middle of the stream
        t0 = time.monotonic()
        for i, raw in enumerate(raws):
            pub.publish(raw, [])
            delay = t0 + i / 100.0 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        stop_at["done"] = time.monotonic()

    t = threading.Thread(target=feeder)
    t.start()
    time.sleep(10)
    broker.stop()
    down = time.monotonic()
    time.sleep(30)
    mid = pub.stats()
    broker.start()
    up = time.monotonic()
    t.join()
    assert pub.flush(120), pub.stats()
    pub.close()
    st = pub.stats()
    assert up - down >= 30
    # the outage really went through the spool, and nothing was dropped
    assert mid["online"] == 0 and mid["spool_depth"] > 0, mid
    assert st["spooled"] > 0 and st["spool_dropped"] == 0, st
    keys = kcat(broker.bootstrap, "t2.handshakes")
    assert len(keys) == n, "expected %d, got %d (%d distinct)" % (n, len(keys), len(set(keys)))
    assert sorted(keys) == sorted(r["server"] for r in raws)


def test_full_spool_drops_are_counted(tmp_path):
    """Nothing listens on the bootstrap port (no broker needed: kafka-python's own producer
    fails to connect): everything goes to a tiny spool; what does not fit is dropped and
    counted, and spooled + dropped accounts for every message."""
    items = summaries_of(PCAPS[:3])
    raws = _numbered(items, 300)
    pub = make_pub(dead_port(), tmp_path, "t3", topics=False, spool_max_bytes=16 << 10,
                   spool_segment_bytes=4 << 10, bootstrap_timeout_ms=500)
    for raw in raws:
        pub.publish(raw, [])
    wait_for(lambda: pub.stats()["spooled"] + pub.stats()["spool_dropped"] == 300, 20,
             "every message spooled or dropped")
    pub.close(timeout=1)
    st = pub.stats()
    assert st["spooled"] + st["spool_dropped"] == 300, st
    assert st["spool_dropped"] > 0 and st["spooled"] > 0
    assert st["spool_bytes"] <= 16 << 10
    assert st["acked"] == 0


@pytest.mark.kafka
def test_spool_left_by_a_stopped_sensor_is_replayed(broker, tmp_path):
    """Spooled while Kafka was unreachable, then the process stopped: a new publisher on the
    same spool directory delivers those messages, in order, before new ones.  One partition,
    so the topic's order is the delivery order: the ``_numbered`` sequence exactly."""
    items = summaries_of(PCAPS[:3])
    raws = _numbered(items, 50)
    broker.create_topic("t4.handshakes", partitions=1)
    pub = make_pub(dead_port(), tmp_path, "t4", topics=False, bootstrap_timeout_ms=500)
    for raw in raws[:40]:
        pub.publish(raw, [])
    wait_for(lambda: pub.stats()["spooled"] == 40, 20, "the 40 spooled")
    pub.close(timeout=1)
    assert len(pub.spool) == 40
    pub = make_pub(broker.bootstrap, tmp_path, "t4")
    for raw in raws[40:]:
        pub.publish(raw, [])
    assert pub.flush(60), pub.stats()
    pub.close()
    lines = kcat(broker.bootstrap, "t4.handshakes", fmt="%p %o %k\n")
    assert {line.split()[0] for line in lines} == {"0"}
    keys = [line.split()[2] for line in sorted(lines, key=lambda x: int(x.split()[1]))]
    assert keys == [r["server"] for r in raws]


@pytest.mark.kafka
def test_a_certificate_the_broker_refuses_as_too_large_is_dropped_once(broker, tmp_path):
    """The certificates topic takes messages of at most 20,000 bytes (max.message.bytes); a
    server sends a 60 KB certificate, amid 200 other summaries.  The broker refuses that
    record (kafka-python splits a batch first: only that one record fails), and the idempotent
    producer then fails every later batch with the same error: everything after it was
    spooled and replayed in a loop, none delivered, until the sensor restarted -- and then
    again.  Now that certificate is dropped and counted once (rejected), the producer
    replaced, and every summary and every other certificate arrives, each once."""
    items = summaries_of(PCAPS[:3])
    more = _numbered(items, 200)
    broker.create_topic("t9.certs", compact=True, configs=["max.message.bytes=20000"])
    pub = make_pub(broker.bootstrap, tmp_path, "t9", probe_interval=0.2)
    noise = random.Random(9).randbytes(60_000)         # (zeros would compress below the cap)
    big = (hashlib.sha256(noise).digest(), b"\x30" + noise, {})
    digests = {c[0] for _raw, certs in items for c in certs}
    assert digests
    for i, (raw, certs) in enumerate(items):
        pub.publish(raw, list(certs) + ([big] if i == 1 else []))
    for raw in more:
        pub.publish(raw, [])
    assert pub.flush(60), pub.stats()
    time.sleep(1)                       # a replay of a spooled copy would show by now
    pub.close()
    st = pub.stats()
    assert st["rejected"] == 1 and st["internal_errors"] == 0 and st["spool_dropped"] == 0, st
    assert len(pub.spool) == 0
    ids = sorted(decode_summary(v)["id"] for _k, v in kcat_messages(broker.bootstrap,
                                                                     "t9.handshakes"))
    assert ids == sorted([raw["id"] for raw, _c in items] + [raw["id"] for raw in more])
    got = sorted(k.decode() for k, _v in kcat_messages(broker.bootstrap, "t9.certs"))
    assert got == sorted(d.hex() for d in digests)
