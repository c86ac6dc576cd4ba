"""The packages are layers that only point down:

    proto  <-  cext  <-  sensor
    proto  <-  analyzer
    tlsdiag (the application: commands, settings, logging, metrics, Kafka admin) -> all of them

and nothing imports ``tlsdiag``.  Every ``import``/``from`` statement counts -- at module level
or inside a function, where a cycle would hide until run time -- and so do ``cimport`` in the
Cython sources and ``importlib.import_module("...")`` with a literal name.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("proto", "cext", "sensor", "analyzer", "tlsdiag")
#: package -> the packages of ours it may import (besides itself)
ALLOWED = {
    "proto": set(),
    "cext": {"proto"},
    "sensor": {"cext", "proto"},
    "analyzer": {"proto"},
    "tlsdiag": {"proto", "cext", "sensor", "analyzer"},
}
_CYTHON_IMPORT = re.compile(r"^\s*(?:from\s+([\w.]+)\s+c?import|c?import\s+([\w.]+))", re.M)


def _targets(path: Path, package: str) -> list[tuple[int, str]]:
    """(line, imported module) for every import in ``path`` (relative imports resolved)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".pyx", ".pxd"):
        return [(text.count("\n", 0, m.start()) + 1, m.group(1) or m.group(2))
                for m in _CYTHON_IMPORT.finditer(text)]
    out = []
    for node in ast.walk(ast.parse(text, str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-node.level])
                mod = base + ("." + node.module if node.module else "")
            else:
                mod = node.module or ""
            out.append((node.lineno, mod))
            # ``from pkg import module`` names modules too
            out += [(node.lineno, mod + "." + a.name) for a in node.names]
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                   or (isinstance(node.func, ast.Name) and node.func.id == "__import__"))):
            out.append((node.lineno, node.args[0].value))
    return out


def violations(root: Path = ROOT) -> list[str]:
    bad: list[str] = []
    seen: set[tuple[Path, int, str]] = set()
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*")):
            if path.suffix not in (".py", ".pyx", ".pxd") or "__pycache__" in path.parts:
                continue
            for line, target in _targets(path, package):
                top = target.split(".")[0]
                if (top in PACKAGES and top != package and top not in ALLOWED[package]
                        and (path, line, top) not in seen):
                    seen.add((path, line, top))
                    bad.append("%s:%d imports %s (%s may import only %s)" % (
                        path.relative_to(root), line, target, package,
                        ", ".join(sorted(ALLOWED[package])) or "nothing of ours"))
    return bad


def test_layers_point_down_only():
    bad = violations()
    assert not bad, "upward or cyclic imports:\n  " + "\n  ".join(bad)


def test_nothing_imports_the_application():
    assert not any(" imports tlsdiag" in v for v in violations())


@pytest.mark.parametrize("package,source,expected", [
    ("sensor", "def f():\n    from analyzer import engine\n", "imports analyzer"),
    ("analyzer", "import cext.wire\n", "imports cext.wire"),
    ("cext", "from sensor.ja4 import ja4\n", "imports sensor.ja4"),
    ("proto", "import importlib\nm = importlib.import_module('analyzer.rules')\n",
     "imports analyzer.rules"),
    ("analyzer", "from tlsdiag.status import ExitStatus\n", "imports tlsdiag.status"),
    ("cext", "from sensor cimport _flows\n", "imports sensor"),
])
def test_the_checker_finds_an_upward_import(tmp_path, package, source, expected):
    """The check itself can fail: an upward import planted in a copy of the layout is named."""
    for p in PACKAGES:
        (tmp_path / p).mkdir()
        (tmp_path / p / "__init__.py").write_text("")
    name = "planted.pyx" if "cimport" in source else "planted.py"
    (tmp_path / package / name).write_text(source)
    found = violations(tmp_path)
    assert len(found) >= 1 and expected in found[0], found
    (tmp_path / package / name).write_text("import proto.names\nimport os\n")
    assert violations(tmp_path) == []
