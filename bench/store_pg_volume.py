"""Benchmark: the interval store at volume on PostgreSQL (month partitions, binary COPY) against SQLite.

Data: ``--channels`` tenant sub-meters (5,000 by default) x ``--days`` UTC days of 2025
(365 by default, plus the UTC day holding the last local evening of the year) of
quarter-hours, in ``--tenants`` tenants (20), each with a contract of energy at
50.125 $/MWh and demand at 9.50 $/kW-month. The same arrays go to both stores.

Timed, per store (a fresh database each: PostgreSQL on 127.0.0.1:5432, created from
``test`` and dropped at the end; a SQLite file under ``--dir``):

* ``write``: every channel-day into the validated layer, ``--batch`` channels per
  transaction and per write (``write_dense_many``, as an ingest writes a batch: one binary
  COPY FROM STDIN of the batch on PostgreSQL, month partitions created on demand; one
  ``executemany`` on SQLite);
* ``maintain`` (its own figure, part of no other; skipped with ``--no-maintain``): what an
  operator runs after a load this large, ``IntervalStore.maintain`` (``kwhub db maintain``):
  ``VACUUM (ANALYZE)`` of the month partitions on PostgreSQL, a sampled ``ANALYZE`` on SQLite;
  printed as ``maintain, untimed``;
* ``read_month``: ``read_matrix`` of every channel over October (UTC), the dense matrix;
* ``settle_year``: ``settle_periods`` of the 12 local months, store to issued invoices
  (``--jobs`` processes, 1 by default, the same for both stores).

Printed: each figure for both stores and the ratio PostgreSQL / SQLite; the invoice totals
of the two stores are compared (``totals_equal``). A full-size run writes about 1.6 GB
into each store; scale down with ``--channels`` and ``--days`` on a busy machine.

Last line: one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from contextlib import ExitStack
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kwhub.core.campus import Campus, Channel, ComponentSpec, Contract, Party  # noqa: E402
from kwhub.core.timeline import Span  # noqa: E402

TZ = "America/New_York"
YEAR = 2025


def campus(n_channels: int, n_tenants: int) -> Campus:
    """Tenants ``t00``..; channel ``k`` belongs to tenant ``k % n_tenants``."""
    parties = [Party(id="op", name="Operator")] + [Party(id=f"t{t:02d}", name=f"Tenant {t}") for t in range(n_tenants)]
    channels = [Channel(id=f"m{k:05d}", party=f"t{k % n_tenants:02d}", role="tenant_load") for k in range(n_channels)]
    contracts = [Contract(id=f"ppa-t{t:02d}", seller="op", buyer=f"t{t:02d}", timezone=TZ, components=[
        ComponentSpec(kind="fixed_energy", price_per_mwh="50.125"),
        ComponentSpec(kind="demand", price_per_kw_month="9.50"),
    ]) for t in range(n_tenants)]
    return Campus(parties=parties, channels=channels, contracts=contracts)


def channel_days(k: int, n_days: int) -> np.ndarray:
    """Channel ``k``'s (days x 96) kWh: a daily shape scaled per channel, a little noise."""
    rng = np.random.default_rng(k)
    shape = 20.0 + 5.0 * np.sin(np.arange(96) * 2 * np.pi / 96)
    return np.round(shape[None, :] * (1.0 + (k % 17) / 17.0) + rng.uniform(0, 1, (n_days, 96)), 3)


def open_store(kind: str, stack: ExitStack, folder: Path) -> Any:
    from kwhub.hub.store import Database

    if kind == "sqlite":
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        return Database.open(work_dir=folder)
    from tests.fixtures.db import temporary_pg_database

    url = stack.enter_context(temporary_pg_database("kwhub_bench_volume"))
    return Database.open(url)


def run_store(kind: str, args: argparse.Namespace, stack: ExitStack) -> dict[str, Any]:
    from kwhub.hub.settle.service import settle_periods
    from kwhub.hub.store import DenseDays

    db = open_store(kind, stack, args.dir / kind)
    out: dict[str, Any] = {}
    try:
        first = date(YEAR, 1, 1)
        days = np.arange(np.datetime64(first), np.datetime64(first) + args.days + 1)  # + the UTC edge day
        quality = np.zeros((len(days), 96), dtype=np.uint8)
        q_write = 0.0
        for lo in range(0, args.channels, args.batch):
            arrays = [(k, channel_days(k, len(days))) for k in range(lo, min(args.channels, lo + args.batch))]
            t0 = time.perf_counter()
            with db.write_transaction() as conn:
                db.intervals.write_dense_many([DenseDays(f"m{k:05d}", 15, days, vals, quality) for k, vals in arrays],
                                              conn=conn, source="bench")
            q_write += time.perf_counter() - t0
        n_int = args.channels * len(days) * 96
        out["write_s"] = q_write
        out["write_intervals_per_s"] = n_int / q_write
        if args.maintain:  # what an ingest of this many days runs after it (not part of the write's figure)
            rep = db.intervals.maintain(first, first + timedelta(days=args.days))
            out["maintain_s"] = rep.seconds
        ids = [f"m{k:05d}" for k in range(args.channels)]
        month = Span(datetime(YEAR, 10, 1, tzinfo=UTC), datetime(YEAR, 11, 1, tzinfo=UTC))
        if args.days >= 304:
            reads = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                m = db.intervals.read_matrix(ids, month, 15, layer="validated")
                reads.append(time.perf_counter() - t0)
            out["read_month_s"] = min(reads)
            out["read_month_values_per_s"] = m.values.size / min(reads)
            out["read_month_checksum"] = float(np.nansum(m.values))
            del m
        months = [f"{YEAR}-{mo:02d}" for mo in range(1, 13) if date(YEAR, mo, 1) <= first + timedelta(days=args.days - 1)]
        c = campus(args.channels, args.tenants)
        t0 = time.perf_counter()
        outcomes = settle_periods(db, c, months, issue_date=date(YEAR + 1, 1, 15), jobs=args.jobs)
        out["settle_s"] = time.perf_counter() - t0
        out["settle_months"] = len(months)
        bad = [o for o in outcomes if o.status != "issued"]
        if bad:
            raise SystemExit(f"{kind}: {bad[0].contract_id} {bad[0].period}: {bad[0].status} {bad[0].error} "
                             f"{bad[0].held_reasons}")
        out["totals"] = {f"{o.contract_id}|{o.period}": str(o.invoice.total) for o in outcomes if o.invoice}
    finally:
        db.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--channels", type=int, default=5000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--tenants", type=int, default=20)
    ap.add_argument("--batch", type=int, default=100, help="channels per write transaction")
    ap.add_argument("--repeat", type=int, default=3, help="reads of the month (the best is kept)")
    ap.add_argument("--dir", type=Path, default=Path("/tmp/kwhub-bench-volume"))
    ap.add_argument("--stores", default="postgresql,sqlite")
    ap.add_argument("--jobs", type=int, default=1,
                    help="processes of each store's settle (kwhub settle --jobs; default 1: the stores compared "
                         "on one process each)")
    ap.add_argument("--no-maintain", dest="maintain", action="store_false",
                    help="skip the maintenance step after the write (IntervalStore.maintain)")
    args = ap.parse_args()
    from kwhub.hub.registry import get_registry

    get_registry()  # loading the plugins is not part of either store's settle
    res: dict[str, dict[str, Any]] = {}
    with ExitStack() as stack:
        for kind in args.stores.split(","):
            res[kind] = run_store(kind, args, stack)
            shutil.rmtree(args.dir / kind, ignore_errors=True)
    n = args.channels * (args.days + 1) * 96
    print(f"store at volume: {args.channels:,} channels x {args.days + 1} days = {n / 1e6:.1f}M intervals, "
          f"{args.tenants} tenants")
    figures = [("write_s", "write (s)"), ("maintain_s", "maintain, untimed (s)"), ("read_month_s", "read of October (s)"), ("settle_s", "settle year (s)")]
    print(f"  {'':24}" + "".join(f"{k:>14}" for k in res) + ("   pg/sqlite" if len(res) == 2 else ""))
    for key, label in figures:
        vals = [res[k].get(key) for k in res]
        if any(v is None for v in vals):
            continue
        ratio = f"   {vals[0] / vals[1]:8.2f}x" if len(vals) == 2 and key != "maintain_s" else ""
        print(f"  {label:24}" + "".join(f"{v:14.2f}" for v in vals) + ratio)
    equal = None
    if len(res) == 2:
        a, b = (res[k]["totals"] for k in res)
        equal = a == b and bool(a)
        print(f"  invoice totals equal: {equal} ({len(a)} invoices, sum {sum(Decimal(v) for v in a.values())})")
    summary: dict[str, Any] = {"channels": args.channels, "days": args.days + 1, "intervals": n, "totals_equal": equal,
                               "maintain": args.maintain}
    for k, r in res.items():
        for key in ("write_s", "write_intervals_per_s", "maintain_s", "read_month_s", "read_month_values_per_s", "settle_s"):
            if key in r:
                summary[f"{k}_{key}"] = round(r[key], 3)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
