"""``kwhub audit list``: who did what, when and why."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from kwhub.hub.cli.options import format_option, json_alias, output_format
from kwhub.hub.cli.output import cell, clean, console, row

audit_app = typer.Typer(help="The audit log (append-only): approvals, rejections, retries, keys, reloads.",
                        no_args_is_help=True)


@audit_app.command("list")
def list_cmd(
    object_type: str = typer.Option(None, "--type", help="Only this object type (settlement_run, api_key, outbox, "
                                                         "config, period)."),
    object_id: str = typer.Option(None, "--id", help="Only this object."),
    limit: int = typer.Option(100, "--limit", min=1, help="Newest entries to show."),
    config: Path = typer.Option(None, "--config", "-c", help="kwhub.toml (default: ./kwhub.toml)."),
    fmt: str = format_option("text", "json"), as_json: bool = json_alias(),
) -> None:
    """Audit entries, newest first: when, who (key id or CLI user), action, object, why."""
    as_json = output_format(fmt, ("text", "json"), as_json) == "json"
    from kwhub.hub.cli.common import load, open_db
    from kwhub.hub.store import audit_entries

    db = open_db(load(config, plugins=False), read_only=True, migrate=False)  # reading the log never creates a database
    try:
        rows = audit_entries(db, object_type, object_id)[::-1][:limit]
    finally:
        db.close()
    items = [{"id": a.id, "at": a.at.isoformat(), "actor": a.actor, "action": a.action,
              "object_type": a.object_type, "object_id": a.object_id, "detail": a.detail} for a in rows]
    if as_json:
        typer.echo(json.dumps(items, indent=2, default=str))
        return
    table = Table(title=cell(f"audit log ({len(items)})"))
    for col in ("at (UTC)", "who", "action", "object", "why"):
        table.add_column(col, overflow="fold")
    for a in items:
        why = a["detail"].get("reason", "") if isinstance(a["detail"], dict) else ""
        row(table, a["at"][:19].replace("T", " "), clean(a["actor"]), clean(a["action"]),
                      clean(f"{a['object_type']} {a['object_id']}"), clean(str(why)))
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add the ``audit`` group."""
    app.add_typer(audit_app, name="audit")
