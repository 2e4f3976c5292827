"""Energy accounting: every kWh metered is allocated, and every allocated kWh billed or explained.

Per billing period and per source, ``metered = delivered to tenants + losses + to other
sinks`` (battery charge, export, shared load that is not carried by tenants, surplus);
per tenant and source, ``allocated = billed + unbilled``, and every unbilled kWh carries
its reason. :func:`buyer_accounts` says it for one contract's buyer (the rows of one run);
:func:`campus_accounts` for the whole campus (every tenant, with or without a contract).
Pure: the inputs are an :class:`~kwhub.core.allocation.AllocationResult` and the
:class:`~kwhub.core.contract_energy.EnergyPlan`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from kwhub.core.allocation import UNMETERED, AllocationResult
from kwhub.core.contract_energy import ContractEnergy, EnergyPlan
from kwhub.core.review import Unbilled

REASON_UNMETERED = "load that the metered supply did not cover (campus imbalance or a missing supply meter)"
REASON_NO_CONTRACT = "the tenant has no contract"
REASON_OUTSIDE = "outside the sources of every contract of this tenant"
REASON_UNPRICED = "in the contract's sources, but no price component prices it"


@dataclass(frozen=True)
class Account:
    """One (party, source) row: allocated kWh, billed kWh (and by which contract), unbilled kWh and why."""

    party: str
    source: str
    allocated_kwh: float
    billed_kwh: float
    billed_by: str
    unbilled_kwh: float
    reason: str
    declared: bool

    def as_json(self) -> dict[str, Any]:
        return {"party": self.party, "source": self.source, "allocated_kwh": repr(self.allocated_kwh),
                "billed_kwh": repr(self.billed_kwh), "billed_by": self.billed_by,
                "unbilled_kwh": repr(self.unbilled_kwh), "reason": self.reason, "declared": self.declared}


def _classify(plan: EnergyPlan, party: str, source: str) -> tuple[str, str, bool]:
    """``(billed_by contract id, reason, declared)`` of a party's source (billed_by empty: unbilled)."""
    by = plan.billed_by(party).get(source, "")
    if by:
        return by, "", False
    declared = plan.declared(party)
    if source in declared:
        return "", declared[source], True
    contracts = plan.buyer_contracts(party)
    if not contracts:
        return "", REASON_NO_CONTRACT, False
    if source == UNMETERED:
        return "", REASON_UNMETERED, False
    if any(source in c.scope for c in contracts):
        return "", REASON_UNPRICED, False
    return "", REASON_OUTSIDE, False


def _row(plan: EnergyPlan, party: str, source: str, kwh: float) -> Account:
    by, reason, declared = _classify(plan, party, source)
    if by:
        return Account(party, source, kwh, kwh, by, 0.0, "", False)
    return Account(party, source, kwh, 0.0, "", kwh, reason, declared)


def buyer_accounts(plan: EnergyPlan, contract: ContractEnergy, by_source: Mapping[str, float]) -> list[Account]:
    """The buyer's rows as one contract's run sees them (``by_source``: kWh per source).

    For a metered basis the stream is the contract's own (metered load or plant output).
    """
    rows = []
    for src, kwh in by_source.items():
        if kwh == 0.0 and src not in contract.scope:
            continue
        if contract.basis != "allocation":
            billed = src in contract.billed
            reason = "" if billed else contract.not_billed.get(src, REASON_UNPRICED)
            rows.append(Account(contract.buyer, src, kwh, kwh if billed else 0.0, contract.contract_id if billed else "",
                                0.0 if billed else kwh, reason, src in contract.not_billed))
        else:
            rows.append(_row(plan, contract.buyer, src, kwh))
    return rows


def unbilled_of(rows: list[Account]) -> list[Unbilled]:
    """The unbilled rows as the review gate's ``unbilled_energy`` check reads them."""
    return [Unbilled(r.source, r.unbilled_kwh, r.reason, r.declared) for r in rows if r.unbilled_kwh]


def campus_accounts(plan: EnergyPlan, allocation: AllocationResult) -> dict[str, Any]:
    """The campus section: per source metered/to tenants/losses/other sinks, per tenant rows,
    and the balance totals (kWh as exact float reprs)."""
    bal = allocation.balance
    tenants = allocation.tenants
    sources = allocation.sources
    to_tenants = allocation.totals.sum(axis=0)
    lf = allocation.loss_factor
    source_rows = []
    metered = allocation.metered if allocation.metered is not None else np.zeros(len(sources) - 1)
    for j, src in enumerate(sources):
        if src == UNMETERED:
            continue
        m = float(metered[j])
        loss = m * lf
        other = m - loss - float(to_tenants[j])
        source_rows.append({"source": src, "kind": allocation.source_kinds[j] if allocation.source_kinds else "",
                            "metered_kwh": repr(m), "to_tenants_kwh": repr(float(to_tenants[j])),
                            "losses_kwh": repr(loss), "other_sinks_kwh": repr(other)})
    party_rows = [_row(plan, t, s, float(allocation.totals[i, j])).as_json()
                  for i, t in enumerate(tenants) for j, s in enumerate(sources)
                  if allocation.totals[i, j] != 0.0]
    totals = bal.totals() if bal is not None else {}
    return {"sources": source_rows, "tenants": party_rows,
            "balance": {k: repr(float(v)) for k, v in totals.items()},
            "unmetered_kwh": repr(float(to_tenants[-1])) if len(sources) else "0.0"}


def totals_by_source(values: Mapping[str, np.ndarray]) -> dict[str, float]:
    """``{source: period kWh}`` of per-interval arrays."""
    return {k: float(v.sum()) for k, v in values.items()}
