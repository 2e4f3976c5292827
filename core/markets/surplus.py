"""Forecast and surplus: what may be offered without touching tenant load.

Per interval: the available output of each generating unit (capacity x availability, so
outages and derates count), a solar forecast (a file's values, yesterday's profile, or a
clear-sky shape), the battery's discharge ability, the campus load forecast made
pessimistic, and the reserve margin of the configuration. The surplus is what is left
after the load and the reserve: it is the most a bid may offer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from kwhub.core.markets.config import ReserveRule  # noqa: F401  (defined with the [markets] section)
from kwhub.core.timeline import local_day, zone


class GenUnit(BaseModel):
    """A dispatchable generating unit (gas turbine, engine): capacity and marginal cost."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    capacity_mw: float = Field(gt=0)
    heat_rate_mmbtu_per_mwh: float = Field(ge=0)
    vom_per_mwh: float = 0.0

    def marginal_cost(self, gas_price: float) -> float:
        """$/MWh: heat rate x gas index + variable O&M."""
        return self.heat_rate_mmbtu_per_mwh * gas_price + self.vom_per_mwh


class BatteryUnit(BaseModel):
    """A battery: power, energy, state-of-charge limits and efficiencies."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    power_mw: float = Field(gt=0)
    energy_mwh: float = Field(gt=0)
    soc_start_mwh: float = Field(ge=0)
    soc_min_mwh: float = 0.0
    soc_max_mwh: float | None = None
    charge_efficiency: float = Field(default=0.95, gt=0, le=1)
    discharge_efficiency: float = Field(default=0.95, gt=0, le=1)

    @property
    def soc_max(self) -> float:
        return self.energy_mwh if self.soc_max_mwh is None else self.soc_max_mwh


class ForecastError(ValueError):
    """Forecast inputs that do not fit together (lengths, negative values)."""


@dataclass
class Surplus:
    """The surplus calculation per interval (MW, ``T`` intervals)."""

    unit_available_mw: np.ndarray  # (G, T)
    solar_mw: np.ndarray
    battery_mw: np.ndarray  # discharge the state of charge allows
    load_mw: np.ndarray  # pessimistic load
    reserve_mw: np.ndarray
    surplus_mw: np.ndarray

    def explain(self, t: int) -> str:
        return (f"available {self.unit_available_mw[:, t].sum():.1f} + solar {self.solar_mw[t]:.1f} + battery "
                f"{self.battery_mw[t]:.1f} - load {self.load_mw[t]:.1f} - reserve {self.reserve_mw[t]:.1f} "
                f"= surplus {self.surplus_mw[t]:.1f} MW")


def clear_sky_solar(day: date, tz: str, capacity_mw: float, latitude: float, minutes: int = 60) -> np.ndarray:
    """A clear-sky shape of a plant's output (MW) per interval of a local day.

    The sun's elevation from the declination of the day and the hour angle of local
    standard solar time (longitude taken at the zone's meridian); output is capacity x
    sin(elevation), zero at night. A deliberately simple model for when no forecast file
    is configured.
    """
    span = local_day(day, tz)
    step = minutes * 60
    mids = span.start_epoch + step * np.arange(span.seconds // step) + step // 2
    doy = day.timetuple().tm_yday
    decl = math.radians(23.44) * math.sin(2 * math.pi * (284 + doy) / 365)
    lat = math.radians(latitude)
    # standard time of the zone (its mid-January offset), so solar noon does not move with DST
    jan = datetime(day.year, 1, 15, 12, tzinfo=UTC).astimezone(zone(tz)).utcoffset()
    std_hours = jan.total_seconds() / 3600 if jan is not None else 0.0
    solar_hours = ((mids % 86_400) / 3600.0 + std_hours) % 24
    hour_angle = np.radians(15.0 * (solar_hours - 12.0))
    sin_el = math.sin(lat) * math.sin(decl) + math.cos(lat) * math.cos(decl) * np.cos(hour_angle)
    return capacity_mw * np.clip(sin_el, 0.0, None)


def persistence_solar(history_mw: np.ndarray, n: int) -> np.ndarray:
    """Yesterday's profile as today's forecast (the last ``n`` values of ``history_mw``)."""
    if len(history_mw) < n:
        raise ForecastError(f"persistence needs {n} values of history, got {len(history_mw)}")
    return np.asarray(history_mw[-n:], dtype=np.float64).copy()


def compute_surplus(units: list[GenUnit], availability: np.ndarray, solar_mw: np.ndarray, load_mw: np.ndarray,
                    reserve: ReserveRule, battery: BatteryUnit | None = None, load_margin: float = 0.0,
                    load_error_samples: np.ndarray | None = None, interval_minutes: int = 60) -> Surplus:
    """The surplus per interval; see the module doc.

    ``availability`` is ``(G, T)`` in 0..1 (1 = fully available, 0.5 = derated by half,
    0 = on outage); ``load_margin`` makes the load forecast pessimistic (0.05 = +5 %).
    """
    load = np.asarray(load_mw, dtype=np.float64)
    t = len(load)
    avail_frac = np.asarray(availability, dtype=np.float64).reshape(len(units), -1) if units else np.zeros((0, t))
    solar = np.asarray(solar_mw, dtype=np.float64)
    if avail_frac.shape[1] != t or len(solar) != t:
        raise ForecastError(f"forecast lengths differ: load {t}, solar {len(solar)}, availability {avail_frac.shape}")
    if (avail_frac < 0).any() or (avail_frac > 1).any():
        raise ForecastError("availability must be within 0..1 (1 = available, 0 = outage)")
    if (load < 0).any() or (solar < 0).any():
        raise ForecastError("load and solar forecasts must not be negative")
    caps = np.array([u.capacity_mw for u in units], dtype=np.float64)
    unit_avail = caps[:, None] * avail_frac
    pessimistic = load * (1.0 + load_margin)
    if reserve.mode == "fixed":
        res = np.full(t, reserve.mw)
    elif reserve.mode == "largest_unit":
        res = (unit_avail.max(axis=0) if len(units) else np.zeros(t)) + reserve.mw
    else:
        if load_error_samples is None:
            raise ForecastError("reserve mode load_error needs load forecast error samples")
        res = np.quantile(np.asarray(load_error_samples, dtype=np.float64), reserve.quantile, axis=0) + reserve.mw
        res = np.broadcast_to(res, (t,)).astype(np.float64)
    batt = np.zeros(t)
    if battery is not None:
        hours = interval_minutes / 60.0
        usable = max(battery.soc_start_mwh - battery.soc_min_mwh, 0.0) * battery.discharge_efficiency
        batt = np.full(t, min(battery.power_mw, usable / hours))
    surplus = np.maximum(unit_avail.sum(axis=0) + solar + batt - pessimistic - res, 0.0)
    return Surplus(unit_avail, solar, batt, pessimistic, res, surplus)


def decimal_mw(x: float, places: int = 1) -> Decimal:
    """MW rounded *down* to ``places`` decimals: an offer never exceeds what exists."""
    q = Decimal(1).scaleb(-places)
    return Decimal(repr(float(x))).quantize(q, rounding="ROUND_FLOOR")
