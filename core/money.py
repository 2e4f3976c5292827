"""Money: Decimal amounts with a currency's precision and a contract's rounding mode.

Float arithmetic stays inside the engines; the moment a charge becomes an invoice line it
is a :class:`~decimal.Decimal` rounded once, per line, by :class:`MoneyPolicy`.
"""

from __future__ import annotations

import decimal
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict

RoundingMode = Literal["half_up", "half_even", "down", "up", "half_down"]

_ROUNDING = {
    "half_up": decimal.ROUND_HALF_UP,
    "half_even": decimal.ROUND_HALF_EVEN,
    "down": decimal.ROUND_DOWN,
    "up": decimal.ROUND_UP,
    "half_down": decimal.ROUND_HALF_DOWN,
}

# ISO 4217 minor units for the currencies a campus is likely to bill in.
MINOR_UNITS = {"USD": 2, "EUR": 2, "GBP": 2, "CAD": 2, "JPY": 0, "CHF": 2, "AUD": 2}


class MoneyPolicy(BaseModel):
    """Currency, precision and rounding mode for amounts of one contract."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    currency: str = "USD"
    places: int | None = None  # None: the currency's minor units
    rounding: RoundingMode = "half_up"
    unit_price_places: int = 6
    quantity_places: int = 3

    @property
    def amount_places(self) -> int:
        return self.places if self.places is not None else MINOR_UNITS.get(self.currency, 2)

    def amount(self, value: Decimal | float | int | str) -> Decimal:
        """Round a money amount to the policy's precision."""
        return quantize(to_decimal(value), self.amount_places, self.rounding)

    def unit_price(self, value: Decimal | float | int | str) -> Decimal:
        return quantize(to_decimal(value), self.unit_price_places, self.rounding)

    def quantity(self, value: Decimal | float | int | str) -> Decimal:
        return quantize(to_decimal(value), self.quantity_places, self.rounding)


def to_decimal(value: Decimal | float | int | str) -> Decimal:
    """Convert exactly: floats go through ``repr`` so 0.1 stays 0.1, not its binary value."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(value)


def quantize(value: Decimal, places: int, rounding: RoundingMode = "half_up") -> Decimal:
    """Round ``value`` to ``places`` decimals with the named rounding mode."""
    exp = Decimal(1).scaleb(-places)
    return value.quantize(exp, rounding=_ROUNDING[rounding])


def money_str(value: Decimal) -> str:
    """Exact decimal string, never scientific notation."""
    return format(value, "f")
