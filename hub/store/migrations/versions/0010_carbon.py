"""Carbon: the activity data runs freeze, and the granular certificate ledger.

``carbon_data`` holds content-addressed arrays (a settled period's per-source activity and
its time-varying factors); ``run_carbon`` which of them each run used; ``gc_bundle`` / ``gc_action`` the granular certificates and the
log of every action on them (see hub/store/carbon_tables.py).

Revision ID: 0010_carbon
Revises: 0009_markets
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_carbon"
down_revision = "0009_markets"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``carbon_data``, ``run_carbon``, ``gc_bundle`` and ``gc_action``."""
    op.create_table(
        "carbon_data",
        sa.Column("data_id", sa.String(length=64), primary_key=True),
        sa.Column("key", sa.String(length=300), primary_key=True),
        sa.Column("blob", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "run_carbon",
        sa.Column("run_id", sa.String(length=200), primary_key=True),
        sa.Column("period", sa.String(length=40), nullable=False),
        sa.Column("tenant", sa.String(length=200), nullable=False),
        sa.Column("activity_id", sa.String(length=64), nullable=False),
        sa.Column("factors_id", sa.String(length=64), nullable=False),
        sa.Column("sellers", sa.Text(), nullable=False),
        sa.Column("settings", sa.Text(), nullable=False),
    )
    op.create_index("ix_run_carbon_period", "run_carbon", ["period"])
    op.create_table(
        "gc_bundle",
        sa.Column("bundle_id", sa.String(length=120), primary_key=True),
        sa.Column("issuance_id", sa.String(length=200), nullable=False),
        sa.Column("parent_id", sa.String(length=120), nullable=True),
        sa.Column("device_id", sa.String(length=200), nullable=False),
        sa.Column("range_start", sa.BigInteger(), nullable=False),
        sa.Column("range_end", sa.BigInteger(), nullable=False),
        sa.Column("quantity_wh", sa.BigInteger(), nullable=False),
        sa.Column("production_start", sa.BigInteger(), nullable=False),
        sa.Column("production_end", sa.BigInteger(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attributes", sa.Text(), nullable=False),
        sa.Column("account", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("beneficiary", sa.String(length=200), nullable=True),
        sa.Column("consumption_hour", sa.BigInteger(), nullable=True),
        sa.Column("hash", sa.String(length=64), nullable=False),
    )
    op.create_index("ix_gc_bundle_device_range", "gc_bundle", ["device_id", "range_start"])
    op.create_index("ix_gc_bundle_account_status", "gc_bundle", ["account", "status"])
    op.create_index("ix_gc_bundle_production", "gc_bundle", ["production_start"])
    op.create_table(
        "gc_action",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("bundle_id", sa.String(length=120), nullable=False),
        sa.Column("quantity_wh", sa.BigInteger(), nullable=False),
        sa.Column("from_account", sa.String(length=200), nullable=False),
        sa.Column("to_account", sa.String(length=200), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    """Drop the four tables."""
    op.drop_table("gc_action")
    op.drop_index("ix_gc_bundle_device_range", table_name="gc_bundle")
    op.drop_index("ix_gc_bundle_production", table_name="gc_bundle")
    op.drop_index("ix_gc_bundle_account_status", table_name="gc_bundle")
    op.drop_table("gc_bundle")
    op.drop_index("ix_run_carbon_period", table_name="run_carbon")
    op.drop_table("run_carbon")
    op.drop_table("carbon_data")
