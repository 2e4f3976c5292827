"""`kwhub init` writes a campus that teaches: every section, sample files, and a check that passes.

Each starter is written into a fresh folder and `kwhub adapters check` runs on it as written.
The campus starter's sample meter files are ingested and `kwhub readings --summary` shows the
hand-computed totals, grouped by unit.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from kwhub.hub.cli import ingest_cmds, setup_cmds
from kwhub.hub.config import ConfigFile, load_config
from kwhub.hub.starter import STARTERS

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "hub" / "templates" / "kwhub.example.toml"


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KWHUB_CONFIG", raising=False)
    app = typer.Typer()
    setup_cmds.register(app)
    ingest_cmds.register(app)
    runner = CliRunner()

    def run(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(app, list(args))

    return run


def test_the_template_has_every_section_and_loads(registry):
    written = tomllib.loads(TEMPLATE.read_text(encoding="utf-8"))
    assert set(written) == set(ConfigFile.model_fields), "every section of kwhub.toml is in the template"
    cfg = load_config(TEMPLATE, registry=registry)
    assert {c.id for c in cfg.campus.channels} >= {"gt1.net", "gt1.fuel", "grid.in", "hall_a.load"}
    assert cfg.campus.contracts[0].timezone == "America/New_York"


def test_example_list_names_every_starter(cli):
    res = cli("init", "--example", "list")
    assert res.exit_code == 0
    assert [line.split(":")[0] for line in res.output.splitlines()] == list(STARTERS)


@pytest.mark.parametrize("name", ["campus", "single-tenant", "demo"])
def test_each_starter_passes_adapters_check_as_written(cli, tmp_path, name):
    res = cli("init", "--example", name)
    assert res.exit_code == 0, res.output
    check = cli("adapters", "check", "--json")
    assert check.exit_code == 0, check.output
    results = json.loads(check.output[check.output.index("["):])
    assert results and all(r["ok"] for r in results), results


def test_init_refuses_an_existing_config_and_an_unknown_example(cli, tmp_path):
    assert cli("init").exit_code == 0
    again = cli("init")
    assert again.exit_code != 0 and "already exists" in str(again.exception)  # main.run renders UserError
    assert cli("init", "--force").exit_code == 0
    unknown = cli("init", "--dir", "other", "--example", "nosuch")
    assert unknown.exit_code != 0 and "unknown example" in str(unknown.exception)


def test_campus_samples_ingest_and_summarise_by_unit(cli, tmp_path):
    assert cli("init").exit_code == 0
    for name in ("campus_2026-10-01.csv", "fuel_2026-10-01.csv"):
        res = cli("ingest", "--adapter", "campus_meters", "--no-vee", f"meters/{name}")
        assert res.exit_code == 0, res.output
    res = cli("ingest", "--adapter", "revenue_meters", "--no-vee", "meters/revenue_meter_2026-10-01.csv")
    assert res.exit_code == 0, res.output
    out = cli("readings", "--summary", "--format", "json")
    assert out.exit_code == 0, out.output
    summary = json.loads(out.output)
    totals = {c["channel_id"]: (c["unit"], c["total"]) for c in summary["channels"]}
    # revenue meter GT1-REV channel 1, kW at 15 min: (36000 + 36400 + 36800 + 37200) / 4 = 36600 kWh
    assert totals["gt1.net"] == ("kWh", pytest.approx(36600.0))
    assert totals["hall_a.load"] == ("kWh", pytest.approx(10000 + 10100 + 10200 + 10300))
    assert totals["grid.in"] == ("kWh", pytest.approx(4000.0))
    assert totals["gt1.fuel"] == ("MMBtu", pytest.approx(88.2 + 89.18 + 90.16 + 91.14))  # 358.68 MMBtu
    by_unit = summary["by_unit"]
    assert by_unit["kWh"]["channels"] == 4 and by_unit["kWh"]["total"] == pytest.approx(36600 + 40600 + 4000 + 0)
    assert by_unit["MMBtu"] == {"channels": 1, "intervals": 4, "total": pytest.approx(358.68)}
    text = cli("readings", "--summary", "--format", "table")
    assert "readings (raw) in kWh" in text.output and "readings (raw) in MMBtu" in text.output
    assert "total MMBtu" in text.output


def test_a_fuel_channel_exports_under_its_unit_and_ingests_back(cli, tmp_path):
    assert cli("init").exit_code == 0
    assert cli("ingest", "--adapter", "campus_meters", "--no-vee", "meters/fuel_2026-10-01.csv").exit_code == 0
    out = cli("readings", "gt1.fuel", "--start", "2026-10-01", "--format", "csv")
    assert out.output.splitlines()[0] == "channel_id,interval_start,interval_minutes,mmbtu,quality,rule"
    (tmp_path / "export.csv").write_text(out.output)
    again = cli("ingest", "--adapter", "campus_meters", "--no-vee", "export.csv")
    assert again.exit_code == 0, again.output
