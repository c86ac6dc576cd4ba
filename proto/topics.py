"""tlsdiag's Kafka topics as data: default name, key, cleanup policy, partitions when tlsdiag
creates the topic.  Pure: the producers and the admin code (``tlsdiag.kafka.ensure_topics``)
read these; nothing here talks to a broker.

Compacted topics are those whose key is an identity (a certificate's SHA-256, a profile
snapshot's ``GROUP/TOPIC/PARTITION``): the last record per key is the value, which a broker's
auto-creation (delete policy) would not keep.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Topic", "HANDSHAKES", "CERTS", "DIAGNOSES", "INCIDENTS", "PROFILES", "DLQ",
           "DEFAULT_PARTITIONS"]

#: partitions of a topic tlsdiag creates, unless the topic says otherwise
DEFAULT_PARTITIONS = 3


@dataclass(frozen=True)
class Topic:
    name: str                       # the default name (each is a setting: --topic-*)
    key: str                        # what the record key is
    compacted: bool = False
    partitions: int = DEFAULT_PARTITIONS


HANDSHAKES = Topic("tls.handshakes", "server endpoint host:port (a server's handshakes stay "
                   "in order in one partition)")
CERTS = Topic("tls.certs", "SHA-256 hex of the certificate's DER", compacted=True)
DIAGNOSES = Topic("tls.diagnoses", "connection id; a warning: id/rule")
INCIDENTS = Topic("tls.incidents", "direction|server|cause")
#: any partition count works if it never changes once analyzers have written state (an input
#: partition's incident state records must stay in one profiles partition, in order: see
#: docs/services.md); tlsdiag creates it with one
PROFILES = Topic("tls.profiles", "GROUP/TOPIC/PARTITION, its incident state "
                 "GROUP/TOPIC/PARTITION/incidents[/CHUNK/GEN/PART]", compacted=True, partitions=1)
DLQ = Topic("tls.handshakes.dlq", "the poison message's own key (headers: reason, source)")
