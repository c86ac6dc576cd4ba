"""The one throwaway PKI factory of the tests (test data only, never for real use).

* :func:`issue` makes one certificate (self-signed when no issuer is given), EC P-256 keys by default
  (fast) or RSA-2048 (``key_type="rsa"``: what TLS 1.0 at SECLEVEL=0 and JSSE need);
* :func:`make_pki` is the analyzer tests' set (EC, validity around :data:`T0`, the reference capture
  time of hand-built summaries);
* :func:`build` writes the handshake-failure scenarios' PKI as PEM files (RSA, validity around now),
  used by ``tests/scenarios/generate.py``;
* ``Issued.facts`` are a certificate's summary facts computed the way the sensor computes them
  (:func:`proto.x509facts.certificate_facts`), never by hand.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import logging
import os
from dataclasses import dataclass
from typing import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from proto.x509facts import certificate_facts

log = logging.getLogger(__name__)

UTC = dt.timezone.utc
DAY = dt.timedelta(days=1)
#: the reference "capture time" of the analyzer tests' hand-built summaries
T0 = dt.datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    key: PrivateKey

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.der).hexdigest()

    @property
    def facts(self) -> dict:
        """The summary's certificate facts, computed by the sensor's own code."""
        return certificate_facts(self.der)


def new_key(key_type: str = "ec") -> PrivateKey:
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def name(cn: str, org: str | None = "tlsdiag test") -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)] if org else []
    return x509.Name(attrs + [x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def issue(cn: str, issuer: Issued | None = None, *, ca: bool = False, sans: Iterable[str] = (),
          not_before: dt.datetime | None = None, not_after: dt.datetime | None = None, client: bool = False,
          key: PrivateKey | None = None, key_type: str = "ec", org: str | None = "tlsdiag test",
          issuer_name: x509.Name | None = None, path_length: int | None = None) -> Issued:
    """Issue a certificate (self-signed when ``issuer`` is None).  ``sans``: DNS names or IP literals (no
    SAN extension when empty); ``issuer_name`` overrides the issuer field (a certificate that lies about
    its issuer); validity defaults to T0 - 30 days .. T0 + 365 days."""
    k = key or new_key(key_type)
    subject = name(cn, org)
    signer = issuer.key if issuer else k
    b = (x509.CertificateBuilder().subject_name(subject)
         .issuer_name(issuer_name or (issuer.cert.subject if issuer else subject))
         .public_key(k.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(not_before or (T0 - 30 * DAY)).not_valid_after(not_after or (T0 + 365 * DAY))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(k.public_key()), critical=False))
    if issuer is not None or not ca:       # a root names no authority key; a self-signed leaf names its own
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False)
    b = b.add_extension(x509.KeyUsage(
        digital_signature=True, content_commitment=False,
        key_encipherment=not ca and isinstance(k, rsa.RSAPrivateKey), data_encipherment=False,
        key_agreement=False, key_cert_sign=ca, crl_sign=ca, encipher_only=False, decipher_only=False), critical=True)
    if not ca:
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
    return Issued(b.sign(signer, hashes.SHA256()), k)


# ------------------------------------------------------------------------------------------ the analyzer tests' set


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
    root = issue("Test Root CA", ca=True, not_before=T0 - 3650 * DAY, not_after=T0 + 3650 * DAY)
    inter = issue("Test Intermediate CA", root, ca=True)
    leaf = issue("api.example.com", inter, sans=["api.example.com", "*.api.example.com"])
    expired = issue("old.example.com", inter, sans=["old.example.com"], not_before=T0 - 400 * DAY,
                    not_after=T0 - 10 * DAY)
    nyv = issue("new.example.com", inter, sans=["new.example.com"], not_before=T0 + 10 * DAY)
    wrong = issue("something.example.com", inter, sans=["something.example.com"])
    selfs = issue("self.example.com", None, sans=["self.example.com"])
    other_root = issue("Other Root CA", ca=True)
    other_leaf = issue("api.example.com", other_root, sans=["api.example.com"])
    client = issue("client-app", inter, client=True)
    client_expired = issue("client-old", inter, client=True, not_before=T0 - 400 * DAY, not_after=T0 - DAY)
    return Pki(root, inter, leaf, expired, nyv, wrong, selfs, other_root, other_leaf, client, client_expired)


# ------------------------------------------------------------------------------------------ the scenarios' files

#: file stem -> description, written to pki/README.txt
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


def build(outdir: str, now: dt.datetime | None = None) -> dict[str, str]:
    """Create the scenarios' PKI under ``outdir``; return {stem: path-prefix} (``prefix.pem``/``.key``).

    Every key is RSA-2048 (works with TLS 1.0 at SECLEVEL=0 and with JSSE).  Validity is relative to
    ``now``: at capture time the good certificates are valid, the expired one has expired and the
    not-yet-valid one is not yet valid.  For leaves, ``<stem>.pem`` holds only the leaf and
    ``<stem>-chain.pem`` the leaf followed by its issuer (what a correctly configured server sends).
    """
    now = now or dt.datetime.now(UTC).replace(microsecond=0)
    os.makedirs(outdir, exist_ok=True)
    org = "tlsdiag scenarios"

    def ca(cn: str, issuer: Issued | None = None, org: str = org) -> Issued:
        return issue(cn, issuer, ca=True, key_type="rsa", org=org, not_before=now - 30 * DAY,
                     not_after=now + 3650 * DAY, path_length=None if issuer is None else 0)

    def leaf(cn: str, sans: list[str], issuer: Issued | None, nb: dt.datetime, na: dt.datetime,
             client: bool = False) -> Issued:
        return issue(cn, issuer, sans=sans, not_before=nb, not_after=na, client=client, key_type="rsa", org=org)

    root = ca("tlsdiag Test Root CA")
    inter = ca("tlsdiag Test Intermediate CA", root)
    other = ca("Untrusted Test Root CA", org="somebody else")
    good_from, good_to = now - 7 * DAY, now + 397 * DAY
    api = ["api.example.test", "backend.example.test"]
    cl = ["client.example.test"]
    leaves: dict[str, tuple[Issued, Issued | None]] = {
        "server-good": (leaf("api.example.test", api, inter, good_from, good_to), inter),
        "server-wrongname": (leaf("something.example.test", ["something.example.test"], inter,
                                  good_from, good_to), inter),
        "server-expired": (leaf("api.example.test", api, inter, now - 400 * DAY, now - 30 * DAY), inter),
        "server-notyet": (leaf("api.example.test", api, inter, now + 30 * DAY, now + 400 * DAY), inter),
        "server-untrusted": (leaf("api.example.test", api, other, good_from, good_to), other),
        "server-selfsigned": (leaf("api.example.test", api, None, good_from, good_to), None),
        "client-good": (leaf("client.example.test", cl, inter, good_from, good_to, client=True), inter),
        "client-expired": (leaf("client.example.test", cl, inter, now - 400 * DAY, now - 30 * DAY,
                                client=True), inter),
        "client-unknown": (leaf("client.example.test", cl, other, good_from, good_to, client=True), other),
    }
    paths: dict[str, str] = {}

    def write(stem: str, item: Issued, chain: list[Issued]) -> None:
        prefix = os.path.join(outdir, stem)
        with open(prefix + ".pem", "wb") as f:
            f.write(item.pem)
        with open(prefix + ".key", "wb") as f:
            f.write(item.key_pem)
        if chain:
            with open(prefix + "-chain.pem", "wb") as f:
                f.write(item.pem + b"".join(c.pem for c in chain))
        paths[stem] = prefix

    write("root", root, [])
    write("intermediate", inter, [])
    write("untrusted-root", other, [])
    for stem, (item, issuer) in leaves.items():
        write(stem, item, [issuer] if issuer is not None else [])
    with open(os.path.join(outdir, "README.txt"), "w", encoding="utf-8") as f:
        f.write("Throwaway test PKI generated by tests/support/pki.py at %s.\n"
                "Keys are unencrypted on purpose: test data only.\n\n" % now.isoformat())
        for stem, text in CONTENTS.items():
            f.write("%-18s %s\n" % (stem, text))
    log.info("PKI written to %s (%d certificates)", outdir, len(paths))
    return paths
