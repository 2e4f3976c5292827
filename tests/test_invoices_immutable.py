"""Issued invoices cannot be changed (ORM, ORM bulk, raw SQL) and numbers have no gaps."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import DBAPIError

import kwhub.hub.settle.service as svc
from kwhub.hub.settle import (
    inputs,
    invoices_read,
    issue_write,
    loading,
    run_checks,
    runs_read,
    runs_write,
)
from kwhub.hub.settle.review import approve_runs
from kwhub.hub.settle.service import list_invoices, settle
from kwhub.hub.store.settlement_tables import (
    ImmutableInvoiceError,
    InvoiceLineRow,
    InvoiceRow,
    invoice_sequence_table,
    invoice_table,
)
from tests.fixtures.settlement import settle_campus, write_period

ISSUE = date(2026, 11, 3)


@pytest.fixture
def issued(db):
    write_period(db, "2026-10")
    out = settle(db, settle_campus(), "2026-10", issue_date=ISSUE)
    assert all(o.status == "issued" for o in out)
    return db, out[0].invoice


def test_orm_update_and_delete_refused(issued):
    db, inv = issued
    with db.session() as s:
        row = s.get(InvoiceRow, inv.id)
        row.total = "0.00"
        s.add(row)
        with pytest.raises(ImmutableInvoiceError, match="cannot be changed"):
            s.commit()
    with db.session() as s:
        line = s.get(InvoiceLineRow, (inv.id, 1))
        s.delete(line)
        with pytest.raises(ImmutableInvoiceError):
            s.commit()
    with db.session() as s:
        s.delete(s.get(InvoiceRow, inv.id))
        with pytest.raises(ImmutableInvoiceError):
            s.commit()
    assert list_invoices(db)[0].total == inv.total


def test_orm_bulk_statements_refused(issued):
    db, inv = issued
    with db.session() as s:
        with pytest.raises(ImmutableInvoiceError):
            s.execute(update(InvoiceRow).where(InvoiceRow.id == inv.id).values(total="0.00"))
        with pytest.raises(ImmutableInvoiceError):
            s.execute(delete(InvoiceLineRow))


@pytest.mark.parametrize("sql", [
    "UPDATE invoice SET total = '0.00'",
    "DELETE FROM invoice",
    "UPDATE invoice_line SET amount = '1.00'",
    "DELETE FROM invoice_line",
])
def test_raw_sql_refused_by_trigger(issued, sql):
    db, inv = issued
    with pytest.raises(DBAPIError, match="immutable"):
        with db.engine.begin() as conn:
            conn.execute(text(sql))
    with db.engine.connect() as conn:
        assert conn.execute(select(invoice_table.c.total).where(invoice_table.c.id == inv.id)).scalar() == "19480.00"


def test_service_offers_no_update_path():
    modules = (svc, inputs, invoices_read, issue_write, loading, run_checks, runs_read, runs_write)
    public = [n for m in modules for n, f in vars(m).items()
              if callable(f) and getattr(f, "__module__", "") == m.__name__ and not n.startswith("_")]
    assert "settle" in public and "list_invoices" in public and "insert_invoices" in public
    assert not [n for n in public if n.startswith(("update", "delete", "edit", "void"))]


def test_numbers_are_gapless_even_when_an_issue_fails(db, monkeypatch):
    campus = settle_campus()
    write_period(db, "2026-10")
    write_period(db, "2026-11")
    first = settle(db, campus, "2026-10", issue_date=ISSUE)
    assert [o.invoice.number for o in first] == ["OP-000001", "OP-000002"]

    real = issue_write.insert_invoices
    calls = {"n": 0}

    def failing(conn, items):  # noqa: ANN001 - every issue goes through it, alone or in a batch
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("disk full while writing the invoice")
        return real(conn, items)

    monkeypatch.setattr(issue_write, "insert_invoices", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        settle(db, campus, "2026-11", contracts=["ppa-a"], issue_date=date(2026, 12, 2))
    # the approval took number 3 inside its transaction; the rollback gave it back and the run waits as a draft
    assert [r["status"] for r in svc.existing_runs(db, "ppa-a", "2026-11")] == ["draft"]
    assert len(list_invoices(db)) == 2
    # settling again issues the waiting draft (same data) and the other contract
    nov = settle(db, campus, "2026-11", issue_date=date(2026, 12, 2))
    assert [(o.status, o.invoice.number) for o in nov] == [("issued", "OP-000003"), ("issued", "OP-000004")]
    assert approve_runs(db, campus, [nov[0].run_id], actor="clerk")[nov[0].run_id].error.endswith(
        "only draft and held runs can be decided")
    dup = settle(db, campus, "2026-11", contracts=["ppa-a"])
    assert dup[0].status == "unchanged"
    with db.engine.connect() as conn:
        seqs = [r[0] for r in conn.execute(select(invoice_table.c.number_seq).order_by(invoice_table.c.number_seq))]
        nxt = conn.execute(select(invoice_sequence_table.c.next_number)).scalar()
    assert seqs == [1, 2, 3, 4] and nxt == 5


def test_drafts_issued_together_number_and_chain_as_one_by_one(db):
    """Issuing a settle's first documents together gives the numbers, documents and hash chain
    that issuing them one by one gives; a run decided by someone else meanwhile falls back to
    the run-by-run path, where only that run fails."""
    from kwhub.core.settlement import SettlementOptions
    from kwhub.hub.settle.integrity import chain_sha256, document_sha256
    from kwhub.hub.settle.review import DraftToIssue, issue_drafts, reject_run

    campus = settle_campus()
    manual = SettlementOptions(review_policy="manual")
    for p in ("2026-10", "2026-11"):
        write_period(db, p)
    drafts = [o for p in ("2026-10", "2026-11") for o in settle(db, campus, p, options=manual)]
    items = [DraftToIssue(o.run_id, o.contract_id, o.period, o.version_kind, o.draft) for o in drafts]
    got = issue_drafts(db, items[:2], actor="clerk", reason="batch", issue_date=ISSUE)
    assert [got[o.run_id].invoice.number for o in drafts[:2]] == ["OP-000001", "OP-000002"]
    reject_run(db, drafts[2].run_id, actor="clerk", reason="wrong meter")  # decided before the batch
    late = issue_drafts(db, items[2:], actor="clerk", reason="batch", issue_date=ISSUE)
    assert "rejected" in late[drafts[2].run_id].error and late[drafts[3].run_id].invoice.number == "OP-000003"
    with db.engine.connect() as conn:
        rows = conn.execute(select(invoice_table.c.number_seq, invoice_table.c.id, invoice_table.c.document,
                                   invoice_table.c.document_sha256, invoice_table.c.prev_chain_sha256,
                                   invoice_table.c.chain_sha256).order_by(invoice_table.c.number_seq)).all()
    prev = "0" * 64
    for seq, inv_id, doc, digest, prev_chain, chain in rows:  # the chain recomputed by hand, link by link
        assert digest == document_sha256(doc) and prev_chain == prev
        assert chain == chain_sha256("op", seq, inv_id, digest, prev)
        prev = chain
    assert [r[0] for r in rows] == [1, 2, 3]
