"""The plugin manager: loads ``kwhub`` entry points one by one and collects adapters.

Every hook is called through pluggy (``pm.hook.<name>`` or, for the ``register`` hooks,
a caller restricted to one plugin, so that what each plugin registers is attributed to it
and a failing plugin takes only itself down): ``@hookimpl(specname=...)``,
``tryfirst``/``trylast`` and wrappers behave as pluggy documents. After loading, every
implementation of an unknown hook and every undecorated ``kwhub_*`` function is reported
on its plugin (not only the first). A plugin that fails to import or to register is
recorded with its error and the others still load; ``KWHUB_STRICT_PLUGINS=1`` turns such
a failure into an exception. ``KWHUB_PLUGINS_ALLOW`` / ``KWHUB_PLUGINS_BLOCK``
(comma-separated entry-point names) select plugins; ``KWHUB_TRACE_PLUGINS=1`` prints every
hook call and its result to standard error. Under the test suite
(``KWHUB_NO_ENTRYPOINTS=1``) installed entry points are never loaded; the built-in
modules are registered from :data:`BUILTIN_PLUGINS`.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy

from kwhub.core import hookspecs
from kwhub.core.adapters import Adapter

ENTRY_POINT_GROUP = "kwhub"

# Mirrors [project.entry-points.kwhub] in pyproject.toml (a test keeps them equal).
BUILTIN_PLUGINS: dict[str, str] = {
    "meters_csv": "kwhub.plugins.meters.csv_meter",
    "meters_greenbutton": "kwhub.plugins.meters.greenbutton",
    "meters_modbus": "kwhub.plugins.meters.modbus",
    "meters_sunspec": "kwhub.plugins.meters.sunspec",
    "meters_oem": "kwhub.plugins.meters.oem_telemetry",
    "meters_mqtt": "kwhub.plugins.meters.mqtt",
    "markets_price_file": "kwhub.plugins.markets.price_file",
    "markets_ercot": "kwhub.plugins.markets.ercot",
    "markets_caiso": "kwhub.plugins.markets.caiso",
    "markets_pjm": "kwhub.plugins.markets.pjm",
    "erp_json_folder": "kwhub.plugins.erp.json_folder",
    "erp_ubl": "kwhub.plugins.erp.ubl",
    "erp_cii": "kwhub.plugins.erp.cii",
    "erp_x12": "kwhub.plugins.erp.x12",
    "erp_idoc": "kwhub.plugins.erp.idoc",
    "erp_csv": "kwhub.plugins.erp.csv_export",
    "erp_pdf": "kwhub.plugins.erp.pdf",
    "erp_transports": "kwhub.plugins.erp.transports",
    "esg_scope_summary": "kwhub.plugins.esg.scope_summary",
    "esg_ghg_inventory": "kwhub.plugins.esg.ghg_inventory",
    "esg_cdp": "kwhub.plugins.esg.cdp",
    "esg_esrs": "kwhub.plugins.esg.esrs",
    "esg_sb253": "kwhub.plugins.esg.sb253",
    "core_vee_rules": "kwhub.core.vee.rules",
    "core_price_components": "kwhub.core.pricing.components",
}

FAMILY_HOOKS = {
    "meters": "kwhub_register_meter_adapters",
    "markets": "kwhub_register_market_adapters",
    "erp": "kwhub_register_erp_adapters",
    "esg": "kwhub_register_esg_adapters",
}
EXTENSION_HOOKS = {
    "vee_rules": "kwhub_register_vee_rules",
    "price_components": "kwhub_register_price_components",
}


class PluginLoadError(RuntimeError):
    """Raised in strict mode when a plugin fails to load or register."""


class RegistryError(KeyError):
    """An adapter type, rule or component that no loaded plugin registers."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass
class PluginInfo:
    """One plugin as ``kwhub plugins list`` shows it."""

    name: str
    module: str
    distribution: str = ""
    version: str = ""
    adapters: list[str] = field(default_factory=list)
    extensions: list[str] = field(default_factory=list)
    hooks: list[str] = field(default_factory=list)
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "module": self.module,
            "distribution": self.distribution,
            "version": self.version,
            "adapters": self.adapters,
            "extensions": self.extensions,
            "hooks": self.hooks,
            "error": self.error or None,
        }


@dataclass
class Registry:
    """Everything the loaded plugins registered."""

    plugins: dict[str, PluginInfo] = field(default_factory=dict)
    adapters: dict[str, type[Adapter]] = field(default_factory=dict)
    vee_rules: dict[str, type] = field(default_factory=dict)
    price_components: dict[str, type] = field(default_factory=dict)
    pm: pluggy.PluginManager | None = None

    def adapter(self, type_id: str) -> type[Adapter]:
        try:
            return self.adapters[type_id]
        except KeyError:
            known = ", ".join(sorted(self.adapters)) or "none"
            raise RegistryError(f"no plugin registers adapter type {type_id!r} (known: {known})") from None

    def family(self, family: str) -> dict[str, type[Adapter]]:
        return {k: v for k, v in self.adapters.items() if v.family == family}

    def rule(self, rule_id: str) -> type:
        try:
            return self.vee_rules[rule_id]
        except KeyError:
            raise RegistryError(f"no plugin registers VEE rule {rule_id!r} (known: {', '.join(sorted(self.vee_rules))})") from None

    def component(self, kind: str) -> type:
        try:
            return self.price_components[kind]
        except KeyError:
            raise RegistryError(
                f"no plugin registers price component {kind!r} (known: {', '.join(sorted(self.price_components))})"
            ) from None

    @property
    def errors(self) -> list[PluginInfo]:
        return [p for p in self.plugins.values() if p.error]


def _env_list(name: str) -> set[str]:
    return {x.strip() for x in os.environ.get(name, "").split(",") if x.strip()}


def _short_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def new_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    if os.environ.get("KWHUB_TRACE_PLUGINS", "") not in ("", "0", "false"):
        pm.trace.root.setwriter(lambda text: sys.stderr.write(f"kwhub plugins: {text}"))
        pm.enable_tracing()
    return pm


def builtin_family(name: str) -> str | None:
    """The family of a plugin kwhub ships (``meters``, ``markets``, ``erp``, ``esg`` or
    ``core``), from its entry-point name; None for any other plugin."""
    if name not in BUILTIN_PLUGINS:
        return None
    return name.split("_", 1)[0]


def _candidates(use_entry_points: bool) -> list[tuple[str, Callable[[], ModuleType | Any], str, str]]:
    """(name, loader, distribution, version) for every plugin that could be loaded."""
    out: list[tuple[str, Callable[[], Any], str, str]] = []
    if use_entry_points:
        dists: dict[str, tuple[str, str]] = {}  # a distribution's METADATA is parsed once, not per entry point
        for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist, ver = "", ""
            if ep.dist is not None:
                key = str(getattr(ep.dist, "_path", id(ep.dist)))
                if key not in dists:
                    dists[key] = (ep.dist.metadata["Name"], ep.dist.version)
                dist, ver = dists[key]
            out.append((ep.name, ep.load, dist, ver))
    else:
        from importlib.metadata import PackageNotFoundError, version

        try:
            ver = version("kwhub")
        except PackageNotFoundError:
            ver = ""
        for name, mod in BUILTIN_PLUGINS.items():
            out.append((name, (lambda m=mod: importlib.import_module(m)), "kwhub", ver))
    return out


def load_plugins(
    *,
    use_entry_points: bool | None = None,
    allow: Iterable[str] | None = None,
    block: Iterable[str] | None = None,
    strict: bool | None = None,
    extra: Iterable[tuple[str, Any]] = (),
    families: Iterable[str] | None = None,
    third_party: bool = True,
) -> Registry:
    """Load plugins and collect what they register.

    ``use_entry_points`` defaults to True unless ``KWHUB_NO_ENTRYPOINTS`` is set (the test
    suite sets it). ``extra`` adds ``(name, plugin_object)`` pairs, e.g. test plugins.
    ``families`` (``meters``, ``markets``, ``erp``, ``esg``, ``core``) limits the plugins
    kwhub ships to those families (None: all); plugins of other distributions are loaded
    whenever ``third_party`` is true, as their family is only known once they are imported.
    """
    family_set = set(families) if families is not None else None
    if use_entry_points is None:
        use_entry_points = not os.environ.get("KWHUB_NO_ENTRYPOINTS")
    allow_set = set(allow) if allow is not None else _env_list("KWHUB_PLUGINS_ALLOW")
    block_set = set(block) if block is not None else _env_list("KWHUB_PLUGINS_BLOCK")
    if strict is None:
        strict = os.environ.get("KWHUB_STRICT_PLUGINS", "") not in ("", "0", "false")

    pm = new_plugin_manager()
    reg = Registry(pm=pm)
    candidates = _candidates(use_entry_points)
    candidates += [(name, (lambda o=obj: o), "", "") for name, obj in extra]

    for name, loader, dist, ver in candidates:
        if allow_set and name not in allow_set:
            continue
        if name in block_set:
            continue
        fam = builtin_family(name) if dist == "kwhub" else None
        if family_set is not None and fam is not None and fam not in family_set:
            continue
        if fam is None and dist and not third_party:
            continue
        info = PluginInfo(name=name, module="", distribution=dist, version=ver)
        reg.plugins[name] = info
        try:
            plugin = loader()
            info.module = getattr(plugin, "__name__", type(plugin).__name__)
            if pm.is_registered(plugin):
                continue
            pm.register(plugin, name=name)
        except Exception as exc:  # a broken plugin must not take the others down
            info.error = _short_error(exc)
            if strict:
                raise PluginLoadError(f"plugin {name!r} failed to load: {info.error}") from exc
            continue
        try:
            _collect(pm, name, plugin, reg, info)
        except Exception as exc:
            info.error = _short_error(exc)
            pm.unregister(plugin)
            if strict:
                raise PluginLoadError(f"plugin {name!r} failed to register: {info.error}") from exc
    problems = hook_problems(pm)
    for plugin_name, messages in problems.items():
        info = reg.plugins.get(plugin_name)
        if info is not None:
            info.error = "; ".join(messages)
    if problems and strict:
        raise PluginLoadError("; ".join(f"plugin {n!r}: {m}" for n, ms in problems.items() for m in ms))
    for info in reg.plugins.values():
        plugin = pm.get_plugin(info.name)
        if plugin is not None:
            info.hooks = sorted({hc.name for hc in pm.get_hookcallers(plugin) or []})
    return reg


def hook_problems(pm: pluggy.PluginManager) -> dict[str, list[str]]:
    """``{plugin name: [problem]}``: every implementation of a hook no spec defines (a
    misspelling) and every ``kwhub_*`` function a plugin module did not mark ``@hookimpl``.

    pluggy's own ``check_pending`` stops at the first; this lists them all.
    """
    out: dict[str, list[str]] = {}
    known = {name for name in dir(hookspecs) if name.startswith("kwhub_")}
    for name, caller in vars(pm.hook).items():
        if not isinstance(caller, pluggy.HookCaller) or caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            if impl.optionalhook:
                continue
            import difflib

            close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.8)
            hint = f" (did you mean {close[0]}?)" if close else ""
            out.setdefault(impl.plugin_name, []).append(f"implements unknown hook {name}{hint}")
    for plugin_name, plugin in pm.list_name_plugin():
        if not inspect.ismodule(plugin):
            continue
        hooked = {hc.name for hc in pm.get_hookcallers(plugin) or []}
        for attr, value in vars(plugin).items():
            if attr.startswith("kwhub_") and callable(value) and attr not in hooked \
                    and getattr(value, "__module__", None) == plugin.__name__:
                out.setdefault(plugin_name, []).append(f"{attr} is not marked @hookimpl, so it never runs")
    return out


def _collect(pm: pluggy.PluginManager, name: str, plugin: Any, reg: Registry, info: PluginInfo) -> None:
    """Call this plugin's register hooks and file what it registers under its name."""
    staged_adapters: dict[str, type[Adapter]] = {}
    staged_rules: dict[str, type] = {}
    staged_components: dict[str, type] = {}

    def add_adapter(family: str) -> Callable[[type], None]:
        def register(cls: type) -> None:
            if not (isinstance(cls, type) and issubclass(cls, Adapter)):
                raise TypeError(f"{cls!r} is not an Adapter subclass")
            if not cls.type_id:
                raise TypeError(f"{cls.__name__} has no type_id")
            if cls.family != family:
                raise TypeError(f"{cls.type_id} is a {cls.family or '?'} adapter, registered as {family}")
            if cls.type_id in reg.adapters or cls.type_id in staged_adapters:
                raise ValueError(f"adapter type {cls.type_id!r} is registered twice")
            staged_adapters[cls.type_id] = cls

        return register

    def add_rule(cls: type) -> None:
        rid = getattr(cls, "rule_id", "")
        if not rid:
            raise TypeError(f"{cls!r} has no rule_id")
        staged_rules[rid] = cls

    def add_component(cls: type) -> None:
        kind = getattr(cls, "kind", "")
        if not kind:
            raise TypeError(f"{cls!r} has no kind")
        staged_components[kind] = cls

    others = [p for p in pm.get_plugins() if p is not plugin]
    for family, hook in FAMILY_HOOKS.items():
        pm.subset_hook_caller(hook, remove_plugins=others)(register=add_adapter(family))
    pm.subset_hook_caller(EXTENSION_HOOKS["vee_rules"], remove_plugins=others)(register=add_rule)
    pm.subset_hook_caller(EXTENSION_HOOKS["price_components"], remove_plugins=others)(register=add_component)

    reg.adapters.update(staged_adapters)
    reg.vee_rules.update(staged_rules)
    reg.price_components.update(staged_components)
    info.adapters = sorted(staged_adapters)
    info.extensions = sorted([f"vee_rule:{r}" for r in staged_rules] + [f"price_component:{k}" for k in staged_components])


_REGISTRY: Registry | None = None
_PARTIAL: dict[frozenset[str], Registry] = {}
ALL_FAMILIES = ("meters", "markets", "erp", "esg", "core")


def get_registry(reload: bool = False, *, families: Iterable[str] | None = None) -> Registry:
    """The process-wide registry, loaded on first use.

    ``families`` asks for the plugins kwhub ships of those families only (plus every
    third-party plugin): a command that reads meter files needs ``("meters", "core")``, not
    the ERP renderers. Once the full registry is loaded it answers every request.
    """
    global _REGISTRY
    if reload:
        _REGISTRY = None
        _PARTIAL.clear()
    if _REGISTRY is not None:
        return _REGISTRY
    if families is None or set(families) >= set(ALL_FAMILIES):
        _REGISTRY = load_plugins()
        return _REGISTRY
    key = frozenset(families)
    if key not in _PARTIAL:
        _PARTIAL[key] = load_plugins(families=key)
    return _PARTIAL[key]


def load_third_party_cli(app: Any) -> bool:
    """Call ``kwhub_cli_commands(app)`` on the installed plugins kwhub does not ship (the
    built-in ones add no commands); False when there are none."""
    reg = load_plugins(families=(), third_party=True)
    if reg.pm is None or not reg.plugins:
        return False
    reg.pm.hook.kwhub_cli_commands(app=app)
    return True
