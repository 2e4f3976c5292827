"""The ``[markets]`` section of ``kwhub.toml``: resources offered into ISOs and how to
check their statements."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from kwhub.core.markets.models import MarketResource
from kwhub.core.markets.surplus import ReserveRule


class MarketsConfig(BaseModel):
    """Market participation of the campus.

    ``adapters`` maps an ISO to the adapter instance that talks to it; ``resources`` are
    the resources offered; ``tolerance`` is the absolute difference per statement line
    (USD) that still counts as equal in a variance report; ``reserve``, ``load_margin``
    and ``latitude`` (for the clear-sky solar forecast) feed the bid builder.
    """

    model_config = ConfigDict(extra="forbid")

    adapters: dict[str, str] = Field(default_factory=dict)
    resources: list[MarketResource] = Field(default_factory=list)
    tolerance: Decimal = Decimal("0.00")
    reserve: ReserveRule = ReserveRule()
    load_margin: float = 0.05
    latitude: float = 31.0
    battery_offer_price: Decimal = Decimal("0.00")
    gas_index: str = ""  # an [[indexes]] name for the gas price of the marginal cost; empty: gas_price
    gas_price: Decimal = Decimal("3.00")  # USD/MMBtu
    price_forecast: Decimal = Decimal("40.00")  # USD/MWh, when the store has no earlier DA prices
    export_limit_mw: float | None = None
    import_limit_mw: float = 0.0  # grid import the optimizer may plan to serve load (never to export)

    def resource(self, iso: str, name: str) -> MarketResource:
        for r in self.resources:
            if r.iso == iso and r.resource == name:
                return r
        raise KeyError(f"no [[markets.resources]] entry for {iso} resource {name!r}")

    def of_iso(self, iso: str) -> list[MarketResource]:
        return [r for r in self.resources if r.iso == iso]
