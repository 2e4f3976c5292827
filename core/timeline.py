"""Time model: UTC-keyed intervals, local time only at the edges.

Local days and billing periods are cut with :mod:`zoneinfo`; a New York DST day has 92
or 100 quarter-hours and nothing here needs to guess. Naive or ambiguous local
timestamps are rejected, never shifted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

UTC = UTC


class TimeModelError(ValueError):
    """A timestamp that cannot be placed on the UTC line without guessing."""


def zone(name: str) -> ZoneInfo:
    """Return the IANA zone ``name`` or raise :class:`TimeModelError`."""
    try:
        return ZoneInfo(name)
    except Exception as exc:  # ZoneInfoNotFoundError, ValueError
        raise TimeModelError(f"unknown time zone {name!r}") from exc


def require_aware(ts: datetime, where: str = "") -> datetime:
    """Return ``ts`` in UTC; a naive datetime is an error."""
    if ts.tzinfo is None or ts.tzinfo.utcoffset(ts) is None:
        raise TimeModelError(f"{where + ': ' if where else ''}timestamp {ts.isoformat()} has no time zone or offset")
    return ts.astimezone(UTC)


def localize(naive: datetime, tz: str | ZoneInfo, where: str = "") -> datetime:
    """Attach ``tz`` to a naive local wall time, refusing ambiguous or non-existent times.

    A wall time inside the fall-back hour is ambiguous (it happens twice); one inside the
    spring-forward gap does not exist. Both raise :class:`TimeModelError`.
    """
    z = zone(tz) if isinstance(tz, str) else tz
    if naive.tzinfo is not None:
        return naive.astimezone(UTC)
    first = naive.replace(tzinfo=z, fold=0)
    second = naive.replace(tzinfo=z, fold=1)
    prefix = f"{where}: " if where else ""
    if first.utcoffset() != second.utcoffset():
        # fold matters: either ambiguous (fall back) or non-existent (spring forward)
        back = first.astimezone(UTC).astimezone(z).replace(tzinfo=None)
        if back != naive:
            raise TimeModelError(f"{prefix}local time {naive.isoformat()} does not exist in {z.key} (DST gap)")
        raise TimeModelError(
            f"{prefix}local time {naive.isoformat()} is ambiguous in {z.key} (DST fall-back); give an offset"
        )
    return first.astimezone(UTC)


@dataclass(frozen=True)
class Span:
    """A half-open UTC span ``[start, end)``."""

    start: datetime
    end: datetime

    @property
    def start_epoch(self) -> int:
        return int(self.start.timestamp())

    @property
    def end_epoch(self) -> int:
        return int(self.end.timestamp())

    @property
    def seconds(self) -> int:
        return self.end_epoch - self.start_epoch

    def n_intervals(self, interval_minutes: int) -> int:
        return self.seconds // (interval_minutes * 60)

    def utc_days(self) -> list[date]:
        """UTC calendar days that the span touches."""
        first = self.start.date()
        last = (self.end - timedelta(microseconds=1)).date()
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def local_day(day: date, tz: str) -> Span:
    """UTC span of a local calendar day (23, 24 or 25 hours)."""
    z = zone(tz)
    start = datetime.combine(day, time(0), tzinfo=z).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=z).astimezone(UTC)
    return Span(start, end)


def intervals_in_local_day(day: date, tz: str, interval_minutes: int) -> int:
    """Number of intervals in a local day: 96 quarter-hours normally, 92 or 100 on DST days."""
    return local_day(day, tz).n_intervals(interval_minutes)


@dataclass(frozen=True)
class BillingPeriod:
    """A local calendar month (or arbitrary local date range) and its UTC span."""

    label: str
    first_day: date
    last_day: date  # inclusive
    timezone: str
    span: Span

    def local_days(self) -> list[date]:
        return [self.first_day + timedelta(days=i) for i in range((self.last_day - self.first_day).days + 1)]


def billing_period(label: str, tz: str) -> BillingPeriod:
    """Parse ``YYYY-MM`` into the local month and its UTC span."""
    try:
        year, month = (int(x) for x in label.split("-"))
        first = date(year, month, 1)
    except Exception as exc:
        raise TimeModelError(f"billing period {label!r} is not YYYY-MM") from exc
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    return period_between(first, nxt - timedelta(days=1), tz, label=label)


def period_between(first: date, last: date, tz: str, label: str | None = None) -> BillingPeriod:
    """A billing period of local days ``first..last`` (inclusive)."""
    z = zone(tz)
    start = datetime.combine(first, time(0), tzinfo=z).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time(0), tzinfo=z).astimezone(UTC)
    return BillingPeriod(label or f"{first}..{last}", first, last, z.key, Span(start, end))


def previous_periods(label: str, n: int) -> list[str]:
    """The ``n`` monthly labels before ``label``, newest first."""
    year, month = (int(x) for x in label.split("-"))
    out = []
    for _ in range(n):
        month -= 1
        if month == 0:
            year, month = year - 1, 12
        out.append(f"{year:04d}-{month:02d}")
    return out
