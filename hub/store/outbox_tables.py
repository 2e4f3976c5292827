"""The outbox table: one row per (rendered document, transport instance) to deliver.

Rows are written in the same transaction as the invoice they carry (see
:func:`kwhub.hub.deliver.outbox.enqueue_invoice`) and moved through ``pending -> sending -> delivered``
(or ``dead``) by the relay. ``(transport_instance, idempotency_key)`` is unique, so the
same document version is never queued twice for one receiver.

A row in ``sending`` is claimed by a relay until ``next_attempt_at`` (its lease);
``send_started_at`` is set, and committed, right before the transport is called, so after
a crash a claimed row whose send never started is known not to have been sent.
``document_sha256`` is the hash of the issued document the body was rendered from.

Timestamps are UTC. SQLite hands them back naive; :func:`as_utc` makes them aware again.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime, Index, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from kwhub.hub.store.tables import as_utc, utcnow

__all__ = ["OutboxRow", "as_utc", "outbox_table", "utcnow"]

OUTBOX_STATUSES = ("pending", "sending", "delivered", "dead")


class OutboxRow(SQLModel, table=True):
    """A document waiting for, or done with, delivery through one transport instance."""

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("transport_instance", "idempotency_key", name="uq_outbox_transport_key"),
        Index("ix_outbox_due", "status", "next_attempt_at"),
        Index("ix_outbox_invoice", "invoice_id", "invoice_version"),
    )

    id: int | None = Field(default=None, primary_key=True)
    invoice_id: str = Field(max_length=200)
    invoice_version: int = 1
    format_id: str = Field(max_length=64)
    transport_instance: str = Field(max_length=200)
    idempotency_key: str = Field(max_length=400)
    filename: str = Field(max_length=400)
    media_type: str = Field(max_length=200)
    body: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    body_sha256: str = Field(max_length=64)
    status: str = Field(default="pending", max_length=16)
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    last_attempt_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    last_status: int | None = None
    response: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    possible_duplicate: bool = False
    event_type: str | None = Field(default=None, max_length=64)  # a webhook event, not a document (migration 0011)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    delivered_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    send_started_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    document_sha256: str | None = Field(default=None, max_length=64)


outbox_table = OutboxRow.__table__  # type: ignore[attr-defined]
