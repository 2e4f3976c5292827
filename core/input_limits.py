"""Bounds on what a meter file may contain, and how an error quotes the data.

Every meter parser works inside these limits, so a hostile or broken file ends in a
clear :class:`~kwhub.core.intervals.IntervalDataError` naming the file, the line and the limit,
never in a crash, a runaway allocation or an error message that repeats megabytes of
the input. Operators set them in the ``[ingest]`` table of ``kwhub.toml``; adapters get
them as ``context.limits``.
"""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kwhub.core.interval_grid import IntervalDataError

if TYPE_CHECKING:
    import numpy as np

EXCERPT_CHARS = 40

ABSURD_KWH = 1e12  # one interval's energy beyond any plant on earth: corrupt data, never a reading
ABSURD_RAW = ABSURD_KWH * 1000  # the same bound on a file's value in its own unit (Wh at the smallest)

KIB = 1024
MIB = 1024 * 1024


class InputLimits(BaseModel):
    """The ``[ingest]`` table: sane time range and size limits of meter input.

    Timestamps must lie in ``first_year`` .. ``last_year`` (inclusive, UTC). Sizes are in
    the units their names say; ``max_memory_mb`` bounds what a parser may need for one
    file (its estimate is checked before the work starts).
    """

    model_config = ConfigDict(extra="forbid")

    first_year: int = Field(default=1990, ge=1900, le=2999)
    last_year: int = Field(default=2100, ge=1900, le=2999)
    max_file_mb: float = Field(default=4096, gt=0)
    max_memory_mb: float = Field(default=4096, gt=0)
    max_header_kb: float = Field(default=1024, gt=0)
    max_line_kb: float = Field(default=1024, gt=0)
    max_field_kb: float = Field(default=64, gt=0)
    max_metadata_mb: float = Field(default=16, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> InputLimits:
        if self.last_year < self.first_year:
            raise ValueError(f"last_year {self.last_year} is before first_year {self.first_year}")
        return self

    # byte and epoch forms, for the parsers
    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * MIB)

    @property
    def max_memory_bytes(self) -> int:
        return int(self.max_memory_mb * MIB)

    @property
    def max_header_bytes(self) -> int:
        return int(self.max_header_kb * KIB)

    @property
    def max_line_bytes(self) -> int:
        return int(self.max_line_kb * KIB)

    @property
    def max_field_bytes(self) -> int:
        return int(self.max_field_kb * KIB)

    @property
    def max_metadata_bytes(self) -> int:
        return int(self.max_metadata_mb * MIB)

    @property
    def first_epoch(self) -> int:
        """UTC epoch seconds of 1 January of ``first_year``."""
        return int(datetime(self.first_year, 1, 1, tzinfo=UTC).timestamp())

    @property
    def end_epoch(self) -> int:
        """UTC epoch seconds of 1 January after ``last_year`` (exclusive end)."""
        return int(datetime(self.last_year + 1, 1, 1, tzinfo=UTC).timestamp())

    def range_text(self) -> str:
        """The accepted time range, as an error message states it."""
        return (f"{self.first_year}-01-01..{self.last_year}-12-31 UTC "
                "(ingest.first_year/last_year in kwhub.toml)")

    def outside(self, epochs: np.ndarray) -> np.ndarray:
        """Bool mask of the instants outside the accepted range."""
        import numpy as np  # lazily: loading the configuration needs no arrays

        e = np.asarray(epochs, dtype=np.int64)
        return (e < self.first_epoch) | (e >= self.end_epoch)


DEFAULT_LIMITS = InputLimits()


def excerpt(text: str | bytes, limit: int = EXCERPT_CHARS, *, whole: bool = True) -> str:
    """A short, quoted excerpt of input data for an error message (never the whole value).

    Longer values are cut and say how long they were: ``'12345678…' (1,048,576 characters)``;
    ``whole=False`` when ``text`` is itself only the start of the value (the length is unknown).
    """
    n = len(text)
    s = text[: limit * 4].decode("utf-8", errors="replace") if isinstance(text, bytes) else text
    if len(s) <= limit and n <= limit and whole:
        return repr(s)
    if not whole:
        return f"{s[:limit]!r}…"
    return f"{s[:limit]!r}… ({n:,} {'bytes' if isinstance(text, bytes) else 'characters'})"


def size_text(n_bytes: float) -> str:
    """``1.5 MiB``, ``64 KiB`` or ``512 bytes``."""
    if n_bytes >= MIB:
        return f"{n_bytes / MIB:,.4g} MiB"
    if n_bytes >= KIB:
        return f"{n_bytes / KIB:,.4g} KiB"
    return f"{int(n_bytes):,} bytes"


def instant_text(epoch: int) -> str:
    """An epoch as ISO UTC text, also for instants ``datetime`` cannot hold (year > 9999)."""
    try:
        return datetime.fromtimestamp(int(epoch), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        years = int(epoch) / (365.2425 * 86_400)
        return f"epoch {int(epoch)} s (about year {1970 + years:,.0f})"


def check_file(path: Path, limits: InputLimits, memory_per_byte: float) -> int:
    """Refuse what a parser must not start on: no regular file, too big, too much memory.

    ``memory_per_byte`` is the parser's peak memory per byte of input (measured); the
    estimate is checked against ``max_memory_mb`` before any work. Returns the file size.
    """
    source = str(path)
    try:
        st = path.stat()
    except OSError as exc:
        raise IntervalDataError(f"cannot read file: {exc.strerror}", source=source) from None
    if not stat.S_ISREG(st.st_mode):
        raise IntervalDataError("not a regular file (a device, pipe or directory); save the data to a file and "
                                "ingest that file", source=source)
    size = int(st.st_size)
    if size > limits.max_file_bytes:
        raise IntervalDataError(f"file is {size_text(size)}, larger than the limit of "
                                f"{size_text(limits.max_file_bytes)} (ingest.max_file_mb in kwhub.toml); split it",
                                source=source)
    need = size * memory_per_byte
    if need > limits.max_memory_bytes:
        raise IntervalDataError(f"reading this {size_text(size)} file needs about {size_text(need)} of memory, more "
                                f"than the limit of {size_text(limits.max_memory_bytes)} (ingest.max_memory_mb in "
                                "kwhub.toml); split the file or raise the limit", source=source)
    return size
