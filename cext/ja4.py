"""JA4 TLS client fingerprint (FoxIO JA4 specification, BSD 3-Clause), computed from the
ClientHello fields the wire core extracts.  ``t`` = TCP; QUIC and DTLS are not read here."""
from __future__ import annotations

import hashlib

from proto.names import is_grease

__all__ = ["ja4"]

_VERSIONS = {0x0304: "13", 0x0303: "12", 0x0302: "11", 0x0301: "10", 0x0300: "s3",
             0x0002: "s2", 0x0200: "s2", 0xFEFF: "d1", 0xFEFD: "d2", 0xFEFC: "d3"}


def _hash12(text: str) -> str:
    if not text:
        return "000000000000"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _alpn_chars(alpn: tuple) -> str:
    if not alpn or not alpn[0]:
        return "00"
    v = alpn[0]
    first, last = v[0], v[-1]
    if first.isascii() and first.isalnum() and last.isascii() and last.isalnum():
        return first + last
    raw = v.encode("ascii", "backslashreplace")
    return "%x%x" % (raw[0] >> 4, raw[-1] & 0x0F)


def ja4(legacy_version: int, cipher_suites: tuple, extensions: tuple, server_name,
        alpn: tuple, signature_algorithms: tuple, supported_versions: tuple) -> str:
    versions = [v for v in supported_versions if not is_grease(v)]
    ver = max(versions) if versions else legacy_version
    suites = [c for c in cipher_suites if not is_grease(c) and c <= 0xFFFF]
    exts = [e for e in extensions if not is_grease(e)]
    a = "t%s%s%02d%02d%s" % (_VERSIONS.get(ver, "00"), "d" if server_name else "i",
                             min(len(suites), 99), min(len(exts), 99), _alpn_chars(alpn))
    b = _hash12(",".join("%04x" % c for c in sorted(suites)))
    ext_part = ",".join("%04x" % e for e in sorted(exts) if e not in (0x0000, 0x0010))
    sig = [s for s in signature_algorithms if not is_grease(s)]
    if not ext_part:
        c = "000000000000"
    else:
        # the spec's formula, "(sorted extensions)_(signature algorithms)", keeps the "_"
        # when there are none; Suricata's ja4 test baseline agrees
        c = _hash12(ext_part + "_" + ",".join("%04x" % s for s in sig))
    return "%s_%s_%s" % (a, b, c)
