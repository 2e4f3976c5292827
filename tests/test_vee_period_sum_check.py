"""The sum check against stored period and register readings (issue 9, item 9).

Daily readings of 23, 24 and 25-hour local days and a monthly reading are compared with
the channel's intervals; a reading that does not match flags the intervals it covers,
with a message giving both sums. The expectations are computed by hand in each test.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from kwhub.core.campus import Campus, Channel, Site
from kwhub.core.intervals import day_start_epoch
from kwhub.core.quality import Quality
from kwhub.core.vee import PeriodReads, VeeContext
from kwhub.hub.ingest.batch import adapter_context, ingest_file
from kwhub.hub.ingest.vee import read_events
from kwhub.plugins.meters.csv_meter import CsvMeter
from kwhub.plugins.meters.greenbutton import GreenButtonMeter
from tests.fixtures.ingest import EspiMeterReading, espi_file
from tests.fixtures.vee import VEE_DAY, day_block, history_blocks, make_engine, vee_channel

NY = ZoneInfo("America/New_York")
NOW = datetime(2025, 1, 1, tzinfo=UTC)


def local_midnight(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=NY).timestamp())


# ------------------------------------------------------------------ the rule on hand-made days


def test_daily_reading_matches_or_flags_the_day():
    day0 = day_start_epoch(VEE_DAY)
    v = [2.0] * 24  # 48 kWh in the UTC day
    ok = PeriodReads([day0], [day0 + 86400], [48.3], [Quality.VALID])  # within 2 %
    out = make_engine("sum_check").validate(vee_channel(), [day_block(v)], VeeContext(period_reads=ok))
    assert out.events == []
    wrong = PeriodReads([day0 + 6 * 3600], [day0 + 18 * 3600], [30.0], [Quality.VALID])  # 12 h = 24 kWh
    out = make_engine("sum_check").validate(vee_channel(), [day_block(v)], VeeContext(period_reads=wrong))
    b = out.validated[0]
    assert np.flatnonzero(b.quality == Quality.SUSPECT).tolist() == list(range(6, 18))
    (ev,) = out.events
    assert ev.count == 12 and ev.detail["periods"] == [{"start": "2026-03-02T06:00Z", "end": "2026-03-02T18:00Z",
                                                        "reading_kwh": 30.0, "intervals_kwh": 24.0}]
    assert "says 30 kWh, its intervals sum to 24 kWh (-6 kWh)" in ev.detail["message"]


def test_estimated_period_readings_and_incomplete_periods_are_not_checked():
    day0 = day_start_epoch(VEE_DAY)
    v = [2.0] * 24
    est = PeriodReads([day0], [day0 + 86400], [10.0], [Quality.ESTIMATED])
    assert make_engine("sum_check").validate(vee_channel(), [day_block(v)],
                                             VeeContext(period_reads=est)).events == []
    v[5] = np.nan  # a missing interval: the sum is not known
    wrong = PeriodReads([day0], [day0 + 86400], [10.0], [Quality.VALID])
    assert make_engine("sum_check").validate(vee_channel(), [day_block(v)],
                                             VeeContext(period_reads=wrong)).events == []
    off_grid = PeriodReads([day0 + 1800], [day0 + 86400], [10.0], [Quality.VALID])  # not on the hourly grid
    assert make_engine("sum_check").validate(vee_channel(), [day_block([2.0] * 24)],
                                             VeeContext(period_reads=off_grid)).events == []
    assert make_engine("sum_check", sum_check={"periods": False}).validate(
        vee_channel(), [day_block([2.0] * 24)], VeeContext(period_reads=wrong)).events == []


def test_monthly_reading_reaches_beyond_the_validated_day():
    """The frame grows to the whole period: 40 days of history, the last day validated."""
    first = VEE_DAY - timedelta(days=40)
    start, end = day_start_epoch(first), day_start_epoch(VEE_DAY) + 86400
    hist = history_blocks([[1.0] * 24] * 40)  # 40 days x 24 kWh
    month = PeriodReads([start], [end], [41 * 24 + 100.0], [Quality.VALID])  # 100 kWh more than the intervals
    eng = make_engine("sum_check")
    ctx = VeeContext(history=hist, period_reads=month)
    assert eng.frame_span(vee_channel(), [VEE_DAY], ctx)[0] == first
    out = eng.validate(vee_channel(), [day_block([1.0] * 24)], ctx)
    (ev,) = out.events
    assert ev.count == 24 and ev.detail["periods"][0]["intervals_kwh"] == 984.0


# ------------------------------------------------------------------ stored readings, through ingest


def _campus() -> Campus:
    return Campus(sites=[Site(id="s")], channels=[Channel(id="util.main", interval_minutes=15)])


def _intervals_csv(path: Path, first: date, days: int) -> Path:
    """Quarter-hours of 1, 1.25, 1.5 and 1.75 kWh (5.5 kWh an hour) over local days ``first`` .. (DST days too)."""
    a, b = local_midnight(first), local_midnight(first + timedelta(days=days))
    path.write_text("channel_id,interval_start,interval_minutes,kwh\n" + "".join(
        f"util.main,{datetime.fromtimestamp(s, tz=UTC):%Y-%m-%dT%H:%M:%SZ},15,{1 + (k % 4) / 4}\n"
        for k, s in enumerate(range(a, b, 900))))
    return path


def _daily_file(path: Path, first: date, wh: list[int]) -> Path:
    reads = []
    for k, value in enumerate(wh):
        a, b = local_midnight(first + timedelta(days=k)), local_midnight(first + timedelta(days=k + 1))
        reads.append((a, b - a, value))
    return espi_file(path, [EspiMeterReading(interval_length=86400, readings=reads)])


@pytest.mark.parametrize("order", ["intervals first", "period readings first"])
def test_daily_reads_of_dst_days_against_stored_intervals(db, tmp_path, order):
    """2 to 4 November 2024 in New York: 24, 25 and 24 hours of 5.5 kWh: 132, 137.5 and 132 kWh."""
    campus = _campus()
    csv = CsvMeter("csv", {}, adapter_context(campus))
    gb = GreenButtonMeter("gb", {"channel": "util.main"}, adapter_context(campus))
    intervals = _intervals_csv(tmp_path / "iv.csv", date(2024, 11, 2), 3)
    daily = _daily_file(tmp_path / "daily.xml", date(2024, 11, 2), [132_000, 130_000, 132_000])  # 25 h day is off
    files = [(csv, intervals), (gb, daily)] if order == "intervals first" else [(gb, daily), (csv, intervals)]
    for meter, path in files:
        ingest_file(db, campus, meter, path, vee_now=NOW)
    fall = local_midnight(date(2024, 11, 3))
    flagged = []
    for b in db.intervals.read_blocks("util.main", date(2024, 11, 2), date(2024, 11, 5), layer="validated"):
        starts = day_start_epoch(b.day) + 900 * np.arange(96)
        flagged += starts[b.quality == Quality.SUSPECT].tolist()
    assert flagged == list(range(fall, fall + 100 * 900, 900))
    events = [e for e in read_events(db) if e["rule_id"] == "sum_check"]
    assert sum(e["count"] for e in events) == 100
    assert all(e["detail"]["periods"][0]["reading_kwh"] == 130.0 and e["detail"]["periods"][0]["intervals_kwh"] ==
               137.5 for e in events)
    assert {e["rule_id"] for e in read_events(db) if e["action"] == "flagged"} <= {"sum_check", "gap"}


def test_register_reads_from_green_button_check_and_fill_the_intervals(db, tmp_path):
    """Cumulative register reads (accumulationBehaviour 1) bracket a gap: the register spread fills it."""
    campus = _campus()
    day = date(2024, 6, 3)
    a = day_start_epoch(day)
    csv_text = "channel_id,interval_start,interval_minutes,kwh\n" + "".join(
        f"util.main,{datetime.fromtimestamp(a + 900 * i, tz=UTC):%Y-%m-%dT%H:%M:%SZ},15,2.0\n"
        for i in range(96) if not 40 <= i < 44)  # 4 quarter-hours missing
    (tmp_path / "iv.csv").write_text(csv_text)
    # register reads at 00:00 and 24:00: 200 kWh over the day, 92 x 2 = 184 known, 16 kWh in the gap
    regs = EspiMeterReading(readings=[(a - 900, 900, 1_000_000), (a + 86400 - 900, 900, 1_200_000)])
    path = espi_file(tmp_path / "reg.xml", [regs])
    text = path.read_text().replace("<espi:accumulationBehaviour>4<", "<espi:accumulationBehaviour>1<")
    path.write_text(text)
    gb = GreenButtonMeter("gb", {"channel": "util.main"}, adapter_context(campus))
    rep = ingest_file(db, campus, gb, path, vee_now=NOW)
    assert rep.periods["new"] == 2
    ingest_file(db, campus, CsvMeter("csv", {}, adapter_context(campus)), tmp_path / "iv.csv", vee_now=NOW)
    (b,) = db.intervals.read_blocks("util.main", day, day, layer="validated")
    assert b.values[40:44].tolist() == [4.0] * 4 and (b.quality[40:44] == Quality.ESTIMATED).all()
    est = [e for e in read_events(db) if e["action"] == "estimated"]
    assert est[0]["detail"]["methods"] == {"register_spread": 4}


def test_green_button_daily_reads_go_with_the_interval_channel_of_their_usage_point(db, tmp_path):
    """One usage point, a 15-minute MeterReading and a daily one: the daily reads check those intervals."""
    day = date(2024, 6, 3)
    a = local_midnight(day)
    quarter = [(a + 900 * i, 900, 1000 + 250 * (i % 4)) for i in range(96)]  # 5.5 kWh an hour: 132 kWh
    daily = [(a, 86400, 140_000)]  # 8 kWh more than the intervals
    mrs = [EspiMeterReading(meter_reading="01", readings=quarter),
           EspiMeterReading(meter_reading="02", interval_length=86400, readings=daily)]
    path = espi_file(tmp_path / "up.xml", mrs)
    campus = Campus(sites=[Site(id="s")], channels=[Channel(id="gb.1.01", interval_minutes=15)])
    gb = GreenButtonMeter("gb", {}, adapter_context(campus))
    rep = ingest_file(db, campus, gb, path, vee_now=NOW)
    assert rep.period_channels == ["gb.1.01"] and any("same usage point" in n for n in rep.notes)
    (p,) = db.periods.read(["gb.1.01"], 0, 2**40)
    assert p.values.tolist() == [140.0]
    events = [e for e in read_events(db) if e["rule_id"] == "sum_check"]
    assert sum(e["count"] for e in events) == 96
    assert events[0]["detail"]["periods"][0]["intervals_kwh"] == 132.0
