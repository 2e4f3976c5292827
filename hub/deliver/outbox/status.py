"""What the outbox holds: due rows, counts per status, where a row in flight stands, the rows
themselves (without bodies), and reviving a dead row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update

from kwhub.hub.deliver.outbox.connections import _engine, _write
from kwhub.hub.deliver.outbox.enqueue import OutboxError
from kwhub.hub.store.outbox_tables import OUTBOX_STATUSES, as_utc, outbox_table, utcnow

# --------------------------------------------------------------------------- administration


def count_due(db: Any, transports: Iterable[str] | None = None, now: datetime | None = None) -> int:
    """How many rows are due now (pending or with an expired lease)."""
    t = outbox_table
    q = (select(func.count()).select_from(t).where(t.c.status.in_(("pending", "sending")))
         .where(t.c.next_attempt_at <= (as_utc(now) or utcnow())))
    if transports is not None:
        q = q.where(t.c.transport_instance.in_(list(transports)))
    with _engine(db).connect() as conn:
        return int(conn.execute(q).scalar_one())


def status_counts(db: Any) -> dict[str, int]:
    """Number of rows per status (every status present, zero when none)."""
    t = outbox_table
    with _engine(db).connect() as conn:
        rows = conn.execute(select(t.c.status, func.count()).group_by(t.c.status)).all()
    out = dict.fromkeys(OUTBOX_STATUSES, 0)
    out.update({s: int(n) for s, n in rows})
    return out


def flight_state(row: Mapping[str, Any], now: datetime | None = None) -> str:
    """Where a row in ``sending`` stands (``""`` for other statuses).

    ``sending``: a relay is sending it now; ``claimed``: a relay claimed it and has not
    started the send yet; ``stalled, outcome unknown``: its lease ran out after the send
    started (it will be re-sent and flagged a possible duplicate); ``stalled, not sent``:
    its lease ran out before the send started (it will be sent).
    """
    if row["status"] != "sending":
        return ""
    expired = as_utc(row["next_attempt_at"]) <= (as_utc(now) or utcnow())  # type: ignore[operator]
    started = row.get("send_started_at") is not None
    if expired:
        return "stalled, outcome unknown" if started else "stalled, not sent"
    return "sending" if started else "claimed"


def list_outbox(db: Any, status: str | None = None, limit: int | None = None,
                invoice_id: str | None = None) -> list[dict[str, Any]]:
    """Outbox rows without their bodies, newest first, as plain dicts (``flight``: :func:`flight_state`)."""
    if status is not None and status not in OUTBOX_STATUSES:
        raise OutboxError(f"unknown outbox status {status!r} (one of {', '.join(OUTBOX_STATUSES)})")
    t = outbox_table
    cols = [c for c in t.c if c.name != "body"]
    q = select(*cols).order_by(t.c.id.desc())
    if status is not None:
        q = q.where(t.c.status == status)
    if invoice_id is not None:
        q = q.where(t.c.invoice_id == invoice_id)
    if limit is not None:
        q = q.limit(limit)
    with _engine(db).connect() as conn:
        rows = conn.execute(q).mappings().all()
    out = []
    now = utcnow()
    for r in rows:
        d = dict(r)
        for k in ("next_attempt_at", "last_attempt_at", "created_at", "delivered_at", "send_started_at"):
            d[k] = as_utc(d[k])
        d["possible_duplicate"] = bool(d["possible_duplicate"])
        d["flight"] = flight_state(d, now)
        out.append(d)
    return out


def retry_dead(db: Any, row_id: int, now: datetime | None = None) -> None:
    """Move a dead row back to pending (attempts reset) so the relay sends it again."""
    t = outbox_table
    with _write(db) as conn:
        row = conn.execute(select(t.c.status).where(t.c.id == row_id)).first()
        if row is None:
            raise OutboxError(f"no outbox row with id {row_id}")
        if row.status != "dead":
            raise OutboxError(f"outbox row {row_id} is {row.status}, only dead rows can be retried")
        conn.execute(update(t).where(t.c.id == row_id).values(
            status="pending", attempts=0, next_attempt_at=as_utc(now) or utcnow(), last_error=None,
            send_started_at=None,
        ))
