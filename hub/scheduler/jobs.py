"""The built-in scheduler jobs, each a plain function of a Hub and its :class:`JobContext`.

Every job is idempotent: it looks at the store and does what is left to do, so running a
slot late, twice (refused by the job history anyway) or after an interrupted slot gives
the same result.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

from kwhub.hub.scheduler.registry import JobContext

log = logging.getLogger("kwhub.scheduler")


class JobFailed(RuntimeError):
    """A job that did part of its work and reports what failed (recorded as ``failed``)."""

    def __init__(self, message: str, detail: dict[str, Any]) -> None:
        super().__init__(message)
        self.detail = detail


def relay_job(hub: Any, ctx: JobContext) -> dict[str, Any]:
    """Queue new webhook events, then deliver what is due in the outbox (bounded passes)."""
    from kwhub.hub.deliver.events import emit_events
    from kwhub.hub.deliver.outbox import close_transports, relay_once, transports_from_config

    queued = emit_events(hub, now=ctx.now)
    transports = transports_from_config(hub.config)
    total: dict[str, Any] = {"events_queued": queued, "delivered": 0, "retried": 0, "dead": 0}
    try:
        for _ in range(20):
            rep = relay_once(hub.db, hub.registry, transports, limit=200)
            total["delivered"] += rep.delivered
            total["retried"] += rep.retried
            total["dead"] += rep.dead
            if rep.picked == 0:
                break
    finally:
        close_transports(transports)
    return total


def verify_job(hub: Any, ctx: JobContext) -> dict[str, Any]:
    """Run ``kwhub verify`` on the hub's database; a break is an ALERT and a failed slot.

    With ``[scheduler] verify_anchor`` the anchor file is read first (its recorded chain heads
    must still be in the chains) and, when nothing is broken, written anew with today's heads.
    Each break is logged as an ALERT line and audited; the slot is recorded ``failed`` with
    the findings, so ``kwhub jobs list`` and ``/healthz`` show it.
    """
    from kwhub.hub.settle.verify import read_anchor, verify, write_anchor
    from kwhub.hub.store.audit import record_audit

    anchor_setting = hub.config.file.scheduler.verify_anchor
    anchor = None
    if anchor_setting:
        anchor = Path(anchor_setting)
        if not anchor.is_absolute():
            anchor = Path(hub.config.work_dir) / anchor
    saved = read_anchor(anchor) if anchor is not None and anchor.exists() else None
    report = verify(hub.db, anchor=saved)
    summary = {"ok": report.ok, "checked": dict(report.checked), "breaks": len(report.breaks),
               "warnings": len(report.warnings), "anchor": str(anchor) if anchor is not None else None}
    if report.ok:
        if anchor is not None:
            write_anchor(anchor, report)
        return summary
    for f in report.breaks:
        log.error("ALERT: verify found a break (%s) in %s: %s", f.check, f.subject, f.problem)
    with hub.db.write_transaction() as conn:
        record_audit(conn, "verify.break", actor="scheduler", object_type="database", object_id=str(ctx.slot),
                     detail={"breaks": [f.as_dict() for f in report.breaks]})
    raise JobFailed(f"verify found {len(report.breaks)} break(s); run `kwhub verify` for the details",
                    {**summary, "findings": [f.as_dict() for f in report.breaks]})


def vee_job(hub: Any, ctx: JobContext) -> dict[str, Any]:
    """Validate the last ``vee_lookback_days`` UTC days of every configured channel (polled and
    streamed data arrive in the raw layer only); gaps count up to the hub's present."""
    from kwhub.hub.ingest.vee import validate_days

    days_back = hub.config.file.scheduler.vee_lookback_days
    today = ctx.now.date()
    days = {today - timedelta(days=i) for i in range(days_back)}
    channels = {c.id: set(days) for c in hub.campus.channels}
    if not channels:
        return {"channels": 0}
    summary = validate_days(hub.db, hub.campus, channels, hub.config.vee or None,
                            run_label=f"scheduler {ctx.slot.isoformat()}", now=ctx.now, registry=hub.registry)
    as_dict = getattr(summary, "as_dict", None)
    out = as_dict() if callable(as_dict) else {}
    return {"channels": len(channels), "days": days_back, **{k: v for k, v in out.items() if k != "rules"}}


def close_job(hub: Any, ctx: JobContext) -> dict[str, Any]:
    """Settle every contract's periods that the close schedule says are due now.

    For each contract and each month that ended up to ``lookback_periods`` months before
    its final was due (the months a final delay spans are added): ``initial`` at
    D+``initial_days``, ``final`` at D+``final_days`` (local time ``at`` in the contract's
    zone). A version with any run recorded is not settled again here (a rejected one
    waits for a person). Drafts go through the review gate (``[review]`` policy).
    """
    from datetime import time

    from kwhub.core.close_schedule import CloseRule, due_versions, recent_periods
    from kwhub.core.timeline import zone
    from kwhub.hub.settle.runs_read import existing_runs

    close = hub.config.file.scheduler.close
    done: list[dict[str, Any]] = []
    errors: list[str] = []
    for contract in hub.campus.contracts:
        timing = close.contracts.get(contract.id)
        if timing is not None and not timing.enabled:
            continue
        hh, mm = (int(x) for x in ((timing.at if timing and timing.at else None) or close.at).split(":"))
        rule = CloseRule(
            initial_days=timing.initial_days if timing and timing.initial_days is not None else close.initial_days,
            final_days=timing.final_days if timing and timing.final_days is not None else close.final_days,
            at=time(hh, mm))
        tz = contract.timezone or hub.config.hub.timezone
        reach = (rule.final_days if rule.final_days is not None else rule.initial_days) // 28 + 1
        for period in recent_periods(ctx.now, tz, close.lookback_periods + reach - 1):
            if contract.start and period < contract.start:
                continue  # before the contract's first billing period
            kinds = {r["version_kind"] for r in existing_runs(hub.db, contract.id, period)}
            for version in due_versions(period, rule, tz, ctx.now, kinds):
                outcomes = hub.settle(period, contracts=[contract.id], version=version, now=ctx.now,
                                      issue_date=ctx.now.astimezone(zone(tz)).date())
                for o in outcomes:
                    done.append({"contract": o.contract_id, "period": period, "version": version,
                                 "status": o.status, "run": o.run_id})
                    if o.status == "error":
                        errors.append(f"{o.contract_id} {period} {version}: {o.error}")
                if any(o.status == "error" for o in outcomes):
                    break  # a final waits for its initial
    detail = {"settled": done}
    if errors:
        raise JobFailed("; ".join(errors), detail)
    return detail


def watch_job(hub: Any, ctx: JobContext, watch: Any) -> dict[str, Any]:
    """Ingest the files of a watched folder that were not seen before (by name and content).

    A file still younger than ``min_age_s`` waits for the next slot (it may still be
    written). A file the adapter refuses is recorded with the error and not tried again
    until its content changes; nothing of it is stored.
    """
    from sqlalchemy import select

    from kwhub.core.intervals import IntervalDataError
    from kwhub.hub.store.service_tables import watched_file_table as t
    from kwhub.hub.store.tables import utcnow

    folder = Path(watch.folder)
    if not folder.is_absolute():
        folder = hub.config.work_dir / folder
    if not folder.is_dir():
        raise JobFailed(f"watched folder {folder} does not exist", {"folder": str(folder)})
    key = str(folder)
    with hub.db.engine.connect() as conn:
        seen = {(n, h) for n, h in conn.execute(select(t.c.name, t.c.sha256).where(t.c.folder == key))}
    wall = utcnow().timestamp()
    ingested: list[str] = []
    refused: list[str] = []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or not fnmatch.fnmatch(path.name, watch.pattern) or path.name.startswith("."):
            continue
        if wall - path.stat().st_mtime < watch.min_age_s:
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if (path.name, digest) in seen:
            continue
        status, error, detail = "ingested", None, {}
        try:
            rep = hub.ingest_file(path, watch.adapter, watch.channel, now=ctx.now)
            detail = {"intervals": rep.intervals, "new_days": rep.new_days, "changed_days": rep.changed_days}
            ingested.append(path.name)
        except (IntervalDataError, ValueError) as exc:
            status, error = "refused", str(exc)
            refused.append(f"{path.name}: {exc}")
            log.warning("watched file refused: %s: %s", path, exc, extra={"job": ctx.job_id})
        with hub.db.write_transaction() as conn:
            conn.execute(t.insert().values(folder=key, name=path.name, sha256=digest, adapter_id=watch.adapter,
                                           status=status, error=error, detail=detail, at=utcnow()))
    out = {"folder": key, "ingested": ingested, "refused": refused}
    if refused:
        raise JobFailed(f"{len(refused)} file(s) refused: " + "; ".join(refused), out)
    return out
