"""A large file's VEE run with the engine in a forked worker stores what the one-process run stores.

``ingest_file(..., workers=2)`` forks a worker (kwhub.hub.ingest.worker) that runs the
VEE engine while the main process writes; ``workers=1`` runs everything here. On files
with gaps, repeated rows, DST days (local time, both transitions) and spikes, both store
the same bytes in every ``interval_day`` column and the same ``vee_event`` rows; a bad
line is named the same way by both and leaves the store empty.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from sqlalchemy import select

from kwhub.core.campus import Campus, Channel, Site
from kwhub.core.intervals import IntervalDataError
from kwhub.hub.ingest import batch as batch_mod
from kwhub.hub.ingest import worker
from kwhub.hub.ingest.batch import adapter_context, ingest_file
from kwhub.hub.store import Database
from kwhub.hub.store.tables import VeeEvent, interval_day_table
from kwhub.plugins.meters import csv_meter
from kwhub.plugins.meters.csv_meter import CsvMeter

NOW = datetime(2025, 1, 1, tzinfo=UTC)
NAMES = [f"p{i}.load" for i in range(6)]
BERLIN = ZoneInfo("Europe/Berlin")


def _write_csv(path: Path, start: datetime, n_days: int, bad_line: int | None = None, seed: int = 7) -> None:
    """Wide rows in Berlin local time with offsets (DST days have 92 and 100 rows), with gaps,
    a spike, zeros, scattered blanks and repeated rows (same values)."""
    rng = np.random.default_rng(seed)
    t0 = int(start.timestamp())
    n = n_days * 96
    slot = np.arange(n) % 96
    base = 2 + np.sin(slot / 96 * 2 * np.pi)
    vals = np.round(base[:, None] * rng.uniform(0.8, 1.2, (n, len(NAMES))), 3)
    vals[300:340, 1] = np.nan  # a long gap
    vals[700:703, 0] = np.nan  # a short gap (estimated)
    vals[1200, 2] = 250.0  # a spike
    vals[900:1000, 3] = 0.0  # zeros
    vals[:, 4][rng.random(n) < 0.03] = np.nan  # scattered blanks
    vals[:, 5] = np.round(vals[:, 5] * 10, 3)
    rows = []
    for i in range(n):
        ts = datetime.fromtimestamp(t0 + 900 * i, UTC).astimezone(BERLIN).isoformat()
        cells = ["" if np.isnan(v) else f"{v:.3f}" for v in vals[i]]
        rows.append(",".join([ts, *cells]))
        if i % 211 == 5:
            rows.append(rows[-1])  # a repeated row
    if bad_line is not None:
        rows[bad_line - 2] = rows[bad_line - 2].rsplit(",", 1)[0] + ",7.5kWh"
    path.write_text("interval_start," + ",".join(NAMES) + "\n" + "\n".join(rows) + "\n")


def _campus() -> Campus:
    return Campus(sites=[Site(id="s")], channels=[Channel(id=n, interval_minutes=15) for n in NAMES])


def _dump(db: Database) -> tuple[list[tuple], list[tuple]]:
    """Every interval_day column but the id and write times, and every vee_event column but the id and time."""
    t, e = interval_day_table, VeeEvent.__table__  # type: ignore[attr-defined]
    skip_t = {"id", "created_at", "updated_at", "written_at", "superseded_at"}
    skip_e = {"id", "created_at"}
    with db.read_connection() as conn:
        days = conn.execute(select(*[c for c in t.c if c.name not in skip_t])
                            .order_by(t.c.channel_id, t.c.layer, t.c.day, t.c.version)).all()
        events = conn.execute(select(*[c for c in e.c if c.name not in skip_e])
                              .order_by(e.c.channel_id, e.c.day, e.c.rule_id, e.c.action)).all()
    return [_plain(r) for r in days], [_plain(r) for r in events]


def _plain(row: tuple) -> tuple:
    return tuple(bytes(x) if isinstance(x, memoryview) else x for x in row)


@pytest.fixture(autouse=True)
def threads_of_this_test(monkeypatch):
    """The worker forks only where no other thread runs. Daemon threads that earlier tests of the
    suite left behind (other modules' servers and pools) are not this test's: the count the
    worker sees leaves them out, so a thread this test starts still counts."""
    import threading

    real = threading.active_count
    left_behind = real() - 1
    monkeypatch.setattr(threading, "active_count", lambda: real() - left_behind)


@pytest.fixture
def streamed(monkeypatch):
    monkeypatch.setattr(batch_mod, "STREAM_MIN_BYTES", 0)
    monkeypatch.setattr(csv_meter, "STREAM_CHUNK_BYTES", 30_000)  # many chunks
    started: list[bool] = []
    real = worker.IngestWorker.start.__func__  # type: ignore[attr-defined]

    def spy(cls, *a, **k):
        w = real(cls, *a, **k)
        started.append(w is not None)
        return w

    monkeypatch.setattr(worker.IngestWorker, "start", classmethod(spy))
    return started


def _ingest(tmp_path: Path, name: str, csv: Path, workers: int) -> tuple[list[tuple], list[tuple]]:
    db = Database.open(f"sqlite:///{tmp_path / name}")
    try:
        campus = _campus()
        rep = ingest_file(db, campus, CsvMeter("t", {}, adapter_context(campus)), csv, vee_now=NOW,
                          vee_config={}, workers=workers)
        assert rep.meta.get("streamed") and rep.vee
        return _dump(db)
    finally:
        db.close()


@pytest.mark.parametrize("start", [datetime(2024, 3, 20, tzinfo=UTC), datetime(2024, 10, 15, tzinfo=UTC)],
                         ids=["spring-forward", "fall-back"])
def test_parallel_and_serial_store_the_same_bytes(tmp_path, streamed, start) -> None:
    csv = tmp_path / "wide.csv"
    _write_csv(csv, start, 24)
    serial = _ingest(tmp_path, "serial.db", csv, workers=1)
    parallel = _ingest(tmp_path, "parallel.db", csv, workers=2)
    assert streamed == [False, True]  # the worker ran for the second ingest only
    assert serial[0] and serial[1]  # days stored, events written (gaps, spike)
    assert parallel == serial


def test_a_bad_line_is_named_alike_and_stores_nothing(tmp_path, streamed) -> None:
    csv = tmp_path / "wide.csv"
    _write_csv(csv, datetime(2024, 3, 20, tzinfo=UTC), 24, bad_line=2000)
    messages = []
    for workers in (1, 2):
        db = Database.open(f"sqlite:///{tmp_path / f'k{workers}.db'}")
        try:
            campus = _campus()
            with pytest.raises(IntervalDataError) as exc:
                ingest_file(db, campus, CsvMeter("t", {}, adapter_context(campus)), csv, vee_now=NOW,
                            workers=workers)
            messages.append(str(exc.value))
            assert db.intervals.count_rows() == 0
            with db.read_connection() as conn:
                assert conn.execute(select(VeeEvent.__table__.c.id)).first() is None  # type: ignore[attr-defined]
        finally:
            db.close()
    assert messages[0] == messages[1]
    assert "line 2000" in messages[0] and "7.5kWh" in messages[0] and str(csv) in messages[0]


def test_a_failure_in_the_worker_writes_no_validated_day(tmp_path, streamed, monkeypatch) -> None:
    from kwhub.core.vee import VeeEngine

    real = VeeEngine.validate_dense
    calls = {"n": 0}

    def failing(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("rule crashed")
        return real(self, *a, **k)

    monkeypatch.setattr(VeeEngine, "validate_dense", failing)  # (the fork inherits it)
    csv = tmp_path / "wide.csv"
    _write_csv(csv, datetime(2024, 3, 20, tzinfo=UTC), 14)
    db = Database.open(f"sqlite:///{tmp_path / 'k.db'}")
    try:
        campus = _campus()
        with pytest.raises(RuntimeError, match="rule crashed"):
            ingest_file(db, campus, CsvMeter("t", {}, adapter_context(campus)), csv, vee_now=NOW, workers=2)
        assert streamed == [True]
        t = interval_day_table.c
        with db.read_connection() as conn:
            assert conn.execute(select(t.id).where(t.layer == "validated")).first() is None
            assert conn.execute(select(t.id).where(t.layer == "raw")).first() is not None  # raw committed first
    finally:
        db.close()


def test_workers_setting(monkeypatch) -> None:
    monkeypatch.delenv(worker.ENV_WORKERS, raising=False)
    monkeypatch.setattr(worker.os, "cpu_count", lambda: 4)
    assert worker.resolve_workers(1) == 1
    assert worker.resolve_workers(3) == 3
    assert worker.resolve_workers(None) == worker.AUTO_WORKERS == worker.resolve_workers(0) == 2
    monkeypatch.setenv(worker.ENV_WORKERS, "1")
    assert worker.resolve_workers(None) == 1
    assert worker.resolve_workers(2) == 2  # the caller's word first
    monkeypatch.setattr(worker.os, "cpu_count", lambda: 1)
    assert worker.resolve_workers(2) == 1  # never more than the cores


def test_no_worker_while_another_thread_runs(tmp_path) -> None:
    import threading

    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        assert worker.IngestWorker.start(None, workers=2) is None
    finally:
        stop.set()
        t.join()
    w = worker.IngestWorker.start(None, workers=2)
    assert w is not None
    w.close()


def test_the_checkpoint_thread_pauses_for_the_fork_and_goes_on_after(tmp_path) -> None:
    import threading

    db = Database.open(f"sqlite:///{tmp_path / 'k.db'}")
    try:
        cp = db.checkpointer
        assert cp is not None
        cp.nudge()
        assert cp.wait(10)
        with cp.paused():
            assert not [t for t in threading.enumerate() if t.name.startswith("kwhub-checkpoint")]
        runs = cp.runs
        cp.nudge()  # a commit after the pause: the thread starts again and checkpoints
        assert cp.wait(10) and cp.runs > runs
    finally:
        db.close()
