"""Northbound (the gateway is the TLS server) or southbound (the gateway is the TLS client).

Decided from the configured role and local networks. Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
from typing import Iterable

from .config import IPNetwork

NORTHBOUND = "northbound"
SOUTHBOUND = "southbound"
UNKNOWN = "unknown"


def split_endpoint(endpoint: str) -> tuple[str, int | None]:
    """``"1.2.3.4:443"`` / ``"[::1]:443"`` -> (host, port); tolerant of a missing port."""
    ep = endpoint.strip()
    if ep.startswith("["):
        end = ep.find("]")
        host = ep[1:end] if end > 0 else ep[1:]
        rest = ep[end + 2 :] if end > 0 else ""
    else:
        host, sep, rest = ep.rpartition(":")
        if not sep:
            host, rest = ep, ""
        elif host.count(":") >= 1:  # bare IPv6 without port brackets
            host, rest = ep, ""
    return host, int(rest) if rest.isdigit() else None


def _is_local(endpoint: str, nets: Iterable[IPNetwork]) -> bool:
    host, _ = split_endpoint(endpoint)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(ip.version == n.version and ip in n for n in nets)


def classify(client: str, server: str, role: str | None, local_nets: tuple[IPNetwork, ...],
             sensor_direction: str | None = None) -> tuple[str, str]:
    """Return (direction, how it was decided).

    * a direction already set by the sensor service wins;
    * with local nets: server local -> northbound, client local -> southbound (for the message-processor role
      the client side is tried first, since the MP is the client of its backends);
    * role alone: router -> northbound, message-processor -> southbound;
    * nothing configured -> unknown.
    """
    if sensor_direction in (NORTHBOUND, SOUTHBOUND):
        return sensor_direction, "set by the sensor"
    if local_nets:
        server_local = _is_local(server, local_nets)
        client_local = _is_local(client, local_nets)
        order = ((client_local, SOUTHBOUND, "client"), (server_local, NORTHBOUND, "server"))
        if role != "message-processor":
            order = (order[1], order[0])
        for hit, direction, side in order:
            if hit:
                return direction, f"{side} address is in --local-net"
        if role == "router":
            return NORTHBOUND, "role router (neither endpoint in --local-net)"
        if role == "message-processor":
            return SOUTHBOUND, "role message-processor (neither endpoint in --local-net)"
        return UNKNOWN, "neither endpoint is in --local-net"
    if role == "router":
        return NORTHBOUND, "role router: the router is the TLS server"
    if role == "message-processor":
        return SOUTHBOUND, "role message-processor: the MP is the TLS client"
    return UNKNOWN, "no --role or --local-net given"
