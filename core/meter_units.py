"""Units a meter value is written in, and how a value converts to its channel's unit.

Four dimensions: energy per interval (Wh, kWh, MWh), power (W, kW, MW; energy once
multiplied by the interval length), fuel (MMBtu) and fraction (0..1, e.g. availability).
Energy and power convert into each other over an interval; fuel and fraction convert to
nothing else. A unit is recognised case-insensitively.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from kwhub.core.intervals import ChannelSeries, IntervalBatch, IntervalDataError


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


# the unit an interval of each register quantity is delivered in once integrated over the interval
INTERVAL_UNIT = {"energy": "kWh", "power": "kWh", "fuel": "MMBtu", "fuel_rate": "MMBtu", "ratio": "fraction",
                 "status": "fraction"}


def in_channel_unit(series: ChannelSeries, channel_unit: str | None, *, source: str = "") -> ChannelSeries:
    """``series`` with its values in its channel's unit: the one unit rule of every meter adapter.

    An adapter says which unit its values are in (``series.unit``: ``kWh``, ``MMBtu``,
    ``fraction`` ...); empty means already in the channel's unit (nothing is checked). A
    unit that converts (Wh, kWh, MWh; kW over the interval) is converted; one that does not
    (MMBtu into a kWh channel, kWh into a fraction) is an :class:`IntervalDataError` naming
    the source, channel and both units. ``channel_unit`` None: a channel kwhub does not know
    yet, kept in kWh.
    """
    if not series.unit:
        return series
    value_unit = meter_unit(series.unit)
    target = meter_unit(channel_unit or "kWh")
    if value_unit is None or target is None:
        bad = series.unit if value_unit is None else channel_unit
        raise IntervalDataError(f"unit {bad!r} is not one of {KNOWN_TEXT}", source=source,
                                where=series.channel_id, field="unit")
    factor = conversion(value_unit, target, series.interval_minutes)
    if factor is None:
        raise IntervalDataError(f"values in {value_unit.name}, but channel {series.channel_id} is configured in "
                                f"{target.name} ({value_unit.dimension} is not {target.dimension}); map the value "
                                "to a channel of its unit, or fix the channel's `unit` in kwhub.toml",
                                source=source, where=series.channel_id, field="unit")
    values = series.values if factor == 1.0 else series.values * factor
    return replace(series, values=values, unit=target.name)


def apply_channel_units(batch: IntervalBatch, channel_units: Mapping[str, str]) -> IntervalBatch:
    """The batch with every series in its channel's unit (see :func:`in_channel_unit`);
    ``channel_units`` maps the known channels' ids to their units."""
    if not any(s.unit for s in batch.series):
        return batch
    series = [in_channel_unit(s, channel_units.get(s.channel_id), source=batch.source) for s in batch.series]
    return replace(batch, series=series)
