"""``kwhub export --format parquet`` and ``kwhub readings --from-parquet`` (SQLite)."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pytest
from typer.testing import CliRunner

from kwhub.core.allocation import unpack_array
from kwhub.core.intervals import DayBlock
from kwhub.core.quality import Quality
from kwhub.hub.cli.main import app
from kwhub.hub.store import Database
from tests.fixtures.settlement import (
    A_LOAD_TOML,
    OPERATOR_TOML,
    PPA_A_TOML,
    TENANT_A_TOML,
    write_period,
)

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

TOML = """
[hub]
name = "north campus"
timezone = "America/New_York"

""" + OPERATOR_TOML + """
[[parties]]
id = "ipp"
name = "Turbine IPP LP"
""" + TENANT_A_TOML + """
[[parties]]
id = "tenant_b"
name = "Hall B Compute Inc."

[[assets]]
id = "gt1"
kind = "gas_turbine"
capacity_kw = 55000
owners = [{ party = "ipp", share = 1 }]

[[assets]]
id = "pv"
kind = "solar"
capacity_kw = 80000
owners = [{ party = "op", share = 1 }]

[[assets]]
id = "grid"
kind = "grid_tie"
""" + A_LOAD_TOML + """
[[channels]]
id = "b.load"
party = "tenant_b"
role = "tenant_load"

[[channels]]
id = "gt1.net"
asset = "gt1"
role = "generation"

[[channels]]
id = "pv.net"
asset = "pv"
role = "generation"

[[channels]]
id = "grid.in"
asset = "grid"
role = "grid_import"

""" + PPA_A_TOML + """\
load_channels = ["a.load"]

[[contracts.components]]
kind = "fixed_energy"
price_per_mwh = "50"

[[contracts]]
id = "ppa-b"
seller = "op"
buyer = "tenant_b"
sources = ["gt1", "pv"]

[[contracts.components]]
kind = "fixed_energy"
price_per_mwh = "45"
per_source = true
source_prices = { gt1 = "40", pv = "30" }
"""

VALUES = {"a.load": 100.0, "b.load": 50.0, "gt1.net": 90.0, "pv.net": 60.0, "grid.in": 0.0}


@pytest.fixture
def campus_dir(tmp_path, monkeypatch):
    (tmp_path / "kwhub.toml").write_text(TOML)
    db = Database.open(work_dir=tmp_path)
    write_period(db, "2026-10", VALUES)
    # one validated day with an estimated slot (rule id) and a missing slot, to carry through
    vals = np.full(96, 100.0)
    qual = np.zeros(96, np.uint8)
    rids = np.zeros(96, np.uint8)
    vals[10], qual[10], rids[10] = 99.5, int(Quality.ESTIMATED), 1
    vals[11], qual[11] = np.nan, int(Quality.MISSING)
    db.intervals.write_blocks([DayBlock("a.load", date(2026, 10, 7), 15, vals, qual, rids, ("interp",),
                                        layer="validated")], layer="validated")
    db.close()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def _refused(res) -> tuple[int, str]:  # noqa: ANN001
    """Exit code and message of a command that raised a UserError (as the entry point prints it)."""
    from kwhub.hub.cli.errors import UserError

    assert isinstance(res.exception, UserError), res.output
    return res.exception.exit_code, str(res.exception) + " " + res.exception.hint


def test_open_period_is_refused(campus_dir):
    code, msg = _refused(_invoke("export", "--period", "2026-10", "--format", "parquet", "--out", "exp"))
    assert code == 1
    assert "not closed" in msg and "ppa-a, ppa-b" in msg
    assert "kwhub settle --period 2026-10 --version final" in msg
    assert not (campus_dir / "exp").exists()
    res = _invoke("settle", "--period", "2026-10", "--missing", "zero", "--format", "json")  # initial: still open
    assert res.exit_code == 0, res.output
    code, msg = _refused(_invoke("export", "--period", "2026-10", "--out", "exp"))
    assert code == 1 and "not closed" in msg and "ppa-a, ppa-b" in msg


def test_round_trip(campus_dir):
    res = _invoke("settle", "--period", "2026-10", "--version", "final", "--missing", "zero", "--format", "json")
    assert res.exit_code == 0, res.output
    runs = json.loads(res.output)
    assert {r["status"] for r in runs} == {"held"}  # one slot zeroed: a person decides
    code, msg = _refused(_invoke("export", "--period", "2026-10", "--out", "exp"))
    assert code == 1 and "not closed" in msg and "kwhub runs approve" in msg
    for r in runs:
        res = _invoke("runs", "approve", r["run_id"], "--reason", "gap of one slot checked")
        assert res.exit_code == 0, res.output
    res = _invoke("export", "--period", "2026-10", "--format", "parquet", "--out", "exp", "--json")
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output)
    assert rep["campus"] == "north_campus" and len(rep["runs"]) == 2
    iv = campus_dir / "exp" / "intervals" / "campus=north_campus" / "month=2026-10" / "part-0.parquet"
    al = campus_dir / "exp" / "allocations" / "campus=north_campus" / "month=2026-10" / "part-0.parquet"
    assert iv.exists() and al.exists()
    # October in New York: 31 days + 1 hour (DST ends 1 Nov, after the month) -> 31 x 96 slots x 5 channels
    assert rep["interval_rows"] == 31 * 96 * 5 == pq.read_table(iv).num_rows

    # readings from Parquet print exactly what readings from the store print
    for channel, start, end in (("a.load", "2026-10-07", "2026-10-08"), ("pv.net", "2026-10-01T04:00:00Z",
                                                                           "2026-11-01T04:00:00Z")):
        for fmt in ("csv", "json"):
            db_out = _invoke("readings", channel, "--layer", "validated", "--start", start, "--end", end,
                             "--format", fmt)
            pq_out = _invoke("readings", channel, "--layer", "validated", "--start", start, "--end", end,
                             "--format", fmt, "--from-parquet", "exp")
            assert db_out.exit_code == 0 and pq_out.exit_code == 0, pq_out.output
            assert pq_out.output == db_out.output
    day = _invoke("readings", "a.load", "--layer", "validated", "--start", "2026-10-07", "--format", "json",
                  "--from-parquet", "exp")
    slots = json.loads(day.output)["intervals"]
    assert slots[10]["kwh"] == 99.5 and slots[10]["rule"] == "interp" and slots[10]["quality"] != "valid"
    # the missing slot (02:45) is not printed, as from the store; the parquet row holds a null
    assert len(slots) == 95 and slots[11]["interval_start"] == "2026-10-07T03:00:00Z"
    frame = pq.read_table(iv).to_pandas()
    missing = frame[(frame.channel_id == "a.load") & (frame.quality == int(Quality.MISSING))]
    assert len(missing) == 1 and missing["kwh"].isna().all()

    # the allocation split equals the runs' frozen blobs, value for value
    db = Database.open(work_dir=campus_dir)
    try:
        from kwhub.hub.settle.service import run_allocation
        table = pq.read_table(al).to_pandas()
        assert set(table["run_id"]) <= set(rep["runs"]) and len(table) > 0
        for run_id in rep["runs"]:
            for r in run_allocation(db, run_id):
                got = table[(table.run_id == run_id) & (table.tenant == r["tenant"]) & (table.source == r["source"])]
                np.testing.assert_array_equal(got.sort_values("interval_start")["kwh"].to_numpy(),
                                              unpack_array(bytes(r["blob"])))
    finally:
        db.close()

    # exporting again rewrites the same rows
    before = pq.read_table(iv)
    res = _invoke("export", "--period", "2026-10", "--out", "exp")
    assert res.exit_code == 0, res.output
    assert pq.read_table(iv).equals(before)


def test_layer_and_folder_errors(campus_dir):
    code, msg = _refused(_invoke("readings", "a.load", "--start", "2026-10-07", "--from-parquet", "exp"))
    assert code == 2 and "validated layer only" in msg and "--layer validated" in msg
    code, msg = _refused(_invoke("readings", "a.load", "--layer", "validated", "--start", "2026-10-07",
                                 "--from-parquet", "nowhere"))
    assert code == 2 and "no Parquet export" in msg
    code, msg = _refused(_invoke("export", "--period", "2026-10", "--format", "csv"))
    assert code == 2 and "parquet" in msg
