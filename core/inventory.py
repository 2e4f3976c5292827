"""Who reports what: the scopes of each party, from computed periods to a :class:`Disclosure`.

The mapping follows the campus roles (``../shared/ESG.md`` section 1):

* a **tenant** reports the energy allocated to it as Scope 2, twice: location-based and
  market-based (the market figure after hourly matching of its certificates, shown as a
  separate ``certificates`` row so that the rows before it equal its invoice lines); the
  upstream emissions of that energy as 3b and the T&D losses of its grid energy as 3c;
* an **owner** (an IPP, a joint-venture partner, the operator) reports the combustion of
  its plants as Scope 1 and their fuel's upstream as 3a, by equity share
  (``consolidation = "equity_share"``), or the **operator** reports all of it
  (``"operational_control"``);
* a **seller** of energy it did not generate (grid import, another owner's share of a
  plant, bought and resold to a tenant) reports its generation emissions as 3d.

The Scope 1 of a plant counts everything it burned, whoever took the energy (tenants,
battery, export); the tenants' Scope 2 counts what they took. Figures without a factor or
without data are listed as ``unknown_kwh`` beside the rows, never silently zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

import numpy as np

from kwhub.core.allocation import UNMETERED
from kwhub.core.campus import Campus
from kwhub.core.carbon_amounts import GasKg, kg
from kwhub.core.carbon_period import PeriodCarbon
from kwhub.core.carbon_settings import EmissionsSettings
from kwhub.core.cfe import HourlyMatch
from kwhub.core.disclosure import CfeSummary, Disclosure, HourlyTable, InventoryRow, PartyInventory
from kwhub.core.emissions import M_LOC, M_MKT, M_TD, M_UP, N_GAS
from kwhub.core.factors import GwpSet


class InventoryError(ValueError):
    """An inventory that cannot be attributed (no operator where one is needed, ...)."""


@dataclass
class _Acc:
    kg: np.ndarray = field(default_factory=lambda: np.zeros(N_GAS))
    energy: float = 0.0
    fuel: float = 0.0
    unknown: float = 0.0
    refs: list[str] = field(default_factory=list)
    method: str = ""

    def add(self, kgs: np.ndarray, energy: float = 0.0, fuel: float = 0.0, unknown: float = 0.0,
            refs: Sequence[str] = (), method: str = "") -> None:
        self.kg = self.kg + kgs
        self.energy += energy
        self.fuel += fuel
        self.unknown += unknown
        self.refs += [r for r in refs if r not in self.refs]
        if method and method not in self.method.split("; "):
            self.method = f"{self.method}; {method}" if self.method else method


def operator_of(campus: Campus, settings: EmissionsSettings) -> str:
    """The operating party: ``[emissions] operator``, else the one party with role ``operator`` (or "")."""
    if settings.operator:
        return settings.operator
    ops = [p.id for p in campus.parties if "operator" in p.roles]
    return ops[0] if len(ops) == 1 else ""


def _shares(campus: Campus, settings: EmissionsSettings, operator: str) -> dict[str, dict[str, float]]:
    """``{asset: {party: share}}`` of on-site assets under the consolidation approach."""
    out: dict[str, dict[str, float]] = {}
    for a in campus.assets:
        if a.kind == "grid_tie":
            continue
        if settings.consolidation == "operational_control":
            if not operator:
                raise InventoryError("consolidation = \"operational_control\" needs the operator: set [emissions] "
                                     "operator or give one party the role operator")
            out[a.id] = {operator: 1.0}
        elif a.owners:
            out[a.id] = {o.party: float(o.share) for o in a.owners}
        elif operator:
            out[a.id] = {operator: 1.0}
    return out


def _source_refs(pc: PeriodCarbon, settings: EmissionsSettings) -> dict[str, dict[int, list[str]]]:
    """Factor refs per source and method."""
    f = pc.input.factors
    out: dict[str, dict[int, list[str]]] = {}
    for s in pc.input.activity.sources:
        if s.role == "grid_import":
            out[s.id] = {M_LOC: f.refs.get("grid_location", []), M_MKT: f.refs.get("grid_residual_mix", []),
                         M_UP: f.refs.get("grid_upstream", []),
                         M_TD: f.refs.get("grid_location", []) + f.refs.get("grid_loss_rate", [])}
        elif s.combustion:
            comb = f.refs.get(f"combustion:{s.fuel}", [])
            loc = f.refs.get("grid_location", []) if settings.btm_location_basis == "grid" else comb
            out[s.id] = {M_LOC: loc, M_MKT: comb, M_UP: f.refs.get(f"upstream:{s.fuel}", []), M_TD: []}
        elif s.override_kg_per_mwh is not None:
            own = [f"asset:{s.id}:emission_factor_kg_per_mwh={s.override_kg_per_mwh!r}"]
            out[s.id] = {M_LOC: own, M_MKT: own, M_UP: [], M_TD: []}
        else:
            out[s.id] = {M_LOC: [], M_MKT: [], M_UP: [], M_TD: []}
    for s in pc.input.activity.sources:
        if s.role == "battery_discharge":
            mix = pc.input.activity.charge_from.get(s.id)
            fed = [] if mix is None else [src.id for k, src in enumerate(pc.input.activity.sources) if mix[k].any()]
            out[s.id] = {m: sorted({r for src in fed for r in out.get(src, {}).get(m, [])}) for m in (M_LOC, M_MKT, M_UP, M_TD)}
    return out


_METHOD_TEXT = {
    "grid_import": {M_LOC: "grid import at the location-based grid factor", M_MKT: "grid import at the residual mix",
                    M_UP: "upstream of grid electricity", M_TD: "T&D losses of grid import (loss term x location factor)"},
    "battery_discharge": {M_LOC: "battery: running average of its charging energy",
                          M_MKT: "battery: running average of its charging energy",
                          M_UP: "battery: running average upstream of its charging energy",
                          M_TD: "battery: running average T&D losses of its charging energy"},
}


def _method(pc: PeriodCarbon, i: int, m: int, settings: EmissionsSettings) -> str:
    s = pc.input.activity.sources[i]
    if s.role in _METHOD_TEXT:
        return _METHOD_TEXT[s.role][m]
    if s.role == "generation" and m == M_LOC and settings.btm_location_basis == "grid":
        return "on-site supply at the location-based grid factor (btm_location_basis = grid)"
    if s.combustion:
        metered = int(pc.input.activity.fuel_metered[i].sum())
        derived = pc.input.activity.n - metered
        how = ("fuel meter" if not derived else "output x heat rate" if not metered
               else f"fuel meter ({metered} intervals), output x heat rate ({derived} intervals)")
        return f"{how} x {'upstream' if m == M_UP else 'combustion'} factors ({s.fuel})"
    if s.override_kg_per_mwh is not None:
        return "the asset's own emission factor"
    return "zero-combustion source"


def build_disclosure(campus: Campus, campus_name: str, period: str, first: date, last: date,
                     periods: Sequence[PeriodCarbon], settings: EmissionsSettings, gwp: GwpSet,
                     names: dict[str, str] | None = None) -> Disclosure:
    """The inventory of every reporting party over ``periods`` (months of one report)."""
    operator = operator_of(campus, settings)
    shares = _shares(campus, settings, operator)
    accs: dict[tuple[str, str, str, str], _Acc] = {}
    hourly: dict[str, list[HourlyMatch]] = {}
    notes: list[str] = []

    def acc(party: str, scope: str, category: str, asset: str) -> _Acc:
        return accs.setdefault((party, scope, category, asset), _Acc())

    for pc in periods:
        refs = _source_refs(pc, settings)
        act = pc.input.activity
        te = pc.tenants
        notes += [f"{pc.input.period}: {n}" for n in pc.intensity.notes if f"{pc.input.period}: {n}" not in notes]
        for k, tenant in enumerate(te.tenants):
            for i, src in enumerate(te.sources):
                energy = float(te.kwh[k, i])
                if energy == 0.0:
                    continue
                if src == UNMETERED:
                    for cat in ("location", "market"):
                        acc(tenant, "2", cat, src).add(np.zeros(N_GAS), energy, unknown=energy,
                                                        method="load the metered supply did not cover: no figure")
                    continue
                role = act.sources[i].role
                for cat, m in (("location", M_LOC), ("market", M_MKT)):
                    acc(tenant, "2", cat, src).add(te.kg[m, k, i], energy, unknown=float(te.unknown_kwh[m, k, i]),
                                                   refs=refs[src][m], method=_method(pc, i, m, settings))
                acc(tenant, "3", "3b", src).add(te.kg[M_UP, k, i], energy, unknown=float(te.unknown_kwh[M_UP, k, i]),
                                                refs=refs[src][M_UP], method=_method(pc, i, M_UP, settings))
                if role in ("grid_import", "battery_discharge"):
                    acc(tenant, "3", "3c", src).add(te.kg[M_TD, k, i], energy, unknown=float(te.unknown_kwh[M_TD, k, i]),
                                                    refs=refs[src][M_TD], method=_method(pc, i, M_TD, settings))
                seller = pc.input.sellers.get((tenant, src))
                if seller:
                    own = shares.get(src, {}).get(seller, 0.0)
                    if own < 1.0:
                        m = M_LOC if role == "grid_import" else M_MKT
                        acc(seller, "3", "3d", src).add(te.kg[m, k, i] * (1.0 - own), energy * (1.0 - own),
                                                        unknown=float(te.unknown_kwh[m, k, i]) * (1.0 - own),
                                                        refs=refs[src][m],
                                                        method="generation of energy bought and resold to a tenant")
            hm = pc.hourly.get(tenant)
            if hm is not None:
                before = hm.market_kg_before.sum(axis=0)
                after = hm.market_kg.sum(axis=0)
                if hm.certificates_kwh.any():
                    acc(tenant, "2", "market", "certificates").add(
                        after - before, float(np.minimum(hm.certificates_kwh, np.maximum(hm.load_kwh - hm.onsite_cfe_kwh, 0)).sum()),
                        method="granular certificates claimed, matched hour by hour (no carry-over)")
                hourly.setdefault(tenant, []).append(hm)
        for i, s in enumerate(act.sources):
            if not pc.input.plants:
                break
            if s.role != "generation" or not (s.combustion or (s.override_kg_per_mwh or 0) > 0):
                continue
            owners = shares.get(s.id)
            if not owners:
                notes.append(f"{pc.input.period}: {s.id} has no owner and there is no operator: its Scope 1 is not "
                             "reported by anyone")
                continue
            e1 = pc.intensity.emitted[M_MKT, i].sum(axis=1)
            e3 = pc.intensity.emitted[M_UP, i].sum(axis=1)
            out = float(act.output_kwh[i].sum())
            fuel = float(np.nansum(act.fuel_mmbtu[i])) if s.combustion else 0.0
            unk1 = float(act.output_kwh[i][~pc.intensity.known[M_MKT, i]].sum())
            unk3 = float(act.output_kwh[i][~pc.intensity.known[M_UP, i]].sum())
            for party, share in owners.items():
                acc(party, "1", "", s.id).add(e1 * share, out * share, fuel * share, unk1 * share,
                                              refs[s.id][M_MKT], _method(pc, i, M_MKT, settings))
                if s.combustion:
                    acc(party, "3", "3a", s.id).add(e3 * share, out * share, fuel * share, unk3 * share,
                                                    refs[s.id][M_UP], _method(pc, i, M_UP, settings))
    roles: dict[str, list[str]] = {p.id: [str(r) for r in p.roles] for p in campus.parties}
    names = names or {p.id: p.name for p in campus.parties}
    parties: dict[str, PartyInventory] = {}
    order = {"1": 0, "2": 1, "3": 2}
    for (party, scope, cat, asset), a in sorted(accs.items(), key=lambda kv: (kv[0][0], order[kv[0][1]], kv[0][2], kv[0][3])):
        inv = parties.setdefault(party, PartyInventory(party=party, name=names.get(party, party), roles=roles.get(party, [])))
        gas = GasKg.of(a.kg)
        inv.rows.append(InventoryRow(scope=scope, category=cat, asset=asset, energy_kwh=kg(a.energy),  # type: ignore[arg-type]
                                     fuel_mmbtu=kg(a.fuel), kg=gas, kg_co2e=gas.co2e(gwp), method=a.method,
                                     factors=a.refs, unknown_kwh=kg(a.unknown)))
    for tenant, matches in hourly.items():
        inv = parties.setdefault(tenant, PartyInventory(party=tenant, name=names.get(tenant, tenant),
                                                        roles=roles.get(tenant, [])))
        inv.cfe, inv.hourly = _cfe(matches, gwp)
    lineage: list[dict[str, str]] = []
    for pc in periods:
        lineage += [d for d in pc.input.factors.lineage if d not in lineage]
    region = periods[0].input.factors.region if periods else ""
    return Disclosure(campus=campus_name, period=period, start=first, end=last, gwp_set=gwp.name, region=region,
                      consolidation=settings.consolidation, parties=list(parties.values()),
                      runs=[r for pc in periods for r in pc.input.runs], factors=lineage, notes=notes)


def _fixed(values: np.ndarray, places: int = 3) -> list[str]:
    """Floats as decimal strings with ``places`` decimals (vectorised; -0 printed as 0)."""
    out: list[str] = np.char.mod(f"%.{places}f", np.round(values, places) + 0.0).tolist()
    return out


def _cfe(matches: list[HourlyMatch], gwp: GwpSet) -> tuple[CfeSummary, HourlyTable]:
    load = np.concatenate([m.load_kwh for m in matches])
    onsite = np.concatenate([m.onsite_cfe_kwh for m in matches])
    certs = np.concatenate([m.certificates_kwh for m in matches])
    score = np.concatenate([m.score_kwh for m in matches])
    matched = np.concatenate([m.matched_kwh for m in matches])
    share = np.concatenate([m.grid_cfe_share for m in matches])
    hours = np.concatenate([m.hours for m in matches])
    w = gwp.weights()
    before = np.concatenate([m.market_kg_before for m in matches]) @ w
    after = np.concatenate([m.market_kg for m in matches]) @ w
    total = float(load.sum())
    pct = Decimal(repr(100.0 * float(score.sum()) / total)).quantize(Decimal("0.01")) if total else Decimal("0.00")
    summary = CfeSummary(hours=int(hours.size), load_kwh=kg(total), onsite_cfe_kwh=kg(float(onsite.sum())),
                         certificates_kwh=kg(float(certs.sum())), matched_kwh=kg(float(matched.sum())),
                         surplus_kwh=kg(float(np.maximum(onsite + certs - load, 0.0).sum())), score_pct=pct)
    stamps = [f"{s}Z" for s in np.datetime_as_string(hours.astype("datetime64[s]"), unit="s").tolist()]
    table = HourlyTable(hour_start=stamps, load_kwh=_fixed(load), onsite_cfe_kwh=_fixed(onsite),
                        certificates_kwh=_fixed(certs), grid_cfe_share=_fixed(share, 4), score_kwh=_fixed(score),
                        market_kg_co2e_before=_fixed(before), market_kg_co2e=_fixed(after))
    return summary, table
