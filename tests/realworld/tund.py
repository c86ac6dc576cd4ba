"""A userspace tunnel endpoint for the real-world captures (issue 15): the kernel here has no
GRE, IP-in-IP, sit, ip6tnl, GENEVE, GTP, MPLS or PPP modules (``ip link add type gre`` says
"Unknown device type"; there is no /lib/modules and no modprobe), so the encapsulation is done
here, by the book, between two network namespaces, while the TCP/TLS traffic inside is that of
the real kernel stacks and real TLS programs.

One process per namespace: it owns a TUN device (the inner network) and moves every inner
packet to the peer wrapped in the chosen encapsulation, and back.  Outer headers are built by
the kernel where a socket can do it (raw IP sockets for GRE / IP-in-IP / 6in4 / 4in6 / 6in6,
UDP sockets for GENEVE / GTP-U / CAPWAP); MPLS and PPPoE sessions travel as Ethernet frames on
an AF_PACKET socket of the underlay interface.

    python3 tund.py MODE --tun rwtun --local A --remote B [--dev IF --peer-mac MAC]

``mirror`` mode is ERSPAN (type II): it copies every frame of ``--dev`` (both directions) to the
collector ``--remote`` inside GRE, as a switch's mirror session does.

Runs until SIGTERM.  Test tooling, root only.
"""
from __future__ import annotations

import argparse
import fcntl
import os
import select
import signal
import socket
import struct
import sys

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
ETH_P_ALL, ETH_P_IP, ETH_P_IPV6 = 0x0003, 0x0800, 0x86DD
ETH_P_MPLS_UC, ETH_P_PPP_SES, ETH_P_TEB, ETH_P_ERSPAN = 0x8847, 0x8864, 0x6558, 0x88BE
PACKET_OUTGOING = 4

#: (socket family, IP protocol) of the raw-IP encapsulations
RAW_MODES = {"gre": (socket.AF_INET, 47), "ipip": (socket.AF_INET, 4),
             "sit": (socket.AF_INET, 41), "ip4in6": (socket.AF_INET6, 4),
             "ip6in6": (socket.AF_INET6, 41)}
#: UDP port of the UDP encapsulations (IANA: geneve 6081, gtp-user 2152, capwap-data 5247)
UDP_MODES = {"geneve": 6081, "gtpu": 2152, "capwap": 5247}
#: fixed inner MACs for the encapsulations that carry Ethernet frames (locally administered)
INNER_MAC = {True: bytes.fromhex("02aa00000001"), False: bytes.fromhex("02aa00000002")}
MPLS_LABELS = (1000, 100)          # a two-entry label stack: outer (transport), inner (service)
PPPOE_SESSION = 0x2A17
GTP_TEID = 0x00C0FFEE


def open_tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def ethertype_of(ip: bytes) -> int:
    return ETH_P_IPV6 if ip and ip[0] >> 4 == 6 else ETH_P_IP


class Tunnel:
    def __init__(self, args) -> None:
        self.mode = args.mode
        self.args = args
        self.client_side = args.side == "client"
        self.tun = open_tun(args.tun) if args.mode != "mirror" else None
        self.seq = 0
        fam6 = ":" in args.remote
        if self.mode in RAW_MODES:
            fam, proto = RAW_MODES[self.mode]
            self.sock = socket.socket(fam, socket.SOCK_RAW, proto)
            self.sock.bind((args.local, 0))
            self.dst = (args.remote, 0)
        elif self.mode in UDP_MODES:
            port = UDP_MODES[self.mode]
            self.sock = socket.socket(socket.AF_INET6 if fam6 else socket.AF_INET,
                                      socket.SOCK_DGRAM)
            self.sock.bind((args.local, port))
            self.dst = (args.remote, port)
        elif self.mode in ("mpls", "pppoe"):
            et = ETH_P_MPLS_UC if self.mode == "mpls" else ETH_P_PPP_SES
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(et))
            self.sock.bind((args.dev, et))
            self.src_mac = bytes.fromhex(open("/sys/class/net/%s/address" % args.dev)
                                         .read().strip().replace(":", ""))
            self.dst_mac = bytes.fromhex(args.peer_mac.replace(":", ""))
        elif self.mode == "mirror":
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            self.sock.bind((args.dev, ETH_P_ALL))
            self.out = socket.socket(socket.AF_INET, socket.SOCK_RAW, 47)
            self.out.bind((args.local, 0))
            self.dst = (args.remote, 0)
        else:
            raise SystemExit("unknown mode %r" % self.mode)

    # ---- inner packet -> wire ---------------------------------------------------------------
    def wrap(self, ip: bytes) -> bytes:
        m = self.mode
        et = ethertype_of(ip)
        if m == "gre":                          # RFC 2784: no checksum, no key, no sequence
            return struct.pack("!HH", 0, et) + ip
        if m in ("ipip", "sit", "ip4in6", "ip6in6"):
            return ip
        if m == "geneve":                       # RFC 8926: version 0, no options, VNI 42
            eth = INNER_MAC[not self.client_side] + INNER_MAC[self.client_side] \
                + struct.pack("!H", et)
            return struct.pack("!BBHI", 0, 0, ETH_P_TEB, 42 << 8) + eth + ip
        if m == "gtpu":                         # 3GPP TS 29.281: GTPv1-U G-PDU, no options
            return struct.pack("!BBHI", 0x30, 0xFF, len(ip), GTP_TEID) + ip
        if m == "capwap":                       # RFC 5415 4.3: HLEN 2, RID 1, WBID 1, T=0
            first = (2 << 19) | (1 << 14) | (1 << 9)    # 802.3 frame follows
            eth = INNER_MAC[not self.client_side] + INNER_MAC[self.client_side] \
                + struct.pack("!H", et)
            return b"\x00" + struct.pack("!I", first)[1:] + struct.pack("!I", 0) + eth + ip
        if m == "mpls":                         # RFC 3032 label stack entries
            lse = b""
            for i, label in enumerate(MPLS_LABELS):
                bos = 1 if i == len(MPLS_LABELS) - 1 else 0
                lse += struct.pack("!I", (label << 12) | (bos << 8) | 64)
            return self.dst_mac + self.src_mac + struct.pack("!H", ETH_P_MPLS_UC) + lse + ip
        if m == "pppoe":                        # RFC 2516 session stage, PPP (RFC 1661)
            proto = 0x0057 if et == ETH_P_IPV6 else 0x0021
            body = struct.pack("!H", proto) + ip
            return self.dst_mac + self.src_mac + struct.pack("!H", ETH_P_PPP_SES) \
                + struct.pack("!BBHH", 0x11, 0x00, PPPOE_SESSION, len(body)) + body
        raise AssertionError(m)

    # ---- wire -> inner packet ---------------------------------------------------------------
    def unwrap(self, data: bytes):
        m = self.mode
        if m in ("gre", "ipip", "sit"):         # IPv4 raw sockets deliver the outer header
            data = data[(data[0] & 15) * 4:]
            if m == "gre":
                flags = data[0]
                hl = 4 + (4 if flags & 0x80 else 0) + (4 if flags & 0x20 else 0) \
                    + (4 if flags & 0x10 else 0)
                return data[hl:]
            return data
        if m in ("ip4in6", "ip6in6"):
            return data
        if m == "geneve":
            return data[8 + (data[0] & 0x3F) * 4 + 14:]
        if m == "gtpu":
            return data[8:] if data[1] == 0xFF else None
        if m == "capwap":
            return data[((data[1] >> 3) & 0x1F) * 4 + 14:]
        if m == "mpls":
            pos = 14
            while pos + 4 <= len(data):
                bos = data[pos + 2] & 1
                pos += 4
                if bos:
                    return data[pos:]
            return None
        if m == "pppoe":                        # code 0 = session data; length covers PPP
            if data[15] != 0:
                return None
            body = data[20:20 + struct.unpack_from("!H", data, 18)[0]]
            return body[2:] if body[:2] in (b"\x00\x21", b"\x00\x57") else None
        raise AssertionError(m)

    def run(self) -> None:
        if self.mode == "mirror":
            return self.mirror()
        while True:
            r, _, _ = select.select([self.tun, self.sock], [], [])
            if self.tun in r:
                ip = os.read(self.tun, 65535)
                frame = self.wrap(ip)
                if self.mode in ("mpls", "pppoe"):
                    self.sock.send(frame)
                else:
                    self.sock.sendto(frame, self.dst)
            if self.sock in r:
                if self.mode in ("mpls", "pppoe"):
                    data, addr = self.sock.recvfrom(65535)
                    if addr[2] == PACKET_OUTGOING:
                        continue
                else:
                    data = self.sock.recv(65535)
                inner = self.unwrap(data)
                if inner:
                    try:
                        os.write(self.tun, inner)
                    except OSError:         # EIO while our TUN is not up yet: dropped
                        pass

    def mirror(self) -> None:
        """ERSPAN type II (draft-foschiano-erspan 4.1): GRE with the sequence bit, protocol
        0x88BE, an 8-byte ERSPAN header, then the mirrored frame."""
        while True:
            frame, addr = self.sock.recvfrom(65535)
            self.seq = (self.seq + 1) & 0xFFFFFFFF
            gre = struct.pack("!HHI", 0x1000, ETH_P_ERSPAN, self.seq)
            # ver 1, VLAN 0, COS 0, En 0, T 0, session 123; index 0
            erspan = struct.pack("!HHI", (1 << 12) | 0, 123, 0)
            self.out.sendto(gre + erspan + frame, self.dst)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=sorted(set(RAW_MODES) | set(UDP_MODES)
                                           | {"mpls", "pppoe", "mirror"}))
    ap.add_argument("--side", choices=("client", "server"), default="client")
    ap.add_argument("--tun", default="rwtun")
    ap.add_argument("--local", required=True)
    ap.add_argument("--remote", required=True)
    ap.add_argument("--dev")
    ap.add_argument("--peer-mac")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    t = Tunnel(args)
    print("ready", flush=True)
    t.run()


if __name__ == "__main__":
    main()
