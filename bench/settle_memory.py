"""Benchmark: peak memory of settling 10,000 channels x one month of 5-minute data.

Setup (not timed, cached in /tmp): 10,000 tenant sub-meter channels (100 tenants x 100)
of June 2026 at 5 minutes (86.4 M intervals in the local month) in a SQLite store.
Settlement reads contracts in batches of at most ``max_channels`` channels, so the
dense matrix never holds the whole campus. Peak RSS comes from ``resource.getrusage``.
Peer figure: the size the dense float64 matrix of all channels would take.

Last line: one JSON object with peak_rss_gb.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kwhub.core.campus import Campus, Channel, ComponentSpec, Contract, Party  # noqa: E402
from kwhub.core.intervals import ChannelSeries, day_start_epoch  # noqa: E402
from kwhub.core.timeline import billing_period  # noqa: E402

TZ = "America/New_York"
N_TENANTS = 100
PER_TENANT = 100
N_CHANNELS = N_TENANTS * PER_TENANT
PERIOD = "2026-06"
MINUTES = 5
CACHE = Path(os.environ.get("KWHUB_BENCH_DIR", "/tmp")) / "kwhub_bench_memory_v3.db"


def campus() -> Campus:
    parties = [Party(id="op", name="Operator")] + [Party(id=f"t{t:03d}", name=f"Tenant {t}") for t in range(N_TENANTS)]
    channels = [Channel(id=f"t{t:03d}.m{k:03d}", party=f"t{t:03d}", role="tenant_load", interval_minutes=MINUTES)
                for t in range(N_TENANTS) for k in range(PER_TENANT)]
    contracts = [Contract(id=f"ppa-t{t:03d}", seller="op", buyer=f"t{t:03d}", timezone=TZ, components=[
        ComponentSpec(kind="fixed_energy", price_per_mwh="55.40"),
        ComponentSpec(kind="demand", price_per_kw_month="8.75"),
    ]) for t in range(N_TENANTS)]
    return Campus(parties=parties, channels=channels, contracts=contracts)


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024  # KiB on Linux


def build_store() -> None:
    """Write the data in a child process, so its memory does not count against the settlement."""
    if CACHE.exists():
        return
    import subprocess

    subprocess.run([sys.executable, __file__, "--build"], check=True)


def _build() -> None:
    from kwhub.hub.store import Database

    tmp = CACHE.with_suffix(".building")
    for p in tmp.parent.glob(tmp.name + "*"):
        p.unlink()
    span = billing_period(PERIOD, TZ).span
    days = span.utc_days()
    st = np.arange(day_start_epoch(days[0]), day_start_epoch(days[-1] + timedelta(days=1)), MINUTES * 60, dtype=np.int64)
    q = np.zeros(st.shape, np.uint8)
    db = Database.open(f"sqlite:///{tmp}")
    t0 = time.perf_counter()
    camp = campus()
    batch = []
    for i, ch in enumerate(camp.channels):
        rng = np.random.default_rng(i)
        batch.append(ChannelSeries(ch.id, MINUTES, st, (5 + rng.integers(0, 10, st.size)).astype(np.float64), q))
        if len(batch) == 100:
            db.intervals.write_series(batch, layer="validated", source="bench")
            batch = []
    db.close()
    os.replace(tmp, CACHE)
    print(f"built {CACHE} in {time.perf_counter() - t0:.1f} s")


def main() -> None:
    from kwhub.hub.registry import get_registry
    from kwhub.hub.settle.service import settle
    from kwhub.hub.store import Database

    build_store()
    work = CACHE.with_name("kwhub_bench_memory_run.db")
    for p in work.parent.glob(work.name + "*"):
        p.unlink()
    import shutil

    shutil.copyfile(CACHE, work)
    camp = campus()
    n_int = billing_period(PERIOD, TZ).span.n_intervals(MINUTES)
    before = peak_rss_gb()
    db = Database.open(f"sqlite:///{work}")
    reg = get_registry()
    t0 = time.perf_counter()
    outcomes = settle(db, camp, PERIOD, components=reg, issue_date=date(2026, 7, 3), max_channels=1000)
    secs = time.perf_counter() - t0
    db.close()
    issued = sum(o.status == "issued" for o in outcomes)
    peak = peak_rss_gb()
    dense_gb = N_CHANNELS * n_int * 8 / 1024**3
    print(f"{N_CHANNELS} channels x {n_int} five-minute intervals = {N_CHANNELS * n_int:,} intervals; "
          f"{issued}/{len(outcomes)} invoices in {secs:.1f} s")
    print(f"peak RSS {peak:.2f} GB (before settling {before:.2f} GB); a dense float64 matrix of all channels "
          f"alone would be {dense_gb:.2f} GB")
    print(json.dumps({"peak_rss_gb": round(peak, 3), "seconds": round(secs, 2), "intervals": N_CHANNELS * n_int,
                      "invoices": issued, "dense_matrix_gb": round(dense_gb, 3)}))


if __name__ == "__main__":
    if "--build" in sys.argv:
        _build()
    else:
        main()
