"""Issued documents are hash-chained and cannot be replaced, truncated or renumbered in silence.

Runs on SQLite and PostgreSQL (``db``). The hashes are recomputed here with ``hashlib``
from the documented formula, not with kwhub's own functions.
"""

from __future__ import annotations

import hashlib
from datetime import date

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from kwhub.hub.settle.service import existing_runs, list_invoices, settle
from kwhub.hub.store.settlement_tables import invoice_sequence_table, invoice_table
from tests.fixtures.settlement import settle_campus, write_period

ISSUE = date(2026, 11, 3)
GENESIS = "0" * 64


def _sha(text_: str) -> str:
    return hashlib.sha256(text_.encode("utf-8")).hexdigest()


@pytest.fixture
def issued(db):
    write_period(db, "2026-10")
    write_period(db, "2026-11")
    campus = settle_campus()
    assert all(o.status == "issued" for o in settle(db, campus, "2026-10", issue_date=ISSUE))
    assert all(o.status == "issued" for o in settle(db, campus, "2026-11", issue_date=date(2026, 12, 2)))
    return db


def _rows(db):
    t = invoice_table
    with db.engine.connect() as conn:
        return conn.execute(select(t).order_by(t.c.seller, t.c.number_seq)).all()


def test_each_document_stores_its_hash_and_links_to_the_sellers_previous_one(issued):
    rows = _rows(issued)
    assert [r.number_seq for r in rows] == [1, 2, 3, 4]
    prev = GENESIS
    for r in rows:
        assert r.document_sha256 == _sha(r.document)
        assert r.prev_chain_sha256 == prev
        link = f"kwhub-chain-v1\n{r.seller}\n{r.number_seq}\n{r.id}\n{r.document_sha256}\n{prev}\n"
        assert r.chain_sha256 == _sha(link)
        prev = r.chain_sha256


def test_sqlite_insert_or_replace_cannot_replace_an_issued_invoice(sqlite_db):
    db = sqlite_db
    write_period(db, "2026-10")
    settle(db, settle_campus(), "2026-10", issue_date=ISSUE)
    before = _rows(db)
    statements = [
        "INSERT OR REPLACE INTO invoice SELECT id, number, number_seq, seller, buyer, kind, version, contract_id, "
        "period, run_id, original_invoice_id, issue_date, issued_at, status, currency, line_total, tax_total, "
        "'0.00', document, document_sha256, prev_chain_sha256, chain_sha256 FROM invoice WHERE number_seq = 1",
        "REPLACE INTO invoice_line SELECT invoice_id, number, description, charge_type, component_id, source_asset, "
        "quantity, unit, unit_price, '0.00', tax_category, tax_percent, determinants FROM invoice_line LIMIT 1",
        "INSERT INTO invoice SELECT * FROM invoice WHERE number_seq = 1 ON CONFLICT(id) DO UPDATE SET total = '0.00'",
    ]
    for sql in statements:
        with pytest.raises(DBAPIError, match="immutable"), db.write_transaction() as conn:
            conn.execute(text(sql))
    assert _rows(db) == before


def test_upsert_over_an_issued_invoice_is_refused(db):
    write_period(db, "2026-10")
    settle(db, settle_campus(), "2026-10", issue_date=ISSUE)
    before = _rows(db)
    with pytest.raises(DBAPIError, match="immutable"), db.write_transaction() as conn:
        conn.execute(text("INSERT INTO invoice SELECT * FROM invoice WHERE number_seq = 1 "
                          "ON CONFLICT (id) DO UPDATE SET total = '0.00'"))
    assert _rows(db) == before


@pytest.mark.parametrize("table", ["invoice", "invoice_line", "document_rendering"])
def test_emptying_an_issued_document_table_is_refused(issued, table):
    # PostgreSQL: TRUNCATE (statement-level trigger); SQLite has no TRUNCATE, its
    # equivalent is an unqualified DELETE (row triggers).
    sql = f"TRUNCATE {table} CASCADE" if issued.dialect == "postgresql" else f"DELETE FROM {table}"
    if table == "document_rendering":
        with issued.write_transaction() as conn:  # one registered rendering to protect
            conn.execute(text("INSERT INTO document_rendering (invoice_id, format_id, body_sha256, document_sha256, "
                              "created_at) SELECT id, 'json', document_sha256, document_sha256, issued_at FROM invoice "
                              "WHERE number_seq = 1"))
    with pytest.raises(DBAPIError, match="immutable"), issued.write_transaction() as conn:
        conn.execute(text(sql))
    with issued.engine.connect() as conn:
        assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() > 0


@pytest.mark.parametrize("next_number, word", [(1, "was rewound"), (2, "was rewound"), (9, "jumped")])
def test_a_sequence_out_of_step_is_a_named_error_and_nothing_is_issued(db, next_number, word):
    campus = settle_campus()
    write_period(db, "2026-10")
    write_period(db, "2026-11")
    settle(db, campus, "2026-10", issue_date=ISSUE)  # numbers 1 and 2
    with db.write_transaction() as conn:
        conn.execute(invoice_sequence_table.update().values(next_number=next_number))
    outcomes = settle(db, campus, "2026-11", issue_date=date(2026, 12, 2))
    assert [o.status for o in outcomes] == ["error", "error"]
    for o in outcomes:
        assert f"invoice sequence of seller 'op' {word}" in o.error and "next_number" in o.error
        assert "INSERT" not in o.error and '"lines"' not in o.error
    assert [i.number for i in list_invoices(db)] == ["OP-000001", "OP-000002"]
    # the issue rolled back with its number; the computed run waits as a draft
    assert [r["status"] for r in existing_runs(db, "ppa-a", "2026-11")] == ["draft"]
    with db.write_transaction() as conn:
        conn.execute(invoice_sequence_table.update().values(next_number=3))
    assert [o.invoice.number for o in settle(db, campus, "2026-11", issue_date=date(2026, 12, 2))] == [
        "OP-000003", "OP-000004"]


def test_the_migration_hashes_documents_issued_before_it(issued):
    before = [(r.id, r.document_sha256, r.prev_chain_sha256, r.chain_sha256) for r in _rows(issued)]
    issued.downgrade("0004_interval_day_key")
    with issued.engine.connect() as conn:
        assert "chain_sha256" not in {c["name"] for c in __import__("sqlalchemy").inspect(conn).get_columns("invoice")}
    issued.migrate()
    assert [(r.id, r.document_sha256, r.prev_chain_sha256, r.chain_sha256) for r in _rows(issued)] == before
    with pytest.raises(DBAPIError, match="immutable"), issued.write_transaction() as conn:
        conn.execute(text("UPDATE invoice SET total = '0.00'"))  # the update trigger is back
