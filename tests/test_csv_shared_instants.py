"""CSV adapter: channels that share their instants share the work on them (``_to_series``).

The columns of a wide file without gaps hand the same instant and line arrays to every
channel; the order, interval length, starts and their checks are then computed once.
These tests read tricky files twice, once as usual and once with every channel given its
own copies of those arrays (nothing shared, the per-channel path), and require the same
series, the same counts and the same errors (message, line, field).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from kwhub.core.adapters import AdapterContext
from kwhub.core.campus import Channel
from kwhub.core.intervals import IntervalBatch, IntervalDataError
from kwhub.plugins.meters.csv_meter import CsvMeter


def _meter(channels: dict[str, int], **cfg: Any) -> CsvMeter:
    ctx = AdapterContext(channels={k: Channel(id=k, interval_minutes=v) for k, v in channels.items()})
    return CsvMeter("csv", cfg, ctx)


def _read(path: Path, channels: dict[str, int], shared: bool, monkeypatch: pytest.MonkeyPatch,
          **cfg: Any) -> IntervalBatch | IntervalDataError:
    """The file read as usual (``shared``) or with per-channel copies of the instants and lines."""
    with monkeypatch.context() as m:
        if not shared:
            plain = CsvMeter._wide_groups

            def unshared(self: CsvMeter, *args: Any, **kwargs: Any) -> Any:
                groups = plain(self, *args, **kwargs)
                for g in groups:
                    g.stamp, g.line = g.stamp.copy(), g.line.copy()
                return groups

            m.setattr(CsvMeter, "_wide_groups", unshared)
        try:
            return _meter(channels, **cfg).read_file(path)
        except IntervalDataError as exc:
            return exc


def _same(a: IntervalBatch | IntervalDataError, b: IntervalBatch | IntervalDataError) -> None:
    if isinstance(a, IntervalDataError) or isinstance(b, IntervalDataError):
        assert isinstance(a, IntervalDataError) and isinstance(b, IntervalDataError), (a, b)
        assert (str(a), a.where, a.field) == (str(b), b.where, b.field)
        return
    assert a.meta == b.meta
    assert [s.channel_id for s in a.series] == [s.channel_id for s in b.series]
    for x, y in zip(a.series, b.series, strict=True):
        assert x.interval_minutes == y.interval_minutes
        assert x.starts.tobytes() == y.starts.tobytes()
        assert x.values.tobytes() == y.values.tobytes()  # bit for bit (NaN included)
        assert x.quality.tobytes() == y.quality.tobytes()


def _wide(path: Path, stamps: list[str], columns: dict[str, list[str]]) -> Path:
    lines = ["interval_start," + ",".join(columns)]
    lines += [",".join([t, *(col[i] for col in columns.values())]) for i, t in enumerate(stamps)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _quarter_hours(start: np.datetime64, n: int, fmt: str = "Z") -> list[str]:
    t = start + np.arange(n) * np.timedelta64(900, "s")
    return [s + fmt for s in t.astype(str).tolist()]


def _values(n: int, seed: int, gaps: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    v = [f"{x:.3f}" for x in rng.random(n) * 100]
    for i in rng.choice(n, size=gaps, replace=False).tolist() if gaps else []:
        v[i] = ""
    return v


CHANNELS = {"a.load": 15, "b.load": 15, "c.load": 15, "d.load": 15}


def test_gaps_repeats_and_shuffled_rows_read_alike(tmp_path, monkeypatch) -> None:
    n = 4 * 96
    stamps = _quarter_hours(np.datetime64("2024-03-09T00:00:00"), n)
    cols = {"a.load": _values(n, 1), "b.load": _values(n, 2, gaps=20), "c.load": _values(n, 3),
            "d.load": _values(n, 4, gaps=3)}
    rows = list(range(n)) + list(range(40, 60))  # identical repeats of 20 rows
    order = np.random.default_rng(5).permutation(len(rows)).tolist()  # and out of order
    path = _wide(tmp_path / "tricky.csv", [stamps[rows[i]] for i in order],
                 {k: [v[rows[i]] for i in order] for k, v in cols.items()})
    a = _read(path, CHANNELS, True, monkeypatch)
    b = _read(path, CHANNELS, False, monkeypatch)
    _same(a, b)
    assert isinstance(a, IntervalBatch) and a.meta["duplicates"] >= 3 * 20  # (a repeated gap is no value)


@pytest.mark.parametrize(("zone_day", "naive"), [("2024-03-10", True), ("2024-03-10", False), ("2024-11-03", False)])
def test_dst_days_in_local_time_read_alike(tmp_path, monkeypatch, zone_day, naive) -> None:
    # local timestamps over a DST change (naive ones in the spring, where no hour repeats,
    # else with their UTC offsets): the local days differ in length
    n = 3 * 96
    utc = pd.date_range(pd.Timestamp(zone_day, tz="America/New_York") - pd.Timedelta(days=1), periods=n,
                        freq="15min").tz_convert("UTC")
    local = utc.tz_convert("America/New_York")
    stamps = [t.strftime("%Y-%m-%dT%H:%M:%S") if naive else t.isoformat() for t in local]
    cols = {k: _values(n, i, gaps=5 * (i % 2)) for i, k in enumerate(CHANNELS)}
    path = _wide(tmp_path / "dst.csv", stamps, cols)
    cfg = {"timezone": "America/New_York"} if naive else {}
    a = _read(path, CHANNELS, True, monkeypatch, **cfg)
    b = _read(path, CHANNELS, False, monkeypatch, **cfg)
    _same(a, b)
    assert isinstance(a, IntervalBatch) and len(a) > 0


def test_bad_lines_are_reported_alike(tmp_path, monkeypatch) -> None:
    n = 96
    stamps = _quarter_hours(np.datetime64("2024-01-01T00:00:00"), n)
    cols = {k: _values(n, i) for i, k in enumerate(CHANNELS)}
    # a start off the 15-minute grid on line 12
    off = list(stamps)
    off[10] = off[10].replace(":30:00", ":31:00").replace(":00:00", ":01:00").replace(":15:00", ":16:00") \
        .replace(":45:00", ":46:00")
    cases = [_wide(tmp_path / "misaligned.csv", off, cols)]
    # a conflicting repeat in the third channel
    conflict = {k: [*v, v[7]] for k, v in cols.items()}
    conflict["c.load"][-1] = "999.5"
    cases.append(_wide(tmp_path / "conflict.csv", [*stamps, stamps[7]], conflict))
    for path in cases:
        a = _read(path, CHANNELS, True, monkeypatch)
        b = _read(path, CHANNELS, False, monkeypatch)
        assert isinstance(a, IntervalDataError), path.name
        _same(a, b)
    # a channel configured for another interval length than the file's: named as before
    mixed = {**CHANNELS, "c.load": 60}
    plain = _wide(tmp_path / "plain.csv", stamps, cols)
    a = _read(plain, mixed, True, monkeypatch)
    b = _read(plain, mixed, False, monkeypatch)
    assert isinstance(a, IntervalDataError) and "c.load" in str(a)
    _same(a, b)
