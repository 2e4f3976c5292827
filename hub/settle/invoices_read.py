"""Issued documents read back: :func:`list_invoices`, :func:`get_invoice`, :func:`invoice_total`.

Nothing here (or anywhere) updates or deletes an invoice.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from sqlalchemy import select

from kwhub.core.invoice import Invoice
from kwhub.hub.store import Database
from kwhub.hub.store.settlement_tables import invoice_table


def list_invoices(db: Database, *, contract_id: str | None = None, period: str | None = None,
                  buyer: str | None = None) -> list[Invoice]:
    """Issued documents, oldest first."""
    t = invoice_table
    q = select(t.c.document)
    if contract_id:
        q = q.where(t.c.contract_id == contract_id)
    if period:
        q = q.where(t.c.period == period)
    if buyer:
        q = q.where(t.c.buyer == buyer)
    q = q.order_by(t.c.issued_at, t.c.seller, t.c.number_seq)
    with db.engine.connect() as conn:
        return [Invoice.model_validate_json(doc) for (doc,) in conn.execute(q)]


def get_invoice(db: Database, ref: str) -> Invoice:
    """An issued document by id or number."""
    t = invoice_table
    with db.engine.connect() as conn:
        doc = conn.execute(select(t.c.document).where((t.c.id == ref) | (t.c.number == ref))).scalar()
    if doc is None:
        # imported only on a miss, which keeps read commands light
        from kwhub.core.settlement import SettlementError

        raise SettlementError(f"no invoice {ref!r} (give an invoice id or number; `kwhub invoices list` shows them)")
    return Invoice.model_validate_json(doc)


def invoice_total(invoices: Iterable[Invoice]) -> Decimal:
    """Net billed amount of documents (credit notes count negative)."""
    return sum((-i.total if i.is_credit else i.total for i in invoices), Decimal("0"))
