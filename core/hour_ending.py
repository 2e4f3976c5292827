"""Hour-ending labels on the UTC line: one rule for meter files and ISO documents.

Meter exports and ISO documents label an hour by the local date and its *hour ending*
(HE 1 is local 00:00-01:00, HE 24 ends at midnight). Two days a year break the simple
reading:

* the spring-forward day has 23 hours: with *clock* labels HE k ends at wall clock k:00,
  so the hour of the gap has no label (HE 3 in the US); with *elapsed* labels HE k ends k
  hours after local midnight and the day runs HE 1..23;
* the fall-back day has 25 hours: *elapsed* labels run HE 1..25; *clock* labels repeat
  one hour (HE 2 in the US), told apart by a DST flag column or a marker on the label
  (``HE02*``, ``02*``, ``HE02 DST``, ``2R``).

:func:`day_info` describes one local day; :func:`parse_labels` reads a column of labels
(numbers, ``HE07``, markers of the repeated hour) vectorised; :func:`hour_ending_epochs`
places (day, label, flag) rows on the UTC line, refusing what cannot be placed without a
guess; :func:`day_labels` lays a whole day out on a grid with every label beside each
interval (hour ending, interval in the hour, repeated flag, explicit UTC offset).
Errors are :class:`HourEndingError` naming the row and what is wrong, so an adapter can
add its file, line and column.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Literal

import numpy as np

from kwhub.core.timeline import local_day, zone

Style = Literal["auto", "elapsed", "clock"]
DstMarks = Literal["repeated_hour", "daylight_time"]

# "7", "07", "7.0", "HE7", "HE 07", "he07", then an optional marker of the repeated hour
_LABEL = re.compile(r"^\s*(?:HE\s*)?(\d{1,2})(?:\.0+)?\s*(\*|R|DST|B)?\s*$", re.IGNORECASE)


class HourEndingError(ValueError):
    """A row whose hour-ending label cannot be placed; ``row`` indexes the input arrays,
    ``part`` is ``"date"``, ``"hour_ending"`` or ``"dst_flag"``."""

    def __init__(self, message: str, row: int, part: str = "hour_ending") -> None:
        super().__init__(message)
        self.row = row
        self.part = part


@dataclass(frozen=True)
class LocalDay:
    """One local calendar day: its UTC start, its length and its DST labels."""

    start: int  # UTC epoch seconds of local midnight
    hours: int  # 23, 24 or 25
    gap_label: int  # clock hour-ending label that does not exist (spring-forward day), else 0
    repeated_label: int  # clock hour-ending label that repeats (fall-back day), else 0


@lru_cache(maxsize=4096)
def day_info(d: date, tz: str) -> LocalDay:
    """:class:`LocalDay` of ``d`` in ``tz`` (cached: a file has few distinct days)."""
    span = local_day(d, tz)
    hours = span.seconds // 3600
    gap = repeated = 0
    if hours != 24:
        z = zone(tz)
        for h in range(24):
            wall = datetime(d.year, d.month, d.day, h)
            if hours < 24 and wall.replace(tzinfo=z).astimezone(UTC).astimezone(z).replace(tzinfo=None) != wall:
                gap = h + 1  # wall hour h:00-h+1:00 does not exist: HE h+1 is skipped
                break
            if hours > 24 and wall.replace(tzinfo=z, fold=0).utcoffset() != wall.replace(tzinfo=z, fold=1).utcoffset():
                repeated = h + 1
                break
    return LocalDay(span.start_epoch, hours, gap, repeated)


def parse_labels(raw: Sequence[object] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(hour_ending, marked)`` of a column of labels: int64 1..25 and whether the label
    carries a marker of the repeated hour (``*``, ``R``, ``B`` or ``DST``).

    Numbers (``7``, ``07``, ``7.0``) take a vectorised path; only other text is matched
    one distinct value at a time. A label that is not a whole number 1..25 raises
    :class:`HourEndingError` for its first row.
    """
    values = np.asarray(raw, dtype=object)
    n = len(values)
    marked = np.zeros(n, dtype=bool)
    if n == 0:
        return np.zeros(0, dtype=np.int64), marked
    import pandas as pd

    num = np.array(pd.to_numeric(pd.Series(values), errors="coerce"), dtype=np.float64)  # a writable copy
    text = np.isnan(num)
    if text.any():
        codes, uniques = pd.factorize(values[text])
        u_he = np.full(len(uniques), np.nan)
        u_mark = np.zeros(len(uniques), dtype=bool)
        for k, value in enumerate(uniques):
            m = _LABEL.match(str(value))
            if m:
                u_he[k] = float(m.group(1))
                u_mark[k] = m.group(2) is not None
        num[text] = u_he[codes]
        marked[text] = u_mark[codes]
    bad = np.isnan(num) | (num != np.round(num)) | (num < 1) | (num > 25)
    if bad.any():
        i = int(np.argmax(bad))
        raise HourEndingError(f"hour ending {str(values[i])[:40]!r} is not a whole number 1..25 (or HE01..HE25, "
                              "with * or DST for the repeated hour)", i)
    return num.astype(np.int64), marked


def hour_ending_epochs(day_codes: np.ndarray, days: Sequence[date], hour_ending: np.ndarray, tz: str, *,
                       style: Style = "auto", dst_flags: np.ndarray | None = None,
                       dst_marks: DstMarks = "repeated_hour", labels: Sequence[str] | None = None) -> np.ndarray:
    """UTC epoch seconds of the END of each row's hour.

    Row ``i`` is the hour ``hour_ending[i]`` of the local day ``days[day_codes[i]]`` (the
    distinct days once, rows pointing at them). ``elapsed`` style: HE k ends k hours after
    local midnight. ``clock`` style: HE k ends at wall clock k:00, so the spring-forward day
    skips the gap's label and the fall-back day's repeated label needs a flag per row
    (``dst_flags``; ``dst_marks`` says whether a set flag marks the repeated, second
    occurrence (``repeated_hour``) or daylight saving time, so the first occurrence
    (``daylight_time``)). ``auto`` decides per DST day from its labels and refuses what they
    cannot decide: a fall-back day is accepted with 25 labels (elapsed), with flags, or
    when all its labels lie before the repeated hour. ``labels`` (the days as written)
    name the days in messages.
    """
    codes = np.asarray(day_codes, dtype=np.int64)
    he = np.asarray(hour_ending, dtype=np.int64)
    infos = [day_info(d, tz) for d in days]
    names = list(labels) if labels is not None else [d.isoformat() for d in days]
    n = len(infos)
    day_start = np.array([d.start for d in infos], dtype=np.int64)
    day_hours = np.array([d.hours for d in infos], dtype=np.int64)
    gap_label = np.array([d.gap_label for d in infos], dtype=np.int64)
    amb_label = np.array([d.repeated_label for d in infos], dtype=np.int64)
    first = np.full(n, -1, dtype=np.int64)
    first[codes[::-1]] = np.arange(len(codes) - 1, -1, -1)  # first row of each day

    max_he = np.zeros(n, dtype=np.int64)
    np.maximum.at(max_he, codes, he)
    gl = gap_label[codes]
    has_gap_label = np.zeros(n, dtype=bool)
    has_gap_label[codes[(gl > 0) & (he == gl)]] = True
    spring = gap_label > 0
    if style == "clock" or dst_flags is not None:  # a DST flag goes with wall clock labels
        clock = spring.copy()
    elif style == "elapsed":
        clock = np.zeros(n, dtype=bool)
    else:
        clock = spring & (max_he == 24)
        undecided = spring & ~clock & ~has_gap_label
        if undecided.any():
            k = int(np.flatnonzero(undecided)[0])
            raise HourEndingError(f"cannot tell whether hour-ending numbers on {names[k]} (a {day_hours[k]}-hour day) "
                                  "skip the DST gap; set hour_ending_style to 'elapsed' or 'clock'", int(first[k]))
    row_clock = clock[codes]
    on_gap = row_clock & (he == gl)
    if on_gap.any():
        i = int(np.argmax(on_gap))
        raise HourEndingError(f"hour ending {he[i]} does not exist on {names[codes[i]]} (DST gap in {tz})", i)
    elapsed = np.where(row_clock & (he > gl), he - 1, he)

    fall = (day_hours > 24)[codes]
    if fall.any() or dst_flags is not None:
        al = amb_label[codes]
        if dst_flags is not None:
            flags = np.asarray(dst_flags, dtype=bool)
            on_amb = fall & (he == al)
            repeated = on_amb & ~flags if dst_marks == "daylight_time" else flags
            flagged = repeated & ~on_amb
            if flagged.any():
                i = int(np.argmax(flagged))
                rep = f"only HE {al[i]} repeats on it" if fall[i] else "it is not a fall-back day"
                raise HourEndingError(f"DST flag marks HE {he[i]} on {names[codes[i]]} as the repeated hour, but {rep}",
                                      i, "dst_flag")
            elapsed = np.where(fall & ((he > al) | (on_amb & repeated)), he + 1, elapsed)
        elif style == "clock":
            amb = fall & (he == al)
            if amb.any():
                i = int(np.argmax(amb))
                raise HourEndingError(f"hour ending {he[i]} on {names[codes[i]]} is ambiguous (DST fall-back in {tz}: "
                                      "the hour repeats); add a DST flag column (dst_flag_column) or use 25 elapsed "
                                      "labels", i)
            elapsed = np.where(fall & (he > al), he + 1, elapsed)
        elif style == "auto":
            # 25 labels say "elapsed"; labels all before the repeated hour mean the same in
            # both conventions; anything else cannot be placed without guessing
            unclear = (day_hours > 24) & (max_he < 25) & (max_he >= amb_label)
            if unclear.any():
                k = int(np.flatnonzero(unclear)[0])
                raise HourEndingError(
                    f"{days[k]} is a 25-hour day in {tz} (DST fall-back) and its hour-ending labels go up to "
                    f"HE {max_he[k]}: they cannot say which hour repeats. Accepted are 25 labels (HE 1..25, one per "
                    "elapsed hour), a DST flag column (dst_flag_column) or marked labels (HE02*) with clock labels, "
                    "or timestamps with UTC offsets; set hour_ending_style = 'elapsed' only if HE k is the k-th "
                    "hour of the day and the file leaves the last hour out", int(first[k]))
    too_far = elapsed > day_hours[codes]
    if too_far.any():
        i = int(np.argmax(too_far))
        raise HourEndingError(f"hour ending {he[i]} on {names[codes[i]]}, a {day_hours[codes[i]]}-hour day in {tz}", i)
    return day_start[codes] + elapsed * 3600


@dataclass(frozen=True)
class DayLabels:
    """Every label of one local day on a grid of ``minutes``-long intervals."""

    starts: np.ndarray  # int64 UTC epoch seconds of each interval's start
    hour_ending: np.ndarray  # int64 1..24: wall-clock hour ending of the interval's hour
    interval_in_hour: np.ndarray  # int64 1..60/minutes
    repeated: np.ndarray  # bool: the second pass through a wall-clock hour (fall-back day)
    offset_s: np.ndarray  # int64 UTC offset of the interval start, seconds


def day_labels(d: date, tz: str, minutes: int) -> DayLabels:
    """The labels of every interval of ``d`` in ``tz`` (vectorised from :func:`day_info`)."""
    info = day_info(d, tz)
    step = minutes * 60
    n = info.hours * 3600 // step
    starts = info.start + step * np.arange(n, dtype=np.int64)
    elapsed_h = (starts - info.start) // 3600  # 0-based elapsed hour of the day
    within = (starts - info.start) % 3600 // step + 1
    clock_h = elapsed_h.copy()
    repeated = np.zeros(n, dtype=bool)
    if info.gap_label:
        clock_h = np.where(elapsed_h >= info.gap_label - 1, elapsed_h + 1, elapsed_h)
    elif info.repeated_label:
        r = info.repeated_label - 1  # 0-based wall hour that repeats
        repeated = elapsed_h == r + 1
        clock_h = np.where(elapsed_h > r, elapsed_h - 1, elapsed_h)
    wall_s = clock_h * 3600 + (within - 1) * step
    offset = wall_s - (starts - info.start) + _midnight_offset(d, tz)
    return DayLabels(starts, clock_h + 1, within, repeated, offset.astype(np.int64))


def _midnight_offset(d: date, tz: str) -> int:
    off = datetime(d.year, d.month, d.day, tzinfo=zone(tz)).utcoffset()
    return int(off.total_seconds()) if off is not None else 0


def offset_label(seconds: int) -> str:
    """An explicit UTC offset as written in ISO 8601: ``-05:00``, ``+05:30``."""
    sign = "-" if seconds < 0 else "+"
    mins = abs(int(seconds)) // 60
    return f"{sign}{mins // 60:02d}:{mins % 60:02d}"


__all__ = ["DayLabels", "HourEndingError", "LocalDay", "day_info", "day_labels", "hour_ending_epochs",
           "offset_label", "parse_labels"]
