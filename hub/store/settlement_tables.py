"""Settlement tables: runs, the data they used, their allocation, invoices and numbering.

* ``settlement_run``: one row per (contract, period, version kind, sequence); the unique
  constraint makes the database refuse a duplicate run. ``statement`` is the canonical
  JSON of the run, ``statement_hash`` its SHA-256. ``status`` follows the review gate:
  ``draft`` / ``held`` (with the failed ``checks``) until approved (``issued``, the
  document made from ``draft``) or ``rejected``; ``superseded`` when settled again on
  other data before a decision; ``no_change`` for a later version with nothing to bill.
* ``run_input``: the (channel, UTC day, layer, version, content hash) a run read, so a
  later restatement marks the run stale; packed as one row per (run, channel, layer).
* ``run_allocation``: per run the tenants x sources kWh totals and the per-interval
  split as a compact blob (see :func:`kwhub.core.allocation.pack_array`).
* ``invoice`` / ``invoice_line``: issued documents. They are immutable on every path:
  ORM flushes and ORM bulk statements are refused here (:class:`ImmutableInvoiceError`),
  raw SQL is refused by triggers that migrations ``0002_settlement`` (row ``UPDATE`` and
  ``DELETE``) and ``0006_tamper_evidence`` (``INSERT OR REPLACE`` over an issued row on
  SQLite, ``TRUNCATE`` on PostgreSQL) install. Each invoice row also carries the SHA-256
  of its stored document and its link in the seller's hash chain (:mod:`kwhub.hub.settle.integrity`).
* ``document_rendering``: the SHA-256 of every rendered body queued for delivery, per
  (invoice, format); append-only like the invoices. The relay sends an outbox body only
  when its hash is registered here for an intact issued invoice.
* ``invoice_sequence``: the next invoice number per seller, taken inside the invoice's
  own transaction, so numbers have no gaps.

Money and quantities are stored as exact decimal strings.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import (
    Column,
    Date,
    DateTime,
    Index,
    LargeBinary,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import Session as SASession
from sqlmodel import Field, SQLModel

VERSION_KINDS = ("initial", "final", "true_up")
RUN_STATUSES = ("draft", "held", "issued", "no_change", "rejected", "superseded")


class ImmutableInvoiceError(RuntimeError):
    """An attempt to change or delete an issued invoice."""


def utcnow() -> datetime:
    """The current instant, timezone-aware UTC."""
    return datetime.now(UTC)


class SettlementRunRow(SQLModel, table=True):
    """A settlement run: contract x billing period x version."""

    __tablename__ = "settlement_run"
    __table_args__ = (
        UniqueConstraint("contract_id", "period", "version_kind", "seq", name="uq_settlement_run_version"),
        Index("ix_settlement_run_contract_period", "contract_id", "period"),
    )

    id: str = Field(primary_key=True, max_length=200)
    contract_id: str = Field(max_length=200)
    period: str = Field(max_length=40)
    version_kind: str = Field(max_length=16)
    seq: int = 1
    status: str = Field(max_length=16)
    layer: str = Field(default="validated", max_length=32)
    statement: str = Field(sa_column=Column(Text, nullable=False))
    statement_hash: str = Field(max_length=64)
    invoice_id: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    stale: bool = False
    draft: str | None = Field(default=None, sa_column=Column(Text, nullable=True))  # the document to issue, JSON
    checks: str | None = Field(default=None, sa_column=Column(Text, nullable=True))  # review checks, JSON


class RunInputRow(SQLModel, table=True):
    """The channel-days one run read of one channel in one layer, packed in one row.

    ``n_days`` UTC days from ``first_day`` to ``last_day``: ``day_offsets`` (little-endian
    int32 days after ``first_day``, ascending), ``versions`` (little-endian int32) and
    ``content_hashes`` (the 32-byte SHA-256 digests, in the same order) of the day
    versions the run saw. One row per (run, channel, layer) instead of one per
    channel-day keeps a year of runs small to write and quick to read back.
    """

    __tablename__ = "run_input"

    run_id: str = Field(primary_key=True, max_length=200)
    channel_id: str = Field(primary_key=True, max_length=200)
    layer: str = Field(primary_key=True, max_length=32)
    first_day: date = Field(sa_column=Column(Date, nullable=False))
    last_day: date = Field(sa_column=Column(Date, nullable=False))
    n_days: int = 0
    day_offsets: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    versions: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    content_hashes: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class RunAllocationRow(SQLModel, table=True):
    """A run's tenant x source energy: period total and the per-interval split."""

    __tablename__ = "run_allocation"

    run_id: str = Field(primary_key=True, max_length=200)
    tenant: str = Field(primary_key=True, max_length=200)
    source: str = Field(primary_key=True, max_length=200)
    kwh: str = Field(max_length=64)
    loss_kwh: str = Field(default="0", max_length=64)
    intervals: int = 0
    blob: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class InvoiceRow(SQLModel, table=True):
    """An issued invoice, adjustment invoice or credit note (immutable)."""

    __tablename__ = "invoice"
    __table_args__ = (
        UniqueConstraint("seller", "number_seq", name="uq_invoice_seller_seq"),
        UniqueConstraint("seller", "number", name="uq_invoice_seller_number"),
        Index("ix_invoice_contract_period", "contract_id", "period"),
    )

    id: str = Field(primary_key=True, max_length=200)
    number: str = Field(max_length=100)
    number_seq: int
    seller: str = Field(max_length=200)
    buyer: str = Field(max_length=200)
    kind: str = Field(max_length=16)
    version: int = 1
    contract_id: str = Field(max_length=200)
    period: str = Field(max_length=40)
    run_id: str = Field(max_length=200)
    original_invoice_id: str | None = Field(default=None, max_length=200)
    issue_date: date = Field(sa_column=Column(Date, nullable=False))
    issued_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    status: str = Field(default="issued", max_length=16)
    currency: str = Field(default="USD", max_length=3)
    line_total: str = Field(max_length=64)
    tax_total: str = Field(max_length=64)
    total: str = Field(max_length=64)
    document: str = Field(sa_column=Column(Text, nullable=False))
    # tamper evidence (kwhub.hub.settle.integrity): the stored document's SHA-256 and its hash-chain link
    document_sha256: str | None = Field(default=None, max_length=64)
    prev_chain_sha256: str | None = Field(default=None, max_length=64)
    chain_sha256: str | None = Field(default=None, max_length=64)


class InvoiceLineRow(SQLModel, table=True):
    """One line of an issued invoice (immutable)."""

    __tablename__ = "invoice_line"

    invoice_id: str = Field(primary_key=True, max_length=200)
    number: int = Field(primary_key=True)
    description: str = Field(sa_column=Column(Text, nullable=False))
    charge_type: str = Field(max_length=32)
    component_id: str = Field(default="", max_length=200)
    source_asset: str = Field(default="", max_length=200)
    quantity: str = Field(max_length=64)
    unit: str = Field(max_length=16)
    unit_price: str = Field(max_length=64)
    amount: str = Field(max_length=64)
    tax_category: str = Field(default="S", max_length=4)
    tax_percent: str = Field(default="0", max_length=16)
    determinants: str = Field(sa_column=Column(Text, nullable=False))


class DocumentRenderingRow(SQLModel, table=True):
    """One rendered body of an issued document, registered when it is queued (append-only)."""

    __tablename__ = "document_rendering"

    invoice_id: str = Field(primary_key=True, max_length=200)
    format_id: str = Field(primary_key=True, max_length=64)
    body_sha256: str = Field(primary_key=True, max_length=64)
    document_sha256: str = Field(max_length=64)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class InvoiceSequenceRow(SQLModel, table=True):
    """The next invoice number of one seller."""

    __tablename__ = "invoice_sequence"

    seller: str = Field(primary_key=True, max_length=200)
    next_number: int = 1


settlement_run_table = SettlementRunRow.__table__  # type: ignore[attr-defined]
run_input_table = RunInputRow.__table__  # type: ignore[attr-defined]
run_allocation_table = RunAllocationRow.__table__  # type: ignore[attr-defined]
invoice_table = InvoiceRow.__table__  # type: ignore[attr-defined]
invoice_line_table = InvoiceLineRow.__table__  # type: ignore[attr-defined]
invoice_sequence_table = InvoiceSequenceRow.__table__  # type: ignore[attr-defined]
document_rendering_table = DocumentRenderingRow.__table__  # type: ignore[attr-defined]

IMMUTABLE_TABLES = ("invoice", "invoice_line", "document_rendering")


# --------------------------------------------------------------------------- immutability (ORM)


def _refuse_flush(mapper, connection, target) -> None:  # noqa: ANN001 - SQLAlchemy event signature
    raise ImmutableInvoiceError(f"{mapper.local_table.name} {_ident(target)} is issued and cannot be changed or deleted")


def _ident(target: object) -> str:
    if isinstance(target, InvoiceRow):
        return f"{target.number!r} ({target.id})"
    if isinstance(target, InvoiceLineRow):
        return f"line {target.number} of {target.invoice_id}"
    if isinstance(target, DocumentRenderingRow):
        return f"{target.format_id} rendering of {target.invoice_id}"
    return repr(target)


for _cls in (InvoiceRow, InvoiceLineRow, DocumentRenderingRow):
    event.listen(_cls, "before_update", _refuse_flush)
    event.listen(_cls, "before_delete", _refuse_flush)


@event.listens_for(SASession, "do_orm_execute")
def _refuse_bulk(state) -> None:  # noqa: ANN001 - SQLAlchemy event signature
    """Refuse ORM-enabled bulk UPDATE/DELETE statements that target invoice tables."""
    if not (state.is_update or state.is_delete):
        return
    name = getattr(getattr(state.statement, "table", None), "name", None)
    if name in IMMUTABLE_TABLES:
        raise ImmutableInvoiceError(f"{name}: issued invoices cannot be changed or deleted")
