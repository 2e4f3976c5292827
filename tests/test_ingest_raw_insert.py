"""The raw writer's insert of fresh channels (one statement per channel and batch, in a worker thread).

The rows must be the ones the store's own write path inserts (the same ids in the same
order, the same storage classes, blobs and digests), and a failure anywhere (a later
batch refused, the insert itself failing in the worker) must leave the store untouched.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest

from kwhub.core.campus import Campus, Channel, Site
from kwhub.core.intervals import ChannelSeries, IntervalDataError
from kwhub.hub.ingest import batch as batch_mod
from kwhub.hub.ingest.batch import adapter_context, ingest_file
from kwhub.hub.store import Database, day_writer
from kwhub.hub.store.day_writer import RawDayWriter
from kwhub.plugins.meters import csv_meter
from kwhub.plugins.meters.csv_meter import CsvMeter

_COLUMNS = ('channel_id, day, typeof(day), layer, version, interval_minutes, n_values, typeof(n_values), '
            '"values", typeof("values"), quality, typeof(quality), rule_ids, rule_names, content_hash, '
            'typeof(content_hash), source, is_current, typeof(is_current)')


def _dump(path: Path) -> list[tuple]:
    """Every row as SQLite holds it (storage classes included), in id order, ids renumbered from 1."""
    con = sqlite3.connect(path)
    try:
        rows = con.execute(f"SELECT id, {_COLUMNS} FROM interval_day ORDER BY id").fetchall()
    finally:
        con.close()
    first = rows[0][0] if rows else 0
    return [(r[0] - first, *r[1:]) for r in rows]


def _series(seed: int) -> list[list[ChannelSeries]]:
    """Three batches of four channels: gaps (NaN), a missing day, a channel that starts late,
    values of every size; each batch holds distinct days of each channel."""
    rng = np.random.default_rng(seed)
    t0 = 1_709_251_200  # 2024-03-01 UTC
    out = []
    for b in range(3):
        batch = []
        for c in range(4):
            n_days = 5
            starts = t0 + (b * n_days) * 86_400 + np.arange(n_days * 96, dtype=np.int64) * 900
            values = np.round(rng.uniform(0, 10 ** (c + 1), len(starts)), 3)
            values[rng.random(len(starts)) < 0.05] = np.nan
            keep = np.ones(len(starts), dtype=bool)
            if c == 1:
                keep[96:192] = False  # a whole day missing
            if c == 3 and b == 0:
                keep[:] = False  # starts in the second batch
            if not keep.any():
                continue
            batch.append(ChannelSeries(channel_id=f"ch{c}", interval_minutes=15, starts=starts[keep],
                                       values=values[keep], quality=np.zeros(int(keep.sum()), dtype=np.uint8)))
        out.append(batch)
    return out


def test_fresh_channels_are_stored_as_the_store_stores_them(tmp_path) -> None:
    batches = _series(7)
    ours = Database.open(f"sqlite:///{tmp_path / 'ours.db'}")
    ref = Database.open(f"sqlite:///{tmp_path / 'ref.db'}")
    try:
        with ours.write_transaction() as conn, RawDayWriter(ours, conn, "file.csv") as writer:
            for b in batches:
                writer.write(b)
            assert writer.report.new_days == sum(len(set((s.starts // 86_400).tolist())) for b in batches for s in b)
        for b in batches:  # the store's own path (lookup, merge, row build, insert)
            ref.intervals.write_series(b, layer="raw", source="file.csv")
        ours.wait_checkpointed()
        ref.wait_checkpointed()
    finally:
        ours.close()
        ref.close()
    got, want = _dump(tmp_path / "ours.db"), _dump(tmp_path / "ref.db")
    assert len(got) == len(want) > 0
    # the store's path writes batch by batch in channel order too: the same rows in the same order
    assert got == want


def test_a_failed_insert_in_the_worker_writes_nothing(tmp_path, monkeypatch) -> None:
    batches = _series(3)
    real = day_writer._insert_days
    calls: list[str] = []

    def failing(cur, sql, params):  # noqa: ANN001 - the worker's task, failing on the second batch
        calls.append(threading.current_thread().name)
        if len(calls) == 2:
            raise sqlite3.IntegrityError("disk says no")
        return real(cur, sql, params)

    monkeypatch.setattr(day_writer, "_insert_days", failing)
    db = Database.open(f"sqlite:///{tmp_path / 'k.db'}")
    try:
        with pytest.raises(sqlite3.IntegrityError, match="disk says no"):
            with db.write_transaction() as conn, RawDayWriter(db, conn, "file.csv") as writer:
                for b in batches:
                    writer.write(b)
        assert all(name.startswith("kwhub-raw-insert") for name in calls)
        assert db.intervals.count_rows() == 0
    finally:
        db.close()


def test_a_refused_chunk_after_inserts_in_flight_writes_nothing(tmp_path, monkeypatch) -> None:
    """A streamed file whose last chunk is refused while earlier inserts ran in the worker."""
    monkeypatch.setattr(batch_mod, "STREAM_MIN_BYTES", 0)
    monkeypatch.setattr(csv_meter, "STREAM_CHUNK_BYTES", 20_000)
    names = [f"m{i}.load" for i in range(3)]
    t0 = np.datetime64("2024-03-01T00:00:00")
    lines = ["interval_start," + ",".join(names)]
    for i in range(20 * 96):
        lines.append(f"{t0 + np.timedelta64(900 * i, 's')}Z," + ",".join(f"{(i % 7) + k:.3f}" for k in range(3)))
    lines[-5] = lines[-5].rsplit(",", 1)[0] + ",x1"
    csv = tmp_path / "wide.csv"
    csv.write_text("\n".join(lines) + "\n")
    campus = Campus(sites=[Site(id="s")], channels=[Channel(id=n, interval_minutes=15) for n in names])
    db = Database.open(f"sqlite:///{tmp_path / 'k.db'}")
    try:
        with pytest.raises(IntervalDataError) as exc:
            ingest_file(db, campus, CsvMeter("t", {}, adapter_context(campus)), csv)
        assert f"line {len(lines) - 4}" in str(exc.value) and "x1" in str(exc.value)
        assert db.intervals.count_rows() == 0
    finally:
        db.close()
