"""The parsing core and the contract are sans-I/O (STYLE 1): importing them loads no socket,
capture, Kafka or TLS-stack module, and their source never imports a clock.

Measured here: ``proto.x509facts`` (certificate facts, via ``cryptography.x509``) does load
``socket`` / ``selectors`` / ``select``, transitively through the standard library
(``cryptography.x509`` -> ``email.utils`` -> ``socket``, for ``getfqdn``); nothing in it opens
one.  That path is asserted precisely below rather than hidden.
"""
from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: modules whose presence means I/O (sockets, capture, Kafka, TLS stacks, event loops)
IO_MODULES = ("socket", "_socket", "select", "selectors", "ssl", "_ssl", "pcapy", "kafka",
              "asyncio", "subprocess", "http", "urllib.request", "mmap")
#: the wire core and the contract; ``cext.wire`` loads the selected engine (the compiled
#: modules in the "c" run), the ``_py`` twins are imported by name
CORE = ("cext.wire", "cext.events", "cext.errors", "cext.ja4", "cext._wire_py", "cext._tls_py",
        "cext._flows_py", "cext._session_py", "proto", "proto.summary", "proto.render",
        "proto.names", "proto.history")
#: every source of the wire core, and the contract modules it and the JSON rendering use
CORE_SOURCES = sorted([str(p.relative_to(ROOT)) for p in (ROOT / "cext").glob("*.py")]
                      + ["proto/__init__.py", "proto/summary.py", "proto/render.py",
                         "proto/names.py", "proto/history.py"])


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


@pytest.mark.parametrize("env", [{"TLSDIAG_NO_EXTENSIONS": "0"}, {"TLSDIAG_NO_EXTENSIONS": "1"}],
                         ids=["c", "py"])
def test_core_loads_no_io_module(env):
    mods = loaded_after(CORE, env)
    assert {"cext._flows_py", "cext.ja4", "proto.render"} <= mods    # the imports did happen
    if env["TLSDIAG_NO_EXTENSIONS"] == "0" and importlib.util.find_spec("cext._wire"):
        assert {"cext._wire", "cext._tls", "cext._session", "cext._flows"} <= mods
    assert io_in(mods) == []
    assert not {m for m in mods if m.split(".")[0] in ("sensor", "analyzer", "tlsdiag")}


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


def test_core_sources_are_listed():
    assert "cext/_flows_py.py" in CORE_SOURCES and "proto/render.py" in CORE_SOURCES
    assert {"cext/events.py", "cext/ja4.py", "cext/wire.py"} <= set(CORE_SOURCES)


@pytest.mark.parametrize("rel", CORE_SOURCES)
def test_core_source_imports_no_clock_or_io(rel):
    """No clock either: time comes from the packets (``time`` itself is loaded by the
    interpreter at start-up, so it is checked in the source, not in sys.modules)."""
    imports = _imports(ROOT / rel)
    banned = {"time", "datetime", "socket", "select", "selectors", "ssl", "pcapy", "kafka",
              "asyncio", "threading", "subprocess"}
    assert not {m.split(".")[0] for m in imports} & banned, imports


@pytest.mark.parametrize("rel", sorted(str(p.relative_to(ROOT)) for p in (ROOT / "cext").iterdir()
                                        if p.suffix in (".pyx", ".pxd", ".pyi")))
def test_cython_source_imports_no_clock_or_io(rel):
    text = (ROOT / rel).read_text()
    for banned in ("import time", "import socket", "import datetime", "from time",
                   "from socket", "from libc.time", "gettimeofday", "clock_gettime"):
        assert banned not in text
