"""Writing computed settlement runs: the run row, its inputs, allocation and carbon rows.

The runs of one period's batch are written together with one executemany per table in a
savepoint of the batch's transaction (the inputs with one COPY on PostgreSQL); when the database refuses the batch (a run another
settle wrote meanwhile), they are written one by one so that only the refused runs fail.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from kwhub.core.allocation import AllocationResult, pack_array
from kwhub.core.campus import Campus, Contract
from kwhub.core.settlement import RunComputation, RunKey, SettlementError
from kwhub.core.versions import PENDING
from kwhub.hub.settle.inputs import from_day_no
from kwhub.hub.store import Database
from kwhub.hub.store.carbon_tables import run_carbon_table
from kwhub.hub.store.day_sql import dbapi_cursor
from kwhub.hub.store.settlement_tables import run_allocation_table, settlement_run_table


class DuplicateRunError(SettlementError):
    """The database refused a run that already exists."""


_INSERT_RUN = insert(settlement_run_table)


_INPUT_COLUMNS = ("run_id", "channel_id", "layer", "first_day", "last_day", "n_days", "day_offsets", "versions",
                  "content_hashes")


# run_input has no row-level security (unlike interval_day), so COPY FROM is open to any role
# that may INSERT into it
_COPY_INPUTS = f"COPY run_input ({', '.join(_INPUT_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
_COPY_INPUT_TYPES = ("varchar", "varchar", "varchar", "date", "date", "int4", "bytea", "bytea", "bytea")


def _insert_inputs_of(conn: Any, dialect: str, runs: Sequence[tuple[str, Sequence[tuple[Any, ...]]]]) -> None:
    """The run_input rows of several runs, ``(run_id, rows)`` each, in one executemany (in run order;
    one binary COPY on PostgreSQL)."""
    if not any(rows for _, rows in runs):
        return
    mark = "?" if dialect == "sqlite" else "%s"
    sql = f"INSERT INTO run_input ({', '.join(_INPUT_COLUMNS)}) VALUES ({', '.join([mark] * len(_INPUT_COLUMNS))})"
    if dialect == "sqlite":
        def as_day(n: int) -> Any:
            return from_day_no(n).isoformat()
    else:
        as_day = from_day_no
    seen: dict[int, Any] = {}

    def day(n: int) -> Any:
        v = seen.get(n)
        if v is None:
            v = seen[n] = as_day(n)
        return v

    rows = [(run_id, ch, lay, day(d0), day(d1), n, offs, vers, hashes)
            for run_id, of_run in runs for ch, lay, d0, d1, n, offs, vers, hashes in of_run]
    if dialect == "postgresql":
        # one binary COPY on the same connection and savepoint: psycopg's executemany sends a
        # statement per row (pipelined, yet ~45 us of driver work each; 24,000 rows a campus year)
        import psycopg

        cur = dbapi_cursor(conn, binary=True)
        try:
            with cur.copy(_COPY_INPUTS) as copy:
                copy.set_types(_COPY_INPUT_TYPES)
                for r in rows:
                    copy.write_row(r)
        except psycopg.IntegrityError as exc:  # as the executemany would raise it (write_runs catches it)
            raise IntegrityError(_COPY_INPUTS, None, exc) from exc
        finally:
            cur.close()
        return
    conn.exec_driver_sql(sql, rows)


def allocation_rows(key: RunKey, allocation: AllocationResult | None, tenant: str) -> list[dict[str, Any]]:
    if allocation is None or tenant not in allocation.tenants or allocation.kwh is None:
        return []
    t = allocation.tenant_index(tenant)
    from kwhub.core.pricing.base import det

    return [
        {"run_id": key.run_id, "tenant": tenant, "source": s, "kwh": det(float(allocation.totals[t, j])),
         "loss_kwh": det(float(allocation.loss_kwh[t, j])), "intervals": int(allocation.kwh.shape[2]),
         "blob": pack_array(allocation.kwh[t, j])}
        for j, s in enumerate(allocation.sources)
    ]


def carbon_row(key: RunKey, campus: Campus, contract: Contract, comp: RunComputation) -> dict[str, Any]:
    """The run's ``run_carbon`` row: its carbon basis ids, buyer, sellers of each source, frozen settings."""
    assert comp.carbon is not None
    seller_of = {c.id: c.seller for c in campus.contracts}
    sellers = {a.source: seller_of[a.billed_by] for a in comp.accounts if a.billed_by in seller_of}
    return {"run_id": key.run_id, "period": key.period, "tenant": contract.buyer,
            "activity_id": comp.carbon["activity_id"], "factors_id": comp.carbon["factors_id"],
            "sellers": json.dumps(sellers, sort_keys=True), "settings": json.dumps(comp.carbon["settings"], sort_keys=True)}


@dataclass
class RunWrite:
    """The rows one computed run writes: its run row, inputs, allocation and carbon rows."""

    key: RunKey
    where: str
    supersede: str | None
    run: dict[str, Any]
    input_rows: list[tuple[Any, ...]]
    allocation: list[dict[str, Any]]
    carbon: dict[str, Any] | None

    def write(self, conn: Any, dialect: str) -> None:
        """Write this run alone on ``conn`` (inside the caller's transaction)."""
        _write_all(conn, dialect, [self])

    def conflict(self) -> DuplicateRunError:
        k = self.key
        return DuplicateRunError(
            f"{self.where}: run {k.version_kind} #{k.seq} already exists (the database refused it; another settle "
            "ran at the same time)")


class RunDecidedMeanwhile(DuplicateRunError):
    """The pending run a new run was to supersede was approved or rejected while the new one was computed."""


def _write_all(conn: Any, dialect: str, works: Sequence[RunWrite]) -> None:
    """Insert the rows of ``works`` with one executemany per table (runs in order).

    Runs are computed before the write transaction starts, so a pending run that one of them
    supersedes may have been decided meanwhile: it is superseded only while still pending
    (:class:`RunDecidedMeanwhile` otherwise).
    """
    t = settlement_run_table
    for w in works:
        if w.supersede and not conn.execute(update(t).where(t.c.id == w.supersede, t.c.status.in_(PENDING))
                                            .values(status="superseded")).rowcount:
            raise RunDecidedMeanwhile(f"{w.where}: run {w.supersede} was approved or rejected while this settle "
                                      "computed the run that supersedes it; nothing written for it, settle again")
    conn.execute(_INSERT_RUN, [w.run for w in works])
    _insert_inputs_of(conn, dialect, [(w.key.run_id, w.input_rows) for w in works])
    alloc = [r for w in works for r in w.allocation]
    if alloc:
        conn.execute(insert(run_allocation_table), alloc)
    carbon = [w.carbon for w in works if w.carbon is not None]
    if carbon:
        conn.execute(insert(run_carbon_table), carbon)


def write_runs(db: Database, conn: Any, works: Sequence[RunWrite]) -> dict[str, DuplicateRunError]:
    """Write the computed runs of a batch in one savepoint of ``conn``.

    When the database refuses the batch (a run written by another settle at the same
    time), the runs are written one by one, each in its own savepoint, so only the
    refused ones fail: ``{run_id: error}`` of those.
    """
    if not works:
        return {}
    try:
        with conn.begin_nested():
            _write_all(conn, db.dialect, works)
        return {}
    except (IntegrityError, RunDecidedMeanwhile):
        pass
    failed: dict[str, DuplicateRunError] = {}
    for w in works:
        try:
            with conn.begin_nested():
                w.write(conn, db.dialect)
        except RunDecidedMeanwhile as exc:
            failed[w.key.run_id] = exc
        except IntegrityError:
            if not is_run_conflict(db, w.key):
                raise
            failed[w.key.run_id] = w.conflict()
    return failed


def is_run_conflict(db: Database, key: RunKey) -> bool:
    t = settlement_run_table
    with db.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(t).where(and_(
            t.c.contract_id == key.contract_id, t.c.period == key.period,
            t.c.version_kind == key.version_kind, t.c.seq == key.seq))).scalar_one() > 0
