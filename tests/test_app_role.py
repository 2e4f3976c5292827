"""PostgreSQL: kwhub runs as an application role that does not own the tables.

The owner (here the test server's superuser) migrates and grants; the application role
settles and delivers, and cannot TRUNCATE, disable or drop the triggers, or update an
issued document. ``kwhub verify`` connected as it shows no protection warnings.
"""

from __future__ import annotations

import secrets
from datetime import date

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from kwhub.hub.settle.service import settle
from kwhub.hub.settle.verify import verify
from kwhub.hub.store import Database
from kwhub.hub.store.roles import RoleError, grant_application_role
from tests.fixtures.settlement import settle_campus, write_period

pytestmark = pytest.mark.postgres


@pytest.fixture
def app_role(pg_url):
    """A fresh LOGIN role on the test server (dropped afterwards) and the session database reset."""
    from tests.fixtures.db import _reset_pg

    owner = Database.open(pg_url)
    _reset_pg(pg_url)
    role = f"kwhub_app_{secrets.token_hex(4)}"
    with owner.engine.begin() as conn:
        conn.execute(text(f"CREATE ROLE {role} LOGIN"))
    try:
        yield owner, role, make_url(pg_url).set(username=role).render_as_string(hide_password=False)
    finally:
        with owner.engine.begin() as conn:
            conn.execute(text(f"DROP OWNED BY {role}"))
            conn.execute(text(f"DROP ROLE IF EXISTS {role}"))
        owner.close()


def test_application_role_settles_but_cannot_switch_the_protection_off(app_role):
    owner, role, url = app_role
    write_period(owner, "2026-10")
    statements = grant_application_role(owner, role)
    assert any("REVOKE UPDATE, DELETE ON invoice, invoice_line, document_rendering" in s for s in statements)
    app = Database.open(url)  # at head already: it does not try to migrate
    try:
        outcomes = settle(app, settle_campus(), "2026-10", issue_date=date(2026, 11, 3))
        assert [o.status for o in outcomes] == ["issued", "issued"]
        for sql in ("TRUNCATE invoice CASCADE", "ALTER TABLE invoice DISABLE TRIGGER ALL",
                    "DROP TRIGGER invoice_immutable ON invoice", "UPDATE invoice SET total = '0.00'",
                    "DELETE FROM invoice_line", "SET session_replication_role = replica",
                    "UPDATE alembic_version SET version_num = 'x'"):
            with pytest.raises(DBAPIError, match="permission denied|must be owner|immutable"):
                with app.engine.begin() as conn:
                    conn.execute(text(sql))
        report = verify(app)
        assert report.ok and report.warnings == []
    finally:
        app.close()


def test_grant_refuses_the_owner_and_unknown_roles(app_role):
    owner, role, _ = app_role
    with pytest.raises(RoleError, match="owns kwhub tables|superuser"):
        grant_application_role(owner, "postgres")
    with pytest.raises(RoleError, match="does not exist"):
        grant_application_role(owner, role + "_nobody")
