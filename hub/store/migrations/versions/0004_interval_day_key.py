"""One index on ``interval_day``: the unique key (channel, layer, day, version).

Every read of interval days selects one channel and one layer over a day range; with the
key in that column order the unique index serves those reads, and the separate lookup
index (channel, layer, day, is_current) is no longer needed. One index less to maintain
on every inserted channel-day.

Revision ID: 0004_interval_day_key
Revises: 0003_outbox
"""

from alembic import op

revision = "0004_interval_day_key"
down_revision = "0003_outbox"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Replace ``uq_interval_day_version`` + ``ix_interval_day_lookup`` by ``uq_interval_day_key``."""
    op.drop_index("ix_interval_day_lookup", table_name="interval_day")
    # SQLite cannot drop a table constraint: batch mode rebuilds the table there
    with op.batch_alter_table("interval_day") as batch:
        batch.drop_constraint("uq_interval_day_version", type_="unique")
        batch.create_unique_constraint("uq_interval_day_key", ["channel_id", "layer", "day", "version"])


def downgrade() -> None:
    """Back to the key in (channel, day, layer, version) order plus the lookup index."""
    with op.batch_alter_table("interval_day") as batch:
        batch.drop_constraint("uq_interval_day_key", type_="unique")
        batch.create_unique_constraint("uq_interval_day_version", ["channel_id", "day", "layer", "version"])
    op.create_index("ix_interval_day_lookup", "interval_day", ["channel_id", "layer", "day", "is_current"])
