"""Period readings: daily, billing-period and register readings as their own channel data.

Readings that are not intervals (a daily read of a 23, 24 or 25-hour local day, a monthly
billing read, a cumulative register value) get their own table instead of being dropped:
one row per (channel, kind, start, end, version), instants as UTC epoch seconds, the value
in kWh and a quality byte. A restated reading gets a new version; one version is current.

Revision ID: 0005_period_reading
Revises: 0004_interval_day_key
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_period_reading"
down_revision = "0004_interval_day_key"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``period_reading`` (mirrors :class:`kwhub.hub.store.tables.PeriodReading`)."""
    op.create_table(
        "period_reading",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("channel_id", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("start_epoch", sa.BigInteger(), nullable=False),
        sa.Column("end_epoch", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("quality", sa.SmallInteger(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("is_current", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=400), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("channel_id", "kind", "start_epoch", "end_epoch", "version",
                            name="uq_period_reading_key"),
    )


def downgrade() -> None:
    """Drop ``period_reading``."""
    op.drop_table("period_reading")
