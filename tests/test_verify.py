"""``kwhub verify`` finds each tampering: an edited outbox body, a replaced invoice, a truncated
table, a sequence jump, edited run inputs, and (with an anchor) a rewritten chain head.

Runs on SQLite and PostgreSQL. Tampering that the triggers refuse is done the way only a
superuser (PostgreSQL: triggers off for the session) or someone writing the SQLite file
directly (dropping the triggers) can.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date

import pytest
from sqlalchemy import select, text
from typer.testing import CliRunner

from kwhub.core.campus import DeliveryPrefs
from kwhub.hub.deliver.outbox import enqueue_invoice, list_outbox, relay_once
from kwhub.hub.settle.service import list_invoices, settle
from kwhub.hub.settle.verify import read_anchor, verify, write_anchor
from kwhub.hub.store.outbox_tables import outbox_table
from kwhub.hub.store.settlement_tables import invoice_table
from kwhub.plugins.erp.webhook import WebhookTransport
from tests.fixtures.outbox import RECEIVER_SECRET, JsonTestRenderer
from tests.fixtures.settlement import settle_campus, write_period

PREFS = DeliveryPrefs(formats=["json"], transports=["erp"])
SQLITE_TRIGGERS = ("invoice_no_update", "invoice_no_delete", "invoice_no_replace", "invoice_line_no_update",
                   "invoice_line_no_delete", "invoice_line_no_replace", "document_rendering_no_update",
                   "document_rendering_no_delete", "document_rendering_no_replace")


@pytest.fixture
def books(db):
    """Two months of two contracts issued (OP-000001..4) and queued as JSON for ``erp``."""
    campus = settle_campus()
    for period, issue in (("2026-10", date(2026, 11, 3)), ("2026-11", date(2026, 12, 2))):
        write_period(db, period)
        assert all(o.status == "issued" for o in settle(db, campus, period, issue_date=issue))
    with db.write_transaction() as conn:
        for inv in list_invoices(db):
            enqueue_invoice(conn, inv, [JsonTestRenderer("json")], PREFS, ["erp"])
    return db


def as_superuser(db, statements: list[str], params: dict | None = None) -> None:
    """Run SQL with the immutability triggers out of the way, as only a superuser could."""
    with db.write_transaction() as conn:
        if db.dialect == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        else:
            for name in SQLITE_TRIGGERS:
                conn.execute(text(f"DROP TRIGGER IF EXISTS {name}"))
        for sql in statements:
            conn.execute(text(sql), params or {})


def _breaks(report, check: str) -> list[tuple[str, str]]:
    return [(f.subject, f.problem) for f in report.breaks if f.check == check]


def _sha(data: str | bytes) -> str:
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


def test_intact_books_verify_clean(books):
    report = verify(books)
    assert report.ok, report.breaks
    assert report.checked["documents"] == 4 and report.checked["outbox_rows"] == 4 and report.checked["runs"] == 4
    assert report.heads["op"]["number"] == "OP-000004"


def test_an_edited_outbox_body_is_found_and_never_sent(books, erp_receiver):
    victim = list_outbox(books)[-1]  # the oldest row: OP-000001
    with books.write_transaction() as conn:
        conn.execute(outbox_table.update().where(outbox_table.c.id == victim["id"])
                     .values(body=b'{"total": "1.00"}'))
    subjects = " ".join(s for s, _ in _breaks(verify(books), "outbox"))
    assert f"outbox row {victim['id']} ({victim['invoice_id']}:v1:json -> erp" in subjects
    # the attacker also fixes the stored hash: the body is still not a registered rendering
    with books.write_transaction() as conn:
        conn.execute(outbox_table.update().where(outbox_table.c.id == victim["id"])
                     .values(body_sha256=_sha(b'{"total": "1.00"}')))
    problems = [p for s, p in _breaks(verify(books), "outbox") if f"outbox row {victim['id']} " in s]
    assert problems == [f"the body is not a registered json rendering of invoice {victim['invoice_id']}"]
    hook = WebhookTransport("erp", {"url": erp_receiver.url, "secret": RECEIVER_SECRET})
    try:
        report = relay_once(books, None, {"erp": hook})
    finally:
        hook.close()
    assert report.delivered == 3 and len(report.refused) == 1 and victim["invoice_id"] in report.refused[0]
    row = next(r for r in list_outbox(books) if r["id"] == victim["id"])
    assert row["status"] == "dead" and row["last_error"].startswith("refused before sending: the body is not")
    assert f"{victim['invoice_id']}:v1:json" not in erp_receiver.imported()
    assert all(r["sha256"] != _sha(b'{"total": "1.00"}') for r in erp_receiver.records)


def test_a_replaced_invoice_is_found(books):
    t = invoice_table
    with books.engine.connect() as conn:
        second = conn.execute(select(t).where(t.c.number_seq == 2)).one()
    doc = json.loads(second.document)
    doc["total"] = "1.00"
    forged = json.dumps(doc)
    # naive: the document and total replaced, the hashes left as they were
    as_superuser(books, ["UPDATE invoice SET document = :d, total = '1.00' WHERE number_seq = 2"], {"d": forged})
    problems = [p for s, p in _breaks(verify(books), "chain") if "OP-000002" in s]
    assert any("stored document was changed" in p for p in problems)
    # careful: its own hashes recomputed; the next document's link still points at the original
    digest = _sha(forged)
    chain = _sha(f"kwhub-chain-v1\nop\n2\n{second.id}\n{digest}\n{second.prev_chain_sha256}\n")
    as_superuser(books, ["UPDATE invoice SET document_sha256 = :h, chain_sha256 = :c WHERE number_seq = 2"],
                 {"h": digest, "c": chain})
    report = verify(books)
    chain_breaks = _breaks(report, "chain")
    assert [s for s, _ in chain_breaks if "OP-000002" in s] == []  # consistent in itself
    assert [(s.split(" (")[0], p.split(":")[0]) for s, p in chain_breaks] == [("invoice OP-000003", "link broken")]
    # and its queued rendering no longer belongs to the issued document
    assert any("OP-000002" in s or second.id in s for s, _ in _breaks(report, "outbox"))


def test_a_truncated_invoice_table_is_found(books):
    if books.dialect == "postgresql":
        as_superuser(books, ["TRUNCATE invoice, invoice_line"])
    else:
        as_superuser(books, ["DELETE FROM invoice", "DELETE FROM invoice_line"])
    report = verify(books)
    assert report.checked["documents"] == 0
    assert ("seller op", "invoice_sequence has given out numbers 1..4 but no document of the seller exists "
                         "(removed or emptied)") in _breaks(report, "numbering")
    assert len([1 for s, p in _breaks(report, "runs") if "is not in the invoice table" in p]) == 4
    assert len([1 for s, p in _breaks(report, "outbox") if "is not an issued document" in p]) == 4


def test_a_sequence_jump_is_found(books):
    with books.write_transaction() as conn:
        conn.execute(text("UPDATE invoice_sequence SET next_number = next_number + 5"))
    assert _breaks(verify(books), "numbering") == [
        ("seller op", "invoice_sequence jumped: next number 10, last issued 4; numbers 5..9 would be skipped")]


def test_a_removed_document_leaves_a_gap(books):
    as_superuser(books, ["DELETE FROM invoice_line WHERE invoice_id IN (SELECT id FROM invoice WHERE number_seq = 2)",
                         "DELETE FROM invoice WHERE number_seq = 2"])
    report = verify(books)
    assert ("seller op", "numbers 2 are missing below the last issued number 4 (documents removed, or the sequence "
                         "jumped)") in _breaks(report, "numbering")


def test_edited_run_inputs_and_deleted_interval_data_are_found(books):
    with books.write_transaction() as conn:
        conn.execute(text("UPDATE settlement_run SET statement = statement || ' ' WHERE id = 'ppa-a:2026-10:initial:1'"))
        conn.execute(text("DELETE FROM run_input WHERE run_id = 'ppa-b:2026-10:initial:1' AND channel_id = 'pv.net'"))
        conn.execute(text("DELETE FROM interval_day WHERE channel_id = 'a.load' AND day = '2026-11-15'"))
    runs = _breaks(verify(books), "runs")
    assert ("run ppa-a:2026-10:initial:1", "the statement was changed (it no longer matches statement_hash)") in runs
    assert any(s == "run ppa-b:2026-10:initial:1" and "do not match the input digest" in p for s, p in runs)
    assert any(s == "run ppa-a:2026-11:initial:1" and "are gone from interval_day" in p and "a.load 2026-11-15" in p
               for s, p in runs)


def test_the_anchor_catches_a_consistent_rewrite_of_the_newest_document(books, tmp_path):
    anchor = tmp_path / "anchor.json"
    first = verify(books)
    write_anchor(anchor, first)
    t = invoice_table
    with books.engine.connect() as conn:
        last = conn.execute(select(t).where(t.c.number_seq == 4)).one()
    doc = json.loads(last.document)
    doc["note"] = "rewritten"
    forged = json.dumps(doc)
    digest = _sha(forged)
    chain = _sha(f"kwhub-chain-v1\nop\n4\n{last.id}\n{digest}\n{last.prev_chain_sha256}\n")
    as_superuser(books, ["UPDATE invoice SET document = :d, document_sha256 = :h, chain_sha256 = :c "
                         "WHERE number_seq = 4"], {"d": forged, "h": digest, "c": chain})
    without = verify(books)
    assert not _breaks(without, "chain")  # consistent inside the database...
    report = verify(books, anchor=read_anchor(anchor))
    assert _breaks(report, "anchor") == [(
        "seller op head OP-000004 (anchored)",
        "document #4 has another chain hash than when it was anchored: it or a document before it was rewritten")]


def test_protection_checks(books):
    report = verify(books)
    if books.dialect == "postgresql":  # the test server connects as a superuser that owns the tables
        warned = {(f.subject, f.problem.split(":")[0]) for f in report.warnings}
        assert ("role postgres", "is a superuser") in warned
        assert any(s == "table invoice" and "owned by the connected role" in p for s, p in
                   ((f.subject, f.problem) for f in report.warnings))
        as_superuser(books, ["ALTER TABLE invoice DISABLE TRIGGER invoice_no_truncate"])
        try:
            assert ("trigger invoice_no_truncate on invoice", "is disabled: the table can be changed") in _breaks(
                verify(books), "protection")
        finally:  # the session database is shared by the PostgreSQL tests
            as_superuser(books, ["ALTER TABLE invoice ENABLE TRIGGER invoice_no_truncate"])
    else:
        assert report.warnings == []
        with books.write_transaction() as conn:
            conn.execute(text("DROP TRIGGER invoice_no_replace"))
        assert _breaks(verify(books), "protection") == [
            ("trigger invoice_no_replace", "is missing: the table it guarded can be changed")]


def test_verify_command_exit_codes_and_anchor(tmp_path, monkeypatch):
    from kwhub.hub.cli.main import app
    from kwhub.hub.store import Database

    (tmp_path / "kwhub.toml").write_text('[[sites]]\nid = "campus"\n')
    db = Database.open(work_dir=tmp_path)
    write_period(db, "2026-10")
    settle(db, settle_campus(), "2026-10", issue_date=date(2026, 11, 3))
    db.close()
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    res = runner.invoke(app, ["verify", "--anchor", "anchor.json"])
    assert res.exit_code == 0, res.output
    assert "evidence intact" in res.output and "head of op: OP-000002" in res.output
    assert json.loads((tmp_path / "anchor.json").read_text())["heads"]["op"]["number_seq"] == 2
    db = Database.open(work_dir=tmp_path)
    with db.write_transaction() as conn:
        conn.execute(text("UPDATE invoice_sequence SET next_number = 7"))
    db.close()
    res = runner.invoke(app, ["verify", "--anchor", "anchor.json", "--format", "json"])
    assert res.exit_code == 3, res.output
    out = json.loads(res.stdout)
    assert out["ok"] is False and out["breaks"][0]["check"] == "numbering"
