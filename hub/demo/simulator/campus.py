"""A deterministic, seeded simulated AI campus (PJM, New York time).

Three tenant data halls with AI-training load shapes, a shared cooling plant, two gas
turbines from two OEMs, six reciprocating engines, 80 MW of solar, a 200 MWh / 50 MW
battery and a grid tie. Everything is computed on whole numpy arrays: the data halls at
one-minute resolution (so checkpoint dips shorter than an interval show up as partial
dips), then averaged to the requested interval length. Energies are integer watt-hours
internally, so the campus balance

    generation + grid.import + bess.discharge == loads + shared.cooling + bess.charge + grid.export

holds exactly per interval (there is no losses channel). Fuel is output MWh x heat rate
(MMBtu), availability a 0..1 fraction per interval.

``FaultSpec`` injects gaps, spikes and stuck (flat-lined) values into the measured series;
``SimResult.truth`` keeps the clean values and ``SimResult.faults`` lists what was done.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np

from kwhub.core.campus import Asset, Campus, Channel, Ownership, Party, Site
from kwhub.core.intervals import ChannelSeries, IntervalMatrix, slots_per_day
from kwhub.core.quality import Quality
from kwhub.core.timeline import Span, zone

SITE_ID = "keystone"
SITE_TZ = "America/New_York"
LATITUDE = 40.05
LONGITUDE = -75.45

HALLS: dict[str, tuple[str, float]] = {  # hall -> (tenant, IT capacity MW)
    "hall_a": ("tenant_a", 60.0),
    "hall_b": ("tenant_b", 80.0),
    "hall_c": ("tenant_c", 100.0),
}

# unit -> (kind, oem, model, capacity MW, heat rate MMBtu/MWh)
THERMAL: dict[str, tuple[str, str, str, float, float]] = {
    "gt1": ("gas_turbine", "Siemens Energy", "SGT-800", 55.0, 9.8),
    "gt2": ("gas_turbine", "GE Vernova", "LM6000", 50.0, 10.3),
    "re1": ("recip_engine", "Wartsila", "50SG", 18.0, 8.3),
    "re2": ("recip_engine", "Wartsila", "50SG", 18.0, 8.35),
    "re3": ("recip_engine", "Wartsila", "50SG", 18.0, 8.4),
    "re4": ("recip_engine", "INNIO Jenbacher", "J920 FleXtra", 10.4, 8.6),
    "re5": ("recip_engine", "INNIO Jenbacher", "J920 FleXtra", 10.4, 8.7),
    "re6": ("recip_engine", "INNIO Jenbacher", "J920 FleXtra", 10.4, 8.8),
}
GAS_TURBINES = ("gt1", "gt2")
ENGINES = ("re1", "re2", "re3", "re4", "re5", "re6")
PV_MW = 80.0
BESS_MW = 50.0
BESS_MWH = 200.0
BESS_ROUND_TRIP = 0.88

LOAD_CHANNELS = tuple(f"{h}.load" for h in HALLS)
GENERATION_CHANNELS = tuple(f"{u}.net" for u in THERMAL) + ("pv.net",)
FUEL_CHANNELS = tuple(f"{u}.fuel" for u in THERMAL)
AVAIL_CHANNELS = tuple(f"{u}.avail" for u in THERMAL)
ENERGY_CHANNELS = (
    LOAD_CHANNELS + ("shared.cooling",) + GENERATION_CHANNELS
    + ("bess.charge", "bess.discharge", "grid.import", "grid.export")
)
ALL_CHANNELS = ENERGY_CHANNELS + FUEL_CHANNELS + AVAIL_CHANNELS


# ------------------------------------------------------------------------ definition


def campus_definition(interval_minutes: int = 15) -> Campus:
    """The simulated campus: one PJM site, its assets, parties and channels."""
    slots_per_day(interval_minutes)  # validates the length
    m = interval_minutes
    parties = [
        Party(id="tenant_a", name="Helios AI Inc.", roles=["tenant"], email="ap@helios.example",
              buyer_reference="HAL-A"),
        Party(id="tenant_b", name="Northwind Compute LLC", roles=["tenant"], email="ap@northwind.example",
              buyer_reference="HAL-B"),
        Party(id="tenant_c", name="Cobalt Models Corp.", roles=["tenant"], email="ap@cobalt.example",
              buyer_reference="HAL-C"),
        Party(id="campus_op", name="Keystone Campus Operations LLC", roles=["operator", "owner"],
              email="billing@keystone.example"),
        Party(id="gasco_jv", name="GasCo Generation JV Partners LP", roles=["owner"],
              email="settlements@gasco.example"),
        Party(id="sunrise_ipp", name="Sunrise Solar IPP LLC", roles=["ipp", "owner"],
              email="invoices@sunrise.example"),
        Party(id="utility", name="Regional Utility (PJM zone)", roles=["utility"]),
    ]
    gt_owners = [Ownership(party="gasco_jv", share=Decimal("0.6")),
                 Ownership(party="campus_op", share=Decimal("0.4"))]
    assets: list[Asset] = []
    for hall, (_tenant, mw) in HALLS.items():
        assets.append(Asset(id=hall, site=SITE_ID, kind="load", capacity_kw=mw * 1000))
    assets.append(Asset(id="cooling", site=SITE_ID, kind="load", capacity_kw=40_000,
                        owners=[Ownership(party="campus_op", share=Decimal(1))]))
    for unit, (kind, oem, model, mw, hr) in THERMAL.items():
        owners = gt_owners if kind == "gas_turbine" else [Ownership(party="campus_op", share=Decimal(1))]
        assets.append(Asset(id=unit, site=SITE_ID, kind=kind, oem=oem, model=model, capacity_kw=mw * 1000,
                            fuel="natural_gas", heat_rate_mmbtu_per_mwh=hr, owners=list(owners)))
    assets.append(Asset(id="pv", site=SITE_ID, kind="solar", oem="First Solar", model="Series 7",
                        capacity_kw=PV_MW * 1000, owners=[Ownership(party="sunrise_ipp", share=Decimal(1))],
                        emission_factor_kg_per_mwh=0.0))
    assets.append(Asset(id="bess", site=SITE_ID, kind="battery", oem="Fluence", model="Gridstack Pro",
                        capacity_kw=BESS_MW * 1000, energy_kwh=BESS_MWH * 1000,
                        owners=[Ownership(party="campus_op", share=Decimal(1))]))
    assets.append(Asset(id="grid", site=SITE_ID, kind="grid_tie", capacity_kw=150_000))

    ch: list[Channel] = []
    for hall, (tenant, _mw) in HALLS.items():
        ch.append(Channel(id=f"{hall}.load", meter=f"m_{hall}", asset=hall, party=tenant, role="tenant_load",
                          unit="kWh", interval_minutes=m, group="tenant"))
    ch.append(Channel(id="shared.cooling", meter="m_cooling", asset="cooling", party="campus_op",
                      role="shared_load", unit="kWh", interval_minutes=m, group="shared"))
    for unit in THERMAL:
        ch.append(Channel(id=f"{unit}.net", meter=f"m_{unit}", asset=unit, role="generation", unit="kWh",
                          interval_minutes=m, group="generation"))
    ch.append(Channel(id="pv.net", meter="m_pv", asset="pv", role="generation", unit="kWh", interval_minutes=m,
                      group="solar"))
    ch.append(Channel(id="bess.charge", meter="m_bess", asset="bess", role="battery_charge", unit="kWh",
                      interval_minutes=m, group="storage"))
    ch.append(Channel(id="bess.discharge", meter="m_bess", asset="bess", role="battery_discharge", unit="kWh",
                      interval_minutes=m, direction="received", group="storage"))
    ch.append(Channel(id="grid.import", meter="m_grid", asset="grid", party="utility", role="grid_import",
                      unit="kWh", interval_minutes=m, group="grid"))
    ch.append(Channel(id="grid.export", meter="m_grid", asset="grid", party="utility", role="grid_export",
                      unit="kWh", interval_minutes=m, direction="received", group="grid"))
    for unit in THERMAL:
        ch.append(Channel(id=f"{unit}.fuel", meter=f"fm_{unit}", asset=unit, role="fuel", unit="MMBtu",
                          interval_minutes=m, group="fuel"))
    for unit in THERMAL:
        ch.append(Channel(id=f"{unit}.avail", meter=f"ctl_{unit}", asset=unit, role="availability",
                          unit="fraction", interval_minutes=m, group="availability"))
    site = Site(id=SITE_ID, name="Keystone AI Campus", timezone=SITE_TZ, iso="PJM", grid_region="RFCE")
    return Campus(sites=[site], assets=assets, channels=ch, parties=parties)


# ------------------------------------------------------------------------ faults


def _epoch(ts: datetime | int) -> int:
    if isinstance(ts, datetime):
        if ts.tzinfo is None:
            raise ValueError(f"fault start {ts.isoformat()} must be timezone-aware (UTC)")
        return int(ts.timestamp())
    return int(ts)


@dataclass
class FaultSpec:
    """Faults to inject into the measured series.

    ``gaps``: (channel, start UTC, n intervals) removed from the series.
    ``spikes``: (channel, start UTC, factor) one interval multiplied by ``factor``.
    ``stuck``: (channel, start UTC, n intervals) repeating the value of the interval
    before ``start`` (a frozen telemetry value).
    ``duplicate_file``: :func:`kwhub.hub.demo.simulator.files.write_csv` writes one file twice.
    """

    gaps: list[tuple[str, datetime | int, int]] = field(default_factory=list)
    spikes: list[tuple[str, datetime | int, float]] = field(default_factory=list)
    stuck: list[tuple[str, datetime | int, int]] = field(default_factory=list)
    duplicate_file: bool = False
    seed: int = 7

    @classmethod
    def default(cls, start: date, days: int, interval_minutes: int = 15, seed: int = 7,
                tz: str = SITE_TZ) -> FaultSpec:
        """A few gaps, spikes and stuck runs on tenant and generation channels, plus a duplicate file."""
        span = sim_span(start, days, tz)
        step = interval_minutes * 60
        n = span.seconds // step
        rng = np.random.default_rng([seed, start.toordinal(), days, interval_minutes])
        per_day = 86_400 // step

        def at(lo_frac: float, hi_frac: float, length: int) -> int:
            lo = int(n * lo_frac)
            hi = max(lo + 1, min(n - length - 1, int(n * hi_frac)))
            return span.start_epoch + int(rng.integers(max(lo, 1), hi)) * step

        # solar stuck run at local late morning of a seeded day (values are moving then)
        d = int(rng.integers(0, max(days, 1)))
        z = zone(tz)
        local = datetime.combine(start + timedelta(days=d), datetime.min.time()).replace(tzinfo=z)
        pv_start = int((local + timedelta(hours=10)).timestamp())
        pv_start -= pv_start % step
        return cls(
            gaps=[("hall_a.load", at(0.1, 0.3, 4), 4), ("gt1.net", at(0.4, 0.6, 8), 8),
                  ("re2.net", at(0.6, 0.9, 1), 1)],
            spikes=[("hall_b.load", at(0.2, 0.5, 1), 8.0), ("re3.net", at(0.5, 0.8, 1), 6.0)],
            stuck=[("hall_c.load", at(0.3, 0.7, 6), max(2, min(6, per_day // 8))),
                   ("pv.net", pv_start, max(2, 120 // interval_minutes))],
            duplicate_file=True,
            seed=seed,
        )


@dataclass(frozen=True)
class InjectedFault:
    """One fault that :func:`simulate` applied (``kind``: gap, spike, stuck, duplicate_file)."""

    kind: str
    channel: str
    start_epoch: int
    n_intervals: int = 1
    factor: float | None = None

    def epochs(self, interval_minutes: int) -> np.ndarray:
        """UTC interval starts the fault touches."""
        return self.start_epoch + interval_minutes * 60 * np.arange(self.n_intervals, dtype=np.int64)


# ------------------------------------------------------------------------ result


@dataclass
class SimResult:
    """What :func:`simulate` produced.

    ``series``: measured channel series (kWh / MMBtu / fraction per interval), with faults.
    ``truth``: the clean values on the full grid ``starts``, per channel.
    """

    campus: Campus
    start: date
    days: int
    interval_minutes: int
    seed: int
    tz: str
    starts: np.ndarray
    series: dict[str, ChannelSeries]
    truth: dict[str, np.ndarray]
    faults: list[InjectedFault] = field(default_factory=list)
    fault_spec: FaultSpec | None = None

    @property
    def span(self) -> Span:
        first = datetime.fromtimestamp(int(self.starts[0]), tz=UTC)
        return Span(first, first + timedelta(seconds=len(self.starts) * self.interval_minutes * 60))

    @property
    def channel_ids(self) -> list[str]:
        return list(self.series)

    def balance_residual(self) -> np.ndarray:
        """Supply minus demand per interval on the clean values (zero to float precision)."""
        t = self.truth
        supply = sum(t[c] for c in GENERATION_CHANNELS) + t["grid.import"] + t["bess.discharge"]
        demand = sum(t[c] for c in LOAD_CHANNELS) + t["shared.cooling"] + t["bess.charge"] + t["grid.export"]
        return np.asarray(supply - demand)

    def matrix(self, channel_ids: list[str] | None = None, measured: bool = True) -> IntervalMatrix:
        """Dense channel x interval matrix (measured: NaN + MISSING in gaps; else the truth)."""
        ids = list(channel_ids or self.series)
        n = len(self.starts)
        step = self.interval_minutes * 60
        vals = np.full((len(ids), n), np.nan)
        qual = np.full((len(ids), n), Quality.MISSING, dtype=np.uint8)
        for i, c in enumerate(ids):
            if measured:
                s = self.series[c]
                idx = (s.starts - self.starts[0]) // step
                vals[i, idx] = s.values
                qual[i, idx] = s.quality
            else:
                vals[i] = self.truth[c]
                qual[i] = Quality.VALID
        return IntervalMatrix(ids, int(self.starts[0]), self.interval_minutes, vals, qual)


# ------------------------------------------------------------------------ model


def sim_span(start: date, days: int, tz: str = SITE_TZ) -> Span:
    """Local midnight of ``start`` to local midnight ``days`` later, in UTC."""
    z = zone(tz)
    a = datetime(start.year, start.month, start.day, tzinfo=z)
    e = start + timedelta(days=days)
    b = datetime(e.year, e.month, e.day, tzinfo=z)
    return Span(a.astimezone(UTC), b.astimezone(UTC))


def _rng(seed: int, name: str, start: date, days: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode()), start.toordinal(), days])


def _local_clock(starts: np.ndarray, tz: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(local day index, local hour as float, day of year) for each UTC start (vectorised)."""
    import pandas as pd

    idx = pd.to_datetime(starts, unit="s", utc=True).tz_convert(tz)
    naive = idx.tz_localize(None)
    loc = naive.values.astype("datetime64[s]").astype(np.int64)
    day = loc // 86_400
    hour = (loc % 86_400) / 3600.0
    return day - day[0], hour, np.asarray(naive.day_of_year, dtype=np.float64)


def _smooth_noise(rng: np.random.Generator, n: int, window: int) -> np.ndarray:
    """Zero-mean noise smoothed with a moving average, scaled to unit std."""
    window = max(1, min(window, n))
    raw = rng.standard_normal(n + window)
    c = np.cumsum(raw)
    sm = (c[window:] - c[:-window])[:n]
    std = sm.std()
    return sm / std if std > 0 else sm


def _hall_minutes(hall: str, mw: float, n_min: int, seed: int, start: date, days: int) -> np.ndarray:
    """AI-training power (MW) per minute: plateau, checkpoint dips, job restarts."""
    rng = _rng(seed, hall, start, days)
    level = {"hall_a": 0.93, "hall_b": 0.95, "hall_c": 0.92}.get(hall, 0.93)
    t = np.arange(n_min)
    p = level + 0.012 * _smooth_noise(rng, n_min, 240) + 0.004 * rng.standard_normal(n_min)
    period = {"hall_a": 60, "hall_b": 90, "hall_c": 120}.get(hall, 90)
    dip_len = int(rng.integers(4, 9))
    phase = int(rng.integers(0, period))
    dip = ((t + phase) % period) < dip_len
    p = np.where(dip, p * 0.62, p)
    n_restart = int(rng.poisson(max(days, 1) / 5.0))
    for _ in range(n_restart):  # a handful of events, not a per-interval loop
        s = int(rng.integers(0, n_min))
        dur = int(rng.integers(45, 181))
        ramp = 20
        e = min(n_min, s + dur)
        p[s:e] = 0.30 + 0.01 * rng.standard_normal(e - s)
        r_end = min(n_min, e + ramp)
        if r_end > e:
            frac = (np.arange(e, r_end) - e + 1) / ramp
            p[e:r_end] = 0.30 + (p[e:r_end] - 0.30) * frac
    return np.clip(p, 0.0, 1.0) * mw


def _wh(mw: np.ndarray, minutes: int) -> np.ndarray:
    """Average MW over an interval -> integer Wh."""
    return np.rint(mw * 1e6 * minutes / 60.0).astype(np.int64)


def simulate(start: date, days: int, interval_minutes: int = 15, seed: int = 42,
             faults: FaultSpec | None = None, tz: str = SITE_TZ) -> SimResult:
    """Simulate ``days`` local days from ``start`` (local midnight in ``tz``).

    Same arguments -> identical arrays. Energy channels in kWh per interval, fuel in MMBtu,
    availability as a fraction.
    """
    if days < 1:
        raise ValueError("days must be at least 1")
    slots_per_day(interval_minutes)
    m = interval_minutes
    span = sim_span(start, days, tz)
    step = m * 60
    n = span.seconds // step
    starts = span.start_epoch + step * np.arange(n, dtype=np.int64)
    n_min = n * m
    h_int = m / 60.0
    lday, lhour, doy = _local_clock(starts, tz)
    wh: dict[str, np.ndarray] = {}

    # --- data halls (minute resolution, averaged to the interval)
    it_mw = np.zeros(n)
    for hall, (_tenant, mw) in HALLS.items():
        p = _hall_minutes(hall, mw, n_min, seed, start, days).reshape(n, m).mean(axis=1)
        wh[f"{hall}.load"] = _wh(p, m)
        it_mw += p

    # --- cooling: 8..15 % of IT load, following a temperature-like shape
    mid_hour = lhour + h_int / 2
    season = np.cos(2 * np.pi * (doy - 200) / 365.25)
    daily = np.cos(2 * np.pi * (mid_hour - 15.0) / 24.0)
    rng_c = _rng(seed, "cooling", start, days)
    temp = np.clip(0.5 + 0.3 * season + 0.18 * daily + 0.04 * _smooth_noise(rng_c, n, max(1, 180 // m)), 0, 1)
    wh["shared.cooling"] = _wh(it_mw * (0.08 + 0.07 * temp), m)

    # --- solar: clear-sky bell by day of year, seeded clouds
    utc_hour = ((starts + step // 2) % 86_400) / 3600.0
    solar_time = utc_hour + LONGITUDE / 15.0
    decl = np.radians(23.44) * np.sin(2 * np.pi * (284 + doy) / 365.0)
    lat = np.radians(LATITUDE)
    hour_angle = np.radians(15.0 * (solar_time - 12.0))
    sin_el = np.sin(lat) * np.sin(decl) + np.cos(lat) * np.cos(decl) * np.cos(hour_angle)
    clear = np.clip(1.08 * np.clip(sin_el, 0, None) ** 1.2, 0, 1)
    rng_pv = _rng(seed, "pv", start, days)
    clearness_day = rng_pv.beta(4.0, 1.3, size=days + 2)[lday]
    wiggle = _smooth_noise(rng_pv, n, max(1, 60 // m))
    cloud = np.clip(clearness_day + (1 - clearness_day) * 0.7 * wiggle, 0.08, 1.0)
    pv_mw = PV_MW * 0.92 * clear * cloud
    wh["pv.net"] = _wh(pv_mw, m)

    # --- thermal fleet: baseload turbines, engines shaped around solar and the evening peak
    evening = np.exp(-0.5 * ((mid_hour - 19.0) / 2.5) ** 2)
    pv_frac = pv_mw / PV_MW
    avail: dict[str, np.ndarray] = {u: np.ones(n) for u in THERMAL}
    rng_out = _rng(seed, "outage", start, days)
    victim = ENGINES[int(rng_out.integers(0, len(ENGINES)))]
    dur_min = int(rng_out.integers(4 * 60, 12 * 60 + 1))
    out_start = int(rng_out.integers(0, max(1, n_min - dur_min)))
    up = np.ones(n_min)
    up[out_start:out_start + dur_min] = 0.0
    avail[victim] = np.round(up.reshape(n, m).mean(axis=1), 6)
    for unit, (kind, _oem, _model, mw, _hr) in THERMAL.items():
        r = _rng(seed, unit, start, days)
        if kind == "gas_turbine":
            load = 0.93 + 0.01 * _smooth_noise(r, n, max(1, 120 // m))
        else:
            load = 0.82 + 0.13 * evening - 0.12 * pv_frac + 0.015 * _smooth_noise(r, n, max(1, 60 // m))
        wh[f"{unit}.net"] = _wh(mw * np.clip(load, 0.4, 1.0) * avail[unit], m)

    # --- battery: charges late morning/midday from solar, discharges in the evening
    in_charge = (lhour >= 10.0) & (lhour < 15.0)
    req = np.where(in_charge, np.minimum(BESS_MW, 0.7 * pv_mw), 0.0)
    req_wh = _wh(req, m)
    cs = np.cumsum(req_wh)
    day_first = np.r_[0, np.flatnonzero(np.diff(lday)) + 1]
    day_of = np.repeat(np.arange(len(day_first)), np.diff(np.r_[day_first, n]))
    base = np.r_[0, cs][day_first][day_of]  # cumulative before each local day
    cap_wh = int(BESS_MWH * 0.95 * 1e6)
    within = np.minimum(cs - base, cap_wh)
    charge = np.diff(np.r_[0, within])
    charge[day_first] = within[day_first]
    wh["bess.charge"] = charge
    in_dis = (lhour >= 17.0) & (lhour < 22.0)
    charged_day = np.bincount(day_of, weights=charge, minlength=len(day_first))
    slots_dis = np.bincount(day_of, weights=in_dis.astype(float), minlength=len(day_first))
    per_slot = np.divide(charged_day * BESS_ROUND_TRIP, slots_dis, out=np.zeros_like(charged_day),
                         where=slots_dis > 0)
    wh["bess.discharge"] = np.where(in_dis, np.floor(per_slot[day_of]), 0).astype(np.int64)

    # --- grid: the residual, exact in integer Wh
    demand = sum(wh[c] for c in LOAD_CHANNELS) + wh["shared.cooling"] + wh["bess.charge"]
    supply = sum(wh[c] for c in GENERATION_CHANNELS) + wh["bess.discharge"]
    net = demand - supply
    wh["grid.import"] = np.maximum(net, 0)
    wh["grid.export"] = np.maximum(-net, 0)

    truth: dict[str, np.ndarray] = {c: wh[c] / 1000.0 for c in ENERGY_CHANNELS}
    for unit, (_k, _o, _m, _mw, hr) in THERMAL.items():
        truth[f"{unit}.fuel"] = np.round(wh[f"{unit}.net"] / 1e6 * hr, 6)
        truth[f"{unit}.avail"] = avail[unit]

    series, injected = _measure(truth, starts, m, faults)
    return SimResult(campus=campus_definition(m), start=start, days=days, interval_minutes=m, seed=seed, tz=tz,
                     starts=starts, series=series, truth=truth, faults=injected, fault_spec=faults)


def _measure(truth: dict[str, np.ndarray], starts: np.ndarray, m: int,
             faults: FaultSpec | None) -> tuple[dict[str, ChannelSeries], list[InjectedFault]]:
    """Apply the faults to copies of the truth and build the measured series."""
    step = m * 60
    n = len(starts)
    values = {c: v.copy() for c, v in truth.items()}
    keep = {c: np.ones(n, dtype=bool) for c in truth}
    injected: list[InjectedFault] = []

    def slot(channel: str, ts: datetime | int, kind: str) -> int:
        if channel not in truth:
            raise ValueError(f"{kind} fault on unknown channel {channel!r}")
        e = _epoch(ts)
        if (e - starts[0]) % step:
            raise ValueError(f"{kind} fault on {channel} at {e} is not on the {m}-minute grid")
        i = (e - int(starts[0])) // step
        if not 0 <= i < n:
            raise ValueError(f"{kind} fault on {channel} at {e} is outside the simulated span")
        return int(i)

    if faults is not None:
        for ch, ts, k in faults.stuck:
            i = slot(ch, ts, "stuck")
            j = min(n, i + int(k))
            values[ch][i:j] = values[ch][i - 1] if i > 0 else values[ch][i]
            injected.append(InjectedFault("stuck", ch, int(starts[i]), j - i))
        for ch, ts, factor in faults.spikes:
            i = slot(ch, ts, "spike")
            values[ch][i] = np.round(values[ch][i] * float(factor), 3)
            injected.append(InjectedFault("spike", ch, int(starts[i]), 1, float(factor)))
        for ch, ts, k in faults.gaps:
            i = slot(ch, ts, "gap")
            j = min(n, i + int(k))
            keep[ch][i:j] = False
            injected.append(InjectedFault("gap", ch, int(starts[i]), j - i))
        if faults.duplicate_file:
            injected.append(InjectedFault("duplicate_file", "", int(starts[0]), n))
    series = {
        c: ChannelSeries(c, m, starts[keep[c]], values[c][keep[c]], np.zeros(int(keep[c].sum()), dtype=np.uint8))
        for c in ALL_CHANNELS
    }
    return series, injected
