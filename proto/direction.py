"""Northbound (the gateway is the TLS server) or southbound (the gateway is the TLS client).

Decided from the configured role and local networks, the same way by the sensor (which stamps
each summary) and the analyzer (for summaries that carry no direction).  Also the parsing of
those settings and of ``host:port`` endpoints.  Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Iterable, Union

from proto.lru import lru_get, lru_put

__all__ = ["NORTHBOUND", "SOUTHBOUND", "UNKNOWN", "ROLES", "ConfigError", "IPNetwork", "classify",
           "split_endpoint", "parse_role", "parse_local_nets", "normalize_hostport", "split_list"]

IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

ROLES = ("router", "message-processor")


class ConfigError(ValueError):
    """A setting is missing, malformed or out of range (message is one line, user-facing)."""


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


#: entries of a classify() host cache; beyond, the least recently used host goes
LOCAL_CACHE_MAX = 65536


def _is_local(endpoint: str, nets: Iterable[IPNetwork], cache: dict[str, bool] | None = None) -> bool:
    host, _ = split_endpoint(endpoint)
    if cache is None:
        return _host_is_local(host, nets)
    hit = lru_get(cache, host)
    if hit is None:
        hit = lru_put(cache, host, _host_is_local(host, nets), LOCAL_CACHE_MAX)
    return hit


def _host_is_local(host: str, nets: Iterable[IPNetwork]) -> bool:
    v4 = _v4_int(host)
    if v4 is not None:
        for net, mask in _v4_nets(nets):
            if net == v4 & mask:
                return True
        return False
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(ip.version == n.version and ip in n for n in nets)


def _v4_int(host: str) -> int | None:
    """A dotted-quad IPv4 address as an int, for exactly the strings ``ipaddress`` reads the
    same way (inet_pton, then the canonical form must round-trip); else None."""
    try:
        packed = socket.inet_pton(socket.AF_INET, host)
    except (OSError, ValueError, TypeError):
        return None
    if socket.inet_ntop(socket.AF_INET, packed) != host:
        return None
    return int.from_bytes(packed, "big")


_V4_NETS: dict[int, tuple[object, tuple[tuple[int, int], ...]]] = {}


def _v4_nets(nets: Iterable[IPNetwork]) -> tuple[tuple[int, int], ...]:
    """(network, mask) ints of the IPv4 networks of ``nets`` (a config's few CIDRs), cached
    per ``nets`` object (IPNetwork hashes in Python: too slow to key on per connection)."""
    hit = lru_get(_V4_NETS, id(nets))
    if hit is not None and hit[0] is nets:
        return hit[1]
    compiled = tuple((int(n.network_address), int(n.netmask)) for n in nets if n.version == 4)
    if isinstance(nets, tuple):
        lru_put(_V4_NETS, id(nets), (nets, compiled), _V4_NETS_MAX)
    return compiled


#: configs whose compiled networks are kept (a process has one or a few)
_V4_NETS_MAX = 64


def classify(client: str, server: str, role: str | None, local_nets: tuple[IPNetwork, ...],
             sensor_direction: str | None = None,
             local_cache: dict[str, bool] | None = None) -> tuple[str, str]:
    """Return (direction, how it was decided).

    * a direction already set by the sensor service wins;
    * with local nets: server local -> northbound, client local -> southbound (for the message-processor role
      the client side is tried first, since the MP is the client of its backends);
    * role alone: router -> northbound, message-processor -> southbound;
    * nothing configured -> unknown.

    ``local_cache``: a dict the caller keeps for one ``local_nets`` (host -> local), bounded here.
    """
    if sensor_direction in (NORTHBOUND, SOUTHBOUND):
        return sensor_direction, "set by the sensor"
    if local_nets:
        server_local = _is_local(server, local_nets, local_cache)
        client_local = _is_local(client, local_nets, local_cache)
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


# ---------------------------------------------------------------------------------- settings

def parse_role(value: object) -> str | None:
    if value is None or value == "":
        return None
    v = str(value).strip().lower().replace("_", "-")
    if v in ("mp", "messageprocessor"):
        v = "message-processor"
    if v not in ROLES:
        raise ConfigError(f"role must be one of {', '.join(ROLES)}, not {value!r}")
    return v


def split_list(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [p.strip() for p in value.split(",") if p.strip()]
    if isinstance(value, (list, tuple)):
        return [str(p).strip() for p in value if str(p).strip()]
    raise ConfigError(f"expected a list or comma-separated string, got {value!r}")


def parse_local_nets(value: object) -> tuple[IPNetwork, ...]:
    nets: list[IPNetwork] = []
    for item in split_list(value):
        try:
            nets.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(f"local net {item!r} is not a CIDR (e.g. 10.0.0.0/8)") from None
    return tuple(nets)


def normalize_hostport(text: str) -> str:
    """``host:port`` canonical form used for targets and connection endpoints (IPv6 in brackets)."""
    t = text.strip()
    if t.startswith("["):
        end = t.find("]")
        if end < 0 or t[end + 1 : end + 2] != ":":
            raise ConfigError(f"{text!r} is not HOST:PORT")
        host, port = t[1:end], t[end + 2 :]
    else:
        host, sep, port = t.rpartition(":")
        if not sep or not host:
            raise ConfigError(f"{text!r} is not HOST:PORT")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{text!r}: port must be 1-65535")
    host = host.lower().rstrip(".")
    try:
        ip = ipaddress.ip_address(host)
        host = f"[{ip.compressed}]" if ip.version == 6 else ip.compressed
    except ValueError:
        pass
    return f"{host}:{int(port)}"
