"""PostgreSQL-only paths of the interval store: month partitions on demand, binary COPY in.

``interval_day`` on PostgreSQL is partitioned by month (migration ``0013_interval_partitions``).
Before a write, :func:`ensure_partitions` asks the database function
``kwhub_interval_partitions`` to create the months the write covers (one catalog look-up
per month when they exist). Rows go in with binary ``COPY ... FROM STDIN`` when the role may
(:func:`copy_in_allowed`; see :func:`kwhub.hub.store.day_sql.insert_day_rows`).
The dense read (``read_matrix``) fetches with a binary-format cursor (bytea as raw bytes):
a binary ``COPY (SELECT ...) TO STDOUT`` of the same rows was measured slower, because
psycopg hands a COPY stream over one message per row, and so was a COPY of one record per channel
(the days joined by ``string_agg`` on the server), at 200 to 2,000 channels.
"""

from __future__ import annotations

from datetime import date
from typing import Any


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


def copy_in_allowed(cur: Any) -> bool:
    """Whether ``COPY ... FROM`` may write ``interval_day`` as the current user.

    PostgreSQL refuses COPY FROM into a table with row-level security for a role subject
    to it (the application role, and the owner too when the security is FORCEd); such a
    role writes with INSERT instead. Superusers and BYPASSRLS roles may COPY.
    """
    cur.execute("SELECT NOT c.relrowsecurity OR r.rolsuper OR r.rolbypassrls "
                "OR (c.relowner = r.oid AND NOT c.relforcerowsecurity) "
                "FROM pg_class c, pg_roles r WHERE c.oid = 'interval_day'::regclass AND r.rolname = current_user")
    row = cur.fetchone()
    return bool(row and row[0])


def month_partitions(cur: Any) -> list[str]:
    """Names of the month partitions of ``interval_day`` (the default partition excluded), sorted."""
    cur.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'interval_day'::regclass AND c.relname <> 'interval_day_default'")
    return sorted(r[0] for r in cur.fetchall())
