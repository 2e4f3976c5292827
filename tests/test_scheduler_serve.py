"""Two ``kwhub serve`` processes on one database: one owner, each job once per slot, takeover.

* For a minute (``KWHUB_TEST_SERVE_SECONDS``, default 60), on one PostgreSQL database
  and on one SQLite file at the same time, two processes run second-level jobs: every
  slot of every job ran exactly once (the job writes a line per run; the job history has
  one row per slot), and only one process ran them.
* A SIGKILL of the owner in the middle of a job that settles: the standby takes over,
  records the killed run as interrupted, and nothing is settled twice. A SIGTERM then
  records the new owner's run still in flight as interrupted (the grace period is short).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest
import tomli_w
from sqlalchemy import func, select

from kwhub.hub.store import Database
from kwhub.hub.store.service_tables import job_run_table
from kwhub.hub.store.settlement_tables import invoice_table, settlement_run_table
from tests.fixtures.api import campus_toml

ROOT = Path(__file__).resolve().parents[1]
SECONDS = float(os.environ.get("KWHUB_TEST_SERVE_SECONDS", "60"))


def _config(folder: Path, url: str, jobs: list[dict], grace: float = 30.0) -> Path:
    data = campus_toml(url, {
        "scheduler": {"enabled": True, "standby_retry_s": 0.5, "heartbeat_s": 0.5, "disabled": ["vee", "close"],
                      "relay_every_s": 1, "poll": False, "mqtt": False, "jobs": jobs},
        "service": {"log_format": "json", "shutdown_grace_s": grace},
    })
    path = folder / "kwhub.toml"
    path.write_bytes(tomli_w.dumps(data).encode())
    return path


def _serve(config: Path, env: dict[str, str], name: str) -> subprocess.Popen:
    full = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    with (config.parent / f"{name}.log").open("w") as log:  # (the child keeps its own copy of the handle)
        return subprocess.Popen([sys.executable, "-m", "kwhub.hub.cli.main", "serve", "--no-api", "--config",
                                 str(config)], cwd=ROOT, env=full, stdout=log, stderr=subprocess.STDOUT)


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()


def _wait_for(cond, timeout: float, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _check_ticks(ticks: Path, db: Database, jobs: dict[str, float]) -> None:
    lines = [ln.split() for ln in ticks.read_text().splitlines()]
    per_slot = Counter((job, slot) for job, slot, _ in lines)
    assert per_slot and max(per_slot.values()) == 1, [k for k, n in per_slot.items() if n > 1][:5]
    assert len({pid for *_, pid in lines}) == 1  # one owner all along
    t = job_run_table
    with db.engine.connect() as conn:
        rows = conn.execute(select(t.c.job_id, t.c.slot, t.c.status, t.c.owner)).all()
    for job, every in jobs.items():
        slots = sorted(datetime.fromisoformat(s) for j, s in per_slot if j == job)
        # on a loaded machine a run may still be going when its next slot fires; that slot is then
        # skipped (one instance of a job at a time), never run twice
        assert len(slots) >= 0.8 * SECONDS / every, (job, len(slots))
        gaps = {(b - a).total_seconds() / every for a, b in zip(slots, slots[1:], strict=False)}
        assert all(g >= 1 and g == int(g) for g in gaps), (job, gaps)  # whole slots apart, none twice
        recorded = [r for r in rows if r.job_id == job]
        assert len(recorded) == len({r.slot for r in recorded}) >= len(slots)
        assert {r.status for r in recorded} <= {"succeeded", "running", "interrupted"}


def test_two_serve_processes_run_each_slot_once_on_postgresql_and_sqlite(tmp_path):
    from tests.fixtures.db import temporary_pg_database

    jobs = [{"id": "tick1", "function": "tests.service_jobs:tick", "every_s": 1},
            {"id": "tick2", "function": "tests.service_jobs:tick", "every_s": 2}]
    with temporary_pg_database("kwhub_serve") as pg_url:
        setups = []
        for backend, url in (("pg", pg_url), ("sqlite", f"sqlite:///{tmp_path / 'lite' / 'kwhub.db'}")):
            folder = tmp_path / backend
            folder.mkdir()
            (tmp_path / "lite").mkdir(exist_ok=True)
            Database.open(url).close()  # migrate once before the processes race
            cfg = _config(folder, url, jobs)
            ticks = folder / "ticks.txt"
            ticks.touch()
            procs = [_serve(cfg, {"KWHUB_TEST_TICKS": str(ticks)}, f"serve{i}") for i in (1, 2)]
            setups.append((url, ticks, procs))
        try:
            for _, ticks, _ in setups:  # started (the signal handlers are in place) before the minute counts
                for name in ("serve1", "serve2"):
                    log = ticks.parent / f"{name}.log"
                    _wait_for(lambda log=log: "kwhub serve started" in log.read_text(), 120, f"{log} to start")
            time.sleep(SECONDS)
        finally:
            for _, _, procs in setups:
                _stop(procs)
        for url, ticks, procs in setups:
            assert [p.returncode for p in procs] == [0, 0], (ticks.parent / "serve1.log").read_text()[-3000:]
            db = Database.open(url)
            try:
                _check_ticks(ticks, db, {"tick1": 1.0, "tick2": 2.0})
            finally:
                db.close()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_sigkill_of_the_owner_mid_job_the_standby_takes_over_and_nothing_settles_twice(tmp_path, backend):
    from tests.fixtures.db import temporary_pg_database
    from tests.fixtures.settlement import write_period

    jobs = [{"id": "settle_wait", "function": "tests.service_jobs:settle_then_wait", "every_s": 2}]
    ctx = temporary_pg_database("kwhub_kill") if backend == "postgresql" else None
    url = ctx.__enter__() if ctx else f"sqlite:///{tmp_path / 'kwhub.db'}"
    try:
        db = Database.open(url)
        write_period(db, "2026-10")
        cfg = _config(tmp_path, url, jobs, grace=0.5)
        marker = tmp_path / "marker.txt"
        env = {"KWHUB_TEST_MARKER": str(marker), "KWHUB_TEST_WAIT": "60"}
        first = _serve(cfg, env, "first")
        _wait_for(marker.exists, 60, "the first owner to settle")
        owner_pid = int(marker.read_text().split()[0])
        assert owner_pid == first.pid
        second = _serve(cfg, env, "second")
        time.sleep(2)  # the second one stands by
        marker.unlink()
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        _wait_for(marker.exists, 60, "the standby to take over and run the job")
        assert int(marker.read_text().split()[0]) == second.pid
        assert "unchanged" in marker.read_text()  # October was settled already: nothing new
        _stop([second])
        assert second.returncode == 0, (tmp_path / "second.log").read_text()[-3000:]
        t = job_run_table
        with db.engine.connect() as conn:
            runs = conn.execute(select(t.c.owner, t.c.status, t.c.error).where(t.c.job_id == "settle_wait")
                                .order_by(t.c.id)).all()
            n_runs = conn.execute(select(func.count()).select_from(settlement_run_table)).scalar_one()
            n_keys = conn.execute(select(func.count()).select_from(
                select(settlement_run_table.c.contract_id, settlement_run_table.c.period,
                       settlement_run_table.c.version_kind).distinct().subquery())).scalar_one()
            n_invoices = conn.execute(select(func.count()).select_from(invoice_table)).scalar_one()
        killed = [r for r in runs if r.owner.endswith(f":{first.pid}")]
        assert [r.status for r in killed] == ["interrupted"] and "took over" in killed[0].error
        mine = [r for r in runs if r.owner.endswith(f":{second.pid}")]
        assert mine and mine[-1].status == "interrupted" and "did not end within" in mine[-1].error
        assert n_runs == n_keys == 2 and n_invoices == 2  # each contract settled once, one invoice each
        db.close()
    finally:
        if ctx:
            ctx.__exit__(None, None, None)
