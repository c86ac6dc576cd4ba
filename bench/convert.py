"""Convert `tlsdiag summarize --format jsonl` output to the shared bench peer format.

The shared harness (`../shared/bench/`, `score.py`) scores one JSON object per
connection with the keys `client`, `server` ("ip:port"), `sni`, `version`
("TLS1.2"), `cipher` ("0x1301") and `alert` (the description code of the first
plaintext alert).  Our summaries carry IANA names (`"version": "TLSv1.3"`,
`"cipher": "TLS_AES_128_GCM_SHA256"`, `alerts: [{description:
"handshake_failure", ...}]`); names are mapped back to codes with the
`proto.names` IntEnums (`CipherSuite`, `AlertDescription`).

Standard library + `proto.names` only; never raises on a malformed line
(it is counted in the returned stats instead).
"""
from __future__ import annotations

import enum
import json
import logging
import re
from typing import IO, Iterable

log = logging.getLogger(__name__)

# our version strings -> the shared peer format (score.py compares to tlsmini.VERSIONS)
VERSIONS = {
    "SSLv2": "SSL2.0",
    "SSLv3": "SSL3.0",
    "TLSv1.0": "TLS1.0",
    "TLSv1.1": "TLS1.1",
    "TLSv1.2": "TLS1.2",
    "TLSv1.3": "TLS1.3",
}

_UNKNOWN_RE = re.compile(r"^unknown[-_](0x[0-9a-fA-F]+|\d+)$")
_GREASE_RE = re.compile(r"^grease_(0x[0-9a-fA-F]+)$")


def _enum_table(e: type[enum.IntEnum]) -> dict[str, int]:
    """name -> value, including aliases; lookups also try lower/upper case."""
    table: dict[str, int] = {}
    for name, member in e.__members__.items():
        table[name] = int(member)
    return table


def load_tables() -> tuple[dict[str, int], dict[str, int], str]:
    """(cipher name -> code, alert description name -> code, source).

    Uses proto.names; if it cannot be imported (the package is still being
    written), falls back to the small tables of the shared tlsmini.py so the
    harness can be developed, and says so in `source`.
    """
    try:
        from proto.names import AlertDescription, CipherSuite
    except ImportError as exc:
        log.warning("proto.names not importable (%s); using the shared tlsmini tables", exc)
        import tlsmini  # the shared bench directory is on sys.path (run.py puts it there)

        return ({v: k for k, v in tlsmini.CIPHERS.items()},
                {v: k for k, v in tlsmini.ALERTS.items()}, "tlsmini (fallback)")
    return _enum_table(CipherSuite), _enum_table(AlertDescription), "proto.names"


def _code(name: object, table: dict[str, int]) -> int | None:
    if isinstance(name, int) and not isinstance(name, bool):
        return name
    if not isinstance(name, str) or not name:
        return None
    v = table.get(name)
    if v is None:
        v = table.get(name.lower(), table.get(name.upper()))
    if v is None:
        m = _UNKNOWN_RE.match(name) or _GREASE_RE.match(name)
        if m:
            return int(m.group(1), 0)
    return v


class Stats:
    __slots__ = ("lines", "connections", "bad_lines", "unmapped_cipher", "unmapped_alert", "unmapped_version")

    def __init__(self) -> None:
        self.lines = self.connections = self.bad_lines = 0
        self.unmapped_cipher = self.unmapped_alert = self.unmapped_version = 0

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}


def convert_record(r: dict, ciphers: dict[str, int], alerts: dict[str, int], st: Stats) -> dict | None:
    """One tlsdiag summary -> one peer-format record (None: not a connection row)."""
    client, server = r.get("client"), r.get("server")
    if not isinstance(client, str) or not isinstance(server, str):
        return None
    out: dict = {"client": client, "server": server, "sni": r.get("server_name")}
    v = r.get("version")
    if v is None:
        out["version"] = None
    elif v in VERSIONS:
        out["version"] = VERSIONS[v]
    else:
        st.unmapped_version += 1
        out["version"] = v
    c = r.get("cipher")
    if c is None:
        out["cipher"] = None
    else:
        code = _code(c, ciphers)
        if code is None:
            st.unmapped_cipher += 1
            out["cipher"] = str(c)
        else:
            out["cipher"] = "0x%04x" % code
    out["alert"] = None
    al = r.get("alerts")
    if isinstance(al, list) and al:
        first = al[0] if isinstance(al[0], dict) else {}
        code = _code(first.get("description"), alerts)
        if code is None:
            st.unmapped_alert += 1
            out["alert"] = first.get("description")
        else:
            out["alert"] = code
    if r.get("outcome") is not None:
        out["outcome"] = r["outcome"]
    return out


def convert_lines(lines: Iterable[str], out: IO[str], ciphers: dict[str, int], alerts: dict[str, int]) -> Stats:
    st = Stats()
    for line in lines:
        if not line.strip():
            continue
        st.lines += 1
        try:
            r = json.loads(line)
        except ValueError:
            st.bad_lines += 1
            continue
        if not isinstance(r, dict):
            st.bad_lines += 1
            continue
        rec = convert_record(r, ciphers, alerts, st)
        if rec is None:
            continue
        st.connections += 1
        out.write(json.dumps(rec, separators=(",", ":")) + "\n")
    return st


def convert_file(src: str, dst: str, tables: tuple[dict[str, int], dict[str, int], str] | None = None) -> Stats:
    ciphers, alerts, _source = tables or load_tables()
    with open(src, encoding="utf-8", errors="replace") as fi, open(dst, "w", encoding="utf-8") as fo:
        return convert_lines(fi, fo, ciphers, alerts)
