"""``kwhub vee report``: what each VEE rule did over a period."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from kwhub.hub.cli.common import load, open_db
from kwhub.hub.cli.errors import EXIT_CONFIG, UserError
from kwhub.hub.cli.options import format_option, output_format
from kwhub.hub.cli.output import cell, console, echo

vee_app = typer.Typer(help="Validation, estimation and editing (VEE) of interval data.", no_args_is_help=True)


def _parse_day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UserError(f"{option} {value!r} is not a date", hint="use YYYY-MM-DD", exit_code=EXIT_CONFIG) from None


def build_report(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per rule: flagged/estimated/edited counts, channels and channel-days affected."""
    from kwhub.hub.ingest.vee import report

    return report(events)


@vee_app.command("report")
def report_cmd(
    start: str | None = typer.Option(None, "--start", help="first UTC day (YYYY-MM-DD)"),
    end: str | None = typer.Option(None, "--end", help="last UTC day, inclusive (YYYY-MM-DD)"),
    channel: str | None = typer.Option(None, "--channel", help="only this channel"),
    fmt: str = format_option("text", "json"),
    config: Path | None = typer.Option(None, "--config", "-c", help="kwhub.toml (default: ./kwhub.toml)"),
) -> None:
    """Show what each VEE rule did in the period: intervals flagged, estimated, edited; channels."""
    from kwhub.hub.ingest.vee import read_events

    fmt = output_format(fmt, ("text", "json"))
    first, last = _parse_day(start, "--start"), _parse_day(end, "--end")
    if first and last and last < first:
        raise UserError(f"--end {last} is before --start {first}", exit_code=EXIT_CONFIG)
    cfg = load(config)
    db = open_db(cfg, read_only=True)
    try:
        events = read_events(db, first, last, channel)
    finally:
        db.close()
    rules = build_report(events)
    period = {"start": first.isoformat() if first else None, "end": last.isoformat() if last else None,
              "channel": channel}
    if fmt == "json":
        echo(json.dumps({"period": period, "rules": rules}, indent=2, default=str))
        return
    if not rules:
        console.print("No VEE events for this period (nothing validated yet, or nothing found).")
        return
    when = f"{first or 'start'} to {last or 'end'}" if (first or last) else "all stored days"
    title = f"VEE report, {when}" + (f" ({channel})" if channel else "")
    table = Table(title=cell(title))
    for col in ("rule", "flagged", "estimated", "edited", "channel-days", "channels"):
        table.add_column(col, justify="right" if col not in ("rule", "channels") else "left")
    for rid, r in rules.items():
        chans = r["channels"]
        shown = ", ".join(chans[:4]) + (f" (+{len(chans) - 4})" if len(chans) > 4 else "")
        table.add_row(cell(rid), str(r["flagged"]), str(r["estimated"]), str(r["edited"]), str(r["channel_days"]),
                      cell(shown))
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add the ``vee`` command group to ``app``."""
    app.add_typer(vee_app, name="vee")
