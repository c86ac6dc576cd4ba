"""What the decoder's walk needs of a capture's first bytes, read as libpcap reads them: a
classic pcap file header (draft-ietf-opsawg-pcap), or a pcapng section header with its
interface descriptions (draft-ietf-opsawg-pcapng).  Bytes in, a :class:`Layout` or None out:
None is a capture the walk leaves to libpcap, whole -- to read it (another version, a time
stamp resolution that is not a power of 10, interfaces that differ) or to reject it with its
own message (a block it refuses).  No I/O here: the caller reads and hands the bytes over.
(The libpcap that reads what the walk leaves is pcapy-ng's own, 1.9.1; tests/test_pcapng.py
compares the two.)
"""
from __future__ import annotations

import struct
from typing import NamedTuple

from cext import wire

__all__ = ["Layout", "MORE", "NG_MAGIC", "pcap_header", "pcapng_header"]

#: a pcapng capture's first four bytes (a Section Header Block's type)
NG_MAGIC = b"\x0a\x0d\x0d\x0a"
#: libpcap's limit for a section header block (BT_SHB_INSANE_MAX)
NG_MAX_SHB = 1 << 20
#: the link types whose LINKTYPE_ value is their DLT_ value: libpcap compares a second
#: interface's LINKTYPE_ with the first's DLT_, so only these may have several interfaces
_SAME_AS_DLT = frozenset({0, 1, 108, 113, 228, 229, 276})
#: :func:`pcapng_header`'s answer when the bytes so far do not decide
MORE = "more"


class Layout(NamedTuple):
    """A capture the decoder walks: ``big``-endian or not, ``snap`` the snap length as
    libpcap takes it (a classic record above it is cut to it; a pcapng one above it is
    libpcap's), ``linktype`` as the file gives it, ``start`` where the first record or
    block after the header is.  ``ifaces`` is None for classic pcap (``nsec``: nanosecond
    time stamps), else each pcapng interface's ``(resolution, offset)``."""
    big: bool
    nsec: bool
    snap: int
    linktype: int
    start: int
    ifaces: "tuple | None" = None


def _snap(snaplen: int) -> int:
    """The snap length libpcap takes for a header's: above the maximum, or 0, the maximum."""
    return snaplen if 0 < snaplen <= wire.MAX_SNAPLEN else wire.MAX_SNAPLEN


def pcap_header(head: bytes) -> "Layout | None":
    """The layout of a classic pcap file header ``head`` (24 bytes) that the walk reads as
    libpcap reads it, else None (pcapng, other versions, link-type flags: libpcap's)."""
    if len(head) == 24:
        magic = head[:4]
        big = magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d")
        nsec = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
        if big or magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
            _m, major, minor, _tz, _sig, snaplen, linktype = struct.unpack(
                (">" if big else "<") + "IHHiIII", head)
            if major == 2 and minor == 4 and linktype <= 0xFFFF:
                return Layout(big, nsec, _snap(snaplen), linktype, 24)
    return None


def pcapng_header(data, at_eof: bool) -> "Layout | str | None":
    """The layout of a pcapng capture whose first bytes are ``data`` (all of it if
    ``at_eof``): its section header and the interface descriptions before its first packet
    block (``start``: that block, or the end of a capture without one).  :data:`MORE` when
    the bytes so far end inside those blocks; None for a capture libpcap reads whole: not
    pcapng 1.0, a block or option libpcap refuses, an interface whose link type or snap
    length differs from the first's, a binary time stamp resolution, more than
    ``wire.NG_MAX_IFACES`` interfaces, another section before the first packet."""
    n = len(data)
    if n < 12:
        k = min(n, 4)
        return MORE if not at_eof and bytes(data[:k]) == NG_MAGIC[:k] else None
    if bytes(data[:4]) != NG_MAGIC:
        return None
    order = bytes(data[8:12])
    if order not in (b"\x1a\x2b\x3c\x4d", b"\x4d\x3c\x2b\x1a"):
        return None
    big = order == b"\x1a\x2b\x3c\x4d"
    e = ">" if big else "<"
    ifaces: list = []
    linktype = snaplen0 = snap = -1
    p = 0
    while p < n:
        if p + 8 > n:
            return None if at_eof else MORE
        btype, blen = struct.unpack_from(e + "II", data, p)
        if p and btype in (2, 3, 6):        # a packet block: the walk starts here
            break
        if blen < 12 or blen % 4 or blen > wire.NG_MAX_BLOCK:
            return None
        if p + blen > n:
            return None if at_eof else MORE
        if struct.unpack_from(e + "I", data, p + blen - 4)[0] != blen:
            return None
        if p == 0:
            if blen < 28 or blen > NG_MAX_SHB or struct.unpack_from(e + "HH", data, 12) != (1, 0):
                return None
        elif btype == 0x0A0D0D0A:           # another section before any packet
            return None
        elif btype == 1:                    # an Interface Description Block
            if blen < 20:
                return None
            lt, _reserved, snaplen = struct.unpack_from(e + "HHI", data, p + 8)
            stamps = _idb_options(data, p + 16, p + blen - 4, e)
            if stamps is None:
                return None
            if not ifaces:
                linktype, snaplen0, snap = lt, snaplen, _snap(snaplen)
            elif lt != linktype or snaplen != snaplen0 or lt not in _SAME_AS_DLT:
                return None                 # (libpcap versions compare snap lengths as
                #                             adjusted (1.9) or not: equal as written, equal)
            ifaces.append(stamps)
            if len(ifaces) > wire.NG_MAX_IFACES:
                return None
        p += blen
    if not ifaces:                          # (libpcap: no interface, or a packet before it)
        return None if at_eof or p < n else MORE
    if p == n and not at_eof:               # (the next block may be another interface)
        return MORE
    return Layout(big, False, snap, linktype, p, tuple(ifaces))


def _idb_options(data, p: int, end: int, e: str) -> "tuple | None":
    """``(resolution, offset)`` of an interface from its options in ``data[p:end]``, as
    libpcap's ``process_idb_options`` reads them (None where it fails, or for a binary
    resolution, which the walk leaves to libpcap's arithmetic)."""
    res = off = None
    while p != end:
        if p + 4 > end:
            return None
        code, length = struct.unpack_from(e + "HH", data, p)
        p += 4
        padded = (length + 3) // 4 * 4
        if p + padded > end:
            return None
        if code == 0:                       # opt_endofopt
            if length != 0:
                return None
            break
        if code == 9:                       # if_tsresol
            if length != 1 or res is not None or data[p] & 0x80 or data[p] > 19:
                return None
            res = 10 ** data[p]
        elif code == 14:                    # if_tsoffset
            if length != 8 or off is not None:
                return None
            off = struct.unpack_from(e + "q", data, p)[0]
        p += padded
    return (10 ** 6 if res is None else res, 0 if off is None else off)
