"""Outbox table.

Revision ID: 0003_outbox
Revises: 0002_settlement
"""

revision = "0003_outbox"
down_revision = "0002_settlement"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Filled in by the outbox table."""


def downgrade() -> None:
    """Reverse of upgrade."""
