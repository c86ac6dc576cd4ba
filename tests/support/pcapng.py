"""pcapng captures (draft-ietf-opsawg-pcapng) written from classic pcap ones, block by block,
with the variations real writers make (byte order, time stamp resolution and offset, several
interfaces, blocks between the packets, packet options) and the damage a reader must take."""
from __future__ import annotations

import struct

SHB, IDB, EPB, ISB, NRB, DSB, CUSTOM = 0x0A0D0D0A, 1, 6, 5, 4, 0x0A, 0xBAD


def classic_records(pcap: bytes) -> tuple:
    """``(linktype, snaplen, [(sec, nsec, data), ...])`` of a classic pcap file."""
    magic = pcap[:4]
    e = ">" if magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d") else "<"
    nano = magic in (b"\xa1\xb2\x3c\x4d", b"\x4d\x3c\xb2\xa1")
    _m, _ma, _mi, _tz, _sig, snaplen, linktype = struct.unpack(e + "IHHiIII", pcap[:24])
    out, p = [], 24
    while p + 16 <= len(pcap):
        sec, frac, caplen, _len = struct.unpack_from(e + "IIII", pcap, p)
        out.append((sec, frac if nano else frac * 1000, pcap[p + 16:p + 16 + caplen]))
        p += 16 + caplen
    return linktype, snaplen, out


def _pad(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def block(btype: int, body: bytes, big: bool = False) -> bytes:
    e = ">" if big else "<"
    body = _pad(body)
    n = 12 + len(body)
    return struct.pack(e + "II", btype, n) + body + struct.pack(e + "I", n)


def option(code: int, value: bytes, big: bool = False) -> bytes:
    return struct.pack((">" if big else "<") + "HH", code, len(value)) + _pad(value)


def shb(big: bool = False, version: tuple = (1, 0), options: bytes = b"") -> bytes:
    e = ">" if big else "<"
    return block(SHB, struct.pack(e + "IHHq", 0x1A2B3C4D, *version, -1) + options, big)


def idb(linktype: int, snaplen: int = 262144, big: bool = False, tsresol: "int | None" = None,
        tsoffset: "int | None" = None, options: bytes = b"") -> bytes:
    e = ">" if big else "<"
    opts = option(2, b"eth0", big) + options
    if tsresol is not None:
        opts += option(9, bytes([tsresol]), big)
    if tsoffset is not None:
        opts += option(14, struct.pack(e + "q", tsoffset), big)
    return block(IDB, struct.pack(e + "HHI", linktype, 0, snaplen) + opts + option(0, b"", big),
                 big)


def epb(iface: int, t: int, data: bytes, big: bool = False, options: bytes = b"") -> bytes:
    e = ">" if big else "<"
    return block(EPB, struct.pack(e + "IIIII", iface, t >> 32, t & 0xFFFFFFFF, len(data),
                                  len(data)) + _pad(data) + options, big)


def units(sec: int, nsec: int, tsresol: int, tsoffset: int = 0) -> int:
    """A time stamp in units of 10^-tsresol s (2^-n for ``0x80 | n``), less ``tsoffset``
    seconds."""
    if tsresol & 0x80:
        return ((sec - tsoffset) << (tsresol & 0x7F)) + (nsec << (tsresol & 0x7F)) // 10 ** 9
    t = (sec - tsoffset) * 10 ** 9 + nsec
    return t * 10 ** (tsresol - 9) if tsresol >= 9 else t // 10 ** (9 - tsresol)


def to_pcapng(pcap: bytes, *, big: bool = False, tsresol: tuple = (6,), tsoffset: int = 0,
              extra_every: int = 0, epb_options: bool = False, snaplen: "int | None" = None,
              linktype: "int | None" = None) -> bytes:
    """The classic pcap ``pcap`` as pcapng: one interface per entry of ``tsresol`` (the
    packets take them in turn; None: no if_tsresol option, 10^-6), a statistics, name
    resolution, secrets or custom block after every ``extra_every`` packets, a comment and
    a flags word on each packet with ``epb_options``."""
    lt, snap, recs = classic_records(pcap)
    lt = lt if linktype is None else linktype
    snap = snap if snaplen is None else snaplen
    e = ">" if big else "<"
    out = [shb(big, options=option(4, b"tlsdiag tests", big) + option(0, b"", big))]
    out += [idb(lt, snap, big, r, tsoffset or None) for r in tsresol]
    extras = [block(ISB, struct.pack(e + "III", 0, 0, 0), big),
              block(NRB, struct.pack(e + "HH", 1, 8) + bytes([10, 0, 0, 1]) + b"h\0\0\0"
                    + struct.pack(e + "HH", 0, 0), big),
              block(DSB, struct.pack(e + "II", 0x544C534B, 4) + b"KEY\n", big),
              block(CUSTOM, struct.pack(e + "I", 32473) + b"custom", big)]
    opts = (option(1, b"a packet comment", big) + option(2, struct.pack(e + "I", 1), big)
            + option(0, b"", big)) if epb_options else b""
    for i, (sec, nsec, data) in enumerate(recs):
        k = i % len(tsresol)
        r = 6 if tsresol[k] is None else tsresol[k]
        out.append(epb(k, units(sec, nsec, r, tsoffset), data, big, opts))
        if extra_every and i % extra_every == extra_every - 1:
            out.append(extras[(i // extra_every) % len(extras)])
    return b"".join(out)


def blocks(ng: bytes) -> list:
    """``(start, type)`` of each block of a little-endian pcapng capture."""
    out, p = [], 0
    while p + 8 <= len(ng):
        btype, blen = struct.unpack_from("<II", ng, p)
        out.append((p, btype))
        p += blen
    return out


def packet_blocks(ng: bytes) -> list:
    """Where each Enhanced Packet Block of a little-endian pcapng capture starts."""
    return [p for p, btype in blocks(ng) if btype == EPB]
