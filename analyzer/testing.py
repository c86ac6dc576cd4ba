"""Test support: a throwaway PKI factory and a summary builder producing schema-v1 summary dicts.

Used by the tests and the benchmark; never by the diagnosis path.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
from dataclasses import dataclass
from typing import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

UTC = dt.timezone.utc
#: the reference "capture time" for generated scenarios
T0 = dt.datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.der).hexdigest()


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tlsdiag test"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def issue(cn: str, issuer: Issued | None = None, *, ca: bool = False, sans: Iterable[str] = (),
          not_before: dt.datetime | None = None, not_after: dt.datetime | None = None,
          client: bool = False, key: ec.EllipticCurvePrivateKey | None = None,
          issuer_name: x509.Name | None = None) -> Issued:
    """Issue a certificate (self-signed when ``issuer`` is None). ``sans``: DNS names or IP literals."""
    k = key or ec.generate_private_key(ec.SECP256R1())
    nb = not_before or (T0 - dt.timedelta(days=30))
    na = not_after or (T0 + dt.timedelta(days=365))
    subject = _name(cn)
    b = (x509.CertificateBuilder().subject_name(subject)
         .issuer_name(issuer_name or (issuer.cert.subject if issuer else subject))
         .public_key(k.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(nb).not_valid_after(na)
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(k.public_key()), critical=False))
    signer = issuer.key if issuer else k
    b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False)
    if ca:
        b = b.add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                          data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                          crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
    else:
        names: list[x509.GeneralName] = []
        for s in sans:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(s)))
            except ValueError:
                names.append(x509.DNSName(s))
        if names:
            b = b.add_extension(x509.SubjectAlternativeName(names), critical=False)
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH if client
                                                   else ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    cert = b.sign(signer, hashes.SHA256())
    return Issued(cert, k)


@dataclass(frozen=True)
class Pki:
    root: Issued
    inter: Issued
    leaf: Issued                 # CN/SAN api.example.com, *.api.example.com
    expired: Issued
    not_yet_valid: Issued
    wrong_name: Issued
    self_signed: Issued
    other_root: Issued
    other_leaf: Issued           # issued directly by other_root (untrusted)
    client: Issued               # client cert from inter
    client_expired: Issued


def make_pki() -> Pki:
    root = issue("Test Root CA", ca=True, not_before=T0 - dt.timedelta(days=3650), not_after=T0 + dt.timedelta(days=3650))
    inter = issue("Test Intermediate CA", root, ca=True)
    leaf = issue("api.example.com", inter, sans=["api.example.com", "*.api.example.com"])
    expired = issue("old.example.com", inter, sans=["old.example.com"], not_before=T0 - dt.timedelta(days=400),
                    not_after=T0 - dt.timedelta(days=10))
    nyv = issue("new.example.com", inter, sans=["new.example.com"], not_before=T0 + dt.timedelta(days=10))
    wrong = issue("something.example.com", inter, sans=["something.example.com"])
    selfs = issue("self.example.com", None, sans=["self.example.com"])
    other_root = issue("Other Root CA", ca=True)
    other_leaf = issue("api.example.com", other_root, sans=["api.example.com"])
    client = issue("client-app", inter, client=True)
    client_expired = issue("client-old", inter, client=True, not_before=T0 - dt.timedelta(days=400),
                           not_after=T0 - dt.timedelta(days=1))
    return Pki(root, inter, leaf, expired, nyv, wrong, selfs, other_root, other_leaf, client, client_expired)


def cert_facts(i: Issued) -> dict[str, object]:
    """The summary's certificate facts, as the sensor computes them."""
    c = i.cert
    try:
        san = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = san.get_values_for_type(x509.DNSName)
        ips = [str(a) for a in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        dns, ips = [], []
    try:
        is_ca = c.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    return {
        "sha256": i.sha256, "subject": c.subject.rfc4514_string(), "issuer": c.issuer.rfc4514_string(),
        "serial": format(c.serial_number, "X"), "not_before": c.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "not_after": c.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"), "san_dns": dns, "san_ip": ips,
        "key": "ec-secp256r1", "signature_algorithm": "ecdsa-with-SHA256", "is_ca": is_ca,
        "self_signed": c.subject == c.issuer,
    }


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
        "certificates": [cert_facts(c) for c in chain], "client_certificates": [cert_facts(c) for c in client_chain],
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
