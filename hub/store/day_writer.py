"""Raw interval writes that keep what VEE needs: the dense days of channels new to the store.

:class:`RawDayWriter` writes a batch (or the consecutive batches of one streamed file) to
the raw layer through :class:`~kwhub.hub.store.interval_store.IntervalStore`, in the
caller's transaction, and keeps, for every channel that had no stored row before the
first write, the dense ``(days, slots)`` arrays as written and each day's content hash.
For such a channel those arrays are the whole stored history, so VEE can validate them
without reading the days back (:func:`kwhub.hub.ingest.vee.validate_days` ``fresh=``), and
a validated day equal to its raw day reuses the raw day's hash.

On SQLite those first versions are inserted by a worker thread while the caller goes on
with the next batch (one statement per channel: the driver lets go of the GIL while SQLite
cuts and stores the channel's rows); every other use of the connection waits for the
insert in flight, and so do :meth:`RawDayWriter.fresh` and :meth:`RawDayWriter.close` (use
the writer as a context manager inside the transaction), so a failed insert raises before
the commit.

The hashes are computed here, once, the way the store computes them for the canonical
content (a NaN value is MISSING and a MISSING slot NaN, no rule ids), and handed to the
store as the days' known hashes; a channel whose arrays are not in canonical form is
written as usual and not kept.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from sqlalchemy import Connection, select

from kwhub.core.intervals import ChannelSeries
from kwhub.core.quality import Quality
from kwhub.hub.store.day_batches import ChannelDays, prepare_series
from kwhub.hub.store.day_sql import day_sql, dbapi_cursor
from kwhub.hub.store.interval_store import SOURCE_MAX, WriteReport
from kwhub.hub.store.tables import interval_day_table, utcnow

_MISSING = np.uint8(Quality.MISSING)
_IN_CHUNK = 500
#: arrays kept for VEE at most (9 bytes per interval: about 7.4M intervals); the channels
#: beyond are read back by VEE in bounded chunks, so memory does not grow with the file
FRESH_KEEP_BYTES = 64 << 20


@dataclass
class FreshDays:
    """One channel's days as written to the raw layer (epoch-day numbers ascending)."""

    interval_minutes: int
    days: np.ndarray  # int64 epoch days
    values: np.ndarray  # float64 (days, slots), NaN where MISSING
    quality: np.ndarray  # uint8 (days, slots)
    #: content hash per day: hex digests as fixed-width ASCII (``S64``: no object per day)
    digests: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype="S64"))

    def digest_list(self, mask: np.ndarray | None = None) -> list[str]:
        """The hex digests (of the days where ``mask``) as strings."""
        d = self.digests if mask is None else self.digests[mask]
        return [x.decode("ascii") for x in d.tolist()]


class DayBytes(NamedTuple):
    """One channel's days as the store keeps them: ISO dates, and the values and quality
    blobs of all days (``values_per_day`` / ``quality_per_day`` bytes each, day after day)."""

    iso: list[str]
    values: bytes
    quality: bytes
    values_per_day: int
    quality_per_day: int


def day_bytes(days: np.ndarray, values: np.ndarray, quality: np.ndarray) -> DayBytes:
    """The days' ISO dates and blobs (one copy of each array; days are cut where needed)."""
    iso = np.datetime_as_string(np.asarray(days, dtype=np.int64).astype("datetime64[D]")).tolist()
    vb = np.ascontiguousarray(values, dtype="<f8").tobytes()
    qb = np.ascontiguousarray(quality, dtype=np.uint8).tobytes()
    n = len(iso)
    return DayBytes(iso, vb, qb, *((len(vb) // n, len(qb) // n) if n else (0, 0)))


def _digests(channel_id: str, interval_minutes: int, parts: DayBytes) -> list[str]:
    """Each day's digest: the store's canonical content hash (the blobs read in place, not copied)."""
    pre, post = f"{channel_id}|", f"|{interval_minutes}|"
    sha = hashlib.sha256
    vm, qm = memoryview(parts.values), memoryview(parts.quality)
    rv, rq = parts.values_per_day, parts.quality_per_day
    out: list[str] = []
    for i, d in enumerate(parts.iso):
        h = sha(f"{pre}{d}{post}".encode())
        h.update(vm[i * rv:(i + 1) * rv])
        h.update(qm[i * rq:(i + 1) * rq])
        out.append(h.hexdigest())
    return out


def day_digests(channel_id: str, interval_minutes: int, days: np.ndarray, values: np.ndarray,
                quality: np.ndarray) -> list[str]:
    """Content hashes of canonical days without rule ids (what the store computes)."""
    return _digests(channel_id, interval_minutes, day_bytes(days, values, quality))


def _canonical(values: np.ndarray, quality: np.ndarray) -> bool:
    return bool((np.isnan(values) == (quality == _MISSING)).all())


class InsertWorker:
    """One thread that runs a writer's bulk inserts on its connection while the caller goes on.

    At most one insert is in flight: :meth:`submit` and :meth:`wait` (call it before any
    other use of the connection) wait for the one before, and raise its error. :meth:`close`
    waits and stops the thread; it must run before the transaction ends.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._pool: ThreadPoolExecutor | None = None  # started with the first insert
        self._pending: Future[None] | None = None

    def submit(self, cur: Any, sql: str, params: list[tuple[Any, ...]]) -> None:
        """``cur.executemany(sql, params)`` in the thread, then the cursor is closed."""
        self.wait()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix=self.name)
        self._pending = self._pool.submit(_insert_days, cur, sql, params)

    def wait(self) -> None:
        """Wait for the insert in flight (its error, if any, raises here)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        """Wait for the insert in flight and stop the thread (the connection is the caller's again)."""
        try:
            self.wait()
        finally:
            pool, self._pool = self._pool, None
            if pool is not None:
                pool.shutdown(wait=True)


#: days per statement of ``plain_insert_days``: SQLite reads a bound blob once per row it
#: cuts, so the cost grows with days x blob; 365 days in one statement cost twice the plain
#: per-day insert, 32 days a little less than it
DAYS_PER_INSERT = 32


def first_version_params(channel_id: str, interval_minutes: int, parts: DayBytes, quality: np.ndarray,
                         digests: Sequence[str | None], source: str) -> list[tuple[Any, ...]]:
    """The parameters of :meth:`~kwhub.hub.store.day_sql.DaySql.plain_insert_days` for one
    channel's canonical days without rule ids (``digests``: every day's, none None), one
    tuple per ``DAYS_PER_INSERT`` days, in day order."""
    n_values = (quality.shape[1] - np.count_nonzero(quality == _MISSING, axis=1) + 10000).astype("S5")  # 5 digits
    iso, rv, rq = "".join(parts.iso), parts.values_per_day, parts.quality_per_day
    hashes = "".join(digests)  # type: ignore[arg-type]
    n = len(parts.iso)
    if n <= DAYS_PER_INSERT:
        return [(n, channel_id, iso, interval_minutes, n_values.tobytes().decode("ascii"), parts.values, rv,
                 parts.quality, rq, hashes, source)]
    out = []
    for a in range(0, n, DAYS_PER_INSERT):
        b = min(a + DAYS_PER_INSERT, n)
        out.append((b - a, channel_id, iso[a * 10:b * 10], interval_minutes,
                    n_values[a:b].tobytes().decode("ascii"), parts.values[a * rv:b * rv], rv,
                    parts.quality[a * rq:b * rq], rq, hashes[a * 64:b * 64], source))
    return out


class RawDayWriter:
    """Writes raw batches in one transaction and keeps the fresh channels' dense days.

    ``keep``: keep the arrays of fresh channels (False: only write), at most ``keep_bytes``
    of them (default ``FRESH_KEEP_BYTES``; the channels kept last are let go first, VEE
    reads those back). Call :meth:`write`
    per batch (a streamed file's batches hold distinct days of each channel), then
    :meth:`fresh` for the kept arrays. Use it as a context manager inside the transaction
    (or call :meth:`close`): the insert in flight is waited for on the way out.
    """

    def __init__(self, db: Any, conn: Connection, source: str, keep: bool = True,
                 keep_bytes: int | None = None) -> None:
        self.db = db
        self.conn = conn
        self.source = source
        self.keep = keep
        self.keep_bytes = FRESH_KEEP_BYTES if keep_bytes is None else keep_bytes
        self.report = WriteReport()
        self._known: set[str] | None = None  # channels with any stored row before the first write
        self._parts: dict[str, list[FreshDays]] = {}
        self._dropped: set[str] = set()
        self._kept = 0  # bytes of the arrays kept
        # channels new to the store: interval length and last epoch day written by this writer
        self._last: dict[str, tuple[int, int]] = {}
        self._worker = InsertWorker("kwhub-raw-insert")

    def __enter__(self) -> RawDayWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
            return
        try:  # the transaction is rolled back next: the worker must be done with the connection first
            self.close()
        except Exception:  # noqa: BLE001 - the error already on its way is the one to report
            pass

    def close(self) -> None:
        """Wait for the insert in flight and stop the worker (the connection is the caller's again)."""
        self._worker.close()

    def _over_budget(self) -> None:
        """Let go of the channels kept last until the arrays fit ``keep_bytes`` (VEE reads those back)."""
        while self._kept > self.keep_bytes and self._parts:
            cid = next(reversed(self._parts))
            self._kept -= sum(p.values.nbytes + p.quality.nbytes for p in self._parts.pop(cid))
            self._dropped.add(cid)

    def _stored(self, ids: Sequence[str]) -> set[str]:
        t = interval_day_table.c
        found: set[str] = set()
        for i in range(0, len(ids), _IN_CHUNK):
            rows = self.conn.execute(select(t.channel_id).where(t.channel_id.in_(ids[i:i + _IN_CHUNK])).distinct())
            found.update(r[0] for r in rows)
        return found

    def write(self, series: Sequence[ChannelSeries]) -> WriteReport:
        """Write one batch's series to the raw layer (merged with what is stored).

        When every channel of the batch is new to the store (no row before this writer's
        first write) and the batch's days of each follow the days written before, the day
        rows are inserted straight away (the first versions ``_commit`` would insert: no
        current version to look up, nothing to merge); otherwise the store merges as usual.
        """
        if not series:
            return WriteReport()
        prepared = prepare_series(series, self.source)
        ids = {cd.channel_id for cd in prepared}
        if self._known is None:
            self._worker.wait()
            self._known = self._stored(sorted(ids))
        else:  # channels first seen in a later batch of the same file
            new = sorted(ids - self._known - set(self._last))
            if new:
                self._worker.wait()
                self._known |= self._stored(new)
        direct: list[tuple[ChannelDays, DayBytes]] | None = []
        for cd in prepared:
            cid = cd.channel_id
            if cid in self._known:
                direct = None
                continue
            prev = self._last.get(cid)
            follows = prev is None or (prev[0] == cd.interval_minutes and int(cd.days[0]) > prev[1])
            self._last[cid] = (cd.interval_minutes if prev is None else prev[0],
                               max(int(cd.days[-1]), prev[1] if prev is not None else int(cd.days[-1])))
            if cd.rule_ids is not None:
                direct = None
                continue
            if not _canonical(cd.values, cd.quality):
                direct = None
                self._dropped.add(cid)
                self._kept -= sum(p.values.nbytes + p.quality.nbytes for p in self._parts.pop(cid, []))
                continue
            parts = day_bytes(cd.days, cd.values, cd.quality)
            digests = _digests(cid, cd.interval_minutes, parts)
            cd.known_hashes = digests
            if direct is not None and follows:
                direct.append((cd, parts))
            else:
                direct = None
            if self.keep and cid not in self._dropped:
                self._parts.setdefault(cid, []).append(
                    FreshDays(cd.interval_minutes, cd.days, cd.values, cd.quality, np.array(digests, dtype="S64")))
                self._kept += cd.values.nbytes + cd.quality.nbytes
        self._over_budget()
        report = WriteReport(intervals=int(sum(len(s) for s in series)))
        self._worker.wait()  # (the connection is used below: the previous batch's insert is done first)
        if direct and self._insert_first(direct, report):
            pass
        else:
            report = self.db.intervals._commit(prepared, "raw", self.source, merge=True, conn=self.conn,
                                               report=report)
        self.report.add(report)
        return report

    def _insert_first(self, items: list[tuple[ChannelDays, DayBytes]], report: WriteReport) -> bool:
        """Insert first versions (canonical days without rule ids, hashes known): one row of
        parameters per channel, SQLite cutting the channel's day rows from its blobs
        (:meth:`~kwhub.hub.store.day_sql.DaySql.plain_insert_days`).

        The rows are the ones ``IntervalStore._commit`` inserts for days of a channel without
        stored rows, in the same order. False (nothing done) where that path has no plain
        insert (PostgreSQL: its COPY path and partitions). The insert runs in the worker
        thread (see the module docstring)."""
        sql = day_sql(self.conn.dialect)
        insert = sql.plain_insert_days("raw", sql.ts(utcnow()))
        if insert is None:
            return False
        src = self.source[-SOURCE_MAX:]
        params: list[tuple[Any, ...]] = []
        for cd, parts in items:
            assert cd.known_hashes is not None
            params += first_version_params(cd.channel_id, cd.interval_minutes, parts, cd.quality,
                                           cd.known_hashes, src)
            report.new_days += len(parts.iso)
        self._worker.submit(dbapi_cursor(self.conn), insert, params)  # (dbapi_cursor begins, if not yet)
        return True

    def fresh(self) -> dict[str, FreshDays]:
        """Per fresh channel: its days as written (batches joined in day order); the parts are let go.
        (The insert in flight is waited for first.)"""
        self._worker.wait()
        out: dict[str, FreshDays] = {}
        for cid in list(self._parts):
            parts = self._parts.pop(cid)  # each channel's parts go as soon as they are joined
            if cid in self._dropped:
                continue
            if len(parts) == 1:
                out[cid] = parts[0]
                continue
            days = np.concatenate([p.days for p in parts])
            if len(days) > 1 and not bool((days[1:] > days[:-1]).all()):
                continue  # a day written twice (merged in the store): read back instead
            out[cid] = FreshDays(parts[0].interval_minutes, days, np.concatenate([p.values for p in parts]),
                                 np.concatenate([p.quality for p in parts]),
                                 np.concatenate([p.digests for p in parts]))
        self._parts.clear()
        return out


def _insert_days(cur: Any, sql: str, params: list[tuple[Any, ...]]) -> None:
    """The insert worker's task: one ``executemany`` on the writer's cursor, then close it."""
    try:
        cur.executemany(sql, params)
    finally:
        cur.close()
