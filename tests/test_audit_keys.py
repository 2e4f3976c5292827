"""API keys (hashed, shown once, expiring, revocable) and the append-only audit trail.

Every write through the API records who (the key id), when, what and why; a reason is
required for approvals and rejections; the audit log refuses UPDATE and DELETE.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from kwhub.hub.api.keys import (
    CACHE,
    KeyRequestError,
    create_key,
    list_keys,
    revoke_key,
    verify_cached,
    verify_token,
)
from kwhub.hub.store import audit_entries
from kwhub.hub.store.service_tables import api_key_table
from kwhub.hub.store.tables import utcnow


def test_a_key_is_stored_as_a_hash_only_and_verifies(db):
    key = create_key(db, role="tenant", party="tenant_a", days=10, max_days=30, actor="cli:alice")
    secret = key.token.split("_", 2)[2]
    with db.engine.connect() as conn:
        row = conn.execute(select(api_key_table).where(api_key_table.c.id == key.id)).one()
    assert row.secret_sha256 == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str(tuple(row)) and key.token not in str(list_keys(db))
    p = verify_token(db, key.token, ttl=0)
    assert p is not None and (p.role, p.party, p.actor) == ("tenant", "tenant_a", f"key:{key.id}")
    assert verify_token(db, key.token[:-1] + ("A" if key.token[-1] != "A" else "B"), ttl=0) is None
    entry = audit_entries(db, "api_key", key.id)[0]
    assert (entry.action, entry.actor, entry.detail["party"]) == ("key.create", "cli:alice", "tenant_a")


def test_expired_and_revoked_keys_are_refused(db):
    old = create_key(db, role="operator", days=1, max_days=30, actor="t", now=utcnow() - timedelta(days=2))
    assert verify_token(db, old.token, ttl=0) is None
    key = create_key(db, role="operator", days=5, max_days=30, actor="t")
    assert verify_token(db, key.token, ttl=60) is not None
    with pytest.raises(KeyRequestError, match="needs a reason"):
        revoke_key(db, key.id, actor="t", reason=" ")
    revoke_key(db, key.id, actor="cli:bob", reason="laptop lost")
    assert verify_token(db, key.token, ttl=60) is None  # the cache forgets a key revoked here at once
    assert [e.detail["reason"] for e in audit_entries(db, "api_key", key.id) if e.action == "key.revoke"] == \
        ["laptop lost"]
    with pytest.raises(KeyRequestError, match="already revoked"):
        revoke_key(db, key.id, actor="t", reason="again")


def test_the_key_cache_answers_without_the_database_and_keeps_every_refusal(db):
    CACHE.forget()
    key = create_key(db, role="tenant", party="tenant_a", days=5, max_days=30, actor="t")
    wrong = key.token[:-1] + ("A" if key.token[-1] != "A" else "B")
    assert verify_cached(key.token, ttl=60) is False  # unknown to the cache: the caller asks the database
    assert verify_cached("not-a-key", ttl=60) is None
    assert verify_token(db, key.token, ttl=60) is not None
    p = verify_cached(key.token, ttl=60)
    assert p is not False and p is not None and p.party == "tenant_a"
    assert verify_cached(wrong, ttl=60) is None  # the secret's hash is compared on every request
    assert verify_cached(key.token, ttl=60, now=utcnow() + timedelta(days=6)) is None  # expiry checked each time
    assert verify_cached(key.token, ttl=0) is False  # older than the ttl: read again
    revoke_key(db, key.id, actor="t", reason="gone")
    assert verify_cached(key.token, ttl=60) is False and verify_token(db, key.token, ttl=60) is None


def test_a_key_read_before_a_revocation_is_not_cached_after_it(db):
    CACHE.forget()
    key = create_key(db, role="operator", days=5, max_days=30, actor="t")
    generation = CACHE.generation
    p = verify_token(db, key.token, ttl=60)
    CACHE.forget(key.id)
    revoke_key(db, key.id, actor="t", reason="gone")
    CACHE.put(key.id, hashlib.sha256(key.token.split("_", 2)[2].encode()).hexdigest(),
              utcnow() + timedelta(days=1), p, generation)  # a reader that began before the revocation
    assert verify_cached(key.token, ttl=60) is False


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"role": "tenant"}, "needs --party"),
    ({"role": "operator", "party": "tenant_a"}, "sees every party"),
    ({"role": "root"}, "unknown role"),
    ({"role": "tenant", "party": "tenant_a", "scopes": ["runs:approve"]}, "not allowed for a tenant"),
    ({"role": "tenant", "party": "nobody"}, "unknown party"),
    ({"role": "auditor", "days": 400}, "1 to 366 days"),
])
def test_key_requests_that_are_refused_say_why(sqlite_db, kwargs, message):
    args = {"days": 10, "max_days": 366, "actor": "t", "known_parties": {"tenant_a"}, **kwargs}
    with pytest.raises(KeyRequestError, match=message):
        create_key(sqlite_db, **args)


def test_the_audit_log_refuses_update_and_delete(db):
    from kwhub.hub.store import record_audit

    with db.write_transaction() as conn:
        record_audit(conn, "run.approve", actor="key:abc", object_type="settlement_run", object_id="r1",
                     detail={"reason": "checked"})
    for sql in ("UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"):
            with db.engine.begin() as conn:
                conn.execute(text(sql))
    assert [e.actor for e in audit_entries(db)] == ["key:abc"]


def test_api_writes_are_audited_with_the_key_and_the_reason(api_env):
    env = api_env
    hub = env.hub
    # a manual settlement of September (it was never settled), then writes on keys
    from tests.fixtures.settlement import write_period

    write_period(hub.db, "2026-09")
    CACHE.forget()
    r = env.post("operator", "/api/v1/settle", json={"period": "2026-09", "reason": "month was skipped"})
    assert r.status_code == 200 and r.json()["ok"], r.text
    op_key = r.request.headers["Authorization"].split()[1].split("_")[1]
    assert env.post("operator", f"/api/v1/runs/{env.runs['tenant_a']}/approve", json={}).status_code == 422
    assert env.post("operator", f"/api/v1/runs/{env.runs['tenant_a']}/approve",
                    json={"reason": " "}).status_code == 422
    made = env.post("operator", "/api/v1/keys", json={"role": "tenant", "party": "tenant_b", "days": 7})
    assert made.status_code == 201 and made.json()["token"].startswith("kwh_")
    new_id = made.json()["id"]
    assert env.post("operator", f"/api/v1/keys/{new_id}/revoke", json={"reason": "test over"}).json()["ok"]
    actions = {(e["action"], e["actor"]) for e in env.get("operator", "/api/v1/audit?limit=100").json()["items"]}
    assert {("settle.manual", f"key:{op_key}"), ("key.create", f"key:{op_key}"),
            ("key.revoke", f"key:{op_key}")} <= actions
    settle_entry = next(e for e in audit_entries(hub.db, "period", "2026-09"))
    assert settle_entry.detail["reason"] == "month was skipped"


def test_approving_and_rejecting_through_the_api_records_who_and_why(sqlite_db, tmp_path):
    """Manual review policy: both runs are drafts; one approved, one rejected, each with a reason."""
    import tomli_w
    from fastapi.testclient import TestClient

    from kwhub.hub.api.app import create_app
    from kwhub.hub.app import Hub
    from kwhub.hub.config import load_config
    from tests.fixtures.api import campus_toml, make_keys
    from tests.fixtures.settlement import write_period

    path = tmp_path / "kwhub.toml"
    path.write_bytes(tomli_w.dumps(campus_toml(sqlite_db.url, {"review": {"policy": "manual"}})).encode())
    hub = Hub.from_config(load_config(path), database=sqlite_db)
    write_period(sqlite_db, "2026-10")
    runs = {o.contract_id: o.run_id for o in hub.settle("2026-10")}
    keys = make_keys(sqlite_db)
    client = TestClient(create_app(hub, access_log=False))
    auth = {"Authorization": f"Bearer {keys['operator']}"}
    key_id = keys["operator"].split("_")[1]
    ok = client.post(f"/api/v1/runs/{runs['ppa-a']}/approve", json={"reason": "meter read checked"}, headers=auth)
    assert ok.status_code == 200 and ok.json()["detail"]["number"].startswith("OP-")
    no = client.post(f"/api/v1/runs/{runs['ppa-b']}/reject", json={"reason": "wrong price sheet"}, headers=auth)
    assert no.status_code == 200
    again = client.post(f"/api/v1/runs/{runs['ppa-b']}/approve", json={"reason": "x"}, headers=auth)
    assert again.status_code == 409 and "rejected" in again.json()["detail"]
    got = {(e.action, e.object_id): (e.actor, e.detail["reason"]) for e in audit_entries(sqlite_db, "settlement_run")}
    assert got == {("run.approve", runs["ppa-a"]): (f"key:{key_id}", "meter read checked"),
                   ("run.reject", runs["ppa-b"]): (f"key:{key_id}", "wrong price sheet")}
    shown = client.get(f"/api/v1/runs/{runs['ppa-a']}", headers=auth).json()
    assert shown["decisions"][0]["actor"] == f"key:{key_id}"
