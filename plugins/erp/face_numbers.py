"""How numbers read on a human-readable invoice: one rule per kind of number.

- money: the currency's minor units (ISO 4217: USD 2, JPY 0 ...), thousands grouped, the
  code after it (``1,234.50 USD``); more decimals only when the amount itself carries them
  (a contract with a finer ``precision``), so nothing billed is hidden;
- quantities: a fixed number of decimals per unit (kWh and MWh 3, kW 3, ``each`` 0 ...),
  thousands grouped (``7.680 MWh``, ``12,345.000 kWh``); again never fewer than the value has;
- rates (unit prices): at least the currency's minor units, then as many decimals as the
  rate carries, up to six (``32.00``, ``0.04567``);
- percentages: two decimals (``6.00%``).
"""

from __future__ import annotations

from decimal import Decimal

from kwhub.core.money import MINOR_UNITS

# decimals a quantity is printed with, by unit (kwhub's quantities carry 3 decimals at most)
QUANTITY_PLACES = {"kWh": 3, "MWh": 3, "kW": 3, "MW": 3, "MMBtu": 3, "each": 0, "month": 0}
DEFAULT_QUANTITY_PLACES = 3
RATE_MAX_PLACES = 6
PERCENT_PLACES = 2


def minor_units(currency: str) -> int:
    """The currency's decimals (2 when the code is not in kwhub's table)."""
    return MINOR_UNITS.get(currency.upper(), 2)


def _places_of(value: Decimal) -> int:
    exp = value.normalize().as_tuple().exponent
    return -exp if isinstance(exp, int) and exp < 0 else 0


def grouped(value: Decimal, places: int) -> str:
    """``value`` with exactly ``places`` decimals and grouped thousands (``-1,234.50``)."""
    q = value.quantize(Decimal(1).scaleb(-places)) if places else value.quantize(Decimal(1))
    s = f"{q:,f}"
    return "0" + s[2:] if s.startswith("-0") and q == 0 else s


def money(value: Decimal, currency: str = "", *, code: bool = True) -> str:
    """An amount in ``currency``'s minor units (``1,234.56 USD``; without the code when ``code`` is False)."""
    places = max(minor_units(currency or "USD"), _places_of(value))
    s = grouped(value, places)
    return f"{s} {currency}" if code and currency else s


def quantity(value: Decimal, unit: str) -> str:
    """A quantity with its unit's fixed decimals (``7.680``); the unit is not appended."""
    return grouped(value, max(QUANTITY_PLACES.get(unit, DEFAULT_QUANTITY_PLACES), _places_of(value)))


def rate(value: Decimal, currency: str) -> str:
    """A unit price: the currency's minor units at least, the rate's own decimals up to six."""
    places = min(max(minor_units(currency or "USD"), _places_of(value)), max(RATE_MAX_PLACES, minor_units(currency)))
    return grouped(value, places)


def percent(value: Decimal) -> str:
    """A tax rate: ``6.00%``."""
    return f"{grouped(value, max(PERCENT_PLACES, _places_of(value)))}%"
