"""``kwhub.toml``: one file describing the campus and the adapter instances.

Loading validates in two passes: the file's own shape (sites, assets, channels, parties,
contracts, adapters), then each adapter instance's and price component's settings against
the ``Config`` of the class a plugin registered for it. Every error names its key path,
e.g. ``adapters[1] (id="halls").config.delimiter: extra inputs are not permitted``. The
value given is shown only when it is short and never for a secret (a ``SecretStr`` field
or a key named like one). Valid but risky settings (``host_key_checking = false``, ...)
are collected in :attr:`KwhubConfig.warnings`.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from kwhub.core.adapters import Adapter, AdapterConfig, AdapterContext, deferred_secrets
from kwhub.core.campus import (
    AllocationSpec,
    Asset,
    Campus,
    Channel,
    Contract,
    Party,
    ReviewChecks,
    Site,
)
from kwhub.core.carbon_settings import EmissionsSettings
from kwhub.core.contract_versions import amendment_problems, contract_versions
from kwhub.core.input_limits import InputLimits
from kwhub.core.markets.config import MarketsConfig
from kwhub.core.ownership import OwnershipConfig
from kwhub.core.timeline import TimeModelError, zone
from kwhub.hub.api.settings import ApiSettings, ServiceSettings
from kwhub.hub.scheduler.settings import SchedulerSettings

CONFIG_NAME = "kwhub.toml"
DEFAULT_DB_NAME = "kwhub.db"


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


@dataclass
class KwhubConfig:
    """A loaded, validated configuration."""

    source: str
    work_dir: Path
    file: ConfigFile
    campus: Campus
    adapters: dict[str, AdapterInstance] = field(default_factory=dict)
    embedded_default: bool = False
    warnings: list[str] = field(default_factory=list)  # valid but risky settings, by key path

    @property
    def hub(self) -> HubSettings:
        return self.file.hub

    @property
    def database_url(self) -> str:
        url = self.file.hub.database
        if not url:
            return f"sqlite:///{(self.work_dir / DEFAULT_DB_NAME).as_posix()}"
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            rel = url[len("sqlite:///"):]
            if rel and rel != ":memory:":
                return f"sqlite:///{(self.work_dir / rel).as_posix()}"
        return url

    @property
    def output_dir(self) -> Path:
        return self.work_dir / self.file.hub.output_dir

    @property
    def vee(self) -> dict[str, Any]:
        return self.file.vee

    @property
    def limits(self) -> InputLimits:
        """The ``[ingest]`` limits of meter input."""
        return self.file.ingest

    def index_paths(self) -> dict[str, Path]:
        return {i.name: (self.work_dir / i.path) for i in self.file.indexes}

    def settlement_options(self) -> Any:
        """:class:`kwhub.core.settlement.SettlementOptions` from ``[settlement]`` and ``[[indexes]]``."""
        from kwhub.core.pricing.index_series import load_index_csv
        from kwhub.core.settlement import SettlementOptions

        s = self.file.settlement
        indexes = {name: load_index_csv(path, name=name) for name, path in self.index_paths().items()}
        r = self.file.review
        return SettlementOptions(layer=s.layer, fallback_raw=s.fallback_raw, missing=s.missing,
                                 shared=s.shared, grid_price_per_mwh=s.grid_price_per_mwh,  # type: ignore[arg-type]
                                 index_series=indexes, review_policy=r.policy, review_checks=r.checks,
                                 carbon=self.carbon_setup(), market_revenue_loader=self._market_revenue_loader())

    def _market_revenue_loader(self) -> Any:
        """How settlement loads a period's ISO market revenue (None without ``[[markets.resources]]``)."""
        if not self.file.markets.resources:
            return None
        from kwhub.hub.markets.credit import market_revenue_loader

        return market_revenue_loader(self)

    @property
    def emissions(self) -> EmissionsSettings:
        return self.file.emissions

    def grid_region(self) -> str:
        """``[emissions] region``, else the grid region of the campus' sites (one region, or "")."""
        if self.file.emissions.region:
            return self.file.emissions.region
        regions = sorted({s.grid_region for s in self.campus.sites if s.grid_region})
        if len(regions) > 1:
            raise ConfigError(self.source, [f"emissions.region: the sites lie in {len(regions)} grid regions "
                                            f"({', '.join(regions)}); set the region emissions use"])
        return regions[0] if regions else ""

    def factor_library(self) -> Any:
        """:class:`kwhub.core.factors.FactorLibrary` of the shipped factors, ``[[emissions.factors]]`` and the
        hourly files of ``[[emissions.hourly]]`` (paths relative to this file)."""
        from kwhub.core.factors import FactorError, FactorLibrary, read_hourly_signal

        e = self.file.emissions
        try:
            signals = [read_hourly_signal(self.work_dir / h.path, signal_id=h.id, version=h.version, source=h.source,
                                          region=h.region, activity=h.activity, gas=h.gas, unit=h.unit, kind=h.kind,
                                          step_minutes=h.step_minutes) for h in e.hourly]
            return FactorLibrary(e.factors, signals, e.editions)
        except FactorError as exc:
            raise ConfigError(self.source, [f"emissions: {exc}"]) from None

    def carbon_setup(self) -> Any:
        """:class:`kwhub.core.carbon_factors.CarbonSetup` for settlement and reports."""
        from kwhub.core.carbon_factors import CarbonSetup

        return CarbonSetup(self.file.emissions, self.factor_library(), self.grid_region())

    def resolve_secrets(self) -> None:
        """Resolve the ``env:`` secrets of every enabled adapter instance now (a service that
        will use them all checks them at start); a ConfigError lists every unset one."""
        problems: list[str] = []
        for inst in self.adapters.values():
            if inst.enabled:
                try:
                    inst.config  # noqa: B018 - resolving is the point
                except ConfigError as exc:
                    problems += exc.problems
        if problems:
            raise ConfigError(self.source, problems, hint="set the environment variables, or change the "
                                                          "references in kwhub.toml")

    def context(self) -> AdapterContext:
        return AdapterContext(
            work_dir=self.work_dir,
            channels={c.id: c for c in self.campus.channels},
            timezone=self.file.hub.timezone,
            limits=self.file.ingest,
        )

    def adapter(self, instance_id: str) -> Adapter:
        try:
            inst = self.adapters[instance_id]
        except KeyError:
            known = ", ".join(sorted(self.adapters)) or "none"
            raise ConfigError(self.source, [f"no adapter instance with id {instance_id!r} (configured: {known})"]) from None
        return inst.build(self.context())

    def instances_of(self, type_id: str) -> list[AdapterInstance]:
        return [a for a in self.adapters.values() if a.type == type_id and a.enabled]


def _loc_to_path(loc: Iterable[Any], data: Any) -> str:
    """Render a pydantic error location as ``channels[3] (id="x").unit``."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int):
            label = f"[{item}]"
            try:
                node = node[item]
                ident = node.get("id") if isinstance(node, dict) else None
            except (IndexError, KeyError, TypeError):
                node, ident = None, None
            if ident:
                label += f' (id="{ident}")'
            parts.append(label)
        else:
            if parts:
                parts.append(".")
            parts.append(str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return "".join(parts) or "(top level)"


SECRET_WORDS = ("secret", "password", "passphrase", "token", "api_key", "apikey", "credential", "private_key")


def secret_fields(model: Any) -> set[str]:
    """Names of ``model``'s fields that hold secrets (typed ``SecretStr``)."""
    out = set()
    for name, info in getattr(model, "model_fields", {}).items():
        annotation = info.annotation
        if annotation is SecretStr or SecretStr in getattr(annotation, "__args__", ()):
            out.add(name)
    return out


def _is_secret_key(loc: Iterable[Any], secrets: set[str]) -> bool:
    for item in loc:
        if isinstance(item, str) and (item in secrets or any(w in item.lower() for w in SECRET_WORDS)):
            return True
    return False


def format_validation_error(exc: ValidationError, data: Any, prefix: str = "", secrets: set[str] | None = None) -> list[str]:
    """One line per pydantic error: key path, what is wrong, and the bad value if short.

    The value is never shown for a key in ``secrets`` or named like a secret (``secret``,
    ``password``, ``token``...), whatever its type.
    """
    out = []
    for err in exc.errors():
        loc = [x for x in err["loc"] if not (isinstance(x, str) and x.startswith("function-"))]
        path = _loc_to_path(loc, data)
        if prefix:
            path = f"{prefix}.{path}" if path != "(top level)" else prefix
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (not allowed here)"
        elif err["type"] == "missing":
            msg = "required key is missing"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        value = err.get("input")
        shown = ""
        if _is_secret_key(loc, secrets or set()):
            shown = " (value not shown: it is a secret)" if err["type"] != "missing" else ""
        elif err["type"] not in ("missing",) and isinstance(value, (str, int, float, bool)) and len(repr(value)) < 60:
            shown = f" (got {value!r})"
        out.append(f"{path}: {msg}{shown}")
    return out


def _cross_check(cf: ConfigFile) -> list[str]:
    """References between sections: every id named must exist, ids must be unique."""
    problems: list[str] = []

    def unique(items: list[Any], section: str) -> set[str]:
        seen: set[str] = set()
        for i, item in enumerate(items):
            if item.id in seen:
                problems.append(f'{section}[{i}] (id="{item.id}").id: duplicate id')
            seen.add(item.id)
        return seen

    sites = unique(cf.sites, "sites")
    assets = unique(cf.assets, "assets")
    channels = unique(cf.channels, "channels")
    parties = unique(cf.parties, "parties")
    unique(cf.contracts, "contracts")
    unique(cf.adapters, "adapters")  # type: ignore[arg-type]
    for s_i, site in enumerate(cf.sites):
        if not site.timezone:
            continue  # the hub's
        try:
            zone(site.timezone)
        except TimeModelError as exc:
            problems.append(f'sites[{s_i}] (id="{site.id}").timezone: {exc}')
    for a_i, a in enumerate(cf.assets):
        if a.site and a.site not in sites:
            problems.append(f'assets[{a_i}] (id="{a.id}").site: unknown site {a.site!r}')
        for o_i, own in enumerate(a.owners):
            if own.party not in parties:
                problems.append(f'assets[{a_i}] (id="{a.id}").owners[{o_i}].party: unknown party {own.party!r}')
    for c_i, ch in enumerate(cf.channels):
        if ch.asset and ch.asset not in assets:
            problems.append(f'channels[{c_i}] (id="{ch.id}").asset: unknown asset {ch.asset!r}')
        if ch.party and ch.party not in parties:
            problems.append(f'channels[{c_i}] (id="{ch.id}").party: unknown party {ch.party!r}')
    for k_i, k in enumerate(cf.contracts):
        where = f'contracts[{k_i}] (id="{k.id}")'
        for role in ("seller", "buyer"):
            if getattr(k, role) not in parties:
                problems.append(f"{where}.{role}: unknown party {getattr(k, role)!r}")
        for ch in k.load_channels:
            if ch not in channels:
                problems.append(f"{where}.load_channels: unknown channel {ch!r}")
        if k.site and k.site not in sites:
            problems.append(f"{where}.site: unknown site {k.site!r}")
        problems += [f"{where}.{p}" for p in amendment_problems(k)]
        if k.timezone:
            try:
                zone(k.timezone)
            except TimeModelError as exc:
                problems.append(f"{where}.timezone: {exc}")
        try:
            from kwhub.core.review import effective_checks

            effective_checks(cf.review.checks, k.review.checks)
        except ValueError as exc:
            problems.append(f"{where}.review.checks.disabled: {exc}")
    try:
        zone(cf.hub.timezone)
    except TimeModelError as exc:
        problems.append(f"hub.timezone: {exc}")
    try:
        from kwhub.core.review import effective_checks

        effective_checks(cf.review.checks)
    except ValueError as exc:
        problems.append(f"review.checks.disabled: {exc}")
    problems += _check_markets(cf, assets, channels)
    from kwhub.hub.scheduler.config_check import service_problems

    problems += service_problems(cf)
    for p_i, p in enumerate(cf.parties):
        for t in [*p.delivery.transports, *(r.transport for r in p.delivery.routes)]:
            if t not in {a.id for a in cf.adapters}:
                problems.append(f'parties[{p_i}] (id="{p.id}").delivery.transports: unknown adapter instance {t!r}')
    return problems


def _check_markets(cf: ConfigFile, assets: set[str], channels: set[str]) -> list[str]:
    """``[markets]``: resources name known channels, owned assets and a configured ISO adapter."""
    problems: list[str] = []
    adapter_ids = {a.id for a in cf.adapters}
    for iso, inst in cf.markets.adapters.items():
        if inst not in adapter_ids:
            problems.append(f"markets.adapters.{iso}: unknown adapter instance {inst!r}")
    owned = {a.id for a in cf.assets if a.owners}
    seen: set[tuple[str, str]] = set()
    for r_i, r in enumerate(cf.markets.resources):
        where = f'markets.resources[{r_i}] (resource="{r.resource}")'
        if (r.iso, r.resource) in seen:
            problems.append(f"{where}: duplicate resource")
        seen.add((r.iso, r.resource))
        if r.iso not in cf.markets.adapters:
            problems.append(f"{where}.iso: no adapter instance for {r.iso} in markets.adapters")
        for ch in [*r.meter, *r.meter_negative]:
            if ch not in channels:
                problems.append(f"{where}.meter: unknown channel {ch!r}")
        if not r.meter:
            problems.append(f"{where}.meter: name the channel(s) of the ISO settlement meter")
        if r.asset and r.asset not in assets:
            problems.append(f"{where}.asset: unknown asset {r.asset!r}")
        elif r.asset and r.asset not in owned:
            problems.append(f"{where}.asset: asset {r.asset!r} has no owners to receive its market revenue")
    return problems


def _validate_plugins(cf: ConfigFile, data: dict[str, Any], registry: Any,
                      warnings: list[str]) -> tuple[dict[str, AdapterInstance], list[str]]:
    problems: list[str] = []
    instances: dict[str, AdapterInstance] = {}
    raw_adapters = data.get("adapters", [])
    for i, spec in enumerate(cf.adapters):
        where = f'adapters[{i}] (id="{spec.id}")'
        cls = registry.adapters.get(spec.type)
        if cls is None:
            known = ", ".join(sorted(registry.adapters)) or "none"
            problems.append(f"{where}.type: no plugin registers adapter type {spec.type!r} (known: {known})")
            continue
        try:
            with deferred_secrets():  # resolved by the commands that use the instance
                cfg = cls.Config.model_validate(spec.config)
        except ValidationError as exc:
            raw = raw_adapters[i].get("config", {}) if i < len(raw_adapters) else {}
            problems += format_validation_error(exc, raw, prefix=f"{where}.config", secrets=secret_fields(cls.Config))
            continue
        instances[spec.id] = AdapterInstance(spec.id, spec.type, cls, cfg, spec.enabled, where=where)
        if spec.enabled:
            warnings += [f"{where}.config.{w}" for w in cfg.warnings()]
    formats = {getattr(c, "format_id", "") for c in registry.adapters.values() if getattr(c, "format_id", "")}
    for p_i, party in enumerate(cf.parties):
        where = f'parties[{p_i}] (id="{party.id}").delivery'
        named = [(f"{where}.formats", f) for f in party.delivery.formats] if party.delivery.transports else []
        named += [(f"{where}.routes[{r_i}].format", r.format) for r_i, r in enumerate(party.delivery.routes)]
        for path, fmt in named:
            if fmt not in formats:
                problems.append(f"{path}: no plugin renders format {fmt!r} (known: {', '.join(sorted(formats)) or 'none'})")
    for k_i, k in enumerate(cf.contracts):
        for c_i, comp in enumerate(k.components):
            problems += _component_problems(registry, comp, f'contracts[{k_i}] (id="{k.id}").components[{c_i}]')
        problems += _amended_component_problems(k, k_i, registry)
    from kwhub.core.vee.config import VeeConfig, VeeConfigError

    try:
        problems += VeeConfig.from_mapping(cf.vee).check_rules(registry.vee_rules)
    except VeeConfigError as exc:
        problems += exc.problems
    return instances, problems


def _registry_for(cf: ConfigFile) -> Any:
    """The plugins this configuration names: the families of its adapter types, the ERP
    renderers when parties receive documents, and kwhub's core rules and price components.
    Loading a configuration does not import the plugins of families it does not use."""
    from kwhub.hub.registry import get_registry

    families = {"core"} | {spec.type.split(".", 1)[0] for spec in cf.adapters}
    if any(p.delivery.formats or p.delivery.routes for p in cf.parties):
        families.add("erp")
    registry = get_registry(families=families)
    if any(spec.type not in registry.adapters for spec in cf.adapters):
        registry = get_registry()  # an unknown type is reported against every installed one
    return registry


def _component_problems(registry: Any, spec: Any, where: str) -> list[str]:
    """What is wrong with one price component's settings, under its key path ``where``."""
    cls = registry.price_components.get(spec.kind)
    if cls is None:
        known = ", ".join(sorted(registry.price_components)) or "none"
        return [f"{where}.kind: unknown price component {spec.kind!r} (known: {known})"]
    config_cls = getattr(cls, "Config", None)
    if config_cls is not None and hasattr(config_cls, "model_validate"):
        try:
            config_cls.model_validate(spec.settings())
        except ValidationError as exc:
            return format_validation_error(exc, spec.settings(), prefix=where)
    return []


def _amended_component_problems(k: Contract, k_i: int, registry: Any) -> list[str]:
    """The settings of every component an amendment names, as they stand in its version,
    checked against the component's ``Config``."""
    from kwhub.core.contract_energy import component_ids

    if not k.amendments or amendment_problems(k):
        return []
    problems: list[str] = []
    for a_i, (am, version) in enumerate(zip(k.amendments, contract_versions(k)[1:], strict=True)):
        specs = dict(zip(component_ids(version.contract), version.contract.components, strict=True))
        for c_i, named in enumerate(am.components):
            problems += _component_problems(registry, specs[named.id],
                                            f'contracts[{k_i}] (id="{k.id}").amendments[{a_i}].components[{c_i}]')
    return problems


def _amendment_energy_problems(campus: Campus, registry: Any, plan: Any) -> list[str]:
    """An amendment may change prices and fees, not which component bills which energy."""
    from kwhub.core.contract_energy import EnergyPlanError, plan_energy

    problems: list[str] = []
    for k_i, k in enumerate(campus.contracts):
        for a_i, version in enumerate(contract_versions(k)[1:]):
            where = f'contracts[{k_i}] (id="{k.id}").amendments[{a_i}]'
            others = [version.contract if c.id == k.id else c for c in campus.contracts]
            try:
                mine = plan_energy(campus.model_copy(update={"contracts": others}), registry).of(k.id)
            except EnergyPlanError as exc:
                problems.append(f"{where}: {exc}")
                continue
            if mine.claims != plan.of(k.id).claims:
                problems.append(f"{where}: changes which energy the contract's components bill "
                                f"({dict(plan.of(k.id).claims)} -> {dict(mine.claims)}); an amendment may change "
                                "prices, escalators, fees and tax, not the energy billed (end the contract and "
                                "add a new one for that)")
    return problems


def parse_config(data: dict[str, Any], source: str, work_dir: Path, registry: Any | None = None) -> KwhubConfig:
    """Validate a config mapping (already parsed from TOML)."""
    try:
        cf = ConfigFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, format_validation_error(exc, data)) from None
    problems = _cross_check(cf)
    if registry is None:
        registry = _registry_for(cf)
    warnings: list[str] = []
    instances, plugin_problems = _validate_plugins(cf, data, registry, warnings)
    for inst in instances.values():
        inst.source = source
    problems += plugin_problems
    if problems:
        raise ConfigError(source, problems)
    campus = Campus(
        timezone=cf.hub.timezone, sites=cf.sites, assets=cf.assets, channels=cf.channels, parties=cf.parties,
        contracts=cf.contracts, allocation=cf.allocation,
    )
    from kwhub.core.contract_energy import EnergyPlanError, plan_energy

    try:
        plan = plan_energy(campus, registry)
    except EnergyPlanError as exc:
        raise ConfigError(source, [f"contracts: {exc}"],
                          hint="see 'Which energy a contract bills' in docs/configuration.md") from None
    amended = _amendment_energy_problems(campus, registry, plan) if any(k.amendments for k in campus.contracts) else []
    if amended:
        raise ConfigError(source, amended, hint="see 'Contract amendments' in docs/configuration.md")
    return KwhubConfig(source=source, work_dir=work_dir, file=cf, campus=campus, adapters=instances,
                       warnings=warnings)


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), [f"not valid TOML: {exc}"]) from None
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read: {exc.strerror}"]) from None


def embedded_default(work_dir: Path) -> dict[str, Any]:
    """The configuration used when there is no ``kwhub.toml``: one site, nothing else.

    Ad-hoc ingest (``kwhub ingest --adapter meters.csv FILE --channel X``) adds channels
    on the fly; everything commercial needs a real file.
    """
    return {"hub": {"name": "kwhub (embedded default)"}, "sites": [{"id": "site", "name": "Default site"}]}


def find_config(start: Path | None = None) -> Path | None:
    """``$KWHUB_CONFIG``, else ``kwhub.toml`` in the working directory."""
    import os

    env = os.environ.get("KWHUB_CONFIG")
    if env:
        return Path(env)
    candidate = (start or Path.cwd()) / CONFIG_NAME
    return candidate if candidate.exists() else None


def load_config(path: str | Path | None = None, *, work_dir: Path | None = None, registry: Any | None = None,
                required: bool = False) -> KwhubConfig:
    """Load and validate ``path`` (or the discovered ``kwhub.toml``, or the embedded default)."""
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise ConfigError(str(p), ["file not found"], hint="run `kwhub init` to write an example kwhub.toml")
    else:
        p = find_config(work_dir)  # type: ignore[assignment]
    if p is None:
        if required:
            raise ConfigError(CONFIG_NAME, ["no kwhub.toml in this directory"],
                              hint="run `kwhub init` to write one, or `kwhub demo` to see a complete campus")
        wd = (work_dir or Path.cwd()).resolve()
        cfg = parse_config(embedded_default(wd), "(embedded default)", wd, registry)
        cfg.embedded_default = True
        return cfg
    data = read_toml(p)
    return parse_config(data, str(p), p.resolve().parent, registry)
