"""Persistence: reference data and interval values in SQLite or PostgreSQL.

``Database.open()`` opens (and migrates) the database; ``db.intervals`` is the
:class:`IntervalStore` that keeps interval data per (channel, UTC day, layer, version).

The names below are imported on first use, so a command that only needs ``Database``
does not pay for the interval store, numpy or the period store at start-up.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kwhub.hub.store.audit import audit_entries, record_audit
    from kwhub.hub.store.db import Database, DatabaseError, migration_head
    from kwhub.hub.store.interval_store import (
        ChannelSummary,
        DenseDays,
        IntervalStore,
        StaleMarkInfo,
        WriteReport,
    )
    from kwhub.hub.store.period_store import PeriodStore, PeriodSummary, PeriodWriteReport
    from kwhub.hub.store.reference import sync_reference_data

_WHERE = {
    "audit_entries": "audit", "record_audit": "audit",
    "Database": "db", "DatabaseError": "db", "migration_head": "db",
    "ChannelSummary": "interval_store", "DenseDays": "interval_store", "IntervalStore": "interval_store",
    "StaleMarkInfo": "interval_store", "WriteReport": "interval_store",
    "PeriodStore": "period_store", "PeriodSummary": "period_store", "PeriodWriteReport": "period_store",
    "sync_reference_data": "reference",
}

__all__ = [
    "ChannelSummary", "Database", "DenseDays", "DatabaseError", "IntervalStore", "PeriodStore", "PeriodSummary",
    "PeriodWriteReport", "StaleMarkInfo", "WriteReport", "audit_entries", "migration_head", "record_audit",
    "sync_reference_data",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
