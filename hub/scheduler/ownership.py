"""Exactly one scheduler owns the scheduled work.

* PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) held on a connection
  of its own, outside the pool. The server releases it when that connection ends, so a
  killed owner frees it at once. The owner checks its connection at every heartbeat and
  gives the work up when it is gone.
* SQLite: an exclusive ``flock`` on ``<database file>.scheduler.lock`` beside the database
  (the database is a file on this machine, so every scheduler that can open it can lock
  it). The kernel releases it when the owner's process ends.

Either way the owner also writes ``scheduler_owner`` (who, since when, heartbeat), which
``/healthz`` and ``kwhub jobs list`` show, and the database refuses a second run of a job's
slot (``job_run`` is unique per job and slot) should two owners ever overlap.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import make_url

from kwhub.hub.store.service_tables import scheduler_owner_table
from kwhub.hub.store.tables import as_utc, utcnow

# "kwhubsch" in ASCII: the advisory lock key of the scheduler (the write lock is another key)
PG_SCHEDULER_LOCK_KEY = 0x6B7768756273636
NAME = "scheduler"


class Ownership:
    """Try to own the scheduled work of one database; hold it until :meth:`release`."""

    def __init__(self, db: Any, owner: str) -> None:
        self.db = db
        self.owner = owner
        self._conn: Any = None
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._conn is not None or self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; True when this process owns the work now."""
        if self.held:
            return True
        if self.db.dialect == "postgresql":
            conn = self.db.engine.raw_connection()
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT pg_try_advisory_lock(%s)", (PG_SCHEDULER_LOCK_KEY,))
                    got = bool(cur.fetchone()[0])
                conn.commit()
            except Exception:
                conn.invalidate() if hasattr(conn, "invalidate") else conn.close()
                raise
            if not got:
                conn.close()
                return False
            self._conn = conn
        else:
            import fcntl

            fd = os.open(lock_path(self.db), os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            os.ftruncate(fd, 0)
            os.write(fd, f"{self.owner}\n".encode())
            self._fd = fd
        self._record(acquired=True)
        return True

    def still_held(self) -> bool:
        """Check the lock is still ours (PostgreSQL: the lock's connection still answers)."""
        if self._conn is not None:
            try:
                with self._conn.cursor() as cur:
                    cur.execute("SELECT 1")
                self._conn.commit()
            except Exception:  # the connection is gone, and the lock with it
                self._drop_conn()
                return False
            return True
        return self._fd is not None

    def heartbeat(self) -> None:
        """Record that the owner is alive."""
        self._record(acquired=False)

    def release(self) -> None:
        """Give the work up (the next standby takes it over)."""
        if self._conn is not None:
            try:
                with self._conn.cursor() as cur:
                    cur.execute("SELECT pg_advisory_unlock(%s)", (PG_SCHEDULER_LOCK_KEY,))
                self._conn.commit()
            except Exception:  # noqa: BLE001  (closing the connection frees it anyway)
                pass
            self._drop_conn()
        if self._fd is not None:
            import fcntl

            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def _drop_conn(self) -> None:
        try:
            self._conn.close()
        except Exception:  # noqa: BLE001
            pass
        self._conn = None

    def _record(self, acquired: bool) -> None:
        t = scheduler_owner_table
        now = utcnow()
        with self.db.write_transaction() as conn:
            row = conn.execute(select(t.c.owner).where(t.c.name == NAME)).first()
            if row is None:
                conn.execute(t.insert().values(name=NAME, owner=self.owner, acquired_at=now, heartbeat_at=now))
            elif acquired:
                conn.execute(update(t).where(t.c.name == NAME).values(owner=self.owner, acquired_at=now,
                                                                       heartbeat_at=now))
            else:
                conn.execute(update(t).where(t.c.name == NAME, t.c.owner == self.owner).values(heartbeat_at=now))


def lock_path(db: Any) -> Path:
    """``<database file>.scheduler.lock`` (SQLite)."""
    path = make_url(db.url).database
    if not path or path == ":memory:":
        raise ValueError("an in-memory SQLite database cannot be shared by schedulers")
    return Path(path + ".scheduler.lock")


def current_owner(db: Any) -> dict[str, Any] | None:
    """``{owner, acquired_at, heartbeat_at}`` of the recorded owner, or None."""
    t = scheduler_owner_table
    with db.engine.connect() as conn:
        row = conn.execute(select(t.c.owner, t.c.acquired_at, t.c.heartbeat_at).where(t.c.name == NAME)).first()
    if row is None:
        return None
    return {"owner": row.owner, "acquired_at": as_utc(row.acquired_at), "heartbeat_at": as_utc(row.heartbeat_at)}


def heartbeat_age(info: dict[str, Any] | None, now: datetime | None = None) -> float | None:
    """Seconds since the recorded owner's last heartbeat."""
    if info is None:
        return None
    return ((now or utcnow()) - info["heartbeat_at"]).total_seconds()
