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
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np

# the read's columns, their PostgreSQL types for the binary COPY
_READ_TYPES = ("varchar", "date", "int4", "bytea", "bytea", "varchar")
_PG_EPOCH_DAY = 10_957  # 2000-01-01, day 0 of PostgreSQL's binary dates, in days since 1970-01-01
_HEADER = 19  # binary COPY: 11-byte signature, 4-byte flags, 4-byte header extension length


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


@dataclass
class DayArrays:
    """Current days read by :func:`copy_day_arrays`, one row per channel-day, sorted by (channel, day)."""

    channel: np.ndarray  # int64 position in the requested channel list
    day: np.ndarray  # int64 epoch-day numbers
    values: np.ndarray  # float64 (rows, slots)
    quality: np.ndarray  # uint8 (rows, slots)
    digests: list[str]


def copy_day_arrays(cur: Any, table: str, layer: str, lo: date, hi: date, channel_ids: Sequence[str],
                    interval_minutes: int) -> DayArrays | None:
    """The current days of ``channel_ids`` in ``lo..hi`` stored at ``interval_minutes``, through one binary
    ``COPY ... TO STDOUT`` with one record per channel.

    The server joins each channel's days into one record: the epoch-day
    numbers as packed big-endian int32, the value and quality blobs and the hashes, each
    concatenated. A record per channel instead of per channel-day keeps the per-message
    cost of the COPY stream out of the read; NumPy takes the arrays from the joined bytes.
    None when some day of these channels is stored at another interval length (the caller
    reads those rows one by one).
    """
    ids = list(channel_ids)
    n = 1440 // interval_minutes
    cur.execute(f"SELECT 1 FROM {table} WHERE layer = %s AND is_current AND day >= %s AND day <= %s "
                "AND channel_id = ANY(%s) AND interval_minutes <> %s LIMIT 1", (layer, lo, hi, ids, interval_minutes))
    if cur.fetchone() is not None:
        return None
    # no ORDER BY inside the aggregates (a sort per channel on the server): the aggregates of one
    # group see its rows in the same order, and NumPy puts the days in order here
    sql = (f"COPY (SELECT channel_id, string_agg(int4send(day - DATE '1970-01-01'), ''::bytea), "
           "string_agg(\"values\", ''::bytea), string_agg(quality, ''::bytea), "
           f"string_agg(content_hash, '') FROM {table} WHERE layer = %s AND is_current "
           "AND day >= %s AND day <= %s AND channel_id = ANY(%s) GROUP BY channel_id) TO STDOUT (FORMAT BINARY)")
    index = {c: i for i, c in enumerate(ids)}
    names, days, vals, quals, digests = [], [], [], [], []
    with cur.copy(sql, (layer, lo, hi, ids)) as copy:
        copy.set_types(("varchar", "bytea", "bytea", "bytea", "text"))
        for cid, d, v, q, h in copy.rows():  # one record per channel
            names.append(index[cid])
            days.append(d)
            vals.append(v)
            quals.append(q)
            digests.append(h)
    day = np.frombuffer(b"".join(days), dtype=">i4").astype(np.int64)
    counts = np.array([len(d) // 4 for d in days], dtype=np.int64)
    ch = np.repeat(np.array(names, dtype=np.int64), counts)
    values = np.frombuffer(b"".join(vals), dtype="<f8").reshape(-1, n)
    quality = np.frombuffer(b"".join(quals), dtype=np.uint8).reshape(-1, n)
    hexes = "".join(digests)
    if not (len(values) == len(quality) == len(day) == len(hexes) // 64):
        raise ValueError(f"binary COPY of {table}: the joined days, values, qualities and hashes differ in length")
    order = np.lexsort((day, ch))
    return DayArrays(channel=ch[order], day=day[order], values=values[order], quality=quality[order],
                     digests=[hexes[64 * k:64 * k + 64] for k in order.tolist()])


def place_day_arrays(grid: Any, got: DayArrays, channel_ids: Sequence[str], first_row: int, hashes: Any) -> None:
    """Copy ``got`` into the rows ``first_row + position`` of a read's result grid (values, quality,
    filled days) and record each channel's day hashes, by channel id then day.

    One slice assignment per run of consecutive days of a channel (a loop over channels and
    gaps, never over intervals).
    """
    if not len(got.day):
        return
    n = grid.n_slots
    grid.filled[got.channel + first_row, got.day - grid.d_first] = True
    # a run ends where the channel changes or a day is skipped
    cuts = np.flatnonzero((np.diff(got.channel) != 0) | (np.diff(got.day) != 1)) + 1
    bounds = [0, *cuts.tolist(), len(got.day)]
    flat_v = got.values.reshape(-1)
    flat_q = got.quality.reshape(-1)
    for a, b in zip(bounds[:-1], bounds[1:], strict=False):
        row = int(got.channel[a]) + first_row
        g0 = (int(got.day[a]) - grid.d_first) * n - grid.off
        lo, hi = max(0, g0), min(grid.n_int, g0 + (b - a) * n)
        if hi > lo:
            grid.values[row, lo:hi] = flat_v[a * n + lo - g0:a * n + hi - g0]
            grid.quality[row, lo:hi] = flat_q[a * n + lo - g0:a * n + hi - g0]
    ch_cuts = np.flatnonzero(np.diff(got.channel)) + 1
    ch_bounds = [0, *ch_cuts.tolist(), len(got.channel)]
    # in channel id order, as the row-by-row read adds them
    segments = sorted((channel_ids[int(got.channel[a])], a, b) for a, b in zip(ch_bounds[:-1], ch_bounds[1:],
                                                                              strict=False))
    for cid, a, b in segments:
        hashes.add(cid, got.day[a:b], got.digests[a:b])
