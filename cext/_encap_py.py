"""Tunnel decapsulation for the packet decoder (issue 15): the connections of an overlay seen
on its underlay.

The packet decoder (``cext._wire`` / ``_wire_py``) hands over, right after the link layer,
the frames it would not read itself -- an IP packet that is not TCP, a frame whose EtherType
is not IP -- to :meth:`Decapsulator.innermost`, which removes tunnel layers one at a time and
returns the offset of the innermost header in the same frame (and its EtherType in ``et``):
the decoder then reads it as it reads an outer one.  Each layer is one of

* :meth:`Decapsulator.after_ip` -- the payload of an IP packet of protocol ``proto``:
  IPv4 (4, RFC 2003) or IPv6 (41, RFC 4213 / 2473) in IP, GRE (47, RFC 2784 / 2890) carrying
  IP, Ethernet (0x6558), MPLS or ERSPAN type I/II/III (0x88BE, 0x22EB), and UDP to the
  IANA ports of VXLAN (4789, RFC 7348; and Linux's old 8472), GENEVE (6081, RFC 8926),
  GTP-U (2152, 3GPP TS 29.281, G-PDUs) and the CAPWAP data channel (5247, RFC 5415, 802.3
  frames);
* :meth:`Decapsulator.after_ethertype` -- a frame of EtherType MPLS (0x8847/0x8848, RFC 3032,
  the whole label stack) or PPPoE session (0x8864, RFC 2516, PPP IPv4/IPv6).

``innermost`` returns the inner offset, ``NOT_TUNNEL`` (-1: no tunnel; the decoder goes on as
before and counts the packet as it always did: not_tcp, not_ip, malformed_l3 ...) or ``SKIP``
(-2: a tunnel header that is truncated or malformed, or more than :data:`MAX_DEPTH` layers;
counted here, the decoder drops the frame).  A malformed *inner* IP header is the decoder's
to count, as an outer one would be.

Written once, in Python, and compiled by Cython as ``cext._encap`` with the static types of
``cext/_encap.pxd`` (the frame is then a raw pointer the caller has checked ``n`` bytes of;
every read here is preceded by a length check).  No I/O, no clock.
"""
from __future__ import annotations

__all__ = ["Decapsulator", "ENCAPSULATIONS", "COUNTER_NAMES", "MAX_DEPTH", "NOT_TUNNEL",
           "SKIP"]

#: tunnel layers one frame may have (a VXLAN in GRE in IP-in-IP ... stops here, counted)
MAX_DEPTH = 4
#: MPLS label stack entries read before the bottom of the stack
MAX_LABELS = 8
#: GTP-U extension headers read before the T-PDU
MAX_GTP_EXTENSIONS = 8
NOT_TUNNEL = -1
SKIP = -2

#: the encapsulations, in counter order: ``encap_NAME`` counts the layers removed,
#: ``encap_NAME_malformed`` the truncated or malformed headers skipped
ENCAPSULATIONS = ("ipip", "gre", "erspan", "vxlan", "geneve", "gtpu", "capwap", "mpls",
                  "pppoe")
(E_IPIP, E_GRE, E_ERSPAN, E_VXLAN, E_GENEVE, E_GTPU, E_CAPWAP, E_MPLS,
 E_PPPOE) = range(len(ENCAPSULATIONS))
N_ENCAP = len(ENCAPSULATIONS)
#: every counter, in index order: one per encapsulation, one malformed per encapsulation,
#: and the frames with more than MAX_DEPTH layers
COUNTER_NAMES = tuple(["encap_" + e for e in ENCAPSULATIONS]
                      + ["encap_%s_malformed" % e for e in ENCAPSULATIONS]
                      + ["encap_too_deep"])
C_TOO_DEEP = 2 * N_ENCAP

ET_IPV4, ET_IPV6, ET_TEB = 0x0800, 0x86DD, 0x6558
ET_MPLS, ET_MPLS_MC, ET_PPPOE = 0x8847, 0x8848, 0x8864
ET_ERSPAN2, ET_ERSPAN3 = 0x88BE, 0x22EB
UDP_VXLAN, UDP_VXLAN_LINUX, UDP_GENEVE, UDP_GTPU, UDP_CAPWAP_DATA = 4789, 8472, 6081, 2152, 5247


class Decapsulator:
    """One per packet decoder: its counters, and the EtherType of the header found last
    (``et``, read by the decoder after a non-negative return)."""

    def __init__(self) -> None:
        self.counters = [0] * len(COUNTER_NAMES)
        self.et = 0

    def stats(self) -> dict:
        return dict(zip(COUNTER_NAMES, self.counters))

    def _layer(self, e: int, p: int, et: int) -> int:
        self.counters[e] += 1
        self.et = et
        return p

    def _bad(self, e: int) -> int:
        self.counters[N_ENCAP + e] += 1
        return SKIP

    def _ip(self, f, n: int, p: int, e: int) -> int:
        """An IP header at ``p`` (its version nibble says which)."""
        if p >= n:
            return self._bad(e)
        v = f[p] >> 4
        if v == 4:
            return self._layer(e, p, ET_IPV4)
        if v == 6:
            return self._layer(e, p, ET_IPV6)
        return self._bad(e)

    def _ether(self, f, n: int, p: int, e: int) -> int:
        """An Ethernet II frame at ``p`` (802.1Q / 802.1ad tags skipped)."""
        if p + 14 > n:
            return self._bad(e)
        q = p + 12
        et = (f[q] << 8) | f[q + 1]
        tags = 0
        while et == 0x8100 or et == 0x88A8 or et == 0x9100:
            tags += 1
            q += 4
            if tags > 2 or q + 2 > n:
                return self._bad(e)
            et = (f[q] << 8) | f[q + 1]
        return self._layer(e, q + 2, et)

    def innermost(self, f, n: int, off: int, et: int) -> int:
        """The offset of the innermost header of a frame whose (outer) header of EtherType
        ``et`` is at ``off`` (``n`` bytes captured): NOT_TUNNEL, SKIP, or an offset with its
        EtherType in ``self.et``."""
        depth = 0
        while True:
            if et == ET_IPV4:
                # the checks of the decoder's IPv4 reader: a header it would not read ends
                # the walk (it counts it, outer or inner)
                if off + 20 > n or (f[off] >> 4) != 4:
                    break
                ihl = (f[off] & 15) * 4
                total = (f[off + 2] << 8) | f[off + 3]
                if ihl < 20 or (total and total < ihl) or off + ihl > n:
                    break
                proto = f[off + 9]
                if proto == 6 or ((f[off + 6] << 8) | f[off + 7]) & 0x3FFF:   # TCP, fragment
                    break
                nxt = self.after_ip(f, n, off + ihl, off + total if total else n, proto, depth)
            elif et == ET_IPV6:
                if off + 40 > n or (f[off] >> 4) != 6:
                    break
                plen = (f[off + 4] << 8) | f[off + 5]
                nh = f[off + 6]
                p = off + 40
                hops = 0
                # extension headers, as the decoder walks them (a fragment ends the walk)
                while nh == 0 or nh == 43 or nh == 60 or nh == 51 or nh == 44:
                    hops += 1
                    if hops > 8 or p + 8 > n or (nh == 44 and ((f[p + 2] << 8) | f[p + 3])
                                                 & 0xFFF9):
                        nh = 6
                        break
                    hl = 8 if nh == 44 else ((f[p + 1] + 2) * 4 if nh == 51
                                             else (f[p + 1] + 1) * 8)
                    nh = f[p]
                    p += hl
                if nh == 6:
                    break
                nxt = self.after_ip(f, n, p, off + 40 + plen if plen else n, nh, depth)
            else:
                nxt = self.after_ethertype(f, n, off, et, depth)
            if nxt == SKIP:
                return SKIP
            if nxt < 0:
                break
            off = nxt
            et = self.et
            depth += 1
        if depth == 0:
            return NOT_TUNNEL
        self.et = et
        return off

    def after_ip(self, f, n: int, p: int, end: int, proto: int, depth: int) -> int:
        """The payload at ``p`` (to ``end``, at most ``n``) of an IP packet of protocol
        ``proto``; ``depth`` tunnel layers are already removed."""
        if proto != 4 and proto != 41 and proto != 47 and proto != 17:
            return NOT_TUNNEL
        if end > n:
            end = n
        if proto == 17:
            return self._udp(f, end, p, depth)
        if depth >= MAX_DEPTH:
            self.counters[C_TOO_DEEP] += 1
            return SKIP
        if proto == 47:
            return self._gre(f, end, p)
        # RFC 2003 / 4213: the inner IP header follows the outer one
        if p + 20 > end:
            return self._bad(E_IPIP)
        return self._ip(f, end, p, E_IPIP) if (f[p] >> 4) == (4 if proto == 4 else 6) \
            else self._bad(E_IPIP)

    def after_ethertype(self, f, n: int, p: int, et: int, depth: int) -> int:
        """The payload at ``p`` of a frame of EtherType ``et``."""
        if et != ET_MPLS and et != ET_MPLS_MC and et != ET_PPPOE:
            return NOT_TUNNEL
        if depth >= MAX_DEPTH:
            self.counters[C_TOO_DEEP] += 1
            return SKIP
        if et == ET_PPPOE:
            # RFC 2516 5.5: ver 1, type 1, code 0 (session data), session id, length; then
            # the PPP protocol (RFC 1661): 0x0021 IPv4, 0x0057 IPv6 (LCP, IPCP ... are not IP)
            if p + 8 > n:
                return self._bad(E_PPPOE)
            if f[p] != 0x11 or f[p + 1] != 0:
                return self._bad(E_PPPOE)
            ppp = (f[p + 6] << 8) | f[p + 7]
            if ppp == 0x0021:
                return self._layer(E_PPPOE, p + 8, ET_IPV4)
            if ppp == 0x0057:
                return self._layer(E_PPPOE, p + 8, ET_IPV6)
            return NOT_TUNNEL
        # RFC 3032 label stack: 4 bytes per entry, the bottom one has S set; what follows
        # is told by its first nibble (RFC 4385: 0 is a pseudowire control word, then
        # Ethernet)
        labels = 0
        while True:
            if p + 4 > n:
                return self._bad(E_MPLS)
            labels += 1
            bottom = f[p + 2] & 1
            p += 4
            if bottom:
                break
            if labels >= MAX_LABELS:
                return self._bad(E_MPLS)
        if p >= n:
            return self._bad(E_MPLS)
        v = f[p] >> 4
        if v == 4 or v == 6:
            return self._ip(f, n, p, E_MPLS)
        if v == 0:
            return self._ether(f, n, p + 4, E_MPLS)
        return self._bad(E_MPLS)

    def _gre(self, f, n: int, p: int) -> int:
        # RFC 2784 / 2890: C K S flags, version 0, protocol type; checksum+reserved, key and
        # sequence number follow when their flag is set.  Routing (RFC 1701's R) and
        # version 1 (PPTP's enhanced GRE, PPP inside) are not decoded.
        if p + 4 > n:
            return self._bad(E_GRE)
        flags = f[p]
        if (f[p + 1] & 7) != 0 or flags & 0x40:
            return NOT_TUNNEL
        pt = (f[p + 2] << 8) | f[p + 3]
        q = p + 4 + (4 if flags & 0x80 else 0) + (4 if flags & 0x20 else 0) \
            + (4 if flags & 0x10 else 0)
        if q > n:
            return self._bad(E_GRE)
        if pt == ET_IPV4 or pt == ET_IPV6:
            if q + 20 > n or (f[q] >> 4) != (4 if pt == ET_IPV4 else 6):
                return self._bad(E_GRE)
            return self._layer(E_GRE, q, pt)
        if pt == ET_TEB:
            return self._ether(f, n, q, E_GRE)
        if pt == ET_MPLS or pt == ET_MPLS_MC:
            return self._layer(E_GRE, q, pt)
        if pt == ET_ERSPAN2 or pt == ET_ERSPAN3:
            self.counters[E_GRE] += 1
            if pt == ET_ERSPAN2 and not flags & 0x10:
                return self._ether(f, n, q, E_ERSPAN)       # type I: no ERSPAN header
            if pt == ET_ERSPAN2:
                # type II: ver 1, VLAN, COS, En, T, session id, reserved, index (8 bytes)
                if q + 8 > n or (f[q] >> 4) != 1:
                    return self._bad(E_ERSPAN)
                return self._ether(f, n, q + 8, E_ERSPAN)
            # type III: ver 2 ... 12 bytes, an 8-byte platform-specific subheader when O
            # (the last bit) is set; frame type FT (bits 10-14 of the third word): 0 =
            # Ethernet, 2 = IP
            if q + 12 > n or (f[q] >> 4) != 2:
                return self._bad(E_ERSPAN)
            ft = (f[q + 10] >> 2) & 0x1F
            r = q + 12 + (8 if f[q + 11] & 1 else 0)
            if ft == 0:
                return self._ether(f, n, r, E_ERSPAN)
            if ft == 2:
                return self._ip(f, n, r, E_ERSPAN)
            return self._bad(E_ERSPAN)
        return NOT_TUNNEL

    def _udp(self, f, n: int, p: int, depth: int) -> int:
        if p + 8 > n:
            return NOT_TUNNEL           # a short UDP header is the decoder's not_tcp
        sport = (f[p] << 8) | f[p + 1]
        dport = (f[p + 2] << 8) | f[p + 3]
        q = p + 8
        if dport == UDP_VXLAN or dport == UDP_VXLAN_LINUX:
            kind = E_VXLAN
        elif dport == UDP_GENEVE:
            kind = E_GENEVE
        elif dport == UDP_GTPU:
            kind = E_GTPU
        elif dport == UDP_CAPWAP_DATA or sport == UDP_CAPWAP_DATA:
            kind = E_CAPWAP             # the AC answers from 5247 to the WTP's port
        else:
            return NOT_TUNNEL
        if depth >= MAX_DEPTH:
            self.counters[C_TOO_DEEP] += 1
            return SKIP
        if kind == E_VXLAN:
            # RFC 7348 5: flags (I set), 24 reserved bits, VNI, 8 reserved bits; Ethernet
            if q + 8 > n or not f[q] & 0x08:
                return self._bad(E_VXLAN)
            return self._ether(f, n, q + 8, E_VXLAN)
        if kind == E_GENEVE:
            # RFC 8926 3.1: ver 0, option length (4-byte words), O C, protocol type, VNI;
            # then the options, then the payload of that protocol type
            if q + 8 > n or (f[q] >> 6) != 0:
                return self._bad(E_GENEVE)
            pt = (f[q + 2] << 8) | f[q + 3]
            r = q + 8 + (f[q] & 0x3F) * 4
            if r > n:
                return self._bad(E_GENEVE)
            if pt == ET_TEB:
                return self._ether(f, n, r, E_GENEVE)
            if pt == ET_IPV4 or pt == ET_IPV6:
                return self._ip(f, n, r, E_GENEVE)
            return self._bad(E_GENEVE)
        if kind == E_GTPU:
            # TS 29.281 5.1: version 1, PT 1, E S PN; message type 255 (G-PDU) carries a
            # T-PDU (an IP packet); length, TEID; seq, N-PDU and next extension type when
            # any of E S PN is set; extension headers (length in 4-byte words, next type last)
            if q + 8 > n:
                return self._bad(E_GTPU)
            fl = f[q]
            if (fl >> 5) != 1 or not fl & 0x10:
                return self._bad(E_GTPU)
            if f[q + 1] != 0xFF:
                return NOT_TUNNEL       # echo, error indication, end marker ...: no T-PDU
            r = q + 8
            if fl & 0x07:
                if r + 4 > n:
                    return self._bad(E_GTPU)
                nxt = f[r + 3]
                r += 4
                exts = 0
                while nxt:
                    exts += 1
                    if exts > MAX_GTP_EXTENSIONS or r + 1 > n or f[r] == 0:
                        return self._bad(E_GTPU)
                    r += f[r] * 4
                    if r > n:
                        return self._bad(E_GTPU)
                    nxt = f[r - 1]
            return self._ip(f, n, r, E_GTPU)
        # CAPWAP data (RFC 5415 4.1-4.3): preamble version 0 type 0 (1 is DTLS: encrypted);
        # HLEN (4-byte words), RID, WBID, T F L W M K flags; T=0: an IEEE 802.3 frame follows
        # the header (T=1 native 802.11 frames and fragments are not decoded)
        if q + 8 > n:
            return self._bad(E_CAPWAP)
        if f[q] != 0:
            return NOT_TUNNEL
        hlen = (f[q + 1] >> 3) * 4
        if hlen < 8 or q + hlen > n:
            return self._bad(E_CAPWAP)
        if f[q + 2] & 0x01 or f[q + 3] & 0x80:    # T (native frame), F (fragment)
            return NOT_TUNNEL
        return self._ether(f, n, q + hlen, E_CAPWAP)
