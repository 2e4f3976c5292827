"""kwhub-acme: reads Acme meter exports
into kwhub interval data.

Acme exports are CSV files with a marker line first::

    ACME-EXPORT v1
    meter,interval_end,kwh
    m1,2026-10-01T00:15:00-04:00,12.5

``interval_end`` is ISO 8601 with a UTC offset (or ``Z``) and ends an interval of
``interval_minutes``; ``kwh`` is the energy in that interval. Each meter becomes the channel
``<channel_prefix><meter>`` (``acme.m1``). Example instance in ``kwhub.toml``::

    [[adapters]]
    type = "meters.acme"
    id = "acme_meters"
    [adapters.config]
    interval_minutes = 15
    inbox = "acme-inbox"
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from kwhub import (
    AdapterConfig,
    ChannelSeries,
    CheckResult,
    FailureKind,
    IntervalBatch,
    IntervalDataError,
    MeterAdapter,
    hookimpl,
)
from kwhub.core.intervals import ALLOWED_INTERVAL_MINUTES

MARKER = b"ACME-EXPORT"
COLUMNS = ("meter", "interval_end", "kwh")
FIRST_DATA_LINE = 3  # line 1 is the marker, line 2 the header


class AcmeConfig(AdapterConfig):
    """Settings of one ``meters.acme`` instance (unknown keys are refused)."""

    interval_minutes: int = 15
    channel_prefix: str = "acme."
    # where the exports land, relative to kwhub.toml; check() looks at it
    inbox: str = "acme-inbox"


class AcmeMeter(MeterAdapter):
    """Acme meter exports.

    CSV with a ACME-EXPORT marker line.
    """

    type_id: ClassVar[str] = "meters.acme"
    title: ClassVar[str] = "Acme meter exports"
    capabilities: ClassVar[frozenset[str]] = frozenset({"file"})
    Config = AcmeConfig
    config: AcmeConfig

    def check(self) -> CheckResult:
        """The inbox folder exists and can be read."""
        inbox = self.context.work_dir / self.config.inbox
        if not inbox.is_dir():
            return CheckResult.failure(FailureKind.CONFIGURATION,
                                       f"inbox {inbox} is not a folder; create it or set inbox")
        try:
            files = sum(1 for _ in inbox.iterdir())
        except OSError as exc:
            return CheckResult.failure(FailureKind.CONFIGURATION, f"cannot read {inbox}: {exc.strerror}")
        return CheckResult.success(f"{inbox} readable ({files} files)", files=files)

    def sniff(self, path: Path, head: bytes) -> bool:
        return head.startswith(MARKER)

    def read_file(self, path: Path, channel: str | None = None) -> IntervalBatch:
        """Parse the whole file (vectorised) or raise ``IntervalDataError`` naming line and field."""
        source = str(path)
        minutes = self.config.interval_minutes
        if minutes not in ALLOWED_INTERVAL_MINUTES:
            raise IntervalDataError(f"interval_minutes {minutes} is not one of {ALLOWED_INTERVAL_MINUTES}",
                                    source=source, field="interval_minutes")
        with Path(path).open("rb") as fh:
            if not fh.readline().startswith(MARKER):
                raise IntervalDataError(
                    f"not a Acme export: "
                    f"the first line must start with {MARKER.decode()}",
                    source=source, where="line 1")
        try:
            df = pd.read_csv(path, skiprows=1, dtype=str, keep_default_na=False, skip_blank_lines=False,
                             encoding="utf-8")
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise IntervalDataError(f"unreadable CSV: {exc}", source=source) from None
        for column in COLUMNS:
            if column not in df.columns:
                raise IntervalDataError(f"column {column!r} is missing", source=source, where="line 2", field=column)
        blank = (df[list(COLUMNS)].apply(lambda col: col.str.strip()) == "").all(axis=1).to_numpy()
        lines = np.arange(len(df)) + FIRST_DATA_LINE  # file line of every row, blank ones included
        df, lines = df[~blank], lines[~blank]
        text = df["interval_end"].str.strip()
        ends = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
        has_offset = text.str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", regex=True).to_numpy(dtype=bool)
        _first_bad(ends.isna().to_numpy() | ~has_offset, df["interval_end"], lines,
                   "not an ISO 8601 time with a UTC offset", source, "interval_end")
        kwh = pd.to_numeric(df["kwh"].str.strip(), errors="coerce").to_numpy(np.float64)
        _first_bad(~np.isfinite(kwh), df["kwh"], lines, "not a number", source, "kwh")
        step = minutes * 60
        starts = ((ends - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(np.int64) - step
        _first_bad(starts % step != 0, df["interval_end"], lines, f"does not end a {minutes}-minute interval",
                   source, "interval_end")
        meters = df["meter"].str.strip().to_numpy(dtype=str)
        _first_bad(meters == "", df["meter"], lines, "no meter name", source, "meter")
        repeated = pd.DataFrame({"meter": meters, "start": starts}).duplicated().to_numpy()
        _first_bad(repeated, df["interval_end"], lines, "this meter's interval appears twice", source, "interval_end")
        names = sorted(set(meters.tolist()))
        if channel is not None and len(names) > 1:
            raise IntervalDataError(f"--channel {channel} names one channel, the file holds meters {names}",
                                    source=source, field="meter")
        series = []
        for meter, rows in pd.Series(np.arange(len(meters))).groupby(meters).groups.items():
            idx = np.asarray(rows, dtype=np.intp)
            series.append(ChannelSeries(channel or f"{self.config.channel_prefix}{meter}", minutes, starts[idx],
                                        kwh[idx], np.zeros(len(idx), dtype=np.uint8)))
        meta: dict[str, Any] = {"adapter": self.type_id, "instance": self.instance_id, "meters": names}
        return IntervalBatch(source=source, series=series, meta=meta)


def _first_bad(bad: np.ndarray, raw: pd.Series, lines: np.ndarray, what: str, source: str, field: str) -> None:
    """Raise for the first row flagged in ``bad``, naming its file line and the field."""
    if bad.any():
        i = int(np.argmax(bad))
        raise IntervalDataError(f"{raw.iloc[i]!r}: {what}", source=source, where=f"line {lines[i]}", field=field)


@hookimpl
def kwhub_register_meter_adapters(register: Any) -> None:
    """Register the adapter type meters.acme."""
    register(AcmeMeter)


@hookimpl
def kwhub_sniff_meter_file(path: Path, head: bytes) -> str | None:
    """Claim Acme exports for ``kwhub ingest FILE`` without ``--adapter``."""
    return AcmeMeter.type_id if head.startswith(MARKER) else None
