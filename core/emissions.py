"""Emissions that follow the energy: per source, gas, method and interval, then per tenant.

The engine is pure numpy over a period's :class:`~kwhub.core.carbon_activity.CarbonActivity`,
its :class:`~kwhub.core.carbon_factors.FactorSet` and the tenants x sources x intervals split a
settlement run froze. Gases are kept apart (:data:`kwhub.core.factors.GASES`: CO2, CH4, N2O and
figures known only as CO2e); CO2e is computed at report time with a named GWP set.

Methods (:data:`METHODS`), each in kg per kWh delivered to the campus bus:

``location``
    combustion from fuel x the fuel's combustion factors (or, with
    ``btm_location_basis = "grid"``, every on-site kWh at the grid average); grid import at
    the location-based grid factor.
``market``
    on-site plants with their own (supplier-specific) factor; grid import at the residual
    mix. Certificates are applied per hour by :mod:`kwhub.core.cfe`, not here.
``upstream``
    well-to-tank emissions of the fuel behind each kWh (3a for who burns it, 3b for who buys
    the power) and of grid electricity (3b).
``td_loss``
    the T&D losses of grid import (3c): grid kWh x loss term x the location-based factor.

Combustion sources emit ``fuel_mmbtu x factor``; zero-combustion sources (solar, wind,
SMR) emit nothing; an asset with ``emission_factor_kg_per_mwh`` emits that (as CO2e as
given); a battery's discharge carries the running average intensity of the energy that
charged it (see :mod:`kwhub.core.carbon_activity`). Each source's emissions are spread over the
energy it delivered (output x (1 - loss_factor)), so tenants carry the losses of what they
take, and per interval ``sum over tenants + other sinks == sum over sources`` exactly (the
``unmetered`` pseudo-source and intervals without data have no figure: they are counted
as kWh without a figure, never as zero).

The engine is callable as plain functions for jobs and routes (the hub's
:mod:`kwhub.hub.esg.inputs` loads a period from the database and configuration).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from kwhub.core.allocation import UNMETERED
from kwhub.core.carbon_activity import CarbonActivity
from kwhub.core.carbon_factors import FactorSet, Rate
from kwhub.core.carbon_settings import EmissionsSettings
from kwhub.core.factors import GASES

METHODS: tuple[str, ...] = ("location", "market", "upstream", "td_loss")
M_LOC, M_MKT, M_UP, M_TD = range(4)
N_GAS = len(GASES)


def _gas_rates(rates: Mapping[str, Rate] | None, n: int) -> tuple[np.ndarray, bool]:
    """``(G, N)`` kg per base unit of each gas, and whether a factor exists."""
    out = np.zeros((N_GAS, n))
    if not rates:
        return out, False
    for g, gas in enumerate(GASES):
        if gas in rates:
            out[g] = rates[gas]
    return out, True


@dataclass
class Intensity:
    """Per method, source (``unmetered`` last) and interval: kg of each gas per kWh delivered.

    ``values`` (M, S+1, G, N); ``known`` (M, S+1, N) False where there is no figure;
    ``emitted`` (M, S, G, N) kg each source emitted (what it delivered and what it lost or
    gave to other sinks); ``cfe_share`` (S+1, N) the carbon-free fraction of each source's
    energy (batteries: the running carbon-free share of their charge).
    """

    sources: list[str]
    values: np.ndarray
    known: np.ndarray
    emitted: np.ndarray
    cfe_share: np.ndarray
    notes: list[str] = field(default_factory=list)


def _battery_carry(mix: np.ndarray, per_kwh: np.ndarray, known: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """Running average intensity (G, N) of charging energy ``mix`` (S, N) at ``per_kwh`` (S, G, N).

    Returns the average, where it is known, and whether discharge before the first charge
    took the period average.
    """
    charged = mix.sum(axis=0)
    carried = np.einsum("sn,sgn->gn", mix, per_kwh)
    cum_e = np.cumsum(carried, axis=1)
    cum_c = np.cumsum(charged)
    unknown_in = np.cumsum((mix * ~known).sum(axis=0)) > 0
    total = cum_c[-1] if cum_c.size else 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        avg = np.where(cum_c > 0, cum_e / np.where(cum_c > 0, cum_c, 1.0), 0.0)
    early = cum_c <= 0
    if total > 0 and early.any():
        avg[:, early] = (cum_e[:, -1] / total)[:, None]
    ok = ~unknown_in if total > 0 else np.zeros_like(charged, dtype=bool)
    if total > 0 and early.any() and unknown_in[-1]:
        ok[early] = False
    return avg, ok, bool(total > 0 and early.any())


def source_intensity(activity: CarbonActivity, factors: FactorSet, settings: EmissionsSettings,
                     tracked: frozenset[str] = frozenset()) -> Intensity:
    """The :class:`Intensity` of every source of ``activity`` (see the module docs).

    ``tracked``: sources whose carbon-free energy counts only through claimed granular
    certificates (a device that issues certificates), so their ``cfe_share`` is 0.
    """
    n, lf = activity.n, activity.loss_factor
    srcs = activity.sources
    s_n = len(srcs)
    vals = np.zeros((len(METHODS), s_n + 1, N_GAS, n))
    known = np.ones((len(METHODS), s_n + 1, n), dtype=bool)
    emitted = np.zeros((len(METHODS), s_n, N_GAS, n))
    cfe = np.zeros((s_n + 1, n))
    notes: list[str] = []
    delivered = activity.output_kwh * (1.0 - lf)
    loc, has_loc = _gas_rates(factors.grid.get("location"), n)
    mkt, has_mkt = _gas_rates(factors.grid.get("market"), n)
    upg, has_upg = _gas_rates(factors.grid.get("upstream"), n)
    loss = factors.loss_rate
    loss_term = None if loss is None else (loss / (1.0 - loss) if settings.loss_term == "gross_up" else loss)
    grid_basis = settings.btm_location_basis == "grid"
    for i, s in enumerate(srcs):
        out = activity.output_kwh[i]
        if s.role == "battery_discharge":
            continue
        if s.role == "grid_import":
            for m, (rate, has) in ((M_LOC, (loc, has_loc)), (M_MKT, (mkt, has_mkt)), (M_UP, (upg, has_upg))):
                emitted[m, i] = rate * out
                known[m, i] = has
            if loss_term is not None and has_loc:
                emitted[M_TD, i] = loc * out * loss_term
            else:
                known[M_TD, i] = False
        elif s.combustion:
            comb = factors.combustion.get(s.fuel)
            fuel = activity.fuel_mmbtu[i]
            have = ~np.isnan(fuel)
            f0 = np.where(have, fuel, 0.0)
            if comb is None:
                known[M_LOC, i] = known[M_MKT, i] = False
                if out.any():
                    notes.append(f"{s.id}: no combustion factor for fuel {s.fuel or '(none set: give the asset a fuel)'}"
                                 ": its energy has no emissions figure")
            else:
                rate, _ = _gas_rates(comb, n)
                emitted[M_MKT, i] = rate * f0
                emitted[M_LOC, i] = emitted[M_MKT, i]
                known[M_MKT, i] = known[M_LOC, i] = have
            up = factors.fuel_upstream.get(s.fuel)
            if up is None:
                known[M_UP, i] = False
            else:
                rate, _ = _gas_rates(up, n)
                emitted[M_UP, i] = rate * f0
                known[M_UP, i] = have
            if not have.all():
                notes.append(f"{s.id}: {int((~have).sum())} interval(s) without a fuel reading and without a heat "
                             "rate: its energy in them has no emissions figure")
        elif s.override_kg_per_mwh is not None:
            emitted[M_MKT, i, GASES.index("co2e")] = out * (s.override_kg_per_mwh / 1000.0)
            emitted[M_LOC, i] = emitted[M_MKT, i]
        if s.role == "generation" and not s.combustion and s.kind in settings.carbon_free_kinds and s.id not in tracked:
            cfe[i] = 1.0
        if grid_basis and s.role == "generation":
            emitted[M_LOC, i] = loc * delivered[i]
            known[M_LOC, i] = has_loc
    spread = np.broadcast_to(delivered[:, None, :], emitted.shape[1:])
    for m in range(len(METHODS)):
        np.divide(emitted[m], spread, out=vals[m, :s_n], where=spread > 0)
    for i, s in enumerate(srcs):
        if s.role != "battery_discharge":
            continue
        mix = activity.charge_from.get(s.id)
        if mix is None or not mix.any():
            if activity.output_kwh[i].any():
                notes.append(f"{s.id}: discharged without any metered charge in the period: its energy has no "
                             "emissions figure")
            known[:, i] = False
            continue
        for m in range(len(METHODS)):
            avg, carried_ok, before_first = _battery_carry(mix, vals[m, :s_n], known[m, :s_n])
            vals[m, i] = avg * (1.0 / (1.0 - lf))
            emitted[m, i] = avg * activity.output_kwh[i]
            known[m, i] = carried_ok
            if before_first and m == M_LOC:
                notes.append(f"{s.id}: energy discharged before the period's first charge carries the period's "
                             "average charging intensity")
        charged = mix.sum(axis=0)
        cum_c = np.cumsum(charged)
        cum_cfe = np.cumsum((mix * cfe[:s_n]).sum(axis=0))
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(cum_c > 0, cum_cfe / np.where(cum_c > 0, cum_c, 1.0), 0.0)
        if cum_c[-1] > 0:
            share[cum_c <= 0] = cum_cfe[-1] / cum_c[-1]
        cfe[i] = share
    known[:, s_n] = False  # unmetered
    if activity.charge_unattributed_kwh:
        notes.append(f"{activity.charge_unattributed_kwh:.3f} kWh of battery charge had no metered supply to come "
                     "from; it carries no emissions")
    return Intensity(sources=[s.id for s in srcs] + [UNMETERED], values=vals, known=known, emitted=emitted,
                     cfe_share=cfe, notes=notes + list(factors.notes))


@dataclass
class TenantEmissions:
    """Period totals per tenant: ``kwh`` (T, S+1), ``kg`` (M, T, S+1, G), ``unknown_kwh`` (M, T, S+1)."""

    tenants: list[str]
    sources: list[str]
    kwh: np.ndarray
    kg: np.ndarray
    unknown_kwh: np.ndarray


def tenant_emissions(tenants: list[str], kwh: np.ndarray, intensity: Intensity) -> TenantEmissions:
    """Totals of tenants whose split is ``kwh`` (T, S+1, N): one matrix product per method and source."""
    t_n, s_n, _ = kwh.shape
    if s_n != len(intensity.sources):
        raise ValueError(f"the split has {s_n} sources, the intensity {len(intensity.sources)}")
    kg = np.zeros((len(METHODS), t_n, s_n, N_GAS))
    unknown = np.zeros((len(METHODS), t_n, s_n))
    for s in range(s_n):
        block = np.ascontiguousarray(kwh[:, s, :])
        if not block.any():
            continue
        for m in range(len(METHODS)):
            kg[m, :, s, :] = block @ intensity.values[m, s].T
            unknown[m, :, s] = block @ (~intensity.known[m, s]).astype(np.float64)
    return TenantEmissions(tenants=list(tenants), sources=list(intensity.sources), kwh=kwh.sum(axis=2), kg=kg,
                           unknown_kwh=unknown)


def tenant_interval_kg(kwh: np.ndarray, intensity: Intensity, method: int) -> np.ndarray:
    """(T, G, N) kg per tenant, gas and interval under ``method``."""
    return np.einsum("tsn,sgn->tgn", kwh, intensity.values[method])


def other_sinks_kg(activity: CarbonActivity, kwh: np.ndarray, intensity: Intensity, method: int) -> np.ndarray:
    """(G, N) kg of the energy no tenant took (battery charge, export, surplus) and of idle burn.

    With :func:`tenant_interval_kg`, ``tenants + other == intensity.emitted.sum(sources)``
    per interval: the conservation the tests check.
    """
    s_n = len(activity.sources)
    delivered = activity.output_kwh * (1.0 - activity.loss_factor)
    rest = delivered - kwh[:, :s_n, :].sum(axis=0)
    spread = np.einsum("sn,sgn->gn", rest, intensity.values[method, :s_n])
    idle = np.where(delivered[:, None, :] > 0, 0.0, intensity.emitted[method]).sum(axis=0)
    return spread + idle
