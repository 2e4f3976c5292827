"""The market day as scheduler jobs against the local ERCOT: offers inside the window before the
day-ahead gate (once), a missed gate alerted once, and the next day's awards, prices and
statements fetched and shadow-settled on arrival (hand-computed figures)."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from decimal import Decimal as D
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import tomli_w
from sqlalchemy import select

from kwhub.core.intervals import ChannelSeries
from kwhub.core.markets.hour_labels import DayGrid
from kwhub.core.quality import Quality
from kwhub.hub.markets import service, store
from kwhub.hub.markets.jobs import market_bids_job, market_fetch_job, market_jobs
from kwhub.hub.scheduler.jobs import JobFailed
from kwhub.hub.scheduler.registry import JobContext, builtin_jobs

TZ = "America/Chicago"
CT = ZoneInfo(TZ)
DAY = date(2026, 10, 20)  # an ordinary 24-hour operating day


def _prices(node: str, day: date, market: str) -> list[D]:
    return [D("50.00")] * len(DayGrid(day, TZ, 60 if market == "DA" else 15))


@pytest.fixture
def ercot():
    from kwhub.plugins.markets.ercot.sim import ErcotSim

    sim = ErcotSim(tz=TZ, prices=_prices).start()
    yield sim
    sim.stop()


def _hub(db: Any, tmp_path: Path, url: str, schedule: dict[str, Any] | None = None) -> Any:
    from kwhub.hub.app import Hub
    from kwhub.hub.config import load_config

    data = {
        "hub": {"name": "market jobs", "timezone": TZ, "database": db.url},
        "parties": [{"id": "gasco", "name": "GasCo"}],
        "assets": [{"id": "gt1", "kind": "gas_turbine", "capacity_kw": 60000, "heat_rate_mmbtu_per_mwh": 9.0,
                    "owners": [{"party": "gasco", "share": "1"}]}],
        "channels": [{"id": "poi.export", "role": "grid_export", "interval_minutes": 15}],
        "adapters": [{"type": "markets.ercot", "id": "ercot",
                      "config": {"url": url, "resource": "RN1", "nodes": ["RN1"], "timeout_s": 2}}],
        "markets": {"adapters": {"ERCOT": "ercot"}, "export_limit_mw": 50.0, "reserve": {"mode": "fixed", "mw": 10.0},
                    "resources": [{"iso": "ERCOT", "resource": "RN1", "meter": ["poi.export"], "asset": "gt1"}],
                    "schedule": schedule or {}},
        "scheduler": {"enabled": False},
    }
    (tmp_path / "kwhub.toml").write_bytes(tomli_w.dumps(data).encode())
    return Hub.from_config(load_config(tmp_path / "kwhub.toml"), database=db)


def _at(*args: int) -> JobContext:
    now = datetime(*args, tzinfo=CT).astimezone(UTC)
    return JobContext("markets", now, now, "test")


def test_the_market_jobs_follow_the_configuration(sqlite_db, tmp_path, ercot):
    hub = _hub(sqlite_db, tmp_path, ercot.url, {"fetch_every_s": 600, "bid_every_s": 120})
    specs = {s.id: s for s in builtin_jobs(hub.config)}
    assert specs["markets.ERCOT.bids"].schedule_text() == "every 120 s"
    assert specs["markets.ERCOT.fetch"].schedule_text() == "every 600 s"
    off = _hub(sqlite_db, tmp_path, ercot.url, {"enabled": False})
    assert market_jobs(off.config) == []


def test_bids_go_in_once_inside_the_window_and_the_day_is_fetched_and_shadow_settled(sqlite_db, tmp_path, ercot):
    hub = _hub(sqlite_db, tmp_path, ercot.url)
    # the gate for 20 October is 19 October 10:00 in Chicago; the window opens 90 minutes before
    early = market_bids_job(hub, _at(2026, 10, 19, 8, 29), "ERCOT")
    assert early["state"] == "before the bid window" and early["day"] == "2026-10-20"
    assert store.list_submissions(sqlite_db, "ERCOT", DAY) == []
    first = market_bids_job(hub, _at(2026, 10, 19, 8, 30), "ERCOT")
    assert first["state"] == "submitted now" and first["status"] == "accepted"
    again = market_bids_job(hub, _at(2026, 10, 19, 9, 0), "ERCOT")
    assert again["state"] == "submitted" and again["submissions"] == [first["submission"]]
    closed = market_bids_job(hub, _at(2026, 10, 19, 10, 5), "ERCOT")
    assert closed["state"] == "gate closed"
    assert len(store.list_submissions(sqlite_db, "ERCOT", DAY)) == 1

    # the day runs: the ISO settles the campus meter, 12.5 MWh exported in every quarter-hour
    grid = DayGrid(DAY, TZ, 15)
    sqlite_db.intervals.write_series([ChannelSeries("poi.export", 15, grid.starts, np.full(96, 12_500.0),
                                                    np.full(96, Quality.VALID, np.uint8))], layer="validated")
    ercot.meter = service.meter_source(sqlite_db, hub.config, "ERCOT")
    out = market_fetch_job(hub, _at(2026, 10, 21, 9, 0), "ERCOT")
    assert "2026-10-20" in out["days"]
    assert out["statements_new"] == ["QKWHUB-DAM-20261020-INITIAL", "QKWHUB-RTM-20261020-INITIAL"]
    assert out["variance_lines"] == 0  # the shadow settlement agrees with the ISO
    awarded = store.load_award_hours(sqlite_db, "ERCOT", "DA", ["RN1"], int(DayGrid(DAY, TZ, 60).starts[0]), 24)
    # 60 MW turbine less a 10 MW reserve, no load: 50 MW offered below the $50.00 DASPP in every hour
    assert awarded.tolist() == [[50_000_000] * 24]
    # DA: -50 MWh x $50.00 x 24 hours = -60,000.00; RT: metered 4 x 12.5 = 50 MWh per hour, as awarded: 0.00
    dam, rtm = service.variance_for_day(sqlite_db, hub.config, "ERCOT", DAY)
    assert dam.statement.total() == D("-60000.00") and dam.report.codes["DAESAMT"].shadow == D("-60000.00")
    assert rtm.statement.total() == D("0.00")
    with sqlite_db.read_connection() as conn:
        from kwhub.hub.store.market_tables import market_shadow_run_table as runs

        assert len(conn.execute(select(runs.c.id)).all()) >= 2  # recorded on arrival
    assert market_fetch_job(hub, _at(2026, 10, 21, 9, 15), "ERCOT")["statements_new"] == []  # nothing new


def test_a_missed_gate_is_alerted_and_audited_once(sqlite_db, tmp_path, ercot, caplog):
    from kwhub.hub.store.tables import audit_log_table

    hub = _hub(sqlite_db, tmp_path, ercot.url)
    caplog.set_level(logging.ERROR)
    with pytest.raises(JobFailed, match="the day-ahead gate closed at 2026-10-19T10:00:00-05:00 without offers"):
        market_bids_job(hub, _at(2026, 10, 19, 10, 30), "ERCOT")
    assert any(r.getMessage().startswith("ALERT: the ERCOT day-ahead gate for 2026-10-20") for r in caplog.records)
    later = market_bids_job(hub, _at(2026, 10, 19, 11, 0), "ERCOT")
    assert later["state"] == "gate missed (already alerted)"
    with sqlite_db.read_connection() as conn:
        rows = conn.execute(select(audit_log_table.c.object_id).where(
            audit_log_table.c.action == "market.gate_missed")).scalars().all()
    assert rows == ["ERCOT:2026-10-20"]


def test_the_fetch_job_fetches_real_time_awards_and_settles_them_on_arrival(sqlite_db, tmp_path, caplog):
    """A real-time offer for 15:00-16:00 on 20 October (HE16): 5.0 MW at $40.00, 10.0 MW at
    $60.00; RT SPPs of its quarters 35 / 45 / 65 / 60 ($30.00 elsewhere), DA SPP $50.00, no
    day-ahead offer.

    The local ERCOT dispatches each quarter at the MW of the points priced at or below its SPP:
    0 / 5 / 10 / 10 MW -> 0 / 1.25 / 2.5 / 2.5 MWh (0 / 1,250,000 / 2,500,000 / 2,500,000 Wh).
    Metered as dispatched, RTEIAMT = (-1) x RTSPP x (RTMG - 0): 0.00, -45 x 1.25 = -56.25,
    -65 x 2.5 = -162.50, -60 x 2.5 = -150.00; the RTM statement totals -368.75 and the shadow
    settlement, run when the statement arrives, agrees (no variance line).
    """
    from datetime import timedelta

    from kwhub.core.markets.models import Bid, CurvePoint, OfferCurve
    from kwhub.plugins.markets.ercot.sim import ErcotSim

    hour = 15 * 4
    rt = {hour: D("35.00"), hour + 1: D("45.00"), hour + 2: D("65.00"), hour + 3: D("60.00")}

    def prices(node: str, day: date, market: str) -> list[D]:
        n = len(DayGrid(day, TZ, 60 if market == "DA" else 15))
        return [D("50.00") if market == "DA" else rt.get(i, D("30.00")) for i in range(n)]

    sim = ErcotSim(tz=TZ, prices=prices).start()
    try:
        hub = _hub(sqlite_db, tmp_path, sim.url)
        grid = DayGrid(DAY, TZ, 15)
        start = datetime.fromtimestamp(int(grid.starts[hour]), tz=UTC)
        bid = Bid(bid_id="RN1", iso="ERCOT", market="RT", resource="RN1", trading_date=DAY,
                  curves=(OfferCurve(start=start, end=start + timedelta(hours=1),
                                     points=(CurvePoint(mw=D("5.0"), price=D("40.00")),
                                             CurvePoint(mw=D("10.0"), price=D("60.00")))),))
        sid, sub = service.submit_bids(sqlite_db, hub.config, "ERCOT", [bid])
        assert sub.market == "RT"
        kwh = np.zeros(96)
        kwh[hour:hour + 4] = [0.0, 1250.0, 2500.0, 2500.0]
        sqlite_db.intervals.write_series([ChannelSeries("poi.export", 15, grid.starts, kwh,
                                                        np.full(96, Quality.VALID, np.uint8))], layer="validated")
        sim.meter = service.meter_source(sqlite_db, hub.config, "ERCOT")

        caplog.set_level(logging.WARNING)
        out = market_fetch_job(hub, _at(2026, 10, 21, 9, 0), "ERCOT")
        assert out["polled"] == 1 and "2026-10-20" in out["days"]
        assert out["rt_awards"] == 1 and out["over_offer"] == []
        got = store.load_award_intervals(sqlite_db, "ERCOT", "RT", ["RN1"], int(grid.starts[0]), 96, 15)
        want = np.zeros(96, dtype=np.int64)
        want[hour:hour + 4] = [0, 1_250_000, 2_500_000, 2_500_000]
        assert got.tolist() == [want.tolist()]
        assert store.load_award_hours(sqlite_db, "ERCOT", "DA", ["RN1"], int(grid.starts[0]), 24).sum() == 0
        # the RTM statement was shadow-settled on arrival, and agrees
        assert "QKWHUB-RTM-20261020-INITIAL" in out["statements_new"] and out["variance_lines"] == 0
        (rtm,) = [c for c in service.variance_for_day(sqlite_db, hub.config, "ERCOT", DAY) if c.statement.market == "RT"]
        assert rtm.statement.total() == D("-368.75")
        assert rtm.report.codes["RTEIAMT"].shadow == D("-368.75") and rtm.report.codes["RTEIAMT"].variance == 0
        # real-time awards are a grain of their own: read hourly, they are refused, not resampled
        with pytest.raises(store.MarketStoreError, match="15-minute; 60-minute expected"):
            store.load_award_hours(sqlite_db, "ERCOT", "RT", ["RN1"], int(grid.starts[0]), 24)
    finally:
        sim.stop()


def test_an_award_above_the_offer_is_named(sqlite_db):
    """Offered 10.0 MW for HE16: a quarter-hour may take 2.5 MWh; 2.6 MWh, or an award in an hour
    with no offer, is named (the award itself is stored as the ISO sent it)."""
    from datetime import timedelta

    from kwhub.core.markets.models import (
        Award,
        Bid,
        CurvePoint,
        OfferCurve,
        Submission,
        SubmissionStatus,
    )

    grid = DayGrid(DAY, TZ, 60)
    start = datetime.fromtimestamp(int(grid.starts[15]), tz=UTC)
    bid = Bid(bid_id="RN1", iso="ERCOT", market="RT", resource="RN1", trading_date=DAY,
              curves=(OfferCurve(start=start, end=start + timedelta(hours=1),
                                 points=(CurvePoint(mw=D("10.0"), price=D("40.00")),)),))
    store.save_submission(sqlite_db, "s1", Submission(iso="ERCOT", market="RT", trading_date=DAY,
                                                      status=SubmissionStatus.ACCEPTED, document_sha256="x"), [bid])

    def award(minutes_in: int, mwh: str) -> Award:
        s = start + timedelta(minutes=minutes_in)
        return Award(iso="ERCOT", market="RT", resource="RN1", start=s, end=s + timedelta(minutes=15), mwh=D(mwh))

    found = service.awards_above_offers(sqlite_db, "ERCOT", DAY, [award(0, "2.5"), award(15, "2.6"), award(60, "1")])
    assert found == [
        f"ERCOT RT award of RN1 at {(start + timedelta(minutes=15)).isoformat()}: 2.6 MWh, 2.5 MWh offered",
        f"ERCOT RT award of RN1 at {(start + timedelta(minutes=60)).isoformat()}: 1 MWh, no offer"]
