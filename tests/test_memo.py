"""The per-ClientHello memos (issue 14): keyed on the offer with its extensions sorted, so a
browser that permutes its extension order on every connection hits them; owned by the flow
table, bounded by one LRU policy.  Connections are crafted around a real TLS 1.3 stream whose
ClientHello's extensions are shuffled per connection (pre_shared_key would stay last), as
``make_corpus.py --permute-extensions`` and Chrome do."""
from __future__ import annotations

import random
import struct

import pytest
from conftest import load_engine, tcp_segments
from test_flows import FIN, TLS13, Conn, frames_of, pieces

from sensor.pipeline import Summarizer

N = 40


def _extensions(body: bytes) -> tuple[bytes, list[bytes]]:
    """A ClientHello body -> (everything before the extensions block, [each extension])."""
    pos = 34
    pos += 1 + body[pos]                                        # session_id
    pos += 2 + struct.unpack_from("!H", body, pos)[0]           # cipher_suites
    pos += 1 + body[pos]                                        # compression_methods
    head = body[:pos]
    end = pos + 2 + struct.unpack_from("!H", body, pos)[0]
    pos += 2
    exts = []
    while pos < end:
        ln = struct.unpack_from("!H", body, pos + 2)[0]
        exts.append(body[pos:pos + 4 + ln])
        pos += 4 + ln
    return head, exts


def _permuted_streams(rng: random.Random) -> tuple[list, list]:
    """The capture's segments, its first client record (the ClientHello) with its extensions
    in a new order, and the order (extension types) it has."""
    segs = list(tcp_segments(TLS13))
    d, first = segs[0]
    assert d == 0 and first[0] == 22 and first[5] == 1
    rec_len = struct.unpack_from("!H", first, 3)[0]
    hs_len = int.from_bytes(first[6:9], "big")
    body = first[9:9 + hs_len]
    head, exts = _extensions(body)
    last = [e for e in exts if e[:2] == b"\x00\x29"]            # pre_shared_key stays last
    rest = [e for e in exts if e[:2] != b"\x00\x29"]
    rng.shuffle(rest)
    exts = rest + last
    new_body = head + struct.pack("!H", sum(map(len, exts))) + b"".join(exts)
    assert len(new_body) == len(body)
    record = first[:9] + new_body + first[9 + hs_len:5 + rec_len]
    segs[0] = (0, record + first[5 + rec_len:])
    return segs, [struct.unpack_from("!H", e)[0] for e in exts]


@pytest.mark.parametrize("impl", ["c", "py"])
def test_permuted_extensions_hit_the_offer_memo(impl):
    engine = load_engine(impl)
    rng = random.Random(14)
    s = Summarizer(1, engine=engine)
    out, orders = [], []
    for i in range(N):
        segs, order = _permuted_streams(rng)
        orders.append(order)
        conn = Conn(client=("10.1.%d.%d" % (i // 200, i % 200 + 1), 40000 + i))
        frames = frames_of(conn, pieces(TLS13, segs=segs), close=[(0, FIN), (1, FIN)])
        for j, f in enumerate(frames):
            out += [raw for raw, _c in s.feed_frame(1000.0 + i + j / 1000, f)]
    out += [raw for raw, _c in s.flush()]
    assert len(out) == N
    assert len({tuple(o) for o in orders}) > N // 2                # really permuted
    # the summaries still show each connection's own order, and one JA4 (it sorts)
    assert [list(raw["client_extensions"]) for raw in out] == orders
    assert len({raw["ja4"] for raw in out}) == 1
    info = s.table.caches.offer.cache_info()
    assert info.currsize == 1, info                                 # one offer, not N
    assert info.hits >= N - 1, info
    assert info.maxsize is not None and info.maxsize <= 4096        # bounded


def test_the_memos_belong_to_the_table():
    engine = load_engine("py")
    a, b = Summarizer(1, engine=engine), Summarizer(1, engine=engine)
    assert a.table.caches is not b.table.caches
    assert a.table.caches.offer is not b.table.caches.offer


@pytest.mark.parametrize("impl", ["c", "py"])
def test_the_chain_memo_keeps_only_chains_of_real_size(impl):
    # (4096 chains of up to 1 MiB each -- whoever sends them chooses -- could have held 4 GiB)
    engine = load_engine(impl)
    caches = engine.session.Caches(engine.wire.Wire())
    limit = engine.session.CHAIN_MEMO_BYTES
    small = (b"a" * 3000, b"b" * 2000)
    big = (b"c" * limit, b"d")
    for chain in (small, big, small, big):
        assert [der for _d, der in caches.chain(chain)] == list(chain)
    info = caches.digests.cache_info()
    assert (info.currsize, info.hits) == (1, 1), info          # the small one kept and hit
    assert caches.chain(big) == engine.session.chain_digests(big)


def test_the_certificate_cache_is_bounded_by_bytes_too():
    from sensor.pipeline import CertificateCache
    from tests.support.pki import make_pki
    pki = make_pki()
    certs = [pki.leaf, pki.inter, pki.root, pki.expired, pki.other_root]
    size = max(len(c.der) for c in certs)
    cache = CertificateCache(size=100, max_bytes=2 * size + 1)
    for c in certs:
        cache.add(bytes.fromhex(c.sha256), c.der)
    kept = [c for c in certs if cache.der(bytes.fromhex(c.sha256)) is not None]
    assert kept == certs[-len(kept):] and 1 <= len(kept) <= 2     # the newest, within the bytes
    assert cache._bytes == sum(len(c.der) for c in kept) <= 2 * size + 1
    one = CertificateCache(size=100, max_bytes=1)                   # (the newest always stays)
    one.add(bytes.fromhex(pki.leaf.sha256), pki.leaf.der)
    assert one.der(bytes.fromhex(pki.leaf.sha256)) == pki.leaf.der


@pytest.mark.parametrize("impl", ["c", "py"])
def test_the_offer_names_memo_keeps_only_offers_of_real_size(impl):
    """The renderer's memo of offer names keeps a browser's offer, not one of thousands of
    code points (a 94 KB ClientHello's 47,000 kept 3.2 MB an entry, 4096 entries: 13 GB);
    both are named alike."""
    engine = load_engine(impl)
    s = Summarizer(1, engine=engine, json=True)
    small = ((0x0304, 0x0303), (0x1301, 0x1302, 0xC02F), (29, 23), (0x0403,), (29,))
    big = ((0x0304,), tuple(range(0x0100, 0x0100 + Summarizer.OFFER_MEMO_CODES)), (29,), (),
           ())
    for key in (small, big, small, big):
        assert s.offer_names(key) == engine.render.offer_names(key)
    info = s.offer_names.cache_info()
    assert (info.currsize, info.hits) == (1, 1), info
    assert sum(map(len, small)) <= Summarizer.OFFER_MEMO_CODES < sum(map(len, big))
