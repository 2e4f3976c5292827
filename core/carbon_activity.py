"""What the campus did in a period, per source and interval: the activity data of emissions.

A settlement period that allocates the campus freezes, besides each tenant's split
(``run_allocation``), one :class:`CarbonActivity`: each source's metered output, the fuel
each combustion source burned (from its fuel meter, else output x heat rate, marked per
interval), and for each battery the energy that charged it, by source.

**The battery rule.** A battery's charging energy in an interval takes the mix of the
supply the tenants did not take in that interval (the allocation gives every tenant its
share first; battery charge, export and other sinks share the rest pro rata), or, when
the tenants took everything, the mix of the whole supply. Its discharge carries the
running average intensity of all energy that charged it so far in the period (per kWh
discharged, per gas and per method); discharge before the period's first charge carries
the period's average charging intensity, and the report says so. Round-trip losses keep
their emissions in the campus total (as "other sinks"), not on a tenant.

The activity is content-addressed (:meth:`CarbonActivity.digest`): runs record its id, and
the same data gives the same id, so a restated period yields a new activity and new
figures while the old ones stay reproducible.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from kwhub.core.allocation import (
    UNMETERED,
    AllocationResult,
    CampusLayout,
    pack_array,
    unpack_array,
)
from kwhub.core.campus import Campus
from kwhub.core.intervals import IntervalMatrix

COMBUSTION_KINDS = ("gas_turbine", "recip_engine", "fuel_cell")


class CarbonDataError(ValueError):
    """Activity data that cannot be read (wrong shape, unknown source, bad blob)."""


@dataclass(frozen=True)
class CarbonSource:
    """A supply source as emissions see it."""

    id: str
    kind: str  # asset kind (gas_turbine, solar, battery, grid_tie...) or the channel role
    role: str  # generation, grid_import, battery_discharge
    fuel: str = ""
    heat_rate: float = 0.0  # MMBtu per MWh of output
    override_kg_per_mwh: float | None = None  # the asset's own factor (CO2e as given), instead of fuel

    @property
    def combustion(self) -> bool:
        return self.override_kg_per_mwh is None and self.role == "generation" and (
            bool(self.fuel) or self.kind in COMBUSTION_KINDS)

    def as_json(self) -> dict[str, object]:
        return {"id": self.id, "kind": self.kind, "role": self.role, "fuel": self.fuel, "heat_rate": self.heat_rate,
                "override_kg_per_mwh": self.override_kg_per_mwh}


@dataclass
class CarbonActivity:
    """Per source (rows, in allocation order, without ``unmetered``) and interval (columns).

    ``output_kwh`` metered output before losses; ``fuel_mmbtu`` fuel burned (NaN where a
    combustion source has neither a fuel reading nor a heat rate); ``fuel_metered`` True
    where the fuel came from a fuel meter; ``charge_from[b]`` the kWh that charged battery
    source ``b`` from each source; ``charge_unattributed_kwh`` charging energy no metered
    supply covered.
    """

    start_epoch: int
    interval_minutes: int
    loss_factor: float
    sources: list[CarbonSource]
    output_kwh: np.ndarray
    fuel_mmbtu: np.ndarray
    fuel_metered: np.ndarray
    charge_from: dict[str, np.ndarray] = field(default_factory=dict)
    charge_unattributed_kwh: float = 0.0

    @property
    def n(self) -> int:
        return int(self.output_kwh.shape[1])

    @property
    def starts(self) -> np.ndarray:
        return self.start_epoch + self.interval_minutes * 60 * np.arange(self.n, dtype=np.int64)

    def index(self, source: str) -> int:
        for i, s in enumerate(self.sources):
            if s.id == source:
                return i
        raise CarbonDataError(f"{source!r} is not a source of this activity ({', '.join(s.id for s in self.sources)})")

    def blobs(self) -> list[tuple[str, bytes]]:
        """``(key, packed array)`` rows as stored (see :func:`kwhub.core.allocation.pack_array`)."""
        out = []
        for i, s in enumerate(self.sources):
            out.append((f"output:{s.id}", pack_array(self.output_kwh[i])))
            if s.combustion:
                out.append((f"fuel:{s.id}", pack_array(self.fuel_mmbtu[i])))
                out.append((f"fuel_metered:{s.id}", pack_array(self.fuel_metered[i].astype(np.float64))))
        for b, mix in sorted(self.charge_from.items()):
            for i, s in enumerate(self.sources):
                if mix[i].any():
                    out.append((f"charge:{b}:{s.id}", pack_array(mix[i])))
        return out

    def header(self) -> dict[str, object]:
        """The scalar part, recorded in the run statements that use this activity."""
        return {"start_epoch": self.start_epoch, "interval_minutes": self.interval_minutes,
                "intervals": self.n, "loss_factor": repr(self.loss_factor),
                "sources": [s.as_json() for s in self.sources], "batteries": sorted(self.charge_from),
                "charge_unattributed_kwh": repr(self.charge_unattributed_kwh)}

    def digest(self) -> str:
        """SHA-256 over the header and every blob: the activity's id."""
        import json

        h = hashlib.sha256(json.dumps(self.header(), sort_keys=True).encode())
        for key, blob in self.blobs():
            h.update(key.encode() + b"\0" + hashlib.sha256(blob).digest())
        return h.hexdigest()

    @classmethod
    def from_stored(cls, header: dict[str, object], blobs: dict[str, bytes]) -> CarbonActivity:
        """Rebuild an activity from its header and blobs (inverse of :meth:`blobs`)."""
        raw_sources = header["sources"]
        assert isinstance(raw_sources, list)
        sources = [CarbonSource(id=d["id"], kind=d["kind"], role=d["role"], fuel=d.get("fuel", ""),
                                heat_rate=float(d.get("heat_rate", 0.0)),
                                override_kg_per_mwh=d.get("override_kg_per_mwh")) for d in raw_sources]
        n = int(header["intervals"])  # type: ignore[call-overload]
        out = np.zeros((len(sources), n))
        fuel = np.zeros((len(sources), n))
        metered = np.zeros((len(sources), n), dtype=bool)

        def arr(key: str) -> np.ndarray:
            if key not in blobs:
                raise CarbonDataError(f"stored activity lacks {key!r}")
            a = unpack_array(blobs[key])
            if a.shape != (n,):
                raise CarbonDataError(f"stored activity {key!r} holds {a.shape[0]} intervals, not {n}")
            return a

        for i, s in enumerate(sources):
            out[i] = arr(f"output:{s.id}")
            if s.combustion:
                fuel[i] = arr(f"fuel:{s.id}")
                metered[i] = arr(f"fuel_metered:{s.id}") > 0
        charge: dict[str, np.ndarray] = {}
        batteries = header.get("batteries", [])
        assert isinstance(batteries, list)
        for b in batteries:
            mix = np.zeros((len(sources), n))
            for i, s in enumerate(sources):
                key = f"charge:{b}:{s.id}"
                if key in blobs:
                    mix[i] = arr(key)
            charge[b] = mix
        return cls(start_epoch=int(header["start_epoch"]), interval_minutes=int(header["interval_minutes"]),  # type: ignore[call-overload]
                   loss_factor=float(header["loss_factor"]), sources=sources, output_kwh=out,  # type: ignore[arg-type]
                   fuel_mmbtu=fuel, fuel_metered=metered, charge_from=charge,
                   charge_unattributed_kwh=float(header.get("charge_unattributed_kwh", 0.0)))  # type: ignore[arg-type]


def _rows_sum(values: np.ndarray, rows: list[int], keep_nan: bool) -> np.ndarray:
    if not rows:
        return np.zeros(values.shape[1])
    sub = values[rows]
    return sub.sum(axis=0) if keep_nan else np.nansum(sub, axis=0)


def build_activity(matrix: IntervalMatrix, campus: Campus, allocation: AllocationResult) -> CarbonActivity:
    """The period's activity from the loaded matrix (balance and fuel channels) and its allocation.

    Sources are the allocation's (same order). Fuel comes from ``fuel`` channels of the
    source's asset (MMBtu per interval); where a reading is missing, from output x heat
    rate; where neither exists, NaN (the engine reports those kWh as without a figure).
    """
    layout = CampusLayout.from_campus(campus, matrix.channel_ids)
    real = [s for s in allocation.sources if s != UNMETERED]
    if list(layout.sources) != real:
        raise CarbonDataError(f"the matrix has sources {list(layout.sources)}, the allocation {real}")
    assets = {a.id: a for a in campus.assets}
    row_of = {cid: i for i, cid in enumerate(matrix.channel_ids)}
    v = matrix.values
    n = matrix.n_intervals
    out = np.zeros((len(real), n))
    for i, rows in enumerate(layout.source_rows):
        out[i] = _rows_sum(v, list(rows), keep_nan=False)
    sources: list[CarbonSource] = []
    fuel = np.zeros((len(real), n))
    metered = np.zeros((len(real), n), dtype=bool)
    for i, sid in enumerate(real):
        a = assets.get(sid)
        src = CarbonSource(id=sid, kind=layout.source_kinds[i], role=layout.source_roles[i], fuel=a.fuel if a else "",
                           heat_rate=float(a.heat_rate_mmbtu_per_mwh) if a else 0.0,
                           override_kg_per_mwh=a.emission_factor_kg_per_mwh if a else None)
        sources.append(src)
        if not src.combustion:
            continue
        fuel_rows = [row_of[c.id] for c in campus.channels if c.role == "fuel" and c.asset == sid and c.id in row_of]
        derived = out[i] / 1000.0 * src.heat_rate if src.heat_rate > 0 else np.full(n, np.nan)
        if fuel_rows:
            read = _rows_sum(v, fuel_rows, keep_nan=True)
            have = ~np.isnan(read)
            fuel[i] = np.where(have, read, derived)
            metered[i] = have
        else:
            fuel[i] = derived
    lf = allocation.loss_factor
    charge_from: dict[str, np.ndarray] = {}
    unattributed = 0.0
    battery_idx = [i for i, s in enumerate(sources) if s.role == "battery_discharge"]
    if allocation.kwh is not None:
        taken = allocation.kwh[:, : len(real), :].sum(axis=0)
        rest = np.maximum(out * (1.0 - lf) - taken, 0.0)
    else:
        rest = out * (1.0 - lf)
    others = np.ones(len(real), dtype=bool)
    others[battery_idx] = False
    rest[~others] = 0.0
    whole = out * (1.0 - lf)
    whole[~others] = 0.0
    by_battery: dict[str, list[int]] = {}
    for c in campus.channels:
        if c.role == "battery_charge" and c.id in row_of:
            by_battery.setdefault(c.asset or "battery", []).append(row_of[c.id])
    rest_sum = rest.sum(axis=0)
    whole_sum = whole.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mix = np.where(rest_sum > 0, rest / np.where(rest_sum > 0, rest_sum, 1.0),
                       np.where(whole_sum > 0, whole / np.where(whole_sum > 0, whole_sum, 1.0), 0.0))
    covered = mix.sum(axis=0) > 0
    for b, charge_rows in by_battery.items():
        charge = _rows_sum(v, charge_rows, keep_nan=False)
        charge_from[b] = charge[None, :] * mix
        unattributed += float(charge[~covered].sum())
    return CarbonActivity(start_epoch=matrix.start_epoch, interval_minutes=matrix.interval_minutes, loss_factor=lf,
                          sources=sources, output_kwh=out, fuel_mmbtu=fuel, fuel_metered=metered,
                          charge_from=charge_from, charge_unattributed_kwh=unattributed)
