"""The dashboard's tables (created by migration ``0014_ui_session``; see :mod:`kwhub.hub.ui.session`).

* ``ui_session``: one row per signed-in browser: the SHA-256 of its session id (never the id),
  the API key's id (never the key), when it was made and last seen, and when it ends.
* ``ui_secret``: secrets shared by every process on the database (the sign-in form's signing key).

Timestamps are UTC; SQLite hands them back naive (:func:`kwhub.hub.store.tables.as_utc`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime, Index
from sqlmodel import Field, SQLModel


class UiSessionRow(SQLModel, table=True):
    """A dashboard session: hashed id, its key's id, made, last seen, ends."""

    __tablename__ = "ui_session"
    __table_args__ = (Index("ix_ui_session_key", "key_id"), Index("ix_ui_session_expires", "expires_at"))

    id_sha256: str = Field(primary_key=True, max_length=64)
    key_id: str = Field(max_length=32)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    last_seen_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class UiSecretRow(SQLModel, table=True):
    """A secret shared by the processes on this database, by name (hex)."""

    __tablename__ = "ui_secret"

    name: str = Field(primary_key=True, max_length=64)
    value: str = Field(max_length=128)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


ui_session_table = UiSessionRow.__table__  # type: ignore[attr-defined]
ui_secret_table = UiSecretRow.__table__  # type: ignore[attr-defined]
