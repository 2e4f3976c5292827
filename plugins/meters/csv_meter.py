"""CSV meter files: long or wide layout, vendor profiles, local time and DST done right.

A file is read with pandas' C parser (``usecols`` + ``dtype``), every column is turned into
numpy arrays at once, and timestamps are parsed once per distinct value. Nothing here loops
per interval in Python. A bad cell raises :class:`~kwhub.core.intervals.IntervalDataError` naming
the file, the line and the column, and nothing of that file reaches the batch.

Configuration (``[[adapters]] type = "meters.csv"``)::

    [[adapters]]
    type = "meters.csv"
    id = "rev_meters"
    [adapters.config]
    profile = "revenue_meter"          # or "auto" (default): pick from the header
    timezone = "America/New_York"      # for timestamps without an offset
    channel_map = { "GT1-REV.1" = "gt1.net" }

Profiles live in ``plugins/meters/profiles/*.toml``: ``kwhub`` (long
``channel_id,interval_start,interval_minutes,kwh`` and wide ``interval_start,<channels>``),
``utility_hour_ending`` (``Date,HE,kWh``) and ``revenue_meter``
(``Meter,Channel,Interval End,kW``). Keys given explicitly override the profile's.
"""

from __future__ import annotations

import csv
import re
import tomllib
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import field_validator

from kwhub.core.adapters import AdapterConfig, CheckResult, FailureKind, MeterAdapter
from kwhub.core.hookspecs import hookimpl
from kwhub.core.intervals import (
    ALLOWED_INTERVAL_MINUTES,
    ChannelSeries,
    IntervalBatch,
    IntervalDataError,
)
from kwhub.core.quality import Quality
from kwhub.core.timeline import TimeModelError, local_day, localize, zone

TYPE_ID = "meters.csv"
PROFILE_DIR = Path(__file__).parent / "profiles"

# unit (lower case) -> (factor to kWh or kW, is_demand)
UNIT_FACTORS: dict[str, tuple[float, bool]] = {
    "wh": (0.001, False),
    "kwh": (1.0, False),
    "mwh": (1000.0, False),
    "w": (0.001, True),
    "kw": (1.0, True),
    "mw": (1000.0, True),
}

DEFAULT_QUALITY_MAP: dict[str, str] = {
    "": "valid", "0": "valid", "a": "valid", "actual": "valid", "v": "valid", "valid": "valid",
    "ok": "valid", "good": "valid",
    "1": "estimated", "e": "estimated", "est": "estimated", "estimated": "estimated",
    "2": "edited", "ed": "edited", "edited": "edited",
    "3": "suspect", "s": "suspect", "suspect": "suspect", "q": "suspect", "questionable": "suspect",
    "4": "missing", "m": "missing", "missing": "missing",
}

_AWARE_RE = r"(?:[zZ]|[+-]\d\d:?\d\d)$"
_LINE_RE = re.compile(r"line (\d+)")
_OPTIONAL_COLUMNS = ("interval_minutes_column", "quality_column", "unit_column")


class CsvMeterConfig(AdapterConfig):
    """Settings of a ``meters.csv`` instance; unset keys come from the profile."""

    profile: str = "auto"  # "auto" (detect from header), "none", or a profile name
    layout: Literal["auto", "long", "wide"] = "auto"
    delimiter: str = ","
    encoding: str = "utf-8-sig"
    skip_rows: int = 0  # lines before the header line
    channel_column: str | list[str] | None = "channel_id"
    channel_separator: str = "."
    channel: str | None = None  # fixed channel id for single-channel files
    channel_map: dict[str, str] = {}
    timestamp_column: str | None = "interval_start"
    timestamp_format: str = "iso"  # "iso" or a strptime format
    date_column: str | None = None
    date_format: str = "%Y-%m-%d"
    hour_ending_column: str | None = None
    hour_ending_style: Literal["auto", "elapsed", "clock"] = "auto"
    timezone: str | None = None  # for naive local timestamps and dates
    interval_convention: Literal["beginning", "ending"] = "beginning"
    interval_minutes: int | None = None
    interval_minutes_column: str | None = None
    value_column: str = "kwh"
    value_columns: list[str] | None = None  # wide layout: which columns (default: all others)
    unit: str = "kWh"
    unit_column: str | None = None
    multiplier: float = 1.0
    quality_column: str | None = None
    quality_map: dict[str, str] = {}

    @field_validator("unit")
    @classmethod
    def _known_unit(cls, v: str) -> str:
        if v.strip().lower() not in UNIT_FACTORS:
            raise ValueError(f"unknown unit {v!r} (known: Wh, kWh, MWh, W, kW, MW)")
        return v

    @field_validator("interval_minutes")
    @classmethod
    def _allowed(cls, v: int | None) -> int | None:
        if v is not None and v not in ALLOWED_INTERVAL_MINUTES:
            raise ValueError(f"must be one of {list(ALLOWED_INTERVAL_MINUTES)}")
        return v

    @field_validator("quality_map")
    @classmethod
    def _quality_labels(cls, v: dict[str, str]) -> dict[str, str]:
        labels = {q.label for q in Quality}
        for key, label in v.items():
            if label not in labels:
                raise ValueError(f"quality_map[{key!r}]: {label!r} is not one of {sorted(labels)}")
        return v

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                zone(v)
            except TimeModelError as exc:
                raise ValueError(str(exc)) from None
        return v


@dataclass(frozen=True)
class CsvProfile:
    """A named vendor profile: how to recognise the file and the settings it implies."""

    name: str
    title: str
    priority: int
    required: tuple[str, ...]
    first_column: tuple[str, ...]
    config: dict[str, Any]

    def matches(self, header: list[str]) -> bool:
        if not set(self.required) <= set(header):
            return False
        return not self.first_column or (bool(header) and header[0] in self.first_column)


@lru_cache(maxsize=1)
def load_profiles() -> dict[str, CsvProfile]:
    """All profiles in ``plugins/meters/profiles``, keyed by file stem."""
    out: dict[str, CsvProfile] = {}
    for path in sorted(PROFILE_DIR.glob("*.toml")):
        data = tomllib.loads(path.read_text())
        cfg = dict(data.get("config", {}))
        for key in ("channel_column", "timestamp_column", "date_column", "hour_ending_column",
                    "interval_minutes_column", "unit_column", "quality_column"):
            if cfg.get(key) == "":
                cfg[key] = None
        CsvMeterConfig.model_validate(cfg)  # a broken profile fails loudly
        detect = data.get("detect", {})
        out[path.stem] = CsvProfile(
            name=path.stem,
            title=data.get("title", path.stem),
            priority=int(data.get("priority", 0)),
            required=tuple(detect.get("required", [])),
            first_column=tuple(detect.get("first_column", [])),
            config=cfg,
        )
    return out


def detect_profile(header: list[str]) -> CsvProfile | None:
    """The most specific profile whose detection rule matches ``header``."""
    for prof in sorted(load_profiles().values(), key=lambda p: -p.priority):
        if prof.required and prof.matches(header):
            return prof
    return None


def read_header(path: Path, encoding: str = "utf-8-sig", delimiter: str = ",", skip_rows: int = 0) -> list[str]:
    """The stripped column names of the header line (after ``skip_rows`` lines)."""
    try:
        with path.open("r", encoding=encoding, newline="") as fh:
            for _ in range(skip_rows):
                fh.readline()
            line = fh.readline()
    except UnicodeDecodeError as exc:
        raise IntervalDataError(f"not a {encoding} text file ({exc.reason})", source=str(path),
                                where=f"line {skip_rows + 1}") from None
    except OSError as exc:
        raise IntervalDataError(f"cannot read file: {exc.strerror}", source=str(path)) from None
    if not line.strip():
        raise IntervalDataError("file is empty (no header line)", source=str(path), where=f"line {skip_rows + 1}")
    return [c.strip() for c in next(csv.reader([line], delimiter=delimiter))]


def effective_config(config: CsvMeterConfig, header: list[str], source: str = "") -> tuple[CsvMeterConfig, str]:
    """Merge the chosen profile's settings under the explicitly set keys; return (config, profile name)."""
    name = config.profile
    if name == "none":
        return config, "none"
    profiles = load_profiles()
    if name == "auto":
        prof = detect_profile(header)
        if prof is None:
            return config, "none"
    else:
        try:
            prof = profiles[name]
        except KeyError:
            raise IntervalDataError(f"unknown CSV profile {name!r} (known: {', '.join(sorted(profiles))})",
                                    source=source, field="profile") from None
    explicit = config.model_dump(include=config.model_fields_set)
    merged = {**prof.config, **explicit, "profile": prof.name}
    for key in _OPTIONAL_COLUMNS:  # a profile's optional column may be absent from a file
        if key not in explicit and merged.get(key) and merged[key] not in header:
            merged[key] = None
    return CsvMeterConfig.model_validate(merged), prof.name


# --------------------------------------------------------------------------- timestamps


def _err(msg: str, source: str, line: int | None, field: str) -> IntervalDataError:
    return IntervalDataError(msg, source=source, where=f"line {line}" if line is not None else "", field=field)


def _first_rows(codes: np.ndarray, n: int) -> np.ndarray:
    """Row index of the first occurrence of each factor code 0..n-1."""
    first = np.full(n, -1, dtype=np.int64)
    rows = np.arange(len(codes) - 1, -1, -1)
    first[codes[::-1]] = rows  # later assignments (earlier rows) win
    return first


def _epoch_seconds(values: Any) -> np.ndarray:
    """UTC epoch seconds of a tz-aware or naive-UTC DatetimeIndex."""
    idx = pd.DatetimeIndex(values)
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    return idx.as_unit("s").asi8.astype(np.int64)


def parse_timestamps(raw: np.ndarray, fmt: str, tz: str | None, lines: np.ndarray, source: str,
                     field: str) -> np.ndarray:
    """Parse a column of timestamps to UTC epoch seconds, once per distinct value.

    ``fmt`` is ``"iso"`` (offset or ``Z``; naive values need ``tz``) or a strptime format.
    Naive local times are placed with ``tz``; ambiguous (fall-back) and non-existent
    (spring-forward) local times are rejected with the line number.
    """
    codes, uniques = pd.factorize(raw, use_na_sentinel=True)
    if (codes < 0).any():
        i = int(np.argmax(codes < 0))
        raise _err("timestamp is empty", source, int(lines[i]), field)
    u = pd.Series(np.asarray(uniques, dtype=object)).astype(str).str.strip()
    first = _first_rows(codes, len(u))
    epochs = np.zeros(len(u), dtype=np.int64)
    if fmt == "iso":
        aware = u.str.contains(_AWARE_RE, regex=True).to_numpy(dtype=bool)
    else:
        aware = np.full(len(u), "%z" in fmt or "%Z" in fmt, dtype=bool)
    kwargs: dict[str, Any] = {"format": "ISO8601" if fmt == "iso" else fmt, "errors": "coerce"}
    if aware.any():
        parsed = pd.to_datetime(u[aware], utc=True, **kwargs)
        _raise_unparsed(parsed, u[aware], first[aware], lines, fmt, source, field)
        epochs[aware] = _epoch_seconds(parsed)
    naive = ~aware
    if naive.any():
        parsed = pd.to_datetime(u[naive], **kwargs)
        _raise_unparsed(parsed, u[naive], first[naive], lines, fmt, source, field)
        if tz is None:
            j = int(np.flatnonzero(naive)[0])
            raise _err(f"timestamp {u.iloc[j]!r} has no UTC offset; set the adapter's `timezone` "
                       "(or give offsets / a trailing Z)", source, int(lines[first[j]]), field)
        epochs[naive] = localize_naive(pd.DatetimeIndex(parsed), tz, lines[first[naive]], source, field)
    return epochs[codes]


def _raise_unparsed(parsed: Any, text: pd.Series, first: np.ndarray, lines: np.ndarray, fmt: str,
                    source: str, field: str) -> None:
    bad = pd.isna(np.asarray(parsed))
    if bad.any():
        j = int(np.argmax(bad))
        want = "an ISO 8601 timestamp" if fmt == "iso" else f"format {fmt!r}"
        raise _err(f"bad timestamp {text.iloc[j]!r} (expected {want})", source, int(lines[first[j]]), field)


def localize_naive(naive: pd.DatetimeIndex, tz: str, lines: np.ndarray, source: str, field: str) -> np.ndarray:
    """Place naive local wall times in ``tz``; the first ambiguous/non-existent one is an error."""
    placed = naive.tz_localize(zone(tz).key, ambiguous="NaT", nonexistent="NaT")
    bad = np.asarray(placed.isna())
    if bad.any():
        j = int(np.argmax(bad))
        try:
            localize(naive[j].to_pydatetime(), tz)
        except TimeModelError as exc:
            raise _err(str(exc), source, int(lines[j]), field) from None
        raise _err(f"local time {naive[j]} cannot be placed in {tz}", source, int(lines[j]), field)
    return _epoch_seconds(placed)


@dataclass(frozen=True)
class _LocalDay:
    start: int  # UTC epoch of local midnight
    hours: int  # 23, 24 or 25
    gap_label: int  # hour-ending label skipped on a spring-forward day (0 if none)


def _local_day_info(d: date, tz: str) -> _LocalDay:
    span = local_day(d, tz)
    hours = span.seconds // 3600
    gap = 0
    if hours < 24:
        z = zone(tz)
        for h in range(24):
            wall = datetime(d.year, d.month, d.day, h)
            if wall.replace(tzinfo=z).astimezone(zone("UTC")).astimezone(z).replace(tzinfo=None) != wall:
                gap = h + 1  # the hour h:00-h+1:00 does not exist -> HE h+1 is skipped
                break
    return _LocalDay(span.start_epoch, hours, gap)


def parse_hour_ending(dates_raw: np.ndarray, he_raw: np.ndarray, date_format: str, tz: str | None,
                      style: str, lines: np.ndarray, source: str, date_field: str, he_field: str) -> np.ndarray:
    """UTC epoch of the END of each hour given a local date and an hour-ending number.

    ``elapsed`` style: HE k ends k hours after local midnight (HE 25 on the fall-back day,
    HE 1..23 on the spring-forward day). ``clock`` style: HE k ends at wall clock k:00, so
    the spring-forward day skips the missing hour (HE 3) and the fall-back day cannot be
    told apart (its repeated hour is rejected). ``auto`` picks per DST day from the labels.
    """
    if tz is None:
        raise _err("hour-ending files have local dates; set the adapter's `timezone`", source, int(lines[0]), date_field)
    codes, uniques = pd.factorize(dates_raw, use_na_sentinel=True)
    if (codes < 0).any():
        i = int(np.argmax(codes < 0))
        raise _err("date is empty", source, int(lines[i]), date_field)
    u = pd.Series(np.asarray(uniques, dtype=object)).astype(str).str.strip()
    parsed = pd.to_datetime(u, format=date_format, errors="coerce")
    first = _first_rows(codes, len(u))
    _raise_unparsed(parsed, u, first, lines, date_format, source, date_field)
    days = [_local_day_info(ts.date(), tz) for ts in parsed]  # one per distinct date, not per interval
    day_start = np.array([d.start for d in days], dtype=np.int64)
    day_hours = np.array([d.hours for d in days], dtype=np.int64)
    gap_label = np.array([d.gap_label for d in days], dtype=np.int64)

    he_num = pd.to_numeric(pd.Series(he_raw), errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(he_num) | (he_num != np.round(he_num)) | (he_num < 1) | (he_num > 25)
    if bad.any():
        i = int(np.argmax(bad))
        raise _err(f"hour ending {he_raw[i]!r} is not a whole number 1..25", source, int(lines[i]), he_field)
    he = he_num.astype(np.int64)

    # per distinct date: does the file use clock labels on a spring-forward day?
    n = len(u)
    max_he = np.zeros(n, dtype=np.int64)
    np.maximum.at(max_he, codes, he)
    has_gap_label = np.zeros(n, dtype=bool)
    gl = gap_label[codes]
    has_gap_label[codes[(gl > 0) & (he == gl)]] = True
    spring = gap_label > 0
    if style == "clock":
        clock = spring.copy()
    elif style == "elapsed":
        clock = np.zeros(n, dtype=bool)
    else:
        clock = spring & (max_he == 24)
        undecided = spring & ~clock & ~has_gap_label
        if undecided.any():
            k = int(np.flatnonzero(undecided)[0])
            raise _err(f"cannot tell whether hour-ending numbers on {u.iloc[k]} (a {day_hours[k]}-hour day) "
                       "skip the DST gap; set hour_ending_style to 'elapsed' or 'clock'",
                       source, int(lines[first[k]]), he_field)
    row_clock = clock[codes]
    on_gap = row_clock & (he == gl)
    if on_gap.any():
        i = int(np.argmax(on_gap))
        raise _err(f"hour ending {he[i]} does not exist on {u.iloc[codes[i]]} (DST gap in {tz})",
                   source, int(lines[i]), he_field)
    elapsed = np.where(row_clock & (he > gl), he - 1, he)
    if style == "clock":
        fall = day_hours[codes] > 24
        # wall clock labels cannot say which of the repeated hours is meant
        amb_label = np.zeros(n, dtype=np.int64)
        for k in np.flatnonzero(day_hours > 24):
            amb_label[k] = _fall_back_label(parsed.iloc[k].date(), tz)
        amb = fall & (he == amb_label[codes])
        if amb.any():
            i = int(np.argmax(amb))
            raise _err(f"hour ending {he[i]} on {u.iloc[codes[i]]} is ambiguous (DST fall-back in {tz})",
                       source, int(lines[i]), he_field)
        elapsed = np.where(fall & (he > amb_label[codes]), he + 1, elapsed)
    too_far = elapsed > day_hours[codes]
    if too_far.any():
        i = int(np.argmax(too_far))
        raise _err(f"hour ending {he[i]} on {u.iloc[codes[i]]}, a {day_hours[codes[i]]}-hour day in {tz}",
                   source, int(lines[i]), he_field)
    return day_start[codes] + elapsed * 3600


def _fall_back_label(d: date, tz: str) -> int:
    """Hour-ending label of the repeated hour on a fall-back day."""
    z = zone(tz)
    for h in range(24):
        wall = datetime(d.year, d.month, d.day, h)
        if wall.replace(tzinfo=z, fold=0).utcoffset() != wall.replace(tzinfo=z, fold=1).utcoffset():
            return h + 1
    return 0


# --------------------------------------------------------------------------- the adapter


@dataclass
class _Group:
    """One channel's values as read, before sorting, checks and unit conversion."""

    name: str
    stamp: np.ndarray  # int64 epoch of the timestamp as written (start or end)
    value: np.ndarray  # float64, in file units times multiplier
    line: np.ndarray  # int64 line number per value
    minutes: np.ndarray | None = None  # int64 per value when the file gives lengths
    factor: np.ndarray | float = 1.0  # unit factor to kWh (or kW for demand)
    demand: np.ndarray | bool = False  # per value when units come per row
    quality: np.ndarray | None = None  # uint8


class CsvMeter(MeterAdapter):
    """Interval data from CSV files (long or wide, vendor profiles, local time, hour ending)."""

    type_id: ClassVar[str] = TYPE_ID
    title: ClassVar[str] = "CSV interval files"
    capabilities: ClassVar[frozenset[str]] = frozenset({"file"})
    Config: ClassVar[type[AdapterConfig]] = CsvMeterConfig
    config: CsvMeterConfig

    def check(self) -> CheckResult:
        """Check that the configured profile exists and the settings are consistent."""
        cfg = self.config
        if cfg.profile not in ("auto", "none") and cfg.profile not in load_profiles():
            return CheckResult.failure(FailureKind.CONFIGURATION, f"unknown profile {cfg.profile!r}")
        return CheckResult.success(f"profiles available: {', '.join(sorted(load_profiles()))}")

    def sniff(self, path: Path, head: bytes) -> bool:
        """A text file whose first line is a header one of the profiles recognises."""
        return sniff_csv(path, head)

    def read_file(self, path: Path, channel: str | None = None) -> IntervalBatch:
        """Parse one CSV file into a batch; any bad cell rejects the whole file."""
        path = Path(path)
        source = str(path)
        base = self.config
        header = read_header(path, base.encoding, base.delimiter, base.skip_rows)
        cfg, profile = effective_config(base, header, source)
        if len(set(header)) != len(header):
            dup = next(c for c in header if header.count(c) > 1)
            raise _err(f"column {dup!r} appears twice in the header", source, cfg.skip_rows + 1, dup)
        layout = cfg.layout
        if layout == "auto":
            cols = [cfg.channel_column] if isinstance(cfg.channel_column, str) else (cfg.channel_column or [])
            layout = "long" if cols and all(c in header for c in cols) else "wide"
            if not cols and cfg.value_column in header:
                layout = "long"
        fixed_channel = channel or cfg.channel
        if layout == "long":
            groups = self._read_long(path, header, cfg, fixed_channel)
        else:
            groups = self._read_wide(path, header, cfg, fixed_channel)
        series, dups = self._to_series(groups, cfg, source)
        meta: dict[str, object] = {
            "adapter": TYPE_ID,
            "instance": self.instance_id,
            "profile": profile,
            "layout": layout,
            "values": int(sum(len(g.value) for g in groups)),
            "duplicates": dups,
        }
        if cfg.timezone:
            meta["timezone"] = cfg.timezone
        return IntervalBatch(source=source, series=series, meta=meta)

    # ---- layouts

    def _read_csv(self, path: Path, header: list[str], cfg: CsvMeterConfig, use: list[str],
                  floats: list[str]) -> pd.DataFrame:
        source = str(path)
        # usecols only when it saves real work: without it the C tokenizer also rejects
        # rows with too many fields
        usecols = use if len(use) * 2 < len(header) else None
        dtype: dict[str, Any] = {c: (np.float64 if c in floats else object) for c in (usecols or header)}
        kwargs: dict[str, Any] = dict(
            sep=cfg.delimiter, engine="c", header=0, names=header, usecols=usecols, skiprows=cfg.skip_rows,
            encoding=cfg.encoding, skip_blank_lines=False, keep_default_na=False, na_values=[""],
        )
        try:
            return pd.read_csv(path, dtype=dtype, **kwargs)
        except ValueError as exc:
            if isinstance(exc, pd.errors.ParserError):
                m = _LINE_RE.search(str(exc))
                line = int(m.group(1)) + cfg.skip_rows if m else None
                raise _err(f"malformed CSV: {exc}", source, line, "") from None
            if not floats:
                raise _err(f"cannot read CSV: {exc}", source, None, "") from None
        # a cell did not parse as a number: find it (slow path, only on error)
        df = pd.read_csv(path, dtype=dict.fromkeys(usecols or header, object), **kwargs)
        first_line = cfg.skip_rows + 2
        for col in floats:
            text = df[col]
            num = pd.to_numeric(text, errors="coerce")
            bad = (num.isna() & text.notna()).to_numpy()
            if bad.any():
                i = int(np.argmax(bad))
                raise _err(f"malformed number {text.iloc[i]!r}", source, first_line + i, col)
        raise _err("cannot read CSV", source, None, "")

    def _require(self, header: list[str], cols: list[str], cfg: CsvMeterConfig, source: str) -> None:
        for c in cols:
            if c not in header:
                raise _err(f"column {c!r} not found (header: {', '.join(header)})", source, cfg.skip_rows + 1, c)

    def _time_columns(self, cfg: CsvMeterConfig) -> list[str]:
        if cfg.hour_ending_column:
            return [c for c in (cfg.date_column, cfg.hour_ending_column) if c]
        return [cfg.timestamp_column] if cfg.timestamp_column else []

    def _stamps(self, df: pd.DataFrame, cfg: CsvMeterConfig, lines: np.ndarray, source: str) -> np.ndarray:
        if cfg.hour_ending_column:
            if not cfg.date_column:
                raise _err("hour_ending_column needs date_column", source, None, "date_column")
            return parse_hour_ending(
                df[cfg.date_column].to_numpy(dtype=object), df[cfg.hour_ending_column].to_numpy(dtype=object),
                cfg.date_format, cfg.timezone, cfg.hour_ending_style, lines, source, cfg.date_column,
                cfg.hour_ending_column,
            )
        if not cfg.timestamp_column:
            raise _err("no timestamp_column configured", source, None, "timestamp_column")
        return parse_timestamps(df[cfg.timestamp_column].to_numpy(dtype=object), cfg.timestamp_format,
                                cfg.timezone, lines, source, cfg.timestamp_column)

    def _read_long(self, path: Path, header: list[str], cfg: CsvMeterConfig, fixed: str | None) -> list[_Group]:
        source = str(path)
        chan_cols = [cfg.channel_column] if isinstance(cfg.channel_column, str) else list(cfg.channel_column or [])
        if fixed is not None:
            chan_cols = [c for c in chan_cols if c in header]
        elif not chan_cols:
            raise _err("file has no channel column; pass --channel (or set `channel`)", source, cfg.skip_rows + 1,
                       "channel")
        extra = [c for c in (cfg.interval_minutes_column, cfg.unit_column, cfg.quality_column) if c]
        use = list(dict.fromkeys(chan_cols + self._time_columns(cfg) + [cfg.value_column] + extra))
        self._require(header, use, cfg, source)
        df = self._read_csv(path, header, cfg, use, [cfg.value_column])
        lines = np.arange(len(df), dtype=np.int64) + cfg.skip_rows + 2
        blank = df.isna().all(axis=1).to_numpy()
        if blank.any():
            df = df.loc[~blank]
            lines = lines[~blank]
        value = df[cfg.value_column].to_numpy(dtype=np.float64)
        empty = np.isnan(value)
        if empty.any():  # a long file leaves gaps out; an empty or missing cell is a broken row
            i = int(np.argmax(empty))
            raise _err("value is empty (leave the row out for a gap)", source, int(lines[i]), cfg.value_column)
        n = len(df)
        stamps = self._stamps(df, cfg, lines, source) if n else np.zeros(0, dtype=np.int64)

        # channel per row
        if chan_cols:
            keys = df[chan_cols[0]].astype(str).str.strip()
            for c in chan_cols[1:]:
                keys = keys + cfg.channel_separator + df[c].astype(str).str.strip()
            missing = df[chan_cols].isna().any(axis=1).to_numpy()
            if missing.any():
                i = int(np.argmax(missing))
                raise _err("channel is empty", source, int(lines[i]), chan_cols[0])
            codes, uniq = pd.factorize(keys.to_numpy(dtype=object))
            names = [cfg.channel_map.get(k, k) for k in uniq]
            if fixed is not None:
                if len(set(names)) > 1:
                    raise _err(f"--channel {fixed!r} given but the file holds {len(names)} channels "
                               f"({', '.join(names[:5])})", source, None, chan_cols[0])
                names = [fixed]
            names, codes = _merge_names(names, codes)
        else:
            codes = np.zeros(n, dtype=np.int64)
            names = [fixed or ""]

        minutes = np.zeros(n, dtype=np.int64)
        if cfg.interval_minutes_column:
            col = cfg.interval_minutes_column
            num = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=np.float64)
            bad = np.isnan(num) | (num != np.round(num)) | ~np.isin(num, ALLOWED_INTERVAL_MINUTES)
            if bad.any():
                i = int(np.argmax(bad))
                raise _err(f"interval length {df[col].iloc[i]!r} is not one of {list(ALLOWED_INTERVAL_MINUTES)}",
                           source, int(lines[i]), col)
            minutes = num.astype(np.int64)
        if cfg.hour_ending_column:
            if cfg.interval_minutes not in (None, 60) or (minutes.any() and (minutes != 60).any()):
                raise _err("hour-ending files hold hourly intervals (interval_minutes must be 60)", source, None,
                           cfg.hour_ending_column)
            minutes = np.full(n, 60, dtype=np.int64)

        factor = np.full(max(n, 1), UNIT_FACTORS[cfg.unit.strip().lower()][0])
        demand: np.ndarray | None = None
        if cfg.unit_column:
            factor, demand = _unit_per_row(df[cfg.unit_column].to_numpy(dtype=object), lines, source, cfg.unit_column)
        quality = np.zeros(n, dtype=np.uint8)
        if cfg.quality_column:
            quality = _quality_per_row(df[cfg.quality_column].to_numpy(dtype=object), cfg.quality_map, lines, source,
                                       cfg.quality_column)
        value = value * cfg.multiplier
        groups: list[_Group] = []
        codes = np.asarray(codes, dtype=np.int64)
        order = np.argsort(codes, kind="stable")
        bounds = np.flatnonzero(np.diff(codes[order])) + 1
        for chunk in np.split(order, bounds) if n else []:
            groups.append(_Group(
                name=names[int(codes[chunk[0]])], stamp=stamps[chunk], value=value[chunk], line=lines[chunk],
                minutes=minutes[chunk] if minutes.any() else None,
                factor=factor[chunk] if demand is not None else float(factor[0]),
                demand=demand[chunk] if demand is not None else UNIT_FACTORS[cfg.unit.strip().lower()][1],
                quality=quality[chunk] if cfg.quality_column else None,
            ))
        return groups

    def _read_wide(self, path: Path, header: list[str], cfg: CsvMeterConfig, fixed: str | None) -> list[_Group]:
        source = str(path)
        time_cols = self._time_columns(cfg)
        self._require(header, time_cols, cfg, source)
        if cfg.value_columns is not None:
            vcols = list(cfg.value_columns)
            self._require(header, vcols, cfg, source)
        else:
            vcols = [c for c in header if c not in time_cols and c]
        if not vcols:
            raise _err("wide file has no value columns", source, cfg.skip_rows + 1, "")
        if fixed is not None and len(vcols) != 1:
            raise _err(f"--channel {fixed!r} given but the file has {len(vcols)} value columns", source,
                       cfg.skip_rows + 1, "")
        df = self._read_csv(path, header, cfg, time_cols + vcols, vcols)
        lines = np.arange(len(df), dtype=np.int64) + cfg.skip_rows + 2
        blank = df.isna().all(axis=1).to_numpy()
        if blank.any():
            df = df.loc[~blank]
            lines = lines[~blank]
        n = len(df)
        stamps = self._stamps(df, cfg, lines, source) if n else np.zeros(0, dtype=np.int64)
        # one contiguous array per value column (pandas keeps each parsed column as its own block)
        columns = [df[c].to_numpy(dtype=np.float64) for c in vcols]
        names = [fixed] if fixed is not None else [cfg.channel_map.get(c, c) for c in vcols]
        unit_factor, is_demand = UNIT_FACTORS[cfg.unit.strip().lower()]
        by_name: dict[str, list[int]] = {}
        for j, name in enumerate(names):
            by_name.setdefault(name, []).append(j)
        groups: list[_Group] = []
        for name, cols in by_name.items():  # one pass per channel column, vectorised over rows
            parts = []
            for j in cols:
                col = columns[j]
                present = ~np.isnan(col)  # empty cell = gap
                if present.all():
                    parts.append((stamps, col, lines))
                else:
                    parts.append((stamps[present], col[present], lines[present]))
            stamp = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
            value = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
            line = np.concatenate([p[2] for p in parts]) if len(parts) > 1 else parts[0][2]
            if len(value) == 0:
                continue
            groups.append(_Group(name=name, stamp=stamp, value=value * cfg.multiplier, line=line,
                                 minutes=np.full(len(value), 60, dtype=np.int64) if cfg.hour_ending_column else None,
                                 factor=unit_factor, demand=is_demand))
        return groups

    # ---- rows -> series

    def _to_series(self, groups: list[_Group], cfg: CsvMeterConfig, source: str) -> tuple[list[ChannelSeries], int]:
        out: list[ChannelSeries] = []
        dups = 0
        ending = cfg.interval_convention == "ending" or bool(cfg.hour_ending_column)
        for g in groups:
            stamp, line = g.stamp, g.line
            perm = None
            if len(stamp) > 1 and not bool(np.all(stamp[1:] > stamp[:-1])):
                perm = np.lexsort((line, stamp))  # by time, file order among repeats
                stamp, line = stamp[perm], line[perm]

            def take(a: Any, perm: Any = perm) -> Any:
                return a[perm] if perm is not None and isinstance(a, np.ndarray) else a

            minutes = self._minutes_for(g.name, take(g.minutes), stamp, line, cfg, source)
            step = minutes * 60
            starts = stamp - step if ending else stamp
            mis = starts % step != 0
            if mis.any():
                i = int(np.argmax(mis))
                ts = datetime.fromtimestamp(int(starts[i]), tz=zone("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")
                raise _err(f"interval start {ts} is not on the {minutes}-minute grid (misaligned start)",
                           source, int(line[i]), _stamp_field(cfg))
            demand = take(g.demand)
            kwh = take(g.value) * take(g.factor)
            if isinstance(demand, np.ndarray):
                kwh = kwh * np.where(demand, minutes / 60.0, 1.0)
            elif demand:
                kwh = kwh * (minutes / 60.0)
            quality = take(g.quality) if g.quality is not None else np.zeros(len(kwh), dtype=np.uint8)
            series, n_dup = _dedupe(g.name, minutes, starts, kwh, quality, line, source)
            dups += n_dup
            out.append(series)
        return out, dups

    def _minutes_for(self, name: str, minutes: np.ndarray | None, stamp: np.ndarray, line: np.ndarray,
                     cfg: CsvMeterConfig, source: str) -> int:
        """One interval length per channel, checked against the channel's configuration.

        ``stamp`` is sorted; lengths come from the file, the channel, the config, or the
        smallest step between timestamps (in that order of authority).
        """
        spec = self.context.channels.get(name)
        expected = getattr(spec, "interval_minutes", None) or cfg.interval_minutes
        field = cfg.interval_minutes_column or _stamp_field(cfg)
        if minutes is not None:  # lengths given in the file
            ref = expected if expected else int(minutes[np.argmin(line)])
            bad = minutes != ref
            if bad.any():
                i = int(np.flatnonzero(bad)[np.argmin(line[bad])])
                what = f"channel {name!r} is configured for {ref}-minute intervals" if expected else \
                    f"earlier rows of channel {name!r} have {ref}-minute intervals"
                raise _err(f"wrong interval length: {int(minutes[i])} min, but {what}", source, int(line[i]), field)
            return int(ref)
        diffs = np.diff(stamp)
        steps = np.flatnonzero(diffs > 0)
        if len(steps) == 0:
            if expected:
                return int(expected)
            raise _err(f"cannot infer the interval length of channel {name!r} from one timestamp; set "
                       "interval_minutes", source, int(line[0]), "interval_minutes")
        k = int(steps[np.argmin(diffs[steps])])
        smallest = int(diffs[k])
        if expected:
            if smallest < expected * 60:
                raise _err(f"wrong interval length: timestamps {smallest // 60} min apart, but channel "
                           f"{name!r} is configured for {expected}-minute intervals", source, int(line[k + 1]), field)
            return int(expected)
        step = smallest // 60
        if step not in ALLOWED_INTERVAL_MINUTES or smallest % 60:
            raise _err(f"timestamps {smallest} s apart is not an allowed interval length "
                       f"{list(ALLOWED_INTERVAL_MINUTES)} min", source, int(line[k + 1]), field)
        return step


def _stamp_field(cfg: CsvMeterConfig) -> str:
    return cfg.hour_ending_column or cfg.timestamp_column or "timestamp"


def _merge_names(names: list[str], codes: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Collapse codes whose mapped channel names coincide."""
    uniq, inverse = np.unique(np.asarray(names, dtype=object), return_inverse=True)
    if len(uniq) == len(names):
        return names, codes
    return [str(x) for x in uniq], inverse[codes]


def _unit_per_row(raw: np.ndarray, lines: np.ndarray, source: str, field: str) -> tuple[np.ndarray, np.ndarray]:
    codes, uniq = pd.factorize(raw, use_na_sentinel=True)
    if (codes < 0).any():
        i = int(np.argmax(codes < 0))
        raise _err("unit is empty", source, int(lines[i]), field)
    factors = np.zeros(len(uniq))
    demand = np.zeros(len(uniq), dtype=bool)
    first = _first_rows(codes, len(uniq))
    for k, u in enumerate(uniq):  # once per distinct unit string
        key = str(u).strip().lower()
        if key not in UNIT_FACTORS:
            raise _err(f"unknown unit {u!r} (known: Wh, kWh, MWh, W, kW, MW)", source, int(lines[first[k]]), field)
        factors[k], demand[k] = UNIT_FACTORS[key]
    return factors[codes], demand[codes]


def _quality_per_row(raw: np.ndarray, extra: dict[str, str], lines: np.ndarray, source: str,
                     field: str) -> np.ndarray:
    table = {**DEFAULT_QUALITY_MAP, **{k.strip().lower(): v for k, v in extra.items()}}
    by_label = {q.label: q.value for q in Quality}
    codes, uniq = pd.factorize(raw, use_na_sentinel=True)
    lut = np.zeros(len(uniq) + 1, dtype=np.uint8)  # last slot: empty cell -> valid
    first = _first_rows(np.where(codes < 0, len(uniq), codes), len(uniq) + 1)
    for k, q in enumerate(uniq):  # once per distinct flag
        key = str(q).strip().lower()
        if key not in table:
            raise _err(f"unknown quality flag {q!r} (add it to quality_map)", source, int(lines[first[k]]), field)
        lut[k] = by_label[table[key]]
    return lut[np.where(codes < 0, len(uniq), codes)]


def _dedupe(name: str, minutes: int, starts: np.ndarray, kwh: np.ndarray, quality: np.ndarray,
            line: np.ndarray, source: str) -> tuple[ChannelSeries, int]:
    """``starts`` sorted (ties in file order): identical repeats collapse, conflicting ones fail."""
    s, v, q, ln = starts, kwh, quality, line
    same = s[1:] == s[:-1]
    n_dup = int(same.sum())
    if n_dup:
        equal = (v[1:] == v[:-1]) | (np.isnan(v[1:]) & np.isnan(v[:-1]))
        differ = same & (~equal | (q[1:] != q[:-1]))
        if differ.any():
            i = int(np.argmax(differ))
            ts = datetime.fromtimestamp(int(s[i]), tz=zone("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")
            raise _err(f"channel {name!r} interval {ts} appears again with a different value "
                       f"(first at line {int(ln[i])})", source, int(ln[i + 1]), "value")
        keep = np.concatenate(([True], ~same))
        s, v, q = s[keep], v[keep], q[keep]
    return ChannelSeries(channel_id=name, interval_minutes=minutes, starts=s, values=v, quality=q), n_dup


def sniff_csv(path: Path, head: bytes) -> bool:
    """True for a text file whose first line a CSV profile recognises (or a ``.csv`` file)."""
    if b"\x00" in head[:4096]:
        return False
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError:
        return False
    first = text.splitlines()[0] if text.strip() else ""
    if first.lstrip().startswith("<"):
        return False
    header = [c.strip() for c in next(csv.reader([first]))] if first else []
    if detect_profile(header) is not None:
        return True
    return Path(path).suffix.lower() in (".csv", ".txt") and "," in first


@hookimpl
def kwhub_register_meter_adapters(register: Any) -> None:
    """Register the CSV meter adapter."""
    register(CsvMeter)


@hookimpl
def kwhub_sniff_meter_file(path: Path, head: bytes) -> str | None:
    """Claim CSV meter files."""
    return TYPE_ID if sniff_csv(path, head) else None


__all__ = [
    "CsvMeter", "CsvMeterConfig", "CsvProfile", "load_profiles", "detect_profile", "parse_timestamps",
    "parse_hour_ending", "read_header", "effective_config", "sniff_csv", "UNIT_FACTORS",
]
