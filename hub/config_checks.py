"""The checks of a parsed ``kwhub.toml`` beyond each table's own shape.

* :func:`format_validation_error`: a pydantic error as one line per key path (secrets never shown);
* :func:`cross_check`: references between sections (ids named must exist and be unique);
* :func:`validate_plugins`: adapter instances, renderer formats, price components and VEE
  rules against the classes the plugins registered;
* :func:`amendment_energy_problems`: an amendment changes prices, not the energy billed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import SecretStr, ValidationError

from kwhub.core.adapters import deferred_secrets
from kwhub.core.campus import Campus, Contract
from kwhub.core.contract_versions import amendment_problems, contract_versions
from kwhub.core.timeline import TimeModelError, zone
from kwhub.hub.config_sections import AdapterInstance, ConfigFile


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


def cross_check(cf: ConfigFile) -> list[str]:
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


def amendment_energy_problems(campus: Campus, registry: Any, plan: Any) -> list[str]:
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


def validate_plugins(cf: ConfigFile, data: dict[str, Any], registry: Any,
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

    if cf.vee:  # kwhub's own defaults need no check against the rules
        try:
            problems += VeeConfig.from_mapping(cf.vee).check_rules(registry.vee_rules)
        except VeeConfigError as exc:
            problems += exc.problems
    return instances, problems
