"""Certificate-chain checks: each problem named, judged only from what was sent on the connection.

Two layers:

* explicit checks (always): validity at the handshake's capture time, hostname vs SNI or a configured target
  (RFC 6125 wildcard rules on SAN dNSName/iPAddress, CN fallback only when the certificate has no SAN),
  issuer/subject links and signatures inside the sent chain, missing issuer, self-signed, untrusted root;
* ``cryptography.x509.verification`` (when a truststore is given): a full path validation, its verdict kept as
  evidence and used when the explicit checks named nothing.

Chain completeness uses only the certificates sent on this connection plus the truststore, never
intermediates seen on other connections.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import ipaddress
import logging
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import dsa, rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509 import verification as xv
from cryptography.x509.oid import NameOID

from . import causes
from .causes import Cause
from .config import TrustStore

log = logging.getLogger(__name__)

UTC = dt.timezone.utc

# Problem codes (stable strings) and the cause each maps to.
EXPIRED = "expired"
NOT_YET_VALID = "not_yet_valid"
EXPIRING_SOON = "expiring_soon"
HOSTNAME_MISMATCH = "hostname_mismatch"
MISSING_ISSUER = "missing_issuer"            # leaf sent without the certificate that issued it
ISSUER_MISMATCH = "issuer_mismatch"          # next cert in the chain did not issue this one
SELF_SIGNED = "self_signed"                  # self-signed leaf, not in the truststore
UNTRUSTED_ROOT = "untrusted_root"            # chain ends at a root/issuer the truststore lacks
VERIFIER_REJECTED = "verifier_rejected"      # cryptography's verifier failed, explicit checks named nothing
UNPARSEABLE = "unparseable"                  # DER cryptography cannot parse / not delivered

PROBLEM_CAUSE: Mapping[str, Cause] = {
    EXPIRED: causes.EXPIRED_CERTIFICATE,
    NOT_YET_VALID: causes.NOT_YET_VALID_CERTIFICATE,
    EXPIRING_SOON: causes.EXPIRING_CERTIFICATE,
    HOSTNAME_MISMATCH: causes.HOSTNAME_MISMATCH,
    MISSING_ISSUER: causes.INCOMPLETE_CHAIN,
    ISSUER_MISMATCH: causes.INCOMPLETE_CHAIN,
    SELF_SIGNED: causes.UNKNOWN_CERTIFICATE,
    UNTRUSTED_ROOT: causes.UNKNOWN_CERTIFICATE,
    VERIFIER_REJECTED: causes.CERTIFICATE_REJECTED,
    UNPARSEABLE: causes.CERTIFICATE_REJECTED,
}

#: Order in which problems explain a rejection whose alert does not name the problem.
PROBLEM_PRIORITY: tuple[str, ...] = (
    EXPIRED, NOT_YET_VALID, MISSING_ISSUER, ISSUER_MISMATCH, SELF_SIGNED, UNTRUSTED_ROOT,
    HOSTNAME_MISMATCH, VERIFIER_REJECTED, UNPARSEABLE,
)

MAX_CHAIN = 16
#: the note of a chain judged from the summary's facts alone
BYTES_MISSING_NOTE = ("the certificates' bytes are not in the input (a JSONL summary without \"certs\": "
                      "`tlsdiag summarize --certs` writes them): signatures and trust in the root are not judged, "
                      "the truststore is not used for this chain")
CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class Problem:
    code: str
    index: int          # position in the sent chain (0 = leaf), -1 = chain as a whole
    subject: str
    detail: str

    def as_dict(self) -> dict[str, object]:
        return {"problem": self.code, "cert_index": self.index, "subject": self.subject, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class CertInfo:
    sha256: str
    subject: str
    issuer: str
    not_before: dt.datetime | None
    not_after: dt.datetime | None
    san_dns: tuple[str, ...]
    san_ip: tuple[str, ...]
    common_names: tuple[str, ...]
    is_ca: bool
    self_issued: bool
    self_signed: bool
    cert: x509.Certificate | None
    error: str | None = None

    def facts(self) -> dict[str, object]:
        d: dict[str, object] = {"sha256": self.sha256, "subject": self.subject, "issuer": self.issuer}
        if self.not_before:
            d["not_before"] = iso(self.not_before)
        if self.not_after:
            d["not_after"] = iso(self.not_after)
        if self.san_dns:
            d["san_dns"] = list(self.san_dns[:20])
        if self.san_ip:
            d["san_ip"] = list(self.san_ip[:20])
        if self.error:
            d["error"] = self.error
        return d


@functools.lru_cache(maxsize=8192)
def iso(t: dt.datetime) -> str:
    """ISO-8601 UTC, second precision (certificate dates repeat: cached)."""
    return t.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _parse_iso(v: object) -> dt.datetime | None:
    if not isinstance(v, str):
        return None
    try:
        return dt.datetime.strptime(v, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def _extensions(cert: x509.Certificate) -> None:
    """Parse the extensions once (cryptography keeps them): a certificate with one extension twice is
    refused as strict TLS stacks refuse it (raises); one whose extension cannot be read otherwise (a
    DEFAULT value encoded, as old CAs did; a name type cryptography lacks) is read without its
    extensions, as OpenSSL reads it (each lookup then finds none)."""
    try:
        cert.extensions
    except x509.DuplicateExtension:
        raise
    except Exception as e:          # noqa: BLE001
        log.debug("certificate extensions not read: %s", e)


def _names(cert: x509.Certificate) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    dns: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = tuple(str(n).lower() for n in san.get_values_for_type(x509.DNSName))
        ips = tuple(str(a) for a in san.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        pass
    except Exception as e:  # noqa: BLE001 -- extensions not readable (_extensions)
        log.debug("bad SAN extension: %s", e)
    try:
        cns = tuple(str(a.value).lower() for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME))
    except Exception:       # noqa: BLE001
        cns = ()
    return dns, ips, cns


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except Exception:       # noqa: BLE001 -- none, or extensions not readable (_extensions)
        return False


#: an RSA key past these is not used to check a signature (the names decide): no CA has one
#: (browsers refuse moduli over 8192 bits; CAs use the exponent 65537, old ones 3), and one
#: check with a 16384-bit modulus and a 64-bit exponent costs 4.2 ms, with 8192 bits 1.05 ms
#: (65537: 0.24 ms) -- fifteen such "issuers" in a chain cost each connection that sends them
#: fifteen checks
MAX_RSA_BITS = 8192
MAX_RSA_EXPONENT = 65537
#: nor a DSA key past this (FIPS 186: 3072 bits; a 10,000-bit one costs 10.5 ms a check)
MAX_DSA_BITS = 3072


def _costly(key: object) -> bool:
    """A public key too costly to check a signature with (no CA has one)."""
    if isinstance(key, rsa.RSAPublicKey):
        return key.key_size > MAX_RSA_BITS or key.public_numbers().e > MAX_RSA_EXPONENT
    return isinstance(key, dsa.DSAPublicKey) and key.key_size > MAX_DSA_BITS


def _signed_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    """False only when the signature is checked and wrong; an algorithm ``cryptography`` refuses to verify
    (SHA-1, MD5, unusual PSS parameters), or a key too costly to use (:func:`_costly`), is not held against
    the chain: the names decide."""
    try:
        key = parent.public_key()
        if _costly(key):
            log.debug("issuer key of %d bits not used: names decide", getattr(key, "key_size", 0))
            return child.issuer == parent.subject
        child.verify_directly_issued_by(parent)
        return True
    except InvalidSignature:
        return False
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        if child.issuer != parent.subject:
            return False
        log.debug("signature not checkable (%s): names decide", e)
        return True


def _rfc4514(name: x509.Name) -> str:
    try:
        return name.rfc4514_string()
    except ValueError:
        return "<unprintable name>"


def cert_info_from_der(der: bytes, sha256: str | None = None) -> CertInfo:
    sha = sha256 or hashlib.sha256(der).hexdigest()
    with warnings.catch_warnings():
        # odd-but-parseable certificates (negative serials...) are data here, not a reason to warn
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        try:
            cert = x509.load_der_x509_certificate(der)
            subject, issuer = _rfc4514(cert.subject), _rfc4514(cert.issuer)
            nb, na = cert.not_valid_before_utc, cert.not_valid_after_utc
            _extensions(cert)
        except Exception as e:      # noqa: BLE001 -- malformed DER is data: cryptography raises ValueError,
            # InvalidVersion, DuplicateExtension, and KeyError for an unknown string tag in a name
            return CertInfo(sha, "", "", None, None, (), (), (), False, False, False, None,
                            f"unparseable DER: {type(e).__name__}: {str(e)[:200]}")
        dns, ips, cns = _names(cert)
        ca = _is_ca(cert)
    self_issued = cert.subject == cert.issuer
    return CertInfo(
        sha256=sha, subject=subject, issuer=issuer, not_before=nb, not_after=na, san_dns=dns, san_ip=ips,
        common_names=cns, is_ca=ca, self_issued=self_issued,
        self_signed=self_issued and _signed_by(cert, cert), cert=cert,
    )


def _str_list(v: object) -> tuple[str, ...]:
    return tuple(str(x) for x in v) if isinstance(v, (list, tuple)) else ()


def cert_info_from_facts(facts: Mapping[str, object]) -> CertInfo:
    """Fallback when the DER was not delivered: the summary's facts (no signature checks possible)."""
    sha = str(facts.get("sha256", ""))
    if facts.get("error"):
        return CertInfo(sha, "", "", None, None, (), (), (), False, False, False, None, str(facts["error"]))
    subject, issuer = str(facts.get("subject", "")), str(facts.get("issuer", ""))
    cns = tuple(p[3:].lower() for p in subject.split(",") if p.startswith("CN="))
    dns = tuple(x.lower() for x in _str_list(facts.get("san_dns")))
    ips = _str_list(facts.get("san_ip"))
    return CertInfo(
        sha256=sha, subject=subject, issuer=issuer, not_before=_parse_iso(facts.get("not_before")),
        not_after=_parse_iso(facts.get("not_after")), san_dns=dns, san_ip=ips, common_names=cns,
        is_ca=bool(facts.get("is_ca")), self_issued=subject == issuer and bool(subject),
        self_signed=bool(facts.get("self_signed")), cert=None,
    )


class CertCache:
    """Bounded LRU of parsed certificates by SHA-256."""

    def __init__(self, maxsize: int = CACHE_SIZE) -> None:
        self._d: OrderedDict[str, CertInfo] = OrderedDict()
        self.maxsize = maxsize

    def get(self, facts: Mapping[str, object], ders: Mapping[str, bytes]) -> CertInfo:
        sha = str(facts.get("sha256", ""))
        hit = self._d.get(sha)
        if hit is not None:
            self._d.move_to_end(sha)
            return hit
        der = ders.get(sha)
        info = cert_info_from_der(der, sha) if der else cert_info_from_facts(facts)
        if der or info.subject:
            self._d[sha] = info
            if len(self._d) > self.maxsize:
                self._d.popitem(last=False)
        return info


# ------------------------------------------------------------------------------------------ hostnames


def _norm_host(name: str) -> str:
    return name.strip().lower().rstrip(".")


def wildcard_match(pattern: str, host: str) -> bool:
    """RFC 6125 6.4.3: '*' only as the whole left-most label, matching exactly one label; never in a
    public-suffix-like two-label pattern (``*.com``) and never against an IP literal."""
    p, h = _norm_host(pattern), _norm_host(host)
    if not p or not h:
        return False
    if "*" not in p:
        return p == h
    plabels, hlabels = p.split("."), h.split(".")
    if plabels[0] != "*" or any("*" in lab for lab in plabels[1:]) or len(plabels) < 3:
        return False
    if len(plabels) != len(hlabels) or not hlabels[0]:
        return False
    if _ip_literal(h) is not None:
        return False
    return plabels[1:] == hlabels[1:]


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address ``host`` (normalized) spells, else None: ``ipaddress.ip_address``, tried only where it
    can succeed -- an IPv4 literal starts with a digit, an IPv6 one has a colon: its ValueError for every
    host name was 0.56 s of the certificate checks' 2.5 s in a cProfile of ``diagnose`` on hs-100k."""
    if ":" not in host and not host[:1].isdigit():
        return None
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def hostname_matches(info: CertInfo, name: str) -> tuple[bool, str]:
    """(matched, how): SAN dNSName/iPAddress; CN only when the certificate has no SAN at all."""
    host = _norm_host(name)
    ip = _ip_literal(host)
    if info.san_dns or info.san_ip:
        if ip is not None:
            ok = any(_ip_eq(ip, s) for s in info.san_ip)
            return ok, "SAN iPAddress"
        return any(wildcard_match(p, host) for p in info.san_dns), "SAN dNSName"
    if ip is not None:
        return any(cn == host for cn in info.common_names), "CN (certificate has no SAN)"
    return any(wildcard_match(cn, host) for cn in info.common_names), "CN fallback (certificate has no SAN)"


def _ip_eq(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, text: str) -> bool:
    try:
        return ipaddress.ip_address(text) == ip
    except ValueError:
        return False


# ------------------------------------------------------------------------------------------ the check


@dataclass(frozen=True)
class ChainReport:
    """Everything learned about one sent chain at one handshake time."""

    side: str                               # whose chain: "server" | "client"
    chain: tuple[CertInfo, ...]
    problems: tuple[Problem, ...]
    hostname: str | None                    # name checked, if any
    hostname_source: str | None             # "sni" | "target" | None
    hostname_how: str | None
    truststore: str | None                  # source of the truststore used, if any
    verifier: str | None                    # "ok", an error message, or None (not run)
    anchored: bool                          # chain reached a trusted certificate
    notes: tuple[str, ...] = field(default=())
    sent_root: int | None = None            # the chain ends at a self-signed root the peer sent itself

    def codes(self) -> set[str]:
        return {p.code for p in self.problems}

    def first(self, codes: Iterable[str]) -> Problem | None:
        for code in codes:
            for p in self.problems:
                if p.code == code:
                    return p
        return None

    def failure_problems(self) -> list[Problem]:
        return [p for p in self.problems if p.code != EXPIRING_SOON]

    def evidence(self) -> dict[str, object]:
        """JSON-ready facts (computed once per report; reports are cached and shared, do not mutate)."""
        return self._evidence

    @functools.cached_property
    def _evidence(self) -> dict[str, object]:
        ev: dict[str, object] = {
            "chain": [c.facts() for c in self.chain],
            "problems": [p.as_dict() for p in self.problems],
        }
        if self.hostname:
            ev["hostname_checked"] = {"name": self.hostname, "from": self.hostname_source, "against": self.hostname_how}
        ev["truststore"] = self.truststore
        if self.verifier is not None:
            ev["verifier"] = self.verifier
        if self.notes:
            ev["notes"] = list(self.notes)
        return ev


@dataclass(frozen=True)
class _Shape:
    """Time-independent chain structure (cached)."""

    problems: tuple[Problem, ...]
    anchored: bool
    notes: tuple[str, ...]
    sent_root: int | None = None     # index of a self-signed root the peer sent (judged without truststore)


class _Trust:
    def __init__(self, store: TrustStore) -> None:
        self.source = store.source
        self.certs = store.certs
        self.by_subject: dict[x509.Name, list[x509.Certificate]] = {}
        self.fingerprints: set[bytes] = set()
        for c in store.certs:
            self.by_subject.setdefault(c.subject, []).append(c)
            self.fingerprints.add(c.tbs_certificate_bytes)
        self.store = xv.Store(list(store.certs))

    def contains(self, cert: x509.Certificate) -> bool:
        return cert.tbs_certificate_bytes in self.fingerprints

    def issuer_of(self, cert: x509.Certificate) -> tuple[x509.Certificate | None, bool]:
        """(issuer, name_found): the trusted cert that signed ``cert``; name_found if only the name matched."""
        cands = self.by_subject.get(cert.issuer, [])
        for c in cands:
            if _signed_by(cert, c):
                return c, True
        return None, bool(cands)


class CertChecker:
    """Checks sent chains; caches structure and verifier verdicts (bounded)."""

    def __init__(self, truststores: Mapping[str, TrustStore] | None = None, expiry_warning_days: int = 30,
                 cache_size: int = CACHE_SIZE) -> None:
        self._trust = {k: _Trust(v) for k, v in (truststores or {}).items()}
        self.expiry_warning = dt.timedelta(days=expiry_warning_days)
        self.expiry_warning_days = expiry_warning_days
        self._shape_cache: OrderedDict[tuple[object, ...], _Shape] = OrderedDict()
        self._verify_cache: OrderedDict[tuple[object, ...], str] = OrderedDict()
        self._host_cache: OrderedDict[tuple[str, str], tuple[bool, str]] = OrderedDict()
        self._report_cache: OrderedDict[tuple[object, ...], ChainReport] = OrderedDict()
        self.cache_size = cache_size
        self.certs = CertCache(cache_size)

    def trust_for(self, direction: str) -> _Trust | None:
        return self._trust.get(direction) or self._trust.get("default")

    # -- public -----------------------------------------------------------------------------------------
    def check(self, facts: Sequence[Mapping[str, object]], ders: Mapping[str, bytes], *, side: str,
              when: dt.datetime, hostname: str | None, hostname_source: str | None,
              direction: str) -> ChainReport | None:
        if not facts:
            return None
        chain = tuple(self.certs.get(f, ders) for f in list(facts)[:MAX_CHAIN])
        return self.check_chain(chain, side=side, when=when, hostname=hostname, hostname_source=hostname_source,
                                direction=direction)

    def check_chain(self, chain: tuple[CertInfo, ...], *, side: str, when: dt.datetime, hostname: str | None,
                    hostname_source: str | None, direction: str) -> ChainReport:
        """:meth:`check` of an already parsed chain (one remembered from an earlier connection)."""
        trust = self.trust_for(direction)
        if trust is not None and any(c.cert is None and c.error is None for c in chain):
            # facts without the certificate's bytes (a JSONL summary without "certs"): no signature, no path to
            # a trusted root can be checked, so judging against the truststore would call every root missing
            trust = None
            bytes_missing = True
        else:
            bytes_missing = False
        # the whole report depends on the chain, the name, the side/direction and, for time, only on which
        # validity boundary each certificate is past (plus the day, for the "N days" wording): cache it
        states = tuple(self._time_state(c, when) for c in chain)
        rkey = (tuple(c.sha256 for c in chain), hostname, hostname_source, side, direction, when.date(), states,
                int(when.timestamp()) // 3600 if trust is not None else 0)
        hit = self._report_cache.get(rkey)
        if hit is not None:
            return hit
        report = self._check(chain, trust, when, side, hostname, hostname_source, bytes_missing)
        self._report_cache[rkey] = report
        if len(self._report_cache) > self.cache_size:
            self._report_cache.popitem(last=False)
        return report

    def _time_state(self, c: CertInfo, when: dt.datetime) -> int:
        if c.not_after is not None and when > c.not_after:
            return 1
        if c.not_before is not None and when < c.not_before:
            return 2
        # (not when + warning > not_after: no overflow near 9999)
        if c.not_after is not None and c.not_after - when < self.expiry_warning:
            return 3
        return 0

    def _check(self, chain: tuple[CertInfo, ...], trust: _Trust | None, when: dt.datetime, side: str,
               hostname: str | None, hostname_source: str | None, bytes_missing: bool = False) -> ChainReport:
        shape = self._shape(chain, trust)
        problems = list(shape.problems)
        # validity of every certificate at capture time
        for i, c in enumerate(chain):
            if c.not_after is not None and when > c.not_after:
                days = (when - c.not_after).days
                problems.append(Problem(EXPIRED, i, c.subject, f"expired {iso(c.not_after)} ({days} days before the handshake)"))
            elif c.not_before is not None and when < c.not_before:
                problems.append(Problem(NOT_YET_VALID, i, c.subject, f"not valid before {iso(c.not_before)} (handshake on {when.date().isoformat()})"))
            elif c.not_after is not None and c.not_after - when < self.expiry_warning:
                days = (c.not_after - when).days
                problems.append(Problem(EXPIRING_SOON, i, c.subject, f"expires {iso(c.not_after)} (in {days} days)"))
        how: str | None = None
        leaf = chain[0]
        if hostname and leaf.error is None:
            hkey = (leaf.sha256, hostname)
            hit = self._host_cache.get(hkey)
            if hit is None:
                hit = self._host_cache[hkey] = hostname_matches(leaf, hostname)
                if len(self._host_cache) > self.cache_size:
                    self._host_cache.popitem(last=False)
            ok, how = hit
            if not ok:
                names = list(leaf.san_dns or ()) + list(leaf.san_ip or ())
                shown = ", ".join(names[:8]) if names else "CN=" + ",".join(leaf.common_names)
                problems.append(Problem(HOSTNAME_MISMATCH, 0, leaf.subject,
                                        f"{hostname_source or 'name'} {hostname!r} not in {how}: {shown}"))
        verdict: str | None = None
        if trust is not None and all(c.cert is not None for c in chain):
            verdict = self._verify(chain, trust, when, hostname if side == "server" else None, side)
            if verdict != "ok" and not [p for p in problems if p.code != EXPIRING_SOON]:
                problems.append(Problem(VERIFIER_REJECTED, -1, leaf.subject, verdict))
        notes = list(shape.notes)
        if bytes_missing:
            notes.append(BYTES_MISSING_NOTE)
        elif trust is None:
            notes.append("no truststore given: trust in the root is not judged; a truststore (--truststore) would "
                         "tell a trusted chain from an untrusted root or a missing intermediate")
        if hostname is None and side == "server":
            notes.append("hostname not checked: the client sent no SNI and no --target HOST:PORT=NAME matches")
        return ChainReport(
            side=side, chain=chain, problems=tuple(problems), hostname=hostname, hostname_source=hostname_source,
            hostname_how=how, truststore=trust.source if trust else None, verifier=verdict,
            anchored=shape.anchored, notes=tuple(notes), sent_root=shape.sent_root,
        )

    # -- structure --------------------------------------------------------------------------------------
    def _shape(self, chain: tuple[CertInfo, ...], trust: _Trust | None) -> _Shape:
        key = (tuple(c.sha256 for c in chain), trust.source if trust else None)
        hit = self._shape_cache.get(key)
        if hit is not None:
            self._shape_cache.move_to_end(key)
            return hit
        shape = _chain_shape(chain, trust)
        self._shape_cache[key] = shape
        if len(self._shape_cache) > self.cache_size:
            self._shape_cache.popitem(last=False)
        return shape

    def _verify(self, chain: tuple[CertInfo, ...], trust: _Trust, when: dt.datetime, hostname: str | None,
                side: str) -> str:
        key = (tuple(c.sha256 for c in chain), trust.source, int(when.timestamp()) // 3600, hostname, side)
        hit = self._verify_cache.get(key)
        if hit is not None:
            return hit
        verdict = run_verifier([c.cert for c in chain if c.cert is not None], trust.store, when, hostname, side)
        self._verify_cache[key] = verdict
        if len(self._verify_cache) > self.cache_size:
            self._verify_cache.popitem(last=False)
        return verdict


#: CA policy: only what path building needs (basicConstraints), not the full CA/B profile, so that
#: private PKIs are judged on trust, names and dates rather than on extension style.
_CA_POLICY = xv.ExtensionPolicy.permit_all().require_present(x509.BasicConstraints, xv.Criticality.AGNOSTIC, None)


def run_verifier(certs: list[x509.Certificate], store: xv.Store, when: dt.datetime, hostname: str | None,
                 side: str) -> str:
    """cryptography's path validation; returns "ok" or the verifier's message (never raises)."""
    leaf, rest = certs[0], certs[1:]
    has_san = True
    try:
        leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except Exception:       # noqa: BLE001 -- none, or extensions not readable (_extensions)
        has_san = False
    ee = xv.ExtensionPolicy.permit_all()
    if side == "server" and hostname and has_san:
        ee = ee.require_present(x509.SubjectAlternativeName, xv.Criticality.AGNOSTIC, None)
    builder = (xv.PolicyBuilder().store(store).time(when.astimezone(UTC).replace(tzinfo=None))
               .extension_policies(ca_policy=_CA_POLICY, ee_policy=ee))
    try:
        if side == "server" and hostname and has_san:
            try:
                subject: x509.DNSName | x509.IPAddress = x509.IPAddress(ipaddress.ip_address(hostname))
            except ValueError:
                subject = x509.DNSName(hostname)
            builder.build_server_verifier(subject).verify(leaf, rest)
        else:
            builder.build_client_verifier().verify(leaf, rest)
        return "ok"
    except xv.VerificationError as e:
        return f"verifier: {e}"
    except Exception as e:      # noqa: BLE001 -- a certificate it cannot read: a verdict, not a crash
        return f"verifier could not run: {type(e).__name__}: {e}"


def _chain_shape(chain: tuple[CertInfo, ...], trust: _Trust | None) -> _Shape:
    problems = [Problem(UNPARSEABLE, i, c.subject, c.error) for i, c in enumerate(chain) if c.error]
    if problems and problems[0].index == 0:
        return _Shape(tuple(problems), False, ())
    notes: list[str] = []
    _check_links(chain, problems, notes)
    anchored, sent_root = _walk_up(chain, trust, problems, notes)
    return _Shape(tuple(problems), anchored, tuple(notes), sent_root)


def _check_links(chain: tuple[CertInfo, ...], problems: list[Problem], notes: list[str]) -> None:
    """Links inside the sent chain, in wire order: each certificate issued (and signed) by the next one."""
    for i in range(len(chain) - 1):
        a, b = chain[i], chain[i + 1]
        if a.self_issued or not a.issuer:
            break
        if b.error:             # (an unparseable certificate has no name to compare: it is its own problem)
            continue
        if a.issuer != b.subject:
            if any(a.issuer == o.subject for o in chain if o is not a):
                notes.append(f"certificate {i + 1} is not the issuer of certificate {i} (chain sent out of order)")
            else:
                problems.append(Problem(ISSUER_MISMATCH, i + 1, b.subject,
                                        f"certificate {i} was issued by {a.issuer!r} but the next certificate sent is {b.subject!r}"))
        elif a.cert is not None and b.cert is not None and not _signed_by(a.cert, b.cert):
            problems.append(Problem(ISSUER_MISMATCH, i + 1, b.subject,
                                    f"certificate {i + 1} has the right name ({b.subject!r}) but its key did not sign certificate {i}"))


def _walk_up(chain: tuple[CertInfo, ...], trust: _Trust | None, problems: list[Problem],
             notes: list[str]) -> tuple[bool, int | None]:
    """Walk from the leaf through the sent certificates, then the truststore: (anchored, index of a
    self-signed root the peer sent when judged without a truststore)."""
    cur, idx = chain[0], 0
    seen = {cur.sha256}
    for _ in range(MAX_CHAIN):
        if trust is not None and cur.cert is not None and trust.contains(cur.cert):
            return True, None
        if cur.self_issued:
            return False, _self_issued_end(cur, idx, trust, problems, notes)
        parent = next((o for o in chain if o.sha256 not in seen and o.subject == cur.issuer
                       and (cur.cert is None or o.cert is None or _signed_by(cur.cert, o.cert))), None)
        if parent is None:
            return _issuer_not_sent(cur, idx, trust, problems, notes), None
        cur = parent
        idx = chain.index(parent)
        seen.add(parent.sha256)
    return False, None


def _self_issued_end(cur: CertInfo, idx: int, trust: _Trust | None, problems: list[Problem],
                     notes: list[str]) -> int | None:
    """The walk ended at a self-issued certificate the truststore does not hold."""
    if trust is None:
        if idx == 0:
            problems.append(Problem(SELF_SIGNED, 0, cur.subject,
                                    "self-signed certificate (no truststore given to say whether it is trusted)"))
            return None
        notes.append(f"chain ends at a self-signed root {cur.subject!r} (sent by the peer)")
        return idx
    code = SELF_SIGNED if idx == 0 else UNTRUSTED_ROOT
    problems.append(Problem(code, idx, cur.subject, f"self-signed {'certificate' if idx == 0 else 'root'} "
                            f"not in the truststore {trust.source}"))
    return None


def _issuer_not_sent(cur: CertInfo, idx: int, trust: _Trust | None, problems: list[Problem],
                     notes: list[str]) -> bool:
    """The walk ended at a certificate whose issuer was not sent on this connection; True when the
    truststore holds that issuer (anchored)."""
    if trust is not None and cur.cert is not None:
        issuer, name_found = trust.issuer_of(cur.cert)
        if issuer is not None:
            return True
        if name_found:
            problems.append(Problem(ISSUER_MISMATCH, idx, cur.subject,
                                    f"the truststore holds {cur.issuer!r} but not the key that signed this certificate"))
            return False
    if idx == 0 and not cur.is_ca:
        what = "nor in the truststore" if trust is not None else "(no truststore given)"
        problems.append(Problem(MISSING_ISSUER, 0, cur.subject,
                                f"leaf sent without its issuer {cur.issuer!r}: not sent on this connection {what}"))
    elif trust is not None:
        problems.append(Problem(UNTRUSTED_ROOT, idx, cur.subject,
                                f"issuer {cur.issuer!r} of the last certificate sent is not in the truststore "
                                f"{trust.source} (if it is an intermediate, the chain is also incomplete)"))
    else:
        notes.append(f"chain ends at {cur.subject!r}, issued by {cur.issuer!r} (not sent; normal for a root)")
    return False
