"""``/api/v1/runs`` (list, show, approve, reject) and ``/api/v1/settle`` (a manual settlement)."""

from __future__ import annotations

import json
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from kwhub.hub.api.deps import PageParams, hub_of, page, page_params, scope
from kwhub.hub.api.keys import Principal
from kwhub.hub.api.models import Done, Page, Reason
from kwhub.hub.api.problems import ApiProblem, responses

router = APIRouter()
_STATUS = Literal["draft", "held", "issued", "no_change", "rejected", "superseded"]


def _buyers(hub: Any) -> dict[str, str]:
    return {c.id: c.buyer for c in hub.campus.contracts}


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(row, default=str))


def _visible_run(hub: Any, who: Principal, run_id: str) -> dict[str, Any]:
    from kwhub.core.settlement import SettlementError
    from kwhub.hub.settle.runs_read import get_run

    try:
        run = get_run(hub.db, run_id)
    except SettlementError:
        run = None
    if run is None or not who.sees(_buyers(hub).get(run["contract_id"])):
        raise ApiProblem(404, f"no settlement run {run_id!r} (GET /api/v1/runs lists them)")
    return run


@router.get("/runs", response_model=Page, responses=responses(400, 401, 403, 422), summary="Settlement runs")
def list_runs(request: Request, period: str | None = Query(None, pattern=r"^(19|20|21)\d{2}-(0[1-9]|1[0-2])$"),
              contract: str | None = Query(None, max_length=200), status: _STATUS | None = Query(None),
              who: Principal = Depends(scope("runs:read")), params: PageParams = Depends(page_params)) -> dict[str, Any]:
    from kwhub.hub.settle.review import list_runs as runs_of

    hub = hub_of(request)
    buyers = _buyers(hub)
    rows = [r for r in runs_of(hub.db, period=period, contract_id=contract, status=status)
            if who.sees(buyers.get(r["contract_id"]))]
    return page([_jsonable(r) for r in rows], params)


@router.get("/runs/{run_id}", responses=responses(401, 403, 404), summary="A run: status, checks, document, decisions")
def show_run(run_id: str, request: Request, who: Principal = Depends(scope("runs:read"))) -> dict[str, Any]:
    from kwhub.hub.store import audit_entries

    hub = hub_of(request)
    run = _visible_run(hub, who, run_id)
    st = run["statement_json"]
    decisions = [{"at": a.at.isoformat(), "actor": a.actor, "action": a.action, "detail": a.detail}
                 for a in audit_entries(hub.db, "settlement_run", run_id)] if who.party is None else []
    return _jsonable({"id": run_id, "status": run["status"], "stale": bool(run["stale"]),
                      "contract": run["contract_id"], "period": run["period"], "version": run["version_kind"],
                      "seq": run["seq"], "invoice_id": run["invoice_id"], "checks": json.loads(run.get("checks") or "[]"),
                      "document": st.get("document"), "accounting": st.get("accounting", []),
                      "decisions": decisions})


@router.post("/runs/{run_id}/approve", response_model=Done, responses=responses(401, 403, 404, 409, 422),
             summary="Approve a draft or held run: issue its document (a reason is required)")
def approve(run_id: str, body: Reason, request: Request, who: Principal = Depends(scope("runs:approve"))) -> Done:
    hub = hub_of(request)
    _visible_run(hub, who, run_id)
    from kwhub.core.timeline import zone

    today = hub.now().astimezone(zone(hub.config.hub.timezone)).date()
    result = hub.approve([run_id], actor=who.actor, reason=body.reason, issue_date=today)[run_id]
    if result.invoice is None:
        raise ApiProblem(409, result.error)
    return Done(ok=True, detail={"invoice": result.invoice.id, "number": result.invoice.number,
                                 "total": str(result.invoice.total)})


@router.post("/runs/{run_id}/reject", response_model=Done, responses=responses(401, 403, 404, 409, 422),
             summary="Reject a draft or held run (a reason is required)")
def reject(run_id: str, body: Reason, request: Request, who: Principal = Depends(scope("runs:approve"))) -> Done:
    from kwhub.core.settlement import SettlementError
    from kwhub.hub.settle.review import reject_run

    hub = hub_of(request)
    _visible_run(hub, who, run_id)
    try:
        reject_run(hub.db, run_id, actor=who.actor, reason=body.reason)
    except SettlementError as exc:
        raise ApiProblem(409, str(exc)) from None
    return Done(ok=True, detail={"run": run_id, "status": "rejected"})


class SettleRequest(BaseModel):
    """A manual settlement of one period."""

    model_config = ConfigDict(extra="forbid")

    period: str = Field(pattern=r"^(19|20|21)\d{2}-(0[1-9]|1[0-2])$")
    contracts: list[str] | None = Field(default=None, max_length=1000)
    version: Literal["initial", "final", "true_up"] = "initial"
    reason: str = Field(min_length=1, max_length=2000, pattern=r"\S")


@router.post("/settle", response_model=Done, responses=responses(401, 403, 404, 422),
             summary="Settle a period now (drafts go through the review gate)")
def settle(body: SettleRequest, request: Request, who: Principal = Depends(scope("settle:run"))) -> Done:
    from kwhub.hub.store import record_audit

    hub = hub_of(request)
    known = {c.id for c in hub.campus.contracts}
    unknown = [c for c in body.contracts or [] if c not in known]
    if unknown:
        raise ApiProblem(404, f"unknown contract(s) {', '.join(unknown)}")
    outcomes = hub.settle(body.period, contracts=body.contracts, version=body.version, now=hub.now())
    result = [o.as_dict() for o in outcomes]
    with hub.db.write_transaction() as conn:
        record_audit(conn, "settle.manual", actor=who.actor, object_type="period", object_id=body.period,
                     detail={"reason": body.reason, "version": body.version, "contracts": body.contracts,
                             "outcomes": [{"contract": o.contract_id, "status": o.status, "run": o.run_id}
                                          for o in outcomes]})
    return Done(ok=all(o.status != "error" for o in outcomes), detail={"runs": _jsonable({"r": result})["r"]})
