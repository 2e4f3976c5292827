"""The factors one period's emissions use, resolved from the library and frozen with its runs.

:func:`resolve_factors` picks, for a period, region and the fuels the campus burns: the
combustion factors per gas, the grid's location-based factor (an hourly ``average``
signal when one covers the period, else the annual factor of the edition in force), the
market-based factor for energy without instruments (the region's residual mix; where
there is none, the location-based factor stands in, as the Scope 2 Guidance allows, with
a note; or an error when ``residual_mix_fallback = "error"``), the upstream factors
(3a/3b), the grid gross loss (3c) and the grid's carbon-free share (24/7 CFE).

Marginal signals are never used here: they measure impact, not the inventory, and are
kept apart. A :class:`FactorSet` serialises to JSON (scalars and lineage) plus arrays for
time-varying factors, so a run's figures can be recomputed exactly as they were.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np

from kwhub.core.allocation import pack_array, unpack_array
from kwhub.core.carbon_settings import EmissionsSettings
from kwhub.core.factors import Factor, FactorError, FactorLibrary, GwpSet, HourlySignal, gwp_set

Rate = float | np.ndarray  # kg per base unit (MMBtu or kWh), scalar or one value per interval


@dataclass
class FactorSet:
    """Resolved factors of one period (see the module docs). Gas keys: co2, ch4, n2o, co2e."""

    gwp: GwpSet
    region: str
    combustion: dict[str, dict[str, float]] = field(default_factory=dict)  # fuel -> gas -> kg/MMBtu
    fuel_upstream: dict[str, dict[str, float]] = field(default_factory=dict)  # fuel -> gas -> kg/MMBtu
    grid: dict[str, dict[str, Rate]] = field(default_factory=dict)  # location | market | upstream -> gas -> kg/kWh
    loss_rate: float | None = None
    cfe_share: Rate | None = None
    refs: dict[str, list[str]] = field(default_factory=dict)  # what -> factor refs
    lineage: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> tuple[dict[str, Any], list[tuple[str, bytes]]]:
        """``(scalar JSON, [(key, array blob)])``; arrays are named ``grid:<method>:<gas>`` / ``cfe_share``."""
        blobs: list[tuple[str, bytes]] = []

        def enc(key: str, v: Rate) -> Any:
            if isinstance(v, np.ndarray):
                blobs.append((key, pack_array(v)))
                return {"array": key}
            return repr(float(v))

        data = {
            "gwp_set": self.gwp.name, "region": self.region,
            "combustion": {f: {g: repr(v) for g, v in d.items()} for f, d in self.combustion.items()},
            "fuel_upstream": {f: {g: repr(v) for g, v in d.items()} for f, d in self.fuel_upstream.items()},
            "grid": {m: {g: enc(f"grid:{m}:{g}", v) for g, v in d.items()} for m, d in self.grid.items()},
            "loss_rate": None if self.loss_rate is None else repr(self.loss_rate),
            "cfe_share": None if self.cfe_share is None else enc("cfe_share", self.cfe_share),
            "refs": self.refs, "lineage": self.lineage, "notes": self.notes,
        }
        return data, blobs

    def digest(self) -> str:
        data, blobs = self.to_json()
        h = hashlib.sha256(json.dumps(data, sort_keys=True).encode())
        for key, blob in blobs:
            h.update(key.encode() + b"\0" + hashlib.sha256(blob).digest())
        return h.hexdigest()

    @classmethod
    def from_json(cls, data: dict[str, Any], blobs: dict[str, bytes]) -> FactorSet:
        def dec(v: Any) -> Rate:
            if isinstance(v, dict):
                return unpack_array(blobs[v["array"]])
            return float(v)

        return cls(
            gwp=gwp_set(data["gwp_set"]), region=data["region"],
            combustion={f: {g: float(v) for g, v in d.items()} for f, d in data["combustion"].items()},
            fuel_upstream={f: {g: float(v) for g, v in d.items()} for f, d in data["fuel_upstream"].items()},
            grid={m: {g: dec(v) for g, v in d.items()} for m, d in data["grid"].items()},
            loss_rate=None if data["loss_rate"] is None else float(data["loss_rate"]),
            cfe_share=None if data["cfe_share"] is None else dec(data["cfe_share"]),
            refs=data["refs"], lineage=data["lineage"], notes=data["notes"],
        )


def _signal_rate(sig: HourlySignal, starts: np.ndarray) -> np.ndarray:
    vals = sig.at(starts)
    gaps = np.flatnonzero(np.isnan(vals))
    if gaps.size:
        from datetime import UTC, datetime

        first = datetime.fromtimestamp(int(starts[gaps[0]]), tz=UTC).isoformat()
        raise FactorError(f"hourly factor {sig.ref} has no value for {gaps.size} interval(s) of the period, the first "
                          f"starting {first}; extend the file or remove it from [[emissions.hourly]]")
    return vals


class _Resolver:
    def __init__(self, library: FactorLibrary, region: str, day: date, starts: np.ndarray, out: FactorSet) -> None:
        self.lib, self.region, self.day, self.starts, self.out = library, region, day, starts, out

    def note(self, factors: list[Factor], what: str) -> dict[str, float]:
        self.out.refs[what] = [f.ref for f in factors]
        self.out.lineage += [f.lineage() for f in factors if f.lineage() not in self.out.lineage]
        return {f.gas: f.kg_per_base() for f in factors}

    def grid(self, activity: str, what: str, kinds: tuple[str, ...] = ("average", "residual_mix", "")) -> dict[str, Rate] | None:
        sigs = self.lib.signal(activity, self.region, kinds)
        if sigs:
            gases = [s.gas for s in sigs]
            dup = sorted({g for g in gases if gases.count(g) > 1})
            if dup:
                raise FactorError(f"{len(sigs)} hourly {activity} signals for {', '.join(dup)} in region "
                                  f"{self.region}: {', '.join(s.ref for s in sigs)}; keep one")
            self.out.refs[what] = [s.ref for s in sigs]
            self.out.lineage += [s.lineage() for s in sigs]
            return {s.gas: _signal_rate(s, self.starts) for s in sigs if s.gas != "none"}
        rows = [f for f in self.lib.select_gases(activity, self.region, self.day) if f.kind != "marginal"]
        if not rows:
            return None
        return dict(self.note(rows, what))


def resolve_factors(library: FactorLibrary, settings: EmissionsSettings, region: str, fuels: set[str], day: date,
                    starts: np.ndarray) -> FactorSet:
    """The :class:`FactorSet` of a period starting ``day`` (intervals ``starts``) in ``region``."""
    out = FactorSet(gwp=gwp_set(settings.gwp_set), region=region)
    r = _Resolver(library, region, day, starts, out)
    for fuel in sorted(fuels):
        rows = library.select_gases(f"fuel_combustion:{fuel}", region, day)
        if rows:
            out.combustion[fuel] = r.note(rows, f"combustion:{fuel}")
        else:
            out.notes.append(f"no fuel_combustion:{fuel} factor: combustion of {fuel} has no figure "
                             "(add one in [[emissions.factors]])")
        up = library.select_gases(f"fuel_upstream:{fuel}", region, day)
        if up:
            out.fuel_upstream[fuel] = r.note(up, f"upstream:{fuel}")
        else:
            out.notes.append(f"no fuel_upstream:{fuel} factor: Scope 3 category 3a/3b of {fuel} is not computed "
                             "(kwhub ships no well-to-tank factor; add one in [[emissions.factors]])")
    loc = r.grid("grid_location", "grid_location")
    if loc is None:
        out.notes.append(f"no grid_location factor for region {region or '(none set)'}: grid energy has no "
                         "location-based figure (set [emissions] region or a site's grid_region)")
    else:
        out.grid["location"] = loc
    mkt = r.grid("grid_residual_mix", "grid_residual_mix")
    if mkt is None:
        if settings.residual_mix_fallback == "error":
            raise FactorError(f"no grid_residual_mix factor for region {region}: add one in [[emissions.factors]] or "
                              "set [emissions] residual_mix_fallback = \"location\"")
        if loc is not None:
            out.grid["market"] = dict(loc)
            out.refs["grid_residual_mix"] = list(out.refs.get("grid_location", []))
            out.notes.append(f"no residual mix for region {region}: market-based grid energy without instruments "
                             "takes the location-based factor (GHG Protocol Scope 2 Guidance, when no residual mix "
                             "is available)")
    else:
        out.grid["market"] = mkt
    up_grid = r.grid("grid_upstream", "grid_upstream")
    if up_grid is None:
        out.notes.append("no grid_upstream factor: Scope 3 category 3b of grid electricity is not computed")
    else:
        out.grid["upstream"] = up_grid
    loss = library.select("grid_loss_rate", "none", region, day)
    if loss is None:
        out.notes.append("no grid_loss_rate factor: Scope 3 category 3c (T&D losses) is not computed")
    else:
        out.loss_rate = r.note([loss], "grid_loss_rate")["none"]
    cfe_sig = library.signal("grid_cfe_share", region, ("cfe_share", ""))
    if cfe_sig:
        out.cfe_share = _signal_rate(cfe_sig[0], starts)
        out.refs["grid_cfe_share"] = [cfe_sig[0].ref]
        out.lineage.append(cfe_sig[0].lineage())
    else:
        cfe = library.select("grid_cfe_share", "none", region, day)
        if cfe is None:
            out.notes.append("no grid_cfe_share factor: the grid's carbon-free share counts as 0 in the CFE score")
        else:
            out.cfe_share = r.note([cfe], "grid_cfe_share")["none"]
    return out


@dataclass
class CarbonSetup:
    """What settlement needs to put emissions on lines: the settings, the library and the grid region."""

    settings: EmissionsSettings
    library: FactorLibrary
    region: str
