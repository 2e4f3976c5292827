"""Settlement runs read back from the store, and whether they are stale.

:func:`existing_runs`, :func:`get_run`, :func:`run_inputs` and :func:`run_allocation` read
runs; :func:`stale_runs` / :func:`refresh_stale` / :func:`stale_flags` find runs whose input
channel-days changed since they were computed (or whose market revenue credits rest on ISO
statements a later version replaced). Nothing here writes a run; read commands import
only this module (no pricing, no rendering).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any

import numpy as np
from sqlalchemy import select, update

from kwhub.core.campus import Contract
from kwhub.core.intervals import day_start_epoch
from kwhub.core.pricing.base import PeriodHistory
from kwhub.core.quality import Quality
from kwhub.core.settlement import InputRef, SettlementError, history_from_statement
from kwhub.core.timeline import Span, previous_periods
from kwhub.core.versions import kind_order
from kwhub.hub.store import Database
from kwhub.hub.store.settlement_tables import (
    run_allocation_table,
    run_input_table,
    settlement_run_table,
)

IN_CHUNK = 500  # bound parameters per IN list


def existing_runs(db: Database, contract_id: str, period: str) -> list[dict[str, Any]]:
    """Runs of a contract and period, oldest version first (statement not parsed)."""
    t = settlement_run_table
    q = select(t.c.id, t.c.version_kind, t.c.seq, t.c.status, t.c.invoice_id, t.c.statement_hash, t.c.stale,
               t.c.created_at).where(t.c.contract_id == contract_id, t.c.period == period)
    with db.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(q)]
    return sorted(rows, key=lambda r: (kind_order(r["version_kind"]), r["seq"]))


def existing_runs_of(conn: Any, contract_ids: Sequence[str], period: str) -> dict[str, list[dict[str, Any]]]:
    """:func:`existing_runs` of many contracts, read on ``conn``."""
    t = settlement_run_table
    out: dict[str, list[dict[str, Any]]] = {}
    for i in range(0, len(contract_ids), IN_CHUNK):
        q = select(t.c.id, t.c.contract_id, t.c.version_kind, t.c.seq, t.c.status, t.c.invoice_id,
                   t.c.statement_hash, t.c.stale, t.c.created_at).where(
            t.c.contract_id.in_(list(contract_ids[i:i + IN_CHUNK])), t.c.period == period)
        for r in conn.execute(q):
            row = dict(r._mapping)
            out.setdefault(row.pop("contract_id"), []).append(row)
    for rows in out.values():
        rows.sort(key=lambda r: (kind_order(r["version_kind"]), r["seq"]))
    return out


@contextmanager
def _reading(source: Database | Any) -> Iterator[Any]:
    """A connection to read on: a new one for a :class:`Database`, else ``source`` itself (a
    connection inside the caller's transaction, which sees that transaction's own rows)."""
    if hasattr(source, "engine"):
        with source.engine.connect() as conn:
            yield conn
    else:
        yield source


def get_run(db: Database | Any, run_id: str) -> dict[str, Any]:
    """A run row with its parsed statement."""
    t = settlement_run_table
    with _reading(db) as conn:
        row = conn.execute(select(t).where(t.c.id == run_id)).first()
    if row is None:
        raise SettlementError(f"no settlement run {run_id!r}")
    out = dict(row._mapping)
    out["statement_json"] = json.loads(out["statement"])
    return out


def run_inputs(db: Database | Any, run_id: str) -> list[InputRef]:
    """The channel-days a run read, by channel and day (unpacked from its ``run_input`` rows)."""
    t = run_input_table
    with _reading(db) as conn:
        rows = conn.execute(select(t.c.channel_id, t.c.layer, t.c.first_day, t.c.n_days, t.c.day_offsets,
                                   t.c.versions, t.c.content_hashes).where(t.c.run_id == run_id)).all()
    out = []
    for ch, layer, first, n, offsets, versions, hashes in rows:
        d0 = first.toordinal()
        hexed = bytes(hashes).hex()
        offs = np.frombuffer(bytes(offsets), dtype="<i4").tolist()
        vers = np.frombuffer(bytes(versions), dtype="<i4").tolist()
        out += [InputRef(ch, date.fromordinal(d0 + offs[i]), layer, vers[i], hexed[64 * i:64 * i + 64])
                for i in range(int(n))]
    out.sort(key=lambda r: (r.channel_id, r.day, r.layer))
    return out


def run_allocation(db: Database | Any, run_id: str) -> list[dict[str, Any]]:
    """The run's tenant x source rows (kWh as exact strings; ``blob`` left packed)."""
    t = run_allocation_table
    with _reading(db) as conn:
        rows = conn.execute(select(t).where(t.c.run_id == run_id).order_by(t.c.tenant, t.c.source)).all()
    return [dict(r._mapping) for r in rows]


def demand_history(db: Database, contract: Contract, period: str) -> dict[str, PeriodHistory]:
    if not any(spec.kind == "demand" and spec.settings().get("ratchet_pct") for spec in contract.components):
        return {}
    labels = previous_periods(period, 12)
    t = settlement_run_table
    with db.engine.connect() as conn:
        rows = conn.execute(select(t.c.period, t.c.version_kind, t.c.seq, t.c.statement)
                            .where(t.c.contract_id == contract.id, t.c.period.in_(labels),
                                   t.c.status.notin_(("rejected", "superseded")))).all()
    latest: dict[str, tuple[tuple[int, int], str]] = {}
    for per, kind, seq, stmt in rows:
        order = (kind_order(kind), seq)
        if per not in latest or order > latest[per][0]:
            latest[per] = (order, stmt)
    return {per: history_from_statement(json.loads(stmt)) for per, (_, stmt) in latest.items()}


def stale_runs(db: Database, contract_id: str | None = None, period: str | None = None,
               run_ids: Iterable[str] | None = None) -> list[str]:
    """Runs whose recorded channel-day content differs from the current content (or is gone).

    A channel-day is also a change when it had no content in the run's layer at run time
    and has some now. ``run_ids`` limits the check to those runs.
    """
    t = settlement_run_table
    q = select(t.c.id, t.c.layer, t.c.statement)
    if contract_id:
        q = q.where(t.c.contract_id == contract_id)
    if period:
        q = q.where(t.c.period == period)
    if run_ids is not None:
        q = q.where(t.c.id.in_(sorted(set(run_ids))))
    with db.engine.connect() as conn:
        runs = conn.execute(q).all()
    out = []
    for run_id, layer, stmt in runs:
        if run_changed(db, run_id, layer, json.loads(stmt)):
            out.append(run_id)
    return sorted(out)


def _current_days(db: Database, channel_ids: Sequence[str], days: Sequence[date], layer: str) -> dict[tuple[str, date], tuple[int, str]]:
    """``{(channel, day): (version, content_hash)}`` of the current versions in ``layer``."""
    if not channel_ids or not days:
        return {}
    return db.intervals.day_hashes(list(channel_ids), min(days), max(days), layer=layer)


def run_changed(db: Database, run_id: str, layer: str, statement: dict[str, Any]) -> bool:
    """True when a channel-day the run read has other content now, or new content appeared
    (or, for market revenue credits, a later ISO statement version arrived).

    The first and last UTC day of a period in a local time zone lie partly outside it (1
    November 00:00-04:00 UTC is still October in New York); for those days only the part
    inside the run's span counts, so data for the next period does not make this one stale.
    """
    from kwhub.hub.markets.credit import credit_inputs_changed

    if credit_inputs_changed(db, statement):  # its market revenue credits rest on restated ISO statements
        return True
    used = run_inputs(db, run_id)
    channels = statement["inputs"]["channels"] or sorted({r.channel_id for r in used})
    start = datetime.fromisoformat(statement["span"]["start"])
    end = datetime.fromisoformat(statement["span"]["end"])
    span = Span(start, end)
    days = span.utc_days()
    partial = {d for d in (days[0], days[-1]) if not _whole_day(span, d)} if days else set()
    recorded = {(r.channel_id, r.day, r.layer): (r.version, r.content_hash) for r in used}
    for lay in sorted({layer} | {r.layer for r in used}):
        current = _current_days(db, channels, days, lay)
        for (ch, d), (_, h) in current.items():
            key = (ch, d, lay)
            if key in recorded:
                if recorded[key][1] != h and not (d in partial and _same_inside(db, ch, d, lay, recorded[key], span)):
                    return True
            elif lay == layer and not (d in partial and _same_inside(db, ch, d, lay, None, span)):
                return True  # new content in the primary layer
        for ch, d, rl in recorded:
            if rl == lay and (ch, d) not in current:
                return True
    return False


def _whole_day(span: Span, day: date) -> bool:
    start = day_start_epoch(day)
    return span.start_epoch <= start and start + 86_400 <= span.end_epoch


def _same_inside(db: Database, channel_id: str, day: date, layer: str, recorded: tuple[int, str] | None,
                 span: Span) -> bool:
    """Whether the part of a partial day inside ``span`` is what the run read.

    ``recorded`` is the (version, hash) the run read, or None when the day had no content
    then (unchanged when the part inside still has none). The read version is looked up
    among the stored versions by its hash; when it is no longer there (a raw day whose
    gaps were filled in place) the day counts as changed.
    """
    versions = db.intervals.history(channel_id, day, layer=layer)
    if not versions:
        return False
    now = versions[-1]
    n = len(now.values)
    step = 86_400 // n
    t0 = day_start_epoch(day)
    a = max(0, (span.start_epoch - t0 + step - 1) // step)
    b = min(n, max(0, (span.end_epoch - t0) // step))
    if recorded is None:
        return bool((now.quality[a:b] == Quality.MISSING).all())
    then = next((v for v in versions if v.version == recorded[0] and v.content_hash() == recorded[1]), None)
    if then is None or len(then.values) != n:
        return False
    same_values = np.array_equal(then.values[a:b], now.values[a:b], equal_nan=True)
    return same_values and bool((then.quality[a:b] == now.quality[a:b]).all())


def refresh_stale(db: Database, contract_id: str | None = None, period: str | None = None,
                  run_ids: Iterable[str] | None = None) -> list[str]:
    """Set ``settlement_run.stale`` for runs whose inputs changed; return their ids."""
    stale = stale_runs(db, contract_id, period, run_ids)
    if stale:
        with db.write_transaction() as conn:
            conn.execute(update(settlement_run_table).where(settlement_run_table.c.id.in_(stale)).values(stale=True))
    return stale


def stale_flags(db: Database, run_ids: Iterable[str]) -> dict[str, bool]:
    """``{run id: stale}`` after refreshing the flags of ``run_ids`` (:func:`refresh_stale`)."""
    ids = sorted(set(run_ids))
    if not ids:
        return {}
    refresh_stale(db, run_ids=ids)
    t = settlement_run_table
    out: dict[str, bool] = {}
    with db.engine.connect() as conn:
        for i in range(0, len(ids), IN_CHUNK):
            out.update({rid: bool(flag) for rid, flag in conn.execute(
                select(t.c.id, t.c.stale).where(t.c.id.in_(ids[i:i + IN_CHUNK])))})
    return out
