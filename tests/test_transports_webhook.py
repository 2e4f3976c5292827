"""The HTTPS webhook transport against the local ERP receiver (a real HTTP server)."""

from __future__ import annotations

import hashlib

import pytest
from pydantic import ValidationError

from kwhub.core.adapters import FailureKind, OutgoingDocument
from kwhub.hub.helpers.webhook_signature import sign_request, verify_request
from kwhub.plugins.erp.webhook import WebhookTransport
from tests.fixtures.outbox import RECEIVER_SECRET, free_port


def _doc(n: int = 1, body: bytes | None = None) -> OutgoingDocument:
    return OutgoingDocument(
        invoice_id=f"inv-{n}", version=1, format_id="json", filename=f"INV-{n}_v1_json.json",
        media_type="application/json", body=body if body is not None else f'{{"n": {n}}}'.encode(),
    )


_OPEN: list[WebhookTransport] = []


@pytest.fixture(autouse=True)
def _close_hooks():
    """Each test's transports are closed after it (their keep-alive connections with them)."""
    yield
    while _OPEN:
        _OPEN.pop().close()


def _hook(url: str, **kw) -> WebhookTransport:
    cfg = {"url": url, "secret": RECEIVER_SECRET, "connect_timeout_s": 2, "read_timeout_s": 2, **kw}
    hook = WebhookTransport("erp", cfg)
    _OPEN.append(hook)
    return hook


def test_delivers_signed_document_with_idempotency_key(erp_receiver):
    hook = _hook(erp_receiver.url)
    doc = _doc(7)
    res = hook.send(doc)
    hook.close()
    assert res.ok and res.status == 200 and not res.duplicate
    (rec,) = erp_receiver.records
    assert rec["idempotency_key"] == "inv-7:v1:json"
    assert rec["signature_ok"] is True and rec["accepted"] is True
    assert rec["content_type"] == "application/json"
    assert rec["sha256"] == hashlib.sha256(doc.body).hexdigest()
    assert rec["filename"] == "INV-7_v1_json.json"


def test_signature_scheme_round_trips_and_detects_tampering():
    header = sign_request("k", "POST", "/invoices", 1_700_000_000, "inv-1:v1:json", b"body")
    headers = {"X-Kwhub-Signature": header, "Idempotency-Key": "inv-1:v1:json"}

    def check(secret="k", method="POST", path="/invoices", hdrs=headers, body=b"body", now=1_700_000_010):
        return verify_request(secret, method, path, hdrs, body, now=now)

    assert check() == ""
    assert check(body=b"bodY") == "signature mismatch"
    assert check(secret="other") == "signature mismatch"
    assert "tolerance" in check(now=1_700_001_000)


def test_wrong_secret_is_rejected_and_not_retried(erp_receiver):
    hook = _hook(erp_receiver.url, secret="not-the-secret")
    res = hook.send(_doc())
    assert not res.ok and res.status == 401 and not res.retryable
    assert "signature" in res.response
    assert erp_receiver.imported() == {}


def test_secret_from_environment(erp_receiver, monkeypatch):
    monkeypatch.setenv("KWHUB_TEST_HOOK_SECRET", RECEIVER_SECRET)
    assert _hook(erp_receiver.url, secret="env:KWHUB_TEST_HOOK_SECRET").send(_doc()).ok
    monkeypatch.delenv("KWHUB_TEST_HOOK_SECRET")
    with pytest.raises(ValidationError, match="KWHUB_TEST_HOOK_SECRET"):
        _hook(erp_receiver.url, secret="env:KWHUB_TEST_HOOK_SECRET")


def test_dedupe_receiver_reports_replay_as_duplicate(erp_receiver):
    hook = _hook(erp_receiver.url)
    first, second = hook.send(_doc(3)), hook.send(_doc(3))
    assert first.ok and not first.duplicate
    assert second.ok and second.duplicate
    assert erp_receiver.imported() == {"inv-3:v1:json": 1}


def test_keep_alive_reuses_one_connection(erp_receiver):
    hook = _hook(erp_receiver.url)
    for n in range(5):
        assert hook.send(_doc(n)).ok
    hook.close()
    assert len({r["peer_port"] for r in erp_receiver.records}) == 1


@pytest.mark.parametrize(("status", "retryable"), [(500, True), (503, True), (429, True), (400, False),
                                                   (404, False), (422, False)])
def test_status_classification(erp_receiver, status, retryable):
    erp_receiver.script(status)
    res = _hook(erp_receiver.url).send(_doc())
    assert not res.ok and res.status == status and res.retryable is retryable
    assert f"scripted HTTP {status}" in res.response  # the receiver's body is kept


def test_timeout_is_retryable(erp_receiver):
    erp_receiver.script("slow:1.5")
    res = _hook(erp_receiver.url, read_timeout_s=0.3).send(_doc())
    assert not res.ok and res.retryable and res.status is None
    assert "timeout" in res.message.lower()


def test_dropped_connection_and_refused_connection_are_retryable(erp_receiver):
    erp_receiver.script("drop")
    res = _hook(erp_receiver.url).send(_doc())
    assert not res.ok and res.retryable
    refused = _hook(f"http://127.0.0.1:{free_port()}/invoices").send(_doc())
    assert not refused.ok and refused.retryable and "connection" in refused.message


def test_check_classifies_failures(erp_receiver):
    assert _hook(erp_receiver.url).check().ok
    assert _hook(erp_receiver.url, health_url=erp_receiver.health_url).check().ok
    bad_path = _hook(erp_receiver.base_url + "/nope").check()
    assert not bad_path.ok and bad_path.kind == FailureKind.CONFIGURATION
    bad_secret = _hook(erp_receiver.url, secret="wrong").check()
    assert not bad_secret.ok and bad_secret.kind == FailureKind.CONFIGURATION and "401" in bad_secret.message
    refused = _hook(f"http://127.0.0.1:{free_port()}/invoices").check()
    assert not refused.ok and refused.kind == FailureKind.TRANSIENT


def test_check_timeout_is_transient(erp_receiver):
    # A listening socket that never answers: connect succeeds, the read times out.
    import socket

    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        res = _hook(f"http://127.0.0.1:{srv.getsockname()[1]}/invoices", read_timeout_s=0.3).check()
    assert not res.ok and res.kind == FailureKind.TRANSIENT and "timed out" in res.message


def test_plain_http_only_to_loopback():
    with pytest.raises(ValidationError, match="loopback"):
        WebhookTransport("erp", {"url": "http://erp.example.com/in"})
    WebhookTransport("erp", {"url": "http://erp.example.com/in", "allow_insecure": True})
    WebhookTransport("erp", {"url": "https://erp.example.com/in"})
    WebhookTransport("erp", {"url": "http://[::1]:8080/in"})
    with pytest.raises(ValidationError, match="http"):
        WebhookTransport("erp", {"url": "ftp://erp.example.com/in"})
    with pytest.raises(ValidationError, match="extra"):
        WebhookTransport("erp", {"url": "https://erp.example.com/in", "sekret": "x"})


def test_registered_through_the_plugin_manager(registry):
    for type_id in ("erp.webhook", "erp.sftp", "erp.folder"):
        assert registry.adapter(type_id).family == "erp"
    assert registry.plugins["erp_transports"].adapters == ["erp.folder", "erp.sftp", "erp.webhook"]
