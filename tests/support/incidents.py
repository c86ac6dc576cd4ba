"""The incident state's retired format 1 (one document per partition), built from the tracker's own
per-incident state (``Incident.to_state``): what analyzers before format 2 wrote, so that
``IncidentTracker.restore`` (which still reads it, for upgrades) can be tested, and benches can say
what format 1 would have written."""
from __future__ import annotations

import json
from typing import Any

from analyzer.incidents import STATE_FORMAT, STATE_VERSION, IncidentTracker


def format1_document(t: IncidentTracker, part: int) -> dict[str, Any]:
    """Partition ``part``'s open incidents and northbound success buckets, as format 1 held them."""
    north = t._north.get(part) or {}
    return {"format": STATE_FORMAT, "version": STATE_VERSION,
            "incidents": [inc.to_state() for inc in t.open.values() if inc.part == part],
            "north": [[sec, srv, sensor, n] for (sec, srv, sensor), n in north.items()]}


def format1_record(t: IncidentTracker, part: int, **extra: Any) -> bytes:
    """The format 1 record value (the document plus the service's ``extra`` keys, compact UTF-8 JSON)."""
    return json.dumps({**format1_document(t, part), **extra}, ensure_ascii=False,
                      separators=(",", ":")).encode()


def north_buckets(t: IncidentTracker, part: int) -> int:
    """How many northbound success buckets partition ``part`` holds."""
    return len(t._north.get(part) or {})
