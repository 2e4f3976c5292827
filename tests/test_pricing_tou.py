"""TOU energy in local time: DST months, holidays, seasons, hour ranges.

November 2026 in America/New_York: DST ends Sunday 2026-11-01 at 02:00 (clocks go back
to 01:00), so that local day has 25 hours = 100 quarter-hours and the month has
30 days x 96 + 4 = 2,884 quarter-hours. Calendar: Sundays 1, 8, 15, 22, 29; Saturdays
7, 14, 21, 28 -> 9 weekend days, 21 weekdays. Holidays: Veterans Day Wed 11 (US federal,
not NERC), Thanksgiving Thu 26 (both).
"""

from __future__ import annotations

from collections import Counter
from datetime import date
from decimal import Decimal

import numpy as np
import pytest

from kwhub.core.pricing import LocalCalendar, PricingError, TouError, holiday_dates, nerc_holidays
from kwhub.core.pricing.components import Demand, TouEnergy
from kwhub.core.pricing.tou import TouSchedule
from tests.fixtures.pricing import make_ctx, period

D = Decimal
NOV = period("2026-11")

# night 00:00-06:00 every day (first rule wins), on-peak 07:00-23:00 on weekdays,
# everything else off-peak
NIGHT_PEAK_OFF = {
    "rules": [
        {"period": "night", "hours": [[0, 6]]},
        {"period": "on_peak", "day_types": ["weekday"], "hours": [[7, 23]]},
    ],
    "default_period": "off_peak",
    "prices": {"night": 30, "on_peak": 80, "off_peak": 45},
}


def by_period(charges):
    return {c.determinants["tou_period"]: c for c in charges}


def test_november_dst_month_has_2884_intervals_and_a_100_interval_day():
    ctx = make_ctx(NOV, 250.0)
    assert ctx.n_intervals == 30 * 96 + 4 == 2884
    counts = Counter(ctx.calendar.day_index.tolist())
    assert counts[0] == 100  # 2026-11-01
    assert all(counts[i] == 96 for i in range(1, 30))
    assert ctx.calendar.days[0] == date(2026, 11, 1) and ctx.calendar.days[-1] == date(2026, 11, 30)
    # local 01:00-02:00 happens twice on Nov 1: 8 quarter-hours carry local hour 1
    first_day = ctx.calendar.day_index == 0
    assert int(((ctx.calendar.minute_of_day // 60 == 1) & first_day).sum()) == 8


def test_tou_hours_counted_in_local_time_across_dst_with_nerc_holidays():
    ctx = make_ctx(NOV, 250.0)
    lines = by_period(TouEnergy("tou", {**NIGHT_PEAK_OFF, "holidays": "NERC"}).compute(ctx))
    # night: 30 days x 6 h x 4 = 720, + 4 for the repeated 01:00 hour on Nov 1 = 724 intervals
    #   724 x 250 kWh = 181,000 kWh = 181.000 MWh x 30 = 5,430.00
    # on-peak: 21 weekdays - Thanksgiving = 20 days x 16 h x 4 = 1,280 intervals
    #   1,280 x 250 = 320,000 kWh = 320.000 MWh x 80 = 25,600.00
    # off-peak: 2,884 - 724 - 1,280 = 880 intervals (20 x 8 on work days + 10 x 72 on the others)
    #   880 x 250 = 220,000 kWh = 220.000 MWh x 45 = 9,900.00
    assert {k: v.determinants["intervals"] for k, v in lines.items()} == {
        "night": "724", "on_peak": "1280", "off_peak": "880"}
    assert lines["night"].amount == D("5430.00")
    assert lines["on_peak"].amount == D("25600.00")
    assert lines["off_peak"].amount == D("9900.00")
    assert lines["night"].determinants["hours"] == "181.00"
    assert sum(c.quantity for c in lines.values()) == D("721.000")  # 2,884 x 250 kWh


def test_us_federal_calendar_also_makes_veterans_day_off_peak():
    ctx = make_ctx(NOV, 250.0)
    lines = by_period(TouEnergy("tou", {**NIGHT_PEAK_OFF, "holidays": "US"}).compute(ctx))
    # 19 on-peak days x 64 = 1,216 intervals; off-peak 880 + 64 = 944
    assert lines["on_peak"].determinants["intervals"] == "1216"
    assert lines["off_peak"].determinants["intervals"] == "944"
    # 1,216 x 250 kWh = 304 MWh x 80 = 24,320.00
    assert lines["on_peak"].amount == D("24320.00")


def test_thanksgiving_noon_is_off_peak_only_with_a_holiday_calendar():
    ctx = make_ctx(NOV, 0.0)
    noon = int(np.flatnonzero((ctx.calendar.local_date == np.datetime64("2026-11-26"))
                              & (ctx.calendar.minute_of_day == 12 * 60))[0])
    ctx.energy_kwh[noon] = 1000.0
    tou = {"rules": [{"period": "on_peak", "day_types": ["weekday"], "hours": [[7, 23]]}],
           "prices": {"on_peak": 80, "off_peak": 45}}
    holiday = by_period(TouEnergy("t", {**tou, "holidays": "NERC"}).compute(ctx))
    assert holiday["off_peak"].amount == D("45.00") and holiday["on_peak"].amount == D("0.00")
    plain = by_period(TouEnergy("t", {**tou, "holidays": "none"}).compute(ctx))
    # 1,000 kWh = 1 MWh x 80 = 80.00 when Thanksgiving is an ordinary Thursday
    assert plain["on_peak"].amount == D("80.00") and plain["off_peak"].amount == D("0.00")
    extra = by_period(TouEnergy("t", {**tou, "holidays": "none", "extra_holidays": ["2026-11-26"]}).compute(ctx))
    assert extra["off_peak"].amount == D("45.00")


def test_spring_forward_month():
    mar = period("2026-03")
    ctx = make_ctx(mar, 100.0)
    # DST starts Sunday 2026-03-08: 23-hour day; 31 x 96 - 4 = 2,972 quarter-hours
    assert ctx.n_intervals == 2972
    lines = by_period(TouEnergy("t", {"rules": [{"period": "night", "hours": [[0, 6]]}],
                                      "default_period": "day", "prices": {"night": 20, "day": 50}}).compute(ctx))
    # night 00-06 = 24 intervals a day, but Mar 8 skips 02:00-03:00: 31 x 24 - 4 = 740
    assert lines["night"].determinants["intervals"] == "740"
    # 740 x 100 kWh = 74 MWh x 20 = 1,480.00
    assert lines["night"].amount == D("1480.00")


def test_seasons_month_ranges_and_wrapping_hours():
    year_starts = make_ctx(period(date(2026, 1, 1), date(2026, 12, 31)), 1.0, interval_minutes=60)
    sched = {
        "seasons": {"summer": ["6-9"], "winter": ["11-3"]},
        "rules": [
            {"period": "summer_peak", "season": "summer", "day_types": ["weekday"], "hours": [[14, 19]]},
            {"period": "winter_night", "season": "winter", "hours": [[22, 6]]},
        ],
        "holidays": "none",
        "prices": {"summer_peak": 100, "winter_night": 20, "off_peak": 40},
    }
    lines = by_period(TouEnergy("t", sched).compute(year_starts))
    # summer weekdays Jun-Sep 2026: 22 + 23 + 21 + 22 = 88 days x 5 h = 440 hours
    assert lines["summer_peak"].determinants["intervals"] == "440"
    # winter = Nov, Dec, Jan, Feb, Mar = 30 + 31 + 31 + 28 + 31 = 151 days x 8 h (22-24, 0-6) = 1,208
    # minus the skipped 02:00 on Mar 8 = 1,207; plus the repeated 01:00 on Nov 1 = 1,208
    assert lines["winter_night"].determinants["intervals"] == "1208"
    assert year_starts.n_intervals == 8760


def test_schedule_validation_errors():
    with pytest.raises(PricingError, match="no price for period"):
        TouEnergy("t", {"rules": [{"period": "on_peak"}], "prices": {"off_peak": 1}})
    with pytest.raises(PricingError, match="appear in no rule"):
        TouEnergy("t", {"prices": {"off_peak": 1, "shoulder": 2}})
    with pytest.raises(PricingError, match="season 'summer' is not defined"):
        TouEnergy("t", {"rules": [{"period": "p", "season": "summer"}], "prices": {"p": 1, "off_peak": 1}})
    with pytest.raises(PricingError, match="month 13"):
        TouEnergy("t", {"rules": [{"period": "p", "months": ["6-13"]}], "prices": {"p": 1, "off_peak": 1}})
    with pytest.raises(PricingError, match="hour range"):
        TouEnergy("t", {"rules": [{"period": "p", "hours": [[7, 25]]}], "prices": {"p": 1, "off_peak": 1}})
    with pytest.raises(PricingError, match="day_types"):
        TouEnergy("t", {"rules": [{"period": "p", "day_types": ["weekdays"]}], "prices": {"p": 1, "off_peak": 1}})


def test_holiday_calendars():
    # 2027: July 4 is a Sunday -> NERC observes Monday July 5; Dec 25 is a Saturday -> not moved
    h = nerc_holidays([2027])
    assert date(2027, 7, 5) in h and date(2027, 7, 4) not in h
    assert date(2027, 12, 25) in h and date(2027, 12, 24) not in h
    assert {date(2027, 5, 31), date(2027, 9, 6), date(2027, 11, 25)} <= h  # Memorial, Labor, Thanksgiving
    assert len(h) == 6
    us = holiday_dates("US", [2026])
    assert date(2026, 11, 11) in us and date(2026, 11, 26) in us
    assert holiday_dates("none", [2026]) == set()
    with pytest.raises(TouError, match="ZZ"):
        holiday_dates("ZZ", [2026])


def test_demand_window_uses_local_hours_and_holidays():
    ctx = make_ctx(NOV, 250.0)
    cal: LocalCalendar = ctx.calendar
    thanksgiving_3pm = (cal.local_date == np.datetime64("2026-11-26")) & (cal.minute_of_day == 15 * 60)
    ctx.demand_kw = ctx.demand_kw.copy()
    ctx.demand_kw[thanksgiving_3pm] = 5000.0
    window = {"day_types": ["weekday"], "hours": [[14, 19]], "holidays": "NERC"}
    ch = Demand("d", {"price_per_kw_month": 10, "window": window}).compute(ctx)[0]
    # the 5,000 kW spike is on a holiday, outside the window: billing 1,000 kW x 10 = 10,000.00
    assert ch.amount == D("10000.00")
    # window = 20 working days x 5 h x 4 = 400 intervals
    assert ch.determinants["window_intervals"] == "400"
    ch = Demand("d", {"price_per_kw_month": 10, "window": {**window, "holidays": "none"}}).compute(ctx)[0]
    assert ch.amount == D("50000.00")


def test_schedule_classify_is_vectorised_over_a_year_of_five_minute_intervals():
    ctx = make_ctx(period(date(2026, 1, 1), date(2026, 12, 31)), 1.0, interval_minutes=5)
    sched = TouSchedule(rules=[{"period": "on", "day_types": ["weekday"], "hours": [[7, 23]]}], holidays="NERC")
    names, idx = sched.classify(ctx.calendar)
    assert idx.shape == (365 * 288,)
    # 2026 starts on a Thursday: 52 weeks + 1 Thursday = 261 weekdays. NERC holidays on
    # weekdays: Jan 1 (Thu), May 25, Sep 7, Nov 26, Dec 25 (Fri) = 5; Jul 4 is a Saturday.
    # 256 days x 16 h x 12 five-minute intervals = 49,152
    assert int((idx == names.index("on")).sum()) == 256 * 16 * 12 == 49152
