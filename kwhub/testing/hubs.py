"""Registries and hubs for plugin tests, with or without pytest.

:func:`load_registry` loads the built-in plugins plus the ones under test (as modules, so
a plugin need not be installed to be tested) in strict mode: a plugin that fails to load
or register fails the test with its error. :func:`open_hub` writes a ``kwhub.toml`` into a
folder and opens a :class:`~kwhub.hub.app.Hub` on a SQLite database beside it, as an
operator's installation would be. :func:`meter_config` builds the configuration a meter
check needs: the sample's channels and one adapter instance.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kwhub.hub.app import Hub
    from kwhub.hub.registry import Registry

CONFIG_NAME = "kwhub.toml"
DB_NAME = "kwhub.db"

#: The smallest configuration a hub accepts: one site, times in UTC.
MINIMAL_CONFIG: dict[str, Any] = {"hub": {"name": "kwhub test kit", "timezone": "UTC"},
                                  "sites": [{"id": "site", "name": "Test site"}]}


def load_registry(plugins: Iterable[tuple[str, Any]] = (), *, builtins: bool = True,
                  entry_points: bool = False) -> Registry:
    """A strict registry of the built-in plugins (unless ``builtins=False``) and ``plugins``.

    ``plugins`` are ``(name, module_or_object)`` pairs, the name being the entry-point name
    the plugin will have once installed. ``entry_points=True`` also loads installed
    plugins (to test that a package's entry point is declared right).
    """
    from kwhub.hub.registry import load_plugins

    extra = list(plugins)
    allow = set() if builtins else {name for name, _ in extra}  # empty: no filter (and no KWHUB_PLUGINS_ALLOW)
    if allow is not None and entry_points:
        raise ValueError("builtins=False selects plugins by name; it cannot be combined with entry_points=True")
    return load_plugins(use_entry_points=entry_points, allow=allow, block=(), strict=True, extra=extra)


def write_config(folder: Path, config: Mapping[str, Any] | str) -> Path:
    """Write ``config`` (a mapping, or TOML text) as ``folder/kwhub.toml``; return its path."""
    import tomli_w

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CONFIG_NAME
    text = config if isinstance(config, str) else tomli_w.dumps(dict(config))
    path.write_text(text, encoding="utf-8")
    return path


def migrated_sqlite(folder: Path) -> Path:
    """A migrated, empty SQLite file in ``folder`` (copy it to skip migrating per test)."""
    from kwhub.hub.store import Database

    Database.open(work_dir=folder).close()  # closing the last connection checkpoints the log
    return folder / DB_NAME


def open_hub(folder: Path, config: Mapping[str, Any] | str | None = None, *, registry: Registry | None = None,
             sqlite_template: Path | None = None) -> Hub:
    """Write ``config`` (default: :data:`MINIMAL_CONFIG`) into ``folder`` and open a hub on SQLite there.

    ``sqlite_template`` (from :func:`migrated_sqlite`) is copied instead of migrating a new
    file. Whatever database the configuration names, the hub uses ``folder/kwhub.db``.
    Close the hub (or use it as a context manager) when done.
    """
    from kwhub.hub.app import Hub

    path = write_config(folder, MINIMAL_CONFIG if config is None else config)
    db_path = folder / DB_NAME
    if sqlite_template is not None and not db_path.exists():
        shutil.copyfile(sqlite_template, db_path)
    if registry is None:
        registry = load_registry()
    return Hub.open(path, registry=registry, required=True, database_url=f"sqlite:///{db_path.as_posix()}")


def meter_config(adapter_type: str, channels: Mapping[str, Mapping[str, Any]], adapter_config: Mapping[str, Any]
                 | None = None, *, instance_id: str = "meter", timezone: str = "UTC") -> dict[str, Any]:
    """A configuration with ``channels`` and one ``adapter_type`` instance named ``instance_id``.

    ``channels`` maps a channel id to its ``[[channels]]`` settings (``interval_minutes``,
    ``unit``...); every sample type has ``channels()`` giving exactly this.
    """
    return {
        "hub": {**MINIMAL_CONFIG["hub"], "timezone": timezone},
        "sites": [dict(site) for site in MINIMAL_CONFIG["sites"]],
        "channels": [{"id": cid, **dict(spec)} for cid, spec in channels.items()],
        "adapters": [{"type": adapter_type, "id": instance_id, "config": dict(adapter_config or {})}],
    }
