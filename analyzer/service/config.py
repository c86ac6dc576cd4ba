"""The analyzer service's settings (the command fills them from flags, ``TLSDIAG_*`` and the
config file's ``[analyzer]`` table)."""
from __future__ import annotations

from dataclasses import dataclass, fields
from urllib.parse import urlsplit, urlunsplit

from proto import topics

__all__ = ["AnalyzerConfig"]


@dataclass(frozen=True)
class AnalyzerConfig:
    kafka: str
    group: str = "tlsdiag-analyzer"
    instance: str = "0"
    topic_handshakes: str = topics.HANDSHAKES.name
    topic_certs: str = topics.CERTS.name
    topic_diagnoses: str = topics.DIAGNOSES.name
    topic_incidents: str = topics.INCIDENTS.name
    topic_profiles: str = topics.PROFILES.name
    topic_dlq: str = topics.DLQ.name
    max_records: int = 2000
    poll_timeout_ms: int = 500
    exactly_once: bool = True
    warnings: bool = True
    cert_wait: float = 5.0
    cert_store: int = 100_000
    profile_snapshot_s: float = 10.0
    incident_update_s: float = 30.0
    incident_resolve_successes: int = 3
    incident_resolve_quiet_s: float = 600.0
    incident_resolve_hold_s: float = 60.0
    correlation_window_s: float = 120.0
    webhook_url: str | None = None
    webhook_secret_file: str | None = None
    stats_interval: int = 60
    # the output producer: a long linger -- the batch's commit/flush sends everything anyway,
    # and fewer new producer batches mean fewer wake-ups of kafka-python's I/O thread (GIL
    # ping-pong)
    producer_linger_ms: int = 200
    producer_batch_size: int = 1 << 20
    producer_max_request_size: int = 8 << 20
    # every Kafka client: reconnect quickly once the broker is back (kafka-python backs off up
    # to 30 s by default: the analyzer resumed ~29 s after an outage), and wait at most this
    # long for the first broker answer when a client is made
    reconnect_backoff_ms: int = 100
    reconnect_backoff_max_ms: int = 1_000
    bootstrap_timeout_ms: int = 5_000
    #: at shutdown, how long the producer may take to deliver what it holds
    close_timeout_s: float = 2.0
    batch_delay_ms: int = 0          # testing: pause inside each batch (crash-window tests)
    state_delay_ms: int = 0          # testing: at-least-once, pause between a batch's incident
    #                                  events and its incident state (crash-window tests)

    def describe(self) -> dict[str, object]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["webhook_url"] = _mask_url(self.webhook_url)
        return d


def _mask_url(url: str | None) -> str | None:
    if not url:
        return url
    u = urlsplit(url)
    netloc = u.hostname or ""
    if u.port:
        netloc += ":%d" % u.port
    return urlunsplit((u.scheme, netloc, u.path, "***" if u.query else "", ""))
