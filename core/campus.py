"""The campus as configured: sites, assets, channels, parties, ownership and contracts.

These are pure pydantic models; ``kwhub.hub.config`` reads them from ``kwhub.toml``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from kwhub.core.intervals import ALLOWED_INTERVAL_MINUTES
from kwhub.core.invoice import Address
from kwhub.core.money import RoundingMode

AssetKind = Literal[
    "gas_turbine", "recip_engine", "solar", "wind", "battery", "smr", "grid_tie", "load", "fuel_cell", "other",
]
ChannelRole = Literal[
    "generation",  # plant output delivered to the campus bus
    "tenant_load",  # a tenant's metered consumption
    "shared_load",  # shared infrastructure (cooling plant, substation, offices)
    "grid_import",
    "grid_export",
    "battery_charge",
    "battery_discharge",
    "fuel",  # fuel flow (MMBtu per interval)
    "availability",  # plant availability (fraction 0..1 per interval)
    "check",  # check meter for sum checks
    "other",
]
Unit = Literal["kWh", "Wh", "MWh", "kW", "MW", "MMBtu", "fraction"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Site(_Strict):
    """A campus or plant site."""

    id: str
    name: str = ""
    timezone: str = "America/New_York"
    iso: str = ""  # e.g. PJM, ERCOT, CAISO
    grid_region: str = ""  # eGRID subregion for location-based Scope 2


class Ownership(_Strict):
    """A party's share of an asset."""

    party: str
    share: Decimal = Field(gt=0, le=1)


class Asset(_Strict):
    """A plant or device: generator, solar, battery, grid tie, load."""

    id: str
    site: str = ""
    kind: AssetKind
    oem: str = ""
    model: str = ""
    capacity_kw: float = 0.0
    energy_kwh: float = 0.0  # storage capacity for batteries
    fuel: str = ""  # natural_gas, diesel, hydrogen, uranium
    heat_rate_mmbtu_per_mwh: float = 0.0
    owners: list[Ownership] = Field(default_factory=list)
    emission_factor_kg_per_mwh: float | None = None

    @field_validator("owners")
    @classmethod
    def _shares_sum_to_one(cls, owners: list[Ownership]) -> list[Ownership]:
        if owners and sum(o.share for o in owners) != Decimal(1):
            raise ValueError(f"ownership shares sum to {sum(o.share for o in owners)}, not 1")
        return owners


class Channel(_Strict):
    """A metered quantity: one meter register or telemetry point, in one direction."""

    id: str
    meter: str = ""
    asset: str = ""
    party: str = ""  # for tenant loads: the tenant
    role: ChannelRole = "other"
    unit: Unit = "kWh"
    interval_minutes: int = 15
    direction: Literal["delivered", "received"] = "delivered"
    multiplier: float = 1.0
    group: str = "default"  # VEE channel group
    max_kw: float | None = Field(default=None, gt=0)  # physical limit of the metered point (breaker, CT rating)

    @field_validator("interval_minutes")
    @classmethod
    def _allowed_length(cls, v: int) -> int:
        if v not in ALLOWED_INTERVAL_MINUTES:
            raise ValueError(f"must be one of {list(ALLOWED_INTERVAL_MINUTES)}")
        return v


class DeliveryRoute(_Strict):
    """One format sent through one transport instance."""

    format: str
    transport: str


class DeliveryPrefs(_Strict):
    """Which formats a party receives, and through which transport instances.

    ``formats`` x ``transports`` are all combined; ``routes`` pairs them explicitly
    (e.g. UBL to the SFTP drop, JSON to the webhook) and, when given, is used instead.
    """

    formats: list[str] = Field(default_factory=lambda: ["json"])
    transports: list[str] = Field(default_factory=list)
    routes: list[DeliveryRoute] = Field(default_factory=list)

    def pairs(self) -> list[tuple[str, str]]:
        """(format, transport) pairs this party receives."""
        if self.routes:
            return list(dict.fromkeys((r.format, r.transport) for r in self.routes))
        return [(f, t) for f in dict.fromkeys(self.formats) for t in dict.fromkeys(self.transports)]


class Party(_Strict):
    """A company on the campus: tenant, owner, operator, IPP, utility."""

    id: str
    name: str
    roles: list[Literal["tenant", "owner", "operator", "ipp", "utility", "iso"]] = Field(default_factory=list)
    tax_id: str = ""
    address: Address = Field(default_factory=Address)
    email: str = ""
    endpoint_id: str = ""
    buyer_reference: str = ""
    delivery: DeliveryPrefs = Field(default_factory=DeliveryPrefs)


class ComponentSpec(BaseModel):
    """One price component of a contract: ``kind`` plus that component's own settings.

    The settings are validated against the registered component class's ``Config``.
    """

    model_config = ConfigDict(extra="allow")

    kind: str
    id: str = ""

    def settings(self) -> dict[str, Any]:
        return {k: v for k, v in (self.model_extra or {}).items()}


class Contract(_Strict):
    """An offtake contract (PPA, tariff, O&M agreement) between a seller and a buyer."""

    id: str
    seller: str
    buyer: str
    kind: Literal["ppa", "tariff", "service", "tolling"] = "ppa"
    timezone: str = "America/New_York"
    currency: str = "USD"
    rounding: RoundingMode = "half_up"
    precision: int | None = None
    payment_days: int = 30
    start: str = ""  # first billing period YYYY-MM, for escalators
    load_channels: list[str] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)  # asset ids this contract sells from
    tax_percent: Decimal = Decimal("0")
    tax_category: str = "S"
    components: list[ComponentSpec] = Field(default_factory=list)


class AllocationSpec(_Strict):
    """How shared sources are split among tenants."""

    method: Literal["pro_rata", "fixed_shares", "priority"] = "pro_rata"
    shares: dict[str, float] = Field(default_factory=dict)  # tenant -> share, for fixed_shares
    priority: dict[str, list[str]] = Field(default_factory=dict)  # tenant -> ordered source kinds/assets
    loss_factor: float = 0.0
    tolerance_kwh: float = 0.5


class Campus(_Strict):
    """Everything that describes the physical and commercial campus."""

    sites: list[Site] = Field(default_factory=list)
    assets: list[Asset] = Field(default_factory=list)
    channels: list[Channel] = Field(default_factory=list)
    parties: list[Party] = Field(default_factory=list)
    contracts: list[Contract] = Field(default_factory=list)
    allocation: AllocationSpec = Field(default_factory=AllocationSpec)

    def channel(self, channel_id: str) -> Channel:
        for c in self.channels:
            if c.id == channel_id:
                return c
        raise KeyError(channel_id)

    def party(self, party_id: str) -> Party:
        for p in self.parties:
            if p.id == party_id:
                return p
        raise KeyError(party_id)

    def asset(self, asset_id: str) -> Asset:
        for a in self.assets:
            if a.id == asset_id:
                return a
        raise KeyError(asset_id)
