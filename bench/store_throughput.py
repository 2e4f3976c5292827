"""Interval store throughput on SQLite (or any URL): write, idempotent rewrite, dense read.

    python bench/store_throughput.py [--channels 30] [--days 3500] [--minutes 15] [--url URL]

Writes ``channels x days`` of interval values through ``IntervalStore.write_series`` in
batches, writes the same batches again (all unchanged), then reads everything back as a
dense matrix with ``read_matrix``. The last line printed is JSON with the figures.
Reference (ARCHITECTURE.md, this machine size): a row per channel-day moves ~13M values/s
written and ~30M values/s read into a dense matrix; per-interval rows ~1M values/s.
"""

from __future__ import annotations

import argparse
import json
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
        t = time.perf_counter()
        m = db.intervals.read_matrix(ids, span, args.minutes, layer="raw")
        read_s = time.perf_counter() - t
        assert m.values.shape == (args.channels, args.days * per_day) and not np.isnan(m.values).any()
        np.testing.assert_array_equal(m.values[-1, -len(batches[-1][-1].values):], batches[-1][-1].values)
        db.close()

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
    }
    print(f"wrote {n_values:,} values in {write_s:.2f} s, rewrote (unchanged) in {rewrite_s:.2f} s, "
          f"read a {m.values.shape[0]}x{m.values.shape[1]} matrix in {read_s:.2f} s "
          "(reference: ~13M values/s write, ~30M values/s read)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
