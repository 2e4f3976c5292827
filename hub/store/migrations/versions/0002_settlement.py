"""Settlement tables (runs, run inputs, allocation, invoices, invoice lines, numbering).

``run_input`` holds one packed row per (run, channel, layer): the UTC days, versions and
SHA-256 content hashes of the channel-days the run read.

Issued invoices are immutable: triggers refuse UPDATE and DELETE on ``invoice`` and
``invoice_line`` for any client, on PostgreSQL (a PL/pgSQL function raising an
exception) and on SQLite (``RAISE(ABORT, ...)``).

Revision ID: 0002_settlement
Revises: 0001_core
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_settlement"
down_revision = "0001_core"
branch_labels = None
depends_on = None

_MSG = "issued invoices are immutable: corrections are new documents"
_GUARDED = ("invoice", "invoice_line")


def upgrade() -> None:
    """Create the settlement tables and the immutability triggers."""
    op.create_table(
        "settlement_run",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("contract_id", sa.String(200), nullable=False),
        sa.Column("period", sa.String(40), nullable=False),
        sa.Column("version_kind", sa.String(16), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("layer", sa.String(32), nullable=False),
        sa.Column("statement", sa.Text, nullable=False),
        sa.Column("statement_hash", sa.String(64), nullable=False),
        sa.Column("invoice_id", sa.String(200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stale", sa.Boolean, nullable=False),
        sa.UniqueConstraint("contract_id", "period", "version_kind", "seq", name="uq_settlement_run_version"),
        sa.CheckConstraint("version_kind IN ('initial', 'final', 'true_up')", name="ck_settlement_run_kind"),
    )
    op.create_index("ix_settlement_run_contract_period", "settlement_run", ["contract_id", "period"])
    op.create_table(
        "run_input",
        sa.Column("run_id", sa.String(200), primary_key=True),
        sa.Column("channel_id", sa.String(200), primary_key=True),
        sa.Column("layer", sa.String(32), primary_key=True),
        sa.Column("first_day", sa.Date, nullable=False),
        sa.Column("last_day", sa.Date, nullable=False),
        sa.Column("n_days", sa.Integer, nullable=False),
        sa.Column("day_offsets", sa.LargeBinary, nullable=False),
        sa.Column("versions", sa.LargeBinary, nullable=False),
        sa.Column("content_hashes", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "run_allocation",
        sa.Column("run_id", sa.String(200), primary_key=True),
        sa.Column("tenant", sa.String(200), primary_key=True),
        sa.Column("source", sa.String(200), primary_key=True),
        sa.Column("kwh", sa.String(64), nullable=False),
        sa.Column("loss_kwh", sa.String(64), nullable=False),
        sa.Column("intervals", sa.Integer, nullable=False),
        sa.Column("blob", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "invoice",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("number", sa.String(100), nullable=False),
        sa.Column("number_seq", sa.Integer, nullable=False),
        sa.Column("seller", sa.String(200), nullable=False),
        sa.Column("buyer", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("contract_id", sa.String(200), nullable=False),
        sa.Column("period", sa.String(40), nullable=False),
        sa.Column("run_id", sa.String(200), nullable=False),
        sa.Column("original_invoice_id", sa.String(200), nullable=True),
        sa.Column("issue_date", sa.Date, nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("line_total", sa.String(64), nullable=False),
        sa.Column("tax_total", sa.String(64), nullable=False),
        sa.Column("total", sa.String(64), nullable=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.UniqueConstraint("seller", "number_seq", name="uq_invoice_seller_seq"),
        sa.UniqueConstraint("seller", "number", name="uq_invoice_seller_number"),
        sa.CheckConstraint("status = 'issued'", name="ck_invoice_status"),
    )
    op.create_index("ix_invoice_contract_period", "invoice", ["contract_id", "period"])
    op.create_table(
        "invoice_line",
        sa.Column("invoice_id", sa.String(200), primary_key=True),
        sa.Column("number", sa.Integer, primary_key=True),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("charge_type", sa.String(32), nullable=False),
        sa.Column("component_id", sa.String(200), nullable=False),
        sa.Column("source_asset", sa.String(200), nullable=False),
        sa.Column("quantity", sa.String(64), nullable=False),
        sa.Column("unit", sa.String(16), nullable=False),
        sa.Column("unit_price", sa.String(64), nullable=False),
        sa.Column("amount", sa.String(64), nullable=False),
        sa.Column("tax_category", sa.String(4), nullable=False),
        sa.Column("tax_percent", sa.String(16), nullable=False),
        sa.Column("determinants", sa.Text, nullable=False),
    )
    op.create_table(
        "invoice_sequence",
        sa.Column("seller", sa.String(200), primary_key=True),
        sa.Column("next_number", sa.Integer, nullable=False),
    )
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(
            "CREATE FUNCTION kwhub_refuse_invoice_change() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN RAISE EXCEPTION '% on %: {_MSG}', TG_OP, TG_TABLE_NAME; END; $$"
        )
        for table in _GUARDED:
            op.execute(
                f"CREATE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION kwhub_refuse_invoice_change()"
            )
    elif dialect == "sqlite":
        for table in _GUARDED:
            for action in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{action} on {table}: {_MSG}'); END"
                )


def downgrade() -> None:
    """Drop the triggers and the settlement tables."""
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        for table in _GUARDED:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_immutable ON {table}")
        op.execute("DROP FUNCTION IF EXISTS kwhub_refuse_invoice_change()")
    elif dialect == "sqlite":
        for table in _GUARDED:
            for action in ("update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{action}")
    for table in ("invoice_sequence", "invoice_line", "invoice", "run_allocation", "run_input", "settlement_run"):
        op.drop_table(table)
