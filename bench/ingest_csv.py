"""Benchmark: CSV ingest end to end (parse + store + VEE) vs. DuckDB ``read_csv`` into a native table.

Generates a wide kwhub CSV (35,040 quarter-hours x 286 channels = 10,021,440 intervals by
default), ingests it into a fresh SQLite database with ``kwhub.hub.ingest.batch.ingest_file``
(what ``kwhub ingest`` runs: the file streamed chunk by chunk into one raw-layer transaction,
VEE on the touched days from the arrays written), plus the wait until the background
checkpoint has copied the SQLite log into the file. The peer
loads the same file into a native table of a fresh on-disk DuckDB database
(``CREATE TABLE ... AS SELECT * FROM read_csv(...)`` and a checkpoint; no validation).
Both totals are checked equal (every value in thousandths of a kWh, summed as integers).
Each side runs ``--runs`` times on a fresh database; medians (wall and CPU) with the spread.
Our CPU includes the ingest's worker process when one ran (``KWHUB_INGEST_WORKERS=2``:
kwhub.hub.ingest.worker); the main process's own CPU is printed beside it.
The last line is one JSON object.

    python bench/ingest_csv.py [--rows 35040] [--channels 286] [--runs 3] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kwhub.core.campus import Campus, Channel, Site  # noqa: E402
from kwhub.hub.ingest.batch import adapter_context, ingest_file  # noqa: E402
from kwhub.plugins.meters.csv_meter import CsvMeter  # noqa: E402


def generate(path: Path, rows: int, channels: int, seed: int = 1) -> list[str]:
    """Write the wide CSV in row chunks (values with 3 decimals, a few gaps)."""
    names = [f"ch{i:03d}.load" for i in range(channels)]
    rng = np.random.default_rng(seed)
    t0 = np.datetime64("2024-01-01T00:00:00", "s")
    with path.open("w") as fh:
        fh.write("interval_start," + ",".join(names) + "\n")
        chunk = 2048
        for a in range(0, rows, chunk):
            n = min(chunk, rows - a)
            ts = np.char.add((t0 + np.arange(a, a + n) * np.timedelta64(900, "s")).astype(str), "Z")
            vals = np.round(rng.random((n, channels)) * 5000, 3)
            text = np.char.mod("%.3f", vals)
            lines = [t + "," + ",".join(r) for t, r in zip(ts.tolist(), text.tolist(), strict=True)]
            fh.write("\n".join(lines) + "\n")
    return names


def duckdb_peer(csv_path: Path, target: Path) -> tuple[float, float, int]:
    """DuckDB: the CSV into a native table of a fresh on-disk database, checkpointed.
    Returns wall and CPU seconds and the total in thousandths of a kWh (not timed)."""
    import duckdb

    for p in target.parent.glob(target.name + "*"):
        p.unlink()
    w0, c0 = time.perf_counter(), time.process_time()
    con = duckdb.connect(str(target))
    con.execute(f"CREATE TABLE reading AS SELECT * FROM read_csv('{csv_path}', header = true)")
    con.execute("CHECKPOINT")
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    cols = [r[0] for r in con.execute("DESCRIBE reading").fetchall() if r[0] != "interval_start"]
    total = con.execute("SELECT " + " + ".join(f'sum(round("{c}" * 1000)::BIGINT)' for c in cols)
                        + " FROM reading").fetchone()[0]
    con.close()
    return wall, cpu, int(total)


def our_total(db, names: list[str], rows: int) -> int:  # noqa: ANN001
    """What the store holds (raw layer), in thousandths of a kWh (read back, not timed)."""
    from datetime import UTC, datetime

    from kwhub.core.timeline import Span

    t0 = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())
    span = Span(datetime.fromtimestamp(t0, UTC), datetime.fromtimestamp(t0 + rows * 900, UTC))
    m = db.intervals.read_matrix(names, span, 15, layer="raw")
    v = m.values[~np.isnan(m.values)]
    return int(np.rint(v * 1000).astype(np.int64).sum())


def _children_cpu() -> float:
    """CPU seconds of the child processes ended so far (the ingest's VEE worker)."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _median(xs: list[float]) -> float:
    return sorted(xs)[len(xs) // 2]


def _fig(xs: list[float]) -> str:
    return f"{_median(xs):.2f} s ({min(xs):.2f}-{max(xs):.2f})"


def ingest_once(work: Path, csv_path: Path, campus: Campus, meter: CsvMeter, vee: bool) -> dict:
    """One ingest into a fresh database: ``ingest_file`` (what ``kwhub ingest`` runs: a large
    wide file streamed chunk by chunk into one transaction, VEE on the touched days), then
    the wait until the background checkpoint has copied the SQLite log into the file."""
    from kwhub.hub.store import Database

    for p in work.glob("kwhub.db*"):
        p.unlink()
    db = Database.open(f"sqlite:///{work / 'kwhub.db'}")
    c0, k0 = time.process_time(), _children_cpu()
    t0 = time.perf_counter()
    report = ingest_file(db, campus, meter, csv_path, run_vee=vee)
    t_ingest = time.perf_counter() - t0
    # the SQLite log is copied into the database file by a background thread while the work
    # goes on; waiting for it here keeps that copy inside the measured time
    t0 = time.perf_counter()
    db.wait_checkpointed()
    t_checkpoint = time.perf_counter() - t0
    cpu_main = time.process_time() - c0
    cpu = cpu_main + _children_cpu() - k0  # (with the VEE worker process, when one ran)
    return {"db": db, "n": report.intervals, "ingest": t_ingest, "checkpoint": t_checkpoint,
            "total": t_ingest + t_checkpoint, "cpu": cpu, "cpu_main": cpu_main, "new_days": report.new_days,
            "streamed": bool(report.meta.get("streamed")),
            "vee_events": sum(sum(v for k, v in r.items() if k in ("flagged", "estimated", "edited"))
                              for r in (report.vee or {}).get("rules", {}).values())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=35_040)
    ap.add_argument("--channels", type=int, default=286)
    ap.add_argument("--runs", type=int, default=3, help="timed runs of each side (medians reported)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kwhub_bench_csv_"))
    csv_path = work / "wide.csv"
    t = time.perf_counter()
    names = generate(csv_path, args.rows, args.channels)
    print(f"generated {csv_path.stat().st_size / 1e6:.1f} MB in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    os.sync()  # the generator's writes reach the disk now, not during the timed steps

    campus = Campus(sites=[Site(id="site")], channels=[Channel(id=n, interval_minutes=15) for n in names])
    meter = CsvMeter("bench", {}, adapter_context(campus))
    try:
        import kwhub.hub.ingest.vee  # noqa: F401

        vee = True
    except ImportError:
        vee = False

    # process start-up, not ingest work: the plugin registry (VEE rules; importing every
    # plugin module pulls in reportlab, asyncssh, ...) is loaded once per process, before
    # the timed steps, as a long-running ingest service has it loaded already
    from kwhub.hub.registry import get_registry

    t0 = time.perf_counter()
    get_registry()
    t_registry = time.perf_counter() - t0
    print(f"plugin registry loaded before the timed steps in {t_registry:.2f} s (process start-up, not timed)",
          file=sys.stderr)

    ours: list[dict] = []
    peer_w: list[float] = []
    peer_c: list[float] = []
    match = True
    for r in range(args.runs):
        got = ingest_once(work, csv_path, campus, meter, vee)
        os.sync()  # our writes are on disk before the peer's clock starts
        pw, pc, peer_total = duckdb_peer(csv_path, work / "peer.duckdb")
        peer_w.append(pw)
        peer_c.append(pc)
        if r == 0:
            mine = our_total(got["db"], names, args.rows)
            match = mine == peer_total
            print(f"totals (thousandths of a kWh): kwhub {mine:,}, duckdb {peer_total:,}, equal: {match}",
                  file=sys.stderr)
        got.pop("db").close()
        ours.append(got)
        print(f"run {r + 1}: ingest_file {got['ingest']:.2f} s (streamed: {got['streamed']}), checkpoint wait "
              f"{got['checkpoint']:.2f} s; total {got['total']:.2f} s (cpu {got['cpu']:.2f}, main process "
              f"{got['cpu_main']:.2f}); "
              f"duckdb read_csv {pw:.2f} s (cpu {pc:.2f}); load average {os.getloadavg()[0]:.2f}", file=sys.stderr)
    n = ours[0]["n"]
    total = [o["total"] for o in ours]
    t_total, t_peer = _median(total), _median(peer_w)
    print(f"kwhub:  {_fig(total)}, cpu {_fig([o['cpu'] for o in ours])}: {n / t_total / 1e6:.2f} M intervals/s "
          f"end to end (VEE {'on' if vee else 'off'})", file=sys.stderr)
    print(f"duckdb: {_fig(peer_w)}, cpu {_fig(peer_c)}: {n / t_peer / 1e6:.2f} M intervals/s (read_csv into a "
          f"native table, no validation)  ours/peer time {t_total / t_peer:.2f}", file=sys.stderr)
    med = {k: _median([o[k] for o in ours]) for k in ("ingest", "checkpoint", "cpu", "cpu_main")}
    result = {
        "intervals": n,
        "intervals_per_s": round(n / t_total),
        "seconds": round(t_total, 3),
        "seconds_spread": [round(min(total), 3), round(max(total), 3)],
        "cpu_seconds": round(med["cpu"], 3),
        "cpu_seconds_main_process": round(med["cpu_main"], 3),
        "streamed": all(o["streamed"] for o in ours),
        "checkpoint_wait_s": round(med["checkpoint"], 3),
        "vee": vee,
        "peer": "duckdb read_csv into a native on-disk table, checkpointed",
        "peer_seconds": round(t_peer, 3),
        "peer_spread": [round(min(peer_w), 3), round(max(peer_w), 3)],
        "peer_cpu_seconds": round(_median(peer_c), 3),
        "peer_intervals_per_s": round(n / t_peer),
        "ratio": round(t_total / t_peer, 3),
        "totals_match": bool(match),
        "runs": args.runs,
        "csv_mb": round(csv_path.stat().st_size / 1e6, 1),
        "registry_load_s_untimed": round(t_registry, 3),
        "seconds_runs": [round(x, 3) for x in total],
        "peer_seconds_runs": [round(x, 3) for x in peer_w],
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    if not args.keep:
        for p in sorted(work.glob("*")):
            p.unlink()
        os.rmdir(work)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
