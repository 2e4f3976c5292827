"""Units a meter value is written in, and how a value converts to its channel's unit.

Four dimensions: energy per interval (Wh, kWh, MWh), power (W, kW, MW; energy once
multiplied by the interval length), fuel (MMBtu) and fraction (0..1, e.g. availability).
Energy and power convert into each other over an interval; fuel and fraction convert to
nothing else. A unit is recognised case-insensitively.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class MeterUnit:
    """One unit: its written name, dimension and factor to the dimension's base (kWh, kW, MMBtu, 1)."""

    name: str
    dimension: str
    factor: float


_ALL = (
    MeterUnit("Wh", "energy", 0.001), MeterUnit("kWh", "energy", 1.0), MeterUnit("MWh", "energy", 1000.0),
    MeterUnit("W", "power", 0.001), MeterUnit("kW", "power", 1.0), MeterUnit("MW", "power", 1000.0),
    MeterUnit("MMBtu", "fuel", 1.0), MeterUnit("fraction", "fraction", 1.0),
)
UNITS: dict[str, MeterUnit] = {u.name.lower(): u for u in _ALL}
KNOWN_TEXT = ", ".join(u.name for u in _ALL)
_TOKEN = re.compile(r"[A-Za-z]+")


def meter_unit(text: str) -> MeterUnit | None:
    """The unit written as ``text`` (any case, surrounding blanks ignored), or None."""
    return UNITS.get(str(text).strip().lower())


def header_unit(column: str) -> MeterUnit | None:
    """The unit a value column's name carries: ``kWh``, ``Energy Wh``, ``value (MWh)``, ``fuel_mmbtu``.

    The whole name, else its last word, must be a unit; ``value`` or ``hall_a.load`` carry none.
    """
    whole = meter_unit(column)
    if whole is not None:
        return whole
    words = _TOKEN.findall(column)
    return meter_unit(words[-1]) if len(words) > 1 else None


def conversion(value_unit: MeterUnit, channel_unit: MeterUnit, minutes: int) -> float | None:
    """The factor that turns a value in ``value_unit`` into ``channel_unit`` over an interval of
    ``minutes``; None when the two cannot be converted (MMBtu into kWh, a fraction into MWh)."""
    ratio = value_unit.factor / channel_unit.factor
    if value_unit.dimension == channel_unit.dimension:
        return ratio
    if value_unit.dimension == "power" and channel_unit.dimension == "energy":
        return ratio * minutes / 60.0
    if value_unit.dimension == "energy" and channel_unit.dimension == "power":
        return ratio * 60.0 / minutes
    return None
