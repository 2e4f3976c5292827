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
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from itertools import groupby, repeat
from operator import itemgetter
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from sqlalchemy import Connection, func, select

from kwhub.core.input_limits import instant_text
from kwhub.core.intervals import (
    SECONDS_PER_DAY,
    ChannelSeries,
    DayBlock,
    DayHashes,
    IntervalDataError,
    IntervalMatrix,
    slots_per_day,
)
from kwhub.core.quality import Quality
from kwhub.core.timeline import Span
from kwhub.hub.store.pg_intervals import copy_in_allowed, ensure_partitions
from kwhub.hub.store.tables import LAYERS, as_utc, interval_day_table, stale_mark_table, utcnow

if TYPE_CHECKING:
    from kwhub.hub.store.db import Database

MISSING = np.uint8(Quality.MISSING)
MAX_QUALITY = max(int(q) for q in Quality)
IN_CHUNK = 500  # bound parameters per IN list
SOURCE_MAX = 400
_EPOCH_DAY = np.datetime64("1970-01-01", "D")
_MINUTES_PER_DAY = 1440

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
    known_hashes: Sequence[str | None] | None = None  # per day: the canonical content's digest, if known


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


class _Sql:
    """Driver-level SQL and parameter forms of the hot paths, built once per dialect.

    The hot paths (probe, current-row lookup, bulk insert, dense read) go straight to the
    DBAPI cursor of the connection's own transaction: no statement compilation and no
    Row objects per channel-day. Dates and timestamps are passed in the form the column
    types' own bind processors produce, so what is stored is exactly what SQLAlchemy
    itself would write (ISO strings on SQLite).
    """

    def __init__(self, dialect: Any) -> None:
        q = dialect.identifier_preparer.quote
        m = self.mark = "?" if dialect.paramstyle == "qmark" else "%s"
        self.sqlite = dialect.name == "sqlite"
        self.copy = dialect.name == "postgresql" and dialect.driver == "psycopg"
        self.postgres = dialect.name == "postgresql"  # interval_day partitioned by month (0013)
        tbl = self.table = q(interval_day_table.name)
        c = {name: q(name) for name in (*INSERT_COLUMNS, "id")}
        cols = ", ".join(c[name] for name in INSERT_COLUMNS)
        self.insert = f"INSERT INTO {tbl} ({cols}) VALUES ({', '.join([m] * len(INSERT_COLUMNS))})"
        self._insert_cols = cols
        self.copy_sql = f"COPY {tbl} ({cols}) FROM STDIN (FORMAT BINARY)"
        self.probe = f"SELECT {c['interval_minutes']} FROM {tbl} WHERE {c['channel_id']} = {m} LIMIT 1"
        self._day_col = c["day"]
        self.q_channel = c["channel_id"]
        self._meta = (f"SELECT {c['id']}, {c['day']}, {c['version']}, {c['content_hash']}, "
                      f"CASE WHEN {c['rule_ids']} IS NULL THEN NULL ELSE {c['rule_names']} END FROM {tbl} "
                      f"WHERE {c['channel_id']} = {m} AND {c['layer']} = {m} AND {c['is_current']} = {m}")
        self.meta_range = f"{self._meta} AND {c['day']} >= {m} AND {c['day']} <= {m}"
        self._blobs = f"SELECT {c['id']}, {c['values']}, {c['quality']}, {c['rule_ids']} FROM {tbl} WHERE {c['id']} IN "
        self._retire = f"UPDATE {tbl} SET {c['is_current']} = {m} WHERE {c['id']} IN "
        self._read = (f"SELECT {c['channel_id']}, {c['day']}, {c['interval_minutes']}, {c['values']}, {c['quality']}, "
                      f"{c['content_hash']} FROM {tbl} WHERE {c['layer']} = {m} AND {c['is_current']} = {m} "
                      f"AND {c['day']} >= {m} AND {c['day']} <= {m} AND {c['channel_id']} IN ")
        # SQLite: each channel's days in one row, blobs and digests joined by SQLite itself
        # (one row per channel instead of one per channel-day; the day list checks the order)
        self._read_joined = (
            f"SELECT {c['channel_id']}, count(*), min({c['day']}), max({c['day']}), min({c['interval_minutes']}), "
            f"max({c['interval_minutes']}), CAST(group_concat({c['values']}, x'') AS BLOB), "
            f"CAST(group_concat({c['quality']}, x'') AS BLOB), group_concat({c['content_hash']}, ''), "
            f"group_concat({c['day']}, '') FROM {tbl} WHERE {c['layer']} = {m} AND {c['is_current']} = {m} "
            f"AND {c['day']} >= {m} AND {c['day']} <= {m} AND {c['channel_id']} IN ")
        # one channel's days in day order, straight off the (channel, layer, day, version)
        # key (SQLite: cheaper per row than an IN list, walked channel by channel anyway)
        self.read_one = (f"SELECT {c['channel_id']}, {c['day']}, {c['interval_minutes']}, {c['values']}, "
                         f"{c['quality']}, {c['content_hash']} FROM {tbl} WHERE {c['channel_id']} = {m} "
                         f"AND {c['layer']} = {m} AND {c['day']} >= {m} AND {c['day']} <= {m} "
                         f"AND {c['is_current']} = {m} ORDER BY {c['day']}")
        self._day = T.day.type.dialect_impl(dialect).bind_processor(dialect)
        self._ts = T.created_at.type.dialect_impl(dialect).bind_processor(dialect)

    def plain_insert(self, layer: str, created_at: Any) -> str | None:
        """INSERT of a first version without rule ids, the constant columns as literals.

        None unless ``layer`` and ``created_at`` are plain strings of safe characters.
        """
        if not (isinstance(layer, str) and isinstance(created_at, str)
                and _SAFE_LITERAL.fullmatch(layer) and _SAFE_LITERAL.fullmatch(created_at)):
            return None
        literal = {"layer": f"'{layer}'", "version": "1", "rule_ids": "NULL", "rule_names": "'[]'",
                   "created_at": f"'{created_at}'", "is_current": "1"}
        values = ", ".join(literal.get(name, self.mark) for name in INSERT_COLUMNS)
        return f"INSERT INTO {self.table} ({self._insert_cols}) VALUES ({values})"

    def semi_insert(self, layer: str, created_at: Any) -> str | None:
        """INSERT of any current version, only ``layer``, ``created_at`` and ``is_current`` as literals.

        None unless ``layer`` and ``created_at`` are plain strings of safe characters.
        """
        if not (isinstance(layer, str) and isinstance(created_at, str)
                and _SAFE_LITERAL.fullmatch(layer) and _SAFE_LITERAL.fullmatch(created_at)):
            return None
        literal = {"layer": f"'{layer}'", "created_at": f"'{created_at}'", "is_current": "1"}
        values = ", ".join(literal.get(name, self.mark) for name in INSERT_COLUMNS)
        return f"INSERT INTO {self.table} ({self._insert_cols}) VALUES ({values})"

    def _marks(self, n: int) -> str:
        return f"({', '.join([self.mark] * n)})"

    def meta_in(self, n: int) -> str:
        return f"{self._meta} AND {self._day_col} IN {self._marks(n)}"

    def blobs(self, n: int) -> str:
        return self._blobs + self._marks(n)

    def retire(self, n: int) -> str:
        return self._retire + self._marks(n)

    def read(self, n: int) -> str:
        """Current days of ``n`` channels (in no particular order)."""
        return self._read + self._marks(n)

    def read_joined(self, n: int) -> str:
        """SQLite: per channel of ``n``, ``(channel, days, first day, last day, min minutes, max minutes,
        values, quality, digests, day list)`` with each column's days joined in one value."""
        return f"{self._read_joined}{self._marks(n)} GROUP BY {self.q_channel}"

    def days(self, days: np.ndarray) -> list[Any]:
        """Driver-level parameters of epoch-day numbers."""
        if self.sqlite:
            # the SQLite DATE storage format is the ISO date
            return np.datetime_as_string(np.asarray(days, dtype=np.int64).astype("datetime64[D]")).tolist()
        dates = _to_dates(days)
        return dates if self._day is None else [self._day(d) for d in dates]

    def ts(self, value: datetime) -> Any:
        return value if self._ts is None else self._ts(value)


_SQL_CACHE: dict[tuple[str, str, str], _Sql] = {}


def _sql(dialect: Any) -> _Sql:
    key = (dialect.name, dialect.driver, dialect.paramstyle)
    found = _SQL_CACHE.get(key)
    if found is None:
        found = _SQL_CACHE[key] = _Sql(dialect)
    return found


def _cursor(conn: Connection, binary: bool = False) -> Any:
    """The DBAPI cursor of ``conn``'s own connection, inside its (auto)begun transaction.

    ``binary``: a psycopg cursor that fetches results in the binary format.
    """
    if not conn.in_transaction():
        conn.begin()  # what the first execute would do (autobegin)
    driver = conn.connection.driver_connection
    if binary:
        return driver.cursor(binary=True)  # type: ignore[union-attr]
    return driver.cursor()  # type: ignore[union-attr]


def _insert_day_rows(conn: Connection, sql: _Sql, cur: Any, rows: list[tuple[Any, ...]]) -> None:
    """Bulk insert of ``INSERT_COLUMNS`` tuples (driver-level values) in ``conn``'s transaction."""
    if sql.copy and copy_in_allowed(cur):  # (row-level security refuses COPY FROM to most roles)
        # COPY is several times faster than executemany; same connection, same transaction
        with cur.copy(sql.copy_sql) as copy:
            copy.set_types(_COPY_TYPES)  # binary: the blobs go as bytes, not hex text
            for r in rows:
                copy.write_row(r)
        return
    if not sql.sqlite:
        cur.executemany(sql.insert, rows)
        return
    # SQLite binds every parameter of every row: the usual row (a first version without
    # rule ids) gets the columns that are the same for the whole write as SQL literals.
    # Runs keep the insertion order.
    # one write has one layer and one timestamp
    plain_sql = sql.plain_insert(rows[0][_I_LAYER], rows[0][_I_CREATED])
    if plain_sql is None:
        cur.executemany(sql.insert, rows)
        return
    n = len(rows)
    if list(map(_VERSION_OF, rows)).count(1) == n and list(map(_RULE_IDS_OF, rows)).count(None) == n:
        cur.executemany(plain_sql, map(_PLAIN_COLUMNS, rows))
        return
    # mixed rows (e.g. validated days with and without rule ids): one statement for all,
    # in insertion order, with only the write's constant columns as literals
    semi_sql = sql.semi_insert(rows[0][_I_LAYER], rows[0][_I_CREATED])
    if semi_sql is not None and list(map(_CURRENT_OF, rows)).count(True) == n:
        cur.executemany(semi_sql, map(_SEMI_COLUMNS, rows))
        return
    cur.executemany(sql.insert, rows)


_I_VERSION, _I_RULE_IDS = INSERT_COLUMNS.index("version"), INSERT_COLUMNS.index("rule_ids")
_I_LAYER, _I_CREATED = INSERT_COLUMNS.index("layer"), INSERT_COLUMNS.index("created_at")
_VERSION_OF, _RULE_IDS_OF = itemgetter(_I_VERSION), itemgetter(_I_RULE_IDS)
_PLAIN_BOUND = ("channel_id", "day", "interval_minutes", "n_values", "values", "quality", "content_hash", "source")
_PLAIN_COLUMNS = itemgetter(*(INSERT_COLUMNS.index(c) for c in _PLAIN_BOUND))
_CURRENT_OF = itemgetter(INSERT_COLUMNS.index("is_current"))
_SEMI_COLUMNS = itemgetter(*(i for i, c in enumerate(INSERT_COLUMNS) if c not in ("layer", "created_at", "is_current")))
_SAFE_LITERAL = re.compile(r"[0-9A-Za-z_:. +-]*")
_CHANNEL_DAY = itemgetter(0, 1)
# PostgreSQL types of INSERT_COLUMNS, for the binary COPY (they must match the table's)
_COPY_TYPES = ("varchar", "date", "varchar", "int4", "int4", "int4", "bytea", "bytea", "bytea", "text", "varchar",
               "varchar", "timestamptz", "bool")


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


def _datetime_or_none(epoch_s: int) -> datetime | None:
    """The instant as a datetime; None for one ``datetime`` cannot hold (a row stored before the checks)."""
    try:
        return datetime.fromtimestamp(int(epoch_s), tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


STORE_FIRST_EPOCH = int(datetime(1900, 1, 1, tzinfo=UTC).timestamp())
STORE_END_EPOCH = int(datetime(9000, 1, 1, tzinfo=UTC).timestamp())


def day_hash(channel_id: str, day: date, interval_minutes: int, values: np.ndarray,
             quality: np.ndarray, rule_ids: np.ndarray | None, rule_names: Sequence[str]) -> str:
    """The same digest as :meth:`kwhub.core.intervals.DayBlock.content_hash`, without a DayBlock."""
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
    """Per day, renumber rule ids to the rules that day uses; returns ids and names per day.

    Only the days that carry any rule id are touched, and the names tuple is built once per
    distinct set of used rules (vectorised; a channel-year has a handful of such sets).
    """
    n_days = rule_ids.shape[0]
    k = len(names)
    per_day: list[tuple[str, ...]] = [()] * n_days
    ruled = np.flatnonzero(rule_ids.any(axis=1))
    if not ruled.size:
        return rule_ids, per_day
    sub = rule_ids[ruled] if ruled.size < n_days else rule_ids
    used = np.zeros((len(ruled), k + 1), dtype=bool)
    for j in np.unique(sub).tolist():
        if j:
            used[:, j] = (sub == j).any(axis=1)
    lut = np.cumsum(used, axis=1).astype(np.uint8)  # old id -> new id (if used)
    lut[:, 0] = 0
    if np.array_equal(lut[:, 1:][used[:, 1:]], np.nonzero(used[:, 1:])[1].astype(np.uint8) + 1):
        new_sub = sub  # every day already uses ids 1..m: nothing to renumber
    else:
        new_sub = np.take_along_axis(lut, sub.astype(np.intp), axis=1).astype(np.uint8)
    if ruled.size < n_days:
        new_ids = rule_ids.copy()
        new_ids[ruled] = new_sub
    else:
        new_ids = new_sub
    packed = np.ascontiguousarray(np.packbits(used, axis=1))
    keys = packed.view(np.dtype((np.void, packed.shape[1]))).ravel()
    uniq, first, inv = np.unique(keys, return_index=True, return_inverse=True)
    tuples = [tuple(names[j - 1] for j in np.flatnonzero(used[i]).tolist()) for i in first.tolist()]
    for i, t in zip(ruled.tolist(), inv.ravel().tolist(), strict=True):
        per_day[i] = tuples[t]
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
        bad = (starts < STORE_FIRST_EPOCH) | (starts >= STORE_END_EPOCH)
        if bad.any():
            i = int(np.argmax(bad))
            raise _error(f"interval start {instant_text(int(starts[i]))} is outside the years the store holds "
                         "(1900..8999)", source, cid, "start")
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
        keep = (quality != MISSING) & ~np.isnan(values)
        all_kept = bool(keep.all())
        if len(starts) < 2 or bool((starts[1:] > starts[:-1]).all()):
            # the usual case, strictly increasing starts: no duplicates, days already sorted
            change = np.empty(len(day), dtype=bool)
            change[:1] = True
            np.not_equal(day[1:], day[:-1], out=change[1:])
            udays = day[change]
            inv = np.cumsum(change) - 1
            flat = inv * n_slots + slot
            if all_kept:
                kv, kq, kr = values, quality, rules
            else:
                flat = flat[keep]
                kv, kq = values[keep], quality[keep]
                kr = rules[keep] if rules is not None else None
        else:
            udays, inv = np.unique(day, return_inverse=True)
            flat = (inv * n_slots + slot)[keep]
            # last occurrence wins: first occurrence in the reversed order
            _, first_rev = np.unique(flat[::-1], return_index=True)
            pick = len(flat) - 1 - first_rev
            flat = flat[pick]
            kv, kq = values[keep][pick], quality[keep][pick]
            kr = rules[keep][pick] if rules is not None else None
        n_cells = len(udays) * n_slots
        if len(flat) == n_cells:
            # every slot of every day is given: the cells are a permutation, no fill needed
            v2 = np.empty((len(udays), n_slots))
            q2 = np.empty((len(udays), n_slots), dtype=np.uint8)
        else:
            v2 = np.full((len(udays), n_slots), np.nan)
            q2 = np.full((len(udays), n_slots), MISSING, dtype=np.uint8)
        v2.ravel()[flat] = kv
        q2.ravel()[flat] = kq
        r2 = None
        if kr is not None:
            r2 = np.zeros((len(udays), n_slots), dtype=np.uint8)
            r2.ravel()[flat] = kr
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
        r2 = None
        names: list[str] = []
        if any(b.rule_ids is not None for b in chosen):
            r2 = np.stack([
                _remap_rule_ids(np.asarray(b.rule_ids, dtype=np.uint8), b.rule_names, names)
                if b.rule_ids is not None else np.zeros(n_slots, dtype=np.uint8)
                for b in chosen
            ])
        out.append(_check_dense(_ChannelDays(cid, interval_minutes, days, v2, q2, r2, tuple(names)), source))
    return out


def _check_dense(cd: _ChannelDays, source: str) -> _ChannelDays:
    """Reject quality codes that are no :class:`Quality` and infinite values (naming the day)."""
    cid, q2, v2 = cd.channel_id, cd.quality, cd.values
    if int(q2.max(initial=0)) > MAX_QUALITY:
        r, c = np.argwhere(q2 > MAX_QUALITY)[0]
        day = date.fromordinal(int(cd.days[r]) + _EPOCH_ORDINAL)
        raise _error(f"quality code {int(q2[r, c])} in slot {c} is not a Quality", source, cid, "quality", where=f"{cid} {day}")
    # finite sum <=> no inf and no NaN; only a non-finite sum needs the exact test
    if not np.isfinite(np.sum(v2)) and np.isinf(v2).any():
        r, c = np.argwhere(np.isinf(v2))[0]
        day = date.fromordinal(int(cd.days[r]) + _EPOCH_ORDINAL)
        raise _error(f"value in slot {c} is not finite", source, cid, "value", where=f"{cid} {day}")
    return cd


def _epoch_days(days: Any) -> np.ndarray:
    """Epoch-day numbers (int64) of datetime64 days, epoch-day integers or ``date`` objects."""
    arr = np.asarray(days)
    if arr.dtype.kind == "M":
        return (arr.astype("datetime64[D]") - _EPOCH_DAY).astype(np.int64)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    return np.array([_day_number(d) for d in arr.tolist()], dtype=np.int64)


def _prepare_dense(channel_id: str, interval_minutes: int, days: Any, values: np.ndarray, quality: np.ndarray,
                   rule_ids: np.ndarray | None, rule_names: Sequence[str], source: str,
                   known_hashes: Sequence[str | None] | None) -> _ChannelDays:
    """Validate one channel's dense day arrays (sorted by day; the last row of a day wins)."""
    interval_minutes = int(interval_minutes)
    n_slots = _slots(interval_minutes, channel_id, source)
    d = _epoch_days(days)
    v2 = np.asarray(values, dtype=np.float64)
    q2 = np.asarray(quality, dtype=np.uint8)
    r2 = None if rule_ids is None else np.asarray(rule_ids, dtype=np.uint8)
    shape = (len(d), n_slots)
    if d.ndim != 1 or v2.shape != shape or q2.shape != shape or (r2 is not None and r2.shape != shape):
        raise _error(f"dense days of {channel_id}: values {v2.shape}, quality {q2.shape}"
                     f"{'' if r2 is None else f', rule ids {r2.shape}'} for {len(d)} days, expected {shape}",
                     source, channel_id, "values")
    if known_hashes is not None and len(known_hashes) != len(d):
        raise ValueError(f"{len(known_hashes)} known hashes for {len(d)} days")
    names = list(rule_names)
    if r2 is not None and int(r2.max(initial=0)) > len(names):
        raise _error(f"rule id {int(r2.max())} has no rule name ({len(names)} given)", source, channel_id, "rule_ids")
    if len(d) > 1 and not bool((d[1:] > d[:-1]).all()):
        # sort by day, the last row of a day wins
        rev = np.arange(len(d))[::-1]
        _, first_rev = np.unique(d[rev], return_index=True)
        pick = rev[first_rev]
        d, v2, q2 = d[pick], v2[pick], q2[pick]
        r2 = r2[pick] if r2 is not None else None
        known_hashes = [known_hashes[i] for i in pick.tolist()] if known_hashes is not None else None
    if r2 is not None:
        canon: list[str] = []
        r2 = _remap_rule_ids(r2, names, canon)  # names the ids use, duplicates merged
        names = canon
        if not r2.any():
            r2, names = None, []
    return _check_dense(_ChannelDays(channel_id, interval_minutes, d, v2, q2, r2, tuple(names), known_hashes),
                        source)


# ---------------------------------------------------------------------- the store


class _Grid:
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
        ends = _raw_day_numbers((raw_days[0], raw_days[-1]))
        consecutive = int(ends[1] - ends[0]) == k - 1
        day_no = np.arange(ends[0], ends[0] + k, dtype=np.int64) if consecutive else _raw_day_numbers(raw_days)
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

    def _copy(self, ci: int, cid: str, day0: int, stored: int, vals: bytes, quals: bytes, n_days: int) -> None:
        """Copy ``n_days`` consecutive stored days from ``day0`` (joined blobs) into row ``ci``."""
        if self.minutes % stored:
            raise IntervalDataError(
                f"channel {cid} is stored with {stored}-minute intervals and cannot be read as "
                f"{self.minutes}-minute intervals", source=cid, field="interval_minutes")
        f = self.minutes // stored
        v = np.frombuffer(vals, dtype="<f8")
        q = np.frombuffer(quals, dtype=np.uint8)
        if f > 1:
            q = q.reshape(-1, f).max(axis=1)
            v = v.reshape(-1, f).sum(axis=1)
            v[q == MISSING] = np.nan
        g0 = (day0 - self.d_first) * self.n_slots - self.off
        lo, hi = max(0, g0), min(self.n_int, g0 + n_days * self.n_slots)
        if hi > lo:
            self.values[ci, lo:hi] = v[lo - g0:hi - g0]
            self.quality[ci, lo:hi] = q[lo - g0:hi - g0]

    def place_joined(self, ci: int, cid: str, row: Sequence[Any], hashes: DayHashes) -> bool:
        """Copy one channel's days from a :meth:`_Sql.read_joined` row; False (nothing done)
        unless they are consecutive days in day order at one interval length, each whole."""
        _, k, first, last, m_lo, m_hi, vals, quals, digests, day_list = row
        if m_lo != m_hi or not isinstance(first, str) or not isinstance(day_list, str):
            return False
        stored = int(m_lo)
        if stored <= 0 or _MINUTES_PER_DAY % stored:
            return False
        d0 = date.fromisoformat(first).toordinal() - _EPOCH_ORDINAL
        d1 = date.fromisoformat(last).toordinal() - _EPOCH_ORDINAL
        per_day = _MINUTES_PER_DAY // stored
        if (d1 - d0 + 1 != k or len(vals) != 8 * per_day * k or len(quals) != per_day * k
                or len(digests) != 64 * k or day_list != self.iso_days(d0, d1)):
            return False
        hashes.add(cid, np.arange(d0, d1 + 1, dtype=np.int64), [digests[i:i + 64] for i in range(0, 64 * k, 64)])
        self.filled[ci, d0 - self.d_first:d1 - self.d_first + 1] = True
        self._copy(ci, cid, d0, stored, vals, quals, k)
        return True

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
        _check_layer(layer)
        cd = _prepare_dense(channel_id, interval_minutes, days, values, quality, rule_ids, rule_names, source,
                            known_hashes)
        report = WriteReport(intervals=int(np.asarray(values).size))
        if not len(cd.days):
            return report
        return self._commit([cd], layer, source, merge=False, conn=conn, report=report)

    def _commit(self, prepared: list[_ChannelDays], layer: str, source: str, *, merge: bool,
                conn: Connection | None, report: WriteReport) -> WriteReport:
        if not prepared:
            return report
        if conn is None:
            with self.db.write_transaction() as own:
                return self._commit(prepared, layer, source, merge=merge, conn=own, report=report)
        sql = _sql(conn.dialect)
        now = utcnow()
        now_param = sql.ts(now)
        src = source[-SOURCE_MAX:]
        rows: list[tuple[Any, ...]] = []
        retire: list[int] = []
        marks: list[dict[str, Any]] = []
        fills: list[dict[str, Any]] = []
        cur = _cursor(conn)
        try:
            if sql.postgres:  # the months this write covers get their partitions first
                ensure_partitions(cur, *_to_dates(np.array([min(int(cd.days[0]) for cd in prepared),
                                                            max(int(cd.days[-1]) for cd in prepared)])))
            for cd in prepared:
                stored = self._stored_minutes(cur, sql, cd.channel_id)
                if stored is not None and int(stored) != cd.interval_minutes:
                    raise _error(f"channel {cd.channel_id} is stored with {stored}-minute intervals, the batch "
                                 f"has {cd.interval_minutes}-minute intervals", source, cd.channel_id,
                                 "interval_minutes")
                day_params = sql.days(cd.days)
                # a channel without any stored row has no current versions to look up
                existing = (self._current_rows(cur, sql, cd, layer, day_params, merge)
                            if stored is not None else {})
                self._build_rows(cd, existing, layer, src, now, now_param, sql, day_params, merge, rows, retire,
                                 marks, report, fills)
            for chunk in _chunks(retire):
                cur.execute(sql.retire(len(chunk)), [False, *chunk])
            if rows:
                _insert_day_rows(conn, sql, cur, rows)
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
    def _stored_minutes(cur: Any, sql: _Sql, channel_id: str) -> int | None:
        """The interval length of any stored row of ``channel_id`` (None: nothing stored)."""
        cur.execute(sql.probe, (channel_id,))
        row = cur.fetchone()
        return None if row is None else row[0]

    @staticmethod
    def _current_rows(cur: Any, sql: _Sql, cd: _ChannelDays, layer: str, day_params: list[Any],
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
            stmts = [(sql.meta_in(len(chunk)), (cid, layer, True, *chunk)) for chunk in _chunks(day_params)]
        raw: list[Any] = []
        for stmt, params in stmts:
            cur.execute(stmt, params)
            raw.extend(cur.fetchall())
        found: dict[int, _Old] = {}
        if not raw:
            return found
        wanted = set(days.tolist())
        for r, n in zip(raw, _raw_day_numbers([r[1] for r in raw]).tolist(), strict=True):
            if n in wanted:
                found[n] = _Old(int(r[0]), int(r[2]), r[3], r[4])
        if merge and found:
            partial = days[(cd.quality == MISSING).any(axis=1)].tolist()
            need = {found[n].id: found[n] for n in partial if n in found}
            ids = list(need)
            for chunk in _chunks(ids):
                cur.execute(sql.blobs(len(chunk)), tuple(chunk))
                for id_, v, q, rids in cur.fetchall():
                    old = need[int(id_)]
                    old.values, old.quality, old.rule_ids = bytes(v), bytes(q), None if rids is None else bytes(rids)
        return found

    def _build_rows(self, cd: _ChannelDays, existing: dict[int, _Old], layer: str, source: str,
                    now: datetime, now_param: Any, sql: _Sql, day_params: list[Any], merge: bool,
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
                        _remap_rule_ids(np.zeros(0, dtype=np.uint8), json.loads(o.rule_names), names)
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
                    new_r = _remap_rule_ids(rule_ids, cd.rule_names, names)
                    merged_r[fresh] = new_r[fresh]
                for i, o in merged:
                    if o.rule_ids is not None:
                        ids = np.frombuffer(o.rule_ids, dtype=np.uint8)
                        old_r = _remap_rule_ids(ids, json.loads(o.rule_names or "[]"), names)
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
            rule_ids, day_names = _canonical_rules(rule_ids, names)
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
                day = date.fromordinal(day_list[i] + _EPOCH_ORDINAL)
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
                day = date.fromordinal(day_list[i] + _EPOCH_ORDINAL)
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

        Each channel's days arrive in day order; runs of consecutive days are joined and
        copied into the channel's row of the result in one step, clipped to the span.
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
        grid = _Grid(len(ids), n_int, n_days, n_slots, d_first, (s0 - d_first * SECONDS_PER_DAY) // step,
                     interval_minutes)
        hashes = DayHashes()
        if n_int and ids:
            with self.db.read_connection() as conn:
                sql = _sql(conn.dialect)
                lo, hi = sql.days(np.array([d_first, d_last]))
                cur = _cursor(conn, binary=sql.copy)  # psycopg: blobs as bytes on the wire, not hex text
                try:
                    if sql.sqlite:
                        pos = {c: i for i, c in enumerate(ids)}
                        rest: list[str] = []
                        for chunk in _chunks(ids) if self.joined_reads else ():
                            cur.execute(sql.read_joined(len(chunk)), (layer, True, lo, hi, *chunk))
                            for row in cur:
                                if not grid.place_joined(pos[row[0]], row[0], row, hashes):
                                    rest.append(row[0])
                        for cid in rest if self.joined_reads else ids:  # day by day
                            cur.execute(sql.read_one, (cid, layer, lo, hi, True))
                            rows = cur.fetchall()
                            if rows:
                                grid.place(pos[cid], cid, rows, hashes)
                    else:
                        pos = {c: i for i, c in enumerate(ids)}
                        for chunk in _chunks(ids):
                            cur.execute(sql.read(len(chunk)), (layer, True, lo, hi, *chunk))
                            # sorted here: a server-side ORDER BY of the blob rows spills to disk
                            rows = sorted(cur.fetchall(), key=_CHANNEL_DAY)
                            for cid, group in groupby(rows, key=itemgetter(0)):
                                grid.place(pos[cid], cid, list(group), hashes)
                finally:
                    cur.close()
        grid.mark_missing()
        return IntervalMatrix(channel_ids=ids, start_epoch=s0, interval_minutes=interval_minutes,
                              values=grid.values, quality=grid.quality, day_hashes=hashes)

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
            channel_id=cid, intervals=count, first_start=_datetime_or_none(first), last_end=_datetime_or_none(last),
            total_kwh=float(np.nansum(v[ok])), days=len(rows), interval_minutes=minutes,
        )

    def count_rows(self, layer: str | None = None) -> int:
        """Number of stored day rows (all versions)."""
        stmt = select(func.count()).select_from(interval_day_table)
        if layer is not None:
            stmt = stmt.where(T.layer == layer)
        with self.db.read_connection() as conn:
            return int(conn.execute(stmt).scalar() or 0)
