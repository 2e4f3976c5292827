"""Emissions on invoice lines: each energy line carries the kg behind the energy it bills.

A settlement period that allocates the campus computes its carbon basis once
(:func:`period_basis`: the activity, the resolved factors and the source intensities);
every allocation-based run of the period then puts on each energy line the emissions of
exactly the kWh the line bills: the line's sources over the line's intervals, from the
same split the line was priced from (:func:`attach`). The report of the tenant sums the
same arrays, so the invoice and the report cannot disagree.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np

from kwhub.core.allocation import AllocationResult
from kwhub.core.campus import Campus
from kwhub.core.carbon_activity import CarbonActivity, build_activity
from kwhub.core.carbon_amounts import GasKg, LineEmissions, SourceKg, kg
from kwhub.core.carbon_factors import CarbonSetup, FactorSet, resolve_factors
from kwhub.core.carbon_settings import EmissionsSettings
from kwhub.core.emissions import M_LOC, M_MKT, Intensity, source_intensity
from kwhub.core.intervals import IntervalMatrix
from kwhub.core.invoice import InvoiceLine
from kwhub.core.pricing.base import Charge


@dataclass
class PeriodBasis:
    """The carbon basis of one settled period, shared by its runs."""

    activity: CarbonActivity
    factors: FactorSet
    intensity: Intensity
    activity_id: str
    factors_id: str
    settings: EmissionsSettings

    def statement_section(self) -> dict[str, Any]:
        """What a run statement records: the ids of the frozen activity and factors, the factors' values and
        lineage, and the accounting settings the intensities used (so reports and explain recompute them)."""
        data, _ = self.factors.to_json()
        return {"activity_id": self.activity_id, "factors_id": self.factors_id, "activity": self.activity.header(),
                "factors": data, "settings": frozen_settings(self.settings)}


def frozen_settings(settings: EmissionsSettings) -> dict[str, Any]:
    """The settings that shape intensities (factors and hourly files are frozen in the factor set)."""
    return settings.model_dump(mode="json", include={"gwp_set", "btm_location_basis", "loss_term",
                                                     "residual_mix_fallback", "carbon_free_kinds"})


def period_basis(matrix: IntervalMatrix, campus: Campus, allocation: AllocationResult, setup: CarbonSetup,
                 first_day: date) -> PeriodBasis:
    """Activity, factors and intensities of a period (``matrix`` holds the balance and fuel channels)."""
    activity = build_activity(matrix, campus, allocation)
    fuels = {s.fuel for s in activity.sources if s.combustion and s.fuel}
    factors = resolve_factors(setup.library, setup.settings, setup.region, fuels, first_day, activity.starts)
    intensity = source_intensity(activity, factors, setup.settings)
    return PeriodBasis(activity, factors, intensity, activity.digest(), factors.digest(), setup.settings)


def _refs(basis: PeriodBasis, sources: Sequence[str]) -> list[str]:
    f = basis.factors
    out: list[str] = []
    for s in basis.activity.sources:
        if s.id not in sources and not (s.role == "battery_discharge" and s.id in sources):
            continue
        if s.role == "grid_import":
            out += f.refs.get("grid_location", []) + f.refs.get("grid_residual_mix", [])
        elif s.combustion:
            out += f.refs.get(f"combustion:{s.fuel}", [])
        elif s.override_kg_per_mwh is not None:
            out.append(f"asset:{s.id}:emission_factor_kg_per_mwh={s.override_kg_per_mwh!r}")
        if s.role == "battery_discharge":
            mix = basis.activity.charge_from.get(s.id)
            if mix is not None:
                out += _refs(basis, [src.id for k, src in enumerate(basis.activity.sources) if mix[k].any()])
    return list(dict.fromkeys(out))


def charge_mask(charge: Charge, n: int) -> np.ndarray:
    """The boolean interval mask of ``charge`` (all intervals when it has none)."""
    if charge.mask is None:
        return np.ones(n, dtype=bool)
    mask = np.zeros(n, dtype=bool)
    mask[charge.mask] = True
    return mask


def charge_emissions(charge: Charge, energy: Mapping[str, np.ndarray], basis: PeriodBasis) -> LineEmissions | None:
    """The emissions of the kWh ``charge`` prices (None for a charge that prices no energy)."""
    if not charge.sources:
        return None
    names = basis.intensity.sources
    gwp = basis.factors.gwp
    total = np.zeros((2, basis.intensity.values.shape[2]))
    unknown = 0.0
    kwh = 0.0
    mask = charge_mask(charge, basis.activity.n)
    with_energy = np.zeros(basis.activity.n, dtype=bool)
    parts: list[SourceKg] = []
    for src in charge.sources:
        arr = energy.get(src)
        if arr is None or src not in names:
            continue
        j = names.index(src)
        sel = np.where(mask, arr, 0.0)
        with_energy |= sel != 0
        part = np.stack([basis.intensity.values[m, j] @ sel for m in (M_LOC, M_MKT)])
        total += part
        kwh += float(sel.sum())
        unknown += float(sel @ (~(basis.intensity.known[M_LOC, j] & basis.intensity.known[M_MKT, j])))
        parts.append(SourceKg(source=src, kwh=kg(float(sel.sum())), location_kg_co2e=GasKg.of(part[0]).co2e(gwp),
                              market_kg_co2e=GasKg.of(part[1]).co2e(gwp)))
    loc, mkt = GasKg.of(total[0]), GasKg.of(total[1])
    return LineEmissions(gwp_set=gwp.name, kwh=kg(kwh), location=loc, market=mkt, location_kg_co2e=loc.co2e(gwp),
                         market_kg_co2e=mkt.co2e(gwp), unknown_kwh=kg(unknown), intervals=int(with_energy.sum()),
                         by_source=parts, factors=_refs(basis, charge.sources))


def pack_mask(mask: np.ndarray) -> str:
    """A boolean interval mask as base64 of its packed bits (how statements keep a line's intervals)."""
    return base64.b64encode(np.packbits(mask.astype(bool)).tobytes()).decode("ascii")


def unpack_mask(text: str, n: int) -> np.ndarray:
    """Inverse of :func:`pack_mask` for ``n`` intervals."""
    return np.unpackbits(np.frombuffer(base64.b64decode(text), dtype=np.uint8))[:n].astype(bool)


def attach(lines: Sequence[InvoiceLine], charges: Sequence[Charge], energy: Mapping[str, np.ndarray],
           basis: PeriodBasis) -> tuple[list[InvoiceLine], list[str]]:
    """``lines`` (one per charge) with the emissions of each energy line, and each line's packed interval mask
    (empty for lines without energy) for the statement, so that a line's intervals can be explained."""
    out = []
    masks = []
    for line, charge in zip(lines, charges, strict=True):
        em = charge_emissions(charge, energy, basis)
        out.append(line if em is None else line.model_copy(update={"emissions": em}))
        masks.append("" if em is None else pack_mask(charge_mask(charge, basis.activity.n)))
    return out, masks
