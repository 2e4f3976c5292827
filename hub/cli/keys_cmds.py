"""``kwhub keys create|list|revoke``: API keys (the secret is shown once)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from kwhub.hub.cli.errors import EXIT_CONFIG, UserError
from kwhub.hub.cli.options import format_option, json_alias, output_format
from kwhub.hub.cli.output import cell, clean, console, row

keys_app = typer.Typer(help="API keys: create (shown once), list, revoke.", no_args_is_help=True)
CONFIG = typer.Option(None, "--config", "-c", help="kwhub.toml (default: ./kwhub.toml).")


def _actor() -> str:
    from kwhub.hub.cli.review_cmds import _actor as actor

    return f"cli:{actor(None)}"


@keys_app.command("create")
def create(
    role: str = typer.Option(..., "--role", help="operator (everything), auditor (read all), erp (invoices and "
                                                 "deliveries), tenant (its own party's data; needs --party)."),
    party: str = typer.Option("", "--party", help="The party a tenant (or erp) key is limited to."),
    scopes: list[str] = typer.Option(None, "--scope", help="Narrow the role's scopes (repeat); see `kwhub keys "
                                                         "scopes`."),
    name: str = typer.Option("", "--name", help="A label: who or what uses the key."),
    days: int = typer.Option(None, "--days", min=1, help="Valid for this many days (default: [api] "
                                                         "key_default_days, 90; at most key_max_days)."),
    config: Path = CONFIG,
    fmt: str = format_option("text", "json"), as_json: bool = json_alias(),
) -> None:
    """Create an API key and print it once (only its hash is stored); recorded in the audit log."""
    as_json = output_format(fmt, ("text", "json"), as_json) == "json"
    from kwhub.hub.api.keys import KeyRequestError, create_key
    from kwhub.hub.app import Hub

    with Hub.open(config) as hub:
        api = hub.config.file.api
        try:
            key = create_key(hub.db, role=role, party=party, scopes=scopes or None, name=name,
                             days=days or api.key_default_days, max_days=api.key_max_days, actor=_actor(),
                             known_parties={p.id for p in hub.campus.parties})
        except KeyRequestError as exc:
            raise UserError(str(exc), exit_code=EXIT_CONFIG) from None
    if as_json:
        typer.echo(json.dumps({"id": key.id, "token": key.token, "role": key.role, "party": key.party,
                               "scopes": key.scopes, "expires_at": key.expires_at.isoformat()}))
        return
    typer.echo(key.token)
    console.print(f"[dim]key {key.id}: {key.role}{' for ' + escape(key.party) if key.party else ''}, "
                  f"expires {key.expires_at:%Y-%m-%d}; shown once, store it now "
                  "(send it as `Authorization: Bearer <key>`)[/]", highlight=False)


@keys_app.command("list")
def list_cmd(config: Path = CONFIG, fmt: str = format_option("text", "json"), as_json: bool = json_alias()) -> None:
    """List API keys (never their secrets)."""
    as_json = output_format(fmt, ("text", "json"), as_json) == "json"
    from kwhub.hub.api.keys import list_keys
    from kwhub.hub.cli.common import load, open_db

    db = open_db(load(config, plugins=False), read_only=True, migrate=False)  # listing never creates a database
    try:
        rows = list_keys(db)
    finally:
        db.close()
    if as_json:
        typer.echo(json.dumps(rows, default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v), indent=2))
        return
    table = Table(title=cell(f"API keys ({len(rows)})"))
    for col in ("id", "name", "role", "party", "scopes", "expires", "state"):
        table.add_column(col, overflow="fold")
    for r in rows:
        state = "revoked" if r["revoked_at"] else ("active" if r["active"] else "expired")
        row(table, r["id"], clean(r["name"]), r["role"], clean(r["party"]), ", ".join(r["scopes"]),
                      f"{r['expires_at']:%Y-%m-%d}", state)
    console.print(table)


@keys_app.command("revoke")
def revoke(
    key_id: str = typer.Argument(..., help="The key's id (see `kwhub keys list`)."),
    reason: str = typer.Option(..., "--reason", help="Why (recorded in the audit log)."),
    config: Path = CONFIG,
) -> None:
    """Revoke a key: it is refused from now on (by a running API within [api] key_cache_s seconds)."""
    from kwhub.hub.api.keys import KeyRequestError, revoke_key
    from kwhub.hub.app import Hub

    with Hub.open(config) as hub:
        try:
            revoke_key(hub.db, key_id, actor=_actor(), reason=reason)
        except KeyRequestError as exc:
            raise UserError(str(exc)) from None
    console.print(f"key {escape(key_id)} revoked")


@keys_app.command("scopes")
def scopes_cmd() -> None:
    """List the scopes and which roles have them."""
    from kwhub.hub.api.keys import ROLE_SCOPES, SCOPES

    table = Table(title="scopes")
    for col in ("scope", "meaning", "roles"):
        table.add_column(col)
    for s, meaning in SCOPES.items():
        row(table, s, meaning, ", ".join(r for r, ss in ROLE_SCOPES.items() if s in ss))
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add the ``keys`` group."""
    app.add_typer(keys_app, name="keys")
