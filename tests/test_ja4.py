"""JA4 to the letter (issue 15, item 5).

Every expected value below is derived by hand from the text of FoxIO's specification,
``technical_details/JA4.md`` of https://github.com/FoxIO-LLC/ja4 (quoted where it decides a
case), not from our own code: each case states the three parts of JA4_r as the spec builds them
(``a`` literally, ``b`` and ``c`` as the comma-separated strings that are then hashed with
SHA-256 and truncated to 12 characters).  The ClientHello bytes are built here and go through
the real parsers (``parse_client_hello`` of both wire implementations) and through the whole
pipeline (a pcap in, ``summarize_paths`` out); run the file with and without
``TLSDIAG_NO_EXTENSIONS=1`` for both builds of the pipeline.

Where FoxIO's own tools (which read tshark's fields) differ from the text, the case says so.
"""
from __future__ import annotations

import hashlib
import socket

import dpkt
import pytest

from sensor.pipeline import summarize_paths

# the ja4 function the session uses, wherever it lives (sensor/ja4.py, or cext/ja4.py after the
# layering move): importing ``cext.ja4`` by name from a tree without it would find the editable
# install's copy of another checkout
from cext._session_py import ja4


def h12(text: str) -> str:
    """The spec: "sha256 hash ... truncated to 12 characters", lower case; an empty list is
    ``000000000000`` ("If there are no ciphers ..." / "If there are no extensions ...")."""
    return hashlib.sha256(text.encode()).hexdigest()[:12] if text else "000000000000"


# --------------------------------------------------------------------------------------------
# a small ClientHello builder (RFC 8446 4.1.2, RFC 5246 7.4.1.2, RFC 5246 E.2 for SSLv2)
# --------------------------------------------------------------------------------------------

def u8(b: bytes) -> bytes:
    return len(b).to_bytes(1, "big") + b


def u16(b: bytes) -> bytes:
    return len(b).to_bytes(2, "big") + b


def codes(values) -> bytes:
    return b"".join(v.to_bytes(2, "big") for v in values)


def ext(etype: int, data: bytes = b"") -> tuple:
    return (etype, data)


def sni(host: bytes = b"example.com") -> tuple:
    return ext(0x0000, u16(b"\x00" + u16(host)))


def alpn(*protos: bytes) -> tuple:
    return ext(0x0010, u16(b"".join(u8(p) for p in protos)))


def sigalgs(*values: int) -> tuple:
    return ext(0x000D, u16(codes(values)))


def versions(*values: int) -> tuple:
    return ext(0x002B, u8(codes(values)))


def groups(*values: int) -> tuple:
    return ext(0x000A, u16(codes(values)))


def key_share(group: int = 0x001D) -> tuple:
    return ext(0x0033, u16(group.to_bytes(2, "big") + u16(b"\x11" * 32)))


def client_hello(suites, exts, version: int = 0x0303) -> bytes:
    """The ClientHello handshake body."""
    body = version.to_bytes(2, "big") + b"\x22" * 32 + u8(b"\x33" * 32) + u16(codes(suites)) \
        + u8(b"\x00")
    if exts is not None:
        body += u16(b"".join(t.to_bytes(2, "big") + u16(d) for t, d in exts))
    return body


def record(body: bytes) -> bytes:
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + len(hs).to_bytes(2, "big") + hs


def sslv2_record(version: int, specs) -> bytes:
    """An SSLv2-compatible ClientHello (RFC 5246 E.2 / RFC 6101 E), 2-byte record header."""
    cs = b"".join(s.to_bytes(3, "big") for s in specs)
    challenge = b"\x44" * 16
    body = b"\x01" + version.to_bytes(2, "big") + len(cs).to_bytes(2, "big") \
        + (0).to_bytes(2, "big") + len(challenge).to_bytes(2, "big") + cs + challenge
    return (0x8000 | len(body)).to_bytes(2, "big") + body


# The spec's own example ("Cipher hash", "Extension hash"): 15 suites, 16 extensions in wire
# order, ALPN h2, these signature algorithms; its JA4 is t13d1516h2_8daaf6152771_e5627efa2ab1.
SPEC_SUITES = (0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8, 0xC013,
               0xC014, 0x009C, 0x009D, 0x002F, 0x0035)
SPEC_SIGALGS = (0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601)
SPEC_B = "002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9"
SPEC_EXTS = "0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01"
SPEC_SIGS = "0403,0804,0401,0503,0805,0501,0806,0601"


def spec_exts(sig=sigalgs(*SPEC_SIGALGS), server_name=sni(), alpn_ext=alpn(b"h2", b"http/1.1"),
              sv=versions(0x0304, 0x0303), extra_front=(), extra_back=()):
    """The example's extensions in its wire order (001b,0000,0033,0010,4469,0017,002d,000d,
    0005,0023,0012,002b,ff01,000b,000a,0015); ``None`` leaves one out."""
    out = list(extra_front) + [
        ext(0x001B, b"\x02\x00\x02"), server_name, key_share(), alpn_ext,
        ext(0x4469, b"\x00\x03\x02h2"),
        ext(0x0017), ext(0x002D, b"\x01\x01"), sig, ext(0x0005, b"\x01\x00\x00\x00\x00"),
        ext(0x0023), ext(0x0012), sv, ext(0xFF01, b"\x00"), ext(0x000B, b"\x01\x00"),
        groups(0x001D, 0x0017, 0x0018), ext(0x0015, b"\x00" * 8)] + list(extra_back)
    return [e for e in out if e is not None]


def _many(n: int, start: int) -> list:
    """n code points from ``start`` up, none of them GREASE (0x?a?a)."""
    out, v = [], start
    while len(out) < n:
        if not ((v & 0x0F0F) == 0x0A0A and (v >> 8) == (v & 0xFF)):
            out.append(v)
        v += 1
    return out


MANY_SUITES = _many(120, 0x0001)
MANY_EXTS = _many(110, 0x1000)       # no parsed meaning, empty data

# name -> (the bytes the client sends, expected JA4, where in the spec)
CASES = {
    # "The end result ... t13d1516h2_8daaf6152771_e5627efa2ab1" (Example)
    "spec_example": (
        record(client_hello(SPEC_SUITES, spec_exts())),
        "t13d1516h2_%s_%s" % (h12(SPEC_B), h12(SPEC_EXTS + "_" + SPEC_SIGS)),
        "Example"),
    # "The program needs to ignore GREASE values anywhere it sees them": a GREASE suite, two
    # GREASE extensions (one first, one last), a GREASE version in supported_versions, a
    # GREASE signature algorithm and group -- the same JA4 as the example.
    "grease_everywhere": (
        record(client_hello((0x0A0A,) + SPEC_SUITES, spec_exts(
            sig=sigalgs(0x1A1A, *SPEC_SIGALGS), sv=versions(0x2A2A, 0x0304, 0x0303),
            extra_front=[ext(0x3A3A)], extra_back=[ext(0x4A4A, b"\x00")]))),
        "t13d1516h2_%s_%s" % (h12(SPEC_B), h12(SPEC_EXTS + "_" + SPEC_SIGS)),
        "Details; Number of Ciphers ('ignore GREASE values. They don't count')"),
    # "If there are no signature algorithms in the hello packet, then the string ends without
    # an underscore and is hashed": the spec's own example string "... ,4469,ff01 =
    # 6d807ffa2a79" is exactly this hello (signature_algorithms present, its list empty).
    "sigalgs_empty_list": (
        record(client_hello(SPEC_SUITES, spec_exts(sig=sigalgs()))),
        "t13d1516h2_%s_6d807ffa2a79" % h12(SPEC_B),
        "Extension hash"),
    # ... and with no signature_algorithms extension at all (000d leaves the list too)
    "no_sigalgs": (
        record(client_hello(SPEC_SUITES, spec_exts(sig=None))),
        "t13d1515h2_%s_%s" % (h12(SPEC_B), h12(
            "0005,000a,000b,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01")),
        "Extension hash"),
    # "If the SNI does not exist, then the destination is an IP address, or 'i'"; SNI is
    # left out of the hashed list in any case, and still counted when present
    "no_sni": (
        record(client_hello(SPEC_SUITES, spec_exts(server_name=None))),
        "t13i1515h2_%s_%s" % (h12(SPEC_B), h12(SPEC_EXTS + "_" + SPEC_SIGS)),
        "SNI"),
    # "If the SNI extension (0x0000) exists, then ... 'd'": an empty host_name is still an SNI
    "sni_empty_host_name": (
        record(client_hello(SPEC_SUITES, spec_exts(server_name=sni(b"")))),
        "t13d1516h2_%s_%s" % (h12(SPEC_B), h12(SPEC_EXTS + "_" + SPEC_SIGS)),
        "SNI"),
    # "If there is no ALPN extension ... then we print '00'"
    "no_alpn": (
        record(client_hello(SPEC_SUITES, spec_exts(alpn_ext=None))),
        "t13d151500_%s_%s" % (h12(SPEC_B), h12(SPEC_EXTS + "_" + SPEC_SIGS)),
        "ALPN Extension Value"),
    # "... or the first ALPN value is empty, then we print '00'"
    "alpn_first_empty": (
        record(client_hello(SPEC_SUITES, spec_exts(alpn_ext=alpn(b"", b"h2")))),
        "t13d151600_%s_%s" % (h12(SPEC_B), h12(SPEC_EXTS + "_" + SPEC_SIGS)),
        "ALPN Extension Value"),
    # "If the first ALPN listed was http/1.1 then ... 'h1'" (only the first value counts)
    "alpn_http11": (
        record(client_hello(SPEC_SUITES, spec_exts(alpn_ext=alpn(b"http/1.1", b"h2")))),
        "t13d1516h1_%s_%s" % (h12(SPEC_B), h12(SPEC_EXTS + "_" + SPEC_SIGS)),
        "ALPN Extension Value"),
    # "If the first ALPN value is only a single character, then that character is treated as
    # both the first and last character." (FoxIO's Rust and Python tools print "x0" here.)
    "alpn_one_char": (
        record(client_hello(SPEC_SUITES, spec_exts(alpn_ext=alpn(b"x")))),
        "t13d1516xx_%s_%s" % (h12(SPEC_B), h12(SPEC_EXTS + "_" + SPEC_SIGS)),
        "ALPN Extension Value"),
    # the hex rule, the spec's five examples verbatim: "If the first or last byte of the first
    # ALPN is non-alphanumeric (meaning not 0x30-0x39, 0x41-0x5A, or 0x61-0x7A), then we
    # print the first and last characters of the hex representation of the first ALPN"
    "alpn_hex_ab": (
        record(client_hello(SPEC_SUITES, spec_exts(alpn_ext=alpn(b"\xab")))),
        "t13d1516ab_%s_%s" % (h12(SPEC_B), h12(SPEC_EXTS + "_" + SPEC_SIGS)),
        "ALPN Extension Value: 0xAB -> ab"),
    "alpn_hex_abcd": (
        record(client_hello(SPEC_SUITES, spec_exts(alpn_ext=alpn(b"\xab\xcd")))),
        "t13d1516ad_%s_%s" % (h12(SPEC_B), h12(SPEC_EXTS + "_" + SPEC_SIGS)),
        "ALPN Extension Value: 0xAB 0xCD -> ad"),
    "alpn_hex_30ab": (
        record(client_hello(SPEC_SUITES, spec_exts(alpn_ext=alpn(b"\x30\xab")))),
        "t13d15163b_%s_%s" % (h12(SPEC_B), h12(SPEC_EXTS + "_" + SPEC_SIGS)),
        "ALPN Extension Value: 0x30 0xAB -> 3b"),
    "alpn_hex_3031abcd": (
        record(client_hello(SPEC_SUITES, spec_exts(alpn_ext=alpn(b"\x30\x31\xab\xcd")))),
        "t13d15163d_%s_%s" % (h12(SPEC_B), h12(SPEC_EXTS + "_" + SPEC_SIGS)),
        "ALPN Extension Value: 0x30 0x31 0xAB 0xCD -> 3d"),
    "alpn_hex_30abcd31": (
        record(client_hello(SPEC_SUITES, spec_exts(alpn_ext=alpn(b"\x30\xab\xcd\x31")))),
        "t13d151601_%s_%s" % (h12(SPEC_B), h12(SPEC_EXTS + "_" + SPEC_SIGS)),
        "ALPN Extension Value: 0x30 0xAB 0xCD 0x31 -> 01"),
    # an ASCII but non-alphanumeric last byte takes the hex rule too ("h2-" = 68 32 2d)
    "alpn_ascii_punctuation": (
        record(client_hello(SPEC_SUITES, spec_exts(alpn_ext=alpn(b"h2-")))),
        "t13d15166d_%s_%s" % (h12(SPEC_B), h12(SPEC_EXTS + "_" + SPEC_SIGS)),
        "ALPN Extension Value"),
    # a backslash is not alphanumeric: its hex is 5c (and our escaped text must not be read)
    "alpn_backslash": (
        record(client_hello(SPEC_SUITES, spec_exts(alpn_ext=alpn(b"\\x")))),
        "t13d151658_%s_%s" % (h12(SPEC_B), h12(SPEC_EXTS + "_" + SPEC_SIGS)),
        "ALPN Extension Value"),
    # the 4 bytes 5c 78 61 62 ("\\xab" as text): the first byte is not alphanumeric, so the
    # hex rule: "5c786162" -> "52" (not "ab", which the byte 0xAB alone would give)
    "alpn_backslash_escape_text": (
        record(client_hello(SPEC_SUITES, spec_exts(alpn_ext=alpn(b"\\xab")))),
        "t13d151652_%s_%s" % (h12(SPEC_B), h12(SPEC_EXTS + "_" + SPEC_SIGS)),
        "ALPN Extension Value"),
    # a backslash then the byte 0xAB (5c ab): hex "5cab" -> "5b"
    "alpn_backslash_then_non_ascii": (
        record(client_hello(SPEC_SUITES, spec_exts(alpn_ext=alpn(b"\\\xab")))),
        "t13d15165b_%s_%s" % (h12(SPEC_B), h12(SPEC_EXTS + "_" + SPEC_SIGS)),
        "ALPN Extension Value"),
    # "If there's > 99, which there should never be, then output '99'" (and "Same as counting
    # ciphers" for extensions); the hashes still cover every value
    "over_99_suites_and_extensions": (
        record(client_hello(MANY_SUITES, spec_exts(extra_back=[ext(v) for v in MANY_EXTS]))),
        "t13d9999h2_%s_%s" % (
            h12(",".join("%04x" % v for v in sorted(MANY_SUITES))),
            h12(",".join(sorted(SPEC_EXTS.split(",") + ["%04x" % v for v in MANY_EXTS]))
                + "_" + SPEC_SIGS)),
        "Number of Ciphers / Number of Extensions"),
    # TLS version: "If extension 0x002b exists ..., then the version is the highest value in
    # the extension ... If the extension doesn't exist, then the TLS version is the value of
    # the Protocol Version"; "0x0301 = TLS 1.0 = '10'"; no extensions at all: c is 000000000000
    "tls10_no_extensions": (
        record(client_hello((0x002F, 0x0035, 0x000A, 0x00FF), None, version=0x0301)),
        "t10i040000_%s_000000000000" % h12("000a,002f,0035,00ff"),
        "TLS and DTLS Version; Extension hash ('no extensions')"),
    # the highest value in supported_versions even when it is a draft: Unknown = "00"
    "draft_version_highest": (
        record(client_hello(SPEC_SUITES, spec_exts(sv=versions(0x7F1C, 0x0304)))),
        "t00d1516h2_%s_%s" % (h12(SPEC_B), h12(SPEC_EXTS + "_" + SPEC_SIGS)),
        "TLS and DTLS Version ('Unknown = 00')"),
    # SSLv2-compatible hello (RFC 5246 E.2), version field 0x0301: no extensions, so the
    # version is the Protocol Version ("10"), no SNI, no ALPN.  The TLS cipher suites it
    # offers are the V2CipherSpecs 0x00XXYY; the SSLv2-only spec 0x010080 is no TLS cipher
    # suite and has no 4-character code.  (FoxIO's tools read tshark's tls.handshake.ciphersuite,
    # which tshark does not fill for SSLv2 cipher specs: they print t10i000000_000000000000_...)
    "sslv2_compatible": (
        sslv2_record(0x0301, (0x010080, 0x00002F, 0x000035, 0x0000FF)),
        "t10i030000_%s_000000000000" % h12("002f,0035,00ff"),
        "TLS and DTLS Version; Number of Ciphers ('Do, however, count ... SCSV')"),
    # a pure SSLv2 hello: "0x0002 = SSL 2.0 = 's2'"
    "sslv2_only": (
        sslv2_record(0x0002, (0x010080, 0x020080)),
        "ts2i000000_000000000000_000000000000",
        "TLS and DTLS Version; Cipher hash ('no ciphers')"),
}


def test_the_spec_examples_hash_as_the_spec_says():
    """The hashing helper against the spec's own printed values."""
    assert h12(SPEC_B) == "8daaf6152771"
    assert h12(SPEC_EXTS + "_" + SPEC_SIGS) == "e5627efa2ab1"
    assert h12(SPEC_EXTS) == "6d807ffa2a79"


def _pcap(path, payload: bytes) -> None:
    """A TCP connection 10.1.0.1:40000 -> 10.1.0.2:443 carrying ``payload`` from the client,
    then the server's FIN."""
    c, s = socket.inet_aton("10.1.0.1"), socket.inet_aton("10.1.0.2")
    seq = {True: 1000, False: 5000}
    A, S, P, F = dpkt.tcp.TH_ACK, dpkt.tcp.TH_SYN, dpkt.tcp.TH_PUSH, dpkt.tcp.TH_FIN
    with open(path, "wb") as fh:
        w = dpkt.pcap.Writer(fh)
        t = 1.0
        for fc, flags, data in ((True, S, b""), (False, S | A, b""), (True, A, b""),
                                (True, A | P, payload), (False, A | F, b"")):
            tcp = dpkt.tcp.TCP(sport=40000 if fc else 443, dport=443 if fc else 40000,
                               seq=seq[fc], ack=seq[not fc], flags=flags, data=data)
            ip = dpkt.ip.IP(src=c if fc else s, dst=s if fc else c, p=6, data=tcp)
            ip.len = 20 + len(bytes(tcp))
            w.writepkt(bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6,
                                                    type=0x0800, data=ip)), t)
            t += 0.01
            seq[fc] = (seq[fc] + len(data) + (1 if flags & (S | F) else 0)) & 0xFFFFFFFF


@pytest.mark.parametrize("name", sorted(CASES))
def test_ja4_through_the_pipeline(name, tmp_path):
    payload, expected, _where = CASES[name]
    path = tmp_path / ("%s.pcap" % name)
    _pcap(path, payload)
    out = [s for s, _ in summarize_paths([str(path)])]
    assert len(out) == 1
    assert out[0]["ja4"] == expected


@pytest.mark.parametrize("name", sorted(n for n in CASES if not n.startswith("sslv2")))
def test_ja4_from_each_parser(name, wire_impl):
    """The same through ``parse_client_hello`` of the compiled and the pure-Python wire."""
    payload, expected, _where = CASES[name]
    body = payload[9:]
    (legacy, _sid, suites, _comp, exts, server_name, alpn_, _groups, _formats, sigs, vers,
     _shares, _psk, _ticket) = wire_impl.parse_client_hello(body)
    assert ja4(legacy, suites, exts, server_name, alpn_, sigs, vers) == expected


def test_bytes_alpn_is_read_as_wire_bytes():
    """A caller that has the ALPN's wire bytes may pass them as bytes."""
    assert ja4(0x0303, (0x1301,), (0x0010,), None, (b"\xab\xcd",), (), ()).startswith(
        "t12i0101ad_")
    assert ja4(0x0303, (0x1301,), (0x0010,), None, (b"\\xab",), (), ()).startswith(
        "t12i010152_")


def test_literal_backslash_escape_alpn_through_the_parser(wire_impl):
    """The 4 bytes '\\xab' and the byte 0xAB must not read the same: the wire core writes a
    literal backslash as \\x5c in its ALPN text, so JA4 gets the wire bytes back exactly."""
    payload = record(client_hello(SPEC_SUITES, spec_exts(alpn_ext=alpn(b"\\xab"))))
    (legacy, _sid, suites, _comp, exts, server_name, alpn_, _groups, _formats, sigs, vers,
     _shares, _psk, _ticket) = wire_impl.parse_client_hello(payload[9:])
    # 5c 78 61 62: the first byte is not alphanumeric, hex "5c786162" -> "52"
    assert ja4(legacy, suites, exts, server_name, alpn_, sigs, vers).startswith("t13d151652_")


def test_literal_backslash_escape_alpn_through_the_pipeline(tmp_path):
    """The same through the flow table, whose sessions read the ALPN back from the memoized
    offer key (cext._session_py._alpn_names), not from ``parse_client_hello``: the summary's
    client_alpn and JA4 must say the same as the parser (merge of issue 14's offer memo with
    issue 15's ALPN text)."""
    payload = record(client_hello(SPEC_SUITES, spec_exts(alpn_ext=alpn(b"\\xab", b"h2"))))
    path = tmp_path / "alpn-backslash.pcap"
    _pcap(path, payload)
    out = [s for s, _ in summarize_paths([str(path)])]
    assert len(out) == 1
    assert out[0]["client_alpn"] == ["\\x5cxab", "h2"]
    assert out[0]["ja4"].startswith("t13d151652_")
