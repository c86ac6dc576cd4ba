"""Four network namespaces in a line, as the gateway path: client - router - MP - backend.

    tt-client 10.20.1.2 --- 10.20.1.1 tt-router 10.20.2.1 --- 10.20.2.2 tt-mp 10.20.3.1 --- 10.20.3.2 tt-backend
              tc-r              tr-c             tr-m             tm-r     tm-b            tb-m

Same plumbing as tests/scenarios/generate.py (veth pairs, offloads off on both ends).  The
namespace names carry this process's id (``tt<pid>-router`` ...): two test runs on one machine
(CI, a developer, a second checkout) never take each other's namespaces.  Root only.
"""
from __future__ import annotations

import os
import subprocess
import time

#: namespaces are PREFIX-ROLE; the pid makes them this test run's own
PREFIX = "tt%d" % (os.getpid() % 100000)
CLIENT_NS, ROUTER_NS, MP_NS, BACKEND_NS = ("%s-%s" % (PREFIX, r)
                                           for r in ("client", "router", "mp", "backend"))
NS = (CLIENT_NS, ROUTER_NS, MP_NS, BACKEND_NS)
LINKS = (
    (CLIENT_NS, "tc-r", "10.20.1.2/24", ROUTER_NS, "tr-c", "10.20.1.1/24"),
    (ROUTER_NS, "tr-m", "10.20.2.1/24", MP_NS, "tm-r", "10.20.2.2/24"),
    (MP_NS, "tm-b", "10.20.3.1/24", BACKEND_NS, "tb-m", "10.20.3.2/24"),
)
CLIENT, ROUTER = "10.20.1.2", "10.20.1.1"
MP, BACKEND = "10.20.3.1", "10.20.3.2"
ROUTER_IF, MP_IF = "tr-c", "tm-b"      # where the sensors capture


def sh(argv, check=True, **kw):
    return subprocess.run(argv, check=check, capture_output=True, **kw)


def nsx(ns, argv):
    return ["ip", "netns", "exec", ns] + list(argv)


def teardown():
    existing = sh(["ip", "netns", "list"], check=False).stdout.decode()
    names = {line.split()[0] for line in existing.splitlines() if line.strip()}
    for ns in NS:
        if ns in names:
            sh(["ip", "netns", "del", ns], check=False)


def setup():
    teardown()
    for ns in NS:
        sh(["ip", "netns", "add", ns])
        sh(nsx(ns, ["ip", "link", "set", "lo", "up"]))
    for ns_a, if_a, addr_a, ns_b, if_b, addr_b in LINKS:
        sh(["ip", "link", "add", if_a, "netns", ns_a, "type", "veth", "peer", "name", if_b,
            "netns", ns_b])
        for ns, ifn, addr in ((ns_a, if_a, addr_a), (ns_b, if_b, addr_b)):
            sh(nsx(ns, ["ip", "addr", "add", addr, "dev", ifn]))
            sh(nsx(ns, ["ip", "link", "set", ifn, "up"]))
            sh(nsx(ns, ["ethtool", "-K", ifn, "tso", "off", "gso", "off", "gro", "off", "tx", "off"]))


def wait_listen(ns, port, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sh(nsx(ns, ["ss", "-Hltn", "sport = :%d" % port])).stdout.strip():
            return
        time.sleep(0.1)
    raise RuntimeError("nothing listens on %d in %s" % (port, ns))
