"""What every command does first: load kwhub.toml (showing its warnings) and open the database.

A bad ``[hub] database`` URL becomes a configuration error naming that key (exit 2); a
database that cannot be reached exits 4 (see :mod:`kwhub.hub.cli.errors`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kwhub.hub.cli.output import warn

_warned: set[str] = set()


def load(config: Path | str | None = None, *, required: bool = False) -> Any:
    """Load and validate the configuration; print its warnings (once per file) on stderr."""
    from kwhub.hub.config import load_config

    cfg = load_config(config, required=required)
    for message in cfg.warnings:
        key = f"{cfg.source}\0{message}"
        if key not in _warned:
            _warned.add(key)
            warn(f"{cfg.source}: {message}")
    return cfg


def open_db(cfg: Any) -> Any:
    """Open (and migrate) the configuration's database."""
    from kwhub.hub.config import ConfigError
    from kwhub.hub.store import Database
    from kwhub.hub.store.db import DatabaseUrlError

    try:
        return Database.open(cfg.database_url, work_dir=cfg.work_dir)
    except DatabaseUrlError as exc:
        if not cfg.file.hub.database:
            raise  # the default database beside kwhub.toml
        raise ConfigError(cfg.source, [f"hub.database: {exc}"], hint=exc.hint) from None
