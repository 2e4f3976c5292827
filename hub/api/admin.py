"""Operator routes: jobs, plugins, adapter checks, the audit log, API keys, config reload, webhooks."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from kwhub.hub.api.deps import PageParams, hub_of, page, page_params, scope
from kwhub.hub.api.keys import Principal
from kwhub.hub.api.models import Done, Page, Reason
from kwhub.hub.api.problems import ApiProblem, responses

router = APIRouter()


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


@router.get("/jobs", response_model=Page, responses=responses(400, 401, 403, 422), summary="Job history")
def jobs(request: Request, job: str | None = Query(None, max_length=200),
         status: Literal["running", "succeeded", "failed", "interrupted"] | None = Query(None),
         who: Principal = Depends(scope("jobs:read")), params: PageParams = Depends(page_params)) -> dict[str, Any]:
    from kwhub.hub.scheduler.history import list_runs

    rows = list_runs(hub_of(request).db, job_id=job, status=status, limit=params.offset + params.limit + 1)
    return page(_plain(rows), params)


@router.get("/jobs/schedule", responses=responses(401, 403), summary="The configured jobs and the scheduler's owner")
def schedule(request: Request, who: Principal = Depends(scope("jobs:read"))) -> dict[str, Any]:
    from kwhub.hub.scheduler.history import last_success
    from kwhub.hub.scheduler.ownership import current_owner
    from kwhub.hub.scheduler.registry import all_jobs

    hub = hub_of(request)
    ok = last_success(hub.db)
    return _plain({"owner": current_owner(hub.db), "jobs": [
        {"id": s.id, "schedule": s.schedule_text(), "description": s.description, "last_success": ok.get(s.id)}
        for s in all_jobs(hub.config)]})


@router.get("/plugins", responses=responses(401, 403), summary="Installed plugins and adapter types")
def plugins(request: Request, who: Principal = Depends(scope("plugins:read"))) -> dict[str, Any]:
    reg = hub_of(request).registry
    return _plain({"plugins": [p.as_dict() for p in reg.plugins.values()],
                   "adapters": {t: {"family": c.family, "capabilities": sorted(c.capabilities)}
                                for t, c in sorted(reg.adapters.items())}})


@router.get("/adapters/checks", responses=responses(401, 403), summary="Run check() of every configured adapter")
def adapter_checks(request: Request, who: Principal = Depends(scope("adapters:check"))) -> dict[str, Any]:
    cfg = hub_of(request).config
    out = []
    for inst in cfg.adapters.values():
        if not inst.enabled:
            out.append({"id": inst.id, "type": inst.type, "ok": None, "kind": None, "message": "disabled"})
            continue
        try:
            res = inst.build(cfg.context()).check()
            out.append({"id": inst.id, "type": inst.type, "ok": res.ok, "kind": res.kind.value if res.kind else None,
                        "message": res.message})
        except Exception as exc:  # noqa: BLE001  (a crashing check is that adapter's system failure)
            out.append({"id": inst.id, "type": inst.type, "ok": False, "kind": "system",
                        "message": f"{type(exc).__name__}: {exc}"})
    return {"checks": out}


@router.get("/audit", response_model=Page, responses=responses(400, 401, 403, 422), summary="The audit log")
def audit(request: Request, object_type: str | None = Query(None, max_length=100),
          object_id: str | None = Query(None, max_length=400),
          who: Principal = Depends(scope("audit:read")), params: PageParams = Depends(page_params)) -> dict[str, Any]:
    from kwhub.hub.store import audit_entries

    rows = audit_entries(hub_of(request).db, object_type, object_id)
    items = [{"id": a.id, "at": a.at.isoformat(), "actor": a.actor, "action": a.action,
              "object_type": a.object_type, "object_id": a.object_id, "detail": a.detail} for a in rows]
    return page(_plain(items[::-1]), params)


class KeyRequest(BaseModel):
    """A new API key."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["operator", "auditor", "erp", "tenant"]
    party: str = Field(default="", max_length=200)
    scopes: list[str] | None = Field(default=None, max_length=50)
    name: str = Field(default="", max_length=200)
    days: int | None = Field(default=None, ge=1, le=100_000)


class CreatedKeyOut(BaseModel):
    """The key; ``token`` is shown this once and never stored."""

    id: str
    token: str
    role: str
    party: str
    scopes: list[str]
    expires_at: datetime


@router.get("/keys", response_model=Page, responses=responses(400, 401, 403, 422), summary="API keys (no secrets)")
def keys(request: Request, who: Principal = Depends(scope("keys:read")),
         params: PageParams = Depends(page_params)) -> dict[str, Any]:
    from kwhub.hub.api.keys import list_keys

    return page(_plain(list_keys(hub_of(request).db)), params)


@router.post("/keys", response_model=CreatedKeyOut, status_code=201, responses=responses(401, 403, 404, 409, 422),
             summary="Create an API key (the token is shown once)")
def create(body: KeyRequest, request: Request, who: Principal = Depends(scope("keys:write"))) -> CreatedKeyOut:
    from kwhub.hub.api.keys import KeyRequestError, create_key

    hub = hub_of(request)
    api = hub.config.file.api
    try:
        key = create_key(hub.db, role=body.role, party=body.party, scopes=body.scopes, name=body.name,
                         days=body.days or api.key_default_days, max_days=api.key_max_days, actor=who.actor,
                         known_parties={p.id for p in hub.campus.parties})
    except KeyRequestError as exc:  # the request is well-formed but this hub's parties or limits refuse it
        raise ApiProblem(404 if "unknown party" in str(exc) else 409, str(exc)) from None
    return CreatedKeyOut(id=key.id, token=key.token, role=key.role, party=key.party, scopes=key.scopes,
                         expires_at=key.expires_at)


@router.post("/keys/{key_id}/revoke", response_model=Done, responses=responses(401, 403, 404, 409, 422),
             summary="Revoke an API key (a reason is required)")
def revoke(body: Reason, request: Request, key_id: str = Path(..., max_length=32),
           who: Principal = Depends(scope("keys:write"))) -> Done:
    from kwhub.hub.api.keys import KeyRequestError, revoke_key

    try:
        revoke_key(hub_of(request).db, key_id, actor=who.actor, reason=body.reason)
    except KeyRequestError as exc:
        raise ApiProblem(404 if "no API key" in str(exc) else 409, str(exc)) from None
    return Done(ok=True, detail={"key": key_id, "revoked": True})


@router.post("/config/reload", response_model=Done, responses=responses(401, 403, 422),
             summary="Load kwhub.toml again (refused with the key paths when invalid)")
def reload_config(body: Reason, request: Request, who: Principal = Depends(scope("config:reload"))) -> Done:
    from kwhub.hub.api.reload import ReloadError, reload_hub

    try:
        detail = reload_hub(request.app, actor=who.actor, reason=body.reason)
    except ReloadError as exc:
        raise ApiProblem(422, str(exc)) from None
    return Done(ok=True, detail=detail)


@router.get("/webhooks", responses=responses(401, 403), summary="Webhook subscriptions this key may see")
def webhooks(request: Request, who: Principal = Depends(scope("webhooks:read"))) -> dict[str, Any]:
    subs = hub_of(request).config.file.service.webhooks
    return {"subscriptions": [s.model_dump() for s in subs if who.party is None or s.party == who.party]}
