"""The JSON rendering of a raw summary: :func:`summary_to_json`, the only one.

``summarize``, ``diagnose`` and ``watch`` render what the sensor core made; the Kafka analyzer
renders what :func:`proto.summary.decode_summary` gave it.  Its keys, in order, are
:data:`proto.summary.JSON_FIELDS` (tested).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from proto import names
from proto.hints import hints_to_json
from proto.summary import JSON_FIELDS

__all__ = ["summary_to_json", "offer_names"]

_SIDE = ("client", "server")
_version_name, _cipher_name, _extension_name = (names.version_name, names.cipher_name,
                                                names.extension_name)
_group_name, _sigalg_name = names.group_name, names.sigalg_name


def _table(name_of, codes) -> Callable[[int], str]:
    """``__getitem__`` of {code: name_of(code)} over the registered ``codes``: the names a
    summary carries almost always, looked up in C (``map``) instead of a Python call per code.
    Made by ``name_of`` itself, so a hit is what ``name_of`` says; a miss (KeyError) falls
    back to it."""
    return {c: name_of(c) for c in codes}.__getitem__


_VERSION = _table(_version_name, (0x0002, 0x0200, 0x0300, 0x0301, 0x0302, 0x0303, 0x0304,
                                  0xFEFF, 0xFEFD, 0xFEFC, *range(0x7F00, 0x7F20)))
_CIPHER = _table(_cipher_name, names.CIPHER_NAMES)
_EXTENSION = _table(_extension_name, names.EXTENSION_NAMES)
_GROUP = _table(_group_name, names.GROUP_NAMES)
_SIGALG = _table(_sigalg_name, names.SIGALG_NAMES)


def _named(codes, table, name_of) -> list:
    """``list(map(name_of, codes))``, through ``table`` in C."""
    try:
        return list(map(table, codes))
    except KeyError:                        # unregistered or GREASE: the slow, exact way
        return list(map(name_of, codes))


def _name(code, table, name_of):
    try:
        return table(code)
    except KeyError:
        return name_of(code)


def offer_names(key: tuple) -> tuple:
    """The names of ``key`` = (versions, ciphers, groups, signature algorithms, key share
    groups), each a tuple of code points: five tuples of names.  Pure, so a caller that
    renders many summaries memoizes it (``functools.lru_cache``, one per caller: the offers
    of its traffic) and hands that to :func:`summary_to_json`."""
    return (tuple(_named(key[0], _VERSION, _version_name)),
            tuple(_named(key[1], _CIPHER, _cipher_name)),
            tuple(_named(key[2], _GROUP, _group_name)),
            tuple(_named(key[3], _SIGALG, _sigalg_name)),
            tuple(_named(key[4], _GROUP, _group_name)))


def _copy(names):
    """A list of a memoized tuple of names (never shared between summaries); anything else
    (a pre-serialized value) as it is."""
    return list(names) if type(names) is tuple else names


def _certs(digests: list, facts: Mapping[bytes, dict]) -> list:
    out = []
    get = facts.get
    for d in digests:
        f = get(d)
        out.append(f if f is not None else {"sha256": d.hex()})
    return out


#: side lists as they occur (each side at most once) -> their names
_SIDES_RENDERED = {(): (), (0,): ("client",), (1,): ("server",), (0, 1): ("client", "server"),
                   (1, 0): ("server", "client")}


def _sides_json(v: list) -> list:
    r = _SIDES_RENDERED.get(tuple(v))
    return list(r) if r is not None else [_SIDE[x] for x in v]


#: the output's keys in order (JSON_FIELDS), every value None: a copy of it is filled in
#: place -- a dict display of this many keys compiles to 16-key chunks merged one by one,
#: three times the cost of the copy and the stores
_TEMPLATE = dict.fromkeys(JSON_FIELDS)


def summary_to_json(raw: Mapping[str, Any], facts: Mapping[bytes, dict],
                    offer_names: Callable[[tuple], tuple] = offer_names) -> dict:
    """Render a raw summary with IANA names; ``facts`` maps SHA-256 digest -> certificate
    facts (a certificate without facts renders as ``{"sha256": hex}``).  ``offer_names`` is
    :func:`offer_names`, or the caller's memo of it -- whose values may also be already
    serialized (``orjson.Fragment``, for output through orjson only), put in as they are."""
    # (the empty lists most summaries carry are rendered without a comprehension each)
    j = _TEMPLATE.copy()
    j["id"] = raw["id"]
    j["client"] = raw["client"]
    j["server"] = raw["server"]
    v = raw["version"]
    if v is not None:
        j["version"] = _name(v, _VERSION, _version_name)
    v = raw["cipher"]
    if v is not None:
        j["cipher"] = _name(v, _CIPHER, _cipher_name)
    v = raw["curve"]
    if v is not None:
        j["curve"] = _name(v, _GROUP, _group_name)
    j["server_name"] = raw["server_name"]
    j["alpn"] = raw["alpn"]
    j["established"] = raw["established"]
    j["resumed"] = raw["resumed"]
    j["history"] = raw["history"]
    alerts = raw["alerts"]
    if alerts:
        alerts = [{"from": _SIDE[a[0]], "level": names.alert_level_name(a[1]),
                   "description": names.alert_description_name(a[2]),
                   "after": names.handshake_name(a[3]) if a[3] >= 0 else None}
                  for a in alerts]
        j["alerts"] = alerts
        j["last_alert"] = alerts[-1]["description"]
    else:
        j["alerts"] = []
    # the client's offer but for its extensions, which browsers permute per connection: the
    # caller memoizes its names per client stack; immutable, copied into each summary
    o = offer_names((tuple(raw["client_versions"]), tuple(raw["client_ciphers"]),
                     tuple(raw["client_groups"]), tuple(raw["client_signature_algorithms"]),
                     tuple(raw["client_key_shares"])))
    j["client_versions"] = _copy(o[0])
    j["client_ciphers"] = _copy(o[1])
    v = raw["client_extensions"]
    j["client_extensions"] = _named(v, _EXTENSION, _extension_name) if v else []
    j["client_groups"] = _copy(o[2])
    j["client_alpn"] = list(raw["client_alpn"])
    j["client_signature_algorithms"] = _copy(o[3])
    j["client_key_shares"] = _copy(o[4])
    j["client_psk"] = raw["client_psk"]
    j["client_sslv2"] = raw["client_sslv2"]
    j["hrr"] = raw["hrr"]
    v = raw["certificates"]
    j["certificates"] = _certs(v, facts) if v else []
    v = raw["client_certificates"]
    j["client_certificates"] = _certs(v, facts) if v else []
    j["certificate_request"] = raw["certificate_request"]
    j["client_certificate_empty"] = raw["client_certificate_empty"]
    j["ja4"] = raw["ja4"]
    close = raw["close"]
    fin, rst = close["fin"], close["rst"]
    j["close"] = {"fin": _sides_json(fin) if fin else [], "rst": _sides_json(rst) if rst else []}
    j["client_encrypted"] = list(raw["client_encrypted"])
    j["server_encrypted"] = list(raw["server_encrypted"])
    v = raw["encrypted_alerts"]
    j["encrypted_alerts"] = [{"from": _SIDE[a[0]], "length": a[1]} for a in v] if v else []
    v = raw["gaps"]
    j["gaps"] = _sides_json(v) if v else []
    j["truncated"] = raw["truncated"]
    j["weirds"] = list(raw["weirds"])
    j["start"] = raw["start"]
    j["end"] = raw["end"]
    j["outcome"] = raw["outcome"]
    j["sensor"] = raw["sensor"]
    j["direction"] = raw["direction"]
    if "endpoint_hints" in raw:         # optional (docs/summary-schema.md): absent = not rendered
        j["endpoint_hints"] = hints_to_json(raw["endpoint_hints"], raw["version"])
    return j
