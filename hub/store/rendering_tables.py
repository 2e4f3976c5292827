"""How issued documents were rendered, and the EDI control-number sequences.

* ``rendered_document``: one row per (invoice, version, format, variant). Variant 0 is
  the document every route of that format receives; a re-send with a new idempotency
  key (``kwhub deliver ID --route R --new-key``) is variant 1, 2, ... It keeps the
  creation time and the EDI control number the rendering used, so rendering it again
  (``kwhub invoices render``, a re-delivery) gives the same bytes; ``body_sha256`` proves it.
* ``edi_control_sequence``: the next interchange control number per trading partner
  (``x12:<qualifier>:<sender>><qualifier>:<receiver>``), taken inside the transaction that
  queues the document, so numbers are unique per partner and never reused.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime
from sqlmodel import Field, SQLModel


class RenderedDocumentRow(SQLModel, table=True):
    """The envelope of one rendered document."""

    __tablename__ = "rendered_document"

    invoice_id: str = Field(primary_key=True, max_length=200)
    invoice_version: int = Field(primary_key=True)
    format_id: str = Field(primary_key=True, max_length=64)
    variant: int = Field(default=0, primary_key=True)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    control_partner: str | None = Field(default=None, max_length=200)
    control_number: int | None = None
    body_sha256: str = Field(max_length=64)


class EdiControlSequenceRow(SQLModel, table=True):
    """The next control number of one trading partner."""

    __tablename__ = "edi_control_sequence"

    partner: str = Field(primary_key=True, max_length=200)
    next_number: int = 1


rendered_document_table = RenderedDocumentRow.__table__  # type: ignore[attr-defined]
edi_control_sequence_table = EdiControlSequenceRow.__table__  # type: ignore[attr-defined]
