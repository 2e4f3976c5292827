"""Benchmark: peak memory of CSV ingest with VEE vs. DuckDB ``read_csv``, each in a fresh process.

Generates a wide kwhub CSV (35,040 quarter-hours x 571 channels = 20,007,840 intervals by
default, about 180 MB) and ingests it into a fresh SQLite database with
``kwhub.hub.ingest.batch.ingest_file`` (VEE on), in a child process that reports its peak
resident memory (``ru_maxrss``) and its resident memory just before the ingest (imports,
plugin registry and database open: the process, not the file). ``--whole`` also runs the
file through the whole-file path (no streaming) for comparison. The peer loads the same
file into a native table of a fresh on-disk DuckDB database in its own child process.
Totals are checked equal (thousandths of a kWh). The last line is one JSON object.

    python bench/ingest_memory.py [--rows 35040] [--channels 571] [--whole] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child(kind: str, csv_path: str, work: str) -> None:
    if kind == "duckdb":
        from bench.ingest_csv import duckdb_peer

        base = _rss_mb()
        t = time.perf_counter()
        _, _, total = duckdb_peer(Path(csv_path), Path(work) / "peer.duckdb")
        secs = time.perf_counter() - t
        n = None
    else:
        from bench.ingest_csv import our_total
        from kwhub.core.campus import Campus, Channel, Site
        from kwhub.hub.ingest import batch as batch_mod
        from kwhub.hub.ingest.batch import adapter_context, ingest_file
        from kwhub.hub.registry import get_registry
        from kwhub.hub.store import Database
        from kwhub.plugins.meters.csv_meter import CsvMeter

        with open(csv_path) as fh:
            names = fh.readline().strip().split(",")[1:]
        rows = sum(1 for _ in open(csv_path)) - 1  # noqa: SIM115
        campus = Campus(sites=[Site(id="site")], channels=[Channel(id=c, interval_minutes=15) for c in names])
        meter = CsvMeter("bench", {}, adapter_context(campus))
        if kind == "whole":
            batch_mod.STREAM_MIN_BYTES = 1 << 62
        get_registry()
        for p in Path(work).glob("kwhub.db*"):
            p.unlink()
        db = Database.open(f"sqlite:///{Path(work) / 'kwhub.db'}")
        base = _rss_mb()
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        t = time.perf_counter()
        report = ingest_file(db, campus, meter, csv_path)
        db.wait_checkpointed()
        secs = time.perf_counter() - t
        n = report.intervals
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        # the ingest's worker process (kwhub.hub.ingest.worker), when one ran: forked from this
        # one, its resident pages include the ones it shares with it (imports: ``base``)
        # (other children, e.g. a subprocess run while importing, count too: reported only when
        # the peak grew during the ingest)
        worker = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        if worker <= children_before:
            worker = 0.0
        total = our_total(db, names, rows)  # read back after the peak was taken
        db.close()
        print(json.dumps({"seconds": secs, "peak_rss_mb": peak, "base_rss_mb": base, "intervals": n,
                          "total": int(total), "streamed": bool(report.meta.get("streamed")),
                          "worker_peak_rss_mb": worker}))
        return
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": secs, "peak_rss_mb": peak, "base_rss_mb": base, "intervals": n, "total": int(total)}))


def run(kind: str, csv_path: Path, work: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", kind, str(csv_path), str(work)], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=35_040)
    ap.add_argument("--channels", type=int, default=571)
    ap.add_argument("--whole", action="store_true", help="also measure the whole-file path (no streaming)")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--child", nargs=3, metavar=("KIND", "CSV", "WORK"))
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    from bench.ingest_csv import generate

    work = Path(tempfile.mkdtemp(prefix="kwhub_bench_mem_"))
    csv_path = work / "wide.csv"
    t = time.perf_counter()
    generate(csv_path, args.rows, args.channels)
    mb = csv_path.stat().st_size / 1e6
    print(f"generated {mb:.1f} MB, {args.rows * args.channels:,} cells in {time.perf_counter() - t:.1f} s",
          file=sys.stderr)
    os.sync()
    ours = run("ours", csv_path, work)
    peer = run("duckdb", csv_path, work)
    whole = run("whole", csv_path, work) if args.whole else None
    equal = ours["total"] == peer["total"] and (whole is None or whole["total"] == peer["total"])
    n = ours["intervals"]
    print(f"kwhub ingest_file (VEE on, streamed: {ours['streamed']}): {n:,} intervals in {ours['seconds']:.2f} s, "
          f"peak RSS {ours['peak_rss_mb']:.0f} MB ({ours['base_rss_mb']:.0f} MB before the ingest: +"
          f"{ours['peak_rss_mb'] - ours['base_rss_mb']:.0f} MB, {(ours['peak_rss_mb'] - ours['base_rss_mb']) * 1e6 / n:.1f}"
          " bytes per interval)", file=sys.stderr)
    if ours.get("worker_peak_rss_mb"):
        print(f"  its worker process: peak RSS {ours['worker_peak_rss_mb']:.0f} MB (forked: the pages it shares with "
              f"the ingest process count in both; +{ours['worker_peak_rss_mb'] - ours['base_rss_mb']:.0f} MB above "
              "the base)", file=sys.stderr)
    if whole:
        print(f"kwhub whole-file path: {whole['seconds']:.2f} s, peak RSS {whole['peak_rss_mb']:.0f} MB "
              f"(+{whole['peak_rss_mb'] - whole['base_rss_mb']:.0f} MB)", file=sys.stderr)
    print(f"duckdb read_csv into a native table: {peer['seconds']:.2f} s, peak RSS {peer['peak_rss_mb']:.0f} MB "
          f"({peer['base_rss_mb']:.0f} MB before); ours/peer peak {ours['peak_rss_mb'] / peer['peak_rss_mb']:.2f}; "
          f"totals (thousandths of a kWh) equal: {equal}; load average {os.getloadavg()[0]:.2f}", file=sys.stderr)
    result = {
        "intervals": n, "csv_mb": round(mb, 1), "streamed": ours["streamed"],
        "peak_rss_mb": round(ours["peak_rss_mb"], 1), "base_rss_mb": round(ours["base_rss_mb"], 1),
        "seconds": round(ours["seconds"], 3),
        "worker_peak_rss_mb": round(ours.get("worker_peak_rss_mb") or 0.0, 1),
        "peer": "duckdb read_csv into a native on-disk table", "peer_peak_rss_mb": round(peer["peak_rss_mb"], 1),
        "peer_seconds": round(peer["seconds"], 3),
        "ratio_peak": round(ours["peak_rss_mb"] / peer["peak_rss_mb"], 3),
        "whole_file_peak_rss_mb": round(whole["peak_rss_mb"], 1) if whole else None,
        "totals_match": bool(equal), "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    if not args.keep:
        for p in sorted(work.glob("*")):
            p.unlink()
        os.rmdir(work)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
