"""PostgreSQL roles: the application role reads and writes rows; it does not own the tables.

A role that owns a table can ``ALTER TABLE ... DISABLE TRIGGER``, drop the triggers or the
table, and ``TRUNCATE`` it; a superuser can do all of that anywhere. So kwhub runs as an
*application role* that only has row privileges, and the tables belong to an *owner role*
that runs the migrations (``kwhub db upgrade``) and nothing else. :func:`grant_application_role`,
run as the owner, gives the application role exactly what kwhub needs:

* ``SELECT, INSERT, UPDATE, DELETE`` on every kwhub table and ``USAGE, SELECT`` on its
  sequences (``TRUNCATE``, ``REFERENCES`` and ``TRIGGER`` are not granted);
* on the issued-document tables (``invoice``, ``invoice_line``, ``document_rendering``)
  ``SELECT, INSERT`` only: no ``UPDATE``, ``DELETE`` or ``TRUNCATE``, on top of the
  triggers that refuse them;
* on ``alembic_version`` ``SELECT`` only (it checks the schema revision, it does not migrate).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

IMMUTABLE = ("invoice", "invoice_line", "document_rendering")


class RoleError(ValueError):
    """The role setup cannot be done as asked."""


def grant_application_role(db: Any, role: str) -> list[str]:
    """Grant ``role`` the application privileges on ``db``'s tables (PostgreSQL); return the SQL run."""
    if db.dialect != "postgresql":
        raise RoleError("roles exist on PostgreSQL only; on SQLite, protect the database file with file permissions")
    with db.engine.connect() as conn:
        exists = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first()
        if exists is None:
            raise RoleError(f"role {role!r} does not exist; create it first (CREATE ROLE {role} LOGIN PASSWORD ...)")
        quoted = conn.execute(text("SELECT quote_ident(:r)"), {"r": role}).scalar_one()
        schema = conn.execute(text("SELECT quote_ident(current_schema())")).scalar_one()
        owners = {owner for (owner,) in conn.execute(text(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = current_schema()"))}
        superuser = conn.execute(text("SELECT rolsuper FROM pg_roles WHERE rolname = :r"), {"r": role}).scalar_one()
    if role in owners:
        raise RoleError(f"role {role!r} owns kwhub tables; the application role must not: create a separate owner "
                        "role for migrations, then ALTER TABLE ... OWNER TO it (see docs/data-model.md)")
    if superuser:
        raise RoleError(f"role {role!r} is a superuser; the application role must be an ordinary role")
    guarded = ", ".join(IMMUTABLE)
    statements = [
        f"GRANT USAGE ON SCHEMA {schema} TO {quoted}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {quoted}",
        f"REVOKE TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA {schema} FROM {quoted}",
        f"REVOKE UPDATE, DELETE ON {guarded} FROM {quoted}",
        f"REVOKE INSERT, UPDATE, DELETE ON alembic_version FROM {quoted}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {quoted}",
    ]
    with db.engine.begin() as conn:
        for sql in statements:
            conn.execute(text(sql))
    return statements
