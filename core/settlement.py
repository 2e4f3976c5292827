"""Settlement: from a period's interval matrix to a priced, hashed run statement.

A run is (contract, billing period in local time, version kind ``initial`` | ``final`` |
``true_up``, sequence). This module is pure (no SQL): :mod:`kwhub.hub.settle.service`
loads the data, calls these functions and stores the result.

1. :func:`contract_channels` says which channels a contract's run depends on: its load
   channels, plus every channel of the campus balance when the contract prices by
   source (the allocation couples all of them), plus availability channels of the
   assets its components name.
2. :func:`build_context` turns the matrix (and the allocation) into a
   :class:`~kwhub.core.pricing.base.PricingContext` for the contract.
3. :func:`compute_run` prices it (:func:`kwhub.core.pricing.lines.price_contract`) and returns
   the full lines and the determinants.
4. :func:`delta_lines` compares the full lines with the previous version's, line by line
   per component: a later version bills only the difference, as an adjustment invoice
   (net positive) or a credit note (net negative; its amounts are what is credited).
5. :func:`build_statement` assembles the canonical statement; :func:`canonical_json`
   serialises it byte-for-byte reproducibly and :func:`statement_hash` hashes it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any, Literal

import numpy as np

from kwhub.core.allocation import UNMETERED, AllocationResult, SharedMethod
from kwhub.core.campus import Campus, Channel, Contract
from kwhub.core.intervals import IntervalMatrix
from kwhub.core.invoice import (
    DocumentKind,
    DocumentReference,
    Invoice,
    InvoiceLine,
    PartyRef,
    compute_totals,
)
from kwhub.core.money import MoneyPolicy, money_str, to_decimal
from kwhub.core.pricing.base import (
    Charge,
    PeriodHistory,
    PricingContext,
    det,
    money_policy,
    summarize_period,
)
from kwhub.core.pricing.index_series import IndexSeries
from kwhub.core.pricing.lines import build_components, charges_to_lines, price_contract
from kwhub.core.pricing.tou import LocalCalendar
from kwhub.core.timeline import BillingPeriod

VersionKind = Literal["initial", "final", "true_up"]
VERSION_KINDS: tuple[str, ...] = ("initial", "final", "true_up")
STATEMENT_SCHEMA = "kwhub.settlement.statement/1"
BALANCE_ROLES = ("tenant_load", "shared_load", "generation", "grid_import", "grid_export",
                 "battery_charge", "battery_discharge")
_SOURCE_SETTINGS = ("sources", "per_source", "source_prices")
_UNIT_TO_KWH = {"kWh": 1.0, "Wh": 0.001, "MWh": 1000.0}


class SettlementError(ValueError):
    """A run that cannot be computed; the message names contract, period and cause."""


@dataclass
class SettlementOptions:
    """How runs read and treat data.

    ``layer``: the store layer to settle from (``validated``); ``fallback_raw``: read the
    raw layer for channel-days that have no validated content; ``missing``: ``error``
    refuses intervals without data, ``zero`` counts them as 0 kWh (and reports them);
    ``shared``: how the shared load is carried by tenants; ``grid_price_per_mwh``: cost of
    grid import for pass-through lines; ``index_series``: price indices by name.
    """

    layer: str = "validated"
    fallback_raw: bool = False
    missing: Literal["error", "zero"] = "error"
    shared: SharedMethod = "pro_rata"
    grid_price_per_mwh: Decimal | None = None
    index_series: dict[str, IndexSeries] = field(default_factory=dict)
    fees_shares: dict[str, Decimal | float] = field(default_factory=dict)


@dataclass(frozen=True)
class InputRef:
    """One channel-day a run read."""

    channel_id: str
    day: date
    layer: str
    version: int
    content_hash: str

    def as_row(self) -> list[Any]:
        return [self.channel_id, self.day.isoformat(), self.layer, self.version, self.content_hash]


@dataclass(frozen=True)
class InputSummary:
    """What a run statement records of the inputs: the same fields
    :func:`build_statement` derives from a list of :class:`InputRef`, precomputed
    (the service keeps a run's channel-days packed, not as one object per day)."""

    count: int
    digest: str
    channels: list[str]
    layers: list[str]


@dataclass(frozen=True)
class RunKey:
    """Identity of a run; ``run_id`` is deterministic."""

    contract_id: str
    period: str
    version_kind: str
    seq: int = 1

    @property
    def run_id(self) -> str:
        return f"{self.contract_id}:{self.period}:{self.version_kind}:{self.seq}"

    @property
    def invoice_id(self) -> str:
        return f"inv:{self.run_id}"


@dataclass
class RunComputation:
    """What pricing produced for one contract and period."""

    contract: Contract
    period: BillingPeriod
    context: PricingContext
    charges: list[Charge]
    lines: list[InvoiceLine]
    history: PeriodHistory
    allocation: dict[str, Any]
    missing_intervals: int = 0


# --------------------------------------------------------------------------- channels


def tenant_channels(campus: Campus, party: str) -> list[str]:
    """The ``tenant_load`` channels of a party."""
    return [c.id for c in campus.channels if c.role == "tenant_load" and c.party == party]


def load_channels(campus: Campus, contract: Contract) -> list[str]:
    """The contract's own load channels (``load_channels``, else the buyer's tenant loads)."""
    return list(contract.load_channels) or tenant_channels(campus, contract.buyer)


def needs_allocation(contract: Contract) -> bool:
    """True when the contract prices by source (so its run depends on the allocation)."""
    if contract.sources:
        return True
    for spec in contract.components:
        settings = spec.settings()
        if spec.kind == "grid_pass_through" or any(settings.get(k) for k in _SOURCE_SETTINGS):
            return True
    return False


def component_assets(contract: Contract) -> list[str]:
    """Assets named by the contract (its sources and components' ``asset`` settings)."""
    out = list(contract.sources)
    for spec in contract.components:
        asset = spec.settings().get("asset")
        if isinstance(asset, str) and asset not in out:
            out.append(asset)
    return out


def contract_channels(campus: Campus, contract: Contract) -> list[str]:
    """Every channel the contract's run reads, in campus order."""
    wanted = set(load_channels(campus, contract))
    if needs_allocation(contract):
        wanted |= {c.id for c in campus.channels if c.role in BALANCE_ROLES}
    assets = set(component_assets(contract))
    wanted |= {c.id for c in campus.channels if c.role == "availability" and c.asset in assets}
    unknown = sorted(wanted - {c.id for c in campus.channels})
    if unknown:
        raise SettlementError(f"contract {contract.id!r}: unknown channel(s) {', '.join(unknown)}")
    return [c.id for c in campus.channels if c.id in wanted]


def kwh_factor(channel: Channel, interval_minutes: int) -> float:
    """Factor from a channel's unit to kWh per interval (power units integrate over the interval)."""
    if channel.unit in _UNIT_TO_KWH:
        return _UNIT_TO_KWH[channel.unit]
    if channel.unit == "kW":
        return interval_minutes / 60.0
    if channel.unit == "MW":
        return 1000.0 * interval_minutes / 60.0
    return 1.0


def regrid(values: np.ndarray, factor: int, how: Literal["sum", "mean"] = "sum") -> np.ndarray:
    """Aggregate ``(channels, N * factor)`` to ``(channels, N)`` by sum or mean (NaN stays NaN)."""
    if factor == 1:
        return values
    c, n = values.shape
    if n % factor:
        raise SettlementError(f"{n} intervals do not split into groups of {factor}")
    v = values.reshape(c, n // factor, factor)
    return v.sum(axis=2) if how == "sum" else v.mean(axis=2)


# --------------------------------------------------------------------------- context


def _row_index(matrix: IntervalMatrix) -> dict[str, int]:
    """``{channel: row}`` of the matrix (kept on the matrix while its channel list is the same)."""
    ids = matrix.channel_ids
    cached = matrix.__dict__.get("_row_index")
    if cached is not None and cached[0] is ids and cached[1] == len(ids):
        return cached[2]
    index = {cid: i for i, cid in enumerate(ids)}
    matrix.__dict__["_row_index"] = (ids, len(ids), index)
    return index


def _select_rows(values: np.ndarray, rows: list[int]) -> np.ndarray:
    """``values[rows]``; a view when the rows are consecutive."""
    if rows[-1] - rows[0] == len(rows) - 1 and rows == list(range(rows[0], rows[-1] + 1)):
        return values[rows[0]:rows[-1] + 1]
    return values[rows]


def _rows(matrix: IntervalMatrix, ids: Iterable[str]) -> np.ndarray:
    index = _row_index(matrix)
    rows = [index[c] for c in ids if c in index]
    if not rows:
        return np.zeros(matrix.n_intervals)
    sub = _select_rows(matrix.values, rows)
    total = sub.sum(axis=0)  # what nansum adds when there is no NaN
    if np.isnan(total).any():
        return np.nansum(sub, axis=0)
    return total


def missing_report(matrix: IntervalMatrix, channel_ids: Sequence[str]) -> dict[str, int]:
    """``{channel: intervals without data}`` for channels with gaps."""
    index = _row_index(matrix)
    rows = [index[c] for c in channel_ids if c in index]
    if not rows:
        return {}
    sub = _select_rows(matrix.values, rows)
    gappy = np.flatnonzero(np.isnan(sub.sum(axis=1)))  # a row with a NaN sums to NaN
    if not len(gappy):
        return {}
    counts = np.isnan(sub[gappy]).sum(axis=1)
    return {matrix.channel_ids[rows[g]]: int(n) for g, n in zip(gappy.tolist(), counts, strict=True) if n}


def build_context(
    campus: Campus,
    contract: Contract,
    period: BillingPeriod,
    matrix: IntervalMatrix,
    allocation: AllocationResult | None,
    options: SettlementOptions,
    history: Mapping[str, PeriodHistory] | None = None,
) -> tuple[PricingContext, dict[str, Any]]:
    """The pricing context of ``contract`` for ``period`` and an allocation summary.

    The buyer's energy is its allocated energy when it is an allocation tenant (by
    source, restricted to ``contract.sources`` when given), the metered output of
    ``contract.sources`` when the buyer is not a tenant (an IPP selling plant output),
    else the metered sum of its load channels.
    """
    where = f"contract {contract.id!r} period {period.label}"
    n = matrix.n_intervals
    step = matrix.interval_minutes * 60
    starts = matrix.start_epoch + step * np.arange(n, dtype=np.int64)
    own = load_channels(campus, contract)
    own_kwh: np.ndarray | None = None
    by_source: dict[str, np.ndarray] = {}
    alloc_summary: dict[str, Any] = {"method": "metered", "tenant": None}
    grid_kwh = 0.0
    if needs_allocation(contract) and allocation is not None and contract.buyer in allocation.tenants:
        t = allocation.tenant_index(contract.buyer)
        if allocation.kwh is None:
            raise SettlementError(f"{where}: allocation has no per-interval arrays")
        wanted = set(contract.sources) if contract.sources else None
        unknown = sorted((wanted or set()) - set(allocation.sources))
        if unknown:
            raise SettlementError(f"{where}: source(s) {', '.join(unknown)} have no metered channel in the allocation")
        shares = allocation.shares(contract.buyer)
        sources: dict[str, Any] = {}
        for j, src in enumerate(allocation.sources):
            if wanted is not None and src not in wanted:
                continue
            arr = allocation.kwh[t, j]
            total = float(allocation.totals[t, j])
            if total == 0.0 and src == UNMETERED:
                continue
            by_source[src] = arr
            if allocation.source_roles and allocation.source_roles[j] == "grid_import":
                grid_kwh += total
            sources[src] = {"kwh": det(total), "loss_kwh": det(float(allocation.loss_kwh[t, j])),
                            "share_of_source": det(shares[src])}
        energy = np.zeros(n) if not by_source else np.sum(list(by_source.values()), axis=0)
        bal = allocation.balance
        alloc_summary = {
            "method": allocation.method, "tenant": contract.buyer, "loss_factor": det(allocation.loss_factor),
            "sources": sources,
            "shared_kwh": det(float(allocation.shared[t].sum())) if allocation.shared is not None else "0",
            "imbalance_intervals": int(bal.violations.size) if bal is not None else 0,
            "max_abs_imbalance_kwh": det(float(np.abs(bal.imbalance).max())) if bal is not None and n else "0",
        }
    elif contract.sources:
        for src in contract.sources:
            chans = [c.id for c in campus.channels if c.asset == src and c.role in ("generation", "battery_discharge", "grid_import")]
            if not chans:
                raise SettlementError(f"{where}: source asset {src!r} has no generation channel")
            by_source[src] = _rows(matrix, chans)
        energy = np.sum(list(by_source.values()), axis=0)
        alloc_summary = {"method": "metered_sources", "tenant": None,
                         "sources": {s: {"kwh": det(float(a.sum()))} for s, a in by_source.items()}}
    else:
        if not own:
            raise SettlementError(f"{where}: no load channels (set contract.load_channels or tenant_load channels of {contract.buyer!r})")
        energy = own_kwh = _rows(matrix, own)
    if own and own_kwh is None:
        own_kwh = _rows(matrix, own)
    demand = own_kwh * (60.0 / matrix.interval_minutes) if own and own_kwh is not None else None
    availability: dict[str, np.ndarray] = {}
    for asset in component_assets(contract):
        chans = [c.id for c in campus.channels if c.role == "availability" and c.asset == asset]
        index = _row_index(matrix)
        rows = [index[c] for c in chans if c in index]
        if rows:
            availability[asset] = np.nanmean(matrix.values[rows], axis=0) if len(rows) > 1 else matrix.values[rows[0]]
    grid_cost: Decimal = Decimal("0")
    if options.grid_price_per_mwh is not None and grid_kwh:
        grid_cost = to_decimal(grid_kwh) / Decimal(1000) * options.grid_price_per_mwh
    ctx = PricingContext(
        contract=contract, period=period, interval_minutes=matrix.interval_minutes, starts=starts,
        energy_kwh=np.nan_to_num(energy), energy_by_source={k: np.nan_to_num(v) for k, v in by_source.items()},
        demand_kw=None if demand is None else np.nan_to_num(demand), history=dict(history or {}),
        index_series=dict(options.index_series), availability=availability,
        grid_import_cost=grid_cost, grid_import_kwh=grid_kwh, fees_shares=dict(options.fees_shares),
    )
    # contracts of one period share the local calendar of the interval starts
    ctx.__dict__["calendar"] = local_calendar(matrix.start_epoch, n, matrix.interval_minutes, contract.timezone)
    return ctx, alloc_summary


@lru_cache(maxsize=16)
def local_calendar(start_epoch: int, n: int, interval_minutes: int, tz: str) -> LocalCalendar:
    """The (cached) local calendar of ``n`` intervals from ``start_epoch`` in zone ``tz``."""
    starts = start_epoch + interval_minutes * 60 * np.arange(n, dtype=np.int64)
    return LocalCalendar.from_starts(starts, tz)


def compute_run(
    campus: Campus,
    contract: Contract,
    period: BillingPeriod,
    matrix: IntervalMatrix,
    allocation: AllocationResult | None,
    options: SettlementOptions,
    history: Mapping[str, PeriodHistory] | None = None,
    components: Any | None = None,
    channels: Sequence[str] | None = None,
) -> RunComputation:
    """Price one contract for one period; ``components`` is a registry or ``{kind: class}``.

    ``channels``: :func:`contract_channels` of the contract when the caller has them.
    """
    chans = list(channels) if channels is not None else contract_channels(campus, contract)
    gaps = missing_report(matrix, chans)
    if gaps and options.missing == "error":
        listed = ", ".join(f"{c} ({k} intervals)" for c, k in sorted(gaps.items()))
        raise SettlementError(
            f"contract {contract.id!r} period {period.label}: intervals without {options.layer} data: {listed}"
        )
    ctx, alloc_summary = build_context(campus, contract, period, matrix, allocation, options, history)
    comps = build_components(contract, components)
    charges = price_contract(comps, ctx)
    lines = charges_to_lines(charges, ctx.money, period, tax_category=contract.tax_category,
                             tax_percent=contract.tax_percent)
    return RunComputation(contract, period, ctx, charges, lines, summarize_period(ctx, charges), alloc_summary,
                          missing_intervals=sum(gaps.values()))


# --------------------------------------------------------------------------- deltas


def line_key(line: InvoiceLine | Mapping[str, Any]) -> tuple[str, str, str]:
    """Lines of two versions match on (component, source asset, description)."""
    if isinstance(line, InvoiceLine):
        return (line.component_id, line.source_asset, line.description)
    return (str(line["component_id"]), str(line["source_asset"]), str(line["description"]))


def line_from_json(data: Mapping[str, Any]) -> InvoiceLine:
    """An :class:`InvoiceLine` from its statement JSON."""
    return InvoiceLine.model_validate(dict(data))


def delta_lines(new: Sequence[InvoiceLine], old: Sequence[InvoiceLine], policy: MoneyPolicy) -> list[InvoiceLine]:
    """Lines billing ``new - old``, per matching line; unchanged lines are left out.

    A delta keeps the unit price when both versions used the same one and
    ``round(delta quantity x price)`` equals the amount delta; otherwise it is billed as
    ``1 x amount delta``. Determinants say what was billed before and what is due now.
    """
    old_by = {line_key(x): x for x in old}
    new_by = {line_key(x): x for x in new}
    keys = [line_key(x) for x in new] + [k for k in (line_key(x) for x in old) if k not in new_by]
    out: list[InvoiceLine] = []
    zero = Decimal("0")
    for key in keys:
        n, o = new_by.get(key), old_by.get(key)
        ref = n or o
        assert ref is not None
        q1, a1 = (n.quantity, n.amount) if n else (zero, zero)
        q0, a0 = (o.quantity, o.amount) if o else (zero, zero)
        da = a1 - a0
        dq = q1 - q0
        if da == 0 and dq == 0:
            continue
        price = ref.unit_price
        same_price = n is None or o is None or n.unit_price == o.unit_price
        if same_price and dq != 0 and policy.amount(dq * price) == da:
            qty, unit, unit_price = dq, ref.unit, price
        else:
            qty, unit, unit_price = Decimal(1), "each", da
        dets = dict(n.determinants) if n else {}
        dets.update({
            "adjusts_line": ref.description,
            "previous_quantity": money_str(q0), "previous_amount": money_str(a0),
            "new_quantity": money_str(q1), "new_amount": money_str(a1),
            "previous_unit_price": money_str(o.unit_price) if o else "",
            "new_unit_price": money_str(n.unit_price) if n else "",
        })
        out.append(ref.model_copy(update={
            "number": len(out) + 1, "description": f"{ref.description} (adjustment)", "quantity": qty, "unit": unit,
            "unit_price": unit_price, "amount": da, "determinants": dets,
        }))
    return out


def as_credit(lines: Sequence[InvoiceLine]) -> list[InvoiceLine]:
    """Credit-note lines: the same deltas with the sign turned (amounts credited)."""
    out = []
    for ln in lines:
        if ln.unit == "each" and ln.quantity == 1:
            upd = {"unit_price": -ln.unit_price, "amount": -ln.amount}
        else:
            upd = {"quantity": -ln.quantity, "amount": -ln.amount}
        out.append(ln.model_copy(update=upd))
    return out


def document_kind(lines: Sequence[InvoiceLine], has_previous: bool) -> DocumentKind | None:
    """``invoice`` for a first version, else ``adjustment`` / ``credit_note`` by the net delta."""
    if not has_previous:
        return "invoice"
    if not lines:
        return None
    return "credit_note" if sum((ln.amount for ln in lines), Decimal("0")) < 0 else "adjustment"


# --------------------------------------------------------------------------- statement


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: equal content gives equal bytes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default).encode("utf-8")


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return money_str(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (np.floating, np.integer)):
        return det(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def statement_hash(statement_bytes: bytes) -> str:
    """SHA-256 of the canonical statement."""
    return hashlib.sha256(statement_bytes).hexdigest()


def channel_digests(inputs: Iterable[InputRef]) -> dict[str, str]:
    """SHA-256 per channel over its sorted ``day|layer|version|hash`` rows."""
    rows: dict[str, list[str]] = {}
    for r in inputs:
        rows.setdefault(r.channel_id, []).append(f"{r.day.isoformat()}|{r.layer}|{r.version}|{r.content_hash}\n")
    return {ch: hashlib.sha256("".join(sorted(v)).encode("utf-8")).hexdigest() for ch, v in rows.items()}


def inputs_digest(inputs: Iterable[InputRef], per_channel: Mapping[str, str] | None = None) -> str:
    """SHA-256 over the sorted ``channel:channel digest`` lines of the inputs."""
    refs = list(inputs)
    digests = per_channel if per_channel is not None else channel_digests(refs)
    channels = sorted({r.channel_id for r in refs})
    return hashlib.sha256("".join(f"{ch}:{digests[ch]}\n" for ch in channels).encode("utf-8")).hexdigest()


def line_json(line: InvoiceLine) -> dict[str, Any]:
    """A line as canonical JSON data (Decimals as exact strings)."""
    return json.loads(line.model_dump_json())


def totals_json(lines: Sequence[InvoiceLine], policy: MoneyPolicy) -> dict[str, str]:
    """Line, tax and grand totals of ``lines`` (as :func:`kwhub.core.invoice.compute_totals` computes them)."""
    probe = Invoice(id="-", number="-", seller=PartyRef(id="-", name="-"), buyer=PartyRef(id="-", name="-"),
                    issue_date=date(2000, 1, 1), due_date=date(2000, 1, 1), period_start=date(2000, 1, 1),
                    period_end=date(2000, 1, 1), lines=list(lines))
    tot = compute_totals(probe, policy)
    return {"line_total": money_str(tot.line_total), "tax_total": money_str(tot.tax_total), "total": money_str(tot.total)}


def build_statement(
    key: RunKey,
    comp: RunComputation,
    inputs: Sequence[InputRef] | InputSummary,
    layer: str,
    doc_kind: DocumentKind | None,
    doc_lines: Sequence[InvoiceLine],
    previous_run: str | None,
    digests: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The run statement: everything needed to re-derive the amounts, nothing time-dependent.

    ``digests`` are precomputed :func:`channel_digests` (shared by the runs of a period);
    ``inputs`` may be an :class:`InputSummary` of them instead of the rows.
    """
    ctx = comp.context
    pol = ctx.money
    per = comp.period
    assert ctx.demand_kw is not None
    totals = totals_json(comp.lines, pol)
    same = len(doc_lines) == len(comp.lines) and all(a is b for a, b in zip(doc_lines, comp.lines, strict=True))
    doc_totals = dict(totals) if same else totals_json(doc_lines, pol)  # a first version bills the full lines
    if not isinstance(inputs, InputSummary):
        inputs = InputSummary(len(inputs), inputs_digest(inputs, digests), sorted({r.channel_id for r in inputs}),
                              sorted({r.layer for r in inputs}))
    return {
        "schema": STATEMENT_SCHEMA,
        "run": {"id": key.run_id, "contract": key.contract_id, "period": key.period,
                "version_kind": key.version_kind, "seq": key.seq, "layer": layer, "previous_run": previous_run},
        "contract": {"id": comp.contract.id, "seller": comp.contract.seller, "buyer": comp.contract.buyer,
                     "currency": pol.currency, "rounding": pol.rounding, "amount_places": pol.amount_places,
                     "timezone": comp.contract.timezone, "contract_year": ctx.contract_year},
        "span": {"start": per.span.start.isoformat(), "end": per.span.end.isoformat(),
                 "first_day": per.first_day.isoformat(), "last_day": per.last_day.isoformat(),
                 "interval_minutes": ctx.interval_minutes, "intervals": ctx.n_intervals},
        "inputs": {"count": inputs.count, "digest": inputs.digest, "channels": list(inputs.channels),
                   "layers": list(inputs.layers), "missing_intervals": comp.missing_intervals},
        "allocation": comp.allocation,
        "determinants": {"energy_kwh": det(float(ctx.energy_kwh.sum())),
                         "peak_kw": det(float(ctx.demand_kw.max()) if ctx.n_intervals else 0.0)},
        "history": {"billing_demand_kw": det(comp.history.billing_demand_kw), "peak_kw": det(comp.history.peak_kw),
                    "energy_kwh": det(comp.history.energy_kwh)},
        "lines": [line_json(x) for x in comp.lines],
        "totals": totals,
        "document": {"kind": doc_kind, "lines": [line_json(x) for x in doc_lines],
                     "totals": doc_totals},
    }


def history_from_statement(statement: Mapping[str, Any]) -> PeriodHistory:
    """The :class:`PeriodHistory` a statement recorded (for later ratchets)."""
    h = statement["history"]
    return PeriodHistory(float(h["billing_demand_kw"]), float(h["peak_kw"]), float(h["energy_kwh"]))


def party_ref(campus: Campus, party_id: str) -> PartyRef:
    """A document party from the campus party (id only when unknown)."""
    try:
        p = campus.party(party_id)
    except KeyError:
        return PartyRef(id=party_id, name=party_id)
    return PartyRef(id=p.id, name=p.name, tax_id=p.tax_id, address=p.address, email=p.email, endpoint_id=p.endpoint_id)


def build_invoice(
    campus: Campus,
    key: RunKey,
    comp: RunComputation,
    kind: DocumentKind,
    lines: Sequence[InvoiceLine],
    number: str,
    issue_date: date,
    original: DocumentReference | None = None,
    version: int = 1,
) -> Invoice:
    """The format-neutral document of a run, with totals under the contract's money policy."""
    contract = comp.contract
    buyer_ref = ""
    try:
        buyer_ref = campus.party(contract.buyer).buyer_reference
    except KeyError:
        pass
    notes = {"invoice": "", "adjustment": "Adjustment of", "credit_note": "Credit note for"}
    note = f"{notes[kind]} invoice {original.number} ({key.version_kind} settlement)" if original else ""
    inv = Invoice(
        id=key.invoice_id, number=number, kind=kind, version=version,
        seller=party_ref(campus, contract.seller), buyer=party_ref(campus, contract.buyer),
        issue_date=issue_date, due_date=issue_date + timedelta(days=contract.payment_days),
        period_start=comp.period.first_day, period_end=comp.period.last_day, currency=contract.currency,
        buyer_reference=buyer_ref, contract_id=contract.id, run_id=key.run_id, note=note,
        references=[original] if original else [], lines=[ln.model_copy(update={"number": i}) for i, ln in enumerate(lines, 1)],
    )
    return compute_totals(inv, money_policy(contract))
