"""One record per connection, Zeek ``SSL::Info`` style.

:class:`Session` is the TLS reader's sink (:class:`cext._tls_py.Sink`: one method per event
kind, C calls in the compiled build) and takes the TCP facts the flow table gives it (FIN/RST
senders, gaps, truncation).  When the flow is finalized it makes the raw summary: a dict with
the field names of :data:`proto.summary.FIELD` holding raw code points (ints) where the JSON
shows IANA names.  It renders nothing: :mod:`proto.summary` packs the raw summary as msgpack,
:func:`proto.render.summary_to_json` renders its JSON.  Internal flags (``_ccs``, ``_app``
...) are never serialized.

What clients repeat is computed once per flow table, in :class:`Caches`: the offer of a
ClientHello (its lists without GREASE, and its JA4) memoized on its *offer key* -- the
invariant part, extensions sorted (browsers permute them per connection, as JA4 sorts them)
-- and the digests of a certificate chain; both bounded by ``functools.lru_cache``, the one
cache policy of the core.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache

from cext.errors import reason as _reason
from cext.events import CLIENT, SERVER
from cext.ja4 import ja4
from proto.history import MAX_HISTORY, history_letter, record_history_letter
from proto.names import ContentType, HandshakeType, is_grease, is_tls13

__all__ = ["Session", "Caches", "offer_from_key", "chain_digests", "MAX_HISTORY",
           "MAX_ENCRYPTED_LENGTHS"]

MAX_ENCRYPTED_LENGTHS = 8
MAX_ALERTS = 16
MAX_WEIRDS = 16
#: TLS 1.3: an application_data record this short carries at most 2 bytes plus the inner
#: content type and a 16-byte AEAD tag (+ a few bytes of padding): a probable encrypted alert
PROBABLE_ALERT_MAX = 24
#: once established, this many more records from either side end the watch whatever they are
AFTER_ESTABLISHED = 8
#: distinct client offers and certificate chains one flow table keeps
OFFERS = 4096
CHAINS = 4096
#: a chain of more bytes is not kept (its digests made again each time): real chains are
#: 3-10 kB, and the memo of 4096 chains of up to 1 MiB each could have held 4 GiB
CHAIN_MEMO_BYTES = 16 << 10
#: the most code points a summary keeps of each list of the client's offer (cipher suites,
#: extensions, groups ...; the weird client_offer_truncated past it): real clients offer a
#: few dozen, a scanner every registered suite (~350); a ClientHello may list 32,767 suites,
#: which made a 1.4 MB summary line and 32 ms of rendering from 160 kB of pcap.  (JA4 is of
#: the whole offer.)
MAX_OFFER_CODES = 1024

_CLIENT, _SERVER = CLIENT, SERVER
# Zeek ssl_history letters: the client's upper case, the server's lower case
_HS_LETTERS = tuple(history_letter(t, True) for t in range(256))
_RECORD_LETTERS = tuple(record_history_letter(t, True) for t in range(256))
_LOWER = {c: c.lower() for c in set(_HS_LETTERS) | set(_RECORD_LETTERS)}
#: (client letter, server letter) per handshake / record type
_HS_PAIRS = tuple((c, _LOWER[c]) for c in _HS_LETTERS)
_RECORD_PAIRS = tuple((c, _LOWER[c]) for c in _RECORD_LETTERS)
_CH, _SH, _HRR, _X, _K, _R = (_HS_PAIRS[t] for t in (
    HandshakeType.client_hello, HandshakeType.server_hello, HandshakeType.hello_retry_request,
    HandshakeType.certificate, HandshakeType.server_key_exchange,
    HandshakeType.certificate_request))
_CCS, _ALERT = _RECORD_PAIRS[ContentType.change_cipher_spec], _RECORD_PAIRS[ContentType.alert]

_HT_CERTIFICATE, _HT_SERVER_HELLO_DONE, _HT_FINISHED = (int(t) for t in (
    HandshakeType.certificate, HandshakeType.server_hello_done, HandshakeType.finished))


class Caches:
    """What the sessions of one flow table share: its wire parser (``cext._wire.Wire`` or
    the twin's) and the bounded memos of the offers and certificate chains of its traffic."""

    def __init__(self, wire, offers: int = OFFERS, chains: int = CHAINS) -> None:
        self.wire = wire
        #: offer key (bytes, ``Wire.client_hello_key``) -> :class:`_Offer`
        self.offer = lru_cache(maxsize=offers)(offer_from_key)
        #: tuple of DER -> ((sha256, der), ...): the memo :meth:`chain` keeps
        self.digests = lru_cache(maxsize=chains)(chain_digests)

    def chain(self, ders: tuple) -> tuple:
        """``((sha256(der), der), ...)`` of a certificate chain, from the memo if the chain
        is of up to :data:`CHAIN_MEMO_BYTES`."""
        return self.digests(ders) if _der_bytes(ders) <= CHAIN_MEMO_BYTES \
            else chain_digests(ders)


def _der_bytes(ders: tuple) -> int:
    """The DER bytes of a chain (the memo's bound, the flow table's memory budget)."""
    n = 0
    for d in ders:
        n += len(d)
    return n


def chain_digests(ders: tuple) -> tuple:
    """``((sha256(der), der), ...)`` of a certificate chain."""
    return tuple([(hashlib.sha256(d).digest(), d) for d in ders])


class Session:
    __slots__ = (
        "start", "end", "caches", "history", "has_ch", "ch_legacy", "ch_sid", "sni",
        "ch_exts", "sh", "version", "hrr", "alerts", "last_msg", "certs", "client_certs",
        "cert_request", "client_cert_empty", "ske", "enc0", "enc1", "enc_alerts", "fin", "rst",
        "gaps", "truncated", "weirds", "established", "resumed", "_ccs", "_app",
        "_server_cert_seen", "_server_ccs_early", "_tls13", "_v2", "ja4", "_counts",
        "_at_established", "offer", "fatal", "cert_bytes",
    )

    def __init__(self, ts: float, caches: Caches) -> None:
        self.start = ts
        self.end = ts
        self.caches = caches
        self.history: list = []
        self.has_ch = False
        self.ch_legacy = -1
        self.ch_sid = None
        self.sni = None
        self.ch_exts = None
        self.sh = None
        self.version = -1
        self.hrr = False
        self.alerts: list = []
        self.last_msg = -1
        self.certs: tuple = ()
        self.client_certs: tuple = ()
        self.cert_bytes = 0             # the DER bytes of certs and client_certs
        self.cert_request = False
        self.client_cert_empty = False
        self.ske = None
        self.enc0: list = []
        self.enc1: list = []
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
        self._at_established = [0, 0]

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
        self._letter(_CLIENT, _CH)
        self.last_msg = 1
        self.weird("client_hello_unread")

    @property
    def seen_tls(self) -> bool:
        return self.has_ch or self.sh is not None or bool(self.history)

    def handshake_over(self) -> bool:
        """True once nothing more of interest can come.  After the handshake the analyzer
        still needs the client's first application data (or its absence before a close:
        a client that checks the certificate late) and, in TLS 1.3, the server's reaction to
        the client's Finished and certificate (a ticket, data, or an encrypted alert)."""
        if not self.established:
            return False
        dc = self._counts[0] - self._at_established[0]
        ds = self._counts[1] - self._at_established[1]
        if dc + ds >= AFTER_ESTABLISHED:
            return True
        return dc >= 1 and (ds >= 1 or not self._tls13)

    # -- the reader's events ---------------------------------------------------------------------
    def _letter(self, d: int, letters: tuple) -> None:
        h = self.history
        if len(h) < MAX_HISTORY:
            h.append(letters[d])
        elif len(h) == MAX_HISTORY:
            h.append("")                      # sentinel: capped once
            self.weird("SSL_max_history_length")

    def client_hello(self, d, fields, data, start, end) -> None:
        self._letter(d, _CH)
        if not self.has_ch:
            self.has_ch = True
            self.ch_legacy, self.ch_sid, self.sni, self.ch_exts, key = fields
            caches = self.caches
            if key is not None:
                o = caches.offer(key)
            else:                           # too large to memoize: from the whole message
                o = _offer_of_hello(caches.wire.client_hello(data, start, end))
            self.offer = o
            self.ja4 = o.ja4
            if o.truncated or len(self.ch_exts) > MAX_OFFER_CODES:
                self.ch_exts = self.ch_exts[:MAX_OFFER_CODES]
                self.weird("client_offer_truncated")
        self.last_msg = 1

    def sslv2_client_hello(self, d, hello) -> None:
        self._letter(d, _CH)
        if not self.has_ch:
            self.has_ch = True
            self.ch_legacy = hello.legacy_version
            self.ch_sid = hello.session_id
            self.sni = hello.server_name
            self.ch_exts = tuple(v for v in hello.extensions if not is_grease(v))
            self.offer = _offer_of_hello(hello[1:15], hello.sslv2)
            self.ja4 = self.offer.ja4
            if self.offer.truncated:
                self.weird("client_offer_truncated")
        self.last_msg = 1

    def server_hello(self, d, hello) -> None:
        self._letter(d, _SH)
        self.sh = hello
        self.last_msg = 2
        v = hello.selected_version
        self.version = v if v >= 0 else hello.legacy_version
        self._tls13 = is_tls13(self.version)
        self._v2 = hello.sslv2
        if self._tls13:
            self.resumed = hello.psk
        elif self.has_ch and self.ch_sid and self.ch_sid == hello.session_id:
            self.resumed = True

    def hello_retry_request(self, d, selected_version, cipher_suite, key_share_group) -> None:
        self._letter(d, _HRR)
        self.hrr = True
        self.last_msg = 6

    def certificate(self, d, certificates) -> None:
        self._letter(d, _X)
        self.last_msg = _HT_CERTIFICATE
        if d == _SERVER:
            self._server_cert_seen = True
            if not self.certs:
                self.certs = certificates
                self.cert_bytes += _der_bytes(certificates)
        else:
            self.cert_bytes += _der_bytes(certificates) - _der_bytes(self.client_certs)
            self.client_certs = certificates
            if not certificates:
                self.client_cert_empty = True

    def server_key_exchange(self, d, data, start, end) -> None:
        self._letter(d, _K)
        self.last_msg = 12
        self.ske = data[start:min(start + 3, end)]

    def forget_certificates(self) -> None:
        """Drop the certificates kept (the flow table's memory budget is spent): the summary
        will have none."""
        self.certs = self.client_certs = ()
        self.cert_bytes = 0

    def notice(self, d, status) -> None:
        self.weird(_reason(status))

    def certificate_request(self, d) -> None:
        self._letter(d, _R)
        self.last_msg = 13
        self.cert_request = True

    def handshake(self, d, msg_type, length) -> None:
        self._letter(d, _HS_PAIRS[msg_type])
        self.last_msg = msg_type

    def change_cipher_spec(self, d) -> None:
        self._letter(d, _CCS)
        self._ccs[d] = True
        if d == _SERVER and not self._server_cert_seen and self.sh is not None \
                and not self._tls13:
            self._server_ccs_early = True     # abbreviated handshake

    def alert(self, d, level, description) -> None:
        self._letter(d, _ALERT)
        if level == 2:
            self.fatal = True
        if len(self.alerts) < MAX_ALERTS:
            self.alerts.append((d, level, description, self.last_msg))

    def record(self, d, content_type, length) -> None:
        self._letter(d, _RECORD_PAIRS[content_type])

    def encrypted(self, d, content_type, length) -> None:
        lens = self.enc0 if d == _CLIENT else self.enc1
        if len(lens) < MAX_ENCRYPTED_LENGTHS:
            lens.append(length)
        if content_type == 21 or (self._tls13 and content_type == 23
                                  and length <= PROBABLE_ALERT_MAX
                                  and (d == _CLIENT or self._app[_SERVER])):
            # (the server's first TLS 1.3 record is EncryptedExtensions, often this short)
            # an encrypted alert, or in TLS 1.3 a record only an alert is that short: it
            # does not end the watch (the close that follows it is evidence too)
            if len(self.enc_alerts) < MAX_ALERTS:
                self.enc_alerts.append((d, length))
        else:
            self._counts[d] += 1
        if self.established:
            return
        if self._tls13:
            # Zeek: both sides sent application_data records (in either order)
            if content_type == 23:
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
        self._at_established[0] = self._counts[0]
        self._at_established[1] = self._counts[1]

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

    def summary(self, client: str, server: str, reason: str) -> dict:
        """The raw summary (see module docstring).  ``reason`` says why the flow ended when
        the connection itself did not: ``timeout``, ``evicted`` or ``incomplete``."""
        sh, o = self.sh, self.offer
        has_ch = self.has_ch
        return {
            # the connection id: a hash of the first packet's time in microseconds and the
            # two endpoints
            "id": self.caches.wire.connection_id(self.start, client, server),
            "client": client,
            "server": server,
            "start": self.start,
            "end": self.end,
            "version": self.version if sh is not None else None,
            "cipher": sh.cipher_suite if sh is not None and sh.cipher_suite >= 0 else None,
            "curve": self._curve(),
            "curve_from_ske": self.ske is not None and not self._tls13,
            "server_name": self.sni if has_ch else None,
            "alpn": sh.alpn if sh is not None else None,
            "established": self.established,
            "resumed": self.resumed or self._server_ccs_early,
            "history": "".join(self.history),
            "alerts": self.alerts,
            "client_legacy_version": self.ch_legacy if has_ch else None,
            "client_versions": o.versions,
            "client_ciphers": o.ciphers,
            "client_extensions": self.ch_exts if has_ch else [],
            "client_groups": o.groups,
            "client_alpn": o.alpn,
            "client_signature_algorithms": o.sigalgs,
            "client_key_shares": o.key_shares,
            "client_psk": o.psk,
            "client_sslv2": o.sslv2,
            "hrr": self.hrr,
            "certificates": [d for d, _ in self.caches.chain(self.certs)]
            if self.certs else [],
            "client_certificates": [d for d, _ in self.caches.chain(self.client_certs)]
            if self.client_certs else [],
            "certificate_request": self.cert_request,
            "client_certificate_empty": self.client_cert_empty,
            "ja4": self.ja4,
            "close": {"fin": list(self.fin), "rst": list(self.rst)},
            "client_encrypted": list(self.enc0),
            "server_encrypted": list(self.enc1),
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
        out = list(self.caches.chain(self.certs)) if self.certs else []
        if self.client_certs:
            out += self.caches.chain(self.client_certs)
        return out


class _Offer:
    """What a ClientHello offers, as the summary carries it (GREASE removed; the extensions,
    in wire order, are the connection's), plus its JA4: computed once per distinct offer
    (clients repeat theirs)."""

    __slots__ = ("versions", "ciphers", "groups", "alpn", "sigalgs", "key_shares", "psk",
                 "sslv2", "ja4", "truncated")

    def __init__(self, versions, ciphers, groups, alpn, sigalgs, key_shares, psk, sslv2,
                 ja4_) -> None:
        # each list cut to MAX_OFFER_CODES (``truncated`` says so)
        self.truncated = False
        self.versions = self._cut(versions)
        self.ciphers = self._cut(ciphers)
        self.groups = self._cut(groups)
        self.alpn = self._cut(alpn)
        self.sigalgs = self._cut(sigalgs)
        self.key_shares = self._cut(key_shares)
        self.psk = psk
        self.sslv2 = sslv2
        self.ja4 = ja4_

    def _cut(self, values):
        if len(values) <= MAX_OFFER_CODES:
            return values
        self.truncated = True
        return values[:MAX_OFFER_CODES]


#: the offer of a summary without a ClientHello (these exact empty types: msgpack packs an
#: empty tuple and leaves an empty list out)
_NO_OFFER = _Offer((), [], [], (), (), [], False, False, None)


def _strip(values) -> tuple:
    return tuple([v for v in values if not is_grease(v)])


def _offer_of_hello(t: tuple, sslv2: bool = False) -> _Offer:
    """The offer of a ClientHello's fields (``Wire.client_hello``: legacy_version,
    session_id, suites, compression, extensions, server_name, alpn, groups, formats,
    sigalgs, versions, key shares, psk, ticket)."""
    (legacy, _sid, suites, _comp, exts, sni, alpn, groups, _fmt, sigalgs, versions, shares,
     psk, ticket) = t
    vs = _strip(versions)
    return _Offer(vs if vs else (legacy,), _strip(suites), _strip(groups), alpn, sigalgs,
                  _strip(shares), bool(psk or ticket > 0), bool(sslv2),
                  ja4(legacy, suites, exts, sni, alpn, sigalgs, versions))


def _u16s(key: bytes, pos: int) -> tuple:
    """(tuple of the count-prefixed 16-bit values at ``pos``, the position after them)."""
    n = (key[pos] << 8) | key[pos + 1]
    pos += 2
    return tuple([(key[pos + 2 * i] << 8) | key[pos + 2 * i + 1] for i in range(n)]), pos + 2 * n


def _alpn_names(raw: bytes) -> tuple:
    """The protocol names of an ALPN extension body the parser already checked (bytes after
    its protocol name list are not read, as the parser does not)."""
    out = []
    pos = 2
    end = 2 + ((raw[0] << 8) | raw[1])
    while pos < end:
        n = raw[pos]
        name = raw[pos + 1:pos + 1 + n]
        # issue 15: a literal backslash is written \x5c, so that every \xNN of the text is one
        # wire byte and JA4's hex rule reads the exact bytes back (cext/ja4.py)
        if 0x5C in name:
            name = name.replace(b"\\", b"\\x5c")
        out.append(name.decode("ascii", "backslashreplace"))
        pos += 1 + n
    return tuple(out)


def offer_from_key(key: bytes) -> _Offer:
    """The offer an offer key (``Wire.client_hello_key``) stands for: legacy_version (2
    bytes), pre_shared_key or a session ticket (1), then count-prefixed 16-bit lists --
    cipher suites, extension types sorted, groups, signature algorithms, versions, key share
    groups (GREASE removed from all but the signature algorithms) -- then the ALPN extension
    body (a presence byte, a 2-byte length)."""
    legacy = (key[0] << 8) | key[1]
    psk = key[2] == 1
    suites, pos = _u16s(key, 3)
    exts, pos = _u16s(key, pos)
    groups, pos = _u16s(key, pos)
    sigalgs, pos = _u16s(key, pos)
    versions, pos = _u16s(key, pos)
    shares, pos = _u16s(key, pos)
    alpn: tuple = ()
    if key[pos] == 1:
        n = (key[pos + 1] << 8) | key[pos + 2]
        alpn = _alpn_names(key[pos + 3:pos + 3 + n])
    return _Offer(versions if versions else (legacy,), suites, groups, alpn, sigalgs, shares,
                  psk, False, ja4(legacy, suites, exts, None, alpn, sigalgs, versions))
