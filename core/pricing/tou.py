"""Time-of-use schedules evaluated in local time, vectorised.

:class:`LocalCalendar` turns the UTC interval starts of a billing period into local
month, weekday, minute-of-day and local-date arrays once (pandas ``tz_convert``); every
schedule test after that is a numpy mask. A DST day simply has 92 or 100 quarter-hours:
the repeated 01:00 hour in November is two real hours of local hour 1 and is billed as
such.

A :class:`TouSchedule` is an ordered list of :class:`TouRule`; the first rule that matches
an interval names its period, ``default_period`` takes the rest. Rules select by season
(month list or ``"6-9"`` / ``"11-3"`` ranges, or a named season), day type and local
hours ``[start, end)`` (fractions allowed, ``end`` may be 24, ``start > end`` wraps over
midnight). Day types are exclusive: ``holiday`` if the local date is a holiday, else
``weekend`` on Saturday/Sunday, else ``weekday``.

Holidays: ``"NERC"`` (New Year's Day, Memorial Day, Independence Day, Labor Day,
Thanksgiving, Christmas; a Sunday holiday moves to Monday, a Saturday one is not moved),
a country code for the ``holidays`` package (``"US"``, ``"US-NY"`` for a subdivision,
``"DE"``...), or ``"none"``; ``extra_holidays`` adds dates.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DayType = Literal["weekday", "weekend", "holiday"]
DAY_TYPE_CODES: dict[str, int] = {"weekday": 0, "weekend": 1, "holiday": 2}


def all_day_types() -> list[DayType]:
    """Every day type (the default of a rule)."""
    return ["weekday", "weekend", "holiday"]


class TouError(ValueError):
    """A TOU schedule or holiday calendar that cannot be evaluated."""


@dataclass(frozen=True)
class LocalCalendar:
    """Local-time attributes of each interval start, computed once per period."""

    tz: str
    month: np.ndarray  # int8 1..12
    weekday: np.ndarray  # int8, Monday = 0
    minute_of_day: np.ndarray  # int16 local wall-clock minute 0..1439
    local_date: np.ndarray  # datetime64[D]
    day_index: np.ndarray  # intp index into ``days``
    days: tuple[date, ...]  # distinct local dates, ascending

    @classmethod
    def from_starts(cls, starts: np.ndarray, tz: str) -> LocalCalendar:
        """Compute the local attributes of UTC epoch-second ``starts`` in zone ``tz``."""
        import pandas as pd  # here, not at import: loading a configuration must not import pandas

        starts = np.asarray(starts, dtype=np.int64)
        try:
            idx = pd.to_datetime(starts, unit="s", utc=True).tz_convert(tz)
        except Exception as exc:
            raise TouError(f"cannot convert interval starts to time zone {tz!r}: {exc}") from exc
        wall = idx.tz_localize(None).to_numpy()  # local wall time, datetime64[ns]
        local_date = wall.astype("datetime64[D]")
        uniq, day_index = np.unique(local_date, return_inverse=True)
        minute = ((wall - local_date) // np.timedelta64(1, "m")).astype(np.int16)
        return cls(
            tz=tz,
            month=np.asarray(idx.month, dtype=np.int8),
            weekday=np.asarray(idx.day_of_week, dtype=np.int8),
            minute_of_day=minute,
            local_date=local_date,
            day_index=day_index.astype(np.intp),
            days=tuple(d.item() for d in uniq),
        )

    @property
    def years(self) -> list[int]:
        return sorted({d.year for d in self.days})

    def holiday_mask(self, holidays: Iterable[date]) -> np.ndarray:
        """True where the interval's local date is one of ``holidays``."""
        hol = np.array(sorted(set(holidays)), dtype="datetime64[D]")
        if hol.size == 0:
            return np.zeros(self.local_date.shape, dtype=bool)
        day_is_holiday = np.isin(np.array(self.days, dtype="datetime64[D]"), hol)
        return day_is_holiday[self.day_index]

    def day_types(self, holidays: Iterable[date]) -> np.ndarray:
        """Day-type code per interval (see :data:`DAY_TYPE_CODES`)."""
        codes = np.where(self.weekday >= 5, DAY_TYPE_CODES["weekend"], DAY_TYPE_CODES["weekday"]).astype(np.int8)
        codes[self.holiday_mask(holidays)] = DAY_TYPE_CODES["holiday"]
        return codes


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """The ``n``-th ``weekday`` (Mon=0) of a month; ``n = -1`` for the last one."""
    if n > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    last = nxt - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def nerc_holidays(years: Iterable[int]) -> set[date]:
    """NERC off-peak holidays; a Sunday holiday is observed on Monday, Saturday is not moved."""
    out: set[date] = set()
    for y in years:
        fixed = [date(y, 1, 1), date(y, 7, 4), date(y, 12, 25)]
        out.update(d + timedelta(days=1) if d.weekday() == 6 else d for d in fixed)
        out.add(_nth_weekday(y, 5, 0, -1))  # Memorial Day
        out.add(_nth_weekday(y, 9, 0, 1))  # Labor Day
        out.add(_nth_weekday(y, 11, 3, 4))  # Thanksgiving
    return out


def holiday_dates(calendar: str, years: Iterable[int], extra: Iterable[date] = ()) -> set[date]:
    """Holiday dates of ``calendar`` ("NERC", "none", or a ``holidays`` country code)."""
    years = sorted(set(years))
    spec = calendar.strip()
    out: set[date] = set(extra)
    if spec.lower() in ("", "none"):
        return out
    if spec.upper() == "NERC":
        return out | nerc_holidays(years)
    import holidays as holidays_pkg

    country, _, subdiv = spec.replace(":", "-").partition("-")
    try:
        cal = holidays_pkg.country_holidays(country.upper(), subdiv=subdiv or None, years=years)
    except NotImplementedError:
        what = f"country {country!r} / subdivision {subdiv!r}" if subdiv else f"country code {country!r}"
        raise TouError(f"holiday calendar {spec!r}: unknown {what} in the holidays package") from None
    except Exception as exc:
        raise TouError(f"holiday calendar {spec!r}: {exc}") from exc
    return out | set(cal.keys())


def _expand_months(items: Iterable[int | str], where: str) -> list[int]:
    months: list[int] = []
    for item in items:
        if isinstance(item, int):
            lo = hi = item
        else:
            text = str(item).strip()
            a, sep, b = text.partition("-")
            try:
                lo, hi = (int(a), int(b)) if sep else (int(a), int(a))
            except ValueError:
                raise ValueError(f"{where}: {item!r} is not a month or a month range like '6-9'") from None
        for m in (lo, hi):
            if not 1 <= m <= 12:
                raise ValueError(f"{where}: month {m} is not in 1..12")
        months.extend(range(lo, hi + 1) if lo <= hi else [*range(lo, 13), *range(1, hi + 1)])
    return sorted(set(months))


class TouRule(BaseModel):
    """Intervals matching season, day type and hours belong to ``period``."""

    model_config = ConfigDict(extra="forbid")

    period: str
    months: list[int | str] | None = None  # None: every month
    season: str | None = None  # a key of TouSchedule.seasons
    day_types: list[DayType] = Field(default_factory=all_day_types)
    hours: list[tuple[float, float]] = Field(default_factory=lambda: [(0.0, 24.0)])

    @field_validator("hours")
    @classmethod
    def _hours_in_range(cls, hours: list[tuple[float, float]]) -> list[tuple[float, float]]:
        for start, end in hours:
            if not (0 <= start < 24 and 0 < end <= 24) or start == end:
                raise ValueError(f"hour range [{start}, {end}) must have 0 <= start < 24, 0 < end <= 24, start != end")
        return hours

    @model_validator(mode="after")
    def _season_or_months(self) -> TouRule:
        if self.months is not None and self.season is not None:
            raise ValueError("give months or season, not both")
        if self.months is not None:
            self.months = _expand_months(self.months, "months")  # type: ignore[assignment]
        return self


class TouSchedule(BaseModel):
    """An ordered TOU schedule: first matching rule wins, ``default_period`` otherwise."""

    model_config = ConfigDict(extra="forbid")

    rules: list[TouRule] = Field(default_factory=list)
    default_period: str = "off_peak"
    seasons: dict[str, list[int | str]] = Field(default_factory=dict)
    holidays: str = "NERC"
    extra_holidays: list[date] = Field(default_factory=list)

    @model_validator(mode="after")
    def _seasons_known(self) -> TouSchedule:
        self.seasons = {k: _expand_months(v, f"seasons.{k}") for k, v in self.seasons.items()}  # type: ignore[misc]
        for i, rule in enumerate(self.rules):
            if rule.season is not None and rule.season not in self.seasons:
                raise ValueError(f"rules[{i}]: season {rule.season!r} is not defined in seasons ({', '.join(self.seasons) or 'none'})")
        return self

    @property
    def period_names(self) -> list[str]:
        """Periods in first-appearance order, default last."""
        names: list[str] = []
        for rule in self.rules:
            if rule.period not in names:
                names.append(rule.period)
        if self.default_period not in names:
            names.append(self.default_period)
        return names

    def rule_months(self, rule: TouRule) -> list[int] | None:
        if rule.season is not None:
            return list(self.seasons[rule.season])  # type: ignore[arg-type]
        return rule.months  # type: ignore[return-value]

    def holiday_set(self, years: Iterable[int]) -> set[date]:
        return holiday_dates(self.holidays, years, self.extra_holidays)

    def rule_mask(self, rule: TouRule, cal: LocalCalendar, day_types: np.ndarray) -> np.ndarray:
        """Boolean mask of the intervals a rule matches."""
        mask = np.ones(cal.month.shape, dtype=bool)
        months = self.rule_months(rule)
        if months is not None:
            mask &= np.isin(cal.month, np.array(months, dtype=np.int8))
        if set(rule.day_types) != set(DAY_TYPE_CODES):
            mask &= np.isin(day_types, np.array([DAY_TYPE_CODES[d] for d in rule.day_types], dtype=np.int8))
        hour_mask = np.zeros(cal.month.shape, dtype=bool)
        mod = cal.minute_of_day
        for start, end in rule.hours:
            lo, hi = round(start * 60), round(end * 60)
            hour_mask |= ((mod >= lo) & (mod < hi)) if lo < hi else ((mod >= lo) | (mod < hi))
        return mask & hour_mask

    def classify(self, cal: LocalCalendar) -> tuple[list[str], np.ndarray]:
        """Period names and the period index (into the names) of every interval.

        Cached on the calendar per schedule (contracts of one period share the calendar
        and often the schedule); callers get their own copy of the index array.
        """
        cache = cal.__dict__.setdefault("_classified", {})
        key = (type(self), self.model_dump_json())
        hit = cache.get(key)
        if hit is None:
            hit = cache[key] = self._classify(cal)
        return list(hit[0]), hit[1].copy()

    def _classify(self, cal: LocalCalendar) -> tuple[list[str], np.ndarray]:
        names = self.period_names
        day_types = cal.day_types(self.holiday_set(cal.years))
        out = np.full(cal.month.shape, names.index(self.default_period), dtype=np.int16)
        assigned = np.zeros(cal.month.shape, dtype=bool)
        for rule in self.rules:
            hit = self.rule_mask(rule, cal, day_types) & ~assigned
            out[hit] = names.index(rule.period)
            assigned |= hit
        return names, out

    def window_mask(self, cal: LocalCalendar, periods: Iterable[str]) -> np.ndarray:
        """True for intervals whose period is one of ``periods``."""
        names, idx = self.classify(cal)
        wanted = [names.index(p) for p in periods if p in names]
        return np.isin(idx, np.array(wanted, dtype=np.int16))
