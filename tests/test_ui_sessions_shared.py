"""Dashboard sessions live in the database: two app instances on one database (as two uvicorn
workers, or two hosts behind a load balancer) share them, on SQLite and on PostgreSQL.

Each instance here has its own engine (its own connection pool) and its own app; the only thing
they share is the database.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import select

from kwhub.hub.api.keys import create_key
from kwhub.hub.ui.session_tables import ui_session_table
from tests.fixtures.ui import csrf_of


@pytest.fixture
def two(ui_env, tmp_path):
    """(env, app A, app B): A is the fixture's app, B a second app with its own engine on the same database."""
    from kwhub.hub.api.app import create_app
    from kwhub.hub.app import Hub
    from kwhub.hub.config import load_config
    from kwhub.hub.store import Database

    db2 = Database.open(ui_env.api.hub.db.url)
    hub2 = Hub.from_config(load_config(tmp_path / "kwhub.toml"), database=db2)
    yield ui_env, ui_env.api.app, create_app(hub2, access_log=False)
    db2.close()


def _client(app, cookie=None):
    from fastapi.testclient import TestClient

    c = TestClient(app)
    if cookie is not None:
        c.cookies.set("kwhub_session", cookie, path="/ui")
    return c


def _sign_in(form_app, post_app, token: str) -> str:
    """Sign in: the form shown by ``form_app``, posted to ``post_app``; the session cookie's value."""
    a = _client(form_app)
    form = a.get("/ui/login")
    b = _client(post_app)
    b.cookies.set("kwhub_signin", a.cookies.get("kwhub_signin"), path="/ui")
    r = b.post("/ui/login", data={"key": token, "csrf_token": csrf_of(form.text)}, follow_redirects=False)
    assert r.status_code == 303, r.text[-400:]
    return r.cookies.get("kwhub_session")


def test_a_session_made_through_one_instance_is_accepted_by_the_other_and_sign_out_ends_it_in_both(two):
    env, app_a, app_b = two
    cookie = _sign_in(app_b, app_a, env.api.keys["operator"])  # the sign-in form of B is accepted by A
    in_a, in_b = _client(app_a, cookie), _client(app_b, cookie)
    assert in_a.get("/ui/invoices").status_code == 200
    page_b = in_b.get("/ui/invoices")
    assert page_b.status_code == 200 and "Sign out" in page_b.text
    assert csrf_of(page_b.text) == csrf_of(in_a.get("/ui/invoices").text)  # the token is the session's, not the process's
    # the database holds the SHA-256 of the session id, never the id, and the key's id, never the key
    with env.api.hub.db.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(select(ui_session_table))]
    mine = [r for r in rows if r["id_sha256"] == hashlib.sha256(cookie.encode()).hexdigest()]
    assert len(mine) == 1 and mine[0]["key_id"] == env.api.keys["operator"][4:16]
    assert all(cookie not in str(v) and env.api.keys["operator"] not in str(v) for r in rows for v in r.values())
    # sign out through A (with the session's CSRF token): B does not know it any more either
    assert in_a.post("/ui/logout", data={"csrf_token": csrf_of(page_b.text)}, follow_redirects=False).status_code == 303
    assert in_b.get("/ui/invoices", follow_redirects=False).status_code == 303
    assert _client(app_a, cookie).get("/ui/invoices", follow_redirects=False).status_code == 303


def test_a_form_posted_to_the_other_instance_needs_the_sessions_own_csrf_token(two):
    env, app_a, app_b = two
    first = _sign_in(app_a, app_a, env.api.keys["operator"])
    second = _sign_in(app_b, app_b, env.api.keys["operator"])
    token_first = csrf_of(_client(app_a, first).get("/ui/deliveries").text)
    other = _client(app_b, second)
    path = f"/ui/deliveries/{env.dead_row}/retry"
    assert other.post(path, data={"csrf_token": token_first}).status_code == 403  # another session's token
    assert other.post(path, data={}).status_code == 403
    r = _client(app_b, first).post(path, data={"csrf_token": token_first}, follow_redirects=False)
    assert r.status_code == 303  # the first session's token, posted to B with the first session's cookie


def test_revoking_the_key_ends_its_sessions_in_both_instances_at_once(two):
    env, app_a, app_b = two
    db = env.api.hub.db
    key = create_key(db, role="tenant", party="tenant_a", days=5, max_days=30, actor="test")
    cookies = [_sign_in(app_a, app_a, key.token), _sign_in(app_b, app_b, key.token)]
    for c in cookies:
        assert _client(app_a, c).get("/ui/invoices").status_code == 200
        assert _client(app_b, c).get("/ui/invoices").status_code == 200
    # revoked through the API of A (as `kwhub keys revoke` would: no process's cache is told)
    r = env.api.client.post(f"/api/v1/keys/{key.id}/revoke", json={"reason": "left the company"},
                            headers={"Authorization": f"Bearer {env.api.keys['operator']}"})
    assert r.status_code in (200, 204), r.text
    for c in cookies:
        for app in (app_a, app_b):
            assert _client(app, c).get("/ui/invoices", follow_redirects=False).status_code == 303
    with db.engine.connect() as conn:
        left = conn.execute(select(ui_session_table.c.key_id).where(ui_session_table.c.key_id == key.id)).all()
    assert left == []  # refused sessions are deleted as they are seen


def test_revoking_through_the_dashboard_deletes_the_keys_sessions(two):
    env, app_a, app_b = two
    db = env.api.hub.db
    key = create_key(db, role="auditor", days=5, max_days=30, actor="test")
    cookie = _sign_in(app_a, app_a, key.token)
    op = _client(app_b, _sign_in(app_b, app_b, env.api.keys["operator"]))
    token = csrf_of(op.get("/ui/keys").text)
    r = op.post(f"/ui/keys/{key.id}/revoke", data={"csrf_token": token, "reason": "rotated"})
    assert r.status_code == 200 and "1 dashboard session ended" in r.text
    with db.engine.connect() as conn:
        assert conn.execute(select(ui_session_table).where(ui_session_table.c.key_id == key.id)).all() == []
    assert _client(app_a, cookie).get("/ui/audit", follow_redirects=False).status_code == 303


def test_a_session_ends_after_eight_idle_hours_in_every_instance(two):
    env, app_a, app_b = two
    cookie = _sign_in(app_a, app_a, env.api.keys["auditor"])
    store_a, store_b = app_a.state.ui_sessions, app_b.state.ui_sessions
    sess = store_b.get(cookie)
    assert sess is not None and sess.principal.role == "auditor"
    assert store_b.get(cookie, now=sess.expires_at - timedelta(seconds=1)) is not None  # moves the end on
    later = store_a.get(cookie)
    assert later is not None and later.expires_at > sess.expires_at
    assert store_a.get(cookie, now=later.expires_at) is None  # idle 8 hours: ended and deleted
    assert store_b.get(cookie) is None
    assert store_a.get("not-a-session") is None and store_a.get("") is None and store_a.get("x" * 500) is None
