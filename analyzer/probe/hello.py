"""The hellos: the ClientHello the probe builds by hand, and what it reads of the server's messages.

The server's ServerHello and Certificate are read with the wire core's own parsers (the sensor's), handed in
as a :class:`WireParsers` by the application: the analyzer does not import ``cext``.  The probe keeps only
a thin adapter (:func:`read_server_hello`, :func:`read_certificates`) that takes whole handshake messages,
as OpenSSL's message callback hands them over, and never raises.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Callable, Sequence

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from proto.names import ContentType, ExtensionType, HandshakeType, NamedGroup, SignatureScheme, is_tls13

__all__ = ["WireParsers", "ServerHelloInfo", "read_server_hello", "read_certificates", "build_client_hello",
           "TLS13_SUITES", "MAX_CHAIN_CERTS"]

#: certificates kept from one Certificate message
MAX_CHAIN_CERTS = 20


@dataclass(frozen=True, slots=True)
class WireParsers:
    """The wire core's message parsers (``cext.wire`` or its twin ``cext._wire_py``), injected."""

    #: ServerHello body -> (legacy_version, session_id, cipher_suite, compression_method, extensions,
    #: selected_version (-1: none), key_share_group, alpn, psk_selected, is_hrr)
    parse_server_hello: Callable[[bytes], tuple]
    #: Certificate body, tls13 -> DER certificates in wire order
    parse_certificate: Callable[[bytes, bool], list]
    #: what the parsers raise on a malformed message (``cext.errors.ProtocolError``)
    error: type[Exception]
    #: bound on a record's length (RFC 5246 6.2.3: 2^14 + 2048)
    max_record: int


@dataclass(slots=True)
class ServerHelloInfo:
    version: int          # selected version (supported_versions wins over legacy_version)
    cipher: int
    hello_retry: bool


def _body(msg: bytes, msg_type: HandshakeType) -> bytes | None:
    """The body of a whole handshake message of ``msg_type`` (None if it is another type or cut short)."""
    if len(msg) < 4 or msg[0] != msg_type:
        return None
    length = (msg[1] << 16) | (msg[2] << 8) | msg[3]
    return msg[4:4 + length] if len(msg) >= 4 + length else None


def read_server_hello(wire: WireParsers, msg: bytes) -> ServerHelloInfo | None:
    """``msg`` is the whole handshake message (4-byte header included); None if it is not a well-formed
    ServerHello."""
    body = _body(msg, HandshakeType.server_hello)
    if body is None:
        return None
    try:
        legacy, _sid, suite, _comp, _exts, selected, _group, _alpn, _psk, is_hrr = wire.parse_server_hello(body)
    except wire.error:
        return None
    return ServerHelloInfo(selected if selected >= 0 else legacy, suite, bool(is_hrr))


def read_certificates(wire: WireParsers, msg: bytes, tls13: bool) -> list[bytes]:
    """DER certificates of a whole Certificate handshake message (at most :data:`MAX_CHAIN_CERTS`; none if
    it is malformed)."""
    body = _body(msg, HandshakeType.certificate)
    if body is None:
        return []
    try:
        return list(wire.parse_certificate(body, tls13))[:MAX_CHAIN_CERTS]
    except wire.error:
        return []


def tls13_version(version: int | None) -> bool:
    return version is not None and is_tls13(version)


# --------------------------------------------------------------------------------------------------
# Hand-built ClientHello, for offers this host's TLS library cannot make (SSLv3 on OpenSSL 3, TLS 1.3 suites).

_RAW_SUITES_OLD = (0xC014, 0xC00A, 0xC013, 0xC009, 0x0039, 0x0038, 0x0035, 0x0033, 0x0032, 0x002F,
                   0xC012, 0xC008, 0x0016, 0x0013, 0x000A, 0x0005, 0x0004, 0x0015, 0x0012, 0x0009,
                   0x0014, 0x0011, 0x0008, 0x0006, 0x0003, 0x00FF)
_RAW_SUITES_12 = (0xC02F, 0xC02B, 0xC030, 0xC02C, 0x009E, 0x009C, 0x009F, 0x009D, 0xC027, 0xC023,
                  0x003C, 0x003D, 0x0067, 0x006B) + _RAW_SUITES_OLD
#: RFC 8446 §B.4 and RFC 8998-free IANA TLS 1.3 suites.
TLS13_SUITES = (0x1301, 0x1302, 0x1303, 0x1304, 0x1305)

_TLS10, _TLS12, _TLS13 = 0x0301, 0x0303, 0x0304
_GROUPS_12 = (NamedGroup.secp256r1, NamedGroup.secp384r1, NamedGroup.secp521r1)
_GROUPS_13 = (NamedGroup.x25519,) + _GROUPS_12
_SIGALGS = (SignatureScheme.ecdsa_secp256r1_sha256, SignatureScheme.ecdsa_secp384r1_sha384,
            SignatureScheme.ecdsa_secp521r1_sha512, SignatureScheme.rsa_pss_rsae_sha256,
            SignatureScheme.rsa_pss_rsae_sha384, SignatureScheme.rsa_pss_rsae_sha512,
            SignatureScheme.rsa_pkcs1_sha256, SignatureScheme.rsa_pkcs1_sha384, SignatureScheme.rsa_pkcs1_sha512,
            SignatureScheme.rsa_pkcs1_sha1, SignatureScheme.ecdsa_sha1)


def default_suites(codes: Sequence[int]) -> list[int]:
    """The suites a hand-built hello offers for these versions: every TLS 1.3 suite, then the TLS 1.2 and
    older ones this probe knows."""
    suites = ((TLS13_SUITES if max(codes) >= _TLS13 else ())
              + (_RAW_SUITES_12 if min(codes) <= _TLS12 <= max(codes) else ())
              + (_RAW_SUITES_OLD if min(codes) < _TLS12 else ()))
    return list(dict.fromkeys(suites))


def _ext(etype: ExtensionType, body: bytes) -> bytes:
    return struct.pack("!HH", etype, len(body)) + body


def _u16s(values: Sequence[int]) -> bytes:
    return b"".join(struct.pack("!H", v) for v in values)


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
        entry = b"\x00" + struct.pack("!H", len(host)) + host     # host_name (RFC 6066 §3)
        exts += _ext(ExtensionType.server_name, struct.pack("!H", len(entry)) + entry)
    if top >= _TLS10:
        groups = _GROUPS_13 if top >= _TLS13 else _GROUPS_12
        exts += _ext(ExtensionType.supported_groups, struct.pack("!H", 2 * len(groups)) + _u16s(groups))
        exts += _ext(ExtensionType.ec_point_formats, b"\x01\x00")  # uncompressed
    if top >= _TLS12:
        exts += _ext(ExtensionType.signature_algorithms, struct.pack("!H", 2 * len(_SIGALGS)) + _u16s(_SIGALGS))
    session_id = b""
    if top >= _TLS13:
        pub = X25519PrivateKey.generate().public_key().public_bytes(serialization.Encoding.Raw,
                                                                    serialization.PublicFormat.Raw)
        vs = _u16s(sorted(versions, reverse=True))
        exts += _ext(ExtensionType.supported_versions, bytes([len(vs)]) + vs)
        share = struct.pack("!HH", NamedGroup.x25519, len(pub)) + pub
        exts += _ext(ExtensionType.key_share, struct.pack("!H", len(share)) + share)
        exts += _ext(ExtensionType.psk_key_exchange_modes, b"\x01\x01")  # psk_dhe_ke (expected by some stacks)
        session_id = os.urandom(32)  # middlebox compatibility mode (RFC 8446 §D.4)
    legacy = min(top, _TLS12)
    cs = _u16s(suites)
    hello = (struct.pack("!H", legacy) + os.urandom(32) + bytes([len(session_id)]) + session_id
             + struct.pack("!H", len(cs)) + cs + b"\x01\x00")
    if exts:
        hello += struct.pack("!H", len(exts)) + exts
    msg = bytes([HandshakeType.client_hello]) + struct.pack("!I", len(hello))[1:] + hello
    return struct.pack("!BHH", ContentType.handshake, min(top, _TLS10), len(msg)) + msg
