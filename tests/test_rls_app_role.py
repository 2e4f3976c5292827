"""PostgreSQL row-level security as defence in depth: a tenant's transactions see its rows only.

The tables belong to the owner (the test server's superuser, which migrates); kwhub runs
as an application role that owns nothing and holds row privileges only (what `kwhub db
grant-app` grants). Policies are FORCEd, and every transaction of a tenant's request sets
``kwhub.party`` with ``set_config(..., true)``. Queries without any party filter of their
own then return the tenant's rows only, a tenant cannot write, and the API answers the
same as with its own checks.
"""

from __future__ import annotations

import secrets

import pytest
import tomli_w
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from kwhub.hub.store import Database
from kwhub.hub.store.db import ROW_SCOPE

pytestmark = pytest.mark.postgres

PARTY_TABLES = ("invoice", "invoice_line", "settlement_run", "run_allocation", "outbox", "contract", "channel",
                "interval_day", "vee_event", "audit_log")


@pytest.fixture
def app_role_env(tmp_path):  # noqa: ANN001, ANN201
    """October settled by the owner; an application role with row privileges; its database URL."""
    from kwhub.hub.api.serve import sync_reference
    from kwhub.hub.app import Hub
    from kwhub.hub.config import load_config
    from tests.fixtures.api import campus_toml
    from tests.fixtures.db import temporary_pg_database
    from tests.fixtures.settlement import write_period

    with temporary_pg_database("kwhub_rls") as url:
        owner = Database.open(url)
        path = tmp_path / "kwhub.toml"
        path.write_bytes(tomli_w.dumps(campus_toml(url)).encode())
        hub = Hub.from_config(load_config(path), database=owner)
        sync_reference(hub)
        write_period(owner, "2026-10")
        assert [o.status for o in hub.settle("2026-10")] == ["issued", "issued"]
        role = f"kwhub_app_{secrets.token_hex(4)}"
        with owner.engine.begin() as conn:
            conn.execute(text(f"CREATE ROLE {role} LOGIN"))
            conn.execute(text(f"GRANT USAGE ON SCHEMA public TO {role}"))
            conn.execute(text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}"))
            conn.execute(text(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}"))
        app_url = make_url(url).set(username=role).render_as_string(hide_password=False)
        try:
            yield owner, app_url, path
        finally:
            owner.close()
            cleanup = Database.open(url)
            try:
                with cleanup.engine.begin() as conn:
                    conn.execute(text(f"DROP OWNED BY {role}"))
                    conn.execute(text(f"DROP ROLE IF EXISTS {role}"))
            finally:
                cleanup.close()


def _count(conn, table: str) -> int:  # noqa: ANN001
    return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_policies_show_a_tenant_its_rows_only_and_refuse_its_writes(app_role_env):
    owner, app_url, _ = app_role_env
    app = Database.open(app_url)
    try:
        with owner.engine.connect() as conn:
            total = {t: _count(conn, t) for t in PARTY_TABLES}
        assert all(total[t] > 0 for t in ("invoice", "settlement_run", "channel", "interval_day", "audit_log"))
        with app.engine.begin() as conn:  # the application role, scope '*' (the CLI, the scheduler)
            assert {t: _count(conn, t) for t in PARTY_TABLES} == total
        with app.engine.begin() as conn:
            conn.execute(text("SELECT set_config('kwhub.party', 'tenant_a', true)"))
            assert {b for (b,) in conn.execute(text("SELECT buyer FROM invoice"))} == {"tenant_a"}
            assert {c for (c,) in conn.execute(text("SELECT contract_id FROM settlement_run"))} == {"ppa-a"}
            assert {t for (t,) in conn.execute(text("SELECT tenant FROM run_allocation"))} <= {"tenant_a"}
            assert {c for (c,) in conn.execute(text("SELECT DISTINCT channel_id FROM interval_day"))} == {"a.load"}
            assert {c for (c,) in conn.execute(text("SELECT id FROM channel"))} == {"a.load"}
            lines = {i for (i,) in conn.execute(text("SELECT DISTINCT invoice_id FROM invoice_line"))}
            assert lines and all(":ppa-a:" in i for i in lines)
            assert _count(conn, "audit_log") == 0
        for sql in ("UPDATE settlement_run SET stale = true", "DELETE FROM interval_day",
                    "INSERT INTO channel (id, name, asset_id, party_id, role, unit, interval_minutes, spec, updated_at) "
                    "VALUES ('x', '', '', 'tenant_a', 'other', 'kWh', 15, '{}', now())"):
            with app.engine.begin() as conn:
                conn.execute(text("SELECT set_config('kwhub.party', 'tenant_a', true)"))
                try:
                    res = conn.execute(text(sql))
                except DBAPIError as exc:
                    assert "row-level security" in str(exc)
                else:
                    assert res.rowcount == 0, sql  # the rows it may see it may not change
        with app.engine.connect() as conn:  # a transaction-local setting ends with its transaction
            with conn.begin():
                conn.execute(text("SELECT set_config('kwhub.party', 'tenant_b', true)"))
                assert _count(conn, "invoice") == 1
            with conn.begin():
                assert _count(conn, "invoice") == total["invoice"]
        import psycopg  # a session that never set a scope sees nothing party-owned

        raw = make_url(app_url)
        with psycopg.connect(host=raw.host, port=raw.port, user=raw.username, dbname=raw.database) as pc:
            assert pc.execute("SELECT count(*) FROM invoice").fetchone()[0] == 0
    finally:
        app.close()


def test_service_code_without_its_own_filter_sees_the_request_partys_rows(app_role_env):
    from kwhub.hub.settle.service import list_invoices

    _, app_url, _ = app_role_env
    app = Database.open(app_url)
    try:
        app.scope_requests()
        for party in ("tenant_a", "tenant_b"):
            token = ROW_SCOPE.set(party)
            try:
                assert {i.buyer.id for i in list_invoices(app)} == {party}  # no buyer filter in the call
            finally:
                ROW_SCOPE.reset(token)
        assert list_invoices(app) == []  # outside any request: nothing
    finally:
        app.close()


def test_the_api_on_the_application_role_keeps_tenants_apart(app_role_env):
    from fastapi.testclient import TestClient

    from kwhub.hub.api.app import create_app
    from kwhub.hub.app import Hub
    from kwhub.hub.config import load_config
    from kwhub.hub.settle.service import list_invoices
    from tests.fixtures.api import make_keys

    owner, app_url, path = app_role_env
    invoices = {i.buyer.id: i.id for i in list_invoices(owner)}
    keys = make_keys(owner)
    app_db = Database.open(app_url)
    try:
        client = TestClient(create_app(Hub.from_config(load_config(path), database=app_db), access_log=False))

        def get(who: str, p: str):  # noqa: ANN202
            return client.get(p, headers={"Authorization": f"Bearer {keys[who]}"})

        assert get("tenant_a", f"/api/v1/invoices/{invoices['tenant_b']}").status_code == 404
        assert get("tenant_a", f"/api/v1/invoices/{invoices['tenant_a']}").status_code == 200
        assert [i["buyer"] for i in get("tenant_a", "/api/v1/invoices").json()["items"]] == ["tenant_a"]
        assert {i["buyer"] for i in get("operator", "/api/v1/invoices").json()["items"]} == {"tenant_a", "tenant_b"}
        assert [r["contract_id"] for r in get("tenant_b", "/api/v1/runs").json()["items"]] == ["ppa-b"]
        r = get("tenant_a", "/api/v1/channels/a.load/readings?start=2026-10-01T04:00:00Z&end=2026-10-02T04:00:00Z")
        assert r.status_code == 200 and len(r.json()["kwh"]) == 96
        assert get("tenant_a", "/api/v1/channels/b.load/readings?start=2026-10-01T04:00:00Z"
                               "&end=2026-10-02T04:00:00Z").status_code == 404
    finally:
        app_db.close()


def test_maintain_leaves_the_partitions_the_application_role_does_not_own(app_role_env):
    """Only the owner may vacuum: the application role's maintenance step skips every partition
    (no error); the owner's does them."""
    owner, app_url, _ = app_role_env
    app = Database.open(app_url)
    try:
        report = app.intervals.maintain()
    finally:
        app.close()
    assert report.tables == [] and "interval_day_2026_10" in report.skipped
    assert "interval_day_2026_10" in owner.intervals.maintain().tables
