"""``kwhub vee report``: what each VEE rule did over a period."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from kwhub.hub.cli.errors import EXIT_CONFIG, UserError

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
    fmt: str = typer.Option("table", "--format", help="table or json"),
    config: Path | None = typer.Option(None, "--config", help="kwhub.toml (default: ./kwhub.toml)"),
) -> None:
    """Show what each VEE rule did in the period: intervals flagged, estimated, edited; channels."""
    from kwhub.hub.config import load_config
    from kwhub.hub.ingest.vee import read_events
    from kwhub.hub.store import Database

    if fmt not in ("table", "json"):
        raise UserError(f"--format {fmt!r} is not supported", hint="use table or json", exit_code=EXIT_CONFIG)
    first, last = _parse_day(start, "--start"), _parse_day(end, "--end")
    if first and last and last < first:
        raise UserError(f"--end {last} is before --start {first}", exit_code=EXIT_CONFIG)
    cfg = load_config(config)
    db = Database.open(cfg.database_url)
    try:
        events = read_events(db, first, last, channel)
    finally:
        db.close()
    rules = build_report(events)
    period = {"start": first.isoformat() if first else None, "end": last.isoformat() if last else None,
              "channel": channel}
    if fmt == "json":
        typer.echo(json.dumps({"period": period, "rules": rules}, indent=2, default=str))
        return
    console = Console()
    if not rules:
        console.print("No VEE events for this period (nothing validated yet, or nothing found).")
        return
    when = f"{first or 'start'} to {last or 'end'}" if (first or last) else "all stored days"
    title = f"VEE report, {when}" + (f" ({channel})" if channel else "")
    table = Table(title=title)
    for col in ("rule", "flagged", "estimated", "edited", "channel-days", "channels"):
        table.add_column(col, justify="right" if col not in ("rule", "channels") else "left")
    for rid, r in rules.items():
        chans = r["channels"]
        shown = ", ".join(chans[:4]) + (f" (+{len(chans) - 4})" if len(chans) > 4 else "")
        table.add_row(rid, str(r["flagged"]), str(r["estimated"]), str(r["edited"]), str(r["channel_days"]), shown)
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add the ``vee`` command group to ``app``."""
    app.add_typer(vee_app, name="vee")
