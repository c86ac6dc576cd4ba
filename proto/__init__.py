"""The sensor/analyzer contract: handshake-summary schema (:mod:`proto.summary`: the field
table, msgpack wire format and shape checks), its JSON rendering (:mod:`proto.render`),
certificate facts, and the TLS name tables both sides share.  Pure: no capture, Kafka, socket
or clock."""
from __future__ import annotations

from proto.render import summary_to_json
from proto.summary import (FIELD, FIELDS, JSON_FIELDS, MAX_MESSAGE, SCHEMA_VERSION, SchemaError,
                           decode_certificate, decode_summary, encode_certificate,
                           encode_summary)

__all__ = ["FIELD", "FIELDS", "JSON_FIELDS", "MAX_MESSAGE", "SCHEMA_VERSION", "SchemaError",
           "decode_certificate", "decode_summary", "encode_certificate", "encode_summary",
           "summary_to_json"]
