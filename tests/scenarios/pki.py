"""Throwaway PKI for the handshake-failure scenarios (test data only, never for real use).

Builds a root CA, an intermediate CA, an untrusted second root, and the leaves the scenarios
serve or present.  Validity windows are relative to ``now`` so that, at capture time, the
"good" certificates are valid, the expired one has expired and the not-yet-valid one is not
yet valid.  Every key is RSA-2048 (works with TLS 1.0 at SECLEVEL=0 and with JSSE).
"""
from __future__ import annotations

import datetime as _dt
import logging
import os
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger(__name__)

DAY = _dt.timedelta(days=1)


@dataclass
class Issued:
    cert: x509.Certificate
    key: rsa.RSAPrivateKey


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(cn: str, org: str = "tlsdiag scenarios") -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
    ])


def _ca(cn: str, now: _dt.datetime, issuer: Issued | None = None, org: str = "tlsdiag scenarios") -> Issued:
    key = _key()
    subject = _name(cn, org)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - 30 * DAY)
        .not_valid_after(now + 3650 * DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None if issuer is None else 0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    signer = issuer.key if issuer else key
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False)
    return Issued(builder.sign(signer, hashes.SHA256()), key)


def _leaf(cn: str, sans: list[str], issuer: Issued | None, not_before: _dt.datetime,
          not_after: _dt.datetime, client: bool = False) -> Issued:
    """Leaf certificate; ``issuer=None`` makes it self-signed."""
    key = _key()
    subject = _name(cn)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.CLIENT_AUTH] if client else [ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    signer_key = issuer.key if issuer else key
    builder = builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key()), critical=False)
    return Issued(builder.sign(signer_key, hashes.SHA256()), key)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


# file stem -> description, written to pki/README.txt
CONTENTS = {
    "root": "trusted root CA (the truststore for every verifying client and for mTLS servers)",
    "intermediate": "intermediate CA signed by root; issues all trusted leaves",
    "untrusted-root": "a second root CA that no truststore contains",
    "server-good": "api.example.test (SANs api.example.test, backend.example.test) by intermediate, valid",
    "server-wrongname": "something.example.test by intermediate, valid (served for myorg.example.test)",
    "server-expired": "api.example.test / backend.example.test by intermediate, expired 30 days before generation",
    "server-notyet": "api.example.test / backend.example.test by intermediate, valid from 30 days after generation",
    "server-untrusted": "api.example.test / backend.example.test by untrusted-root",
    "server-selfsigned": "api.example.test / backend.example.test self-signed",
    "client-good": "client.example.test (clientAuth) by intermediate, valid",
    "client-expired": "client.example.test (clientAuth) by intermediate, expired",
    "client-unknown": "client.example.test (clientAuth) by untrusted-root",
}


def build(outdir: str, now: _dt.datetime | None = None) -> dict[str, str]:
    """Create the PKI under ``outdir``; return {stem: path-prefix} (``prefix.pem``/``.key``).

    For leaves, ``<stem>.pem`` holds only the leaf and ``<stem>-chain.pem`` the leaf followed by
    the intermediate (what a correctly configured server sends).
    """
    now = now or _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
    os.makedirs(outdir, exist_ok=True)
    root = _ca("tlsdiag Test Root CA", now)
    inter = _ca("tlsdiag Test Intermediate CA", now, issuer=root)
    other = _ca("Untrusted Test Root CA", now, org="somebody else")
    good_from, good_to = now - 7 * DAY, now + 397 * DAY
    api = ["api.example.test", "backend.example.test"]
    leaves: dict[str, tuple[Issued, Issued | None]] = {
        "server-good": (_leaf("api.example.test", api, inter, good_from, good_to), inter),
        "server-wrongname": (_leaf("something.example.test", ["something.example.test"], inter,
                                   good_from, good_to), inter),
        "server-expired": (_leaf("api.example.test", api, inter, now - 400 * DAY, now - 30 * DAY), inter),
        "server-notyet": (_leaf("api.example.test", api, inter, now + 30 * DAY, now + 400 * DAY), inter),
        "server-untrusted": (_leaf("api.example.test", api, other, good_from, good_to), other),
        "server-selfsigned": (_leaf("api.example.test", api, None, good_from, good_to), None),
        "client-good": (_leaf("client.example.test", ["client.example.test"], inter, good_from, good_to,
                              client=True), inter),
        "client-expired": (_leaf("client.example.test", ["client.example.test"], inter, now - 400 * DAY,
                                 now - 30 * DAY, client=True), inter),
        "client-unknown": (_leaf("client.example.test", ["client.example.test"], other, good_from, good_to,
                                 client=True), other),
    }
    paths: dict[str, str] = {}

    def write(stem: str, item: Issued, chain: list[x509.Certificate]) -> None:
        prefix = os.path.join(outdir, stem)
        with open(prefix + ".pem", "wb") as f:
            f.write(_pem(item.cert))
        with open(prefix + ".key", "wb") as f:
            f.write(_key_pem(item.key))
        if chain:
            with open(prefix + "-chain.pem", "wb") as f:
                f.write(_pem(item.cert) + b"".join(_pem(c) for c in chain))
        paths[stem] = prefix

    write("root", root, [])
    write("intermediate", inter, [])
    write("untrusted-root", other, [])
    for stem, (item, issuer) in leaves.items():
        write(stem, item, [issuer.cert] if issuer is not None else [])
    with open(os.path.join(outdir, "README.txt"), "w", encoding="utf-8") as f:
        f.write("Throwaway test PKI generated by tests/scenarios/pki.py at %s.\n"
                "Keys are unencrypted on purpose: test data only.\n\n" % now.isoformat())
        for stem, text in CONTENTS.items():
            f.write("%-18s %s\n" % (stem, text))
    log.info("PKI written to %s (%d certificates)", outdir, len(paths))
    return paths
