"""An ERCOT day on the fall-back day (1 Nov 2026, 25 hours) through the local ERCOT and the
store (SQLite and PostgreSQL), hand-computed with Decimal.

Set-up, chosen so every figure is simple arithmetic: one resource RN1 offering 50 MW at
$25 in every hour (so every hour clears 50 MWh against DASPPs of $26 and more); DASPP =
$25 + hour ending, except the repeated hour (HE02, DSTFlag=Y) at $40.00; RTSPP $30.00
except the repeated hour's first quarter at $60.00; metered 12.5 MWh per quarter-hour
(exactly 1/4 of the award) except that quarter, 13.0 MWh.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal as D

import numpy as np
import pytest

from kwhub.core.intervals import ChannelSeries
from kwhub.core.markets.hour_labels import DayGrid
from kwhub.core.markets.models import Bid, CurvePoint, OfferCurve, SubmissionStatus
from kwhub.core.quality import Quality
from kwhub.hub.config import parse_config
from kwhub.hub.markets import service, store

DAY = date(2026, 11, 1)
TZ = "America/Chicago"
REPEATED_HOUR = 2  # index of HE02 DST among the day's 25 hours
REPEATED_QUARTER = 8  # its first quarter


def _prices(node: str, day: date, market: str) -> list[D]:
    grid = DayGrid(day, TZ, 60 if market == "DA" else 15)
    if market == "DA":
        return [D("40.00") if grid.repeated[i] else D(25 + int(grid.hour_ending[i])) for i in range(len(grid))]
    return [D("60.00") if i == REPEATED_QUARTER else D("30.00") for i in range(len(grid))]


@pytest.fixture
def ercot(tmp_path):
    from kwhub.plugins.markets.ercot.sim import ErcotSim

    sim = ErcotSim(tz=TZ, prices=_prices).start()
    yield sim
    sim.stop()


def _config(tmp_path, url: str):  # noqa: ANN202
    data = {
        "hub": {"timezone": TZ},
        "parties": [{"id": "gasco_jv", "name": "GasCo JV"}, {"id": "campus_op", "name": "Campus Op"}],
        "assets": [{"id": "gt1", "kind": "gas_turbine", "capacity_kw": 60000, "heat_rate_mmbtu_per_mwh": 9.0,
                    "owners": [{"party": "gasco_jv", "share": "0.6"}, {"party": "campus_op", "share": "0.4"}]}],
        "channels": [{"id": "poi.export", "role": "grid_export", "interval_minutes": 15}],
        "adapters": [{"type": "markets.ercot", "id": "ercot",
                      "config": {"url": url, "resource": "RN1", "nodes": ["RN1"], "timeout_s": 2}}],
        "markets": {"adapters": {"ERCOT": "ercot"},
                    "resources": [{"iso": "ERCOT", "resource": "RN1", "meter": ["poi.export"], "asset": "gt1"}]},
    }
    return parse_config(data, "test", tmp_path)


def _meter(db) -> None:  # noqa: ANN001
    grid = DayGrid(DAY, TZ, 15)
    assert len(grid) == 100
    mwh = np.full(100, 12.5)
    mwh[REPEATED_QUARTER] = 13.0
    db.intervals.write_series([ChannelSeries("poi.export", 15, grid.starts, mwh * 1000,
                                             np.full(100, Quality.VALID, np.uint8))], layer="validated", source="t")


def _bid() -> Bid:
    grid = DayGrid(DAY, TZ, 60)
    curves = tuple(OfferCurve(start=datetime.fromtimestamp(s, tz=UTC), end=datetime.fromtimestamp(s + 3600, tz=UTC),
                              points=(CurvePoint(mw=D("50.0"), price=D("25.00")),)) for s in grid.starts.tolist())
    return Bid(bid_id="RN1", iso="ERCOT", market="DA", resource="RN1", trading_date=DAY, curves=curves)


def test_fall_back_day_bid_to_bill(db, tmp_path, ercot):
    cfg = _config(tmp_path, ercot.url)
    _meter(db)
    ercot.meter = service.meter_source(db, cfg, "ERCOT")  # the ISO settles the same campus meter
    sid, sub = service.submit_bids(db, cfg, "ERCOT", [_bid()])
    assert sub.status == SubmissionStatus.SUBMITTED
    assert sub.outcomes[0].iso_ref == "QKWHUB.11012026.TPO.RN1.RN1"
    assert service.poll_submission(db, cfg, sid).status == SubmissionStatus.ACCEPTED
    rep = service.fetch_market_day(db, cfg, "ERCOT", DAY)
    assert rep.awards == 1 and rep.prices["DA"] == {"new": 1, "corrected": 0, "unchanged": 0}
    assert rep.statements_new == ["QKWHUB-DAM-20261101-INITIAL", "QKWHUB-RTM-20261101-INITIAL"]

    # 25 hours cleared 50 MWh each
    start = int(DayGrid(DAY, TZ, 60).starts[0])
    assert store.load_award_hours(db, "ERCOT", "DA", ["RN1"], start, 25).tolist() == [[50_000_000] * 25]

    checks = service.variance_for_day(db, cfg, "ERCOT", DAY)
    dam, rtm = checks
    # DAESAMT = -50 x sum(DASPP). Hours ending 1, 2, 2 (DST), 3..24: sum(25 + HE) without the
    # repeated hour = 24 x 25 + (1 + 2 + ... + 24) = 600 + 300 = 900; + 40.00 for HE02 DST = 940.00
    # -> -50 x 940.00 = -47,000.00
    assert dam.statement.total() == D("-47000.00")
    assert dam.report.codes["DAESAMT"].shadow == D("-47000.00") and dam.report.lines == []
    # the repeated hour is its own line: HE02 DST at 07:00 UTC, -50 x 40.00 = -2,000.00
    sales = [ln for ln in dam.statement.lines if ln.code == "DAESAMT"]
    rep_line = [ln for ln in sales if ln.label == "2026-11-01 HE02 DST"]
    assert [(ln.start, ln.amount) for ln in rep_line] == [(datetime(2026, 11, 1, 7, tzinfo=UTC), D("-2000.00"))]
    first_he02 = [ln for ln in sales if ln.label == "2026-11-01 HE02"]
    assert [(ln.start, ln.amount) for ln in first_he02] == [(datetime(2026, 11, 1, 6, tzinfo=UTC), D("-1350.00"))]
    # RTEIAMT: zero everywhere but HE02 DST quarter 1: -60.00 x (13.0 - 50/4) = -30.00
    assert rtm.statement.total() == D("-30.00")
    assert rtm.report.codes["RTEIAMT"].shadow == D("-30.00") and rtm.report.lines == []
    assert rtm.report.codes["RTEIAMT"].lines == 100

    # a price correction of that quarter to 70.00 is a resettlement: -70 x 0.5 = -35.00, net -5.00
    ercot.inject("price_correction", node="RN1", day=DAY, interval=REPEATED_QUARTER, price="70.00")
    rep = service.fetch_market_day(db, cfg, "ERCOT", DAY, awards=False)
    assert rep.prices["RT"] == {"new": 0, "corrected": 1, "unchanged": 0}
    assert rep.statements_new == ["QKWHUB-RTM-20261101-RESETTLEMENT"]
    checks = service.variance_for_day(db, cfg, "ERCOT", DAY)
    assert [c.statement.kind for c in checks] == ["initial", "initial", "resettlement"]
    initial_rt, resettled = checks[1], checks[2]
    assert initial_rt.report.lines == []  # still compared on the prices it was settled on
    assert resettled.report.lines == [] and resettled.report.codes["RTEIAMT"].shadow == D("-35.00")
    assert [(d.label, d.previous, d.current, d.net) for d in resettled.deltas] == \
        [("2026-11-01 HE02.1 DST", D("-30.00"), D("-35.00"), D("-5.00"))]
    # revenue 47,000.00 + 35.00 = 47,035.00 -> 60/40: 28,221.00 / 18,814.00
    items = service.market_revenue_items(db, cfg, "2026-11")
    assert [(i.asset, i.amount) for i in items] == [("gt1", D("47035.00"))]
    from kwhub.core.markets.revenue import split_revenue

    assert split_revenue(items[0].amount, {"gasco_jv": D("0.6"), "campus_op": D("0.4")}) == \
        {"gasco_jv": D("28221.00"), "campus_op": D("18814.00")}


def test_meter_variance_is_reported_with_its_cause(db, tmp_path, ercot):
    cfg = _config(tmp_path, ercot.url)
    _meter(db)
    ercot.meter = service.meter_source(db, cfg, "ERCOT")  # the ISO settles the same campus meter
    service.submit_bids(db, cfg, "ERCOT", [_bid()])
    service.poll_submission(db, cfg, store.list_submissions(db)[0]["id"])
    # the ISO's meter reads 0.010 MWh more in quarter 40 (HE10.1 with the repeated hour counted):
    # ISO RTEIAMT = -30.00 x 0.010 = -0.30, kwhub 0.00 -> variance +0.30, quantity
    ercot.inject("meter_variance", resource="RN1", day=DAY, interval=40, mwh="0.010")
    service.fetch_market_day(db, cfg, "ERCOT", DAY)
    rtm = service.variance_for_day(db, cfg, "ERCOT", DAY)[1]
    assert [(v.label, v.shadow, v.iso, v.variance, v.cause) for v in rtm.report.lines] == \
        [("2026-11-01 HE10.1", D("0.00"), D("-0.30"), D("0.30"), "quantity")]
    # the same statement fetched again is known, not stored twice
    again = service.fetch_market_day(db, cfg, "ERCOT", DAY)
    assert again.statements_new == [] and len(again.statements_known) == 2
    assert again.prices["RT"] == {"new": 0, "corrected": 0, "unchanged": 1}
    # explain walks the line back
    data = service.explain_market_line(db, cfg, "ERCOT", DAY, "RN1", "RTEIAMT", "HE10.1")
    assert data["award_mwh"] == "50" and data["metered_mwh"] == "12.5"
    assert data["bid"][0]["curve"] == [["50.0", "25.00"]] and data["bid"][0]["status"] == "accepted"
    assert [ln["amount"] for ln in data["statement_lines"]] == ["-0.30"]
    assert data["statement_lines"][0]["determinants"]["RTMG"] == "12.510" and data["shadow_amount"] == "0.00"
