"""Server chain memory: the certificate chains each server showed in clear, with when.

A TLS 1.3 server's Certificate is encrypted, so a TLS 1.3 failure over it shows no chain.  But the same server
(ip:port + SNI) often served TLS 1.2 handshakes in the same minutes -- other clients, health checks, older
stacks -- whose chain is in clear.  This store remembers, per (server, SNI), the chains seen in **any**
handshake (failed ones included: a TLS 1.2 client rejecting an expired certificate shows that very
certificate), with first/last sighting, count and the connection that showed it last, so that the rules can
name the exact cause of an encrypted failure and state how old that knowledge is.

It is a sibling of :class:`~analyzer.profiles.ProfileStore`, not part of it: profiles learn what a server
*accepts* from successes only and are small JSON (saved, and persisted by the Kafka analyzer); this memory
learns what a server *serves* from every handshake and holds parsed certificates (signatures and path
validation need the DER).  Bounded the same way: an LRU of at most ``max_servers`` (server, SNI) keys, each
with at most ``max_chains`` chains (the least recently seen dropped first).

The memory is causal: the engine remembers a connection's chain after diagnosing it, so a diagnosis uses only
chains seen before it, in input order (a capture's connection order; the Kafka analyzer's partition order --
summaries are keyed by server, so one server's connections meet one engine).  It is not persisted: after a
restart it refills from the next handshake that shows the chain, and an encrypted failure before that is
``encrypted_failure`` with the probe command that confirms it (docs/diagnosis.md).
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence

from .certs import CertInfo, ChainReport

__all__ = ["SeenChain", "ChainMemory", "Recalled", "MAX_CHAINS_PER_SERVER"]

#: chains kept per (server, SNI): a rotation shows two, a load balancer with mixed backends a few
MAX_CHAINS_PER_SERVER = 4

Key = tuple[str, str | None]

_CERT_LIST_HEADER = 4 + 1 + 3        # handshake header, certificate_request_context, certificate_list length
_CERT_ENTRY_OVERHEAD = 3 + 2         # cert_data length, extensions length


@dataclass(slots=True)
class SeenChain:
    """One chain a server sent in clear, and when."""

    chain: tuple[CertInfo, ...]
    der_sizes: tuple[int, ...] | None   # DER lengths, None when a certificate's bytes were not delivered
    first_seen: float
    last_seen: float
    count: int
    version: str | None                 # the handshake that showed it last: version, outcome, connection
    outcome: str | None
    connection: str | None
    client: str | None

    @property
    def key(self) -> tuple[str, ...]:
        return tuple(c.sha256 for c in self.chain)

    def tls13_record_len(self, tag: int, pad: int) -> int | None:
        """The size of a TLS 1.3 Certificate record carrying exactly this chain (no certificate extensions:
        no stapled OCSP, no SCTs), with ``pad`` bytes of padding; None without the DER sizes."""
        if self.der_sizes is None:
            return None
        body = _CERT_LIST_HEADER + sum(_CERT_ENTRY_OVERHEAD + n for n in self.der_sizes)
        return body + 1 + tag + pad

    def seen_in(self) -> str:
        how = "failed" if self.outcome not in (None, "established") else "successful"
        return f"a {how} {self.version or 'TLS'} handshake ({self.connection or '?'} from {self.client or '?'})"


class _Server:
    """One (server, SNI): its chains, least recently seen first, and its last full TLS 1.3 success."""

    __slots__ = ("chains", "success_at")

    def __init__(self) -> None:
        self.chains: OrderedDict[tuple[str, ...], SeenChain] = OrderedDict()
        self.success_at: float | None = None


class ChainMemory:
    """Bounded LRU of the chains per (server ip:port, SNI)."""

    def __init__(self, max_servers: int = 10_000, max_chains: int = MAX_CHAINS_PER_SERVER) -> None:
        self.max_servers = max_servers
        self.max_chains = max_chains
        self._m: OrderedDict[Key, _Server] = OrderedDict()
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._m)

    def entries(self, servers: Callable[[str], bool]) -> list[tuple[Key, _Server]]:
        """The (server, SNI) entries of the servers ``servers`` says yes to, least recently used first (what
        a ``--jobs`` worker hands back: see :meth:`adopt`)."""
        return [(key, srv) for key, srv in self._m.items() if servers(key[0])]

    def adopt(self, entries: Iterable[tuple[Key, _Server]]) -> None:
        """Hold exactly ``entries`` (least recently used first), the oldest beyond the bound dropped."""
        m: OrderedDict[Key, _Server] = OrderedDict(entries)
        while len(m) > self.max_servers:
            m.popitem(last=False)
            self.evicted += 1
        self._m = m

    def __iter__(self) -> Iterator[tuple[Key, list[SeenChain]]]:
        return iter([(k, list(v.chains.values())) for k, v in self._m.items()])

    @staticmethod
    def key(server: str, server_name: str | None) -> Key:
        return server, server_name.lower() if server_name else None

    def remember(self, server: str, server_name: str | None, chain: Sequence[CertInfo],
                 der_sizes: Sequence[int] | None, t: float, *, version: str | None = None,
                 outcome: str | None = None, connection: str | None = None, client: str | None = None) -> None:
        """A handshake at time ``t`` showed ``chain`` in clear."""
        if not chain:
            return
        key = self.key(server, server_name)
        srv = self._m.get(key)
        if srv is None:
            srv = self._m[key] = _Server()
            if len(self._m) > self.max_servers:
                self._m.popitem(last=False)
                self.evicted += 1
        else:
            self._m.move_to_end(key)
        chains = srv.chains
        ckey = tuple(c.sha256 for c in chain)
        seen = chains.get(ckey)
        if seen is None:
            seen = chains[ckey] = SeenChain(tuple(chain), tuple(der_sizes) if der_sizes is not None else None,
                                            t, t, 0, version, outcome, connection, client)
            if len(chains) > self.max_chains:
                chains.popitem(last=False)
        else:
            chains.move_to_end(ckey)
            if seen.der_sizes is None and der_sizes is not None:
                seen.der_sizes = tuple(der_sizes)
        seen.count += 1
        seen.first_seen = min(seen.first_seen, t)
        if t >= seen.last_seen:
            seen.last_seen = t
            seen.version, seen.outcome, seen.connection, seen.client = version, outcome, connection, client

    def succeeded(self, server: str, server_name: str | None, t: float) -> None:
        """A full TLS 1.3 handshake (certificate checked by the client, chain not visible) succeeded at ``t``:
        whatever the server serves now, that client accepted it.  Only known servers are touched."""
        srv = self._m.get(self.key(server, server_name))
        if srv is not None and (srv.success_at is None or t > srv.success_at):
            srv.success_at = t

    def has(self, server: str, server_name: str | None) -> bool:
        return self.key(server, server_name) in self._m

    def recall(self, server: str, server_name: str | None, t: float) -> tuple[SeenChain, float | None] | None:
        """The chain this server last showed for this name, among those first seen no later than ``t``, and
        the time of a full TLS 1.3 success after that sighting (None if there was none): a success that says
        the remembered chain may no longer be what the server serves."""
        srv = self._m.get(self.key(server, server_name))
        if srv is None:
            return None
        best: SeenChain | None = None
        for seen in srv.chains.values():
            if seen.first_seen <= t and (best is None or seen.last_seen > best.last_seen):
                best = seen
        if best is None:
            return None
        after = srv.success_at if srv.success_at is not None and best.last_seen < srv.success_at <= t else None
        return best, after


@dataclass(frozen=True, slots=True)
class Recalled:
    """A remembered chain applied to one encrypted TLS 1.3 connection: checked at that connection's time and
    name, with its age and whether this connection's Certificate record has the chain's size."""

    seen: SeenChain
    report: ChainReport
    age_s: float
    record: int | None          # this connection's Certificate record, bytes (None: not identifiable)
    expected: int | None        # the remembered chain as a TLS 1.3 Certificate record, with the same padding
    contradicted_at: float | None = None   # a full TLS 1.3 handshake to this server succeeded after the sighting

    @property
    def size_matches(self) -> bool | None:
        if self.record is None or self.expected is None:
            return None
        return self.record == self.expected

    @property
    def usable(self) -> bool:
        """Applies to this connection: the record does not say another chain, no success contradicts it."""
        return self.size_matches is not False and self.contradicted_at is None

    def age_text(self) -> str:
        s = int(round(self.age_s))
        if s < 120:
            return f"{s} s"
        if s < 7200:
            return f"{s // 60} min"
        if s < 172800:
            return f"{s // 3600} h"
        return f"{s // 86400} days"

    def text(self) -> str:
        """How the chain is known, for explanations."""
        size = (f"; this connection's encrypted Certificate record ({self.record} bytes) has exactly that chain's "
                f"size" if self.size_matches else "")
        return f"the chain this server sent in clear {self.age_text()} earlier, in {self.seen.seen_in()}{size}"

    def evidence(self) -> dict[str, object]:
        ev: dict[str, object] = {
            "age_s": round(self.age_s, 3), "first_seen": _iso(self.seen.first_seen),
            "last_seen": _iso(self.seen.last_seen),
            "times_seen": self.seen.count, "seen_in": {"version": self.seen.version, "outcome": self.seen.outcome,
                                                        "connection": self.seen.connection, "client": self.seen.client},
            "certificate_record": {"bytes": self.record, "chain_bytes": self.expected, "matches": self.size_matches},
            "used": self.usable, "chain": self.report.evidence(),
        }
        if self.contradicted_at is not None:
            ev["contradicted_by_success_at"] = _iso(self.contradicted_at)
        return ev


def _iso(t: float) -> str | None:
    try:
        return dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return None
