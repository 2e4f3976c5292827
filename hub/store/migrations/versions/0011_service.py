"""The running service: API keys, job history, scheduler owner, adapter status, watched files,
webhook events; the audit log made append-only; row-level security on PostgreSQL.

* ``audit_log`` refuses UPDATE and DELETE (triggers on SQLite and PostgreSQL), as the
  issued invoices do.
* ``outbox.event_type`` marks rows that carry a webhook event instead of a document.
* PostgreSQL: the party-owned tables get ``ENABLE`` and ``FORCE ROW LEVEL SECURITY`` and
  one policy each. A row is visible when the transaction's ``kwhub.party`` setting is
  ``*`` (operators, the scheduler, the CLI) or names the party the row belongs to (a
  tenant key's requests set it with ``set_config('kwhub.party', party, true)``); with no
  setting nothing is visible. Only ``*`` may insert, update or delete (a second policy). Superusers and roles with BYPASSRLS
  are not subject to row-level security, so kwhub connects as an application role
  that owns nothing (see docs/data-model.md).

Revision ID: 0011_service
Revises: 0010_carbon
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_service"
down_revision = "0010_carbon"
branch_labels = None
depends_on = None

_AUDIT_MSG = "the audit log is append-only"

# table -> the condition under which a tenant (party = kwhub_scope()) sees a row
RLS_POLICIES = {
    "invoice": "buyer = kwhub_scope()",
    "invoice_line": "invoice_id IN (SELECT id FROM invoice WHERE buyer = kwhub_scope())",
    "settlement_run": "contract_id IN (SELECT id FROM contract WHERE buyer = kwhub_scope())",
    "run_allocation": "tenant = kwhub_scope()",
    "outbox": "event_type IS NULL AND invoice_id IN (SELECT id FROM invoice WHERE buyer = kwhub_scope())",
    "contract": "buyer = kwhub_scope()",
    "channel": "party_id = kwhub_scope()",
    "interval_day": "channel_id IN (SELECT id FROM channel WHERE party_id = kwhub_scope())",
    "vee_event": "channel_id IN (SELECT id FROM channel WHERE party_id = kwhub_scope())",
    "webhook_event": "party = kwhub_scope()",
    "audit_log": "false",
}


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Create the service tables (mirrors :mod:`kwhub.hub.store.service_tables`), the audit
    log triggers and, on PostgreSQL, the row-level security policies."""
    op.create_table(
        "api_key",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("party", sa.String(200), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        _ts("created_at"),
        sa.Column("created_by", sa.String(200), nullable=False),
        _ts("expires_at"),
        _ts("revoked_at", True),
        sa.Column("revoked_by", sa.String(200), nullable=False),
    )
    op.create_table(
        "job_run",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(200), nullable=False),
        _ts("slot"),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _ts("started_at"),
        _ts("finished_at", True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.UniqueConstraint("job_id", "slot", name="uq_job_run_slot"),
    )
    op.create_index("ix_job_run_started", "job_run", ["started_at"])
    op.create_table(
        "scheduler_owner",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("owner", sa.String(200), nullable=False),
        _ts("acquired_at"),
        _ts("heartbeat_at"),
    )
    op.create_table(
        "adapter_status",
        sa.Column("adapter_id", sa.String(200), primary_key=True),
        _ts("last_success_at", True),
        _ts("last_error_at", True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("scheduled", sa.Integer(), nullable=False),
        sa.Column("ok", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("missed", sa.Integer(), nullable=False),
        _ts("updated_at"),
    )
    op.create_table(
        "watched_file",
        sa.Column("folder", sa.String(400), primary_key=True),
        sa.Column("name", sa.String(400), primary_key=True),
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("adapter_id", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        _ts("at"),
    )
    op.create_table(
        "webhook_event",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("subscription", sa.String(200), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("subject_id", sa.String(200), nullable=False),
        sa.Column("party", sa.String(200), nullable=False),
        sa.Column("body_sha256", sa.String(64), nullable=False),
        _ts("created_at"),
        sa.UniqueConstraint("subscription", "event_type", "subject_id", name="uq_webhook_event"),
    )
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("event_type", sa.String(64), nullable=True))

    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(
            "CREATE FUNCTION kwhub_refuse_audit_change() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN RAISE EXCEPTION '% on %: {_AUDIT_MSG}', TG_OP, TG_TABLE_NAME; END; $$"
        )
        op.execute("CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
                   "FOR EACH ROW EXECUTE FUNCTION kwhub_refuse_audit_change()")
        op.execute("CREATE FUNCTION kwhub_scope() RETURNS text LANGUAGE sql STABLE AS "
                   "$$ SELECT coalesce(current_setting('kwhub.party', true), '') $$")
        for table, condition in RLS_POLICIES.items():
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
            op.execute(f"CREATE POLICY {table}_read ON {table} FOR SELECT "
                       f"USING (kwhub_scope() = '*' OR ({condition}))")
            op.execute(f"CREATE POLICY {table}_write ON {table} FOR ALL "
                       "USING (kwhub_scope() = '*') WITH CHECK (kwhub_scope() = '*')")
    elif dialect == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER audit_log_no_{action.lower()} BEFORE {action} ON audit_log "
                       f"BEGIN SELECT RAISE(ABORT, '{action} on audit_log: {_AUDIT_MSG}'); END")


def downgrade() -> None:
    """Drop the policies, triggers and service tables."""
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        for table in RLS_POLICIES:
            op.execute(f"DROP POLICY IF EXISTS {table}_read ON {table}")
            op.execute(f"DROP POLICY IF EXISTS {table}_write ON {table}")
            op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
        op.execute("DROP FUNCTION IF EXISTS kwhub_scope()")
        op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS kwhub_refuse_audit_change()")
    elif dialect == "sqlite":
        for action in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS audit_log_no_{action}")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("event_type")
    for table in ("webhook_event", "watched_file", "adapter_status", "scheduler_owner", "job_run", "api_key"):
        op.drop_table(table)
