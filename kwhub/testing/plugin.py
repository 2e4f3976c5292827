"""The kit's pytest plugin (entry point ``kwhub`` in the ``pytest11`` group): fixtures for plugin tests.

Installed with kwhub, so a plugin's tests use these fixtures without a conftest:

* ``kwhub_plugins``: the plugins under test as ``(name, module)`` pairs; empty unless a
  test module or conftest overrides it (``return [("acme", kwhub_acme)]``).
* ``kwhub_registry``: a strict registry of the built-in plugins plus ``kwhub_plugins``;
  ``kwhub_registry_factory(plugins, builtins=True, entry_points=False)`` builds others.
* ``kwhub_config``: the configuration ``kwhub_hub`` is opened with (one site, UTC); override
  it, e.g. with :func:`kwhub.testing.meter_config`.
* ``kwhub_hub``: a :class:`~kwhub.hub.app.Hub` in a temporary folder with ``kwhub_config``,
  ``kwhub_registry`` and a SQLite database; ``kwhub_hub_factory(config, registry=None)``
  opens more. Hubs are closed at the end of the test.

Nothing heavy is imported until a fixture is used, so the plugin costs other projects'
test runs nothing. ``-p no:kwhub`` switches it off.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from kwhub.hub.app import Hub
    from kwhub.hub.registry import Registry


@pytest.fixture
def kwhub_plugins() -> list[tuple[str, Any]]:
    """The plugins under test, as ``(entry-point name, module)`` pairs. Override it."""
    return []


@pytest.fixture
def kwhub_registry_factory() -> Callable[..., Registry]:
    """``make(plugins=(), *, builtins=True, entry_points=False)``: see :func:`kwhub.testing.load_registry`."""
    from kwhub.testing.hubs import load_registry

    return load_registry


@pytest.fixture
def kwhub_registry(kwhub_plugins: list[tuple[str, Any]], kwhub_registry_factory: Callable[..., Registry]) -> Registry:
    """The built-in plugins and ``kwhub_plugins``, loaded strictly (a broken plugin fails the test)."""
    return kwhub_registry_factory(kwhub_plugins)


@pytest.fixture
def kwhub_config() -> Mapping[str, Any] | str:
    """The ``kwhub.toml`` of ``kwhub_hub`` (a mapping or TOML text). Override it."""
    import copy

    from kwhub.testing.hubs import MINIMAL_CONFIG

    return copy.deepcopy(MINIMAL_CONFIG)


@pytest.fixture(scope="session")
def kwhub_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, made once per session and copied into every kit hub."""
    from kwhub.testing.hubs import migrated_sqlite

    return migrated_sqlite(tmp_path_factory.mktemp("kwhub_kit_sqlite"))


@pytest.fixture
def kwhub_hub_factory(tmp_path_factory: pytest.TempPathFactory, kwhub_registry: Registry,
                      kwhub_sqlite_template: Path) -> Iterator[Callable[..., Hub]]:
    """``make(config=None, *, registry=None) -> Hub``: a hub in a fresh temporary folder, on SQLite."""
    from kwhub.testing.hubs import open_hub

    hubs: list[Hub] = []

    def make(config: Mapping[str, Any] | str | None = None, *, registry: Registry | None = None) -> Hub:
        folder = tmp_path_factory.mktemp("kwhub_hub")
        hub = open_hub(folder, config, registry=registry or kwhub_registry, sqlite_template=kwhub_sqlite_template)
        hubs.append(hub)
        return hub

    yield make
    for hub in hubs:
        hub.close()


@pytest.fixture
def kwhub_hub(kwhub_hub_factory: Callable[..., Hub], kwhub_config: Mapping[str, Any] | str) -> Hub:
    """A hub with ``kwhub_config`` and ``kwhub_registry`` in a temporary folder, on SQLite."""
    return kwhub_hub_factory(kwhub_config)
