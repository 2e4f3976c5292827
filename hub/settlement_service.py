"""Settlement runs against the store: load, allocate, price, issue, detect staleness.

:func:`settle` runs one version (``initial`` | ``final`` | ``true_up``) of one billing
period for some or all contracts. Per group of contracts sharing a time zone it reads
the period's dense matrix once (layer ``validated``; ``raw`` only for channel-days
without validated content and only when ``SettlementOptions.fallback_raw``), balances and
allocates the campus once, then prices each contract and writes, in ONE write
transaction per run: the ``settlement_run`` row (the database refuses a duplicate
(contract, period, version kind, sequence)), the ``run_input`` rows (channel-day
versions and content hashes), the buyer's ``run_allocation`` rows, the next invoice
number of the seller (``invoice_sequence``, row-locked) and the invoice with its lines.
A failure rolls all of it back, so invoice numbers have no gaps.

A later version bills only the difference to the previous version, as an adjustment
invoice or a credit note referencing the original invoice. A run is stale when any
channel-day it read has different content now (:func:`stale_runs`).

Invoices are read back with :func:`list_invoices` / :func:`get_invoice`; nothing here
updates or deletes an invoice.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import numpy as np
from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from core.allocation import AllocationResult, allocate, pack_array
from core.campus import Campus, Contract
from core.intervals import IntervalMatrix, day_start_epoch
from core.invoice import DocumentReference, Invoice
from core.money import money_str
from core.pricing.base import PeriodHistory, PricingError
from core.settlement import (
    BALANCE_ROLES,
    VERSION_KINDS,
    InputRef,
    RunKey,
    SettlementError,
    SettlementOptions,
    as_credit,
    build_invoice,
    build_statement,
    canonical_json,
    channel_digests,
    compute_run,
    contract_channels,
    delta_lines,
    document_kind,
    history_from_statement,
    kwh_factor,
    line_from_json,
    missing_report,
    needs_allocation,
    regrid,
    statement_hash,
)
from core.timeline import BillingPeriod, billing_period, previous_periods
from hub.store import Database
from hub.store.settlement_tables import (
    invoice_line_table,
    invoice_sequence_table,
    invoice_table,
    run_allocation_table,
    run_input_table,
    settlement_run_table,
)


class DuplicateRunError(SettlementError):
    """The database refused a run that already exists."""


@dataclass
class RunOutcome:
    """What happened to one contract in a :func:`settle` call."""

    contract_id: str
    period: str
    version_kind: str
    seq: int = 0
    run_id: str = ""
    status: str = "error"  # issued | no_change | error
    invoice: Invoice | None = None
    statement_hash: str = ""
    imbalance_intervals: int = 0
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        inv = self.invoice
        return {
            "contract": self.contract_id, "period": self.period, "version": self.version_kind, "seq": self.seq,
            "run_id": self.run_id, "status": self.status, "statement_hash": self.statement_hash,
            "invoice": None if inv is None else {"id": inv.id, "number": inv.number, "kind": inv.kind,
                                                  "total": money_str(inv.total), "currency": inv.currency},
            "imbalance_intervals": self.imbalance_intervals, "error": self.error or None,
        }


@dataclass
class PeriodData:
    """The period's matrix (kWh at the settlement interval) and the channel-days read."""

    period: BillingPeriod
    matrix: IntervalMatrix
    inputs: list[InputRef] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.by_channel: dict[str, list[InputRef]] = {}
        for r in sorted(self.inputs, key=lambda r: (r.channel_id, r.day, r.layer)):
            self.by_channel.setdefault(r.channel_id, []).append(r)
        self.digests = channel_digests(self.inputs)


# --------------------------------------------------------------------------- loading


def _current_days(db: Database, channel_ids: Sequence[str], days: Sequence[date], layer: str) -> dict[tuple[str, date], tuple[int, str]]:
    """``{(channel, day): (version, content_hash)}`` of the current versions in ``layer``."""
    if not channel_ids or not days:
        return {}
    return db.intervals.day_hashes(list(channel_ids), min(days), max(days), layer=layer)


def _day_slices(period: BillingPeriod, minutes: int) -> dict[date, slice]:
    """Matrix column slice of each UTC day the period touches."""
    step = minutes * 60
    s0, s1 = period.span.start_epoch, period.span.end_epoch
    out = {}
    for d in period.span.utc_days():
        a = max(s0, day_start_epoch(d))
        b = min(s1, day_start_epoch(d) + 86_400)
        out[d] = slice((a - s0) // step, (b - s0) // step)
    return out


def _read_group(db: Database, ids: list[str], period: BillingPeriod, minutes: int,
                options: SettlementOptions) -> tuple[np.ndarray, list[InputRef]]:
    days = period.span.utc_days()
    m = db.intervals.read_matrix(ids, period.span, minutes, layer=options.layer)
    current = _current_days(db, ids, days, options.layer)
    inputs: list[InputRef] = []
    for (ch, d), (ver, h) in current.items():
        seen = m.day_hashes.get((ch, d))
        if seen is not None and seen != h:
            raise SettlementError(f"channel {ch} day {d}: data changed while it was read; settle again")
        inputs.append(InputRef(ch, d, options.layer, ver, h))
    values = m.values
    if options.fallback_raw:
        have = {(r.channel_id, r.day) for r in inputs}
        gaps = [(ch, d) for ch in ids for d in days if (ch, d) not in have]
        if gaps:
            raw_ids = sorted({ch for ch, _ in gaps})
            raw = db.intervals.read_matrix(raw_ids, period.span, minutes, layer="raw")
            raw_current = _current_days(db, raw_ids, days, "raw")
            slices = _day_slices(period, minutes)
            values = values.copy()
            row = {c: i for i, c in enumerate(ids)}
            raw_row = {c: i for i, c in enumerate(raw_ids)}
            for ch, d in gaps:
                if (ch, d) not in raw_current:
                    continue
                sl = slices[d]
                values[row[ch], sl] = raw.values[raw_row[ch], sl]
                ver, h = raw_current[(ch, d)]
                inputs.append(InputRef(ch, d, "raw", ver, h))
    return values, inputs


def load_period(db: Database, campus: Campus, period: BillingPeriod, channel_ids: Sequence[str],
                options: SettlementOptions) -> PeriodData:
    """Read ``channel_ids`` over ``period`` into one matrix of kWh at the coarsest interval.

    Channels are read at their own interval length; finer channels are summed (energy)
    or averaged (availability) onto the settlement grid; Wh/MWh/kW/MW become kWh.
    """
    chans = {c.id: c for c in campus.channels}
    unknown = [c for c in channel_ids if c not in chans]
    if unknown:
        raise SettlementError(f"unknown channel(s): {', '.join(unknown)}")
    ids = list(dict.fromkeys(channel_ids))
    minutes = max(chans[c].interval_minutes for c in ids)
    n = period.span.n_intervals(minutes)
    values = np.full((len(ids), n), np.nan)
    inputs: list[InputRef] = []
    by_len: dict[int, list[str]] = {}
    for c in ids:
        by_len.setdefault(chans[c].interval_minutes, []).append(c)
    row = {c: i for i, c in enumerate(ids)}
    for length, group in sorted(by_len.items()):
        if minutes % length:
            raise SettlementError(f"channels of {length} and {minutes} minutes cannot share a settlement grid")
        vals, refs = _read_group(db, group, period, length, options)
        inputs += refs
        factor = minutes // length
        rows = [row[c] for c in group]
        fractions = [i for i, c in enumerate(group) if chans[c].role == "availability" or chans[c].unit == "fraction"]
        scale = np.array([kwh_factor(chans[c], length) for c in group])[:, None]
        summed = regrid(vals * scale, factor, "sum")
        if fractions:
            summed[fractions] = regrid(vals[fractions], factor, "mean")
        values[rows] = summed
    matrix = IntervalMatrix(ids, period.span.start_epoch, minutes, values,
                            np.where(np.isnan(values), 4, 0).astype(np.uint8))
    return PeriodData(period, matrix, inputs)


# --------------------------------------------------------------------------- runs in the store


def _kind_order(kind: str) -> int:
    return VERSION_KINDS.index(kind)


def existing_runs(db: Database, contract_id: str, period: str) -> list[dict[str, Any]]:
    """Runs of a contract and period, oldest version first (statement not parsed)."""
    t = settlement_run_table
    q = select(t.c.id, t.c.version_kind, t.c.seq, t.c.status, t.c.invoice_id, t.c.statement_hash, t.c.stale,
               t.c.created_at).where(t.c.contract_id == contract_id, t.c.period == period)
    with db.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(q)]
    return sorted(rows, key=lambda r: (_kind_order(r["version_kind"]), r["seq"]))


def get_run(db: Database, run_id: str) -> dict[str, Any]:
    """A run row with its parsed statement."""
    t = settlement_run_table
    with db.engine.connect() as conn:
        row = conn.execute(select(t).where(t.c.id == run_id)).first()
    if row is None:
        raise SettlementError(f"no settlement run {run_id!r}")
    out = dict(row._mapping)
    out["statement_json"] = json.loads(out["statement"])
    return out


def run_inputs(db: Database, run_id: str) -> list[InputRef]:
    """The channel-days a run read."""
    t = run_input_table
    with db.engine.connect() as conn:
        rows = conn.execute(select(t.c.channel_id, t.c.day, t.c.layer, t.c.version, t.c.content_hash)
                            .where(t.c.run_id == run_id).order_by(t.c.channel_id, t.c.day)).all()
    return [InputRef(r[0], r[1], r[2], int(r[3]), r[4]) for r in rows]


def run_allocation(db: Database, run_id: str) -> list[dict[str, Any]]:
    """The run's tenant x source rows (kWh as exact strings; ``blob`` left packed)."""
    t = run_allocation_table
    with db.engine.connect() as conn:
        rows = conn.execute(select(t).where(t.c.run_id == run_id).order_by(t.c.tenant, t.c.source)).all()
    return [dict(r._mapping) for r in rows]


def _history(db: Database, contract: Contract, period: str) -> dict[str, PeriodHistory]:
    if not any(spec.kind == "demand" and spec.settings().get("ratchet_pct") for spec in contract.components):
        return {}
    labels = previous_periods(period, 12)
    t = settlement_run_table
    with db.engine.connect() as conn:
        rows = conn.execute(select(t.c.period, t.c.version_kind, t.c.seq, t.c.statement)
                            .where(t.c.contract_id == contract.id, t.c.period.in_(labels))).all()
    latest: dict[str, tuple[tuple[int, int], str]] = {}
    for per, kind, seq, stmt in rows:
        order = (_kind_order(kind), seq)
        if per not in latest or order > latest[per][0]:
            latest[per] = (order, stmt)
    return {per: history_from_statement(json.loads(stmt)) for per, (_, stmt) in latest.items()}


def stale_runs(db: Database, contract_id: str | None = None, period: str | None = None) -> list[str]:
    """Runs whose recorded channel-day content differs from the current content.

    A channel-day is also a change when it had no content in the run's layer at run time
    and has some now.
    """
    t = settlement_run_table
    q = select(t.c.id, t.c.layer, t.c.statement)
    if contract_id:
        q = q.where(t.c.contract_id == contract_id)
    if period:
        q = q.where(t.c.period == period)
    with db.engine.connect() as conn:
        runs = conn.execute(q).all()
    out = []
    for run_id, layer, stmt in runs:
        if _run_changed(db, run_id, layer, json.loads(stmt)):
            out.append(run_id)
    return sorted(out)


def _run_changed(db: Database, run_id: str, layer: str, statement: dict[str, Any]) -> bool:
    used = run_inputs(db, run_id)
    channels = statement["inputs"]["channels"] or sorted({r.channel_id for r in used})
    start = datetime.fromisoformat(statement["span"]["start"])
    end = datetime.fromisoformat(statement["span"]["end"])
    from core.timeline import Span

    days = Span(start, end).utc_days()
    recorded = {(r.channel_id, r.day, r.layer): r.content_hash for r in used}
    for lay in sorted({layer} | {r.layer for r in used}):
        current = _current_days(db, channels, days, lay)
        for (ch, d), (_, h) in current.items():
            key = (ch, d, lay)
            if key in recorded:
                if recorded[key] != h:
                    return True
            elif lay == layer:  # new content in the primary layer
                return True
        for ch, d, rl in recorded:
            if rl == lay and (ch, d) not in current:
                return True
    return False


def refresh_stale(db: Database, contract_id: str | None = None, period: str | None = None) -> list[str]:
    """Set ``settlement_run.stale`` for runs whose inputs changed; return their ids."""
    stale = stale_runs(db, contract_id, period)
    if stale:
        with db.write_transaction() as conn:
            conn.execute(update(settlement_run_table).where(settlement_run_table.c.id.in_(stale)).values(stale=True))
    return stale


# --------------------------------------------------------------------------- numbering and issuing


def next_invoice_number(conn: Any, dialect: str, seller: str) -> int:
    """Take the seller's next number inside the caller's transaction (row-locked)."""
    t = invoice_sequence_table
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    conn.execute(dialect_insert(t).values(seller=seller, next_number=1).on_conflict_do_nothing(index_elements=["seller"]))
    n = conn.execute(select(t.c.next_number).where(t.c.seller == seller).with_for_update()).scalar_one()
    conn.execute(update(t).where(t.c.seller == seller).values(next_number=n + 1))
    return int(n)


def format_number(seller: str, n: int) -> str:
    """The printed invoice number of a seller's n-th document."""
    return f"{seller.upper()}-{n:06d}"


def _insert_invoice(conn: Any, inv: Invoice, seq: int, period: str, original_id: str | None) -> None:
    now = datetime.now(UTC)
    conn.execute(insert(invoice_table).values(
        id=inv.id, number=inv.number, number_seq=seq, seller=inv.seller.id, buyer=inv.buyer.id, kind=inv.kind,
        version=inv.version, contract_id=inv.contract_id, period=period, run_id=inv.run_id,
        original_invoice_id=original_id, issue_date=inv.issue_date, issued_at=now, status="issued",
        currency=inv.currency, line_total=money_str(inv.line_total), tax_total=money_str(inv.tax_total),
        total=money_str(inv.total), document=inv.model_dump_json(),
    ))
    if inv.lines:
        conn.execute(insert(invoice_line_table), [
            {"invoice_id": inv.id, "number": ln.number, "description": ln.description, "charge_type": ln.charge_type,
             "component_id": ln.component_id, "source_asset": ln.source_asset, "quantity": money_str(ln.quantity),
             "unit": ln.unit, "unit_price": money_str(ln.unit_price), "amount": money_str(ln.amount),
             "tax_category": ln.tax_category, "tax_percent": money_str(ln.tax_percent),
             "determinants": json.dumps(ln.determinants, sort_keys=True)}
            for ln in inv.lines
        ])


def _insert_inputs(conn: Any, dialect: str, run_id: str, inputs: Sequence[InputRef]) -> None:
    """Bulk insert of run_input rows (driver-level executemany; thousands of rows per run)."""
    if not inputs:
        return
    mark = "?" if dialect == "sqlite" else "%s"
    sql = (f"INSERT INTO run_input (run_id, channel_id, day, layer, version, content_hash) "
           f"VALUES ({', '.join([mark] * 6)})")
    as_day = (lambda d: d.isoformat()) if dialect == "sqlite" else (lambda d: d)
    conn.exec_driver_sql(sql, [(run_id, r.channel_id, as_day(r.day), r.layer, r.version, r.content_hash) for r in inputs])


def _original_invoice(db: Database, contract_id: str, period: str) -> DocumentReference | None:
    t = invoice_table
    with db.engine.connect() as conn:
        row = conn.execute(select(t.c.id, t.c.number, t.c.issue_date)
                           .where(t.c.contract_id == contract_id, t.c.period == period, t.c.kind == "invoice")
                           .order_by(t.c.number_seq).limit(1)).first()
    return None if row is None else DocumentReference(id=row[0], number=row[1], issue_date=row[2])


# --------------------------------------------------------------------------- settle


def _alloc_rows(key: RunKey, allocation: AllocationResult | None, tenant: str) -> list[dict[str, Any]]:
    if allocation is None or tenant not in allocation.tenants or allocation.kwh is None:
        return []
    t = allocation.tenant_index(tenant)
    from core.pricing.base import det

    return [
        {"run_id": key.run_id, "tenant": tenant, "source": s, "kwh": det(float(allocation.totals[t, j])),
         "loss_kwh": det(float(allocation.loss_kwh[t, j])), "intervals": int(allocation.kwh.shape[2]),
         "blob": pack_array(allocation.kwh[t, j])}
        for j, s in enumerate(allocation.sources)
    ]


def settle_contract(
    db: Database,
    campus: Campus,
    contract: Contract,
    data: PeriodData,
    allocation: AllocationResult | None,
    version: str,
    options: SettlementOptions,
    *,
    issue_date: date | None = None,
    components: Any | None = None,
    conn: Any | None = None,
    on_issue: Callable[[Any, Invoice], None] | None = None,
) -> RunOutcome:
    """Price one contract from loaded data and issue its document (see module docs).

    With ``conn`` (a connection inside a write transaction) the run is written in a
    savepoint of that transaction; otherwise in a write transaction of its own.
    ``on_issue(conn, invoice)`` runs inside the same transaction right after the invoice
    is inserted (the outbox uses it, so an invoice never exists without its delivery rows).
    """
    period = data.period
    if version not in VERSION_KINDS:
        raise SettlementError(f"version must be one of {', '.join(VERSION_KINDS)}, not {version!r}")
    runs = existing_runs(db, contract.id, period.label)
    seq = 1
    if version == "true_up":
        seq = 1 + max((r["seq"] for r in runs if r["version_kind"] == "true_up"), default=0)
    key = RunKey(contract.id, period.label, version, seq)
    later = [r for r in runs if (_kind_order(r["version_kind"]), r["seq"]) > (_kind_order(version), seq)]
    if later:
        raise SettlementError(f"contract {contract.id!r} period {period.label}: a later version ({later[-1]['id']}) exists")
    previous = [r for r in runs if (_kind_order(r["version_kind"]), r["seq"]) < (_kind_order(version), seq)]
    prev = previous[-1] if previous else None
    comp = compute_run(campus, contract, period, data.matrix, allocation, options,
                       _history(db, contract, period.label), components)
    chans = set(contract_channels(campus, contract))
    inputs = [r for ch in sorted(chans) for r in data.by_channel.get(ch, [])]
    pol = comp.context.money
    if prev is not None:
        old = [line_from_json(x) for x in get_run(db, prev["id"])["statement_json"]["lines"]]
        doc_lines = delta_lines(comp.lines, old, pol)
    else:
        doc_lines = list(comp.lines)
    kind = document_kind(doc_lines, prev is not None)
    if kind == "credit_note":
        doc_lines = as_credit(doc_lines)
    statement = build_statement(key, comp, inputs, options.layer, kind, doc_lines, prev["id"] if prev else None,
                                data.digests)
    body = canonical_json(statement)
    digest = statement_hash(body)
    original = _original_invoice(db, contract.id, period.label) if prev is not None and kind else None
    outcome = RunOutcome(contract.id, period.label, version, seq, key.run_id,
                         status="issued" if kind else "no_change", statement_hash=digest,
                         imbalance_intervals=int(comp.allocation.get("imbalance_intervals", 0)))
    def write(conn: Any) -> None:
        conn.execute(insert(settlement_run_table).values(
            id=key.run_id, contract_id=contract.id, period=period.label, version_kind=version, seq=seq,
            status=outcome.status, layer=options.layer, statement=body.decode("utf-8"), statement_hash=digest,
            invoice_id=key.invoice_id if kind else None, created_at=datetime.now(UTC), stale=False,
        ))
        _insert_inputs(conn, db.dialect, key.run_id, inputs)
        rows = _alloc_rows(key, allocation, contract.buyer) if needs_allocation(contract) else []
        if rows:
            conn.execute(insert(run_allocation_table), rows)
        if kind:
            n = next_invoice_number(conn, db.dialect, contract.seller)
            inv = build_invoice(campus, key, comp, kind, doc_lines, format_number(contract.seller, n),
                                issue_date or date.today(), original=original,
                                version=len([r for r in runs if r["invoice_id"]]) + 1)
            _insert_invoice(conn, inv, n, period.label, original.id if original else None)
            if on_issue is not None:
                on_issue(conn, inv)
            outcome.invoice = inv

    try:
        if conn is None:
            with db.write_transaction() as own:
                write(own)
        else:
            with conn.begin_nested():
                write(conn)
    except IntegrityError as exc:
        if _is_run_conflict(db, key):
            raise DuplicateRunError(
                f"contract {contract.id!r} period {period.label}: run {version} #{seq} already exists "
                f"(the database refused it)") from exc
        raise
    return outcome


def _is_run_conflict(db: Database, key: RunKey) -> bool:
    t = settlement_run_table
    with db.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(t).where(and_(
            t.c.contract_id == key.contract_id, t.c.period == key.period,
            t.c.version_kind == key.version_kind, t.c.seq == key.seq))).scalar_one() > 0


def settle(
    db: Database,
    campus: Campus,
    period: str,
    *,
    contracts: Iterable[str] | None = None,
    version: str = "initial",
    options: SettlementOptions | None = None,
    issue_date: date | None = None,
    components: Any | None = None,
    progress: Callable[[str], None] | None = None,
    max_channels: int = 2000,
    on_issue: Callable[[Any, Invoice], None] | None = None,
) -> list[RunOutcome]:
    """Settle ``period`` (``YYYY-MM``, local month of each contract) for the chosen contracts.

    Returns one :class:`RunOutcome` per contract; a contract that fails (a duplicate run,
    missing data, a pricing error) is reported with ``status == "error"`` and the
    others still settle. Contracts that do not depend on the allocation are read in
    batches of at most ``max_channels`` channels, so memory stays bounded on big campuses.
    """
    options = options or SettlementOptions()
    if components is None:
        from hub.plugins import get_registry

        components = get_registry()
    chosen = list(campus.contracts)
    if contracts is not None:
        wanted = list(contracts)
        known = {c.id for c in chosen}
        bad = [c for c in wanted if c not in known]
        if bad:
            raise SettlementError(f"unknown contract(s) {', '.join(bad)} (known: {', '.join(sorted(known)) or 'none'})")
        chosen = [c for c in chosen if c.id in wanted]
    outcomes: list[RunOutcome] = []
    for tz, group in _batches(campus, chosen, max_channels):
        per = billing_period(period, tz)
        channels: list[str] = []
        for c in group:
            channels += contract_channels(campus, c)
        alloc_needed = any(needs_allocation(c) for c in group)
        if alloc_needed:
            channels += [c.id for c in campus.channels if c.role in BALANCE_ROLES]
        try:
            data = load_period(db, campus, per, list(dict.fromkeys(channels)), options)
        except (SettlementError, PricingError, ValueError) as exc:
            outcomes += [RunOutcome(c.id, period, version, error=str(exc)) for c in group]
            continue
        allocation, alloc_error = None, ""
        if alloc_needed:
            try:
                allocation = _allocate(data, campus, options)
            except (SettlementError, ValueError) as exc:
                alloc_error = str(exc)
        with db.write_transaction() as conn:
            for c in group:
                if progress:
                    progress(c.id)
                if alloc_error and needs_allocation(c):
                    outcomes.append(RunOutcome(c.id, period, version, error=alloc_error))
                    continue
                try:
                    outcomes.append(settle_contract(db, campus, c, data, allocation, version, options,
                                                    issue_date=issue_date, components=components, conn=conn,
                                                    on_issue=on_issue))
                except (SettlementError, PricingError, ValueError) as exc:
                    outcomes.append(RunOutcome(c.id, period, version, error=str(exc)))
    order = {c.id: i for i, c in enumerate(chosen)}
    return sorted(outcomes, key=lambda o: order[o.contract_id])


def _batches(campus: Campus, contracts: Sequence[Contract], max_channels: int) -> list[tuple[str, list[Contract]]]:
    """Contracts grouped by time zone; the allocation-dependent ones together, the rest by channel count."""
    out: list[tuple[str, list[Contract]]] = []
    by_tz: dict[str, list[Contract]] = {}
    for c in contracts:
        by_tz.setdefault(c.timezone, []).append(c)
    for tz, group in by_tz.items():
        coupled = [c for c in group if needs_allocation(c)]
        if coupled:
            out.append((tz, coupled))
        batch: list[Contract] = []
        size = 0
        for c in (c for c in group if not needs_allocation(c)):
            n = len(contract_channels(campus, c))
            if batch and size + n > max_channels:
                out.append((tz, batch))
                batch, size = [], 0
            batch.append(c)
            size += n
        if batch:
            out.append((tz, batch))
    order = {c.id: i for i, c in enumerate(contracts)}
    return sorted(out, key=lambda item: min(order[c.id] for c in item[1]))


def _allocate(data: PeriodData, campus: Campus, options: SettlementOptions) -> AllocationResult:
    balance_ids = [c.id for c in campus.channels if c.role in BALANCE_ROLES]
    sub = _submatrix(data.matrix, balance_ids)
    gaps = missing_report(sub, balance_ids)
    if gaps and options.missing == "error":
        listed = ", ".join(f"{c} ({k} intervals)" for c, k in sorted(gaps.items()))
        raise SettlementError(f"period {data.period.label}: campus balance channels without {options.layer} data: {listed}")
    return allocate(sub, campus, shared=options.shared)


def _submatrix(m: IntervalMatrix, ids: Sequence[str]) -> IntervalMatrix:
    index = {c: i for i, c in enumerate(m.channel_ids)}
    rows = [index[c] for c in ids if c in index]
    return IntervalMatrix([m.channel_ids[r] for r in rows], m.start_epoch, m.interval_minutes,
                          m.values[rows], m.quality[rows])


# --------------------------------------------------------------------------- reading invoices


def list_invoices(db: Database, *, contract_id: str | None = None, period: str | None = None,
                  buyer: str | None = None) -> list[Invoice]:
    """Issued documents, oldest first."""
    t = invoice_table
    q = select(t.c.document)
    if contract_id:
        q = q.where(t.c.contract_id == contract_id)
    if period:
        q = q.where(t.c.period == period)
    if buyer:
        q = q.where(t.c.buyer == buyer)
    q = q.order_by(t.c.issued_at, t.c.seller, t.c.number_seq)
    with db.engine.connect() as conn:
        return [Invoice.model_validate_json(doc) for (doc,) in conn.execute(q)]


def get_invoice(db: Database, ref: str) -> Invoice:
    """An issued document by id or number."""
    t = invoice_table
    with db.engine.connect() as conn:
        doc = conn.execute(select(t.c.document).where((t.c.id == ref) | (t.c.number == ref))).scalar()
    if doc is None:
        raise SettlementError(f"no invoice {ref!r} (give an invoice id or number; `kwhub invoices list` shows them)")
    return Invoice.model_validate_json(doc)


def invoice_total(invoices: Iterable[Invoice]) -> Decimal:
    """Net billed amount of documents (credit notes count negative)."""
    return sum((-i.total if i.is_credit else i.total for i in invoices), Decimal("0"))
