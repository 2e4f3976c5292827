"""Interval store throughput on SQLite (or any URL): write, idempotent rewrite, dense read.

    python bench/store_throughput.py [--channels 30] [--days 3500] [--minutes 15] [--reads 3] [--url URL]

Writes ``channels x days`` of interval values through ``IntervalStore.write_series`` in
batches, writes the same batches again (all unchanged), then reads everything back as a
dense matrix with ``read_matrix`` (``--reads`` times, once the SQLite log has been copied
into the database file; the median is reported).

Peer (SQLite only), timed in the same run, alternating with ours: plain ``sqlite3`` on a
fresh connection fetching the same current value blobs into Python (the same channels,
layer and days, in IN lists of the same size), without building anything from them. It is
what SQLite itself hands to Python; ours also gets the quality bytes, the content hashes
and the day list of every channel-day and copies everything into the dense matrix.
The last line printed is JSON with the figures (``read_ratio``: ours / peer, values/s).
Reference (ARCHITECTURE.md, this machine size): a row per channel-day moves ~13M values/s
written; the read reaches at least 40M values/s into a dense matrix.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from kwhub.core.intervals import ChannelSeries
from kwhub.core.timeline import Span
from kwhub.hub.store import Database


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--channels", type=int, default=30)
    ap.add_argument("--days", type=int, default=3500)
    ap.add_argument("--minutes", type=int, default=15)
    ap.add_argument("--batch-days", type=int, default=365)
    ap.add_argument("--reads", type=int, default=3, help="timed reads of ours and of the peer (medians reported)")
    ap.add_argument("--url", default=None, help="database URL (default: SQLite in a temp dir)")
    args = ap.parse_args()

    per_day = 1440 // args.minutes
    step = args.minutes * 60
    t0 = int(datetime(2015, 1, 1, tzinfo=UTC).timestamp())
    ids = [f"ch{i:03d}" for i in range(args.channels)]
    rng = np.random.default_rng(1)

    with tempfile.TemporaryDirectory() as tmp:
        db = Database.open(args.url, work_dir=Path(tmp))
        batches = []
        for d0 in range(0, args.days, args.batch_days):
            nd = min(args.batch_days, args.days - d0)
            starts = t0 + d0 * 86_400 + step * np.arange(nd * per_day, dtype=np.int64)
            batches.append([
                ChannelSeries(c, args.minutes, starts, rng.gamma(4.0, 100.0, len(starts)),
                              np.zeros(len(starts), np.uint8))
                for c in ids
            ])
        n_values = args.channels * args.days * per_day

        t = time.perf_counter()
        for b in batches:
            db.intervals.write_series(b, source="bench")
        write_s = time.perf_counter() - t

        t = time.perf_counter()
        unchanged = 0
        for b in batches:
            unchanged += db.intervals.write_series(b, source="bench").unchanged_days
        rewrite_s = time.perf_counter() - t
        assert unchanged == args.channels * args.days

        span = Span(datetime.fromtimestamp(t0, UTC), datetime.fromtimestamp(t0 + args.days * 86_400, UTC))
        sqlite_path = db.url.removeprefix("sqlite:///") if db.dialect == "sqlite" else None
        first_day = datetime.fromtimestamp(t0, UTC).date().isoformat()
        last_day = datetime.fromtimestamp(t0 + (args.days - 1) * 86_400, UTC).date().isoformat()
        db.wait_checkpointed()  # both reads see the settled file, not a log being copied meanwhile
        reads: list[float] = []
        read_cpu: list[float] = []
        peer_reads: list[float] = []
        peer_cpu: list[float] = []
        for _ in range(args.reads):
            c, t = time.process_time(), time.perf_counter()
            m = db.intervals.read_matrix(ids, span, args.minutes, layer="raw")
            reads.append(time.perf_counter() - t)
            read_cpu.append(time.process_time() - c)
            assert m.values.shape == (args.channels, args.days * per_day) and not np.isnan(m.values).any()
            np.testing.assert_array_equal(m.values[-1, -len(batches[-1][-1].values):], batches[-1][-1].values)
            del m
            if sqlite_path is not None:
                c = time.process_time()
                peer_s, peer_values = plain_sqlite_read(sqlite_path, ids, first_day, last_day)
                peer_cpu.append(time.process_time() - c)
                assert peer_values == n_values
                peer_reads.append(peer_s)
        db.close()
    read_s = statistics.median(reads)
    peer_s = statistics.median(peer_reads) if peer_reads else None

    result = {
        "database": "sqlite" if args.url is None else args.url.split(":", 1)[0],
        "values": n_values,
        "channel_days": args.channels * args.days,
        "write_s": round(write_s, 3),
        "rewrite_unchanged_s": round(rewrite_s, 3),
        "read_s": round(read_s, 3),
        "write_values_per_s": round(n_values / write_s),
        "rewrite_values_per_s": round(n_values / rewrite_s),
        "read_values_per_s": round(n_values / read_s),
        "read_s_spread": [round(min(reads), 3), round(max(reads), 3)],
        "read_cpu_s": round(statistics.median(read_cpu), 3),
        "peer_read_cpu_s": round(statistics.median(peer_cpu), 3) if peer_cpu else None,
        "peer_read_s": None if peer_s is None else round(peer_s, 3),
        "peer_read_values_per_s": None if peer_s is None else round(n_values / peer_s),
        "read_ratio": None if peer_s is None else round(peer_s / read_s, 3),
    }
    print(f"wrote {n_values:,} values in {write_s:.2f} s ({n_values / write_s / 1e6:.1f}M/s), "
          f"rewrote (unchanged) in {rewrite_s:.2f} s ({n_values / rewrite_s / 1e6:.1f}M/s)")
    print(f"read:  ours {n_values / read_s / 1e6:.1f}M values/s into a {args.channels}x{args.days * per_day} matrix "
          f"(median of {len(reads)}: {read_s:.3f} s, {min(reads):.3f}-{max(reads):.3f}; "
          f"cpu {statistics.median(read_cpu):.3f} s)")
    if peer_s is not None:
        print(f"       plain sqlite3 {n_values / peer_s / 1e6:.1f}M values/s (the value blobs into Python, median "
              f"{peer_s:.3f} s, {min(peer_reads):.3f}-{max(peer_reads):.3f}; cpu {statistics.median(peer_cpu):.3f} s "
              f"with opening the connection); ours/peer {peer_s / read_s:.2f}")
    print(json.dumps(result))


def plain_sqlite_read(path: str, ids: list[str], first_day: str, last_day: str, chunk: int = 500) -> tuple[float, int]:
    """The peer: the current raw value blobs of ``ids`` over the days, fetched with plain sqlite3
    on a fresh connection; ``(seconds, values fetched)``."""
    con = sqlite3.connect(path)
    try:
        t = time.perf_counter()
        rows: list[tuple[bytes]] = []
        for i in range(0, len(ids), chunk):
            part = ids[i:i + chunk]
            rows += con.execute(
                'SELECT "values" FROM interval_day WHERE layer = ? AND is_current = ? AND day >= ? AND day <= ? '
                f"AND channel_id IN ({', '.join('?' * len(part))})", ("raw", 1, first_day, last_day, *part)).fetchall()
        secs = time.perf_counter() - t
    finally:
        con.close()
    return secs, sum(len(r[0]) for r in rows) // 8


if __name__ == "__main__":
    main()
