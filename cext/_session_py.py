"""One record per connection, Zeek ``SSL::Info`` style.

:class:`Session` consumes the events of :mod:`cext.events` plus the TCP facts the flow table
gives it (FIN/RST senders, gaps, truncation) and, when the flow is finalized, makes the raw
summary: a dict with the field names of :data:`proto.summary.FIELD` holding raw code points
(ints) where the JSON shows IANA names.  It renders nothing: :mod:`proto.summary` packs the
raw summary as msgpack, :func:`proto.render.summary_to_json` renders its JSON.  Internal
flags (``_ccs``, ``_app`` ...) are never serialized.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from hashlib import blake2s as _blake2s

from cext.events import (CLIENT, SERVER, Alert, Certificate, CertificateRequest,
                         ChangeCipherSpec, ClientHello, EncryptedRecord, HandshakeMessage,
                         HelloRetryRequest, Record, ServerHello, ServerKeyExchange)
from cext.ja4 import ja4
from proto.history import MAX_HISTORY, history_letter, record_history_letter
from proto.names import is_grease, is_tls13

__all__ = ["Session", "MAX_HISTORY", "MAX_ENCRYPTED_LENGTHS"]

MAX_ENCRYPTED_LENGTHS = 8
MAX_ALERTS = 16
MAX_WEIRDS = 16
#: TLS 1.3: an application_data record this short carries at most 2 bytes plus the inner
#: content type and a 16-byte AEAD tag (+ a few bytes of padding): a probable encrypted alert
PROBABLE_ALERT_MAX = 24
#: once established, this many more records from either side end the watch whatever they are
AFTER_ESTABLISHED = 8

_CLIENT, _SERVER = CLIENT, SERVER
# Zeek ssl_history letters (upper case; the server's are lowered when recorded)
_HS_LETTERS = {t: history_letter(t, True) for t in range(256)}
_LETTER_HRR = _HS_LETTERS[6]
_LETTER_CCS = record_history_letter(20, True)
_LETTER_ALERT = record_history_letter(21, True)
_RECORD_LETTERS = {t: record_history_letter(t, True) for t in range(256)}
_LOWER = {c: c.lower() for c in set(_HS_LETTERS.values()) | set(_RECORD_LETTERS.values()) | {"C", "S", "X", "K", "R"}}

_HT_CERTIFICATE, _HT_SERVER_HELLO_DONE, _HT_FINISHED = 11, 14, 20


class Session:
    __slots__ = (
        "start", "end", "history", "ch", "sh", "hrr", "alerts", "last_msg",
        "certs", "client_certs", "cert_request", "client_cert_empty", "ske", "enc",
        "enc_alerts", "fin", "rst", "gaps", "truncated", "weirds", "established", "resumed",
        "_ccs", "_app", "_server_cert_seen", "_server_ccs_early", "_tls13", "_v2",
        "ja4", "_counts", "_at_established", "offer", "fatal",
    )

    def __init__(self, ts: float) -> None:
        self.start = ts
        self.end = ts
        self.history: list = []
        self.ch = None
        self.sh = None
        self.hrr = False
        self.alerts: list = []
        self.last_msg = -1
        self.certs: tuple = ()
        self.client_certs: tuple = ()
        self.cert_request = False
        self.client_cert_empty = False
        self.ske = None
        self.enc = ([], [])
        self.enc_alerts: list = []
        self.fin: list = []
        self.rst: list = []
        self.gaps: list = []
        self.truncated = False
        self.weirds: list = []
        self.established = False
        self.resumed = False
        self._ccs = [False, False]
        self._app = [False, False]
        self._server_cert_seen = False
        self._server_ccs_early = False
        self._tls13 = False
        self._v2 = False
        self.ja4 = None
        self.offer = _NO_OFFER
        self.fatal = False                  # a fatal alert was seen (plaintext)
        self._counts = [0, 0]
        self._at_established = (0, 0)

    # -- facts from the flow table -------------------------------------------------------------
    def weird(self, name: str) -> None:
        if name not in self.weirds and len(self.weirds) < MAX_WEIRDS:
            self.weirds.append(name)

    def tcp_fin(self, d: int) -> None:
        if d not in self.fin:
            self.fin.append(d)

    def tcp_rst(self, d: int) -> None:
        if d not in self.rst:
            self.rst.append(d)

    def gap(self, d: int) -> None:
        if d not in self.gaps:
            self.gaps.append(d)

    def hello_unread(self) -> None:
        """Issue 15: the client began a ClientHello that never became a message (cut short,
        or framing refused it): the history says a ClientHello came, a weird that it was not
        read (after the framing error's weird, if any)."""
        self._letter(_CLIENT, "C")
        self.last_msg = 1
        self.weird("client_hello_unread")

    @property
    def seen_tls(self) -> bool:
        return self.ch is not None or self.sh is not None or bool(self.history)

    def handshake_over(self) -> bool:
        """True once nothing more of interest can come.  After the handshake the analyzer
        still needs the client's first application data (or its absence before a close:
        a client that checks the certificate late) and, in TLS 1.3, the server's reaction to
        the client's Finished and certificate (a ticket, data, or an encrypted alert)."""
        if not self.established:
            return False
        cn, sn = self._counts
        ce, se = self._at_established
        dc, ds = cn - ce, sn - se
        if dc + ds >= AFTER_ESTABLISHED:
            return True
        return dc >= 1 and (ds >= 1 or not self._tls13)

    # -- events ----------------------------------------------------------------------------------
    def _letter(self, d: int, letter: str) -> None:
        h = self.history
        if len(h) < MAX_HISTORY:
            h.append(letter if d == _CLIENT else _LOWER[letter])
        elif len(h) == MAX_HISTORY:
            h.append("")                      # sentinel: capped once
            self.weird("SSL_max_history_length")

    def on_event(self, ev) -> None:
        _DISPATCH[type(ev)](self, ev)

    def _client_hello(self, ev) -> None:
        self._letter(ev.direction, "C")
        if self.ch is None:
            self.ch = ev
            self.offer = _offer(ev)
            self.ja4 = self.offer.ja4
        self.last_msg = 1

    def _server_hello(self, ev) -> None:
        self._letter(ev.direction, "S")
        self.sh = ev
        self.last_msg = 2
        self._tls13 = is_tls13(ev.version)
        self._v2 = ev.sslv2
        ch = self.ch
        if self._tls13:
            self.resumed = ev.psk
        elif ch is not None and ch.session_id and ch.session_id == ev.session_id:
            self.resumed = True

    def _hello_retry_request(self, ev) -> None:
        self._letter(ev.direction, _LETTER_HRR)
        self.hrr = True
        self.last_msg = 6

    def _certificate(self, ev) -> None:
        d = ev.direction
        self._letter(d, "X")
        self.last_msg = _HT_CERTIFICATE
        if d == _SERVER:
            self._server_cert_seen = True
            if not self.certs:
                self.certs = ev.certificates
        else:
            self.client_certs = ev.certificates
            if not ev.certificates:
                self.client_cert_empty = True

    def _server_key_exchange(self, ev) -> None:
        self._letter(ev.direction, "K")
        self.last_msg = 12
        self.ske = ev.body[:3]

    def _certificate_request(self, ev) -> None:
        self._letter(ev.direction, "R")
        self.last_msg = 13
        self.cert_request = True

    def _handshake_message(self, ev) -> None:
        self._letter(ev.direction, _HS_LETTERS[ev.msg_type])
        self.last_msg = ev.msg_type

    def _change_cipher_spec(self, ev) -> None:
        d = ev.direction
        self._letter(d, _LETTER_CCS)
        self._ccs[d] = True
        if d == _SERVER and not self._server_cert_seen and self.sh is not None \
                and not self._tls13:
            self._server_ccs_early = True     # abbreviated handshake

    def _alert(self, ev) -> None:
        self._letter(ev.direction, _LETTER_ALERT)
        if ev.level == 2:
            self.fatal = True
        if len(self.alerts) < MAX_ALERTS:
            self.alerts.append((ev.direction, ev.level, ev.description, self.last_msg))

    def _record(self, ev) -> None:
        self._letter(ev.direction, _RECORD_LETTERS[ev.content_type])

    def _encrypted_record(self, ev) -> None:
        d = ev.direction
        ct = ev.content_type
        lens = self.enc[d]
        if len(lens) < MAX_ENCRYPTED_LENGTHS:
            lens.append(ev.length)
        if ct == 21 or (self._tls13 and ct == 23 and ev.length <= PROBABLE_ALERT_MAX
                        and (d == _CLIENT or self._app[_SERVER])):
            # (the server's first TLS 1.3 record is EncryptedExtensions, often this short)
            # an encrypted alert, or in TLS 1.3 a record only an alert is that short: it
            # does not end the watch (the close that follows it is evidence too)
            if len(self.enc_alerts) < MAX_ALERTS:
                self.enc_alerts.append((d, ev.length))
        else:
            self._counts[d] += 1
        if self.established:
            return
        if self._tls13:
            # Zeek: both sides sent application_data records (in either order)
            if ev.content_type == 23:
                self._app[d] = True
                if self._app[0] and self._app[1]:
                    self._establish()
        elif self._v2:
            if d == _CLIENT:
                self._establish()
        elif self._ccs[0] and self._ccs[1]:
            self._establish()

    def _establish(self) -> None:
        self.established = True
        self._at_established = tuple(self._counts)

    # -- output --------------------------------------------------------------------------------
    def outcome(self, reason: str) -> str:
        if self.established:
            return "established"
        if self.alerts:
            for a in self.alerts:
                if a[1] == 2:
                    return "alert"
        if self.enc_alerts:
            return "encrypted_alert"
        if self.rst:
            return "reset"
        if self.fin:
            return "closed"
        return reason

    def _curve(self):
        sh = self.sh
        if sh is None:
            return None
        if self._tls13:
            return sh.key_share_group if sh.key_share_group >= 0 else None
        ske = self.ske
        if ske is not None and len(ske) == 3 and ske[0] == 3:
            return (ske[1] << 8) | ske[2]
        return None

    def _id(self, client: str, server: str) -> str:
        """The connection id: a hash of the first packet's time in microseconds and the two
        endpoints."""
        return _blake2s(b"%d|%s|%s" % (round(self.start * 1000000), client.encode(),
                                       server.encode()), digest_size=8).hexdigest()

    def summary(self, client: str, server: str, reason: str) -> dict:
        """The raw summary (see module docstring).  ``reason`` says why the flow ended when
        the connection itself did not: ``timeout``, ``evicted`` or ``incomplete``."""
        ch, sh, o = self.ch, self.sh, self.offer
        return {
            "id": self._id(client, server),
            "client": client,
            "server": server,
            "start": self.start,
            "end": self.end,
            "version": sh.version if sh is not None else None,
            "cipher": sh.cipher_suite if sh is not None and sh.cipher_suite >= 0 else None,
            "curve": self._curve(),
            "curve_from_ske": self.ske is not None and not self._tls13,
            "server_name": ch.server_name if ch is not None else None,
            "alpn": sh.alpn if sh is not None else None,
            "established": self.established,
            "resumed": self.resumed or self._server_ccs_early,
            "history": "".join(self.history),
            "alerts": self.alerts,
            "client_legacy_version": ch.legacy_version if ch is not None else None,
            "client_versions": o.versions,
            "client_ciphers": o.ciphers,
            "client_extensions": o.extensions,
            "client_groups": o.groups,
            "client_alpn": o.alpn,
            "client_signature_algorithms": o.sigalgs,
            "client_key_shares": o.key_shares,
            "client_psk": o.psk,
            "client_sslv2": o.sslv2,
            "hrr": self.hrr,
            "certificates": [d for d, _ in self._digests(self.certs)] if self.certs else [],
            "client_certificates": [d for d, _ in self._digests(self.client_certs)]
            if self.client_certs else [],
            "certificate_request": self.cert_request,
            "client_certificate_empty": self.client_cert_empty,
            "ja4": self.ja4,
            "close": {"fin": list(self.fin), "rst": list(self.rst)},
            "client_encrypted": list(self.enc[0]),
            "server_encrypted": list(self.enc[1]),
            "encrypted_alerts": list(self.enc_alerts),
            "gaps": list(self.gaps),
            "truncated": self.truncated,
            "weirds": list(self.weirds),
            "outcome": self.outcome(reason),
            "sensor": None,
            "direction": None,
        }

    def certificate_ders(self) -> list:
        """(sha256 digest, DER) for every certificate referenced by the summary."""
        return self._digests(self.certs) + self._digests(self.client_certs)

    def _digests(self, ders: tuple) -> list:
        cached = _DIGESTS.get(ders)        # chains repeat: hash each distinct chain once
        if cached is None:
            if len(_DIGESTS) > 4096:
                _DIGESTS.clear()
            cached = _DIGESTS[ders] = [(hashlib.sha256(d).digest(), d) for d in ders]
        return cached


_DIGESTS: dict = {}


@lru_cache(maxsize=65536)
def _strip_grease(values: tuple) -> tuple:
    """``values`` without RFC 8701 GREASE code points (memoized: the same offers repeat)."""
    return tuple(v for v in values if not is_grease(v))


class _Offer:
    """What a ClientHello offers, as the summary carries it (GREASE removed), plus its JA4:
    computed once per distinct offer (clients repeat theirs)."""

    __slots__ = ("versions", "ciphers", "extensions", "groups", "alpn", "sigalgs",
                 "key_shares", "psk", "sslv2", "ja4")

    def __init__(self, ch) -> None:
        if ch is None:
            self.versions, self.ciphers, self.extensions, self.groups = (), [], [], []
            self.alpn, self.sigalgs, self.key_shares = (), (), []
            self.psk = self.sslv2 = False
            self.ja4 = None
        else:
            vs = _strip_grease(ch.supported_versions)
            self.versions = vs if vs else (ch.legacy_version,)
            self.ciphers = _strip_grease(ch.cipher_suites)
            self.extensions = _strip_grease(ch.extensions)
            self.groups = _strip_grease(ch.supported_groups)
            self.alpn = ch.alpn
            self.sigalgs = ch.signature_algorithms
            self.key_shares = _strip_grease(ch.key_share_groups)
            self.psk = bool(ch.psk or ch.session_ticket > 0)
            self.sslv2 = bool(ch.sslv2)
            self.ja4 = ja4(ch.legacy_version, ch.cipher_suites, ch.extensions,
                           ch.server_name, ch.alpn, ch.signature_algorithms,
                           ch.supported_versions)


_OFFERS: dict = {}
_NO_OFFER = _Offer(None)


def _offer(ch) -> _Offer:
    key = (ch.legacy_version, ch.cipher_suites, ch.extensions, ch.server_name is not None,
           ch.alpn, ch.supported_groups, ch.signature_algorithms, ch.supported_versions,
           ch.key_share_groups, ch.psk, ch.session_ticket > 0, ch.sslv2)
    o = _OFFERS.get(key)
    if o is None:
        if len(_OFFERS) > 65536:
            _OFFERS.clear()
        o = _OFFERS[key] = _Offer(ch)
    return o


_DISPATCH = {
    EncryptedRecord: Session._encrypted_record,
    ClientHello: Session._client_hello,
    ServerHello: Session._server_hello,
    HelloRetryRequest: Session._hello_retry_request,
    Certificate: Session._certificate,
    ServerKeyExchange: Session._server_key_exchange,
    CertificateRequest: Session._certificate_request,
    HandshakeMessage: Session._handshake_message,
    ChangeCipherSpec: Session._change_cipher_spec,
    Alert: Session._alert,
    Record: Session._record,
}
