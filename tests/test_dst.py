"""DST transition days: local-time CSV files and hour-ending files land on the right UTC starts."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from kwhub.core.intervals import IntervalDataError
from kwhub.plugins.meters.csv_meter import CsvMeter
from tests.fixtures.ingest import write_hour_ending_csv, write_local_offset_csv

DAYS = {
    ("America/New_York", "spring"): date(2024, 3, 10),
    ("America/New_York", "fall"): date(2024, 11, 3),
    ("Europe/Berlin", "spring"): date(2024, 3, 31),
    ("Europe/Berlin", "fall"): date(2024, 10, 27),
}
HOURS = {"spring": 23, "fall": 25}


def utc_hour_starts(day: date, tz: str) -> list[int]:
    """Independent expectation: UTC instants from local midnight to next local midnight."""
    z = ZoneInfo(tz)
    a = int(datetime(day.year, day.month, day.day, tzinfo=z).timestamp())
    nxt = day + timedelta(days=1)
    b = int(datetime(nxt.year, nxt.month, nxt.day, tzinfo=z).timestamp())
    return list(range(a, b, 3600))


@pytest.mark.parametrize(("tz", "kind"), list(DAYS))
@pytest.mark.parametrize("minutes", [5, 15, 60])
@pytest.mark.parametrize("ending", [False, True])
def test_local_offsets_csv(tmp_path, tz, kind, minutes, ending):
    day = DAYS[(tz, kind)]
    path, expected = write_local_offset_csv(tmp_path / "local.csv", day, tz, minutes, ending=ending)
    cfg = {"interval_convention": "ending"} if ending else {}
    (s,) = CsvMeter("csv", cfg).read_file(path).series
    assert len(s) == HOURS[kind] * 60 // minutes
    if minutes == 15:
        assert len(s) == {"spring": 92, "fall": 100}[kind]
    assert s.starts.tolist() == expected
    assert np.all(np.diff(s.starts) == minutes * 60)
    assert s.starts[0] == utc_hour_starts(day, tz)[0]


@pytest.mark.parametrize(("tz", "kind"), list(DAYS))
def test_hour_ending_elapsed(tmp_path, tz, kind):
    day = DAYS[(tz, kind)]
    path, n = write_hour_ending_csv(tmp_path / "he.csv", day, tz)
    (s,) = CsvMeter("he", {"timezone": tz}).read_file(path, channel="m").series
    assert n == HOURS[kind] and len(s) == n
    assert s.starts.tolist() == utc_hour_starts(day, tz)
    if kind == "fall":
        assert "25" in path.read_text().splitlines()[-1].split(",")[1]


@pytest.mark.parametrize("tz", ["America/New_York", "Europe/Berlin"])
def test_hour_ending_clock_labels_missing_he3(tmp_path, tz):
    day = DAYS[(tz, "spring")]
    path, n = write_hour_ending_csv(tmp_path / "he.csv", day, tz, style="clock")
    labels = [int(line.split(",")[1]) for line in path.read_text().splitlines()[1:]]
    assert 3 not in labels and 24 in labels and n == 23
    (s,) = CsvMeter("he", {"timezone": tz}).read_file(path, channel="m").series
    assert s.starts.tolist() == utc_hour_starts(day, tz)
    # the same labels read with the explicit style agree
    (s2,) = CsvMeter("he", {"timezone": tz, "hour_ending_style": "clock"}).read_file(path, channel="m").series
    assert s2.starts.tolist() == s.starts.tolist()


def test_hour_ending_gap_hour_given_with_clock_labels_is_rejected(tmp_path):
    day = DAYS[("America/New_York", "spring")]
    path, _ = write_hour_ending_csv(tmp_path / "he.csv", day, "America/New_York", style="clock",
                                    extra_rows=[f"{day:%m/%d/%Y},3,1.0"])
    with pytest.raises(IntervalDataError, match="does not exist") as ei:
        CsvMeter("he", {"timezone": "America/New_York"}).read_file(path, channel="m")
    assert ei.value.where == "line 25" and ei.value.field == "HE"


def test_hour_ending_25_on_normal_day_is_rejected(tmp_path):
    path, _ = write_hour_ending_csv(tmp_path / "he.csv", date(2024, 7, 1), "America/New_York",
                                    extra_rows=["07/01/2024,25,1.0"])
    with pytest.raises(IntervalDataError, match="24-hour day") as ei:
        CsvMeter("he", {"timezone": "America/New_York"}).read_file(path, channel="m")
    assert ei.value.where == "line 26"


def test_hour_ending_partial_spring_day_is_undecidable(tmp_path):
    p = tmp_path / "he.csv"
    p.write_text("Date,HE,kWh\n03/10/2024,5,1\n03/10/2024,6,1\n")
    with pytest.raises(IntervalDataError, match="hour_ending_style"):
        CsvMeter("he", {"timezone": "America/New_York"}).read_file(p, channel="m")
    (s,) = CsvMeter("he", {"timezone": "America/New_York", "hour_ending_style": "elapsed"}).read_file(
        p, channel="m").series
    assert s.starts.tolist() == utc_hour_starts(date(2024, 3, 10), "America/New_York")[4:6]  # HE 5 = 5th elapsed hour


@pytest.mark.parametrize(
    ("tz", "stamp", "what"),
    [("America/New_York", "2024-11-03 01:30:00", "ambiguous"), ("Europe/Berlin", "2024-10-27 02:15:00", "ambiguous"),
     ("America/New_York", "2024-03-10 02:30:00", "does not exist"), ("Europe/Berlin", "2024-03-31 02:00:00", "does not exist")],
)
def test_naive_local_time_rejected_with_line(tmp_path, tz, stamp, what):
    p = tmp_path / "naive.csv"
    p.write_text("channel_id,interval_start,interval_minutes,kwh\n"
                 "m,2024-01-01 00:00:00,15,1\n"
                 f"m,{stamp},15,1\n")
    with pytest.raises(IntervalDataError, match=what) as ei:
        CsvMeter("csv", {"timezone": tz}).read_file(p)
    assert ei.value.where == "line 3" and ei.value.field == "interval_start" and ei.value.source == str(p)


def test_naive_local_spring_day_with_timezone(tmp_path):
    """Naive local stamps are fine on a spring day (nothing is ambiguous): 92 quarter-hours."""
    day, tz = DAYS[("America/New_York", "spring")], "America/New_York"
    _, expected = write_local_offset_csv(tmp_path / "aware.csv", day, tz, 15)
    z = ZoneInfo(tz)
    lines = ["channel_id,interval_start,interval_minutes,kwh"]
    lines += [f"m,{datetime.fromtimestamp(e, tz=z).strftime('%Y-%m-%d %H:%M:%S')},15,1" for e in expected]
    p = tmp_path / "naive.csv"
    p.write_text("\n".join(lines) + "\n")
    (s,) = CsvMeter("csv", {"timezone": tz}).read_file(p).series
    assert len(s) == 92 and s.starts.tolist() == expected


def test_expected_helpers_are_independent():
    assert len(utc_hour_starts(date(2024, 3, 10), "America/New_York")) == 23
    assert len(utc_hour_starts(date(2024, 10, 27), "Europe/Berlin")) == 25
    assert Path(__file__).exists()


# ------------------------------------------------------------------ fall-back day: no silent shifts (issue 10)


def _fall_rows(day: date, labels: list[int], flags: list[str] | None = None) -> str:
    head = "Date,HE,kWh" + (",DST" if flags is not None else "") + "\n"
    out = []
    for i, he in enumerate(labels):
        extra = f",{flags[i]}" if flags is not None else ""
        out.append(f"{day:%m/%d/%Y},{he},{100 + i}{extra}")
    return head + "\n".join(out) + "\n"


@pytest.mark.parametrize("tz", ["America/New_York", "Europe/Berlin"])
def test_hour_ending_24_labels_on_fall_back_day_are_refused(tmp_path, tz):
    """Before: read as elapsed hours, hours 2..24 moved by one hour and the last hour was lost, exit 0."""
    day = DAYS[(tz, "fall")]
    p = tmp_path / "he.csv"
    p.write_text(_fall_rows(day, list(range(1, 25))))
    with pytest.raises(IntervalDataError) as ei:
        CsvMeter("he", {"timezone": tz}).read_file(p, channel="m")
    msg = str(ei.value)
    assert str(day) in msg and "25-hour day" in msg and "25 labels" in msg and "DST flag" in msg
    assert ei.value.where == "line 2" and ei.value.field == "HE"


def test_hour_ending_fall_back_labels_before_the_repeated_hour_are_unambiguous(tmp_path):
    day, tz = DAYS[("America/New_York", "fall")], "America/New_York"
    p = tmp_path / "he.csv"
    p.write_text(_fall_rows(day, [1]))
    (s,) = CsvMeter("he", {"timezone": tz}).read_file(p, channel="m").series
    assert s.starts.tolist() == utc_hour_starts(day, tz)[:1]


@pytest.mark.parametrize(("marks", "first", "second"), [("repeated_hour", "N", "Y"), ("daylight_time", "Y", "N")])
def test_hour_ending_dst_flag_places_the_repeated_hour(tmp_path, marks, first, second):
    day, tz = DAYS[("America/New_York", "fall")], "America/New_York"
    labels = [1, 2, 2, *range(3, 25)]  # clock labels: HE 2 (01:00-02:00) happens twice
    other = "N" if marks == "repeated_hour" else "Y"
    flags = [other, first, second] + [("N" if marks == "repeated_hour" else "N")] * 22
    p = tmp_path / "he.csv"
    p.write_text(_fall_rows(day, labels, flags))
    cfg = {"timezone": tz, "dst_flag_column": "DST", "dst_flag_marks": marks}
    (s,) = CsvMeter("he", cfg).read_file(p, channel="m").series
    assert s.starts.tolist() == utc_hour_starts(day, tz)  # 25 distinct hours, in order
    assert s.values.tolist() == [100.0 + i for i in range(25)]


def test_hour_ending_dst_flag_on_an_hour_that_does_not_repeat(tmp_path):
    day, tz = DAYS[("America/New_York", "fall")], "America/New_York"
    flags = ["N"] * 25
    flags[7] = "Y"
    p = tmp_path / "he.csv"
    p.write_text(_fall_rows(day, [1, 2, 2, *range(3, 25)], flags))
    with pytest.raises(IntervalDataError, match="only HE 2 repeats") as ei:
        CsvMeter("he", {"timezone": tz, "dst_flag_column": "DST"}).read_file(p, channel="m")
    assert ei.value.where == "line 9" and ei.value.field == "DST"
    bad = tmp_path / "bad.csv"
    bad.write_text(_fall_rows(day, [1], ["maybe"]))
    with pytest.raises(IntervalDataError, match="yes/no"):
        CsvMeter("he", {"timezone": tz, "dst_flag_column": "DST"}).read_file(bad, channel="m")


def test_hour_ending_clock_labels_without_flag_refuse_the_repeated_hour(tmp_path):
    day, tz = DAYS[("America/New_York", "fall")], "America/New_York"
    p = tmp_path / "he.csv"
    p.write_text(_fall_rows(day, [1, 2, 2, *range(3, 25)]))
    with pytest.raises(IntervalDataError, match="ambiguous") as ei:
        CsvMeter("he", {"timezone": tz, "hour_ending_style": "clock"}).read_file(p, channel="m")
    assert ei.value.where == "line 3"
    with pytest.raises(IntervalDataError, match="25-hour day"):  # auto: the same labels are refused as well
        CsvMeter("he", {"timezone": tz}).read_file(p, channel="m")


def test_dst_flag_with_elapsed_style_is_a_config_error():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="dst_flag_column"):
        CsvMeter("he", {"dst_flag_column": "DST", "hour_ending_style": "elapsed"})


@pytest.mark.parametrize("marker", ["HE02*", "HE02 DST", "2*"])
def test_hour_ending_labels_marking_the_repeated_hour_need_no_flag_column(tmp_path, marker):
    """``HE02*`` style labels (kwhub.core.hour_ending.parse_labels) place the repeated hour like a DST flag."""
    day, tz = DAYS[("America/New_York", "fall")], "America/New_York"
    labels: list[object] = ["HE01", "HE02", marker, *(f"HE{k:02d}" for k in range(3, 25))]
    p = tmp_path / "he.csv"
    p.write_text(_fall_rows(day, labels))  # type: ignore[arg-type]
    (s,) = CsvMeter("he", {"timezone": tz}).read_file(p, channel="m").series
    assert s.starts.tolist() == utc_hour_starts(day, tz)  # 25 distinct hours, in order
    assert s.values.tolist() == [100.0 + i for i in range(25)]
    bad = tmp_path / "bad.csv"
    bad.write_text(_fall_rows(day, ["HE01", "HE07*"]))  # type: ignore[list-item]
    with pytest.raises(IntervalDataError, match="only HE 2 repeats") as ei:
        CsvMeter("he", {"timezone": tz}).read_file(bad, channel="m")
    assert ei.value.where == "line 3" and ei.value.field == "HE"
