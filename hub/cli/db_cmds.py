"""``kwhub db upgrade``, ``kwhub db grant-app`` and ``kwhub db maintain``: the database's owner side."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import typer

from kwhub.hub.cli.common import load
from kwhub.hub.cli.errors import EXIT_CONFIG, UserError
from kwhub.hub.cli.output import console, echo, safe

db_app = typer.Typer(help="Set up the database: migrations and the application role.", no_args_is_help=True)

CONFIG_OPTION = typer.Option(None, "--config", "-c", help="kwhub.toml (default: ./kwhub.toml).")
URL_OPTION = typer.Option(None, "--url", help="Database URL to use instead of [hub] database (e.g. the owner "
                                             "role's: postgresql+psycopg://kwhub_owner@host/kwhub).")


def _open(config: Path | None, url: str | None) -> object:
    from kwhub.hub.cli.common import open_db
    from kwhub.hub.store import Database

    if url:
        return Database.open(url)
    return open_db(load(config))


@db_app.command("upgrade")
def upgrade(config: Path = CONFIG_OPTION, url: str = URL_OPTION) -> None:
    """Migrate the schema to this kwhub's version (run it as the role that owns the tables)."""
    from kwhub.hub.store import migration_head

    db = _open(config, url)
    try:
        revision = db.current_revision()  # type: ignore[attr-defined]
    finally:
        db.close()  # type: ignore[attr-defined]
    console.print(f"database schema at {safe(revision)} (this kwhub: {safe(migration_head())}); on PostgreSQL run "
                  "`kwhub db grant-app ROLE` again so that the application role is granted any new table")


@db_app.command("grant-app")
def grant_app(
    role: str = typer.Argument(..., help="The application role kwhub connects as (it must exist and own nothing)."),
    config: Path = CONFIG_OPTION,
    url: str = URL_OPTION,
) -> None:
    """Give the application role row privileges only (PostgreSQL; run as the owner).

    The role may read and write rows but not TRUNCATE, ALTER or drop tables or triggers,
    and may only read and insert issued documents. Connect kwhub as this role; keep the
    owner role for `kwhub db upgrade`, and run this again after each upgrade (new tables).
    """
    from kwhub.hub.store.roles import RoleError, grant_application_role

    db = _open(config, url)
    try:
        statements = grant_application_role(db, role)
    except RoleError as exc:
        raise UserError(str(exc), exit_code=EXIT_CONFIG) from None
    finally:
        db.close()  # type: ignore[attr-defined]
    echo("\n".join(f"{sql};" for sql in statements))
    console.print(f"role {safe(role)} can now run kwhub without owning its tables; `kwhub verify` connected as it "
                  "shows no protection warnings")


@db_app.command("maintain")
def maintain(
    first: str = typer.Option(None, "--from", help="First day (YYYY-MM-DD) of the load; default: every stored day."),
    last: str = typer.Option(None, "--to", help="Last day (YYYY-MM-DD) of the load; default: every stored day."),
    config: Path = CONFIG_OPTION,
    url: str = URL_OPTION,
) -> None:
    """After a large load: vacuum and analyze the interval days' month partitions (PostgreSQL; run as
    the owner) or analyze the interval table (SQLite), so the reads that follow run at full speed.

    An ingest does not run it: on PostgreSQL only the tables' owner may vacuum them, and with
    autovacuum on the server does it later on its own. `bench/store_pg_volume.py` runs it after its load.
    """
    days = []
    for label, text in (("--from", first), ("--to", last)):
        try:
            days.append(date.fromisoformat(text) if text else None)
        except ValueError:
            raise UserError(f"{label} {text!r} is not a date (YYYY-MM-DD)", exit_code=EXIT_CONFIG) from None
    db = _open(config, url)
    try:
        report = db.intervals.maintain(days[0], days[1])  # type: ignore[attr-defined]
    finally:
        db.close()  # type: ignore[attr-defined]
    done = ", ".join(report.tables) or "nothing"
    console.print(f"maintained {safe(done)} in {report.seconds:.1f} s")
    if report.skipped:
        console.print(f"skipped (this role does not own them; run as the owner): {safe(', '.join(report.skipped))}")


def register(app: typer.Typer) -> None:
    """Add the ``db`` command group."""
    app.add_typer(db_app, name="db")
