"""PostgreSQL-only paths of the interval store: month partitions on demand, binary COPY in.

``interval_day`` on PostgreSQL is partitioned by month (migration ``0013_interval_partitions``).
Before a write, :func:`ensure_partitions` asks the database function
``kwhub_interval_partitions`` to create the months the write covers (one catalog look-up
per month when they exist). Rows go in with binary ``COPY ... FROM STDIN`` when the role may
(:func:`copy_in_allowed`; see :func:`kwhub.hub.store.day_sql.insert_day_rows`). Both
answers hold for the rest of the transaction and are remembered in it (:func:`write_memo`):
a transaction that writes a channel at a time asks once, not per channel.
The dense read (``read_matrix``) fetches with a binary-format cursor (bytea as raw bytes):
a binary ``COPY (SELECT ...) TO STDOUT`` of the same rows was measured slower, because
psycopg hands a COPY stream over one message per row, and so was a COPY of one record per channel
(the days joined by ``string_agg`` on the server), at 200 to 2,000 channels.
After a large load, :func:`vacuum_partitions` vacuums and analyzes the month partitions the load
touched (``IntervalStore.maintain``).
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

_MONTH_PARTITION = re.compile(r"interval_day_(\d{4})_(\d{2})")


_MEMO_KEY = "kwhub.pg_write_memo"


def write_memo(conn: Any) -> dict[str, Any]:
    """What writes learned in the current transaction of the SQLAlchemy connection ``conn``
    (the innermost: a savepoint has its own): the months whose partitions exist, whether
    COPY is allowed. A new transaction or savepoint starts empty, so a rolled back one takes
    what it created with it."""
    txn = conn.get_nested_transaction() or conn.get_transaction()
    slot = conn.info.get(_MEMO_KEY)
    if slot is None or slot[0] is not txn:  # (the slot holds the transaction: its id is not reused)
        slot = conn.info[_MEMO_KEY] = (txn, {})
    memo: dict[str, Any] = slot[1]
    return memo


def _months(first: date, last: date) -> set[tuple[int, int]]:
    out = set()
    y, m = first.year, first.month
    while (y, m) <= (last.year, last.month):
        out.add((y, m))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def ensure_partitions(cur: Any, first: date, last: date, memo: dict[str, Any] | None = None) -> int:
    """Create the missing month partitions of ``first..last`` (in the cursor's transaction); how many.

    A database migrated only up to a revision before ``0013_interval_partitions`` has one
    plain table: nothing to create. ``memo`` (:func:`write_memo` of the cursor's transaction):
    months already ensured in it are not asked for again.
    """
    months = _months(first, last)
    done: set[tuple[int, int]] = memo.setdefault("months", set()) if memo is not None else set()
    if months <= done:
        return 0
    has = memo.get("function") if memo is not None else None
    if has is None:
        cur.execute("SELECT to_regprocedure('kwhub_interval_partitions(date,date)') IS NOT NULL")
        has = bool(cur.fetchone()[0])
        if memo is not None:
            memo["function"] = has
    if not has:
        return 0
    cur.execute("SELECT kwhub_interval_partitions(%s, %s)", (first, last))
    row = cur.fetchone()
    done |= months
    return int(row[0]) if row and row[0] is not None else 0


def copy_in_allowed(cur: Any, memo: dict[str, Any] | None = None) -> bool:
    """Whether ``COPY ... FROM`` may write ``interval_day`` as the current user.

    PostgreSQL refuses COPY FROM into a table with row-level security for a role subject
    to it (the application role, and the owner too when the security is FORCEd); such a
    role writes with INSERT instead. Superusers and BYPASSRLS roles may COPY.
    """
    if memo is not None and "copy" in memo:
        return bool(memo["copy"])
    cur.execute("SELECT NOT c.relrowsecurity OR r.rolsuper OR r.rolbypassrls "
                "OR (c.relowner = r.oid AND NOT c.relforcerowsecurity) "
                "FROM pg_class c, pg_roles r WHERE c.oid = 'interval_day'::regclass AND r.rolname = current_user")
    row = cur.fetchone()
    allowed = bool(row and row[0])
    if memo is not None:
        memo["copy"] = allowed
    return allowed


def month_partitions(cur: Any) -> list[str]:
    """Names of the month partitions of ``interval_day`` (the default partition excluded), sorted."""
    cur.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'interval_day'::regclass AND c.relname <> 'interval_day_default'")
    return sorted(r[0] for r in cur.fetchall())


def partitions_between(names: list[str], first: date | None, last: date | None) -> list[str]:
    """The month partitions among ``names`` that hold a day of ``first..last`` (either end None: open)."""
    out = []
    for name in names:
        m = _MONTH_PARTITION.fullmatch(name)
        if m is None:
            continue
        month = (int(m.group(1)), int(m.group(2)))
        if (first is None or month >= (first.year, first.month)) and (last is None or month <= (last.year, last.month)):
            out.append(name)
    return out


def vacuum_partitions(driver_conn: Any, first: date | None, last: date | None) -> tuple[list[str], list[str]]:
    """``VACUUM (ANALYZE)`` of each month partition holding a day of ``first..last``:
    ``(done, skipped)``, skipped the partitions the current role may not vacuum (only their
    owner or a superuser may: the application role leaves them to the owner's ``kwhub db
    maintain``, or to autovacuum).

    VACUUM runs outside any transaction: the psycopg connection ``driver_conn`` is switched
    to autocommit for the call and back afterwards. After a bulk load this sets the rows'
    visibility hints (which the first read would otherwise set, dirtying and writing every
    page it reads) and the visibility map, and gives the planner statistics of each month.
    """
    was = driver_conn.autocommit
    if not was:
        driver_conn.rollback()  # nothing of a transaction may be open when autocommit is set
    driver_conn.autocommit = True
    try:
        with driver_conn.cursor() as cur:
            names = partitions_between(month_partitions(cur), first, last)
            cur.execute("SELECT c.relname FROM pg_class c WHERE c.relname = ANY(%s) AND c.relkind = 'r' "
                        "AND c.relnamespace = to_regnamespace(current_schema())::oid "
                        "AND (pg_has_role(current_user, c.relowner, 'USAGE') "
                        "OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user))", (names,))
            allowed = {r[0] for r in cur.fetchall()}
            done = [n for n in names if n in allowed]
            for name in done:
                cur.execute(f'VACUUM (ANALYZE) "{name}"')  # a partition name of the pattern above
    finally:
        driver_conn.autocommit = was
    return done, [n for n in names if n not in allowed]
