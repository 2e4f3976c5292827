"""Reading current days into a dense (channels x intervals) matrix: :func:`read_matrix`.

SQLite hands each channel's days over as one joined row (each day's values and quality
blobs as one record, the records, digests and days concatenated by SQLite itself);
PostgreSQL too, in psycopg's binary format (the values and the quality blobs joined apart,
the days as int4 numbers, in the order the key gives them: checked and, where needed, put
in day order here), the next query of the read fetched while the rows of one are copied
(:func:`fetched_ahead`). Runs of consecutive days are copied into the channel's row of the
result in one step.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import date
from itertools import groupby
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from kwhub.core.intervals import SECONDS_PER_DAY, DayHashes, IntervalDataError, IntervalMatrix
from kwhub.core.timeline import Span
from kwhub.hub.store.day_batches import MISSING, iso_instant, slots_of
from kwhub.hub.store.day_sql import (
    CHANNEL_DAY,
    EPOCH_DAY,
    EPOCH_ORDINAL,
    READ_MMAP_MIN_VALUES,
    check_layer,
    chunks,
    day_sql,
    dbapi_cursor,
    raw_day_numbers,
)

if TYPE_CHECKING:
    from kwhub.hub.store.db import Database

_MINUTES_PER_DAY = 1440
_PG_JOINED_FIELDS = 9  # a DaySql.read_joined_array row (SQLite's read_joined rows have 8)


class DayGrid:
    """The result arrays of one ``read_matrix`` and how stored days map onto them.

    Day ``d`` slot ``k`` of the read lands in column ``(d - d_first) * n_slots + k - off``;
    columns outside ``[0, n_int)`` belong to the UTC days the span only partly covers.
    """

    def __init__(self, n_ch: int, n_int: int, n_days: int, n_slots: int, d_first: int, off: int,
                 interval_minutes: int) -> None:
        self.values = np.empty((n_ch, n_int))
        self.quality = np.empty((n_ch, n_int), dtype=np.uint8)
        self.filled = np.zeros((n_ch, n_days), dtype=bool)
        self.n_int, self.n_slots, self.d_first, self.off = n_int, n_slots, d_first, off
        self.minutes = interval_minutes
        self._iso: str | None = None

    def place(self, ci: int, cid: str, rows: Sequence[Any], hashes: DayHashes) -> None:
        """Copy one channel's rows ``(channel, day, minutes, values, quality, hash)``, in day order."""
        _, raw_days, minutes, vals, quals, digests = zip(*rows, strict=True)
        k = len(raw_days)
        # rows come in day order, one per day: first and last day tell whether they are consecutive
        ends = raw_day_numbers((raw_days[0], raw_days[-1]))
        consecutive = int(ends[1] - ends[0]) == k - 1
        day_no = np.arange(ends[0], ends[0] + k, dtype=np.int64) if consecutive else raw_day_numbers(raw_days)
        hashes.add(cid, day_no, digests)
        d0 = int(day_no[0]) - self.d_first
        if consecutive:
            self.filled[ci, d0:d0 + k] = True
        else:
            self.filled[ci, day_no - self.d_first] = True
        if consecutive and minutes.count(minutes[0]) == k:
            bounds = [0, k]  # one run
        else:
            mins = np.array(minutes, dtype=np.int64)
            cuts = np.flatnonzero((np.diff(day_no) != 1) | (np.diff(mins) != 0)) + 1
            bounds = [0, *cuts.tolist(), k]
        for a, b in zip(bounds[:-1], bounds[1:], strict=False):
            self._copy(ci, cid, int(day_no[a]), int(minutes[a]),
                       vals[a] if b - a == 1 else b"".join(vals[a:b]), quals[a] if b - a == 1 else b"".join(quals[a:b]),
                       b - a)

    def _copy(self, ci: int, cid: str, day0: int, stored: int, vals: Any, quals: Any, n_days: int) -> None:
        """Copy ``n_days`` consecutive stored days from ``day0`` into row ``ci``: joined blobs,
        or arrays of one row per day (``(n_days, slots)`` values and quality)."""
        if self.minutes % stored:
            raise IntervalDataError(
                f"channel {cid} is stored with {stored}-minute intervals and cannot be read as "
                f"{self.minutes}-minute intervals", source=cid, field="interval_minutes")
        f = self.minutes // stored
        g0 = (day0 - self.d_first) * self.n_slots - self.off
        if isinstance(vals, np.ndarray) and f == 1:
            _put_days(self.values[ci], g0, vals)
            _put_days(self.quality[ci], g0, quals)
            return
        v = vals.reshape(-1) if isinstance(vals, np.ndarray) else np.frombuffer(vals, dtype="<f8")
        q = quals.reshape(-1) if isinstance(quals, np.ndarray) else np.frombuffer(quals, dtype=np.uint8)
        if f > 1:
            q = q.reshape(-1, f).max(axis=1)
            v = v.reshape(-1, f).sum(axis=1)
            v[q == MISSING] = np.nan
        lo, hi = max(0, g0), min(self.n_int, g0 + n_days * self.n_slots)
        if hi > lo:
            self.values[ci, lo:hi] = v[lo - g0:hi - g0]
            self.quality[ci, lo:hi] = q[lo - g0:hi - g0]

    def place_joined(self, ci: int, cid: str, row: Sequence[Any], hashes: DayHashes) -> bool:
        """Copy one channel's days from a :meth:`DaySql.read_joined` row (SQLite) or a
        ``DaySql.read_joined_array`` row (PostgreSQL); False (nothing done) unless they are
        distinct days at one interval length, each whole (and, on SQLite, in day order)."""
        if len(row) == _PG_JOINED_FIELDS:
            return self._place_pg_joined(ci, cid, row, hashes)
        _, k, m_lo, m_hi, records, digests, day_list, top_version = row
        if m_lo != m_hi or not isinstance(day_list, str) or not isinstance(digests, str) or not isinstance(records, bytes):
            return False
        stored = int(m_lo)
        if stored <= 0 or _MINUTES_PER_DAY % stored:
            return False
        per_day = _MINUTES_PER_DAY // stored
        if len(records) != 9 * per_day * k or len(day_list) != 10 * k:
            return False
        if digests.count(",") != k - 1:  # kept joined: DayHashes splits them if a lookup needs it
            return False
        try:
            d0 = date.fromisoformat(day_list[:10]).toordinal() - EPOCH_ORDINAL
            d1 = date.fromisoformat(day_list[-10:]).toordinal() - EPOCH_ORDINAL
        except ValueError:
            return False
        n_days = self.filled.shape[1]
        if not (0 <= d0 - self.d_first <= d1 - self.d_first < n_days):
            return False
        # one record per day: the day's values (8 bytes a slot) then its quality (a byte a slot)
        days = np.frombuffer(records, dtype=np.dtype([("v", "<f8", (per_day,)), ("q", np.uint8, (per_day,))]))
        if d1 - d0 + 1 == k and day_list == self.iso_days(d0, d1):
            hashes.add(cid, np.arange(d0, d1 + 1, dtype=np.int64), digests)
            self.filled[ci, d0 - self.d_first:d1 - self.d_first + 1] = True
            self._copy(ci, cid, d0, stored, days["v"], days["q"], k)
            hashes.note_versions(cid, top_version != 1)
            return True
        day_no = self._day_numbers(day_list)  # days with gaps between them
        if day_no is None:
            return False
        hashes.add(cid, day_no, digests)
        self.filled[ci, day_no - self.d_first] = True
        cuts = np.flatnonzero(np.diff(day_no) != 1) + 1
        for a, b in zip([0, *cuts.tolist()], [*cuts.tolist(), k], strict=True):
            self._copy(ci, cid, int(day_no[a]), stored, days["v"][a:b], days["q"][a:b], b - a)
        hashes.note_versions(cid, top_version != 1)
        return True

    def _place_pg_joined(self, ci: int, cid: str, row: Sequence[Any], hashes: DayHashes) -> bool:
        """:meth:`place_joined` of a PostgreSQL row: the values blobs joined, the quality blobs
        joined, the digests comma-separated and the days as big-endian int4 epoch-day numbers,
        all in one order (day order as the key hands them over; put in day order here if not)."""
        _, k, m_lo, m_hi, vals, quals, digests, day_bytes, top_version = row
        if m_lo != m_hi or not isinstance(digests, str) or not isinstance(day_bytes, bytes):
            return False
        stored = int(m_lo)
        if stored <= 0 or _MINUTES_PER_DAY % stored:
            return False
        per_day = _MINUTES_PER_DAY // stored
        if (not isinstance(vals, bytes) or not isinstance(quals, bytes) or len(vals) != 8 * per_day * k
                or len(quals) != per_day * k or len(day_bytes) != 4 * k or digests.count(",") != k - 1):
            return False
        day_no = np.frombuffer(day_bytes, dtype=">i4").astype(np.int64)
        v = np.frombuffer(vals, dtype="<f8").reshape(k, per_day)
        q = np.frombuffer(quals, dtype=np.uint8).reshape(k, per_day)
        steps = np.diff(day_no)
        if k > 1 and not (steps > 0).all():  # not in day order: put them in order (a repeated day: refused)
            order = np.argsort(day_no, kind="stable")
            day_no, v, q = day_no[order], v[order], q[order]
            steps = np.diff(day_no)
            if not (steps > 0).all():
                return False
            listed = digests.split(",")
            digests = ",".join([listed[i] for i in order.tolist()])
        d0, d1 = int(day_no[0]), int(day_no[-1])
        if not (self.d_first <= d0 and d1 < self.d_first + self.filled.shape[1]):
            return False
        hashes.add(cid, day_no, digests)
        if d1 - d0 + 1 == k:  # consecutive days: one copy
            self.filled[ci, d0 - self.d_first:d1 - self.d_first + 1] = True
            self._copy(ci, cid, d0, stored, v, q, k)
        else:
            self.filled[ci, day_no - self.d_first] = True
            cuts = np.flatnonzero(steps != 1) + 1
            for a, b in zip([0, *cuts.tolist()], [*cuts.tolist(), k], strict=True):
                self._copy(ci, cid, int(day_no[a]), stored, v[a:b], q[a:b], b - a)
        hashes.note_versions(cid, top_version != 1)
        return True

    def _day_numbers(self, day_list: str) -> np.ndarray | None:
        """Epoch-day numbers of a joined ISO day list, or None unless they are valid ISO dates
        inside the read, strictly increasing."""
        try:
            days = np.array([day_list[i:i + 10] for i in range(0, len(day_list), 10)], dtype="datetime64[D]")
        except ValueError:
            return None
        if "".join(np.datetime_as_string(days).tolist()) != day_list:  # exactly these ISO dates
            return None
        day_no = (days - EPOCH_DAY).astype(np.int64)
        if (np.diff(day_no) <= 0).any() or day_no[0] < self.d_first or day_no[-1] >= self.d_first + self.filled.shape[1]:
            return None
        return day_no

    def iso_days(self, d0: int, d1: int) -> str:
        """The ISO dates of epoch days ``d0..d1`` (inside the read), joined."""
        if self._iso is None:
            n = self.filled.shape[1]
            days = np.arange(self.d_first, self.d_first + n, dtype=np.int64).astype("datetime64[D]")
            self._iso = "".join(np.datetime_as_string(days).tolist())
        if len(self._iso) != 10 * self.filled.shape[1]:  # years beyond 9999: not joined
            return ""
        return self._iso[10 * (d0 - self.d_first):10 * (d1 - self.d_first + 1)]

    def mark_missing(self) -> None:
        """NaN / MISSING in every column no stored day filled."""
        if self.filled.all():
            return
        gap = np.repeat(~self.filled, self.n_slots, axis=1)[:, self.off:self.off + self.n_int]
        self.values[gap] = np.nan
        self.quality[gap] = MISSING


def _put_days(row: np.ndarray, g0: int, days: np.ndarray) -> None:
    """``row[g0:g0 + days.size] = days.ravel()`` clipped to the row, without flattening ``days``
    (one row per day, possibly strided): whole days in one 2-D copy, a partial first or last
    day on its own."""
    k, n = days.shape
    lo, hi = max(0, g0), min(row.shape[0], g0 + k * n)
    if hi <= lo:
        return
    r0, r1 = (lo - g0) // n, -(-(hi - g0) // n)  # the days touched: r0 .. r1 - 1
    a = r0 if lo == g0 + r0 * n else r0 + 1  # the whole days: a .. b - 1
    b = r1 if hi == g0 + r1 * n else r1 - 1
    if b > a:
        row[g0 + a * n:g0 + b * n].reshape(b - a, n)[...] = days[a:b]
    if a > r0:  # the first day touched, in part
        end = min(hi, g0 + (r0 + 1) * n)
        row[lo:end] = days[r0, lo - g0 - r0 * n:end - g0 - r0 * n]
    if b < r1 and not (a > r0 and r1 - 1 == r0):  # the last day touched, in part
        start = g0 + (r1 - 1) * n
        row[start:hi] = days[r1 - 1, :hi - start]


def fetched_ahead(cur: Any, query: str, params: Sequence[Sequence[Any]]) -> Generator[list[Any], None, None]:
    """The rows of ``query`` for each parameter tuple of ``params``, in order; with more than
    one, the next query runs on a worker thread (same cursor, same transaction) while the
    caller handles the rows of the one before.

    PostgreSQL works out a chunk of the read in its own process and the driver waits for it
    without the interpreter lock, so the server's part of chunk ``i + 1`` overlaps the copy
    of chunk ``i`` into the matrix instead of following it. The worker's query is always
    finished before this returns or raises (nothing is left running on the cursor).
    """
    if len(params) <= 1:
        for p in params:
            cur.execute(query, p)
            yield cur.fetchall()
        return

    def fetch(p: Sequence[Any]) -> list[Any]:
        cur.execute(query, p)
        return cur.fetchall()  # type: ignore[no-any-return]

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kwhub-fetch") as pool:
        pending = pool.submit(fetch, params[0])
        for i in range(len(params)):
            rows = pending.result()
            if i + 1 < len(params):
                pending = pool.submit(fetch, params[i + 1])
            yield rows


def read_matrix(db: Database, channel_ids: Sequence[str], span: Span, interval_minutes: int,
                layer: str = "validated", *, joined: bool = True) -> IntervalMatrix:
    """Dense (channels x intervals) matrix over ``span``; NaN + MISSING where absent.

    Days stored at a finer interval are summed up to ``interval_minutes`` (a coarse
    interval with any missing part is NaN, its quality the worst of its parts).
    ``day_hashes`` gets the content hash of every (channel, day) read.

    Each channel's days arrive in day order; runs of consecutive days are joined and
    copied into the channel's row of the result in one step, clipped to the span. ``joined``: each channel's days as one joined row,
    with the highest version read (SQLite, and PostgreSQL through an array of channels; False: a row per
    channel-day, the path the joined read falls back to).
    """
    check_layer(layer)
    ids = list(channel_ids)
    if len(set(ids)) != len(ids):
        raise ValueError("channel_ids contains duplicates")
    n_slots = slots_of(interval_minutes, "read_matrix")
    step = interval_minutes * 60
    s0, s1 = span.start_epoch, span.end_epoch
    if s0 % step or s1 % step or s1 < s0:
        raise IntervalDataError(f"span {iso_instant(s0)}..{iso_instant(s1)} is not on the {interval_minutes}-minute grid",
                                source="read_matrix", field="span")
    n_int = (s1 - s0) // step
    d_first = s0 // SECONDS_PER_DAY
    d_last = max(d_first, (s1 - 1) // SECONDS_PER_DAY) if n_int else d_first
    n_days = d_last - d_first + 1
    grid = DayGrid(len(ids), n_int, n_days, n_slots, d_first, (s0 - d_first * SECONDS_PER_DAY) // step,
                 interval_minutes)
    hashes = DayHashes()
    if n_int and ids:
        with db.read_connection() as conn:
            sql = day_sql(conn.dialect)
            lo, hi = sql.days(np.array([d_first, d_last]))
            cur = dbapi_cursor(conn, binary=sql.copy)  # psycopg: blobs as bytes on the wire, not hex text
            mapped = sql.sqlite and len(ids) * n_int >= READ_MMAP_MIN_VALUES
            try:
                if mapped:
                    cur.execute(sql.read_mmap)  # before the first read of the transaction
                if sql.sqlite:
                    pos = {c: i for i, c in enumerate(ids)}
                    rest: list[str] = []
                    for chunk in chunks(ids) if joined else ():
                        cur.execute(sql.read_joined(len(chunk)), (layer, True, lo, hi, *chunk))
                        for row in cur:
                            if not grid.place_joined(pos[row[0]], row[0], row, hashes):
                                rest.append(row[0])
                    for cid in rest if joined else ids:  # day by day
                        cur.execute(sql.read_one, (cid, layer, lo, hi, True))
                        rows = cur.fetchall()
                        if rows:
                            grid.place(pos[cid], cid, rows, hashes)
                else:
                    pos = {c: i for i, c in enumerate(ids)}
                    rest = ids
                    if joined and sql.postgres:
                        rest = []
                        # no JIT: with planner statistics (after IntervalStore.maintain or autovacuum)
                        # a long span's estimate passes jit_above_cost, and compiling the per-row
                        # expressions (a fifth of a second for a year of 500 channels) buys nothing
                        # here, where the time goes into joining and sending the blobs
                        cur.execute(sql.no_jit)
                        params = [(list(chunk), layer, True, lo, hi) for chunk in chunks(ids)]
                        with closing(fetched_ahead(cur, sql.read_joined_array, params)) as fetched:
                            for rows in fetched:
                                for row in rows:
                                    if row[1] and not grid.place_joined(pos[row[0]], row[0], row, hashes):
                                        rest.append(row[0])
                    for chunk in chunks(rest):  # row by row (PostgreSQL: what the joined read left)
                        cur.execute(sql.read(len(chunk)), (layer, True, lo, hi, *chunk))
                        # sorted here: a server-side ORDER BY of the blob rows spills to disk
                        rows = sorted(cur.fetchall(), key=CHANNEL_DAY)
                        for cid, group in groupby(rows, key=itemgetter(0)):
                            grid.place(pos[cid], cid, list(group), hashes)
            finally:
                if mapped:  # the pooled connection goes back unmapped
                    cur.execute(sql.read_unmap)
                cur.close()
    grid.mark_missing()
    return IntervalMatrix(channel_ids=ids, start_epoch=s0, interval_minutes=interval_minutes,
                          values=grid.values, quality=grid.quality, day_hashes=hashes)
