"""Settlement tables (runs, run inputs, invoices, invoice lines, numbering).

Revision ID: 0002_settlement
Revises: 0001_core
"""

revision = "0002_settlement"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Filled in by the settlement tables."""


def downgrade() -> None:
    """Reverse of upgrade."""
