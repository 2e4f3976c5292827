"""Rendered documents and EDI control-number sequences.

``rendered_document`` records how each (invoice, version, format, variant) was rendered
(creation time and EDI control number), so rendering it again gives the same bytes;
``edi_control_sequence`` holds the next control number per trading partner.

Revision ID: 0007_rendered_documents
Revises: 0006_tamper_evidence
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_rendered_documents"
down_revision = "0006_tamper_evidence"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``rendered_document`` and ``edi_control_sequence`` (see hub/store/rendering_tables.py)."""
    op.create_table(
        "rendered_document",
        sa.Column("invoice_id", sa.String(length=200), primary_key=True),
        sa.Column("invoice_version", sa.Integer(), primary_key=True),
        sa.Column("format_id", sa.String(length=64), primary_key=True),
        sa.Column("variant", sa.Integer(), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("control_partner", sa.String(length=200), nullable=True),
        sa.Column("control_number", sa.Integer(), nullable=True),
        sa.Column("body_sha256", sa.String(length=64), nullable=False),
    )
    op.create_table(
        "edi_control_sequence",
        sa.Column("partner", sa.String(length=200), primary_key=True),
        sa.Column("next_number", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    """Drop both tables."""
    op.drop_table("edi_control_sequence")
    op.drop_table("rendered_document")
