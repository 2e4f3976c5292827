"""The emission factor library: factors and GWP sets as versioned reference data.

A factor is a row, never a constant in code: ``factor_id``, ``version`` (the edition,
e.g. ``eGRID2024``), source document and table, ``region`` (an eGRID subregion, empty for
any), ``activity``, ``gas``, ``value`` and ``unit``, ``basis``, ``kind`` (``average``,
``marginal``, ``residual_mix``, ``supplier``), validity period, licence and a ``status``
that says whether the value was read from the publisher or transcribed by others.

Activities kwhub reads:

``fuel_combustion:<fuel>``
    kg (or lb) of a gas per MMBtu of fuel burned (Scope 1).
``fuel_upstream:<fuel>``
    well-to-tank emissions per MMBtu of fuel (Scope 3 category 3a / 3b).
``grid_location``
    the grid-average factor of a region (location-based Scope 2), per MWh.
``grid_residual_mix``
    the residual mix of a region (market-based Scope 2 for energy without instruments).
``grid_upstream``
    upstream emissions of grid electricity per MWh (category 3b).
``grid_loss_rate``
    the grid gross loss, a fraction (category 3c).
``grid_cfe_share``
    the carbon-free share of grid supply, a fraction (24/7 CFE).

The built-in rows (``core/factor_data/factors.csv``) and GWP sets
(``core/factor_data/gwp.csv``) are shipped with kwhub; operators add their own rows in
``[[emissions.factors]]``. :meth:`FactorLibrary.select` picks one factor for an activity,
gas, region and date, and refuses to choose between two that fit equally.

A figure known only as CO2e (eGRID publishes CO2e rates) is stored as the gas ``co2e``
("as reported", with the GWP set of its publisher) and is never split into gases.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, field_validator

if TYPE_CHECKING:  # numpy is imported where a signal is read or used: invoices load without it
    import numpy as np

GASES: tuple[str, ...] = ("co2", "ch4", "n2o", "co2e")  # co2e: reported only as CO2e, never split
FactorGas = Literal["co2", "ch4", "n2o", "co2e", "none"]
FactorKind = Literal["", "average", "marginal", "residual_mix", "supplier", "cfe_share"]
LB_TO_KG = 0.45359237

# unit -> (multiplier to kg per base unit, base unit): base units are MMBtu (fuel), kWh (electricity), 1 (fraction)
UNITS: dict[str, tuple[float, str]] = {
    "kg/MMBtu": (1.0, "MMBtu"),
    "lb/MMBtu": (LB_TO_KG, "MMBtu"),
    "g/MMBtu": (1e-3, "MMBtu"),
    "kg/MWh": (1e-3, "kWh"),
    "lb/MWh": (LB_TO_KG * 1e-3, "kWh"),
    "t/MWh": (1.0, "kWh"),
    "kg/kWh": (1.0, "kWh"),
    "g/kWh": (1e-3, "kWh"),
    "fraction": (1.0, "1"),
}
_DATA = Path(__file__).with_name("factor_data")


class FactorError(ValueError):
    """A factor that is missing, ambiguous or unusable; the message says which and what to do."""


class Factor(BaseModel):
    """One emission factor row (see the module docs for the fields)."""

    model_config = ConfigDict(extra="forbid")

    factor_id: str
    version: str
    source: str
    table: str = ""
    region: str = ""
    activity: str
    gas: FactorGas
    value: float
    unit: str
    basis: str = ""
    kind: FactorKind = ""
    valid_from: date | None = None
    valid_to: date | None = None
    licence: str = ""
    status: str = "operator"

    @field_validator("unit")
    @classmethod
    def _known_unit(cls, v: str) -> str:
        if v not in UNITS:
            raise ValueError(f"unknown unit {v!r} (known: {', '.join(UNITS)})")
        return v

    @property
    def ref(self) -> str:
        """``factor_id@version``: how figures name the factor they used."""
        return f"{self.factor_id}@{self.version}"

    @property
    def base_unit(self) -> str:
        return UNITS[self.unit][1]

    def kg_per_base(self) -> float:
        """The value in kg per MMBtu (fuel), kg per kWh (electricity), or as a fraction."""
        return self.value * UNITS[self.unit][0]

    def valid_on(self, day: date) -> bool:
        return (self.valid_from is None or self.valid_from <= day) and (self.valid_to is None or day <= self.valid_to)

    def lineage(self) -> dict[str, str]:
        """What a report prints about the factor."""
        return {"factor_id": self.factor_id, "version": self.version, "source": self.source, "table": self.table,
                "region": self.region, "activity": self.activity, "gas": self.gas, "value": repr(self.value),
                "unit": self.unit, "basis": self.basis, "kind": self.kind, "status": self.status}


class GwpSet(BaseModel):
    """100-year global warming potentials of one IPCC assessment report."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    ch4: float  # fossil methane (AR6 distinguishes it)
    ch4_non_fossil: float
    n2o: float
    source: str = ""

    def co2e(self, co2: float, ch4: float, n2o: float, co2e_reported: float = 0.0) -> float:
        """kg CO2e of per-gas kg (methane counted as fossil) plus figures known only as CO2e."""
        return co2 + ch4 * self.ch4 + n2o * self.n2o + co2e_reported

    def weights(self) -> np.ndarray:
        """The weights of :data:`GASES` (co2, ch4, n2o, co2e as reported)."""
        import numpy as np

        return np.array([1.0, self.ch4, self.n2o, 1.0])


@lru_cache(maxsize=1)
def builtin_gwp_sets() -> dict[str, GwpSet]:
    """The shipped GWP sets (AR4, AR5, AR6) by name."""
    rows: dict[str, dict[str, object]] = {}
    with (_DATA / "gwp.csv").open(newline="") as fh:
        for r in csv.DictReader(fh):
            d = rows.setdefault(r["gwp_set"], {"name": r["gwp_set"], "source": r["source"]})
            d[r["gas"]] = float(r["value"])
    return {k: GwpSet.model_validate(v) for k, v in rows.items()}


def gwp_set(name: str) -> GwpSet:
    """The GWP set ``name`` (AR4, AR5 or AR6)."""
    sets = builtin_gwp_sets()
    if name not in sets:
        raise FactorError(f"unknown GWP set {name!r} (known: {', '.join(sorted(sets))})")
    return sets[name]


def _read_rows(path: Path) -> list[Factor]:
    out = []
    with path.open(newline="") as fh:
        for line, r in enumerate(csv.DictReader(fh), start=2):
            data = {k: v for k, v in r.items() if v != ""}
            try:
                out.append(Factor.model_validate(data))
            except ValueError as exc:
                raise FactorError(f"{path.name} line {line}: {exc}") from None
    return out


@lru_cache(maxsize=1)
def builtin_factors() -> tuple[Factor, ...]:
    """The factors shipped with kwhub (``core/factor_data/factors.csv``)."""
    return tuple(_read_rows(_DATA / "factors.csv"))


class HourlySignal(BaseModel):
    """A time series of a factor (``[[emissions.hourly]]``), e.g. an hourly grid intensity.

    ``starts`` are UTC epoch seconds of each step, ``values`` in ``unit``; ``kind`` is
    ``average`` or ``marginal`` (kept apart: a marginal signal never enters the inventory)
    or ``cfe_share``.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    signal_id: str
    version: str
    source: str
    region: str = ""
    activity: str
    gas: FactorGas
    unit: str
    kind: FactorKind
    step_minutes: int = 60
    starts: np.ndarray
    values: np.ndarray

    @property
    def ref(self) -> str:
        return f"{self.signal_id}@{self.version}"

    def at(self, starts: np.ndarray) -> np.ndarray:
        """The value (in kg per base unit, or a fraction) in force at each start; NaN outside the series."""
        import numpy as np

        pos = np.searchsorted(self.starts, starts, side="right") - 1
        ok = (pos >= 0) & (starts < (self.starts[np.clip(pos, 0, None)] + self.step_minutes * 60))
        vals = self.values[np.clip(pos, 0, len(self.values) - 1)] * UNITS[self.unit][0]
        return np.where(ok, vals, np.nan)

    def lineage(self) -> dict[str, str]:
        return {"factor_id": self.signal_id, "version": self.version, "source": self.source, "region": self.region,
                "activity": self.activity, "gas": self.gas, "unit": self.unit, "kind": self.kind,
                "step_minutes": str(self.step_minutes), "points": str(len(self.values))}


def read_hourly_signal(path: Path, *, signal_id: str, version: str, source: str, region: str, activity: str,
                       gas: str, unit: str, kind: str, step_minutes: int = 60) -> HourlySignal:
    """Read a CSV of ``start,value`` rows (``start`` ISO 8601 with an offset, or epoch seconds).

    Errors name the file, line and field; a start without an offset is refused (never guessed).
    """
    from datetime import datetime

    import numpy as np

    if unit not in UNITS:
        raise FactorError(f"{path}: unknown unit {unit!r} (known: {', '.join(UNITS)})")
    starts: list[int] = []
    values: list[float] = []
    try:
        fh = path.open(newline="")
    except OSError as exc:
        raise FactorError(f"{path}: cannot read the hourly factor file ({exc.strerror})") from None
    with fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"start", "value"} <= set(reader.fieldnames):
            raise FactorError(f"{path} line 1: the header needs the columns start and value "
                              f"(found {', '.join(reader.fieldnames or [])})")
        for line, r in enumerate(reader, start=2):
            raw = (r["start"] or "").strip()
            try:
                if raw.lstrip("-").isdigit():
                    ts = int(raw)
                else:
                    dt = datetime.fromisoformat(raw.replace("Z", "+00:00"))
                    if dt.tzinfo is None:
                        raise ValueError("no UTC offset (write e.g. 2026-10-01T00:00:00Z)")
                    ts = int(dt.timestamp())
            except ValueError as exc:
                raise FactorError(f"{path} line {line}: start {raw!r}: {exc}") from None
            try:
                val = float(r["value"])
            except (TypeError, ValueError):
                raise FactorError(f"{path} line {line}: value {r['value']!r} is not a number") from None
            if not np.isfinite(val) or val < 0:
                raise FactorError(f"{path} line {line}: value {val!r} must be a finite number >= 0")
            if starts and ts <= starts[-1]:
                raise FactorError(f"{path} line {line}: start {raw} is not after the previous row")
            starts.append(ts)
            values.append(val)
    if not starts:
        raise FactorError(f"{path}: no rows")
    return HourlySignal(signal_id=signal_id, version=version, source=source, region=region, activity=activity,
                        gas=gas, unit=unit, kind=kind, step_minutes=step_minutes,  # type: ignore[arg-type]
                        starts=np.asarray(starts, dtype=np.int64), values=np.asarray(values, dtype=np.float64))


class FactorLibrary:
    """Built-in and operator factors, and the hourly signals; one place that chooses.

    ``editions`` pins an activity to a version (``{"grid_location": "eGRID2023 rev2"}``);
    without a pin the newest valid edition wins, and an operator row of the same activity,
    gas and region wins over a shipped one (the lineage names it).
    """

    def __init__(self, factors: Iterable[Factor] = (), signals: Iterable[HourlySignal] = (),
                 editions: dict[str, str] | None = None, include_builtin: bool = True) -> None:
        own = list(factors)
        ids = [f.factor_id for f in own]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise FactorError(f"emissions.factors: factor_id {', '.join(dup)} given more than once")
        builtin = list(builtin_factors()) if include_builtin else []
        clash = sorted({f.factor_id for f in own} & {f.factor_id for f in builtin})
        if clash:
            raise FactorError(f"emissions.factors: factor_id {', '.join(clash)} is a shipped factor; give yours "
                              "another id (the shipped row stays reproducible)")
        self.operator = own
        self.factors = builtin + own
        self.signals = list(signals)
        self.editions = dict(editions or {})

    def candidates(self, activity: str, gas: str | None = None, region: str = "", on: date | None = None) -> list[Factor]:
        """Rows of ``activity`` (and ``gas``) for ``region`` (or region-free), valid ``on``."""
        out = [f for f in self.factors if f.activity == activity and (gas is None or f.gas == gas)
               and f.region in (region, "") and (on is None or f.valid_on(on))]
        pinned = self.editions.get(activity)
        if pinned:
            out = [f for f in out if f.version == pinned]
        return out

    def select(self, activity: str, gas: str, region: str, on: date, required: bool = False) -> Factor | None:
        """The one factor for ``activity``/``gas`` in ``region`` on ``on`` (see the class docs)."""
        rows = self.candidates(activity, gas, region, on)
        if not rows:
            if required:
                pinned = self.editions.get(activity)
                raise FactorError(f"no {activity} factor for {gas} in region {region or '(any)'} valid on {on}"
                                  + (f" in edition {pinned!r}" if pinned else "")
                                  + " (add one in [[emissions.factors]] or choose another edition)")
            return None
        own = [f for f in rows if f in self.operator]
        pool = own or rows
        regional = [f for f in pool if f.region == region] or pool
        newest = max((f.valid_from or date.min) for f in regional)
        best = [f for f in regional if (f.valid_from or date.min) == newest]
        if len(best) > 1:
            raise FactorError(f"{len(best)} {activity} factors for {gas} in region {region or '(any)'} fit equally: "
                              f"{', '.join(f.ref for f in best)}; pin one edition in [emissions] editions")
        return best[0]

    def select_gases(self, activity: str, region: str, on: date) -> list[Factor]:
        """One factor per gas of ``activity`` (CO2e as reported excluded when per-gas rows exist)."""
        out = [f for g in ("co2", "ch4", "n2o", "co2e") if (f := self.select(activity, g, region, on)) is not None]
        per_gas = [f for f in out if f.gas != "co2e"]
        if per_gas and len(per_gas) < len(out):
            # a CO2e row beside per-gas rows would count the same emissions twice: per-gas rows win
            out = per_gas
        return out

    def signal(self, activity: str, region: str, kinds: Sequence[str]) -> list[HourlySignal]:
        """Hourly signals of ``activity`` in ``region`` of the given kinds."""
        return [s for s in self.signals if s.activity == activity and s.region in (region, "") and s.kind in kinds]

    def by_ref(self, ref: str) -> Factor:
        for f in self.factors:
            if f.ref == ref:
                return f
        raise FactorError(f"unknown factor {ref!r}")

