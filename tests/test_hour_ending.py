"""kwhub.core.hour_ending: the one hour-ending / DST rule of meter files and ISO documents.

Expected instants are written out by hand in UTC (New York: EST is UTC-5, EDT UTC-4; the
2024 spring-forward day is 10 March, the fall-back day 3 November)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pytest

from kwhub.core.hour_ending import (
    HourEndingError,
    day_info,
    day_labels,
    hour_ending_epochs,
    offset_label,
    parse_labels,
)
from kwhub.core.markets.hour_labels import DayGrid

NY = "America/New_York"
SPRING, FALL, PLAIN = date(2024, 3, 10), date(2024, 11, 3), date(2024, 6, 1)


def utc(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp())


def ends(days: list[date], he: list[int], **kw: object) -> list[int]:
    codes = np.zeros(len(he), dtype=np.int64)
    if len(days) > 1:
        codes = np.asarray(kw.pop("codes"), dtype=np.int64)  # type: ignore[arg-type]
    return hour_ending_epochs(codes, days, np.asarray(he), NY, **kw).tolist()  # type: ignore[arg-type]


def test_day_info_of_the_three_kinds_of_day():
    assert day_info(PLAIN, NY).hours == 24 and day_info(PLAIN, NY).gap_label == 0
    spring = day_info(SPRING, NY)
    assert (spring.start, spring.hours, spring.gap_label, spring.repeated_label) == (utc(2024, 3, 10, 5), 23, 3, 0)
    fall = day_info(FALL, NY)
    assert (fall.start, fall.hours, fall.gap_label, fall.repeated_label) == (utc(2024, 11, 3, 4), 25, 0, 2)


def test_hour_24_ends_at_local_midnight():
    assert ends([PLAIN], [1, 24]) == [utc(2024, 6, 1, 5), utc(2024, 6, 2, 4)]


def test_spring_forward_clock_labels_skip_he03_and_elapsed_labels_run_to_23():
    # clock: HE02 ends 03:00 EDT = 07:00 UTC (the wall clock jumps 02:00 -> 03:00); HE04 ends 04:00 EDT = 08:00 UTC
    assert ends([SPRING], [1, 2, 4, 24], style="clock") == [utc(2024, 3, 10, 6), utc(2024, 3, 10, 7),
                                                             utc(2024, 3, 10, 8), utc(2024, 3, 11, 4)]
    assert ends([SPRING], [1, 2, 3, 23], style="elapsed") == [utc(2024, 3, 10, 6), utc(2024, 3, 10, 7),
                                                               utc(2024, 3, 10, 8), utc(2024, 3, 11, 4)]
    with pytest.raises(HourEndingError, match="does not exist"):
        ends([SPRING], [3], style="clock")
    # auto: 24 labels on a 23-hour day are clock labels
    assert ends([SPRING], [*range(1, 3), *range(4, 25)])[-1] == utc(2024, 3, 11, 4)


def test_fall_back_needs_25_labels_a_flag_or_a_marker():
    # elapsed: HE02 is the first 01:00-02:00 (EDT, ends 05:00 UTC... starts 05:00), HE03 the second
    assert ends([FALL], list(range(1, 26)))[:4] == [utc(2024, 11, 3, 5), utc(2024, 11, 3, 6), utc(2024, 11, 3, 7),
                                                    utc(2024, 11, 3, 8)]
    assert ends([FALL], list(range(1, 26)))[-1] == utc(2024, 11, 4, 5)
    with pytest.raises(HourEndingError, match="cannot say which hour repeats"):
        ends([FALL], list(range(1, 25)))
    with pytest.raises(HourEndingError, match="ambiguous"):
        ends([FALL], [2], style="clock")
    # a flag on the second HE02: 01:00-02:00 EST ends 07:00 UTC; HE03 (02:00-03:00 EST) ends 08:00 UTC
    flags = np.array([False, False, True, False])
    assert ends([FALL], [1, 2, 2, 3], dst_flags=flags) == [utc(2024, 11, 3, 5), utc(2024, 11, 3, 6),
                                                           utc(2024, 11, 3, 7), utc(2024, 11, 3, 8)]
    # daylight_time marks: the flag is set on the first (summer-time) HE02
    day_flags = np.array([True, True, False, False])
    assert ends([FALL], [1, 2, 2, 3], dst_flags=day_flags, dst_marks="daylight_time") == \
        [utc(2024, 11, 3, 5), utc(2024, 11, 3, 6), utc(2024, 11, 3, 7), utc(2024, 11, 3, 8)]
    with pytest.raises(HourEndingError, match="only HE 2 repeats") as info:
        ends([FALL], [5], dst_flags=np.array([True]))
    assert info.value.part == "dst_flag" and info.value.row == 0


def test_labels_with_the_he_prefix_and_repeated_hour_markers():
    he, marked = parse_labels(["1", "02", "HE02*", "HE 02 DST", "he03", "4.0", 5, "HE25"])
    assert he.tolist() == [1, 2, 2, 2, 3, 4, 5, 25]
    assert marked.tolist() == [False, False, True, True, False, False, False, False]
    he, marked = parse_labels(["HE01", "HE02", "HE02*", "HE03"])
    assert ends([FALL], he.tolist(), dst_flags=marked)[2] == utc(2024, 11, 3, 7)
    for bad in ("0", "26", "2.5", "HE", "noon", ""):
        with pytest.raises(HourEndingError, match="not a whole number") as info:
            parse_labels(["1", bad])
        assert info.value.row == 1


def test_rows_over_several_days_name_the_day_as_written():
    days = [PLAIN, SPRING]
    assert ends(days, [24, 1], codes=[0, 1], style="clock") == [utc(2024, 6, 2, 4), utc(2024, 3, 10, 6)]
    with pytest.raises(HourEndingError, match="on 10/03/2024") as info:
        hour_ending_epochs(np.array([0, 1]), days, np.array([1, 3]), NY, style="clock",
                           labels=["01/06/2024", "10/03/2024"])
    assert info.value.row == 1


def test_day_labels_with_explicit_offsets():
    lab = day_labels(FALL, NY, 60)
    assert len(lab.starts) == 25
    assert lab.hour_ending.tolist()[:4] == [1, 2, 2, 3] and lab.repeated.tolist()[:4] == [False, False, True, False]
    assert [offset_label(o) for o in lab.offset_s.tolist()[:4]] == ["-04:00", "-04:00", "-05:00", "-05:00"]
    spring = day_labels(SPRING, NY, 15)
    assert len(spring.starts) == 92 and 3 not in spring.hour_ending.tolist()
    assert offset_label(19800) == "+05:30"


@pytest.mark.parametrize("tz", [NY, "America/Chicago", "Europe/Berlin", "Australia/Sydney", "Asia/Kolkata"])
@pytest.mark.parametrize("day", [date(2024, 3, 10), date(2024, 3, 31), date(2024, 4, 7), date(2024, 10, 6),
                                 date(2024, 10, 27), date(2024, 11, 3)])
def test_day_grid_and_meter_rule_agree(tz, day):
    """An ISO day grid's clock labels and flags, read back by the meter rule, give the grid's own ends."""
    grid = DayGrid(day, tz, 60)
    got = hour_ending_epochs(np.zeros(len(grid), dtype=np.int64), [day], grid.hour_ending, tz, style="clock",
                             dst_flags=grid.repeated)
    assert got.tolist() == (grid.starts + 3600).tolist()
