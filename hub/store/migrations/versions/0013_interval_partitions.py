"""PostgreSQL: ``interval_day`` partitioned by month (native declarative range partitioning on ``day``).

A year of 5,000 channels is 1.8M day rows per layer; one partition per month keeps each
month's rows, and its share of the unique key's index, together: a month's read touches one
or two partitions, and an old month can be detached and archived whole (after
``kwhub export``).

* ``interval_day`` becomes ``PARTITION BY RANGE (day)``: the same columns, the same ids
  (the sequence is kept), the primary key ``(id, day)`` (a partitioned table's keys must hold
  the partition column), the unique key ``(channel_id, layer, day, version)`` and the row
  security policies of ``0011_service``. The rows are copied into one partition per month
  they cover.
* Partitions are named ``interval_day_YYYY_MM`` and hold ``[first of month, first of next
  month)``. ``kwhub_interval_partitions(first_day, last_day)`` creates the missing ones of a
  day range; the interval store calls it before each write (it runs as the table's owner,
  ``SECURITY DEFINER``, so the application role can write new months without owning the
  table). Concurrent writers take an advisory lock before creating one.
* ``interval_day_default`` catches a row of a month without a partition written around the
  store; the function moves such rows into the month's partition when it creates it.
* Each partition has row-level security enabled with no policy: read through
  ``interval_day`` (whose policies apply), a partition read directly shows nothing to a
  non-owner.

SQLite: nothing changes (no-op).

Revision ID: 0013_interval_partitions
Revises: 0011_service
"""

from alembic import op

revision = "0013_interval_partitions"
down_revision = "0011_service"
branch_labels = None
depends_on = None

_COLUMNS = ("id, channel_id, day, layer, version, interval_minutes, n_values, \"values\", quality, rule_ids, "
            "rule_names, content_hash, source, created_at, is_current")
_READ = "channel_id IN (SELECT id FROM channel WHERE party_id = kwhub_scope())"

# (first_day, last_day) -> partitions created; moves rows of a new month out of the default partition
_FUNCTION = """
CREATE FUNCTION kwhub_interval_partitions(first_day date, last_day date) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = {schema}, pg_temp AS $fn$
DECLARE
    m date;
    n date;
    part text;
    made integer := 0;
BEGIN
    IF first_day IS NULL OR last_day IS NULL OR last_day < first_day THEN
        RETURN 0;
    END IF;
    m := date_trunc('month', first_day)::date;
    WHILE m <= last_day LOOP
        n := (m + interval '1 month')::date;
        part := 'interval_day_' || to_char(m, 'YYYY_MM');
        IF to_regclass(quote_ident(part)) IS NULL THEN
            PERFORM pg_advisory_xact_lock(hashtext('kwhub_interval_partitions'));
            IF to_regclass(quote_ident(part)) IS NULL THEN
                IF EXISTS (SELECT 1 FROM interval_day_default WHERE day >= m AND day < n) THEN
                    EXECUTE format('CREATE TABLE %I (LIKE interval_day INCLUDING DEFAULTS)', part);
                    EXECUTE format('WITH moved AS (DELETE FROM interval_day_default WHERE day >= %L AND day < %L '
                                   'RETURNING *) INSERT INTO %I SELECT * FROM moved', m, n, part);
                    EXECUTE format('ALTER TABLE interval_day ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                                   part, m, n);
                ELSE
                    EXECUTE format('CREATE TABLE %I PARTITION OF interval_day FOR VALUES FROM (%L) TO (%L)',
                                   part, m, n);
                END IF;
                EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', part);
                made := made + 1;
            END IF;
        END IF;
        m := n;
    END LOOP;
    RETURN made;
END
$fn$
"""


def _policies(table: str) -> None:
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY {table}_read ON {table} FOR SELECT USING (kwhub_scope() = '*' OR ({_READ}))")
    op.execute(f"CREATE POLICY {table}_write ON {table} FOR ALL "
               "USING (kwhub_scope() = '*') WITH CHECK (kwhub_scope() = '*')")


def upgrade() -> None:
    """Move ``interval_day`` into a month-partitioned table (PostgreSQL only)."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    schema = bind.exec_driver_sql("SELECT quote_ident(current_schema())").scalar_one()
    seq = bind.exec_driver_sql("SELECT pg_get_serial_sequence('interval_day', 'id')").scalar_one()
    op.execute("ALTER TABLE interval_day RENAME TO interval_day_plain")
    op.execute("ALTER TABLE interval_day_plain RENAME CONSTRAINT interval_day_pkey TO interval_day_plain_pkey")
    op.execute("ALTER TABLE interval_day_plain RENAME CONSTRAINT uq_interval_day_key TO uq_interval_day_plain_key")
    op.execute("CREATE TABLE interval_day (LIKE interval_day_plain INCLUDING DEFAULTS) PARTITION BY RANGE (day)")
    op.execute("ALTER TABLE interval_day ADD CONSTRAINT interval_day_pkey PRIMARY KEY (id, day)")
    op.execute("ALTER TABLE interval_day ADD CONSTRAINT uq_interval_day_key UNIQUE (channel_id, layer, day, version)")
    if seq:
        op.execute(f"ALTER SEQUENCE {seq} OWNED BY interval_day.id")
    op.execute("CREATE TABLE interval_day_default PARTITION OF interval_day DEFAULT")
    op.execute("ALTER TABLE interval_day_default ENABLE ROW LEVEL SECURITY")
    op.execute(_FUNCTION.format(schema=schema))
    op.execute("SELECT kwhub_interval_partitions(min(day), max(day)) FROM interval_day_plain")
    op.execute(f"INSERT INTO interval_day ({_COLUMNS}) SELECT {_COLUMNS} FROM interval_day_plain")
    op.execute("DROP TABLE interval_day_plain")
    _policies("interval_day")


def downgrade() -> None:
    """Back to one plain ``interval_day`` table (PostgreSQL only)."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    seq = bind.exec_driver_sql("SELECT pg_get_serial_sequence('interval_day', 'id')").scalar_one()
    op.execute("ALTER TABLE interval_day RENAME TO interval_day_parts")
    op.execute("ALTER TABLE interval_day_parts RENAME CONSTRAINT interval_day_pkey TO interval_day_parts_pkey")
    op.execute("ALTER TABLE interval_day_parts RENAME CONSTRAINT uq_interval_day_key TO uq_interval_day_parts_key")
    op.execute("CREATE TABLE interval_day (LIKE interval_day_parts INCLUDING DEFAULTS)")
    op.execute("ALTER TABLE interval_day ADD CONSTRAINT interval_day_pkey PRIMARY KEY (id)")
    op.execute("ALTER TABLE interval_day ADD CONSTRAINT uq_interval_day_key UNIQUE (channel_id, layer, day, version)")
    if seq:
        op.execute(f"ALTER SEQUENCE {seq} OWNED BY interval_day.id")
    op.execute(f"INSERT INTO interval_day ({_COLUMNS}) SELECT {_COLUMNS} FROM interval_day_parts")
    op.execute("DROP TABLE interval_day_parts CASCADE")
    op.execute("DROP FUNCTION IF EXISTS kwhub_interval_partitions(date, date)")
    _policies("interval_day")
