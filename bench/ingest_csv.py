"""Benchmark: CSV ingest end to end (parse + store + VEE) vs. a row-per-interval insert.

Generates a wide kwhub CSV (35,040 quarter-hours x 286 channels = 10,021,440 intervals by
default), ingests it into a fresh SQLite database with the steps ``kwhub.hub.ingest.batch.ingest_file``
takes (adapter parse, raw write in one transaction, VEE on the touched days; each timed, plus
the wait until the background checkpoint has copied the SQLite log into the file) and, as
the peer, inserts the same intervals row by row with ``executemany`` into a plain SQLite
table. The last line is one JSON object.

    python bench/ingest_csv.py [--rows 35040] [--channels 286] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kwhub.core.campus import Campus, Channel, Site  # noqa: E402
from kwhub.hub.ingest.batch import adapter_context, channel_days, ingest_batch  # noqa: E402
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


def peer_insert(db_path: Path, batch_series: list) -> tuple[int, float]:
    """Plain SQLite: one row per interval, executemany in one transaction (rows pre-built)."""
    con = sqlite3.connect(db_path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE reading (channel_id TEXT, interval_start INTEGER, kwh REAL, quality INTEGER, "
                "PRIMARY KEY (channel_id, interval_start))")
    total = 0
    elapsed = 0.0
    for s in batch_series:  # rows built outside the timed part, one channel at a time
        rows = list(zip([s.channel_id] * len(s), s.starts.tolist(), s.values.tolist(), s.quality.tolist(),
                        strict=True))
        t = time.perf_counter()
        con.executemany("INSERT INTO reading VALUES (?, ?, ?, ?)", rows)
        elapsed += time.perf_counter() - t
        total += len(rows)
    t = time.perf_counter()
    con.commit()
    elapsed += time.perf_counter() - t
    con.close()
    return total, elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=35_040)
    ap.add_argument("--channels", type=int, default=286)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kwhub_bench_csv_"))
    csv_path = work / "wide.csv"
    t = time.perf_counter()
    names = generate(csv_path, args.rows, args.channels)
    print(f"generated {csv_path.stat().st_size / 1e6:.1f} MB in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    os.sync()  # the generator's writes reach the disk now, not during the timed steps

    from kwhub.hub.store import Database

    campus = Campus(sites=[Site(id="site")], channels=[Channel(id=n, interval_minutes=15) for n in names])
    db = Database.open(f"sqlite:///{work / 'kwhub.db'}")
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

    # the same steps ingest_file takes, timed one by one: parse, raw write, VEE
    t0 = time.perf_counter()
    batch = meter.read_file(csv_path)
    t_parse = time.perf_counter() - t0
    n = len(batch)
    t0 = time.perf_counter()
    report = ingest_batch(db, campus, batch, adapter_type=meter.type_id, run_vee=False)
    t_store = time.perf_counter() - t0
    t_vee = 0.0
    if vee:
        from kwhub.hub.ingest.vee import validate_days

        t0 = time.perf_counter()
        validate_days(db, campus, channel_days(batch), run_label="bench")
        t_vee = time.perf_counter() - t0
    # the SQLite log is copied into the database file by a background thread while the work
    # goes on; waiting for it here keeps that copy inside the measured time
    t0 = time.perf_counter()
    db.wait_checkpointed()
    t_checkpoint = time.perf_counter() - t0
    t_total = t_parse + t_store + t_vee + t_checkpoint
    print(f"parse {t_parse:.2f} s, store {t_store:.2f} s, VEE {t_vee:.2f} s, checkpoint wait {t_checkpoint:.2f} s; "
          f"total {t_total:.2f} s; new days {report.new_days}", file=sys.stderr)

    peer_rows, t_peer = peer_insert(work / "peer.db", batch.series)
    print(f"peer executemany: {peer_rows:,} rows in {t_peer:.2f} s", file=sys.stderr)
    result = {
        "intervals": n,
        "intervals_per_s": round(n / t_total),
        "parse_intervals_per_s": round(n / t_parse),
        "store_intervals_per_s": round(n / t_store),
        "vee_intervals_per_s": round(n / t_vee) if t_vee else None,
        "seconds": round(t_total, 3),
        "checkpoint_wait_s": round(t_checkpoint, 3),
        "vee": vee,
        "peer_rows_per_s": round(peer_rows / t_peer),
        "peer": "sqlite3 executemany, one row per interval, one transaction (row tuples pre-built)",
        "csv_mb": round(csv_path.stat().st_size / 1e6, 1),
        "registry_load_s_untimed": round(t_registry, 3),
    }
    db.close()
    if not args.keep:
        for p in sorted(work.glob("*")):
            p.unlink()
        os.rmdir(work)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
