"""Forecast inputs from files and configuration: a solar forecast per asset, and outages/derates.

Solar forecast CSV, one row per solar asset and interval: ``interval_start`` (ISO 8601;
with an offset or ``Z``, or a local wall time of the ISO's zone that is neither in the
spring-forward gap nor in the repeated fall-back hour), ``asset`` (a solar asset id) and
``mw`` (the asset's average output over the interval). The file's intervals may be
finer than the forecast grid (e.g. 5-minute values into hourly intervals: their mean),
never coarser; every interval of the grid must be covered for every asset in the file.

Outages and derates (:class:`Outage`): ``unit``, ``start``, ``end`` (instants with an
offset) and ``available_mw`` (0 = out). From ``[[markets.outages]]`` or a CSV with the same
columns. A grid interval an outage touches even partly takes the outage's available MW
(the least of overlapping ones): an offer must hold for the whole interval.

Errors name the file, line and field (:class:`~kwhub.core.intervals.IntervalDataError`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kwhub.core.intervals import IntervalDataError
from kwhub.core.markets.config import Outage  # noqa: F401  (defined with the [markets] section; used here)
from kwhub.core.timeline import Span

if TYPE_CHECKING:
    import pandas as pd

SOLAR_COLUMNS = ("interval_start", "asset", "mw")
OUTAGE_COLUMNS = ("unit", "start", "end", "available_mw")
_OFFSET = r"(?:Z|[+-]\d\d:?\d\d)$"


def _first(mask: np.ndarray) -> int:
    return int(np.argmax(mask))


def _read_csv(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    import pandas as pd  # on first use: importing kwhub.toml's [markets] models must not cost pandas

    if not path.exists():
        raise IntervalDataError("the file does not exist; fix the path in [markets] of kwhub.toml", source=str(path))
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except Exception as exc:  # pandas parser errors carry the line
        raise IntervalDataError(f"unreadable CSV: {exc}", source=str(path)) from exc
    for col in columns:
        if col not in df.columns:
            raise IntervalDataError(f"column {col!r} is missing (columns: {', '.join(columns)})", source=str(path),
                                    where="line 1", field=col)
    return df


def _numbers(df: pd.DataFrame, col: str, path: Path) -> np.ndarray:
    import pandas as pd

    vals = pd.to_numeric(df[col].str.strip(), errors="coerce").to_numpy(np.float64)
    bad = np.isnan(vals) | (vals < 0)
    if bad.any():
        i = _first(bad)
        raise IntervalDataError(f"{df[col].iloc[i]!r} is not a number >= 0 (MW)", source=str(path),
                                where=f"line {i + 2}", field=col)
    return vals


def _instants(raw: pd.Series, tz: str, path: Path, col: str) -> np.ndarray:
    """UTC epoch seconds of ISO 8601 stamps; naive ones are wall times of ``tz``, refused if ambiguous."""
    import pandas as pd

    raw = raw.str.strip()
    aware = raw.str.contains(_OFFSET, regex=True).to_numpy()
    out = np.zeros(len(raw), dtype=np.int64)
    unparsed = np.zeros(len(raw), dtype=bool)
    dst = np.zeros(len(raw), dtype=bool)
    if aware.any():
        ts = pd.to_datetime(raw[aware], utc=True, errors="coerce", format="ISO8601")
        unparsed[aware] = ts.isna().to_numpy()
        out[aware] = ((ts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).fillna(0).to_numpy()
    naive = ~aware
    if naive.any():
        wall = pd.DatetimeIndex(pd.to_datetime(raw[naive], errors="coerce", format="ISO8601"))
        local = wall.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
        unparsed[naive] = np.asarray(wall.isna())
        dst[naive] = np.asarray(local.isna()) & ~np.asarray(wall.isna())
        secs = (local - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
        out[naive] = np.asarray(secs.fillna(0), dtype=np.int64)
    bad = unparsed | dst
    if bad.any():
        i = _first(bad)
        why = (f"a local time of {tz} that is ambiguous (DST fall-back) or does not exist (DST gap); give it an "
               f"offset such as -05:00") if dst[i] else "not an ISO 8601 timestamp"
        raise IntervalDataError(f"{raw.iloc[i]!r} is {why}", source=str(path), where=f"line {i + 2}", field=col)
    return out


def read_solar_forecast(path: Path, tz: str, span: Span, minutes: int,
                        capacity_mw: dict[str, float]) -> dict[str, np.ndarray]:
    """MW per interval of ``span`` (grid of ``minutes``) for each solar asset in the file.

    ``capacity_mw`` maps the campus's solar asset ids to their capacity: an unknown asset
    or a value above capacity is refused, so is a grid interval the file does not cover.
    """
    import pandas as pd

    df = _read_csv(path, SOLAR_COLUMNS)
    if df.empty:
        raise IntervalDataError("the forecast file has no rows", source=str(path), where="line 2")
    assets = df["asset"].str.strip().to_numpy()
    known = np.isin(assets, list(capacity_mw))
    if not known.all():
        i = _first(~known)
        raise IntervalDataError(f"{assets[i]!r} is not a solar asset of the campus "
                                f"(solar assets: {', '.join(sorted(capacity_mw)) or 'none'})",
                                source=str(path), where=f"line {i + 2}", field="asset")
    mw = _numbers(df, "mw", path)
    caps = np.array([capacity_mw[a] for a in assets])
    over = mw > caps + 1e-9
    if over.any():
        i = _first(over)
        raise IntervalDataError(f"{mw[i]} MW is above the capacity of {assets[i]} ({caps[i]} MW)",
                                source=str(path), where=f"line {i + 2}", field="mw")
    starts = _instants(df["interval_start"], tz, path, "interval_start")
    dup = pd.DataFrame({"a": assets, "s": starts}).duplicated().to_numpy()
    if dup.any():
        i = _first(dup)
        raise IntervalDataError(f"a second row for {assets[i]} at {df['interval_start'].iloc[i]}",
                                source=str(path), where=f"line {i + 2}", field="interval_start")
    step = minutes * 60
    n = span.seconds // step
    inside = (starts >= span.start_epoch) & (starts < span.start_epoch + n * step)
    slot = (starts - span.start_epoch) // step
    out: dict[str, np.ndarray] = {}
    for asset in sorted(set(assets.tolist())):
        sel = inside & (assets == asset)
        total = np.bincount(slot[sel], weights=mw[sel], minlength=n)
        count = np.bincount(slot[sel], minlength=n)
        if (count == 0).any():
            gap = span.start_epoch + step * _first(count == 0)
            raise IntervalDataError(f"no forecast for {asset} in the interval starting "
                                    f"{pd.Timestamp(gap, unit='s', tz='UTC').isoformat()} "
                                    f"(the file must cover the whole day)", source=str(path), field="interval_start")
        out[asset] = total / count
    return out


def read_outages(path: Path, tz: str) -> list[Outage]:
    """Outages/derates from a CSV file with columns ``unit, start, end, available_mw``."""
    import pandas as pd

    df = _read_csv(path, OUTAGE_COLUMNS)
    starts = _instants(df["start"], tz, path, "start")
    ends = _instants(df["end"], tz, path, "end")
    mw = _numbers(df, "available_mw", path)
    back = ends <= starts
    if back.any():
        i = _first(back)
        raise IntervalDataError(f"end {df['end'].iloc[i]} is not after start {df['start'].iloc[i]}",
                                source=str(path), where=f"line {i + 2}", field="end")
    units = df["unit"].str.strip().tolist()
    return [Outage(unit=u, start=pd.Timestamp(int(s), unit="s", tz="UTC").to_pydatetime(),
                   end=pd.Timestamp(int(e), unit="s", tz="UTC").to_pydatetime(), available_mw=float(m))
            for u, s, e, m in zip(units, starts, ends, mw, strict=True)]


def available_mw(outages: list[Outage], capacity_mw: dict[str, float], span: Span, minutes: int,
                 source: str = "[[markets.outages]]") -> dict[str, np.ndarray]:
    """Available MW per interval of ``span`` for every unit of ``capacity_mw``.

    Capacity where no outage applies; the least ``available_mw`` of the outages that touch
    an interval otherwise. An outage of an unknown unit, or above the unit's capacity, is
    refused (``source`` names where the outage came from).
    """
    step = minutes * 60
    n = span.seconds // step
    starts = span.start_epoch + step * np.arange(n, dtype=np.int64)
    out = {u: np.full(n, cap, dtype=np.float64) for u, cap in capacity_mw.items()}
    for k, o in enumerate(outages):
        if o.unit not in out:
            raise IntervalDataError(f"{o.unit!r} is not a unit of the campus (units: {', '.join(sorted(out))})",
                                    source=source, where=f"outage {k + 1}", field="unit")
        if o.available_mw > capacity_mw[o.unit] + 1e-9:
            raise IntervalDataError(f"available {o.available_mw} MW is above the capacity of {o.unit} "
                                    f"({capacity_mw[o.unit]} MW)", source=source, where=f"outage {k + 1}",
                                    field="available_mw")
        touch = (starts < int(o.end.timestamp())) & (starts + step > int(o.start.timestamp()))
        out[o.unit] = np.where(touch, np.minimum(out[o.unit], o.available_mw), out[o.unit])
    return out
