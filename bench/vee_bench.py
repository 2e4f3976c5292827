"""VEE engine throughput on the simulated campus (no store): intervals validated per second.

Run: ``python bench/vee_bench.py [days]``. Prints the engine figure (``validate`` on day
blocks, then ``validate_dense`` on ``days x slots`` arrays: the bulk path ``validate_days``
takes) and, as a peer, a plain pandas linear interpolation of the same gaps
(``Series.interpolate``), which does far less (one method, no rules, no per-value records).
"""

from __future__ import annotations

import json
import sys
import time
from datetime import date

import numpy as np
import pandas as pd

from kwhub.core.intervals import split_by_day
from kwhub.core.vee import VeeConfig, VeeContext, VeeEngine
from kwhub.hub.demo.simulator.campus import FaultSpec, simulate
from kwhub.hub.registry import load_plugins


def main(days: int = 90) -> None:
    start = date(2026, 1, 1)
    sim = simulate(start, days, 15, seed=1, faults=FaultSpec.default(start, days))
    engine = VeeEngine(load_plugins(use_entry_points=False).vee_rules, VeeConfig())
    blocks = {cid: list(split_by_day(s)) for cid, s in sim.series.items()}
    n = sum(len(b) * 96 for b in blocks.values())
    t = time.perf_counter()
    events = 0
    for cid, bl in blocks.items():
        out = engine.validate(sim.campus.channel(cid), bl, VeeContext())
        events += len(out.events)
    dt = time.perf_counter() - t
    print(f"kwhub VEE engine: {n:,} intervals, {len(blocks)} channels x {days} days in {dt:.2f} s "
          f"= {n / dt / 1e6:.2f} M intervals/s ({events} events)")
    dense = {cid: ([b.day for b in bl], np.array([b.values for b in bl]), np.array([b.quality for b in bl]))
             for cid, bl in blocks.items()}
    t = time.perf_counter()
    events = 0
    for cid, (d, v, q) in dense.items():
        out = engine.validate_dense(sim.campus.channel(cid), d, v, q, VeeContext(), compact=True)
        events += len(out.events)
    dt = time.perf_counter() - t
    print(f"kwhub VEE engine, dense path: {n / dt / 1e6:.2f} M intervals/s ({events} events)")
    t = time.perf_counter()
    peer_total = 0.0
    peer_n = 0
    for bl in blocks.values():
        v = np.concatenate([b.values for b in bl])
        filled = pd.Series(v).interpolate(limit_area="inside")
        peer_n += len(v)
        peer_total += float(np.nansum(v))
        del filled
    dt2 = time.perf_counter() - t
    print(f"peer pandas Series.interpolate only: {n / dt2 / 1e6:.2f} M intervals/s")
    # both sides were given the same intervals: counts and the sum of the values received
    ours_total = float(sum(np.nansum(v) for _, v, _ in dense.values()))
    equal = peer_n == n and round(ours_total, 3) == round(peer_total, 3)
    print(f"ours (dense) / peer speed {(n / dt) / (n / dt2):.2f}; input totals: {n:,} intervals, "
          f"{ours_total:,.3f} kWh both sides, equal: {equal}")
    print(json.dumps({"intervals": n, "dense_intervals_per_s": round(n / dt), "peer_intervals_per_s": round(n / dt2),
                      "ratio": round(dt2 / dt, 3), "totals_match": equal}))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 90)
