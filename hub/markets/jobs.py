"""The market day as scheduler jobs: offers before the day-ahead gate, then awards, prices and
statements as the ISO publishes them, each statement shadow-settled on arrival.

Two jobs per ISO of ``[markets.adapters]`` (``[markets.schedule]`` sets when):

* ``markets.<ISO>.bids`` (every ``bid_every_s``): from ``bid_lead_minutes`` before the ISO's
  day-ahead gate (``da_gate``, local time of the ISO) until the gate, builds the next operating
  day's offers of every resource of the ISO (forecast, optimizer, curve rules) and submits
  them once, then polls the submission until the ISO answers. A gate that passes without a
  submission the ISO took is an ``ALERT``, audited once per ISO and day, and fails that slot.
  ISOs whose adapter cannot take bids (no ``bids`` capability) have no bids job.
* ``markets.<ISO>.fetch`` (every ``fetch_every_s``): polls submissions still waiting, fetches
  the day-ahead awards, the real-time awards (adapters with the ``rt_bids`` capability), DA and
  RT prices and statement versions of the last ``fetch_days`` operating days
  the campus bid in (every day for an ISO without bids), and shadow-settles each new statement
  version; lines outside the tolerance are logged with their cause. An award above the MW the
  campus offered for its interval (or with no offer) is an ``ALERT`` in the log and the job's
  ``over_offer``; the award is stored as the ISO sent it.
* ``markets.<ISO>.rt`` (every ``rt_every_s``, with ``rt_offers = true`` and an adapter with the
  ``rt_bids`` capability): real-time offers of every resource for the hours from the first
  whole hour at least ``rt_gate_minutes`` ahead to the end of its operating day, built on the
  ISO's real-time grain (:func:`kwhub.hub.markets.forecast.build_rt_bids`); once per hour
  window (a later submission replaces the earlier offer at the ISO).

All are idempotent: they look at the store first, so a late or repeated slot changes nothing.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from kwhub.hub.scheduler.registry import JobContext, JobSpec

log = logging.getLogger("kwhub.scheduler.markets")

TAKEN = ("submitted", "pending", "accepted", "partial")  # statuses of a submission the ISO holds or may hold
WAITING = ("submitted", "pending")


def market_jobs(cfg: Any) -> list[JobSpec]:
    """The market jobs ``[markets]`` asks for (none without market adapters)."""
    mc = cfg.file.markets
    sch = mc.schedule
    if not sch.enabled or not mc.adapters:
        return []
    out: list[JobSpec] = []
    for iso in sorted(mc.adapters):
        if _takes_bids(cfg, iso) and any(r.iso == iso for r in mc.resources):
            out.append(JobSpec(f"markets.{iso}.bids", market_bids_job, every_s=sch.bid_every_s, kwargs={"iso": iso},
                               description=f"offer the next {iso} operating day before its day-ahead gate"))
        if sch.rt_offers and _takes_bids(cfg, iso, "rt_bids") and any(r.iso == iso for r in mc.resources):
            out.append(JobSpec(f"markets.{iso}.rt", market_rt_job, every_s=sch.rt_every_s, kwargs={"iso": iso},
                               description=f"offer the coming {iso} hours in real time"))
        out.append(JobSpec(f"markets.{iso}.fetch", market_fetch_job, every_s=sch.fetch_every_s, kwargs={"iso": iso},
                           description=f"fetch {iso} awards, prices and statements; shadow-settle new statements"))
    return out


def _takes_bids(cfg: Any, iso: str, capability: str = "bids") -> bool:
    from kwhub.hub.markets.service import market_adapter

    return capability in market_adapter(cfg, iso).capabilities


def gate_of(cfg: Any, iso: str, day: date) -> datetime:
    """The day-ahead gate closure for operating day ``day`` (aware, the ISO's zone)."""
    from kwhub.core.markets.rules import market_rules
    from kwhub.hub.markets.service import iso_timezone

    hhmm = cfg.file.markets.schedule.da_gate.get(iso) or market_rules(iso).da_gate
    if hhmm is None:
        from kwhub.hub.scheduler.jobs import JobFailed

        raise JobFailed(f"no day-ahead gate for {iso}: set [markets.schedule] da_gate.{iso} = \"HH:MM\"", {"iso": iso})
    hh, mm = (int(x) for x in hhmm.split(":"))
    return datetime.combine(day - timedelta(days=1), time(hh, mm), ZoneInfo(iso_timezone(cfg, iso)))


def market_bids_job(hub: Any, ctx: JobContext, iso: str) -> dict[str, Any]:
    """Offer the next operating day of ``iso`` once, inside the window before its gate."""
    from kwhub.hub.markets import store
    from kwhub.hub.markets.forecast import build_day_bids
    from kwhub.hub.markets.service import iso_timezone, poll_submission, submit_bids
    from kwhub.hub.scheduler.jobs import JobFailed

    cfg, db = hub.config, hub.db
    local_now = ctx.now.astimezone(ZoneInfo(iso_timezone(cfg, iso)))
    day = local_now.date() + timedelta(days=1)
    gate = gate_of(cfg, iso, day)
    opens = gate - timedelta(minutes=cfg.file.markets.schedule.bid_lead_minutes)
    subs = store.list_submissions(db, iso, day)
    taken = [s for s in subs if s["status"] in TAKEN and s["market"] == "DA"]
    out: dict[str, Any] = {"iso": iso, "day": day.isoformat(), "gate": gate.isoformat()}
    if local_now < opens:
        return {**out, "state": "before the bid window", "opens": opens.isoformat()}
    if local_now >= gate:
        if taken:
            return {**out, "state": "gate closed", "submissions": [s["id"] for s in taken]}
        return _gate_missed(hub, ctx, iso, day, gate, subs, out)
    if taken:
        polled = [poll_submission(db, cfg, str(s["id"])) for s in taken if s["status"] in WAITING]
        return {**out, "state": "submitted", "submissions": [s["id"] for s in taken],
                "polled": [p.status.value for p in polled]}
    bids, notes = [], []
    for r in cfg.file.markets.resources:
        if r.iso == iso:
            built = build_day_bids(db, cfg, iso, day, r.resource)
            bids += built.bids
            notes += built.notes
    if not bids:
        raise JobFailed(f"{iso} {day}: the optimizer offers nothing (no surplus above load and reserve)",
                        {**out, "notes": notes})
    sid, sub = submit_bids(db, cfg, iso, bids)
    if sub.status.value in WAITING:
        sub = poll_submission(db, cfg, sid)
    log.info("market bids: %s %s submitted as %s (%s)", iso, day, sid, sub.status.value)
    return {**out, "state": "submitted now", "submission": sid, "status": sub.status.value, "bids": len(bids)}


def market_rt_job(hub: Any, ctx: JobContext, iso: str) -> dict[str, Any]:
    """Offer the coming hours of ``iso`` in real time, once per hour window."""
    from kwhub.hub.markets import store
    from kwhub.hub.markets.forecast import build_rt_bids
    from kwhub.hub.markets.service import iso_timezone, poll_submission, submit_bids
    from kwhub.hub.scheduler.jobs import JobFailed

    cfg, db = hub.config, hub.db
    sch = cfg.file.markets.schedule
    from kwhub.core.markets.rules import market_rules

    lead = sch.rt_gate_minutes.get(iso)
    if lead is None:
        lead = market_rules(iso).rt_gate_minutes
    if lead is None:
        raise JobFailed(f"no real-time gate for {iso}: set [markets.schedule] rt_gate_minutes.{iso}", {"iso": iso})
    earliest = int(ctx.now.timestamp()) + 60 * lead
    first = -(-earliest // 3600) * 3600  # the first whole hour (US zones sit on whole-hour offsets)
    tz = ZoneInfo(iso_timezone(cfg, iso))
    day = datetime.fromtimestamp(first, tz).date()
    out: dict[str, Any] = {"iso": iso, "day": day.isoformat(), "from": datetime.fromtimestamp(first, tz).isoformat()}
    for s in store.list_submissions(db, iso, day):
        if s["market"] != "RT" or s["status"] not in TAKEN:
            continue
        _, bids = store.load_submission(db, str(s["id"]))
        if any(c.start.timestamp() == first for b in bids for c in b.curves[:1]):
            return {**out, "state": "offered", "submission": s["id"]}
    bids, notes = [], []
    for r in cfg.file.markets.resources:
        if r.iso == iso:
            built = build_rt_bids(db, cfg, iso, day, r.resource, from_epoch=first)
            bids += built.bids
            notes += built.notes
    if not bids:
        return {**out, "state": "nothing to offer", "notes": notes}
    sid, sub = submit_bids(db, cfg, iso, bids)
    if sub.status.value in WAITING:
        sub = poll_submission(db, cfg, sid)
    log.info("market RT offers: %s from %s submitted as %s (%s)", iso, out["from"], sid, sub.status.value)
    return {**out, "state": "submitted now", "submission": sid, "status": sub.status.value,
            "hours": sum(len(b.curves) for b in bids)}


def _gate_missed(hub: Any, ctx: JobContext, iso: str, day: date, gate: datetime, subs: list[dict[str, Any]],
                 out: dict[str, Any]) -> dict[str, Any]:
    """ALERT and audit once per ISO and day; later slots of the day report it without failing."""
    from sqlalchemy import select

    from kwhub.hub.scheduler.jobs import JobFailed
    from kwhub.hub.store.audit import record_audit
    from kwhub.hub.store.tables import audit_log_table

    key = f"{iso}:{day.isoformat()}"
    t = audit_log_table
    with hub.db.read_connection() as conn:
        told = conn.execute(select(t.c.id).where(t.c.action == "market.gate_missed", t.c.object_id == key)).first()
    if told is not None:
        return {**out, "state": "gate missed (already alerted)"}
    refused = [f"{s['id']} ({s['status']})" for s in subs]
    why = f"earlier submissions: {', '.join(refused)}" if refused else "nothing was submitted"
    log.error("ALERT: the %s day-ahead gate for %s closed at %s without offers the ISO took; %s", iso, day,
              gate.isoformat(), why)
    with hub.db.write_transaction() as conn:
        record_audit(conn, "market.gate_missed", actor="scheduler", object_type="market_day", object_id=key,
                     detail={"gate": gate.isoformat(), "submissions": refused})
    raise JobFailed(f"{iso} {day}: the day-ahead gate closed at {gate.isoformat()} without offers; {why}",
                    {**out, "submissions": refused})


def market_fetch_job(hub: Any, ctx: JobContext, iso: str) -> dict[str, Any]:
    """Poll waiting submissions, fetch recent days and shadow-settle each new statement version."""
    from kwhub.core.adapters import AdapterError
    from kwhub.hub.markets import store
    from kwhub.hub.markets.service import (
        MarketServiceError,
        fetch_market_day,
        iso_timezone,
        poll_submission,
        variance_for_day,
    )
    from kwhub.hub.scheduler.jobs import JobFailed

    cfg, db = hub.config, hub.db
    today = ctx.now.astimezone(ZoneInfo(iso_timezone(cfg, iso))).date()
    bids = _takes_bids(cfg, iso)
    out: dict[str, Any] = {"iso": iso, "polled": 0, "days": [], "rt_awards": 0, "over_offer": [], "statements_new": [],
                           "variance_lines": 0}
    errors: list[str] = []
    for day in [today + timedelta(days=1), *(today - timedelta(days=k) for k in range(cfg.file.markets.schedule.fetch_days + 1))]:
        subs = store.list_submissions(db, iso, day) if bids else []
        for s in subs:
            if s["status"] in WAITING:
                try:
                    poll_submission(db, cfg, str(s["id"]))
                    out["polled"] += 1
                except AdapterError as exc:
                    errors.append(f"poll {s['id']}: {exc}")
        if day > today or (bids and not any(s["status"] in TAKEN for s in store.list_submissions(db, iso, day))):
            continue  # nothing to fetch for a day the campus did not offer (or not yet operated)
        try:
            rep = fetch_market_day(db, cfg, iso, day)
        except (AdapterError, MarketServiceError) as exc:
            errors.append(f"{day}: {exc}")
            continue
        out["days"].append(day.isoformat())
        out["rt_awards"] += rep.rt_awards
        for msg in rep.over_offer:
            log.error("ALERT: %s", msg)
            out["over_offer"].append(msg)
        for sid in rep.statements_new:
            out["statements_new"].append(sid)
            try:
                checks = variance_for_day(db, cfg, iso, day, sid)
            except (MarketServiceError, ValueError) as exc:
                errors.append(f"{day} statement {sid}: {exc}")
                continue
            for c in checks:
                for ln in c.report.lines:
                    out["variance_lines"] += 1
                    log.warning("market variance: %s %s %s %s %s: shadow %s, ISO %s (%s)", iso, sid, ln.code,
                                ln.resource, ln.label, ln.shadow, ln.iso, ln.cause)
    if errors:
        raise JobFailed(f"{iso}: {len(errors)} market step(s) failed: " + "; ".join(errors), {**out, "errors": errors})
    return out
