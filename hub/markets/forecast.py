"""The day's forecast from the configuration and the store, and the bids built from it.

* units: the campus's gas turbines and engines (capacity, heat rate; variable O&M from
  ``[ownership.costs]``), derated by ``[[markets.outages]]`` and ``[markets].outage_file``;
* solar: per solar asset, ``[markets].solar_forecast_file`` when configured, else a
  clear-sky shape at ``[markets].latitude``; solar outages cap it;
* battery: the battery assets, starting half full;
* load: persistence, the campus load (tenant and shared loads, validated layer) of the
  24 hours before the day, hour by hour (a 25-hour day repeats its last hour, a 23-hour
  day drops it);
* gas: the ``gas_index`` of ``[[indexes]]`` on the day (or ``gas_price``); energy price:
  the previous day's stored DA prices at the resource's node (or ``price_forecast``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np

from kwhub.core.markets.bid_builder import BuiltBids, build_energy_offers
from kwhub.core.markets.fixed import PRICE_SCALE
from kwhub.core.markets.forecast_files import available_mw, read_outages, read_solar_forecast
from kwhub.core.markets.optimizer import optimize_dispatch
from kwhub.core.markets.rt_offers import build_rt_offers
from kwhub.core.markets.rules import market_rules, rules_for
from kwhub.core.markets.surplus import (
    BatteryUnit,
    GenUnit,
    Surplus,
    clear_sky_solar,
    compute_surplus,
)
from kwhub.core.timeline import Span, local_day
from kwhub.hub.config import KwhubConfig
from kwhub.hub.markets import store
from kwhub.hub.markets.service import iso_timezone
from kwhub.hub.store import Database

GAS_KINDS = ("gas_turbine", "recip_engine")


def campus_units(cfg: KwhubConfig) -> list[GenUnit]:
    """The dispatchable units of the campus as the optimizer sees them."""
    costs = cfg.file.ownership.costs
    return [GenUnit(id=a.id, capacity_mw=a.capacity_kw / 1000, heat_rate_mmbtu_per_mwh=a.heat_rate_mmbtu_per_mwh or 9.0,
                    vom_per_mwh=float(costs[a.id].variable_om_per_mwh) if a.id in costs else 0.0)
            for a in cfg.campus.assets if a.kind in GAS_KINDS and a.capacity_kw > 0]


def campus_battery(cfg: KwhubConfig) -> BatteryUnit | None:
    bats = [a for a in cfg.campus.assets if a.kind == "battery" and a.capacity_kw > 0 and a.energy_kwh > 0]
    if not bats:
        return None
    power = sum(a.capacity_kw for a in bats) / 1000
    energy = sum(a.energy_kwh for a in bats) / 1000
    return BatteryUnit(id="+".join(a.id for a in bats), power_mw=power, energy_mwh=energy, soc_start_mwh=energy / 2)


def load_forecast(db: Database, cfg: KwhubConfig, span: Span, minutes: int = 60) -> np.ndarray:
    """Campus load (MW) per interval of ``minutes`` by persistence from the 24 hours before ``span``.

    Hourly values; a sub-hourly grid holds each hour's value in its intervals.
    """
    hours = span.seconds // 3600
    per_hour = 60 // minutes
    loads = [c for c in cfg.campus.channels if c.role in ("tenant_load", "shared_load")]
    if not loads:
        return np.zeros(hours * per_hour)
    before = Span(span.start - timedelta(hours=24), span.start)
    by_len: dict[int, list[str]] = {}
    for c in loads:
        by_len.setdefault(c.interval_minutes, []).append(c.id)
    total = np.zeros(24)
    for m_len, ids in by_len.items():
        m = db.intervals.read_matrix(ids, before, 60 if 60 % m_len == 0 else m_len, layer="validated")
        total += np.nan_to_num(m.values).sum(axis=0)[:24] / 1000.0  # kWh per hour -> MW
    hourly = np.resize(total, hours) if hours != 24 else total
    return np.repeat(hourly, per_hour)


@dataclass
class CampusForecast:
    """The forecast of one operating day on a grid of ``minutes``, and where each part came from."""

    units: list[GenUnit]
    availability: np.ndarray  # (G, T) 0..1
    solar_mw: np.ndarray
    battery: BatteryUnit | None
    load_mw: np.ndarray
    surplus: Surplus
    notes: list[str] = field(default_factory=list)


def _path(cfg: KwhubConfig, name: str) -> Path:
    p = Path(name)
    return p if p.is_absolute() else cfg.work_dir / p


def campus_forecast(db: Database, cfg: KwhubConfig, iso: str, day: date, minutes: int = 60) -> CampusForecast:
    """Units (with outages), solar, battery, load and the surplus of ``day`` on a ``minutes`` grid."""
    mc = cfg.file.markets
    tz = iso_timezone(cfg, iso)
    span = local_day(day, tz)
    n = span.seconds // (minutes * 60)
    units = campus_units(cfg)
    solar_assets = {a.id: a.capacity_kw / 1000 for a in cfg.campus.assets if a.kind == "solar" and a.capacity_kw > 0}
    notes: list[str] = []
    if mc.solar_forecast_file and solar_assets:
        path = _path(cfg, mc.solar_forecast_file)
        per_asset = read_solar_forecast(path, tz, span, minutes, solar_assets)
        solar_by = {a: per_asset.get(a, np.zeros(n)) for a in solar_assets}
        missing = sorted(set(solar_assets) - set(per_asset))
        notes.append(f"solar from {path.name}" + (f" (not in the file, taken as 0 MW: {', '.join(missing)})"
                                                  if missing else ""))
    else:
        solar_by = {a: clear_sky_solar(day, tz, cap, mc.latitude, minutes) for a, cap in solar_assets.items()}
        if solar_assets:
            notes.append(f"solar clear-sky at latitude {mc.latitude}")
    outages = list(mc.outages)
    caps = {u.id: u.capacity_mw for u in units} | solar_assets
    avail = available_mw(outages, caps, span, minutes) if outages else {}
    if mc.outage_file:
        path = _path(cfg, mc.outage_file)
        from_file = available_mw(read_outages(path, tz), caps, span, minutes, source=str(path))
        avail = {u: np.minimum(avail[u], a) if u in avail else a for u, a in from_file.items()}
    derated = sorted(u for u, a in avail.items() if (a < caps[u] - 1e-9).any())
    notes.append(f"outages/derates: {', '.join(derated)}" if derated else "outages/derates: none in the day")
    availability = np.ones((len(units), n))
    for g, u in enumerate(units):
        if u.id in avail:
            availability[g] = avail[u.id] / u.capacity_mw
    solar = np.zeros(n)
    for a, mw in solar_by.items():
        solar += np.minimum(mw, avail[a]) if a in avail else mw
    battery = campus_battery(cfg)
    load = load_forecast(db, cfg, span, minutes)
    surplus = compute_surplus(units, availability, solar, load, mc.reserve, battery=battery,
                              load_margin=mc.load_margin, interval_minutes=minutes)
    return CampusForecast(units, availability, solar, battery, load, surplus, notes)


def build_day_bids(db: Database, cfg: KwhubConfig, iso: str, day: date, resource: str) -> BuiltBids:
    """Forecast, optimise and build the day-ahead energy offer of ``resource`` for ``day``."""
    mc = cfg.file.markets
    tz = iso_timezone(cfg, iso)
    r = mc.resource(iso, resource)
    span = local_day(day, tz)
    hours = span.seconds // 3600
    fc = campus_forecast(db, cfg, iso, day, 60)
    units, battery, surplus = fc.units, fc.battery, fc.surplus
    gas = float(mc.gas_price)
    if mc.gas_index:
        series = cfg.settlement_options().index_series.get(mc.gas_index)
        if series is not None:
            gas = float(series.price_on(day, missing="previous")[0])
    prev = store.load_prices(db, iso, [r.price_node], "DA", span.start_epoch - 86_400, hours, 60)
    price = np.where(prev.ok[0], prev.units[0] / PRICE_SCALE, float(mc.price_forecast))
    plan = optimize_dispatch(units, surplus, price, np.full(hours, gas), battery=battery,
                             export_limit_mw=mc.export_limit_mw if mc.export_limit_mw is not None else np.inf,
                             import_limit_mw=mc.import_limit_mw)
    built = build_energy_offers(day, tz, iso, resource, plan, surplus, units, np.full(hours, gas),
                                rules_for(iso, "DA"), bid_id=resource,
                                battery_price=float(mc.battery_offer_price))
    built.notes.insert(0, f"gas {Decimal(repr(gas)):.3f} USD/MMBtu; load by persistence; "
                          f"{len(units)} units; reserve {mc.reserve.mode}; " + "; ".join(fc.notes))
    return built


def build_rt_bids(db: Database, cfg: KwhubConfig, iso: str, day: date, resource: str,
                  from_epoch: int | None = None) -> BuiltBids:
    """Forecast, optimise and build the real-time energy offer of ``resource`` for ``day``.

    The forecast and the plan run on the ISO's real-time grain (ERCOT 15 minutes, CAISO
    and PJM 5; :mod:`kwhub.core.markets.rt_offers`); the energy price is the day's stored
    DA price at the node (after the DA market cleared), else the previous day's, else
    ``price_forecast``. Hours starting before ``from_epoch`` are left out.
    """
    mc = cfg.file.markets
    tz = iso_timezone(cfg, iso)
    r = mc.resource(iso, resource)
    span = local_day(day, tz)
    hours = span.seconds // 3600
    rt = market_rules(iso).rt_minutes
    fc = campus_forecast(db, cfg, iso, day, rt)
    n = len(fc.load_mw)
    gas = float(mc.gas_price)
    if mc.gas_index:
        series = cfg.settlement_options().index_series.get(mc.gas_index)
        if series is not None:
            gas = float(series.price_on(day, missing="previous")[0])
    same = store.load_prices(db, iso, [r.price_node], "DA", span.start_epoch, hours, 60)
    prev = store.load_prices(db, iso, [r.price_node], "DA", span.start_epoch - 86_400, hours, 60)
    hourly = np.where(same.ok[0], same.units[0] / PRICE_SCALE,
                      np.where(prev.ok[0], prev.units[0] / PRICE_SCALE, float(mc.price_forecast)))
    price = np.repeat(hourly, 60 // rt)
    plan = optimize_dispatch(fc.units, fc.surplus, price, np.full(n, gas), battery=fc.battery,
                             export_limit_mw=mc.export_limit_mw if mc.export_limit_mw is not None else np.inf,
                             import_limit_mw=mc.import_limit_mw, interval_minutes=rt)
    built = build_rt_offers(day, tz, iso, resource, plan, fc.surplus, fc.units, np.full(n, gas),
                            rules_for(iso, "RT"), bid_id=resource, rt_minutes=rt, from_epoch=from_epoch,
                            battery_price=float(mc.battery_offer_price))
    built.notes.insert(0, f"real time on {rt}-minute intervals; gas {Decimal(repr(gas)):.3f} USD/MMBtu; "
                          f"{len(fc.units)} units; reserve {mc.reserve.mode}; " + "; ".join(fc.notes))
    return built
