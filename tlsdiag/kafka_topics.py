"""Create tlsdiag's Kafka topics when they are missing, with the right cleanup policy.

Certificates (key = SHA-256) and profiles (key = group/topic/partition) are identities: their
topics must be compacted, which a broker's auto-creation would not do.  Best effort: a broker
that refuses (ACLs, auto-creation off and no rights) is logged, not fatal.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping

__all__ = ["ensure_topics"]

log = logging.getLogger(__name__)


def ensure_topics(bootstrap: str, topics: Mapping[str, bool], partitions: int = 3,
                  replication: int = 1, timeout_ms: int = 15_000) -> list[str] | None:
    """``topics``: name -> compacted?  Returns the names created, None when the broker could
    not be asked."""
    try:
        from kafka.admin import KafkaAdminClient, NewTopic
        from kafka.errors import TopicAlreadyExistsError
    except ImportError:          # pragma: no cover - kafka-python is a dependency
        return []
    created: list[str] = []
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms,
                                 client_id="tlsdiag-admin")
    except Exception as exc:
        log.warning("cannot check Kafka topics at %s: %s", bootstrap, exc)
        return None
    try:
        existing = set(admin.list_topics())
        for name, compact in topics.items():
            if name in existing:
                continue
            cfg = {"cleanup.policy": "compact"} if compact else {}
            try:
                admin.create_topics([NewTopic(name, 1 if compact and name.endswith("profiles")
                                              else partitions, replication, topic_configs=cfg)],
                                    timeout_ms=timeout_ms)
                created.append(name)
                log.info("created topic %s%s", name, " (compacted)" if compact else "")
            except TopicAlreadyExistsError:
                pass
            except Exception as exc:
                log.warning("cannot create topic %s: %s", name, exc)
    finally:
        admin.close()
    return created
