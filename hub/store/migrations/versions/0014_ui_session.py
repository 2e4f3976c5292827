"""The dashboard's sessions in the database, so every worker and instance on it shares them.

* ``ui_session``: SHA-256 of the session id (primary key), the API key's id, created, last seen,
  ends (indexes on the key, to end a revoked key's sessions, and on the end, to prune).
* ``ui_secret``: named secrets shared by the processes (the sign-in form's signing key).

Mirrors :mod:`kwhub.hub.ui.session_tables`. No row-level security: the rows name no party,
and a session is found only by the hash of its id.

Revision ID: 0014_ui_session
Revises: 0013_interval_partitions
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_ui_session"
down_revision = "0013_interval_partitions"
branch_labels = None
depends_on = None


def _ts(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "ui_session",
        sa.Column("id_sha256", sa.String(64), primary_key=True),
        sa.Column("key_id", sa.String(32), nullable=False),
        _ts("created_at"),
        _ts("last_seen_at"),
        _ts("expires_at"),
    )
    op.create_index("ix_ui_session_key", "ui_session", ["key_id"])
    op.create_index("ix_ui_session_expires", "ui_session", ["expires_at"])
    op.create_table(
        "ui_secret",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(128), nullable=False),
        _ts("created_at"),
    )


def downgrade() -> None:
    op.drop_table("ui_secret")
    op.drop_index("ix_ui_session_expires", table_name="ui_session")
    op.drop_index("ix_ui_session_key", table_name="ui_session")
    op.drop_table("ui_session")
