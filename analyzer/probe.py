"""Active TLS probe: the vendor page's manual ``openssl s_client`` steps, automated.

Only ever connects to the one target the user names.  For that target it finds out

* which protocol versions the server accepts, each offered alone (SSLv3 .. TLSv1.3);
* which cipher suites it accepts per version (server preference order when it has one; TLS 1.3 suites
  with hand-built ClientHellos, since Python's ``ssl`` cannot restrict them);
* whether it asks for a client certificate and what it does without one (or with ``--client-cert``);
* whether a given client offer (versions + suites, e.g. the Message Processor's) is accepted, and the
  alert the server answered with when it is not;
* SNI sensitivity: the handshake with the name, without ``server_name``, and with a name the server
  cannot know (failure, a different certificate, or an ``unrecognized_name`` alert);
* the certificate chain exactly as sent on the connection (TLS 1.3 too), validated: expiry at now,
  hostname against the server name, completeness from what was sent, trust against a truststore.

How: Python's ``ssl`` module with one fresh context per attempt and OpenSSL's message callback
(``SSLContext._msg_callback``), which hands us every handshake message and alert in plaintext (the
TLS 1.3 ``Certificate`` included), so alerts are read from the wire with their real code and level
rather than guessed from error strings (the OpenSSL error reason is the fallback).  Versions the local
OpenSSL cannot offer at all (SSLv3 on a modern build), TLS 1.3 suite enumeration and exact TLS 1.3
offers use a hand-built ClientHello: the server's ServerHello (or alert) says what it accepts, without
completing the handshake.  When the message callback is not available, the chain comes from
``openssl s_client -showcerts`` instead.

"Negotiated" (the ServerHello picked an offered version) is kept apart from "accepted" (the handshake
completed): a server that requires a client certificate negotiates every version it supports and then
fails them all, which is ``client_certificate_missing``, not a protocol mismatch.

Chain validation is :class:`analyzer.certs.CertChecker`, the diagnosis engine's own, so a served chain is
judged exactly like a captured one.  Every connection attempt (and the name lookup) has a timeout; the
number of attempts is bounded.
"""

from __future__ import annotations

import concurrent.futures
import datetime as _dt
import hashlib
import ipaddress
import logging
import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from proto import names as _names

from .causes import (CERTIFICATE_REJECTED, CIPHER_MISMATCH, CLIENT_CERTIFICATE_MISSING, EXPIRED_CERTIFICATE,
                     EXPIRING_CERTIFICATE, HOSTNAME_MISMATCH, INCOMPLETE_CHAIN, NOT_YET_VALID_CERTIFICATE,
                     PROTOCOL_MISMATCH, SNI_REQUIRED, SNI_UNRECOGNIZED, UNKNOWN, UNKNOWN_CERTIFICATE)
from .certs import EXPIRING_SOON, PROBLEM_CAUSE, CertChecker
from .certs import HOSTNAME_MISMATCH as HOSTNAME_PROBLEM
from .config import ConfigError, TrustStore, load_truststore

log = logging.getLogger(__name__)

#: Protocol versions in probe order, with their wire codes.
VERSIONS: tuple[str, ...] = ("SSLv3", "TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3")
VERSION_CODES: dict[str, int] = {"SSLv3": 0x0300, "TLSv1.0": 0x0301, "TLSv1.1": 0x0302,
                                 "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}
CODE_VERSIONS: dict[int, str] = {v: k for k, v in VERSION_CODES.items()}

with warnings.catch_warnings():  # ssl.TLSVersion.SSLv3/TLSv1/TLSv1_1 are deprecated aliases, still usable
    warnings.simplefilter("ignore", DeprecationWarning)
    _SSL_VERSIONS: dict[str, ssl.TLSVersion] = {
        "SSLv3": ssl.TLSVersion.SSLv3, "TLSv1.0": ssl.TLSVersion.TLSv1, "TLSv1.1": ssl.TLSVersion.TLSv1_1,
        "TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3,
    }

#: TLS AlertDescription registry: the table shared with the sensor (proto.names)
ALERTS: dict[int, str] = dict(_names.ALERT_NAMES)
_ALERT_BY_NAME: dict[str, int] = {}
for _code, _name in ALERTS.items():
    _ALERT_BY_NAME[_name] = _code
    _ALERT_BY_NAME[_name.removesuffix("_RESERVED")] = _code
# OpenSSL spellings that differ from IANA's.
_ALERT_BY_NAME.update({"user_cancelled": 90, "unrecognized_name": 112, "no_certificate": 41})

_REASON_ALERT_RE = re.compile(r"^(?:SSLV3|TLSV1|TLSV13)_(?:ALERT_)?([A-Z_]+)$")
#: OpenSSL reasons raised when *our* side cannot build an offer at all.
_LOCAL_CANNOT_OFFER = {"NO_PROTOCOLS_AVAILABLE", "NO_CIPHERS_AVAILABLE", "NO_CIPHER_MATCH",
                       "UNSUPPORTED_SSL_VERSION"}

HRR_RANDOM = hashlib.sha256(b"HelloRetryRequest").digest()

#: Bounds.
MAX_RECORD = 2 ** 14 + 2048
MAX_HANDSHAKE_BYTES = 256 * 1024
MAX_CHAIN_CERTS = 20
MAX_SUITE_ROUNDS = 64
EXPIRY_WARNING_DAYS = 30
UNKNOWN_SNI = "tlsdiag-probe.invalid"  # RFC 2606: can never be a real name


class ProbeError(Exception):
    """The probe cannot run (bad argument, target unreachable).  The message is one user-facing line."""


def alert_name(code: int) -> str:
    return _names.alert_description_name(code)


def alert_from_reason(reason: str | None) -> int | None:
    """``SSLV3_ALERT_HANDSHAKE_FAILURE`` -> 40, ``TLSV1_UNRECOGNIZED_NAME`` -> 112; otherwise None."""
    if not reason:
        return None
    m = _REASON_ALERT_RE.match(reason)
    if not m:
        return None
    return _ALERT_BY_NAME.get(m.group(1).lower())


def version_name(code: int | None) -> str | None:
    if code is None:
        return None
    return CODE_VERSIONS.get(code, f"unknown-0x{code:04x}")


# --------------------------------------------------------------------------------------------------
# Cipher-suite names: IANA <-> OpenSSL, from the local OpenSSL (``openssl ciphers -V -stdname``).

@dataclass(frozen=True, slots=True)
class Suite:
    code: int
    iana: str
    openssl: str
    min_version: str  # "SSLv3" | "TLSv1.2" | "TLSv1.3" as OpenSSL labels them


class SuiteTable:
    """Two-way cipher-suite name table.  Never raises on lookup."""

    def __init__(self, suites: Iterable[Suite]) -> None:
        self.by_code: dict[int, Suite] = {}
        self.by_name: dict[str, Suite] = {}
        for s in suites:
            self.by_code.setdefault(s.code, s)
            self.by_name.setdefault(s.iana.upper(), s)
            self.by_name.setdefault(s.openssl.upper(), s)

    def iana(self, code: int) -> str:
        s = self.by_code.get(code)
        return s.iana if s else f"unknown-0x{code:04x}"

    def iana_for_openssl(self, name: str) -> str:
        s = self.by_name.get(name.upper())
        return s.iana if s else name

    def lookup(self, name: str) -> Suite | None:
        return self.by_name.get(name.strip().upper())


_CIPHERS_RE = re.compile(r"0x([0-9A-Fa-f]{2}),0x([0-9A-Fa-f]{2})\s+-\s+(\S+)\s+-\s+(\S+)\s+(\S+)")
_suite_table: SuiteTable | None = None


def suite_table() -> SuiteTable:
    """Built once per process from the local OpenSSL; falls back to Python's list (OpenSSL names only)."""
    global _suite_table
    if _suite_table is not None:
        return _suite_table
    suites: list[Suite] = []
    exe = shutil.which("openssl")
    if exe:
        try:
            out = subprocess.run([exe, "ciphers", "-V", "-stdname", "ALL:COMPLEMENTOFALL:@SECLEVEL=0"],
                                 capture_output=True, text=True, timeout=10, check=False).stdout
            for m in _CIPHERS_RE.finditer(out):
                suites.append(Suite(int(m.group(1) + m.group(2), 16), m.group(3), m.group(4), m.group(5)))
        except (OSError, subprocess.SubprocessError) as e:
            log.warning("cannot list cipher suites with %s: %s", exe, e)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        ctx.set_ciphers("ALL:COMPLEMENTOFALL:@SECLEVEL=0")
    except ssl.SSLError:
        pass
    for c in ctx.get_ciphers():
        name = str(c["name"])
        suites.append(Suite(int(c["id"]) & 0xFFFF, name, name, str(c.get("protocol", ""))))
    _suite_table = SuiteTable(suites)
    return _suite_table


# --------------------------------------------------------------------------------------------------
# Wire parsing of what the message callback hands us (bounds-checked, never raises on bad bytes).

class _Cursor:
    __slots__ = ("buf", "pos", "end")

    def __init__(self, buf: bytes, pos: int = 0, end: int | None = None) -> None:
        self.buf, self.pos = buf, pos
        self.end = len(buf) if end is None else end

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise ValueError("vector_overrun")
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int(struct.unpack("!H", self.take(2))[0])

    def u24(self) -> int:
        b = self.take(3)
        return (b[0] << 16) | (b[1] << 8) | b[2]


@dataclass(slots=True)
class ServerHelloInfo:
    version: int          # selected version (supported_versions wins over legacy_version)
    cipher: int
    hello_retry: bool


def parse_server_hello(msg: bytes) -> ServerHelloInfo | None:
    """``msg`` is the whole handshake message (4-byte header included)."""
    try:
        c = _Cursor(msg)
        if c.u8() != 2:
            return None
        length = c.u24()
        c.end = min(c.end, c.pos + length)
        legacy = c.u16()
        random = c.take(32)
        c.take(c.u8())
        cipher = c.u16()
        c.u8()
        version = legacy
        if c.pos + 2 <= c.end:
            ext_len = c.u16()
            ext_end = min(c.pos + ext_len, c.end)
            while c.pos + 4 <= ext_end:
                etype, elen = c.u16(), c.u16()
                body = c.take(elen)
                if etype == 43 and elen == 2:  # supported_versions (RFC 8446 §4.2.1)
                    version = int(struct.unpack("!H", body)[0])
        return ServerHelloInfo(version, cipher, random == HRR_RANDOM)
    except ValueError:
        return None


def parse_certificate_message(msg: bytes, tls13: bool) -> list[bytes]:
    """DER certificates of a Certificate handshake message (RFC 5246 §7.4.2 / RFC 8446 §4.4.2)."""
    certs: list[bytes] = []
    try:
        c = _Cursor(msg)
        if c.u8() != 11:
            return certs
        length = c.u24()
        c.end = min(c.end, c.pos + length)
        if tls13:
            c.take(c.u8())
        list_end = c.pos + 3
        list_end += c.u24()
        list_end = min(list_end, c.end)
        while c.pos + 3 <= list_end and len(certs) < MAX_CHAIN_CERTS:
            certs.append(c.take(c.u24()))
            if tls13:
                c.take(c.u16())
    except ValueError:
        log.debug("truncated Certificate message; kept %d certificates", len(certs))
    return certs


# --------------------------------------------------------------------------------------------------
# One handshake attempt.

@dataclass(slots=True)
class Attempt:
    """What one connection attempt showed.  ``outcome`` is one of:

    ``accepted``            handshake completed (and, when the server asked for a client certificate, it did
                            not reject the connection right after);
    ``server_alert``        the server answered with a fatal alert (``alert``);
    ``server_chose_other``  the server answered with a ServerHello for a version/suite we did not offer,
                            and our client aborted (``server_version`` says what it chose);
    ``closed``              the server closed or reset the connection without an alert;
    ``client_aborted``      our client aborted for another reason (``error``);
    ``timeout``             no answer within the timeout;
    ``not_testable``        the local TLS library cannot make this offer at all.
    """

    label: str
    offered: list[str]
    servername: str | None
    outcome: str = "not_testable"
    method: str = "python-ssl"
    version: str | None = None            # negotiated (accepted) version
    cipher: str | None = None             # negotiated suite, IANA name
    server_version: str | None = None     # version in the server's ServerHello, if any
    server_cipher: str | None = None
    hello_retry: bool = False
    negotiated: bool = False              # the server's ServerHello chose a version we offered
    client_cert_requested: bool = False   # the server sent a CertificateRequest
    client_cert_sent: bool = False        # we answered it with a (non-empty) certificate
    alert: dict[str, object] | None = None          # fatal alert that ended it: code, name, level, sent_by
    warning_alerts: list[dict[str, object]] = field(default_factory=list)  # warning-level alerts received
    error: str | None = None
    elapsed_ms: float = 0.0
    chain: list[bytes] = field(default_factory=list)  # certificates as sent (DER), not serialized

    @property
    def accepted(self) -> bool:
        return self.outcome == "accepted"

    @property
    def client_cert_rejected(self) -> bool:
        """The server negotiated, asked for a client certificate, then ended the connection with an alert."""
        return (self.negotiated and self.client_cert_requested and self.outcome == "server_alert"
                and self.alert is not None and self.alert["code"] in (40, 42, 43, 44, 45, 46, 48, 49, 116))

    @property
    def leaf_sha256(self) -> str | None:
        return hashlib.sha256(self.chain[0]).hexdigest() if self.chain else None

    def summary(self) -> str:
        if self.outcome == "accepted":
            s = f"accepted {self.version} {self.cipher}"
            if self.warning_alerts:
                s += " (warning alert " + ", ".join(str(a["name"]) for a in self.warning_alerts) + ")"
            return s
        if self.outcome == "server_alert" and self.alert:
            s = f"alert {self.alert['name']} ({self.alert['code']}) from server"
            if self.negotiated:
                s = f"negotiated {self.server_version} {self.server_cipher}, then " + s
                if self.client_cert_requested and not self.client_cert_sent:
                    s += " after a CertificateRequest (client certificate required)"
                elif self.client_cert_sent:
                    s += " (client certificate rejected)"
            return s
        if self.outcome == "server_chose_other":
            what = self.server_version or "?"
            if self.server_cipher:
                what += f" {self.server_cipher}"
            return f"server answered with {what}; client refused"
        if self.outcome == "closed":
            return "server closed the connection without an alert"
        if self.outcome == "timeout":
            return "no answer (timeout)"
        if self.outcome == "not_testable":
            return "not testable from this host" + (f" ({self.error})" if self.error else "")
        return f"client aborted: {self.error}"

    def to_dict(self) -> dict[str, object]:
        return {
            "label": self.label, "offered": list(self.offered), "servername": self.servername,
            "outcome": self.outcome, "accepted": self.accepted, "method": self.method,
            "version": self.version, "cipher": self.cipher, "server_version": self.server_version,
            "server_cipher": self.server_cipher, "hello_retry": self.hello_retry, "negotiated": self.negotiated,
            "client_cert_requested": self.client_cert_requested, "client_cert_sent": self.client_cert_sent,
            "alert": self.alert,
            "warning_alerts": list(self.warning_alerts), "error": self.error,
            "elapsed_ms": round(self.elapsed_ms, 1), "leaf_sha256": self.leaf_sha256,
            "summary": self.summary(),
        }


def _alert_dict(code: int, level: int, sent_by: str) -> dict[str, object]:
    return {"code": code, "name": alert_name(code), "level": "fatal" if level == 2 else "warning",
            "sent_by": sent_by}


class _Recorder:
    """OpenSSL message-callback sink for one connection."""

    def __init__(self) -> None:
        self.server_hello: ServerHelloInfo | None = None
        self.hello_retry = False
        self.cert_request = False
        self.client_cert_sent: bool | None = None  # None: no client Certificate message at all
        self.cert_msgs: list[bytes] = []
        self.alerts_in: list[tuple[int, int]] = []
        self.alerts_out: list[tuple[int, int]] = []
        self.bytes = 0

    def __call__(self, conn: object, direction: str, version: object, content_type: object,
                 msg_type: object, data: bytes) -> None:
        try:
            ct = int(content_type)  # type: ignore[call-overload]
            if ct == 21 and len(data) >= 2:
                (self.alerts_in if direction == "read" else self.alerts_out).append((data[0], data[1]))
            elif ct == 22 and direction == "write" and data and data[0] == 11:
                tls13 = self.server_hello is not None and self.server_hello.version == 0x0304
                self.client_cert_sent = bool(parse_certificate_message(bytes(data), tls13))
            elif ct == 22 and direction == "read" and data:
                self.bytes += len(data)
                if self.bytes > MAX_HANDSHAKE_BYTES:
                    return
                if data[0] == 2:  # keep the last one: after a HelloRetryRequest the real ServerHello follows
                    sh = parse_server_hello(bytes(data))
                    if sh is not None:
                        self.hello_retry = self.hello_retry or sh.hello_retry
                        self.server_hello = sh
                elif data[0] == 13:
                    self.cert_request = True
                elif data[0] == 11 and not self.cert_msgs:
                    self.cert_msgs.append(bytes(data))
        except Exception:  # a callback must never break the handshake; counted in the log only
            log.debug("message callback failed", exc_info=True)

    def chain(self) -> list[bytes]:
        if not self.cert_msgs:
            return []
        tls13 = self.server_hello is not None and self.server_hello.version == 0x0304
        return parse_certificate_message(self.cert_msgs[0], tls13)


HAS_MSG_CALLBACK = hasattr(ssl.SSLContext, "_msg_callback")
#: Off only to exercise the fallback (tests): then alerts come from OpenSSL's error reasons and the chain
#: from ``openssl s_client -showcerts``.
_USE_MSG_CALLBACK = True


def msg_callback_active() -> bool:
    return HAS_MSG_CALLBACK and _USE_MSG_CALLBACK


def make_context(versions: Sequence[str], ciphers: str | None) -> ssl.SSLContext:
    """A client context offering exactly ``versions`` (a contiguous range) and ``ciphers``; no verification
    (the probe validates the chain itself)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    lo = min(versions, key=VERSIONS.index)
    hi = max(versions, key=VERSIONS.index)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = _SSL_VERSIONS[lo]
        ctx.maximum_version = _SSL_VERSIONS[hi]
    ctx.set_ciphers(ciphers or "ALL:COMPLEMENTOFALL:!PSK:!SRP:@SECLEVEL=0")
    return ctx


def local_can_offer(versions: Sequence[str], ciphers: str | None = None) -> str | None:
    """None if this host's TLS library can send a ClientHello with this offer; else the reason."""
    try:
        ctx = make_context(versions, ciphers)
    except (ssl.SSLError, ValueError) as e:
        return str(getattr(e, "reason", None) or e)
    obj = ctx.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_side=False)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        return None
    except ssl.SSLError as e:
        return str(e.reason or e)
    return None


def load_client_cert(ctx: ssl.SSLContext, cert: str, key: str | None) -> None:
    """Present ``cert`` (PEM: certificate, then its intermediates) with ``key`` (or a key inside ``cert``)."""
    try:
        ctx.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError, ValueError) as e:
        raise ProbeError(f"cannot load client certificate {cert}"
                         + (f" / key {key}" if key else "") + f": {getattr(e, 'strerror', None) or e}") from None


def handshake(addr: tuple[int, tuple[object, ...]], versions: Sequence[str], *, servername: str | None,
              ciphers: str | None, timeout: float, label: str, suites: SuiteTable,
              client_cert: tuple[str, str | None] | None = None) -> Attempt:
    """One real handshake to ``addr`` (family, sockaddr) with the given offer."""
    att = Attempt(label=label, offered=list(versions), servername=servername)
    why = local_can_offer(versions, ciphers)
    if why is not None:
        att.error = why
        return att
    ctx = make_context(versions, ciphers)
    if client_cert is not None:
        load_client_cert(ctx, *client_cert)
    rec = _Recorder()
    if HAS_MSG_CALLBACK and _USE_MSG_CALLBACK:
        ctx._msg_callback = rec  # type: ignore[attr-defined]
    family, sockaddr = addr
    t0 = time.monotonic()
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    tls: ssl.SSLSocket | None = None
    try:
        sock.connect(sockaddr)
        tls = ctx.wrap_socket(sock, server_hostname=servername, do_handshake_on_connect=False)
        tls.do_handshake()
        att.outcome = "accepted"
        if rec.cert_request and tls.version() == "TLSv1.3":
            # TLS 1.3: the client's handshake is over before the server has judged the client's Certificate;
            # its verdict (certificate_required, unknown_ca, ...) arrives as the first record. Wait for it for
            # about two handshake round trips (the handshake itself took one and a half).
            tls.settimeout(min(timeout, max(0.3, 2 * (time.monotonic() - t0))))
            try:
                tls.recv(1)
            except (ssl.SSLError, ConnectionError):
                if rec.alerts_in:
                    att.outcome = "server_alert"
            except (OSError, ValueError):
                pass
        att.version = {"TLSv1": "TLSv1.0"}.get(str(tls.version()), tls.version())
        negotiated = tls.cipher()
        att.cipher = suites.iana_for_openssl(negotiated[0]) if negotiated else None
        try:  # polite close_notify, but never wait long for the server's
            tls.settimeout(min(0.5, timeout))
            tls.unwrap()
        except (OSError, ValueError):
            pass
    except ssl.SSLError as e:
        reason = str(e.reason or "")
        if isinstance(e, ssl.SSLEOFError) or "EOF" in reason:
            att.outcome, att.error = "closed", reason or str(e)
        elif reason in _LOCAL_CANNOT_OFFER:
            att.outcome, att.error = "not_testable", reason
        else:
            att.outcome, att.error = "client_aborted", reason or str(e)
            code = alert_from_reason(reason)
            if code is not None and not rec.alerts_in:
                rec.alerts_in.append((2, code))
    except (socket.timeout, TimeoutError):
        att.outcome, att.error = "timeout", f"no answer within {timeout:g}s"
    except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError) as e:
        att.outcome, att.error = "closed", e.__class__.__name__
    except OSError as e:
        att.outcome, att.error = "client_aborted", e.strerror or str(e)
    finally:
        att.elapsed_ms = (time.monotonic() - t0) * 1000
        (tls or sock).close()
    sh = rec.server_hello
    att.client_cert_requested = rec.cert_request
    att.client_cert_sent = bool(rec.client_cert_sent)
    if sh is not None:
        att.server_version = version_name(sh.version)
        att.server_cipher = suites.iana(sh.cipher)
        att.hello_retry = rec.hello_retry
        att.negotiated = not sh.hello_retry and sh.version in {VERSION_CODES[v] for v in versions}
    for level, code in rec.alerts_in:
        if level == 1 and code != 0:
            att.warning_alerts.append(_alert_dict(code, level, "server"))
    fatal_in = [(lv, c) for lv, c in rec.alerts_in if lv == 2 or c == 0]
    if att.outcome == "accepted":  # a completed handshake negotiated, message callback or not
        att.negotiated = True
        att.server_version = att.server_version or att.version
        att.server_cipher = att.server_cipher or att.cipher
    if att.outcome == "server_alert" and fatal_in and att.alert is None:
        att.alert = _alert_dict(fatal_in[0][1], fatal_in[0][0], "server")
        att.version, att.cipher = att.server_version, att.server_cipher
    elif att.outcome != "accepted":
        if fatal_in:
            att.outcome = "server_alert"
            att.alert = _alert_dict(fatal_in[0][1], fatal_in[0][0], "server")
        elif rec.alerts_out and sh is not None and not sh.hello_retry and not att.negotiated:
            lv, c = rec.alerts_out[0]
            att.alert = _alert_dict(c, lv, "client")
            offered_codes = {VERSION_CODES[v] for v in versions}
            if sh.version not in offered_codes or c in (70, 40, 47):
                att.outcome = "server_chose_other"
        elif rec.alerts_out:
            lv, c = rec.alerts_out[0]
            att.alert = _alert_dict(c, lv, "client")
    att.chain = rec.chain()
    return att


# --------------------------------------------------------------------------------------------------
# Hand-built ClientHello, for versions this host's TLS library cannot offer (SSLv3 on OpenSSL 3).

_RAW_SUITES_OLD = (0xC014, 0xC00A, 0xC013, 0xC009, 0x0039, 0x0038, 0x0035, 0x0033, 0x0032, 0x002F,
                   0xC012, 0xC008, 0x0016, 0x0013, 0x000A, 0x0005, 0x0004, 0x0015, 0x0012, 0x0009,
                   0x0014, 0x0011, 0x0008, 0x0006, 0x0003, 0x00FF)
_RAW_SUITES_12 = (0xC02F, 0xC02B, 0xC030, 0xC02C, 0x009E, 0x009C, 0x009F, 0x009D, 0xC027, 0xC023,
                  0x003C, 0x003D, 0x0067, 0x006B) + _RAW_SUITES_OLD
#: RFC 8446 §B.4 and RFC 8998-free IANA TLS 1.3 suites.
TLS13_SUITES = (0x1301, 0x1302, 0x1303, 0x1304, 0x1305)


def _ext(etype: int, body: bytes) -> bytes:
    return struct.pack("!HH", etype, len(body)) + body


def build_client_hello(versions: Sequence[int], servername: str | None, suites: Sequence[int]) -> bytes:
    """A ClientHello record offering exactly ``versions`` and ``suites``.

    Up to TLS 1.2 the highest version goes in legacy_version; with TLS 1.3 the list goes in
    supported_versions (RFC 8446 §4.2.1) with an x25519 key_share, so the server can answer with a real
    ServerHello (or a HelloRetryRequest) that names the version and suite it picked.
    """
    top = max(versions)
    exts = b""
    if servername:
        host = servername.encode("idna") if not servername.isascii() else servername.encode()
        entry = b"\x00" + struct.pack("!H", len(host)) + host
        exts += _ext(0, struct.pack("!H", len(entry)) + entry)
    if top >= 0x0301:
        groups = (0x001D, 0x0017, 0x0018, 0x0019) if top >= 0x0304 else (0x0017, 0x0018, 0x0019)
        exts += _ext(10, struct.pack("!H", 2 * len(groups)) + b"".join(struct.pack("!H", g) for g in groups))
        exts += _ext(11, b"\x01\x00")  # ec_point_formats: uncompressed
    if top >= 0x0303:
        algs = (0x0403, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601, 0x0201, 0x0203)
        exts += _ext(13, struct.pack("!H", 2 * len(algs)) + b"".join(struct.pack("!H", a) for a in algs))
    session_id = b""
    if top >= 0x0304:
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
        pub = X25519PrivateKey.generate().public_key().public_bytes(serialization.Encoding.Raw,
                                                                    serialization.PublicFormat.Raw)
        vs = b"".join(struct.pack("!H", v) for v in sorted(versions, reverse=True))
        exts += _ext(43, bytes([len(vs)]) + vs)
        share = struct.pack("!HH", 0x001D, len(pub)) + pub
        exts += _ext(51, struct.pack("!H", len(share)) + share)
        exts += _ext(45, b"\x01\x01")  # psk_key_exchange_modes: psk_dhe_ke (expected by some stacks)
        session_id = os.urandom(32)  # middlebox compatibility mode (RFC 8446 §D.4)
    legacy = min(top, 0x0303)
    cs = b"".join(struct.pack("!H", s) for s in suites)
    hello = (struct.pack("!H", legacy) + os.urandom(32) + bytes([len(session_id)]) + session_id
             + struct.pack("!H", len(cs)) + cs + b"\x01\x00")
    if exts:
        hello += struct.pack("!H", len(exts)) + exts
    msg = b"\x01" + struct.pack("!I", len(hello))[1:] + hello
    return struct.pack("!BHH", 22, min(top, 0x0301), len(msg)) + msg


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def raw_hello_probe(addr: tuple[int, tuple[object, ...]], versions: Sequence[str], *, servername: str | None,
                    timeout: float, suites: SuiteTable, label: str,
                    cipher_codes: Sequence[int] | None = None) -> Attempt:
    """Send a hand-built ClientHello and read the server's first answer (ServerHello or alert).

    ``negotiated``/``accepted`` here mean the server's ServerHello picked an offered version; the handshake
    is not completed (no key exchange, no Finished), which is all the version and suite questions need.
    """
    att = Attempt(label=label, offered=list(versions), servername=servername, method="raw-client-hello")
    codes = [VERSION_CODES[v] for v in versions]
    if cipher_codes is None:
        cipher_codes = ((TLS13_SUITES if max(codes) >= 0x0304 else ())
                        + (_RAW_SUITES_12 if min(codes) <= 0x0303 and max(codes) >= 0x0303 else ())
                        + (_RAW_SUITES_OLD if min(codes) < 0x0303 else ()))
        cipher_codes = list(dict.fromkeys(cipher_codes))
    family, sockaddr = addr
    t0 = time.monotonic()
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(sockaddr)
        sock.sendall(build_client_hello(codes, servername, cipher_codes))
        hs = b""
        total = 0
        while True:
            ctype, _rv, length = struct.unpack("!BHH", _recv_exact(sock, 5))
            if length > MAX_RECORD:
                att.outcome, att.error = "client_aborted", "record_overflow in server answer"
                break
            frag = _recv_exact(sock, length)
            total += length
            if ctype == 21 and len(frag) >= 2:
                att.outcome = "server_alert"
                att.alert = _alert_dict(frag[1], frag[0], "server")
                break
            if ctype != 22:
                att.outcome, att.error = "client_aborted", f"unexpected record type {ctype}"
                break
            hs += frag
            if len(hs) >= 4:
                need = 4 + ((hs[1] << 16) | (hs[2] << 8) | hs[3])
                if len(hs) >= need:
                    sh = parse_server_hello(hs[:need])
                    if sh is None:
                        att.outcome, att.error = "client_aborted", "first server message is not a ServerHello"
                        break
                    att.server_version = version_name(sh.version)
                    att.server_cipher = suites.iana(sh.cipher)
                    att.hello_retry = sh.hello_retry
                    if sh.version in codes and sh.cipher in cipher_codes:
                        att.outcome, att.version, att.cipher = "accepted", att.server_version, att.server_cipher
                        att.negotiated = True
                    else:
                        att.outcome = "server_chose_other"
                    break
            if total > MAX_HANDSHAKE_BYTES:
                att.outcome, att.error = "client_aborted", "ServerHello too long"
                break
    except EOFError:
        att.outcome, att.error = "closed", "EOF"
    except (socket.timeout, TimeoutError):
        att.outcome, att.error = "timeout", f"no answer within {timeout:g}s"
    except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError) as e:
        att.outcome, att.error = "closed", e.__class__.__name__
    except OSError as e:
        att.outcome, att.error = "client_aborted", e.strerror or str(e)
    finally:
        att.elapsed_ms = (time.monotonic() - t0) * 1000
        sock.close()
    return att


# --------------------------------------------------------------------------------------------------
# Chain from ``openssl s_client -showcerts`` (fallback when the message callback is unavailable).

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


# --------------------------------------------------------------------------------------------------
# Chain validation: delegated to analyzer.certs (the diagnosis engine's checker), so the probe judges a
# served chain exactly like ``tlsdiag diagnose`` judges a captured one.

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
        hostname["matches"] = HOSTNAME_PROBLEM not in rep.codes()
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

# --------------------------------------------------------------------------------------------------
# The probe.

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


class Prober:
    def __init__(self, opts: ProbeOptions, *, now: _dt.datetime | None = None) -> None:
        self.o = opts
        self.now = now
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
            ciphers: str | None = None) -> Attempt:
        assert self.addr is not None
        self.attempts += 1
        att = handshake(self.addr, versions, servername=servername, ciphers=ciphers, timeout=self.o.timeout,
                        label=label, suites=self.suites,
                        client_cert=(self.o.client_cert, self.o.client_key) if self.o.client_cert else None)
        log.debug("probe %s: %s", label, att.summary())
        return att

    # -- steps
    def probe_versions(self) -> dict[str, Attempt]:
        res: dict[str, Attempt] = {}
        for v in VERSIONS:
            ciphers = None if v == "TLSv1.3" else "ALL:COMPLEMENTOFALL:!PSK:!SRP:@SECLEVEL=0"
            why = local_can_offer([v], ciphers)
            if why is None:
                att = self._hs([v], label=f"version {v}", servername=self.name, ciphers=ciphers)
            else:
                assert self.addr is not None
                self.attempts += 1
                att = raw_hello_probe(self.addr, [v], servername=self.name, timeout=self.o.timeout,
                                      suites=self.suites, label=f"version {v}")
                att.error = (att.error + "; " if att.error else "") + \
                    f"this host's TLS library cannot offer {v} ({why}); used a hand-built ClientHello"
            res[v] = att
        return res

    def probe_suites(self, version: str) -> list[str]:
        """Accepted suites for one version <= TLS 1.2, by repeatedly removing the one the server chose."""
        ctx = make_context([version], "ALL:COMPLEMENTOFALL:!PSK:!SRP:@SECLEVEL=0")
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
        assert self.addr is not None
        remaining = list(TLS13_SUITES)
        chosen: list[str] = []
        while remaining:
            self.attempts += 1
            att = raw_hello_probe(self.addr, ["TLSv1.3"], servername=self.name, timeout=self.o.timeout,
                                  suites=self.suites, label="suites TLSv1.3", cipher_codes=remaining)
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
                assert self.addr is not None
                self.attempts += 1
                label = "offer " + ",".join(versions) + " [" + ",".join(s.iana for s in ciphers) + "]"
                return raw_hello_probe(self.addr, versions, servername=self.name, timeout=self.o.timeout,
                                       suites=self.suites, label=label,
                                       cipher_codes=[s.code for s in ciphers]), notes
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
            cipher_str = "ALL:@SECLEVEL=0"
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
                                        ciphers="ALL:@SECLEVEL=0")
        res["without_name"] = self._hs(VERSIONS[1:], label="no SNI", servername=None, ciphers="ALL:@SECLEVEL=0")
        res["unknown_name"] = self._hs(VERSIONS[1:], label=f"SNI {UNKNOWN_SNI}", servername=UNKNOWN_SNI,
                                       ciphers="ALL:@SECLEVEL=0")
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
            "chain_source": "message callback" if msg_callback_active() else "openssl s_client -showcerts",
        }
        versions = self.probe_versions()
        report["versions"] = {v: a.to_dict() for v, a in versions.items()}
        accepted = [v for v, a in versions.items() if a.negotiated]
        suites: dict[str, list[str]] = {}
        if o.enumerate_suites:
            for v in accepted:
                if v in ("TLSv1.0", "TLSv1.1", "TLSv1.2") and versions[v].method == "python-ssl":
                    suites[v] = self.probe_suites(v)
            if "TLSv1.3" in accepted:
                suites["TLSv1.3"] = self.probe_suites13() or [str(versions["TLSv1.3"].server_cipher)]
        report["suites"] = suites
        offer: Attempt | None = None
        if o.offer_versions or o.offer_ciphers:
            oc = parse_ciphers(o.offer_ciphers, self.suites) if o.offer_ciphers else None
            default_note = None
            ov = o.offer_versions
            if not ov:  # like a Java 8 client: TLSv1.2, plus TLSv1.3 only when TLS 1.3 suites were named
                ov = ["TLSv1.2", "TLSv1.3"] if oc and any(s.min_version == "TLSv1.3" for s in oc) else ["TLSv1.2"]
                default_note = "no --versions given: offered " + ",".join(ov)
            offer, notes = self.probe_offer(ov, oc)
            if default_note:
                notes.insert(0, default_note)
            report["offer"] = {**offer.to_dict(), "notes": notes,
                               "ciphers": [s.iana for s in oc] if oc else None}
        sni = self.probe_sni()
        report["sni"] = {k: a.to_dict() for k, a in sni.items()}

        # Chain: from the best handshake that sent the name (highest accepted version), else any.
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
        if not chain_ders and not msg_callback_active():
            chain_ders = chain_via_openssl(str(self.addr[1][0]), o.port, self.name, o.timeout)
        if chain_ders:
            chain = validate_chain(chain_ders, self.name, roots, self.now)
            chain["from"] = best.label if best else "openssl s_client"
            chain["version"] = best.server_version if best else None
        else:
            chain = {"sent": 0, "problems": [], "note": "no handshake completed: the server's chain was not seen"}
        report["chain"] = chain
        report["findings"] = findings(report, versions, suites, offer, sni, self.name)
        report["attempts"] = self.attempts
        report["elapsed_s"] = round(time.monotonic() - t0, 3)
        return report


# --------------------------------------------------------------------------------------------------
# Verdicts.

def _finding(cause: str, severity: str, message: str, fix: str = "") -> dict[str, str]:
    return {"cause": cause, "severity": severity, "message": message, "fix": fix}


def _pin_fix(version: str) -> str:
    if version == "SSLv3":
        return ("upgrade the backend to TLSv1.2: SSLv3 is disabled in Java 8u31+ (jdk.tls.disabledAlgorithms) and "
                "must not be pinned")
    return (f"upgrade the backend to TLSv1.2 (recommended), or pin <SSLInfo><Protocols><Protocol>{version}"
            f"</Protocol></Protocols> in the TargetEndpoint / target server")


def _cert_label(att: Attempt) -> str:
    if not att.chain:
        return "?"
    try:
        c = x509.load_der_x509_certificate(att.chain[0])
        cn = c.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return f"CN={cn[0].value!s}" if cn else c.subject.rfc4514_string()
    except ValueError:
        return "?"


def findings(report: dict[str, object], versions: dict[str, Attempt], suites: dict[str, list[str]],
             offer: Attempt | None, sni: dict[str, Attempt], name: str | None) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    accepted = [v for v in VERSIONS if versions[v].negotiated]
    untestable = [v for v in VERSIONS if versions[v].outcome == "not_testable"]
    if not accepted:
        hint = "check that the port speaks TLS; see the per-version answers above"
        if name is None:
            hint = ("the target is an IP address and no --servername was given, so no server_name was sent: an "
                    "SNI-only server rejects every such handshake - retry with --servername NAME")
        out.append(_finding(UNKNOWN.id, "failure", "no protocol version was accepted in any probe handshake", hint))
    else:
        modern = [v for v in accepted if v in ("TLSv1.2", "TLSv1.3")]
        if not modern:
            only = ", ".join(accepted)
            rej = versions["TLSv1.2"]
            if rej.outcome == "server_alert" and rej.alert:
                how = f"the server's {rej.alert['name']} alert"
            elif rej.outcome == "server_chose_other":
                how = (f"the server answering {rej.server_version} and the client aborting"
                       + (f" with {rej.alert['name']}" if rej.alert else ""))
            else:
                how = rej.summary()
            out.append(_finding(
                PROTOCOL_MISMATCH.id, "failure",
                f"server accepts only {only}: a client offering only TLSv1.2 (Java 8+ / Message Processor "
                f"default) fails with {how}",
                _pin_fix(accepted[-1])))
        old = [v for v in accepted if v in ("SSLv3", "TLSv1.0", "TLSv1.1")]
        if old and modern:
            out.append(_finding(PROTOCOL_MISMATCH.id, "warning",
                                f"server still accepts deprecated {', '.join(old)} (also {', '.join(modern)})",
                                "disable " + ", ".join(old) + " on the server"))
        if "TLSv1.3" not in accepted and "TLSv1.3" not in untestable:
            out.append(_finding(PROTOCOL_MISMATCH.id, "info", "server does not accept TLSv1.3"))
    for v in untestable:
        out.append(_finding(UNKNOWN.id, "info", f"{v}: not testable from this host ({versions[v].error})"))

    if offer is not None:
        if offer.accepted:
            out.append(_finding("none", "ok", f"client offer accepted: {offer.version} {offer.cipher}"))
        elif offer.negotiated:
            out.append(_finding("none", "ok", f"client offer negotiated {offer.server_version} {offer.server_cipher}"
                                              f" (the handshake then failed: {offer.summary()})"))
        elif offer.outcome == "not_testable":
            out.append(_finding(UNKNOWN.id, "info", f"client offer not testable from this host ({offer.error})"))
        else:
            offered = set(offer.offered)
            common = [v for v in accepted if v in offered]
            alert = offer.alert["name"] if offer.alert else None
            if not common and accepted:
                out.append(_finding(
                    PROTOCOL_MISMATCH.id, "failure",
                    f"client offer {','.join(offer.offered)} fails ({offer.summary()}): server accepts only "
                    f"{', '.join(accepted)}",
                    _pin_fix(accepted[-1])))
            elif common and alert in ("handshake_failure", "insufficient_security", None):
                offer_info = report.get("offer")
                named = offer_info.get("ciphers") if isinstance(offer_info, dict) else None
                have = "; ".join(f"{v}: " + ", ".join(suites[v][:8]) + (" ..." if len(suites[v]) > 8 else "")
                                 for v in common if suites.get(v))
                shared = {v: [c for c in named if c in suites.get(v, [])] for v in common} if named else {}
                works = [v for v in common if shared.get(v)]
                if works and works[-1] != common[-1]:
                    top, ok_v = common[-1], works[-1]
                    out.append(_finding(
                        CIPHER_MISMATCH.id, "failure",
                        f"client offer fails ({offer.summary()}): the server settles on {top} first and shares none "
                        f"of the offered {top} suites; it does not fall back to {ok_v}, where "
                        f"{', '.join(shared[ok_v])} would work" + (f" (server's {top} suites: "
                                                                     + ", ".join(suites.get(top, [])) + ")"
                                                                     if suites.get(top) else ""),
                        f"offer a {top} suite the server has, or drop {top} from the client's protocols"))
                else:
                    out.append(_finding(
                        CIPHER_MISMATCH.id, "failure",
                        f"client offer fails ({offer.summary()}) although both sides speak {', '.join(common)}: "
                        f"no common cipher suite" + (f" (server accepts {have})" if have else ""),
                        "make the client offer a suite the server has (MP: JCE unlimited policy / SSLInfo "
                        "<Ciphers>), or enable a suite of the client's on the server"))
            else:
                out.append(_finding(UNKNOWN.id, "failure", f"client offer fails: {offer.summary()}"))

    w, wo, unk = sni.get("with_name"), sni.get("without_name"), sni.get("unknown_name")
    if w is not None and wo is not None:
        if w.negotiated and not wo.negotiated:
            out.append(_finding(
                SNI_REQUIRED.id, "failure" if wo.outcome in ("server_alert", "closed") else "warning",
                f"handshake without server_name fails ({wo.summary()}); with {name} it succeeds: the server "
                "requires SNI",
                "make the client send SNI (MP: conf_system_jsse.enableSNIExtension=true, restart; use a "
                "hostname, not an IP, in the target URL)"))
        elif w.negotiated and wo.negotiated and w.leaf_sha256 and wo.leaf_sha256 \
                and w.leaf_sha256 != wo.leaf_sha256:
            out.append(_finding(
                SNI_REQUIRED.id, "warning",
                f"server is SNI-dependent: with {name} it serves {_cert_label(w)}, without server_name "
                f"{_cert_label(wo)}",
                "clients must send SNI to get the right certificate (MP: jsse.enableSNIExtension=true)"))
        if w.negotiated and w.warning_alerts and any(a["code"] == 112 for a in w.warning_alerts):
            out.append(_finding(
                SNI_UNRECOGNIZED.id, "failure",
                f"server answers server_name {name} with a warning unrecognized_name: Java (JSSE) clients "
                "treat it as fatal",
                f"configure {name} as a server name (virtual host / ServerName alias) on the server"))
    elif wo is not None and name is None:
        out.append(_finding(UNKNOWN.id, "info", "SNI sensitivity not tested with a name: target is an IP; "
                                               "give --servername"))
    if unk is not None and w is not None and w.negotiated:
        if unk.outcome == "server_alert" and unk.alert and unk.alert["code"] == 112:
            out.append(_finding(SNI_UNRECOGNIZED.id, "info",
                                "server rejects unknown server names with unrecognized_name: clients must send "
                                f"exactly a configured name such as {name}"))
        elif unk.accepted and unk.warning_alerts:
            out.append(_finding(SNI_UNRECOGNIZED.id, "info",
                                "server answers unknown server names with a warning unrecognized_name "
                                "(fatal for JSSE clients that send a name it does not know)"))

    every = list(versions.values()) + list(sni.values()) + ([offer] if offer is not None else [])
    rejected = next((a for a in every if a.client_cert_rejected), None)
    if rejected is not None and rejected.alert is not None and rejected.client_cert_sent:
        code = int(rejected.alert["code"])  # type: ignore[call-overload]
        cause = {45: EXPIRED_CERTIFICATE.id, 48: UNKNOWN_CERTIFICATE.id, 116: CLIENT_CERTIFICATE_MISSING.id}.get(
            code, CERTIFICATE_REJECTED.id)
        out.append(_finding(
            cause, "failure",
            f"server rejects the client certificate presented ({rejected.server_version}): alert "
            f"{rejected.alert['name']} (rejected_by server)",
            {EXPIRED_CERTIFICATE.id: "renew the client certificate in the client's keystore",
             UNKNOWN_CERTIFICATE.id: "add the client certificate's issuing CA to the server's truststore (or "
                                    "present a certificate from a CA it trusts, with its intermediates)",
             }.get(cause, "check the client certificate against the server's truststore and policy")))
    elif rejected is not None and rejected.alert is not None:
        out.append(_finding(
            CLIENT_CERTIFICATE_MISSING.id, "failure",
            f"server requires a client certificate: it sends a CertificateRequest and, when the client sends "
            f"none, ends the handshake with {rejected.alert['name']} ({rejected.server_version})",
            "configure the client with a certificate the server trusts (MP: TargetEndpoint <SSLInfo> "
            "<ClientAuthEnabled>true</ClientAuthEnabled>, <KeyStore>, <KeyAlias>); this probe sends none"))
    elif any(a.client_cert_requested and a.accepted for a in every):
        out.append(_finding(CLIENT_CERTIFICATE_MISSING.id, "info",
                            "server requests an optional client certificate (handshake succeeds without one)"))

    chain = report.get("chain")
    if isinstance(chain, dict):
        for p in chain.get("problems", []):
            if not isinstance(p, dict):
                continue
            fix = {
                EXPIRED_CERTIFICATE.id: "install a renewed certificate with its full chain in the server's keystore",
                EXPIRING_CERTIFICATE.id: "renew the certificate before it expires",
                NOT_YET_VALID_CERTIFICATE.id: "check the server's clock / install a currently valid certificate",
                HOSTNAME_MISMATCH.id: "get a certificate whose SAN covers the name (or a wildcard) and upload the "
                                     "full chain to the keystore",
                INCOMPLETE_CHAIN.id: "upload the complete chain (leaf + intermediates) to the server's keystore; "
                                    "check with openssl verify -CAfile root -untrusted intermediate leaf",
                UNKNOWN_CERTIFICATE.id: "add the issuing root to the client's truststore, or serve a certificate "
                                       "from a CA the client trusts",
            }.get(p["cause"], "")
            out.append(_finding(str(p["cause"]), str(p["severity"]), str(p["message"]), fix))
        trust = chain.get("trust")
        if isinstance(trust, dict) and trust.get("verified") is True and not chain.get("problems"):
            out.append(_finding("none", "ok", f"chain verifies for {name} against {trust.get('truststore')}"))
    return out


# --------------------------------------------------------------------------------------------------
# Text rendering.

def render_text(r: dict[str, object]) -> str:
    L: list[str] = []
    name = r.get("servername")
    L.append(f"tlsdiag probe {r['target']} (connected to {r['connected_to']}; server name "
             f"{name or '-'}; timeout {r['timeout_s']}s; {r.get('local_tls_library')})")
    L.append("")
    L.append("Protocol versions (each offered alone" + (f", SNI {name}" if name else ", no SNI") + "):")
    versions = r.get("versions")
    if isinstance(versions, dict):
        for v, a in versions.items():
            mark = "ACCEPTED" if a["negotiated"] else ("untestable" if a["outcome"] == "not_testable" else "rejected")
            extra = f"  [{a['method']}]" if a["method"] != "python-ssl" else ""
            summ = a["summary"] if not a["accepted"] else f"{a['cipher']}"
            L.append(f"  {v:<8} {mark:<10} {summ}{extra}")
        raw = [v for v, a in versions.items() if a["method"] == "raw-client-hello"]
        if raw:
            L.append(f"  ({', '.join(raw)}: this host's TLS library cannot offer {'it' if len(raw) == 1 else 'them'}; "
                     "tested with a hand-built ClientHello - the server's ServerHello or alert, no full handshake)")
    suites = r.get("suites")
    if isinstance(suites, dict) and suites:
        L.append("")
        L.append("Cipher suites accepted (in the order the server chose them):")
        for v, names in suites.items():
            L.append(f"  {v}: " + (", ".join(names) if names else "-"))
    offer = r.get("offer")
    if isinstance(offer, dict):
        L.append("")
        L.append(f"Client offer {offer['label'][6:]}:")
        verdict = "ACCEPTED" if offer["accepted"] else ("NEGOTIATED, then failed" if offer["negotiated"] else "REJECTED")
        L.append(f"  {verdict}: {offer['summary']}")
        for n in offer.get("notes", []):
            L.append(f"  note: {n}")
    sni = r.get("sni")
    if isinstance(sni, dict):
        L.append("")
        L.append("SNI:")
        for key, what in (("with_name", f"server_name {name}"), ("without_name", "no server_name"),
                          ("unknown_name", f"server_name {UNKNOWN_SNI}")):
            a = sni.get(key)
            if a is None:
                continue
            leaf = f"  leaf sha256 {str(a['leaf_sha256'])[:16]}" if a.get("leaf_sha256") else ""
            L.append(f"  {what:<40} {a['summary']}{leaf}")
    chain = r.get("chain")
    if isinstance(chain, dict):
        L.append("")
        if chain.get("certificates"):
            L.append(f"Certificate chain as sent ({chain['sent']} certificate{'s' if chain['sent'] != 1 else ''}, "
                     f"{chain.get('version')}, "
                     f"from '{chain.get('from')}'):")
            for c in chain["certificates"]:
                state = "EXPIRED" if c["expired"] else ("NOT YET VALID" if c["not_yet_valid"] else f"{c['days_left']}d left")
                L.append(f"  [{c['index']}] {c['subject']}")
                L.append(f"      issuer {c['issuer']}; {c['not_before'][:10]} .. {c['not_after'][:10]} ({state})"
                         + ("; CA" if c["ca"] else "") + ("; self-signed" if c["self_signed"] else ""))
                if c["san_dns"] or c["san_ip"]:
                    L.append("      SAN " + ", ".join(c["san_dns"] + c["san_ip"]))
            h = chain.get("hostname", {})
            if h.get("name"):
                L.append(f"  hostname {h['name']}: {'matches' if h['matches'] else 'DOES NOT MATCH'} ({h['how']})")
            L.append("  chain: " + ("reaches a trusted certificate" if chain.get("anchored")
                                    else "does NOT reach a trusted certificate"))
            for p in chain.get("problems", []):
                L.append(f"  problem: {p['problem']}: {p['message']}")
            for n in chain.get("notes", []):
                L.append(f"  note: {n}")
            t = chain.get("trust", {})
            if t:
                res = {True: "verified", False: "NOT verified", None: "not checked"}[t.get("verified")]
                L.append(f"  path validation ({t.get('truststore')}): {res}"
                         + (f" ({t['verifier']})" if t.get("verifier") not in (None, "ok") else ""))
        else:
            L.append("Certificate chain: " + str(chain.get("note", "not seen")))
    L.append("")
    L.append("Verdict:")
    f = r.get("findings")
    if isinstance(f, list):
        order = {"failure": 0, "warning": 1, "ok": 2, "info": 3}
        for x in sorted(f, key=lambda x: order.get(x["severity"], 9)):
            tag = x["severity"].upper()
            cause = f" {x['cause']}:" if x["cause"] not in ("none",) else ""
            L.append(f"  {tag:<7}{cause} {x['message']}")
            if x.get("fix"):
                L.append(f"           fix: {x['fix']}")
    L.append("")
    L.append(f"{r.get('attempts')} connection attempts in {r.get('elapsed_s')}s")
    return "\n".join(L) + "\n"
