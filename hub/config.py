"""``kwhub.toml``: one file describing the campus and the adapter instances.

Loading validates in two passes: the file's own shape (sites, assets, channels, parties,
contracts, adapters), then each adapter instance's and price component's settings against
the ``Config`` of the class a plugin registered for it. Every error names its key path,
e.g. ``adapters[1] (id="halls").config.delimiter: extra inputs are not permitted``. The
value given is shown only when it is short and never for a secret (a ``SecretStr`` field
or a key named like one). Valid but risky settings (``host_key_checking = false``, ...)
are collected in :attr:`KwhubConfig.warnings`.

This module loads the file (:func:`load_config`, :func:`parse_config`) into a
:class:`KwhubConfig`; the tables' models are in :mod:`kwhub.hub.config_sections` and the
checks in :mod:`kwhub.hub.config_checks` (both re-exported here).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from kwhub.core.adapters import Adapter, AdapterContext
from kwhub.core.campus import Campus
from kwhub.core.carbon_settings import EmissionsSettings
from kwhub.core.input_limits import InputLimits
from kwhub.hub.config_checks import (
    SECRET_WORDS,
    amendment_energy_problems,
    cross_check,
    format_validation_error,
    secret_fields,
    validate_plugins,
)
from kwhub.hub.config_sections import (
    AdapterInstance,
    AdapterInstanceSpec,
    ConfigError,
    ConfigFile,
    HubSettings,
    IndexSource,
    ReviewSettings,
    SettlementSettings,
)

__all__ = [
    "CONFIG_NAME", "DEFAULT_DB_NAME", "SECRET_WORDS", "AdapterInstance", "AdapterInstanceSpec", "ConfigError",
    "ConfigFile", "HubSettings", "IndexSource", "KwhubConfig", "ReviewSettings", "SettlementSettings",
    "embedded_default", "find_config", "format_validation_error", "load_config", "parse_config", "read_toml",
    "secret_fields",
]

CONFIG_NAME = "kwhub.toml"
DEFAULT_DB_NAME = "kwhub.db"


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


def _registry_for(cf: ConfigFile) -> Any:
    """The plugins this configuration names: the families of its adapter types, the ERP
    renderers when parties receive documents, and kwhub's core rules and price components
    when there are contracts or ``[vee]`` settings to check against them. Loading a
    configuration does not import the plugins of families it does not use."""
    from kwhub.hub.registry import get_registry

    families = {spec.type.split(".", 1)[0] for spec in cf.adapters}
    if cf.contracts or cf.vee:
        families.add("core")
    if any(p.delivery.formats or p.delivery.routes for p in cf.parties):
        families.add("erp")
    registry = get_registry(families=families)
    if any(spec.type not in registry.adapters for spec in cf.adapters):
        registry = get_registry()  # an unknown type is reported against every installed one
    return registry


def parse_config(data: dict[str, Any], source: str, work_dir: Path, registry: Any | None = None, *,
                 plugins: bool = True) -> KwhubConfig:
    """Validate a config mapping (already parsed from TOML).

    ``plugins=False`` is for commands that only read the database: the file's own structure
    and cross-references are checked, but no plugin is loaded, so adapter settings and
    contract components are not checked against their plugins (``kwhub config check`` and
    every command that uses them do that) and the result carries no adapter instances.
    """
    try:
        cf = ConfigFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, format_validation_error(exc, data)) from None
    problems = cross_check(cf)
    if not plugins:
        if problems:
            raise ConfigError(source, problems)
        campus = Campus(timezone=cf.hub.timezone, sites=cf.sites, assets=cf.assets, channels=cf.channels,
                        parties=cf.parties, contracts=cf.contracts, allocation=cf.allocation)
        return KwhubConfig(source=source, work_dir=work_dir, file=cf, campus=campus)
    if registry is None:
        registry = _registry_for(cf)
    warnings: list[str] = []
    instances, plugin_problems = validate_plugins(cf, data, registry, warnings)
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
    amended = amendment_energy_problems(campus, registry, plan) if any(k.amendments for k in campus.contracts) else []
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
                required: bool = False, plugins: bool = True) -> KwhubConfig:
    """Load and validate ``path`` (or the discovered ``kwhub.toml``, or the embedded default).

    ``plugins=False``: see :func:`parse_config` (for commands that only read the database)."""
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
        cfg = parse_config(embedded_default(wd), "(embedded default)", wd, registry, plugins=plugins)
        cfg.embedded_default = True
        return cfg
    data = read_toml(p)
    return parse_config(data, str(p), p.resolve().parent, registry, plugins=plugins)
