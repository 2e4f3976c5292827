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
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import field_validator, model_validator

from kwhub.core.adapters import AdapterConfig, CheckResult, FailureKind, MeterAdapter
from kwhub.core.hookspecs import hookimpl
from kwhub.core.hour_ending import HourEndingError, hour_ending_epochs, parse_labels
from kwhub.core.input_limits import (
    ABSURD_RAW,
    DEFAULT_LIMITS,
    InputLimits,
    check_file,
    excerpt,
    instant_text,
    size_text,
)
from kwhub.core.intervals import (
    ALLOWED_INTERVAL_MINUTES,
    MAX_CHANNEL_ID,
    ChannelSeries,
    IntervalBatch,
    IntervalDataError,
    PeriodSeries,
)
from kwhub.core.meter_units import KNOWN_TEXT, UNITS, conversion, header_unit, meter_unit
from kwhub.core.quality import Quality
from kwhub.core.timeline import TimeModelError, local_day, localize, zone
from kwhub.plugins.meters.csv_scan import CsvScan, ascii_compatible, locate_decode_error, scan_csv

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
    "mmbtu": (1.0, False),  # fuel and fractions are stored as they are, in the channel's unit
    "fraction": (1.0, False),
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
_OPTIONAL_COLUMNS = ("interval_minutes_column", "quality_column", "unit_column", "dst_flag_column")
STREAM_CHUNK_BYTES = 8 << 20  # bytes of the file parsed at a time by iter_file
MEMORY_PER_BYTE = 5.0  # peak memory of a parse per byte of file (measured: 2.8 wide, 4.4 long)
_FLAG_TRUE = frozenset({"y", "yes", "1", "true", "t", "x"})
_FLAG_FALSE = frozenset({"n", "no", "0", "false", "f", ""})


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
    dst_flag_column: str | None = None  # hour-ending files: a DST flag per row (Y/N, 1/0, true/false)
    dst_flag_marks: Literal["repeated_hour", "daylight_time"] = "repeated_hour"
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
    # what the rows are: intervals, energy over periods of any length (daily, billing), or
    # cumulative register values; periods span timestamp_column..period_end_column, or one
    # local day of date_column (23, 24 or 25 hours)
    reading_kind: Literal["interval", "period", "register"] = "interval"
    period_end_column: str | None = None

    @field_validator("unit")
    @classmethod
    def _known_unit(cls, v: str) -> str:
        if v.strip().lower() not in UNIT_FACTORS:
            raise ValueError(f"unknown unit {v!r} (known: {KNOWN_TEXT})")
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

    @model_validator(mode="after")
    def _period_columns(self) -> CsvMeterConfig:
        if self.reading_kind == "interval":
            if self.period_end_column:
                raise ValueError("period_end_column goes with reading_kind = 'period'")
            return self
        if self.hour_ending_column or self.interval_minutes_column:
            raise ValueError(f"reading_kind = {self.reading_kind!r} takes no hour_ending_column or "
                             "interval_minutes_column")
        if self.reading_kind == "register" and self.period_end_column:
            raise ValueError("a register reading is one instant (timestamp_column); period_end_column is for periods")
        if UNITS[self.unit.strip().lower()].dimension != "energy":
            raise ValueError(f"{self.reading_kind} readings are energy: unit must be Wh, kWh or MWh, not {self.unit!r}")
        return self

    @model_validator(mode="after")
    def _flag_needs_clock(self) -> CsvMeterConfig:
        if self.dst_flag_column and self.hour_ending_style == "elapsed":
            raise ValueError("dst_flag_column goes with wall clock hour-ending labels; "
                             "hour_ending_style cannot be 'elapsed'")
        return self

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
                    "interval_minutes_column", "unit_column", "quality_column", "dst_flag_column"):
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


def read_header(path: Path, encoding: str = "utf-8-sig", delimiter: str = ",", skip_rows: int = 0,
                max_bytes: int = DEFAULT_LIMITS.max_header_bytes) -> list[str]:
    """The stripped column names of the header line (after ``skip_rows`` lines).

    Reads at most ``max_bytes`` per line: a longer header (or skipped line) is an error
    naming the line and the limit, never an endless read.
    """
    return _header(path, encoding, delimiter, skip_rows, max_bytes)[0]


def _header(path: Path, encoding: str, delimiter: str, skip_rows: int, max_bytes: int) -> tuple[list[str], bytes]:
    """(column names, line break) of the header line; the line break is ``\\r`` for lone-CR files."""
    source = str(path)
    line = ""
    try:
        with path.open("r", encoding=encoding, newline="") as fh:
            for n in range(skip_rows + 1):
                line = fh.readline(max_bytes + 1)
                if len(line) > max_bytes or (len(line) == max_bytes + 1 and not line.endswith(("\n", "\r"))):
                    what = "header line" if n == skip_rows else "line"
                    raise IntervalDataError(
                        f"{what} is longer than the limit of {size_text(max_bytes)} (ingest.max_header_kb in "
                        f"kwhub.toml); it starts with {excerpt(line)}", source=source, where=f"line {n + 1}")
    except UnicodeDecodeError as exc:
        # the reader decodes ahead of the header line: find the line the bad bytes are on
        found = locate_decode_error(path, encoding)
        line_no, reason = found if found is not None else (skip_rows + 1, exc.reason)
        raise IntervalDataError(f"not a {encoding} text file: {reason}; set the adapter's `encoding` "
                                "(e.g. \"cp1252\")", source=source, where=f"line {line_no}") from None
    except OSError as exc:
        raise IntervalDataError(f"cannot read file: {exc.strerror}", source=source) from None
    if not line.strip():
        raise IntervalDataError("file is empty (no header line)", source=source, where=f"line {skip_rows + 1}")
    line_break = b"\r" if line.endswith("\r") else b"\n"
    try:
        fields = next(csv.reader([line.rstrip("\r\n")], delimiter=delimiter))
    except csv.Error as exc:
        raise IntervalDataError(f"header line is not CSV ({exc})", source=source, where=f"line {skip_rows + 1}") \
            from None
    return [c.strip() for c in fields], line_break


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
    if "value_column" not in explicit and merged.get("value_column") not in header:
        # the profile's value column named by another unit: `mmbtu` or `fraction` instead of `kwh`
        named = [c for c in header if meter_unit(c) is not None]
        if len(named) == 1:
            merged["value_column"] = named[0]
    return CsvMeterConfig.model_validate(merged), prof.name


def declared_unit(base: CsvMeterConfig, cfg: CsvMeterConfig, header: list[str], layout: str) -> str | None:
    """The unit the file's values are declared in, or None (then they are in each channel's unit).

    A ``unit`` set in the adapter's settings (not a profile's default) declares it; else a long
    file's value column may name its unit (``kwh``, ``Energy Wh``, ``mmbtu``). The setting
    wins, so a file whose column is misnamed (MMBtu under ``kwh``) is read with ``unit = "MMBtu"``.
    """
    if "unit" in base.model_fields_set:
        return UNITS[cfg.unit.strip().lower()].name
    from_header = header_unit(cfg.value_column) if layout == "long" and cfg.value_column in header else None
    return from_header.name if from_header is not None else None


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
            raise _err(f"timestamp {excerpt(str(u.iloc[j]))} has no UTC offset; set the adapter's `timezone` "
                       "(or give offsets / a trailing Z)", source, int(lines[first[j]]), field)
        epochs[naive] = localize_naive(pd.DatetimeIndex(parsed), tz, lines[first[naive]], source, field)
    return epochs[codes]


def _raise_unparsed(parsed: Any, text: pd.Series, first: np.ndarray, lines: np.ndarray, fmt: str,
                    source: str, field: str) -> None:
    bad = pd.isna(np.asarray(parsed))
    if bad.any():
        j = int(np.argmax(bad))
        want = "an ISO 8601 timestamp" if fmt == "iso" else f"format {fmt!r}"
        raise _err(f"bad timestamp {excerpt(str(text.iloc[j]))} (expected {want})", source, int(lines[first[j]]),
                   field)


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


def parse_hour_ending(dates_raw: np.ndarray, he_raw: np.ndarray, date_format: str, tz: str | None,
                      style: str, lines: np.ndarray, source: str, date_field: str, he_field: str,
                      dst_flags: np.ndarray | None = None, dst_marks: str = "repeated_hour",
                      flag_field: str = "") -> np.ndarray:
    """UTC epoch of the END of each hour given a local date and an hour-ending label.

    The dates are parsed here (once per distinct value); the labels and their placement on
    the UTC line (styles ``auto``/``elapsed``/``clock``, DST flags, ``HE02*`` markers of the
    repeated hour) follow :mod:`kwhub.core.hour_ending`, whose errors get the file, line and
    column here.
    """
    if tz is None:
        raise _err("hour-ending files have local dates; set the adapter's `timezone`", source, int(lines[0]), date_field)
    codes, uniques = pd.factorize(dates_raw, use_na_sentinel=True)
    if (codes < 0).any():
        i = int(np.argmax(codes < 0))
        raise _err("date is empty", source, int(lines[i]), date_field)
    u = pd.Series(np.asarray(uniques, dtype=object)).astype(str).str.strip()
    parsed = pd.to_datetime(u, format=date_format, errors="coerce")
    _raise_unparsed(parsed, u, _first_rows(codes, len(u)), lines, date_format, source, date_field)
    fields = {"date": date_field, "hour_ending": he_field, "dst_flag": flag_field or he_field}
    try:
        he, marked = parse_labels(he_raw)
        if dst_flags is None and marked.any():  # HE02* / HE02 DST: the label marks the repeated hour
            dst_flags, dst_marks = marked, "repeated_hour"
        return hour_ending_epochs(codes, [ts.date() for ts in parsed], he, tz, style=style,  # type: ignore[arg-type]
                                  dst_flags=dst_flags, dst_marks=dst_marks,  # type: ignore[arg-type]
                                  labels=u.tolist())
    except HourEndingError as exc:
        raise _err(str(exc), source, int(lines[exc.row]), fields[exc.part]) from None


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
    units: np.ndarray | str | None = None  # the unit each value is declared in (None: not declared)
    unit_field: str = ""  # the column that declares it (named in unit errors)


@dataclass
class _Read:
    """One file being read: its header, effective settings, first-pass result and limits."""

    path: Path
    header: list[str]
    cfg: CsvMeterConfig
    scan: CsvScan | None
    limits: InputLimits
    declared: str | None = None  # the file's unit when the settings or the value column name it

    @property
    def source(self) -> str:
        return str(self.path)

    def lines(self, rows: np.ndarray) -> np.ndarray:
        """Physical line numbers of data rows (0-based row indices as pandas reads them)."""
        if self.scan is not None:
            return self.scan.lines(rows)
        return np.asarray(rows, dtype=np.int64) + self.cfg.skip_rows + 2

    def all_lines(self, n: int) -> np.ndarray:
        return self.lines(np.arange(n, dtype=np.int64))


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

    def _open(self, path: Path, channel: str | None, memory_per_byte: float = MEMORY_PER_BYTE,
              ) -> tuple[_Read, str, str, str | None]:
        """Checks, header and first pass of one file: (read, layout, profile, fixed channel)."""
        path = Path(path)
        source = str(path)
        limits = self.context.limits
        check_file(path, limits, memory_per_byte)
        base = self.config
        header, line_break = _header(path, base.encoding, base.delimiter, base.skip_rows, limits.max_header_bytes)
        cfg, profile = effective_config(base, header, source)
        if len(set(header)) != len(header):
            dup = next(c for c in header if header.count(c) > 1)
            raise _err(f"column {excerpt(dup)} appears twice in the header", source, cfg.skip_rows + 1, dup[:40])
        scan = None
        if ascii_compatible(cfg.encoding) and len(cfg.delimiter) == 1 and cfg.delimiter.isascii():
            scan = scan_csv(path, delimiter=cfg.delimiter, header_fields=len(header), skip_rows=cfg.skip_rows,
                            limits=limits, line_break=line_break)
        layout = cfg.layout
        if layout == "auto":
            cols = [cfg.channel_column] if isinstance(cfg.channel_column, str) else (cfg.channel_column or [])
            layout = "long" if cols and all(c in header for c in cols) else "wide"
            if not cols and cfg.value_column in header:
                layout = "long"
        fixed_channel = channel or cfg.channel
        declared = declared_unit(base, cfg, header, layout)
        if declared is not None and declared != UNITS[cfg.unit.strip().lower()].name:
            cfg = cfg.model_copy(update={"unit": declared})
        read = _Read(path, header, cfg, scan, limits, declared)
        return read, layout, profile, fixed_channel

    def read_file(self, path: Path, channel: str | None = None) -> IntervalBatch:
        """Parse one CSV file into a batch; any bad cell rejects the whole file.

        The file is checked against ``context.limits`` first (size, memory, line and field
        lengths, one cell per header column in every row), then parsed.
        """
        path = Path(path)
        source = str(path)
        read, layout, profile, fixed_channel = self._open(path, channel)
        cfg = read.cfg
        if cfg.reading_kind != "interval":
            return self._read_periods(read, fixed_channel, layout, profile)
        if layout == "long":
            groups = self._read_long(read, fixed_channel)
        else:
            groups = self._read_wide(read, fixed_channel)
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

    def iter_file(self, path: Path, channel: str | None = None, *,
                  chunk_bytes: int | None = None) -> Iterator[IntervalBatch] | None:
        """The file as consecutive batches of whole UTC days, parsed chunk by chunk, or None.

        Memory is bounded by ``chunk_bytes`` (default ``STREAM_CHUNK_BYTES``; about two chunks are parsed at a time: the next
        one in a worker thread while the caller stores the current one), not by the file.
        None when the file does not qualify; then :meth:`read_file` reads it whole. It
        qualifies as a wide file of interval readings with a timestamp column (no
        hour-ending columns), no quoted fields, every value column a channel the context
        configures with its interval length. Each batch holds the days its rows complete
        (a channel's day never spans two batches). When a chunk's rows do not follow the
        previous chunk's in time, or any cell is bad, the iterator raises
        :class:`IntervalDataError`: the caller drops what it stored of the file and reads it
        whole with :meth:`read_file`, which names the bad cell as usual.
        """
        path = Path(path)
        # the streaming read holds a few chunks, not the file
        read, layout, profile, fixed = self._open(path, channel, memory_per_byte=0.0)
        cfg = read.cfg
        if (cfg.reading_kind != "interval" or layout != "wide" or cfg.hour_ending_column or read.scan is None
                or read.scan.has_quotes or read.scan.shifts or not cfg.timestamp_column):
            return None
        time_cols, vcols, names = self._wide_columns(read, fixed)
        known = self.context.channels
        if any(not (getattr(known.get(n), "interval_minutes", None) or cfg.interval_minutes) for n in names):
            return None
        return self._stream_wide(read, profile, time_cols, vcols, names,
                                 max(int(chunk_bytes or STREAM_CHUNK_BYTES), 1024))

    def _stream_wide(self, read: _Read, profile: str, time_cols: list[str], vcols: list[str], names: list[str],
                     chunk_bytes: int) -> Iterator[IntervalBatch]:
        from concurrent.futures import ThreadPoolExecutor

        cfg, header, source = read.cfg, read.header, read.source
        scan = read.scan
        assert scan is not None
        use = time_cols + vcols
        usecols = use if len(use) * 2 < len(header) else None
        dtype: dict[str, Any] = {c: (np.float64 if c in vcols else object) for c in (usecols or header)}
        kwargs: dict[str, Any] = dict(
            sep=cfg.delimiter, engine="c", header=None, names=header, usecols=usecols, dtype=dtype,
            encoding=cfg.encoding, skip_blank_lines=False, keep_default_na=False, na_values=[""],
        )

        def blocks() -> Iterator[bytes]:
            with read.path.open("rb") as fh:
                for _ in range(scan.first_line - 1):  # skipped rows and the header
                    fh.readline()
                rest = b""
                while True:
                    buf = fh.read(chunk_bytes)
                    if not buf:
                        break
                    buf = rest + buf
                    cut = buf.rfind(b"\n") + 1
                    if cut == 0:
                        rest = buf
                        continue
                    rest = buf[cut:]
                    yield buf[:cut]
                if rest.strip(b"\r\n"):
                    yield rest

        def parse(block: bytes) -> pd.DataFrame:
            import io

            try:
                return pd.read_csv(io.BytesIO(block), **kwargs)
            except (ValueError, UnicodeDecodeError) as exc:
                raise _err(f"cannot read CSV chunk: {_pandas_reason(exc)}", source, None, "") from None

        def series_of(df: pd.DataFrame, first_row: int) -> tuple[list[ChannelSeries], int, int]:
            lines = read.lines(np.arange(first_row, first_row + len(df), dtype=np.int64))
            groups = self._wide_groups(df, lines, read, vcols, names)
            series, dups = self._to_series(groups, cfg, source)
            return series, dups, int(sum(len(g.value) for g in groups))

        carry: dict[str, ChannelSeries] = {}
        last_start: dict[str, int] = {}
        n_values = n_dups = 0
        row = 0
        with ThreadPoolExecutor(1, thread_name_prefix="kwhub-csv") as pool:
            it = blocks()
            nxt = next(it, None)
            pending = pool.submit(parse, nxt) if nxt is not None else None
            while pending is not None:
                df = pending.result()
                nxt = next(it, None)
                pending = pool.submit(parse, nxt) if nxt is not None else None
                series, dups, n = series_of(df, row)
                row += len(df)
                del df
                n_dups += dups
                n_values += n
                out: list[ChannelSeries] = []
                # channels that share their instants share the joined and cut instant arrays
                # (by identity: the later steps see the same array, not equal copies)
                shared: dict[tuple[int, ...], Any] = {}
                for s in series:
                    held = carry.pop(s.channel_id, None)
                    s = self._after_carry(held, s, last_start, source, shared)
                    got = shared.get((id(s.starts),))
                    if got is None:
                        day = s.starts // 86_400
                        cut = int(np.searchsorted(day, day[-1], side="left")) if len(day) else 0
                        got = shared[(id(s.starts),)] = (cut, s.starts[:cut], s.starts[cut:], s.starts)
                    cut, head, rest = got[0], got[1], got[2]
                    if cut:
                        out.append(ChannelSeries(channel_id=s.channel_id, interval_minutes=s.interval_minutes,
                                                 starts=head, values=s.values[:cut], quality=s.quality[:cut]))
                        last_start[s.channel_id] = int(s.starts[cut - 1])
                    carry[s.channel_id] = ChannelSeries(channel_id=s.channel_id, interval_minutes=s.interval_minutes,
                                                        starts=rest, values=s.values[cut:], quality=s.quality[cut:])
                del shared
                yield IntervalBatch(source=source, series=out, meta={})
        tail = [s for s in carry.values() if len(s)]
        meta: dict[str, object] = {"adapter": TYPE_ID, "instance": self.instance_id, "profile": profile,
                                   "layout": "wide", "values": n_values, "duplicates": n_dups, "streamed": True}
        if cfg.timezone:
            meta["timezone"] = cfg.timezone
        yield IntervalBatch(source=source, series=tail, meta=meta)

    @staticmethod
    def _after_carry(carry: ChannelSeries | None, s: ChannelSeries, last_start: dict[str, int],
                     source: str, shared: dict[tuple[int, ...], Any] | None = None) -> ChannelSeries:
        """``s`` behind the part of its channel's last day held back from the previous chunk.

        The rows of a chunk must follow the previous chunk's in time at the channel's
        interval length (else the whole file is read at once, which sorts and checks).
        ``shared``: joined instants by the identities of their parts (channels that share
        their instants get the same joined array)."""
        prev = int(carry.starts[-1]) if carry is not None and len(carry) else last_start.get(s.channel_id)
        if prev is not None and len(s) and int(s.starts[0]) < prev + int(s.interval_minutes) * 60:
            raise _err("rows out of order across chunks", source, None, "")
        if carry is None or not len(carry):
            return s
        starts = None
        if shared is not None:
            key = (id(carry.starts), id(s.starts))
            got = shared.get(key)
            if got is None:
                starts = np.concatenate([carry.starts, s.starts])
                shared[key] = (starts, carry.starts, s.starts)  # the parts held: their ids stay theirs
            else:
                starts = got[0]
        return ChannelSeries(channel_id=s.channel_id, interval_minutes=s.interval_minutes,
                             starts=starts if starts is not None else np.concatenate([carry.starts, s.starts]),
                             values=np.concatenate([carry.values, s.values]),
                             quality=np.concatenate([carry.quality, s.quality]))

    # ---- layouts

    def _read_csv(self, read: _Read, use: list[str], floats: list[str]) -> pd.DataFrame:
        path, header, cfg = read.path, read.header, read.cfg
        source = str(path)
        # usecols only when it saves real work, and only after the first pass has checked
        # every row's field count (pandas drops the extra fields of a row it reads with usecols)
        usecols = use if read.scan is not None and len(use) * 2 < len(header) else None
        dtype: dict[str, Any] = {c: (np.float64 if c in floats else object) for c in (usecols or header)}
        kwargs: dict[str, Any] = dict(
            sep=cfg.delimiter, engine="c", header=0, names=header, usecols=usecols, skiprows=cfg.skip_rows,
            encoding=cfg.encoding, skip_blank_lines=False, keep_default_na=False, na_values=[""],
        )
        try:
            return pd.read_csv(path, dtype=dtype, **kwargs)
        except UnicodeDecodeError:
            raise self._decode_error(path, cfg.encoding) from None
        except ValueError as exc:
            if isinstance(exc, pd.errors.ParserError):
                m = _LINE_RE.search(str(exc))
                line = None
                if m:  # pandas counts records from the first line of the file
                    rec = int(m.group(1)) - cfg.skip_rows - 2
                    line = int(read.lines(np.array([max(rec, 0)]))[0]) if rec >= 0 else int(m.group(1))
                raise _err(f"malformed CSV: {_pandas_reason(exc)}", source, line, "") from None
            if not floats:
                raise _err(f"cannot read CSV: {_pandas_reason(exc)}", source, None, "") from None
        # a cell did not parse as a number: find it (slow path, only on error)
        df = pd.read_csv(path, dtype=dict.fromkeys(usecols or header, object), **kwargs)
        for col in floats:
            text = df[col]
            num = pd.to_numeric(text, errors="coerce")
            bad = (num.isna() & text.notna()).to_numpy()
            if bad.any():
                i = int(np.argmax(bad))
                raise _err(f"malformed number {excerpt(str(text.iloc[i]))}", source,
                           int(read.lines(np.array([i]))[0]), col)
        raise _err("cannot read CSV", source, None, "")

    @staticmethod
    def _decode_error(path: Path, encoding: str) -> IntervalDataError:
        found = locate_decode_error(path, encoding)
        line, reason = found if found is not None else (None, "undecodable bytes")
        return _err(f"not a {encoding} text file: {reason}; set the adapter's `encoding` (e.g. \"cp1252\")",
                    str(path), line, "")

    def _require(self, header: list[str], cols: list[str], cfg: CsvMeterConfig, source: str) -> None:
        for c in cols:
            if c not in header:
                shown = ", ".join(excerpt(h, 30) for h in header[:12]) + (", ..." if len(header) > 12 else "")
                raise _err(f"column {excerpt(c)} not found (header: {shown})", source, cfg.skip_rows + 1, c[:40])

    def _time_columns(self, cfg: CsvMeterConfig) -> list[str]:
        if cfg.hour_ending_column:
            return [c for c in (cfg.date_column, cfg.hour_ending_column, cfg.dst_flag_column) if c]
        return [cfg.timestamp_column] if cfg.timestamp_column else []

    def _stamps(self, df: pd.DataFrame, read: _Read, lines: np.ndarray) -> np.ndarray:
        cfg, source = read.cfg, read.source
        if cfg.hour_ending_column:
            if not cfg.date_column:
                raise _err("hour_ending_column needs date_column", source, None, "date_column")
            flags = None
            if cfg.dst_flag_column:
                flags = _flags_per_row(df[cfg.dst_flag_column].to_numpy(dtype=object), lines, source,
                                       cfg.dst_flag_column)
            stamps = parse_hour_ending(
                df[cfg.date_column].to_numpy(dtype=object), df[cfg.hour_ending_column].to_numpy(dtype=object),
                cfg.date_format, cfg.timezone, cfg.hour_ending_style, lines, source, cfg.date_column,
                cfg.hour_ending_column, flags, cfg.dst_flag_marks, cfg.dst_flag_column or "",
            )
            field = cfg.date_column
        else:
            if not cfg.timestamp_column:
                raise _err("no timestamp_column configured", source, None, "timestamp_column")
            stamps = parse_timestamps(df[cfg.timestamp_column].to_numpy(dtype=object), cfg.timestamp_format,
                                      cfg.timezone, lines, source, cfg.timestamp_column)
            field = cfg.timestamp_column
        out = read.limits.outside(stamps)
        if out.any():
            i = int(np.argmax(out))
            raise _err(f"timestamp {instant_text(int(stamps[i]))} is outside the accepted range "
                       f"{read.limits.range_text()}", source, int(lines[i]), field)
        return stamps

    def _channel_columns(self, read: _Read, fixed: str | None) -> list[str]:
        cfg = read.cfg
        chan_cols = [cfg.channel_column] if isinstance(cfg.channel_column, str) else list(cfg.channel_column or [])
        if fixed is not None:
            return [c for c in chan_cols if c in read.header]
        if not chan_cols:
            raise _err("file has no channel column; pass --channel (or set `channel`)", read.source,
                       cfg.skip_rows + 1, "channel")
        return chan_cols

    def _channel_codes(self, df: pd.DataFrame, read: _Read, chan_cols: list[str], fixed: str | None,
                       lines: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """Channel of each row: (code per row, channel id per code), ids mapped and checked."""
        cfg, source = read.cfg, read.source
        n = len(df)
        if not chan_cols:
            return np.zeros(n, dtype=np.int64), [fixed or ""]
        keys = df[chan_cols[0]].astype(str).str.strip()
        for c in chan_cols[1:]:
            keys = keys + cfg.channel_separator + df[c].astype(str).str.strip()
        missing = df[chan_cols].isna().any(axis=1).to_numpy()
        if missing.any():
            i = int(np.argmax(missing))
            raise _err("channel is empty", source, int(lines[i]), chan_cols[0])
        codes, uniq = pd.factorize(keys.to_numpy(dtype=object))
        # a channel_map entry, else a configured channel id, else the channel of that meter serial (+ number)
        by_meter = meter_channel_ids(self.context.channels, cfg.channel_separator)
        known = self.context.channels
        names = [cfg.channel_map.get(k) or (k if k in known else by_meter.get(_meter_key(k, cfg.channel_separator), k))
                 for k in uniq]
        if fixed is not None:
            if len(set(names)) > 1:
                raise _err(f"--channel {excerpt(fixed)} given but the file holds {len(names)} channels "
                           f"({', '.join(excerpt(x, 30) for x in names[:5])})", source, None, chan_cols[0])
            names = [fixed]
        else:
            _check_channel_ids(names, codes, lines, source, chan_cols[0])
        names, codes = _merge_names(names, codes)
        return np.asarray(codes, dtype=np.int64), names

    def _read_long(self, read: _Read, fixed: str | None) -> list[_Group]:
        header, cfg, source = read.header, read.cfg, read.source
        chan_cols = self._channel_columns(read, fixed)
        extra = [c for c in (cfg.interval_minutes_column, cfg.unit_column, cfg.quality_column) if c]
        use = list(dict.fromkeys(chan_cols + self._time_columns(cfg) + [cfg.value_column] + extra))
        self._require(header, use, cfg, source)
        df = self._read_csv(read, use, [cfg.value_column])
        lines = read.all_lines(len(df))
        blank = df.isna().all(axis=1).to_numpy()
        if blank.any():
            df = df.loc[~blank]
            lines = lines[~blank]
        value = df[cfg.value_column].to_numpy(dtype=np.float64)
        empty = np.isnan(value)
        if empty.any():  # a long file leaves gaps out; an empty or missing cell is a broken row
            i = int(np.argmax(empty))
            raise _err("value is empty (leave the row out for a gap)", source, int(lines[i]), cfg.value_column)
        _refuse_infinite(value, lines, source, cfg.value_column)
        n = len(df)
        stamps = self._stamps(df, read, lines) if n else np.zeros(0, dtype=np.int64)

        codes, names = self._channel_codes(df, read, chan_cols, fixed, lines)

        minutes = np.zeros(n, dtype=np.int64)
        if cfg.interval_minutes_column:
            col = cfg.interval_minutes_column
            num = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=np.float64)
            bad = np.isnan(num) | (num != np.round(num)) | ~np.isin(num, ALLOWED_INTERVAL_MINUTES)
            if bad.any():
                i = int(np.argmax(bad))
                raise _err(f"interval length {excerpt(str(df[col].iloc[i]))} is not one of "
                           f"{list(ALLOWED_INTERVAL_MINUTES)}", source, int(lines[i]), col)
            minutes = num.astype(np.int64)
        if cfg.hour_ending_column:
            if cfg.interval_minutes not in (None, 60) or (minutes.any() and (minutes != 60).any()):
                raise _err("hour-ending files hold hourly intervals (interval_minutes must be 60)", source, None,
                           cfg.hour_ending_column)
            minutes = np.full(n, 60, dtype=np.int64)

        factor = np.full(max(n, 1), UNIT_FACTORS[cfg.unit.strip().lower()][0])
        demand: np.ndarray | None = None
        units: np.ndarray | None = None
        if cfg.unit_column:
            factor, demand, units = _unit_per_row(df[cfg.unit_column].to_numpy(dtype=object), lines, source,
                                                  cfg.unit_column)
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
                units=units[chunk] if units is not None else read.declared,
                unit_field=cfg.unit_column or cfg.value_column,
            ))
        return groups

    def _read_wide(self, read: _Read, fixed: str | None) -> list[_Group]:
        time_cols, vcols, names_all = self._wide_columns(read, fixed)
        df = self._read_csv(read, time_cols + vcols, vcols)
        return self._wide_groups(df, read.all_lines(len(df)), read, vcols, names_all)

    def _wide_columns(self, read: _Read, fixed: str | None) -> tuple[list[str], list[str], list[str]]:
        """A wide file's time columns, value columns and the channel of each value column."""
        header, cfg, source = read.header, read.cfg, read.source
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
            raise _err(f"--channel {excerpt(fixed)} given but the file has {len(vcols)} value columns", source,
                       cfg.skip_rows + 1, "")
        names_all = [fixed] if fixed is not None else [cfg.channel_map.get(c, c) for c in vcols]
        long_name = next((c for c in names_all if len(c) > MAX_CHANNEL_ID), None)
        if long_name is not None:
            raise _err(f"channel id {excerpt(long_name)} is {len(long_name)} characters long, more than the "
                       f"{MAX_CHANNEL_ID} a channel id may have; map the column to a shorter id (channel_map)",
                       source, cfg.skip_rows + 1, long_name[:40])
        return time_cols, vcols, names_all

    def _wide_groups(self, df: pd.DataFrame, lines: np.ndarray, read: _Read, vcols: list[str],
                     names_all: list[str]) -> list[_Group]:
        """The value columns of wide rows (``lines``: their physical line numbers) as channel groups."""
        cfg, source = read.cfg, read.source
        blank = df.isna().all(axis=1).to_numpy()
        if blank.any():
            df = df.loc[~blank]
            lines = lines[~blank]
        n = len(df)
        stamps = self._stamps(df, read, lines) if n else np.zeros(0, dtype=np.int64)
        # one contiguous array per value column (pandas keeps each parsed column as its own block)
        columns = [df[c].to_numpy(dtype=np.float64) for c in vcols]
        for c, col in zip(vcols, columns, strict=True):
            if not np.isfinite(np.nansum(col)):
                _refuse_infinite(col, lines, source, c)
        names = names_all
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
            groups.append(_Group(name=name, stamp=stamp, value=value * cfg.multiplier if cfg.multiplier != 1 else value,
                                 line=line,
                                 minutes=np.full(len(value), 60, dtype=np.int64) if cfg.hour_ending_column else None,
                                 factor=unit_factor, demand=is_demand, units=read.declared,
                                 unit_field=vcols[cols[0]]))
        return groups

    # ---- period and register readings

    def _period_time_columns(self, cfg: CsvMeterConfig) -> list[str]:
        if cfg.reading_kind == "period" and cfg.date_column and not cfg.period_end_column:
            return [cfg.date_column]
        cols = [cfg.timestamp_column] if cfg.timestamp_column else []
        return cols + ([cfg.period_end_column] if cfg.reading_kind == "period" and cfg.period_end_column else [])

    def _period_bounds(self, df: pd.DataFrame, read: _Read, lines: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
        """(starts, ends, field) of period/register rows; a local date is one local day (23, 24 or 25 h)."""
        cfg, source = read.cfg, read.source
        if cfg.reading_kind == "period" and cfg.date_column and not cfg.period_end_column:
            field = cfg.date_column
            if cfg.timezone is None:
                raise _err("daily readings by local date need the adapter's `timezone`", source, int(lines[0]), field)
            codes, uniques = pd.factorize(df[field].to_numpy(dtype=object), use_na_sentinel=True)
            if (codes < 0).any():
                i = int(np.argmax(codes < 0))
                raise _err("date is empty", source, int(lines[i]), field)
            u = pd.Series(np.asarray(uniques, dtype=object)).astype(str).str.strip()
            parsed = pd.to_datetime(u, format=cfg.date_format, errors="coerce")
            _raise_unparsed(parsed, u, _first_rows(codes, len(u)), lines, cfg.date_format, source, field)
            spans = [local_day(ts.date(), cfg.timezone) for ts in parsed]  # once per distinct date
            starts = np.array([sp.start_epoch for sp in spans], dtype=np.int64)[codes]
            ends = np.array([sp.end_epoch for sp in spans], dtype=np.int64)[codes]
        else:
            if not cfg.timestamp_column:
                raise _err("no timestamp_column configured", source, None, "timestamp_column")
            field = cfg.timestamp_column
            starts = parse_timestamps(df[field].to_numpy(dtype=object), cfg.timestamp_format, cfg.timezone, lines,
                                      source, field)
            ends = starts
            if cfg.reading_kind == "period":
                if not cfg.period_end_column:
                    raise _err("period readings need period_end_column (or a local date_column for daily reads)",
                               source, None, "period_end_column")
                ends = parse_timestamps(df[cfg.period_end_column].to_numpy(dtype=object), cfg.timestamp_format,
                                        cfg.timezone, lines, source, cfg.period_end_column)
                bad = ends <= starts
                if bad.any():
                    i = int(np.argmax(bad))
                    raise _err("the period ends before it starts (or where it starts)", source, int(lines[i]),
                               cfg.period_end_column)
        out = read.limits.outside(starts) | read.limits.outside(np.maximum(ends - 1, starts))
        if out.any():
            i = int(np.argmax(out))
            raise _err(f"reading {instant_text(int(starts[i]))}..{instant_text(int(ends[i]))} is outside the "
                       f"accepted range {read.limits.range_text()}", source, int(lines[i]), field)
        return starts, ends, field

    def _read_periods(self, read: _Read, fixed: str | None, layout: str, profile: str) -> IntervalBatch:
        """Period (daily, billing) or register readings, long or wide; values in energy units."""
        cfg, source = read.cfg, read.source
        time_cols = self._period_time_columns(cfg)
        self._require(read.header, time_cols, cfg, source)
        factor = UNIT_FACTORS[cfg.unit.strip().lower()][0] * cfg.multiplier
        rows: list[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        if layout == "long":
            chan_cols = self._channel_columns(read, fixed)
            extra = [c for c in (cfg.unit_column, cfg.quality_column) if c]
            use = list(dict.fromkeys(chan_cols + time_cols + [cfg.value_column] + extra))
            self._require(read.header, use, cfg, source)
            df, lines = self._rows(read, use, [cfg.value_column])
            value = df[cfg.value_column].to_numpy(dtype=np.float64)
            if np.isnan(value).any():
                i = int(np.argmax(np.isnan(value)))
                raise _err("value is empty", source, int(lines[i]), cfg.value_column)
            _refuse_infinite(value, lines, source, cfg.value_column)
            starts, ends, _ = self._period_bounds(df, read, lines)
            codes, names = self._channel_codes(df, read, chan_cols, fixed, lines)
            fac: np.ndarray | float = factor
            if cfg.unit_column:
                per_row, demand, per_unit = _unit_per_row(df[cfg.unit_column].to_numpy(dtype=object), lines,
                                                          source, cfg.unit_column)
                not_energy = demand | (per_unit == "MMBtu") | (per_unit == "fraction")
                if not_energy.any():
                    demand = not_energy
                    i = int(np.argmax(demand))
                    raise _err("period and register readings are energy (Wh, kWh, MWh), not power", source,
                               int(lines[i]), cfg.unit_column)
                fac = per_row * cfg.multiplier
            quality = np.zeros(len(df), dtype=np.uint8)
            if cfg.quality_column:
                quality = _quality_per_row(df[cfg.quality_column].to_numpy(dtype=object), cfg.quality_map, lines,
                                           source, cfg.quality_column)
            kwh = value * fac
            for k, name in enumerate(names):
                sel = codes == k
                rows.append((name, starts[sel], ends[sel], kwh[sel], quality[sel], lines[sel]))
        else:
            vcols = list(cfg.value_columns) if cfg.value_columns is not None else \
                [c for c in read.header if c not in time_cols and c]
            self._require(read.header, vcols, cfg, source)
            if fixed is not None and len(vcols) != 1:
                raise _err(f"--channel {excerpt(fixed)} given but the file has {len(vcols)} value columns", source,
                           cfg.skip_rows + 1, "")
            df, lines = self._rows(read, time_cols + vcols, vcols)
            starts, ends, _ = self._period_bounds(df, read, lines)
            for c in vcols:
                col = df[c].to_numpy(dtype=np.float64)
                _refuse_infinite(col, lines, source, c)
                sel = ~np.isnan(col)
                name = fixed or cfg.channel_map.get(c, c)
                rows.append((name, starts[sel], ends[sel], col[sel] * factor, np.zeros(int(sel.sum()), np.uint8),
                             lines[sel]))
        if read.declared is not None or cfg.unit_column:
            rows = [self._period_in_channel_unit(r, cfg.unit_column or cfg.value_column, source) for r in rows]
        periods: dict[str, list[tuple[np.ndarray, ...]]] = {}
        dups = 0
        for name, st, en, v, q, ln in rows:
            if len(name) > MAX_CHANNEL_ID:
                raise _err(f"channel id {excerpt(name)} is {len(name)} characters long, more than "
                           f"{MAX_CHANNEL_ID}; map it to a shorter id (channel_map)", source, cfg.skip_rows + 1, "")
            order = np.lexsort((ln, en, st))
            st, en, v, q, ln = st[order], en[order], v[order], q[order], ln[order]
            same = (st[1:] == st[:-1]) & (en[1:] == en[:-1])
            if same.any():
                differ = same & ((v[1:] != v[:-1]) | (q[1:] != q[:-1]))
                if differ.any():
                    i = int(np.argmax(differ))
                    raise _err(f"reading {instant_text(int(st[i]))}..{instant_text(int(en[i]))} of channel "
                               f"{excerpt(name, 60)} appears again with a different value (first at line "
                               f"{int(ln[i])})", source, int(ln[i + 1]), "value")
                keep = np.concatenate(([True], ~same))
                dups += int(same.sum())
                st, en, v, q = st[keep], en[keep], v[keep], q[keep]
            periods.setdefault(name, []).append((st, en, v, q))
        kind = cfg.reading_kind
        batch_periods = [PeriodSeries(name, kind, *(np.concatenate([p[k] for p in parts]) for k in range(4)))
                         for name, parts in periods.items()]
        meta: dict[str, object] = {"adapter": TYPE_ID, "instance": self.instance_id, "profile": profile,
                                   "layout": layout, "reading_kind": kind, "duplicates": dups,
                                   "values": int(sum(len(p) for p in batch_periods))}
        return IntervalBatch(source=source, series=[], meta=meta, periods=batch_periods)

    def _period_in_channel_unit(self, row: tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
                                field: str, source: str) -> tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                                                  np.ndarray]:
        """A channel's period readings (read in kWh) in the channel's energy unit; a channel that is
        not energy (MMBtu, fraction, kW) cannot take declared energy readings."""
        name, st, en, kwh, q, ln = row
        unit = getattr(self.context.channels.get(name), "unit", None)
        if not unit or len(kwh) == 0:
            return row
        target = UNITS[unit.lower()]
        if target.dimension != "energy":
            raise _err(f"values in energy units, but channel {excerpt(name, 60)} is configured in {unit}: period "
                       "and register readings are energy (Wh, kWh, MWh); fix the column's unit or the channel's "
                       "`unit` in kwhub.toml", source, int(ln.min()), field)
        return name, st, en, kwh / target.factor, q, ln

    def _rows(self, read: _Read, use: list[str], floats: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
        """The file's rows (blank lines dropped) and their physical line numbers."""
        df = self._read_csv(read, use, floats)
        lines = read.all_lines(len(df))
        blank = df.isna().all(axis=1).to_numpy()
        if blank.any():
            df = df.loc[~blank]
            lines = lines[~blank]
        return df, lines

    # ---- rows -> series

    def _to_series(self, groups: list[_Group], cfg: CsvMeterConfig, source: str) -> tuple[list[ChannelSeries], int]:
        out: list[ChannelSeries] = []
        dups = 0
        ending = cfg.interval_convention == "ending" or bool(cfg.hour_ending_column)
        # channels whose groups hold the same instant and line arrays (the columns of a wide
        # file without gaps) with the same configured length share the work on the instants:
        # the order, the interval length, the starts and their checks are done once
        shared: dict[tuple[int, int, Any], tuple[Any, np.ndarray, int, np.ndarray, np.ndarray]] = {}
        for g in groups:
            spec = self.context.channels.get(g.name)
            key = (id(g.stamp), id(g.line), getattr(spec, "interval_minutes", None) or cfg.interval_minutes)
            got = shared.get(key) if g.minutes is None else None
            if got is None:
                got = self._instants(g, cfg, source, ending)
                if g.minutes is None:
                    shared[key] = got
            perm, line, minutes, starts, same = got

            def take(a: Any, perm: Any = perm) -> Any:
                return a[perm] if perm is not None and isinstance(a, np.ndarray) else a

            if g.units is not None and getattr(spec, "unit", None):
                kwh = _in_channel_unit(g.name, take(g.value), take(g.units), spec.unit, minutes, line, source,
                                       g.unit_field)
            else:  # unit not declared (values in the channel's unit) or channel unknown (to kWh)
                demand = take(g.demand)
                factor = take(g.factor)
                # (x * 1.0 is x, bit for bit: the copy is skipped)
                kwh = take(g.value) if isinstance(factor, float | int) and factor == 1 else take(g.value) * factor
                if isinstance(demand, np.ndarray):
                    kwh = kwh * np.where(demand, minutes / 60.0, 1.0)
                elif demand:
                    kwh = kwh * (minutes / 60.0)
            quality = take(g.quality) if g.quality is not None else np.zeros(len(kwh), dtype=np.uint8)
            series, n_dup = _dedupe(g.name, minutes, starts, kwh, quality, line, source, same)
            dups += n_dup
            out.append(series)
        return out, dups

    def _instants(self, g: _Group, cfg: CsvMeterConfig, source: str, ending: bool,
                  ) -> tuple[np.ndarray | None, np.ndarray, int, np.ndarray, np.ndarray]:
        """A group's instants in order: (the permutation or None, lines in that order, interval
        length, interval starts, where a start repeats the one before); raises on a start off
        the channel's grid."""
        stamp, line = g.stamp, g.line
        perm = None
        if len(stamp) > 1 and not bool(np.all(stamp[1:] > stamp[:-1])):
            perm = np.lexsort((line, stamp))  # by time, file order among repeats
            stamp, line = stamp[perm], line[perm]
        minutes = self._minutes_for(g.name, g.minutes[perm] if perm is not None and g.minutes is not None
                                    else g.minutes, stamp, line, cfg, source)
        step = minutes * 60
        starts = stamp - step if ending else stamp
        mis = starts % step != 0
        if mis.any():
            i = int(np.argmax(mis))
            ts = datetime.fromtimestamp(int(starts[i]), tz=zone("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")
            raise _err(f"interval start {ts} is not on the {minutes}-minute grid (misaligned start)",
                       source, int(line[i]), _stamp_field(cfg))
        return perm, line, minutes, starts, starts[1:] == starts[:-1]

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


def _meter_key(key: str, separator: str = ".") -> str:
    """``M-1.02`` and ``M-1.2`` are the same meter channel: a numeric last part loses its leading zeros."""
    head, sep, tail = key.rpartition(separator)
    return f"{head}{sep}{int(tail)}" if sep and tail.isdigit() else key


def meter_channel_ids(channels: dict[str, Any], separator: str = ".") -> dict[str, str]:
    """``{"<meter serial>.<meter channel>": channel id}`` of the configured channels.

    A channel with ``meter`` and ``meter_channel`` is found as ``SERIAL.N`` (a file keyed by
    meter serial and channel number); one with only ``meter`` as ``SERIAL`` when no other
    channel shares that meter.
    """
    out: dict[str, str] = {}
    serial_only: dict[str, list[str]] = {}
    for cid, spec in channels.items():
        serial = str(getattr(spec, "meter", "") or "").strip()
        if not serial:
            continue
        number = getattr(spec, "meter_channel", None)
        if number is not None:
            out[_meter_key(f"{serial}{separator}{number}", separator)] = cid
        serial_only.setdefault(serial, []).append(cid)
    for serial, ids in serial_only.items():
        if len(ids) == 1:
            out.setdefault(serial, ids[0])
    return out


def _pandas_reason(exc: Exception) -> str:
    """pandas' message without its own (record-counted) line number and trailing blank lines."""
    text = " ".join(str(exc).split())
    return text[:200]


def _stamp_field(cfg: CsvMeterConfig) -> str:
    return cfg.hour_ending_column or cfg.timestamp_column or "timestamp"


def _merge_names(names: list[str], codes: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Collapse codes whose mapped channel names coincide."""
    uniq, inverse = np.unique(np.asarray(names, dtype=object), return_inverse=True)
    if len(uniq) == len(names):
        return names, codes
    return [str(x) for x in uniq], inverse[codes]


def _unit_per_row(raw: np.ndarray, lines: np.ndarray, source: str,
                  field: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(factor to kWh or kW, is power, unit name) per row of a unit column."""
    codes, uniq = pd.factorize(raw, use_na_sentinel=True)
    if (codes < 0).any():
        i = int(np.argmax(codes < 0))
        raise _err("unit is empty", source, int(lines[i]), field)
    factors = np.zeros(len(uniq))
    demand = np.zeros(len(uniq), dtype=bool)
    names = np.empty(len(uniq), dtype=object)
    first = _first_rows(codes, len(uniq))
    for k, u in enumerate(uniq):  # once per distinct unit string
        key = str(u).strip().lower()
        if key not in UNIT_FACTORS:
            raise _err(f"unknown unit {excerpt(str(u))} (known: {KNOWN_TEXT})", source,
                       int(lines[first[k]]), field)
        factors[k], demand[k] = UNIT_FACTORS[key]
        names[k] = UNITS[key].name
    return factors[codes], demand[codes], names[codes]


def _in_channel_unit(name: str, value: np.ndarray, units: np.ndarray | str, channel_unit: str, minutes: int,
                     line: np.ndarray, source: str, field: str) -> np.ndarray:
    """Values declared in ``units`` (one name, or one per value) converted into the channel's unit.

    A unit that cannot be converted (MMBtu for a kWh channel, kWh for a fraction) is an error
    at the first line that carries it, naming the column and both units.
    """
    target = UNITS[channel_unit.lower()]
    per_value = isinstance(units, np.ndarray)
    out = np.empty(len(value)) if per_value else value
    for u in (pd.unique(units) if per_value else [units]):  # once per distinct unit
        factor = conversion(UNITS[str(u).lower()], target, minutes)
        sel = np.asarray(units == u) if per_value else np.ones(len(value), dtype=bool)
        if factor is None:
            i = int(np.argmin(np.where(sel, line, np.iinfo(np.int64).max)))
            raise _err(f"values in {u}, but channel {excerpt(name, 60)} is configured in {channel_unit} and {u} "
                       f"does not convert to {channel_unit}; fix the column's unit or the channel's `unit` in "
                       "kwhub.toml", source, int(line[i]), field)
        if per_value:
            out[sel] = value[sel] * factor
        else:
            out = value * factor
    return out


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
            raise _err(f"unknown quality flag {excerpt(str(q))} (add it to quality_map)", source,
                       int(lines[first[k]]), field)
        lut[k] = by_label[table[key]]
    return lut[np.where(codes < 0, len(uniq), codes)]


def _refuse_infinite(values: np.ndarray, lines: np.ndarray, source: str, field: str) -> None:
    """An infinite number (``inf``, ``1e999``) or one beyond any meter (``1e308``) is no reading:
    an error at its line."""
    bad = np.isinf(values)
    if bad.any():
        i = int(np.argmax(bad))
        raise _err(f"value {values[i]} is not a finite number", source, int(lines[i]), field)
    with np.errstate(invalid="ignore"):
        huge = np.abs(values) > ABSURD_RAW  # NaN (an empty cell) compares False
    if huge.any():
        i = int(np.argmax(huge))
        raise _err(f"value {float(values[i])!r} is beyond any meter (at most {ABSURD_RAW:.0e} in the file's unit); "
                   "the file is corrupt or the column is not an energy reading", source, int(lines[i]), field)


def _flags_per_row(raw: np.ndarray, lines: np.ndarray, source: str, field: str) -> np.ndarray:
    """A yes/no flag per row (Y/N, yes/no, 1/0, true/false, x or empty), once per distinct text."""
    codes, uniq = pd.factorize(raw, use_na_sentinel=True)
    lut = np.zeros(len(uniq) + 1, dtype=bool)  # last slot: empty cell -> no
    first = _first_rows(np.where(codes < 0, len(uniq), codes), len(uniq) + 1)
    for k, v in enumerate(uniq):
        key = str(v).strip().lower()
        if key in _FLAG_TRUE:
            lut[k] = True
        elif key not in _FLAG_FALSE:
            raise _err(f"DST flag {excerpt(str(v))} is not yes/no (Y/N, 1/0, true/false)", source,
                       int(lines[first[k]]), field)
    return lut[np.where(codes < 0, len(uniq), codes)]


def _check_channel_ids(names: list[str], codes: np.ndarray, lines: np.ndarray, source: str, field: str) -> None:
    """Channel ids longer than the store holds are an error at the first line that names one."""
    for k, name in enumerate(names):
        if len(name) > MAX_CHANNEL_ID:
            i = int(np.argmax(codes == k))
            raise _err(f"channel id {excerpt(name)} is {len(name)} characters long, more than the "
                       f"{MAX_CHANNEL_ID} a channel id may have; map it to a shorter id (channel_map)",
                       source, int(lines[i]), field)


def _dedupe(name: str, minutes: int, starts: np.ndarray, kwh: np.ndarray, quality: np.ndarray,
            line: np.ndarray, source: str, same: np.ndarray | None = None) -> tuple[ChannelSeries, int]:
    """``starts`` sorted (ties in file order): identical repeats collapse, conflicting ones fail.
    ``same``: where a start repeats the one before (given when known)."""
    s, v, q, ln = starts, kwh, quality, line
    if same is None:
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


def _cut(s: ChannelSeries, a: int, b: int) -> ChannelSeries:
    return ChannelSeries(channel_id=s.channel_id, interval_minutes=s.interval_minutes, starts=s.starts[a:b],
                         values=s.values[a:b], quality=s.quality[a:b])


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


@hookimpl(trylast=True)
def kwhub_sniff_meter_file(path: Path, head: bytes) -> str | None:
    """Claim CSV meter files: any ``.csv`` with a delimiter, so it asks last (a more specific
    sniffer of another plugin wins its files, whatever the plugin's name)."""
    return TYPE_ID if sniff_csv(path, head) else None


__all__ = [
    "CsvMeter", "CsvMeterConfig", "CsvProfile", "load_profiles", "detect_profile", "parse_timestamps",
    "parse_hour_ending", "read_header", "effective_config", "sniff_csv", "UNIT_FACTORS",
]
