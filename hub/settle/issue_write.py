"""Issuing a document: the seller's next invoice number and the invoice row with its lines.

Both run inside the caller's write transaction (:mod:`kwhub.hub.settle.review` issues
approved drafts with them), so a failure rolls back the number too and numbers have no gaps.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, insert, update

from kwhub.core.invoice import Invoice
from kwhub.core.money import money_str
from kwhub.hub.settle.integrity import chain_link
from kwhub.hub.store.settlement_tables import (
    invoice_line_table,
    invoice_sequence_table,
    invoice_table,
)

_TAKE_NUMBER = (update(invoice_sequence_table)
                .where(invoice_sequence_table.c.seller == bindparam("take_seller"))
                .values(next_number=invoice_sequence_table.c.next_number + 1)
                .returning(invoice_sequence_table.c.next_number))


_INSERT_INVOICE = insert(invoice_table)


_INSERT_LINES = insert(invoice_line_table)


def next_invoice_number(conn: Any, dialect: str, seller: str) -> int:
    """Take the seller's next number inside the caller's transaction (row-locked).

    One ``UPDATE ... RETURNING`` (it locks the row like ``SELECT ... FOR UPDATE``); the
    seller's row is created on its first number.
    """
    taken = conn.execute(_TAKE_NUMBER, {"take_seller": seller}).scalar()
    if taken is None:
        t = invoice_sequence_table
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        conn.execute(dialect_insert(t).values(seller=seller, next_number=1)
                     .on_conflict_do_nothing(index_elements=["seller"]))
        taken = conn.execute(_TAKE_NUMBER, {"take_seller": seller}).scalar_one()
    return int(taken) - 1


def insert_invoice(conn: Any, inv: Invoice, seq: int, period: str, original_id: str | None) -> None:
    """Insert an issued document and its lines, linked into the seller's hash chain
    (:func:`kwhub.hub.settle.integrity.chain_link`, which also refuses a number out of sequence)."""
    now = datetime.now(UTC)
    document = inv.model_dump_json()
    conn.execute(_INSERT_INVOICE, dict(
        id=inv.id, number=inv.number, number_seq=seq, seller=inv.seller.id, buyer=inv.buyer.id, kind=inv.kind,
        version=inv.version, contract_id=inv.contract_id, period=period, run_id=inv.run_id,
        original_invoice_id=original_id, issue_date=inv.issue_date, issued_at=now, status="issued",
        currency=inv.currency, line_total=money_str(inv.line_total), tax_total=money_str(inv.tax_total),
        total=money_str(inv.total), document=document, **chain_link(conn, inv.seller.id, seq, inv.id, document),
    ))
    if inv.lines:
        conn.execute(_INSERT_LINES, [
            {"invoice_id": inv.id, "number": ln.number, "description": ln.description, "charge_type": ln.charge_type,
             "component_id": ln.component_id, "source_asset": ln.source_asset, "quantity": money_str(ln.quantity),
             "unit": ln.unit, "unit_price": money_str(ln.unit_price), "amount": money_str(ln.amount),
             "tax_category": ln.tax_category, "tax_percent": money_str(ln.tax_percent),
             "determinants": json.dumps(ln.determinants, sort_keys=True)}
            for ln in inv.lines
        ])
