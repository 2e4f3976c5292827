"""Daily price indices (e.g. a gas hub's daily $/MMBtu) for fuel-indexed prices.

An :class:`IndexSeries` holds one price per calendar day, kept as exact Decimals (the
published figures) with a float64 copy for vectorised use. :func:`load_index_csv` reads
a CSV with a header row::

    date,price
    2026-11-02,3.125
    2026-11-03,3.080

Accepted header names: ``date`` (or ``flow_date``, ``trade_date``, ``day``) and ``price``
(or ``index``, ``value``, ``usd_per_mmbtu``); an optional ``name`` column must hold one
name only. Dates are ISO ``YYYY-MM-DD`` (``MM/DD/YYYY`` is accepted too). Blank lines
and lines starting with ``#`` are skipped. Any bad row raises :class:`IndexSeriesError`
naming the file, the line number and the field; nothing is half-loaded.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Literal

import numpy as np

DATE_COLUMNS = ("date", "flow_date", "trade_date", "day")
PRICE_COLUMNS = ("price", "index", "value", "usd_per_mmbtu")

MissingPolicy = Literal["error", "previous"]


class IndexSeriesError(ValueError):
    """A price index that cannot be loaded or does not cover a requested day.

    ``source`` names the file (or series), ``line`` the 1-based line, ``field`` the column.
    """

    def __init__(self, message: str, *, source: str = "", line: int | None = None, field: str = "") -> None:
        self.source = source
        self.line = line
        self.field = field
        self.reason = message
        where = source
        if line is not None:
            where = f"{where}:line {line}" if where else f"line {line}"
        if field:
            where = f"{where} [{field}]" if where else f"[{field}]"
        super().__init__(f"{where}: {message}" if where else message)


@dataclass(frozen=True)
class IndexSeries:
    """One published price per day, sorted by day, no duplicates."""

    name: str
    days: tuple[date, ...]
    prices: tuple[Decimal, ...]
    unit: str = "USD/MMBtu"
    source: str = ""
    _lookup: dict[date, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.days) != len(self.prices):
            raise IndexSeriesError("days and prices differ in length", source=self.source or self.name)
        if any(b <= a for a, b in zip(self.days, self.days[1:], strict=False)):
            raise IndexSeriesError("days must be strictly increasing", source=self.source or self.name)
        self._lookup.update({d: i for i, d in enumerate(self.days)})

    @classmethod
    def from_mapping(cls, name: str, prices: Mapping[date, Decimal | float | int | str], unit: str = "USD/MMBtu") -> IndexSeries:
        """Build a series from ``{day: price}`` (any order)."""
        items = sorted(prices.items())
        return cls(name=name, days=tuple(d for d, _ in items), prices=tuple(_exact(p) for _, p in items), unit=unit)

    @property
    def values(self) -> np.ndarray:
        """Prices as float64 (for charts and vectorised screening, never for money)."""
        return np.array([float(p) for p in self.prices], dtype=np.float64)

    def __len__(self) -> int:
        return len(self.days)

    def __contains__(self, day: object) -> bool:
        return day in self._lookup

    def price_on(self, day: date, missing: MissingPolicy = "error") -> tuple[Decimal, date]:
        """The price for ``day`` and the day it was published for.

        With ``missing="previous"`` a day without a price takes the latest earlier price
        (e.g. a holiday without publication); with ``"error"`` it raises.
        """
        i = self._lookup.get(day)
        if i is not None:
            return self.prices[i], day
        if missing == "previous":
            pos = int(np.searchsorted(np.array(self.days, dtype="datetime64[D]"), np.datetime64(day, "D"), side="right")) - 1
            if pos >= 0:
                return self.prices[pos], self.days[pos]
            raise IndexSeriesError(f"no price on or before {day.isoformat()}", source=self.source or self.name)
        raise IndexSeriesError(f"no price for {day.isoformat()}", source=self.source or self.name)

    def prices_for(self, days: Iterable[date], missing: MissingPolicy = "error") -> list[tuple[Decimal, date]]:
        """:meth:`price_on` for each day; the error names every missing day at once."""
        out: list[tuple[Decimal, date]] = []
        absent: list[str] = []
        for d in days:
            try:
                out.append(self.price_on(d, missing))
            except IndexSeriesError:
                absent.append(d.isoformat())
        if absent:
            raise IndexSeriesError(f"no price for {', '.join(absent)}", source=self.source or self.name)
        return out


def _exact(value: Decimal | float | int | str) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(value)


def _parse_date(text: str) -> date:
    text = text.strip()
    for fmt in ("%Y-%m-%d", "%m/%d/%Y"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise ValueError(f"{text!r} is not a date (YYYY-MM-DD or MM/DD/YYYY)")


def _parse_price(text: str) -> Decimal:
    raw = text.strip().replace("$", "")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a number") from None
    if not value.is_finite() or not math.isfinite(float(value)):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def load_index_csv(path: str | Path, name: str | None = None, unit: str = "USD/MMBtu") -> IndexSeries:
    """Read a daily index CSV into an :class:`IndexSeries`.

    ``name`` defaults to the file's ``name`` column, else the file stem. Raises
    :class:`IndexSeriesError` (file, line, field) for a missing header column, a bad date
    or price, two different prices for one day, mixed names or an empty file. The same
    row repeated with the same price is accepted once.
    """
    p = Path(path)
    src = str(p)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise IndexSeriesError("file not found", source=src) from None
    except UnicodeDecodeError as exc:
        raise IndexSeriesError(f"not UTF-8 text ({exc.reason})", source=src) from None

    rows = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip() and not line.lstrip().startswith("#")]
    if not rows:
        raise IndexSeriesError("empty file: expected a header row 'date,price'", source=src, line=1)
    header_no, header_line = rows[0]
    header = [h.strip().lower() for h in next(csv.reader([header_line]))]

    def column(options: tuple[str, ...], field_name: str) -> int:
        for opt in options:
            if opt in header:
                return header.index(opt)
        raise IndexSeriesError(
            f"header has no {field_name} column (expected one of {', '.join(options)}; found {', '.join(header)})",
            source=src, line=header_no, field=field_name,
        )

    date_col = column(DATE_COLUMNS, "date")
    price_col = column(PRICE_COLUMNS, "price")
    name_col = header.index("name") if "name" in header else None

    found: dict[date, tuple[Decimal, int]] = {}
    names: set[str] = set()
    for line_no, line in rows[1:]:
        cells = next(csv.reader([line]))
        if len(cells) < len(header):
            raise IndexSeriesError(f"{len(cells)} fields, header has {len(header)}", source=src, line=line_no)
        try:
            day = _parse_date(cells[date_col])
        except ValueError as exc:
            raise IndexSeriesError(str(exc), source=src, line=line_no, field=header[date_col]) from None
        try:
            price = _parse_price(cells[price_col])
        except ValueError as exc:
            raise IndexSeriesError(str(exc), source=src, line=line_no, field=header[price_col]) from None
        if name_col is not None and cells[name_col].strip():
            names.add(cells[name_col].strip())
        if day in found:
            earlier, earlier_line = found[day]
            if earlier != price:
                raise IndexSeriesError(
                    f"{day.isoformat()} has price {price} here and {earlier} on line {earlier_line}",
                    source=src, line=line_no, field=header[price_col],
                )
            continue
        found[day] = (price, line_no)
    if not found:
        raise IndexSeriesError("no data rows after the header", source=src, line=header_no + 1)
    if len(names) > 1:
        raise IndexSeriesError(f"one index per file, found names {', '.join(sorted(names))}", source=src, field="name")
    series_name = name or (names.pop() if names else p.stem)
    days = sorted(found)
    return IndexSeries(
        name=series_name,
        days=tuple(days),
        prices=tuple(found[d][0] for d in days),
        unit=unit,
        source=src,
    )
