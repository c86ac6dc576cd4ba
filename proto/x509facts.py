"""Certificate facts for summaries and certificate records, read with ``cryptography``.

Pure computation on DER bytes; never raises on bad input: a certificate ``cryptography``
cannot read gives ``{"sha256": ..., "error": "..."}``.
"""
from __future__ import annotations

import hashlib
import warnings

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

__all__ = ["certificate_facts"]


def _iso(dt) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _key(cert) -> str:
    try:
        k = cert.public_key()
    except Exception:                       # unsupported algorithm (e.g. ML-DSA, GOST)
        return "unknown-" + cert.public_key_algorithm_oid.dotted_string \
            if hasattr(cert, "public_key_algorithm_oid") else "unknown"
    if isinstance(k, rsa.RSAPublicKey):
        return "rsa-%d" % k.key_size
    if isinstance(k, ec.EllipticCurvePublicKey):
        return "ec-%s" % k.curve.name
    if isinstance(k, ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(k, ed448.Ed448PublicKey):
        return "ed448"
    if isinstance(k, dsa.DSAPublicKey):
        return "dsa-%d" % k.key_size
    return type(k).__name__


def _sig_name(cert) -> str:
    oid = cert.signature_algorithm_oid
    name = getattr(oid, "_name", None)
    return name if name and name != "Unknown OID" else oid.dotted_string


def certificate_facts(der: bytes) -> dict:
    """The facts of one DER certificate (see docs/summary-schema.md)."""
    sha = hashlib.sha256(der).hexdigest()
    with warnings.catch_warnings():
        # e.g. "serial number which wasn't positive": we report facts, not policy
        warnings.simplefilter("ignore")
        return _facts(der, sha)


def _facts(der: bytes, sha: str) -> dict:
    try:
        cert = x509.load_der_x509_certificate(der)
        facts = {
            "sha256": sha,
            "subject": cert.subject.rfc4514_string(),
            "issuer": cert.issuer.rfc4514_string(),
            "serial": "%X" % cert.serial_number,
            "not_before": _iso(cert.not_valid_before_utc),
            "not_after": _iso(cert.not_valid_after_utc),
            "san_dns": [],
            "san_ip": [],
            "key": _key(cert),
            "signature_algorithm": _sig_name(cert),
            "is_ca": False,
            "self_signed": False,
        }
    except Exception as exc:               # malformed DER is data, not a crash
        return {"sha256": sha, "error": "%s: %s" % (type(exc).__name__, str(exc)[:200])}
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        facts["san_dns"] = [str(v) for v in san.get_values_for_type(x509.DNSName)]
        facts["san_ip"] = [str(v) for v in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        pass
    except Exception as exc:
        facts["extension_error"] = "subjectAltName: %s" % str(exc)[:200]
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        facts["is_ca"] = bool(bc.ca)
    except x509.ExtensionNotFound:
        pass
    except Exception as exc:
        facts["extension_error"] = "basicConstraints: %s" % str(exc)[:200]
    if cert.subject == cert.issuer:
        try:
            cert.verify_directly_issued_by(cert)
            facts["self_signed"] = True
        except Exception:
            facts["self_signed"] = False
    return facts
