#!/usr/bin/env python3
"""Score ``tlsdiag diagnose --format jsonl`` output against a scenario ``expected.jsonl``.

    python3 -m tlsdiag diagnose --format jsonl tests/data/scenarios-tls13/*.pcap \\
        --local-net 10.10.1.1/32 --local-net 10.10.3.1/32 \\
        --truststore tests/data/scenarios-tls13/pki/root.pem > /tmp/d.jsonl
    python3 tests/scenarios/compare13.py tests/data/scenarios-tls13/expected.jsonl /tmp/d.jsonl [-v]

Every expected line gets one verdict:

* ``right``: one failure diagnosis with the expected cause, direction and rejecting side (or, for a
  success, no failure diagnosis);
* ``silent``: a failure that got no failure diagnosis (reported as a success);
* ``false_alarm``: a success that got a failure diagnosis;
* ``wrong_cause`` / ``wrong_side``: a failure diagnosis with another cause, or the right cause with
  another direction or rejecting side (``wrong_cause`` is split into ``not_exact`` when the diagnosis
  is the cause this connection alone shows -- e.g. ``encrypted_failure`` -- but the expected cause
  needs the server's chain seen earlier, ``cause_source: memory``).

Prints counts per issue class and verdict, then (``-v``) every line that is not right.
"""
from __future__ import annotations

import argparse
import collections
import json
import sys

WIRE_ONLY = {"encrypted_failure", "unknown_certificate", "certificate_rejected"}


def verdict(row: dict, diags: list[dict]) -> tuple[str, str]:
    fails = [d for d in diags if d.get("severity") == "failure"]
    got = ", ".join("%s/%s/%s" % (d["cause"], d["direction"], d["rejected_by"]) for d in fails) or "-"
    if row["expected_cause"] is None:
        return ("false_alarm" if fails else "right"), got
    if not fails:
        return "silent", got
    want = (row["expected_cause"], row["direction"], row["rejected_by"])
    if len(fails) == 1 and (fails[0]["cause"], fails[0]["direction"], fails[0]["rejected_by"]) == want:
        return "right", got
    if any(d["cause"] == row["expected_cause"] for d in fails):
        return "wrong_side", got
    if row.get("cause_source") == "memory" and fails[0]["cause"] in WIRE_ONLY:
        return "not_exact", got
    return "wrong_cause", got


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("expected")
    ap.add_argument("diagnoses")
    ap.add_argument("-v", "--verbose", action="store_true", help="list every line that is not right")
    args = ap.parse_args(argv)
    with open(args.expected, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    by_conn: dict[tuple[str, str], list[dict]] = collections.defaultdict(list)
    with open(args.diagnoses, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                d = json.loads(line)
                by_conn[(d["connection"]["client"], d["connection"]["server"])].append(d)
    table: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    bad = []
    for row in rows:
        v, got = verdict(row, by_conn.get((row["client"], row["server"]), []))
        table[row.get("issue_class", row["scenario"])][v] += 1
        table["ALL"][v] += 1
        if v != "right":
            bad.append((v, row, got))
    kinds = ("right", "silent", "false_alarm", "wrong_cause", "not_exact", "wrong_side")
    print("%-26s %s" % ("class", " ".join("%11s" % k for k in kinds)))
    for cls, c in sorted(table.items(), key=lambda kv: (kv[0] == "ALL", kv[0])):
        print("%-26s %s" % (cls, " ".join("%11d" % c[k] for k in kinds)))
    if args.verbose:
        for v, row, got in sorted(bad, key=lambda b: (b[0], b[1]["scenario"], b[1]["capture_time"])):
            print("%-11s %-30s %-21s want %s/%s/%s (true %s, source %s) got %s | %s" % (
                v, row["scenario"], row["client"], row["expected_cause"], row["direction"], row["rejected_by"],
                row.get("true_cause"), row.get("cause_source"), got, row["stacks"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
