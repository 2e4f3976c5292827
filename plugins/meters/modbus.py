"""``meters.modbus``: a Modbus TCP meter described by a register map (data, not code).

Example instance in ``kwhub.toml``::

    [[adapters]]
    type = "meters.modbus"
    id = "hall_a_meter"
    [adapters.config]
    host = "10.0.4.21"
    device_id = 3
    interval_minutes = 15
    [[adapters.config.points]]
    name = "kwh_delivered"
    address = 2048
    type = "uint32"
    word_order = "little"
    unit = "kWh"
    kind = "energy_counter"
    channel = "hall_a.load"

Points may also come from a TOML file (``map_file``) holding ``[[points]]`` tables. Only
the read function codes 3 and 4 are accepted; anything else is a configuration error.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import ClassVar

from pydantic import Field, model_validator

from kwhub.core.adapters import AdapterConfig
from kwhub.core.hookspecs import hookimpl
from kwhub.hub.helpers.modbus import ModbusConnection, ModbusDeviceAdapter, RegisterPoint, check_map


class ModbusMeterConfig(ModbusConnection):
    """Connection plus the register map (inline ``points`` and/or a ``map_file``)."""

    points: list[RegisterPoint] = Field(default_factory=list)
    map_file: str = ""
    channels: dict[str, str] = Field(default_factory=dict)  # point name -> channel (overrides the map)

    @model_validator(mode="after")
    def _load_and_check(self) -> ModbusMeterConfig:
        pts = list(self.points)
        if self.map_file:
            pts += load_point_file(Path(self.map_file))
        if not pts:
            raise ValueError("no register points: give points or map_file")
        unknown = set(self.channels) - {p.name for p in pts}
        if unknown:
            raise ValueError(f"channels names unknown point(s) {', '.join(sorted(unknown))}")
        pts = [p.model_copy(update={"channel": self.channels[p.name]}) if p.name in self.channels else p
               for p in pts]
        check_map(pts, "points")
        object.__setattr__(self, "points", pts)
        object.__setattr__(self, "map_file", "")
        return self


def load_point_file(path: Path) -> list[RegisterPoint]:
    """Read ``[[points]]`` from a TOML register-map file (defaults from top-level keys)."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"map file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: {exc}") from None
    defaults = {k: doc[k] for k in ("function", "word_order") if k in doc}
    out = []
    for i, raw in enumerate(doc.get("points", [])):
        try:
            out.append(RegisterPoint.model_validate({**defaults, **raw}))
        except ValueError as exc:
            raise ValueError(f"{path}: points[{i}] ({raw.get('name', '?')}): {exc}") from None
    return out


class ModbusMeter(ModbusDeviceAdapter):
    """Polls a Modbus TCP meter through a register map."""

    type_id: ClassVar[str] = "meters.modbus"
    title: ClassVar[str] = "Modbus TCP meter (register map)"
    Config: ClassVar[type[AdapterConfig]] = ModbusMeterConfig

    def register_points(self) -> list[RegisterPoint]:
        return list(self.config.points)  # type: ignore[attr-defined]


@hookimpl
def kwhub_register_meter_adapters(register):  # type: ignore[no-untyped-def]
    register(ModbusMeter)
