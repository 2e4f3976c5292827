"""Pieces every invoice transport shares: retry settings, a richer result, safe file names."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kwhub.core.adapters import DeliveryResult

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class RetrySettings(BaseModel):
    """``retry = {...}`` of a transport instance: how the outbox relay retries it.

    Delay before attempt n+1 is ``uniform(0, min(cap_s, base_s * 2**(n-1)))`` (full
    jitter); after ``max_attempts`` failed attempts the document is dead-lettered. A send
    claimed longer than ``lease_s`` ago without an outcome is assumed lost and re-sent.
    ``deadline_s`` bounds each send as a whole (connect, upload, answer); it must be shorter
    than the lease (default: half of it), so a slow receiver can never hold a send past the
    moment another relay may take the row over.
    """

    model_config = ConfigDict(extra="forbid")

    base_s: float = Field(default=2.0, gt=0)
    cap_s: float = Field(default=600.0, gt=0)
    max_attempts: int = Field(default=8, ge=1)
    lease_s: float = Field(default=120.0, gt=0)
    deadline_s: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _deadline_inside_lease(self) -> RetrySettings:
        if self.deadline_s is not None and self.deadline_s >= self.lease_s:
            raise ValueError(f"deadline_s ({self.deadline_s:g}) must be shorter than lease_s ({self.lease_s:g})")
        return self

    @property
    def send_deadline_s(self) -> float:
        """The overall time one send may take."""
        return self.deadline_s if self.deadline_s is not None else self.lease_s / 2


@dataclass
class TransportResult(DeliveryResult):
    """A :class:`DeliveryResult` that also says whether the receiver already had the document."""

    duplicate: bool = False


DEFAULT_FILE_MODE = "0640"


def parse_file_mode(value: str | int) -> int:
    """A delivered file's permission bits from ``"0640"`` (octal text) or a TOML octal integer (``0o640``).

    The owner keeps read and write (kwhub re-reads a file to recognise a duplicate); group
    and others get what the receiving side needs, at most read and write.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        mode = value
    else:
        text = str(value).strip()
        if not re.fullmatch(r"0?o?[0-7]{3}", text):
            raise ValueError(f"file_mode {value!r}: give three octal digits such as \"0640\" (owner read/write, "
                             "group read)")
        mode = int(text[-3:], 8)
    if not 0 <= mode <= 0o777:
        raise ValueError(f"file_mode {value!r}: outside 0000..0777")
    if mode & 0o600 != 0o600:
        raise ValueError(f"file_mode {oct(mode)[2:]:0>4}: the owner needs read and write (6 as first digit)")
    if mode & 0o111:
        raise ValueError(f"file_mode {oct(mode)[2:]:0>4}: invoices are not executable; drop the execute bits")
    return mode


def safe_filename(name: str) -> str:
    """A file name with no directory part and nothing outside ``[A-Za-z0-9._-]``."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _UNSAFE.sub("_", base).lstrip(".")
    if not cleaned:
        raise ValueError(f"document file name {name!r} has no usable characters")
    return cleaned
