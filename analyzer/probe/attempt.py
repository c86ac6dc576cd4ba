"""One connection attempt: a real handshake with Python's ``ssl`` (and OpenSSL's message callback), or a
hand-built ClientHello and the server's first answer.  Each has a timeout; neither raises on what the
server sends."""
from __future__ import annotations

import hashlib
import logging
import re
import socket
import ssl
import struct
import time
import warnings
from dataclasses import dataclass, field
from typing import Sequence

from proto import names as _names
from proto.names import AlertDescription as AD
from proto.names import AlertLevel, ContentType, HandshakeType, version_name

from .hello import (WireParsers, ServerHelloInfo, build_client_hello, default_suites, read_certificates,
                    read_server_hello, tls13_version)
from .suites import SuiteTable

log = logging.getLogger(__name__)

__all__ = ["ProbeError", "Attempt", "VERSIONS", "VERSION_CODES", "alert_name", "alert_from_reason", "handshake",
           "raw_hello_probe", "make_context", "local_can_offer", "load_client_cert", "HAS_MSG_CALLBACK"]


class ProbeError(Exception):
    """The probe cannot run (bad argument, target unreachable).  The message is one user-facing line."""


#: Protocol versions in probe order, with their wire codes.
VERSION_CODES: dict[str, int] = {version_name(c): c for c in (0x0300, 0x0301, 0x0302, 0x0303, 0x0304)}
VERSIONS: tuple[str, ...] = tuple(VERSION_CODES)

with warnings.catch_warnings():  # ssl.TLSVersion.SSLv3/TLSv1/TLSv1_1 are deprecated aliases, still usable
    warnings.simplefilter("ignore", DeprecationWarning)
    _SSL_VERSIONS: dict[str, ssl.TLSVersion] = dict(zip(VERSIONS, (
        ssl.TLSVersion.SSLv3, ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1_2,
        ssl.TLSVersion.TLSv1_3)))

#: TLS AlertDescription registry: the table shared with the sensor (proto.names)
_ALERT_BY_NAME: dict[str, int] = {}
for _code, _name in _names.ALERT_NAMES.items():
    _ALERT_BY_NAME[_name] = _code
    _ALERT_BY_NAME[_name.removesuffix("_RESERVED")] = _code
# OpenSSL spellings that differ from IANA's.
_ALERT_BY_NAME.update({"user_cancelled": AD.user_canceled, "unrecognized_name": AD.unrecognized_name,
                       "no_certificate": AD.no_certificate})

_REASON_ALERT_RE = re.compile(r"^(?:SSLV3|TLSV1|TLSV13)_(?:ALERT_)?([A-Z_]+)$")
#: OpenSSL reasons raised when *our* side cannot build an offer at all.
_LOCAL_CANNOT_OFFER = {"NO_PROTOCOLS_AVAILABLE", "NO_CIPHERS_AVAILABLE", "NO_CIPHER_MATCH",
                       "UNSUPPORTED_SSL_VERSION"}
#: OpenSSL reasons for a first "record" whose header is not TLS's (a plain HTTP answer, an SSH banner...)
_NOT_TLS_REASONS = {"WRONG_VERSION_NUMBER"}
#: the record content types of the TLS registry (a first byte outside it is not a TLS record)
_TLS_CONTENT_TYPES = frozenset(int(c) for c in ContentType)
#: alerts a server ends a handshake with when it rejects the client's certificate (or its absence)
_CLIENT_CERT_REJECTIONS = frozenset({
    AD.handshake_failure, AD.bad_certificate, AD.unsupported_certificate, AD.certificate_revoked,
    AD.certificate_expired, AD.certificate_unknown, AD.unknown_ca, AD.access_denied, AD.certificate_required})
#: our client's alerts when the server picked a version (or parameters) it did not offer
_CLIENT_REFUSALS = frozenset({AD.protocol_version, AD.handshake_failure, AD.illegal_parameter})

#: Bounds.
MAX_HANDSHAKE_BYTES = 256 * 1024
ALL_CIPHERS = "ALL:COMPLEMENTOFALL:!PSK:!SRP:@SECLEVEL=0"


def alert_name(code: int) -> str:
    return _names.alert_description_name(code)


def alert_from_reason(reason: str | None) -> int | None:
    """``SSLV3_ALERT_HANDSHAKE_FAILURE`` -> 40, ``TLSV1_UNRECOGNIZED_NAME`` -> 112; otherwise None."""
    if not reason:
        return None
    m = _REASON_ALERT_RE.match(reason)
    if not m:
        return None
    code = _ALERT_BY_NAME.get(m.group(1).lower())
    return None if code is None else int(code)


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
    ``not_tls``             the server answered with bytes that are not a TLS record (``error``: what it sent,
                            when seen -- e.g. ``b'HTTP/'`` from a plain HTTP server);
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
                and self.alert is not None and self.alert["code"] in _CLIENT_CERT_REJECTIONS)

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
        if self.outcome == "not_tls":
            return f"not TLS: {self.error}"
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



def network_outcome(e: OSError, timeout: float) -> tuple[str, str]:
    """``(outcome, error)`` of an attempt that failed with a socket error (not a TLS one)."""
    if isinstance(e, (socket.timeout, TimeoutError)):
        return "timeout", f"no answer within {timeout:g}s"
    if isinstance(e, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return "closed", e.__class__.__name__
    return "client_aborted", e.strerror or str(e)

def _alert_dict(code: int, level: int, sent_by: str) -> dict[str, object]:
    return {"code": code, "name": alert_name(code),
            "level": AlertLevel.fatal.name if level == AlertLevel.fatal else AlertLevel.warning.name,
            "sent_by": sent_by}


class _Recorder:
    """OpenSSL message-callback sink for one connection."""

    def __init__(self, wire: WireParsers) -> None:
        self.wire = wire
        self.server_hello: ServerHelloInfo | None = None
        self.hello_retry = False
        self.cert_request = False
        self.client_cert_sent: bool | None = None  # None: no client Certificate message at all
        self.cert_msgs: list[bytes] = []
        self.alerts_in: list[tuple[int, int]] = []
        self.alerts_out: list[tuple[int, int]] = []
        self.bytes = 0

    def _tls13(self) -> bool:
        return tls13_version(self.server_hello.version if self.server_hello is not None else None)

    def __call__(self, conn: object, direction: str, version: object, content_type: object,
                 msg_type: object, data: bytes) -> None:
        try:
            ct = int(content_type)  # type: ignore[call-overload]
            if ct == ContentType.alert and len(data) >= 2:
                (self.alerts_in if direction == "read" else self.alerts_out).append((data[0], data[1]))
            elif ct == ContentType.handshake and direction == "write" and data and data[0] == HandshakeType.certificate:
                self.client_cert_sent = bool(read_certificates(self.wire, bytes(data), self._tls13()))
            elif ct == ContentType.handshake and direction == "read" and data:
                self._server_message(bytes(data))
        except Exception:  # a callback must never break the handshake; counted in the log only
            log.debug("message callback failed", exc_info=True)

    def _server_message(self, data: bytes) -> None:
        self.bytes += len(data)
        if self.bytes > MAX_HANDSHAKE_BYTES:
            return
        if data[0] == HandshakeType.server_hello:  # keep the last: after a HelloRetryRequest the real one follows
            sh = read_server_hello(self.wire, data)
            if sh is not None:
                self.hello_retry = self.hello_retry or sh.hello_retry
                self.server_hello = sh
        elif data[0] == HandshakeType.certificate_request:
            self.cert_request = True
        elif data[0] == HandshakeType.certificate and not self.cert_msgs:
            self.cert_msgs.append(data)

    def chain(self) -> list[bytes]:
        return read_certificates(self.wire, self.cert_msgs[0], self._tls13()) if self.cert_msgs else []


HAS_MSG_CALLBACK = hasattr(ssl.SSLContext, "_msg_callback")


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
    ctx.set_ciphers(ciphers or ALL_CIPHERS)
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


# --------------------------------------------------------------------------------------------------
# A real handshake.

def handshake(addr: tuple[int, tuple[object, ...]], versions: Sequence[str], *, wire: WireParsers,
              servername: str | None, ciphers: str | None, timeout: float, label: str, suites: SuiteTable,
              client_cert: tuple[str, str | None] | None = None, msg_callback: bool = HAS_MSG_CALLBACK) -> Attempt:
    """One real handshake to ``addr`` (family, sockaddr) with the given offer.  ``msg_callback=False``
    (or an ``ssl`` without it): alerts come from OpenSSL's error reasons, no ServerHello or chain is seen."""
    att = Attempt(label=label, offered=list(versions), servername=servername)
    why = local_can_offer(versions, ciphers)
    if why is not None:
        att.error = why
        return att
    ctx = make_context(versions, ciphers)
    if client_cert is not None:
        load_client_cert(ctx, *client_cert)
    rec = _Recorder(wire)
    if msg_callback and HAS_MSG_CALLBACK:
        ctx._msg_callback = rec  # type: ignore[attr-defined]
    _run_handshake(att, ctx, rec, addr, servername, timeout, suites)
    _read_record(att, rec, versions, suites)
    return att


def _run_handshake(att: Attempt, ctx: ssl.SSLContext, rec: _Recorder, addr: tuple[int, tuple[object, ...]],
                   servername: str | None, timeout: float, suites: SuiteTable) -> None:
    """Connect and handshake; sets the outcome (and the negotiated version and suite when accepted)."""
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
            _await_client_cert_verdict(att, tls, rec, timeout, time.monotonic() - t0)
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
        # a TCP close mid-handshake: SSLEOFError, or SSLZeroReturnError (reason None) from
        # the Python/OpenSSL builds Debian ships
        if isinstance(e, (ssl.SSLEOFError, ssl.SSLZeroReturnError)) or "EOF" in reason:
            att.outcome, att.error = "closed", reason or str(e)
        elif reason in _LOCAL_CANNOT_OFFER:
            att.outcome, att.error = "not_testable", reason
        elif reason in _NOT_TLS_REASONS:
            att.outcome, att.error = "not_tls", f"the server's first bytes are not a TLS record ({reason})"
        else:
            att.outcome, att.error = "client_aborted", reason or str(e)
            code = alert_from_reason(reason)
            if code is not None and not rec.alerts_in:
                rec.alerts_in.append((AlertLevel.fatal, code))
    except OSError as e:
        att.outcome, att.error = network_outcome(e, timeout)
    finally:
        att.elapsed_ms = (time.monotonic() - t0) * 1000
        (tls or sock).close()


def _await_client_cert_verdict(att: Attempt, tls: ssl.SSLSocket, rec: _Recorder, timeout: float,
                               took: float) -> None:
    """TLS 1.3: the client's handshake is over before the server has judged the client's Certificate; its
    verdict (certificate_required, unknown_ca, ...) arrives as the first record.  Wait for it for about two
    handshake round trips (the handshake itself took one and a half)."""
    tls.settimeout(min(timeout, max(0.3, 2 * took)))
    try:
        tls.recv(1)
    except (ssl.SSLError, ConnectionError):
        if rec.alerts_in:
            att.outcome = "server_alert"
    except (OSError, ValueError):
        pass


def _read_record(att: Attempt, rec: _Recorder, versions: Sequence[str], suites: SuiteTable) -> None:
    """What the message callback saw: the server's choice, its alerts, ours, the chain."""
    sh = rec.server_hello
    offered_codes = {VERSION_CODES[v] for v in versions}
    att.client_cert_requested = rec.cert_request
    att.client_cert_sent = bool(rec.client_cert_sent)
    if sh is not None:
        att.server_version = version_name(sh.version)
        att.server_cipher = suites.iana(sh.cipher)
        att.hello_retry = rec.hello_retry
        att.negotiated = not sh.hello_retry and sh.version in offered_codes
    for level, code in rec.alerts_in:
        if level == AlertLevel.warning and code != AD.close_notify:
            att.warning_alerts.append(_alert_dict(code, level, "server"))
    fatal_in = [(lv, c) for lv, c in rec.alerts_in if lv == AlertLevel.fatal or c == AD.close_notify]
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
            if sh.version not in offered_codes or c in _CLIENT_REFUSALS:
                att.outcome = "server_chose_other"
        elif rec.alerts_out:
            lv, c = rec.alerts_out[0]
            att.alert = _alert_dict(c, lv, "client")
    att.chain = rec.chain()


# --------------------------------------------------------------------------------------------------
# A hand-built ClientHello and the server's first answer.

def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def raw_hello_probe(addr: tuple[int, tuple[object, ...]], versions: Sequence[str], *, wire: WireParsers,
                    servername: str | None, timeout: float, suites: SuiteTable, label: str,
                    cipher_codes: Sequence[int] | None = None) -> Attempt:
    """Send a hand-built ClientHello and read the server's first answer (ServerHello or alert).

    ``negotiated``/``accepted`` here mean the server's ServerHello picked an offered version; the handshake
    is not completed (no key exchange, no Finished), which is all the version and suite questions need.
    """
    att = Attempt(label=label, offered=list(versions), servername=servername, method="raw-client-hello")
    codes = [VERSION_CODES[v] for v in versions]
    offer = list(cipher_codes) if cipher_codes is not None else default_suites(codes)
    family, sockaddr = addr
    t0 = time.monotonic()
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(sockaddr)
        sock.sendall(build_client_hello(codes, servername, offer))
        _read_first_answer(att, sock, wire, codes, offer, suites)
    except EOFError:
        att.outcome, att.error = "closed", "EOF"
    except OSError as e:
        att.outcome, att.error = network_outcome(e, timeout)
    finally:
        att.elapsed_ms = (time.monotonic() - t0) * 1000
        sock.close()
    return att


def _read_first_answer(att: Attempt, sock: socket.socket, wire: WireParsers, codes: Sequence[int],
                       offer: Sequence[int], suites: SuiteTable) -> None:
    """Records until the server's first alert or its whole first handshake message (bounded)."""
    hs = b""
    while True:
        header = _recv_exact(sock, 5)
        ctype, rv, length = struct.unpack("!BHH", header)
        if ctype not in _TLS_CONTENT_TYPES or rv >> 8 != 3:
            att.outcome, att.error = "not_tls", f"the server answered with {header!r}, not a TLS record"
            return
        if length > wire.max_record:
            att.outcome, att.error = "client_aborted", "record_overflow in server answer"
            return
        frag = _recv_exact(sock, length)
        if ctype == ContentType.alert and len(frag) >= 2:
            att.outcome = "server_alert"
            att.alert = _alert_dict(frag[1], frag[0], "server")
            return
        if ctype != ContentType.handshake:
            att.outcome, att.error = "client_aborted", f"unexpected record type {ctype}"
            return
        hs += frag
        if len(hs) >= 4 and len(hs) >= 4 + ((hs[1] << 16) | (hs[2] << 8) | hs[3]):
            sh = read_server_hello(wire, hs)
            if sh is None:
                att.outcome, att.error = "client_aborted", "first server message is not a ServerHello"
                return
            att.server_version = version_name(sh.version)
            att.server_cipher = suites.iana(sh.cipher)
            att.hello_retry = sh.hello_retry
            if sh.version in codes and sh.cipher in offer:
                att.outcome, att.version, att.cipher = "accepted", att.server_version, att.server_cipher
                att.negotiated = True
            else:
                att.outcome = "server_chose_other"
            return
        if len(hs) > MAX_HANDSHAKE_BYTES:
            att.outcome, att.error = "client_aborted", "ServerHello too long"
            return
