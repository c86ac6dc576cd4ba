"""The JSON rendering of a raw summary: :func:`summary_to_json`, the only one.

``summarize``, ``diagnose`` and ``watch`` render what the sensor core made; the Kafka analyzer
renders what :func:`proto.summary.decode_summary` gave it.  Its keys, in order, are
:data:`proto.summary.JSON_FIELDS` (tested).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from proto import names
from proto.hints import hints_to_json

__all__ = ["summary_to_json"]

_SIDE = ("client", "server")
# memo of the six named lists of an offer (see _offer)
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


#: side lists as they occur (each side at most once) -> their names
_SIDES_RENDERED = {(): (), (0,): ("client",), (1,): ("server",), (0, 1): ("client", "server"),
                   (1, 0): ("server", "client")}


def _sides_json(v: list) -> list:
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
    fin, rst, gaps = close["fin"], close["rst"], raw["gaps"]
    encrypted_alerts = raw["encrypted_alerts"]
    out = {
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
        "close": {"fin": _sides_json(fin) if fin else [], "rst": _sides_json(rst) if rst else []},
        "client_encrypted": list(raw["client_encrypted"]),
        "server_encrypted": list(raw["server_encrypted"]),
        "encrypted_alerts": [{"from": _SIDE[a[0]], "length": a[1]}
                             for a in encrypted_alerts] if encrypted_alerts else [],
        "gaps": _sides_json(gaps) if gaps else [],
        "truncated": raw["truncated"],
        "weirds": list(raw["weirds"]),
        "start": raw["start"],
        "end": raw["end"],
        "outcome": raw["outcome"],
        "sensor": raw["sensor"],
        "direction": raw["direction"],
    }
    if "endpoint_hints" in raw:         # optional (docs/summary-schema.md): absent = not rendered
        out["endpoint_hints"] = hints_to_json(raw["endpoint_hints"], version)
    return out
