"""Outbox table.

Revision ID: 0003_outbox
Revises: 0002_settlement
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_outbox"
down_revision = "0002_settlement"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``outbox`` (mirrors :class:`kwhub.hub.store.outbox_tables.OutboxRow`)."""
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("invoice_id", sa.String(length=200), nullable=False),
        sa.Column("invoice_version", sa.Integer(), nullable=False),
        sa.Column("format_id", sa.String(length=64), nullable=False),
        sa.Column("transport_instance", sa.String(length=200), nullable=False),
        sa.Column("idempotency_key", sa.String(length=400), nullable=False),
        sa.Column("filename", sa.String(length=400), nullable=False),
        sa.Column("media_type", sa.String(length=200), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("body_sha256", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("response", sa.Text(), nullable=True),
        sa.Column("possible_duplicate", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("transport_instance", "idempotency_key", name="uq_outbox_transport_key"),
    )
    op.create_index("ix_outbox_due", "outbox", ["status", "next_attempt_at"])
    op.create_index("ix_outbox_invoice", "outbox", ["invoice_id", "invoice_version"])


def downgrade() -> None:
    """Drop ``outbox``."""
    op.drop_index("ix_outbox_invoice", table_name="outbox")
    op.drop_index("ix_outbox_due", table_name="outbox")
    op.drop_table("outbox")
