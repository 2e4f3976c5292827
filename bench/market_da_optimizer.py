"""Benchmark: the day-ahead dispatch optimizer for 24 hours x 3 products x 20 units.

Products: energy, regulation up and spinning reserve; 20 gas units (different heat
rates), 80 MW of solar (clear-sky), a 50 MW / 200 MWh battery, a campus load with a
reserve of the largest unit. Timed: the surplus calculation, the LP (HiGHS through
scipy, status and every constraint re-checked) and building the ERCOT offer curves
(rules and guardrails checked). Target: under 1 s. Median of 7 runs after one warm-up.
Last line: JSON.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kwhub.core.markets.bid_builder import build_energy_offers  # noqa: E402
from kwhub.core.markets.curve_rules import ERCOT_DA  # noqa: E402
from kwhub.core.markets.optimizer import optimize_dispatch  # noqa: E402
from kwhub.core.markets.surplus import (  # noqa: E402
    BatteryUnit,
    GenUnit,
    ReserveRule,
    clear_sky_solar,
    compute_surplus,
)

DAY = date(2026, 7, 15)
TZ = "America/Chicago"
T, UNITS = 24, 20


def run() -> tuple[float, int, int]:
    rng = np.random.default_rng(7)
    units = [GenUnit(id=f"u{i:02d}", capacity_mw=float(rng.integers(20, 60)), heat_rate_mmbtu_per_mwh=7.5 + 0.2 * i,
                     vom_per_mwh=3.5) for i in range(UNITS)]
    battery = BatteryUnit(id="bess", power_mw=50, energy_mwh=200, soc_start_mwh=100)
    hours = np.arange(T)
    load = 450 + 120 * np.sin((hours - 9) / 24 * 2 * np.pi) ** 2
    price = 35 + 45 * np.exp(-((hours - 18) ** 2) / 8)
    t0 = time.perf_counter()
    solar = clear_sky_solar(DAY, TZ, 80, 31.0)
    s = compute_surplus(units, np.ones((UNITS, T)), solar, load, ReserveRule(mode="largest_unit"), battery=battery,
                        load_margin=0.05)
    plan = optimize_dispatch(units, s, price, np.full(T, 3.2), battery=battery,
                             product_prices={"reg_up": np.full(T, 9.0), "spin": np.full(T, 6.0)})
    built = build_energy_offers(DAY, TZ, "ERCOT", "RN1", plan, s, units, np.full(T, 3.2), ERCOT_DA, bid_id="RN1")
    secs = time.perf_counter() - t0
    return secs, sum(len(b.curves) for b in built.bids), len(plan.checks)


def main() -> None:
    run()
    times = []
    for _ in range(7):
        secs, curves, checks = run()
        times.append(secs)
    med = statistics.median(times)
    n_vars = UNITS * T * (2 + 2) + 7 * T
    print(f"{T} hours x 3 products x {UNITS} units (+ battery, solar): about {n_vars:,} LP variables; "
          f"{curves} hourly offer curves built, {checks} constraint families re-checked")
    print(f"median {med * 1000:.0f} ms (min {min(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms); "
          f"target < 1000 ms: {'met' if med < 1 else 'NOT met'}")
    print(json.dumps({"median_s": round(med, 4), "min_s": round(min(times), 4), "max_s": round(max(times), 4),
                      "hours": T, "products": 3, "units": UNITS, "curves": curves, "target_s": 1.0}))


if __name__ == "__main__":
    main()
