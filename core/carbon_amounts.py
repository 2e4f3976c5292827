"""Emission amounts as exact decimals: kg per gas, and what an invoice line carries.

Gases are decimals to the milligram (:func:`gas_kg`, so that a GWP of 265 does not blow a
rounding up to a tenth of a kilogram); CO2e and energy are decimals to the gram / Wh
(:func:`kg`). CO2e is computed from the gases with a named GWP set (:meth:`GasKg.co2e`). ``co2e_reported`` holds figures that
were published only as CO2e (e.g. eGRID rates) and are never split into gases.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from kwhub.core.factors import GwpSet

KG = Decimal("0.001")
MG = Decimal("0.000001")
_ZERO = Decimal("0")


def kg(value: float) -> Decimal:
    """A float figure (kg CO2e, kWh) as an exact decimal to the gram (Wh)."""
    return Decimal(repr(float(value))).quantize(KG)


def gas_kg(value: float) -> Decimal:
    """A float kg of one gas as an exact decimal to the milligram."""
    return Decimal(repr(float(value))).quantize(MG)


class GasKg(BaseModel):
    """kg of each gas; ``co2e_reported`` holds figures published only as CO2e (never split)."""

    model_config = ConfigDict(extra="forbid")

    co2: Decimal = _ZERO
    ch4: Decimal = _ZERO
    n2o: Decimal = _ZERO
    co2e_reported: Decimal = _ZERO

    @classmethod
    def of(cls, values: object) -> GasKg:
        """From four floats in :data:`kwhub.core.factors.GASES` order (co2, ch4, n2o, co2e)."""
        co2, ch4, n2o, co2e = (float(v) for v in values)  # type: ignore[attr-defined]
        return cls(co2=gas_kg(co2), ch4=gas_kg(ch4), n2o=gas_kg(n2o), co2e_reported=gas_kg(co2e))

    def co2e(self, gwp: GwpSet) -> Decimal:
        """kg CO2e under ``gwp`` (to the gram)."""
        return (self.co2 + self.ch4 * Decimal(repr(gwp.ch4)) + self.n2o * Decimal(repr(gwp.n2o))
                + self.co2e_reported).quantize(KG)

    def __add__(self, other: GasKg) -> GasKg:
        return GasKg(co2=self.co2 + other.co2, ch4=self.ch4 + other.ch4, n2o=self.n2o + other.n2o,
                     co2e_reported=self.co2e_reported + other.co2e_reported)

    def __neg__(self) -> GasKg:
        return GasKg(co2=-self.co2, ch4=-self.ch4, n2o=-self.n2o, co2e_reported=-self.co2e_reported)

    def __sub__(self, other: GasKg) -> GasKg:
        return self + (-other)


class SourceKg(BaseModel):
    """The part of a line's emissions that came from one source."""

    model_config = ConfigDict(extra="forbid")

    source: str
    kwh: Decimal
    location_kg_co2e: Decimal
    market_kg_co2e: Decimal


class LineEmissions(BaseModel):
    """The emissions of the energy an invoice line bills (kg).

    ``location`` / ``market`` per gas and in CO2e under ``gwp_set``; the market figure is
    the supplier-specific one before certificates (the tenant's report applies its
    certificates hour by hour as a separate row, so line sums equal the report).
    ``unknown_kwh`` is energy of the line without a figure (no factor, no fuel data,
    unmetered supply). ``factors`` name every factor (``id@version``) behind the line.
    """

    model_config = ConfigDict(extra="forbid")

    gwp_set: str
    kwh: Decimal
    location: GasKg
    market: GasKg
    location_kg_co2e: Decimal
    market_kg_co2e: Decimal
    unknown_kwh: Decimal = _ZERO
    intervals: int = 0  # intervals with energy on this line
    by_source: list[SourceKg] = Field(default_factory=list)
    factors: list[str] = Field(default_factory=list)

    def scaled(self, sign: int) -> LineEmissions:
        """The same figures with the sign turned (credit notes, reversals)."""
        if sign == 1:
            return self
        return self.model_copy(update={"kwh": -self.kwh, "location": -self.location, "market": -self.market,
                                       "location_kg_co2e": -self.location_kg_co2e,
                                       "market_kg_co2e": -self.market_kg_co2e, "unknown_kwh": -self.unknown_kwh,
                                       "by_source": [x.model_copy(update={
                                           "kwh": -x.kwh, "location_kg_co2e": -x.location_kg_co2e,
                                           "market_kg_co2e": -x.market_kg_co2e}) for x in self.by_source]})

    def minus(self, other: LineEmissions) -> LineEmissions:
        """``self - other`` (the correction of a restated line)."""
        return self.model_copy(update={
            "kwh": self.kwh - other.kwh, "location": self.location - other.location,
            "market": self.market - other.market,
            "location_kg_co2e": self.location_kg_co2e - other.location_kg_co2e,
            "market_kg_co2e": self.market_kg_co2e - other.market_kg_co2e,
            "unknown_kwh": self.unknown_kwh - other.unknown_kwh,
            "by_source": _minus_sources(self.by_source, other.by_source),
            "factors": sorted(set(self.factors) | set(other.factors))})

    def note(self) -> str:
        """One line of text for document notes (UBL/CII line notes, PDF)."""
        text = (f"Emissions of this energy: {self.market_kg_co2e} kg CO2e market-based (supplier-specific, before "
                f"certificates), {self.location_kg_co2e} kg CO2e location-based; {self.gwp_set} GWPs")
        if self.unknown_kwh:
            text += f"; {self.unknown_kwh} kWh without a figure"
        return text


def _minus_sources(new: list[SourceKg], old: list[SourceKg]) -> list[SourceKg]:
    before = {x.source: x for x in old}
    after = {x.source: x for x in new}
    out = []
    for src in list(after) + [s for s in before if s not in after]:
        a, b = after.get(src), before.get(src)
        z = SourceKg(source=src, kwh=_ZERO, location_kg_co2e=_ZERO, market_kg_co2e=_ZERO)
        a, b = a or z, b or z
        out.append(SourceKg(source=src, kwh=a.kwh - b.kwh, location_kg_co2e=a.location_kg_co2e - b.location_kg_co2e,
                            market_kg_co2e=a.market_kg_co2e - b.market_kg_co2e))
    return out
