"""The built-in jobs and the scheduler service in process: the close schedule, a watched folder,
webhook events through the outbox, catch-up after downtime, /healthz with an owner."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import tomli_w
from sqlalchemy import func, select

from kwhub.hub.scheduler.jobs import JobFailed, close_job, relay_job, watch_job
from kwhub.hub.scheduler.registry import JobContext, JobSpec
from kwhub.hub.store.outbox_tables import outbox_table
from kwhub.hub.store.service_tables import job_run_table, watched_file_table, webhook_event_table
from kwhub.hub.store.settlement_tables import settlement_run_table
from tests.fixtures.api import campus_toml

NY = ZoneInfo("America/New_York")


def _hub(db: Any, tmp_path: Path, extra: dict[str, Any]) -> Any:
    from kwhub.hub.app import Hub
    from kwhub.hub.config import load_config

    path = tmp_path / "kwhub.toml"
    path.write_bytes(tomli_w.dumps(campus_toml(db.url, extra)).encode())
    return Hub.from_config(load_config(path), database=db)


def _ctx(job: str, now: datetime) -> JobContext:
    return JobContext(job, now.astimezone(UTC), now.astimezone(UTC), "test")


def _runs(db: Any) -> list[tuple[str, str, str, str]]:
    t = settlement_run_table
    with db.engine.connect() as conn:
        return sorted(conn.execute(select(t.c.contract_id, t.c.period, t.c.version_kind, t.c.status)).all())


def test_the_close_schedule_settles_initial_then_final_once_each(db, tmp_path):
    from tests.fixtures.settlement import write_period

    contracts = [{**c, "start": "2026-10"} for c in campus_toml("sqlite://")["contracts"]]
    hub = _hub(db, tmp_path, {"contracts": contracts,
                              "scheduler": {"close": {"initial_days": 3, "final_days": 30, "at": "06:00",
                                                      "lookback_periods": 1,
                                                      "contracts": {"ppa-b": {"initial_days": 5}}}}})
    write_period(db, "2026-10")
    assert close_job(hub, _ctx("close", datetime(2026, 11, 4, 5, 59, tzinfo=NY))) == {"settled": []}
    out = close_job(hub, _ctx("close", datetime(2026, 11, 4, 6, 0, tzinfo=NY)))["settled"]
    assert [(o["contract"], o["version"], o["status"]) for o in out] == [("ppa-a", "initial", "issued")]
    out = close_job(hub, _ctx("close", datetime(2026, 11, 6, 6, 0, tzinfo=NY)))["settled"]
    assert [(o["contract"], o["version"]) for o in out] == [("ppa-b", "initial")]  # its own D+5
    assert close_job(hub, _ctx("close", datetime(2026, 11, 20, tzinfo=NY)))["settled"] == []
    out = close_job(hub, _ctx("close", datetime(2026, 12, 1, 6, 0, tzinfo=NY)))["settled"]
    assert {(o["contract"], o["version"]) for o in out} == {("ppa-a", "final"), ("ppa-b", "final")}
    assert close_job(hub, _ctx("close", datetime(2026, 12, 2, tzinfo=NY)))["settled"] == []
    kinds = [(c, v) for c, _, v, _ in _runs(db)]
    assert sorted(kinds) == [("ppa-a", "final"), ("ppa-a", "initial"), ("ppa-b", "final"), ("ppa-b", "initial")]
    # the issue date is the hub's local date when the slot ran
    from kwhub.hub.settle.service import list_invoices

    assert {i.issue_date.isoformat() for i in list_invoices(db)} == {"2026-11-04", "2026-11-06"}


def test_a_failing_contract_is_reported_and_the_job_fails(sqlite_db, tmp_path):
    hub = _hub(sqlite_db, tmp_path, {"scheduler": {"close": {"lookback_periods": 1}}})
    with pytest.raises(JobFailed) as err:  # no data at all: settlement refuses, the job says which
        close_job(hub, _ctx("close", datetime(2026, 11, 10, tzinfo=NY)))
    assert "ppa-a 2026-10 initial" in str(err.value)
    assert _runs(sqlite_db) == []


def _csv(path: Path, channel: str, day: str, value: float, n: int = 96) -> Path:
    start = datetime.fromisoformat(day + "T04:00:00+00:00")
    rows = [f"{channel},{(start + timedelta(minutes=15 * i)).strftime('%Y-%m-%dT%H:%M:%SZ')},15,{value}"
            for i in range(n)]
    path.write_text("channel_id,interval_start,interval_minutes,kwh\n" + "\n".join(rows) + "\n")
    old = time.time() - 60
    os.utime(path, (old, old))
    return path


def test_a_watched_folder_ingests_each_file_once_and_records_refusals(db, tmp_path):
    from kwhub.core.timeline import Span

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    extra = {"adapters": [{"type": "erp.folder", "id": "drop", "config": {"folder": "out/erp"}},
                          {"type": "meters.csv", "id": "meter_csv", "config": {"profile": "kwhub"}}],
             "scheduler": {"watch": [{"id": "meters", "folder": "inbox", "adapter": "meter_csv", "pattern": "*.csv",
                                      "min_age_s": 5}]}}
    hub = _hub(db, tmp_path, extra)
    watch = hub.config.file.scheduler.watch[0]
    now = datetime(2026, 10, 3, tzinfo=UTC)
    _csv(inbox / "a.csv", "a.load", "2026-10-01", 25.0)
    assert watch_job(hub, _ctx("watch.meters", now), watch)["ingested"] == ["a.csv"]
    assert watch_job(hub, _ctx("watch.meters", now), watch)["ingested"] == []  # seen by content
    series = db.intervals.read_series("a.load", Span(datetime(2026, 10, 1, 4, tzinfo=UTC),
                                                      datetime(2026, 10, 2, 4, tzinfo=UTC)), layer="raw")
    assert len(series) == 96 and float(series.values.sum()) == 2400.0
    (inbox / "bad.csv").write_text("channel_id,interval_start,interval_minutes,kwh\na.load,not-a-time,15,1\n")
    os.utime(inbox / "bad.csv", (time.time() - 60, time.time() - 60))
    fresh = _csv(inbox / "b.csv", "b.load", "2026-10-01", 5.0)
    os.utime(fresh, None)  # just written: it waits for the next slot
    with pytest.raises(JobFailed, match=r"bad\.csv") as err:
        watch_job(hub, _ctx("watch.meters", now), watch)
    assert err.value.detail["ingested"] == []
    with db.engine.connect() as conn:
        rows = {(r.name, r.status): r.error for r in conn.execute(select(watched_file_table))}
    assert set(rows) == {("a.csv", "ingested"), ("bad.csv", "refused")}
    assert "bad.csv" in rows[("bad.csv", "refused")] and "line 2" in rows[("bad.csv", "refused")]
    os.utime(fresh, (time.time() - 60, time.time() - 60))
    # the refused file is not read again (until its content changes); b.csv now is
    assert watch_job(hub, _ctx("watch.meters", now), watch)["ingested"] == ["b.csv"]
    with db.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(watched_file_table)).scalar_one() == 3


def test_webhook_events_go_out_signed_through_the_outbox_once(db, tmp_path):
    from kwhub.hub.demo.erp_receiver import ErpReceiver
    from tests.fixtures.settlement import write_period

    with ErpReceiver(secret="s3cret", dedupe=True) as erp:
        extra = {"adapters": [{"type": "erp.folder", "id": "drop", "config": {"folder": "out/erp"}},
                              {"type": "erp.webhook", "id": "erp_events", "config": {"url": erp.url,
                                                                                     "secret": "s3cret"}}],
                 "review": {"checks": {"movement_max_pct": "0"}},
                 "service": {"webhooks": [
                     {"id": "erp", "transport": "erp_events"},
                     {"id": "tenant_b_app", "transport": "erp_events", "party": "tenant_b",
                      "events": ["invoice.issued"]}]}}
        hub = _hub(db, tmp_path, extra)
        write_period(db, "2026-09")
        write_period(db, "2026-10", {"a.load": 130.0, "b.load": 50.0, "gt1.net": 120.0, "pv.net": 60.0,
                                     "grid.in": 0.0, "gt1.avail": 1.0})
        assert {o.status for o in hub.settle("2026-09")} == {"issued"}
        october = {o.contract_id: o.status for o in hub.settle("2026-10")}
        assert october["ppa-a"] == "held"  # moved more than 0 %
        from kwhub.hub.settle.service import list_invoices

        invoices = list_invoices(db)
        n_held = sum(1 for s in october.values() if s == "held")
        expected = len(invoices) + n_held + sum(1 for i in invoices if i.buyer.id == "tenant_b")
        now = datetime.now(UTC)
        first = relay_job(hub, _ctx("relay", now))
        again = relay_job(hub, _ctx("relay", now))
        assert first["events_queued"] == expected and again["events_queued"] == 0
        records = [r for r in erp.records if r["status"] == 200]
        # a document's delivery dead-lettered: one delivery.dead event for the subscription that wants it
        from sqlalchemy import update

        o = outbox_table
        with db.engine.begin() as conn:
            dead_id = conn.execute(select(o.c.id).where(o.c.event_type.is_(None)).limit(1)).scalar_one()
            conn.execute(update(o).where(o.c.id == dead_id).values(status="dead", last_error="HTTP 422 from ERP",
                                                                   last_attempt_at=now))
        dead = relay_job(hub, _ctx("relay", now))
        assert dead["events_queued"] == 1
        with db.engine.connect() as conn:
            body = conn.execute(select(o.c.body).where(o.c.event_type == "delivery.dead")).scalar_one()
        assert json.loads(body)["data"]["outbox_row"] == dead_id
    with db.engine.connect() as conn:
        events = conn.execute(select(webhook_event_table).where(webhook_event_table.c.event_type != "delivery.dead")).all()
        rows = conn.execute(select(outbox_table.c.status, outbox_table.c.event_type, outbox_table.c.body)
                            .where(outbox_table.c.event_type.is_not(None),
                                   outbox_table.c.event_type != "delivery.dead")).all()
    assert {(e.subscription, e.event_type) for e in events} == {
        ("erp", "invoice.issued"), ("erp", "run.held"), ("tenant_b_app", "invoice.issued")}
    assert {e.party for e in events if e.subscription == "tenant_b_app"} == {"tenant_b"}
    assert all(r.status == "delivered" for r in rows) and len(rows) == expected
    assert len(records) == expected and all(r["signature_ok"] for r in records)
    keys = {r["idempotency_key"] for r in records}
    assert {e.id for e in events} == keys
    held = next(json.loads(r.body) for r in rows if r.event_type == "run.held")
    assert held["data"]["contract"] == "ppa-a" and held["data"]["held_reasons"]


def test_the_scheduler_catches_a_missed_slot_up_once_and_health_shows_the_owner(sqlite_db, tmp_path):
    from fastapi.testclient import TestClient

    from kwhub.hub.api.app import create_app
    from kwhub.hub.scheduler import history
    from kwhub.hub.scheduler.runner import SchedulerService, previous_fire

    hub = _hub(sqlite_db, tmp_path, {"scheduler": {"enabled": True, "heartbeat_s": 0.2, "standby_retry_s": 0.2,
                                                   "poll": False, "mqtt": False}})
    calls: list[datetime] = []

    def hourly(h: Any, ctx: JobContext) -> dict[str, Any]:
        calls.append(ctx.slot)
        return {}

    spec = JobSpec("hourly", hourly, every_s=3600)
    now = datetime.now(UTC)
    prev = previous_fire(spec, spec.trigger("UTC"), now)
    assert prev is not None
    old = prev - timedelta(hours=5)
    run = history.claim(sqlite_db, "hourly", old, "an earlier process")  # it last ran 5 slots ago
    history.finish(sqlite_db, run, "succeeded")
    dead = history.claim(sqlite_db, "other", old, "a process that died")  # left running
    assert dead is not None
    svc = SchedulerService(hub, jobs=[spec])
    svc.start()
    try:
        deadline = time.monotonic() + 20
        while not calls and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        assert calls == [prev]  # the missed slots are caught up once, as the latest one
        assert [r["owner"] for r in svc.interrupted_on_takeover] == ["a process that died"]
        client = TestClient(create_app(hub, access_log=False))
        health = client.get("/healthz")
        assert health.status_code == 200, health.text
        assert health.json()["scheduler"]["owner"] == svc.owner
    finally:
        assert svc.stop(grace_s=5) == 0
    with sqlite_db.engine.connect() as conn:
        rows = {(r.job_id, r.status) for r in conn.execute(select(job_run_table))}
    assert rows == {("hourly", "succeeded"), ("other", "interrupted")}


def test_a_webhook_event_changed_in_the_outbox_is_refused_and_verify_names_it(db, tmp_path):
    from sqlalchemy import update

    from kwhub.hub.demo.erp_receiver import ErpReceiver
    from kwhub.hub.settle.verify import verify
    from tests.fixtures.settlement import write_period

    with ErpReceiver(secret="s3cret", dedupe=True) as erp:
        extra = {"adapters": [{"type": "erp.folder", "id": "drop", "config": {"folder": "out/erp"}},
                              {"type": "erp.webhook", "id": "erp_events",
                               "config": {"url": erp.url, "secret": "s3cret"}}],
                 "service": {"webhooks": [{"id": "erp", "transport": "erp_events", "events": ["invoice.issued"]}]}}
        hub = _hub(db, tmp_path, extra)
        write_period(db, "2026-09")
        assert {o.status for o in hub.settle("2026-09")} == {"issued"}
        from kwhub.hub.deliver.events import emit_events

        queued = emit_events(hub)
        assert queued >= 1
        assert verify(db).ok  # freshly emitted events match what was recorded
        o = outbox_table
        with db.engine.begin() as conn:
            row = conn.execute(select(o.c.id, o.c.body).where(o.c.event_type.is_not(None)).limit(1)).one()
            forged = json.loads(row.body)
            forged["data"]["total"] = "1.00"
            conn.execute(update(o).where(o.c.id == row.id).values(body=json.dumps(forged).encode()))
        report = verify(db)
        assert not report.ok and any(f"outbox row {row.id} " in f.subject for f in report.breaks)
        relay_job(hub, _ctx("relay", datetime.now(UTC)))
        with db.engine.connect() as conn:
            status, error = conn.execute(select(o.c.status, o.c.last_error).where(o.c.id == row.id)).one()
        assert status == "dead" and "does not match the event recorded" in error
        assert all(r["idempotency_key"] != forged["id"] for r in erp.records)


def test_the_daily_verify_job_keeps_the_anchor_and_alerts_on_a_break(sqlite_db, tmp_path, caplog):
    from sqlalchemy import text

    from kwhub.hub.scheduler.jobs import verify_job
    from kwhub.hub.scheduler.registry import builtin_jobs
    from kwhub.hub.store.tables import audit_log_table
    from tests.fixtures.settlement import write_period

    hub = _hub(sqlite_db, tmp_path, {"scheduler": {"verify_anchor": "anchor/heads.json", "verify_cron": "15 3 * * *"}})
    [spec] = [s for s in builtin_jobs(hub.config) if s.id == "verify"]
    assert spec.schedule_text() == "cron 15 3 * * *"
    write_period(sqlite_db, "2026-09")
    assert {o.status for o in hub.settle("2026-09")} == {"issued"}
    out = verify_job(hub, _ctx("verify", datetime(2026, 10, 2, 3, 15, tzinfo=NY)))
    assert out["ok"] and out["breaks"] == 0 and out["checked"]["documents"] >= 1
    heads = json.loads((tmp_path / "anchor" / "heads.json").read_text())  # written next to kwhub.toml
    assert heads
    with sqlite_db.engine.begin() as conn:  # someone moves the numbering forward
        conn.execute(text("UPDATE invoice_sequence SET next_number = next_number + 5"))
    with pytest.raises(JobFailed) as err:
        verify_job(hub, _ctx("verify", datetime(2026, 10, 3, 3, 15, tzinfo=NY)))
    assert "verify found 1 break(s)" in str(err.value) and err.value.detail["findings"][0]["check"] == "numbering"
    assert any(r.levelname == "ERROR" and r.getMessage().startswith("ALERT: verify found a break (numbering)")
               for r in caplog.records)
    with sqlite_db.engine.connect() as conn:
        actions = conn.execute(select(audit_log_table.c.action)).scalars().all()
    assert "verify.break" in actions
    assert json.loads((tmp_path / "anchor" / "heads.json").read_text()) == heads  # not moved on a break


def test_verify_can_be_disabled_and_a_bad_cron_is_refused(sqlite_db, tmp_path):
    from kwhub.hub.config import ConfigError
    from kwhub.hub.scheduler.registry import builtin_jobs

    hub = _hub(sqlite_db, tmp_path, {"scheduler": {"disabled": ["verify"]}})
    assert "verify" not in [s.id for s in builtin_jobs(hub.config)]
    with pytest.raises(ConfigError, match="scheduler.verify_cron"):
        _hub(sqlite_db, tmp_path, {"scheduler": {"verify_cron": "daily"}})
