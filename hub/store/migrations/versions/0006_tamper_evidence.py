"""Tamper evidence: the document hash chain, the rendering register, send markers, and
immutability against ``INSERT OR REPLACE`` (SQLite) and ``TRUNCATE`` (PostgreSQL).

* ``invoice`` gains ``document_sha256``, ``prev_chain_sha256`` and ``chain_sha256``
  (:mod:`kwhub.hub.settle.integrity`); documents issued before this migration are hashed and chained
  here, in (seller, number) order.
* ``document_rendering`` registers each rendered body queued for delivery; rows already in
  the outbox are registered as they stand at the upgrade.
* ``outbox`` gains ``send_started_at`` (set right before the transport is called) and
  ``document_sha256`` (the issued document the body was rendered from).
* SQLite: a ``BEFORE INSERT`` trigger on ``invoice``, ``invoice_line`` and
  ``document_rendering`` refuses a row that would replace an existing one (``INSERT OR
  REPLACE`` / ``REPLACE INTO`` delete the old row without firing delete triggers);
  ``document_rendering`` refuses ``UPDATE`` and ``DELETE`` like the invoice tables.
  Upserts (``ON CONFLICT DO UPDATE``) fire the update triggers and are refused.
* PostgreSQL: statement-level ``BEFORE TRUNCATE`` triggers on the three tables, and row
  triggers refusing ``UPDATE``/``DELETE`` on ``document_rendering``.

Revision ID: 0006_tamper_evidence
Revises: 0005_period_reading
"""

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0006_tamper_evidence"
down_revision = "0005_period_reading"
branch_labels = None
depends_on = None

_INVOICE_MSG = "issued invoices are immutable: corrections are new documents"
_RENDER_MSG = "registered renderings are immutable"
# table -> (columns of every unique key, message)
_NO_REPLACE = {
    "invoice": ("id = NEW.id OR (seller = NEW.seller AND (number_seq = NEW.number_seq OR number = NEW.number))",
                _INVOICE_MSG),
    "invoice_line": ("invoice_id = NEW.invoice_id AND number = NEW.number", _INVOICE_MSG),
    "document_rendering": ("invoice_id = NEW.invoice_id AND format_id = NEW.format_id "
                           "AND body_sha256 = NEW.body_sha256", _RENDER_MSG),
}


def upgrade() -> None:
    """Add the hash columns, the rendering register and the new triggers; hash existing documents."""
    dialect = op.get_bind().dialect.name
    for name in ("document_sha256", "prev_chain_sha256", "chain_sha256"):
        op.add_column("invoice", sa.Column(name, sa.String(64), nullable=True))
    op.add_column("outbox", sa.Column("send_started_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("outbox", sa.Column("document_sha256", sa.String(64), nullable=True))
    op.create_table(
        "document_rendering",
        sa.Column("invoice_id", sa.String(200), primary_key=True),
        sa.Column("format_id", sa.String(64), primary_key=True),
        sa.Column("body_sha256", sa.String(64), primary_key=True),
        sa.Column("document_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    _backfill(dialect)
    if dialect == "postgresql":
        op.execute(
            "CREATE FUNCTION kwhub_refuse_rendering_change() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN RAISE EXCEPTION '% on %: {_RENDER_MSG}', TG_OP, TG_TABLE_NAME; END; $$"
        )
        op.execute("CREATE TRIGGER document_rendering_immutable BEFORE UPDATE OR DELETE ON document_rendering "
                   "FOR EACH ROW EXECUTE FUNCTION kwhub_refuse_rendering_change()")
        for table, function in (("invoice", "kwhub_refuse_invoice_change"),
                                ("invoice_line", "kwhub_refuse_invoice_change"),
                                ("document_rendering", "kwhub_refuse_rendering_change")):
            op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                       f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()")
    elif dialect == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER document_rendering_no_{action.lower()} BEFORE {action} ON document_rendering "
                       f"BEGIN SELECT RAISE(ABORT, '{action} on document_rendering: {_RENDER_MSG}'); END")
        for table, (match, msg) in _NO_REPLACE.items():
            op.execute(f"CREATE TRIGGER {table}_no_replace BEFORE INSERT ON {table} "
                       f"WHEN EXISTS (SELECT 1 FROM {table} WHERE {match}) "
                       f"BEGIN SELECT RAISE(ABORT, 'INSERT over an existing {table} row: {msg}'); END")


def _chain(seller: str, seq: int, invoice_id: str, digest: str, prev: str) -> str:
    # the formula of kwhub.hub.settle.integrity.chain_sha256 (version kwhub-chain-v1), kept here as it was
    text = f"kwhub-chain-v1\n{seller}\n{seq}\n{invoice_id}\n{digest}\n{prev}\n"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _backfill(dialect: str) -> None:
    """Hash and chain the documents issued so far; register the bodies already queued."""
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, seller, number_seq, document FROM invoice ORDER BY seller, number_seq")).all()
    if rows:
        if dialect == "postgresql":
            op.execute("ALTER TABLE invoice DISABLE TRIGGER invoice_immutable")
        elif dialect == "sqlite":
            op.execute("DROP TRIGGER invoice_no_update")
        prev: dict[str, str] = {}
        for inv_id, seller, seq, document in rows:
            digest = hashlib.sha256(document.encode("utf-8")).hexdigest()
            link = prev.get(seller, "0" * 64)
            chain = _chain(seller, int(seq), inv_id, digest, link)
            bind.execute(sa.text("UPDATE invoice SET document_sha256 = :d, prev_chain_sha256 = :p, chain_sha256 = :c "
                                 "WHERE id = :i"), {"d": digest, "p": link, "c": chain, "i": inv_id})
            prev[seller] = chain
        if dialect == "postgresql":
            op.execute("ALTER TABLE invoice ENABLE TRIGGER invoice_immutable")
        elif dialect == "sqlite":
            op.execute(f"CREATE TRIGGER invoice_no_update BEFORE UPDATE ON invoice "
                       f"BEGIN SELECT RAISE(ABORT, 'UPDATE on invoice: {_INVOICE_MSG}'); END")
    bind.execute(sa.text(
        "UPDATE outbox SET document_sha256 = (SELECT document_sha256 FROM invoice WHERE invoice.id = outbox.invoice_id)"))
    bind.execute(sa.text(
        "INSERT INTO document_rendering (invoice_id, format_id, body_sha256, document_sha256, created_at) "
        "SELECT DISTINCT o.invoice_id, o.format_id, o.body_sha256, i.document_sha256, i.issued_at "
        "FROM outbox o JOIN invoice i ON i.id = o.invoice_id"))


def downgrade() -> None:
    """Drop the triggers, the rendering register and the new columns."""
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        for table in ("invoice", "invoice_line", "document_rendering"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        op.execute("DROP TRIGGER IF EXISTS document_rendering_immutable ON document_rendering")
        op.execute("DROP FUNCTION IF EXISTS kwhub_refuse_rendering_change()")
    elif dialect == "sqlite":
        for table in _NO_REPLACE:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_replace")
        for action in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS document_rendering_no_{action}")
    op.drop_table("document_rendering")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("document_sha256")
        batch.drop_column("send_started_at")
    if dialect == "sqlite":
        # a table rebuild would drop the invoice triggers with it; SQLite >= 3.35 drops columns in place
        for name in ("chain_sha256", "prev_chain_sha256", "document_sha256"):
            op.execute(f"ALTER TABLE invoice DROP COLUMN {name}")
    else:
        for name in ("chain_sha256", "prev_chain_sha256", "document_sha256"):
            op.drop_column("invoice", name)
