"""The close schedule (core/close_schedule.py): initial at D+n, final at D+m, local time, in order."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from kwhub.core.close_schedule import (
    CloseRule,
    due_at,
    due_versions,
    period_end_day,
    recent_periods,
)

NY = ZoneInfo("America/New_York")
RULE = CloseRule(initial_days=3, final_days=30, at=time(6, 0))


def test_due_instants_are_local_days_after_the_period_at_the_local_time():
    assert period_end_day("2026-10").isoformat() == "2026-11-01"
    assert period_end_day("2026-12").isoformat() == "2027-01-01"
    # October ends 1 Nov (local); +3 days = 4 Nov 06:00 EST (after the DST change on 1 Nov) = 11:00 UTC
    assert due_at("2026-10", 3, time(6), "America/New_York").astimezone(UTC) == datetime(2026, 11, 4, 11, tzinfo=UTC)
    # September: 1 Oct + 3 = 4 Oct 06:00 EDT = 10:00 UTC
    assert due_at("2026-09", 3, time(6), "America/New_York").astimezone(UTC) == datetime(2026, 10, 4, 10, tzinfo=UTC)


@pytest.mark.parametrize(("now", "settled", "expected"), [
    (datetime(2026, 11, 4, 5, 59, tzinfo=NY), set(), []),
    (datetime(2026, 11, 4, 6, 0, tzinfo=NY), set(), ["initial"]),
    (datetime(2026, 11, 4, 6, 0, tzinfo=NY), {"initial"}, []),
    (datetime(2026, 12, 1, 6, 0, tzinfo=NY), {"initial"}, ["final"]),
    (datetime(2026, 12, 1, 6, 0, tzinfo=NY), set(), ["initial", "final"]),  # downtime: both, in order
    (datetime(2026, 12, 1, 6, 0, tzinfo=NY), {"initial", "final"}, []),
    (datetime(2026, 12, 1, 6, 0, tzinfo=NY), {"initial", "true_up"}, []),
])
def test_due_versions(now, settled, expected):
    assert due_versions("2026-10", RULE, "America/New_York", now, settled) == expected


def test_recent_periods_follow_the_local_calendar():
    # 1 Nov 02:00 UTC is still 31 Oct in New York: October has not ended there
    assert recent_periods(datetime(2026, 11, 1, 2, tzinfo=UTC), "America/New_York", 2) == ["2026-08", "2026-09"]
    assert recent_periods(datetime(2026, 11, 1, 5, tzinfo=UTC), "America/New_York", 2) == ["2026-09", "2026-10"]
    assert recent_periods(datetime(2027, 1, 15, tzinfo=UTC), "UTC", 3) == ["2026-10", "2026-11", "2026-12"]


def test_a_rule_that_closes_final_before_initial_is_refused():
    with pytest.raises(ValueError, match="final_days"):
        CloseRule(initial_days=5, final_days=5, at=time(6))
    with pytest.raises(ValueError, match="aware|offset|timezone"):
        due_versions("2026-10", RULE, "UTC", datetime(2026, 12, 1), set())
