"""``kwhub jobs list|schedule``: the scheduler's jobs and their history."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from kwhub.hub.cli.options import format_option, json_alias, output_format
from kwhub.hub.cli.output import cell, clean, console, row

jobs_app = typer.Typer(help="Scheduled jobs: their history and schedule.", no_args_is_help=True)
CONFIG = typer.Option(None, "--config", "-c", help="kwhub.toml (default: ./kwhub.toml).")


@jobs_app.command("list")
def list_cmd(
    job: str = typer.Option(None, "--job", help="Only this job id."),
    status: str = typer.Option(None, "--status", help="running, succeeded, failed or interrupted."),
    limit: int = typer.Option(50, "--limit", min=1, help="Newest runs to show."),
    config: Path = CONFIG,
    fmt: str = format_option("text", "json"), as_json: bool = json_alias(),
) -> None:
    """Job runs, newest first: slot, owner, start, end, outcome and error."""
    as_json = output_format(fmt, ("text", "json"), as_json) == "json"
    from kwhub.hub.cli.common import load, open_db
    from kwhub.hub.scheduler.history import list_runs

    db = open_db(load(config, plugins=False), read_only=True, migrate=False)  # reading the history never creates a database
    try:
        rows = list_runs(db, job_id=job, status=status, limit=limit)
    finally:
        db.close()
    if as_json:
        typer.echo(json.dumps(rows, default=str, indent=2))
        return
    table = Table(title=cell(f"job runs ({len(rows)})"))
    for col in ("id", "job", "slot (UTC)", "owner", "started (UTC)", "took", "status", "error"):
        table.add_column(col, overflow="fold")
    colour = {"succeeded": "green", "failed": "red", "interrupted": "yellow", "running": "cyan"}
    for r in rows:
        took = f"{(r['finished_at'] - r['started_at']).total_seconds():.2f} s" if r["finished_at"] else ""
        row(table, str(r["id"]), clean(r["job_id"]), f"{r['slot']:%Y-%m-%d %H:%M:%S}", clean(r["owner"]),
                      f"{r['started_at']:%H:%M:%S}", took, cell(r["status"], colour[r["status"]]),
                      clean((r["error"] or "")[:120]))
    console.print(table)
    if not rows:
        typer.echo("no job runs yet (`kwhub serve` runs the scheduler)")


@jobs_app.command("schedule")
def schedule_cmd(config: Path = CONFIG) -> None:
    """The configured jobs, their schedule and last success, and who owns the scheduler."""
    from kwhub.hub.app import Hub
    from kwhub.hub.scheduler.history import last_success
    from kwhub.hub.scheduler.ownership import current_owner
    from kwhub.hub.scheduler.registry import all_jobs

    with Hub.open(config) as hub:
        owner = current_owner(hub.db)
        ok = last_success(hub.db)
        specs = all_jobs(hub.config)
    table = Table(title="scheduled jobs")
    for col in ("job", "schedule", "what", "last success"):
        table.add_column(col, overflow="fold")
    for s in specs:
        last = ok.get(s.id)
        row(table, clean(s.id), s.schedule_text(), clean(s.description), f"{last:%Y-%m-%d %H:%M:%S}" if last else "")
    console.print(table)
    console.print(f"owner: {escape(owner['owner'])}, heartbeat {owner['heartbeat_at']:%Y-%m-%d %H:%M:%S} UTC"
                  if owner else "owner: none yet")


def register(app: typer.Typer) -> None:
    """Add the ``jobs`` group."""
    app.add_typer(jobs_app, name="jobs")
