"""The tables of ``kwhub.toml`` as pydantic models, and a validated adapter instance.

:mod:`kwhub.hub.config` loads the file into these (and re-exports them); the checks
between sections and against the plugins are in :mod:`kwhub.hub.config_checks`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kwhub.core.adapters import Adapter, AdapterConfig, AdapterContext
from kwhub.core.campus import (
    AllocationSpec,
    Asset,
    Channel,
    Contract,
    Party,
    ReviewChecks,
    Site,
)
from kwhub.core.carbon_settings import EmissionsSettings
from kwhub.core.input_limits import InputLimits
from kwhub.core.markets.config import MarketsConfig
from kwhub.core.ownership import OwnershipConfig
from kwhub.hub.api.settings import ApiSettings, ServiceSettings
from kwhub.hub.scheduler.settings import SchedulerSettings


class ConfigError(ValueError):
    """A configuration problem; the message lists every bad key path."""

    exit_code = 2

    def __init__(self, source: str, problems: list[str], hint: str = "") -> None:
        self.source = source
        self.problems = problems
        self.hint = hint or f"fix {source} and run the command again (`kwhub init` writes a commented example)"
        super().__init__(f"{source}: invalid configuration\n" + "\n".join(f"  - {p}" for p in problems))


class HubSettings(BaseModel):
    """The ``[hub]`` table."""

    model_config = ConfigDict(extra="forbid")

    name: str = "kwhub"
    timezone: str = "America/New_York"
    database: str = ""  # SQLAlchemy URL; empty = SQLite file kwhub.db beside the config
    currency: str = "USD"
    output_dir: str = "out"


class AdapterInstanceSpec(BaseModel):
    """One ``[[adapters]]`` entry: an instance of a registered adapter type."""

    model_config = ConfigDict(extra="forbid")

    type: str
    id: str
    enabled: bool = True
    config: dict[str, Any] = Field(default_factory=dict)


class IndexSource(BaseModel):
    """A price index series (e.g. a daily gas index) loaded from a CSV file."""

    model_config = ConfigDict(extra="forbid")

    name: str
    path: str


class SettlementSettings(BaseModel):
    """The ``[settlement]`` table: how runs read data and price the grid."""

    model_config = ConfigDict(extra="forbid")

    layer: Literal["validated", "raw"] = "validated"
    fallback_raw: bool = False
    missing: Literal["error", "zero"] = "error"
    shared: Literal["pro_rata", "fixed_shares", "none"] = "pro_rata"
    grid_price_per_mwh: Decimal | None = None


class ReviewSettings(BaseModel):
    """The ``[review]`` table: the review gate every settlement run passes (see kwhub.core.review).

    ``policy = "auto"`` approves and issues a run whose checks all pass; ``"manual"``
    leaves every run for a person (`kwhub runs approve`). A contract's own ``review``
    overrides both the policy and single thresholds.
    """

    model_config = ConfigDict(extra="forbid")

    policy: Literal["auto", "manual"] = "auto"
    checks: ReviewChecks = Field(default_factory=ReviewChecks)


class ConfigFile(BaseModel):
    """The whole file, as written."""

    model_config = ConfigDict(extra="forbid")

    hub: HubSettings = Field(default_factory=HubSettings)
    sites: list[Site] = Field(default_factory=list)
    assets: list[Asset] = Field(default_factory=list)
    channels: list[Channel] = Field(default_factory=list)
    parties: list[Party] = Field(default_factory=list)
    contracts: list[Contract] = Field(default_factory=list)
    allocation: AllocationSpec = Field(default_factory=AllocationSpec)
    adapters: list[AdapterInstanceSpec] = Field(default_factory=list)
    indexes: list[IndexSource] = Field(default_factory=list)
    vee: dict[str, Any] = Field(default_factory=dict)
    settlement: SettlementSettings = Field(default_factory=SettlementSettings)
    review: ReviewSettings = Field(default_factory=ReviewSettings)
    ownership: OwnershipConfig = Field(default_factory=OwnershipConfig)
    emissions: EmissionsSettings = Field(default_factory=EmissionsSettings)
    markets: MarketsConfig = Field(default_factory=MarketsConfig)
    ingest: InputLimits = Field(default_factory=InputLimits)
    service: ServiceSettings = Field(default_factory=ServiceSettings)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)


@dataclass
class AdapterInstance:
    """A validated adapter instance, ready to be built.

    Its ``"env:NAME"`` secrets are resolved when :attr:`config` is first read (building the
    adapter reads it), not when kwhub.toml is loaded: a command that never uses the instance
    does not need them. An unset variable is then a :class:`ConfigError` naming the key.
    """

    id: str
    type: str
    cls: type[Adapter]
    validated: AdapterConfig
    enabled: bool = True
    where: str = ""
    source: str = ""
    _resolved: AdapterConfig | None = field(default=None, repr=False)

    @property
    def config(self) -> AdapterConfig:
        """The instance's config with its secrets resolved from the environment."""
        if self._resolved is None:
            from kwhub.core.adapters import has_secret_references

            if not has_secret_references(self.validated):
                self._resolved = self.validated
            else:
                data = self.validated.model_dump(exclude_unset=True)
                adapter_cls: Any = self.cls
                try:
                    self._resolved = adapter_cls.Config.model_validate(data)
                except ValidationError as exc:
                    where = self.where or f'adapters (id="{self.id}")'
                    problems = [f"{where}.config.{'.'.join(str(x) for x in e['loc'])}: "
                                f"{e['msg'].removeprefix('Value error, ')}" if e["loc"]
                                else f"{where}.config.{e['msg'].removeprefix('Value error, ')}"  # "secret: ..."
                                for e in exc.errors()]
                    raise ConfigError(self.source or "kwhub.toml", problems,
                                      hint="set the environment variable, or change the reference in "
                                           "kwhub.toml") from None
        return self._resolved

    def build(self, context: AdapterContext | None = None) -> Adapter:
        return self.cls(self.id, self.config, context)
