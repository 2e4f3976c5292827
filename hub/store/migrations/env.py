"""Alembic environment for kwhub.

:meth:`kwhub.hub.store.Database.open` runs migrations programmatically and hands its own
connection over in ``config.attributes["connection"]`` (already inside a transaction that
holds the write lock). Run from the command line (``alembic -c hub/store/alembic.ini
upgrade head``), the URL comes from ``KWHUB_DATABASE_URL`` or the ini file.
"""

from __future__ import annotations

import importlib
import os

from alembic import context
from sqlalchemy import create_engine
from sqlmodel import SQLModel

import kwhub.hub.store.tables  # noqa: F401  (registers the core tables in SQLModel.metadata)

for _optional in ("kwhub.hub.store.settlement_tables", "kwhub.hub.store.outbox_tables",
                  "kwhub.hub.store.rendering_tables", "kwhub.hub.store.service_tables"):
    try:
        importlib.import_module(_optional)
    except ImportError:
        pass

config = context.config
target_metadata = SQLModel.metadata


def _configure(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def run_migrations_offline() -> None:
    """Emit SQL to stdout instead of running it (``alembic upgrade head --sql``)."""
    url = os.environ.get("KWHUB_DATABASE_URL") or config.get_main_option("sqlalchemy.url")
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run against the connection given by the caller, or a fresh engine."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = os.environ.get("KWHUB_DATABASE_URL") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL: set KWHUB_DATABASE_URL or sqlalchemy.url")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            _configure(conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
