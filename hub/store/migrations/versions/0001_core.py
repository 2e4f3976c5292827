"""Core tables: reference data, interval days, stale marks, VEE events, audit log.

Revision ID: 0001_core
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_core"
down_revision = None
branch_labels = None
depends_on = None


def _ts(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    """Create the tables mirrored by :mod:`kwhub.hub.store.tables`."""
    op.create_table(
        "site",
        sa.Column("id", sa.String(length=200), primary_key=True),
        sa.Column("name", sa.String(length=400), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        _ts("updated_at"),
    )
    op.create_table(
        "asset",
        sa.Column("id", sa.String(length=200), primary_key=True),
        sa.Column("name", sa.String(length=400), nullable=False),
        sa.Column("site_id", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        _ts("updated_at"),
    )
    op.create_table(
        "channel",
        sa.Column("id", sa.String(length=200), primary_key=True),
        sa.Column("name", sa.String(length=400), nullable=False),
        sa.Column("asset_id", sa.String(length=200), nullable=False),
        sa.Column("party_id", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("unit", sa.String(length=16), nullable=False),
        sa.Column("interval_minutes", sa.Integer(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        _ts("updated_at"),
    )
    op.create_table(
        "party",
        sa.Column("id", sa.String(length=200), primary_key=True),
        sa.Column("name", sa.String(length=400), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        _ts("updated_at"),
    )
    op.create_table(
        "contract",
        sa.Column("id", sa.String(length=200), primary_key=True),
        sa.Column("name", sa.String(length=400), nullable=False),
        sa.Column("seller", sa.String(length=200), nullable=False),
        sa.Column("buyer", sa.String(length=200), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        _ts("updated_at"),
    )
    op.create_table(
        "interval_day",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("channel_id", sa.String(length=200), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("layer", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("interval_minutes", sa.Integer(), nullable=False),
        sa.Column("n_values", sa.Integer(), nullable=False),
        sa.Column("values", sa.LargeBinary(), nullable=False),
        sa.Column("quality", sa.LargeBinary(), nullable=False),
        sa.Column("rule_ids", sa.LargeBinary(), nullable=True),
        sa.Column("rule_names", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=400), nullable=False),
        _ts("created_at"),
        sa.Column("is_current", sa.Boolean(), nullable=False),
        sa.UniqueConstraint("channel_id", "day", "layer", "version", name="uq_interval_day_version"),
    )
    op.create_index("ix_interval_day_lookup", "interval_day", ["channel_id", "layer", "day", "is_current"])
    op.create_table(
        "stale_mark",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("channel_id", sa.String(length=200), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("layer", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        _ts("created_at"),
    )
    op.create_index("ix_stale_mark_created", "stale_mark", ["created_at"])
    op.create_table(
        "vee_event",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_label", sa.String(length=200), nullable=False),
        sa.Column("channel_id", sa.String(length=200), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("rule_id", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        _ts("created_at"),
    )
    op.create_index("ix_vee_event_channel_day", "vee_event", ["channel_id", "day"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        _ts("at"),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("object_type", sa.String(length=100), nullable=False),
        sa.Column("object_id", sa.String(length=400), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
    )
    op.create_index("ix_audit_log_object", "audit_log", ["object_type", "object_id"])


def downgrade() -> None:
    """Drop the core tables."""
    op.drop_index("ix_audit_log_object", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index("ix_vee_event_channel_day", table_name="vee_event")
    op.drop_table("vee_event")
    op.drop_index("ix_stale_mark_created", table_name="stale_mark")
    op.drop_table("stale_mark")
    op.drop_index("ix_interval_day_lookup", table_name="interval_day")
    op.drop_table("interval_day")
    for name in ("contract", "party", "channel", "asset", "site"):
        op.drop_table(name)
