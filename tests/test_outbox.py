"""The outbox: enqueue inside the invoice transaction, relay with retries and dead letters.

Runs on SQLite and PostgreSQL (``db`` fixture) against the local ERP receiver.
"""

from __future__ import annotations

import logging
import random
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from kwhub.core.campus import DeliveryPrefs
from kwhub.hub.deliver.outbox import (
    OutboxError,
    RetryPolicy,
    enqueue_invoice,
    list_outbox,
    relay_once,
    retry_dead,
    run_relay,
    status_counts,
)
from kwhub.hub.store.outbox_tables import as_utc, outbox_table, utcnow
from kwhub.plugins.erp.folder_drop import FolderDropTransport
from kwhub.plugins.erp.webhook import WebhookTransport
from tests.fixtures.outbox import RECEIVER_SECRET, JsonTestRenderer, TextTestRenderer

PREFS = DeliveryPrefs(formats=["json"], transports=["erp"])


def _hook(url: str, **retry) -> WebhookTransport:
    return WebhookTransport("erp", {
        "url": url, "secret": RECEIVER_SECRET, "read_timeout_s": 0.5,
        "retry": {"base_s": 10, "cap_s": 60, "max_attempts": 3, **retry},
    })


def _queue(db, invoices, prefs=PREFS, renderers=None, transports=("erp",)):
    renderers = renderers or {"json": JsonTestRenderer("json")}
    with db.write_transaction() as conn:
        for inv in invoices:
            enqueue_invoice(conn, inv, renderers, prefs, list(transports))


def _rows(db):
    return {r["idempotency_key"]: r for r in list_outbox(db)}


def test_enqueue_commits_and_rolls_back_with_the_caller(db, outbox_invoices):
    inv = outbox_invoices(1)[0]
    with pytest.raises(RuntimeError), db.write_transaction() as conn:
        written = enqueue_invoice(conn, inv, [JsonTestRenderer("json")], PREFS, ["erp"])
        assert len(written) == 1
        raise RuntimeError("invoice insert failed")
    assert list_outbox(db) == []
    prefs = DeliveryPrefs(formats=["json", "txt"], transports=["erp", "drop"])
    with db.write_transaction() as conn:
        written = enqueue_invoice(conn, inv, [JsonTestRenderer("json"), TextTestRenderer("txt")], prefs,
                                  {"erp": object(), "drop": object()})
    assert len(written) == 4
    rows = list_outbox(db)
    assert {(r["format_id"], r["transport_instance"]) for r in rows} == {
        ("json", "erp"), ("json", "drop"), ("txt", "erp"), ("txt", "drop")}
    assert {r["idempotency_key"] for r in rows} == {f"{inv.id}:v1:json", f"{inv.id}:v1:txt"}
    assert all(r["status"] == "pending" and r["attempts"] == 0 for r in rows)
    assert {r["filename"] for r in rows} == {"INV-T-00001_v1_json.json", "INV-T-00001_v1_txt.txt"}
    # the same invoice version again: nothing new
    with db.write_transaction() as conn:
        assert enqueue_invoice(conn, inv, [JsonTestRenderer("json"), TextTestRenderer("txt")], prefs) == []
    assert len(list_outbox(db)) == 4


def test_enqueue_through_a_session(db, outbox_invoices):
    inv = outbox_invoices(1)[0]
    with db.session() as session:
        enqueue_invoice(session, inv, [JsonTestRenderer("json")], PREFS)
        session.rollback()
    assert list_outbox(db) == []
    with db.session() as session:
        enqueue_invoice(session, inv, [JsonTestRenderer("json")], PREFS)
        session.commit()
    assert len(list_outbox(db)) == 1


def test_enqueue_refuses_bad_preferences_and_invalid_documents(db, outbox_invoices):
    inv = outbox_invoices(1)[0]
    with db.write_transaction() as conn:
        with pytest.raises(OutboxError, match="unknown transport instance.*nope"):
            enqueue_invoice(conn, inv, [JsonTestRenderer("json")],
                            DeliveryPrefs(formats=["json"], transports=["nope"]), ["erp"])
        with pytest.raises(OutboxError, match="no renderer for format.*ubl"):
            enqueue_invoice(conn, inv, [JsonTestRenderer("json")],
                            DeliveryPrefs(formats=["ubl"], transports=["erp"]), ["erp"])
        bad = JsonTestRenderer("json")
        bad.problems = ["cbc:ID missing"]
        with pytest.raises(OutboxError, match="invalid: cbc:ID missing"):
            enqueue_invoice(conn, inv, [bad], PREFS, ["erp"])
    assert list_outbox(db) == []


def test_relay_delivers_each_invoice_once(db, outbox_invoices, erp_receiver):
    invoices = outbox_invoices(6)
    _queue(db, invoices)
    hook = _hook(erp_receiver.url)
    try:
        report = relay_once(db, None, {"erp": hook}, limit=4)
        assert (report.picked, report.delivered) == (4, 4)
        report = run_relay(db, None, {"erp": hook}, once=True, concurrency=3)
        assert report.delivered == 2
    finally:
        hook.close()
    assert erp_receiver.imported() == {f"{inv.id}:v1:json": 1 for inv in invoices}
    rows = list_outbox(db)
    assert all(r["status"] == "delivered" and r["attempts"] == 1 and r["delivered_at"] for r in rows)
    assert status_counts(db) == {"pending": 0, "sending": 0, "delivered": 6, "dead": 0}
    assert relay_once(db, None, {"erp": hook}).picked == 0


def test_5xx_then_2xx_is_delivered_after_backoff(db, outbox_invoices, erp_receiver):
    _queue(db, outbox_invoices(1))
    erp_receiver.script(503)
    hook = _hook(erp_receiver.url)
    t0 = utcnow()
    first = relay_once(db, None, {"erp": hook}, now=t0, rng=random.Random(1))
    assert (first.retried, first.delivered) == (1, 0)
    (row,) = list_outbox(db)
    assert row["status"] == "pending" and row["attempts"] == 1 and row["last_status"] == 503
    wait = (row["next_attempt_at"] - t0).total_seconds()
    assert 0 <= wait <= 10  # first retry: uniform(0, base_s)
    assert relay_once(db, None, {"erp": hook}, now=t0 - timedelta(seconds=1)).picked == 0  # not due yet
    second = relay_once(db, None, {"erp": hook}, now=row["next_attempt_at"])
    assert second.delivered == 1
    (row,) = list_outbox(db)
    assert row["status"] == "delivered" and row["attempts"] == 2 and row["last_error"] is None
    assert list(erp_receiver.imported().values()) == [1]
    hook.close()


def test_repeated_5xx_is_dead_after_max_attempts(db, outbox_invoices, erp_receiver):
    _queue(db, outbox_invoices(1))
    erp_receiver.fail_always(500)
    hook = _hook(erp_receiver.url)
    now = utcnow()
    for attempt in (1, 2, 3):
        rep = relay_once(db, None, {"erp": hook}, now=now)
        assert rep.picked == 1
        (row,) = list_outbox(db)
        assert row["attempts"] == attempt
        now = row["next_attempt_at"] + timedelta(seconds=1)
    assert rep.dead == 1
    (row,) = list_outbox(db)
    assert row["status"] == "dead" and "gave up after 3 attempts" in row["last_error"]
    assert "scripted HTTP 500" in row["response"]
    assert relay_once(db, None, {"erp": hook}, now=now + timedelta(days=1)).picked == 0
    # an operator revives it once the ERP is fixed
    erp_receiver.fail_always(None)
    retry_dead(db, row["id"])
    assert relay_once(db, None, {"erp": hook}).delivered == 1
    assert list_outbox(db)[0]["status"] == "delivered"
    with pytest.raises(OutboxError, match="only dead rows"):
        retry_dead(db, row["id"])
    hook.close()


def test_4xx_is_dead_at_once_with_the_response_kept(db, outbox_invoices, erp_receiver, caplog):
    _queue(db, outbox_invoices(2))
    erp_receiver.script(422)
    hook = _hook(erp_receiver.url)
    with caplog.at_level(logging.ERROR, logger="kwhub.outbox"):
        rep = relay_once(db, None, {"erp": hook}, limit=1)
    assert (rep.dead, rep.retried) == (1, 0)
    dead = list_outbox(db, status="dead")
    assert len(dead) == 1 and dead[0]["attempts"] == 1 and dead[0]["last_status"] == 422
    assert "scripted HTTP 422" in dead[0]["response"]
    assert "dead-lettered" in caplog.text
    assert relay_once(db, None, {"erp": hook}).delivered == 1  # the other invoice is not held up
    hook.close()


def test_timeout_is_retried(db, outbox_invoices, erp_receiver):
    _queue(db, outbox_invoices(1))
    erp_receiver.script("slow:1.2")
    hook = _hook(erp_receiver.url)
    rep = relay_once(db, None, {"erp": hook})
    assert rep.retried == 1
    (row,) = list_outbox(db)
    assert row["status"] == "pending" and "timeout" in row["last_error"]
    assert relay_once(db, None, {"erp": hook}, now=row["next_attempt_at"]).delivered == 1
    hook.close()


def test_expired_lease_is_resent_and_flagged(db, outbox_invoices, erp_receiver, caplog):
    invoices = outbox_invoices(2)
    _queue(db, invoices)
    hook = _hook(erp_receiver.url, lease_s=30)
    # A relay claimed both rows and sent the first one, then died before recording anything.
    t = outbox_table
    claimed_at = utcnow() - timedelta(seconds=60)
    with db.write_transaction() as conn:
        conn.execute(update(t).values(status="sending", attempts=1, last_attempt_at=claimed_at,
                                      next_attempt_at=claimed_at + timedelta(seconds=30)))
    assert hook.send(_doc_for(db, invoices[0].id)).ok
    with caplog.at_level(logging.WARNING, logger="kwhub.outbox"):
        rep = relay_once(db, None, {"erp": hook})
    assert rep.delivered == 2 and sorted(rep.possible_duplicates) == sorted(f"{i.id}:v1:json" for i in invoices)
    assert caplog.text.count("possible duplicate delivery") == 2
    assert "receiver reported duplicate: yes" in caplog.text  # the first one
    assert "receiver reported duplicate: no" in caplog.text  # the second never arrived
    rows = list_outbox(db)
    assert all(r["possible_duplicate"] and r["attempts"] == 2 and r["status"] == "delivered" for r in rows)
    assert erp_receiver.imported() == {f"{i.id}:v1:json": 1 for i in invoices}
    hook.close()


def test_claimed_rows_are_not_sent_by_a_second_relay(db, outbox_invoices, erp_receiver):
    _queue(db, outbox_invoices(1))
    t = outbox_table
    lease_end = utcnow() + timedelta(seconds=60)
    with db.write_transaction() as conn:
        conn.execute(update(t).values(status="sending", attempts=1, next_attempt_at=lease_end))
    hook = _hook(erp_receiver.url)
    assert relay_once(db, None, {"erp": hook}).picked == 0
    assert erp_receiver.records == []
    hook.close()


def test_relay_only_touches_its_transports(db, outbox_invoices, tmp_path):
    prefs = DeliveryPrefs(formats=["json"], transports=["erp", "drop"])
    _queue(db, outbox_invoices(2), prefs=prefs, transports=("erp", "drop"))
    drop = FolderDropTransport("drop", {"folder": str(tmp_path / "drop")})
    rep = relay_once(db, None, {"drop": drop})
    assert rep.delivered == 2
    assert sorted(p.name for p in (tmp_path / "drop").iterdir()) == ["INV-T-00001_v1_json.json",
                                                                     "INV-T-00002_v1_json.json"]
    assert status_counts(db) == {"pending": 2, "sending": 0, "delivered": 2, "dead": 0}
    assert {r["transport_instance"] for r in list_outbox(db, status="pending")} == {"erp"}


def test_transports_built_through_the_registry(db, outbox_invoices, tmp_path, registry):
    _queue(db, outbox_invoices(1), prefs=DeliveryPrefs(formats=["json"], transports=["drop"]),
           transports=("drop",))
    rep = relay_once(db, registry, {"drop": ("erp.folder", {"folder": str(tmp_path / "d")})})
    assert rep.delivered == 1 and len(list((tmp_path / "d").iterdir())) == 1


def test_backoff_is_full_jitter_under_a_capped_ceiling():
    pol = RetryPolicy(base_s=2, cap_s=30, max_attempts=10)
    rng = random.Random(7)
    for attempt, ceiling in [(1, 2), (2, 4), (3, 8), (4, 16), (5, 30), (9, 30)]:
        samples = [pol.backoff(attempt, rng) for _ in range(400)]
        assert all(0 <= s <= ceiling for s in samples)
        assert max(samples) > 0.9 * ceiling and min(samples) < 0.1 * ceiling  # spread over the range


def _doc_for(db, invoice_id):
    from kwhub.core.adapters import OutgoingDocument

    t = outbox_table
    with db.engine.connect() as conn:
        r = conn.execute(select(t).where(t.c.invoice_id == invoice_id)).first()
    return OutgoingDocument(r.invoice_id, r.invoice_version, r.format_id, r.filename, r.media_type, bytes(r.body))


def test_timestamps_are_utc(db, outbox_invoices):
    _queue(db, outbox_invoices(1))
    (row,) = list_outbox(db)
    assert row["created_at"].utcoffset() == timedelta(0)
    assert abs((as_utc(row["created_at"]) - utcnow()).total_seconds()) < 60


def test_claims_whose_lease_runs_low_are_released_unsent(db, outbox_invoices, erp_receiver):
    _queue(db, outbox_invoices(3))
    erp_receiver.script("slow:0.3")  # the first send eats more than half of a 0.4 s lease
    hook = _hook(erp_receiver.url, lease_s=0.4)
    rep = relay_once(db, None, {"erp": hook}, limit=3)
    assert (rep.delivered, rep.released, rep.picked) == (1, 2, 1)
    assert len(erp_receiver.records) == 1
    pending = list_outbox(db, status="pending")
    assert len(pending) == 2 and all(r["attempts"] == 0 and not r["possible_duplicate"] for r in pending)
    assert run_relay(db, None, {"erp": hook}, once=True).delivered == 2
    hook.close()
