"""Job history: one ``job_run`` row per (job, slot), claimed before the job runs.

:func:`claim` inserts the row as ``running``; the unique (job, slot) constraint makes
the database refuse a second claim of the same slot, whoever asks, so a slot runs once.
:func:`finish` records the outcome. Rows left ``running`` by an owner that died are
marked ``interrupted`` by the next owner (:func:`mark_interrupted`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from kwhub.hub.store.service_tables import JOB_STATUSES, job_run_table
from kwhub.hub.store.tables import as_utc, utcnow


def claim(db: Any, job_id: str, slot: datetime, owner: str) -> int | None:
    """Record that ``owner`` starts ``job_id``'s ``slot``; None when that slot was claimed before."""
    t = job_run_table
    try:
        with db.write_transaction() as conn:
            res = conn.execute(t.insert().values(job_id=job_id, slot=slot, owner=owner, status="running",
                                                 started_at=utcnow(), detail={}))
            return int(res.inserted_primary_key[0])
    except IntegrityError:
        return None


def finish(db: Any, run_id: int, status: str, error: str | None = None, detail: dict[str, Any] | None = None) -> None:
    """Record the end of a run (``succeeded``, ``failed`` or ``interrupted``)."""
    if status not in JOB_STATUSES:
        raise ValueError(f"unknown job status {status!r}")
    t = job_run_table
    with db.write_transaction() as conn:
        conn.execute(update(t).where(t.c.id == run_id, t.c.status == "running").values(
            status=status, finished_at=utcnow(), error=error, detail=_jsonable(detail or {})))


def mark_interrupted(db: Any, owner: str, reason: str) -> list[dict[str, Any]]:
    """Mark every run still ``running`` that ``owner`` did not start as interrupted; return them."""
    t = job_run_table
    with db.write_transaction() as conn:
        rows = conn.execute(select(t.c.id, t.c.job_id, t.c.slot, t.c.owner)
                            .where(t.c.status == "running", t.c.owner != owner)).all()
        if rows:
            conn.execute(update(t).where(t.c.id.in_([r.id for r in rows]), t.c.status == "running").values(
                status="interrupted", finished_at=utcnow(), error=reason))
    return [{"id": r.id, "job_id": r.job_id, "slot": as_utc(r.slot), "owner": r.owner} for r in rows]


def interrupt_own(db: Any, owner: str, reason: str) -> int:
    """Mark this owner's own runs still ``running`` as interrupted (a shutdown that could not wait)."""
    t = job_run_table
    with db.write_transaction() as conn:
        return int(conn.execute(update(t).where(t.c.status == "running", t.c.owner == owner).values(
            status="interrupted", finished_at=utcnow(), error=reason)).rowcount)


def last_slots(db: Any) -> dict[str, datetime]:
    """The latest recorded slot of every job."""
    t = job_run_table
    with db.engine.connect() as conn:
        rows = conn.execute(select(t.c.job_id, func.max(t.c.slot)).group_by(t.c.job_id)).all()
    return {job: as_utc(slot) for job, slot in rows if slot is not None}  # type: ignore[misc]


def list_runs(db: Any, *, job_id: str | None = None, status: str | None = None, limit: int = 100,
              before_id: int | None = None) -> list[dict[str, Any]]:
    """Job runs, newest first (``before_id`` pages back)."""
    t = job_run_table
    q = select(t).order_by(t.c.id.desc()).limit(limit)
    if job_id:
        q = q.where(t.c.job_id == job_id)
    if status:
        q = q.where(t.c.status == status)
    if before_id is not None:
        q = q.where(t.c.id < before_id)
    with db.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(q)]
    for r in rows:
        for k in ("slot", "started_at", "finished_at"):
            r[k] = as_utc(r[k])
    return rows


def last_success(db: Any) -> dict[str, datetime]:
    """When each job last succeeded."""
    t = job_run_table
    with db.engine.connect() as conn:
        rows = conn.execute(select(t.c.job_id, func.max(t.c.finished_at)).where(t.c.status == "succeeded")
                            .group_by(t.c.job_id)).all()
    return {job: as_utc(at) for job, at in rows if at is not None}  # type: ignore[misc]


def _jsonable(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value, default=str))
