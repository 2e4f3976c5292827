"""The SQLite log is checkpointed by a background thread, not inside the committing writer."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

import kwhub.hub.store.checkpoint as checkpoint_mod
from kwhub.core.intervals import ChannelSeries
from kwhub.hub.store import Database

E0 = 1_704_067_200  # 2024-01-01 00:00 UTC


def _series(n_days: int, channels: int = 20) -> list[ChannelSeries]:
    starts = E0 + 900 * np.arange(n_days * 96, dtype=np.int64)
    rng = np.random.default_rng(5)
    return [ChannelSeries(f"m{i}", 15, starts, rng.uniform(0, 9, starts.size), np.zeros(starts.size, np.uint8))
            for i in range(channels)]


def _size(path: Path, suffix: str = "") -> int:
    p = Path(str(path) + suffix)
    return p.stat().st_size if p.exists() else 0


def test_a_commit_leaves_the_copy_to_the_thread(tmp_path: Path) -> None:
    path = tmp_path / "kwhub.db"
    db = Database.open(f"sqlite:///{path}")
    try:
        cp = db.checkpointer
        assert cp is not None
        assert db.wait_checkpointed(10)
        before = _size(path)
        gate = threading.Event()
        original = cp._checkpoint

        def held(con: sqlite3.Connection) -> None:
            gate.wait(10)
            original(con)

        cp._checkpoint = held  # type: ignore[method-assign]
        runs = cp.runs
        db.intervals.write_series(_series(40), layer="raw", source="t")
        # committed and readable, but only in the log so far
        assert db.intervals.count_rows() == 800
        assert _size(path) == before
        assert not db.wait_checkpointed(0.05)
        gate.set()
        assert db.wait_checkpointed(10)
        assert cp.runs > runs and cp.last_error is None
        busy, log, done = cp.last_result or (1, 0, -1)
        assert busy == 0 and log == done > 0
        assert _size(path) > before + 500_000  # 800 channel-days of ~1 KB each
    finally:
        db.close()
    assert cp._thread is None
    # the data is in the file after close; a new process (connection) sees it all
    con = sqlite3.connect(path)
    assert con.execute("SELECT count(*) FROM interval_day").fetchone() == (800,)
    con.close()


def test_connections_do_not_checkpoint_on_commit(tmp_path: Path) -> None:
    db = Database.open(f"sqlite:///{tmp_path / 'kwhub.db'}")
    try:
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
    finally:
        db.close()


def test_inline_mode_keeps_sqlites_own_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KWHUB_SQLITE_CHECKPOINT", "inline")
    db = Database.open(f"sqlite:///{tmp_path / 'kwhub.db'}")
    try:
        assert db.checkpointer is None and db.wait_checkpointed(0)
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
    finally:
        db.close()


def test_commits_outside_write_transaction_are_caught_by_the_idle_check(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checkpoint_mod, "IDLE_CHECK_S", 0.05)
    monkeypatch.setattr(checkpoint_mod, "IDLE_CHECK_BYTES", 1)
    db = Database.open(f"sqlite:///{tmp_path / 'kwhub.db'}")
    try:
        cp = db.checkpointer
        assert cp is not None and db.wait_checkpointed(10)
        runs = cp.runs
        with db.engine.connect() as conn:  # a plain commit: nobody nudges the thread
            conn.execute(text("INSERT INTO site (id, name, timezone, spec, updated_at) VALUES ('s1', 'Site', 'UTC', '{}', '2026-01-01 00:00:00')"))
            conn.commit()
        deadline = time.monotonic() + 10
        while cp.runs == runs and time.monotonic() < deadline:
            time.sleep(0.02)
        assert cp.runs > runs
    finally:
        db.close()


def test_postgresql_has_no_checkpointer(db: Database) -> None:
    if db.dialect == "sqlite":
        assert db.checkpointer is not None
        assert os.path.exists(db.checkpointer.path)
    else:
        assert db.checkpointer is None and db.wait_checkpointed(0)


def test_a_process_that_forgets_close_leaves_no_log_behind(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "kwhub.db"
    code = (
        "import numpy as np\n"
        "from kwhub.core.intervals import ChannelSeries\n"
        "from kwhub.hub.store import Database\n"
        f"db = Database.open('sqlite:///{path}')\n"
        "st = 1704067200 + 900 * np.arange(96 * 30, dtype=np.int64)\n"
        "db.intervals.write_series([ChannelSeries('m', 15, st, np.ones(st.size), np.zeros(st.size, np.uint8))])\n"
        "# no db.close(): the exit hook closes it\n"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(root)})
    assert done.returncode == 0, done.stderr
    assert not Path(str(path) + "-wal").exists()
    con = sqlite3.connect(path)
    assert con.execute("SELECT count(*) FROM interval_day").fetchone() == (30,)
    con.close()
