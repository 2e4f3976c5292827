"""Opening the database: engine set-up, write transactions and migrations.

SQLite is the embedded default (a ``kwhub.db`` file in the work directory) in WAL mode
with a busy timeout and foreign keys on (new files get 16 KiB pages; each connection a
32 MiB page cache); the log is copied into the file by a background thread
(:mod:`kwhub.hub.store.checkpoint`), not by the committing writer. The ``pysqlite`` driver's own
transaction handling is switched off so that SQLAlchemy's ``begin`` event issues the ``BEGIN``:
``BEGIN IMMEDIATE`` for writers (they take the write lock up front and wait for it up to
the busy timeout instead of failing on a lock upgrade), plain ``BEGIN`` for readers.
PostgreSQL is selected by URL (``postgresql+psycopg://host/db``); there, writers that
use :meth:`Database.write_transaction` serialise on a transaction-scoped advisory lock.

Opening runs the Alembic migrations in ``hub/store/migrations`` up to head. A URL that
cannot be used raises :class:`DatabaseUrlError`, a database that cannot be reached
:class:`DatabaseUnavailableError`, and a database behind the code that the connected role
may not migrate (an application role that does not own the tables) :class:`DatabaseError`;
none of them shows the password.
"""

from __future__ import annotations

import atexit
import contextvars
import importlib
import os
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError
from sqlmodel import Session

import kwhub.hub.store.tables  # noqa: F401  (core tables in SQLModel.metadata)
from kwhub.hub.redact import redact_credentials
from kwhub.hub.store.checkpoint import WalCheckpointer

if TYPE_CHECKING:
    from kwhub.hub.store.interval_store import IntervalStore
    from kwhub.hub.store.period_store import PeriodStore

DEFAULT_DB_NAME = "kwhub.db"
ENV_URL = "KWHUB_DATABASE_URL"
# "background" (default): a thread checkpoints the SQLite log; "inline": SQLite's own
# automatic checkpoint inside the committing transaction
ENV_CHECKPOINT = "KWHUB_SQLITE_CHECKPOINT"
BUSY_TIMEOUT_MS = 30_000
SQLITE_PAGE_SIZE = 16_384  # bytes, for new database files
SQLITE_CACHE_KIB = 32_768  # page cache per connection
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
OPTIONAL_TABLE_MODULES = ("kwhub.hub.store.settlement_tables", "kwhub.hub.store.outbox_tables", "kwhub.hub.store.rendering_tables",
                          "kwhub.hub.store.market_tables", "kwhub.hub.store.carbon_tables", "kwhub.hub.store.service_tables")
WRITE_OPTION = "kwhub_write"
# Key of the PostgreSQL advisory lock that write transactions hold ("kwhubwr" in ASCII).
PG_WRITE_LOCK_KEY = 0x6B776875627772
# PostgreSQL row-level security (migration 0011): the party whose rows a transaction sees,
# ``*`` for all. Connections start with ``*``; a database whose :meth:`Database.scope_requests`
# was called sets the value of :data:`ROW_SCOPE` (default: nothing visible) in every transaction.
ROW_SCOPE_SETTING = "kwhub.party"
ROW_SCOPE: contextvars.ContextVar[str] = contextvars.ContextVar("kwhub_row_scope", default="")


class DatabaseError(RuntimeError):
    """The database cannot be used as asked; ``hint`` says what to do."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


class DatabaseUrlError(DatabaseError):
    """The database URL cannot be parsed or names an unsupported database or driver."""

    exit_code = 2


class DatabaseUnavailableError(DatabaseError):
    """The database server (or file) cannot be reached or opened."""

    exit_code = 4


URL_HINT = ("set [hub] database in kwhub.toml or KWHUB_DATABASE_URL to sqlite:///path/kwhub.db or "
            "postgresql+psycopg://user@host:5432/dbname (or leave it empty for kwhub.db beside kwhub.toml)")


def _reason(exc: BaseException) -> str:
    """The first line of a driver error, without SQL or parameters."""
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return redact_credentials(lines[0] if lines else type(orig).__name__)


def import_table_modules() -> list[str]:
    """Import the optional table modules that exist, so their tables are in the metadata."""
    loaded = []
    for name in OPTIONAL_TABLE_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            continue
        loaded.append(name)
    return loaded


def normalise_url(url: str) -> str:
    """Pick the psycopg (v3) driver for plain ``postgresql://`` / ``postgres://`` URLs."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def default_url(work_dir: Path | None = None) -> str:
    """``sqlite:///<work_dir or cwd>/kwhub.db``."""
    base = Path(work_dir) if work_dir is not None else Path.cwd()
    return f"sqlite:///{(base / DEFAULT_DB_NAME).resolve()}"


def _install_sqlite_hooks(engine: Engine, background_checkpoint: bool = False) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy's begin event issues BEGIN itself
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            # Only takes effect while the file is still empty (before WAL mode is set on it):
            # channel-day rows are ~1 KB, larger pages make bulk writes cheaper.
            cur.execute(f"PRAGMA page_size = {SQLITE_PAGE_SIZE}")
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")
            cur.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
            cur.execute("PRAGMA temp_store = MEMORY")
            cur.execute("PRAGMA foreign_keys = ON")
            if background_checkpoint:  # kwhub.hub.store.checkpoint copies the log instead of the committer
                cur.execute("PRAGMA wal_autocheckpoint = 0")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get(WRITE_OPTION):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def _install_pg_hooks(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        with dbapi_conn.cursor() as cur:  # the session default: every row (the CLI, the scheduler)
            cur.execute(f"SELECT set_config('{ROW_SCOPE_SETTING}', '*', false)")
        dbapi_conn.commit()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get(WRITE_OPTION):
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_WRITE_LOCK_KEY})")


def _alembic_config() -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def _head_from_files() -> str | None:
    """The head of the migration files, read from their ``revision`` lines (alembic is a large
    import; opening a database at head should not need it). None if unclear."""
    from kwhub.hub.store.plain_read import migration_chain

    chain = migration_chain()
    return chain[-1] if chain else None


@cache
def migration_head() -> str:
    """The head revision of the shipped migrations."""
    quick = _head_from_files()
    if quick is not None:
        return quick
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


class Database:
    """One database (SQLite file or PostgreSQL), migrated to head on :meth:`open`.

    A database still open when the process exits is closed then, so the SQLite log is
    checkpointed and removed even when a caller forgot :meth:`close`.
    """

    def __init__(self, engine: Engine, url: str, checkpointer: WalCheckpointer | None = None) -> None:
        self.engine = engine
        self.url = url
        self._intervals: IntervalStore | None = None
        self._periods: PeriodStore | None = None
        self.checkpointer = checkpointer
        self._pid = os.getpid()
        _OPEN.add(self)

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(cls, url: str | None = None, work_dir: Path | None = None, *, migrate: bool = True) -> Database:
        """Open (and migrate to head) the database at ``url``.

        ``url`` None -> ``KWHUB_DATABASE_URL`` if set, else ``sqlite:///<work_dir or cwd>/kwhub.db``.
        The optional table modules are imported when a migration runs (each module that
        queries a table imports it), so opening a database at head imports only the core tables.
        """
        raw = url or os.environ.get(ENV_URL) or default_url(work_dir)
        final = normalise_url(raw)
        try:
            parsed = make_url(final)
        except (ArgumentError, ValueError) as exc:
            raise DatabaseUrlError(f"database URL {redact_credentials(raw)!r} cannot be parsed ({_reason(exc)})",
                                   URL_HINT) from None
        shown = parsed.render_as_string(hide_password=True)
        backend = parsed.get_backend_name()
        checkpointer = None
        try:
            if backend == "sqlite":
                db_path = parsed.database
                if db_path and db_path != ":memory:" and not db_path.startswith("file:"):
                    try:
                        Path(db_path).parent.mkdir(parents=True, exist_ok=True)
                    except OSError as exc:
                        raise DatabaseUnavailableError(
                            f"database {shown!r}: cannot create its folder {Path(db_path).parent}: "
                            f"{exc.strerror or exc}", URL_HINT) from None
                    if os.environ.get(ENV_CHECKPOINT, "background") != "inline":
                        checkpointer = WalCheckpointer(db_path, BUSY_TIMEOUT_MS)
                engine = create_engine(final, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
                _install_sqlite_hooks(engine, background_checkpoint=checkpointer is not None)
            elif backend == "postgresql":
                engine = create_engine(final, pool_pre_ping=True)
                _install_pg_hooks(engine)
            else:
                raise DatabaseUrlError(f"database URL {shown!r}: {backend!r} databases are not supported", URL_HINT)
        except (ArgumentError, NoSuchModuleError, ImportError) as exc:
            if checkpointer is not None:
                checkpointer.stop()
            raise DatabaseUrlError(f"database URL {shown!r}: {_reason(exc)}", URL_HINT) from None
        db = cls(engine, final, checkpointer)
        if migrate:
            try:
                db.migrate()
            except OperationalError as exc:
                db.close()
                raise DatabaseUnavailableError(
                    f"cannot open the database {shown!r}: {_reason(exc)}",
                    "check that the server is running and accepts this user and database (or that the "
                    "SQLite file is readable and writable), then run the command again") from None
            except DBAPIError as exc:
                db.close()
                raise DatabaseError(
                    f"the database {shown!r} is at schema revision {db._revision_or_none()}, this kwhub needs "
                    f"{migration_head()}, and migrating it failed: {_reason(exc)}",
                    "an application role that does not own the tables cannot migrate them: run "
                    "`kwhub db upgrade` once with the owner's URL (see docs/data-model.md)") from None
            except BaseException:
                db.close()
                raise
        return db

    def _revision_or_none(self) -> str | None:
        try:
            return self.current_revision()
        except DBAPIError:
            return None

    def close(self) -> None:
        """Stop the checkpoint thread and release all pooled connections (the last one to
        close checkpoints what is left of the SQLite log)."""
        _OPEN.discard(self)
        if self.checkpointer is not None:
            self.checkpointer.stop()
        self.engine.dispose()

    def wait_checkpointed(self, timeout: float | None = None) -> bool:
        """Block until the SQLite log written so far has been copied into the database file
        (True at once on PostgreSQL or with ``KWHUB_SQLITE_CHECKPOINT=inline``)."""
        return self.checkpointer.wait(timeout) if self.checkpointer is not None else True

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Database({make_url(self.url).render_as_string(hide_password=True)!r})"

    # ------------------------------------------------------------------ properties

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    @property
    def intervals(self) -> IntervalStore:
        """The interval store on this database."""
        if self._intervals is None:
            from kwhub.hub.store.interval_store import IntervalStore

            self._intervals = IntervalStore(self)
        return self._intervals

    @property
    def periods(self) -> PeriodStore:
        """The period-reading store on this database (daily, billing-period, register readings)."""
        if self._periods is None:
            from kwhub.hub.store.period_store import PeriodStore

            self._periods = PeriodStore(self)
        return self._periods

    # ------------------------------------------------------------------ transactions

    def scope_requests(self) -> None:
        """Make every transaction on this database see the rows of :data:`ROW_SCOPE` only.

        PostgreSQL: each transaction starts with ``set_config('kwhub.party', scope, true)``
        (transaction-local), so the row-level security policies of migration 0011 apply
        the scope of the request being served; outside a request the scope is empty and
        nothing party-owned is visible. A no-op on SQLite (the API filters in code there,
        as it also does on PostgreSQL).
        """
        if self.dialect != "postgresql" or getattr(self, "_scoped", False):
            return
        self._scoped = True

        @event.listens_for(self.engine, "begin")
        def _scope(conn: Connection) -> None:
            conn.exec_driver_sql(f"SELECT set_config('{ROW_SCOPE_SETTING}', %(s)s, true)", {"s": ROW_SCOPE.get()})

    def session(self, *, write: bool = False) -> Session:
        """A SQLModel session (use as a context manager; commit explicitly).

        ``write=True`` makes every transaction of the session take the write lock when it
        begins (``BEGIN IMMEDIATE`` on SQLite), for sessions that read and then write.
        """
        bind = self.engine.execution_options(**{WRITE_OPTION: True}) if write else self.engine
        return Session(bind=bind, expire_on_commit=False)

    @contextmanager
    def write_transaction(self) -> Iterator[Connection]:
        """A connection inside one transaction that holds the write lock from its start.

        Commits when the block ends normally, rolls everything back on an exception.
        """
        with self.engine.connect() as conn:
            conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                yield conn
        if self.checkpointer is not None:
            self.checkpointer.nudge()

    @contextmanager
    def read_connection(self) -> Iterator[Connection]:
        """A connection inside one read transaction (a consistent snapshot on SQLite WAL)."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    # ------------------------------------------------------------------ migrations

    def current_revision(self) -> str | None:
        """The revision recorded in ``alembic_version`` (None before the first migration)."""
        with self.engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()

    def migrate(self, revision: str = "head") -> None:
        """Upgrade the schema to ``revision`` inside one write transaction."""
        if revision == "head" and self.current_revision() == migration_head():
            return
        self._run_alembic("upgrade", revision)

    def downgrade(self, revision: str) -> None:
        """Downgrade the schema to ``revision`` (``"base"`` removes every table)."""
        self._run_alembic("downgrade", revision)

    def _run_alembic(self, action: str, revision: str) -> None:
        from alembic import command

        import_table_modules()
        cfg = _alembic_config()
        with self.write_transaction() as conn:
            cfg.attributes["connection"] = conn
            getattr(command, action)(cfg, revision)

    def table_names(self) -> list[str]:
        """Names of the tables that exist in the database."""
        with self.engine.connect() as conn:
            return sorted(inspect(conn).get_table_names())


_OPEN: weakref.WeakSet[Database] = weakref.WeakSet()


@atexit.register
def _close_open_databases() -> None:
    """Close the databases this process opened and left open (not a forked child's copies)."""
    for db in list(_OPEN):
        if db._pid == os.getpid():
            try:
                db.close()
            except Exception:  # noqa: BLE001  (exiting anyway; the log is recovered on the next open)
                pass
