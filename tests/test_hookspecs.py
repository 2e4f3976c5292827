"""The hook specifications are documented, tested, and misspelled hooks are refused."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

from kwhub.core import hookspecs
from kwhub.core.adapters import EsgReporter, InvoiceRenderer, MarketAdapter, MeterAdapter
from kwhub.core.hookspecs import hookimpl
from kwhub.hub.registry import PluginLoadError, load_plugins

HOOKS = sorted(n for n in dir(hookspecs) if n.startswith("kwhub_"))
TESTS = Path(__file__).parent


def test_there_is_one_register_hook_per_family_and_the_engine_hooks():
    assert {
        "kwhub_register_meter_adapters",
        "kwhub_register_market_adapters",
        "kwhub_register_erp_adapters",
        "kwhub_register_esg_adapters",
        "kwhub_register_vee_rules",
        "kwhub_register_price_components",
    } <= set(HOOKS)


@pytest.mark.parametrize("name", HOOKS)
def test_every_hook_is_documented_with_signature_and_example(name):
    fn = getattr(hookspecs, name)
    doc = inspect.getdoc(fn) or ""
    params = list(inspect.signature(fn).parameters)
    assert len(doc.splitlines()[0]) > 20, f"{name}: first docstring line must say what it does"
    assert f"{name}(" in doc, f"{name}: docstring must show the signature"
    for p in params:
        assert p in doc, f"{name}: parameter {p} is not documented"
    assert "Example::" in doc and "@hookimpl" in doc, f"{name}: docstring must carry an example"


def _test_sources() -> str:
    return "\n".join(p.read_text() for p in TESTS.rglob("test_*.py") if p.name != Path(__file__).name)


@pytest.mark.parametrize("name", HOOKS)
def test_every_hook_has_a_test(name):
    """Each hook name is used inside a test function outside this file."""
    found = False
    for path in TESTS.rglob("test_*.py"):
        if path.name == Path(__file__).name:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test"):
                if re.search(rf"\b{name}\b", ast.get_source_segment(path.read_text(), node) or ""):
                    found = True
                    break
        if found:
            break
    # a hookimpl defined at module level and exercised by a test in the same file counts too
    if not found:
        for path in TESTS.rglob("test_*.py"):
            if path.name != Path(__file__).name and re.search(rf"def {name}\(", path.read_text()):
                found = True
    assert found, f"hook {name} has no test"


class _Misspelled:
    @hookimpl
    def kwhub_register_meter_adaptors(self, register):  # sic: not a hook
        register(MeterAdapter)


def test_a_plugin_implementing_an_unknown_hook_is_reported():
    reg = load_plugins(use_entry_points=False, extra=[("typo", _Misspelled())], strict=False)
    assert "unknown hook" in reg.plugins["typo"].error
    assert "kwhub_register_meter_adaptors" in reg.plugins["typo"].error
    with pytest.raises(PluginLoadError):
        load_plugins(use_entry_points=False, extra=[("typo", _Misspelled())], strict=True)


def test_builtin_plugins_implement_only_known_hooks(registry):
    assert registry.errors == [], [(p.name, p.error) for p in registry.errors]
    for fam, base in (("meters", MeterAdapter), ("markets", MarketAdapter), ("esg", EsgReporter)):
        adapters = registry.family(fam)
        assert adapters, f"no built-in {fam} adapter"
        assert all(issubclass(c, base) for c in adapters.values())
    assert any(issubclass(c, InvoiceRenderer) for c in registry.family("erp").values())
