"""Server profiles learned from successful handshakes, keyed by (server ip:port, SNI).

A profile records what the server chose when things worked: versions, cipher suites, whether the clients
that succeeded sent SNI, the chain it served, counts and first/last seen. Profiles are held in a bounded
LRU and can be saved to / loaded from JSON.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import tempfile
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Iterator, Mapping

from proto.lru import lru_get, lru_put
from proto.summary import is_time

log = logging.getLogger(__name__)

FORMAT = "tlsdiag-profiles"
FORMAT_VERSION = 1
#: Per-profile bound on distinct values kept in each counter (versions, suites, chains).
MAX_VALUES = 64
#: the largest count read back from saved state (profiles, incidents)
MAX_COUNT = 2 ** 63 - 1
#: the largest profiles file loaded (10,000 profiles are ~10 MB; /dev/zero is not one)
MAX_PROFILES_BYTES = 256 * 1024 * 1024


def successes(n: int) -> str:
    """``1 successful handshake``, ``2 successful handshakes``."""
    return f"{n} successful handshake{'' if n == 1 else 's'}"


class ProfileError(ValueError):
    """A profiles file is unreadable or not in our format."""


def is_count(v: object) -> bool:
    """An int in [0, MAX_COUNT] (not a JSON 1e400 -- infinity -- nor "5")."""
    return type(v) is int and 0 <= v <= MAX_COUNT


def saved_count(v: object) -> int:
    """A count read back from saved state (ValueError when it is not :func:`is_count`)."""
    if not is_count(v):
        raise ValueError("bad count %.40r" % (v,))
    return v  # type: ignore[return-value]


def saved_time(v: object) -> float:
    """A time stamp read back from saved state: in datetime's range (ValueError otherwise)."""
    if not is_time(v):
        raise ValueError("bad time stamp %.40r" % (v,))
    return float(v)  # type: ignore[arg-type]


class Tally(dict[str, int]):
    """A light Counter (profiles are created per new (server, SNI): Counter's constructor is slow)."""

    __slots__ = ()

    def most_common(self, n: int | None = None) -> list[tuple[str, int]]:
        return sorted(self.items(), key=lambda kv: -kv[1])[:n]


def _bump(counter: Tally, key: str, n: int = 1) -> None:
    if key in counter:
        counter[key] += n
    elif len(counter) < MAX_VALUES:
        counter[key] = n


def _values(summary: Mapping[str, object]) -> tuple[str | None, str | None, str | None, str | None]:
    """What a successful handshake adds to a profile's tallies (the order of ``_tallies``):
    version, cipher suite, group, the chain's digests."""
    get = summary.get
    v, c, g = get("version"), get("cipher"), get("curve")
    certs = get("certificates")
    chain = ",".join([str(x.get("sha256", "")) for x in certs if isinstance(x, dict)]) \
        if isinstance(certs, list) and certs else None
    return (v if isinstance(v, str) else None, c if isinstance(c, str) else None,
            g if isinstance(g, str) else None, chain)


@dataclass
class Profile:
    server: str
    server_name: str | None
    count: int = 0
    versions: Tally = field(default_factory=Tally)
    ciphers: Tally = field(default_factory=Tally)
    chains: Tally = field(default_factory=Tally)   # "sha256,sha256,..." -> count
    groups: Tally = field(default_factory=Tally)   # key-exchange group chosen (summary "curve")
    with_sni: int = 0
    without_sni: int = 0
    first_seen: float | None = None
    last_seen: float | None = None

    def add(self, summary: Mapping[str, object], agg: Profile | None = None,
            newest: bool = False) -> bool:
        """Count one successful handshake.  With ``agg`` -- the merge of this server's
        profiles (:meth:`ProfileStore.for_server`), this one among them (``newest``: merged
        last) -- bring ``agg`` up to date as merging them again would, and return True; or,
        where that needs the merge (a value new to this profile, which is not the newest),
        leave ``agg`` as it is and return False."""
        values = _values(summary)
        if agg is not None:
            for mine, theirs, v in zip(self._tallies(), agg._tallies(), values):
                if v is None or v in mine or len(mine) >= MAX_VALUES:
                    continue            # (a known value: its place in agg stays)
                if not newest:
                    agg = None          # its first place in the merge would move
                    break
            if agg is not None:
                for mine, theirs, v in zip(self._tallies(), agg._tallies(), values):
                    if v is not None and (v in mine or len(mine) < MAX_VALUES):
                        _bump(theirs, v)
                agg._count(summary)
        version, cipher, group, chain = values
        if version is not None:
            _bump(self.versions, version)
        if cipher is not None:
            _bump(self.ciphers, cipher)
        if group is not None:
            _bump(self.groups, group)
        if chain is not None:
            _bump(self.chains, chain)
        self._count(summary)
        return agg is not None

    def _tallies(self) -> tuple[Tally, Tally, Tally, Tally]:
        return self.versions, self.ciphers, self.groups, self.chains

    def _count(self, summary: Mapping[str, object]) -> None:
        self.count += 1
        if summary.get("server_name"):
            self.with_sni += 1
        else:
            self.without_sni += 1
        t = summary.get("start")
        if is_time(t):
            first, last = self.first_seen, self.last_seen
            if first is None or t < first:
                self.first_seen = t
            if last is None or t > last:
                self.last_seen = t

    def merge(self, other: Profile) -> None:
        self.count += other.count
        for mine, theirs in ((self.versions, other.versions), (self.ciphers, other.ciphers),
                             (self.chains, other.chains), (self.groups, other.groups)):
            for k, n in theirs.items():
                _bump(mine, k, n)
        self.with_sni += other.with_sni
        self.without_sni += other.without_sni
        for t in (other.first_seen, other.last_seen):
            if t is not None:
                self.first_seen = t if self.first_seen is None else min(self.first_seen, t)
                self.last_seen = t if self.last_seen is None else max(self.last_seen, t)

    def to_json(self) -> dict[str, object]:
        return {
            "server": self.server, "server_name": self.server_name, "count": self.count,
            "versions": dict(self.versions), "ciphers": dict(self.ciphers), "chains": dict(self.chains),
            "groups": dict(self.groups),
            "with_sni": self.with_sni, "without_sni": self.without_sni,
            "first_seen": self.first_seen, "last_seen": self.last_seen,
        }

    @classmethod
    def from_json(cls, d: object) -> Profile:
        """Inverse of :meth:`to_json`; ValueError (or TypeError) on anything malformed."""
        def counter(x: object) -> Tally:
            if not isinstance(x, dict):
                raise ProfileError("counter fields must be objects")
            return Tally({str(k): saved_count(v) for k, v in list(x.items())[:MAX_VALUES]})

        def opt_time(x: object) -> float | None:
            return None if x is None else saved_time(x)

        if not isinstance(d, dict):
            raise ProfileError("a profile must be an object")
        # the first and the last time a success was seen: both or neither, in order (what
        # learning gives; merge() and the store's kept merged view rely on it)
        seen = [t for t in (opt_time(d.get("first_seen")), opt_time(d.get("last_seen")))
                if t is not None]
        server = d.get("server")
        if not isinstance(server, str):
            raise ProfileError("profile without a server")
        sn = d.get("server_name")
        return cls(
            server=server, server_name=sn if isinstance(sn, str) else None,
            count=saved_count(d.get("count", 0)),
            versions=counter(d.get("versions", {})), ciphers=counter(d.get("ciphers", {})),
            chains=counter(d.get("chains", {})), groups=counter(d.get("groups", {})),
            with_sni=saved_count(d.get("with_sni", 0)),
            without_sni=saved_count(d.get("without_sni", 0)),
            first_seen=min(seen) if seen else None, last_seen=max(seen) if seen else None,
        )

    def describe(self) -> str:
        """One line for evidence: what this server chose in its successful handshakes."""
        vs = ", ".join(f"{k} x{n}" for k, n in self.versions.most_common(4))
        cs = ", ".join(k for k, _ in self.ciphers.most_common(3))
        gs = ", ".join(k for k, _ in self.groups.most_common(3))
        sni = f"{self.with_sni} with SNI, {self.without_sni} without"
        return (f"{successes(self.count)}: versions {vs or '-'}; suites {cs or '-'}; groups {gs or '-'}; "
                f"{sni}")


Key = tuple[str, str | None]


class ProfileStore:
    """Bounded LRU of profiles per (server, SNI), plus a per-server aggregate view."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._p: OrderedDict[Key, Profile] = OrderedDict()
        # server -> its (server, SNI) keys in insertion order (a dict, not a set: the merge order of
        # for_server() must not depend on hash(None), which is address-based in Python 3.11)
        self._by_server: dict[str, dict[Key, None]] = {}
        self._agg: dict[str, Profile] = {}      # for_server() memo, dropped when the server learns
        self.evicted = 0

    def _insert(self, key: Key, prof: Profile, fresh: bool = False) -> None:
        """Store ``prof`` under ``key``; the server's merged view stays if ``prof`` is
        ``fresh`` (empty: merged last, it adds nothing)."""
        if not fresh:
            self._agg.pop(key[0], None)
        self._p[key] = prof
        self._by_server.setdefault(key[0], {})[key] = None
        if len(self._p) > self.max_entries:
            old, _ = self._p.popitem(last=False)
            keys = self._by_server.get(old[0])
            self._agg.pop(old[0], None)
            if keys is not None:
                keys.pop(old, None)
                if not keys:
                    del self._by_server[old[0]]
            self.evicted += 1

    def put(self, prof: Profile) -> None:
        """Store ``prof`` under its (server, SNI), replacing what is there (a restored snapshot)."""
        self._insert((prof.server, prof.server_name), prof)

    def __len__(self) -> int:
        return len(self._p)

    def __iter__(self) -> Iterator[Profile]:
        return iter(list(self._p.values()))

    def learn(self, summary: Mapping[str, object]) -> None:
        server = summary.get("server")
        if not isinstance(server, str):
            return
        sn = summary.get("server_name")
        key: Key = (server, sn.lower() if isinstance(sn, str) else None)
        prof = self._p.get(key)
        if prof is None:
            prof = Profile(server=key[0], server_name=key[1])
            self._insert(key, prof, fresh=True)
        else:
            self._p.move_to_end(key)
        # the server's merged view, kept up to date where that is exact (a merge of thousands
        # of SNI profiles after every learn made the service quadratic: 4,000 SNIs, 16 s)
        agg = self._agg.get(key[0])
        if agg is None:
            prof.add(summary)
        elif not prof.add(summary, agg, newest=next(reversed(self._by_server[key[0]])) == key):
            del self._agg[key[0]]

    def get(self, server: str, server_name: str | None) -> Profile | None:
        return self._p.get((server, server_name.lower() if server_name else None))

    def for_server(self, server: str) -> Profile | None:
        """All SNI variants of one server merged (None if never seen succeeding)."""
        hit = lru_get(self._agg, server)
        if hit is not None:
            return hit
        parts = [self._p[k] for k in self._by_server.get(server, ())]
        if not parts:
            return None
        agg = Profile(server=server, server_name=None)
        for p in parts:
            agg.merge(p)
        return lru_put(self._agg, server, agg, self.max_entries)

    # -- persistence ------------------------------------------------------------------------------------
    def save(self, path: str) -> None:
        """Write the profiles to ``path``.  A regular file (or a symlink's regular target) is
        replaced whole by a rename, keeping its mode; anything else there -- a device, a FIFO,
        ``/dev/stdout`` -- is written in place, never replaced by a regular file."""
        doc = {"format": FORMAT, "version": FORMAT_VERSION, "profiles": [p.to_json() for p in self._p.values()]}
        real = os.path.realpath(path)
        try:
            st: os.stat_result | None = os.stat(path)
        except FileNotFoundError:
            st = None                   # a new file (a dangling symlink: its target)
        if st is not None and not (stat.S_ISREG(st.st_mode) and os.path.exists(real)
                                   and os.path.samestat(os.stat(real), st)):
            with open(path, "w", encoding="utf-8") as f:
                json.dump(doc, f, separators=(",", ":"))
            return
        fd, tmp = tempfile.mkstemp(prefix=".profiles-", dir=os.path.dirname(real))
        try:
            if st is not None:
                os.fchmod(fd, stat.S_IMODE(st.st_mode))
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(doc, f, separators=(",", ":"))
            os.replace(tmp, real)
        finally:
            if os.path.exists(tmp):     # not renamed into place: an error on the way
                os.unlink(tmp)

    def load(self, path: str) -> int:
        try:
            with open(path, "rb") as f:
                raw = f.read(MAX_PROFILES_BYTES + 1)
        except OSError as e:
            raise ProfileError(f"cannot read profiles {path}: {e.strerror}") from None
        if len(raw) > MAX_PROFILES_BYTES:
            raise ProfileError(f"profiles {path} is larger than {MAX_PROFILES_BYTES} bytes")
        try:
            doc = json.loads(raw.decode("utf-8"))
        except ValueError as e:             # (UnicodeDecodeError is one)
            raise ProfileError(f"profiles {path} is not JSON: {e}") from None
        except RecursionError:
            raise ProfileError(f"profiles {path} is not JSON: nested too deeply") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ProfileError(f"{path} is not a tlsdiag profiles file")
        if doc.get("version") != FORMAT_VERSION:
            raise ProfileError(f"{path}: unsupported profiles version {doc.get('version')!r}")
        n = 0
        items = doc.get("profiles")
        if not isinstance(items, list):
            raise ProfileError(f"{path}: 'profiles' must be a list")
        for item in items:
            try:
                p = Profile.from_json(item)
            except (TypeError, ValueError) as e:
                raise ProfileError(f"{path}: bad profile: {e}") from None
            key = (p.server, p.server_name)
            self._agg.pop(p.server, None)
            if key in self._p:
                self._p[key].merge(p)
            else:
                self._insert(key, p)
            n += 1
        return n
