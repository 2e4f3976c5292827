"""What the review gate shows on the command line: `kwhub explain` with the run's checks and the
zeroed-interval count, and the CSV forms of `kwhub report energy` and `kwhub owners statement`.

Campus: ``TOML`` of ``tests/test_review_cli.py`` (hall A buys gt1, co-owned 50/50 by op and jv, at
60 $/MWh and the grid at cost, 50 $/MWh; per quarter-hour of October 2026: load 100, gt1 70,
grid 30 kWh; no tax). Expected figures are worked out by hand in the comments.
"""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal as D

import numpy as np
from typer.testing import CliRunner

from kwhub.core.intervals import ChannelSeries
from kwhub.hub.cli.main import app
from kwhub.hub.store import Database
from tests.test_review_cli import TOML, _setup
from tests.test_trust_scenarios import OCT


def test_explain_shows_the_checks_and_the_zeroed_intervals(tmp_path, monkeypatch):
    (tmp_path / "kwhub.toml").write_text(TOML.replace('grid_price_per_mwh = "50"',
                                                      'grid_price_per_mwh = "50"\nmissing = "zero"'))
    # October without its first hour (4 quarter-hours) on every channel: 2,976 - 4 = 2,972 values each
    starts = np.arange(OCT.start_epoch + 4 * 900, OCT.end_epoch, 900, dtype=np.int64)
    db = Database.open(work_dir=tmp_path)
    db.intervals.write_series([ChannelSeries(c, 15, starts, np.full(starts.size, v), np.zeros(starts.size, np.uint8))
                               for c, v in (("a.load", 100.0), ("gt1.net", 70.0), ("grid.in", 30.0))],
                              layer="validated")
    db.close()
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    res = runner.invoke(app, ["settle", "--period", "2026-10"])
    assert res.exit_code == 0, res.output
    # 12 = 4 quarter-hours x 3 channels; gt1 70 x 2,972 = 208.040 MWh x 60 = 12,482.40,
    # grid 30 x 2,972 = 89.160 MWh x 50 = 4,458.00: 16,940.40
    assert "held: ppa-a: missing_intervals: 12 intervals without data were counted as 0 kWh" in res.output
    res = runner.invoke(app, ["runs", "approve", "ppa-a:2026-10:initial:1", "--by", "alice", "--issue-date",
                              "2026-11-05", "--reason", "the logger was down for an hour; the tenant agreed"])
    assert res.exit_code == 0, res.output
    assert "issued invoice OP-000001, total 16940.40 USD" in res.output
    res = runner.invoke(app, ["explain", "OP-000001", "--line", "1"])
    assert res.exit_code == 0, res.output
    out = res.output
    assert "208.040 MWh x 60.000000 = 12482.400000000 -> rounded half_up to 2 places = 12482.40" in out
    assert "Note: 12 intervals without data were counted as 0 kWh (settlement missing = zero)" in out
    assert ("  check missing_intervals: FAIL - 12 intervals without data were counted as 0 kWh (a.load: 4, "
            "gt1.net: 4, grid.in: 4); ingest the missing data or approve with a reason") in out
    # 3 channels x 2,976 quarter-hours = 8,928 channel-intervals
    assert "  check estimated_share: pass - 0 of 8928 channel-intervals estimated or edited (0.00 %, limit 10 %)" in out
    checks = [ln.split(":")[0].split()[-1] for ln in out.splitlines() if ln.startswith("  check ")]
    assert checks == ["period_ended", "measured_data", "missing_intervals", "estimated_share", "suspect_intervals",
                      "physical_limit", "unit_factor", "negative_quantity", "movement", "unbilled_energy",
                      "contract_terms"]
    res = runner.invoke(app, ["explain", "OP-000001", "--line", "1", "--format", "json"])
    exp = json.loads(res.output)
    exp = exp[0] if isinstance(exp, list) else exp
    assert exp["missing"]["zeroed_intervals"] == 12 and exp["missing"]["policy"] == "zero"
    failed = [c["check"] for c in exp["review"]["checks"] if not c["passed"]]
    assert exp["review"]["status"] == "issued" and failed == ["missing_intervals"]


def _auto(tmp_path, text: str) -> None:  # noqa: ANN001
    (tmp_path / "kwhub.toml").write_text(text.replace('policy = "manual"', 'policy = "auto"'))


def test_energy_report_as_csv(tmp_path, monkeypatch):
    runner = _setup(tmp_path, monkeypatch)
    _auto(tmp_path, TOML)
    assert runner.invoke(app, ["settle", "--period", "2026-10"]).exit_code == 0
    res = runner.invoke(app, ["report", "energy", "--period", "2026-10", "--format", "csv"])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[0] == "party,source,allocated_kwh,billed_kwh,billed_by,unbilled_kwh,reason,declared"
    rows = list(csv.DictReader(io.StringIO(res.output)))
    # gt1 70 x 2,976 = 208,320 kWh and grid 30 x 2,976 = 89,280 kWh, all billed by ppa-a
    assert [(r["party"], r["source"], D(r["allocated_kwh"]), D(r["billed_kwh"]), r["billed_by"], D(r["unbilled_kwh"]),
             r["reason"], r["declared"]) for r in rows] == [
        ("tenant_a", "gt1", D("208320"), D("208320"), "ppa-a", D(0), "", "no"),
        ("tenant_a", "grid", D("89280"), D("89280"), "ppa-a", D(0), "", "no"),
    ]


def test_energy_report_as_csv_names_declared_unbilled_energy(tmp_path, monkeypatch):
    runner = _setup(tmp_path, monkeypatch)
    _auto(tmp_path, TOML.replace('[[contracts.components]]\nkind = "grid_pass_through"\n', "").replace(
        'sources = ["gt1"]\n', 'sources = ["gt1"]\nnot_billed = { grid = "the utility bills the grid import" }\n'))
    res = runner.invoke(app, ["settle", "--period", "2026-10"])
    assert res.exit_code == 0 and "held" not in res.output, res.output
    res = runner.invoke(app, ["report", "energy", "--period", "2026-10", "--format", "csv"])
    assert res.exit_code == 0, res.output
    rows = {r["source"]: r for r in csv.DictReader(io.StringIO(res.output))}
    # the grid's 89,280 kWh are allocated to hall A, billed by nobody, and declared so
    grid = rows["grid"]
    assert (D(grid["allocated_kwh"]), D(grid["billed_kwh"]), D(grid["unbilled_kwh"])) == (D("89280"), D(0), D("89280"))
    assert grid["reason"] == "the utility bills the grid import" and grid["declared"] == "yes"
    assert (D(rows["gt1"]["billed_kwh"]), rows["gt1"]["billed_by"]) == (D("208320"), "ppa-a")


def test_owner_statements_as_csv(tmp_path, monkeypatch):
    runner = _setup(tmp_path, monkeypatch)
    _auto(tmp_path, TOML)
    assert runner.invoke(app, ["settle", "--period", "2026-10"]).exit_code == 0
    res = runner.invoke(app, ["owners", "statement", "--period", "2026-10", "--format", "csv"])
    assert res.exit_code == 0, res.output
    folder = tmp_path / "out" / "owners"
    assert sorted(res.output.split()) == [str(folder / f"owner-statement-{p}-2026-10.csv") for p in ("jv", "op")]
    for party in ("op", "jv"):
        text = (folder / f"owner-statement-{party}-2026-10.csv").read_text()
        assert text.splitlines()[0] == "party,period,asset,kind,description,asset_total,share,amount"
        rows = list(csv.DictReader(io.StringIO(text)))
        # gt1: 208.320 MWh x 60 = 12,499.20 of revenue (the grid line is not generation revenue); 50 % = 6,249.60
        assert [(r["party"], r["period"], r["asset"], r["kind"], D(r["asset_total"]), D(r["share"]), D(r["amount"]))
                for r in rows] == [(party, "2026-10", "gt1", "revenue", D("12499.20"), D("0.5"), D("6249.60"))]
    res = runner.invoke(app, ["owners", "statement", "--period", "2026-10", "--owner", "jv", "--format", "csv",
                              "--out", str(tmp_path / "jv")])
    assert res.exit_code == 0 and [p.name for p in (tmp_path / "jv").iterdir()] == ["owner-statement-jv-2026-10.csv"]
