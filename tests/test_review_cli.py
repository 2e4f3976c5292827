"""The review gate and the period reports on the command line (SQLite, a campus with supply meters).

Campus: hall A (tenant_a) buys gt1 (co-owned 50/50 by op and jv, sold by op) at 60 $/MWh and the
grid at cost (50 $/MWh). Per quarter-hour of October 2026: load 100, gt1 70, grid 30 kWh.
"""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal as D

import numpy as np
from pypdf import PdfReader

from kwhub.hub.cli.main import app
from tests.fixtures.settlement import (
    A_LOAD_TOML,
    OPERATOR_TOML,
    PPA_A_TOML,
    TENANT_A_TOML,
    cli_campus,
)

TOML = """
[hub]
name = "review test"
timezone = "America/New_York"
""" + OPERATOR_TOML + """
[[parties]]
id = "jv"
name = "GasCo JV LP"
""" + TENANT_A_TOML + """
[[assets]]
id = "gt1"
kind = "gas_turbine"
capacity_kw = 55000
owners = [{ party = "op", share = "0.5" }, { party = "jv", share = "0.5" }]

[[assets]]
id = "grid"
kind = "grid_tie"
""" + A_LOAD_TOML + """
[[channels]]
id = "gt1.net"
role = "generation"
asset = "gt1"

[[channels]]
id = "grid.in"
role = "grid_import"
asset = "grid"

[settlement]
grid_price_per_mwh = "50"

[review]
policy = "manual"

""" + PPA_A_TOML + """\
sources = ["gt1"]

[[contracts.components]]
kind = "fixed_energy"
price_per_mwh = "60"

[[contracts.components]]
kind = "grid_pass_through"
"""


def _setup(tmp_path, monkeypatch):  # noqa: ANN001, ANN202
    return cli_campus(tmp_path, monkeypatch, TOML, {"a.load": 100.0, "gt1.net": 70.0, "grid.in": 30.0})


def test_dry_run_stores_nothing_then_manual_policy_waits_for_approval(tmp_path, monkeypatch):
    runner = _setup(tmp_path, monkeypatch)
    res = runner.invoke(app, ["settle", "--period", "2026-10", "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "dry run" in res.output and "12499.20" in res.output and "4464.00" in res.output
    res = runner.invoke(app, ["runs", "list", "--format", "json"])
    assert res.exit_code == 0 and json.loads(res.output) == []

    res = runner.invoke(app, ["settle", "--period", "2026-10", "--format", "json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)[0]
    # policy manual: every check passes, the run waits as a draft
    assert out["status"] == "draft" and out["invoice"] is None and out["document"]["total"] == "16963.20"
    assert all(c["passed"] for c in out["checks"])
    res = runner.invoke(app, ["invoices", "list", "--format", "json"])
    assert json.loads(res.output) == []

    res = runner.invoke(app, ["runs", "show", out["run_id"]])
    assert res.exit_code == 0 and "[pass] unbilled_energy" in res.output and "billed by ppa-a" in res.output

    res = runner.invoke(app, ["runs", "approve", out["run_id"], "--by", "alice"])  # a draft too needs a reason
    assert res.exit_code == 1 and "needs --reason" in res.output
    res = runner.invoke(app, ["runs", "approve", out["run_id"], "--by", "alice", "--issue-date", "2026-11-05",
                              "--reason", "checked against the meter readings"])
    assert res.exit_code == 0, res.output
    assert "issued invoice OP-000001, total 16963.20 USD" in res.output
    res = runner.invoke(app, ["runs", "show", out["run_id"], "--format", "json"])
    shown = json.loads(res.output)
    assert shown["status"] == "issued" and shown["decisions"][0]["actor"] == "alice"
    assert shown["decisions"][0]["action"] == "run.approve"
    assert shown["decisions"][0]["detail"]["reason"] == "checked against the meter readings"
    res = runner.invoke(app, ["runs", "approve", out["run_id"]])  # decided: refused
    assert res.exit_code == 1 and "only draft and held runs" in res.output


def test_reject_needs_a_reason_and_held_approval_needs_one_too(tmp_path, monkeypatch):
    runner = _setup(tmp_path, monkeypatch)
    text = (tmp_path / "kwhub.toml").read_text().replace('policy = "manual"', 'policy = "auto"\nchecks = { movement_max_pct = "0" }')
    (tmp_path / "kwhub.toml").write_text(text.replace('[[channels]]\nid = "a.load"', '[[channels]]\nid = "a.load"\nmax_kw = 300', 1))
    res = runner.invoke(app, ["settle", "--period", "2026-10"])
    assert res.exit_code == 0, res.output
    assert "held: ppa-a: physical_limit: above the physical limit: a.load 400.0 kW" in res.output
    run_id = "ppa-a:2026-10:initial:1"
    res = runner.invoke(app, ["runs", "approve", run_id])
    assert res.exit_code == 1 and "needs --reason" in res.output
    res = runner.invoke(app, ["runs", "reject", run_id])
    assert res.exit_code != 0 and "--reason" in res.output
    res = runner.invoke(app, ["runs", "reject", run_id, "--reason", "breaker is 300 kW: the CT ratio is wrong"])
    assert res.exit_code == 0 and "rejected" in res.output
    res = runner.invoke(app, ["runs", "list", "--status", "rejected", "--format", "json"])
    assert [r["id"] for r in json.loads(res.output)] == [run_id]


def test_energy_report_allocation_export_owners_and_emissions(tmp_path, monkeypatch):
    runner = _setup(tmp_path, monkeypatch)
    (tmp_path / "kwhub.toml").write_text((tmp_path / "kwhub.toml").read_text().replace('policy = "manual"',
                                                                                     'policy = "auto"'))
    assert runner.invoke(app, ["settle", "--period", "2026-10"]).exit_code == 0

    res = runner.invoke(app, ["report", "energy", "--period", "2026-10", "--format", "json"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output)
    rows = {(r["party"], r["source"]): r for r in rep["parties"]}
    # 70 x 2976 = 208,320 kWh of gt1 and 30 x 2976 = 89,280 kWh of grid, all billed by ppa-a
    assert D(rows[("tenant_a", "gt1")]["billed_kwh"]) == D("208320.0")
    assert D(rows[("tenant_a", "grid")]["billed_kwh"]) == D("89280.0")
    assert D(rep["unexplained_kwh"]) == 0
    src = {r["source"]: r for r in rep["sources"]}
    assert D(src["gt1"]["metered_kwh"]) == D(src["gt1"]["to_tenants_kwh"]) == D("208320.0")
    res = runner.invoke(app, ["report", "energy", "--period", "2026-10"])
    assert "Unexplained kWh: 0.000" in res.output

    res = runner.invoke(app, ["report", "allocation", "--period", "2026-10", "--tenant", "tenant_a"])
    assert res.exit_code == 0, res.output
    table = list(csv.DictReader(io.StringIO(res.output)))
    assert len(table) == 2976 and table[0]["interval_start"] == "2026-10-01T04:00:00+00:00"
    gt1 = np.array([float(r["gt1"]) for r in table])
    grid = np.array([float(r["grid"]) for r in table])
    total = np.array([float(r["total"]) for r in table])
    assert (gt1 == 70.0).all() and (grid == 30.0).all() and (total == 100.0).all()  # conservation per interval

    res = runner.invoke(app, ["owners", "statement", "--period", "2026-10", "--format", "json"])
    assert res.exit_code == 0, res.output
    # gt1 revenue 12,499.20 split 50/50 = 6,249.60 each (the grid line is not generation revenue)
    for party in ("op", "jv"):
        st = json.loads((tmp_path / "out" / "owners" / f"owner-statement-{party}-2026-10.json").read_text())
        assert D(st["revenue"]) == D("6249.60")
    res = runner.invoke(app, ["owners", "statement", "--period", "2026-10", "--owner", "jv", "--format", "pdf"])
    assert res.exit_code == 0, res.output
    text = PdfReader(str(tmp_path / "out" / "owners" / "owner-statement-jv-2026-10.pdf")).pages[0].extract_text()
    assert "Owner statement 2026-10" in text and "6,249.60" in text
    res = runner.invoke(app, ["owners", "statement", "--period", "2026-10", "--owner", "tenant_a"])
    assert res.exit_code == 1 and "owns no asset" in str(res.exception)

    res = runner.invoke(app, ["emissions", "--period", "2026-10", "--format", "json"])
    assert res.exit_code == 0, res.output
    em = {r["party"]: r for r in json.loads(res.output)["parties"]}
    # from the run's frozen split: 208.320 MWh from gt1 + 89.280 MWh from the grid
    assert D(em["tenant_a"]["energy_mwh"]) == D("297.6")
