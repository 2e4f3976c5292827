"""Time model: UTC-keyed intervals, local days and billing periods cut with zoneinfo."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pytest

from kwhub.core.intervals import ChannelSeries, IntervalDataError, split_by_day
from kwhub.core.timeline import (
    TimeModelError,
    billing_period,
    intervals_in_local_day,
    local_day,
    localize,
    previous_periods,
    require_aware,
)


@pytest.mark.parametrize(
    "day,tz,minutes,expected",
    [
        (date(2026, 3, 8), "America/New_York", 15, 92),
        (date(2026, 11, 1), "America/New_York", 15, 100),
        (date(2026, 11, 2), "America/New_York", 15, 96),
        (date(2026, 3, 29), "Europe/Berlin", 15, 92),
        (date(2026, 10, 25), "Europe/Berlin", 60, 25),
        (date(2026, 3, 8), "America/New_York", 5, 276),
    ],
)
def test_local_days_have_the_right_number_of_intervals(day, tz, minutes, expected):
    assert intervals_in_local_day(day, tz, minutes) == expected


def test_local_day_span_is_in_utc():
    span = local_day(date(2026, 11, 1), "America/New_York")
    assert span.start == datetime(2026, 11, 1, 4, tzinfo=UTC)
    assert span.end == datetime(2026, 11, 2, 5, tzinfo=UTC)
    assert span.utc_days() == [date(2026, 11, 1), date(2026, 11, 2)]


def test_billing_period_of_a_dst_month():
    p = billing_period("2026-11", "America/New_York")
    assert p.first_day == date(2026, 11, 1) and p.last_day == date(2026, 11, 30)
    assert p.span.n_intervals(15) == 30 * 96 + 4
    assert len(p.local_days()) == 30
    assert billing_period("2026-03", "America/New_York").span.n_intervals(15) == 31 * 96 - 4


def test_naive_timestamps_are_rejected():
    with pytest.raises(TimeModelError, match="no time zone"):
        require_aware(datetime(2026, 1, 1), "line 7")


def test_ambiguous_and_missing_local_times_are_rejected_not_shifted():
    with pytest.raises(TimeModelError, match="line 12: .*ambiguous"):
        localize(datetime(2026, 11, 1, 1, 30), "America/New_York", "line 12")
    with pytest.raises(TimeModelError, match="does not exist"):
        localize(datetime(2026, 3, 8, 2, 30), "America/New_York", "line 3")
    assert localize(datetime(2026, 11, 1, 0, 45), "America/New_York") == datetime(2026, 11, 1, 4, 45, tzinfo=UTC)


def test_bad_period_label():
    with pytest.raises(TimeModelError, match="YYYY-MM"):
        billing_period("October", "UTC")
    assert previous_periods("2026-02", 3) == ["2026-01", "2025-12", "2025-11"]


def test_split_by_day_is_slot_indexed_and_last_duplicate_wins():
    base = int(datetime(2026, 10, 1, tzinfo=UTC).timestamp())
    starts = np.array([base + 900, base, base + 86_400, base + 900])
    s = ChannelSeries("c", 15, starts, np.array([1.0, 2.0, 3.0, 4.0]), np.zeros(4, np.uint8))
    blocks = list(split_by_day(s))
    assert [b.day for b in blocks] == [date(2026, 10, 1), date(2026, 10, 2)]
    assert blocks[0].values[:2].tolist() == [2.0, 4.0]
    assert np.isnan(blocks[0].values[2:]).all() and blocks[1].values[0] == 3.0


def test_misaligned_start_is_an_error_naming_the_field():
    s = ChannelSeries("c", 15, np.array([60]), np.array([1.0]), np.zeros(1, np.uint8))
    with pytest.raises(IntervalDataError, match=r"\[start\].*15-minute grid"):
        list(split_by_day(s, source="f.csv"))
