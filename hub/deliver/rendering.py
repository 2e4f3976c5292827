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
_RECORDED_MANY = select(_rt.c.invoice_id, _rt.c.invoice_version, _rt.c.created_at, _rt.c.control_number,
                        _rt.c.body_sha256).where(_rt.c.invoice_id.in_(bindparam("k_ids", expanding=True)),
                                                 _rt.c.format_id == bindparam("k_format"), _rt.c.variant == 0)
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


@dataclass(frozen=True)
class PendingRendering:
    """The envelope fixed for one rendering, before the body exists (:func:`prepare_rendering`)."""

    invoice: Invoice
    format_id: str
    variant: int
    envelope: Envelope
    control_partner: str | None
    recorded_sha256: str | None  # the hash recorded earlier; None the first time

    def context(self, context: RenderContext | None) -> RenderContext:
        """``context`` with this rendering's envelope."""
        return replace(context or RenderContext(), envelope=self.envelope)


def prepare_rendering(conn: Any, invoice: Invoice, renderer: InvoiceRenderer, *, variant: int = 0,
                      now: datetime | None = None) -> PendingRendering:
    """The recorded envelope of (invoice, format, variant), or a new one (taking the partner's
    next control number on ``conn`` the first time). Nothing else is written until
    :func:`record_rendering`."""
    fmt = renderer.format_id
    row = conn.execute(_RECORDED, {"k_invoice": invoice.id, "k_version": invoice.version, "k_format": fmt,
                                   "k_variant": variant}).first()
    partner = renderer.control_partner(invoice)
    if row is not None:
        return PendingRendering(invoice, fmt, variant, Envelope(as_utc(row.created_at), row.control_number),  # type: ignore[arg-type]
                                partner, row.body_sha256)
    created = as_utc(now) if now is not None else utcnow()
    envelope = Envelope(created.replace(microsecond=0),  # type: ignore[union-attr]
                        next_control_number(conn, partner) if partner else None)
    return PendingRendering(invoice, fmt, variant, envelope, partner, None)


def record_rendering(conn: Any, pending: PendingRendering, body: bytes) -> RenderedDocument:
    """Record the body rendered with ``pending``'s envelope the first time; later, check that it
    is the same bytes (:class:`RenderMismatchError` otherwise)."""
    digest = hashlib.sha256(body).hexdigest()
    inv = pending.invoice
    if pending.recorded_sha256 is None:
        conn.execute(_RECORD, {"invoice_id": inv.id, "invoice_version": inv.version, "format_id": pending.format_id,
                               "variant": pending.variant, "created_at": pending.envelope.created_at,
                               "control_partner": pending.control_partner,
                               "control_number": pending.envelope.control_number, "body_sha256": digest})
    elif pending.recorded_sha256 != digest:
        raise _mismatch(pending, digest)
    return RenderedDocument(body, pending.envelope, digest, pending.recorded_sha256 is None)


def prepare_renderings(conn: Any, jobs: list[tuple[Invoice, InvoiceRenderer]], *,
                       now: datetime | None = None) -> list[PendingRendering]:
    """:func:`prepare_rendering` (variant 0) of several ``(invoice, renderer)``, in order: the
    recorded envelopes read with one statement per format and 500 invoices; EDI control
    numbers taken in the order of ``jobs``."""
    ids: dict[str, list[str]] = {}
    for inv, renderer in jobs:
        ids.setdefault(renderer.format_id, []).append(inv.id)
    recorded: dict[tuple[str, int, str], Any] = {}
    for fmt, fmt_ids in ids.items():
        fmt_ids = list(dict.fromkeys(fmt_ids))
        for i in range(0, len(fmt_ids), 500):
            recorded.update(((r.invoice_id, r.invoice_version, fmt), r) for r in conn.execute(_RECORDED_MANY, {
                "k_ids": fmt_ids[i:i + 500], "k_format": fmt}))
    created = (as_utc(now) if now is not None else utcnow()).replace(microsecond=0)  # type: ignore[union-attr]
    out = []
    for inv, renderer in jobs:
        fmt = renderer.format_id
        partner = renderer.control_partner(inv)
        row = recorded.get((inv.id, inv.version, fmt))
        if row is not None:
            out.append(PendingRendering(inv, fmt, 0, Envelope(as_utc(row.created_at), row.control_number),  # type: ignore[arg-type]
                                        partner, row.body_sha256))
        else:
            out.append(PendingRendering(inv, fmt, 0, Envelope(created, next_control_number(conn, partner)
                                                              if partner else None), partner, None))
    return out


def record_renderings(conn: Any, done: list[tuple[PendingRendering, bytes, str]]) -> None:
    """:func:`record_rendering` of several ``(pending, body, sha256 of body)``: every recorded one
    checked first (the first mismatch raises :class:`RenderMismatchError`), the new ones written
    with one executemany."""
    rows = []
    for pending, _, digest in done:
        inv = pending.invoice
        if pending.recorded_sha256 is None:
            rows.append({"invoice_id": inv.id, "invoice_version": inv.version, "format_id": pending.format_id,
                         "variant": pending.variant, "created_at": pending.envelope.created_at,
                         "control_partner": pending.control_partner,
                         "control_number": pending.envelope.control_number, "body_sha256": digest})
        elif pending.recorded_sha256 != digest:
            raise _mismatch(pending, digest)
    if rows:
        conn.execute(_RECORD, rows)


def _mismatch(pending: PendingRendering, digest: str) -> RenderMismatchError:
    return RenderMismatchError(
        f"invoice {pending.invoice.number} {pending.format_id}: rendering it again gives other bytes (sha256 "
        f"{digest[:12]}..., recorded {(pending.recorded_sha256 or '')[:12]}...); the configuration of its parties or "
        "renderer changed since")


def render_document(conn: Any, invoice: Invoice, renderer: InvoiceRenderer, context: RenderContext | None = None,
                    *, variant: int = 0, now: datetime | None = None) -> RenderedDocument:
    """Render ``invoice`` in ``renderer``'s format with its recorded envelope (recording it the first time).

    ``conn`` is a connection inside a write transaction (the row and the control number
    are written there). Raises :class:`RenderMismatchError` when a recorded rendering is
    not reproduced byte for byte.
    """
    pending = prepare_rendering(conn, invoice, renderer, variant=variant, now=now)
    return record_rendering(conn, pending, renderer.render(invoice, pending.context(context)))


def latest_variant(conn: Any, invoice: Invoice, format_id: str) -> int:
    """The highest variant recorded for the invoice's format (-1 when never rendered)."""
    from sqlalchemy import func

    t = rendered_document_table
    v = conn.execute(select(func.max(t.c.variant)).where(
        t.c.invoice_id == invoice.id, t.c.invoice_version == invoice.version, t.c.format_id == format_id)).scalar()
    return -1 if v is None else int(v)
