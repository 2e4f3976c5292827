"""Plugin loading: entry points, isolation of broken plugins, strict mode, allow/block lists."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import ClassVar

import pytest

from kwhub.core.adapters import CheckResult, EsgReporter, MarketAdapter, MeterAdapter
from kwhub.core.hookspecs import hookimpl
from kwhub.hub.registry import BUILTIN_PLUGINS, PluginLoadError, load_plugins

ROOT = Path(__file__).resolve().parents[1]


def test_builtin_list_matches_pyproject_entry_points():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert data["project"]["entry-points"]["kwhub"] == BUILTIN_PLUGINS


def _install_fake_distribution(site: Path, dist: str, modules: dict[str, str], eps: dict[str, str]) -> None:
    """Write a real installed distribution (dist-info + modules) into ``site``."""
    for name, code in modules.items():
        (site / f"{name}.py").write_text(code)
    info = site / f"{dist.replace('-', '_')}-1.2.3.dist-info"  # wheel naming: no dash in the name
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text("[kwhub]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()))


GOOD = '''
from kwhub.core.adapters import MeterAdapter
from kwhub.core.hookspecs import hookimpl

class AcmeMeter(MeterAdapter):
    """Acme test meter."""
    type_id = "meters.acme"

@hookimpl
def kwhub_register_meter_adapters(register):
    register(AcmeMeter)
'''
BROKEN = "raise RuntimeError('acme driver missing')\n"


@pytest.fixture
def fake_site(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    _install_fake_distribution(site, "kwhub-acme", {"kwhub_acme": GOOD, "kwhub_broken": BROKEN},
                               {"acme": "kwhub_acme", "broken": "kwhub_broken"})
    monkeypatch.syspath_prepend(str(site))
    return site


def test_broken_installed_plugin_is_listed_and_the_others_load(fake_site):
    reg = load_plugins(use_entry_points=True, allow={"acme", "broken", "meters_csv", "esg_scope_summary"})
    assert reg.plugins["broken"].error == "RuntimeError: acme driver missing"
    assert reg.plugins["broken"].distribution == "kwhub-acme"
    assert reg.plugins["acme"].adapters == ["meters.acme"]
    assert reg.plugins["acme"].version == "1.2.3"
    assert "meters.acme" in reg.adapters and "esg.scope_summary" in reg.adapters


def test_strict_mode_turns_a_load_failure_into_an_error(fake_site, monkeypatch):
    monkeypatch.setenv("KWHUB_STRICT_PLUGINS", "1")
    with pytest.raises(PluginLoadError, match="broken"):
        load_plugins(use_entry_points=True, allow={"acme", "broken"})


def test_allow_and_block_lists(fake_site, monkeypatch):
    reg = load_plugins(use_entry_points=True, allow={"acme", "broken"}, block={"broken"})
    assert set(reg.plugins) == {"acme"}
    monkeypatch.setenv("KWHUB_PLUGINS_BLOCK", "acme")
    reg = load_plugins(use_entry_points=True, allow={"acme", "broken"})
    assert "acme" not in reg.plugins and reg.plugins["broken"].error


def test_cli_lists_plugins_and_errors_as_json(fake_site):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake_site), str(ROOT)])}
    env.pop("KWHUB_NO_ENTRYPOINTS", None)
    out = subprocess.run([sys.executable, "-m", "kwhub.hub.cli.main", "plugins", "list", "--json"],
                         capture_output=True, text=True, env=env, cwd=fake_site, timeout=120)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    by_name = {p["name"]: p for p in data["plugins"]}
    assert by_name["broken"]["error"].startswith("RuntimeError")
    families = {a["family"] for a in data["adapters"].values()}
    assert {"meters", "markets", "erp", "esg"} <= families
    assert "meters.acme" in data["adapters"]


class _Reg:
    """A plugin registering one adapter of every family plus a rule and a component."""

    class M(MeterAdapter):
        type_id: ClassVar[str] = "meters.t"

    class K(MarketAdapter):
        type_id: ClassVar[str] = "markets.t"

    class E(EsgReporter):
        type_id: ClassVar[str] = "esg.t"

        def check(self) -> CheckResult:
            return CheckResult.success("fine")

    @hookimpl
    def kwhub_register_meter_adapters(self, register):
        register(self.M)

    @hookimpl
    def kwhub_register_market_adapters(self, register):
        register(self.K)

    @hookimpl
    def kwhub_register_esg_adapters(self, register):
        register(self.E)


def test_family_hooks_register_adapters():
    reg = load_plugins(use_entry_points=False, extra=[("t", _Reg())])
    assert reg.plugins["t"].adapters == ["esg.t", "markets.t", "meters.t"]
    assert reg.adapter("esg.t")("x").check().ok


def test_registering_into_the_wrong_family_is_a_load_error():
    class Wrong:
        @hookimpl
        def kwhub_register_esg_adapters(self, register):
            register(_Reg.M)  # a meter adapter in the esg hook

    reg = load_plugins(use_entry_points=False, extra=[("wrong", Wrong())])
    assert "registered as esg" in reg.plugins["wrong"].error
    assert "meters.t" not in reg.adapters


def test_plugins_can_add_cli_commands():
    """A plugin's kwhub_cli_commands hook adds a command to the kwhub app."""
    import typer
    from typer.testing import CliRunner

    class Hello:
        @hookimpl
        def kwhub_cli_commands(self, app):
            @app.command("hello-acme")
            def hello() -> None:
                print("hello from acme")

    reg = load_plugins(use_entry_points=False, extra=[("hello", Hello())])
    app = typer.Typer()

    @app.command()
    def other() -> None:  # a second command so typer builds a group
        pass

    reg.pm.hook.kwhub_cli_commands(app=app)
    out = CliRunner().invoke(app, ["hello-acme"])
    assert out.exit_code == 0 and "hello from acme" in out.output
