"""Pricing a period under the contract versions in force in it.

When a contract has amendments, :func:`price_by_version` prices each
:class:`~kwhub.core.contract_versions.VersionPart` of the period with that version's
components, over a context cut from the period's one: the interval arrays are sliced at
the version boundary (a version's intervals are contiguous in the frame, so each cut is a
view, never a per-interval loop) and the period is the part's local days.

* Energy is billed from the part's own intervals.
* Amounts per billing period (fixed fees, demand and capacity per kW-month, a take-or-pay
  ``minimum_mwh``, availability damages) are prorated by ``ctx.period_share``: the part's
  local days over the period's. Per-day settings (``minimum_mwh_per_day``, capacity
  ``proration = "days"``) follow the part's days by themselves.
* Stage-1 components (surcharges) see the charges of their own version only.

Every charge carries ``terms_version`` among its determinants; when the period is split,
each line's description names the version and its days, and its period is the part's
days. Energy masks are widened to the whole period, so attribution and emissions follow
the energy as for an undivided run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any

import numpy as np

from kwhub.core.contract_versions import VersionPart
from kwhub.core.invoice import InvoiceLine
from kwhub.core.pricing.base import Charge, PricingContext
from kwhub.core.pricing.lines import build_components, charges_to_lines, price_contract


def part_context(ctx: PricingContext, part: VersionPart) -> PricingContext:
    """``ctx`` restricted to one version part (array views, the part's days and contract)."""
    if part.first == 0 and part.stop == ctx.n_intervals and part.period.first_day == ctx.period.first_day \
            and part.period.last_day == ctx.period.last_day:
        sub = replace(ctx, contract=part.version.contract, prior_charges=[])
        if "calendar" in ctx.__dict__:
            sub.__dict__["calendar"] = ctx.__dict__["calendar"]
        return sub
    s = part.intervals
    days = Decimal(len(part.period.local_days()))
    share = days / Decimal(len(ctx.period.local_days()))
    assert ctx.demand_kw is not None
    return replace(
        ctx, contract=part.version.contract, period=part.period, starts=ctx.starts[s],
        energy_kwh=ctx.energy_kwh[s], energy_by_source={k: v[s] for k, v in ctx.energy_by_source.items()},
        demand_kw=ctx.demand_kw[s], availability={k: v[s] for k, v in ctx.availability.items()},
        grid_import_cost=Decimal(str(ctx.grid_import_cost)) * share, grid_import_kwh=float(ctx.grid_import_kwh) * float(share),
        prior_charges=[], period_share=share,
    )


def _widen(charge: Charge, part: VersionPart, n: int) -> np.ndarray | None:
    """The charge's interval mask over the whole period (energy charges only)."""
    if not charge.sources and charge.mask is None:
        return None
    full = np.zeros(n, dtype=bool)
    full[part.intervals] = True if charge.mask is None else charge.mask
    return full


def price_by_version(parts: Sequence[VersionPart], ctx: PricingContext, components: Any | None = None,
                     ) -> tuple[list[Charge], list[InvoiceLine]]:
    """The charges and invoice lines of a period priced part by part (see module docs)."""
    split = len(parts) > 1
    charges: list[Charge] = []
    lines: list[InvoiceLine] = []
    for part in parts:
        v = part.version
        sub = part_context(ctx, part)
        mine = price_contract(build_components(v.contract, components), sub)
        for ch in mine:
            ch.determinants["terms_version"] = v.name
            if split:
                ch.determinants["terms_days"] = f"{part.period.first_day}..{part.period.last_day}"
                ch.description = f"{ch.description}, terms {v.name}, {part.period.first_day} to {part.period.last_day}"
                ch.mask = _widen(ch, part, ctx.n_intervals)
        lines += charges_to_lines(mine, ctx.money, part.period, first_number=len(lines) + 1,
                                  tax_category=v.contract.tax_category, tax_percent=v.contract.tax_percent,
                                  tax_exemption=v.contract.tax_exemption)
        charges += mine
    ctx.prior_charges = list(charges)
    return charges, lines
