"""When a billing period is settled: the close schedule, as pure functions.

A monthly period is settled ``initial`` at D+n and ``final`` at D+m, where D is the
local date the period ends on (its last day + 1, i.e. the first day of the next month)
in the contract's time zone, at a local time of day. A version is *due* once that
instant has passed; a due version that exists already is not due again, and a
``final`` waits for its ``initial``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from kwhub.core.timeline import require_aware, zone


@dataclass(frozen=True)
class CloseRule:
    """``initial_days`` / ``final_days`` (None: no scheduled final) after the period, at ``at`` local."""

    initial_days: int
    final_days: int | None
    at: time

    def __post_init__(self) -> None:
        if self.initial_days < 0:
            raise ValueError("initial_days must not be negative")
        if self.final_days is not None and self.final_days <= self.initial_days:
            raise ValueError("final_days must come after initial_days")


def period_end_day(label: str) -> date:
    """The local date a monthly period ``YYYY-MM`` ends on (the first day of the next month)."""
    year, month = (int(x) for x in label.split("-"))
    return date(year + (month == 12), month % 12 + 1, 1)


def due_at(label: str, days: int, at: time, tz: str) -> datetime:
    """The instant (aware, in ``tz``) ``days`` local days after period ``label`` ends, at ``at``."""
    day = period_end_day(label) + timedelta(days=days)
    return datetime.combine(day, at, tzinfo=zone(tz))


def recent_periods(now: datetime, tz: str, n: int) -> list[str]:
    """The ``n`` monthly labels that ended last before ``now`` (local in ``tz``), oldest first."""
    local = require_aware(now, "now").astimezone(zone(tz))
    year, month = local.year, local.month
    out = []
    for _ in range(n):
        month -= 1
        if month == 0:
            year, month = year - 1, 12
        out.append(f"{year:04d}-{month:02d}")
    return out[::-1]


def due_versions(label: str, rule: CloseRule, tz: str, now: datetime, settled: set[str]) -> list[str]:
    """The versions of ``label`` due at ``now`` and not in ``settled`` (version kinds already
    recorded for it), in the order to run them."""
    require_aware(now, "now")
    out = []
    if "initial" not in settled and now >= due_at(label, rule.initial_days, rule.at, tz):
        out.append("initial")
    if (rule.final_days is not None and "final" not in settled and "true_up" not in settled
            and now >= due_at(label, rule.final_days, rule.at, tz)):
        out.append("final")
    return out
