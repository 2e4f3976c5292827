"""OutboxBatch: many invoices queued in one transaction, rendered on a worker pool; the rows,
checks and errors are those of one enqueue_invoice per invoice. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pytest

from kwhub.core.campus import DeliveryPrefs
from kwhub.hub.deliver.outbox import OutboxBatch, OutboxError, enqueue_invoice, list_outbox
from kwhub.hub.deliver.rendering import render_document
from kwhub.hub.settle.integrity import Outgoing, check_outgoing
from kwhub.plugins.erp.json_folder import JsonRenderer
from tests.fixtures.outbox import JsonTestRenderer, TextTestRenderer, issue_invoices

PREFS = DeliveryPrefs(formats=["json"], transports=["erp"])


def _check_rows(db, invoices, renderer):
    """Every row is a registered rendering of its issued document, reproduced byte for byte."""
    rows = list_outbox(db)
    assert sorted(r["invoice_id"] for r in rows) == sorted(inv.id for inv in invoices)
    from sqlalchemy import select

    from kwhub.hub.store.outbox_tables import outbox_table as t

    with db.write_transaction() as conn:
        stored = conn.execute(select(t.c.id, t.c.invoice_id, t.c.format_id, t.c.body, t.c.body_sha256,
                                     t.c.document_sha256)).all()
        assert check_outgoing(conn, [Outgoing(r.id, r.invoice_id, r.format_id, bytes(r.body), r.body_sha256,
                                              r.document_sha256) for r in stored]) == {}
        by_id = {inv.id: inv for inv in invoices}
        for r in stored:
            again = render_document(conn, by_id[r.invoice_id], renderer)
            assert not again.first_time and again.sha256 == r.body_sha256
    return rows


def test_a_batch_on_worker_processes_queues_what_enqueue_invoice_queues(db, outbox_invoices):
    renderer = JsonRenderer("json")
    one_by_one, batched = outbox_invoices(3), outbox_invoices(3, start=10)
    with db.write_transaction() as conn:
        issue_invoices(conn, one_by_one + batched)
        for inv in one_by_one:
            enqueue_invoice(conn, inv, [renderer], PREFS, ["erp"])
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        with db.write_transaction() as conn:
            batch = OutboxBatch([renderer], ["erp"], executor=pool)
            for inv in batched:
                batch.add(conn, inv, PREFS)
            written = batch.finish(conn)
    assert [w.idempotency_key for w in written] == [f"{inv.id}:v1:json" for inv in batched]
    assert all(w.id is not None for w in written)
    rows = _check_rows(db, one_by_one + batched, renderer)
    a = {r["invoice_id"]: r for r in rows}
    for inline, pooled in zip(one_by_one, batched, strict=True):
        x, y = a[inline.id], a[pooled.id]
        for col in ("status", "attempts", "format_id", "transport_instance", "media_type", "possible_duplicate"):
            assert x[col] == y[col]
        assert y["filename"] == f"{pooled.number}_v1_json.json"
    # queued again, batched or not: nothing new
    with ThreadPoolExecutor(2) as pool, db.write_transaction() as conn:
        batch = OutboxBatch([renderer], ["erp"], executor=pool)
        for inv in one_by_one + batched:
            batch.add(conn, inv, PREFS)
        assert batch.finish(conn) == []
        assert enqueue_invoice(conn, batched[0], [renderer], PREFS, ["erp"]) == []
    assert len(list_outbox(db)) == 6


def test_an_invoice_added_twice_is_queued_once(db, outbox_invoices):
    (inv,) = outbox_invoices(1)
    prefs = DeliveryPrefs(formats=["json", "txt"], transports=["erp", "drop"])
    with ThreadPoolExecutor(2) as pool, db.write_transaction() as conn:
        issue_invoices(conn, [inv])
        batch = OutboxBatch([JsonTestRenderer("json"), TextTestRenderer("txt")], ["erp", "drop"], executor=pool)
        batch.add(conn, inv, prefs)
        batch.add(conn, inv, prefs)
        assert len(batch.finish(conn)) == 4
    assert len(list_outbox(db)) == 4


class _Refused(JsonTestRenderer):
    def validate(self, data: bytes) -> list[str]:
        return ["BR-01: /Invoice: no specification identifier"]


class _Unrenderable(JsonTestRenderer):
    def render(self, invoice, context=None) -> bytes:
        raise ValueError("the format has no field for the payee account")


@pytest.mark.parametrize(("renderer", "message"), [
    (_Refused("json"), "rendered json document is invalid: BR-01: /Invoice: no specification identifier"),
    (_Unrenderable("json"), "cannot render json: the format has no field for the payee account"),
])
def test_a_bad_rendering_in_a_worker_fails_the_batch_and_nothing_is_queued(db, outbox_invoices, renderer, message):
    invoices = outbox_invoices(3)
    with pytest.raises(OutboxError, match=message) as err, ThreadPoolExecutor(2) as pool, \
            db.write_transaction() as conn:
        issue_invoices(conn, invoices)
        batch = OutboxBatch([renderer], ["erp"], executor=pool)
        for inv in invoices:
            batch.add(conn, inv, PREFS)
        batch.finish(conn)
    assert f"invoice {invoices[0].number}:" in str(err.value)
    assert list_outbox(db) == []


def test_a_batch_checks_like_enqueue_invoice(db, outbox_invoices):
    (inv,) = outbox_invoices(1)
    batch = OutboxBatch([JsonTestRenderer("json")], ["erp"])
    with db.write_transaction() as conn:
        with pytest.raises(OutboxError, match="is not issued"):
            batch.add(conn, inv, PREFS)
        with pytest.raises(OutboxError, match=r"unknown transport instance\(s\) drop"):
            batch.add(conn, inv, DeliveryPrefs(formats=["json"], transports=["drop"]))
        with pytest.raises(OutboxError, match=r"no renderer for format\(s\) ubl"):
            batch.add(conn, inv, DeliveryPrefs(formats=["ubl"], transports=["erp"]))


def test_the_issuing_hook_queues_a_batch_as_it_queues_each_invoice(db, outbox_invoices):
    """OutboxHook.many (what settlement calls for a batch) writes the rows one call per invoice
    writes: every route, two transports of one format sharing its rendering and key."""
    from kwhub.hub.settle.issuing import OutboxHook

    renderers = {"json": JsonTestRenderer("json"), "txt": TextTestRenderer("txt")}
    one, many = outbox_invoices(3), outbox_invoices(3, start=10)
    routes = {inv.buyer.id: [("json", "erp"), ("json", "drop"), ("txt", "drop")] for inv in one + many}
    with db.write_transaction() as conn:
        issue_invoices(conn, one + many)
    hook = OutboxHook(renderers, routes, ["erp", "drop"])
    with db.write_transaction() as conn:
        for inv in one:
            hook(conn, inv)
    with ThreadPoolExecutor(2) as pool, db.write_transaction() as conn:
        OutboxHook(renderers, routes, ["erp", "drop"], executor=pool).many(conn, many)
    rows = list_outbox(db)
    routes_of = {}
    for r in rows:
        routes_of.setdefault(r["invoice_id"], set()).add((r["format_id"], r["transport_instance"]))
    want = {("json", "erp"), ("json", "drop"), ("txt", "drop")}
    assert all(routes_of[inv.id] == want for inv in one + many)
    keys = {(r["invoice_id"], r["transport_instance"]): r["idempotency_key"] for r in rows if r["format_id"] == "json"}
    assert all(keys[(inv.id, "erp")] == keys[(inv.id, "drop")] == f"{inv.id}:v1:json" for inv in one + many)
    with db.write_transaction() as conn:  # queued again: nothing new
        hook.many(conn, one + many)
    assert len(list_outbox(db)) == len(rows) == 18


def test_the_issuing_hook_refuses_a_batch_with_a_settlement_error(db, outbox_invoices):
    from kwhub.core.settlement import SettlementError
    from kwhub.hub.settle.issuing import OutboxHook

    invoices = outbox_invoices(2)
    with db.write_transaction() as conn:
        issue_invoices(conn, invoices[:1])
    hook = OutboxHook({"json": JsonTestRenderer("json")}, {inv.buyer.id: [("json", "erp")] for inv in invoices}, ["erp"])
    with pytest.raises(SettlementError, match=rf"{invoices[1].number}.*not issued.*the run was not recorded"):
        with db.write_transaction() as conn:
            hook.many(conn, invoices)
    assert list_outbox(db) == []


def test_the_caller_renders_the_chunks_no_worker_started(db, outbox_invoices):
    """finish() renders the chunks still waiting in the executor's queue itself; the rows are the same."""
    import threading

    from kwhub.hub.deliver.outbox import enqueue as enq

    gate = threading.Event()
    invoices = outbox_invoices(3 * enq.CHUNK)
    renderer = JsonRenderer("json")
    with ThreadPoolExecutor(1) as pool:
        pool.submit(gate.wait, 30)  # the only worker is busy: every chunk stays queued
        with db.write_transaction() as conn:
            issue_invoices(conn, invoices)
            batch = OutboxBatch([renderer], ["erp"], executor=pool)
            batch.add_many(conn, [(inv, PREFS, None) for inv in invoices])
            written = batch.finish(conn)
        gate.set()
    assert [w.idempotency_key for w in written] == [f"{inv.id}:v1:json" for inv in invoices]
    _check_rows(db, invoices, renderer)


def test_edi_control_numbers_follow_the_order_added(db, outbox_invoices):
    """Two EDI formats of one trading partner: each invoice takes its numbers before the next one."""
    from sqlalchemy import select

    from kwhub.hub.store.rendering_tables import rendered_document_table as rt
    from kwhub.plugins.erp.x12 import X12InvoiceRenderer, X12UsageRenderer

    invoices = outbox_invoices(3)
    prefs = DeliveryPrefs(formats=["x12_810", "x12_867"], transports=["erp"])
    with db.write_transaction() as conn:
        issue_invoices(conn, invoices)
        batch = OutboxBatch([X12InvoiceRenderer("x12_810"), X12UsageRenderer("x12_867")], ["erp"])
        batch.add_many(conn, [(inv, prefs, None) for inv in invoices])
        batch.finish(conn)
        numbers = {(r.invoice_id, r.format_id): r.control_number
                   for r in conn.execute(select(rt.c.invoice_id, rt.c.format_id, rt.c.control_number))}
    got = [numbers[(inv.id, fmt)] for inv in invoices for fmt in ("x12_810", "x12_867")]
    assert got == list(range(got[0], got[0] + 6))
