"""Summaries as the sensor renders them (docs/summary-schema.md, schema v1), built by hand for the
analyzer's unit tests, with certificate facts from the sensor's own code (``Issued.facts``)."""

from __future__ import annotations

from typing import Iterable

from tests.support.pki import T0, Issued

__all__ = ["MODERN_SUITES", "T0", "alert", "ders", "make_summary"]

MODERN_SUITES = ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256",
                 "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                 "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"]

_counter = [0]


def make_summary(*, client: str = "10.1.0.5:51000", server: str = "10.2.0.9:443", sni: str | None = "api.example.com",
                 established: bool = True, outcome: str | None = None, version: str | None = "TLSv1.2",
                 cipher: str | None = "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
                 client_versions: list[str] | None = None, explicit_versions: bool = True,
                 client_ciphers: list[str] | None = None, chain: Iterable[Issued] = (),
                 client_chain: Iterable[Issued] = (), alerts: list[dict[str, object]] | None = None,
                 history: str | None = None, start: float | None = None, **extra: object) -> dict[str, object]:
    """A schema-v1 summary dict with realistic defaults (a successful TLS 1.2 handshake)."""
    _counter[0] += 1
    t = start if start is not None else T0.timestamp() + _counter[0]
    exts = ["server_name", "supported_groups", "ec_point_formats", "signature_algorithms", "extended_master_secret"]
    if explicit_versions:
        exts.append("supported_versions")
    if sni is None:
        exts.remove("server_name")
    cv = client_versions if client_versions is not None else ["TLSv1.3", "TLSv1.2"]
    s: dict[str, object] = {
        "id": f"{_counter[0]:016x}", "client": client, "server": server, "start": t, "end": t + 0.05,
        "version": version, "cipher": cipher, "curve": "x25519" if version else None, "server_name": sni,
        "alpn": None, "established": established, "resumed": False,
        "history": history if history is not None else ("CsxknGIFif" if established else "Cl"),
        "alerts": alerts or [], "last_alert": (alerts[-1]["description"] if alerts else None),
        "client_versions": cv, "client_ciphers": client_ciphers if client_ciphers is not None else list(MODERN_SUITES),
        "client_extensions": exts, "client_groups": ["x25519", "secp256r1"], "client_alpn": [],
        "client_signature_algorithms": ["ecdsa_secp256r1_sha256", "rsa_pss_rsae_sha256"],
        "client_key_shares": ["x25519"], "client_psk": False, "hrr": False,
        "certificates": [c.facts for c in chain], "client_certificates": [c.facts for c in client_chain],
        "certificate_request": False, "client_certificate_empty": False, "ja4": None,
        "close": {"fin": ["client", "server"], "rst": []}, "client_encrypted": [40, 120] if established else [],
        "server_encrypted": [40, 300] if established else [], "encrypted_alerts": [], "gaps": [], "truncated": False,
        "weirds": [], "outcome": outcome or ("established" if established else "alert"), "sensor": None,
        "direction": None,
    }
    s.update(extra)
    return s


def ders(*chains: Iterable[Issued]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for ch in chains:
        for i in ch:
            out[i.sha256] = i.der
    return out


def alert(sender: str, description: str, after: str | None, level: str = "fatal") -> dict[str, object]:
    return {"from": sender, "level": level, "description": description, "after": after}
