"""Issuing documents: the seller's next invoice numbers and the invoice rows with their lines.

Both run inside the caller's write transaction (:mod:`kwhub.hub.settle.review` issues
approved drafts with them), so a failure rolls back the numbers too and numbers have no gaps.
A batch of documents takes its numbers with one statement per seller and goes in with one
executemany for the invoices and one for their lines.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, insert, update

from kwhub.core.invoice import Invoice
from kwhub.core.money import money_str
from kwhub.hub.settle.integrity import chain_links
from kwhub.hub.store.settlement_tables import (
    invoice_line_table,
    invoice_sequence_table,
    invoice_table,
)

_TAKE_NUMBER = (update(invoice_sequence_table)
                .where(invoice_sequence_table.c.seller == bindparam("take_seller"))
                .values(next_number=invoice_sequence_table.c.next_number + bindparam("take_count"))
                .returning(invoice_sequence_table.c.next_number))


_INSERT_INVOICE = insert(invoice_table)


_INSERT_LINES = insert(invoice_line_table)


def next_invoice_number(conn: Any, dialect: str, seller: str) -> int:
    """Take the seller's next number inside the caller's transaction (row-locked).

    One ``UPDATE ... RETURNING`` (it locks the row like ``SELECT ... FOR UPDATE``); the
    seller's row is created on its first number.
    """
    return next_invoice_numbers(conn, dialect, seller, 1)


def next_invoice_numbers(conn: Any, dialect: str, seller: str, count: int) -> int:
    """Take the seller's next ``count`` numbers (the first is returned; the others follow it)."""
    if count < 1:
        raise ValueError(f"cannot take {count} invoice numbers")
    args = {"take_seller": seller, "take_count": count}
    taken = conn.execute(_TAKE_NUMBER, args).scalar()
    if taken is None:
        t = invoice_sequence_table
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        conn.execute(dialect_insert(t).values(seller=seller, next_number=1)
                     .on_conflict_do_nothing(index_elements=["seller"]))
        taken = conn.execute(_TAKE_NUMBER, args).scalar_one()
    return int(taken) - count


def insert_invoice(conn: Any, inv: Invoice, seq: int, period: str, original_id: str | None) -> None:
    """Insert an issued document and its lines, linked into the seller's hash chain
    (:func:`kwhub.hub.settle.integrity.chain_link`, which also refuses a number out of sequence)."""
    insert_invoices(conn, [(inv, seq, period, original_id)])


def insert_invoices(conn: Any, items: Sequence[tuple[Invoice, int, str, str | None]]) -> None:
    """Insert issued documents ``(invoice, number_seq, period, original_id)``, in order, and their
    lines: one executemany each. Each seller's documents (consecutive numbers) are chained in
    order after its last issued one (:func:`kwhub.hub.settle.integrity.chain_links`)."""
    if not items:
        return
    now = datetime.now(UTC)
    documents = [inv.model_dump_json() for inv, _, _, _ in items]
    by_seller: dict[str, list[int]] = {}
    for i, (inv, _, _, _) in enumerate(items):
        by_seller.setdefault(inv.seller.id, []).append(i)
    links: list[dict[str, str]] = [{}] * len(items)
    for seller, idx in by_seller.items():
        for i, link in zip(idx, chain_links(conn, seller, [(items[i][1], items[i][0].id, documents[i]) for i in idx]),
                           strict=True):
            links[i] = link
    conn.execute(_INSERT_INVOICE, [dict(
        id=inv.id, number=inv.number, number_seq=seq, seller=inv.seller.id, buyer=inv.buyer.id, kind=inv.kind,
        version=inv.version, contract_id=inv.contract_id, period=period, run_id=inv.run_id,
        original_invoice_id=original_id, issue_date=inv.issue_date, issued_at=now, status="issued",
        currency=inv.currency, line_total=money_str(inv.line_total), tax_total=money_str(inv.tax_total),
        total=money_str(inv.total), document=document, **link,
    ) for (inv, seq, period, original_id), document, link in zip(items, documents, links, strict=True)])
    lines = [
        {"invoice_id": inv.id, "number": ln.number, "description": ln.description, "charge_type": ln.charge_type,
         "component_id": ln.component_id, "source_asset": ln.source_asset, "quantity": money_str(ln.quantity),
         "unit": ln.unit, "unit_price": money_str(ln.unit_price), "amount": money_str(ln.amount),
         "tax_category": ln.tax_category, "tax_percent": money_str(ln.tax_percent),
         "determinants": json.dumps(ln.determinants, sort_keys=True)}
        for inv, _, _, _ in items for ln in inv.lines
    ]
    if lines:
        conn.execute(_INSERT_LINES, lines)
