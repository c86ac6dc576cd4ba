"""The served certificate chain: validated by :class:`analyzer.certs.CertChecker`, the diagnosis engine's own
checker, so the probe judges a served chain exactly like ``tlsdiag diagnose`` judges a captured one; and
fetched with ``openssl s_client -showcerts`` when OpenSSL's message callback is not available."""
from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import os
import re
import shutil
import ssl
import subprocess
import warnings
from typing import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ..causes import CERTIFICATE_REJECTED, UNKNOWN
from ..certs import EXPIRING_SOON, HOSTNAME_MISMATCH, PROBLEM_CAUSE, CertChecker
from ..config import ConfigError, TrustStore, load_truststore
from .attempt import ProbeError
from .hello import MAX_CHAIN_CERTS

log = logging.getLogger(__name__)

__all__ = ["chain_via_openssl", "load_roots", "validate_chain", "EXPIRY_WARNING_DAYS"]

EXPIRY_WARNING_DAYS = 30
_PEM_RE = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


def chain_via_openssl(host: str, port: int, servername: str | None, timeout: float) -> list[bytes]:
    exe = shutil.which("openssl")
    if not exe:
        return []
    connect = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    cmd = [exe, "s_client", "-connect", connect, "-showcerts"]
    cmd += ["-servername", servername] if servername else ["-noservername"]
    try:
        out = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout + 2,
                             check=False).stdout
    except (OSError, subprocess.SubprocessError) as e:
        log.warning("openssl s_client failed: %s", e)
        return []
    ders: list[bytes] = []
    for pem in _PEM_RE.findall(out)[:MAX_CHAIN_CERTS]:
        try:
            ders.append(x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER))
        except ValueError:
            continue
    return ders


def load_roots(truststore: str | None) -> TrustStore | None:
    """Trust anchors: the ``--truststore`` (via analyzer.config), else this host's system bundle."""
    if truststore:
        try:
            return load_truststore(truststore)
        except ConfigError as e:
            raise ProbeError(str(e)) from None
    path = ssl.get_default_verify_paths().cafile
    if path and os.path.isfile(path):
        try:
            with open(path, "rb") as f, warnings.catch_warnings():
                warnings.simplefilter("ignore")  # some system roots carry non-positive serial numbers
                certs = tuple(x509.load_pem_x509_certificates(f.read()))
            return TrustStore(source=f"system ({path})", certs=certs)
        except (OSError, ValueError):
            log.warning("cannot read the system trust bundle %s", path)
    return None


def validate_chain(ders: Sequence[bytes], servername: str | None, roots: TrustStore | None,
                   now: _dt.datetime | None = None) -> dict[str, object]:
    """Validate the chain exactly as sent; returns plain facts plus ``problems`` (cause, severity, message)."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    ders = list(ders[:MAX_CHAIN_CERTS])
    shas = [hashlib.sha256(d).hexdigest() for d in ders]
    checker = CertChecker({"default": roots} if roots is not None else None,
                          expiry_warning_days=EXPIRY_WARNING_DAYS)
    rep = checker.check([{"sha256": s} for s in shas], dict(zip(shas, ders)), side="server", when=now,
                        hostname=servername, hostname_source="sni" if servername else None,
                        direction="southbound")
    facts: list[dict[str, object]] = []
    if rep is not None:
        for i, c in enumerate(rep.chain):
            facts.append({
                "index": i, "subject": c.subject, "issuer": c.issuer, "sha256": c.sha256,
                "not_before": c.not_before.isoformat() if c.not_before else None,
                "not_after": c.not_after.isoformat() if c.not_after else None,
                "days_left": (c.not_after - now).days if c.not_after else None,
                "expired": bool(c.not_after and now > c.not_after),
                "not_yet_valid": bool(c.not_before and now < c.not_before),
                "self_signed": c.self_signed, "ca": c.is_ca, "san_dns": list(c.san_dns), "san_ip": list(c.san_ip),
                "error": c.error,
            })
    problems: list[dict[str, object]] = []
    for p in rep.problems if rep is not None else ():
        problems.append({"cause": PROBLEM_CAUSE.get(p.code, CERTIFICATE_REJECTED).id,
                         "severity": "warning" if p.code == EXPIRING_SOON else "failure",
                         "problem": p.code, "cert_index": p.index,
                         "message": (f"certificate #{p.index} " if p.index > 0 else ("leaf " if p.index == 0 else ""))
                                    + f"{p.subject}: {p.detail}"})
    if rep is None:
        problems.append({"cause": UNKNOWN.id, "severity": "failure", "problem": "no_certificate",
                         "cert_index": -1, "message": "server sent no certificate"})
    hostname: dict[str, object] = {"name": servername, "matches": None, "how": None}
    if rep is not None and servername:
        hostname["matches"] = HOSTNAME_MISMATCH not in rep.codes()
        hostname["how"] = rep.hostname_how
    return {
        "sent": len(ders), "certificates": facts, "problems": problems, "hostname": hostname,
        "anchored": rep.anchored if rep is not None else False,
        "trust": {"truststore": roots.source if roots is not None else None,
                  "verified": (rep.verifier == "ok") if rep is not None and rep.verifier is not None else None,
                  "verifier": rep.verifier if rep is not None else None},
        "notes": list(rep.notes) if rep is not None else [],
        "checked_at": now.isoformat(),
    }
