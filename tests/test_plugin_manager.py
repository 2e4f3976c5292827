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


# --------------------------------------------------------------------------- hooks through pluggy


class _Acme2(MeterAdapter):
    """A meter registered through a hook implemented under another function name."""

    type_id: ClassVar[str] = "meters.acme2"


class _SpecnamePlugin:
    @hookimpl(specname="kwhub_register_meter_adapters")
    def add_my_meters(self, register):  # noqa: ANN001, ANN201
        register(_Acme2)


class _Misspelled:
    def __init__(self, hook: str) -> None:
        setattr(self, hook, hookimpl(lambda register: None))


def test_specname_implementations_register():
    reg = load_plugins(use_entry_points=False, extra=[("specname", _SpecnamePlugin())])
    assert reg.adapters["meters.acme2"] is _Acme2
    assert reg.plugins["specname"].adapters == ["meters.acme2"]
    assert "kwhub_register_meter_adapters" in reg.plugins["specname"].hooks


def test_every_misspelled_plugin_is_reported_not_only_the_first():
    import types

    one = types.ModuleType("kwhub_typo_one")
    one.kwhub_register_meter_adaptors = hookimpl(lambda register: None)  # type: ignore[attr-defined]
    two = types.ModuleType("kwhub_typo_two")
    two.kwhub_register_esg_adapter = hookimpl(lambda register: None)  # type: ignore[attr-defined]
    reg = load_plugins(use_entry_points=False, extra=[("typo_one", one), ("typo_two", two)])
    assert "unknown hook kwhub_register_meter_adaptors (did you mean kwhub_register_meter_adapters?)" \
        in reg.plugins["typo_one"].error
    assert "unknown hook kwhub_register_esg_adapter" in reg.plugins["typo_two"].error
    assert not reg.plugins["meters_csv"].error  # the others load
    with pytest.raises(PluginLoadError, match="typo_one.*typo_two"):
        load_plugins(use_entry_points=False, extra=[("typo_one", one), ("typo_two", two)], strict=True)


def test_an_undecorated_hook_function_is_reported_and_never_runs():
    import types

    called = []
    mod = types.ModuleType("kwhub_undecorated")

    def kwhub_register_meter_adapters(register):  # noqa: ANN001, ANN202
        called.append(True)
        register(_Acme2)

    kwhub_register_meter_adapters.__module__ = mod.__name__
    mod.kwhub_register_meter_adapters = kwhub_register_meter_adapters  # type: ignore[attr-defined]
    reg = load_plugins(use_entry_points=False, extra=[("undecorated", mod)])
    assert called == [] and "meters.acme2" not in reg.adapters
    assert "kwhub_register_meter_adapters is not marked @hookimpl" in reg.plugins["undecorated"].error


VENDOR = '''
from kwhub.core.hookspecs import hookimpl

@hookimpl
def kwhub_sniff_meter_file(path, head):
    return "meters.vendor" if head.startswith(b"VENDOR-EXPORT") else None
'''


@pytest.mark.parametrize("ep_name", ["aaa_vendor", "zzz_vendor"])
def test_a_third_party_csv_sniffer_wins_its_files_whatever_its_name(tmp_path, monkeypatch, ep_name):
    from kwhub.hub.ingest.batch import sniff_adapter

    site = tmp_path / "site"
    site.mkdir()
    _install_fake_distribution(site, "kwhub-vendor", {"kwhub_vendor": VENDOR}, {ep_name: "kwhub_vendor"})
    monkeypatch.syspath_prepend(str(site))
    f = tmp_path / "export.csv"
    f.write_bytes(b"VENDOR-EXPORT,v2\nmeter,time,kwh\nm1,2026-10-01T00:00Z,1.5\n")
    plain = tmp_path / "plain.csv"
    plain.write_bytes(b"channel_id,interval_start,kwh\nm1,2026-10-01T00:00Z,1.5\n")
    # entry points load in name order: "aaa_vendor" before the built-in meters_csv, "zzz_vendor" after
    reg = load_plugins(use_entry_points=True, allow={ep_name, "meters_csv", "meters_greenbutton"})
    assert reg.plugins[ep_name].error == "" and "meters_csv" in reg.plugins
    assert sniff_adapter(f, reg) == "meters.vendor"
    assert sniff_adapter(plain, reg) == "meters.csv"


def test_hook_wrappers_see_the_calls_and_tracing_prints_them(monkeypatch, capsys):
    seen = []

    class Wrapper:
        @hookimpl(wrapper=True)
        def kwhub_sniff_meter_file(self, path, head):  # noqa: ANN001, ANN201
            result = yield
            seen.append((path.name, result))
            return result

    monkeypatch.setenv("KWHUB_TRACE_PLUGINS", "1")
    reg = load_plugins(use_entry_points=False, extra=[("wrapper", Wrapper())])
    assert reg.pm is not None
    reg.pm.hook.kwhub_sniff_meter_file(path=Path("x.xml"), head=b'<feed xmlns:espi="http://naesb.org/espi">')
    assert seen == [("x.xml", "meters.greenbutton")]
    assert "kwhub_sniff_meter_file" in capsys.readouterr().err


def test_plugins_list_shows_hooks():
    out = subprocess.run([sys.executable, "-m", "kwhub.hub.cli.main", "plugins", "list", "--json"],
                         capture_output=True, text=True, cwd=ROOT, env={**os.environ, "KWHUB_NO_ENTRYPOINTS": "1"})
    data = json.loads(out.stdout)
    csv = next(p for p in data["plugins"] if p["name"] == "meters_csv")
    assert csv["hooks"] == ["kwhub_register_meter_adapters", "kwhub_sniff_meter_file"]
