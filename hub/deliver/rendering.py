"""Render an issued document with a recorded envelope, so that every rendering has the same bytes.

:func:`render_document` looks up the (invoice, version, format, variant) in
``rendered_document``. The first time, it fixes the envelope (creation time; for EDI
formats the next control number of the trading partner's sequence, taken in the caller's
transaction) and records it with the body's hash; later renderings reuse it and must
produce the same hash (:class:`RenderMismatchError` otherwise, e.g. after the party's
configuration changed).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update

from kwhub.core.adapters import InvoiceRenderer
from kwhub.core.invoice import Invoice
from kwhub.core.render_context import Envelope, RenderContext
from kwhub.hub.store.rendering_tables import edi_control_sequence_table, rendered_document_table
from kwhub.hub.store.tables import as_utc, utcnow

MAX_CONTROL = 999_999_999

# Built once: statements with bound parameters skip SQLAlchemy's per-call construction and
# coercion (the outbox renders every queued document through these).
_rt = rendered_document_table
_RECORDED = select(_rt.c.created_at, _rt.c.control_number, _rt.c.body_sha256).where(
    _rt.c.invoice_id == bindparam("k_invoice"), _rt.c.invoice_version == bindparam("k_version"),
    _rt.c.format_id == bindparam("k_format"), _rt.c.variant == bindparam("k_variant"))
_RECORD = insert(_rt)


class RenderMismatchError(ValueError):
    """A document rendered again differs from its recorded rendering."""


@dataclass(frozen=True)
class RenderedDocument:
    """A rendered body and the envelope it was rendered with."""

    body: bytes
    envelope: Envelope
    sha256: str
    first_time: bool


def next_control_number(conn: Any, partner: str) -> int:
    """Take the partner's next control number inside the caller's transaction (1..999999999)."""
    t = edi_control_sequence_table
    stmt = (update(t).where(t.c.partner == partner).values(next_number=t.c.next_number + 1)
            .returning(t.c.next_number))
    taken = conn.execute(stmt).scalar()
    if taken is None:
        conn.execute(insert(t).values(partner=partner, next_number=2))
        taken = 2
    n = int(taken) - 1
    if n > MAX_CONTROL:
        raise ValueError(f"EDI control numbers of partner {partner} are exhausted (last {MAX_CONTROL})")
    return n


def render_document(conn: Any, invoice: Invoice, renderer: InvoiceRenderer, context: RenderContext | None = None,
                    *, variant: int = 0, now: datetime | None = None) -> RenderedDocument:
    """Render ``invoice`` in ``renderer``'s format with its recorded envelope (recording it the first time).

    ``conn`` is a connection inside a write transaction (the row and the control number
    are written there). Raises :class:`RenderMismatchError` when a recorded rendering is
    not reproduced byte for byte.
    """
    fmt = renderer.format_id
    row = conn.execute(_RECORDED, {"k_invoice": invoice.id, "k_version": invoice.version, "k_format": fmt,
                                   "k_variant": variant}).first()
    if row is not None:
        envelope = Envelope(as_utc(row.created_at), row.control_number)  # type: ignore[arg-type]
    else:
        partner = renderer.control_partner(invoice)
        created = as_utc(now) if now is not None else utcnow()
        envelope = Envelope(created.replace(microsecond=0),  # type: ignore[union-attr]
                            next_control_number(conn, partner) if partner else None)
    body = renderer.render(invoice, replace(context or RenderContext(), envelope=envelope))
    digest = hashlib.sha256(body).hexdigest()
    if row is None:
        conn.execute(_RECORD, {"invoice_id": invoice.id, "invoice_version": invoice.version, "format_id": fmt,
                               "variant": variant, "created_at": envelope.created_at,
                               "control_partner": renderer.control_partner(invoice),
                               "control_number": envelope.control_number, "body_sha256": digest})
    elif row.body_sha256 != digest:
        raise RenderMismatchError(
            f"invoice {invoice.number} {fmt}: rendering it again gives other bytes (sha256 {digest[:12]}..., "
            f"recorded {row.body_sha256[:12]}...); the configuration of its parties or renderer changed since")
    return RenderedDocument(body, envelope, digest, row is None)


def latest_variant(conn: Any, invoice: Invoice, format_id: str) -> int:
    """The highest variant recorded for the invoice's format (-1 when never rendered)."""
    from sqlalchemy import func

    t = rendered_document_table
    v = conn.execute(select(func.max(t.c.variant)).where(
        t.c.invoice_id == invoice.id, t.c.invoice_version == invoice.version, t.c.format_id == format_id)).scalar()
    return -1 if v is None else int(v)
