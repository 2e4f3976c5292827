"""Emissions that follow the energy: Scope 1 from on-site fuel, Scope 2 from grid imports.

Scope 1 for natural gas uses the US EPA 40 CFR 98 Subpart C factors (Tables C-1/C-2):
53.06 kg CO2, 1.0e-3 kg CH4 and 1.0e-4 kg N2O per MMBtu, weighted by configurable global
warming potentials. Scope 2 is reported both location-based (a grid-average factor) and
market-based (contractual instruments, else a residual-mix factor), as the GHG Protocol
asks. Each tenant carries the emissions of the sources allocated to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel, ConfigDict

# EPA 40 CFR 98 Subpart C, Table C-1 (CO2) and Table C-2 (CH4, N2O), natural gas, kg/MMBtu.
NATURAL_GAS_KG_PER_MMBTU = {"co2": 53.06, "ch4": 1.0e-3, "n2o": 1.0e-4}
FUEL_FACTORS = {"natural_gas": NATURAL_GAS_KG_PER_MMBTU}


class EmissionFactors(BaseModel):
    """Factors used for one inventory; every number is a setting with a cited default."""

    model_config = ConfigDict(extra="forbid")

    gwp_ch4: float = 28.0  # IPCC AR5, 100-year
    gwp_n2o: float = 265.0  # IPCC AR5, 100-year
    grid_location_kg_per_mwh: float = 0.0  # e.g. the eGRID subregion output rate, converted from lb/MWh
    grid_market_kg_per_mwh: float = 0.0  # residual mix, or 0 where certificates cover imports
    fuels: dict[str, dict[str, float]] = FUEL_FACTORS

    def co2e_per_mmbtu(self, fuel: str) -> float:
        f = self.fuels.get(fuel)
        if f is None:
            raise KeyError(f"no emission factors for fuel {fuel!r} (known: {sorted(self.fuels)})")
        return f["co2"] + f["ch4"] * self.gwp_ch4 + f["n2o"] * self.gwp_n2o


@dataclass
class SourceEmissions:
    """One source (an on-site plant or the grid) over a period."""

    source: str
    scope: int
    energy_mwh: float
    fuel_mmbtu: float
    tco2e: float
    method: str

    @property
    def intensity_kg_per_mwh(self) -> float:
        return 1000.0 * self.tco2e / self.energy_mwh if self.energy_mwh else 0.0


@dataclass
class EmissionsSummary:
    """A campus inventory for one period, with each tenant's share."""

    period: str
    sources: list[SourceEmissions] = field(default_factory=list)
    scope2_location_tco2e: float = 0.0
    scope2_market_tco2e: float = 0.0
    tenants: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def scope1_tco2e(self) -> float:
        return sum(s.tco2e for s in self.sources if s.scope == 1)

    def as_dict(self) -> dict[str, object]:
        return {
            "period": self.period,
            "scope1_tco2e": round(self.scope1_tco2e, 6),
            "scope2_location_tco2e": round(self.scope2_location_tco2e, 6),
            "scope2_market_tco2e": round(self.scope2_market_tco2e, 6),
            "sources": [
                {"source": s.source, "scope": s.scope, "energy_mwh": round(s.energy_mwh, 6),
                 "fuel_mmbtu": round(s.fuel_mmbtu, 6), "tco2e": round(s.tco2e, 6), "method": s.method,
                 "intensity_kg_per_mwh": round(s.intensity_kg_per_mwh, 3)}
                for s in self.sources
            ],
            "tenants": {t: {k: round(v, 6) for k, v in d.items()} for t, d in self.tenants.items()},
        }


def scope1(source: str, fuel: str, fuel_mmbtu: float, energy_mwh: float, factors: EmissionFactors) -> SourceEmissions:
    """Direct combustion: metered fuel x (CO2 + GWP-weighted CH4 and N2O) factors."""
    tco2e = fuel_mmbtu * factors.co2e_per_mmbtu(fuel) / 1000.0
    return SourceEmissions(source, 1, energy_mwh, fuel_mmbtu, tco2e, f"metered fuel x EPA Subpart C ({fuel})")


def campus_inventory(
    period: str,
    generation_mwh: dict[str, float],
    fuel_mmbtu: dict[str, tuple[str, float]],
    grid_import_mwh: float,
    tenant_source_mwh: dict[str, dict[str, float]],
    factors: EmissionFactors,
) -> EmissionsSummary:
    """Build the period inventory and give each tenant the emissions of what it was allocated.

    ``tenant_source_mwh[tenant][source]`` is the allocation split (source ``"grid"`` for
    imports); a source's emissions are shared in proportion to the energy each tenant took.
    """
    summary = EmissionsSummary(period=period)
    intensity_t_per_mwh: dict[str, float] = {}
    for asset, mwh in sorted(generation_mwh.items()):
        fuel, mmbtu = fuel_mmbtu.get(asset, ("", 0.0))
        if fuel:
            src = scope1(asset, fuel, mmbtu, mwh, factors)
        else:
            src = SourceEmissions(asset, 1, mwh, 0.0, 0.0, "no combustion")
        summary.sources.append(src)
        intensity_t_per_mwh[asset] = src.tco2e / mwh if mwh else 0.0
    summary.scope2_location_tco2e = grid_import_mwh * factors.grid_location_kg_per_mwh / 1000.0
    summary.scope2_market_tco2e = grid_import_mwh * factors.grid_market_kg_per_mwh / 1000.0
    for tenant, by_source in sorted(tenant_source_mwh.items()):
        s1 = sum(mwh * intensity_t_per_mwh.get(src, 0.0) for src, mwh in by_source.items() if src != "grid")
        grid = by_source.get("grid", 0.0)
        energy = float(np.sum(list(by_source.values()))) if by_source else 0.0
        summary.tenants[tenant] = {
            "energy_mwh": energy,
            "scope1_tco2e": s1,
            "scope2_location_tco2e": grid * factors.grid_location_kg_per_mwh / 1000.0,
            "scope2_market_tco2e": grid * factors.grid_market_kg_per_mwh / 1000.0,
        }
    return summary
