"""``kwhub settle``, ``kwhub invoices list|show`` and ``kwhub explain`` end to end (SQLite)."""

from __future__ import annotations

import json
from decimal import Decimal as D

from kwhub.hub.cli.main import app
from tests.fixtures.settlement import (
    A_LOAD_TOML,
    OPERATOR_TOML,
    PPA_A_TOML,
    TENANT_A_TOML,
    cli_campus,
)

TOML = '[hub]\nname = "settle test"\n' + OPERATOR_TOML + TENANT_A_TOML + A_LOAD_TOML + PPA_A_TOML + """\
load_channels = ["a.load"]

[[contracts.components]]
kind = "fixed_energy"
price_per_mwh = "50.125"

[[contracts.components]]
kind = "demand"
price_per_kw_month = "10"
"""


def test_settle_list_show_explain(tmp_path, monkeypatch):
    runner = cli_campus(tmp_path, monkeypatch, TOML, {"a.load": 100.0})

    res = runner.invoke(app, ["settle", "--period", "2026-10", "--format", "json"])
    assert res.exit_code == 0, res.output
    runs = json.loads(res.output)
    assert runs[0]["status"] == "issued" and runs[0]["invoice"]["number"] == "OP-000001"
    # 297.6 MWh x 50.125 = 14917.2 ; 400 kW x 10 = 4000
    assert runs[0]["invoice"]["total"] == "18917.20"

    res = runner.invoke(app, ["invoices", "list", "--format", "json"])
    assert res.exit_code == 0, res.output
    docs = json.loads(res.output)
    assert [d["number"] for d in docs] == ["OP-000001"]
    assert docs[0]["lines"][0]["amount"] == "14917.20" and docs[0]["lines"][0]["determinants"]["energy_kwh"] == "297600.0"

    res = runner.invoke(app, ["invoices", "show", "OP-000001", "--format", "json"])
    assert res.exit_code == 0, res.output
    shown = json.loads(res.output)
    assert shown["total"] == "18917.20" and shown["line_total"] == "18917.20" and shown["tax_total"] == "0.00"

    res = runner.invoke(app, ["explain", "OP-000001", "--line", "1", "--format", "json"])
    assert res.exit_code == 0, res.output
    exp = json.loads(res.output)
    ar = exp["arithmetic"]
    assert D(ar["quantity"]) * D(ar["unit_price"]) == D(ar["product"]) and ar["matches"] is True
    assert exp["intervals"]["count"] == 2976
    assert exp["prices"]["price_per_mwh"] == "50.125"
    assert exp["data"]["channel_days"] == 32
    assert exp["data"]["channels"]["a.load"]["versions"] == [1]
    assert len(exp["run"]["statement_hash"]) == 64

    res = runner.invoke(app, ["explain", "OP-000001", "--line", "2"])
    assert res.exit_code == 0, res.output
    assert "400.000 kW x 10.000000 = 4000.000000000" in res.output and "a.load: 32 days" in res.output

    res = runner.invoke(app, ["explain", "OP-000001", "--line", "9"])
    assert res.exit_code != 0

    res = runner.invoke(app, ["settle", "--period", "2026-10"])  # settled before on the same data: nothing to do
    assert res.exit_code == 0 and "unchanged" in res.output

    res = runner.invoke(app, ["settle", "--period", "Oct-2026"])
    assert res.exit_code != 0
