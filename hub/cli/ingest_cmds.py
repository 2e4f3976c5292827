"""``kwhub ingest`` (files into the raw layer, then VEE) and ``kwhub readings`` (look at them)."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from kwhub.hub.cli.common import load as _load
from kwhub.hub.cli.common import open_db as _open_db
from kwhub.hub.cli.common import open_reader as _open_reader
from kwhub.hub.cli.errors import EXIT_CONFIG, UserError
from kwhub.hub.cli.options import format_option, output_format
from kwhub.hub.cli.output import cell, clean, console, echo, err_console, safe


def _build_adapter(cfg: Any, adapter: str, overrides: dict[str, Any]) -> Any:
    """An adapter instance from a configured instance id or a registered type id."""
    from pydantic import ValidationError

    from kwhub.core.adapters import MeterAdapter
    from kwhub.hub.registry import get_registry

    if adapter in cfg.adapters:
        inst = cfg.adapters[adapter]
        if overrides:
            merged = {**inst.config.model_dump(exclude_unset=True), **overrides}
            return inst.cls(inst.id, _validated(inst.cls, merged, adapter), cfg.context())
        return inst.build(cfg.context())
    registry = get_registry()
    if adapter not in registry.adapters:
        known_types = sorted(t for t, c in registry.adapters.items() if "file" in c.capabilities)
        raise UserError(f"no adapter instance or file adapter type named {adapter!r}",
                        hint=f"file adapter types: {', '.join(known_types)}; configured instances: "
                             f"{', '.join(sorted(cfg.adapters)) or 'none'}", exit_code=EXIT_CONFIG)
    cls = registry.adapter(adapter)
    if not issubclass(cls, MeterAdapter) or "file" not in cls.capabilities:
        raise UserError(f"adapter type {adapter!r} does not read files", exit_code=EXIT_CONFIG)
    try:
        return cls(adapter, _validated(cls, overrides, adapter), cfg.context())
    except ValidationError as exc:  # pragma: no cover - _validated raises first
        raise UserError(str(exc), exit_code=EXIT_CONFIG) from None


def _validated(cls: Any, data: dict[str, Any], name: str) -> Any:
    from pydantic import ValidationError

    try:
        return cls.Config.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise UserError(f"{name}: {problems}", exit_code=EXIT_CONFIG) from None


def _vee_counts(vee: dict[str, Any] | None) -> str:
    if not vee:
        return "-"
    flagged = estimated = 0
    rules = vee.get("rules", vee.get("per_rule", {}))
    if isinstance(rules, dict):
        for counts in rules.values():
            if isinstance(counts, dict):
                flagged += int(counts.get("flagged", 0))
                estimated += int(counts.get("estimated", 0))
    flagged = int(vee.get("flagged", flagged))
    estimated = int(vee.get("estimated", estimated))
    return f"{flagged} flag, {estimated} est"


def ingest(
    files: list[Path] = typer.Argument(..., help="Meter files to ingest (CSV, Green Button XML)."),
    adapter: str | None = typer.Option(None, "--adapter", "-a",
                                       help="Adapter instance id (kwhub.toml) or type (meters.csv, "
                                            "meters.greenbutton); default: detect from the file."),
    channel: str | None = typer.Option(None, "--channel", help="Channel id for a single-channel file."),
    config: Path | None = typer.Option(None, "--config", "-c", help="kwhub.toml (default: ./kwhub.toml or built-in)."),
    profile: str | None = typer.Option(None, "--profile", help="CSV profile (meters.csv only)."),
    timezone: str | None = typer.Option(None, "--timezone", help="Time zone of naive local timestamps."),
    vee: bool = typer.Option(True, "--vee/--no-vee", help="Validate the touched days after storing."),
    workers: int = typer.Option(0, "--workers", min=0,
                                help="Processes for a large CSV file: 2 = parse and VEE rules in a forked "
                                     "second process while this one writes (same result; see "
                                     "docs/meters-csv.md), 1 = one process; 0 = KWHUB_INGEST_WORKERS, else 2 "
                                     "(one on a 1-CPU machine)."),
    fmt: str = format_option("text", "json"),
) -> None:
    """Ingest meter files: interval data into the raw layer and period readings (daily, billing,
    register), one transaction per file, then run VEE on the touched days.

    A file is checked whole before anything is stored (the ingest limits of kwhub.toml, one
    cell per column, unambiguous local times); an error names the file, line and column, and
    nothing of that file is stored; an empty file is refused with what to check. The summary
    says what went where (the legend under the table explains each column), what VEE found,
    and which settled periods the new data made stale (with the command that settles them
    again).
    """
    cfg = _load(config)
    overrides = {k: v for k, v in (("profile", profile), ("timezone", timezone)) if v is not None}
    fmt = output_format(fmt, ("text", "json"))
    for f in files:
        if not f.exists():
            raise UserError(f"{f}: file not found")
        if not f.is_file():
            raise UserError(f"{f}: not a regular file (a directory, device or pipe); give meter files",
                            hint="to read a stream, save it to a file first")
    if len(files) == 1 and files[0].stat().st_size == 0:
        raise UserError(f"{files[0]}: the file is empty (0 bytes); nothing was stored", hint=EMPTY_HINT)
    db = _open_db(cfg)
    try:
        before = _stale_run_ids(db)
        reports, errors = _ingest_files(db, cfg, files, adapter, channel, overrides, vee, fmt, workers or None)
        made_stale = _made_stale(db, reports, before)
    finally:
        db.close()
    if fmt == "json":
        echo(json.dumps({"files": [r.as_dict() for r in reports], "errors": errors, "made_stale": made_stale},
                        default=str, indent=2))
    else:
        _print_ingest_table(reports)
        _print_made_stale(made_stale)
    if errors:
        raise UserError(f"{len(errors)} of {len(files)} file(s) rejected (nothing stored from them):\n  "
                        + "\n  ".join(errors))


EMPTY_HINT = "check the export or transfer that wrote it (an interrupted copy leaves an empty file), then ingest it again"


def _stale_run_ids(db: Any) -> set[str]:
    """Ids of the runs flagged stale now."""
    from sqlalchemy import select

    from kwhub.hub.store.settlement_tables import settlement_run_table as t

    with db.engine.connect() as conn:
        return {r[0] for r in conn.execute(select(t.c.id).where(t.c.stale.is_(True)))}


def _made_stale(db: Any, reports: list[Any], before: set[str]) -> list[dict[str, Any]]:
    """Settled runs whose inputs this ingest changed (raw or, through VEE, validated): flagged
    stale now and not before."""
    if not any(r.new_days or r.changed_days or r.stale or r.periods for r in reports):
        return []
    from kwhub.hub.settle.review import list_runs
    from kwhub.hub.settle.runs_read import refresh_stale

    ids = set(refresh_stale(db)) - before
    if not ids:
        return []
    return [{"run": r["id"], "contract": r["contract_id"], "period": r["period"], "version": r["version_kind"],
             "status": r["status"]} for r in list_runs(db) if r["id"] in ids]


def _print_made_stale(rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    echo("settled periods made stale (their input data changed); settle them again as a later version:")
    for r in rows:
        echo(f"  {r['contract']} {r['period']} ({r['version']}, run {r['run']}, {r['status']}): "
             f"kwhub settle --period {r['period']} --contract {r['contract']} --version final")


def _ingest_files(db: Any, cfg: Any, files: list[Path], adapter: str | None, channel: str | None,
                  overrides: dict[str, Any], vee: bool, fmt: str, workers: int | None = None,
                  ) -> tuple[list[Any], list[str]]:
    """Ingest ``files`` one by one; the reports and the errors of files that were rejected.

    (The progress bar is redrawn per file, not by rich's refresh thread: the ingest worker
    process is only forked while no other thread runs, see kwhub.hub.ingest.worker.)"""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from kwhub.core.intervals import IntervalDataError
    from kwhub.hub.ingest.batch import ingest_file, sniff_adapter
    from kwhub.hub.registry import get_registry

    reports: list[Any] = []
    errors: list[str] = []
    adapters: dict[str, Any] = {}
    with Progress(TextColumn("[bold]ingest"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                  TimeElapsedColumn(), console=err_console, transient=True, auto_refresh=False,
                  disable=fmt == "json" or not sys.stderr.isatty()) as progress:
        task = progress.add_task("", total=len(files))
        for f in files:
            progress.update(task, description=safe(f.name), refresh=True)
            if f.stat().st_size == 0:
                errors.append(f"{f}: the file is empty (0 bytes); {EMPTY_HINT}")
                progress.advance(task)
                continue
            name = adapter or sniff_adapter(f, get_registry(families=("meters", "core")))
            if name is None:
                errors.append(f"{f}: no meter adapter recognises this file; name its adapter with --adapter "
                              "(a configured instance id, or a type such as meters.csv; `kwhub plugins list` "
                              "shows the types)")
                progress.advance(task)
                continue
            if name not in adapters:
                adapters[name] = _build_adapter(cfg, name, overrides)
            try:
                reports.append(ingest_file(db, cfg.campus, adapters[name], f, channel,
                                           allow_new_channels=cfg.embedded_default, run_vee=vee,
                                           vee_config=cfg.vee or None, workers=workers))
            except IntervalDataError as exc:
                if len(files) == 1:
                    raise
                errors.append(str(exc))
            progress.advance(task)
    return reports, errors


def _periods_cell(r: Any) -> str:
    p = r.periods or {}
    if not p:
        return "-"
    return f"{p.get('new', 0)}/{p.get('changed', 0)}/{p.get('unchanged', 0)}"


INGEST_LEGEND = (
    "channels: channels with data in the file; intervals: interval readings read; new / changed / same: "
    "channel-days stored for the first time / restated (a new version; settled runs that used them become stale) / "
    "identical to what was stored; dups: repeated readings in the file (the last one kept); periods: period "
    "readings new/changed/same; VEE: intervals flagged and estimated by validation."
)


def _print_ingest_table(reports: list[Any]) -> None:
    table = Table(title="ingest", caption=INGEST_LEGEND, caption_justify="left")
    for col in ("file", "adapter", "channels", "intervals", "new", "changed", "same", "dups", "periods", "VEE"):
        table.add_column(col, justify="right" if col not in ("file", "adapter") else "left",
                         overflow="fold")
    for r in reports:
        channels = sorted(set(r.channels) | set(r.period_channels))
        table.add_row(cell(Path(r.source).name), cell(r.adapter), str(len(channels)), f"{r.intervals:,}",
                      str(r.new_days), str(r.changed_days), str(r.unchanged_days), str(r.duplicates),
                      cell(_periods_cell(r)),
                      cell(_vee_counts(r.vee) if r.vee is not None else (r.vee_note and "not run") or "-"))
    console.print(table)
    for r in reports:
        name = Path(r.source).name
        if r.period_channels:
            echo(f"{name}: period readings of {', '.join(r.period_channels)} stored "
                 "(see `kwhub readings CHANNEL --periods`)")
        for note in r.notes:
            echo(f"{name}: {note}")
        for m in (r.vee or {}).get("messages", []):
            days = m["first_day"] if m["days"] == 1 else f"{m['first_day']}..{m['last_day']} ({m['days']} days)"
            echo(f"{name}: VEE {m['rule']} on {m['channel']}, {days}: {m['message']}")
    created = sorted({c for r in reports for c in r.created_channels})
    if created:
        echo(f"added ad-hoc channel(s): {', '.join(created)}")


def _parse_instant(text: str, opt: str) -> int:
    from kwhub.core.interval_grid import day_start_epoch

    try:
        if len(text) == 10:
            return day_start_epoch(date.fromisoformat(text))
        ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"{opt} {text!r} is not a date (YYYY-MM-DD) or ISO timestamp", exit_code=EXIT_CONFIG) from None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return int(ts.timestamp())


def readings(
    channel: str | None = typer.Argument(None, help="Channel id."),
    start: str | None = typer.Option(None, "--start", help="First instant (YYYY-MM-DD or ISO, UTC)."),
    end: str | None = typer.Option(None, "--end", help="End instant, exclusive (default: start + 1 day; "
                                                       "with --periods: start + 366 days)."),
    layer: str = typer.Option("raw", "--layer", help="raw or validated (intervals)"),
    periods: bool = typer.Option(False, "--periods", help="Show the channel's period readings (daily, "
                                                          "billing-period, register) instead of intervals."),
    fmt: str = format_option("text", "json", "csv"),
    summary: bool = typer.Option(False, "--summary", help="Per channel: intervals, first/last and total in the "
                                                          "channel's unit (grouped by unit), and the period "
                                                          "readings stored."),
    config: Path | None = typer.Option(None, "--config", "-c", help="kwhub.toml"),
    from_parquet: Path | None = typer.Option(None, "--from-parquet", help="Read the validated intervals from a "
                                             "`kwhub export --format parquet` folder instead of the database."),
) -> None:
    """Print stored intervals with quality flags (and the rule that set them), or period readings.

    Interval data: `kwhub readings hall_a.load --start 2026-10-01 --end 2026-10-02`.
    Period readings (daily reads of 23/24/25-hour days, billing periods, register reads):
    `kwhub readings grid.import --periods --start 2026-01-01`. All channels: `--summary`.
    Closed periods exported to Parquet: `kwhub readings hall_a.load --from-parquet DIR --start ...`
    (validated layer; the same rows as from the database).
    """
    from kwhub.core.interval_grid import SECONDS_PER_DAY

    fmt = output_format(fmt, ("text", "json", "csv"))
    if layer not in ("raw", "validated"):
        raise UserError(f"--layer must be raw or validated, not {layer!r}", exit_code=EXIT_CONFIG)
    if from_parquet is not None:
        _readings_from_parquet(from_parquet, channel, start, end, layer, periods, summary, fmt)
        return
    cfg = _load(config, plugins=False)  # reads only: no plugin imported
    if summary:
        from kwhub.hub.store.plain_read import interval_totals, period_totals, reading

        with reading(_open_reader(cfg)) as reader:
            items, period_items = interval_totals(reader, layer), period_totals(reader)
        _print_summary(items, period_items, layer, fmt, {c.id: c.unit for c in cfg.campus.channels})
        return
    if channel is None:
        raise UserError("give a CHANNEL (or --summary)", exit_code=EXIT_CONFIG)
    if start is None:
        raise UserError("--start is required with a CHANNEL", exit_code=EXIT_CONFIG)
    t0 = _parse_instant(start, "--start")
    t1 = _parse_instant(end, "--end") if end else t0 + SECONDS_PER_DAY * (366 if periods else 1)
    if t1 <= t0:
        raise UserError("--end must be after --start", exit_code=EXIT_CONFIG)
    if periods:
        with _open_db(cfg, read_only=True, migrate=False) as db:
            _check_channel(cfg, channel, lambda: set(db.intervals.channels("raw")) |
                           set(db.intervals.channels("validated")) | {p.channel_id for p in db.periods.summary()})
            found = db.periods.read([channel], t0, t1)
        _print_periods(channel, found, t0, t1, fmt)
        return
    from kwhub.hub.store.plain_read import day_blocks, interval_channels, period_totals, reading

    first = datetime.fromtimestamp(t0, tz=UTC).date()
    last = datetime.fromtimestamp(t1 - 1, tz=UTC).date()
    with reading(_open_reader(cfg)) as reader:
        _check_channel(cfg, channel, lambda: set(interval_channels(reader, "raw")) |
                       set(interval_channels(reader, "validated")) | {p.channel_id for p in period_totals(reader)})
        blocks = day_blocks(reader, channel, first, last, layer)
    spec = next((c for c in cfg.campus.channels if c.id == channel), None)
    value_col = spec.unit.lower() if spec is not None else "kwh"  # named by its unit: ingests back as it is
    _emit_rows(channel, layer, _rows(blocks, t0, t1), fmt, t0, t1, value_col)


def _readings_from_parquet(root: Path, channel: str | None, start: str | None, end: str | None, layer: str,
                           periods: bool, summary: bool, fmt: str) -> None:
    """``readings --from-parquet``: one channel's exported validated intervals, printed as from the store."""
    import numpy as np

    from kwhub.core.intervals import SECONDS_PER_DAY
    from kwhub.core.quality import QUALITY_LABELS, Quality
    from kwhub.hub.export.parquet import ExportError, read_intervals

    if periods or summary:
        raise UserError("--from-parquet reads interval data only (not --periods or --summary)", exit_code=EXIT_CONFIG)
    if layer != "validated":
        raise UserError("a Parquet export holds the validated layer only", hint="add --layer validated",
                        exit_code=EXIT_CONFIG)
    if channel is None or start is None:
        raise UserError("give a CHANNEL and --start with --from-parquet", exit_code=EXIT_CONFIG)
    t0 = _parse_instant(start, "--start")
    t1 = _parse_instant(end, "--end") if end else t0 + SECONDS_PER_DAY
    if t1 <= t0:
        raise UserError("--end must be after --start", exit_code=EXIT_CONFIG)
    try:
        got = read_intervals(root, channel, t0, t1)
    except ExportError as exc:
        raise UserError(str(exc), exit_code=EXIT_CONFIG) from None
    keep = ~np.isnan(got.kwh) | (got.quality != Quality.MISSING) | np.array([bool(r) for r in got.rule], dtype=bool)
    rows = []
    for i in np.flatnonzero(keep):  # output rows: bounded by what is printed
        v = float(got.kwh[i])
        q = int(got.quality[i])
        rows.append({
            "interval_start": datetime.fromtimestamp(int(got.starts[i]), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "interval_minutes": int(got.interval_minutes[i]),
            "kwh": None if np.isnan(v) else v,
            "quality": QUALITY_LABELS.get(q, str(q)),
            "rule": got.rule[i] or "",
        })
    _emit_rows(channel, layer, rows, fmt, t0, t1)


def _emit_rows(channel: str, layer: str, rows: list[dict[str, Any]], fmt: str, t0: int, t1: int,
               value_col: str = "kwh") -> None:
    """Interval rows of [t0, t1) as text, CSV or JSON on stdout (an empty range says so on stderr).

    The CSV value column is named by the channel's unit (``kwh``, ``mmbtu``, ``fraction``), so
    the export ingests back into the same channel."""
    if fmt == "json":
        echo(json.dumps({"channel": channel, "layer": layer, "intervals": rows}, indent=2))
        return
    header = ["channel_id", "interval_start", "interval_minutes", value_col, "quality", "rule"]
    body = [[clean(channel), r["interval_start"], r["interval_minutes"], "" if r["kwh"] is None else repr(r["kwh"]),
             r["quality"], clean(r["rule"])] for r in rows]
    _print_rows(header, body, fmt)
    if not rows:
        echo(f"no {layer} intervals of {channel} in [{_iso_utc(t0)}, {_iso_utc(t1)}); "
             "`kwhub readings --summary` shows what each channel holds", err=True)


def _print_rows(header: list[str], rows: list[list[Any]], fmt: str) -> None:
    """Rows as CSV, or (text) as aligned columns."""
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
        echo(buf.getvalue(), nl=False)
        return
    cells = [header] + [[str(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    echo("\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells))


def _check_channel(cfg: Any, channel: str, stored_channels: Callable[[], set[str]]) -> None:
    """An unknown channel is an error that names the known ones (not an empty answer);
    ``stored_channels`` gives the channels with intervals or period readings in the store."""
    known = {c.id for c in cfg.campus.channels}
    if channel in known:
        return
    stored = stored_channels()
    if channel in stored:
        return
    everything = sorted(known | stored)
    shown = ", ".join(everything[:20]) + (f" ... ({len(everything)} in all)" if len(everything) > 20 else "")
    raise UserError(f"unknown channel {channel!r}: not in {cfg.source} and nothing stored for it",
                    hint=f"known channels: {shown or 'none yet (ingest a meter file first)'}; "
                         "`kwhub readings --summary` lists the channels with data")


def _iso_utc(epoch: int) -> str:
    return datetime.fromtimestamp(int(epoch), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _print_periods(channel: str, found: list[Any], t0: int, t1: int, fmt: str) -> None:
    """Period readings overlapping [t0, t1): start, end, hours, kind, kWh, quality (text, CSV or JSON)."""
    from kwhub.core.quality import QUALITY_LABELS

    rows = []
    for p in found:
        for a, b, v, q in zip(p.starts.tolist(), p.ends.tolist(), p.values.tolist(), p.quality.tolist(), strict=True):
            if a >= t1 or (b <= t0 if b > a else b < t0):  # outside [t0, t1); a register read is an instant
                continue
            rows.append({"kind": p.kind, "start": _iso_utc(a), "end": _iso_utc(b), "hours": round((b - a) / 3600, 4),
                         "kwh": v, "quality": QUALITY_LABELS.get(int(q), str(q))})
    rows.sort(key=lambda r: (r["start"], r["end"], r["kind"]))
    if fmt == "json":
        echo(json.dumps({"channel": channel, "period_readings": rows}, indent=2))
        return
    _print_rows(["channel_id", "kind", "start", "end", "hours", "kwh", "quality"],
                [[clean(channel), r["kind"], r["start"], r["end"], r["hours"], repr(r["kwh"]), r["quality"]]
                 for r in rows], fmt)


def _rows(blocks: list[Any], t0: int, t1: int) -> list[dict[str, Any]]:
    """Slots of the blocks inside [t0, t1) that hold a value or a flag (vectorised per day)."""
    import numpy as np

    from kwhub.core.intervals import day_start_epoch
    from kwhub.core.quality import QUALITY_LABELS, Quality

    out: list[dict[str, Any]] = []
    for b in sorted(blocks, key=lambda x: x.day):
        step = b.interval_minutes * 60
        starts = day_start_epoch(b.day) + step * np.arange(len(b.values), dtype=np.int64)
        rule_ids = b.rule_ids if b.rule_ids is not None else np.zeros(len(b.values), dtype=np.uint8)
        keep = (starts >= t0) & (starts < t1) & (~np.isnan(b.values) | (b.quality != Quality.MISSING) | (rule_ids > 0))
        for i in np.flatnonzero(keep):  # output rows: bounded by what is printed
            rid = int(rule_ids[i])
            v = float(b.values[i])
            out.append({
                "interval_start": datetime.fromtimestamp(int(starts[i]), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "interval_minutes": b.interval_minutes,
                "kwh": None if np.isnan(v) else v,
                "quality": QUALITY_LABELS.get(int(b.quality[i]), str(int(b.quality[i]))),
                "rule": b.rule_names[rid - 1] if 0 < rid <= len(b.rule_names) else "",
            })
    return out


def _print_summary(items: list[Any], period_items: list[Any], layer: str, fmt: str, units: dict[str, str]) -> None:
    """Stored readings per channel, grouped by the channel's unit (kWh, MMBtu, fraction ...).

    ``units`` maps configured channels to their unit; a channel kwhub.toml does not list is
    shown under ``not configured``. Totals are never added across units.
    """
    from numbers import Integral  # numpy's integers are Integral: no numpy import for a summary

    def iso(x: Any) -> str:
        if x is None:
            return ""
        if isinstance(x, Integral):
            return datetime.fromtimestamp(int(x), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if isinstance(x, datetime):
            return (x if x.tzinfo else x.replace(tzinfo=UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return str(x)

    data = [{"channel_id": s.channel_id, "unit": units.get(s.channel_id, UNCONFIGURED),
             "intervals": int(s.intervals), "first_start": iso(s.first_start),
             "last_end": iso(s.last_end), "total": float(s.total_kwh)} for s in items]
    for d in data:  # the key earlier versions wrote, kept where the values are kWh
        if d["unit"] in ("kWh", UNCONFIGURED):
            d["total_kwh"] = d["total"]
    by_unit: dict[str, list[dict[str, Any]]] = {}
    for d in data:
        by_unit.setdefault(d["unit"], []).append(d)
    pdata = [{"channel_id": p.channel_id, "kind": p.kind, "readings": p.readings, "first_start": iso(p.first_start),
              "last_end": iso(p.last_end)} for p in period_items]
    if fmt == "json":
        totals = {u: {"channels": len(rows), "intervals": sum(r["intervals"] for r in rows),
                      "total": sum(r["total"] for r in rows)} for u, rows in by_unit.items()}
        echo(json.dumps({"layer": layer, "channels": data, "by_unit": totals, "period_readings": pdata}, indent=2))
        return
    if fmt == "csv":  # the interval channels, with their unit (period readings: --format json)
        cols = ["channel_id", "unit", "intervals", "first_start", "last_end", "total"]
        _print_rows(cols, [[clean(d[c]) for c in cols] for d in data], fmt)
        return
    for unit, rows in by_unit.items():
        shown = "value (unit unknown)" if unit == UNCONFIGURED else unit
        table = Table(title=cell(f"readings ({layer}) in {unit}"))
        for col in ("channel", "intervals", "first interval start", "last interval end", f"total {shown}"):
            table.add_column(cell(col), justify="left" if col == "channel" else "right")
        for d in rows:
            table.add_row(cell(d["channel_id"]), f"{d['intervals']:,}", d["first_start"], d["last_end"],
                          f"{d['total']:,.3f}")
        if len(rows) > 1:
            table.add_row(cell("all", "bold"), f"{sum(r['intervals'] for r in rows):,}", "", "",
                          f"{sum(r['total'] for r in rows):,.3f}")
        console.print(table)
    if pdata:
        pt = Table(title="period readings (kwhub readings CHANNEL --periods --start ...)")
        for col in ("channel", "kind", "readings", "first start", "last end"):
            pt.add_column(col, justify="left" if col in ("channel", "kind") else "right")
        for d in pdata:
            pt.add_row(cell(d["channel_id"]), cell(d["kind"]), f"{d['readings']:,}", d["first_start"], d["last_end"])
        console.print(pt)


UNCONFIGURED = "not configured"


def register(app: typer.Typer) -> None:
    """Add ``ingest`` and ``readings`` to the kwhub app."""
    app.command("ingest")(ingest)
    app.command("readings")(readings)


__all__ = ["register", "ingest", "readings"]
