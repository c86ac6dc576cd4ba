"""Make the real-world captures of tests/data/realworld/ (issue 15).  Root only; a few minutes.

    python3 tests/realworld/make_captures.py [NAME ...]      # default: every capture
    python3 tests/realworld/oracle.py                        # then the tshark oracle files

Each capture is a few connections between network namespaces made here (names start with
"rw"), with real TLS programs (OpenSSL's s_server / s_client, curl) and, for STARTTLS, the real
servers and clients from Debian.  How each one is made -- kernel device, userspace
encapsulation (tund.py, where this kernel has no module) or crafted -- is written to
tests/data/realworld/CAPTURES.json and explained in tests/realworld/README.md.
"""
from __future__ import annotations

import json
import socket
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import rig  # noqa: E402
from rig import (C4, C6, C_IF, CLIENT_NS, IC4, IC6, IS4, IS6, M_M, M_S, MIRROR_NS, MM4, MS4,  # noqa: E402
                 S4, S6, S_IF, SERVER_NS)

OUT = Path(__file__).resolve().parents[1] / "data" / "realworld"
MANIFEST = OUT / "CAPTURES.json"
TUND = Path(__file__).resolve().parent / "tund.py"

MADE: dict = {}


def record(name: str, how: str, what: str) -> None:
    MADE[name] = {"how": how, "what": what}


def tls_pair(host: str) -> None:
    """Two connections: curl (TLS 1.3, HTTP/1.1 over ALPN) and s_client forced to TLS 1.2."""
    r = rig.curl(CLIENT_NS, host)
    if r.stdout.decode().strip() != "200":
        raise RuntimeError("curl to %s: %r %r" % (host, r.stdout, r.stderr[-500:]))
    r = rig.s_client(CLIENT_NS, host, extra=("-tls1_2",))
    if b"200 ok" not in r.stdout.lower():
        raise RuntimeError("s_client to %s: %r" % (host, r.stdout[-500:]))


# ---------------------------------------------------------------------------------------------
# encapsulations
# ---------------------------------------------------------------------------------------------

def encap_vxlan(name: str) -> None:
    rig.setup()
    for ns, local, remote in ((CLIENT_NS, C4, S4), (SERVER_NS, S4, C4)):
        rig.ns_sh(ns, "ip", "link", "add", "rwvx", "type", "vxlan", "id", "42", "local", local,
                  "remote", remote, "dstport", "4789", "dev", ns == CLIENT_NS and C_IF or S_IF)
    rig.inner_addresses("rwvx", 1350)
    srv = rig.s_server(SERVER_NS)
    cap = rig.Capture(SERVER_NS, S_IF, OUT / (name + ".pcap"))
    tls_pair(IS4)
    cap.close()
    rig.stop(srv)
    record(name, "kernel", "kernel VXLAN devices (VNI 42, UDP 4789) over a veth; TLS 1.3 (curl) "
           "and TLS 1.2 (s_client) to s_server through the overlay; captured on the underlay")


#: mode -> (name, tund mode, underlay family, inner host, description)
TUND_MODES = {
    "gre": ("gre", 4, IS4, "GRE (RFC 2784, protocol 0x0800) over IPv4"),
    "ipip": ("ipip", 4, IS4, "IPv4-in-IPv4 (protocol 4)"),
    "ip4in6": ("ip4in6", 6, IS4, "IPv4-in-IPv6 (next header 4, as ip6tnl)"),
    "sit": ("sit", 4, IS6, "IPv6-in-IPv4 (protocol 41, as sit)"),
    "ip6in6": ("ip6in6", 6, IS6, "IPv6-in-IPv6 (next header 41, as ip6tnl)"),
    "geneve": ("geneve", 4, IS4, "GENEVE (RFC 8926, UDP 6081, VNI 42) carrying Ethernet"),
    "gtpu": ("gtpu", 4, IS4, "GTPv1-U G-PDUs (UDP 2152, TEID 0xc0ffee)"),
    "capwap": ("capwap", 4, IS4, "CAPWAP data channel (RFC 5415, UDP 5247) carrying 802.3 frames"),
    "mpls": ("mpls", 0, IS4, "MPLS, two-label stack (1000, 100 bottom) over Ethernet"),
    "pppoe": ("pppoe", 0, IS4, "PPPoE session stage (RFC 2516, session 0x2a17), PPP IPv4"),
}


def encap_tund(name: str, mode: str) -> None:
    tmode, fam, host, desc = TUND_MODES[mode]
    rig.setup()
    procs = []
    for ns, side, local, remote, dev, peer in (
            (CLIENT_NS, "client", C4 if fam != 6 else C6, S4 if fam != 6 else S6, C_IF,
             rig.mac_of(SERVER_NS, S_IF)),
            (SERVER_NS, "server", S4 if fam != 6 else S6, C4 if fam != 6 else C6, S_IF,
             rig.mac_of(CLIENT_NS, C_IF))):
        p = rig.spawn(ns, rig.python(), TUND, tmode, "--side", side, "--tun", "rwtun",
                      "--local", local, "--remote", remote, "--dev", dev, "--peer-mac", peer,
                      stdout=rig.subprocess.PIPE, stderr=None)
        if p.stdout.readline().strip() != b"ready":
            raise RuntimeError("tund %s did not start" % mode)
        procs.append(p)
    rig.inner_addresses("rwtun", 1300)
    srv = rig.s_server(SERVER_NS)
    cap = rig.Capture(SERVER_NS, S_IF, OUT / (name + ".pcap"))
    tls_pair(host)
    cap.close()
    rig.stop(srv)
    for p in procs:
        rig.stop(p)
    record(name, "userspace-encap",
           "%s between two TUN devices, encapsulated by tests/realworld/tund.py (this kernel "
           "has no module for it); TLS 1.3 (curl) and TLS 1.2 (s_client) to s_server over the "
           "inner network; captured on the underlay veth" % desc)


def encap_erspan(name: str) -> None:
    """A mirror session: the server's veth copied as ERSPAN II to a collector namespace."""
    rig.setup(mirror=True)
    sink = rig.spawn(MIRROR_NS, rig.python(), "-c",
                     "import socket,time; s=socket.socket(socket.AF_INET,socket.SOCK_RAW,47); "
                     "time.sleep(600)")      # a GRE socket: no ICMP protocol-unreachable back
    mirror = rig.spawn(SERVER_NS, rig.python(), TUND, "mirror", "--local", MS4, "--remote", MM4,
                       "--dev", S_IF, stdout=rig.subprocess.PIPE, stderr=None)
    if mirror.stdout.readline().strip() != b"ready":
        raise RuntimeError("mirror did not start")
    srv = rig.s_server(SERVER_NS)
    cap = rig.Capture(MIRROR_NS, M_M, OUT / (name + ".pcap"))
    tls_pair(S4)
    cap.close()
    for p in (srv, mirror, sink):
        rig.stop(p)
    record(name, "userspace-encap",
           "ERSPAN type II (GRE 0x88BE, session 123): tund.py mirrors every frame of the "
           "server's veth to a collector namespace, as a switch's mirror session does (this "
           "kernel has no erspan device); TLS 1.3 + 1.2 as above; captured at the collector")


# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------

CAPTURES = {
    "encap-vxlan": encap_vxlan,
    "encap-erspan": encap_erspan,
}
for _mode in TUND_MODES:
    CAPTURES["encap-%s" % _mode] = (lambda m: (lambda name: encap_tund(name, m)))(_mode)


def main(argv) -> None:
    names = argv or sorted(CAPTURES)
    rig.make_pki()
    OUT.mkdir(parents=True, exist_ok=True)
    if MANIFEST.exists():
        MADE.update(json.loads(MANIFEST.read_text()))
    try:
        for name in names:
            print("...", name, flush=True)
            CAPTURES[name](name)
            MANIFEST.write_text(json.dumps(MADE, indent=1, sort_keys=True) + "\n")
    finally:
        rig.teardown()


if __name__ == "__main__":
    main(sys.argv[1:])
