"""Benchmark: shadow-settle a year of 5-minute real-time data for 50 resources from the store.

Setup (not timed, cached in /tmp): 50 CAISO resources for 2026 in a SQLite store: the
metered delivery as 5-minute channel-days in the interval store, day-ahead awards
(hourly) and day-ahead (hourly) and RTD (5-minute) prices as price days. That is
50 x 105,120 = 5.26 M metered 5-minute intervals; CAISO settles two codes on them
(6470 RTD instructed and 6475 uninstructed imbalance), so 10.5 M 5-minute charge lines,
plus 6460 (15-minute) and 6011 (hourly). The RTD dispatch (5-minute, whole kWh around the
schedule) is generated in memory with a fixed seed and handed to both sides alike (the
store has no dispatch table); everything else is read from the store.

Timed, each from the same store in the same run:
* kwhub: read the dense arrays (interval store matrix, award and price day blobs) and
  run :func:`kwhub.core.markets.shadow.shadow_settle` (exact int64 fixed point, one rounding
  per line);
* peer: read the same rows into long pandas frames and settle with merge/groupby (the
  same integer arithmetic and rounding in pandas columns).

Totals per code must be equal to the cent. Target: kwhub >= 5x faster end to end. Three
alternated rounds (``KWHUB_BENCH_ROUNDS``), medians printed with the load average. Last line: JSON.

Where kwhub's time goes (cProfile, 2 shared cores): about 60 % is the read, of which the
SQLite fetch of the price and award day blobs (``fetchall``) is the largest part, then
the interval store's ``read_matrix``; the settlement itself is dominated by the exact
block-wise amounts (:func:`kwhub.core.markets.fixed.amount_cents`) and the SHA-256 of the inputs.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kwhub.core.intervals import ChannelSeries  # noqa: E402
from kwhub.core.markets.fixed import AMOUNT_DIVISOR  # noqa: E402
from kwhub.core.markets.prices import MarketPrices  # noqa: E402

N_RES = 50
DAYS = 365
FIRST = date(2026, 1, 1)
TZ = "UTC"  # a UTC operating day keeps the year at 8,760 hours; DST days are covered by the tests
CACHE = Path(os.environ.get("KWHUB_BENCH_DIR", "/tmp")) / "kwhub_bench_market_v1.db"
RES = [f"GEN{r:02d}" for r in range(N_RES)]


def _build() -> None:
    from kwhub.hub.markets import store
    from kwhub.hub.store import Database
    from kwhub.hub.store.market_tables import market_award_day_table

    tmp = CACHE.with_suffix(".building")
    for p in tmp.parent.glob(tmp.name + "*"):
        p.unlink()
    db = Database.open(f"sqlite:///{tmp}")
    t0 = time.perf_counter()
    start = int(np.datetime64(FIRST.isoformat(), "s").astype(np.int64))
    n5, nh = DAYS * 288, DAYS * 24
    s5 = start + 300 * np.arange(n5, dtype=np.int64)
    sh = start + 3600 * np.arange(nh, dtype=np.int64)
    for r, res in enumerate(RES):
        rng = np.random.default_rng(r)
        award_mwh = rng.integers(0, 60, nh)  # whole MW cleared per hour
        meter_kwh = (np.repeat(award_mwh, 12) * 1000 / 12 + rng.normal(0, 150, n5)).round(3)
        db.intervals.write_series([ChannelSeries(f"{res}.meter", 5, s5, meter_kwh, np.zeros(n5, np.uint8))],
                                  layer="validated", source="bench")
        da = (3_000_000 + rng.integers(-1_000_000, 2_000_000, nh)).astype(np.int64)  # $20-$50, 5 decimals
        rt = (np.repeat(da, 12) + rng.integers(-1_500_000, 1_500_000, n5)).astype(np.int64)
        store.save_prices(db, [MarketPrices("CAISO", res, "DA", 60, sh, da),
                               MarketPrices("CAISO", res, "RT", 5, s5, rt)], TZ)
        wh = award_mwh.astype(np.int64) * 1_000_000
        rows = [{"iso": "CAISO", "market": "DA", "resource": res, "trading_date": FIRST + timedelta(days=d),
                 "start_epoch": start + 86_400 * d, "interval_minutes": 60, "n_values": 24,
                 "wh": np.ascontiguousarray(wh[24 * d:24 * d + 24], "<i8").tobytes(), "bid_id": res, "iso_ref": "",
                 "received_at": store._now()} for d in range(DAYS)]
        with db.write_transaction() as conn:
            conn.execute(market_award_day_table.insert(), rows)
    db.close()
    os.replace(tmp, CACHE)
    print(f"built {CACHE} in {time.perf_counter() - t0:.1f} s")


def read_dense(db):  # noqa: ANN001, ANN201
    """kwhub's read: dense (R, N) arrays from the store."""
    from kwhub.core.markets.fixed import wh_from_kwh
    from kwhub.core.timeline import Span
    from kwhub.hub.markets import store

    start = int(np.datetime64(FIRST.isoformat(), "s").astype(np.int64))
    hours = DAYS * 24
    from datetime import UTC, datetime

    span = Span(datetime.fromtimestamp(start, tz=UTC), datetime.fromtimestamp(start + hours * 3600, tz=UTC))
    m = db.intervals.read_matrix([f"{r}.meter" for r in RES], span, 5, layer="validated")
    return dict(start=start, hours=hours, meter=wh_from_kwh(m.values), meter_ok=~np.isnan(m.values),
                award=store.load_award_hours(db, "CAISO", "DA", RES, start, hours),
                da=store.load_prices(db, "CAISO", RES, "DA", start, hours, 60),
                rt=store.load_prices(db, "CAISO", RES, "RT", start, hours * 12, 5))


def rtd_dispatch() -> np.ndarray:
    """(R, N) RTD dispatch in Wh: the schedule's 1/12 per 5 minutes +- a few whole kWh."""
    rng = np.random.default_rng(12345)
    return rng.integers(-3, 4, (N_RES, DAYS * 288)).astype(np.int64) * 1000


def kwhub(db, rtd_delta: np.ndarray) -> tuple[dict[str, int], float, float]:  # noqa: ANN001
    from kwhub.core.markets.shadow import ShadowInputs, shadow_settle

    t0 = time.perf_counter()
    d = read_dense(db)
    t1 = time.perf_counter()
    rtd = np.repeat(d["award"] // 12, 12, axis=1) + rtd_delta  # awards are whole MWh x 12: exact
    inp = ShadowInputs(iso="CAISO", resources=RES, start_epoch=d["start"], hours=d["hours"], rt_minutes=5,
                       da_sale_wh=d["award"], da_purchase_wh=np.zeros_like(d["award"]), da_price_u=d["da"].units,
                       da_price_ok=d["da"].ok, rt_meter_wh=d["meter"], rt_meter_ok=d["meter_ok"],
                       rt_price_u=d["rt"].units, rt_price_ok=d["rt"].ok, rtd_wh=rtd)
    res = shadow_settle(inp)
    t2 = time.perf_counter()
    return {c: lines.total_cents() for c, lines in res.codes.items()}, t1 - t0, t2 - t1


def _round_half_up(num, den):  # noqa: ANN001, ANN202
    mag = (2 * num.abs() + den) // (2 * den)
    return mag.where(num >= 0, -mag)


def peer(db, rtd_delta: np.ndarray) -> tuple[dict[str, int], float, float]:  # noqa: ANN001
    """pandas: long frames from the same rows, merged and grouped."""
    import pandas as pd
    from sqlalchemy import text

    t0 = time.perf_counter()
    with db.engine.connect() as conn:
        meter_rows = conn.execute(text("SELECT channel_id, day, \"values\" FROM interval_day WHERE layer = 'validated' "
                                       "AND is_current ORDER BY channel_id, day")).all()
        price_rows = conn.execute(text("SELECT node, market, start_epoch, n_values, price_units, version "
                                       "FROM market_price_day ORDER BY node, market, day, version")).all()
        award_rows = conn.execute(text("SELECT resource, start_epoch, wh FROM market_award_day")).all()

    def long(rows, step_of, value_of, key):  # noqa: ANN001, ANN202
        ids, starts, vals = [], [], []
        for r in rows:
            v = value_of(r)
            ids.append(np.full(len(v), key(r), dtype=object))
            starts.append(r_start(r) + step_of(r) * np.arange(len(v), dtype=np.int64))
            vals.append(v)
        return pd.DataFrame({"resource": np.concatenate(ids), "start": np.concatenate(starts),
                             "v": np.concatenate(vals)})

    def r_start(r):  # noqa: ANN001, ANN202
        if hasattr(r, "day"):
            return int(np.datetime64(r.day, "s").astype(np.int64)) if not isinstance(r.day, str) else \
                int(np.datetime64(r.day).astype("datetime64[s]").astype(np.int64))
        return int(r.start_epoch)

    meter = long(meter_rows, lambda r: 300, lambda r: np.round(np.frombuffer(r[2], "<f8") * 1000).astype(np.int64),
                 lambda r: r.channel_id.removesuffix(".meter"))
    da = long([r for r in price_rows if r.market == "DA"], lambda r: 3600,
              lambda r: np.frombuffer(r.price_units, "<i8"), lambda r: r.node)
    rt = long([r for r in price_rows if r.market == "RT"], lambda r: 300,
              lambda r: np.frombuffer(r.price_units, "<i8"), lambda r: r.node)
    awards = long(award_rows, lambda r: 3600, lambda r: np.frombuffer(r.wh, "<i8"), lambda r: r.resource)
    start = int(np.datetime64(FIRST.isoformat(), "s").astype(np.int64))
    n5 = DAYS * 288
    rtd = pd.DataFrame({"resource": np.repeat(np.array(RES, dtype=object), n5),
                        "start": np.tile(start + 300 * np.arange(n5, dtype=np.int64), N_RES),
                        "rtd_delta": rtd_delta.ravel()})
    t1 = time.perf_counter()
    # 6011: DA schedule x DA LMP, hourly
    h = awards.merge(da, on=["resource", "start"], suffixes=("_award", "_price"))
    h["amt"] = _round_half_up(-h["v_award"] * h["v_price"], AMOUNT_DIVISOR)
    # 5-minute: meter x RTD LMP, with the hour's award
    f = meter.merge(rt, on=["resource", "start"], suffixes=("_meter", "_price"))
    f["hour"] = f["start"] - f["start"] % 3600
    f = f.merge(awards.rename(columns={"start": "hour", "v": "award"}), on=["resource", "hour"], how="left")
    f["award"] = f["award"].fillna(0).astype(np.int64)
    f = f.merge(rtd, on=["resource", "start"])
    f["rtd12"] = 12 * (f["award"] // 12 + f["rtd_delta"])
    f["a6475"] = _round_half_up(-(12 * f["v_meter"] - f["rtd12"]) * f["v_price"], 12 * AMOUNT_DIVISOR)
    f["a6470"] = _round_half_up(-(f["rtd12"] - f["award"]) * f["v_price"], 12 * AMOUNT_DIVISOR)
    totals = {"6011": int(h.groupby("resource")["amt"].sum().sum()),
              "6460": 0,
              "6470": int(f.groupby("resource")["a6470"].sum().sum()),
              "6475": int(f.groupby("resource")["a6475"].sum().sum())}
    t2 = time.perf_counter()
    return totals, t1 - t0, t2 - t1


def main() -> None:
    from kwhub.hub.store import Database

    if not CACHE.exists():
        import subprocess

        subprocess.run([sys.executable, __file__, "--build"], check=True)
    db = Database.open(f"sqlite:///{CACHE}", migrate=False)
    delta = rtd_dispatch()
    kwhub(db, delta)  # warm the page cache for both
    rounds = int(os.environ.get("KWHUB_BENCH_ROUNDS", "3"))
    runs_ours, runs_peer = [], []
    for _ in range(rounds):  # alternated, so both sides see the same machine load
        runs_ours.append(kwhub(db, delta))
        runs_peer.append(peer(db, delta))
    db.close()
    ours, theirs = runs_ours[0][0], runs_peer[0][0]
    equal = all(r[0] == ours for r in runs_ours) and all(r[0] == ours for r in runs_peer)
    med = statistics.median
    our_read, our_calc = med(r[1] for r in runs_ours), med(r[2] for r in runs_ours)
    peer_read, peer_calc = med(r[1] for r in runs_peer), med(r[2] for r in runs_peer)
    ours_total, peer_total = med(r[1] + r[2] for r in runs_ours), med(r[1] + r[2] for r in runs_peer)
    ratios = sorted((p[1] + p[2]) / (o[1] + o[2]) for o, p in zip(runs_ours, runs_peer, strict=True))
    n5 = N_RES * DAYS * 288
    load = os.getloadavg()
    print(f"{N_RES} resources x {DAYS * 288:,} five-minute intervals = {n5:,} metered intervals; "
          f"{2 * n5:,} five-minute charge lines (6470, 6475) + 6460 and 6011")
    print(f"medians of {rounds} alternated rounds; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
          f"on {os.cpu_count()} CPUs")
    print(f"kwhub  : read {our_read:.2f} s + settle {our_calc:.2f} s = {ours_total:.2f} s")
    print(f"pandas : read {peer_read:.2f} s + merge/groupby {peer_calc:.2f} s = {peer_total:.2f} s")
    print(f"speed-up end to end {peer_total / ours_total:.1f}x (target >= 5x; per round "
          f"{', '.join(f'{r:.1f}x' for r in ratios)}); settle only {peer_calc / our_calc:.1f}x; totals equal: "
          f"{equal} ({', '.join(f'{c} {v / 100:,.2f}' for c, v in ours.items())})")
    if not equal:
        print(f"peer totals differ: {theirs}")
    print(json.dumps({"metered_intervals": n5, "charge_lines_5min": 2 * n5, "rounds": rounds,
                      "kwhub_read_s": round(our_read, 3), "kwhub_settle_s": round(our_calc, 3),
                      "peer_read_s": round(peer_read, 3), "peer_settle_s": round(peer_calc, 3),
                      "speedup": round(peer_total / ours_total, 2), "speedup_min": round(ratios[0], 2),
                      "settle_speedup": round(peer_calc / our_calc, 2), "totals_equal": equal,
                      "loadavg": [round(x, 2) for x in load]}))

if __name__ == "__main__":
    if "--build" in sys.argv:
        _build()
    else:
        main()
