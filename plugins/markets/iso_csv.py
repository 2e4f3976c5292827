"""What the CSV readers of the ISO formats (CAISO, PJM) share: the rows of a statement file
under its fixed header, an exact decimal field, and the place of a UTC start in the
operating day's interval grid."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from decimal import Decimal, InvalidOperation

import numpy as np

from kwhub.core.intervals import IntervalDataError
from kwhub.core.markets.hour_labels import DayGrid


def statement_rows(data: bytes, source: str, header: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """The non-empty rows of a statement CSV as (line number, field by header name), one at a time.

    The first line must be ``header`` exactly (cells stripped); a row of another length is
    refused when it is reached, so the errors of earlier rows come first.
    """
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    if not rows or [h.strip() for h in rows[0]] != list(header):
        raise IntervalDataError(f"not a statement header {header}", source=source, where="line 1")
    for n, row in enumerate(rows[1:], start=2):
        if row:
            yield n, dict(zip(header, row, strict=True))


def decimal_field(row: dict[str, str], key: str, source: str, line: int) -> Decimal:
    """``row[key]`` as an exact decimal; anything else is an error naming the line and field."""
    try:
        return Decimal(row[key].strip())
    except InvalidOperation:
        raise IntervalDataError(f"not a number: {row[key]!r}", source=source, where=f"line {line}",
                                field=key) from None


def grid_position(grid: DayGrid, start_epoch: int) -> int | None:
    """The index of the interval of ``grid`` that starts at ``start_epoch``, or None when none does."""
    i = int(np.searchsorted(grid.starts, start_epoch))
    return i if i < len(grid) and grid.starts[i] == start_epoch else None
