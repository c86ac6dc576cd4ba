"""The sensor/analyzer contract: handshake-summary schema, its msgpack wire format and JSON
rendering, certificate facts, and the TLS name tables both sides share.  Pure: no capture,
Kafka, socket or clock."""
from __future__ import annotations

from proto.summary import (FIELDS, MAX_MESSAGE, SCHEMA_VERSION, SchemaError, decode_certificate,
                           decode_summary, encode_certificate, encode_summary, summary_to_json)

__all__ = ["FIELDS", "MAX_MESSAGE", "SCHEMA_VERSION", "SchemaError", "decode_certificate",
           "decode_summary", "encode_certificate", "encode_summary", "summary_to_json"]
