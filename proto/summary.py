"""Handshake summary wire format (msgpack, schema version :data:`SCHEMA_VERSION`) and its
JSON rendering.  See ``docs/summary-schema.md``.

A *raw summary* is a dict keyed by the JSON field names holding code points (ints) where the
JSON shows names, sides as 0 (client) / 1 (server), and certificates as 32-byte SHA-256
digests.  On the wire the keys are small integers (:data:`FIELDS`) and ``0`` carries the
schema version; each distinct certificate travels once as a *certificate record*.
"""
from __future__ import annotations

from collections.abc import Mapping
from itertools import chain
from operator import itemgetter
from typing import Any

import msgpack

from proto import names

__all__ = [
    "SCHEMA_VERSION", "FIELDS", "SchemaError", "encode_summary", "decode_summary",
    "summary_to_json", "encode_certificate", "decode_certificate", "MAX_MESSAGE",
]

SCHEMA_VERSION = 1
#: largest msgpack message we accept (a summary is ~1 KB; a certificate record ~ its DER)
MAX_MESSAGE = 4 * 1024 * 1024

#: JSON field name -> msgpack key.  Keys are append-only: never renumber.
FIELDS: dict[str, int] = {
    "id": 1, "client": 2, "server": 3, "start": 4, "end": 5, "version": 6, "cipher": 7,
    "curve": 8, "server_name": 9, "alpn": 10, "established": 11, "resumed": 12, "history": 13,
    "alerts": 14, "client_versions": 15, "client_ciphers": 16, "client_extensions": 17,
    "client_groups": 18, "client_alpn": 19, "client_signature_algorithms": 20,
    "client_key_shares": 21, "client_psk": 22, "hrr": 23, "certificates": 24,
    "client_certificates": 25, "certificate_request": 26, "client_certificate_empty": 27,
    "ja4": 28, "close": 29, "client_encrypted": 30, "server_encrypted": 31,
    "encrypted_alerts": 32, "gaps": 33, "truncated": 34, "weirds": 35, "outcome": 36,
    "sensor": 37, "direction": 38, "client_legacy_version": 39, "client_sslv2": 40,
    "curve_from_ske": 41,
}
_KEYS = {v: k for k, v in FIELDS.items()}
_REQUIRED = ("id", "client", "server", "start", "end", "history", "outcome")

_SIDE = ("client", "server")


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


def _is_num(v) -> bool:
    return type(v) is float or type(v) is int


def _is_bool(v) -> bool:
    return type(v) is bool


_NULLABLE = frozenset({"version", "cipher", "curve", "server_name", "alpn", "ja4", "sensor",
                       "direction", "client_legacy_version"})
_BOOLS = frozenset({"established", "resumed", "client_psk", "hrr", "certificate_request",
                    "client_certificate_empty", "truncated", "client_sslv2", "curve_from_ske"})

#: the shape every decoded field must have (what summary_to_json relies on)
_CHECKS = {
    "id": _is_str, "client": _is_str, "server": _is_str, "history": _is_str, "outcome": _is_str,
    "start": _is_num, "end": _is_num,
    "version": _opt_int, "cipher": _opt_int, "curve": _opt_int,
    "client_legacy_version": _opt_int,
    "server_name": _opt_str, "alpn": _opt_str, "ja4": _opt_str, "sensor": _opt_str,
    "direction": _opt_str,
    "alerts": _alerts,
    "client_versions": _ints, "client_ciphers": _ints, "client_extensions": _ints,
    "client_groups": _ints, "client_signature_algorithms": _ints, "client_key_shares": _ints,
    "client_alpn": _strs, "weirds": _strs,
    "certificates": _digests, "client_certificates": _digests,
    "client_encrypted": _ints, "server_encrypted": _ints,
    "encrypted_alerts": _encrypted_alerts,
    "gaps": _sides,
    "close": _close,
}
for _name in _BOOLS:
    _CHECKS[_name] = _is_bool
assert set(_CHECKS) == set(FIELDS)

#: msgpack key -> (field name, shape check)
_DECODE = {key: (name, _CHECKS[name]) for name, key in FIELDS.items()}
#: defaults of absent fields that are immutable (None / False); list fields get a fresh []
_SCALAR_DEFAULTS = {name: (False if name in _BOOLS else None) for name in FIELDS
                    if name in _BOOLS or name in _NULLABLE}
_LIST_FIELDS = tuple(name for name in FIELDS if name not in _SCALAR_DEFAULTS)
_TEMPLATE = {name: _SCALAR_DEFAULTS.get(name) for name in FIELDS}


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
        if _fast_ok(raw):
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
                            max_str_len=MAX_MESSAGE, max_array_len=100_000,
                            max_map_len=1000)
    except Exception as exc:
        raise SchemaError("not msgpack: %s" % exc) from None
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
_LIST = {list}
_BOOL = {bool}
_NONE_OR_STR = {type(None), str}
_MAX_CODE = 0xFFFFFF
_g_strs = itemgetter("id", "client", "server", "history", "outcome")
_g_opt_ints = itemgetter("version", "cipher", "curve", "client_legacy_version")
_g_opt_strs = itemgetter("server_name", "alpn", "ja4", "sensor", "direction")
_g_bools = itemgetter(*sorted(_BOOLS))
_g_int_lists = itemgetter("client_versions", "client_ciphers", "client_extensions",
                          "client_groups", "client_signature_algorithms", "client_key_shares",
                          "client_encrypted", "server_encrypted")
_g_str_lists = itemgetter("client_alpn", "weirds")
_g_digest_lists = itemgetter("certificates", "client_certificates")
#: fields usually empty: checked by their _CHECKS entry only when they are not []
_RARE = tuple((name, _CHECKS[name]) for name in ("alerts", "encrypted_alerts", "gaps"))
_NO_CLOSE = [[], []]
# every field is in exactly one group above (or start/end)
assert {"start", "end"} | set(_g_strs.__reduce__()[1]) | set(_g_opt_ints.__reduce__()[1]) \
    | set(_g_opt_strs.__reduce__()[1]) | set(_g_bools.__reduce__()[1]) \
    | set(_g_int_lists.__reduce__()[1]) | set(_g_str_lists.__reduce__()[1]) \
    | set(_g_digest_lists.__reduce__()[1]) | {n for n, _ in _RARE} | {"close"} == set(FIELDS)
assert all(_CHECKS[n] is _ints for n in _g_int_lists.__reduce__()[1])
assert all(_CHECKS[n] is _opt_int for n in _g_opt_ints.__reduce__()[1])


def _fast_ok(raw: dict) -> bool:
    if not (type(raw["id"]) is str and type(raw["client"]) is str
            and type(raw["server"]) is str and type(raw["history"]) is str
            and type(raw["outcome"]) is str):
        return False
    t = type(raw["start"])
    if t is not float and t is not int:
        return False
    t = type(raw["end"])
    if t is not float and t is not int:
        return False
    for v in _g_opt_ints(raw):
        if v is not None and not (type(v) is int and 0 <= v <= _MAX_CODE):
            return False
    if not set(map(type, _g_opt_strs(raw))) <= _NONE_OR_STR:
        return False
    if set(map(type, _g_bools(raw))) != _BOOL:
        return False
    a, b, c, d, e, f, g, h = _g_int_lists(raw)
    if not (type(a) is list and type(b) is list and type(c) is list and type(d) is list
            and type(e) is list and type(f) is list and type(g) is list and type(h) is list):
        return False
    flat = [*a, *b, *c, *d, *e, *f, *g, *h]
    if flat:
        if set(map(type, flat)) != _INT:
            return False
        flat.sort()                        # ints only: no TypeError; cheaper than min + max
        if flat[0] < 0 or flat[-1] > _MAX_CODE:
            return False
    a, b = _g_str_lists(raw)
    if not (type(a) is list and type(b) is list):
        return False
    if (a or b) and set(map(type, [*a, *b])) != _STR:
        return False
    a, b = _g_digest_lists(raw)
    if not (type(a) is list and type(b) is list):
        return False
    if a or b:
        flat = [*a, *b]
        if set(map(type, flat)) != _BYTES or set(map(len, flat)) != _LEN32:
            return False
    v = raw["close"]
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
        raise SchemaError("not msgpack: %s" % exc) from None
    if not isinstance(m, dict) or m.get(0) != SCHEMA_VERSION:
        raise SchemaError("not a certificate record of schema %d" % SCHEMA_VERSION)
    sha, der, facts = m.get(1), m.get(2), m.get(3)
    if not (isinstance(sha, bytes) and len(sha) == 32 and isinstance(der, bytes)
            and isinstance(facts, dict)):
        raise SchemaError("bad certificate record")
    return sha, der, facts


# ---------------------------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------------------------

def _opt(fn, v):
    return None if v is None else fn(v)


_RENDERED: dict = {}


def _names(fn, values) -> list:
    """``[fn(v) for v in values]``, memoized per (table, values): offers repeat a lot."""
    key = (fn, values if type(values) is tuple else tuple(values))
    r = _RENDERED.get(key)
    if r is None:
        if len(_RENDERED) > 65536:
            _RENDERED.clear()
        r = _RENDERED[key] = tuple(fn(v) for v in values)
    return list(r)


_OFFERS: dict = {}


def _offer(raw: Mapping[str, Any]) -> tuple:
    """The six named lists of the client's offer, memoized on the whole offer (a client
    stack sends the same one every time): one lookup instead of one per list."""
    key = (tuple(raw["client_versions"]), tuple(raw["client_ciphers"]),
           tuple(raw["client_extensions"]), tuple(raw["client_groups"]),
           tuple(raw["client_signature_algorithms"]), tuple(raw["client_key_shares"]))
    r = _OFFERS.get(key)
    if r is None:
        if len(_OFFERS) > 16384:
            _OFFERS.clear()
        r = _OFFERS[key] = (
            tuple(map(names.version_name, key[0])), tuple(map(names.cipher_name, key[1])),
            tuple(map(names.extension_name, key[2])), tuple(map(names.group_name, key[3])),
            tuple(map(names.sigalg_name, key[4])), tuple(map(names.group_name, key[5])))
    return r


def _certs(digests: list, facts: Mapping[bytes, dict]) -> list:
    out = []
    for d in digests:
        f = facts.get(d)
        out.append(f if f is not None else {"sha256": d.hex()})
    return out


_SIDES_RENDERED = {(): (), (0,): ("client",), (1,): ("server",), (0, 1): ("client", "server"),
                   (1, 0): ("server", "client")}


def _sides_json(v: list) -> list:
    if not v:
        return []
    r = _SIDES_RENDERED.get(tuple(v))
    return list(r) if r is not None else [_SIDE[x] for x in v]


def summary_to_json(raw: Mapping[str, Any], facts: Mapping[bytes, dict]) -> dict:
    """Render a raw summary with IANA names; ``facts`` maps SHA-256 digest -> certificate
    facts (a certificate without facts renders as ``{"sha256": hex}``)."""
    # (the empty lists most summaries carry are rendered without a comprehension each)
    alerts = raw["alerts"]
    if alerts:
        alerts = [{"from": _SIDE[a[0]], "level": names.alert_level_name(a[1]),
                   "description": names.alert_description_name(a[2]),
                   "after": names.handshake_name(a[3]) if a[3] >= 0 else None}
                  for a in alerts]
        last_alert = alerts[-1]["description"]
    else:
        alerts = []
        last_alert = None
    offer = _offer(raw)
    version, cipher, curve = raw["version"], raw["cipher"], raw["curve"]
    certificates, client_certificates = raw["certificates"], raw["client_certificates"]
    close = raw["close"]
    encrypted_alerts = raw["encrypted_alerts"]
    return {
        "id": raw["id"],
        "client": raw["client"],
        "server": raw["server"],
        "version": None if version is None else names.version_name(version),
        "cipher": None if cipher is None else names.cipher_name(cipher),
        "curve": None if curve is None else names.group_name(curve),
        "server_name": raw["server_name"],
        "alpn": raw["alpn"],
        "established": raw["established"],
        "resumed": raw["resumed"],
        "history": raw["history"],
        "alerts": alerts,
        "last_alert": last_alert,
        "client_versions": list(offer[0]),
        "client_ciphers": list(offer[1]),
        "client_extensions": list(offer[2]),
        "client_groups": list(offer[3]),
        "client_alpn": list(raw["client_alpn"]),
        "client_signature_algorithms": list(offer[4]),
        "client_key_shares": list(offer[5]),
        "client_psk": raw["client_psk"],
        "client_sslv2": raw["client_sslv2"],
        "hrr": raw["hrr"],
        "certificates": _certs(certificates, facts) if certificates else [],
        "client_certificates": _certs(client_certificates, facts) if client_certificates else [],
        "certificate_request": raw["certificate_request"],
        "client_certificate_empty": raw["client_certificate_empty"],
        "ja4": raw["ja4"],
        "close": {"fin": _sides_json(close["fin"]), "rst": _sides_json(close["rst"])},
        "client_encrypted": list(raw["client_encrypted"]),
        "server_encrypted": list(raw["server_encrypted"]),
        "encrypted_alerts": [{"from": _SIDE[a[0]], "length": a[1]}
                             for a in encrypted_alerts] if encrypted_alerts else [],
        "gaps": _sides_json(raw["gaps"]),
        "truncated": raw["truncated"],
        "weirds": list(raw["weirds"]),
        "start": raw["start"],
        "end": raw["end"],
        "outcome": raw["outcome"],
        "sensor": raw["sensor"],
        "direction": raw["direction"],
    }
