"""Conformance against Zeek's baselines in ../shared/corpus (see its README).

Used by tests/test_conformance.py and runnable by hand:
``python -m tests.conformance [--verbose]`` prints every disagreement.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from proto.names import zeek_version_name

SHARED = Path(__file__).resolve().parents[2] / "shared"
CORPUS = SHARED / "corpus"

CHECKED = ("version", "cipher", "server_name", "established", "last_alert", "history",
           "cert_chain_fps", "client_cert_chain_fps")


def _endpoint(ip: str, port) -> str:
    return ("[%s]:%s" % (ip, port)) if ":" in ip else ("%s:%s" % (ip, port))


def expected_tcp():
    rows = []
    for line in (CORPUS / "expected.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["transport"] == "tcp":
            rows.append(row)
    return rows


def summarize_file(path: Path) -> list[dict]:
    from sensor.pipeline import summarize_paths
    return [s for s, _ in summarize_paths([str(path)])]


def ours_as_zeek(s: dict) -> dict:
    version = None
    if s["version"] is not None:
        version = s["_version_code"] if "_version_code" in s else s["version"]
    return {
        "version": version,
        "cipher": s["cipher"],
        "server_name": s["server_name"],
        "established": s["established"],
        "last_alert": s["last_alert"],
        "history": s["history"],
        "cert_chain_fps": [c["sha256"] for c in s["certificates"]],
        "client_cert_chain_fps": [c["sha256"] for c in s["client_certificates"]],
    }


_ZEEK_VERSIONS = {}


def _zeek_version(ours: str | None):
    """Our version string -> Zeek's spelling (TLSv1.2 -> TLSv12)."""
    if ours is None:
        return None
    if not _ZEEK_VERSIONS:
        from proto.names import version_name
        for code in list(range(0x0300, 0x0305)) + [0x0002] + list(range(0x7F00, 0x7F30)) + [
                0x7E01, 0x7E02, 0xFB17, 0xFB1A]:
            _ZEEK_VERSIONS[version_name(code)] = zeek_version_name(code)
    return _ZEEK_VERSIONS.get(ours, ours)


def run(verbose: bool = False):
    """Return (checks, agreements, missing_connections, disagreements list)."""
    by_file: dict[str, list] = {}
    for row in expected_tcp():
        by_file.setdefault(row["file"], []).append(row)
    checks = agree = 0
    missing = []
    diffs = []
    tmpdir = Path(tempfile.mkdtemp(prefix="tlsdiag-conf-"))
    try:
        for rel, rows in sorted(by_file.items()):
            path = CORPUS / rel
            ours = summarize_file(path)
            index = {}
            for s in ours:
                index.setdefault((s["client"], s["server"]), []).append(s)
            for row in rows:
                fnb = row.get("fields_not_in_baseline") or []
                cl = _endpoint(row["client_ip"], row.get("client_port"))
                sv = _endpoint(row["server_ip"], row["server_port"])
                cands = index.get((cl, sv))
                if cands is None and row.get("client_port") is None:
                    cands = [s for s in ours if s["server"] == sv and
                             s["client"].rsplit(":", 1)[0].strip("[]") == row["client_ip"]]
                if not cands:
                    missing.append((rel, cl, sv))
                    continue
                s = cands.pop(0)
                got = ours_as_zeek(s)
                got["version"] = _zeek_version(got["version"])
                for field in CHECKED:
                    if field in fnb:
                        continue
                    exp = row.get(field)
                    if field.endswith("_fps") and exp is None:
                        exp = []                # Zeek leaves it unset when none was seen
                    if field == "history" and exp is None:
                        continue
                    checks += 1
                    if got[field] == exp:
                        agree += 1
                    else:
                        diffs.append((rel, cl, sv, field, exp, got[field]))
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return checks, agree, missing, diffs


if __name__ == "__main__":
    checks, agree, missing, diffs = run()
    for d in diffs:
        print("DIFF %s %s -> %s %s: zeek=%r ours=%r" % d)
    for m in missing:
        print("MISSING %s %s -> %s" % m)
    print("checks=%d agree=%d (%.2f%%) missing=%d" % (checks, agree,
                                                      100.0 * agree / max(checks, 1),
                                                      len(missing)))
