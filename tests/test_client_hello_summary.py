"""A connection with a ClientHello always yields a summary (issue 15, item 4), in both builds.

The real capture (tests/data/realworld/malformed-hello-silent.pcap: a ClientHello whose body
does not parse, and a server that never answers) is in tests/test_realworld.py.  Here the
other ways a ClientHello can fail to become a message: cut short by the client's FIN or by the
end of the capture, a record longer than RFC 5246 allows, a handshake message longer than the
flow table's cap.  Each must give one summary whose history has the ClientHello and whose
weirds say what was wrong; a connection that never began a ClientHello still gives none.
"""
from __future__ import annotations

import socket

import dpkt
import pytest
from conftest import golden_messages, load_engine

from sensor.pipeline import Summarizer

A, S, P, F = dpkt.tcp.TH_ACK, dpkt.tcp.TH_SYN, dpkt.tcp.TH_PUSH, dpkt.tcp.TH_FIN


def _frames(payloads, fin: bool = True):
    """A TCP connection 10.1.0.1:40000 -> 10.1.0.2:443: the handshake, the client's
    ``payloads`` (one segment each), then (``fin``) the client's FIN."""
    c, s = socket.inet_aton("10.1.0.1"), socket.inet_aton("10.1.0.2")
    seq = {True: 1000, False: 5000}
    steps = [(True, S, b""), (False, S | A, b""), (True, A, b"")]
    steps += [(True, A | P, p) for p in payloads]
    if fin:
        steps.append((True, A | F, b""))
    out, t = [], 1.0
    for fc, flags, data in steps:
        tcp = dpkt.tcp.TCP(sport=40000 if fc else 443, dport=443 if fc else 40000,
                           seq=seq[fc], ack=seq[not fc], flags=flags, data=data)
        ip = dpkt.ip.IP(src=c if fc else s, dst=s if fc else c, p=6, data=tcp)
        ip.len = 20 + len(bytes(tcp))
        out.append((t, bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6,
                                                    type=0x0800, data=ip))))
        t += 0.01
        seq[fc] = (seq[fc] + len(data) + (1 if flags & (S | F) else 0)) & 0xFFFFFFFF
    return out


def _summaries(impl: str, frames, **table) -> list:
    s = Summarizer(1, json=True, engine=load_engine(impl), **table)
    out = []
    for ts, frame in frames:
        out += s.feed_frame(ts, frame)
    out += s.flush()
    return [summary for summary, _ in out]


def _hello_record(version: bytes = b"\x03\x01") -> bytes:
    ch = golden_messages()["client_hello"][0]
    hs = b"\x01" + len(ch).to_bytes(3, "big") + ch
    return b"\x16" + version + len(hs).to_bytes(2, "big") + hs


CASES = {
    # the first half of a real ClientHello, then the client's FIN
    "cut_short_then_fin": (lambda: _frames([_hello_record()[:60]]), {},
                           ["client_hello_unread"]),
    # the same with its record header alone in the first segment (the type byte came in the
    # next): it was not taken for a ClientHello, and the connection went unsummarized
    "cut_short_header_apart": (lambda: _frames([_hello_record()[:5], _hello_record()[5:60]]), {},
                               ["client_hello_unread"]),
    # the header in 1-byte segments
    "cut_short_header_in_bytes": (lambda: _frames([bytes([b]) for b in _hello_record()[:5]]
                                                  + [_hello_record()[5:60]]), {},
                                  ["client_hello_unread"]),
    # the same, and the capture ends (no FIN)
    "cut_short_at_the_end": (lambda: _frames([_hello_record()[:60]], fin=False), {},
                             ["client_hello_unread"]),
    # an SSLv2-framed ClientHello (RFC 5246 E.2) cut short: header says 0x30 bytes, 8 came
    "sslv2_cut_short": (lambda: _frames([b"\x80\x30\x01\x03\x01\x00\x09\x00\x00\x00"]), {},
                        ["client_hello_unread"]),
    # RFC 5246 6.2.3: a record longer than 2^14 + 2048 is refused
    "record_overflow": (lambda: _frames([b"\x16\x03\x01\x50\x00\x01\x00\x4f\xfc" + b"\0" * 40]),
                        {}, ["record_overflow", "client_hello_unread"]),
    # a ClientHello longer than the flow table's cap on one handshake message
    "handshake_too_long": (lambda: _frames([_hello_record()]), {"max_handshake": 64},
                           ["handshake_too_long", "client_hello_unread"]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_client_hello_that_never_became_a_message_is_summarized(name, engine_impl):
    make, table, weirds = CASES[name]
    out = _summaries(engine_impl.implementation, make(), **table)
    assert len(out) == 1
    assert out[0]["history"] == "C" and out[0]["weirds"] == weirds
    assert out[0]["client"] == "10.1.0.1:40000" and out[0]["server"] == "10.1.0.2:443"
    assert out[0]["ja4"] is None


def test_a_whole_client_hello_has_no_such_weird(engine_impl):
    out = _summaries(engine_impl.implementation, _frames([_hello_record()]))
    assert len(out) == 1 and out[0]["history"] == "C" and out[0]["weirds"] == []
    assert out[0]["ja4"] is not None


@pytest.mark.parametrize("payload", [b"EHLO example.com\r\n", b"\x15\x03\x03\x00\x02\x02\x28"[:4],
                                     b"\x16\x03\x01\x00\x30\x02"])
def test_no_client_hello_no_summary(payload, engine_impl):
    """Plaintext, the start of an alert record, a handshake record that is no ClientHello (a
    ServerHello's type from the client) cut short: no ClientHello began, no summary."""
    assert _summaries(engine_impl.implementation, _frames([payload])) == []


@pytest.mark.parametrize("suites", [1024, 1025, 2000, 30000])
def test_a_huge_offer_is_cut_in_the_summary(engine_impl, suites):
    """A ClientHello of up to 32,767 cipher suites (and thousands of extensions) is read; the
    summary keeps the first MAX_OFFER_CODES of each list (past it, the weird
    client_offer_truncated) -- 30,000 made a 1.4 MB summary line -- and its JA4 is that of
    the whole offer."""
    from cext._session_py import MAX_OFFER_CODES
    from cext.ja4 import ja4
    codes = tuple(range(0x0100, 0x0100 + suites))
    types = tuple(range(0x1000, 0x1000 + min(suites, 2000)))
    exts = b"".join(t.to_bytes(2, "big") + b"\x00\x00" for t in types)
    body = (b"\x03\x03" + bytes(32) + b"\x00" + (2 * suites).to_bytes(2, "big")
            + b"".join(c.to_bytes(2, "big") for c in codes) + b"\x01\x00"
            + len(exts).to_bytes(2, "big") + exts)
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    records = b"".join(b"\x16\x03\x01" + len(hs[i:i + 16384]).to_bytes(2, "big")
                       + hs[i:i + 16384] for i in range(0, len(hs), 16384))
    (s,) = _summaries(engine_impl.implementation,
                      _frames([records[i:i + 1400] for i in range(0, len(records), 1400)]))
    assert len(s["client_ciphers"]) == min(suites, MAX_OFFER_CODES)
    assert len(s["client_extensions"]) == min(len(types), MAX_OFFER_CODES)
    assert ("client_offer_truncated" in s["weirds"]) == (suites > MAX_OFFER_CODES)
    assert s["ja4"] == ja4(0x0303, codes, types, None, (), (), ())


def test_a_lone_record_header_then_no_client_hello_is_no_summary(engine_impl):
    """A client's handshake record header alone in its segment, then a body whose type byte is
    not a ClientHello's (2, a ServerHello's), cut short: no ClientHello began, as with the same
    bytes in one segment -- the header alone is taken for one only until that byte comes."""
    header, body = b"\x16\x03\x01\x00\x30", b"\x02\x00\x00\x2c\x03\x03"
    for payloads in ([header + body], [header, body], [header[:2], header[2:], body[:1]]):
        assert _summaries(engine_impl.implementation, _frames(payloads)) == [], payloads
