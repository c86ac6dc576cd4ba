"""Real single-node Kafka broker for tests (helper module, not a test file).

Wraps ``tools/kafka/kafka.sh``, which runs an Apache Kafka 4.x KRaft broker
from the official jars (resolved once by Maven into a cache) on loopback.

Policy for tests that need Kafka (see :func:`require_kafka`):

* no Java on the machine -> the test is *skipped*, with the reason
  (*failed* instead when TLSDIAG_REQUIRE_KAFKA is set, e.g. in CI);
* Java present but the jars cannot be fetched, or the broker does not start
  -> the test *fails* (CI must never go green by silently skipping Kafka).

Typical fixture (one broker per test module)::

    @pytest.fixture(scope="module")
    def broker(tmp_path_factory):
        yield from module_broker(tmp_path_factory)

Reading topics back is done with kcat, an independent client (librdkafka, not
kafka-python): :func:`kcat` and :func:`kcat_messages`.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
KAFKA_SH = REPO_ROOT / "tools" / "kafka" / "kafka.sh"

FETCH_TIMEOUT_S = 900.0
# kafka.sh's own default is 60 s; a loaded 2-core CI box has been seen to need 30 s.
START_TIMEOUT_S = 120
STOP_TIMEOUT_S = 20
_OUTPUT_LIMIT = 8000  # characters of script output kept in error messages

__all__ = [
    "Broker",
    "KafkaScriptError",
    "KAFKA_SH",
    "broker_available",
    "fetch_jars",
    "free_port_pair",
    "java_available",
    "kcat",
    "kcat_messages",
    "module_broker",
    "require_kafka",
    "start_broker",
]


class KafkaScriptError(RuntimeError):
    """kafka.sh exited non-zero; the message carries the tail of its output."""


def _tail(text: str) -> str:
    return text if len(text) <= _OUTPUT_LIMIT else "...\n" + text[-_OUTPUT_LIMIT:]


def _run(args: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
    cmd = ["bash", str(KAFKA_SH), *args]
    log.debug("running %s", " ".join(cmd))
    try:
        proc = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or "") + (exc.stderr or "")
        if isinstance(out, bytes):
            out = out.decode("utf-8", "replace")
        raise KafkaScriptError(
            "kafka.sh %s timed out after %.0fs:\n%s" % (args[0], timeout, _tail(out))
        ) from None
    if proc.returncode != 0:
        raise KafkaScriptError(
            "kafka.sh %s exited %d:\n%s"
            % (" ".join(args), proc.returncode, _tail(proc.stdout + proc.stderr))
        )
    return proc


def java_available() -> tuple[bool, str]:
    """(True, version line) when a runnable ``java`` is on PATH."""
    java = os.environ.get("JAVA") or shutil.which("java")
    if not java:
        return False, "java not found on PATH (Kafka tests need Java 17+)"
    try:
        proc = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, "java is not runnable: %s" % exc
    if proc.returncode != 0:
        return False, "java -version exited %d" % proc.returncode
    first = (proc.stderr or proc.stdout).strip().splitlines()
    return True, first[0] if first else "java"


_fetch_outcome: tuple[bool, str] | None = None


def fetch_jars() -> str:
    """Run ``kafka.sh fetch`` once per process; raise KafkaScriptError on failure.

    A failure is remembered too, so a broken registry costs one Maven run per
    test session, not one per test.
    """
    global _fetch_outcome
    if _fetch_outcome is None:
        try:
            proc = _run(["fetch"], timeout=FETCH_TIMEOUT_S)
            _fetch_outcome = (True, (proc.stdout + proc.stderr).strip())
        except KafkaScriptError as exc:
            _fetch_outcome = (False, str(exc))
    ok, text = _fetch_outcome
    if not ok:
        raise KafkaScriptError(text)
    return text


def broker_available() -> tuple[bool, str]:
    """(ok, reason): Java present and the Kafka jars fetched (fetching if needed)."""
    ok, reason = java_available()
    if not ok:
        return False, reason
    try:
        fetch_jars()
    except KafkaScriptError as exc:
        return False, "cannot fetch the Kafka jars: %s" % exc
    return True, reason


def require_kafka() -> None:
    """Skip the calling test if Java is missing; fail it if the jars cannot be had."""
    import pytest  # only needed inside pytest

    ok, reason = java_available()
    if not ok:
        if os.environ.get("TLSDIAG_REQUIRE_KAFKA"):
            pytest.fail("%s (TLSDIAG_REQUIRE_KAFKA is set)" % reason, pytrace=False)
        pytest.skip(reason)
    ok, reason = broker_available()
    if not ok:
        pytest.fail(reason, pytrace=False)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_pair(attempts: int = 50) -> int:
    """A port P on 127.0.0.1 such that P and P+1 are both free right now."""
    for _ in range(attempts):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port < 65535 and _port_free(port) and _port_free(port + 1):
            return port
    raise RuntimeError("no free port pair on 127.0.0.1 after %d attempts" % attempts)


_LIVE: set["Broker"] = set()


@atexit.register
def _stop_leftovers() -> None:
    for broker in list(_LIVE):
        try:
            broker.stop()
        except Exception:  # noqa: BLE001 - best effort at interpreter exit
            log.warning("could not stop the broker in %s at exit", broker.data_dir)


@dataclass(eq=False)
class Broker:
    """A broker started by kafka.sh; ``data_dir`` survives stop/restart."""

    port: int
    data_dir: Path
    props: tuple[str, ...] = ()
    start_seconds: float = field(default=0.0, init=False)

    def __hash__(self) -> int:
        return id(self)

    @property
    def bootstrap(self) -> str:
        return "127.0.0.1:%d" % self.port

    @property
    def pid(self) -> int | None:
        try:
            pid = int((self.data_dir / "kafka.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if Path("/proc/%d" % pid).exists() else None

    def start(self, timeout: int = START_TIMEOUT_S) -> None:
        args = ["start", "--port", str(self.port), "--dir", str(self.data_dir),
                "--timeout", str(timeout)]
        for prop in self.props:
            args += ["--prop", prop]
        t0 = time.monotonic()
        _LIVE.add(self)
        _run(args, timeout=timeout + 60)
        self.start_seconds = time.monotonic() - t0
        log.info("kafka broker ready at %s in %.1fs", self.bootstrap, self.start_seconds)

    def stop(self, timeout: int = STOP_TIMEOUT_S) -> None:
        _run(["stop", "--dir", str(self.data_dir), "--timeout", str(timeout)],
             timeout=timeout + 60)
        _LIVE.discard(self)

    def restart(self, down_seconds: float = 3.0) -> None:
        """Stop, stay down for ``down_seconds``, start again on the same data dir."""
        self.stop()
        time.sleep(down_seconds)
        self.start()

    def is_running(self) -> bool:
        proc = subprocess.run(
            ["bash", str(KAFKA_SH), "status", "--dir", str(self.data_dir)],
            capture_output=True, text=True, timeout=60, check=False,
        )
        return proc.returncode == 0

    def rss_kb(self) -> int | None:
        pid = self.pid
        if pid is None:
            return None
        try:
            for line in Path("/proc/%d/status" % pid).read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except (OSError, ValueError, IndexError):
            return None
        return None

    def create_topic(self, name: str, partitions: int | None = None,
                     compact: bool = False, configs: Sequence[str] = ()) -> None:
        args = ["create-topic", name, "--dir", str(self.data_dir)]
        if partitions is not None:
            args += ["--partitions", str(partitions)]
        if compact:
            args.append("--compact")
        for cfg in configs:
            args += ["--config", cfg]
        _run(args, timeout=120)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = (self.data_dir / "kafka.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> "Broker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_broker(tmpdir: str | os.PathLike[str], port: int | None = None,
                 props: Sequence[str] = (), timeout: int = START_TIMEOUT_S) -> Broker:
    """Start a broker with its data in ``tmpdir``; PLAINTEXT on ``port``, controller on port+1.

    With ``port=None`` a free pair is picked (and re-picked if it is taken
    between the check and the start). Raises KafkaScriptError when the broker
    does not come up; the message holds the tail of its log.
    """
    data_dir = Path(os.fspath(tmpdir)).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    fetch_jars()
    attempts = 1 if port is not None else 3
    for attempt in range(attempts):
        broker = Broker(port if port is not None else free_port_pair(), data_dir, tuple(props))
        try:
            broker.start(timeout=timeout)
        except KafkaScriptError as exc:
            _LIVE.discard(broker)
            if "already in use" in str(exc) and attempt + 1 < attempts:
                log.info("port pair %d taken, picking another", broker.port)
                continue
            try:
                broker.stop()
            except KafkaScriptError:
                log.warning("could not stop the failed broker in %s", data_dir)
            raise
        return broker
    raise AssertionError("unreachable")


def module_broker(tmp_path_factory: Any) -> Iterator[Broker]:
    """Body of a module-scoped ``broker`` fixture: require Kafka, start a broker in a fresh
    temporary directory, stop it after the module."""
    require_kafka()
    broker = start_broker(tmp_path_factory.mktemp("kafka"))
    try:
        yield broker
    finally:
        broker.stop()


def kcat(bootstrap: str, topic: str, fmt: str = "%k\n", binary: bool = False,
         timeout: float = 120) -> Any:
    """Every message of ``topic`` from the beginning to the current end, read by kcat
    (librdkafka's default isolation: read_committed), each rendered with kcat's ``-f fmt``.
    Lines (str) by default; the raw output (bytes) with ``binary``.  A topic that does not
    exist yet reads as empty.  Fails the calling test when kcat is not installed."""
    import pytest  # only needed inside pytest

    if shutil.which("kcat") is None:
        pytest.fail("kcat is not installed (Debian package kcat)", pytrace=False)
    proc = subprocess.run(["kcat", "-C", "-b", bootstrap, "-t", topic, "-e", "-o", "beginning",
                           "-q", "-f", fmt], capture_output=True, timeout=timeout, check=False)
    if proc.returncode != 0 and b"Unknown topic" in proc.stderr:
        return b"" if binary else []
    assert proc.returncode == 0, proc.stderr
    return proc.stdout if binary else proc.stdout.decode().splitlines()


def kcat_messages(bootstrap: str, topic: str) -> list[tuple[bytes, bytes]]:
    """(key, value) pairs of ``topic``, read by kcat framed as ``KEYLEN:KEY VALUELEN:VALUE``
    (values are binary: msgpack).  A null key or value reads as empty bytes."""
    data = kcat(bootstrap, topic, fmt="%K:%k%S:%s", binary=True)
    out, pos = [], 0
    while pos < len(data):
        i = data.index(b":", pos)
        klen = max(int(data[pos:i]), 0)
        key = data[i + 1:i + 1 + klen]
        j = i + 1 + klen
        k = data.index(b":", j)
        vlen = max(int(data[j:k]), 0)
        out.append((key, data[k + 1:k + 1 + vlen]))
        pos = k + 1 + vlen
    return out
