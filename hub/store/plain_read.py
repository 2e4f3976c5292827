"""Read commands on the driver's own connection: no SQLAlchemy, no SQLModel, no Alembic.

``import sqlmodel`` alone costs a read command about half a second of CPU (pydantic's and
SQLAlchemy's machinery), more than the few queries it runs. The queries of the read-only
commands that read stored documents (``kwhub invoices list``, ``invoices show``) therefore
run on the DB-API connection of the database, here:

* a plain ``sqlite:///PATH`` URL: the standard library's :mod:`sqlite3`, opened read-only
  (``mode=ro``: a read command never creates nor writes the file);
* anything else (PostgreSQL, SQLite URLs with options): :class:`kwhub.hub.store.Database`
  opened without migrating, and its driver connection (psycopg), so a PostgreSQL read keeps
  the connection set-up of every other command (row scope, errors without passwords).

The schema is never migrated by a read: :func:`schema_problem` compares the database's
``alembic_version`` (one ``SELECT``) with the head of the shipped migrations, read from the
migration files' ``revision`` lines (:func:`migration_chain`), and names what to do.

The tables and columns read here are listed in :data:`COLUMNS`; a test checks them against
the SQLModel tables (the one definition of the schema), so the two cannot drift apart.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_PREFIX = "sqlite:///"
BUSY_TIMEOUT_S = 30.0

# table -> the columns this module reads (checked against the SQLModel tables by a test)
COLUMNS: dict[str, tuple[str, ...]] = {
    "alembic_version": ("version_num",),
    "invoice": ("id", "number", "contract_id", "period", "buyer", "seller", "issued_at", "number_seq", "document"),
    "interval_day": ("channel_id", "day", "layer", "version", "is_current", "interval_minutes", "values", "quality",
                     "rule_ids", "rule_names"),
    "period_reading": ("channel_id", "kind", "start_epoch", "end_epoch", "value", "is_current"),
    "settlement_run": ("id", "contract_id", "period", "version_kind", "seq", "status", "invoice_id", "created_at",
                       "stale", "draft", "checks"),
}

_REVISION_LINE = re.compile(r'^(down_revision|revision)\s*(?::[^=]*)?=\s*["\']?([^"\'\s]+)["\']?\s*$', re.MULTILINE)


@cache
def migration_chain() -> tuple[str, ...] | None:
    """The shipped migrations' revisions, oldest first, read from the files' ``revision`` and
    ``down_revision`` lines (Alembic is a large import); None when they are not one chain."""
    parent_of: dict[str, str | None] = {}
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        found = dict(_REVISION_LINE.findall(path.read_text(encoding="utf-8")))
        if "revision" not in found:
            return None
        down = found.get("down_revision")
        parent_of[found["revision"]] = None if down in (None, "None") else down
    children: dict[str | None, list[str]] = {}
    for rev, parent in parent_of.items():
        children.setdefault(parent, []).append(rev)
    chain: list[str] = []
    node: str | None = None
    while node in children:
        nxt = children[node]
        if len(nxt) != 1:
            return None  # a branch: let Alembic decide
        node = nxt[0]
        chain.append(node)
    return tuple(chain) if len(chain) == len(parent_of) else None


def schema_problem(found: str | None, shown: str) -> tuple[str, str] | None:
    """(message, hint) when a database at revision ``found`` cannot be read by this kwhub
    without migrating; None when it is at the head of :func:`migration_chain`.

    A read never migrates: a database behind the code is upgraded with ``kwhub db upgrade``
    (or by any command that writes), one ahead of it needs a newer kwhub."""
    chain = migration_chain()
    if chain is None:  # pragma: no cover - the shipped migrations are one chain (a test checks)
        return None
    head = chain[-1]
    if found == head:
        return None
    if found is None:
        return (f"the database {shown} has no kwhub schema (an empty or foreign database); this command only "
                "reads and does not create one",
                "run `kwhub db upgrade` to create the schema, or check [hub] database in kwhub.toml")
    if found in chain:
        return (f"the database {shown} is at schema revision {found}, older than this kwhub's {head}; "
                "a read command does not migrate it",
                "run `kwhub db upgrade` (with the owner's URL on PostgreSQL), then the command again")
    return (f"the database {shown} is at schema revision {found}, which this kwhub ({head}) does not know: "
            "it was written by a newer kwhub",
            "upgrade kwhub to the version that wrote this database")


def plain_sqlite_path(url: str) -> Path | None:
    """The file of a plain ``sqlite:///PATH`` URL (no driver, options or URI); None otherwise."""
    if not url.startswith(SQLITE_PREFIX):
        return None
    path = url[len(SQLITE_PREFIX):]
    if not path or path == ":memory:" or path.startswith("file:") or "?" in path:
        return None
    return Path(path)


class PlainReader:
    """A DB-API connection to read from, with the driver's parameter style.

    Queries are written with ``?`` placeholders (sqlite3's style); on a ``format`` driver
    (psycopg) they become ``%s``. No query here contains a literal ``?`` or ``%``.
    """

    def __init__(self, conn: Any, paramstyle: str, shown: str, close: Any = None) -> None:
        self._conn = conn
        self._pyformat = paramstyle in ("format", "pyformat")
        self.shown = shown
        self._close = close or conn.close
        self._after: list[Any] = []

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Every row of ``sql``."""
        if self._pyformat:
            sql = sql.replace("?", "%s")
        cur = self._conn.cursor()
        try:
            cur.execute(sql, tuple(params))
            return list(cur.fetchall())
        finally:
            cur.close()

    def day(self, value: date) -> Any:
        """A day as a query parameter: ISO text on SQLite (as SQLAlchemy stores it), else a date."""
        return value if self._pyformat else value.isoformat()

    def revision(self) -> str | None:
        """The schema revision in ``alembic_version`` (None without that table)."""
        try:
            found = self.rows("SELECT version_num FROM alembic_version")
        except Exception as exc:  # no such table: the driver's own error class
            if "alembic_version" not in str(exc):
                raise
            self._end_failed()
            return None
        return found[0][0] if found else None

    def _end_failed(self) -> None:
        rollback = getattr(self._conn, "rollback", None)
        if rollback is not None:
            rollback()

    def also_close(self, resource: Any) -> None:
        """Close ``resource`` (a :class:`kwhub.hub.store.Database`) after this reader's connection."""
        self._after.append(resource)

    def close(self) -> None:
        try:
            self._close()
        finally:
            for resource in self._after:
                resource.close()
            self._after = []


def open_sqlite(path: Path, shown: str) -> PlainReader:
    """A read-only :mod:`sqlite3` connection to an existing file."""
    import sqlite3
    from urllib.parse import quote

    conn = sqlite3.connect(f"file:{quote(path.resolve().as_posix())}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)
    return PlainReader(conn, sqlite3.paramstyle, shown)


def reader_of(db: Any, shown: str) -> PlainReader:
    """A reader on the driver connection of an open :class:`kwhub.hub.store.Database`
    (its row scope and set-up included); closing the reader returns the connection.

    Connecting raises SQLAlchemy's ``OperationalError`` when the database cannot be reached."""
    conn = db.engine.connect()
    driver = conn.connection.driver_connection
    module = type(driver).__module__.split(".", 1)[0]
    paramstyle = "format" if module == "psycopg" else getattr(__import__(module), "paramstyle", "qmark")

    def close() -> None:
        try:
            conn.rollback()
        finally:
            conn.close()

    return PlainReader(driver, paramstyle, shown, close)


# ------------------------------------------------------------------ issued documents


def _equal_filter(**given: str | None) -> tuple[str, list[str]]:
    """`` WHERE column = ? AND ...`` for each column given a value (nothing when none is), and its parameters."""
    where = [f"{column} = ?" for column, value in given.items() if value]
    params = [value for value in given.values() if value]
    return (" WHERE " + " AND ".join(where)) if where else "", params


def invoice_documents(reader: PlainReader, *, contract_id: str | None = None, period: str | None = None,
                      buyer: str | None = None) -> list[str]:
    """The stored JSON of issued documents, oldest first (the order of
    :func:`kwhub.hub.settle.invoices_read.list_invoices`)."""
    where, params = _equal_filter(contract_id=contract_id, period=period, buyer=buyer)
    sql = f"SELECT document FROM invoice{where} ORDER BY issued_at, seller, number_seq"
    return [doc for (doc,) in reader.rows(sql, params)]


def invoice_document(reader: PlainReader, ref: str) -> str | None:
    """The stored JSON of the document with id or number ``ref`` (None: no such document)."""
    found = reader.rows("SELECT document FROM invoice WHERE id = ? OR number = ?", (ref, ref))
    return found[0][0] if found else None


# ------------------------------------------------------------------ settlement runs


def settlement_runs(reader: PlainReader, *, period: str | None = None, contract_id: str | None = None,
                    status: str | None = None) -> list[dict[str, Any]]:
    """The ``settlement_run`` rows (the columns of ``COLUMNS["settlement_run"]``), typed as
    SQLAlchemy reads them: ``stale`` a bool, ``created_at`` a datetime. Shaped for display by
    :func:`kwhub.hub.settle.run_list.summarise_runs`."""
    names = COLUMNS["settlement_run"]
    where, params = _equal_filter(period=period, contract_id=contract_id, status=status)
    sql = f"SELECT {', '.join(names)} FROM settlement_run{where}"
    out = []
    for values in reader.rows(sql, params):
        r = dict(zip(names, values, strict=True))
        r["stale"] = bool(r["stale"])
        if isinstance(r["created_at"], str):  # SQLite keeps the instant as text
            r["created_at"] = datetime.fromisoformat(r["created_at"])
        out.append(r)
    return out


# ------------------------------------------------------------------ stored readings
# The interval store (kwhub.hub.store.interval_store) answers the same questions on SQLAlchemy;
# tests check that both give the same answers on SQLite and PostgreSQL.

_DAY_COLUMNS = 'channel_id, day, version, interval_minutes, "values", quality, rule_ids, rule_names'


class IntervalTotals(NamedTuple):
    """One channel's current days in a layer: non-missing intervals, first start, last end, total."""

    channel_id: str
    intervals: int
    first_start: datetime | None
    last_end: datetime | None
    total_kwh: float


class PeriodTotals(NamedTuple):
    """One channel's current period readings of one kind."""

    channel_id: str
    kind: str
    readings: int
    first_start: int
    last_end: int
    total_kwh: float  # sum of the values, as kwhub.hub.store.period_store.PeriodSummary


def _as_day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


def _instant(epoch_s: int) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(epoch_s), tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def interval_channels(reader: PlainReader, layer: str) -> list[str]:
    """Channels with current days in ``layer``."""
    return [r[0] for r in reader.rows("SELECT DISTINCT channel_id FROM interval_day WHERE layer = ? AND is_current = ? "
                                      "ORDER BY channel_id", (layer, True))]


def day_blocks(reader: PlainReader, channel_id: str, first_day: date, last_day: date, layer: str) -> list[Any]:
    """The current :class:`kwhub.core.intervals.DayBlock` of each day ``first_day..last_day``."""
    import json

    import numpy as np

    from kwhub.core.intervals import DayBlock

    rows = reader.rows(f"SELECT {_DAY_COLUMNS} FROM interval_day WHERE channel_id = ? AND layer = ? AND day >= ? "
                       "AND day <= ? AND is_current = ? ORDER BY day",
                       (channel_id, layer, reader.day(first_day), reader.day(last_day), True))
    return [DayBlock(channel_id=ch, day=_as_day(day), interval_minutes=int(minutes),
                     values=np.frombuffer(values, dtype="<f8").astype(np.float64),
                     quality=np.frombuffer(quality, dtype=np.uint8).copy(),
                     rule_ids=np.frombuffer(rule_ids, dtype=np.uint8).copy() if rule_ids is not None else None,
                     rule_names=tuple(json.loads(names)) if names else (), layer=layer, version=int(version))
            for ch, day, version, minutes, values, quality, rule_ids, names in rows]


def interval_totals(reader: PlainReader, layer: str) -> list[IntervalTotals]:
    """Per channel with current days in ``layer``: its :class:`IntervalTotals`."""
    import numpy as np

    from kwhub.core.quality import Quality

    out = []
    for cid in interval_channels(reader, layer):
        rows = reader.rows('SELECT day, interval_minutes, "values", quality FROM interval_day WHERE channel_id = ? '
                           "AND layer = ? AND is_current = ? ORDER BY day", (cid, layer, True))
        minutes = int(rows[0][1])
        n_slots = 1440 // minutes
        v = np.frombuffer(b"".join(bytes(r[2]) for r in rows), dtype="<f8").reshape(len(rows), n_slots)
        q = np.frombuffer(b"".join(bytes(r[3]) for r in rows), dtype=np.uint8).reshape(len(rows), n_slots)
        ok = q != np.uint8(Quality.MISSING)
        count = int(ok.sum())
        if count == 0:
            out.append(IntervalTotals(cid, 0, None, None, 0.0))
            continue
        days = np.array([_as_day(r[0]).toordinal() - _EPOCH_ORDINAL for r in rows], dtype=np.int64)
        starts = days[:, None] * 86_400 + np.arange(n_slots, dtype=np.int64)[None, :] * minutes * 60
        s = starts[ok]
        out.append(IntervalTotals(cid, count, _instant(int(s.min())), _instant(int(s.max()) + minutes * 60),
                                  float(np.nansum(v[ok]))))
    return out


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def period_totals(reader: PlainReader) -> list[PeriodTotals]:
    """Per channel and kind: current period readings, first start, last end, sum of values."""
    rows = reader.rows("SELECT channel_id, kind, COUNT(*), MIN(start_epoch), MAX(end_epoch), SUM(value) "
                       "FROM period_reading WHERE is_current = ? GROUP BY channel_id, kind ORDER BY channel_id, kind",
                       (True,))
    return [PeriodTotals(r[0], r[1], int(r[2]), int(r[3]), int(r[4]), float(r[5] or 0.0)) for r in rows]


@contextmanager
def reading(reader: PlainReader) -> Iterator[PlainReader]:
    """Close ``reader`` when the block ends."""
    try:
        yield reader
    finally:
        reader.close()
