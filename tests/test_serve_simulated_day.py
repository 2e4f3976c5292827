"""A simulated day of the demo campus under ``kwhub serve`` equals the CLI flow's documents.

The campus of ``kwhub demo`` (October 2026 simulated with its faults) runs through two
flows on two databases:

* **CLI**: ``kwhub ingest`` the meter CSV files and the utility's Green Button file,
  ``kwhub settle --period 2026-10`` (the review gate issues what passes its checks),
  ``kwhub deliver --once``.
* **serve**: ``kwhub serve`` with a simulated clock (``[service.clock]``) running
  2 November 2026 at 1,440 times real time (a day in a minute): the scheduler polls the
  campus's Modbus devices (the demo's simulated meters and controllers on loopback),
  ingests the same files from a watched folder, runs VEE, settles October when the close
  schedule says (D+1 at 08:00 local), approves by policy and delivers through the outbox
  (a folder, an archive and a signed webhook).

Both flows issue the same documents (same numbers, lines, taxes and totals; the issue
date is each flow's own day: the CLI's today, the schedule's 2 November), decide the
runs alike, and deliver everything they issued.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import tomli_w
from sqlalchemy import select
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
SPEED = 1440.0


def _inputs(folder: Path) -> tuple[Path, Path, dict]:
    """October's meter files, the Green Button file, the price files; the demo config mapping."""
    from kwhub.hub.demo.campus_files import demo_config, write_index_csv, write_lmp_csv
    from kwhub.hub.demo.simulator.campus import FaultSpec, campus_definition, simulate
    from kwhub.hub.demo.simulator.files import write_csv, write_greenbutton

    start, days = date(2026, 10, 1), 31
    sim = simulate(start, days, 15, seed=42, faults=FaultSpec.default(start, days, 15))
    meters = folder / "inbox"
    write_csv(sim, meters, layout="long", channels=[c for c in sim.series if c != "grid.import"])
    gb = folder / "utility" / "grid_import_greenbutton.xml"
    write_greenbutton(sim, "grid.import", gb, usage_point_title="Campus grid tie")
    write_index_csv(folder / "prices" / "henry_hub.csv", start, days)
    write_lmp_csv(folder / "prices" / "lmp.csv", start, days)
    return meters, gb, demo_config(campus_definition(15), "http://127.0.0.1:1/invoices")


def _documents(db_url: str) -> tuple[list[dict], dict[str, str], dict[str, int]]:
    from kwhub.hub.deliver.outbox import status_counts
    from kwhub.hub.settle.review import list_runs
    from kwhub.hub.settle.service import list_invoices
    from kwhub.hub.store import Database

    db = Database.open(db_url)
    try:
        docs = []
        for inv in list_invoices(db):
            d = json.loads(inv.model_dump_json())
            for k in ("issue_date", "due_date"):  # each flow issues on its own day
                d.pop(k, None)
            docs.append(d)
        runs = {r["contract_id"]: r["status"] for r in list_runs(db, period="2026-10")}
        return docs, runs, status_counts(db)
    finally:
        db.close()


def test_a_simulated_day_under_serve_issues_what_the_cli_flow_issues(tmp_path):
    from kwhub.hub.cli.main import app
    from kwhub.hub.demo.erp_receiver import ErpReceiver

    # ---------------------------------------------------------------- the CLI flow
    cli = tmp_path / "cli"
    meters, gb, data = _inputs(cli)
    with ErpReceiver(secret="kwhub-demo-not-a-secret", dedupe=True) as erp_cli:
        _webhook(data, erp_cli.url)
        (cli / "kwhub.toml").write_bytes(tomli_w.dumps(data).encode())
        runner = CliRunner()
        cfg = str(cli / "kwhub.toml")
        for args in (["ingest", "--adapter", "meter_csv", *map(str, sorted(meters.glob("*.csv"))), "--config", cfg],
                     ["ingest", "--adapter", "utility_gb", str(gb), "--channel", "grid.import", "--config", cfg],
                     ["settle", "--period", "2026-10", "--config", cfg],
                     ["deliver", "--once", "--config", cfg]):
            res = runner.invoke(app, args)
            assert res.exit_code == 0, (args[0], res.output, res.exception)
        cli_received = len([r for r in erp_cli.records if r["status"] == 200])
    cli_docs, cli_runs, cli_outbox = _documents(f"sqlite:///{cli / 'kwhub.db'}")
    assert cli_runs == {"ppa_a_gas": "issued", "ppa_b_solar": "issued", "ppa_c_firm": "issued"}

    # ---------------------------------------------------------------- the day under serve
    srv = tmp_path / "serve"
    meters, gb, data = _inputs(srv)
    (srv / "inbox" / gb.name).write_bytes(gb.read_bytes())
    devices, stop_devices = _start_devices()
    try:
        with ErpReceiver(secret="kwhub-demo-not-a-secret", dedupe=True) as erp:
            _webhook(data, erp.url)
            data["adapters"] += [{"type": t, "id": i, "config": c} for t, i, c in devices]
            data["service"] = {"log_format": "json", "clock": {"start": "2026-11-02T00:00:00-05:00", "speed": SPEED},
                               "shutdown_grace_s": 30}
            data["scheduler"] = {
                "heartbeat_s": 1, "relay_every_s": 1, "vee_every_s": 3, "vee_lookback_days": 2, "poll_flush_s": 2,
                "mqtt": False,
                "watch": [{"id": "meters", "folder": "inbox", "adapter": "meter_csv", "pattern": "*.csv",
                           "min_age_s": 0, "every_s": 1},
                          {"id": "utility", "folder": "inbox", "adapter": "utility_gb", "pattern": "*.xml",
                           "channel": "grid.import", "min_age_s": 0, "every_s": 1}],
                "close": {"initial_days": 1, "final_days": 20, "at": "08:00", "lookback_periods": 1, "every_s": 1}}
            (srv / "kwhub.toml").write_bytes(tomli_w.dumps(data).encode())
            with (srv / "serve.log").open("w") as log:  # (the child keeps its own copy of the handle)
                proc = subprocess.Popen([sys.executable, "-m", "kwhub.hub.cli.main", "serve", "--no-api", "--config",
                                         str(srv / "kwhub.toml")], cwd=srv,
                                        env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=log,
                                        stderr=subprocess.STDOUT)
            try:
                day_end = time.monotonic() + 24 * 3600 / SPEED + 10  # the day, and time to start
                while time.monotonic() < day_end and proc.poll() is None:
                    time.sleep(1)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(120)
            assert proc.returncode == 0, (srv / "serve.log").read_text()[-4000:]
            received = len([r for r in erp.records if r["status"] == 200])
    finally:
        stop_devices()
    docs, runs, outbox = _documents(f"sqlite:///{srv / 'kwhub.db'}")
    history = _history(f"sqlite:///{srv / 'kwhub.db'}")

    # every kind of work ran, and in the order the day needs
    ran = {job for job, status, _ in history if status == "succeeded"}
    assert {"watch.meters", "watch.utility", "vee", "close", "relay"} <= ran, history
    assert not [h for h in history if h[1] == "failed"], [h for h in history if h[1] == "failed"]
    settled_at = min(at for job, _, at in history if job == "close" and at is not None)
    ingested_at = min(at for job, status, at in history if job == "watch.meters" and at is not None)
    assert ingested_at < settled_at  # the files were in before the close schedule settled October
    polls = _polls(f"sqlite:///{srv / 'kwhub.db'}")
    assert polls["ok"] > 0 and polls["devices"] == len(devices)
    # the documents, the review decisions and the deliveries are the CLI flow's
    assert runs == cli_runs
    assert docs == cli_docs
    assert outbox == cli_outbox and outbox["delivered"] > 0 and outbox["dead"] == 0
    assert received == cli_received


def _webhook(data: dict, url: str) -> None:
    for a in data["adapters"]:
        if a["id"] == "erp_webhook":
            a["config"]["url"] = url


def _history(url: str) -> list[tuple[str, str, object]]:
    from kwhub.hub.store import Database
    from kwhub.hub.store.service_tables import job_run_table as t

    db = Database.open(url)
    try:
        with db.engine.connect() as conn:
            rows = conn.execute(select(t.c.job_id, t.c.status, t.c.detail, t.c.finished_at).order_by(t.c.id)).all()
    finally:
        db.close()
    out: list[tuple[str, str, object]] = []
    for job, status, detail, finished in rows:
        if job == "close" and not (detail or {}).get("settled"):
            finished = None  # a close run with nothing due
        if job == "watch.meters" and not (detail or {}).get("ingested"):
            finished = None
        out.append((job, status, finished))
    return out


def _polls(url: str) -> dict[str, int]:
    from sqlalchemy import func

    from kwhub.hub.store import Database
    from kwhub.hub.store.service_tables import adapter_status_table as a

    db = Database.open(url)
    try:
        with db.engine.connect() as conn:
            ok, n = conn.execute(select(func.sum(a.c.ok), func.count())).one()
    finally:
        db.close()
    return {"ok": int(ok or 0), "devices": int(n)}


def _start_devices():  # noqa: ANN202
    """The demo's Modbus devices for 2 November on one loopback port, on the day's simulated clock."""
    import asyncio
    import logging
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from kwhub.hub.demo.simulator.campus import simulate
    from kwhub.hub.demo.simulator.modbus_devices import SimClock, campus_devices

    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    day = date(2026, 11, 2)
    start = datetime(2026, 11, 2, tzinfo=ZoneInfo("America/New_York")).timestamp()
    live = simulate(day, 1, 15, seed=42)
    devs = campus_devices(live, SimClock(start_epoch=start, speed=SPEED), anchor=start, interval_minutes=15,
                          poll_seconds=0.25, timeout=0.5, one_server=True)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    done = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(devs.start())
        ready.set()
        while not done.is_set():
            loop.run_until_complete(asyncio.sleep(0.2))
        loop.run_until_complete(devs.stop())
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(30)

    def stop() -> None:
        done.set()
        thread.join(10)

    return [(t, i, {k: v for k, v in c.items()}) for t, i, c in devs.adapters], stop
