"""A CAISO and a PJM fall-back day (1 Nov 2026, 25 hours) through their local servers and the
store (SQLite and PostgreSQL), hand-computed with Decimal, each with a price-corrected
resettlement.

Both days: 12 MW cleared in every hour, so 1.0 MWh per 5-minute interval is exactly the
day-ahead schedule; the first 5 minutes of the repeated hour (the second 01:00, hour 3 of
the day, 5-minute interval 25) meter more.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal as D

import numpy as np
import pytest

from kwhub.core.intervals import ChannelSeries
from kwhub.core.markets.hour_labels import DayGrid
from kwhub.core.markets.models import Bid, CurvePoint, OfferCurve
from kwhub.core.quality import Quality
from kwhub.hub.config import parse_config
from kwhub.hub.markets import service

DAY = date(2026, 11, 1)
REPEATED_HOUR = 2  # hours 0 (00:00), 1 (01:00 daylight), 2 (01:00 standard)
REPEATED_5MIN = REPEATED_HOUR * 12


def _cfg(tmp_path, iso: str, adapter_type: str, url: str, resource: str, tz: str):  # noqa: ANN202
    data = {
        "hub": {"timezone": tz},
        "parties": [{"id": "gasco_jv", "name": "GasCo JV"}, {"id": "campus_op", "name": "Campus Op"}],
        "assets": [{"id": "gt1", "kind": "gas_turbine", "capacity_kw": 60000,
                    "owners": [{"party": "gasco_jv", "share": "0.6"}, {"party": "campus_op", "share": "0.4"}]}],
        "channels": [{"id": "poi.export", "role": "grid_export", "interval_minutes": 5}],
        "adapters": [{"type": adapter_type, "id": "iso", "config": {"url": url, "nodes": [resource], "timeout_s": 2}}],
        "markets": {"adapters": {iso: "iso"},
                    "resources": [{"iso": iso, "resource": resource, "meter": ["poi.export"], "asset": "gt1"}]},
    }
    return parse_config(data, "test", tmp_path)


def _meter(db, tz: str, extra_mwh: str) -> None:  # noqa: ANN001
    grid = DayGrid(DAY, tz, 5)
    assert len(grid) == 300
    mwh = np.full(300, 1.0)
    mwh[REPEATED_5MIN] = float(extra_mwh)
    db.intervals.write_series([ChannelSeries("poi.export", 5, grid.starts, mwh * 1000,
                                             np.full(300, Quality.VALID, np.uint8))], layer="validated", source="t")


def test_caiso_fall_back_day(db, tmp_path):
    from kwhub.plugins.markets.caiso import TZ, CaisoSim

    def prices(node: str, day: date, market: str) -> list[D]:
        grid = DayGrid(day, TZ, 60 if market == "DA" else 5)
        if market == "DA":
            return [D("50.00") if i == REPEATED_HOUR else D("40.00") for i in range(len(grid))]
        return [D("60.00") if i == REPEATED_5MIN else D("30.00") for i in range(len(grid))]

    sim = CaisoSim(prices=prices).start()
    try:
        cfg = _cfg(tmp_path, "CAISO", "markets.caiso", sim.url, "GEN1", TZ)
        _meter(db, TZ, "1.5")
        sim.meter = service.meter_source(db, cfg, "CAISO")
        grid = DayGrid(DAY, TZ, 60)
        bid = Bid(bid_id="GEN1", iso="CAISO", market="DA", resource="GEN1", trading_date=DAY, curves=tuple(
            OfferCurve(start=datetime.fromtimestamp(s, tz=UTC), end=datetime.fromtimestamp(s + 3600, tz=UTC),
                       points=(CurvePoint(mw=D("12.00"), price=D("10.00")),)) for s in grid.starts.tolist()))
        _, sub = service.submit_bids(db, cfg, "CAISO", [bid])
        assert sub.status.value == "accepted"
        rep = service.fetch_market_day(db, cfg, "CAISO", DAY)
        assert rep.awards == 1 and rep.statements_new == ["SCKWHUB-20261101-INITIAL"]
        (initial,) = service.variance_for_day(db, cfg, "CAISO", DAY)
        # 6011 = (DA schedule as supply, -12) x LMP: -12 x (24 x 40.00 + 50.00) = -12 x 1,010.00 = -12,120.00
        assert initial.report.codes["6011"].iso == D("-12120.00") == initial.report.codes["6011"].shadow
        # 6475 = -(meter - expected) x RTD LMP: -(1.5 - 12/12) x 60.00 = -30.00, every other interval 0.00
        assert initial.report.codes["6475"].iso == D("-30.00") == initial.report.codes["6475"].shadow
        assert initial.report.lines == []
        repeated = [ln for ln in initial.statement.lines if ln.code == "6011" and
                    ln.start == datetime(2026, 11, 1, 9, tzinfo=UTC)]  # 01:00 PST = 09:00 UTC
        assert [(ln.amount, ln.label) for ln in repeated] == [(D("-600.00"), "2026-11-01 HR03")]
        # OASIS throttling: HTTP 200 with an HTML page is a transient error, nothing is stored
        from kwhub.core.adapters import AdapterError, FailureKind

        sim.throttle_next = True
        with pytest.raises(AdapterError) as err:
            service.fetch_market_day(db, cfg, "CAISO", DAY, awards=False, statements=False)
        assert err.value.kind == FailureKind.TRANSIENT and "HTML" in str(err.value)
        # RTD price corrected to 70.00: -(0.5) x 70.00 = -35.00, net -5.00
        sim.corrections[("GEN1", DAY)] = {REPEATED_5MIN: D("70.00")}
        rep = service.fetch_market_day(db, cfg, "CAISO", DAY, awards=False)
        assert rep.prices["RT"]["corrected"] == 1
        checks = service.variance_for_day(db, cfg, "CAISO", DAY)
        assert [c.statement.kind for c in checks] == ["initial", "resettlement"]
        assert checks[1].report.lines == []
        assert [(d.code, d.previous, d.current, d.net) for d in checks[1].deltas] == \
            [("6475", D("-30.00"), D("-35.00"), D("-5.00"))]
        # revenue 12,120.00 + 35.00 = 12,155.00
        assert [(i.asset, i.amount) for i in service.market_revenue_items(db, cfg, "2026-11")] == \
            [("gt1", D("12155.00"))]
    finally:
        sim.stop()


def test_pjm_fall_back_day(db, tmp_path):
    from kwhub.plugins.markets.pjm import TZ, PjmSim

    def prices(node: str, day: date, market: str) -> list[D]:
        grid = DayGrid(day, TZ, 60 if market == "DA" else 5)
        if market == "DA":
            return [D("45.00") if i == REPEATED_HOUR else D("30.00") for i in range(len(grid))]
        return [D("50.00") if i == REPEATED_5MIN else D("25.00") for i in range(len(grid))]

    sim = PjmSim(prices=prices, cleared={("GEN_PJM", DAY): [D("12")] * 25}).start()
    try:
        cfg = _cfg(tmp_path, "PJM", "markets.pjm", sim.url, "GEN_PJM", TZ)
        _meter(db, TZ, "1.2")
        sim.meter = service.meter_source(db, cfg, "PJM")
        rep = service.fetch_market_day(db, cfg, "PJM", DAY)
        assert rep.awards == 1
        (initial,) = service.variance_for_day(db, cfg, "PJM", DAY)
        # 1200 = (withdrawal - injection) x DA system energy price: -12 x (24 x 30.00 + 45.00) = -9,180.00
        assert initial.report.codes["1200"].iso == D("-9180.00") == initial.report.codes["1200"].shadow
        # 1205 = (RT net withdrawal - DA/12) x RT price: (-1.2 + 1.0) x 50.00 = -10.00 in the repeated hour
        assert initial.report.codes["1205"].iso == D("-10.00") == initial.report.codes["1205"].shadow
        assert initial.report.lines == []
        sim.corrections[("GEN_PJM", DAY)] = {REPEATED_5MIN: D("60.00")}
        rep = service.fetch_market_day(db, cfg, "PJM", DAY, awards=False)
        assert rep.prices["RT"]["corrected"] == 1
        checks = service.variance_for_day(db, cfg, "PJM", DAY)
        # -0.2 x 60.00 = -12.00, net -2.00
        assert [(d.code, d.previous, d.current, d.net) for d in checks[1].deltas] == \
            [("1205", D("-10.00"), D("-12.00"), D("-2.00"))]
        assert checks[1].report.lines == []
        assert [(i.asset, i.amount) for i in service.market_revenue_items(db, cfg, "2026-11")] == \
            [("gt1", D("9192.00"))]  # 9,180.00 + 12.00
    finally:
        sim.stop()
