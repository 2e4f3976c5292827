"""The campus as configured: sites, assets, channels, parties, ownership and contracts.

These are pure pydantic models; ``kwhub.hub.config`` reads them from ``kwhub.toml``.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kwhub.core.interval_grid import ALLOWED_INTERVAL_MINUTES
from kwhub.core.invoice import Address, PaymentDetails
from kwhub.core.money import RoundingMode
from kwhub.core.tax_categories import default_category, tax_problems

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
    timezone: str = ""  # IANA zone; empty: the hub's
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
    meter_channel: int | None = Field(default=None, ge=0)  # the register/channel number on the meter `meter`

    @model_validator(mode="before")
    @classmethod
    def _meter_serial(cls, data: Any) -> Any:
        """``meter_serial`` is another name of ``meter`` (the meter's serial number)."""
        if isinstance(data, dict) and "meter_serial" in data:
            data = dict(data)
            serial = data.pop("meter_serial")
            if data.get("meter", serial) != serial:
                raise ValueError("give the meter serial once: `meter` and `meter_serial` are the same key")
            data["meter"] = serial
        return data

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
    """A company on the campus: tenant, owner, operator, IPP, utility.

    ``tax_id``/``tax_scheme``, ``endpoint_id``/``endpoint_scheme`` and ``payment`` are
    copied onto the documents (see :class:`kwhub.core.invoice.PartyRef`).
    """

    id: str
    name: str
    roles: list[Literal["tenant", "owner", "operator", "ipp", "utility", "iso"]] = Field(default_factory=list)
    tax_id: str = ""
    tax_scheme: str = "VAT"
    address: Address = Field(default_factory=Address)
    email: str = ""
    endpoint_id: str = ""
    endpoint_scheme: str = ""
    buyer_reference: str = ""
    payment: PaymentDetails | None = None
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


class AmendedComponent(BaseModel):
    """A component as an amendment changes it: ``id`` names a component of the terms in force
    (its ``id``, else its kind, see :func:`component_ids`); the other keys
    replace that component's settings. An id not in force adds a component (``kind`` required);
    a different ``kind`` replaces the component whole."""

    model_config = ConfigDict(extra="allow")

    id: str
    kind: str = ""

    def settings(self) -> dict[str, Any]:
        return {k: v for k, v in (self.model_extra or {}).items()}


class Amendment(_Strict):
    """A change of a contract's terms from the local day ``effective`` on (in the contract's zone).

    The contract's own terms are version 1; each amendment makes the next version, built on
    the one before (see :mod:`kwhub.core.contract_versions`).
    """

    effective: date
    id: str = ""  # a name for the version (default: v2, v3...)
    note: str = ""
    components: list[AmendedComponent] = Field(default_factory=list)
    remove_components: list[str] = Field(default_factory=list)
    tax_percent: Decimal | None = None
    tax_category: str | None = None
    tax_exemption_reason: str | None = None
    tax_exemption_code: str | None = None


class ReviewChecks(_Strict):
    """Thresholds of the plausibility checks a run passes before it is issued.

    Every field is optional so that a contract can override only what it needs; the
    hub-wide ``[review.checks]`` fills the rest (see :mod:`kwhub.core.review` for the defaults).
    """

    estimated_share_max_pct: Decimal | None = Field(default=None, ge=0, le=100)
    suspect_intervals_max: int | None = Field(default=None, ge=0)
    missing_intervals_max: int | None = Field(default=None, ge=0)
    movement_max_pct: Decimal | None = Field(default=None, ge=0)
    physical_limit_margin: Decimal | None = Field(default=None, ge=1)
    unit_factor_min: Decimal | None = Field(default=None, gt=1)
    unbilled_tolerance_kwh: Decimal | None = Field(default=None, ge=0)
    disabled: list[str] = Field(default_factory=list)


class ReviewPolicy(_Strict):
    """How runs of a contract are reviewed: ``auto`` approves a run whose checks all pass,
    ``manual`` leaves every run for a person."""

    policy: Literal["auto", "manual"] | None = None
    checks: ReviewChecks = Field(default_factory=ReviewChecks)


class Contract(_Strict):
    """An offtake contract (PPA, tariff, O&M agreement) between a seller and a buyer.

    Which energy it bills: a buyer that is a tenant of the campus allocation is billed
    from its allocated energy, split by source. ``sources`` selects which of it this
    contract sells (asset ids, asset kinds such as ``solar``, or ``grid`` / ``battery`` /
    ``generation``); empty means everything the buyer's other contracts do not sell.
    Each energy component prices a part of that (its own ``sources``, or what the other
    components leave), so every allocated kWh is billed once. Energy that is allocated
    to the buyer but billed by nobody must be declared in ``not_billed`` (source -> the
    reason), or the run is held for review. See ``docs/configuration.md``.

    ``amendments`` are later versions of the terms, each from its ``effective`` local day
    (see :mod:`kwhub.core.contract_versions`); the fields above are version 1.
    """

    id: str
    seller: str
    buyer: str
    kind: Literal["ppa", "tariff", "service", "tolling"] = "ppa"
    site: str = ""  # the site whose time zone the contract uses (default: the campus' only site)
    timezone: str = ""  # IANA zone; empty: the site's, else the hub's
    currency: str = "USD"
    rounding: RoundingMode = "half_up"
    precision: int | None = None
    payment_days: int = 30
    start: str = ""  # first billing period YYYY-MM, for escalators
    load_channels: list[str] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)  # which allocated energy this contract sells
    not_billed: dict[str, str] = Field(default_factory=dict)  # source -> why its energy is not billed here
    tax_percent: Decimal = Decimal("0")
    tax_category: str = ""  # empty: S with a rate, Z without (see kwhub.core.tax_categories)
    tax_exemption_reason: str = ""  # E, O, AE, K, G: why no tax is charged (EN 16931 BT-120)
    tax_exemption_code: str = ""  # or its VATEX code (BT-121)
    review: ReviewPolicy = Field(default_factory=ReviewPolicy)
    components: list[ComponentSpec] = Field(default_factory=list)
    amendments: list[Amendment] = Field(default_factory=list)  # later versions of the terms, by effective day

    @model_validator(mode="after")
    def _tax_terms(self) -> Contract:
        if not self.tax_category:
            self.tax_category = default_category(self.tax_percent)
        problems = tax_problems(self.tax_category, self.tax_percent, self.tax_exemption_reason, self.tax_exemption_code)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def tax_exemption(self) -> tuple[str, str]:
        """(reason, VATEX code) written with the lines' tax category."""
        return self.tax_exemption_reason, self.tax_exemption_code


class AllocationSpec(_Strict):
    """How shared sources are split among tenants (see :mod:`kwhub.core.allocation`).

    ``fixed_shares`` splits the output of ``share_sources`` (asset ids or kinds; default:
    every generation source) by ``shares``; what a tenant cannot take in an interval goes
    to the other tenants (``unused_share = "others"``, pro rata to what they still need)
    or to export and storage (``"export"``). Grid import and battery discharge then cover
    each tenant's remaining load.
    """

    method: Literal["pro_rata", "fixed_shares", "priority"] = "pro_rata"
    shares: dict[str, float] = Field(default_factory=dict)  # tenant -> share, for fixed_shares
    share_sources: list[str] = Field(default_factory=list)  # generators the shares apply to
    unused_share: Literal["others", "export"] = "others"
    priority: dict[str, list[str]] = Field(default_factory=dict)  # tenant -> ordered source kinds/assets
    loss_factor: float = 0.0
    tolerance_kwh: float = 0.5


class Campus(_Strict):
    """Everything that describes the physical and commercial campus.

    ``timezone`` is the hub's zone: a site without one uses it, and a contract without
    one uses its site's (``contract.site``, else the campus' only site), else this one.
    """

    timezone: str = "America/New_York"
    sites: list[Site] = Field(default_factory=list)
    assets: list[Asset] = Field(default_factory=list)
    channels: list[Channel] = Field(default_factory=list)
    parties: list[Party] = Field(default_factory=list)
    contracts: list[Contract] = Field(default_factory=list)
    allocation: AllocationSpec = Field(default_factory=AllocationSpec)

    @model_validator(mode="after")
    def _resolve_time_zones(self) -> Campus:
        sites = {}
        for i, site in enumerate(self.sites):
            if not site.timezone:
                self.sites[i] = site = site.model_copy(update={"timezone": self.timezone})
            sites[site.id] = site
        for i, c in enumerate(self.contracts):
            if c.timezone:
                continue
            home = sites.get(c.site) if c.site else (self.sites[0] if len(self.sites) == 1 else None)
            self.contracts[i] = c.model_copy(update={"timezone": home.timezone if home else self.timezone})
        return self

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


def component_ids(contract: Contract) -> list[str]:
    """Each component's id: its ``id``, else its kind (``<kind>-<n>`` when the kind repeats)."""
    kinds = [spec.kind for spec in contract.components]
    return [spec.id or (spec.kind if kinds.count(spec.kind) == 1 else f"{spec.kind}-{n}")
            for n, spec in enumerate(contract.components, start=1)]
