"""Handshake summary: the one field table (:data:`FIELD`), the msgpack wire format (schema
version :data:`SCHEMA_VERSION`) and its shape checks.  See ``docs/summary-schema.md``
(its field table is checked against :data:`FIELD` by ``tests/test_proto.py``); the JSON
rendering is :func:`proto.render.summary_to_json`.

A *raw summary* is a dict keyed by the field names holding code points (ints) where the
JSON shows names, sides as 0 (client) / 1 (server), and certificates as 32-byte SHA-256
digests.  On the wire the keys are small integers (:data:`FIELDS`) and ``0`` carries the
schema version; each distinct certificate travels once as a *certificate record*.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from itertools import chain
from operator import itemgetter
from typing import Any, NamedTuple

import msgpack

from proto.hints import check_hints
from proto.text import one_line

__all__ = [
    "SCHEMA_VERSION", "FIELD", "Field", "FIELDS", "JSON_FIELDS", "OPTIONAL_FIELDS", "SchemaError",
    "encode_summary", "decode_summary", "encode_certificate", "decode_certificate",
    "MAX_MESSAGE", "MIN_TIME", "MAX_TIME", "is_time",
]

SCHEMA_VERSION = 1
#: largest msgpack message we accept (a summary is ~1 KB; a certificate record ~ its DER)
MAX_MESSAGE = 4 * 1024 * 1024
#: a summary's longest text: a server name (the longest there is) is at most a handshake
#: extension's 2^16 - 1 bytes, each written as up to 4 characters (``\\xNN`` for a byte that
#: is not ASCII); a longer one is not from a sensor (a 3.9 MB one made the analyzer's diagnosis
#: 15.6 MB, more than Kafka takes)
MAX_STR = 4 * ((1 << 16) - 1)
#: the time stamps a summary may carry (epoch seconds): datetime's range, 0001-01-01T00:00:00Z
#: to 9999-12-31T23:59:59Z -- what ``datetime.fromtimestamp(t, timezone.utc)`` takes
MIN_TIME, MAX_TIME = -62135596800, 253402300799


class SchemaError(ValueError):
    """A message that is not a summary / certificate record of a schema we read."""


# ---------------------------------------------------------------------------------------------
# msgpack
# ---------------------------------------------------------------------------------------------

def encode_summary(raw: Mapping[str, Any]) -> bytes:
    m: dict = {0: SCHEMA_VERSION}
    for k, v in raw.items():
        key = FIELDS.get(k)
        if key is None or v is None or v == [] or v is False:
            continue                       # absent = null / empty / false: compact
        if k == "close":
            m[key] = [v["fin"], v["rst"]]
        else:
            m[key] = v
    return msgpack.packb(m, use_bin_type=True)


def _int(v, lo: int = 0, hi: int = 0xFFFFFF) -> bool:
    return type(v) is int and lo <= v <= hi


def _side(v) -> bool:
    return type(v) is int and (v == 0 or v == 1)


_INT = {int}
_STR = {str}
_BYTES = {bytes}
_LEN32 = {32}
_SIDE_VALUES = {0, 1}


# The list checks run in C (set/map/min/max) rather than a Python generator per element:
# a summary carries a few hundred list elements (cipher suites, extensions, groups, ...).

def _ints(v, lo: int = 0, hi: int = 0xFFFFFF) -> bool:
    return type(v) is list and (not v or (set(map(type, v)) == _INT and lo <= min(v)
                                          and max(v) <= hi))


def _strs(v) -> bool:
    return type(v) is list and (not v or set(map(type, v)) == _STR)


def _opt_int(v) -> bool:
    return v is None or (type(v) is int and 0 <= v <= 0xFFFFFF)


def _opt_str(v) -> bool:
    return v is None or type(v) is str


def _digests(v) -> bool:
    return type(v) is list and (not v or (set(map(type, v)) == _BYTES
                                          and set(map(len, v)) == _LEN32))


def _sides(v) -> bool:
    return type(v) is list and len(v) <= 2 and (not v or (set(map(type, v)) == _INT
                                                          and _SIDE_VALUES.issuperset(v)))


def _alerts(v) -> bool:
    if type(v) is not list:
        return False
    for a in v:
        if not (type(a) is list and len(a) == 4 and _side(a[0]) and _int(a[1], 0, 255)
                and _int(a[2], 0, 255) and _int(a[3], -1, 255)):
            return False
    return True


def _encrypted_alerts(v) -> bool:
    if type(v) is not list:
        return False
    for a in v:
        if not (type(a) is list and len(a) == 2 and _side(a[0]) and _int(a[1])):
            return False
    return True


def _close(v) -> bool:
    return type(v) is list and (v == [] or (len(v) == 2 and _sides(v[0]) and _sides(v[1])))


def _is_str(v) -> bool:
    return type(v) is str


def is_time(v) -> bool:
    """An int or float time stamp in [MIN_TIME, MAX_TIME] (not NaN, not infinite)."""
    return (type(v) is float or type(v) is int) and MIN_TIME <= v <= MAX_TIME


def _is_bool(v) -> bool:
    return type(v) is bool


class Field(NamedTuple):
    """One row of :data:`FIELD`."""
    name: str                   # raw summary and JSON name
    key: int | None             # msgpack key (append-only, never renumbered); None: JSON only
    kind: str                   # "required" | "nullable" | "bool" | "list": its absent value;
    #                             "optional": absent from the raw summary and the JSON unless set
    check: Callable | None      # shape of the raw value (what decode_summary accepts)
    json: str | None            # JSON type as rendered; None: raw / msgpack only
    doc: str                    # one line for docs/summary-schema.md


_ = None
#: every field of a summary, in JSON order: the one list the wire format, its checks, the
#: decoder's defaults and fast path, the JSON renderer's key order (tested) and the schema
#: doc (tested) come from
FIELD: tuple[Field, ...] = tuple(Field(*row) for row in (
    ("id", 1, "required", _is_str, "str",
     "connection id: BLAKE2s (8-byte digest, 16 hex chars) of the first packet's time in "
     "microseconds, the client and the server endpoints (`\"%d\\|%s\\|%s\"`), stable across "
     "runs and sensors"),
    ("client", 2, "required", _is_str, "str",
     "`\"ip:port\"`, IPv6 as `\"[addr]:port\"`: who sent SYN, else who sent the ClientHello"),
    ("server", 3, "required", _is_str, "str", "the other endpoint, same form"),
    ("version", 6, "nullable", _opt_int, "str/null",
     "negotiated: `SSLv2` `SSLv3` `TLSv1.0` `TLSv1.1` `TLSv1.2` `TLSv1.3` `TLSv1.3-draft23` "
     "`unknown-0x7e01`; null without a ServerHello"),
    ("cipher", 7, "nullable", _opt_int, "str/null",
     "IANA name of the chosen suite, `unknown-0x....` if unassigned"),
    ("curve", 8, "nullable", _opt_int, "str/null",
     "group: from ServerKeyExchange (TLS<=1.2 ECDHE) or the server key_share (TLS 1.3)"),
    ("curve_from_ske", 41, "bool", _is_bool, _,
     "a TLS<=1.2 ServerKeyExchange was seen: `curve` (if any) comes from it"),
    ("server_name", 9, "nullable", _opt_str, "str/null", "SNI host_name sent by the client"),
    ("alpn", 10, "nullable", _opt_str, "str/null", "protocol chosen by the server"),
    ("established", 11, "bool", _is_bool, "bool",
     "both sides reached encrypted application data (Zeek's meaning)"),
    ("resumed", 12, "bool", _is_bool, "bool",
     "session resumed (TLS<=1.2: echoed session id / abbreviated handshake; TLS 1.3: "
     "pre_shared_key accepted)"),
    ("history", 13, "required", _is_str, "str",
     "Zeek `ssl_history` alphabet: upper case client, lower case server; <=100 letters"),
    ("alerts", 14, "list", _alerts, "list",
     "`{from: client\\|server, level: warning\\|fatal\\|unknown-N, description: IANA name, "
     "after: last handshake message name before it (e.g. \"client_hello\") or null}` -- "
     "plaintext alerts only; raw `[side, level, description, handshake type or -1]`"),
    ("last_alert", _, "nullable", _, "str/null", "description of the last plaintext alert"),
    ("client_legacy_version", 39, "nullable", _opt_int, _, "ClientHello.legacy_version"),
    ("client_versions", 15, "list", _ints, "list[str]",
     "versions the client offered (supported_versions, else legacy_version); GREASE removed"),
    ("client_ciphers", 16, "list", _ints, "list[str]",
     "cipher suites the client offered, IANA names, GREASE removed"),
    ("client_extensions", 17, "list", _ints, "list[str]",
     "ClientHello extensions, wire order, IANA names, GREASE removed"),
    ("client_groups", 18, "list", _ints, "list[str]",
     "supported_groups offered, IANA names, GREASE removed"),
    ("client_alpn", 19, "list", _strs, "list[str]", "ALPN protocols offered"),
    ("client_signature_algorithms", 20, "list", _ints, "list[str]",
     "signature_algorithms offered, IANA names"),
    ("client_key_shares", 21, "list", _ints, "list[str]",
     "groups of the client's key shares, GREASE removed"),
    ("client_psk", 22, "bool", _is_bool, "bool",
     "client offered pre_shared_key / session ticket"),
    ("client_sslv2", 40, "bool", _is_bool, "bool", "the ClientHello was SSLv2-framed"),
    ("hrr", 23, "bool", _is_bool, "bool", "a HelloRetryRequest was sent"),
    ("certificates", 24, "list", _digests, "list",
     "server chain, wire order: `{sha256, subject, issuer, serial, not_before, not_after, "
     "san_dns, san_ip, key, signature_algorithm, is_ca, self_signed}`; dates ISO-8601 UTC "
     "`YYYY-MM-DDTHH:MM:SSZ`; `key` like `rsa-2048`, `ec-secp256r1`, `ed25519`; a DER that "
     "`cryptography` cannot parse gives `{sha256, error: \"...\"}`; without facts "
     "`{sha256}`; raw: SHA-256 digests"),
    ("client_certificates", 25, "list", _digests, "list", "client chain, same form"),
    ("certificate_request", 26, "bool", _is_bool, "bool", "server sent CertificateRequest"),
    ("client_certificate_empty", 27, "bool", _is_bool, "bool",
     "client answered a CertificateRequest with an empty Certificate"),
    ("ja4", 28, "nullable", _opt_str, "str/null", "JA4 client fingerprint (FoxIO spec)"),
    ("close", 29, "list", _close, "obj",
     "`{fin: [first FIN sender, ...], rst: [first RST sender, ...]}` senders are "
     "`client`/`server`, each listed once, in order; msgpack `[fin, rst]` of sides"),
    ("client_encrypted", 30, "list", _ints, "list[int]",
     "lengths of the first encrypted records the client sent (<= 8), for \"probable "
     "encrypted alert\" by size"),
    ("server_encrypted", 31, "list", _ints, "list[int]", "the same for the server"),
    ("encrypted_alerts", 32, "list", _encrypted_alerts, "list",
     "`{from, length}` -- encrypted alerts: records of type alert after that side's "
     "ChangeCipherSpec (TLS <= 1.2), and in TLS 1.3 application_data records of at most 24 "
     "bytes (2 alert bytes + content type + 16-byte tag: a *probable* alert)"),
    ("gaps", 33, "list", _sides, "list[str]",
     "directions whose handshake stream had a gap (`client`, `server`)"),
    ("truncated", 34, "bool", _is_bool, "bool",
     "snaplen-truncated frames were seen on this connection"),
    ("weirds", 35, "list", _strs, "list[str]",
     "anomaly names (stable strings: `record_overflow`, `vector_overrun`, "
     "`handshake_length_mismatch`, `buffer_limit`, ...)"),
    ("start", 4, "required", is_time, "float",
     "epoch seconds of the first packet seen (years 1 to 9999: a reader rejects others)"),
    ("end", 5, "required", is_time, "float", "epoch seconds of the last packet seen, same range"),
    ("outcome", 36, "required", _is_str, "str",
     "`established`, `alert` (a fatal plaintext alert ended it), `encrypted_alert`, `reset`, "
     "`closed` (closed before established), `timeout`, `evicted`, `incomplete` (input "
     "ended), `not_tls`"),
    ("sensor", 37, "nullable", _opt_str, "str/null",
     "filled in by the sensor service; null in `summarize`"),
    ("direction", 38, "nullable", _opt_str, "str/null",
     "filled in by the sensor service; null in `summarize`"),
    ("endpoint_hints", 42, "optional", check_hints, "obj",
     "*optional, only present when set*: what the connection's own OpenSSL reported "
     "(`--endpoint-hints`), versioned: `{version: 1, endpoints: [{side, pid, comm, library, "
     "verify: {error, code, text, depth} or null, errors: [{reason, text}], alerts_received, "
     "alerts_sent}]}`; raw `{v: 1, endpoints: [{side, pid, comm, library, verify_error, "
     "verify_depth, ssl_errors}]}`; a reader ignores a version it does not know (docs/"
     "endpoint-hints.md)"),
))
del _

#: field name -> msgpack key, in key order.  Keys are append-only: never renumber.
FIELDS: dict[str, int] = {f.name: f.key for f in sorted(
    (f for f in FIELD if f.key is not None), key=lambda f: f.key)}
#: the keys of summary_to_json's output, in order (then the optional ones that are set)
JSON_FIELDS: tuple[str, ...] = tuple(f.name for f in FIELD if f.json is not None
                                     and f.kind != "optional")
#: fields a summary holds only when set (raw, msgpack and JSON alike)
OPTIONAL_FIELDS: tuple[str, ...] = tuple(f.name for f in FIELD if f.kind == "optional")
_ALL_WIRE = tuple(sorted((f for f in FIELD if f.key is not None), key=lambda f: f.key))
#: (name, shape check) of the optional wire fields: checked only when present
_OPTIONAL = tuple((f.name, f.check) for f in _ALL_WIRE if f.kind == "optional")
#: the wire fields every decoded summary holds
_WIRE = tuple(f for f in _ALL_WIRE if f.kind != "optional")
_REQUIRED = tuple(f.name for f in _WIRE if f.kind == "required")
_NULLABLE = frozenset(f.name for f in _WIRE if f.kind == "nullable")
_BOOLS = frozenset(f.name for f in _WIRE if f.kind == "bool")

#: the shape every decoded field must have (what summary_to_json relies on)
_CHECKS = {f.name: f.check for f in _WIRE}
#: msgpack key -> (field name, shape check)
_DECODE = {f.key: (f.name, f.check) for f in _ALL_WIRE}
#: defaults of absent fields that are immutable (None / False); the others (lists, and the
#: required fields, which must not stay absent) get a fresh [] per decode
_SCALAR_DEFAULTS = {f.name: (False if f.kind == "bool" else None) for f in _WIRE
                    if f.kind in ("bool", "nullable")}
_LIST_FIELDS = tuple(f.name for f in _WIRE if f.name not in _SCALAR_DEFAULTS)
_TEMPLATE = {f.name: _SCALAR_DEFAULTS.get(f.name) for f in _WIRE}


def decode_summary(data: bytes) -> dict:
    """Inverse of :func:`encode_summary`; raises :class:`SchemaError` on anything else —
    including a field of the wrong shape, so what it returns :func:`summary_to_json` can
    always render."""
    m = _unpack(data)
    raw = _TEMPLATE.copy()                # field order of FIELDS, like the writer's
    for name in _LIST_FIELDS:
        raw[name] = []
    if set(map(type, m)) == _INT:
        # the usual message: every key an int; one C-level pass renames them (unknown keys
        # -- the version's 0 and a newer writer's fields -- all land on None and go)
        raw.update(zip(map(_NAME_OF_GET, m), m.values()))
        raw.pop(None, None)
        if _fast_ok(raw) and _optional_ok(raw):
            c = raw["close"]
            raw["close"] = {"fin": c[0], "rst": c[1]} if c else {"fin": [], "rst": []}
            return raw
    return _decode_checked(m)


def _unpack(data: bytes) -> dict:
    """The msgpack map of a summary of our schema version (SchemaError otherwise)."""
    if type(data) is not bytes:
        raise SchemaError("not bytes")
    if len(data) > MAX_MESSAGE:
        raise SchemaError("message too large (%d bytes)" % len(data))
    try:
        m = msgpack.unpackb(data, raw=False, strict_map_key=False, max_bin_len=MAX_MESSAGE,
                            max_str_len=MAX_STR, max_array_len=100_000,
                            max_map_len=1000)
    except Exception as exc:
        raise SchemaError("not msgpack: %s" % one_line(exc)) from None
    if type(m) is not dict:
        raise SchemaError("not a map")
    v = m.get(0)
    if v != SCHEMA_VERSION or type(v) is not int:
        raise SchemaError("unknown schema version %r" % (v,))
    return m


def _decode_slow(data: bytes) -> dict:
    """:func:`decode_summary` with every field checked one by one (the reference the fast
    path is tested against; it also names the first bad field)."""
    return _decode_checked(_unpack(data))


def _decode_checked(m: dict) -> dict:
    raw = _TEMPLATE.copy()
    for name in _LIST_FIELDS:
        raw[name] = []
    decode = _DECODE
    bad = False
    for k, val in m.items():
        spec = decode.get(k)
        if spec is None or type(k) is not int:
            continue                       # a newer writer's field: ignored
        name, check = spec
        if not check(val):
            bad = True
        raw[name] = val
    for name in _REQUIRED:
        val = raw[name]
        if val is None or val == []:
            raise SchemaError("missing field %r" % name)
    if bad:
        for name, check in _CHECKS.items():
            if not check(raw[name]):
                raise SchemaError("bad %s field" % name)
        for name, check in _OPTIONAL:
            if name in raw and not check(raw[name]):
                raise SchemaError("bad %s field" % name)
    c = raw["close"]
    raw["close"] = {"fin": c[0], "rst": c[1]} if c else {"fin": [], "rst": []}
    return raw


# -- the fast shape check ---------------------------------------------------------------------
# A sufficient condition for "every field passes its _CHECKS entry", evaluated a group of
# fields at a time with C-level set/map/min/max over the group (the per-field checks cost
# ~19 us of Python calls per summary; this ~3 us).  When it says no, _decode_checked decides
# (and names the bad field), so what decode_summary accepts is exactly what _CHECKS accepts;
# tests/test_analyzer_decode.py compares the two on hostile input.

_NAME_OF_GET = {key: name for name, key in FIELDS.items()}.get


def _optional_ok(raw: dict) -> bool:
    """The optional fields that are present have their shape (absent ones are no failure)."""
    for name, check in _OPTIONAL:
        if name in raw and not check(raw[name]):
            return False
    return True
_LIST = {list}
_BOOL = {bool}
_NONE_OR_STR = {type(None), str}
_MAX_CODE = 0xFFFFFF


def _getter(names: tuple) -> Callable[[Mapping], tuple]:
    """itemgetter that returns a tuple for one name too."""
    if len(names) == 1:
        name = names[0]
        return lambda raw: (raw[name],)
    return itemgetter(*names)


def _group(check) -> tuple:
    return tuple(f.name for f in _WIRE if f.check is check)


# one group per shape check, from the table
_g_strs = _getter(_group(_is_str))
_g_times = _getter(_group(is_time))
_g_opt_ints = _getter(_group(_opt_int))
_g_opt_strs = _getter(_group(_opt_str))
_g_bools = _getter(_group(_is_bool))
_g_int_lists = _getter(_group(_ints))
_g_str_lists = _getter(_group(_strs))
_g_digest_lists = _getter(_group(_digests))
_g_close = _getter(_group(_close))
#: the fields whose check has no group form (alerts, encrypted alerts, gaps: usually empty):
#: each checked by its own _CHECKS entry, only when it is not []
_RARE = tuple((f.name, f.check) for f in _WIRE if f.check not in (
    _is_str, is_time, _opt_int, _opt_str, _is_bool, _ints, _strs, _digests, _close))
_NO_CLOSE = [[], []]


def _fast_ok(raw: dict) -> bool:
    if set(map(type, _g_strs(raw))) != _STR or not all(map(is_time, _g_times(raw))):
        return False
    for v in _g_opt_ints(raw):
        if v is not None and not (type(v) is int and 0 <= v <= _MAX_CODE):
            return False
    if not set(map(type, _g_opt_strs(raw))) <= _NONE_OR_STR:
        return False
    if set(map(type, _g_bools(raw))) != _BOOL:
        return False
    lists = _g_int_lists(raw)
    if set(map(type, lists)) != _LIST:
        return False
    flat = list(chain.from_iterable(lists))
    if flat:
        if set(map(type, flat)) != _INT:
            return False
        flat.sort()                        # ints only: no TypeError; cheaper than min + max
        if flat[0] < 0 or flat[-1] > _MAX_CODE:
            return False
    lists = _g_str_lists(raw)
    if set(map(type, lists)) != _LIST:
        return False
    flat = list(chain.from_iterable(lists))
    if flat and set(map(type, flat)) != _STR:
        return False
    lists = _g_digest_lists(raw)
    if set(map(type, lists)) != _LIST:
        return False
    flat = list(chain.from_iterable(lists))
    if flat and (set(map(type, flat)) != _BYTES or set(map(len, flat)) != _LEN32):
        return False
    for v in _g_close(raw):
        if v != _NO_CLOSE and not _close(v):     # [[], []]: no FIN, no RST seen
            return False
    for name, check in _RARE:
        v = raw[name]
        if (type(v) is not list or v) and not check(v):
            return False
    return True


def encode_certificate(sha256: bytes, der: bytes, facts: Mapping[str, Any]) -> bytes:
    return msgpack.packb({0: SCHEMA_VERSION, 1: sha256, 2: der, 3: dict(facts)},
                         use_bin_type=True)


def decode_certificate(data: bytes) -> tuple[bytes, bytes, dict]:
    try:
        m = msgpack.unpackb(data, raw=False, strict_map_key=False, max_bin_len=MAX_MESSAGE)
    except Exception as exc:
        raise SchemaError("not msgpack: %s" % one_line(exc)) from None
    if not isinstance(m, dict) or m.get(0) != SCHEMA_VERSION:
        raise SchemaError("not a certificate record of schema %d" % SCHEMA_VERSION)
    sha, der, facts = m.get(1), m.get(2), m.get(3)
    if not (isinstance(sha, bytes) and len(sha) == 32 and isinstance(der, bytes)
            and isinstance(facts, dict)):
        raise SchemaError("bad certificate record")
    if hashlib.sha256(der).digest() != sha:
        # filed under another certificate's digest: it would be judged in that one's place
        raise SchemaError("a certificate record whose DER does not hash to its digest")
    return sha, der, facts
