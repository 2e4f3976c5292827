"""Decisions on settlement runs: approve (issue the draft document) or reject, with who and why.

A run is settled as ``draft`` (every check passed) or ``held`` (a check failed; see
:mod:`kwhub.core.review`). :func:`approve_runs` issues the draft documents of runs: it takes the
seller's next invoice number, stores the invoice, queues it for delivery (``on_issue``)
and records the decision in the audit log, all in one transaction per run, so a run is
either issued with its number and deliveries or left as it was. :func:`reject_run`
closes a run without a document. Every approval and rejection needs a reason (audited). A run whose
input data changed since it was computed is never approved: settle it again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import bindparam, func, or_, select, update

from kwhub.core.campus import Campus
from kwhub.core.invoice import DocumentReference, Invoice
from kwhub.core.settlement import SettlementError, issue_draft
from kwhub.core.versions import PENDING, SETTLED, format_number, kind_order
from kwhub.hub.settle import issue_write
from kwhub.hub.settle.run_list import RUN_COLUMNS, summarise_runs
from kwhub.hub.settle.runs_read import existing_runs, get_run, run_changed
from kwhub.hub.store import Database, record_audit
from kwhub.hub.store.audit import record_audits
from kwhub.hub.store.settlement_tables import invoice_table, settlement_run_table

# a batch's runs claimed with one executemany of one statement (compiled once; a CASE over the
# batch was compiled anew for every batch, its size growing with the runs)
_CLAIM = (update(settlement_run_table)
          .where(settlement_run_table.c.id == bindparam("claim_id"),
                 or_(*(settlement_run_table.c.status == s for s in PENDING)))  # an IN list cannot go in an executemany
          .values(status="issued", invoice_id=bindparam("claim_invoice")))


class ReviewError(SettlementError):
    """A decision that cannot be taken (unknown run, wrong status, missing reason)."""


@dataclass
class Approval:
    """The result of approving one run: the issued invoice, or why it was not issued."""

    run_id: str
    invoice: Invoice | None = None
    error: str = ""


def _original(conn: Any, contract_id: str, period: str) -> DocumentReference | None:
    t = invoice_table
    row = conn.execute(select(t.c.id, t.c.number, t.c.issue_date)
                       .where(t.c.contract_id == contract_id, t.c.period == period, t.c.kind == "invoice")
                       .order_by(t.c.number_seq).limit(1)).first()
    return None if row is None else DocumentReference(id=row[0], number=row[1], issue_date=row[2])


def _documents(conn: Any, contract_id: str, period: str) -> int:
    t = invoice_table
    return int(conn.execute(select(func.count()).select_from(t)
                            .where(t.c.contract_id == contract_id, t.c.period == period)).scalar_one())


def _check_decidable(db: Database, run: dict[str, Any], check_inputs: bool) -> None:
    """Refuse a decision on a run that is not pending, is no longer next, or read changed data."""
    rid = run["id"]
    if run["status"] not in PENDING:
        raise ReviewError(f"run {rid} is {run['status'].replace('_', ' ')}; only draft and held runs can be decided")
    st = run["statement_json"]
    runs = existing_runs(db, run["contract_id"], run["period"])
    mine = (kind_order(run["version_kind"]), run["seq"])
    settled = [r for r in runs if r["status"] in SETTLED and (kind_order(r["version_kind"]), r["seq"]) < mine]
    base = settled[-1]["id"] if settled else None
    if base != st["run"].get("previous_run"):
        raise ReviewError(f"run {rid} was computed against {st['run'].get('previous_run') or 'no earlier run'}, "
                          f"but the latest settled run is now {base or 'none'}; settle the period again")
    later = [r for r in runs if r["status"] in SETTLED and (kind_order(r["version_kind"]), r["seq"]) > mine]
    if later:
        raise ReviewError(f"run {rid}: a later version ({later[-1]['id']}) is already settled")
    if check_inputs and run_changed(db, rid, run["layer"], st):
        raise ReviewError(f"run {rid}: its input data changed since it was computed; settle the period again "
                          "(a new run supersedes this one) and review that")


@dataclass(frozen=True)
class DraftToIssue:
    """A pending run and its draft document, as :func:`issue_drafts` needs them."""

    run_id: str
    contract_id: str
    period: str
    version_kind: str
    draft: Invoice
    was: str = "draft"
    held: tuple[str, ...] = ()


def _issue(conn: Any, db: Database, item: DraftToIssue, *, actor: str, reason: str, issue_date: date | None,
           on_issue: Callable[[Any, Invoice], None] | None, audit: list[dict[str, Any]] | None = None) -> Invoice:
    """Number, store and queue one draft inside the caller's transaction; mark the run issued.

    The run is claimed first (``UPDATE ... WHERE status IN pending``), so a run decided by
    someone else meanwhile is refused before a number is taken. The decision goes to the
    audit log, or into ``audit`` for the caller to write with its batch.
    """
    t = settlement_run_table
    draft = item.draft
    invoice_id = draft.id
    claimed = conn.execute(update(t).where(t.c.id == item.run_id, t.c.status.in_(PENDING))
                           .values(status="issued", invoice_id=invoice_id)).rowcount
    if not claimed:
        status = conn.execute(select(t.c.status).where(t.c.id == item.run_id)).scalar()
        raise ReviewError(f"run {item.run_id} is {status or 'gone'} now; nothing done")
    first = draft.kind == "invoice"
    original = None if first else _original(conn, item.contract_id, item.period)
    n = issue_write.next_invoice_number(conn, db.dialect, draft.seller.id)
    inv = issue_draft(draft, format_number(draft.seller.id, n), issue_date or date.today(), item.version_kind,
                      original, 1 if first else _documents(conn, item.contract_id, item.period) + 1)
    issue_write.insert_invoice(conn, inv, n, item.period, original.id if original else None)
    if on_issue is not None:
        on_issue(conn, inv)
    entry = {"action": "run.approve", "actor": actor, "object_type": "settlement_run", "object_id": item.run_id,
             "detail": {"reason": reason, "was": item.was, "held": list(item.held), "invoice": inv.number,
                        "total": str(inv.total)}}
    if audit is None:
        record_audit(conn, entry.pop("action"), **entry)
    else:
        audit.append(entry)
    return inv


def _issue_all(conn: Any, db: Database, items: Sequence[DraftToIssue], *, actor: str, reason: str,
               issue_date: date | None, on_issue: Callable[[Any, Invoice], None] | None,
               audit: list[dict[str, Any]]) -> dict[str, Approval]:
    """:func:`_issue` of first documents (kind ``invoice``) all at once, in order, with a few
    statements instead of a few per run: the runs claimed together, each seller's numbers taken
    in one step, the invoices and their lines inserted with one executemany each. Raises
    :class:`ReviewError` (nothing done) when any run is no longer pending."""
    claimed = conn.execute(_CLAIM, [{"claim_id": it.run_id, "claim_invoice": it.draft.id} for it in items]).rowcount
    if claimed != len({it.run_id for it in items}):
        raise ReviewError("a run was decided by someone else meanwhile")
    count: dict[str, int] = {}
    for it in items:
        count[it.draft.seller.id] = count.get(it.draft.seller.id, 0) + 1
    taken = {seller: issue_write.next_invoice_numbers(conn, db.dialect, seller, k) for seller, k in count.items()}
    day = issue_date or date.today()
    issued: list[tuple[Invoice, int, str, str | None]] = []
    for it in items:
        seller = it.draft.seller.id
        n = taken[seller]
        taken[seller] = n + 1
        issued.append((issue_draft(it.draft, format_number(seller, n), day, it.version_kind, None, 1), n, it.period,
                       None))
    issue_write.insert_invoices(conn, issued)
    out: dict[str, Approval] = {}
    queue_many = getattr(on_issue, "many", None)  # an OutboxHook queues the batch in one go
    if queue_many is not None:
        queue_many(conn, [inv for inv, _, _, _ in issued])
    for it, (inv, _, _, _) in zip(items, issued, strict=True):
        if on_issue is not None and queue_many is None:
            on_issue(conn, inv)
        audit.append({"action": "run.approve", "actor": actor, "object_type": "settlement_run",
                      "object_id": it.run_id, "detail": {"reason": reason, "was": it.was, "held": list(it.held),
                                                         "invoice": inv.number, "total": str(inv.total)}})
        out[it.run_id] = Approval(it.run_id, invoice=inv)
    return out


def issue_drafts(db: Database, items: Sequence[DraftToIssue], *, actor: str, reason: str,
                 issue_date: date | None = None,
                 on_issue: Callable[[Any, Invoice], None] | None = None) -> dict[str, Approval]:
    """Issue drafts that were just computed (the policy's approval). All are issued in one
    transaction; when one fails (a rendering error), that transaction is rolled back and they
    are issued again in a second one, a savepoint per run, so the failing run stays pending and
    the others are issued (``on_issue`` writes on the connection only, so it may run twice).

    The first attempt opens no savepoint: on SQLite, rows inserted inside a savepoint after the
    claim rewrote the runs cost more with every run already claimed (the batch went
    quadratic); rolling back the whole transaction undoes the same."""
    if not items:
        return {}
    try:
        audit: list[dict[str, Any]] = []
        with db.write_transaction() as conn:
            out = _issue_together(conn, db, items, actor=actor, reason=reason, issue_date=issue_date,
                                  on_issue=on_issue, audit=audit)
            if audit:
                record_audits(conn, audit)
        return out
    except (SettlementError, ValueError):
        pass
    return _issue_each(db, items, actor=actor, reason=reason, issue_date=issue_date, on_issue=on_issue)


def _issue_together(conn: Any, db: Database, items: Sequence[DraftToIssue], *, actor: str, reason: str,
                    issue_date: date | None, on_issue: Callable[[Any, Invoice], None] | None,
                    audit: list[dict[str, Any]]) -> dict[str, Approval]:
    """Every draft of ``items`` issued on ``conn``: first documents all at once (:func:`_issue_all`),
    corrections one by one; raises what the first failing one raised."""
    if all(item.draft.kind == "invoice" for item in items):
        return _issue_all(conn, db, items, actor=actor, reason=reason, issue_date=issue_date, on_issue=on_issue,
                          audit=audit)
    return {item.run_id: Approval(item.run_id, invoice=_issue(conn, db, item, actor=actor, reason=reason,
                                                              issue_date=issue_date, on_issue=on_issue, audit=audit))
            for item in items}


def _issue_each(db: Database, items: Sequence[DraftToIssue], *, actor: str, reason: str, issue_date: date | None,
                on_issue: Callable[[Any, Invoice], None] | None) -> dict[str, Approval]:
    """:func:`issue_drafts` after the batch failed: one transaction, a savepoint per run, so only the
    failing runs stay pending (their error in the :class:`Approval`)."""
    out: dict[str, Approval] = {}
    audit: list[dict[str, Any]] = []
    with db.write_transaction() as conn:
        for item in items:
            try:
                with conn.begin_nested():
                    out[item.run_id] = Approval(item.run_id, invoice=_issue(
                        conn, db, item, actor=actor, reason=reason, issue_date=issue_date, on_issue=on_issue,
                        audit=audit))
            except (SettlementError, ValueError) as exc:
                out[item.run_id] = Approval(item.run_id, error=str(exc))
                audit = [a for a in audit if a["object_id"] != item.run_id]
        if audit:
            record_audits(conn, audit)
    return out


def approve_runs(
    db: Database,
    campus: Campus,
    run_ids: Sequence[str],
    *,
    actor: str,
    reason: str = "",
    issue_date: date | None = None,
    on_issue: Callable[[Any, Invoice], None] | None = None,
    check_inputs: bool = True,
) -> dict[str, Approval]:
    """Issue the draft documents of ``run_ids`` (see module docs); ``{run id: Approval}``.

    Each run is checked first: still pending, still next in its period, and (unless
    ``check_inputs=False``) computed from the data the store holds now. One run failing
    leaves that run pending and the others issued.
    """
    out: dict[str, Approval] = {}
    for rid in run_ids:
        try:
            run = get_run(db, rid)
            _check_decidable(db, run, check_inputs)
            if run["status"] == "held" and not reason.strip():
                raise ReviewError(f"run {rid} is held ({_held_text(run)}); approving it needs --reason")
            if not reason.strip():
                raise ReviewError(f"approving run {rid} needs --reason (it is recorded in the audit log)")
            if not run.get("draft"):
                raise ReviewError(f"run {rid} has no draft document to issue")
            item = DraftToIssue(rid, run["contract_id"], run["period"], run["version_kind"],
                                Invoice.model_validate_json(run["draft"]), run["status"], tuple(_held(run)))
            with db.write_transaction() as conn:
                out[rid] = Approval(rid, invoice=_issue(conn, db, item, actor=actor, reason=reason,
                                                        issue_date=issue_date, on_issue=on_issue))
        except (SettlementError, ValueError) as exc:
            out[rid] = Approval(rid, error=str(exc))
    return out


def reject_run(db: Database, run_id: str, *, actor: str, reason: str) -> None:
    """Close a pending run without a document; the reason is required."""
    if not reason.strip():
        raise ReviewError("rejecting a run needs --reason")
    run = get_run(db, run_id)
    if run["status"] not in PENDING:
        raise ReviewError(f"run {run_id} is {run['status'].replace('_', ' ')}; only draft and held runs can be rejected")
    with db.write_transaction() as conn:
        t = settlement_run_table
        done = conn.execute(update(t).where(t.c.id == run_id, t.c.status.in_(PENDING)).values(status="rejected"))
        if not done.rowcount:
            raise ReviewError(f"run {run_id} was decided meanwhile; nothing done")
        record_audit(conn, "run.reject", actor=actor, object_type="settlement_run", object_id=run_id,
                     detail={"reason": reason, "was": run["status"], "held": _held(run)})


def _held(run: dict[str, Any]) -> list[str]:
    return [f"{c['check']}: {c['message']}" for c in json.loads(run.get("checks") or "[]") if not c["passed"]]


def _held_text(run: dict[str, Any]) -> str:
    return "; ".join(_held(run)) or "no failed check recorded"


def list_runs(db: Database, *, period: str | None = None, contract_id: str | None = None,
              status: str | None = None) -> list[dict[str, Any]]:
    """Runs with their status, document total and failed checks (statements not parsed), as
    :func:`kwhub.hub.settle.run_list.summarise_runs` shapes them."""
    t = settlement_run_table
    q = select(*(t.c[name] for name in RUN_COLUMNS))
    if period:
        q = q.where(t.c.period == period)
    if contract_id:
        q = q.where(t.c.contract_id == contract_id)
    if status:
        q = q.where(t.c.status == status)
    with db.engine.connect() as conn:
        return summarise_runs(r._mapping for r in conn.execute(q))
