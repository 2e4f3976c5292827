"""Carbon data the runs froze, and the granular certificate ledger.

* ``carbon_data``: content-addressed arrays (``data_id`` = SHA-256 of the content): the
  per-source activity of a settled period (output, fuel, battery charging mix; see
  :mod:`kwhub.core.carbon_activity`) and the time-varying factors it used. Runs name the ids in
  their statement's ``carbon`` section; equal content is stored once.
* ``run_carbon``: per allocation-based run, the ids of the activity and factors it froze,
  its buyer, who sold the buyer each source, and the settings its intensities used, so
  reports read a period's runs without parsing their statements.
* ``gc_bundle``: granular certificates in bundles, an id range of 1 Wh certificates of one
  device and production hour (at most one hour), with their attributes, holder
  (``account``), status and, once cancelled, the beneficiary and consumption hour. Acting
  on part of a bundle splits it: the parent becomes ``Bundle Split`` and two children
  carry the two id ranges. ``gc_action`` is the append-only log of every action.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, DateTime, Index, LargeBinary, Text
from sqlmodel import Field, SQLModel


class CarbonDataRow(SQLModel, table=True):
    """One packed array of a content-addressed carbon record."""

    __tablename__ = "carbon_data"

    data_id: str = Field(primary_key=True, max_length=64)
    key: str = Field(primary_key=True, max_length=300)
    blob: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class RunCarbonRow(SQLModel, table=True):
    """The carbon basis one settlement run used (see the module docs)."""

    __tablename__ = "run_carbon"
    __table_args__ = (Index("ix_run_carbon_period", "period"),)

    run_id: str = Field(primary_key=True, max_length=200)
    period: str = Field(max_length=40)
    tenant: str = Field(max_length=200)
    activity_id: str = Field(max_length=64)
    factors_id: str = Field(max_length=64)
    sellers: str = Field(sa_column=Column(Text, nullable=False))  # JSON {source: seller party}
    settings: str = Field(sa_column=Column(Text, nullable=False))  # JSON of the frozen settings


class GcBundleRow(SQLModel, table=True):
    """A bundle of granular certificates (see the module docs)."""

    __tablename__ = "gc_bundle"
    __table_args__ = (
        Index("ix_gc_bundle_device_range", "device_id", "range_start"),
        Index("ix_gc_bundle_account_status", "account", "status"),
        Index("ix_gc_bundle_production", "production_start"),
    )

    bundle_id: str = Field(primary_key=True, max_length=120)
    issuance_id: str = Field(max_length=200)
    parent_id: str | None = Field(default=None, max_length=120)
    device_id: str = Field(max_length=200)
    range_start: int = Field(sa_column=Column(BigInteger, nullable=False))
    range_end: int = Field(sa_column=Column(BigInteger, nullable=False))
    quantity_wh: int = Field(sa_column=Column(BigInteger, nullable=False))
    production_start: int = Field(sa_column=Column(BigInteger, nullable=False))
    production_end: int = Field(sa_column=Column(BigInteger, nullable=False))
    issued_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    attributes: str = Field(sa_column=Column(Text, nullable=False))  # JSON: source, technology, device, flags
    account: str = Field(max_length=200)
    status: str = Field(max_length=20)
    beneficiary: str | None = Field(default=None, max_length=200)
    consumption_hour: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    hash: str = Field(max_length=64)


class GcActionRow(SQLModel, table=True):
    """One action on the ledger (issue, transfer, cancel, claim, withdraw, split, import)."""

    __tablename__ = "gc_action"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    action: str = Field(max_length=20)
    bundle_id: str = Field(max_length=120)
    quantity_wh: int = Field(sa_column=Column(BigInteger, nullable=False))
    from_account: str = Field(default="", max_length=200)
    to_account: str = Field(default="", max_length=200)
    actor: str = Field(default="", max_length=200)
    reason: str = Field(default="", sa_column=Column(Text, nullable=False))


carbon_data_table = CarbonDataRow.__table__  # type: ignore[attr-defined]
run_carbon_table = RunCarbonRow.__table__  # type: ignore[attr-defined]
gc_bundle_table = GcBundleRow.__table__  # type: ignore[attr-defined]
gc_action_table = GcActionRow.__table__  # type: ignore[attr-defined]
