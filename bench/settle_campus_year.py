"""Benchmark: settle a campus year from the store, against DuckDB on the same data.

Setup (not timed, cached in /tmp): 1,000 tenant sub-meter channels x 35,040 quarter-hours
of 2026 (plus the UTC edge day) written to a SQLite store; 20 tenants of 50 channels,
each with a contract of TOU energy + demand + a shared fixed fee.

Timed: ``settle_periods()`` for the 12 local months of 2026 (New York time) with ``--jobs`` processes
(default: one per CPU, as ``kwhub settle``; the contracts split between them), the same 240
runs as 12 ``settle()`` calls: read_matrix from the store (in chunks of consecutive months, read in turn on
SQLite: see ``kwhub.hub.settle.loading.reads_ahead``), allocation/
aggregation, pricing, statements, run inputs and invoices issued and committed. The fresh
copy of the store each run settles is flushed to disk before the clock starts.
Peers, each on the same data made once and cached beside the store (not timed):
DuckDB querying its own on-disk row-per-interval table (query time only, as our store is
loaded beforehand), and polars over a Parquet file of it; both compute the tenant-month TOU
energy and peak demand. Their amounts are derived with the same Decimal rounding and
compared with our invoices, both as returned and as read back from the store
(``totals_match``, every run). ``--runs`` runs of each (3 by default): medians and spread,
wall and CPU time. ``--tenants 40`` doubles the campus (its own cached store) for the
scaling check. The store cache is ``..._v3`` (v3: the interval_day key of migration 0004).
The arithmetic kernel (tenant aggregation, TOU binning, peaks over the year matrix) is
timed alone (``kernel_intervals_per_s``).

Last line: one JSON object with seconds, cpu_seconds, duckdb_seconds, polars_seconds, the ratios,
kernel_intervals_per_s, totals_match.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kwhub.core.campus import Campus, Channel, ComponentSpec, Contract, Party  # noqa: E402
from kwhub.core.intervals import ChannelSeries, day_start_epoch  # noqa: E402
from kwhub.core.money import MoneyPolicy, to_decimal  # noqa: E402
from kwhub.core.timeline import billing_period  # noqa: E402

TZ = "America/New_York"
N_TENANTS = 20
PER_TENANT = 50
N_CHANNELS = N_TENANTS * PER_TENANT
SHARE = Decimal(1) / N_TENANTS
YEAR = 2026
MONTHS = [f"{YEAR}-{m:02d}" for m in range(1, 13)]
FIRST_DAY = date(YEAR, 1, 1)
LAST_DAY = date(YEAR + 1, 1, 1)  # the UTC day that holds the last local evening of December
PRICES = {"on_peak": Decimal("62.50"), "off_peak": Decimal("38.25")}
DEMAND_PRICE = Decimal("9.50")
FEE_TOTAL = Decimal("20000.00")
CACHE = Path(os.environ.get("KWHUB_BENCH_DIR", "/tmp")) / "kwhub_bench_year_v3.db"


def configure(tenants: int) -> None:
    """Size the campus (``tenants`` x 50 channels); other sizes get their own cached store."""
    global N_TENANTS, N_CHANNELS, SHARE, CACHE
    N_TENANTS, N_CHANNELS, SHARE = tenants, tenants * PER_TENANT, Decimal(1) / tenants
    if tenants != 20:
        CACHE = CACHE.with_name(f"kwhub_bench_year_v3_t{tenants}.db")


def tenant(i: int) -> str:
    return f"t{i:02d}"


def channel(t: int, k: int) -> str:
    return f"{tenant(t)}.m{k:02d}"


def campus() -> Campus:
    parties = [Party(id="op", name="Operator")] + [Party(id=tenant(t), name=f"Tenant {t}") for t in range(N_TENANTS)]
    channels = [Channel(id=channel(t, k), party=tenant(t), role="tenant_load")
                for t in range(N_TENANTS) for k in range(PER_TENANT)]
    shares = {tenant(t): str(SHARE) for t in range(N_TENANTS)}
    contracts = [
        Contract(id=f"ppa-{tenant(t)}", seller="op", buyer=tenant(t), timezone=TZ, components=[
            ComponentSpec(kind="tou_energy", holidays="none", default_period="off_peak",
                          rules=[{"period": "on_peak", "day_types": ["weekday"], "hours": [[7, 23]]}],
                          prices={k: str(v) for k, v in PRICES.items()}),
            ComponentSpec(kind="demand", price_per_kw_month=str(DEMAND_PRICE)),
            ComponentSpec(kind="fixed_fee", total_amount=str(FEE_TOTAL), shares=shares),
        ])
        for t in range(N_TENANTS)
    ]
    return Campus(parties=parties, channels=channels, contracts=contracts)


def starts() -> np.ndarray:
    return np.arange(day_start_epoch(FIRST_DAY), day_start_epoch(LAST_DAY + timedelta(days=1)), 900, dtype=np.int64)


def values(idx: int, n: int) -> np.ndarray:
    """Integer kWh per interval (float sums stay exact, so both engines agree to the bit)."""
    rng = np.random.default_rng(1000 + idx)
    base = 40 + (idx % 7) * 5
    return (base + rng.integers(0, 60, n)).astype(np.float64)


def build_store() -> tuple[float, bool]:
    from kwhub.hub.store import Database

    if CACHE.exists():
        return 0.0, True
    tmp = CACHE.with_suffix(".building")
    for p in tmp.parent.glob(tmp.name + "*"):
        p.unlink()
    t0 = time.perf_counter()
    db = Database.open(f"sqlite:///{tmp}")
    st = starts()
    q = np.zeros(st.shape, np.uint8)
    batch = []
    for i in range(N_CHANNELS):
        t, k = divmod(i, PER_TENANT)
        batch.append(ChannelSeries(channel(t, k), 15, st, values(i, st.size), q))
        if len(batch) == 50:
            db.intervals.write_series(batch, layer="validated", source="bench")
            batch = []
    db.close()
    os.replace(tmp, CACHE)
    for suffix in ("-wal", "-shm"):
        side = Path(str(tmp) + suffix)
        if side.exists():
            side.unlink()
    return time.perf_counter() - t0, False


def fresh_copy() -> Path:
    """A copy of the cached store without runs/invoices (so every benchmark run settles anew);
    named for this size and process, so that benchmarks running at the same time keep apart."""
    import shutil

    work = CACHE.with_name(f"{CACHE.stem}_run_{os.getpid()}.db")
    for p in work.parent.glob(work.name + "*"):
        p.unlink()
    shutil.copyfile(CACHE, work)
    return work


def _cpu() -> float:
    """CPU seconds of this process and of its finished children (the settle's worker processes)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def settle_year(db, camp: Campus, jobs: int) -> tuple[float, float, list]:  # noqa: ANN001
    """All 12 months in one ``settle_periods`` call: the same 240 runs as 12 ``settle`` calls,
    with the year's channels read from the store once and sliced per month."""
    from kwhub.hub.registry import get_registry
    from kwhub.hub.settle.service import settle_periods

    reg = get_registry()
    t0, c0 = time.perf_counter(), _cpu()
    outcomes = settle_periods(db, camp, MONTHS, components=reg, issue_date=date(YEAR + 1, 1, 15),
                              now=datetime(YEAR + 1, 1, 15, tzinfo=UTC), jobs=jobs)  # the year is over: checks pass
    db.wait_checkpointed()  # the background copy of the SQLite log counts too
    return time.perf_counter() - t0, _cpu() - c0, outcomes


def stored_totals(db) -> dict[tuple[str, str], Decimal]:  # noqa: ANN001
    """Invoice totals as issued in the store (read back, not timed)."""
    from sqlalchemy import select

    from kwhub.hub.store.settlement_tables import invoice_table as t

    with db.engine.connect() as conn:
        rows = conn.execute(select(t.c.buyer, t.c.period, t.c.total, t.c.kind)).all()
    return {(b, p): Decimal(total) for b, p, total, kind in rows if kind == "invoice"}


def kernel_rate() -> float:
    """Tenant aggregation + TOU bins + peaks over a dense year matrix (arrays in memory)."""
    from kwhub.core.pricing.tou import LocalCalendar

    per = billing_period(MONTHS[0], TZ)
    n = 35_040
    s = per.span.start_epoch + 900 * np.arange(n, dtype=np.int64)
    mat = np.empty((N_CHANNELS, n))
    for i in range(N_CHANNELS):
        mat[i] = values(i, n)
    cal = LocalCalendar.from_starts(s, TZ)
    on = (cal.weekday < 5) & (cal.minute_of_day >= 7 * 60) & (cal.minute_of_day < 23 * 60)
    month = cal.month.astype(np.intp) - 1
    bins = month * 2 + on.astype(np.intp)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        tenant_kwh = mat.reshape(N_TENANTS, PER_TENANT, n).sum(axis=1)
        energy = np.stack([np.bincount(bins, weights=row, minlength=24) for row in tenant_kwh])
        peaks = np.stack([np.maximum.reduceat(row, np.flatnonzero(np.r_[True, np.diff(month) != 0])) for row in tenant_kwh])
        best = min(best, time.perf_counter() - t0)
    assert energy.shape == (N_TENANTS, 24) and peaks.shape == (N_TENANTS, 12)
    return N_CHANNELS * n / best


PEER_SQL = f"""
    WITH t AS (
        SELECT tenant, timezone('{TZ}', ts) AS lt, sum(kwh) AS kwh
        FROM readings GROUP BY tenant, ts
    ), c AS (
        SELECT tenant, strftime(lt, '%Y-%m') AS month,
               CASE WHEN isodow(lt) <= 5 AND hour(lt) >= 7 AND hour(lt) < 23 THEN 'on_peak' ELSE 'off_peak' END AS tou,
               kwh
        FROM t WHERE year(lt) = {YEAR}
    )
    SELECT tenant, month, tou, sum(kwh), max(kwh) FROM c GROUP BY tenant, month, tou ORDER BY 1, 2, 3
"""


def peer_files() -> tuple[Path, Path, float]:
    """The peers' copies of the same data, made once and cached beside the store (not timed):
    a DuckDB database with a native row-per-interval table, and a Parquet file of it."""
    import duckdb
    import pandas as pd

    duck = CACHE.with_suffix(".duckdb")
    parquet = CACHE.with_suffix(".parquet")
    if duck.exists() and parquet.exists():
        return duck, parquet, 0.0
    t0 = time.perf_counter()
    for p in (duck, parquet):
        if p.exists():
            p.unlink()
    st = starts()
    n = st.size
    con = duckdb.connect(str(duck))
    con.execute("SET TimeZone = 'UTC'")
    con.execute("CREATE TABLE readings (channel INTEGER, tenant INTEGER, ts TIMESTAMPTZ, kwh DOUBLE)")
    ts = (st * 1_000_000).astype("datetime64[us]")
    for i0 in range(0, N_CHANNELS, 100):
        chunk = range(i0, min(i0 + 100, N_CHANNELS))
        frame = pd.DataFrame({
            "channel": np.repeat(np.array(list(chunk), dtype=np.int32), n),
            "tenant": np.repeat(np.array([i // PER_TENANT for i in chunk], dtype=np.int32), n),
            "ts": np.tile(ts, len(chunk)),
            "kwh": np.concatenate([values(i, n) for i in chunk]),
        })
        con.register("chunk_df", frame)
        con.execute("INSERT INTO readings SELECT channel, tenant, ts::TIMESTAMPTZ, kwh FROM chunk_df")
        con.unregister("chunk_df")
    con.execute("CHECKPOINT")
    con.execute(f"COPY readings TO '{parquet}' (FORMAT PARQUET)")
    con.close()
    return duck, parquet, time.perf_counter() - t0


def peer_amounts(rows) -> dict[tuple[str, str], dict[str, Decimal]]:  # noqa: ANN001
    """Tenant-month energy and invoice totals from ``(tenant, month, tou, kwh, max kwh)`` rows,
    with the same Decimal rounding as the contract (not timed)."""
    pol = MoneyPolicy(currency="USD")
    out: dict[tuple[str, str], dict[str, Decimal]] = {}
    peak: dict[tuple[str, str], float] = {}
    for t, month, tou, kwh, mx in rows:
        key = (tenant(int(t)), month)
        d = out.setdefault(key, {"energy_kwh": Decimal(0), "total": Decimal(0)})
        d["energy_kwh"] += to_decimal(float(kwh))
        q = pol.quantity(to_decimal(float(kwh)) / 1000)
        d["total"] += pol.amount(q * PRICES[tou])
        peak[key] = max(peak.get(key, 0.0), float(mx) * 4.0)
    for key, d in out.items():
        d["total"] += pol.amount(pol.quantity(to_decimal(peak[key])) * DEMAND_PRICE)
        d["total"] += pol.amount(FEE_TOTAL * SHARE)
    return out


def duckdb_peer(duck: Path) -> tuple[float, float, list]:
    """DuckDB querying its own on-disk table (loaded beforehand, as our store is): query time only."""
    import duckdb

    con = duckdb.connect(str(duck), read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    w0, c0 = time.perf_counter(), time.process_time()
    rows = con.execute(PEER_SQL).fetchall()
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    con.close()
    return wall, cpu, rows


def polars_peer(parquet: Path) -> tuple[float, float, list]:
    """polars over the Parquet file: the same tenant-month TOU energy and peaks (lazy scan, one collect)."""
    import polars as pl

    w0, c0 = time.perf_counter(), time.process_time()
    lt = pl.col("ts").dt.convert_time_zone(TZ)
    per_ts = (pl.scan_parquet(parquet).group_by("tenant", "ts").agg(pl.col("kwh").sum())
              .with_columns(lt.alias("lt"))
              .filter(pl.col("lt").dt.year() == YEAR)
              .with_columns(pl.col("lt").dt.strftime("%Y-%m").alias("month"),
                            pl.when((pl.col("lt").dt.weekday() <= 5) & (pl.col("lt").dt.hour() >= 7)
                                    & (pl.col("lt").dt.hour() < 23))
                            .then(pl.lit("on_peak")).otherwise(pl.lit("off_peak")).alias("tou")))
    frame = (per_ts.group_by("tenant", "month", "tou")
             .agg(pl.col("kwh").sum().alias("sum"), pl.col("kwh").max().alias("max"))
             .sort("tenant", "month", "tou").collect())
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    return wall, cpu, frame.rows()


def ours(outcomes) -> dict[tuple[str, str], dict[str, Decimal]]:  # noqa: ANN001
    out = {}
    for o in outcomes:
        inv = o.invoice
        energy = sum((Decimal(ln.determinants["energy_kwh"]) for ln in inv.lines if ln.charge_type == "energy"),
                     Decimal(0))
        out[(inv.buyer.id, o.period)] = {"energy_kwh": energy, "total": inv.total}
    return out


def _median(xs: list[float]) -> float:
    return sorted(xs)[len(xs) // 2]


def _fig(xs: list[float]) -> str:
    return f"{_median(xs):.3f} s ({min(xs):.3f}-{max(xs):.3f})"


def main() -> None:
    import argparse

    from kwhub.hub.settle.parallel import default_jobs
    from kwhub.hub.store import Database

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tenants", type=int, default=20, help="tenants of 50 channels each (default 20)")
    ap.add_argument("--runs", type=int, default=3, help="timed runs of each engine (medians reported)")
    ap.add_argument("--jobs", type=int, default=default_jobs(),
                    help=f"processes of our settle, as `kwhub settle --jobs` (default {default_jobs()}: "
                         "this machine's CPUs, as the CLI)")
    args = ap.parse_args()
    configure(args.tenants)
    setup_s, cached = build_store()
    print(f"store: {CACHE} ({'cached' if cached else f'built in {setup_s:.1f} s'}), "
          f"{N_CHANNELS} channels x {starts().size} quarter-hours")
    duck, parquet, peer_setup = peer_files()
    print(f"peers' copies: {duck.name}, {parquet.name} ({f'made in {peer_setup:.1f} s' if peer_setup else 'cached'})")
    camp = campus()
    n_int = N_CHANNELS * sum(billing_period(m, TZ).span.n_intervals(15) for m in MONTHS)
    ours_w, ours_c, duck_w, duck_c, pol_w, pol_c = [], [], [], [], [], []
    match = True
    for r in range(args.runs):
        work = fresh_copy()
        os.sync()  # the copy reaches the disk before the clock starts (its flush is not our work)
        db = Database.open(f"sqlite:///{work}")
        secs, cpu, outcomes = settle_year(db, camp, args.jobs)
        stored = stored_totals(db)
        db.close()
        for p in work.parent.glob(work.name + "*"):
            p.unlink()
        errors = [o for o in outcomes if o.status != "issued"]
        if errors:
            print("not issued:", errors[0].status, errors[0].error or errors[0].held_reasons)
        dw, dc, drows = duckdb_peer(duck)
        pw, pc, prows = polars_peer(parquet)
        ours_w.append(secs)
        ours_c.append(cpu)
        duck_w.append(dw)
        duck_c.append(dc)
        pol_w.append(pw)
        pol_c.append(pc)
        mine = ours([o for o in outcomes if o.status == "issued"])
        for name, peer in (("duckdb", peer_amounts(drows)), ("polars", peer_amounts(prows))):
            ok = (not errors and set(mine) == set(peer) == set(stored) and len(mine) == N_TENANTS * 12
                  and all(mine[k]["energy_kwh"] == peer[k]["energy_kwh"] and mine[k]["total"] == peer[k]["total"]
                          == stored[k] for k in mine))
            if not ok:
                bad = [k for k in mine if k in peer and mine[k] != peer[k]][:3]
                print(f"mismatch with {name}:", [(k, mine[k], peer.get(k)) for k in bad])
            match = match and ok
        print(f"run {r + 1}: kwhub {secs:.3f} s (cpu {cpu:.3f}), duckdb {dw:.3f} s (cpu {dc:.3f}), "
              f"polars {pw:.3f} s (cpu {pc:.3f}); {len(outcomes)} runs, {len(outcomes) - len(errors)} invoices")
    ours_s, duck_s, pol_s = _median(ours_w), _median(duck_w), _median(pol_w)
    print(f"kwhub:  {_fig(ours_w)}, cpu {_fig(ours_c)}, {args.jobs} process(es): {n_int:,} intervals from the store to issued invoices "
          f"({n_int / ours_s / 1e6:.1f} M intervals/s)")
    print(f"duckdb: {_fig(duck_w)}, cpu {_fig(duck_c)} (its own on-disk table, loaded beforehand; query only)"
          f"  ours/peer {ours_s / duck_s:.2f}")
    print(f"polars: {_fig(pol_w)}, cpu {_fig(pol_c)} (lazy scan of Parquet)  ours/peer {ours_s / pol_s:.2f}")
    rate = kernel_rate()
    print(f"kernel: {rate / 1e6:.0f} M intervals/s (aggregation + TOU bins + peaks, in memory)")
    print(f"tenant-month totals match DuckDB and polars (to the cent, every run): {match}")
    print(json.dumps({"tenants": N_TENANTS, "runs_timed": args.runs, "seconds": round(ours_s, 3),
                      "seconds_spread": [round(min(ours_w), 3), round(max(ours_w), 3)],
                      "cpu_seconds": round(_median(ours_c), 3),
                      "duckdb_seconds": round(duck_s, 3), "duckdb_spread": [round(min(duck_w), 3), round(max(duck_w), 3)],
                      "duckdb_cpu_seconds": round(_median(duck_c), 3),
                      "polars_seconds": round(pol_s, 3), "polars_spread": [round(min(pol_w), 3), round(max(pol_w), 3)],
                      "polars_cpu_seconds": round(_median(pol_c), 3),
                      "ratio_duckdb": round(ours_s / duck_s, 3), "ratio_polars": round(ours_s / pol_s, 3),
                      "kernel_intervals_per_s": round(rate), "totals_match": bool(match),
                      "intervals": n_int, "runs": len(outcomes)}))


if __name__ == "__main__":
    main()
