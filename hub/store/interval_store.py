"""Interval values per (channel, UTC day, layer, version), moved as whole days.

Writes are vectorised: a batch is cut into dense (days x slots) arrays per channel with
numpy, the current versions of every touched (channel, day) are fetched with a few
SELECTs, merged with numpy, hashed, and written with bulk (executemany) statements, all in
one write transaction. A day whose content hash is unchanged gets no new version; a
changed day gets version + 1, the old version stays (``is_current`` false) and a stale
mark records the restatement. Reads slice the stored day arrays into a dense
channel x interval matrix.

Canonical content, so that equal data always hashes equal: a NaN value carries no data
and is stored as MISSING; MISSING slots hold NaN; rule ids are renumbered per day to the
rules that day uses (in the order of the writer's ``rule_names``), and a day without any
rule id stores none.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from sqlalchemy import Connection, String, and_, func, select, type_coerce, update

from core.intervals import (
    SECONDS_PER_DAY,
    ChannelSeries,
    DayBlock,
    IntervalDataError,
    IntervalMatrix,
    slots_per_day,
)
from core.quality import Quality
from core.timeline import Span
from hub.store.tables import LAYERS, as_utc, interval_day_table, stale_mark_table, utcnow

if TYPE_CHECKING:
    from hub.store.db import Database

MISSING = np.uint8(Quality.MISSING)
MAX_QUALITY = max(int(q) for q in Quality)
IN_CHUNK = 500  # bound parameters per IN list
SOURCE_MAX = 400
_EPOCH_DAY = np.datetime64("1970-01-01", "D")

T = interval_day_table.c
T_VALUES = interval_day_table.c["values"]


@dataclass
class WriteReport:
    """What one write did. ``intervals`` counts the interval values the batch carried."""

    new_days: int = 0
    changed_days: int = 0
    unchanged_days: int = 0
    intervals: int = 0
    stale: list[tuple[str, date]] = field(default_factory=list)

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
            "intervals": self.intervals,
            "stale": [[c, d.isoformat()] for c, d in self.stale],
        }


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


@dataclass
class _ChannelDays:
    """Dense day arrays of one channel: ``days`` are epoch-day numbers, sorted, unique."""

    channel_id: str
    interval_minutes: int
    days: np.ndarray  # int64
    values: np.ndarray  # float64 (n_days, n_slots)
    quality: np.ndarray  # uint8 (n_days, n_slots)
    rule_ids: np.ndarray | None = None  # uint8 (n_days, n_slots)
    rule_names: tuple[str, ...] = ()


# ---------------------------------------------------------------------- small helpers


def _to_dates(days: np.ndarray) -> list[date]:
    return (np.asarray(days, dtype=np.int64).astype("datetime64[D]")).tolist()


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
INSERT_COLUMNS = ("channel_id", "day", "layer", "version", "interval_minutes", "n_values", "values", "quality",
                  "rule_ids", "rule_names", "content_hash", "source", "created_at", "is_current")


def _day_number(d: date) -> int:
    return d.toordinal() - _EPOCH_ORDINAL


def _raw_day_numbers(raw: Sequence[Any]) -> np.ndarray:
    """Epoch-day numbers of driver-level day values (ISO strings on SQLite, dates on PostgreSQL)."""
    if raw and isinstance(raw[0], str):
        return (np.array(raw, dtype="datetime64[D]") - _EPOCH_DAY).astype(np.int64)
    return np.array([d.toordinal() for d in raw], dtype=np.int64) - _EPOCH_ORDINAL


def _insert_day_rows(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
    """Bulk insert of ``INSERT_COLUMNS`` tuples straight through the driver's executemany.

    Dates and timestamps go through the column types' own bind processors, so the stored
    form is exactly what SQLAlchemy itself would write (ISO strings on SQLite).
    """
    dialect = conn.dialect
    quote = dialect.identifier_preparer.quote
    if dialect.name == "postgresql" and dialect.driver == "psycopg":
        # COPY is several times faster than executemany; same connection, same transaction
        cols = ", ".join(quote(c) for c in INSERT_COLUMNS)
        with conn.connection.driver_connection.cursor() as cur:  # type: ignore[union-attr]
            with cur.copy(f"COPY {quote(interval_day_table.name)} ({cols}) FROM STDIN") as copy:
                for r in rows:
                    copy.write_row(r)
        return
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    sql = (f"INSERT INTO {quote(interval_day_table.name)} ({', '.join(quote(c) for c in INSERT_COLUMNS)}) "
           f"VALUES ({', '.join([mark] * len(INSERT_COLUMNS))})")
    i_day, i_created = INSERT_COLUMNS.index("day"), INSERT_COLUMNS.index("created_at")
    proc_day = T.day.type.bind_processor(dialect)
    proc_ts = T.created_at.type.bind_processor(dialect)
    if proc_day is not None or proc_ts is not None:
        # days repeat across channels and one batch has one timestamp: process each value once
        seen_day: dict[Any, Any] = {}
        seen_ts: dict[Any, Any] = {}
        fixed = []
        for r in rows:
            lst = list(r)
            if proc_day is not None:
                d = lst[i_day]
                lst[i_day] = seen_day[d] if d in seen_day else seen_day.setdefault(d, proc_day(d))
            if proc_ts is not None:
                ts = lst[i_created]
                lst[i_created] = seen_ts[ts] if ts in seen_ts else seen_ts.setdefault(ts, proc_ts(ts))
            fixed.append(tuple(lst))
        rows = fixed
    conn.exec_driver_sql(sql, rows)


def _chunks(seq: Sequence[Any], n: int = IN_CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


def _check_layer(layer: str) -> None:
    if layer not in LAYERS:
        raise ValueError(f"unknown layer {layer!r}; expected one of {LAYERS}")


def _error(message: str, source: str, channel_id: str, field: str, where: str = "") -> IntervalDataError:
    """An error naming the batch source (or the channel), the channel/day and the field."""
    if source:
        return IntervalDataError(message, source=source, where=where or channel_id, field=field)
    return IntervalDataError(message, source=channel_id, where=where if where != channel_id else "", field=field)


def _slots(interval_minutes: int, channel_id: str, source: str = "") -> int:
    try:
        return slots_per_day(int(interval_minutes))
    except IntervalDataError as exc:
        raise _error(exc.reason, source, channel_id, "interval_minutes") from None


def _iso(epoch_s: int) -> str:
    return datetime.fromtimestamp(int(epoch_s), tz=UTC).isoformat()


def day_hash(channel_id: str, day: date, interval_minutes: int, values: np.ndarray,
             quality: np.ndarray, rule_ids: np.ndarray | None, rule_names: Sequence[str]) -> str:
    """The same digest as :meth:`core.intervals.DayBlock.content_hash`, without a DayBlock."""
    h = hashlib.sha256(f"{channel_id}|{day.isoformat()}|{interval_minutes}|".encode())
    h.update(np.ascontiguousarray(values, dtype="<f8").tobytes())
    h.update(np.ascontiguousarray(quality, dtype=np.uint8).tobytes())
    if rule_ids is not None and rule_ids.any():
        h.update(np.ascontiguousarray(rule_ids, dtype=np.uint8).tobytes())
        h.update("|".join(rule_names).encode())
    return h.hexdigest()


def _remap_rule_ids(ids: np.ndarray, names: Sequence[str], target: list[str]) -> np.ndarray:
    """Renumber ``ids`` (1-based into ``names``) into ``target`` (extended in place)."""
    lut = np.zeros(max(len(names), int(ids.max(initial=0))) + 1, dtype=np.uint8)
    for k, name in enumerate(names, start=1):
        if name not in target:
            target.append(name)
            if len(target) > 255:
                raise IntervalDataError("more than 255 distinct rule names in one channel", field="rule_ids")
        lut[k] = target.index(name) + 1
    return lut[ids]


def _canonical_rules(rule_ids: np.ndarray, names: Sequence[str]) -> tuple[np.ndarray, list[tuple[str, ...]]]:
    """Per day, renumber rule ids to the rules that day uses; returns ids and names per day."""
    n_days = rule_ids.shape[0]
    k = len(names)
    used = np.zeros((n_days, k + 1), dtype=bool)
    used[np.repeat(np.arange(n_days), rule_ids.shape[1]), rule_ids.ravel()] = True
    used[:, 0] = False
    lut = np.cumsum(used, axis=1).astype(np.uint8)  # old id -> new id (if used)
    new_ids = np.take_along_axis(lut, rule_ids.astype(np.intp), axis=1)
    new_ids[rule_ids == 0] = 0
    per_day = [tuple(names[j - 1] for j in np.flatnonzero(row).tolist()) for row in used]
    return new_ids, per_day


# ---------------------------------------------------------------------- batch preparation


def _prepare_series(series: Sequence[ChannelSeries], source: str) -> list[_ChannelDays]:
    """Group a batch by channel and cut it into dense day arrays (validating everything)."""
    groups: dict[str, list[ChannelSeries]] = {}
    for s in series:
        groups.setdefault(s.channel_id, []).append(s)
    out = []
    for cid, parts in groups.items():
        minutes = {int(p.interval_minutes) for p in parts}
        if len(minutes) > 1:
            raise _error(f"series of one batch disagree on the interval length: {sorted(minutes)} min",
                         source, cid, "interval_minutes")
        n_slots = _slots(parts[0].interval_minutes, cid, source)
        interval_minutes = int(parts[0].interval_minutes)
        step = interval_minutes * 60
        starts = np.concatenate([p.starts for p in parts]) if len(parts) > 1 else parts[0].starts
        values = np.concatenate([p.values for p in parts]) if len(parts) > 1 else parts[0].values
        quality = np.concatenate([p.quality for p in parts]) if len(parts) > 1 else parts[0].quality
        has_rules = any(p.rule_ids is not None for p in parts)
        names: list[str] = []
        rules = None
        if has_rules:
            rules = np.concatenate([
                _remap_rule_ids(np.asarray(p.rule_ids, dtype=np.uint8), p.rule_names, names)
                if p.rule_ids is not None else np.zeros(len(p), dtype=np.uint8)
                for p in parts
            ])
        if len(starts) == 0:
            continue
        bad = starts % step != 0
        if bad.any():
            i = int(np.argmax(bad))
            raise _error(f"interval start {_iso(starts[i])} is not on the {interval_minutes}-minute grid", source, cid, "start")
        bad = quality > MAX_QUALITY
        if bad.any():
            i = int(np.argmax(bad))
            raise _error(f"quality code {int(quality[i])} at {_iso(starts[i])} is not a Quality", source, cid, "quality")
        bad = np.isinf(values)
        if bad.any():
            i = int(np.argmax(bad))
            raise _error(f"value {values[i]} at {_iso(starts[i])} is not finite", source, cid, "value")
        day = starts // SECONDS_PER_DAY
        slot = (starts - day * SECONDS_PER_DAY) // step
        udays, inv = np.unique(day, return_inverse=True)
        keep = (quality != MISSING) & ~np.isnan(values)
        flat = (inv * n_slots + slot)[keep]
        # last occurrence wins: first occurrence in the reversed order
        _, first_rev = np.unique(flat[::-1], return_index=True)
        pick = len(flat) - 1 - first_rev
        flat = flat[pick]
        v2 = np.full((len(udays), n_slots), np.nan)
        q2 = np.full((len(udays), n_slots), MISSING, dtype=np.uint8)
        v2.ravel()[flat] = values[keep][pick]
        q2.ravel()[flat] = quality[keep][pick]
        r2 = None
        if rules is not None:
            r2 = np.zeros((len(udays), n_slots), dtype=np.uint8)
            r2.ravel()[flat] = rules[keep][pick]
        out.append(_ChannelDays(cid, interval_minutes, udays.astype(np.int64), v2, q2, r2, tuple(names)))
    return out


def _prepare_blocks(blocks: Sequence[DayBlock], source: str) -> list[_ChannelDays]:
    """Stack day blocks per channel (the last block of a (channel, day) wins)."""
    groups: dict[str, list[DayBlock]] = {}
    for b in blocks:
        groups.setdefault(b.channel_id, []).append(b)
    out = []
    for cid, parts in groups.items():
        minutes = {int(b.interval_minutes) for b in parts}
        if len(minutes) > 1:
            raise _error(f"blocks of one batch disagree on the interval length: {sorted(minutes)} min", source, cid, "interval_minutes")
        interval_minutes = minutes.pop()
        n_slots = _slots(interval_minutes, cid, source)
        latest: dict[int, DayBlock] = {}
        for b in parts:
            if len(b.values) != n_slots or len(b.quality) != n_slots or (
                    b.rule_ids is not None and len(b.rule_ids) != n_slots):
                raise _error(f"day block {b.day} has {len(b.values)} values, expected {n_slots}", source, cid, "values", where=f"{cid} {b.day}")
            latest[_day_number(b.day)] = b
        days = np.array(sorted(latest), dtype=np.int64)
        chosen = [latest[int(d)] for d in days]
        v2 = np.array([b.values for b in chosen], dtype=np.float64).reshape(len(days), n_slots)
        q2 = np.array([b.quality for b in chosen], dtype=np.uint8).reshape(len(days), n_slots)
        bad = q2 > MAX_QUALITY
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise _error(f"quality code {int(q2[r, c])} in slot {c} is not a Quality", source, cid, "quality", where=f"{cid} {chosen[r].day}")
        if np.isinf(v2).any():
            r, c = np.argwhere(np.isinf(v2))[0]
            raise _error(f"value in slot {c} is not finite", source, cid, "value", where=f"{cid} {chosen[r].day}")
        r2 = None
        names: list[str] = []
        if any(b.rule_ids is not None for b in chosen):
            r2 = np.stack([
                _remap_rule_ids(np.asarray(b.rule_ids, dtype=np.uint8), b.rule_names, names)
                if b.rule_ids is not None else np.zeros(n_slots, dtype=np.uint8)
                for b in chosen
            ])
        out.append(_ChannelDays(cid, interval_minutes, days, v2, q2, r2, tuple(names)))
    return out


# ---------------------------------------------------------------------- the store


class IntervalStore:
    """Interval data of one :class:`~hub.store.db.Database`."""

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
        _check_layer(layer)
        prepared = _prepare_series(series, source)
        report = WriteReport(intervals=int(sum(len(s) for s in series)))
        return self._commit(prepared, layer, source, merge=True, conn=conn, report=report)

    def write_blocks(self, blocks: Sequence[DayBlock], layer: str = "validated", source: str = "",
                     conn: Connection | None = None) -> WriteReport:
        """Replace each (channel, day)'s content with the block's (a new version only if it differs)."""
        _check_layer(layer)
        prepared = _prepare_blocks(blocks, source)
        report = WriteReport(intervals=int(sum(len(b.values) for b in blocks)))
        return self._commit(prepared, layer, source, merge=False, conn=conn, report=report)

    def _commit(self, prepared: list[_ChannelDays], layer: str, source: str, *, merge: bool,
                conn: Connection | None, report: WriteReport) -> WriteReport:
        if not prepared:
            return report
        if conn is None:
            with self.db.write_transaction() as own:
                return self._commit(prepared, layer, source, merge=merge, conn=own, report=report)
        now = utcnow()
        src = source[-SOURCE_MAX:]
        rows: list[tuple[Any, ...]] = []
        retire: list[int] = []
        marks: list[dict[str, Any]] = []
        for cd in prepared:
            self._check_interval_minutes(conn, cd, source)
            existing = self._current_rows(conn, cd.channel_id, layer, cd.days)
            self._build_rows(cd, existing, layer, src, now, merge, rows, retire, marks, report)
        for chunk in _chunks(retire):
            conn.execute(update(interval_day_table).where(T.id.in_(list(chunk))).values(is_current=False))
        if rows:
            _insert_day_rows(conn, rows)
        if marks:
            conn.execute(stale_mark_table.insert(), marks)
        return report

    def _check_interval_minutes(self, conn: Connection, cd: _ChannelDays, source: str) -> None:
        stored = conn.execute(
            select(T.interval_minutes).where(T.channel_id == cd.channel_id).limit(1)
        ).scalar()
        if stored is not None and int(stored) != cd.interval_minutes:
            raise _error(f"channel {cd.channel_id} is stored with {stored}-minute intervals, the batch has "
                         f"{cd.interval_minutes}-minute intervals", source, cd.channel_id, "interval_minutes")

    def _current_rows(self, conn: Connection, channel_id: str, layer: str,
                      days: np.ndarray) -> dict[int, Any]:
        """Current rows of ``channel_id`` for ``days`` (epoch-day numbers) keyed by day number."""
        cols = (T.id, T.day, T.version, T_VALUES, T.quality, T.rule_ids, T.rule_names, T.content_hash)
        base = and_(T.channel_id == channel_id, T.layer == layer, T.is_current.is_(True))
        dates = _to_dates(days)
        found: dict[int, Any] = {}
        if len(days) and days[-1] - days[0] + 1 <= 2 * len(days):
            stmts = [select(*cols).where(base, T.day >= dates[0], T.day <= dates[-1])]
        else:
            stmts = [select(*cols).where(base, T.day.in_(list(chunk))) for chunk in _chunks(dates)]
        wanted = set(days.tolist())
        for stmt in stmts:
            for row in conn.execute(stmt).all():
                n = _day_number(row.day)
                if n in wanted:
                    found[n] = row
        return found

    def _build_rows(self, cd: _ChannelDays, existing: dict[int, Any], layer: str, source: str,
                    now: datetime, merge: bool, rows: list[tuple[Any, ...]], retire: list[int],
                    marks: list[dict[str, Any]], report: WriteReport) -> None:
        n_days, n_slots = cd.values.shape
        ex_pos = np.array([i for i, d in enumerate(cd.days.tolist()) if d in existing], dtype=np.intp)
        ex_rows = [existing[int(cd.days[i])] for i in ex_pos]
        values, quality, rule_ids = cd.values, cd.quality, cd.rule_ids
        names = list(cd.rule_names)
        if merge and len(ex_pos):
            old_v = np.frombuffer(b"".join(r.values for r in ex_rows), dtype="<f8").reshape(len(ex_pos), n_slots)
            old_q = np.frombuffer(b"".join(r.quality for r in ex_rows), dtype=np.uint8).reshape(len(ex_pos), n_slots)
            fresh = quality != MISSING
            values = np.full((n_days, n_slots), np.nan)
            quality = np.full((n_days, n_slots), MISSING, dtype=np.uint8)
            values[ex_pos] = old_v
            quality[ex_pos] = old_q
            values[fresh] = cd.values[fresh]
            quality[fresh] = cd.quality[fresh]
            old_has_rules = [r.rule_ids is not None for r in ex_rows]
            if rule_ids is not None or any(old_has_rules):
                merged_r = np.zeros((n_days, n_slots), dtype=np.uint8)
                for k, r in enumerate(ex_rows):
                    if r.rule_ids is not None:
                        ids = np.frombuffer(r.rule_ids, dtype=np.uint8)
                        merged_r[ex_pos[k]] = _remap_rule_ids(ids, json.loads(r.rule_names), names)
                if rule_ids is not None:
                    new_r = _remap_rule_ids(rule_ids, cd.rule_names, names)
                    merged_r[fresh] = new_r[fresh]
                else:
                    merged_r[fresh] = 0
                rule_ids = merged_r
        # canonical form: NaN never carries data, MISSING never carries a value
        nan = np.isnan(values)
        if nan.any() or (quality == MISSING).any():
            values = values.copy()
            quality = quality.copy()
            quality[nan] = MISSING
            values[quality == MISSING] = np.nan
            if rule_ids is not None:
                rule_ids = rule_ids.copy()
                rule_ids[quality == MISSING] = 0
        day_names: list[tuple[str, ...]] = [()] * n_days
        if rule_ids is not None:
            rule_ids, day_names = _canonical_rules(rule_ids, names)
        values = np.ascontiguousarray(values, dtype="<f8")
        quality = np.ascontiguousarray(quality, dtype=np.uint8)
        n_values = (quality != MISSING).sum(axis=1).tolist()
        has_rules = np.zeros(n_days, dtype=bool)
        if rule_ids is not None:
            has_rules[:] = rule_ids.any(axis=1)
        dates = _to_dates(cd.days)
        cid, minutes = cd.channel_id, cd.interval_minutes
        head = [f"{cid}|{d.isoformat()}|{minutes}|".encode() for d in dates]
        json_cache: dict[tuple[str, ...], str] = {}
        day_list = cd.days.tolist()
        for i in range(n_days):
            vb = values[i].tobytes()
            qb = quality[i].tobytes()
            h = hashlib.sha256(head[i])
            h.update(vb)
            h.update(qb)
            rb = None
            if has_rules[i] and rule_ids is not None:
                rb = rule_ids[i].tobytes()
                h.update(rb)
                h.update("|".join(day_names[i]).encode())
            digest = h.hexdigest()
            old = existing.get(day_list[i]) if existing else None
            if old is not None and old.content_hash == digest:
                report.unchanged_days += 1
                continue
            version = 1
            if old is not None:
                version = int(old.version) + 1
                retire.append(int(old.id))
                marks.append({"channel_id": cid, "day": dates[i], "layer": layer, "version": version,
                              "created_at": now})
                report.changed_days += 1
                report.stale.append((cid, dates[i]))
            else:
                report.new_days += 1
            names_json = json_cache.get(day_names[i])
            if names_json is None:
                names_json = json_cache[day_names[i]] = json.dumps(list(day_names[i]))
            rows.append((cid, dates[i], layer, version, minutes, n_values[i], vb, qb, rb, names_json,
                         digest, source, now, True))

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
        _check_layer(layer)
        stmt = select(T.channel_id, T.day, T.version, T.interval_minutes, T_VALUES, T.quality,
                      T.rule_ids, T.rule_names).where(
            T.channel_id == channel_id, T.layer == layer, T.day >= first_day, T.day <= last_day)
        stmt = stmt.where(T.is_current.is_(True)) if version is None else stmt.where(T.version == version)
        with self.db.read_connection() as conn:
            rows = conn.execute(stmt.order_by(T.day)).all()
        return [self._row_block(r, layer) for r in rows]

    def history(self, channel_id: str, day: date, layer: str = "raw") -> list[DayBlock]:
        """Every stored version of one (channel, day, layer), oldest first."""
        _check_layer(layer)
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
        """
        _check_layer(layer)
        ids = list(channel_ids)
        if len(set(ids)) != len(ids):
            raise ValueError("channel_ids contains duplicates")
        n_slots = _slots(interval_minutes, "read_matrix")
        step = interval_minutes * 60
        s0, s1 = span.start_epoch, span.end_epoch
        if s0 % step or s1 % step or s1 < s0:
            raise IntervalDataError(f"span {_iso(s0)}..{_iso(s1)} is not on the {interval_minutes}-minute grid",
                                    source="read_matrix", field="span")
        n_int = (s1 - s0) // step
        d_first = s0 // SECONDS_PER_DAY
        d_last = max(d_first, (s1 - 1) // SECONDS_PER_DAY) if n_int else d_first
        n_days = d_last - d_first + 1
        grid_v = np.full((len(ids), n_days, n_slots), np.nan)
        grid_q = np.full((len(ids), n_days, n_slots), MISSING, dtype=np.uint8)
        hashes: dict[tuple[str, date], str] = {}
        if n_int and ids:
            pos = {c: i for i, c in enumerate(ids)}
            lo, hi = _to_dates(np.array([d_first, d_last]))
            with self.db.read_connection() as conn:
                for chunk in _chunks(ids):
                    stmt = select(T.channel_id, type_coerce(T.day, String), T.interval_minutes, T_VALUES,
                                  T.quality, T.content_hash).where(
                        T.channel_id.in_(list(chunk)), T.layer == layer, T.is_current.is_(True),
                        T.day >= lo, T.day <= hi)
                    rows = conn.execute(stmt).all()
                    self._fill_grid(rows, pos, d_first, interval_minutes, grid_v, grid_q, hashes)
        off = (s0 - d_first * SECONDS_PER_DAY) // step
        values = np.ascontiguousarray(grid_v.reshape(len(ids), n_days * n_slots)[:, off:off + n_int])
        quality = np.ascontiguousarray(grid_q.reshape(len(ids), n_days * n_slots)[:, off:off + n_int])
        return IntervalMatrix(channel_ids=ids, start_epoch=s0, interval_minutes=interval_minutes,
                              values=values, quality=quality, day_hashes=hashes)

    @staticmethod
    def _fill_grid(rows: Sequence[Any], pos: dict[str, int], d_first: int, interval_minutes: int,
                   grid_v: np.ndarray, grid_q: np.ndarray, hashes: dict[tuple[str, date], str]) -> None:
        if not rows:
            return
        cids, raw_days, minutes, vals, quals, digests = zip(*rows, strict=True)
        day_no = _raw_day_numbers(raw_days)
        hashes.update(zip(zip(cids, day_no.astype("datetime64[D]").tolist(), strict=True), digests, strict=True))
        ci_all = np.array([pos[c] for c in cids], dtype=np.intp)
        di_all = (day_no - d_first).astype(np.intp)
        minutes_arr = np.array(minutes, dtype=np.int64)
        n_slots = grid_v.shape[2]
        for stored in np.unique(minutes_arr).tolist():
            sel = np.flatnonzero(minutes_arr == stored)
            if interval_minutes % stored:
                cid = cids[int(sel[0])]
                raise IntervalDataError(
                    f"channel {cid} is stored with {stored}-minute intervals and cannot be read as "
                    f"{interval_minutes}-minute intervals", source=cid, field="interval_minutes")
            f = interval_minutes // stored
            group = sel.tolist()
            n = len(group)
            if n == len(rows):
                v = np.frombuffer(b"".join(vals), dtype="<f8").reshape(n, n_slots * f)
                q = np.frombuffer(b"".join(quals), dtype=np.uint8).reshape(n, n_slots * f)
            else:
                v = np.frombuffer(b"".join(vals[k] for k in group), dtype="<f8").reshape(n, n_slots * f)
                q = np.frombuffer(b"".join(quals[k] for k in group), dtype=np.uint8).reshape(n, n_slots * f)
            if f > 1:
                v = v.reshape(n, n_slots, f).sum(axis=2)
                q = q.reshape(n, n_slots, f).max(axis=2)
                v[q == MISSING] = np.nan
            grid_v[ci_all[sel], di_all[sel]] = v
            grid_q[ci_all[sel], di_all[sel]] = q

    def read_series(self, channel_id: str, span: Span, layer: str = "raw",
                    interval_minutes: int | None = None) -> ChannelSeries:
        """The non-missing intervals of one channel inside ``span``, in time order.

        ``interval_minutes`` None -> the channel's stored interval length (15 if nothing is stored).
        """
        _check_layer(layer)
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
        _check_layer(layer)
        out: dict[tuple[str, date], tuple[int, str]] = {}
        with self.db.read_connection() as conn:
            for chunk in _chunks(list(channel_ids)):
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
        _check_layer(layer)
        stmt = select(T.channel_id).where(T.layer == layer, T.is_current.is_(True)).distinct().order_by(T.channel_id)
        with self.db.read_connection() as conn:
            return [r[0] for r in conn.execute(stmt)]

    def summary(self, layer: str = "raw") -> list[ChannelSummary]:
        """Per channel: non-missing intervals, first start, last end and total, from the current days."""
        _check_layer(layer)
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
        days = np.array([_day_number(r.day) for r in rows], dtype=np.int64)
        starts = days[:, None] * SECONDS_PER_DAY + np.arange(n_slots, dtype=np.int64)[None, :] * minutes * 60
        s = starts[ok]
        first, last = int(s.min()), int(s.max()) + minutes * 60
        return ChannelSummary(
            channel_id=cid, intervals=count,
            first_start=datetime.fromtimestamp(first, tz=UTC),
            last_end=datetime.fromtimestamp(last, tz=UTC),
            total_kwh=float(np.nansum(v[ok])), days=len(rows), interval_minutes=minutes,
        )

    def count_rows(self, layer: str | None = None) -> int:
        """Number of stored day rows (all versions)."""
        stmt = select(func.count()).select_from(interval_day_table)
        if layer is not None:
            stmt = stmt.where(T.layer == layer)
        with self.db.read_connection() as conn:
            return int(conn.execute(stmt).scalar() or 0)
