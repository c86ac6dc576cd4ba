"""Cipher-suite names: IANA <-> OpenSSL, from the local OpenSSL (``openssl ciphers -V -stdname``)."""
from __future__ import annotations

import logging
import re
import shutil
import ssl
import subprocess
from dataclasses import dataclass
from typing import Iterable

log = logging.getLogger(__name__)

__all__ = ["Suite", "SuiteTable", "suite_table"]


@dataclass(frozen=True, slots=True)
class Suite:
    code: int
    iana: str
    openssl: str
    min_version: str  # "SSLv3" | "TLSv1.2" | "TLSv1.3" as OpenSSL labels them


class SuiteTable:
    """Two-way cipher-suite name table.  Never raises on lookup."""

    def __init__(self, suites: Iterable[Suite]) -> None:
        self.by_code: dict[int, Suite] = {}
        self.by_name: dict[str, Suite] = {}
        for s in suites:
            self.by_code.setdefault(s.code, s)
            self.by_name.setdefault(s.iana.upper(), s)
            self.by_name.setdefault(s.openssl.upper(), s)

    def iana(self, code: int) -> str:
        s = self.by_code.get(code)
        return s.iana if s else f"unknown-0x{code:04x}"

    def iana_for_openssl(self, name: str) -> str:
        s = self.by_name.get(name.upper())
        return s.iana if s else name

    def lookup(self, name: str) -> Suite | None:
        return self.by_name.get(name.strip().upper())


_CIPHERS_RE = re.compile(r"0x([0-9A-Fa-f]{2}),0x([0-9A-Fa-f]{2})\s+-\s+(\S+)\s+-\s+(\S+)\s+(\S+)")
_suite_table: SuiteTable | None = None


def suite_table() -> SuiteTable:
    """Built once per process from the local OpenSSL; falls back to Python's list (OpenSSL names only)."""
    global _suite_table
    if _suite_table is not None:
        return _suite_table
    suites: list[Suite] = []
    exe = shutil.which("openssl")
    if exe:
        try:
            out = subprocess.run([exe, "ciphers", "-V", "-stdname", "ALL:COMPLEMENTOFALL:@SECLEVEL=0"],
                                 capture_output=True, text=True, timeout=10, check=False).stdout
            for m in _CIPHERS_RE.finditer(out):
                suites.append(Suite(int(m.group(1) + m.group(2), 16), m.group(3), m.group(4), m.group(5)))
        except (OSError, subprocess.SubprocessError) as e:
            log.warning("cannot list cipher suites with %s: %s", exe, e)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        ctx.set_ciphers("ALL:COMPLEMENTOFALL:@SECLEVEL=0")
    except ssl.SSLError:
        pass
    for c in ctx.get_ciphers():
        name = str(c["name"])
        suites.append(Suite(int(c["id"]) & 0xFFFF, name, name, str(c.get("protocol", ""))))
    _suite_table = SuiteTable(suites)
    return _suite_table
