"""The in-process analyzer over raw summaries, as ``tlsdiag diagnose`` streams them: certificate
facts and DER bytes remembered as they arrive, each summary rendered, observed, then diagnosed.
The reference the Kafka service's output is compared with."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from analyzer.engine import Engine
from proto.render import summary_to_json

__all__ = ["diagnose_stream", "jsonl"]


def diagnose_stream(items: Iterable[tuple[dict, list]], eng: Engine
                    ) -> Iterator[tuple[dict, dict, list[dict]]]:
    """``(raw, rendered summary, diagnoses)`` per ``(raw, certs)`` item, in order."""
    facts: dict = {}
    ders: dict = {}
    for raw, certs in items:
        for c in certs:
            facts[c[0]] = c[2]
            ders[c[0].hex()] = c[1]
        s = summary_to_json(raw, facts)
        eng.observe(s, ders)
        yield raw, s, eng.diagnose(s, ders)


def jsonl(path) -> list[dict]:
    """The objects of a JSON-lines file (blank lines skipped)."""
    import json
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
