"""The layers import downwards only: plugins may use the hub's helpers and the core; the hub
reaches plugins through the registry (entry points), never by import; the core imports neither."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(folder: str, root: Path = ROOT) -> list[tuple[str, int, str]]:
    """(file, line, imported module) of every import statement under ``root / folder``."""
    found = []
    for path in sorted((root / folder).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [(str(path.relative_to(root)), node.lineno, a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.append((str(path.relative_to(root)), node.lineno, node.module))
    return found


def _offending(folder: str, forbidden: tuple[str, ...], root: Path = ROOT) -> list[str]:
    return [f"{f}:{line} imports {mod}" for f, line, mod in _imports(folder, root)
            if mod.startswith(forbidden)]


def test_the_hub_imports_no_plugin_module():
    assert _offending("hub", ("kwhub.plugins", "plugins.")) == []


def test_the_core_imports_neither_hub_nor_plugins():
    assert _offending("core", ("kwhub.hub", "kwhub.plugins", "hub.", "plugins.")) == []


def test_the_check_sees_an_import_inside_a_function(tmp_path):
    """Imports deferred into functions count as much as top-level ones."""
    (tmp_path / "hub").mkdir()
    (tmp_path / "hub" / "late.py").write_text("def f():\n    from kwhub.plugins.meters.csv_meter import CsvMeter\n")
    assert _offending("hub", ("kwhub.plugins",), tmp_path) == ["hub/late.py:2 imports kwhub.plugins.meters.csv_meter"]
