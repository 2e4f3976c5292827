"""The write side of a VEE run: validated days per channel and the run's events, one transaction.

:class:`_ValidatedWriter` writes each channel's validated days through the store's dense
path as soon as the engine is done with the channel (one write transaction for the whole
run, committed with the events, rolled back if the run fails). For a channel new to the
store (its raw days just written, no validated day yet) the days no rule touched, equal to
their raw days, are first versions with known digests: on SQLite they are inserted with
one statement per channel by a worker thread while the engine validates the next channel
(:class:`~kwhub.hub.store.day_writer.InsertWorker`), the other days through the dense path.
On PostgreSQL the channels are written a batch at a time (up to ``BATCH_BYTES`` of days,
``IntervalStore.write_dense_many``: one COPY, the server storing a channel while the next
one's rows are built), the last batch before the events;
:func:`_insert_events` is
the bulk insert of ``vee_event`` rows; :func:`_raw_equal_hashes` lets a validated day that
no rule touched reuse its raw day's hash.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Mapping
from datetime import date
from typing import Any

import numpy as np

from kwhub.core.campus import Channel
from kwhub.core.intervals import DayBlock, slots_per_day
from kwhub.core.vee import ValidatedDays
from kwhub.hub.store import Database, DenseDays, WriteReport
from kwhub.hub.store.day_sql import day_sql, dbapi_cursor
from kwhub.hub.store.day_writer import InsertWorker, day_bytes, first_version_params
from kwhub.hub.store.interval_store import SOURCE_MAX
from kwhub.hub.store.tables import utcnow

#: PostgreSQL: validated days held for one write (values and quality bytes) at most
BATCH_BYTES = 16 << 20
_EVENT_COLUMNS = ("run_label", "channel_id", "day", "rule_id", "action", "count", "detail", "created_at")


def _insert_events(conn: Any, table: Any, by_column: Mapping[str, list[Any]]) -> None:
    """Bulk insert of ``vee_event`` rows given column by column (one list per name of
    ``_EVENT_COLUMNS``, all of the same length).

    On SQLite straight through the DBAPI cursor of the same transaction, each value put
    through its column type's own bind processor (what SQLAlchemy itself would send, so
    the stored rows are the same), without per-row statement bookkeeping. Elsewhere the
    SQLAlchemy bulk insert.
    """
    dialect = conn.dialect
    if dialect.name != "sqlite" or dialect.paramstyle != "qmark":
        rows = [dict(zip(_EVENT_COLUMNS, r, strict=True))
                for r in zip(*(by_column[name] for name in _EVENT_COLUMNS), strict=True)]
        conn.execute(table.insert(), rows)
        return
    procs = [table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in _EVENT_COLUMNS]
    columns = [by_column[name] for name in _EVENT_COLUMNS]  # (a processed column is a new list)
    for j, proc in enumerate(procs):
        if proc is not None:
            col = columns[j]
            if _EVENT_COLUMNS[j] in ("day", "created_at"):  # few distinct values: process each once
                cache: dict[Any, Any] = {}
                columns[j] = [cache[v] if v in cache else cache.setdefault(v, proc(v)) for v in col]
            else:
                columns[j] = [proc(v) for v in col]
    q = dialect.identifier_preparer.quote
    sql = (f"INSERT INTO {q(table.name)} ({', '.join(q(c) for c in _EVENT_COLUMNS)}) "
           f"VALUES ({', '.join('?' * len(_EVENT_COLUMNS))})")
    cur = conn.connection.driver_connection.cursor()
    try:
        cur.executemany(sql, zip(*columns, strict=True))
    finally:
        cur.close()


def _raw_equal_hashes(cid: str, days: list[date], raw_v: np.ndarray, raw_q: np.ndarray, out: ValidatedDays,
                      raw_hashes: Mapping[str, tuple[np.ndarray, list[str]]]) -> list[str | None] | None:
    """Per validated day: the stored raw day's hash when no rule touched the day and its
    values and quality equal the raw day's byte for byte (the same content, so the same
    digest), else None. None when no day qualifies."""
    values, quality = out.values, out.quality
    if out.days != days or values.shape != raw_v.shape or quality.shape != raw_q.shape:
        return None
    same = (np.ascontiguousarray(values, dtype="<f8").view(np.uint64)
            == np.ascontiguousarray(raw_v, dtype="<f8").view(np.uint64)).all(axis=1)
    same &= (quality == raw_q).all(axis=1)
    same &= ~out.ruled
    read = raw_hashes.get(cid)
    if read is None or not same.any():
        return None
    rd, digests = read
    n = len(days)
    if len(rd) == n and n and days[0].toordinal() - _EPOCH_ORDINAL == int(rd[0]) and \
            (days[-1] - days[0]).days == n - 1 and bool((np.diff(rd) == 1).all()):
        # the usual case: the raw days read are the run's days (consecutive days, the same
        # first day; the run's days are sorted and distinct)
        return [h if ok else None for h, ok in zip(digests, same.tolist(), strict=True)]
    digest_of = dict(zip(rd.tolist(), digests, strict=True))
    found: list[str | None] = [None] * len(days)
    hit = False
    for i in np.flatnonzero(same).tolist():
        h = digest_of.get(days[i].toordinal() - _EPOCH_ORDINAL)
        if h is not None:
            found[i] = h
            hit = True
    return found if hit else None


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_DenseOut = tuple[ValidatedDays, "list[str | None] | None"]


def _as_days(channel: Channel, blocks: list[DayBlock]) -> ValidatedDays:
    """Validated blocks as :class:`ValidatedDays` (for an engine that returned blocks)."""
    n_slots = slots_per_day(channel.interval_minutes)
    rule_ids = np.zeros((len(blocks), n_slots), dtype=np.uint8)
    ruled = np.zeros(len(blocks), dtype=bool)
    for i, b in enumerate(blocks):
        if b.rule_ids is not None and b.rule_ids.any():
            rule_ids[i] = b.rule_ids
            ruled[i] = True
    return ValidatedDays(channel.id, channel.interval_minutes, [b.day for b in blocks],
                         np.stack([b.values for b in blocks]), np.stack([b.quality for b in blocks]),
                         rule_ids, [tuple(b.rule_names) for b in blocks], ruled, compact=True)


class _ValidatedWriter:
    """Writes the validated days of a run as each channel is done, in one write transaction
    that ``finish`` ends with the final step (the events) and commits; ``abort`` rolls it
    back, so a failed run writes nothing. The transaction opens with the first channel's
    days, so memory holds one channel's validated days at a time, not the run's.

    (Writing each whole channel in a background thread while the engine validates the next
    one was measured: slower on 2 cores, the GIL is busy on both sides. What the worker
    does here is only SQLite's part, a statement per 32 days of a new channel's untouched
    days, which holds the GIL for a few binds per statement, not per row.)
    """

    def __init__(self, db: Database, source: str) -> None:
        self.db = db
        self.source = source
        self.report = WriteReport()
        self._tx: contextlib.ExitStack | None = None
        self._conn: Any = None
        self._worker = InsertWorker("kwhub-validated-insert")
        self._batch: list[DenseDays] = []  # PostgreSQL: channels waiting for one write_dense_many
        self._batch_bytes = 0

    def _open(self) -> Any:
        if self._tx is None:
            self._tx = contextlib.ExitStack()
            self._conn = self._tx.enter_context(self.db.write_transaction())
        return self._conn

    def put(self, item: _DenseOut, first_versions: bool = False) -> None:
        """Write one channel's validated days. ``first_versions``: the channel has no validated
        day stored (its raw days were just written to a store without any row of it)."""
        conn = self._open()
        first = self._first_versions(item, conn) if first_versions else None
        rest = item if first is None else first[2]
        if rest is not None and day_sql(conn.dialect).copy:
            # PostgreSQL: channels are written a batch at a time, one COPY streaming them where
            # the role may COPY (the server stores a channel while the next one's rows are built)
            days = _dense_days(rest)
            self._batch.append(days)
            self._batch_bytes += days.values.nbytes + days.quality.nbytes
            if self._batch_bytes >= BATCH_BYTES:
                self._flush(conn)
            return
        self._worker.wait()  # (the connection is the dense path's now)
        if rest is not None:
            d = _dense_days(rest)
            self.report.add(self.db.intervals.write_dense(*d[:7], layer="validated", source=self.source, conn=conn,
                                                          known_hashes=d.known_hashes))
        if first is not None:  # inserted while the engine validates the next channel
            self._worker.submit(dbapi_cursor(conn), first[0], first[1])

    def _flush(self, conn: Any) -> None:
        """Write the channels waiting in the batch (PostgreSQL)."""
        batch, self._batch, self._batch_bytes = self._batch, [], 0
        if batch:
            self.report.add(self.db.intervals.write_dense_many(batch, layer="validated", source=self.source,
                                                               conn=conn))

    def _first_versions(self, item: _DenseOut, conn: Any,
                        ) -> tuple[str, list[tuple[Any, ...]], _DenseOut | None] | None:
        """The days equal to their raw days (known digests) as one insert (SQL, parameters), and
        the other days for the dense path (None: none); None when no day is such or the
        database has no such insert."""
        out, known = item
        if known is None:
            return None
        sql = day_sql(conn.dialect)
        insert = sql.plain_insert_days("validated", sql.ts(utcnow()))
        if insert is None:
            return None
        plain = np.fromiter((k is not None for k in known), dtype=bool, count=len(known))
        if not plain.any():
            return None
        at = np.flatnonzero(plain)
        numbers = np.array([d.toordinal() for d in out.days], dtype=np.int64)[at] - _EPOCH_ORDINAL
        values, quality = out.values[at], out.quality[at]
        params = first_version_params(out.channel_id, out.interval_minutes, day_bytes(numbers, values, quality),
                                      quality, [known[i] for i in at.tolist()], self.source[-SOURCE_MAX:])
        self.report.new_days += len(at)
        self.report.intervals += int(values.size)
        other = np.flatnonzero(~plain)
        if not other.size:
            return insert, params, None
        keep = other.tolist()
        rest = ValidatedDays(out.channel_id, out.interval_minutes, [out.days[i] for i in keep], out.values[other],
                             out.quality[other], out.rule_ids[other], [out.rule_names[i] for i in keep],
                             out.ruled[other], out.compact)
        return insert, params, (rest, None)

    def abort(self) -> None:
        self._batch, self._batch_bytes = [], 0
        try:  # the worker is done with the connection before the rollback
            self._worker.close()
        except Exception:  # noqa: BLE001 - the run's own error is the one to report
            pass
        tx, self._tx = self._tx, None
        if tx is not None:
            try:
                raise _RunAborted
            except _RunAborted:
                tx.__exit__(*sys.exc_info())  # an exception through the transaction: rolled back

    def finish(self, final: Any) -> WriteReport:
        """Run ``final(conn)`` in the run's transaction, commit; the report."""
        conn = self._open()
        try:
            self._worker.close()
            self._flush(conn)
            final(conn)
        except BaseException:
            self.abort()
            raise
        tx, self._tx = self._tx, None
        assert tx is not None
        tx.close()  # commits
        return self.report


class _RunAborted(Exception):
    """Rolls the validated layer's transaction back when a run fails."""


def _dense_days(item: _DenseOut) -> DenseDays:
    """One channel's validated days as the store's dense write takes them, so that it stores
    exactly what ``write_blocks`` stores for the same blocks: per channel the rule names in
    first-seen order over the days, each day's rule ids renumbered into them.
    """
    out, known = item
    values, quality = out.values, out.quality
    names: list[str] = []
    rule_ids = None
    ruled = np.flatnonzero(out.ruled).tolist()
    if ruled:
        rule_ids = np.zeros(values.shape, dtype=np.uint8)
        luts: dict[tuple[str, ...], np.ndarray] = {}
        for i in ruled:
            key = tuple(out.rule_names[i])
            lut = luts.get(key)
            if lut is None:
                for name in key:
                    if name not in names:
                        names.append(name)
                lut = np.zeros(max(len(key), 255) + 1, dtype=np.uint8)
                for k, name in enumerate(key, start=1):
                    lut[k] = names.index(name) + 1
                luts[key] = lut
            rule_ids[i] = lut[out.rule_ids[i]]
    day_numbers = np.array([d.toordinal() for d in out.days], dtype=np.int64) - _EPOCH_ORDINAL
    return DenseDays(out.channel_id, out.interval_minutes, day_numbers, values, quality, rule_ids, names, known)
