"""The one bounding policy of the plain-dict memos outside the wire engine (the engine's own
are ``functools.lru_cache`` objects): a dict kept in least-recently-used order -- a hit moves
its key to the end, and a full dict drops its first key.  The caller owns the dict; no value
may be None (None means "not there")."""
from __future__ import annotations

from typing import Any, TypeVar

__all__ = ["lru_get", "lru_put"]

K = TypeVar("K")
V = TypeVar("V")


def lru_get(cache: dict[Any, V], key: Any) -> V | None:
    """``cache[key]``, now the most recently used, or None."""
    value = cache.pop(key, None)
    if value is not None:
        cache[key] = value
    return value


def lru_put(cache: dict[K, V], key: K, value: V, limit: int) -> V:
    """Store ``value`` (not None) under ``key``, dropping the least recently used entry when
    ``cache`` holds ``limit`` already; returns ``value``."""
    if key not in cache and len(cache) >= limit:
        del cache[next(iter(cache))]
    cache[key] = value
    return value
