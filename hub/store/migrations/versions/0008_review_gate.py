"""The review gate: a run's draft document and its plausibility checks.

A settlement run is recorded as ``draft`` or ``held`` with the document it would issue
(``draft``, JSON) and the results of its checks (``checks``, JSON); approval issues the
document. Runs recorded before this migration keep their status (``issued`` or
``no_change``) and have neither.

Revision ID: 0008_review_gate
Revises: 0007_rendered_documents
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_review_gate"
down_revision = "0007_rendered_documents"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``settlement_run.draft`` and ``settlement_run.checks``."""
    with op.batch_alter_table("settlement_run") as batch:
        batch.add_column(sa.Column("draft", sa.Text(), nullable=True))
        batch.add_column(sa.Column("checks", sa.Text(), nullable=True))


def downgrade() -> None:
    """Drop the two columns."""
    with op.batch_alter_table("settlement_run") as batch:
        batch.drop_column("checks")
        batch.drop_column("draft")
