"""``meters.oem_telemetry``: generator controllers (gas turbines, engines) through TOML register maps.

A map (``plugins/meters/maps/<name>.toml`` or a path) lists the controller's registers as
data; channels carry an ``{asset}`` placeholder filled from the instance's ``asset``.
Output comes from the accumulating kWh register (``<asset>.net``), fuel from a fuel
totalizer or an integrated fuel rate in MMBtu per interval (``<asset>.fuel``) and
availability as the share of the interval the status register was in an available state
(``<asset>.avail``).

Example::

    [[adapters]]
    type = "meters.oem_telemetry"
    id = "gt1_ucp"
    [adapters.config]
    host = "10.0.6.11"
    map = "gas_turbine_controller"
    asset = "gt1"
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from pydantic import Field, model_validator

from kwhub.core.adapters import AdapterConfig
from kwhub.core.hookspecs import hookimpl
from kwhub.hub.helpers.modbus import ModbusConnection, ModbusDeviceAdapter, RegisterPoint, check_map

MAPS_DIR = Path(__file__).resolve().parent / "maps"


@dataclass
class ControllerMap:
    """A controller register map loaded from TOML."""

    name: str
    title: str
    points: list[RegisterPoint]
    status_labels: dict[int, str] = field(default_factory=dict)
    source: str = ""

    def for_asset(self, asset: str, overrides: dict[str, str] | None = None) -> list[RegisterPoint]:
        """Points with ``{asset}`` filled in and channel overrides applied."""
        overrides = overrides or {}
        return [p.model_copy(update={"channel": overrides.get(p.name, p.channel.replace("{asset}", asset))})
                for p in self.points]


def builtin_maps() -> list[str]:
    """Names of the maps shipped with kwhub."""
    return sorted(p.stem for p in MAPS_DIR.glob("*.toml"))


def load_map(name_or_path: str) -> ControllerMap:
    """Load a shipped map by name or a TOML file by path; errors name the file and point."""
    path = Path(name_or_path)
    if not path.suffix:
        path = MAPS_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        raise ValueError(f"controller map {name_or_path!r} not found (shipped: {', '.join(builtin_maps())})")
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: {exc}") from None
    defaults = {k: doc[k] for k in ("function", "word_order") if k in doc}
    pts = []
    for i, raw in enumerate(doc.get("points", [])):
        try:
            pts.append(RegisterPoint.model_validate({**defaults, **raw}))
        except ValueError as exc:
            raise ValueError(f"{path}: points[{i}] ({raw.get('name', '?')}): {exc}") from None
    check_map(pts, str(path))
    labels = {int(k): str(v) for k, v in doc.get("status_labels", {}).items()}
    return ControllerMap(doc.get("name", path.stem), doc.get("title", ""), pts, labels, str(path))


class OemTelemetryConfig(ModbusConnection):
    """Connection, which controller map, which asset, optional channel overrides."""

    map: str
    asset: str
    channels: dict[str, str] = Field(default_factory=dict)  # point name -> channel

    @model_validator(mode="after")
    def _map_loads(self) -> OemTelemetryConfig:
        cmap = load_map(self.map)
        unknown = set(self.channels) - {p.name for p in cmap.points}
        if unknown:
            raise ValueError(f"channels names point(s) not in map {cmap.name}: {', '.join(sorted(unknown))}")
        return self


class OemTelemetry(ModbusDeviceAdapter):
    """Polls a gas-turbine or engine controller through a TOML register map."""

    type_id: ClassVar[str] = "meters.oem_telemetry"
    title: ClassVar[str] = "OEM generator controller telemetry (Modbus TCP, TOML maps)"
    Config: ClassVar[type[AdapterConfig]] = OemTelemetryConfig

    def register_points(self) -> list[RegisterPoint]:
        c: OemTelemetryConfig = self.config  # type: ignore[assignment]
        return load_map(c.map).for_asset(c.asset, c.channels)


@hookimpl
def kwhub_register_meter_adapters(register):  # type: ignore[no-untyped-def]
    register(OemTelemetry)
