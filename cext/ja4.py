"""JA4 TLS client fingerprint (FoxIO JA4 specification, BSD 3-Clause), computed from the
ClientHello fields the wire core extracts.  ``t`` = TCP; QUIC and DTLS are not read here."""
from __future__ import annotations

import hashlib
import re

from proto.names import is_grease

__all__ = ["ja4"]

_VERSIONS = {0x0304: "13", 0x0303: "12", 0x0302: "11", 0x0301: "10", 0x0300: "s3",
             0x0002: "s2", 0x0200: "s2", 0xFEFF: "d1", 0xFEFD: "d2", 0xFEFC: "d3"}


#: the bytes JA4 prints as they are: 0x30-0x39, 0x41-0x5A, 0x61-0x7A
_ALNUM = frozenset(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
#: the wire core's ALPN text: ``bytes.decode("ascii", "backslashreplace")`` writes a byte from
#: 0x80 up as ``\xNN`` and the wire core writes a literal backslash as ``\x5c`` (issue 15), so
#: every ``\xNN`` is one wire byte
_ESCAPED = re.compile(r"\\x([0-9a-f][0-9a-f])")


def _hash12(text: str) -> str:
    if not text:
        return "000000000000"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _alpn_chars(alpn: tuple) -> str:
    """JA4.md, "ALPN Extension Value": the first and last characters of the first ALPN value
    (one character counts as both), "00" when there is none or it is empty; when its first or
    last *byte* is not 0-9 A-Z a-z, the first and last characters of its hex instead.  A str
    value is the wire core's ASCII text, where each non-ASCII byte and each backslash reads
    ``\\xNN``: those escapes are turned back into their byte, which gives the wire bytes
    exactly."""
    if not alpn or not alpn[0]:
        return "00"
    v = alpn[0]
    raw = v if isinstance(v, bytes) else _ESCAPED.sub(
        lambda m: chr(int(m.group(1), 16)), v).encode("latin-1")
    first, last = raw[0], raw[-1]
    if first in _ALNUM and last in _ALNUM:
        return chr(first) + chr(last)
    text = raw.hex()
    return text[0] + text[-1]


def ja4(legacy_version: int, cipher_suites: tuple, extensions: tuple, server_name,
        alpn: tuple, signature_algorithms: tuple, supported_versions: tuple) -> str:
    versions = [v for v in supported_versions if not is_grease(v)]
    ver = max(versions) if versions else legacy_version
    suites = [c for c in cipher_suites if not is_grease(c) and c <= 0xFFFF]
    exts = [e for e in extensions if not is_grease(e)]
    # "If the SNI extension (0x0000) exists ... 'd'": the extension, whatever its name holds
    a = "t%s%s%02d%02d%s" % (_VERSIONS.get(ver, "00"), "d" if 0x0000 in exts else "i",
                             min(len(suites), 99), min(len(exts), 99), _alpn_chars(alpn))
    b = _hash12(",".join("%04x" % c for c in sorted(suites)))
    ext_part = ",".join("%04x" % e for e in sorted(exts) if e not in (0x0000, 0x0010))
    sig = ",".join("%04x" % s for s in signature_algorithms if not is_grease(s))
    if not ext_part:
        c = "000000000000"
    else:
        # "If there are no signature algorithms in the hello packet, then the string ends
        # without an underscore and is hashed" (JA4.md, "Extension hash")
        c = _hash12(ext_part + "_" + sig if sig else ext_part)
    return "%s_%s_%s" % (a, b, c)
