"""Webhook events out: invoice issued, run held, delivery dead-lettered, sent through the outbox.

A subscription (``[[service.webhooks]]``) names a transport instance (an ``erp.webhook``),
the event types it wants and optionally a party (a tenant's system gets the events of
its own documents only). :func:`emit_events` looks at the store for subjects of the last
:data:`HORIZON` that a subscription has no event for yet, and writes, in one transaction,
the ``webhook_event`` row (unique per subscription, type and subject, so an event is
queued once) and an ``outbox`` row carrying the JSON body. The relay then sends it like a
document: HMAC-signed by the transport, with the event id as idempotency key, retried
with backoff, dead-lettered when refused. Events about event deliveries are not sent.

Body::

    {"id": "evt_...", "type": "invoice.issued", "created_at": "...", "subject": "<id>",
     "party": "tenant_a", "data": {...}}
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select

from kwhub.hub.store.outbox_tables import outbox_table
from kwhub.hub.store.service_tables import webhook_event_table
from kwhub.hub.store.settlement_tables import invoice_table, settlement_run_table
from kwhub.hub.store.tables import as_utc, utcnow

HORIZON = timedelta(days=7)
EVENT_FORMAT = "event"


def event_id(subscription: str, event_type: str, subject: str) -> str:
    """The event's id (and idempotency key): stable for (subscription, type, subject)."""
    digest = hashlib.sha256(f"{subscription}\x1f{event_type}\x1f{subject}".encode()).hexdigest()
    return f"evt_{digest[:32]}"


def _subjects(conn: Any, event_type: str, since: datetime, buyers: dict[str, str]) -> list[dict[str, Any]]:
    """Candidate subjects of one event type since ``since``: ``{id, party, data}``."""
    out: list[dict[str, Any]] = []
    if event_type == "invoice.issued":
        t = invoice_table
        for r in conn.execute(select(t.c.id, t.c.number, t.c.kind, t.c.seller, t.c.buyer, t.c.contract_id, t.c.period,
                                     t.c.total, t.c.currency, t.c.issued_at).where(t.c.issued_at >= since)):
            out.append({"id": r.id, "party": r.buyer, "data": {
                "invoice": r.id, "number": r.number, "kind": r.kind, "seller": r.seller, "buyer": r.buyer,
                "contract": r.contract_id, "period": r.period, "total": r.total, "currency": r.currency,
                "issued_at": as_utc(r.issued_at).isoformat()}})  # type: ignore[union-attr]
    elif event_type == "run.held":
        t = settlement_run_table
        for r in conn.execute(select(t.c.id, t.c.contract_id, t.c.period, t.c.version_kind, t.c.checks)
                              .where(t.c.status == "held", t.c.created_at >= since)):
            checks = json.loads(r.checks or "[]")
            out.append({"id": r.id, "party": buyers.get(r.contract_id, ""), "data": {
                "run": r.id, "contract": r.contract_id, "period": r.period, "version": r.version_kind,
                "held_reasons": [f"{c['check']}: {c['message']}" for c in checks if not c.get("passed")]}})
    elif event_type == "delivery.dead":
        o, i = outbox_table, invoice_table
        rows = conn.execute(select(o.c.id, o.c.invoice_id, o.c.format_id, o.c.transport_instance, o.c.last_error,
                                   i.c.buyer, i.c.number)
                            .join(i, i.c.id == o.c.invoice_id)
                            .where(o.c.status == "dead", o.c.event_type.is_(None), o.c.last_attempt_at >= since))
        for r in rows:
            out.append({"id": str(r.id), "party": r.buyer, "data": {
                "outbox_row": r.id, "invoice": r.invoice_id, "number": r.number, "format": r.format_id,
                "transport": r.transport_instance, "error": r.last_error}})
    return out


def emit_events(hub: Any, now: datetime | None = None) -> int:
    """Queue the events the subscriptions have not had yet; return how many were queued."""
    subs = hub.config.file.service.webhooks
    if not subs:
        return 0
    db = hub.db
    since = utcnow() - HORIZON
    buyers = {c.id: c.buyer for c in hub.campus.contracts}
    stamp = now or utcnow()
    w, o = webhook_event_table, outbox_table
    queued = 0
    with db.write_transaction() as conn:
        seen = {(s, t, x) for s, t, x in conn.execute(
            select(w.c.subscription, w.c.event_type, w.c.subject_id).where(w.c.created_at >= since - HORIZON))}
        cache: dict[str, list[dict[str, Any]]] = {}
        for sub in subs:
            for etype in sub.events:
                if etype not in cache:
                    cache[etype] = _subjects(conn, etype, since, buyers)
                for subject in cache[etype]:
                    if sub.party and subject["party"] != sub.party:
                        continue
                    if (sub.id, etype, subject["id"]) in seen:
                        continue
                    eid = event_id(sub.id, etype, subject["id"])
                    body = json.dumps({"id": eid, "type": etype, "created_at": stamp.isoformat(),
                                       "subject": subject["id"], "party": subject["party"], "data": subject["data"]},
                                      sort_keys=True).encode()
                    digest = hashlib.sha256(body).hexdigest()
                    conn.execute(insert(w).values(id=eid, subscription=sub.id, event_type=etype,
                                                  subject_id=subject["id"], party=subject["party"],
                                                  body_sha256=digest, created_at=utcnow()))
                    conn.execute(insert(o).values(
                        invoice_id=subject["id"], invoice_version=0, format_id=EVENT_FORMAT,
                        transport_instance=sub.transport, idempotency_key=eid, filename=f"{eid}.json",
                        media_type="application/json", body=body, body_sha256=digest, status="pending", attempts=0,
                        next_attempt_at=utcnow(), possible_duplicate=False, created_at=utcnow(), event_type=etype))
                    seen.add((sub.id, etype, subject["id"]))
                    queued += 1
    return queued
