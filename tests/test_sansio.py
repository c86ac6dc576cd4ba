"""The parsing core and the contract are sans-I/O (STYLE 1): importing them loads no socket,
capture, Kafka or TLS-stack module, and their source never imports a clock.

Measured here: ``proto.x509facts`` (certificate facts, via ``cryptography.x509``) does load
``socket`` / ``selectors`` / ``select``, transitively through the standard library
(``cryptography.x509`` -> ``email.utils`` -> ``socket``, for ``getfqdn``); nothing in it opens
one.  That path is asserted precisely below rather than hidden.
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: modules whose presence means I/O (sockets, capture, Kafka, TLS stacks, event loops)
IO_MODULES = ("socket", "_socket", "select", "selectors", "ssl", "_ssl", "pcapy", "kafka",
              "asyncio", "subprocess", "http", "urllib.request", "mmap")
CORE = ("sensor.tls", "sensor.flows", "sensor.session", "sensor.ja4", "cext.wire",
        "cext._wire_py", "cext._tls_py", "cext._flows_py", "cext._session_py", "cext.errors",
        "proto", "proto.summary", "proto.names")


def loaded_after(imports, env_extra=None):
    code = ("import sys, json\nbefore = set(sys.modules)\n"
            + "".join("import %s\n" % m for m in imports)
            + "print(json.dumps(sorted(set(sys.modules) - before)))\n")
    import os
    env = dict(os.environ)
    env.update(env_extra or {})
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    return set(json.loads(r.stdout))


def io_in(mods):
    return sorted(m for m in mods if m in IO_MODULES or m.split(".")[0] in IO_MODULES)


@pytest.mark.parametrize("env", [{}, {"TLSDIAG_NO_EXTENSIONS": "1"}], ids=["c", "py"])
def test_core_loads_no_io_module(env):
    mods = loaded_after(CORE, env)
    assert "sensor.tls" in mods and "proto.summary" in mods       # the imports did happen
    assert io_in(mods) == []


def test_certificate_facts_socket_only_via_email_utils():
    mods = loaded_after(["proto.x509facts"])
    assert not {"ssl", "_ssl", "pcapy", "kafka", "asyncio", "subprocess"} & mods
    if "socket" in mods:
        # the standard library's doing: email.utils imports socket at module level
        assert "email.utils" in mods
        assert "socket" in loaded_after(["email.utils"])


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module)
    return out


@pytest.mark.parametrize("rel", ["sensor/tls.py", "sensor/flows.py", "sensor/session.py",
                                 "cext/_tls_py.py", "cext/_flows_py.py", "cext/_session_py.py",
                                 "sensor/ja4.py", "cext/_wire_py.py", "cext/wire.py",
                                 "cext/errors.py", "proto/summary.py", "proto/names.py",
                                 "proto/__init__.py"])
def test_core_source_imports_no_clock_or_io(rel):
    """No clock either: time comes from the packets (``time`` itself is loaded by the
    interpreter at start-up, so it is checked in the source, not in sys.modules)."""
    imports = _imports(ROOT / rel)
    banned = {"time", "datetime", "socket", "select", "selectors", "ssl", "pcapy", "kafka",
              "asyncio", "threading", "subprocess"}
    assert not {m.split(".")[0] for m in imports} & banned, imports


@pytest.mark.parametrize("rel", ["cext/_wire.pyx", "cext/_tls.pxd", "cext/_flows.pxd",
                                 "cext/_session.pxd"])
def test_cython_source_imports_no_clock_or_io(rel):
    text = (ROOT / rel).read_text()
    for banned in ("import time", "import socket", "import datetime", "from time",
                   "from socket", "from libc.time", "gettimeofday", "clock_gettime"):
        assert banned not in text
