"""PostgreSQL-only paths of the interval store: month partitions on demand and binary COPY out.

``interval_day`` on PostgreSQL is partitioned by month (migration ``0013_interval_partitions``).
Before a write, :func:`ensure_partitions` asks the database function
``kwhub_interval_partitions`` to create the months the write covers (one catalog look-up
per month when they exist). Rows go in with binary ``COPY ... FROM STDIN`` (see
:func:`kwhub.hub.store.interval_store._insert_day_rows`) and the dense read takes them out
with binary ``COPY (SELECT ...) TO STDOUT``: bytea arrives as raw bytes, dates as dates,
without a result set held on the server or per-row protocol messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

# the read's columns, their PostgreSQL types for the binary COPY
_READ_TYPES = ("varchar", "date", "int4", "bytea", "bytea", "varchar")


def ensure_partitions(cur: Any, first: date, last: date) -> int:
    """Create the missing month partitions of ``first..last`` (in the cursor's transaction); how many.

    A database migrated only up to a revision before ``0013_interval_partitions`` has one
    plain table: nothing to create.
    """
    cur.execute("SELECT to_regprocedure('kwhub_interval_partitions(date,date)') IS NOT NULL")
    if not cur.fetchone()[0]:
        return 0
    cur.execute("SELECT kwhub_interval_partitions(%s, %s)", (first, last))
    row = cur.fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def month_partitions(cur: Any) -> list[str]:
    """Names of the month partitions of ``interval_day`` (the default partition excluded), sorted."""
    cur.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'interval_day'::regclass AND c.relname <> 'interval_day_default'")
    return sorted(r[0] for r in cur.fetchall())


def copy_current_days(cur: Any, table: str, layer: str, lo: date, hi: date,
                      channel_ids: Sequence[str]) -> list[tuple[Any, ...]]:
    """Current days of ``channel_ids`` in ``lo..hi`` as ``(channel, day, minutes, values, quality, hash)``
    rows, through one binary ``COPY ... TO STDOUT`` (psycopg 3); in no particular order."""
    sql = (f'COPY (SELECT channel_id, day, interval_minutes, "values", quality, content_hash FROM {table} '
           "WHERE layer = %s AND is_current AND day >= %s AND day <= %s AND channel_id = ANY(%s)) "
           "TO STDOUT (FORMAT BINARY)")
    with cur.copy(sql, (layer, lo, hi, list(channel_ids))) as copy:
        copy.set_types(_READ_TYPES)
        return list(copy.rows())
