"""How the outbox reaches the database: the store's write transaction (lock taken up front on
SQLite) or a plain SQLAlchemy engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from sqlalchemy.engine import Connection

from kwhub.hub.store.db import WRITE_OPTION


def _engine(db: Any) -> Any:
    return getattr(db, "engine", db)


def _write(db: Any, *, checkpoint: bool = True) -> AbstractContextManager[Connection]:
    """A write transaction: the store's (lock taken up front on SQLite) or ``engine.begin()``.

    ``checkpoint=False`` is for the relay's one-row transactions (one per send): the same
    transaction as :meth:`Database.write_transaction` without asking the store's WAL
    checkpointer for a checkpoint after it. A checkpoint running beside every small commit
    made each commit several times slower; the relay asks for one after each pass instead
    (:func:`_checkpoint`), and the checkpointer still looks at the log's size on its own.
    """
    wt = getattr(db, "write_transaction", None)
    if not callable(wt):
        return _engine(db).begin()
    if checkpoint or getattr(db, "checkpointer", None) is None:
        return wt()  # type: ignore[no-any-return]
    return _quiet_write(db)


@contextmanager
def _quiet_write(db: Any) -> Iterator[Connection]:
    with db.engine.connect() as conn:
        conn.execution_options(**{WRITE_OPTION: True})
        with conn.begin():
            yield conn


def _checkpoint(db: Any) -> None:
    """Ask the store's WAL checkpointer (SQLite) for a checkpoint of what was committed."""
    cp = getattr(db, "checkpointer", None)
    if cp is not None:
        cp.nudge()
