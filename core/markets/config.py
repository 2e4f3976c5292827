"""The ``[markets]`` section of ``kwhub.toml``: resources offered into ISOs and how to
check their statements."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kwhub.core.markets.models import MarketResource
from kwhub.core.timeline import require_aware


class Outage(BaseModel):
    """A unit out of service or derated to ``available_mw`` over [``start``, ``end``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    unit: str
    start: datetime
    end: datetime
    available_mw: float = Field(ge=0)

    @field_validator("start", "end")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        return require_aware(v, "outage")

    @model_validator(mode="after")
    def _order(self) -> Outage:
        if self.end <= self.start:
            raise ValueError(f"outage of {self.unit}: end {self.end.isoformat()} is not after start "
                             f"{self.start.isoformat()}")
        return self


class ReserveRule(BaseModel):
    """The reserve margin held back from the market.

    ``fixed``: ``mw``; ``largest_unit``: the largest available unit in each interval
    (the N-1 contingency); ``load_error``: the ``quantile`` of the load forecast error
    samples given with the forecast. ``mw`` is added to the latter two as a floor.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["fixed", "largest_unit", "load_error"] = "largest_unit"
    mw: float = 0.0
    quantile: float = Field(default=0.95, gt=0, lt=1)



def _hhmm(value: str) -> str:
    hh, _, mm = value.partition(":")
    if not (len(hh) == 2 and len(mm) == 2 and hh.isdigit() and mm.isdigit() and int(hh) < 24 and int(mm) < 60):
        raise ValueError(f"{value!r} must be HH:MM (24-hour local time of the ISO)")
    return value


class MarketSchedule(BaseModel):
    """When the scheduler's market jobs run (``[markets.schedule]``).

    ``da_gate`` is the day-ahead gate closure per ISO, local time of the ISO on the day before
    the operating day (ERCOT and CAISO about 10:00, PJM about 10:30: MARKETS.md marks these
    unverified, so set them from the ISO's current market rules). Bids for the next operating
    day are built and submitted from ``bid_lead_minutes`` before the gate; a gate that
    passes without a submission is an alert. Awards, prices and statements of the last
    ``fetch_days`` days are fetched every ``fetch_every_s``; each new statement is
    shadow-settled on arrival.

    ``rt_offers`` turns on real-time offers (adapters with the ``rt_bids`` capability): every
    ``rt_every_s`` the hours from the first whole hour at least ``rt_gate_minutes`` ahead
    (CAISO T-75 per MARKETS.md; the ERCOT and PJM defaults are placeholders to set from the
    ISO's rules) to the end of that operating day are offered once per hour.
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    da_gate: dict[str, str] = Field(default_factory=lambda: {"ERCOT": "10:00", "CAISO": "10:00", "PJM": "10:30"})
    bid_lead_minutes: int = Field(default=90, ge=5, le=24 * 60)
    bid_every_s: float = Field(default=300.0, gt=0)
    fetch_every_s: float = Field(default=900.0, gt=0)
    fetch_days: int = Field(default=3, ge=1, le=60)
    rt_offers: bool = False
    rt_gate_minutes: dict[str, int] = Field(default_factory=lambda: {"ERCOT": 60, "CAISO": 75, "PJM": 65})
    rt_every_s: float = Field(default=900.0, gt=0)

    @field_validator("da_gate")
    @classmethod
    def _gates(cls, v: dict[str, str]) -> dict[str, str]:
        return {iso: _hhmm(t) for iso, t in v.items()}


class MarketsConfig(BaseModel):
    """Market participation of the campus.

    ``adapters`` maps an ISO to the adapter instance that talks to it; ``resources`` are
    the resources offered; ``tolerance`` is the absolute difference per statement line
    (USD) that still counts as equal in a variance report; ``reserve``, ``load_margin``
    and ``latitude`` (for the clear-sky solar forecast) feed the bid builder.
    ``solar_forecast_file`` (a CSV of ``interval_start, asset, mw`` per solar asset, relative
    to the configuration's directory) replaces the clear-sky shape when set;
    ``outages`` and ``outage_file`` (CSV of ``unit, start, end, available_mw``) derate units
    (gas and solar assets) over a time range; both are used together.
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
    solar_forecast_file: str = ""
    outages: list[Outage] = Field(default_factory=list)
    outage_file: str = ""
    schedule: MarketSchedule = Field(default_factory=MarketSchedule)

    def resource(self, iso: str, name: str) -> MarketResource:
        for r in self.resources:
            if r.iso == iso and r.resource == name:
                return r
        raise KeyError(f"no [[markets.resources]] entry for {iso} resource {name!r}")

    def of_iso(self, iso: str) -> list[MarketResource]:
        return [r for r in self.resources if r.iso == iso]
