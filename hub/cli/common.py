"""What every command does first: load kwhub.toml (showing its warnings) and open the database.

A bad ``[hub] database`` URL becomes a configuration error naming that key (exit 2); a
database that cannot be reached exits 4 (see :mod:`kwhub.hub.cli.errors`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kwhub.hub.cli.output import warn

_warned: set[str] = set()


def load(config: Path | str | None = None, *, required: bool = False, plugins: bool = True) -> Any:
    """Load and validate the configuration; print its warnings (once per file) on stderr.

    ``plugins=False`` for a command that only reads the database: no plugin is imported,
    so it starts in a blink (adapter settings are checked by the commands that use them)."""
    from kwhub.hub.config import load_config

    cfg = load_config(config, required=required, plugins=plugins)
    for message in cfg.warnings:
        key = f"{cfg.source}\0{message}"
        if key not in _warned:
            _warned.add(key)
            warn(f"{cfg.source}: {message}")
    return cfg


def missing_database(url: str) -> Path | None:
    """The file of a SQLite ``url`` that does not exist yet (None for any other database)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return None  # Database.open reports a bad URL with its key
    if parsed.get_backend_name() != "sqlite":
        return None
    db_path = parsed.database
    if not db_path or db_path == ":memory:" or db_path.startswith("file:"):
        return None
    path = Path(db_path)
    return None if path.exists() else path


def open_db(cfg: Any, *, read_only: bool = False) -> Any:
    """Open (and migrate) the configuration's database.

    ``read_only``: a command that only reads never creates a database; a SQLite file that
    does not exist is an error that says how to make one.
    """
    from kwhub.hub.config import ConfigError
    from kwhub.hub.store import Database
    from kwhub.hub.store.db import DatabaseUrlError

    if read_only:
        from kwhub.hub.cli.errors import UserError

        missing = missing_database(cfg.database_url)
        if missing is not None:
            raise UserError(f"no database at {missing} (this command only reads; nothing was created)",
                            hint="run the command in the folder of your kwhub.toml or pass -c/--config FILE; "
                                 "a new campus starts with `kwhub init`, then `kwhub ingest FILE...` "
                                 "(or `kwhub demo`)")
    try:
        return Database.open(cfg.database_url, work_dir=cfg.work_dir)
    except DatabaseUrlError as exc:
        if not cfg.file.hub.database:
            raise  # the default database beside kwhub.toml
        raise ConfigError(cfg.source, [f"hub.database: {exc}"], hint=exc.hint) from None
