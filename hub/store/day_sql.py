"""Driver-level SQL of the ``interval_day`` hot paths, built once per dialect.

The probe, current-row lookup, bulk insert (executemany on SQLite, binary COPY on
PostgreSQL with psycopg) and dense read go straight to the DBAPI cursor of the
connection's own transaction: no statement compilation, no Row object per channel-day.
Also the epoch-day helpers these paths share.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime
from operator import itemgetter
from typing import Any

import numpy as np
from sqlalchemy import Connection

from kwhub.hub.store.pg_intervals import copy_in_allowed, write_memo
from kwhub.hub.store.tables import LAYERS, interval_day_table

EPOCH_DAY = np.datetime64("1970-01-01", "D")
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
IN_CHUNK = 500  # bound parameters per IN list
# SQLite reads of a large dense matrix map the database file (up to this many bytes) instead
# of copying every page through the page cache (a campus-year is larger than the cache); the
# mapping is dropped after the read, as mapped pages count in the process's resident memory
READ_MMAP_BYTES = 1 << 30
READ_MMAP_MIN_VALUES = 4_000_000  # smaller reads (VEE's read-backs, one channel) go through the cache
T = interval_day_table.c


def to_dates(days: np.ndarray) -> list[date]:
    return (np.asarray(days, dtype=np.int64).astype("datetime64[D]")).tolist()



def day_number(d: date) -> int:
    return d.toordinal() - EPOCH_ORDINAL



def raw_day_numbers(raw: Sequence[Any]) -> np.ndarray:
    """Epoch-day numbers of driver-level day values (ISO strings on SQLite, dates on PostgreSQL)."""
    if raw and isinstance(raw[0], str):
        return (np.array(raw, dtype="datetime64[D]") - EPOCH_DAY).astype(np.int64)
    return np.array([d.toordinal() for d in raw], dtype=np.int64) - EPOCH_ORDINAL



def chunks(seq: Sequence[Any], n: int = IN_CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i:i + n]



def check_layer(layer: str) -> None:
    if layer not in LAYERS:
        raise ValueError(f"unknown layer {layer!r}; expected one of {LAYERS}")



INSERT_COLUMNS = ("channel_id", "day", "layer", "version", "interval_minutes", "n_values", "values", "quality",
                  "rule_ids", "rule_names", "content_hash", "source", "created_at", "is_current")



class DaySql:
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
        # PostgreSQL: the probe of each channel of an array, in one statement
        self.probe_many = (f"SELECT k.id, (SELECT {c['interval_minutes']} FROM {tbl} WHERE {c['channel_id']} = k.id "
                           f"LIMIT 1) FROM unnest({m}::varchar[]) AS k(id)")
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
        # SQLite: each channel's days in one row, joined by SQLite itself (one row per channel
        # instead of one per channel-day): each day's values and quality blobs as one record
        # (one join instead of two; SQLite's join copies a blob column once more to end it
        # with a NUL, a concatenation already ends so), the digests comma-separated, the day
        # list (Python checks the order) and the highest version (above 1: a restated day)
        self._read_joined = (
            f"SELECT {c['channel_id']}, count(*), min({c['interval_minutes']}), max({c['interval_minutes']}), "
            f"CAST(group_concat({c['values']} || {c['quality']}, x'') AS BLOB), "
            f"group_concat({c['content_hash']}, ','), group_concat({c['day']}, ''), max({c['version']}) FROM {tbl} "
            f"WHERE {c['layer']} = {m} AND {c['is_current']} = {m} "
            f"AND {c['day']} >= {m} AND {c['day']} <= {m} AND {c['channel_id']} IN ")
        # PostgreSQL: one row per channel of an array parameter (channels without days: count 0),
        # each channel's days aggregated off the (channel, layer, day, version) key of each month
        # partition: count, min and max minutes, the values blobs joined, the quality blobs
        # joined, the digests comma-separated, the days as big-endian int4 epoch-day numbers
        # joined (int4send: no date formatting per row) and the highest version. No ORDER BY in
        # the aggregates: every aggregate of a group takes its rows in the same order (so the
        # blobs, digests and days line up), the key hands them over in day order, and the client
        # checks the days and puts them in order where they are not (a sort per aggregate per
        # channel was a third of the server's time). The client gets a row per channel, not a
        # row per day.
        self.read_joined_array = (
            f"SELECT k.id, j.* FROM unnest({m}::varchar[]) AS k(id) CROSS JOIN LATERAL ("
            f"SELECT count(*), min({c['interval_minutes']}), max({c['interval_minutes']}), "
            f"string_agg({c['values']}, ''::bytea), string_agg({c['quality']}, ''::bytea), "
            f"string_agg({c['content_hash']}, ','), "
            f"string_agg(int4send({c['day']} - DATE '1970-01-01'), ''::bytea), max({c['version']}) "
            f"FROM {tbl} WHERE {c['channel_id']} = k.id AND {c['layer']} = {m} AND {c['is_current']} = {m} "
            f"AND {c['day']} >= {m} AND {c['day']} <= {m}) AS j") if self.postgres else ""
        self.no_jit = "SET LOCAL jit = off"  # PostgreSQL: for the rest of the read's transaction
        # one channel's days in day order, straight off the (channel, layer, day, version)
        # key (SQLite: cheaper per row than an IN list, walked channel by channel anyway)
        self.read_one = (f"SELECT {c['channel_id']}, {c['day']}, {c['interval_minutes']}, {c['values']}, "
                         f"{c['quality']}, {c['content_hash']} FROM {tbl} WHERE {c['channel_id']} = {m} "
                         f"AND {c['layer']} = {m} AND {c['day']} >= {m} AND {c['day']} <= {m} "
                         f"AND {c['is_current']} = {m} ORDER BY {c['day']}")
        self.read_mmap = f"PRAGMA mmap_size = {READ_MMAP_BYTES}"
        self.read_unmap = "PRAGMA mmap_size = 0"
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

    def plain_insert_days(self, layer: str, created_at: Any) -> str | None:
        """SQLite: :meth:`plain_insert` of one channel's consecutive rows in one statement.

        The rows are cut by SQLite from fixed-width runs, in order (the same rows, ids and
        storage classes as one :meth:`plain_insert` per day). Parameters: number of days,
        channel id, the days' ISO dates joined (10 characters each), interval minutes, the
        values counts joined (5 digits each, plus 10000), the values blob, its bytes per day,
        the quality blob, its bytes per day, the digests joined (64 characters each), source.
        None where :meth:`plain_insert` is None and on other databases.
        """
        if not self.sqlite or self.plain_insert(layer, created_at) is None:
            return None
        sel = {"channel_id": "?2", "day": "substr(?3, i * 10 + 1, 10)", "layer": f"'{layer}'", "version": "1",
               "interval_minutes": "?4", "n_values": "CAST(substr(?5, i * 5 + 1, 5) AS INTEGER) - 10000",
               "values": "substr(?6, i * ?7 + 1, ?7)", "quality": "substr(?8, i * ?9 + 1, ?9)",
               "rule_ids": "NULL", "rule_names": "'[]'", "content_hash": "substr(?10, i * 64 + 1, 64)",
               "source": "?11", "created_at": f"'{created_at}'", "is_current": "1"}
        return (f"INSERT INTO {self.table} ({self._insert_cols}) "
                "WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i + 1 < ?1) "
                f"SELECT {', '.join(sel[name] for name in INSERT_COLUMNS)} FROM k ORDER BY i")

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
        """SQLite: per channel of ``n``, ``(channel, days, min minutes, max minutes, day records,
        digests, day list, max version)``: each day's values blob then its quality blob, the
        days' records joined in one blob; the digests comma-separated; the ISO days joined."""
        return f"{self._read_joined}{self._marks(n)} GROUP BY {self.q_channel}"

    def days(self, days: np.ndarray) -> list[Any]:
        """Driver-level parameters of epoch-day numbers."""
        if self.sqlite:
            # the SQLite DATE storage format is the ISO date
            return np.datetime_as_string(np.asarray(days, dtype=np.int64).astype("datetime64[D]")).tolist()
        dates = to_dates(days)
        return dates if self._day is None else [self._day(d) for d in dates]

    def ts(self, value: datetime) -> Any:
        return value if self._ts is None else self._ts(value)

_SQL_CACHE: dict[tuple[str, str, str], DaySql] = {}


def day_sql(dialect: Any) -> DaySql:
    key = (dialect.name, dialect.driver, dialect.paramstyle)
    found = _SQL_CACHE.get(key)
    if found is None:
        found = _SQL_CACHE[key] = DaySql(dialect)
    return found



def dbapi_cursor(conn: Connection, binary: bool = False) -> Any:
    """The DBAPI cursor of ``conn``'s own connection, inside its (auto)begun transaction.

    ``binary``: a psycopg cursor that fetches results in the binary format.
    """
    if not conn.in_transaction():
        conn.begin()  # what the first execute would do (autobegin)
    driver = conn.connection.driver_connection
    if binary:
        return driver.cursor(binary=True)  # type: ignore[union-attr]
    return driver.cursor()  # type: ignore[union-attr]



def insert_day_rows(conn: Connection, sql: DaySql, cur: Any, rows: list[tuple[Any, ...]]) -> None:
    """Bulk insert of ``INSERT_COLUMNS`` tuples (driver-level values) in ``conn``'s transaction."""
    if sql.copy and copy_in_allowed(cur, write_memo(conn)):  # (row-level security refuses COPY FROM to most roles)
        # COPY is several times faster than executemany; same connection, same transaction
        copy_day_rows(cur, sql, rows)
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


def copy_day_rows(cur: Any, sql: DaySql, rows: Iterable[tuple[Any, ...]]) -> None:
    """PostgreSQL: binary ``COPY ... FROM STDIN`` of ``INSERT_COLUMNS`` tuples on ``cur``.

    ``rows`` may be a generator: each row is sent as it comes (psycopg sends its buffer
    every 32 KiB), so the server stores what has arrived while the generator builds more.
    """
    with cur.copy(sql.copy_sql) as copy:
        copy.set_types(COPY_TYPES)  # binary: the blobs go as bytes, not hex text
        for r in rows:
            copy.write_row(r)


_I_VERSION, _I_RULE_IDS = INSERT_COLUMNS.index("version"), INSERT_COLUMNS.index("rule_ids")
_I_LAYER, _I_CREATED = INSERT_COLUMNS.index("layer"), INSERT_COLUMNS.index("created_at")
_VERSION_OF, _RULE_IDS_OF = itemgetter(_I_VERSION), itemgetter(_I_RULE_IDS)
_PLAIN_BOUND = ("channel_id", "day", "interval_minutes", "n_values", "values", "quality", "content_hash", "source")
_PLAIN_COLUMNS = itemgetter(*(INSERT_COLUMNS.index(c) for c in _PLAIN_BOUND))
_CURRENT_OF = itemgetter(INSERT_COLUMNS.index("is_current"))
_SEMI_COLUMNS = itemgetter(*(i for i, c in enumerate(INSERT_COLUMNS) if c not in ("layer", "created_at", "is_current")))
_SAFE_LITERAL = re.compile(r"[0-9A-Za-z_:. +-]*")
CHANNEL_DAY = itemgetter(0, 1)


# PostgreSQL types of INSERT_COLUMNS, for the binary COPY (they must match the table's)
COPY_TYPES = ("varchar", "date", "varchar", "int4", "int4", "int4", "bytea", "bytea", "bytea", "text", "varchar",
               "varchar", "timestamptz", "bool")

