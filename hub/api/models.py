"""Response shapes shared by the routes (documented in ``/openapi.json``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Page(BaseModel):
    """A page of a list: ``items`` and the cursor of the next page (null on the last)."""

    items: list[dict[str, Any]]
    next_cursor: str | None = None


class Reason(BaseModel):
    """Why: required for approvals, rejections and revocations (kept in the audit log)."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000, pattern=r"\S")


class Done(BaseModel):
    """What a write did."""

    ok: bool
    detail: dict[str, Any] = Field(default_factory=dict)


JSON_OBJECT = {"application/json": {"schema": {"type": "object"}}}
