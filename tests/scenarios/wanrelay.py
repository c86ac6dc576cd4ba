#!/usr/bin/env python3
"""A user-space stand-in for ``tc netem``: relays Ethernet frames between two interfaces and
drops or delays (reorders) some TCP frames.

The kernels these scenarios run on may lack ``sch_netem`` (``tc qdisc add ... netem`` -> "Specified
qdisc kind is unknown"), and there is no iptables/nft either.  So the TLS 1.3 scenarios put this relay
in a namespace of its own between the client and the Router::

    client (c-r) --- (w-c) relay namespace (w-r) --- (r-c) router

It forwards every frame unchanged (same MACs: the two ends see one link).  TCP frames to or from the
selected ports (all TCP when none are given) are dropped with probability ``loss`` or held back
``reorder_delay_ms`` with probability ``reorder``, so that later frames overtake them.  The settings
are read from a JSON file at start and again on SIGHUP (``{"loss": 0.02, "reorder": 0.03,
"reorder_delay_ms": 20, "ports": [8601]}``), so a long scenario can switch the impairment on and off.
The random generator is seeded: the same traffic sees the same decisions.  On SIGTERM it prints
what it did.

usage: wanrelay.py IF_A IF_B --control FILE [--seed N]
"""
from __future__ import annotations

import argparse
import heapq
import json
import logging
import random
import select
import signal
import socket
import struct
import sys
import time

log = logging.getLogger("wanrelay")

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
ETH_HLEN = 14
ETHERTYPE_IPV4 = 0x0800
IPPROTO_TCP = 6


class Settings:
    def __init__(self, path: str) -> None:
        self.path = path
        self.loss = 0.0
        self.reorder = 0.0
        self.reorder_delay = 0.02
        self.ports: frozenset[int] = frozenset()
        self.load()

    def load(self) -> None:
        with open(self.path, encoding="utf-8") as f:
            d = json.load(f)
        self.loss = float(d.get("loss", 0.0))
        self.reorder = float(d.get("reorder", 0.0))
        self.reorder_delay = float(d.get("reorder_delay_ms", 20)) / 1000.0
        self.ports = frozenset(int(p) for p in d.get("ports", ()))
        log.info("settings: loss %.3f reorder %.3f (%.0f ms) ports %s", self.loss, self.reorder,
                 self.reorder_delay * 1000, sorted(self.ports) or "all")


def tcp_ports(frame: bytes) -> tuple[int, int] | None:
    """(sport, dport) of an IPv4/TCP frame, else None."""
    if len(frame) < ETH_HLEN + 20 or struct.unpack_from("!H", frame, 12)[0] != ETHERTYPE_IPV4:
        return None
    ihl = (frame[ETH_HLEN] & 0x0F) * 4
    if frame[ETH_HLEN + 9] != IPPROTO_TCP or len(frame) < ETH_HLEN + ihl + 4:
        return None
    return struct.unpack_from("!HH", frame, ETH_HLEN + ihl)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("if_a")
    ap.add_argument("if_b")
    ap.add_argument("--control", required=True, help="JSON settings file, re-read on SIGHUP")
    ap.add_argument("--seed", type=int, default=12)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="wanrelay %(levelname)s %(message)s")
    settings = Settings(args.control)
    rng = random.Random(args.seed)
    socks = {}
    for ifn in (args.if_a, args.if_b):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        s.bind((ifn, 0))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        socks[ifn] = s
    other = {socks[args.if_a]: socks[args.if_b], socks[args.if_b]: socks[args.if_a]}
    counts = {"forwarded": 0, "dropped": 0, "delayed": 0}
    pending: list[tuple[float, int, socket.socket, bytes]] = []   # (due, seq, out socket, frame)
    seq = 0
    state = {"reload": False, "stop": False}
    signal.signal(signal.SIGHUP, lambda *_: state.__setitem__("reload", True))
    signal.signal(signal.SIGTERM, lambda *_: state.__setitem__("stop", True))
    print("wanrelay: relaying %s <-> %s" % (args.if_a, args.if_b), flush=True)
    while not state["stop"]:
        if state["reload"]:
            state["reload"] = False
            settings.load()
        now = time.monotonic()
        while pending and pending[0][0] <= now:
            _, _, out, frame = heapq.heappop(pending)
            out.send(frame)
            counts["forwarded"] += 1
        timeout = max(0.0, pending[0][0] - now) if pending else 0.5
        try:
            ready, _, _ = select.select(list(other), [], [], timeout)
        except InterruptedError:
            continue
        for s in ready:
            frame, addr = s.recvfrom(65535)
            if addr[2] == PACKET_OUTGOING:
                continue            # our own sends on this interface
            ports = tcp_ports(frame)
            if ports is not None and (not settings.ports or settings.ports & set(ports)):
                r = rng.random()
                if r < settings.loss:
                    counts["dropped"] += 1
                    continue
                if r < settings.loss + settings.reorder:
                    seq += 1
                    heapq.heappush(pending, (time.monotonic() + settings.reorder_delay, seq, other[s], frame))
                    counts["delayed"] += 1
                    continue
            other[s].send(frame)
            counts["forwarded"] += 1
    for _, _, out, frame in sorted(pending):
        out.send(frame)
    print("wanrelay: %(forwarded)d frames forwarded, %(dropped)d dropped, %(delayed)d delayed" % counts, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
