"""Closed billing periods to Parquet, and the intervals read back.

A period is *closed* for a campus when every contract has a settled (``issued`` or
``no_change``) run of version ``final`` or ``true_up``. :func:`export_period` writes two
datasets under ``out``, partitioned hive-style by campus and month::

    out/intervals/campus=<name>/month=<YYYY-MM>/part-0.parquet
    out/allocations/campus=<name>/month=<YYYY-MM>/part-0.parquet

``intervals``: every slot of the current validated day versions of the campus channels
inside the period's UTC span (``kwh`` null where missing), with the day version and its
content hash for lineage. ``allocations``: the per-interval tenant x source split of each
contract's closing run (its frozen ``run_allocation`` rows). Exporting the same period
again rewrites the same files with the same rows.

:func:`read_intervals` reads the ``intervals`` dataset back (one channel over a UTC range),
with the values, qualities and rule names exactly as stored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kwhub.core.allocation import unpack_array
from kwhub.core.intervals import day_start_epoch
from kwhub.core.timeline import Span, billing_period
from kwhub.core.versions import SETTLED, kind_order

if TYPE_CHECKING:
    from kwhub.core.campus import Campus
    from kwhub.hub.store import Database

CLOSING_KINDS = ("final", "true_up")
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
PART = "part-0.parquet"


class ExportError(ValueError):
    """The export cannot run as asked; the message says what to do."""


class PeriodNotClosedError(ExportError):
    """A contract of the period has no settled final (or true-up) run yet."""


@dataclass
class ExportReport:
    """What :func:`export_period` wrote."""

    campus: str
    period: str
    interval_rows: int = 0
    allocation_rows: int = 0
    runs: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly summary."""
        return {"campus": self.campus, "period": self.period, "interval_rows": self.interval_rows,
                "allocation_rows": self.allocation_rows, "runs": self.runs, "files": self.files}


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - depends on the installed extras
        raise ExportError("Parquet needs pyarrow: pip install 'kwhub[parquet]'") from None
    return pa, pq


def partition_value(name: str) -> str:
    """``name`` as a hive partition value (letters, digits, ``.``, ``_``, ``-``)."""
    value = _SAFE.sub("_", name.strip()).strip("_")
    if not value:
        raise ExportError(f"campus name {name!r} has no letters or digits; give --campus NAME")
    return value


def closing_runs(db: Database, campus: Campus, period: str) -> dict[str, str]:
    """``contract id -> run id`` of each contract's latest settled final/true-up run of ``period``.

    :class:`PeriodNotClosedError` naming the contracts that are still open and what to do.
    """
    from kwhub.hub.settle.runs_read import existing_runs

    closing: dict[str, str] = {}
    open_: list[str] = []
    for c in campus.contracts:
        runs = [r for r in existing_runs(db, c.id, period)
                if r["version_kind"] in CLOSING_KINDS and r["status"] in SETTLED]
        if not runs:
            open_.append(c.id)
            continue
        closing[c.id] = max(runs, key=lambda r: (kind_order(r["version_kind"]), int(r["seq"])))["id"]
    if not campus.contracts:
        raise ExportError("the configuration has no contracts, so no period can be closed")
    if open_:
        raise PeriodNotClosedError(
            f"period {period} is not closed: {', '.join(open_)} {'has' if len(open_) == 1 else 'have'} no "
            f"settled final run; settle it with `kwhub settle --period {period} --version final` (approve any "
            "held run with `kwhub runs approve RUN --reason ...`), then export again")
    return closing


def period_span(campus: Campus, period: str) -> Span:
    """The UTC span covering the billing period ``period`` of every contract of ``campus``."""
    spans = [billing_period(period, c.timezone or campus.timezone).span for c in campus.contracts]
    return Span(min(s.start for s in spans), max(s.end for s in spans))


def _interval_table(db: Database, campus: Campus, span: Span, pa: Any) -> Any:
    """Every slot of the current validated days of the campus channels inside ``span``."""
    first, last = span.utc_days()[0], span.utc_days()[-1]
    s0, s1 = span.start_epoch, span.end_epoch
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("channel_id", "interval_start", "interval_minutes", "kwh",
                                                         "quality", "rule", "day_version", "content_hash")}
    for ch in sorted(c.id for c in campus.channels):
        blocks = db.intervals.read_blocks(ch, first, last, layer="validated")
        for b in blocks:  # one step per stored day; the slots are arrays
            n = len(b.values)
            step = b.interval_minutes * 60
            starts = day_start_epoch(b.day) + step * np.arange(n, dtype=np.int64)
            keep = (starts >= s0) & (starts < s1)
            k = int(np.count_nonzero(keep))
            if not k:
                continue
            names = np.array(["", *b.rule_names], dtype=object)
            rids = b.rule_ids if b.rule_ids is not None else np.zeros(n, dtype=np.uint8)
            cols["channel_id"].append(np.full(k, ch, dtype=object))
            cols["interval_start"].append(starts[keep])
            cols["interval_minutes"].append(np.full(k, b.interval_minutes, dtype=np.int16))
            cols["kwh"].append(b.values[keep])
            cols["quality"].append(b.quality[keep])
            cols["rule"].append(names[rids[keep]])
            cols["day_version"].append(np.full(k, b.version, dtype=np.int32))
            cols["content_hash"].append(np.full(k, b.content_hash(), dtype=object))
    joined = {k: (np.concatenate(v) if v else np.zeros(0, dtype=_EMPTY[k])) for k, v in cols.items()}
    kwh = joined["kwh"].astype(np.float64)
    return pa.table({
        "channel_id": pa.array(joined["channel_id"], pa.string()),
        "interval_start": pa.array(joined["interval_start"].astype("datetime64[s]"), pa.timestamp("s", tz="UTC")),
        "interval_minutes": pa.array(joined["interval_minutes"], pa.int16()),
        "kwh": pa.array(kwh, pa.float64(), mask=np.isnan(kwh)),
        "quality": pa.array(joined["quality"], pa.uint8()),
        "rule": pa.array(joined["rule"], pa.string()),
        "day_version": pa.array(joined["day_version"], pa.int32()),
        "content_hash": pa.array(joined["content_hash"], pa.string()),
    })


_EMPTY = {"channel_id": object, "interval_start": np.int64, "interval_minutes": np.int16, "kwh": np.float64,
          "quality": np.uint8, "rule": object, "day_version": np.int32, "content_hash": object}


def _allocation_table(db: Database, closing: dict[str, str], pa: Any) -> Any:
    """The per-interval split of each closing run (runs without an allocation add no rows)."""
    from kwhub.hub.settle.runs_read import get_run, run_allocation

    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("run_id", "contract_id", "tenant", "source",
                                                          "interval_start", "interval_minutes", "kwh")}
    for contract_id, run_id in sorted(closing.items()):
        rows = run_allocation(db, run_id)
        if not rows:
            continue
        span = json.loads(get_run(db, run_id)["statement"])["span"]
        start = int(datetime.fromisoformat(span["start"]).timestamp())
        minutes = int(span["interval_minutes"])
        for r in rows:
            kwh = unpack_array(bytes(r["blob"]))
            n = len(kwh)
            for key, val in (("run_id", run_id), ("contract_id", contract_id), ("tenant", r["tenant"]),
                             ("source", r["source"])):
                parts[key].append(np.full(n, val, dtype=object))
            parts["interval_start"].append(start + minutes * 60 * np.arange(n, dtype=np.int64))
            parts["interval_minutes"].append(np.full(n, minutes, dtype=np.int16))
            parts["kwh"].append(kwh)
    j = {k: (np.concatenate(v) if v else np.zeros(0, dtype=np.int64 if k == "interval_start" else
                                                  np.int16 if k == "interval_minutes" else
                                                  np.float64 if k == "kwh" else object))
         for k, v in parts.items()}
    return pa.table({
        "run_id": pa.array(j["run_id"], pa.string()),
        "contract_id": pa.array(j["contract_id"], pa.string()),
        "tenant": pa.array(j["tenant"], pa.string()),
        "source": pa.array(j["source"], pa.string()),
        "interval_start": pa.array(j["interval_start"].astype("datetime64[s]"), pa.timestamp("s", tz="UTC")),
        "interval_minutes": pa.array(j["interval_minutes"], pa.int16()),
        "kwh": pa.array(j["kwh"], pa.float64()),
    })


def export_period(db: Database, campus: Campus, period: str, out: Path | str, campus_name: str) -> ExportReport:
    """Write the closed ``period`` of ``campus`` under ``out`` (see module docs).

    :class:`PeriodNotClosedError` when a contract has no settled final run of the period.
    """
    pa, pq = _pyarrow()
    try:
        billing_period(period, "UTC")
    except ValueError as exc:
        raise ExportError(f"{exc}; give the period as YYYY-MM, e.g. --period 2026-10") from None
    name = partition_value(campus_name)
    closing = closing_runs(db, campus, period)
    report = ExportReport(campus=name, period=period, runs=[closing[c] for c in sorted(closing)])
    tables = {"intervals": _interval_table(db, campus, period_span(campus, period), pa),
              "allocations": _allocation_table(db, closing, pa)}
    for dataset, table in tables.items():
        folder = Path(out) / dataset / f"campus={name}" / f"month={period}"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / PART
        tmp = folder / (PART + ".tmp")
        pq.write_table(table, tmp, compression="zstd")
        tmp.replace(target)  # a reader never sees half a file
        report.files.append(str(target))
    report.interval_rows = tables["intervals"].num_rows
    report.allocation_rows = tables["allocations"].num_rows
    return report


@dataclass
class ParquetIntervals:
    """One channel's exported slots, in time order (``kwh`` NaN where missing)."""

    channel_id: str
    starts: np.ndarray  # int64 epoch seconds
    interval_minutes: np.ndarray  # int16
    kwh: np.ndarray  # float64
    quality: np.ndarray  # uint8
    rule: list[str]


def read_intervals(root: Path | str, channel_id: str, start_epoch: int, end_epoch: int,
                   campuses: Sequence[str] | None = None) -> ParquetIntervals:
    """The exported slots of ``channel_id`` in ``[start_epoch, end_epoch)`` from an export folder.

    ``root`` is the folder given to ``kwhub export --out`` (or its ``intervals`` dataset).
    """
    pa, _ = _pyarrow()
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    base = Path(root)
    if (base / "intervals").is_dir():
        base = base / "intervals"
    if not base.is_dir():
        raise ExportError(f"{root}: no Parquet export here (expected the folder given to `kwhub export --out`)")
    data = ds.dataset(str(base), format="parquet", partitioning="hive")
    lo = pa.scalar(datetime.fromtimestamp(int(start_epoch), tz=UTC), pa.timestamp("s", tz="UTC"))
    hi = pa.scalar(datetime.fromtimestamp(int(end_epoch), tz=UTC), pa.timestamp("s", tz="UTC"))
    cond = (pc.field("channel_id") == channel_id) & (pc.field("interval_start") >= lo) & (pc.field("interval_start") < hi)
    if campuses:
        cond = cond & pc.field("campus").isin([partition_value(c) for c in campuses])
    table = data.to_table(filter=cond, columns=["interval_start", "interval_minutes", "kwh", "quality", "rule"])
    table = table.sort_by("interval_start")
    starts = table.column("interval_start").cast(pa.timestamp("s", tz="UTC")).cast(pa.int64()).to_numpy()
    kwh = table.column("kwh").to_numpy(zero_copy_only=False)
    return ParquetIntervals(channel_id=channel_id, starts=np.asarray(starts, dtype=np.int64),
                            interval_minutes=np.asarray(table.column("interval_minutes").to_numpy(), dtype=np.int16),
                            kwh=np.asarray(kwh, dtype=np.float64),
                            quality=np.asarray(table.column("quality").to_numpy(), dtype=np.uint8),
                            rule=table.column("rule").to_pylist())
