"""The day's bids from the configuration and the store, and the local ISO from the CLI."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal as D

import numpy as np
from typer.testing import CliRunner

from kwhub.core.intervals import ChannelSeries
from kwhub.core.markets.curve_rules import ERCOT_DA, check_bid
from kwhub.core.markets.hour_labels import DayGrid
from kwhub.core.quality import Quality
from kwhub.core.timeline import local_day
from kwhub.hub.config import parse_config
from kwhub.hub.markets.forecast import build_day_bids, campus_units, load_forecast

DAY = date(2026, 10, 15)
TZ = "America/Chicago"


def _cfg(tmp_path):  # noqa: ANN001, ANN202
    data = {
        "hub": {"timezone": TZ},
        "parties": [{"id": "op", "name": "Op"}, {"id": "t1", "name": "T1"}],
        "assets": [{"id": "gt1", "kind": "gas_turbine", "capacity_kw": 50000, "heat_rate_mmbtu_per_mwh": 9.0,
                    "owners": [{"party": "op", "share": "1"}]},
                   {"id": "gt2", "kind": "gas_turbine", "capacity_kw": 40000, "heat_rate_mmbtu_per_mwh": 11.0},
                   {"id": "pv", "kind": "solar", "capacity_kw": 30000}],
        "channels": [{"id": "hall.load", "role": "tenant_load", "party": "t1", "interval_minutes": 15},
                     {"id": "poi.export", "role": "grid_export", "interval_minutes": 15}],
        "ownership": {"costs": {"gt1": {"variable_om_per_mwh": "4.00"}}},
        "adapters": [{"type": "markets.ercot", "id": "ercot", "config": {"url": "http://127.0.0.1:9"}}],
        "markets": {"adapters": {"ERCOT": "ercot"}, "gas_price": "3.00", "price_forecast": "45.00",
                    "reserve": {"mode": "fixed", "mw": 10.0},
                    "resources": [{"iso": "ERCOT", "resource": "RN1", "meter": ["poi.export"], "asset": "gt1"}]},
    }
    return parse_config(data, "test", tmp_path)


def test_day_bids_serve_the_load_and_reserve_first(sqlite_db, tmp_path):
    cfg = _cfg(tmp_path)
    before = local_day(DAY - timedelta(days=1), TZ)
    starts = before.start_epoch + 900 * np.arange(96, dtype=np.int64)
    sqlite_db.intervals.write_series([ChannelSeries("hall.load", 15, starts, np.full(96, 10_000.0),
                                                    np.full(96, Quality.VALID, np.uint8))], layer="validated")
    # 10 MWh per quarter-hour = 40 MW of load, by persistence
    assert np.allclose(load_forecast(sqlite_db, cfg, local_day(DAY, TZ)), 40.0)
    units = campus_units(cfg)
    assert [(u.id, u.vom_per_mwh) for u in units] == [("gt1", 4.0), ("gt2", 0.0)]
    built = build_day_bids(sqlite_db, cfg, "ERCOT", DAY, "RN1")
    (bid,) = built.bids
    assert check_bid(bid, ERCOT_DA, TZ) == []
    grid = DayGrid(DAY, TZ, 60)
    assert len(bid.curves) == len(grid) == 24
    # midnight (no sun): 90 MW of units - 40 MW load x 1.05 - 10 MW reserve = 38 MW surplus;
    # the cheap unit (9 x 3 + 4 = $31.00) serves the 42 MW load, its 8 MW left first, then gt2 ($33.00)
    # with 40 MW less the 10 MW reserve kept on the dearer unit
    night = bid.curves[0].points
    assert [(p.mw, p.price) for p in night] == [(D("8.0"), D("31.00")), (D("38.0"), D("33.00"))]
    assert built.notes[0].startswith("gas 3.000 USD/MMBtu")


def test_market_sim_command_starts_and_stops(tmp_path, monkeypatch):
    from kwhub.hub.cli.main import app

    monkeypatch.chdir(tmp_path)
    out = CliRunner().invoke(app, ["market-sim", "ERCOT", "--port", "0", "--seconds", "0.3"])
    assert out.exit_code == 0, out.output
    assert "local ERCOT on http://127.0.0.1:" in out.output
    out = CliRunner().invoke(app, ["market-sim", "NYISO", "--seconds", "0.1"])
    assert "no installed market adapter provides a local NYISO server" in str(out.exception)
