"""Persistence: reference data and interval values in SQLite or PostgreSQL.

``Database.open()`` opens (and migrates) the database; ``db.intervals`` is the
:class:`IntervalStore` that keeps interval data per (channel, UTC day, layer, version).
"""

from kwhub.hub.store.audit import audit_entries, record_audit
from kwhub.hub.store.db import Database, migration_head
from kwhub.hub.store.interval_store import ChannelSummary, IntervalStore, StaleMarkInfo, WriteReport
from kwhub.hub.store.reference import sync_reference_data

__all__ = [
    "ChannelSummary",
    "Database",
    "IntervalStore",
    "StaleMarkInfo",
    "WriteReport",
    "audit_entries",
    "migration_head",
    "record_audit",
    "sync_reference_data",
]
