"""The day's forecast from the configuration and the store, and the bids built from it.

* units: the campus's gas turbines and engines (capacity, heat rate; variable O&M from
  ``[ownership.costs]``), all available (no outage feed is configured yet);
* solar: a clear-sky shape of the solar assets at ``[markets].latitude``;
* battery: the battery assets, starting half full;
* load: persistence, the campus load (tenant and shared loads, validated layer) of the
  24 hours before the day, hour by hour (a 25-hour day repeats its last hour, a 23-hour
  day drops it);
* gas: the ``gas_index`` of ``[[indexes]]`` on the day (or ``gas_price``); energy price:
  the previous day's stored DA prices at the resource's node (or ``price_forecast``).
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import numpy as np

from kwhub.core.markets.bid_builder import BuiltBids, build_energy_offers
from kwhub.core.markets.curve_rules import DEFAULT_RULES
from kwhub.core.markets.fixed import PRICE_SCALE
from kwhub.core.markets.optimizer import optimize_dispatch
from kwhub.core.markets.surplus import BatteryUnit, GenUnit, clear_sky_solar, compute_surplus
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


def load_forecast(db: Database, cfg: KwhubConfig, span: Span) -> np.ndarray:
    """Hourly campus load (MW) by persistence from the 24 hours before ``span``."""
    hours = span.seconds // 3600
    loads = [c for c in cfg.campus.channels if c.role in ("tenant_load", "shared_load")]
    if not loads:
        return np.zeros(hours)
    before = Span(span.start - timedelta(hours=24), span.start)
    by_len: dict[int, list[str]] = {}
    for c in loads:
        by_len.setdefault(c.interval_minutes, []).append(c.id)
    total = np.zeros(24)
    for minutes, ids in by_len.items():
        m = db.intervals.read_matrix(ids, before, 60 if 60 % minutes == 0 else minutes, layer="validated")
        total += np.nan_to_num(m.values).sum(axis=0)[:24] / 1000.0  # kWh per hour -> MW
    return np.resize(total, hours) if hours != 24 else total


def build_day_bids(db: Database, cfg: KwhubConfig, iso: str, day: date, resource: str) -> BuiltBids:
    """Forecast, optimise and build the day-ahead energy offer of ``resource`` for ``day``."""
    mc = cfg.file.markets
    tz = iso_timezone(cfg, iso)
    r = mc.resource(iso, resource)
    span = local_day(day, tz)
    hours = span.seconds // 3600
    units = campus_units(cfg)
    solar_cap = sum(a.capacity_kw for a in cfg.campus.assets if a.kind == "solar") / 1000
    solar = clear_sky_solar(day, tz, solar_cap, mc.latitude) if solar_cap else np.zeros(hours)
    battery = campus_battery(cfg)
    load = load_forecast(db, cfg, span)
    surplus = compute_surplus(units, np.ones((len(units), hours)), solar, load, mc.reserve, battery=battery,
                              load_margin=mc.load_margin)
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
                                DEFAULT_RULES[(iso, "DA")], bid_id=resource,
                                battery_price=float(mc.battery_offer_price))
    built.notes.insert(0, f"gas {Decimal(repr(gas)):.3f} USD/MMBtu; load by persistence; "
                          f"{len(units)} units; reserve {mc.reserve.mode}")
    return built
