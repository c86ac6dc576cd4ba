"""Free loopback TCP ports for the tests' servers."""
from __future__ import annotations

import socket


def free_ports(n: int, family: int = socket.AF_INET) -> list[int]:
    """``n`` distinct free ports: the sockets stay bound until all are chosen (one closed
    before the next bind can be handed out again -- the container test's sensor and
    analyzer once got the same metrics port)."""
    socks = [socket.socket(family) for _ in range(n)]
    try:
        for s in socks:
            s.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port(family: int = socket.AF_INET) -> int:
    return free_ports(1, family)[0]
