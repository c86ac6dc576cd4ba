"""Kafka administration for the commands: create tlsdiag's topics when they are missing, with
the cleanup policy and partition count of :mod:`proto.topics`, and pick the producers'
compression.  The sensor's publisher and the analyzer service get these injected.

Certificates (key = SHA-256) and profiles (key = group/topic/partition) are identities: their
topics must be compacted, which a broker's auto-creation would not do.  Best effort: a broker
that refuses (ACLs, auto-creation off and no rights) is logged, not fatal.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from proto.text import one_line
from proto.topics import Topic

__all__ = ["best_compression", "ensure_topics", "reachable", "wait_for_broker"]

log = logging.getLogger(__name__)


def best_compression() -> str | None:
    """zstd if the zstandard module is importable, else lz4, else none."""
    for name, mod in (("zstd", "zstandard"), ("lz4", "lz4")):
        try:
            __import__(mod)
            return name
        except ImportError:
            continue
    return None


def reachable(bootstrap: str, timeout_ms: int = 2_000) -> str | None:
    """None when a broker of ``bootstrap`` answers within ``timeout_ms``; else why not (one
    line)."""
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms,
                                 bootstrap_timeout_ms=timeout_ms, client_id="tlsdiag-probe")
    except Exception as exc:
        return one_line(exc)
    try:
        admin.close()
    except Exception:
        pass
    return None


def wait_for_broker(bootstrap: str, wait_s: float, stop: Callable[[], bool],
                    what: str = "tlsdiag") -> str | None:
    """Wait until a broker answers, at most ``wait_s`` seconds, ending early when ``stop()``
    says so (a signal).  One WARNING line while waiting, not the client library's retries.
    Returns None once connected (or stopped), else why it is not reachable."""
    deadline = time.monotonic() + wait_s
    why = reachable(bootstrap)
    if why is None:
        return None
    log.warning("%s: Kafka at %s does not answer (%s); waiting up to %d s for it", what,
                bootstrap, why, wait_s)
    while not stop():
        if time.monotonic() >= deadline:
            return why
        time.sleep(0.5)
        if stop():
            break
        why = reachable(bootstrap)
        if why is None:
            log.warning("%s: Kafka at %s answers", what, bootstrap)
            return None
    return None


def ensure_topics(bootstrap: str, topics: Mapping[str, Topic], replication: int = 1,
                  timeout_ms: int = 15_000) -> list[str] | None:
    """``topics``: name -> its :class:`proto.topics.Topic` (compaction, partitions).  Returns
    the names created, None when the broker could not be asked."""
    created: list[str] = []
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms,
                                 bootstrap_timeout_ms=2_000, client_id="tlsdiag-admin")
    except Exception as exc:
        log.debug("cannot check Kafka topics at %s: %s", bootstrap, one_line(exc))
        return None
    try:
        existing = set(admin.list_topics())
        for name, topic in topics.items():
            if name in existing:
                continue
            cfg = {"cleanup.policy": "compact"} if topic.compacted else {}
            try:
                admin.create_topics([NewTopic(name, topic.partitions, replication,
                                              topic_configs=cfg)], timeout_ms=timeout_ms)
                created.append(name)
                log.info("created topic %s%s", name, " (compacted)" if topic.compacted else "")
            except TopicAlreadyExistsError:
                pass
            except Exception as exc:
                log.warning("cannot create topic %s: %s", name, exc)
    finally:
        admin.close()
    return created
