"""The real Kafka broker of tools/kafka/kafka.sh: produce, consume, restart.

Skips only when Java is missing; a failed jar fetch or broker start fails.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

try:  # tests/ as a package (tests/__init__.py) or as a rootdir on sys.path
    from tests.kafka_broker import KAFKA_SH, Broker, KafkaScriptError, require_kafka, start_broker
except ImportError:
    from kafka_broker import KAFKA_SH, Broker, KafkaScriptError, require_kafka, start_broker

pytestmark = pytest.mark.kafka

N_MESSAGES = 100


@pytest.fixture(scope="module")
def _module_broker(tmp_path_factory: pytest.TempPathFactory):
    require_kafka()
    b = start_broker(tmp_path_factory.mktemp("kafka"))
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def broker(_module_broker: Broker) -> Broker:
    """One broker per module (starts cost seconds); revived if a test left it down."""
    if not _module_broker.is_running():
        _module_broker.start()
    return _module_broker


def _kcat_consume(bootstrap: str, topic: str) -> list[str]:
    if shutil.which("kcat") is None:
        pytest.fail("kcat is not installed (Debian package kcat)", pytrace=False)
    proc = subprocess.run(
        ["kcat", "-C", "-b", bootstrap, "-t", topic, "-e", "-o", "beginning",
         "-q", "-f", "%k %s\n"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def _produce(bootstrap: str, topic: str, items: list[tuple[str, str]]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        max_in_flight_requests_per_connection=5,
        request_timeout_ms=15000,
        max_block_ms=30000,
    )
    try:
        futures = [producer.send(topic, key=k.encode(), value=v.encode()) for k, v in items]
        producer.flush(timeout=30)
        offsets = [f.get(timeout=30).offset for f in futures]
    finally:
        producer.close(timeout=10)
    # one partition: offsets are consecutive in send order
    assert offsets == list(range(offsets[0], offsets[0] + len(items)))


def test_produce_consume_restart(broker: Broker) -> None:
    topic = "tlsdiag-broker-selftest"
    broker.create_topic(topic, partitions=1)
    expected = [("k%03d" % i, "v%03d" % i) for i in range(N_MESSAGES)]

    _produce(broker.bootstrap, topic, expected)
    assert _kcat_consume(broker.bootstrap, topic) == ["%s %s" % kv for kv in expected]

    rss = broker.rss_kb()
    assert rss is not None and rss > 0
    old_pid = broker.pid

    broker.restart(down_seconds=3.0)
    assert broker.pid is not None and broker.pid != old_pid
    assert _kcat_consume(broker.bootstrap, topic) == ["%s %s" % kv for kv in expected]

    # still writable after the restart, same log continues
    _produce(broker.bootstrap, topic, [("k100", "v100")])
    lines = _kcat_consume(broker.bootstrap, topic)
    assert len(lines) == N_MESSAGES + 1 and lines[-1] == "k100 v100"


def test_create_topic_compact_and_auto_create(broker: Broker) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType

    broker.create_topic("tlsdiag-compacted", partitions=2, compact=True)
    broker.create_topic("tlsdiag-compacted", partitions=2, compact=True)  # idempotent

    # auto-created topic gets num.partitions=3
    _produce(broker.bootstrap, "tlsdiag-auto", [("a", "1")])

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=15000)
    try:
        desc = {t["name"]: len(t["partitions"])
                for t in admin.describe_topics(["tlsdiag-compacted", "tlsdiag-auto"])}
        assert desc == {"tlsdiag-compacted": 2, "tlsdiag-auto": 3}
        res = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, "tlsdiag-compacted",
                            configs={"cleanup.policy": None})])
    finally:
        admin.close()
    assert res["topic"]["tlsdiag-compacted"]["cleanup.policy"]["value"] == "compact"


def test_start_refuses_busy_port(tmp_path: Path, broker: Broker) -> None:
    # the broker fixture holds broker.port; a second broker on it must fail fast
    t0 = time.monotonic()
    with pytest.raises(KafkaScriptError, match="already in use"):
        start_broker(tmp_path / "second", port=broker.port, timeout=30)
    assert time.monotonic() - t0 < 20
    assert broker.is_running()


def test_stop_is_idempotent_and_status_reports(tmp_path: Path) -> None:
    require_kafka()
    d = tmp_path / "never-started"
    d.mkdir()
    for _ in range(2):
        proc = subprocess.run(["bash", str(KAFKA_SH), "stop", "--dir", str(d)],
                              capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 0, proc.stderr
    proc = subprocess.run(["bash", str(KAFKA_SH), "status", "--dir", str(d)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 3 and "stopped" in proc.stdout


def test_broker_down_then_bad_config_then_up(broker: Broker) -> None:
    broker.stop()
    assert not broker.is_running()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", broker.port), timeout=2).close()

    # a broker that dies during startup is reported at once, with its log tail
    bad = Broker(broker.port, broker.data_dir, props=("num.partitions=abc",))
    t0 = time.monotonic()
    with pytest.raises(KafkaScriptError, match="exited during startup") as err:
        bad.start(timeout=60)
    assert time.monotonic() - t0 < 45
    assert "num.partitions" in str(err.value)
    assert bad.pid is None

    broker.start()
    assert broker.is_running()
