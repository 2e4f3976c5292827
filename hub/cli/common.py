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
    from kwhub.hub.store.plain_read import plain_sqlite_path

    plain = plain_sqlite_path(url)
    if plain is not None:  # the common case, without importing SQLAlchemy
        return None if plain.exists() else plain
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


def _refuse_missing(url: str) -> None:
    """A read never creates a database: a SQLite file that does not exist is an error that
    says how to make one."""
    missing = missing_database(url)
    if missing is not None:
        from kwhub.hub.cli.errors import UserError

        raise UserError(f"no database at {missing} (this command only reads; nothing was created)",
                        hint="run the command in the folder of your kwhub.toml or pass -c/--config FILE; "
                             "a new campus starts with `kwhub init`, then `kwhub ingest FILE...` "
                             "(or `kwhub demo`)")


def _shown_url(url: str) -> str:
    from kwhub.hub.redact import redact_credentials

    return repr(redact_credentials(url))


def _check_schema(reader: Any) -> None:
    """Refuse (with what to do) a database whose schema is not this kwhub's head; one SELECT."""
    from kwhub.hub.store.plain_read import schema_problem

    problem = schema_problem(reader.revision(), reader.shown)
    if problem is not None:
        from kwhub.hub.cli.errors import UserError

        raise UserError(problem[0], hint=problem[1])


def _sqlite_reader(path: Path, url: str) -> Any:
    """:func:`kwhub.hub.store.plain_read.open_sqlite` with its schema checked; a file SQLite
    cannot read is a :class:`~kwhub.hub.store.db.DatabaseUnavailableError` (exit 4)."""
    import sqlite3

    from kwhub.hub.store.plain_read import open_sqlite

    shown = _shown_url(url)
    reader = None
    try:
        reader = open_sqlite(path, shown)
        _check_schema(reader)
        return reader
    except sqlite3.Error as exc:
        if reader is not None:
            reader.close()
        from kwhub.hub.store.db import DatabaseUnavailableError

        raise DatabaseUnavailableError(f"cannot open the database {shown}: {exc}",
                                       "check that the SQLite file is a kwhub database and readable") from None
    except BaseException:
        if reader is not None:
            reader.close()
        raise


def open_reader(cfg: Any) -> Any:
    """A :class:`kwhub.hub.store.plain_read.PlainReader` on the configuration's database, for a
    command that only reads: never created, never migrated (a schema that is not this kwhub's
    is refused with what to do). A plain SQLite file is read with the standard library's
    ``sqlite3`` (no SQLAlchemy import); other URLs through :class:`kwhub.hub.store.Database`."""
    from kwhub.hub.store.plain_read import plain_sqlite_path

    url = cfg.database_url
    _refuse_missing(url)
    plain = plain_sqlite_path(url)
    if plain is not None:
        return _sqlite_reader(plain, url)
    db = open_db(cfg, read_only=True, migrate=False, checked=False)
    try:
        reader = _connected(db, url)
    except BaseException:
        db.close()
        raise
    reader.also_close(db)
    try:
        _check_schema(reader)
    except BaseException:
        reader.close()
        raise
    return reader


def open_db(cfg: Any, *, read_only: bool = False, migrate: bool = True, checked: bool = True) -> Any:
    """Open (and migrate) the configuration's database.

    ``read_only``: a command that only reads never creates a database; a SQLite file that
    does not exist is an error that says how to make one. ``migrate=False`` (a command that
    only reads): the schema is not migrated; a database whose schema is not this kwhub's is
    refused with what to do (one ``SELECT`` of its revision; ``checked=False`` skips it).
    """
    from kwhub.hub.config import ConfigError
    from kwhub.hub.store import Database
    from kwhub.hub.store.db import DatabaseUrlError

    if read_only:
        _refuse_missing(cfg.database_url)
    try:
        db = Database.open(cfg.database_url, work_dir=cfg.work_dir, migrate=migrate)
    except DatabaseUrlError as exc:
        if not cfg.file.hub.database:
            raise  # the default database beside kwhub.toml
        raise ConfigError(cfg.source, [f"hub.database: {exc}"], hint=exc.hint) from None
    if not migrate and checked:
        from kwhub.hub.store.plain_read import reading

        try:
            with reading(_connected(db, cfg.database_url)) as reader:
                _check_schema(reader)
        except BaseException:
            db.close()
            raise
    return db


def _connected(db: Any, url: str) -> Any:
    """:func:`kwhub.hub.store.plain_read.reader_of` ``db``; a database that cannot be reached is
    the :class:`~kwhub.hub.store.db.DatabaseUnavailableError` :meth:`Database.open` raises when
    it migrates (exit 4, no password shown)."""
    from sqlalchemy.exc import OperationalError

    from kwhub.hub.store.db import DatabaseUnavailableError, _reason
    from kwhub.hub.store.plain_read import reader_of

    shown = _shown_url(url)
    try:
        return reader_of(db, shown)
    except OperationalError as exc:
        raise DatabaseUnavailableError(
            f"cannot open the database {shown}: {_reason(exc)}",
            "check that the server is running and accepts this user and database (or that the "
            "SQLite file is readable and writable), then run the command again") from None

