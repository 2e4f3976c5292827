"""At-least-once delivery across a relay crash, with a real process kill.

The relay runs as a subprocess with ``KWHUB_TEST_CRASH_AFTER_SEND=N``: after its N-th
send got the receiver's answer, and before the outcome is committed, it SIGKILLs itself.
A second, normal relay run (in the test process, to capture its log) then re-sends the unacknowledged row with the same
idempotency key. A deduplicating ERP imports every invoice exactly once; a naive one
imports that one invoice twice, and the relay logged the possible duplicate.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time

import pytest

from kwhub.core.campus import DeliveryPrefs
from kwhub.hub.deliver.outbox import enqueue_invoice, list_outbox, run_relay
from kwhub.plugins.erp.webhook import WebhookTransport
from tests.fixtures.outbox import RECEIVER_SECRET, JsonTestRenderer, issue_invoices

RELAY = """
import json, logging, os, sys
from kwhub.hub.deliver.outbox import run_relay
from kwhub.hub.store import Database
from kwhub.plugins.erp.webhook import WebhookTransport
logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
cfg = json.loads(os.environ["KWHUB_TEST_RELAY"])
db = Database.open(cfg["url"])
hook = WebhookTransport("erp", cfg["webhook"])
report = run_relay(db, None, {"erp": hook}, once=True, limit=cfg["limit"])
hook.close()
print(json.dumps(report.as_dict()))
"""

N_INVOICES = 5
CRASH_AFTER = 3
LEASE_S = 1.5  # sends get half of it as their deadline; room for a loaded machine


def _webhook_config(url: str) -> dict:
    return {"url": url, "secret": RECEIVER_SECRET,
            "retry": {"base_s": 0.05, "cap_s": 0.1, "max_attempts": 5, "lease_s": LEASE_S}}


def _run_relay(db, url: str, crash_after: int | None, limit: int = 1) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("KWHUB_TEST_CRASH_AFTER_SEND", None)
    if crash_after is not None:
        env["KWHUB_TEST_CRASH_AFTER_SEND"] = str(crash_after)
    env["KWHUB_TEST_RELAY"] = json.dumps({"url": db.url, "limit": limit, "webhook": _webhook_config(url)})
    return subprocess.run([sys.executable, "-c", RELAY], env=env, capture_output=True, text=True, timeout=60)


def _crash_and_recover(db, outbox_invoices, receiver, caplog):
    invoices = outbox_invoices(N_INVOICES)
    with db.write_transaction() as conn:
        issue_invoices(conn, invoices)
        for inv in invoices:
            enqueue_invoice(conn, inv, [JsonTestRenderer("json")], DeliveryPrefs(formats=["json"], transports=["erp"]))
    crashed = _run_relay(db, receiver.url, CRASH_AFTER)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    rows = {r["invoice_id"]: r for r in list_outbox(db)}
    lost = invoices[CRASH_AFTER - 1].id
    assert rows[lost]["status"] == "sending"  # sent, answered, never acknowledged
    assert sum(r["status"] == "delivered" for r in rows.values()) == CRASH_AFTER - 1
    assert sum(r["status"] == "pending" for r in rows.values()) == N_INVOICES - CRASH_AFTER
    time.sleep(LEASE_S + 0.2)  # the dead relay's lease runs out
    # Restart: a normal relay run (in this process, so its log is captured).
    hook = WebhookTransport("erp", _webhook_config(receiver.url))
    with caplog.at_level(logging.WARNING, logger="kwhub.outbox"):
        report = run_relay(db, None, {"erp": hook}, once=True, limit=1).as_dict()
    hook.close()
    key = f"{lost}:v1:json"
    assert report["possible_duplicates"] == [key]
    assert report["delivered"] == N_INVOICES - CRASH_AFTER + 1
    rows = {r["invoice_id"]: r for r in list_outbox(db)}
    assert all(r["status"] == "delivered" for r in rows.values())
    assert rows[lost]["possible_duplicate"] and rows[lost]["attempts"] == 2
    assert [k for k, r in rows.items() if r["possible_duplicate"]] == [lost]
    return invoices, key, caplog.text


def test_dedupe_receiver_imports_each_invoice_once(db, outbox_invoices, erp_receiver_factory, caplog):
    receiver = erp_receiver_factory(dedupe=True)
    invoices, key, log = _crash_and_recover(db, outbox_invoices, receiver, caplog)
    assert receiver.imported() == {f"{inv.id}:v1:json": 1 for inv in invoices}
    replays = [r for r in receiver.records if r["duplicate"]]
    assert [r["idempotency_key"] for r in replays] == [key]  # the re-send reached it and was recognised
    assert f"possible duplicate delivery: {key}" in log and "receiver reported duplicate: yes" in log
    on_disk = [json.loads(line) for line in receiver.record_path.read_text().splitlines()]
    assert sum(r["accepted"] for r in on_disk) == N_INVOICES


def test_naive_receiver_sees_at_most_one_duplicate_and_the_relay_logs_it(sqlite_db, outbox_invoices,
                                                                         erp_receiver_factory, caplog):
    # SQLite only: the relay logic is the same on both databases (the dedupe test runs on both).
    receiver = erp_receiver_factory(dedupe=False)
    invoices, key, log = _crash_and_recover(sqlite_db, outbox_invoices, receiver, caplog)
    counts = receiver.imported()
    assert set(counts) == {f"{inv.id}:v1:json" for inv in invoices}
    assert counts[key] == 2
    assert all(n == 1 for k, n in counts.items() if k != key)
    assert f"possible duplicate delivery: {key}" in log and "receiver reported duplicate: no" in log


@pytest.mark.parametrize("value", ["", "0"])
def test_crash_hook_is_off_unless_set(value, monkeypatch):
    from kwhub.hub.deliver.outbox import relay

    monkeypatch.setenv("KWHUB_TEST_CRASH_AFTER_SEND", value)
    relay._crash_hook()  # returns: this test process is still alive


def test_after_a_crash_only_the_row_whose_send_started_is_flagged(db, outbox_invoices, erp_receiver_factory, caplog):
    """The relay claims all five rows at once and dies after its third send: rows 4 and 5
    were claimed but never sent, so they are sent once, unflagged, their unused attempt
    not counted; only row 3 is a possible duplicate."""
    receiver = erp_receiver_factory(dedupe=True)
    invoices = outbox_invoices(N_INVOICES)
    with db.write_transaction() as conn:
        issue_invoices(conn, invoices)
        for inv in invoices:
            enqueue_invoice(conn, inv, [JsonTestRenderer("json")], DeliveryPrefs(formats=["json"], transports=["erp"]))
    crashed = _run_relay(db, receiver.url, CRASH_AFTER, limit=N_INVOICES)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    rows = {r["invoice_id"]: r for r in list_outbox(db)}
    flights = [rows[inv.id]["flight"] or rows[inv.id]["status"] for inv in invoices]
    assert flights[:2] == ["delivered", "delivered"]
    assert {rows[inv.id]["status"] for inv in invoices[2:]} == {"sending"}
    assert rows[invoices[2].id]["send_started_at"] is not None
    assert all(rows[inv.id]["send_started_at"] is None for inv in invoices[3:])
    time.sleep(LEASE_S + 0.2)
    hook = WebhookTransport("erp", _webhook_config(receiver.url))
    with caplog.at_level(logging.WARNING, logger="kwhub.outbox"):
        report = run_relay(db, None, {"erp": hook}, once=True, limit=N_INVOICES).as_dict()
    hook.close()
    started = f"{invoices[2].id}:v1:json"
    assert report["possible_duplicates"] == [started] and report["delivered"] == 3
    rows = {r["invoice_id"]: r for r in list_outbox(db)}
    assert [k for k, r in rows.items() if r["possible_duplicate"]] == [invoices[2].id]
    assert [rows[inv.id]["attempts"] for inv in invoices] == [1, 1, 2, 1, 1]
    assert receiver.imported() == {f"{inv.id}:v1:json": 1 for inv in invoices}
    assert caplog.text.count("possible duplicate delivery") == 1
