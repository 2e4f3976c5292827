"""Interval values per (channel, UTC day, layer, version), moved as whole days.

Writes are vectorised: a batch is cut into dense (days x slots) arrays per channel with
numpy, the current versions of every touched (channel, day) are fetched with a few
SELECTs, merged with numpy, hashed, and written with bulk statements (executemany on
SQLite, COPY on PostgreSQL), all in one write transaction. A day whose content hash is
unchanged gets no new version; a changed day gets version + 1, the old version stays
(``is_current`` false) and a stale mark records the restatement. Reads copy the stored day
arrays into a dense channel x interval matrix.

The hot paths use the DBAPI cursor of the same connection and transaction (no statement
compilation, no Row objects per channel-day): a channel with no stored row at all skips
the lookup of current versions; the lookup reads only id, version, hash and rule names,
and value blobs only for the days a merge needs (days the batch does not fully give).

Canonical content, so that equal data always hashes equal: a NaN value carries no data
and is stored as MISSING; MISSING slots hold NaN; rule ids are renumbered per day to the
rules that day uses (in the order of the writer's ``rule_names``), and a day without any
rule id stores none.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from itertools import repeat
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from sqlalchemy import Connection, func, select

from kwhub.core.intervals import SECONDS_PER_DAY, ChannelSeries, DayBlock, IntervalMatrix
from kwhub.core.timeline import Span
from kwhub.hub.store.day_batches import (
    MISSING,
    ChannelDays,
    batch_error,
    canonical_rules,
    prepare_blocks,
    prepare_dense,
    prepare_series,
    remap_rule_ids,
)
from kwhub.hub.store.day_sql import (
    EPOCH_ORDINAL,
    DaySql,
    check_layer,
    chunks,
    copy_day_rows,
    day_number,
    day_sql,
    dbapi_cursor,
    insert_day_rows,
    raw_day_numbers,
    to_dates,
)
from kwhub.hub.store.matrix_read import read_matrix
from kwhub.hub.store.pg_intervals import copy_in_allowed, ensure_partitions, write_memo
from kwhub.hub.store.tables import as_utc, interval_day_table, stale_mark_table, utcnow

if TYPE_CHECKING:
    from kwhub.hub.store.db import Database

SOURCE_MAX = 400
SQLITE_ANALYSIS_LIMIT = 1000  # index entries ANALYZE samples per index on SQLite (0: all of them)
T = interval_day_table.c
T_VALUES = interval_day_table.c["values"]


@dataclass
class WriteReport:
    """What one write did. ``intervals`` counts the interval values the batch carried."""

    new_days: int = 0
    changed_days: int = 0
    unchanged_days: int = 0
    filled_days: int = 0  # late values filled gaps of the current version (no value changed)
    intervals: int = 0
    stale: list[tuple[str, date]] = field(default_factory=list)

    def add(self, other: WriteReport) -> None:
        """Accumulate ``other`` (a write of the same transaction) into this report."""
        self.new_days += other.new_days
        self.changed_days += other.changed_days
        self.unchanged_days += other.unchanged_days
        self.filled_days += other.filled_days
        self.intervals += other.intervals
        self.stale.extend(other.stale)

    @property
    def written_days(self) -> int:
        """Day rows inserted (new days plus new versions)."""
        return self.new_days + self.changed_days

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly summary."""
        return {
            "new_days": self.new_days,
            "changed_days": self.changed_days,
            "unchanged_days": self.unchanged_days,
            "filled_days": self.filled_days,
            "intervals": self.intervals,
            "stale": [[c, d.isoformat()] for c, d in self.stale],
        }


@dataclass
class MaintenanceReport:
    """What :meth:`IntervalStore.maintain` did: the tables vacuumed and analyzed (PostgreSQL: month
    partitions of ``interval_day``) or analyzed (SQLite: ``interval_day``), the partitions skipped
    because the role may not vacuum them (it does not own them), and the time taken."""

    tables: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly summary."""
        return {"tables": list(self.tables), "skipped": list(self.skipped), "seconds": round(self.seconds, 3)}


@dataclass
class ChannelSummary:
    """Per channel, over the current versions of one layer."""

    channel_id: str
    intervals: int  # slots whose quality is not MISSING
    first_start: datetime | None
    last_end: datetime | None
    total_kwh: float
    days: int = 0
    interval_minutes: int = 0



class StaleMarkInfo(NamedTuple):
    """A restated (channel, day): the version that replaced the previous one."""

    channel_id: str
    day: date
    version: int
    created_at: datetime



class _Old:
    """The current stored version of one (channel, day); blobs only where a merge needs them."""

    __slots__ = ("id", "version", "content_hash", "rule_names", "values", "quality", "rule_ids")

    def __init__(self, id_: int, version: int, content_hash: str, rule_names: str | None) -> None:
        self.id = id_
        self.version = version
        self.content_hash = content_hash
        self.rule_names = rule_names  # JSON names, None when the row has no rule ids
        self.values: bytes | None = None
        self.quality: bytes | None = None
        self.rule_ids: bytes | None = None



def _datetime_or_none(epoch_s: int) -> datetime | None:
    """The instant as a datetime; None for one ``datetime`` cannot hold (a row stored before the checks)."""
    try:
        return datetime.fromtimestamp(int(epoch_s), tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None



class DenseDays(NamedTuple):
    """One channel's days as dense ``(days, slots)`` arrays, for :meth:`IntervalStore.write_dense_many`
    (the arguments of :meth:`IntervalStore.write_dense`)."""

    channel_id: str
    interval_minutes: int
    days: Any  # datetime64[D], epoch-day integers or dates
    values: np.ndarray
    quality: np.ndarray
    rule_ids: np.ndarray | None = None  # 1-based into rule_names (0: no rule)
    rule_names: Sequence[str] = ()
    known_hashes: Sequence[str | None] | None = None


class IntervalStore:
    """Interval data of one :class:`~kwhub.hub.store.db.Database`."""

    #: SQLite: read each channel's days as one joined row (False: a row per channel-day,
    #: the path the joined read falls back to; tests compare the two)
    joined_reads: bool = True

    def __init__(self, db: Database) -> None:
        self.db = db

    # ------------------------------------------------------------------ writing

    def write_series(self, series: Sequence[ChannelSeries], layer: str = "raw", source: str = "",
                     conn: Connection | None = None) -> WriteReport:
        """Merge a batch into the current day versions, all in one write transaction.

        New values win where their quality is not MISSING; other slots keep what is stored.
        Identical content -> no new version; changed content -> version + 1 and a stale mark.
        Any invalid series rejects the whole batch (:class:`IntervalDataError`).
        """
        check_layer(layer)
        prepared = prepare_series(series, source)
        report = WriteReport(intervals=int(sum(len(s) for s in series)))
        return self._commit(prepared, layer, source, merge=True, conn=conn, report=report)

    def write_blocks(self, blocks: Sequence[DayBlock], layer: str = "validated", source: str = "",
                     conn: Connection | None = None) -> WriteReport:
        """Replace each (channel, day)'s content with the block's (a new version only if it differs)."""
        check_layer(layer)
        prepared = prepare_blocks(blocks, source)
        report = WriteReport(intervals=int(sum(len(b.values) for b in blocks)))
        return self._commit(prepared, layer, source, merge=False, conn=conn, report=report)

    def write_dense(self, channel_id: str, interval_minutes: int, days: Any, values: np.ndarray,
                    quality: np.ndarray, rule_ids: np.ndarray | None = None, rule_names: Sequence[str] = (),
                    layer: str = "validated", source: str = "", conn: Connection | None = None, *,
                    known_hashes: Sequence[str | None] | None = None) -> WriteReport:
        """:meth:`write_blocks` for one channel's days given as dense ``(days, slots)`` arrays.

        ``days``: datetime64[D], epoch-day integers or dates; ``rule_ids`` 1-based into
        ``rule_names`` (0: no rule), or None. Stores exactly what ``write_blocks`` stores for
        the equivalent day blocks (same canonical form and content hashes).
        ``known_hashes`` (per day, or None): the digest of a day whose content the caller
        knows to be identical to a stored canonical day without rule ids (e.g. a validated
        day no rule touched, equal byte for byte to its raw day); None entries are computed.
        """
        check_layer(layer)
        cd = prepare_dense(channel_id, interval_minutes, days, values, quality, rule_ids, rule_names, source,
                            known_hashes)
        report = WriteReport(intervals=int(np.asarray(values).size))
        if not len(cd.days):
            return report
        return self._commit([cd], layer, source, merge=False, conn=conn, report=report)

    def write_dense_many(self, channels: Iterable[DenseDays], layer: str = "validated", source: str = "",
                         conn: Connection | None = None) -> WriteReport:
        """:meth:`write_dense` of several channels in one write.

        Stores exactly what a ``write_dense`` per channel stores. On PostgreSQL (binary COPY)
        the channels' rows go through one COPY, each channel's rows built while the server
        stores the previous channel's, and the stored interval lengths are looked up in one
        statement. Every channel is checked before anything is written; a channel may
        appear once.
        """
        check_layer(layer)
        prepared = [prepare_dense(c.channel_id, c.interval_minutes, c.days, c.values, c.quality, c.rule_ids,
                                  c.rule_names, source, c.known_hashes) for c in channels]
        seen: set[str] = set()
        for cd in prepared:
            if cd.channel_id in seen:  # (each channel's current versions are looked up once, before writing)
                raise batch_error(f"channel {cd.channel_id} is given more than once; join its days into one "
                                  "DenseDays", source, cd.channel_id, "channel_id")
            seen.add(cd.channel_id)
        report = WriteReport(intervals=int(sum(cd.values.size for cd in prepared)))
        prepared = [cd for cd in prepared if len(cd.days)]
        return self._commit(prepared, layer, source, merge=False, conn=conn, report=report)

    def _commit(self, prepared: list[ChannelDays], layer: str, source: str, *, merge: bool,
                conn: Connection | None, report: WriteReport) -> WriteReport:
        if not prepared:
            return report
        if conn is None:
            with self.db.write_transaction() as own:
                return self._commit(prepared, layer, source, merge=merge, conn=own, report=report)
        sql = day_sql(conn.dialect)
        now = utcnow()
        now_param = sql.ts(now)
        src = source[-SOURCE_MAX:]
        rows: list[tuple[Any, ...]] = []
        retire: list[int] = []
        marks: list[dict[str, Any]] = []
        fills: list[dict[str, Any]] = []
        cur = dbapi_cursor(conn)
        try:
            if sql.postgres:  # the months this write covers get their partitions first
                first, last = to_dates(np.array([min(int(cd.days[0]) for cd in prepared),
                                                 max(int(cd.days[-1]) for cd in prepared)]))
                ensure_partitions(cur, first, last, memo=write_memo(conn))
            # PostgreSQL, several channels: looked up first, then streamed through one COPY
            stream = len(prepared) > 1 and sql.copy and copy_in_allowed(cur, write_memo(conn))
            minutes = self._stored_minutes_many(cur, sql, [cd.channel_id for cd in prepared]) if stream else {}
            looked: list[tuple[ChannelDays, dict[int, _Old], list[Any]]] = []
            for cd in prepared:
                stored = minutes.get(cd.channel_id) if stream else self._stored_minutes(cur, sql, cd.channel_id)
                if stored is not None and int(stored) != cd.interval_minutes:
                    raise batch_error(f"channel {cd.channel_id} is stored with {stored}-minute intervals, the batch "
                                 f"has {cd.interval_minutes}-minute intervals", source, cd.channel_id,
                                 "interval_minutes")
                day_params = sql.days(cd.days)
                # a channel without any stored row has no current versions to look up
                existing = (self._current_rows(cur, sql, cd, layer, day_params, merge)
                            if stored is not None else {})
                if stream:
                    looked.append((cd, existing, day_params))
                    continue
                self._build_rows(cd, existing, layer, src, now, now_param, sql, day_params, merge, rows, retire,
                                 marks, report, fills)
            if stream:
                def built() -> Iterator[tuple[Any, ...]]:
                    for cd, existing, day_params in looked:
                        part: list[tuple[Any, ...]] = []
                        self._build_rows(cd, existing, layer, src, now, now_param, sql, day_params, merge, part,
                                         retire, marks, report, fills)
                        yield from part

                # the server stores one channel's rows while the next channel's are built and
                # hashed here; the retired versions are marked afterwards, no constraint
                # depends on the order
                copy_day_rows(cur, sql, built())
            for chunk in chunks(retire):
                cur.execute(sql.retire(len(chunk)), [False, *chunk])
            if rows:
                insert_day_rows(conn, sql, cur, rows)
        finally:
            cur.close()
        for f in fills:
            row_id = f.pop("row_id")
            conn.execute(interval_day_table.update().where(interval_day_table.c.id == row_id)
                         .values({interval_day_table.c[k]: v for k, v in f.items()}))
        if marks:
            conn.execute(stale_mark_table.insert(), marks)
        return report

    @staticmethod
    def _stored_minutes(cur: Any, sql: DaySql, channel_id: str) -> int | None:
        """The interval length of any stored row of ``channel_id`` (None: nothing stored)."""
        cur.execute(sql.probe, (channel_id,))
        row = cur.fetchone()
        return None if row is None else row[0]

    @staticmethod
    def _stored_minutes_many(cur: Any, sql: DaySql, channel_ids: list[str]) -> dict[str, int]:
        """PostgreSQL: :meth:`_stored_minutes` of each channel in one statement (the channels
        with a stored row only)."""
        found: dict[str, int] = {}
        for chunk in chunks(channel_ids):
            cur.execute(sql.probe_many, (chunk,))
            found.update((cid, int(m)) for cid, m in cur.fetchall() if m is not None)
        return found

    @staticmethod
    def _current_rows(cur: Any, sql: DaySql, cd: ChannelDays, layer: str, day_params: list[Any],
                      merge: bool) -> dict[int, _Old]:
        """Current versions of ``cd.channel_id`` for ``cd.days``, keyed by epoch-day number.

        Only id, version, hash and rule names are read; the value blobs only of the days the
        batch does not fully give (the only ones a merge needs).
        """
        days = cd.days
        cid = cd.channel_id
        if days[-1] - days[0] + 1 <= 2 * len(days):
            stmts = [(sql.meta_range, (cid, layer, True, day_params[0], day_params[-1]))]
        else:
            stmts = [(sql.meta_in(len(chunk)), (cid, layer, True, *chunk)) for chunk in chunks(day_params)]
        raw: list[Any] = []
        for stmt, params in stmts:
            cur.execute(stmt, params)
            raw.extend(cur.fetchall())
        found: dict[int, _Old] = {}
        if not raw:
            return found
        wanted = set(days.tolist())
        for r, n in zip(raw, raw_day_numbers([r[1] for r in raw]).tolist(), strict=True):
            if n in wanted:
                found[n] = _Old(int(r[0]), int(r[2]), r[3], r[4])
        if merge and found:
            partial = days[(cd.quality == MISSING).any(axis=1)].tolist()
            need = {found[n].id: found[n] for n in partial if n in found}
            ids = list(need)
            for chunk in chunks(ids):
                cur.execute(sql.blobs(len(chunk)), tuple(chunk))
                for id_, v, q, rids in cur.fetchall():
                    old = need[int(id_)]
                    old.values, old.quality, old.rule_ids = bytes(v), bytes(q), None if rids is None else bytes(rids)
        return found

    def _build_rows(self, cd: ChannelDays, existing: dict[int, _Old], layer: str, source: str,
                    now: datetime, now_param: Any, sql: DaySql, day_params: list[Any], merge: bool,
                    rows: list[tuple[Any, ...]], retire: list[int], marks: list[dict[str, Any]],
                    report: WriteReport, fills: list[dict[str, Any]] | None = None) -> None:
        n_days, n_slots = cd.values.shape
        values, quality, rule_ids = cd.values, cd.quality, cd.rule_ids
        names = list(cd.rule_names)
        day_list = cd.days.tolist()
        fill_only: set[int] = set()  # batch positions whose merge only filled MISSING slots
        if merge and existing:
            olds = [(i, existing[d]) for i, d in enumerate(day_list) if d in existing]  # day order
            old_has_rules = any(o.rule_names is not None for _, o in olds)
            if rule_ids is not None or old_has_rules:
                # rule names of the stored days join the batch's, in day order
                for _, o in olds:
                    if o.rule_names is not None:
                        remap_rule_ids(np.zeros(0, dtype=np.uint8), json.loads(o.rule_names), names)
            # only days the batch does not fully give carry their blobs (see _current_rows)
            merged = [(i, o) for i, o in olds if o.values is not None]
            fresh = cd.quality != MISSING
            if merged:
                pos = np.array([i for i, _ in merged], dtype=np.intp)
                old_v = np.frombuffer(b"".join(o.values for _, o in merged), dtype="<f8").reshape(len(pos), n_slots)  # type: ignore[misc]
                old_q = np.frombuffer(b"".join(o.quality for _, o in merged), dtype=np.uint8).reshape(len(pos), n_slots)  # type: ignore[misc]
                values = values.copy()
                quality = quality.copy()
                values[pos] = np.where(fresh[pos], cd.values[pos], old_v)
                quality[pos] = np.where(fresh[pos], cd.quality[pos], old_q)
                # a late value for a slot that was MISSING restates nothing: the day is
                # updated in place instead of getting a new version (polling fills a day
                # interval by interval); any slot that held a value must be untouched
                kept = (old_q != MISSING) & ~((values[pos] == old_v) & (quality[pos] == old_q))
                if rule_ids is None and not old_has_rules:
                    fill_only.update(pos[~kept.any(axis=1)].tolist())
            if rule_ids is not None or old_has_rules:
                merged_r = np.zeros((n_days, n_slots), dtype=np.uint8)
                if rule_ids is not None:
                    new_r = remap_rule_ids(rule_ids, cd.rule_names, names)
                    merged_r[fresh] = new_r[fresh]
                for i, o in merged:
                    if o.rule_ids is not None:
                        ids = np.frombuffer(o.rule_ids, dtype=np.uint8)
                        old_r = remap_rule_ids(ids, json.loads(o.rule_names or "[]"), names)
                        merged_r[i] = np.where(fresh[i], merged_r[i], old_r)
                rule_ids = merged_r
        # canonical form: NaN never carries data, MISSING never carries a value
        nan = np.isnan(values)
        missing = quality == MISSING
        if nan.any() or missing.any():
            values = values.copy()
            quality = quality.copy()
            quality[nan] = MISSING
            missing = quality == MISSING
            values[missing] = np.nan
            if rule_ids is not None:
                rule_ids = rule_ids.copy()
                rule_ids[missing] = 0
        day_names: list[tuple[str, ...]] = [()] * n_days
        if rule_ids is not None:
            rule_ids, day_names = canonical_rules(rule_ids, names)
        values = np.ascontiguousarray(values, dtype="<f8")
        quality = np.ascontiguousarray(quality, dtype=np.uint8)
        n_values = (n_slots - np.count_nonzero(missing, axis=1)).tolist()
        cid, minutes = cd.channel_id, cd.interval_minutes
        # SQLite day parameters are the ISO dates already
        iso = day_params if sql.sqlite else np.datetime_as_string(cd.days.astype("datetime64[D]")).tolist()
        vbs = [r.tobytes() for r in values]
        qbs = [r.tobytes() for r in quality]
        pre, post = f"{cid}|", f"|{minutes}|"
        sha = hashlib.sha256
        rbs: list[bytes | None]
        has_rules = np.asarray(rule_ids.any(axis=1)) if rule_ids is not None else None
        if rule_ids is not None and has_rules is not None and has_rules.any():
            rbs = [r.tobytes() if h else None for r, h in zip(rule_ids, has_rules.tolist(), strict=True)]
            json_cache: dict[tuple[str, ...], str] = {}
            names_json = []
            digests = []
            known_r = cd.known_hashes if not (merge and existing) else None
            for i, (d, vb, qb, rb, dn) in enumerate(zip(iso, vbs, qbs, rbs, day_names, strict=True)):
                if rb is None and known_r is not None and known_r[i] is not None:
                    digests.append(known_r[i])
                    names_json.append("[]")
                    continue
                h = sha(f"{pre}{d}{post}".encode() + vb + qb)
                if rb is not None:
                    h.update(rb)
                    h.update("|".join(dn).encode())
                digests.append(h.hexdigest())
                nj = json_cache.get(dn)
                if nj is None:
                    nj = json_cache[dn] = json.dumps(list(dn))
                names_json.append(nj)
        else:
            rbs = [None] * n_days
            names_json = ["[]"] * n_days
            known = cd.known_hashes if not (merge and existing) else None
            if known is not None:
                digests = [k if k is not None else sha(f"{pre}{d}{post}".encode() + vb + qb).hexdigest()
                           for k, d, vb, qb in zip(known, iso, vbs, qbs, strict=True)]
            else:
                digests = [sha(f"{pre}{d}{post}".encode() + vb + qb).hexdigest()
                           for d, vb, qb in zip(iso, vbs, qbs, strict=True)]
        if not existing:
            report.new_days += n_days
            rows.extend(zip(repeat(cid), day_params, repeat(layer), repeat(1), repeat(minutes), n_values, vbs, qbs,
                            rbs, names_json, digests, repeat(source), repeat(now_param), repeat(True)))
            return
        for i in range(n_days):
            digest = digests[i]
            old = existing.get(day_list[i])
            if old is not None and old.content_hash == digest:
                report.unchanged_days += 1
                continue
            version = 1
            if old is not None and i in fill_only and fills is not None:
                day = date.fromordinal(day_list[i] + EPOCH_ORDINAL)
                fills.append({"row_id": old.id, "values": vbs[i], "quality": qbs[i], "n_values": n_values[i],
                              "content_hash": digest, "source": source})
                marks.append({"channel_id": cid, "day": day, "layer": layer, "version": old.version,
                              "created_at": now})
                report.filled_days += 1
                report.stale.append((cid, day))
                continue
            if old is not None:
                version = old.version + 1
                retire.append(old.id)
                day = date.fromordinal(day_list[i] + EPOCH_ORDINAL)
                marks.append({"channel_id": cid, "day": day, "layer": layer, "version": version,
                              "created_at": now})
                report.changed_days += 1
                report.stale.append((cid, day))
            else:
                report.new_days += 1
            rows.append((cid, day_params[i], layer, version, minutes, n_values[i], vbs[i], qbs[i], rbs[i],
                         names_json[i], digest, source, now_param, True))

    # ------------------------------------------------------------------ reading

    def _row_block(self, row: Any, layer: str) -> DayBlock:
        names = tuple(json.loads(row.rule_names)) if row.rule_names else ()
        return DayBlock(
            channel_id=row.channel_id,
            day=row.day,
            interval_minutes=int(row.interval_minutes),
            values=np.frombuffer(row.values, dtype="<f8").astype(np.float64),
            quality=np.frombuffer(row.quality, dtype=np.uint8).copy(),
            rule_ids=np.frombuffer(row.rule_ids, dtype=np.uint8).copy() if row.rule_ids is not None else None,
            rule_names=names,
            layer=layer,
            version=int(row.version),
        )

    def read_blocks(self, channel_id: str, first_day: date, last_day: date, layer: str = "raw",
                    version: int | None = None) -> list[DayBlock]:
        """Day blocks of ``first_day..last_day`` (inclusive), oldest day first.

        ``version`` None -> the current version of each day; else that exact version of
        the days that have it.
        """
        check_layer(layer)
        stmt = select(T.channel_id, T.day, T.version, T.interval_minutes, T_VALUES, T.quality,
                      T.rule_ids, T.rule_names).where(
            T.channel_id == channel_id, T.layer == layer, T.day >= first_day, T.day <= last_day)
        stmt = stmt.where(T.is_current.is_(True)) if version is None else stmt.where(T.version == version)
        with self.db.read_connection() as conn:
            rows = conn.execute(stmt.order_by(T.day)).all()
        return [self._row_block(r, layer) for r in rows]

    def history(self, channel_id: str, day: date, layer: str = "raw") -> list[DayBlock]:
        """Every stored version of one (channel, day, layer), oldest first."""
        check_layer(layer)
        stmt = select(T.channel_id, T.day, T.version, T.interval_minutes, T_VALUES, T.quality,
                      T.rule_ids, T.rule_names).where(
            T.channel_id == channel_id, T.layer == layer, T.day == day).order_by(T.version)
        with self.db.read_connection() as conn:
            rows = conn.execute(stmt).all()
        return [self._row_block(r, layer) for r in rows]

    def read_matrix(self, channel_ids: Sequence[str], span: Span, interval_minutes: int,
                    layer: str = "validated") -> IntervalMatrix:
        """Dense (channels x intervals) matrix over ``span``; NaN + MISSING where absent.

        Days stored at a finer interval are summed up to ``interval_minutes`` (a coarse
        interval with any missing part is NaN, its quality the worst of its parts).
        ``day_hashes`` gets the content hash of every (channel, day) read.

        Each channel's days arrive in day order; runs of consecutive days are joined and
        copied into the channel's row of the result in one step, clipped to the span.
        """
        return read_matrix(self.db, channel_ids, span, interval_minutes, layer, joined=self.joined_reads)

    def read_series(self, channel_id: str, span: Span, layer: str = "raw",
                    interval_minutes: int | None = None) -> ChannelSeries:
        """The non-missing intervals of one channel inside ``span``, in time order.

        ``interval_minutes`` None -> the channel's stored interval length (15 if nothing is stored).
        """
        check_layer(layer)
        if interval_minutes is None:
            with self.db.read_connection() as conn:
                stored = conn.execute(
                    select(T.interval_minutes).where(T.channel_id == channel_id).limit(1)).scalar()
            interval_minutes = int(stored) if stored is not None else 15
        m = self.read_matrix([channel_id], span, interval_minutes, layer=layer)
        keep = m.quality[0] != MISSING
        return ChannelSeries(channel_id=channel_id, interval_minutes=interval_minutes,
                             starts=m.starts()[keep], values=m.values[0][keep], quality=m.quality[0][keep])

    def day_hashes(self, channel_ids: Sequence[str], first_day: date, last_day: date,
                   layer: str = "validated") -> dict[tuple[str, date], tuple[int, str]]:
        """``(channel, day) -> (current version, content hash)`` without reading any values."""
        check_layer(layer)
        out: dict[tuple[str, date], tuple[int, str]] = {}
        with self.db.read_connection() as conn:
            for chunk in chunks(list(channel_ids)):
                stmt = select(T.channel_id, T.day, T.version, T.content_hash).where(
                    T.channel_id.in_(list(chunk)), T.layer == layer, T.is_current.is_(True),
                    T.day >= first_day, T.day <= last_day)
                for r in conn.execute(stmt):
                    out[(r.channel_id, r.day)] = (int(r.version), r.content_hash)
        return out

    def stale_marks(self, since: datetime | None = None, layer: str | None = None) -> list[StaleMarkInfo]:
        """Restatements ``(channel_id, day, version, created_at)``, oldest first."""
        s = stale_mark_table.c
        stmt = select(s.channel_id, s.day, s.version, s.created_at).order_by(s.id)
        if since is not None:
            stmt = stmt.where(s.created_at >= since)
        if layer is not None:
            stmt = stmt.where(s.layer == layer)
        with self.db.read_connection() as conn:
            rows = conn.execute(stmt).all()
        return [StaleMarkInfo(r.channel_id, r.day, int(r.version), as_utc(r.created_at) or r.created_at) for r in rows]

    def channels(self, layer: str = "raw") -> list[str]:
        """Channel ids that have current data in ``layer``."""
        check_layer(layer)
        stmt = select(T.channel_id).where(T.layer == layer, T.is_current.is_(True)).distinct().order_by(T.channel_id)
        with self.db.read_connection() as conn:
            return [r[0] for r in conn.execute(stmt)]

    def summary(self, layer: str = "raw") -> list[ChannelSummary]:
        """Per channel: non-missing intervals, first start, last end and total, from the current days."""
        check_layer(layer)
        out = []
        with self.db.read_connection() as conn:
            ids = [r[0] for r in conn.execute(
                select(T.channel_id).where(T.layer == layer, T.is_current.is_(True)).distinct()
                .order_by(T.channel_id))]
            for cid in ids:
                rows = conn.execute(
                    select(T.day, T.interval_minutes, T_VALUES, T.quality).where(
                        T.channel_id == cid, T.layer == layer, T.is_current.is_(True)).order_by(T.day)).all()
                out.append(self._summarise(cid, rows))
        return out

    @staticmethod
    def _summarise(cid: str, rows: Sequence[Any]) -> ChannelSummary:
        minutes = int(rows[0].interval_minutes)
        n_slots = 1440 // minutes
        v = np.frombuffer(b"".join(r.values for r in rows), dtype="<f8").reshape(len(rows), n_slots)
        q = np.frombuffer(b"".join(r.quality for r in rows), dtype=np.uint8).reshape(len(rows), n_slots)
        ok = q != MISSING
        count = int(ok.sum())
        if count == 0:
            return ChannelSummary(cid, 0, None, None, 0.0, len(rows), minutes)
        days = np.array([day_number(r.day) for r in rows], dtype=np.int64)
        starts = days[:, None] * SECONDS_PER_DAY + np.arange(n_slots, dtype=np.int64)[None, :] * minutes * 60
        s = starts[ok]
        first, last = int(s.min()), int(s.max()) + minutes * 60
        return ChannelSummary(
            channel_id=cid, intervals=count, first_start=_datetime_or_none(first), last_end=_datetime_or_none(last),
            total_kwh=float(np.nansum(v[ok])), days=len(rows), interval_minutes=minutes,
        )

    def maintain(self, first_day: date | None = None, last_day: date | None = None) -> MaintenanceReport:
        """After a large load: refresh what the database knows about the stored days of
        ``first_day..last_day`` (either None: open-ended), so the reads that follow are not slowed.

        PostgreSQL: ``VACUUM (ANALYZE)`` of each month partition holding such a day, outside any
        transaction (what autovacuum would do some time later; the server of the measurements
        runs without it). It sets the rows' visibility hints and the visibility map, which the
        first read after a bulk load would otherwise set itself, dirtying and writing back every
        page it reads, and gives each month planner statistics. Only the tables' owner (or a
        superuser) may: partitions the role does not own are left (``skipped``), e.g. for
        ``kwhub db maintain`` run as the owner. SQLite: ``ANALYZE interval_day`` (statistics
        of its key, sampled: ``analysis_limit``), whatever the days.
        """
        import time

        from kwhub.hub.store.pg_intervals import vacuum_partitions

        t0 = time.perf_counter()
        report = MaintenanceReport()
        if self.db.dialect == "postgresql":
            raw = self.db.engine.raw_connection()
            try:
                report.tables, report.skipped = vacuum_partitions(raw.driver_connection, first_day, last_day)
            finally:
                raw.close()
        else:
            with self.db.write_transaction() as conn:
                conn.exec_driver_sql(f"PRAGMA analysis_limit = {SQLITE_ANALYSIS_LIMIT}")
                conn.exec_driver_sql(f"ANALYZE {interval_day_table.name}")
            report.tables = [interval_day_table.name]
        report.seconds = time.perf_counter() - t0
        return report

    def count_rows(self, layer: str | None = None) -> int:
        """Number of stored day rows (all versions)."""
        stmt = select(func.count()).select_from(interval_day_table)
        if layer is not None:
            stmt = stmt.where(T.layer == layer)
        with self.db.read_connection() as conn:
            return int(conn.execute(stmt).scalar() or 0)

