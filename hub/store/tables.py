"""Core tables: reference data, interval days, stale marks, VEE events and the audit log.

All tables share ``SQLModel.metadata``; the schema itself is created by the Alembic
migration ``0001_core`` (these classes mirror it). Interval values are stored one row per
(channel, UTC day, layer, version): the day's values, quality flags and rule ids as
little-endian byte arrays, so a day moves as one row, never one row per interval.

Timestamps are UTC. SQLite hands them back naive; :func:`as_utc` makes them aware again.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    LargeBinary,
    Text,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

LAYERS = ("raw", "validated")
VEE_ACTIONS = ("flagged", "estimated", "edited")


def utcnow() -> datetime:
    """The current instant, timezone-aware UTC."""
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """Return ``value`` as an aware UTC datetime (naive values are taken as UTC)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _ts(nullable: bool = False) -> Any:
    return Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=nullable))


def _json(nullable: bool = False) -> Any:
    return Field(default_factory=dict, sa_column=Column(JSON, nullable=nullable))


# ----------------------------------------------------------------------- reference data


class SiteRow(SQLModel, table=True):
    """A site, as configured (``spec`` holds the full :class:`kwhub.core.campus.Site` dump)."""

    __tablename__ = "site"

    id: str = Field(primary_key=True, max_length=200)
    name: str = Field(default="", max_length=400)
    timezone: str = Field(default="UTC", max_length=64)
    spec: dict[str, Any] = _json()
    updated_at: datetime = _ts()


class AssetRow(SQLModel, table=True):
    """An asset (generator, solar, battery, load...); ``spec`` holds the pydantic dump."""

    __tablename__ = "asset"

    id: str = Field(primary_key=True, max_length=200)
    name: str = Field(default="", max_length=400)
    site_id: str = Field(default="", max_length=200)
    kind: str = Field(default="other", max_length=32)
    spec: dict[str, Any] = _json()
    updated_at: datetime = _ts()


class ChannelRow(SQLModel, table=True):
    """A metered channel; ``interval_minutes`` and ``role`` are columns for querying."""

    __tablename__ = "channel"

    id: str = Field(primary_key=True, max_length=200)
    name: str = Field(default="", max_length=400)
    asset_id: str = Field(default="", max_length=200)
    party_id: str = Field(default="", max_length=200)
    role: str = Field(default="other", max_length=32)
    unit: str = Field(default="kWh", max_length=16)
    interval_minutes: int = 15
    spec: dict[str, Any] = _json()
    updated_at: datetime = _ts()


class PartyRow(SQLModel, table=True):
    """A party (tenant, owner, operator, IPP, utility)."""

    __tablename__ = "party"

    id: str = Field(primary_key=True, max_length=200)
    name: str = Field(default="", max_length=400)
    spec: dict[str, Any] = _json()
    updated_at: datetime = _ts()


class ContractRow(SQLModel, table=True):
    """An offtake contract between a seller and a buyer."""

    __tablename__ = "contract"

    id: str = Field(primary_key=True, max_length=200)
    name: str = Field(default="", max_length=400)
    seller: str = Field(default="", max_length=200)
    buyer: str = Field(default="", max_length=200)
    spec: dict[str, Any] = _json()
    updated_at: datetime = _ts()


# ----------------------------------------------------------------------- interval data


class IntervalDay(SQLModel, table=True):
    """One channel's values for one UTC day, one layer, one version.

    ``values`` are little-endian float64 bytes (NaN where missing), ``quality`` one byte
    per slot, ``rule_ids`` one byte per slot (0 = none, k = ``rule_names[k-1]``) or NULL.
    ``n_values`` counts the slots whose quality is not MISSING. Exactly one version per
    (channel, day, layer) has ``is_current`` true.
    """

    __tablename__ = "interval_day"
    __table_args__ = (
        # the one index: every read picks one channel and layer over a day range
        UniqueConstraint("channel_id", "layer", "day", "version", name="uq_interval_day_key"),
    )

    id: int | None = Field(default=None, primary_key=True)
    channel_id: str = Field(max_length=200)
    day: date = Field(sa_column=Column(Date, nullable=False))
    layer: str = Field(max_length=16)
    version: int = 1
    interval_minutes: int
    n_values: int
    values: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    quality: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    rule_ids: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    rule_names: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    content_hash: str = Field(max_length=64)
    source: str = Field(default="", max_length=400)
    created_at: datetime = _ts()
    is_current: bool = Field(default=True, sa_column=Column(Boolean, nullable=False))


class StaleMark(SQLModel, table=True):
    """A (channel, day, layer) got a new version: anything computed from it is stale."""

    __tablename__ = "stale_mark"
    __table_args__ = (Index("ix_stale_mark_created", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    channel_id: str = Field(max_length=200)
    day: date = Field(sa_column=Column(Date, nullable=False))
    layer: str = Field(max_length=16)
    version: int
    created_at: datetime = _ts()


class VeeEvent(SQLModel, table=True):
    """What one VEE rule did to one channel-day in one run."""

    __tablename__ = "vee_event"
    __table_args__ = (Index("ix_vee_event_channel_day", "channel_id", "day"),)

    id: int | None = Field(default=None, primary_key=True)
    run_label: str = Field(default="", max_length=200)
    channel_id: str = Field(max_length=200)
    day: date = Field(sa_column=Column(Date, nullable=False))
    rule_id: str = Field(max_length=100)
    action: str = Field(max_length=16)  # flagged | estimated | edited
    count: int = 0
    detail: dict[str, Any] = _json()
    created_at: datetime = _ts()


class AuditLog(SQLModel, table=True):
    """Who did what to which object, and when."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_object", "object_type", "object_id"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _ts()
    actor: str = Field(default="", max_length=200)
    action: str = Field(max_length=100)
    object_type: str = Field(default="", max_length=100)
    object_id: str = Field(default="", max_length=400)
    detail: dict[str, Any] = _json()


interval_day_table = IntervalDay.__table__  # type: ignore[attr-defined]
stale_mark_table = StaleMark.__table__  # type: ignore[attr-defined]
vee_event_table = VeeEvent.__table__  # type: ignore[attr-defined]
audit_log_table = AuditLog.__table__  # type: ignore[attr-defined]

CORE_TABLES = ("site", "asset", "channel", "party", "contract", "interval_day", "stale_mark",
               "vee_event", "audit_log")
