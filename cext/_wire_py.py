"""Pure-Python twin of ``cext/_wire.pyx``: the byte-crunching half of the wire core.

Everything here takes bytes (and offsets) and returns plain tuples, ints, bytes and str, so the
Cython build and this module can be compared value for value.  No I/O, no clock.

* :class:`PacketDecoder` turns link-layer frames into TCP segments and drops, before any
  flow-table work, the packets the sensor does not need (pure ACKs, data of flows whose
  handshake is over, mid-stream data of flows it never saw start).  Frames come from a frame
  source -- a pcapy-ng batch, the records of a classic pcap file in memory, or one frame --
  and :meth:`PacketDecoder.next` leaves each segment in the decoder's fields for the flow
  table; ``decode`` / ``decode_batch`` give segment tuples (the reference API).
* :class:`Wire` parses the handshake messages whose fields the summary needs, over a range
  of a ``bytes`` (``data[start:end]``): the interface the engine calls (in C in the compiled
  build, see ``_wire.pxd``).  Errors are int status codes (``cext.errors``); the module-level
  ``parse_*`` functions raise them as ``MalformedMessage``.
* :func:`connection_id`, :func:`endpoint_text`: the summary's id and endpoints.
"""
from __future__ import annotations

import bisect
import ipaddress
import os
import struct
from hashlib import blake2s

from ._encap_py import Decapsulator
from .errors import E_TOO_MANY_CERTIFICATES, E_VECTOR_OVERRUN, MAX_CERTIFICATES, error

__all__ = [
    "PacketDecoder", "Done", "Skip", "Wire", "parse_client_hello", "parse_client_hello_key",
    "parse_server_hello", "parse_certificate", "connection_id", "endpoint_text", "COUNTER_NAMES",
    "GLOBAL_COUNTERS", "counters_as_stats", "MAX_RECORD", "SHARE_SPACE",
    "HRR_RANDOM", "LINKTYPES", "MAX_SNAPLEN", "NG_MAX_BLOCK", "NG_MAX_IFACES", "murmur2",
    "kafka_partition", "key_hash", "keys_below", "write_merged", "copy_into",
    "shared_count", "set_shared_count",
]

_U16 = struct.Struct("!H").unpack_from
_U32 = struct.Struct("!I").unpack_from
_LE32 = struct.Struct("<I").unpack_from
_META = struct.Struct("=IIII").unpack_from
_PCAP_REC = {False: struct.Struct("<III").unpack_from, True: struct.Struct(">III").unpack_from}
#: a capture file's uint32 by its byte order (big-endian or not)
_ORDER32 = {False: _LE32, True: _U32}
#: a pcapng block's type and total length; an Enhanced Packet Block's interface, time stamp
#: (high, low) and caplen
_NG_BLOCK = {False: struct.Struct("<II").unpack_from, True: struct.Struct(">II").unpack_from}
_NG_EPB = {False: struct.Struct("<IIII").unpack_from, True: struct.Struct(">IIII").unpack_from}
# pcapng (draft-ietf-opsawg-pcapng) block types the walk knows
NG_SHB, NG_IDB, NG_PB, NG_SPB, NG_EPB = 0x0A0D0D0A, 1, 2, 3, 6
#: the largest caplen libpcap reads in a classic pcap file (MAXIMUM_SNAPLEN, every link type
#: the decoder reads): a larger one is an error, one above the file's snap length is cut to it
MAX_SNAPLEN = 262144
#: the largest block walked (libpcap's smallest limit, INITIAL_MAX_BLOCKSIZE: a larger one
#: is libpcap's to judge)
NG_MAX_BLOCK = 16 << 20
#: the most interfaces a walked pcapng capture may have (more: libpcap reads it)
NG_MAX_IFACES = 16

FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10

#: RFC 5246 6.2.3: TLSCiphertext.length MUST NOT exceed 2^14 + 2048
MAX_RECORD = (1 << 14) + 2048
#: RFC 8446 4.1.3: ServerHello.random of a HelloRetryRequest (SHA-256 of "HelloRetryRequest")
HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")
#: RFC 8701 GREASE values (proto.names.GREASE_VALUES, here for the wire module alone)
GREASE = frozenset(((n << 4) | 0x0A) * 0x0101 for n in range(16))

# link types (LINKTYPE_* / DLT_* values as pcap files and libpcap report them)
LT_NULL, LT_EN10MB, LT_RAW, LT_RAW_BSD, LT_RAW_LT, LT_LOOP = 0, 1, 12, 14, 101, 108
LT_LINUX_SLL, LT_IPV4, LT_IPV6, LT_LINUX_SLL2 = 113, 228, 229, 276
#: every link type the decoder reads
LINKTYPES = frozenset({LT_NULL, LT_EN10MB, LT_RAW, LT_RAW_BSD, LT_RAW_LT, LT_LOOP,
                       LT_LINUX_SLL, LT_IPV4, LT_IPV6, LT_LINUX_SLL2})

#: decoder counters, in index order (both implementations keep the same list)
COUNTER_NAMES = (
    "packets", "bytes", "not_ip", "not_tcp", "ip_fragment", "malformed_l3", "malformed_l4",
    "truncated", "skip_no_payload", "skip_done", "skip_untracked", "emitted",
    "unsupported_linktype", "skip_encrypted",
)
(C_PACKETS, C_BYTES, C_NOT_IP, C_NOT_TCP, C_FRAG, C_MAL3, C_MAL4, C_TRUNC, C_NOPAY, C_DONE,
 C_UNTRACKED, C_EMITTED, C_LINKTYPE, C_SKIPENC) = range(len(COUNTER_NAMES))
#: the part of "truncated" counted after the --jobs partition decision (not in COUNTER_NAMES)
C_TRUNC_LATE = len(COUNTER_NAMES)
#: the counters every --jobs worker counts for every frame (the others, for its connections)
GLOBAL_COUNTERS = (C_PACKETS, C_BYTES, C_NOT_IP, C_NOT_TCP, C_FRAG, C_MAL3, C_MAL4, C_TRUNC,
                   C_LINKTYPE)
#: what a --jobs split divides: the top 16 bits of a connection key's :func:`key_hash` (a
#: decoder's share is a range of them)
SHARE_SPACE = 1 << 16


def counters_as_stats(counters: list) -> dict:
    """The decoder's raw counter list as the ``stats()`` dict."""
    out = dict(zip(COUNTER_NAMES, counters))
    out["truncated"] += counters[C_TRUNC_LATE]
    return out


_VLAN = (0x8100, 0x88A8, 0x9100)
_V6_EXT = (0, 43, 60, 51, 44)
(_SRC_NONE, _SRC_BATCH, _SRC_PCAP, _SRC_FRAME, _SRC_PCAPNG) = range(5)


def _looks_like_tls_start(p: bytes) -> bool:
    """A segment a flow we never saw start may begin with: a TLS handshake or alert record
    header, or an SSLv2-framed ClientHello."""
    if len(p) < 3:
        return False
    b0 = p[0]
    if (b0 == 0x16 or b0 == 0x15) and p[1] == 3:
        return True
    return (b0 & 0x80) != 0 and p[2] == 1


class Done:
    """A finished connection's entry in the flow table's dict (``flows[key]``): the decoder
    drops its packets and notes when it last saw one (``last``, for the table's idle expiry
    of finished keys).  ``alive`` until the table takes it out of the dict (the compiled
    decoder remembers recent ones by key, without the dict)."""

    __slots__ = ("last", "finished", "alive")

    def __init__(self, finished: float) -> None:
        self.finished = finished
        self.last = finished
        self.alive = True


class Skip:
    """The flow table's ``skip[key]``: per direction (``lo`` = from the lower endpoint of
    the key, ``hi``), the sequence number up to which the data is ciphertext nobody needs
    (-1: none).  ``alive`` until the table drops it."""

    __slots__ = ("lo", "hi", "alive")

    def __init__(self) -> None:
        self.lo = self.hi = -1
        self.alive = True


class PacketDecoder:
    """Frames in, TCP segments out.

    ``flows`` (key -> entry) is the flow table's, read here: a ``Flow`` (live), ``None`` (the
    table is about to create it) or a :class:`Done` (finished: its packets are dropped here,
    but a SYN without ACK, which the table reopens).  A packet that starts a flow registers
    its key with ``None``.  One dict look-up per packet.  ``skip`` (key -> :class:`Skip`) lets
    the flow table say "the bytes of this direction up to a sequence number are ciphertext
    nobody needs": data segments that end at or before it are dropped here.  (The compiled decoder also remembers, by the raw key bytes,
    the recent ``Done`` and ``Skip`` entries it found, while ``alive``: most packets of a
    finished or skipped flow need neither a key object nor a dict look-up.  Same results.)

    A segment is ``(ts, key, from_lo, flags, seq, payload, truncated)`` (also the fields of
    the same names after :meth:`next`, with ``entry`` = ``flows.get(key)``): ``key`` is the
    canonical endpoint pair ``lo_ip lo_port hi_ip hi_port`` (12 bytes IPv4, 36 bytes IPv6,
    endpoints ordered bytewise), ``from_lo`` says the sender is the ``lo`` endpoint.

    With a share of the hashes narrower than ``[0, SHARE_SPACE)`` (``--jobs``) the decoder
    keeps only the connections whose key's hash (the top 16 bits of :func:`key_hash`) falls in
    ``[share_lo, share_hi)``; the frames of the others are counted in
    :data:`GLOBAL_COUNTERS` only.
    """

    def __init__(self, linktype: int, flows: dict, skip: dict, share_lo: int = 0,
                 share_hi: int = SHARE_SPACE) -> None:
        self.linktype = linktype
        self.flows = flows
        self.skip = skip
        self.share_lo = share_lo
        self.share_hi = share_hi
        self.counters = [0] * (len(COUNTER_NAMES) + 1)
        self.ts = 0.0
        self.key = b""
        self.payload = b""
        self.entry = None
        self.from_lo = self.truncated = False
        self.flags = self.seq = 0
        self.batch_max_ts = 0.0
        self.frames = 0
        self._mode = _SRC_NONE
        self.encap = Decapsulator()         # issue 15: tunnels (cext/_encap_py.py)

    def stats(self) -> dict:
        s = counters_as_stats(self.counters)
        s.update(self.encap.stats())        # issue 15: encap_* counters
        return s

    # -- frame sources ---------------------------------------------------------------------------
    def begin_batch(self, buf, meta) -> None:
        """A pcapy-ng ``next_batch`` result: ``meta`` packs 16-byte records ``(sec, usec,
        offset, caplen)`` of the frames in ``buf``."""
        self._buf, self._meta = buf, meta
        self._i, self._n = 0, len(meta) - 15
        self._mode = _SRC_BATCH
        self.batch_max_ts = 0.0

    def begin_pcap(self, data, pos: int, end: int, big: bool, nsec: bool, snap: int,
                   at_eof: bool = True) -> None:
        """The records of a classic pcap file (draft-ietf-opsawg-pcap) in ``data[pos:end]``
        (a buffer: bytes, an mmap window): ``big`` for a big-endian file, ``nsec`` for
        nanosecond time stamps (made microseconds, as libpcap reads them), ``snap`` the
        file's snap length (a record above it is cut to it, as libpcap cuts it; one above
        :data:`MAX_SNAPLEN` is an error), ``at_eof`` whether ``end`` is the end of the file.
        Read it batch by batch: :meth:`pcap_batch`, then :meth:`next`."""
        self._buf = data
        self._pos, self._end = pos, min(end, len(data))
        self._big, self._nsec, self._snap, self._eof = big, nsec, snap, at_eof
        self._left = 0
        self._mode = _SRC_PCAP

    def begin_pcapng(self, data, pos: int, end: int, big: bool, snap: int, ifaces: tuple,
                     at_eof: bool = True) -> None:
        """The blocks of a pcapng capture (draft-ietf-opsawg-pcapng) in ``data[pos:end]``,
        after its section header and interface descriptions: ``big`` for a big-endian
        section, ``snap`` the largest caplen accepted, ``ifaces`` each interface's
        ``(resolution, offset)``: its time stamps' units per second (a power of 10) and
        the seconds added to them.  Read as :meth:`begin_pcap`'s records are: the batch
        check stops (-1) at a block that is not one libpcap reads the same way *or* that
        changes the section (another section header or interface, an obsolete or simple
        packet block), and skips the others as libpcap does (statistics, name resolution,
        secrets, custom blocks)."""
        if len(ifaces) > NG_MAX_IFACES:
            raise ValueError("at most %d interfaces" % NG_MAX_IFACES)
        if any(res < 1 for res, _off in ifaces):
            raise ValueError("a time stamp resolution below 1")
        # (resolution, offset, and the fraction's multiplier and divisor to microseconds)
        self._ng = tuple((int(res), int(off), 10 ** 6 // res if res < 10 ** 6 else 1,
                          res // 10 ** 6 if res > 10 ** 6 else 1) for res, off in ifaces)
        self.begin_pcap(data, pos, end, big, False, snap, at_eof)
        self._mode = _SRC_PCAPNG

    def pcap_batch(self, limit: int) -> int:
        """Check the next ``limit`` records (fewer at the end of the file) and make them the
        batch :meth:`next` reads: their count, 0 at the end of the file; -2 when the batch
        runs past the end of ``data`` before the end of the file (map more, from
        :attr:`pcap_pos`), -1 when a record is not one libpcap reads (truncated, a caplen
        above :data:`MAX_SNAPLEN`) or, in pcapng, one it reads differently: the caller reads
        on through libpcap, from this batch."""
        ng = self._mode == _SRC_PCAPNG
        head = 8 if ng else 16
        u32, buf = _ORDER32[self._big], self._buf
        p, end, count = self._pos, self._end, 0
        while count < limit:
            if p == end:
                if self._eof:
                    break
                return -2
            if p + head > end:
                return -1 if self._eof else -2
            if ng:                      # a block's total length, as libpcap checks it
                size = u32(buf, p + 4)[0]
                if size < 12 or size % 4 or size > NG_MAX_BLOCK:
                    return -1
            else:                       # a record's header and caplen
                size = u32(buf, p + 8)[0]
                if size > MAX_SNAPLEN:
                    return -1
                size += 16
            if p + size > end:
                return -1 if self._eof else -2
            if ng:
                n = self._ng_block(p, size)
                if n < 0:
                    return -1
                count += n
            else:
                count += 1
            p += size
        self._left = count
        self.batch_max_ts = 0.0
        return count

    def _ng_block(self, p: int, size: int) -> int:
        """1 for an Enhanced Packet Block the walk reads, 0 for a block it skips (as libpcap
        does), -1 for one libpcap reads differently or that changes the section."""
        u32, buf = _ORDER32[self._big], self._buf
        btype = u32(buf, p)[0]
        if u32(buf, p + size - 4)[0] != size:
            return -1
        if btype == NG_EPB:
            if size < 32:
                return -1
            iface, _hi, _lo, caplen = _NG_EPB[self._big](buf, p + 8)
            return -1 if iface >= len(self._ng) or caplen > self._snap or caplen > size - 32 \
                else 1
        if btype in (NG_SHB, NG_IDB, NG_PB, NG_SPB):
            return -1
        return 0

    @property
    def pcap_pos(self) -> int:
        return self._pos

    def begin_frame(self, ts: float, frame: bytes) -> None:
        """One frame at time ``ts`` (made a float, as the Cython build's ``double`` makes it)."""
        self._buf = frame
        self.ts = float(ts)
        self._mode = _SRC_FRAME
        self.batch_max_ts = self.ts

    def next(self) -> int:
        """Decode frames of the source until one gives a segment (1, in the fields) or the
        source is exhausted (0)."""
        while True:
            mode = self._mode
            if mode == _SRC_BATCH:
                if self._i >= self._n:
                    self._mode = _SRC_NONE
                    return 0
                sec, usec, off, caplen = _META(self._meta, self._i)
                self._i += 16
                if off + caplen > len(self._buf):
                    self.counters[C_MAL3] += 1
                    continue
                ts = sec + usec * 1e-6
                f = self._buf[off:off + caplen]
            elif mode == _SRC_PCAP:
                if self._left <= 0:
                    return 0
                self._left -= 1
                p = self._pos
                sec, usec, caplen = _PCAP_REC[self._big](self._buf, p)
                if p + 16 + caplen > self._end:     # (a file changed since its batch check)
                    self._left = 0
                    return 0
                if self._nsec:
                    usec //= 1000
                self._pos = p + 16 + caplen
                ts = sec + usec * 1e-6
                f = bytes(self._buf[p + 16:p + 16 + min(caplen, self._snap)])
            elif mode == _SRC_PCAPNG:
                if self._left <= 0:
                    return 0
                self._left -= 1
                p = self._pos
                block = _NG_BLOCK[self._big]
                while True:                         # (past the blocks the batch check skipped)
                    if p + 32 > self._end:
                        blen = 0
                        break
                    btype, blen = block(self._buf, p)
                    if btype == NG_EPB or blen < 12:
                        break
                    p += blen
                if blen < 32 or p + blen > self._end:   # (a file changed since its check)
                    self._left = 0
                    return 0
                iface, hi, lo, caplen = _NG_EPB[self._big](self._buf, p + 8)
                if caplen > blen - 32 or iface >= len(self._ng):
                    self._left = 0
                    return 0
                self._pos = p + blen
                # seconds and microseconds as libpcap makes them of the interface's
                # resolution (a power of 10) and offset
                res, off, mul, div = self._ng[iface]
                t = hi << 32 | lo
                frac = t % res
                if mul != 1:
                    frac *= mul
                elif div != 1:
                    frac //= div
                sec = (t // res + off) & 0xFFFFFFFF
                ts = sec + frac * 1e-6
                f = bytes(self._buf[p + 28:p + 28 + caplen])
            elif mode == _SRC_FRAME:
                self._mode = _SRC_NONE
                ts = self.ts
                f = bytes(self._buf)
            else:
                return 0
            self.frames += 1
            if ts > self.batch_max_ts:
                self.batch_max_ts = ts
            if self._decode(ts, f):
                return 1

    # -- the reference API: segment tuples --------------------------------------------------------
    def _segment(self) -> tuple:
        return (self.ts, self.key, self.from_lo, self.flags, self.seq, self.payload,
                self.truncated)

    def decode_batch(self, buf: bytes, meta: bytes) -> list:
        """The segments of a pcapy-ng batch (see :meth:`begin_batch`), as a list.  (The flow
        table reads batches through :meth:`next` instead, so that what it changes in
        ``flows`` / ``skip`` applies to the very next packet.)"""
        out = []
        self.begin_batch(buf, meta)
        while self.next():
            out.append(self._segment())
        return out

    def decode(self, ts: float, frame: bytes):
        """Decode one frame; returns a segment tuple or None."""
        self.begin_frame(ts, frame)
        return self._segment() if self.next() else None

    def _decode(self, ts: float, f: bytes) -> bool:
        c = self.counters
        c[C_PACKETS] += 1
        n = len(f)
        c[C_BYTES] += n
        lt = self.linktype
        # --- L2 -------------------------------------------------------------------------
        if lt == LT_EN10MB:
            if n < 14:
                c[C_NOT_IP] += 1
                return False
            off = 12
            et = _U16(f, off)[0]
            while et in _VLAN:
                off += 4
                if off + 2 > n:
                    c[C_NOT_IP] += 1
                    return False
                et = _U16(f, off)[0]
            off += 2
        elif lt == LT_LINUX_SLL:
            if n < 16:
                c[C_NOT_IP] += 1
                return False
            et = _U16(f, 14)[0]
            off = 16
        elif lt == LT_LINUX_SLL2:
            if n < 20:
                c[C_NOT_IP] += 1
                return False
            et = _U16(f, 0)[0]
            off = 20
        elif lt == LT_NULL or lt == LT_LOOP:
            if n < 4:
                c[C_NOT_IP] += 1
                return False
            fam = _U32(f, 0)[0] if lt == LT_LOOP else _LE32(f, 0)[0]
            if fam > 0xFFFF:          # written by a big-endian host
                fam = _U32(f, 0)[0]
            if fam == 2:
                et = 0x0800
            elif fam == 24 or fam == 28 or fam == 30 or fam == 10:
                et = 0x86DD
            else:
                c[C_NOT_IP] += 1
                return False
            off = 4
        elif lt == LT_RAW or lt == LT_RAW_BSD or lt == LT_RAW_LT or lt == LT_IPV4 or lt == LT_IPV6:
            if n < 1:
                c[C_NOT_IP] += 1
                return False
            v = f[0] >> 4
            et = 0x0800 if v == 4 else (0x86DD if v == 6 else 0)
            off = 0
        else:
            c[C_LINKTYPE] += 1
            return False
        # --- tunnels (issue 15, cext/_encap_py.py): a frame that is not IP, or an IP packet
        # that is not TCP, may be a tunnel: read its innermost header instead (SKIP: a bad
        # tunnel header, counted there; NOT_TUNNEL: go on as before)
        if (et != 0x0800 and et != 0x86DD) or (
                off + 9 < n and f[off + (9 if et == 0x0800 else 6)] != 6):
            inner = self.encap.innermost(f, n, off, et)
            if inner >= 0:
                off, et = inner, self.encap.et
            elif inner == -2:
                return False
        # --- L3 -------------------------------------------------------------------------
        if et == 0x0800:
            if off + 20 > n or (f[off] >> 4) != 4:
                c[C_MAL3] += 1
                return False
            ihl = (f[off] & 15) * 4
            total = _U16(f, off + 2)[0]
            if ihl < 20 or (total and total < ihl) or off + ihl > n:
                c[C_MAL3] += 1
                return False
            if f[off + 9] != 6:
                c[C_NOT_TCP] += 1
                return False
            if _U16(f, off + 6)[0] & 0x3FFF:      # MF set or a fragment offset
                c[C_FRAG] += 1
                return False
            src = f[off + 12:off + 16]
            dst = f[off + 16:off + 20]
            ip_end = off + total if total else n   # total 0: TSO-sized frame
            p = off + ihl
        elif et == 0x86DD:
            if off + 40 > n or (f[off] >> 4) != 6:
                c[C_MAL3] += 1
                return False
            plen = _U16(f, off + 4)[0]
            nh = f[off + 6]
            src = f[off + 8:off + 24]
            dst = f[off + 24:off + 40]
            p = off + 40
            ip_end = p + plen if plen else n
            hops = 0
            while nh in _V6_EXT:
                hops += 1
                if hops > 8 or p + 8 > n:
                    c[C_MAL3] += 1
                    return False
                if nh == 44:
                    if _U16(f, p + 2)[0] & 0xFFF9:   # offset or M flag
                        c[C_FRAG] += 1
                        return False
                    hl = 8
                elif nh == 51:
                    hl = (f[p + 1] + 2) * 4
                else:
                    hl = (f[p + 1] + 1) * 8
                nh = f[p]
                p += hl
            if nh != 6:
                c[C_NOT_TCP] += 1
                return False
        else:
            c[C_NOT_IP] += 1
            return False
        # --- L4 -------------------------------------------------------------------------
        truncated = ip_end > n
        end = n if truncated else ip_end
        if p + 20 > end:
            if truncated:
                c[C_TRUNC] += 1
            else:
                c[C_MAL4] += 1
            return False
        doff = (f[p + 12] >> 4) * 4
        if doff < 20 or p + doff > ip_end:
            c[C_MAL4] += 1
            return False
        flags = f[p + 13]
        ps = p + doff
        if ps > end:
            c[C_TRUNC] += 1
            return False
        a = src + f[p:p + 2]
        b = dst + f[p + 2:p + 4]
        if a <= b:
            key = a + b
            from_lo = True
        else:
            key = b + a
            from_lo = False
        if (self.share_lo or self.share_hi != SHARE_SPACE) \
                and not self.share_lo <= key_hash(key) >> 16 < self.share_hi:
            return False                    # (--jobs: another worker's connection)
        # --- early drop: one look-up of the key -----------------------------------------
        flows = self.flows
        entry = flows.get(key, _ABSENT)
        done = type(entry) is Done
        seq = _U32(f, p + 4)[0]
        plen = end - ps
        if flags & SYN:
            if done:
                if flags & ACK:
                    entry.last = ts
                    c[C_DONE] += 1
                    return False
                # a new connection on a finished 5-tuple: the flow table reopens it
            elif entry is _ABSENT:
                flows[key] = entry = None   # pending: the flow table creates it
        else:
            if done:
                entry.last = ts
                c[C_DONE] += 1
                return False
            if plen == 0 and not (flags & (FIN | RST)):
                c[C_NOPAY] += 1
                return False
            if entry is _ABSENT:
                if plen == 0 or not _looks_like_tls_start(f[ps:min(ps + 3, end)]):
                    c[C_UNTRACKED] += 1
                    return False
                flows[key] = entry = None   # pending: the flow table creates it
            elif plen and not (flags & (FIN | RST)) and self.skip:
                sk = self.skip.get(key)
                if sk is not None:
                    stop = sk.lo if from_lo else sk.hi
                    if stop >= 0 and ((stop - seq - plen) & 0xFFFFFFFF) < 0x80000000:
                        c[C_SKIPENC] += 1
                        return False
        if truncated:
            c[C_TRUNC_LATE] += 1
        c[C_EMITTED] += 1
        self.ts = ts
        self.key = key
        self.entry = entry
        self.from_lo = from_lo
        self.flags = flags
        self.seq = seq
        self.truncated = truncated
        self.payload = f[ps:end]
        return True


_ABSENT = object()


_M64 = (1 << 64) - 1
#: the multiplier that folds a key's integers together (2**64 / the golden ratio)
_KEY_MUL = 0x9E3779B97F4A7C15


def key_hash(key: bytes) -> int:
    """The 32-bit hash of a canonical key (``lo_ip lo_port hi_ip hi_port``): the ``--jobs``
    partition (both directions of a connection have the same key).  Its integers, read
    big-endian -- for IPv4 each endpoint's address and port as one 48-bit number, for IPv6
    each address as two 64-bit halves and the two ports as one 32-bit number -- are folded
    by ``x * _KEY_MUL + next`` (mod 2**64), then mixed by murmur3's 64-bit finalizer; the
    hash is its top 32 bits.  (The compiled decoder works it out from the frame's endpoints
    before it makes the key: another worker's frame costs no key.)"""
    if len(key) == 12:
        x = (int.from_bytes(key[:6], "big") * _KEY_MUL + int.from_bytes(key[6:], "big")) & _M64
    elif len(key) == 36:
        x = 0
        for part in (key[0:8], key[8:16], key[18:26], key[26:34], key[16:18] + key[34:36]):
            x = (x * _KEY_MUL + int.from_bytes(part, "big")) & _M64
    else:
        raise ValueError("a canonical key is 12 or 36 bytes")
    x ^= x >> 33
    x = (x * 0xFF51AFD7ED558CCD) & _M64
    x ^= x >> 33
    x = (x * 0xC4CEB9FE1A85EC53) & _M64
    x ^= x >> 33
    return x >> 32


# ---------------------------------------------------------------------------------------
# Hello parsing: status codes (0 ok, cext.errors E_*), the def API raises them
# ---------------------------------------------------------------------------------------

class _Bad(Exception):
    """Internal: a status code on its way out of a parser (never leaves this module)."""

    def __init__(self, status: int) -> None:
        self.status = status


def _vec(b: bytes, pos: int, end: int, lbytes: int):
    """Return (start, stop) of a length-prefixed vector at ``pos``; vector_overrun on
    overrun."""
    if pos + lbytes > end:
        raise _Bad(E_VECTOR_OVERRUN)
    if lbytes == 1:
        ln = b[pos]
    elif lbytes == 2:
        ln = (b[pos] << 8) | b[pos + 1]
    else:
        ln = (b[pos] << 16) | (b[pos + 1] << 8) | b[pos + 2]
    s = pos + lbytes
    if s + ln > end:
        raise _Bad(E_VECTOR_OVERRUN)
    return s, s + ln


def _u16_list(b: bytes, s: int, e: int) -> tuple:
    if (e - s) & 1:
        raise _Bad(E_VECTOR_OVERRUN)
    return tuple((b[i] << 8) | b[i + 1] for i in range(s, e, 2))


def _text(raw: bytes) -> str:
    return raw.decode("ascii", "backslashreplace")


def _alpn_list(b: bytes, s: int, e: int) -> tuple:
    s, e = _vec(b, s, e, 2)
    out = []
    while s < e:
        ps, pe = _vec(b, s, e, 1)
        # issue 15: a literal backslash is written \x5c, so that every \xNN of the text is one
        # wire byte and JA4's hex rule reads the exact bytes back (cext/ja4.py)
        raw = b[ps:pe]
        out.append(_text(raw.replace(b"\\", b"\\x5c")) if 0x5C in raw else _text(raw))
        s = pe
    return tuple(out)


#: an offer key longer than this is not made (the offer is not memoized)
KEY_MAX = 4096
#: more extensions or key shares than this: no offer key either
EXT_MAX = 512


def _client_hello(b: bytes, full: bool) -> tuple:
    end = len(b)
    if end < 38:
        raise _Bad(E_VECTOR_OVERRUN)
    legacy_version = (b[0] << 8) | b[1]
    s, e = _vec(b, 34, end, 1)
    session_id = bytes(b[s:e])
    su_s, su_e = _vec(b, e, end, 2)
    suites = _u16_list(b, su_s, su_e)
    s, e = _vec(b, su_e, end, 1)
    compression = tuple(b[s:e])
    exts = []
    sni = None
    alpn: tuple = ()
    alpn_raw = None
    groups: tuple = ()
    formats: tuple = ()
    sigalgs: tuple = ()
    versions: tuple = ()
    shares = []
    psk = False
    ticket = -1
    if e < end:
        s, xe = _vec(b, e, end, 2)
        while s < xe:
            if s + 4 > xe:
                raise _Bad(E_VECTOR_OVERRUN)
            et = (b[s] << 8) | b[s + 1]
            ds, de = _vec(b, s + 2, xe, 2)
            exts.append(et)
            if et == 0:            # server_name (RFC 6066 3)
                ls, le = _vec(b, ds, de, 2)
                while ls < le:
                    if ls + 1 > le:
                        raise _Bad(E_VECTOR_OVERRUN)
                    ns, ne = _vec(b, ls + 1, le, 2)
                    if b[ls] == 0 and sni is None:
                        sni = _text(b[ns:ne])
                    ls = ne
            elif et == 16:         # application_layer_protocol_negotiation (RFC 7301)
                alpn = _alpn_list(b, ds, de)
                alpn_raw = bytes(b[ds:de])
            elif et == 10:         # supported_groups (RFC 8422 / 7919)
                gs, ge = _vec(b, ds, de, 2)
                groups = _u16_list(b, gs, ge)
            elif et == 11:         # ec_point_formats (RFC 8422)
                fs, fe = _vec(b, ds, de, 1)
                formats = tuple(b[fs:fe])
            elif et == 13:         # signature_algorithms (RFC 8446 4.2.3)
                gs, ge = _vec(b, ds, de, 2)
                sigalgs = _u16_list(b, gs, ge)
            elif et == 43:         # supported_versions (RFC 8446 4.2.1)
                vs, ve = _vec(b, ds, de, 1)
                versions = _u16_list(b, vs, ve)
            elif et == 51 or et == 40:   # key_share (RFC 8446 4.2.8; 40 in drafts <= 22)
                ks, ke = _vec(b, ds, de, 2)
                while ks < ke:
                    if ks + 2 > ke:
                        raise _Bad(E_VECTOR_OVERRUN)
                    shares.append((b[ks] << 8) | b[ks + 1])
                    ks = _vec(b, ks + 2, ke, 2)[1]
            elif et == 41:         # pre_shared_key
                psk = True
            elif et == 35:         # session_ticket (RFC 5077)
                ticket = de - ds
            s = de
    if full:
        return (legacy_version, session_id, suites, compression, tuple(exts), sni, alpn,
                groups, formats, sigalgs, versions, tuple(shares), psk, ticket)
    stripped = tuple(x for x in exts if x not in GREASE)
    return (legacy_version, session_id, sni, stripped,
            _offer_key(legacy_version, psk or ticket > 0, suites, stripped, groups, sigalgs,
                       versions, shares, alpn_raw, len(stripped) <= EXT_MAX
                       and len(shares) <= EXT_MAX))


def _u16s(values, strip: bool) -> bytes:
    vs = [v for v in values if not (strip and v in GREASE)]
    return len(vs).to_bytes(2, "big") + b"".join(v.to_bytes(2, "big") for v in vs)


def _offer_key(legacy_version, psk, suites, exts, groups, sigalgs, versions, shares, alpn_raw,
               ok: bool):
    """What a ClientHello offers apart from its extension order, GREASE and per-connection
    values (random, session id, SNI, key share bytes, PSK identities), as bytes that
    ``cext._session_py.offer_from_key`` reads back: equal keys, equal offers.  None when it
    would be longer than KEY_MAX (such an offer is not memoized)."""
    if not ok:
        return None
    key = (legacy_version.to_bytes(2, "big") + bytes([1 if psk else 0]) + _u16s(suites, True)
           + _u16s(sorted(exts), False) + _u16s(groups, True) + _u16s(sigalgs, False)
           + _u16s(versions, True) + _u16s(shares, True)
           + (b"\x00" if alpn_raw is None else b"\x01" + len(alpn_raw).to_bytes(2, "big")
              + alpn_raw))
    return key if len(key) <= KEY_MAX else None


def _server_hello(b: bytes) -> tuple:
    end = len(b)
    if end < 34:
        raise _Bad(E_VECTOR_OVERRUN)
    legacy_version = (b[0] << 8) | b[1]
    is_hrr = b[2:34] == HRR_RANDOM
    selected = -1
    if (legacy_version >> 8) == 0x7F and (legacy_version & 0xFF) < 22:
        # draft-era ServerHello: version random cipher_suite extensions
        session_id = b""
        if end < 36:
            raise _Bad(E_VECTOR_OVERRUN)
        suite = (b[34] << 8) | b[35]
        compression = 0
        e = 36
        selected = legacy_version
    else:
        s, e = _vec(b, 34, end, 1)
        session_id = bytes(b[s:e])
        if e + 3 > end:
            raise _Bad(E_VECTOR_OVERRUN)
        suite = (b[e] << 8) | b[e + 1]
        compression = b[e + 2]
        e += 3
    exts = []
    group = -1
    alpn = None
    psk = False
    if e < end:
        s, xe = _vec(b, e, end, 2)
        while s < xe:
            if s + 4 > xe:
                raise _Bad(E_VECTOR_OVERRUN)
            et = (b[s] << 8) | b[s + 1]
            ds, de = _vec(b, s + 2, xe, 2)
            exts.append(et)
            if et == 43:
                if de - ds < 2:
                    raise _Bad(E_VECTOR_OVERRUN)
                selected = (b[ds] << 8) | b[ds + 1]
            elif et == 51 or et == 40:
                if de - ds < 2:
                    raise _Bad(E_VECTOR_OVERRUN)
                group = (b[ds] << 8) | b[ds + 1]
            elif et == 16:
                names = _alpn_list(b, ds, de)
                alpn = names[0] if names else None
            elif et == 41:
                psk = True
            s = de
    return (legacy_version, session_id, suite, compression, tuple(exts), selected, group,
            alpn, psk, is_hrr)


def _certificate(b: bytes, tls13: bool) -> tuple:
    end = len(b)
    if end == 0:
        raise _Bad(E_VECTOR_OVERRUN)
    pos = 0
    if tls13:
        pos = _vec(b, 0, end, 1)[1]
    s, e = _vec(b, pos, end, 3)
    out = []
    n = 0
    while s < e:
        cs, ce = _vec(b, s, e, 3)
        if n < MAX_CERTIFICATES:
            out.append(bytes(b[cs:ce]))
        n += 1
        s = ce
        if tls13:
            s = _vec(b, s, e, 2)[1]
    return tuple(out), n > MAX_CERTIFICATES


class Wire:
    """The handshake-message parsers the engine calls, over ``data[start:end]`` of a
    ``bytes``: each returns its result, or None with :attr:`status` set (``cext.errors``
    codes).  Stateless but for ``status``; one per flow table."""

    __slots__ = ("status",)

    def __init__(self) -> None:
        self.status = 0

    def _run(self, fn, data: bytes, start: int, end: int, *args):
        if start < 0 or end < start or end > len(data):
            self.status = E_VECTOR_OVERRUN
            return None
        try:
            r = fn(data[start:end], *args)
        except _Bad as bad:
            self.status = bad.status
            return None
        self.status = 0
        return r

    def client_hello(self, data: bytes, start: int, end: int):
        """:func:`parse_client_hello` of ``data[start:end]``."""
        return self._run(_client_hello, data, start, end, True)

    def client_hello_key(self, data: bytes, start: int, end: int):
        """:func:`parse_client_hello_key` of ``data[start:end]``."""
        return self._run(_client_hello, data, start, end, False)

    def server_hello(self, data: bytes, start: int, end: int):
        """:func:`parse_server_hello` of ``data[start:end]``."""
        return self._run(_server_hello, data, start, end)

    def certificate(self, data: bytes, start: int, end: int, tls13: bool):
        """:func:`parse_certificate` of ``data[start:end]``, as a tuple; more than
        ``MAX_CERTIFICATES`` also sets :attr:`status` (E_TOO_MANY_CERTIFICATES, a notice)."""
        r = self._run(_certificate, data, start, end, tls13)
        if r is None:
            return None
        if r[1]:
            self.status = E_TOO_MANY_CERTIFICATES
        return r[0]

    def connection_id(self, start: float, client: str, server: str) -> str:
        return connection_id(start, client, server)

    def endpoint_text(self, raw: bytes) -> str:
        return endpoint_text(raw)


def _raising(fn, *args):
    try:
        return fn(*args)
    except _Bad as bad:
        raise error(bad.status) from None


def parse_client_hello(b: bytes) -> tuple:
    """RFC 8446 4.1.2 ClientHello.

    Returns ``(legacy_version, session_id, cipher_suites, compression_methods, extensions,
    server_name, alpn, supported_groups, ec_point_formats, signature_algorithms,
    supported_versions, key_share_groups, psk, session_ticket)`` — every list a tuple of ints
    (``alpn`` of str), ``extensions`` the extension types in wire order, ``server_name`` the
    first host_name or None, ``psk`` True when pre_shared_key was offered, ``session_ticket``
    the length of a session_ticket extension or -1.
    """
    return _raising(_client_hello, bytes(b), True)


def parse_client_hello_key(b: bytes) -> tuple:
    """The ClientHello as the sensor keeps it: ``(legacy_version, session_id, server_name,
    extensions, offer_key)`` -- the extensions without GREASE, in wire order; ``offer_key``
    the bytes that identify everything else the summary and JA4 take from the offer (None
    when too long to memoize).  The same checks as :func:`parse_client_hello`."""
    return _raising(_client_hello, bytes(b), False)


def parse_server_hello(b: bytes) -> tuple:
    """RFC 8446 4.1.3 ServerHello (and TLS 1.3 drafts < 22, which had no session id).

    Returns ``(legacy_version, session_id, cipher_suite, compression_method, extensions,
    selected_version, key_share_group, alpn, psk_selected, is_hrr)``; ``selected_version`` is
    the supported_versions value (or the draft version), -1 when absent; ``key_share_group``
    -1 when absent; ``alpn`` None when absent.
    """
    return _raising(_server_hello, bytes(b))


def parse_certificate(b: bytes, tls13: bool) -> list:
    """RFC 5246 7.4.2 / RFC 8446 4.4.2 Certificate: the DER certificates in wire order (the
    first ``MAX_CERTIFICATES``)."""
    return list(_raising(_certificate, bytes(b), tls13)[0])


def endpoint_text(raw: bytes) -> str:
    """6 or 18 raw bytes (address + port, as in a key) -> ``ip:port`` / ``[ip6]:port``."""
    port = (raw[-2] << 8) | raw[-1]
    if len(raw) == 6:
        return "%d.%d.%d.%d:%d" % (raw[0], raw[1], raw[2], raw[3], port)
    return "[%s]:%d" % (ipaddress.IPv6Address(bytes(raw[:16])), port)


def connection_id(start: float, client: str, server: str) -> str:
    """The summary's ``id``: BLAKE2s with an 8-byte digest of the first packet's time in
    microseconds and the two endpoints, ``"%d|%s|%s"``, hex."""
    return blake2s(b"%d|%s|%s" % (round(start * 1000000), client.encode(), server.encode()),
                   digest_size=8).hexdigest()


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (``org.apache.kafka.common.utils.Utils.murmur2``): the hash of the
    default partitioner of the Java client and of kafka-python, unsigned 32-bit."""
    data = bytes(data)
    n = len(data)
    m = 0x5BD1E995
    h = (0x9747B28C ^ n) & 0xFFFFFFFF
    tail = n & ~3
    for i in range(0, tail, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    rest = n & 3
    if rest >= 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def kafka_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives ``key`` among ``partitions``
    (``(murmur2(key) & 0x7fffffff) % partitions``): the same as a Java or kafka-python
    producer would choose, without kafka-python's pure-Python murmur2 per record."""
    if partitions <= 0:
        raise ValueError("partitions must be positive")
    return (murmur2(key) & 0x7FFFFFFF) % partitions


# -- the --jobs merge (sensor.pipeline): ordered results of several parts, written in order -----

#: at most this many iovecs per ``writev`` (Linux's IOV_MAX)
_IOV_BATCH = 1024


def keys_below(keys, low: int) -> int:
    """How many of the order keys ``keys`` -- a buffer of int64 ``(major, minor, created)``
    triples, flat and in order (``FlowTable.keys``) -- have a major below ``low``."""
    majors = memoryview(keys).cast("B").cast("q")[::3]
    return bisect.bisect_left(majors, low)


def write_merged(fd: int, parts: list, wait=None) -> int:
    """Write the first ``n`` results of each part to ``fd``, all in the order of their keys
    (equal keys: the lower part first); returns the bytes written.

    A part is ``(keys, n, items, data, lens)``: ``keys`` its order keys (as for
    :func:`keys_below`), then either ``items`` a list of its results (bytes; ``data`` and
    ``lens`` None), or ``data`` a buffer of them back to back and ``lens`` a buffer of their
    uint64 lengths (``items`` None).  A part's results that come out one after another are
    written as one piece; a short write goes on from where it stopped.  A full non-blocking
    ``fd`` (a reader slower than the output) is waited on by ``wait(fd)``, the caller's (the
    core has no clock or I/O loop); without one it is a BlockingIOError."""
    order = []
    chunks: list = [None] * len(parts)
    for i, (keys, n, items, data, lens) in enumerate(parts):
        if n < 0:
            raise ValueError("a negative count")
        if not n:
            continue
        keys = memoryview(keys).cast("B").cast("q")
        if len(keys) < 3 * n:
            raise ValueError("fewer keys than the count")
        if items is not None:
            if type(items) is not list or len(items) < n:
                raise ValueError("fewer items than the count")
            for item in items[:n]:
                if type(item) is not bytes:
                    raise TypeError("an item that is not bytes")
            chunks[i] = items[:n]
        else:
            lens = memoryview(lens).cast("B").cast("Q")
            if len(lens) < n:
                raise ValueError("fewer lengths than the count")
            view = memoryview(data).cast("B") if data is not None else memoryview(b"")
            if len(view) < sum(lens[:n]):
                raise ValueError("less data than the lengths")
            at, mine = 0, []
            for ln in lens[:n]:
                mine.append(view[at:at + ln])
                at += ln
            chunks[i] = mine
        order += [(keys[3 * j], keys[3 * j + 1], keys[3 * j + 2], i, j) for j in range(n)]
    order.sort()
    out = [chunks[i][j] for _a, _b, _c, i, j in order]
    total = 0
    for k in range(0, len(out), _IOV_BATCH):
        total += _writev_all(fd, out[k:k + _IOV_BATCH], wait)
    return total


def copy_into(dest, at: int, room: int, items: list, start: int) -> tuple:
    """Copy ``items[start:]`` (bytes), as many as fit in ``room`` bytes (and in ``dest``), back
    to back into the writable buffer ``dest`` from offset ``at``; returns ``(stop, end)``: the
    index of the first not copied and the offset after the last copied.  Nothing is copied
    when one of those that fit is not bytes (TypeError).  (A ``--jobs`` worker's results into
    the ring the writing process reads them from.)"""
    if type(items) is not list:
        raise TypeError("items: a list")
    view = memoryview(dest).cast("B")
    if not 0 <= start <= len(items) or not 0 <= at <= len(view) or room < 0:
        raise ValueError("a start, offset or room outside the items or the buffer")
    cap = min(room, len(view) - at)
    stop, total = start, 0
    while stop < len(items):
        item = items[stop]
        if type(item) is not bytes:
            raise TypeError("an item that is not bytes")
        if total + len(item) > cap:
            break
        total += len(item)
        stop += 1
    for item in items[start:stop]:
        view[at:at + len(item)] = item
        at += len(item)
    return stop, at


def _count(buf) -> memoryview:
    """``buf``'s first 8 bytes as one uint64 item: a memoryview reads and writes it in one
    8-byte access (struct's pack and unpack do not: a reader in another process saw halves
    of writes, ~1 read in 8 on two cores)."""
    view = memoryview(buf).cast("B")
    if len(view) < 8:
        raise ValueError("a shared count takes 8 bytes, 8-aligned")
    return view[:8].cast("Q")


def shared_count(buf) -> int:
    """The uint64 count in the first 8 bytes of ``buf`` (shared memory another process
    writes: :func:`set_shared_count`), read whole.  (The compiled one reads it atomically,
    with acquire order, and refuses a buffer not 8-aligned.)"""
    return _count(buf)[0]


def set_shared_count(buf, value: int) -> None:
    """Write ``value`` as the uint64 count in ``buf``'s first 8 bytes, whole (see
    :func:`shared_count`; the compiled one with release order)."""
    _count(buf)[0] = value


def _writev_all(fd: int, chunks: list, wait) -> int:
    want = sum(map(len, chunks))
    n = _retrying(os.writev, fd, chunks, wait)
    if n < want:                                # a short write: the rest from there
        rest = memoryview(b"".join(chunks))[n:]
        while rest:
            rest = rest[_retrying(os.write, fd, rest, wait):]
    return want


def _retrying(write, fd: int, data, wait) -> int:
    while True:
        try:
            return write(fd, data)
        except BlockingIOError:
            if wait is None:
                raise
            wait(fd)
