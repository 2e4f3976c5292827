"""Tables of the running service: API keys, job history, the scheduler's owner, adapter status,
watched files and webhook events.

* ``api_key``: one row per key. The secret is never stored, only its SHA-256 (keys are
  32 random bytes, so a fast hash is enough; there is nothing to guess). ``scopes`` is a
  JSON list; ``party`` limits a tenant key to its own party's rows.
* ``job_run``: one row per (job, slot). The unique constraint is what makes the
  database refuse a second run of the same slot, whichever scheduler asks.
* ``scheduler_owner``: the process that owns the scheduled work and its heartbeat
  (for ``/healthz`` and ``kwhub jobs list``; ownership itself is a lock, see
  :mod:`kwhub.hub.scheduler.ownership`).
* ``adapter_status``: per adapter instance, its last success and error and poll counters.
* ``watched_file``: files of a watched folder already ingested (or refused), by content hash.
* ``webhook_event``: events sent to subscribers through the outbox, once per
  (subscription, event type, subject).

Timestamps are UTC; SQLite hands them back naive (:func:`kwhub.hub.store.tables.as_utc`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

JOB_STATUSES = ("running", "succeeded", "failed", "interrupted")
ROLES = ("operator", "auditor", "erp", "tenant")


class ApiKeyRow(SQLModel, table=True):
    """An API key: its public id, role, party, scopes, expiry; the secret's SHA-256 only."""

    __tablename__ = "api_key"

    id: str = Field(primary_key=True, max_length=32)
    name: str = Field(default="", max_length=200)
    role: str = Field(max_length=16)
    party: str = Field(default="", max_length=200)
    scopes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    secret_sha256: str = Field(max_length=64)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    created_by: str = Field(default="", max_length=200)
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    revoked_by: str = Field(default="", max_length=200)


class JobRunRow(SQLModel, table=True):
    """One run of one scheduled job for one slot (its scheduled time)."""

    __tablename__ = "job_run"
    __table_args__ = (
        UniqueConstraint("job_id", "slot", name="uq_job_run_slot"),
        Index("ix_job_run_started", "started_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(max_length=200)
    slot: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    owner: str = Field(max_length=200)
    status: str = Field(max_length=16)
    started_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    finished_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class SchedulerOwnerRow(SQLModel, table=True):
    """Who owns the scheduled work now, and when it last said so."""

    __tablename__ = "scheduler_owner"

    name: str = Field(primary_key=True, max_length=64)
    owner: str = Field(max_length=200)
    acquired_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    heartbeat_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class AdapterStatusRow(SQLModel, table=True):
    """What an adapter instance last did under the scheduler."""

    __tablename__ = "adapter_status"

    adapter_id: str = Field(primary_key=True, max_length=200)
    last_success_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    last_error_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    scheduled: int = 0
    ok: int = 0
    failed: int = 0
    missed: int = 0
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class WatchedFileRow(SQLModel, table=True):
    """A file of a watched folder, by content: ingested, or refused with the reason."""

    __tablename__ = "watched_file"

    folder: str = Field(primary_key=True, max_length=400)
    name: str = Field(primary_key=True, max_length=400)
    sha256: str = Field(primary_key=True, max_length=64)
    adapter_id: str = Field(max_length=200)
    status: str = Field(max_length=16)  # ingested | refused
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class WebhookEventRow(SQLModel, table=True):
    """An event queued for one subscription (its outbox row carries the signed body)."""

    __tablename__ = "webhook_event"
    __table_args__ = (UniqueConstraint("subscription", "event_type", "subject_id", name="uq_webhook_event"),)

    id: str = Field(primary_key=True, max_length=200)
    subscription: str = Field(max_length=200)
    event_type: str = Field(max_length=64)
    subject_id: str = Field(max_length=200)
    party: str = Field(default="", max_length=200)
    body_sha256: str = Field(max_length=64)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


api_key_table = ApiKeyRow.__table__  # type: ignore[attr-defined]
job_run_table = JobRunRow.__table__  # type: ignore[attr-defined]
scheduler_owner_table = SchedulerOwnerRow.__table__  # type: ignore[attr-defined]
adapter_status_table = AdapterStatusRow.__table__  # type: ignore[attr-defined]
watched_file_table = WatchedFileRow.__table__  # type: ignore[attr-defined]
webhook_event_table = WebhookEventRow.__table__  # type: ignore[attr-defined]
