"""The format-neutral GHG inventory that every disclosure writer reads.

A :class:`Disclosure` is to ESG writers what :class:`kwhub.core.invoice.Invoice` is to ERP
renderers: one typed document, built by :mod:`kwhub.core.inventory` from the periods' frozen
allocation and activity, with the lineage of every figure (runs, statement hashes,
activity ids, factors, editions, GWP set). Per party it holds rows by scope, category,
gas and asset; kg per gas are exact decimals (to the gram) and CO2e is computed with the
disclosure's GWP set.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from kwhub.core.carbon_amounts import GasKg

DISCLOSURE_SCHEMA = "kwhub.esg.disclosure/1"
_ZERO = Decimal("0")


Scope = Literal["1", "2", "3"]


class InventoryRow(BaseModel):
    """One figure: a party's emissions of one scope/category from one asset (or an adjustment).

    ``category``: empty for Scope 1; ``location`` / ``market`` for Scope 2; ``3a`` ... ``3d``
    for Scope 3 category 3. ``unknown_kwh`` is energy of this row that has no figure (no
    factor, no fuel data, unmetered supply); it is never counted as zero emissions silently.
    """

    model_config = ConfigDict(extra="forbid")

    scope: Scope
    category: str = ""
    asset: str
    energy_kwh: Decimal = _ZERO
    fuel_mmbtu: Decimal = _ZERO
    kg: GasKg
    kg_co2e: Decimal
    method: str
    factors: list[str] = Field(default_factory=list)
    unknown_kwh: Decimal = _ZERO


class CfeSummary(BaseModel):
    """A tenant's hourly matching over the disclosure period (kWh; the score in percent)."""

    model_config = ConfigDict(extra="forbid")

    hours: int
    load_kwh: Decimal
    onsite_cfe_kwh: Decimal
    certificates_kwh: Decimal
    matched_kwh: Decimal
    surplus_kwh: Decimal
    score_pct: Decimal


class HourlyTable(BaseModel):
    """A tenant's hourly matching, one column per figure (decimal strings; kWh and kg to 3 places).

    Columns: ``hour_start`` (UTC), ``load_kwh``, ``onsite_cfe_kwh``, ``certificates_kwh``,
    ``grid_cfe_share``, ``score_kwh`` (the hour's CFE-score energy), ``market_kg_co2e_before``
    (market-based, before certificates) and ``market_kg_co2e`` (after hourly matching).
    """

    model_config = ConfigDict(extra="forbid")

    hour_start: list[str] = Field(default_factory=list)
    load_kwh: list[str] = Field(default_factory=list)
    onsite_cfe_kwh: list[str] = Field(default_factory=list)
    certificates_kwh: list[str] = Field(default_factory=list)
    grid_cfe_share: list[str] = Field(default_factory=list)
    score_kwh: list[str] = Field(default_factory=list)
    market_kg_co2e_before: list[str] = Field(default_factory=list)
    market_kg_co2e: list[str] = Field(default_factory=list)

    def rows(self) -> list[tuple[str, ...]]:
        """The table as rows, in column order."""
        return list(zip(self.hour_start, self.load_kwh, self.onsite_cfe_kwh, self.certificates_kwh,
                        self.grid_cfe_share, self.score_kwh, self.market_kg_co2e_before, self.market_kg_co2e,
                        strict=True))


class PartyInventory(BaseModel):
    """The inventory of one reporting party (a tenant, an owner, the operator)."""

    model_config = ConfigDict(extra="forbid")

    party: str
    name: str = ""
    roles: list[str] = Field(default_factory=list)
    rows: list[InventoryRow] = Field(default_factory=list)
    cfe: CfeSummary | None = None
    hourly: HourlyTable | None = None

    def kg_co2e(self, scope: Scope, category: str | None = None) -> Decimal:
        """kg CO2e of ``scope`` (and ``category``; Scope 2 needs one: location or market)."""
        if scope == "2" and category is None:
            raise ValueError("Scope 2 exists twice: ask for category 'location' or 'market'")
        return sum((r.kg_co2e for r in self.rows if r.scope == scope and (category is None or r.category == category)),
                   _ZERO)

    def gases(self, scope: Scope, category: str | None = None) -> GasKg:
        out = GasKg()
        for r in self.rows:
            if r.scope == scope and (category is None or r.category == category):
                out = out + r.kg
        return out

    def unknown_kwh(self, scope: Scope, category: str | None = None) -> Decimal:
        return sum((r.unknown_kwh for r in self.rows if r.scope == scope and (category is None or r.category == category)),
                   _ZERO)


class RunLineage(BaseModel):
    """A settlement run whose frozen split a disclosure used."""

    model_config = ConfigDict(extra="forbid")

    run_id: str
    tenant: str
    statement_hash: str
    activity_id: str
    factors_id: str


class Disclosure(BaseModel):
    """A GHG inventory of a period (a month or a year) with its lineage."""

    model_config = ConfigDict(extra="forbid")

    schema_id: str = DISCLOSURE_SCHEMA
    campus: str
    period: str
    start: date
    end: date  # inclusive
    gwp_set: str
    region: str
    consolidation: str
    parties: list[PartyInventory] = Field(default_factory=list)
    runs: list[RunLineage] = Field(default_factory=list)
    factors: list[dict[str, str]] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)

    def party(self, party_id: str) -> PartyInventory:
        for p in self.parties:
            if p.party == party_id:
                return p
        raise KeyError(f"{party_id!r} has no inventory in this disclosure "
                       f"(parties: {', '.join(p.party for p in self.parties)})")

    def summary(self) -> list[dict[str, str]]:
        """Per party: t CO2e of Scope 1, Scope 2 LBM and MBM, Scope 3 category 3, the MWh behind its Scope 2, CFE %."""
        t = Decimal("0.000001")
        out = []
        for inv in self.parties:
            energy = sum((r.energy_kwh for r in inv.rows if r.scope == "2" and r.category == "location"), _ZERO)
            out.append({
                "party": inv.party, "period": self.period, "gwp_set": self.gwp_set,
                "energy_mwh": str((energy / 1000).quantize(t)),
                "scope1_tco2e": str((inv.kg_co2e("1") / 1000).quantize(t)),
                "scope2_location_tco2e": str((inv.kg_co2e("2", "location") / 1000).quantize(t)),
                "scope2_market_tco2e": str((inv.kg_co2e("2", "market") / 1000).quantize(t)),
                "scope3_cat3_tco2e": str((inv.kg_co2e("3") / 1000).quantize(t)),
                "cfe_pct": str(inv.cfe.score_pct) if inv.cfe is not None else "",
            })
        return out

    def only(self, party_id: str) -> Disclosure:
        """The same disclosure restricted to one party."""
        return self.model_copy(update={"parties": [self.party(party_id)],
                                       "runs": [r for r in self.runs if r.tenant == party_id] or self.runs})
