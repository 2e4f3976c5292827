"""A large wide CSV is stored chunk by chunk and VEE takes new channels from the arrays written.

The streamed ingest (``ingest_file`` with ``iter_file``, many small chunks, VEE from the
arrays written) stores exactly what the whole-file path stores (read_file, write_series,
validate_days reading the raw days back): the same raw and validated rows (bytes, versions,
content hashes) and the same VEE events. A bad cell in a late chunk leaves the store
untouched (one transaction for all chunks); rows out of order across chunks fall back to
the whole-file read.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from kwhub.core.campus import Campus, Channel, Site
from kwhub.core.intervals import IntervalDataError
from kwhub.hub.ingest import batch as batch_mod
from kwhub.hub.ingest.batch import adapter_context, channel_days, ingest_file
from kwhub.hub.ingest.vee import read_events, validate_days
from kwhub.hub.store import Database
from kwhub.hub.store.tables import VeeEvent, interval_day_table
from kwhub.plugins.meters import csv_meter
from kwhub.plugins.meters.csv_meter import CsvMeter

T = interval_day_table.c
NOW = datetime(2025, 1, 1, tzinfo=UTC)
NAMES = [f"m{i}.load" for i in range(5)]


def _write_csv(path: Path, n_days: int = 30, seed: int = 3, shuffle_tail: bool = False, bad_line: int | None = None,
               ) -> None:
    rng = np.random.default_rng(seed)
    t0 = int(datetime(2024, 3, 1, tzinfo=UTC).timestamp())
    n = n_days * 96
    slot = np.arange(n) % 96
    base = 2 + np.sin(slot / 96 * 2 * np.pi)
    vals = np.round(base[:, None] * rng.uniform(0.8, 1.2, (n, len(NAMES))), 3)
    vals[500:509, 1] = np.nan  # a gap (estimated)
    vals[1500, 2] = 250.0  # a spike
    vals[2000:2100, 3] = 0.0  # zeros
    vals[:, 4][rng.random(n) < 0.02] = np.nan  # scattered gaps
    rows = []
    for i in range(n):
        ts = datetime.fromtimestamp(t0 + 900 * i, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        cells = ["" if np.isnan(v) else f"{v:.3f}" for v in vals[i]]
        rows.append(",".join([ts, *cells]))
    if shuffle_tail:  # the last two days before the first: out of order across chunks
        rows = rows[-192:] + rows[:-192]
    if bad_line is not None:
        rows[bad_line - 2] = rows[bad_line - 2].rsplit(",", 1)[0] + ",12.5x"
    path.write_text("interval_start," + ",".join(NAMES) + "\n" + "\n".join(rows) + "\n")


def _campus() -> Campus:
    return Campus(sites=[Site(id="s")], channels=[Channel(id=n, interval_minutes=15) for n in NAMES])


def _rows(db: Database) -> list[tuple]:
    with db.read_connection() as conn:
        got = conn.execute(select(T.channel_id, T.layer, T.day, T.version, T.n_values, T["values"], T.quality,
                                  T.rule_ids, T.rule_names, T.content_hash, T.is_current)
                           .order_by(T.channel_id, T.layer, T.day, T.version)).all()
    return [tuple(bytes(x) if isinstance(x, memoryview) else x for x in r) for r in got]


def _events(db: Database) -> list[tuple]:
    return sorted((e["channel_id"], e["day"], e["rule_id"], e["action"], e["count"], str(e["detail"]))
                  for e in read_events(db))


def _reference(tmp_path: Path, csv: Path, pre: Path | None = None) -> Database:
    """The whole-file path: parse, write_series, validate_days reading the days back."""
    db = Database.open(f"sqlite:///{tmp_path / 'ref.db'}")
    campus = _campus()
    meter = CsvMeter("t", {}, adapter_context(campus))
    for p in ([pre] if pre else []) + [csv]:
        b = meter.read_file(p)
        db.intervals.write_series(b.series, layer="raw", source=str(p))
        validate_days(db, campus, channel_days(b), run_label="ref", now=NOW)
    return db


@pytest.fixture(params=["1", "2"], ids=["one-process", "two-processes"])
def streamed(monkeypatch, request):
    monkeypatch.setenv("KWHUB_INGEST_WORKERS", request.param)  # (kwhub.hub.ingest.worker: the same result)
    monkeypatch.setattr(batch_mod, "STREAM_MIN_BYTES", 0)
    monkeypatch.setattr(csv_meter, "STREAM_CHUNK_BYTES", 20_000)  # many chunks (a day is ~8 kB)
    calls = []
    real = CsvMeter.iter_file

    def spy(self, *a, **k):
        it = real(self, *a, **k)
        calls.append(it is not None)
        return it

    monkeypatch.setattr(CsvMeter, "iter_file", spy)
    return calls


@pytest.mark.parametrize("keep_bytes", [None, 60_000])  # all channels from the arrays; only some
def test_streamed_ingest_stores_what_the_whole_file_path_stores(tmp_path, streamed, monkeypatch,
                                                                keep_bytes) -> None:
    from kwhub.hub.ingest import vee as vee_mod
    from kwhub.hub.store import day_writer

    if keep_bytes is not None:
        monkeypatch.setattr(day_writer, "FRESH_KEEP_BYTES", keep_bytes)
    taken: list[int] = []
    real_dense = vee_mod._Dense.__init__

    def spy(self, *a, **k):
        real_dense(self, *a, **k)
        taken.append(len(self.fresh))

    monkeypatch.setattr(vee_mod._Dense, "__init__", spy)
    csv = tmp_path / "wide.csv"
    _write_csv(csv)
    ref = _reference(tmp_path, csv)
    db = Database.open(f"sqlite:///{tmp_path / 'k.db'}")
    try:
        campus = _campus()
        rep = ingest_file(db, campus, CsvMeter("t", {}, adapter_context(campus)), csv, vee_now=NOW)
        assert streamed == [True] and rep.meta.get("streamed") is True
        assert rep.new_days == 5 * 30 and rep.intervals == rep.meta["values"] > 5 * 30 * 96 * 0.99
        assert _rows(db) == _rows(ref)
        assert _events(db) == _events(ref) and _events(db)
        assert {e[2] for e in _events(db)} >= {"gap", "spike"}
        # the reference path validates first (no arrays), then the ingest (arrays of 30 days: 26 kB a channel)
        assert taken[-1] == 5 if keep_bytes is None else 0 < taken[-1] < 5
    finally:
        db.close()
        ref.close()


def test_channel_with_stored_days_takes_the_read_path(tmp_path, streamed) -> None:
    early, csv = tmp_path / "early.csv", tmp_path / "wide.csv"
    _write_csv(csv, seed=4)
    lines = csv.read_text().splitlines()
    early.write_text("\n".join([lines[0], *lines[1:300]]) + "\n")  # the first days, again later
    ref = _reference(tmp_path, csv, pre=early)
    db = Database.open(f"sqlite:///{tmp_path / 'k.db'}")
    try:
        campus = _campus()
        meter = CsvMeter("t", {}, adapter_context(campus))
        b = meter.read_file(early)
        db.intervals.write_series(b.series, layer="raw", source=str(early))
        validate_days(db, campus, channel_days(b), run_label="ref", now=NOW)
        ingest_file(db, campus, meter, csv, vee_now=NOW)
        assert _rows(db) == _rows(ref)
        assert _events(db) == _events(ref)
    finally:
        db.close()
        ref.close()


def test_bad_cell_in_a_late_chunk_writes_nothing(tmp_path, streamed) -> None:
    csv = tmp_path / "wide.csv"
    _write_csv(csv, bad_line=2500)
    db = Database.open(f"sqlite:///{tmp_path / 'k.db'}")
    try:
        campus = _campus()
        with pytest.raises(IntervalDataError) as exc:
            ingest_file(db, campus, CsvMeter("t", {}, adapter_context(campus)), csv, vee_now=NOW)
        assert "line 2500" in str(exc.value) and "12.5x" in str(exc.value)
        assert streamed == [True]
        assert db.intervals.count_rows() == 0
        with db.read_connection() as conn:
            assert conn.execute(select(VeeEvent.__table__.c.id)).first() is None
    finally:
        db.close()


def test_rows_out_of_order_across_chunks_fall_back_to_the_whole_file(tmp_path, streamed) -> None:
    csv = tmp_path / "wide.csv"
    _write_csv(csv, shuffle_tail=True)
    ref = _reference(tmp_path, csv)
    db = Database.open(f"sqlite:///{tmp_path / 'k.db'}")
    try:
        campus = _campus()
        rep = ingest_file(db, campus, CsvMeter("t", {}, adapter_context(campus)), csv, vee_now=NOW)
        assert streamed == [True] and "streamed" not in rep.meta
        assert _rows(db) == _rows(ref)
        assert _events(db) == _events(ref)
    finally:
        db.close()
        ref.close()


def test_vee_run_that_fails_midway_writes_no_validated_day(tmp_path, monkeypatch) -> None:
    """Validated days are written channel by channel into one transaction: a failure rolls it back."""
    from kwhub.core.vee import VeeEngine

    csv = tmp_path / "wide.csv"
    _write_csv(csv, n_days=25)
    db = Database.open(f"sqlite:///{tmp_path / 'k.db'}")
    try:
        campus = _campus()
        b = CsvMeter("t", {}, adapter_context(campus)).read_file(csv)
        db.intervals.write_series(b.series, layer="raw", source="x")
        real = VeeEngine.validate_dense
        seen = []

        def boom(self, channel, *a, **k):
            seen.append(channel.id)
            if len(seen) == 3:  # two channels are written by then
                raise RuntimeError("engine failed")
            return real(self, channel, *a, **k)

        monkeypatch.setattr(VeeEngine, "validate_dense", boom)
        with pytest.raises(RuntimeError):
            validate_days(db, campus, channel_days(b), run_label="t", now=NOW)
        assert db.intervals.count_rows(layer="validated") == 0 and db.intervals.count_rows(layer="raw") > 0
        monkeypatch.setattr(VeeEngine, "validate_dense", real)
        validate_days(db, campus, channel_days(b), run_label="t", now=NOW)  # the lock was released
        assert db.intervals.count_rows(layer="validated") == 5 * 25
    finally:
        db.close()


def test_a_streamed_ingest_runs_with_the_collector_held_back(tmp_path, streamed, monkeypatch) -> None:
    """The chunks are stored inside :func:`kwhub.hub.helpers.gc_pause.collector_paused`; the
    collector is as it was afterwards."""
    import gc

    from kwhub.hub.helpers.gc_pause import YOUNG_THRESHOLD

    seen: list[int] = []
    real = batch_mod._ingest_stream

    def spy(*a, **k):
        seen.append(gc.get_threshold()[0])
        return real(*a, **k)

    monkeypatch.setattr(batch_mod, "_ingest_stream", spy)
    before = gc.get_threshold()
    csv = tmp_path / "wide.csv"
    _write_csv(csv)
    db = Database.open(f"sqlite:///{tmp_path / 'k.db'}")
    try:
        campus = _campus()
        rep = ingest_file(db, campus, CsvMeter("t", {}, adapter_context(campus)), csv, vee_now=NOW)
    finally:
        db.close()
    assert rep.meta.get("streamed") is True
    assert seen and seen[0] >= YOUNG_THRESHOLD and gc.get_threshold() == before


def test_read_back_channels_without_validated_days_store_first_versions_as_the_dense_path(
        tmp_path, monkeypatch) -> None:
    """A channel read back (no arrays kept) that has no validated day stored: its untouched days go
    in as first versions by the insert worker; the rows and events equal the dense path's, byte for
    byte, and a channel with a validated day stored keeps the dense path."""
    from kwhub.hub.ingest import vee as vee_mod
    from kwhub.hub.ingest import vee_write

    csv = tmp_path / "wide.csv"
    _write_csv(csv)
    taken: list[set[str]] = []
    real_dense = vee_mod._Dense.__init__

    def spy(self, *a, **k):
        real_dense(self, *a, **k)
        taken.append(set(self.no_validated))

    monkeypatch.setattr(vee_mod._Dense, "__init__", spy)
    fast = _reference(tmp_path, csv)  # write_series, then validate_days reading the days back
    assert taken == [set(NAMES)]
    monkeypatch.setattr(vee_write._ValidatedWriter, "_first_versions", lambda self, item, conn: None)
    (tmp_path / "dense").mkdir()
    dense = _reference(tmp_path / "dense", csv)
    try:
        assert _rows(fast) == _rows(dense)
        assert _events(fast) == _events(dense) and _events(fast)
        # validated again: every channel has validated days now, nothing is a first version
        campus = _campus()
        b = CsvMeter("t", {}, adapter_context(campus)).read_file(csv)
        again = validate_days(fast, campus, channel_days(b), run_label="again", now=NOW)
        assert taken[-1] == set() and again.write is not None and again.write.new_days == 0
    finally:
        fast.close()
        dense.close()
