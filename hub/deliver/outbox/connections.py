"""How the outbox reaches the database: the store's write transaction (lock taken up front on
SQLite) or a plain SQLAlchemy engine.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy.engine import Connection


def _engine(db: Any) -> Any:
    return getattr(db, "engine", db)


def _write(db: Any) -> AbstractContextManager[Connection]:
    """A write transaction: the store's (lock taken up front on SQLite) or ``engine.begin()``."""
    wt = getattr(db, "write_transaction", None)
    return wt() if callable(wt) else _engine(db).begin()
