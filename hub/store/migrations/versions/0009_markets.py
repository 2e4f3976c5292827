"""Market tables: submissions, awards, prices (all versions), statements and shadow runs.

See hub/store/market_tables.py for what each holds.

Revision ID: 0009_markets
Revises: 0008_review_gate
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_markets"
down_revision = "0008_review_gate"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the six market tables."""
    op.create_table(
        "market_submission",
        sa.Column("id", sa.String(length=64), primary_key=True),
        sa.Column("iso", sa.String(length=16), nullable=False),
        sa.Column("market", sa.String(length=8), nullable=False),
        sa.Column("trading_date", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("document_sha256", sa.String(length=64), nullable=False),
        sa.Column("iso_ref", sa.Text(), nullable=False),
        sa.Column("bids", sa.Text(), nullable=False),
        sa.Column("outcomes", sa.Text(), nullable=False),
        sa.Column("messages", sa.Text(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_table(
        "market_award_day",
        sa.Column("iso", sa.String(length=16), primary_key=True),
        sa.Column("market", sa.String(length=8), primary_key=True),
        sa.Column("resource", sa.String(length=200), primary_key=True),
        sa.Column("trading_date", sa.Date(), primary_key=True),
        sa.Column("start_epoch", sa.BigInteger(), nullable=False),
        sa.Column("interval_minutes", sa.Integer(), nullable=False),
        sa.Column("n_values", sa.Integer(), nullable=False),
        sa.Column("wh", sa.LargeBinary(), nullable=False),
        sa.Column("bid_id", sa.String(length=200), nullable=False),
        sa.Column("iso_ref", sa.Text(), nullable=False),
        sa.Column("received_at", _TS, nullable=False),
    )
    op.create_table(
        "market_price_day",
        sa.Column("iso", sa.String(length=16), primary_key=True),
        sa.Column("node", sa.String(length=200), primary_key=True),
        sa.Column("market", sa.String(length=8), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True),
        sa.Column("start_epoch", sa.BigInteger(), nullable=False),
        sa.Column("interval_minutes", sa.Integer(), nullable=False),
        sa.Column("n_values", sa.Integer(), nullable=False),
        sa.Column("price_units", sa.LargeBinary(), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("received_at", _TS, nullable=False),
    )
    op.create_table(
        "market_statement",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("iso", sa.String(length=16), nullable=False),
        sa.Column("operating_day", sa.Date(), nullable=False),
        sa.Column("market", sa.String(length=8), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("statement_id", sa.String(length=200), nullable=False),
        sa.Column("total", sa.String(length=40), nullable=False),
        sa.Column("document_sha256", sa.String(length=64), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("received_at", _TS, nullable=False),
        sa.UniqueConstraint("iso", "statement_id", name="uq_market_statement_id"),
    )
    op.create_table(
        "market_statement_line",
        sa.Column("statement_pk", sa.Integer(), sa.ForeignKey("market_statement.id"), primary_key=True),
        sa.Column("code", sa.String(length=32), primary_key=True),
        sa.Column("resource", sa.String(length=200), primary_key=True),
        sa.Column("start_epoch", sa.BigInteger(), primary_key=True),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.Column("amount", sa.String(length=40), nullable=False),
        sa.Column("determinants", sa.Text(), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
    )
    op.create_index("ix_market_statement_line_resource", "market_statement_line", ["resource", "start_epoch"])
    op.create_table(
        "market_shadow_run",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("iso", sa.String(length=16), nullable=False),
        sa.Column("operating_day", sa.Date(), nullable=False),
        sa.Column("statement_pk", sa.Integer(), sa.ForeignKey("market_statement.id"), nullable=True),
        sa.Column("inputs_sha256", sa.String(length=64), nullable=False),
        sa.Column("price_versions", sa.Text(), nullable=False),
        sa.Column("totals", sa.Text(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )


def downgrade() -> None:
    """Drop the market tables."""
    op.drop_table("market_shadow_run")
    op.drop_index("ix_market_statement_line_resource", table_name="market_statement_line")
    op.drop_table("market_statement_line")
    op.drop_table("market_statement")
    op.drop_table("market_price_day")
    op.drop_table("market_award_day")
    op.drop_table("market_submission")
