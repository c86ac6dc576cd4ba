"""The probe run: resolve and connect, then versions, suites, a client offer, SNI and the chain, each a
bounded number of attempts with a timeout; the report is a JSON-able dict."""
from __future__ import annotations

import concurrent.futures
import datetime as _dt
import ipaddress
import logging
import re
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Iterable, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ..certs import cert_info_from_der, iso
from ..config import TrustStore
from .attempt import (ALL_CIPHERS, HAS_MSG_CALLBACK, VERSIONS, Attempt, ProbeError, handshake, local_can_offer,
                      make_context, raw_hello_probe)
from .chain import chain_via_openssl, load_roots, validate_chain
from .findings import findings
from .hello import TLS13_SUITES, WireParsers
from .suites import Suite, SuiteTable, suite_table

log = logging.getLogger(__name__)

__all__ = ["ProbeOptions", "Prober", "parse_target", "parse_versions", "parse_ciphers", "UNKNOWN_SNI"]

MAX_SUITE_ROUNDS = 64
UNKNOWN_SNI = "tlsdiag-probe.invalid"  # RFC 2606: can never be a real name
_ANY_CIPHER = "ALL:@SECLEVEL=0"


@dataclass(slots=True)
class ProbeOptions:
    host: str
    port: int
    servername: str | None = None
    truststore: str | None = None
    offer_versions: list[str] | None = None
    offer_ciphers: list[str] | None = None
    timeout: float = 5.0
    enumerate_suites: bool = True
    client_cert: str | None = None     # PEM certificate (+ chain) to present when the server asks for one
    client_key: str | None = None


def parse_target(text: str) -> tuple[str, int]:
    t = text.strip()
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)", t) or re.fullmatch(r"([^:\s\[\]]+):(\d+)", t)
    if not m:
        raise ProbeError(f"target must be HOST:PORT (or [IPv6]:PORT), got {text!r}")
    port = int(m.group(2))
    if not 0 < port < 65536:
        raise ProbeError(f"port out of range in {text!r}")
    return m.group(1), port


_VERSION_ALIASES = {
    "sslv3": "SSLv3", "ssl3": "SSLv3", "3.0": "SSLv3",
    "tlsv1": "TLSv1.0", "tlsv1.0": "TLSv1.0", "tls1": "TLSv1.0", "tls1.0": "TLSv1.0", "1.0": "TLSv1.0",
    "tlsv1.1": "TLSv1.1", "tls1.1": "TLSv1.1", "tlsv1_1": "TLSv1.1", "1.1": "TLSv1.1",
    "tlsv1.2": "TLSv1.2", "tls1.2": "TLSv1.2", "tlsv1_2": "TLSv1.2", "1.2": "TLSv1.2",
    "tlsv1.3": "TLSv1.3", "tls1.3": "TLSv1.3", "tlsv1_3": "TLSv1.3", "1.3": "TLSv1.3",
}


def parse_versions(items: Iterable[str]) -> list[str]:
    out: list[str] = []
    for item in items:
        for tok in re.split(r"[,\s]+", item.strip()):
            if not tok:
                continue
            v = _VERSION_ALIASES.get(tok.lower())
            if v is None:
                raise ProbeError(f"unknown protocol version {tok!r} (use SSLv3, TLSv1.0, TLSv1.1, TLSv1.2, TLSv1.3)")
            if v not in out:
                out.append(v)
    if not out:
        raise ProbeError("--versions needs at least one version")
    return sorted(out, key=VERSIONS.index)


def parse_ciphers(items: Iterable[str], table: SuiteTable) -> list[Suite]:
    out: list[Suite] = []
    for item in items:
        for tok in re.split(r"[,:\s]+", item.strip()):
            if not tok:
                continue
            s = table.lookup(tok)
            if s is None:
                raise ProbeError(f"unknown cipher suite {tok!r} (IANA or OpenSSL name known to this host's OpenSSL)")
            if s not in out:
                out.append(s)
    if not out:
        raise ProbeError("--ciphers needs at least one suite")
    return out


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def client_cert_facts(path: str | None) -> dict[str, object]:
    """Subject, issuer and expiry of the first certificate in the ``--client-cert`` PEM (for fix texts)."""
    if not path:
        return {}
    try:
        with open(path, "rb") as f:
            cert = x509.load_pem_x509_certificates(f.read())[0]
    except (OSError, ValueError, IndexError):
        return {}
    info = cert_info_from_der(cert.public_bytes(serialization.Encoding.DER))
    return {"subject": info.subject or None, "issuer": info.issuer or None,
            "not_after": iso(info.not_after) if info.not_after else None}


class Prober:
    """One probe run against ``opts``.  ``wire``: the wire core's parsers (injected: the analyzer does not
    import ``cext``); ``msg_callback=False`` reads alerts from OpenSSL's error reasons and the chain with
    ``openssl s_client`` (the fallback where Python's ``ssl`` lacks the message callback)."""

    def __init__(self, opts: ProbeOptions, wire: WireParsers, *, now: _dt.datetime | None = None,
                 msg_callback: bool = HAS_MSG_CALLBACK) -> None:
        self.o = opts
        self.wire = wire
        self.now = now
        self.msg_callback = msg_callback and HAS_MSG_CALLBACK
        self.suites = suite_table()
        self.name = opts.servername or (None if _is_ip(opts.host) else opts.host)
        self.addr: tuple[int, tuple[object, ...]] | None = None
        self.attempts = 0

    # -- plumbing
    def _resolve(self) -> None:
        # getaddrinfo has no timeout of its own: run it in a worker thread and stop waiting at the timeout.
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        try:
            infos = pool.submit(socket.getaddrinfo, self.o.host, self.o.port, type=socket.SOCK_STREAM
                                ).result(timeout=self.o.timeout)
        except socket.gaierror as e:
            raise ProbeError(f"cannot resolve {self.o.host}: {e.strerror}") from None
        except concurrent.futures.TimeoutError:
            raise ProbeError(f"cannot resolve {self.o.host}: no answer within {self.o.timeout:g}s") from None
        finally:
            pool.shutdown(wait=False)
        last = "no address"
        for family, _t, _p, _c, sockaddr in infos:
            s = socket.socket(family, socket.SOCK_STREAM)
            s.settimeout(self.o.timeout)
            try:
                s.connect(sockaddr)
                self.addr = (family, tuple(sockaddr))
                return
            except (socket.timeout, TimeoutError):
                last = f"no TCP answer within {self.o.timeout:g}s"
            except OSError as e:
                last = e.strerror or str(e)
            finally:
                s.close()
        raise ProbeError(f"cannot connect to {self.o.host}:{self.o.port}: {last}")

    def _hs(self, versions: Sequence[str], *, label: str, servername: str | None,
            ciphers: str | None = None, present_cert: bool = True) -> Attempt:
        assert self.addr is not None
        self.attempts += 1
        cert = (self.o.client_cert, self.o.client_key) if self.o.client_cert and present_cert else None
        att = handshake(self.addr, versions, wire=self.wire, servername=servername, ciphers=ciphers,
                        timeout=self.o.timeout, label=label, suites=self.suites, msg_callback=self.msg_callback,
                        client_cert=cert)
        log.info("probe %s: %s", label, att.summary())
        return att

    def _raw(self, versions: Sequence[str], *, label: str, cipher_codes: Sequence[int] | None = None) -> Attempt:
        assert self.addr is not None
        self.attempts += 1
        att = raw_hello_probe(self.addr, versions, wire=self.wire, servername=self.name, timeout=self.o.timeout,
                              suites=self.suites, label=label, cipher_codes=cipher_codes)
        log.info("probe %s: %s", label, att.summary())
        return att

    # -- steps
    def probe_versions(self) -> dict[str, Attempt]:
        res: dict[str, Attempt] = {}
        for v in VERSIONS:
            ciphers = None if v == "TLSv1.3" else ALL_CIPHERS
            why = local_can_offer([v], ciphers)
            if why is None:
                att = self._hs([v], label=f"version {v}", servername=self.name, ciphers=ciphers)
            else:
                att = self._raw([v], label=f"version {v}")
                att.error = (att.error + "; " if att.error else "") + \
                    f"this host's TLS library cannot offer {v} ({why}); used a hand-built ClientHello"
            res[v] = att
        return res

    def probe_suites(self, version: str) -> list[str]:
        """Accepted suites for one version <= TLS 1.2, by repeatedly removing the one the server chose."""
        ctx = make_context([version], ALL_CIPHERS)
        names = [str(c["name"]) for c in ctx.get_ciphers() if c.get("protocol") != "TLSv1.3"]
        if version in ("SSLv3", "TLSv1.0", "TLSv1.1"):
            names = [n for n in names if self.suites.lookup(n) is None
                     or self.suites.lookup(n).min_version != "TLSv1.2"]  # type: ignore[union-attr]
        chosen: list[str] = []
        for _ in range(MAX_SUITE_ROUNDS):
            remaining = [n for n in names if n not in chosen]
            if not remaining:
                break
            att = self._hs([version], label=f"suites {version}", servername=self.name,
                           ciphers=":".join(remaining) + ":@SECLEVEL=0")
            if not att.negotiated or not att.server_cipher:
                break
            s = self.suites.lookup(att.server_cipher)
            oname = s.openssl if s else att.server_cipher
            if oname in chosen:
                break
            chosen.append(oname)
        return [self.suites.iana_for_openssl(n) for n in chosen]

    def probe_suites13(self) -> list[str]:
        """TLS 1.3 suites, with hand-built ClientHellos (Python's ssl cannot restrict TLS 1.3 suites)."""
        remaining = list(TLS13_SUITES)
        chosen: list[str] = []
        while remaining:
            att = self._raw(["TLSv1.3"], label="suites TLSv1.3", cipher_codes=remaining)
            s = self.suites.lookup(att.server_cipher or "")
            if not att.negotiated or s is None or s.code not in remaining:
                break
            chosen.append(s.iana)
            remaining.remove(s.code)
        return chosen

    def probe_offer(self, versions: list[str], ciphers: list[Suite] | None) -> tuple[Attempt, list[str]]:
        notes: list[str] = []
        lo, hi = VERSIONS.index(versions[0]), VERSIONS.index(versions[-1])
        if hi - lo + 1 != len(versions):
            notes.append("non-contiguous versions: offered the whole range " + f"{versions[0]}..{versions[-1]}")
        cipher_str: str | None = None
        if ciphers:
            tls13 = [s for s in ciphers if s.min_version == "TLSv1.3"]
            legacy = [s for s in ciphers if s not in tls13]
            if tls13 and "TLSv1.3" in versions:
                # Python's ssl cannot restrict TLS 1.3 suites: send the exact offer by hand instead.
                notes.append("TLS 1.3 suites named: exact offer sent as a hand-built ClientHello; the answer is "
                             "the server's ServerHello or alert (the handshake is not completed)")
                label = "offer " + ",".join(versions) + " [" + ",".join(s.iana for s in ciphers) + "]"
                return self._raw(versions, label=label, cipher_codes=[s.code for s in ciphers]), notes
            elif tls13:
                notes.append("TLS 1.3 suites ignored: TLS 1.3 is not in the offered versions")
            if legacy:
                cipher_str = ":".join(s.openssl for s in legacy) + ":@SECLEVEL=0"
            elif "TLSv1.3" not in versions:
                raise ProbeError("--ciphers holds only TLS 1.3 suites but --versions has no TLSv1.3")
            else:
                notes.append("only TLS 1.3 suites given: offered TLSv1.3 alone")
                versions = ["TLSv1.3"]
        if not cipher_str and VERSIONS.index(versions[0]) <= VERSIONS.index("TLSv1.1"):
            cipher_str = _ANY_CIPHER
        label = "offer " + ",".join(versions) + (" [" + ",".join(s.iana for s in ciphers) + "]" if ciphers else "")
        why = local_can_offer(versions, cipher_str)
        if why is not None:
            att = Attempt(label=label, offered=list(versions), servername=self.name, error=why)
            return att, notes
        return self._hs(versions, label=label, servername=self.name, ciphers=cipher_str), notes

    def probe_sni(self) -> dict[str, Attempt]:
        res: dict[str, Attempt] = {}
        if self.name:
            res["with_name"] = self._hs(VERSIONS[1:], label=f"SNI {self.name}", servername=self.name,
                                        ciphers=_ANY_CIPHER)
        res["without_name"] = self._hs(VERSIONS[1:], label="no SNI", servername=None, ciphers=_ANY_CIPHER)
        res["unknown_name"] = self._hs(VERSIONS[1:], label=f"SNI {UNKNOWN_SNI}", servername=UNKNOWN_SNI,
                                       ciphers=_ANY_CIPHER)
        return res

    # -- all of it
    def run(self) -> dict[str, object]:
        o = self.o
        t0 = time.monotonic()
        self._resolve()
        assert self.addr is not None
        roots = load_roots(o.truststore)
        report: dict[str, object] = {
            "target": f"{o.host}:{o.port}", "connected_to": str(self.addr[1][0]), "servername": self.name,
            "timeout_s": o.timeout, "local_tls_library": ssl.OPENSSL_VERSION,
            "chain_source": "message callback" if self.msg_callback else "openssl s_client -showcerts",
        }
        versions = self.probe_versions()
        report["versions"] = {v: a.to_dict() for v, a in versions.items()}
        suites = self._enumerate_suites(versions) if o.enumerate_suites else {}
        report["suites"] = suites
        offer = self._client_offer(report)
        sni = self.probe_sni()
        report["sni"] = {k: a.to_dict() for k, a in sni.items()}
        report["chain"] = self._chain(versions, sni, roots)
        without = self._without_client_cert(versions)
        if without is not None:
            report["without_client_cert"] = without.to_dict()
        report["findings"] = findings(report, versions, suites, offer, sni, self.name,
                                      client_cert_facts(o.client_cert), without)
        report["attempts"] = self.attempts
        report["elapsed_s"] = round(time.monotonic() - t0, 3)
        return report

    def _without_client_cert(self, versions: dict[str, Attempt]) -> Attempt | None:
        """With ``--client-cert``, when the server asked for a certificate: one handshake without it, at the
        highest version that asked, to tell a required certificate from an optional one."""
        if not self.o.client_cert:
            return None
        asked = [v for v in VERSIONS if versions[v].client_cert_requested and versions[v].method == "python-ssl"]
        if not asked:
            return None
        v = asked[-1]
        return self._hs([v], label=f"no client certificate {v}", servername=self.name,
                        ciphers=None if v == "TLSv1.3" else ALL_CIPHERS, present_cert=False)

    def _enumerate_suites(self, versions: dict[str, Attempt]) -> dict[str, list[str]]:
        accepted = [v for v, a in versions.items() if a.negotiated]
        suites: dict[str, list[str]] = {}
        for v in accepted:
            if v in ("TLSv1.0", "TLSv1.1", "TLSv1.2") and versions[v].method == "python-ssl":
                suites[v] = self.probe_suites(v)
        if "TLSv1.3" in accepted:
            suites["TLSv1.3"] = self.probe_suites13() or [str(versions["TLSv1.3"].server_cipher)]
        return suites

    def _client_offer(self, report: dict[str, object]) -> Attempt | None:
        """The ``--versions`` / ``--ciphers`` offer, if one was given (its report goes into ``report``)."""
        o = self.o
        if not (o.offer_versions or o.offer_ciphers):
            return None
        oc = parse_ciphers(o.offer_ciphers, self.suites) if o.offer_ciphers else None
        default_note = None
        ov = o.offer_versions
        if not ov:  # like a Java 8 client: TLSv1.2, plus TLSv1.3 only when TLS 1.3 suites were named
            ov = ["TLSv1.2", "TLSv1.3"] if oc and any(s.min_version == "TLSv1.3" for s in oc) else ["TLSv1.2"]
            default_note = "no --versions given: offered " + ",".join(ov)
        offer, notes = self.probe_offer(ov, oc)
        if default_note:
            notes.insert(0, default_note)
        report["offer"] = {**offer.to_dict(), "notes": notes, "ciphers": [s.iana for s in oc] if oc else None}
        return offer

    def _chain(self, versions: dict[str, Attempt], sni: dict[str, Attempt],
               roots: TrustStore | None) -> dict[str, object]:
        """The chain from the best handshake that sent the name (highest accepted version), else any."""
        assert self.addr is not None
        best: Attempt | None = None
        for v in reversed(VERSIONS):
            a = versions[v]
            if a.negotiated and a.chain:
                best = a
                break
        for cand in (sni.get("with_name"), sni.get("without_name")):
            if best is None and cand is not None and cand.chain:
                best = cand
        chain_ders = best.chain if best else []
        if not chain_ders and not self.msg_callback:
            chain_ders = chain_via_openssl(str(self.addr[1][0]), self.o.port, self.name, self.o.timeout)
        if not chain_ders:
            return {"sent": 0, "problems": [], "note": "no handshake completed: the server's chain was not seen"}
        chain = validate_chain(chain_ders, self.name, roots, self.now)
        chain["from"] = best.label if best else "openssl s_client"
        chain["version"] = best.server_version if best else None
        return chain
