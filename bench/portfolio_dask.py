"""Benchmark: a portfolio of small campuses settled on a 2-worker Dask LocalCluster and serially.

Setup (not timed): ``--campuses`` campuses (16 by default), each its own ``kwhub.toml``
with two tenants, a gas turbine, solar and a grid tie, two contracts (one billed from
the allocation), ``--channels`` extra tenant sub-meters and one month (October 2026,
New York) of quarter-hours, all in one shared database: PostgreSQL on 127.0.0.1:5432
(a fresh database per path, created from ``test`` and dropped afterwards), or SQLite
with ``--sqlite``.

Timed: ``settle_serial`` (one campus after the other, in this process) and
``settle_portfolio`` (one task per campus, or per campus and contract with ``--tasks contract``,
on a LocalCluster of ``--workers``
worker processes, one thread each, cluster start-up included and reported apart), each
on its own fresh database holding the same data. The runs, allocations and invoices the
two paths store are compared (``equal``).

Last line: one JSON object with serial_s, dask_s, cluster_start_s, speedup, equal.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kwhub.core.intervals import ChannelSeries, day_start_epoch  # noqa: E402
from kwhub.core.timeline import billing_period  # noqa: E402

TZ = "America/New_York"
PERIOD = "2026-10"

CAMPUS_TOML = """
[hub]
name = "{p}"
timezone = "America/New_York"
database = "{url}"

[[sites]]
id = "{p}.site"

[[parties]]
id = "{p}_op"
name = "Operator {p}"

[[parties]]
id = "{p}_ipp"
name = "Turbine IPP {p}"

[[parties]]
id = "{p}_ta"
name = "Hall A {p}"

[[parties]]
id = "{p}_tb"
name = "Hall B {p}"

[[assets]]
id = "{p}.gt1"
kind = "gas_turbine"
capacity_kw = 55000
owners = [{{ party = "{p}_ipp", share = 1 }}]

[[assets]]
id = "{p}.pv"
kind = "solar"
capacity_kw = 80000
owners = [{{ party = "{p}_op", share = 1 }}]

[[assets]]
id = "{p}.grid"
kind = "grid_tie"

[[channels]]
id = "{p}.a.load"
party = "{p}_ta"
role = "tenant_load"
{extra}
[[channels]]
id = "{p}.b.load"
party = "{p}_tb"
role = "tenant_load"

[[channels]]
id = "{p}.gt1.net"
asset = "{p}.gt1"
role = "generation"

[[channels]]
id = "{p}.pv.net"
asset = "{p}.pv"
role = "generation"

[[channels]]
id = "{p}.grid.in"
asset = "{p}.grid"
role = "grid_import"

[[contracts]]
id = "{p}.ppa-a"
seller = "{p}_op"
buyer = "{p}_ta"
load_channels = [{loads}]

[[contracts.components]]
kind = "fixed_energy"
price_per_mwh = "50.125"

[[contracts.components]]
kind = "demand"
price_per_kw_month = "10"

[[contracts]]
id = "{p}.ppa-b"
seller = "{p}_op"
buyer = "{p}_tb"
sources = ["{p}.gt1", "{p}.pv"]

[[contracts.components]]
kind = "fixed_energy"
price_per_mwh = "45"
per_source = true
source_prices = {{ "{p}.gt1" = "40", "{p}.pv" = "30.5" }}
"""


def campus_names(n: int) -> list[str]:
    """``c01``, ``c02``, ... (ids of every campus are prefixed with its name)."""
    return [f"c{k:02d}" for k in range(1, n + 1)]


def write_campuses(root: Path, n: int, url: str, extra_channels: int = 0) -> list[Path]:
    """``n`` campus folders under ``root``, each with a kwhub.toml on the shared database ``url``."""
    out = []
    for p in campus_names(n):
        folder = root / p
        folder.mkdir(parents=True, exist_ok=True)
        extra = "".join(f'\n[[channels]]\nid = "{p}.a.sub{i}"\nparty = "{p}_ta"\nrole = "tenant_load"\n'
                        for i in range(extra_channels))
        loads = ", ".join(f'"{c}"' for c in [f"{p}.a.load", *(f"{p}.a.sub{i}" for i in range(extra_channels))])
        (folder / "kwhub.toml").write_text(CAMPUS_TOML.format(p=p, url=url, extra=extra, loads=loads))
        out.append(folder)
    return out


def campus_series(p: str, k: int, extra_channels: int = 0) -> list[ChannelSeries]:
    """One month of quarter-hours of campus ``p`` (number ``k``): supply equals the loads in every interval."""
    span = billing_period(PERIOD, TZ).span
    days = span.utc_days()
    starts = np.arange(day_start_epoch(days[0]), day_start_epoch(days[-1] + timedelta(days=1)), 900, dtype=np.int64)
    n = len(starts)
    wave = 10.0 * np.sin(np.arange(n) * 2 * np.pi / 96)  # a daily shape, so demand peaks differ from the mean
    sub = [(f"{p}.a.sub{i}", np.full(n, 5.0 + i)) for i in range(extra_channels)]
    a = 100.0 + k + wave
    b = np.full(n, 50.0)
    subs_total = sum((v for _, v in sub), np.zeros(n))
    gt1 = 90.0 + k + wave + subs_total
    pv = np.full(n, 60.0)
    vals = [(f"{p}.a.load", a), (f"{p}.b.load", b), (f"{p}.gt1.net", gt1), (f"{p}.pv.net", pv),
            (f"{p}.grid.in", np.zeros(n)), *sub]
    q = np.zeros(n, dtype=np.uint8)
    return [ChannelSeries(c, 15, starts, v, q) for c, v in vals]


def load_data(url: str, work_dir: Path, n: int, extra_channels: int = 0) -> None:
    """Write every campus' month into the shared database (validated layer)."""
    from kwhub.hub.store import Database

    db = Database.open(url or None, work_dir=work_dir)
    try:
        for k, p in enumerate(campus_names(n), start=1):
            db.intervals.write_series(campus_series(p, k, extra_channels), layer="validated", source=f"bench {p}")
    finally:
        db.close()


def stored_results(url: str, work_dir: Path) -> dict[str, Any]:
    """What a settle stored, without the instants it happened at: runs, allocations, inputs, invoices."""
    from sqlalchemy import select

    from kwhub.hub.store import Database
    from kwhub.hub.store.settlement_tables import (
        invoice_table,
        run_allocation_table,
        run_input_table,
        settlement_run_table,
    )

    db = Database.open(url or None, work_dir=work_dir)
    r, a, i, v = settlement_run_table.c, run_allocation_table.c, run_input_table.c, invoice_table.c
    try:
        with db.engine.connect() as conn:
            return {
                "runs": [tuple(x) for x in conn.execute(select(
                    r.id, r.contract_id, r.period, r.version_kind, r.seq, r.status, r.layer, r.statement,
                    r.statement_hash, r.invoice_id, r.draft, r.checks).order_by(r.id))],
                "allocations": [tuple(bytes(c) if isinstance(c, (bytes, memoryview)) else c for c in x)
                                for x in conn.execute(select(run_allocation_table).order_by(a.run_id, a.tenant,
                                                                                             a.source))],
                "inputs": [tuple(bytes(c) if isinstance(c, (bytes, memoryview)) else c for c in x)
                           for x in conn.execute(select(run_input_table).order_by(i.run_id, i.channel_id,
                                                                                   i.layer))],
                "invoices": [tuple(x) for x in conn.execute(select(
                    v.id, v.number, v.seller, v.buyer, v.kind, v.contract_id, v.period, v.run_id, v.issue_date,
                    v.line_total, v.tax_total, v.total, v.document, v.document_sha256).order_by(v.id))],
            }
    finally:
        db.close()


def _warm_worker() -> None:
    """What a long-lived worker has done before its first task: kwhub imported, plugins loaded."""
    from kwhub.hub.registry import get_registry
    from kwhub.hub.settle import portfolio  # noqa: F401

    get_registry()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--campuses", type=int, default=16)
    ap.add_argument("--channels", type=int, default=0, help="extra tenant sub-meters per campus")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--tasks", choices=("campus", "contract"), default="campus",
                    help="one Dask task per campus (default) or per contract")
    ap.add_argument("--sqlite", action="store_true", help="a shared SQLite file instead of PostgreSQL")
    ap.add_argument("--dir", type=Path, default=Path("/tmp/kwhub-bench-portfolio"))
    args = ap.parse_args()

    from datetime import date

    from kwhub.hub.settle.portfolio import (
        campus_refs,
        close_cached,
        settle_portfolio,
        settle_serial,
    )

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    issue = date(2026, 11, 5)
    timings: dict[str, float] = {}
    results: dict[str, Any] = {}
    with ExitStack() as stack:
        for path in ("serial", "dask"):
            root = args.dir / path
            if args.sqlite:
                import shutil

                shutil.rmtree(root, ignore_errors=True)
                root.mkdir(parents=True)
                url = f"sqlite:///{root / 'portfolio.db'}"
            else:
                from tests.fixtures.db import temporary_pg_database

                url = stack.enter_context(temporary_pg_database("kwhub_bench_portfolio"))
            folders = write_campuses(root, args.campuses, url, args.channels)
            load_data(url, root, args.campuses, args.channels)
            refs = campus_refs([str(f) for f in folders])
            close_cached()
            if path == "serial":
                t0 = time.perf_counter()
                res = settle_serial(refs, PERIOD, issue_date=issue)
                timings["serial_s"] = time.perf_counter() - t0
            else:
                from dask.distributed import Client, LocalCluster

                t0 = time.perf_counter()
                cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
                addr = cluster.scheduler_address
                with Client(cluster) as warm:  # workers import kwhub and load the plugins before the clock
                    warm.run(_warm_worker)
                timings["cluster_start_s"] = time.perf_counter() - t0
                t0 = time.perf_counter()
                res = settle_portfolio(refs, PERIOD, scheduler=addr, issue_date=issue, group=args.tasks)
                timings["dask_s"] = time.perf_counter() - t0
                cluster.close()
            close_cached()
            assert res.ok, res.as_dict()
            results[path] = stored_results(url, root)
    equal = results["serial"] == results["dask"]
    n_runs = len(results["serial"]["runs"])
    print(f"portfolio: {args.campuses} campuses, {n_runs} runs, {'SQLite' if args.sqlite else 'PostgreSQL'}")
    print(f"  serial (one process)           {timings['serial_s']:8.2f} s")
    print(f"  dask ({args.workers} workers, LocalCluster, a task per {args.tasks})  {timings['dask_s']:8.2f} s "
          f"(cluster start {timings['cluster_start_s']:.2f} s, not included)")
    print(f"  speed-up                       {timings['serial_s'] / timings['dask_s']:8.2f} x   equal: {equal}")
    print(json.dumps({"campuses": args.campuses, "runs": n_runs, "tasks": args.tasks, **{k: round(v, 3) for k, v in timings.items()},
                      "speedup": round(timings["serial_s"] / timings["dask_s"], 3), "equal": equal}))


if __name__ == "__main__":
    main()
