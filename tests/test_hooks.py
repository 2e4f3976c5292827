"""One test per hook, called through pluggy with the built-in plugins, and docs/plugins.md kept
equal to the hook specifications (as datasette documents its hooks)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
import typer

from kwhub.core import hookspecs
from kwhub.core.adapters import (
    EsgReporter,
    InvoiceRenderer,
    InvoiceTransport,
    MarketAdapter,
    MeterAdapter,
)
from kwhub.core.pricing.base import PriceComponent
from kwhub.core.vee.engine import Rule
from kwhub.hub.registry import load_plugins

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "plugins.md"
HOOKS = sorted(n for n in dir(hookspecs) if n.startswith("kwhub_"))


@pytest.fixture(scope="module")
def reg():  # noqa: ANN201
    return load_plugins(use_entry_points=False, strict=True)


def _registered(reg, hook: str) -> list[type]:  # noqa: ANN001
    seen: list[type] = []
    getattr(reg.pm.hook, hook)(register=seen.append)
    return seen


def test_hook_kwhub_register_meter_adapters(reg):
    classes = _registered(reg, "kwhub_register_meter_adapters")
    assert classes and all(issubclass(c, MeterAdapter) for c in classes)
    assert {c.type_id for c in classes} >= {"meters.csv", "meters.greenbutton", "meters.modbus"}


def test_hook_kwhub_register_market_adapters(reg):
    classes = _registered(reg, "kwhub_register_market_adapters")
    assert classes and all(issubclass(c, MarketAdapter) for c in classes)


def test_hook_kwhub_register_erp_adapters(reg):
    classes = _registered(reg, "kwhub_register_erp_adapters")
    assert any(issubclass(c, InvoiceRenderer) for c in classes)
    assert any(issubclass(c, InvoiceTransport) for c in classes)


def test_hook_kwhub_register_esg_adapters(reg):
    classes = _registered(reg, "kwhub_register_esg_adapters")
    assert classes and all(issubclass(c, EsgReporter) for c in classes)


def test_hook_kwhub_register_vee_rules(reg):
    classes = _registered(reg, "kwhub_register_vee_rules")
    assert classes and all(issubclass(c, Rule) and c.rule_id for c in classes)


def test_hook_kwhub_register_price_components(reg):
    classes = _registered(reg, "kwhub_register_price_components")
    assert classes and all(issubclass(c, PriceComponent) and c.kind for c in classes)


def test_hook_kwhub_sniff_meter_file(reg, tmp_path):
    gb = reg.pm.hook.kwhub_sniff_meter_file(path=tmp_path / "a.xml", head=b'<feed xmlns:espi="http://naesb.org/espi">')
    csv = reg.pm.hook.kwhub_sniff_meter_file(path=tmp_path / "a.csv", head=b"channel_id,interval_start,kwh\n")
    nothing = reg.pm.hook.kwhub_sniff_meter_file(path=tmp_path / "a.bin", head=b"\x00\x01")
    assert (gb, csv, nothing) == ("meters.greenbutton", "meters.csv", None)


def test_hook_kwhub_cli_commands():
    class Plugin:
        @hookspecs.hookimpl
        def kwhub_cli_commands(self, app):  # noqa: ANN001, ANN201
            @app.command("acme-status")
            def acme_status() -> None:
                print("ok")

    reg = load_plugins(use_entry_points=False, extra=[("acme", Plugin())])
    app = typer.Typer()
    app.command("noop")(lambda: None)
    reg.pm.hook.kwhub_cli_commands(app=app)
    assert "acme-status" in [c.name for c in app.registered_commands]


def test_every_hook_has_its_test():
    names = {n.removeprefix("test_hook_") for n in globals() if n.startswith("test_hook_")}
    assert names == set(HOOKS)


def _sections() -> dict[str, str]:
    text = DOC.read_text()
    parts = re.split(r"^### `(kwhub_\w+)\(([^)]*)\)`\s*$", text, flags=re.M)
    return {parts[i]: parts[i + 1] + "\n" + parts[i + 2] for i in range(1, len(parts) - 1, 3)}


def test_the_plugins_page_documents_every_hook_with_its_exact_signature():
    sections = _sections()
    assert set(sections) == set(HOOKS)
    for name, body in sections.items():
        params, rest = body.split("\n", 1)
        expected = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
        assert params == expected, f"{name}: the page says ({params}), the spec ({expected})"
        for word in ("**Called**", "**Returns**", "**Since**", "**Built-in example:**", "```python", "@hookimpl"):
            assert word in rest, f"{name}: its section lacks {word}"
        for link in re.findall(r"\]\(\.\./([^)]+)\)", rest):
            assert (ROOT / link).exists(), f"{name}: broken link {link}"
