"""Market tables: submissions, awards, prices, statements and shadow runs.

Awards and prices are stored like interval data, one row per (resource or node, day)
holding the day's values as little-endian int64 arrays (awards in Wh, prices in
``10**-5`` $/MWh, :mod:`kwhub.core.markets.fixed`), so a year of prices for 50 nodes moves as
rows per day, not per interval. Prices keep every version: a correction is a new
version, never an overwrite. Statements keep every version as the ISO sent it, one row
per line (code, resource, interval) with its Decimal amount as text. A shadow run
records the inputs' digest and the price versions it used.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Index,
    LargeBinary,
    Text,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel


class MarketSubmissionRow(SQLModel, table=True):
    """One submission of bids to an ISO and what it answered."""

    __tablename__ = "market_submission"

    id: str = Field(primary_key=True, max_length=64)
    iso: str = Field(max_length=16)
    market: str = Field(max_length=8)
    trading_date: date = Field(sa_column=Column(Date, nullable=False))
    status: str = Field(max_length=16)
    document_sha256: str = Field(max_length=64)
    iso_ref: str = Field(default="", sa_column=Column(Text, nullable=False))
    bids: str = Field(sa_column=Column(Text, nullable=False))  # JSON: the Bid models
    outcomes: str = Field(sa_column=Column(Text, nullable=False))  # JSON: per bid status, mRID, errors
    messages: str = Field(default="", sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class MarketAwardDayRow(SQLModel, table=True):
    """A resource's awards of one trading day in one market (Wh per interval)."""

    __tablename__ = "market_award_day"

    iso: str = Field(primary_key=True, max_length=16)
    market: str = Field(primary_key=True, max_length=8)
    resource: str = Field(primary_key=True, max_length=200)
    trading_date: date = Field(sa_column=Column(Date, primary_key=True))
    start_epoch: int = Field(sa_column=Column(BigInteger, nullable=False))
    interval_minutes: int
    n_values: int
    wh: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    bid_id: str = Field(default="", max_length=200)
    iso_ref: str = Field(default="", sa_column=Column(Text, nullable=False))
    received_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class MarketPriceDayRow(SQLModel, table=True):
    """One version of a node's prices of one operating day in one market."""

    __tablename__ = "market_price_day"

    iso: str = Field(primary_key=True, max_length=16)
    node: str = Field(primary_key=True, max_length=200)
    market: str = Field(primary_key=True, max_length=8)
    day: date = Field(sa_column=Column(Date, primary_key=True))
    version: int = Field(primary_key=True)
    start_epoch: int = Field(sa_column=Column(BigInteger, nullable=False))
    interval_minutes: int
    n_values: int
    price_units: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    content_sha256: str = Field(max_length=64)
    source: str = Field(default="", sa_column=Column(Text, nullable=False))
    received_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class MarketStatementRow(SQLModel, table=True):
    """One version of an ISO statement as received."""

    __tablename__ = "market_statement"
    __table_args__ = (UniqueConstraint("iso", "statement_id", name="uq_market_statement_id"),)

    id: int | None = Field(default=None, primary_key=True)
    iso: str = Field(max_length=16)
    operating_day: date = Field(sa_column=Column(Date, nullable=False))
    market: str = Field(max_length=8)
    kind: str = Field(max_length=16)
    statement_id: str = Field(max_length=200)
    total: str = Field(max_length=40)
    document_sha256: str = Field(max_length=64)
    source: str = Field(default="", sa_column=Column(Text, nullable=False))
    received_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class MarketStatementLineRow(SQLModel, table=True):
    """One code of one interval of one resource on a statement version."""

    __tablename__ = "market_statement_line"
    __table_args__ = (Index("ix_market_statement_line_resource", "resource", "start_epoch"),)

    statement_pk: int = Field(primary_key=True, foreign_key="market_statement.id")
    code: str = Field(primary_key=True, max_length=32)
    resource: str = Field(primary_key=True, max_length=200)
    start_epoch: int = Field(sa_column=Column(BigInteger, primary_key=True))
    minutes: int
    amount: str = Field(max_length=40)
    determinants: str = Field(default="{}", sa_column=Column(Text, nullable=False))  # JSON name -> decimal text
    label: str = Field(default="", max_length=64)


class MarketShadowRunRow(SQLModel, table=True):
    """A shadow settlement of one ISO day against one statement version."""

    __tablename__ = "market_shadow_run"

    id: int | None = Field(default=None, primary_key=True)
    iso: str = Field(max_length=16)
    operating_day: date = Field(sa_column=Column(Date, nullable=False))
    statement_pk: int | None = Field(default=None, foreign_key="market_statement.id")
    inputs_sha256: str = Field(max_length=64)
    price_versions: str = Field(sa_column=Column(Text, nullable=False))  # JSON "node/market" -> version
    totals: str = Field(sa_column=Column(Text, nullable=False))  # JSON code -> shadow, iso, variance
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


market_submission_table = MarketSubmissionRow.__table__  # type: ignore[attr-defined]
market_award_day_table = MarketAwardDayRow.__table__  # type: ignore[attr-defined]
market_price_day_table = MarketPriceDayRow.__table__  # type: ignore[attr-defined]
market_statement_table = MarketStatementRow.__table__  # type: ignore[attr-defined]
market_statement_line_table = MarketStatementLineRow.__table__  # type: ignore[attr-defined]
market_shadow_run_table = MarketShadowRunRow.__table__  # type: ignore[attr-defined]
