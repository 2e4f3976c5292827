"""``/healthz``: the database, the scheduler's owner and each adapter's last success.

It answers without a key (load balancers and probes call it) and says only states and
times: 200 when the database answers and a scheduler owner's heartbeat is recent, 503
otherwise, with the reason.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import select, text

from kwhub.hub.store.tables import utcnow

router = APIRouter()


class Health(BaseModel):
    """The answer of ``/healthz``."""

    status: Literal["ok", "degraded"]
    database: dict[str, Any]
    scheduler: dict[str, Any]
    adapters: list[dict[str, Any]]
    jobs: dict[str, Any]


@router.get("/healthz", response_model=Health, responses={503: {"model": Health, "description": "Degraded"}},
            summary="Health: database, scheduler, adapters (no key needed)")
def healthz(request: Request) -> JSONResponse:
    from kwhub.hub.scheduler.history import last_success
    from kwhub.hub.scheduler.ownership import current_owner, heartbeat_age
    from kwhub.hub.store.service_tables import adapter_status_table as a

    hub = request.app.state.hub
    now = utcnow()
    db_ok, db_error = True, ""
    owner: dict[str, Any] | None = None
    adapters: list[dict[str, Any]] = []
    jobs: dict[str, Any] = {}
    try:
        with hub.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            rows = conn.execute(select(a)).all()
        adapters = [{"adapter": r.adapter_id, "last_success": _iso(r.last_success_at), "last_error": r.last_error,
                     "last_error_at": _iso(r.last_error_at), "polls": r.scheduled, "ok": r.ok, "failed": r.failed,
                     "missed": r.missed} for r in rows]
        owner = current_owner(hub.db)
        jobs = {k: v.isoformat() for k, v in last_success(hub.db).items()}
    except Exception as exc:  # noqa: BLE001  (the answer is that the database does not answer)
        db_ok, db_error = False, f"{type(exc).__name__}: {exc}"[:300]
    limit = 3 * hub.config.file.scheduler.heartbeat_s + 5
    age = heartbeat_age(owner, now)
    sched_ok = hub.config.file.scheduler.enabled is False or (age is not None and age <= limit)
    scheduler = {"enabled": hub.config.file.scheduler.enabled, "owner": owner["owner"] if owner else None,
                 "heartbeat_age_s": None if age is None else round(age, 3), "ok": sched_ok}
    state = getattr(request.app.state, "scheduler", None)
    if state is not None:
        scheduler["this_process"] = state.state
    status = "ok" if db_ok and sched_ok else "degraded"
    body = {"status": status, "database": {"ok": db_ok, "dialect": hub.db.dialect, "error": db_error or None},
            "scheduler": scheduler, "adapters": adapters, "jobs": {"last_success": jobs}}
    return JSONResponse(body, status_code=200 if status == "ok" else 503)


def _iso(value: Any) -> str | None:
    from kwhub.hub.store.tables import as_utc

    return None if value is None else as_utc(value).isoformat()  # type: ignore[union-attr]
