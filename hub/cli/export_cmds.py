"""``kwhub export``: closed billing periods to Parquet for analytics and archive."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from kwhub.hub.cli.common import load as _load
from kwhub.hub.cli.common import open_db as _open_db
from kwhub.hub.cli.errors import EXIT_CONFIG, EXIT_FAILED, UserError
from kwhub.hub.cli.options import config_option, json_alias
from kwhub.hub.cli.output import echo, safe


def export_command(
    period: str = typer.Option(..., "--period", help="Billing period YYYY-MM; every contract must have a settled "
                                                     "final (or true-up) run of it."),
    fmt: str = typer.Option("parquet", "--format", help="parquet (the only format)."),
    out: Path = typer.Option(Path("export"), "--out", help="Folder of the datasets (created; files of the same "
                                                           "campus and month are replaced)."),
    campus: str = typer.Option(None, "--campus", help="Campus partition name (default: the hub name in kwhub.toml)."),
    as_json: bool = json_alias(),
    config: Path = config_option(),
) -> None:
    """Write a closed period's validated intervals and run allocations as Parquet.

    Two datasets, partitioned hive-style: OUT/intervals/campus=NAME/month=P/ and
    OUT/allocations/campus=NAME/month=P/. An open period (a contract without a settled
    final run) is refused. Read intervals back with `kwhub readings CHANNEL --from-parquet OUT
    --layer validated --start ...`, or with any Parquet reader (DuckDB, polars, pandas).
    """
    from kwhub.hub.export.parquet import ExportError, PeriodNotClosedError, export_period

    if fmt != "parquet":
        raise UserError(f"--format must be parquet, not {fmt!r}", exit_code=EXIT_CONFIG)
    cfg = _load(config)
    name = campus or cfg.file.hub.name
    with _open_db(cfg, read_only=True) as db:
        try:
            report = export_period(db, cfg.campus, period, out, name)
        except PeriodNotClosedError as exc:
            raise UserError(str(exc), exit_code=EXIT_FAILED) from None
        except ExportError as exc:
            raise UserError(str(exc), exit_code=EXIT_CONFIG) from None
    if as_json:
        echo(json.dumps(report.as_dict(), indent=2))
        return
    echo(f"{safe(period)} of campus {safe(report.campus)}: {report.interval_rows:,} interval rows, "
         f"{report.allocation_rows:,} allocation rows from runs {', '.join(safe(r) for r in report.runs)}")
    for f in report.files:
        echo(f"  wrote {safe(f)}")


def register(app: typer.Typer) -> None:
    """Add ``export`` to the kwhub app."""
    app.command("export")(export_command)


__all__ = ["register", "export_command"]
