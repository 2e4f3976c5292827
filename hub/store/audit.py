"""The audit log: who did what to which object, written inside the caller's transaction."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select
from sqlmodel import Session

from kwhub.hub.store.tables import AuditLog, as_utc, audit_log_table, utcnow

if TYPE_CHECKING:
    from kwhub.hub.store.db import Database


def record_audit(conn: Connection | Session, action: str, *, actor: str = "", object_type: str = "",
                 object_id: str = "", detail: dict[str, Any] | None = None) -> None:
    """Append one audit entry through ``conn`` (a Connection or a Session; the caller commits)."""
    row = {"at": utcnow(), "actor": actor, "action": action, "object_type": object_type,
           "object_id": str(object_id), "detail": detail or {}}
    conn.execute(audit_log_table.insert().values(**row))


def record_audits(conn: Connection | Session, entries: list[dict[str, Any]]) -> None:
    """Append several audit entries in one statement (``action``, ``actor``, ``object_type``,
    ``object_id``, ``detail`` each)."""
    if not entries:
        return
    now = utcnow()
    conn.execute(audit_log_table.insert(), [
        {"at": now, "actor": e.get("actor", ""), "action": e["action"], "object_type": e.get("object_type", ""),
         "object_id": str(e.get("object_id", "")), "detail": e.get("detail") or {}} for e in entries])


def audit_entries(db: Database, object_type: str | None = None, object_id: str | None = None) -> list[AuditLog]:
    """Audit entries, oldest first, optionally for one object type / object."""
    stmt = select(AuditLog).order_by(audit_log_table.c.id)
    if object_type is not None:
        stmt = stmt.where(audit_log_table.c.object_type == object_type)
    if object_id is not None:
        stmt = stmt.where(audit_log_table.c.object_id == object_id)
    with db.session() as s:
        rows = list(s.scalars(stmt))
    for r in rows:
        r.at = as_utc(r.at) or r.at
    return rows
