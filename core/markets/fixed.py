"""Exact fixed-point arithmetic for market settlement on dense arrays.

Shadow settlement multiplies a price by a quantity for millions of intervals, so it cannot
use one :class:`~decimal.Decimal` per interval, and float64 would not reproduce an ISO
statement to the cent. Both factors are therefore held as scaled ``int64``:

* quantities in **Wh** (``10**-6`` MWh): meter kWh x 1000, rounded once at the edge;
* prices in **10**-5 $/MWh** (:data:`PRICE_PLACES`): every ISO publishes at most five
  decimals; a price with more is refused, never rounded silently;
* amounts in **cents**, each interval's amount rounded half-up (away from zero), as an
  ISO statement rounds each interval value.

``amount_cents(price, qty_num, qty_den)`` computes ``price x (qty_num / qty_den) Wh`` in
cents with a single rounding, so a formula with a fraction of a quantity (ERCOT's 1/4 of
an hourly award in a quarter-hour) stays exact.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import numpy as np

PRICE_PLACES = 5
PRICE_SCALE = 10**PRICE_PLACES  # price units per $/MWh
WH_PER_MWH = 10**6
CENTS = 100
# price units x Wh  ->  cents:  / (PRICE_SCALE * WH_PER_MWH / CENTS)
AMOUNT_DIVISOR = PRICE_SCALE * WH_PER_MWH // CENTS
_INT64_SAFE = 2**62


class FixedPointError(ValueError):
    """A value that cannot be held exactly (too many decimals, or too large)."""


def price_units(value: Decimal | str | int) -> int:
    """A $/MWh price as an integer number of ``10**-5`` $/MWh; more decimals are refused."""
    try:
        d = Decimal(value)
    except (InvalidOperation, TypeError) as exc:
        raise FixedPointError(f"not a price: {value!r}") from exc
    scaled = d.scaleb(PRICE_PLACES)
    if scaled != scaled.to_integral_value():
        raise FixedPointError(f"price {value} has more than {PRICE_PLACES} decimals")
    return int(scaled)


def price_decimal(units: int) -> Decimal:
    """The $/MWh Decimal of a price held in units, normalised to at least 2 decimals."""
    d = Decimal(int(units)).scaleb(-PRICE_PLACES)
    return d.quantize(Decimal("0.01")) if d == d.quantize(Decimal("0.01")) else d.normalize()


def wh_from_mwh(value: Decimal | str | int) -> int:
    """An MWh quantity as integer Wh; more than six decimals are refused."""
    d = Decimal(value).scaleb(6)
    if d != d.to_integral_value():
        raise FixedPointError(f"quantity {value} MWh has more than 6 decimals")
    return int(d)


def mwh_decimal(wh: int, den: int = 1) -> Decimal:
    """MWh of ``wh / den`` Wh as a Decimal (exact when it terminates, else 9 decimals)."""
    num = Decimal(int(wh))
    q = num / (Decimal(den) * WH_PER_MWH)
    exact = q.quantize(Decimal("0.000000001"))
    if q != exact:
        return exact
    d = q.normalize()
    return d.quantize(Decimal(1)) if d.as_tuple().exponent > 0 else d  # type: ignore[operator]


def wh_from_kwh(kwh: np.ndarray) -> np.ndarray:
    """Meter kWh (float64) as int64 Wh, rounded to the nearest Wh; NaN stays a flag (-> 0).

    One new float array, rounded and cleaned in place, then one integer copy.
    """
    wh = np.multiply(np.asarray(kwh, dtype=np.float64), 1000.0)
    np.round(wh, out=wh)
    np.nan_to_num(wh, copy=False, nan=0.0)
    return wh.astype(np.int64)


def cents_decimal(cents: int) -> Decimal:
    """Dollars of an integer number of cents."""
    return (Decimal(int(cents)) / CENTS).quantize(Decimal("0.01"))


def cents_from_decimal(value: Decimal | str) -> int:
    """Cents of a dollar amount with at most 2 decimals (more is refused)."""
    d = Decimal(value).scaleb(2)
    if d != d.to_integral_value():
        raise FixedPointError(f"amount {value} has more than 2 decimals")
    return int(d)


def div_round_half_up(num: np.ndarray, den: int) -> np.ndarray:
    """``num / den`` rounded half away from zero, in int64 (``den`` > 0).

    Works in place on one new array: on tens of millions of values, fresh temporaries
    for every step cost more than the arithmetic.
    """
    num = np.asarray(num, dtype=np.int64)
    out = np.abs(num)
    out *= 2
    out += den
    out //= 2 * den
    np.negative(out, out=out, where=num < 0)
    return out


BLOCK = 1 << 15  # values per block of :func:`amount_cents`: its temporaries stay in the CPU cache


def amount_cents(price_u: np.ndarray, qty_num: np.ndarray, qty_den: int = 1, sign: int = 1,
                 ok: np.ndarray | None = None) -> np.ndarray:
    """``sign x price x qty_num / qty_den`` in cents, one half-up rounding per element.

    ``price_u`` in price units, ``qty_num`` in Wh x ``qty_den``; where ``ok`` is given and
    False the amount is 0. Refuses operands whose product could overflow int64 instead of
    wrapping around.

    Works block by block (:data:`BLOCK` values) with two reused scratch arrays: on tens of
    millions of lines, streaming fresh full-size temporaries through memory for every step
    costs several times the arithmetic.
    """
    p = np.asarray(price_u, dtype=np.int64)
    q = np.asarray(qty_num, dtype=np.int64)
    shape = np.broadcast_shapes(p.shape, q.shape)
    if p.shape != shape or q.shape != shape:
        p, q = (np.ascontiguousarray(np.broadcast_to(a, shape)) for a in (p, q))
    pf, qf = np.ascontiguousarray(p).reshape(-1), np.ascontiguousarray(q).reshape(-1)
    okf = None if ok is None else np.ascontiguousarray(np.broadcast_to(np.asarray(ok, dtype=bool), shape)).reshape(-1)
    out = np.empty(pf.size, dtype=np.int64)
    den = AMOUNT_DIVISOR * qty_den
    tmp = np.empty(min(BLOCK, pf.size), dtype=np.int64)
    neg = np.empty(len(tmp), dtype=bool)
    for lo in range(0, pf.size, BLOCK):
        hi = min(lo + BLOCK, pf.size)
        pb, qb, t, ng, o = pf[lo:hi], qf[lo:hi], tmp[:hi - lo], neg[:hi - lo], out[lo:hi]
        pmax = max(abs(int(pb.max())), abs(int(pb.min())))
        qmax = max(abs(int(qb.max())), abs(int(qb.min())))
        if pmax * qmax * 2 >= _INT64_SAFE:
            raise FixedPointError(f"price {price_decimal(pmax)} $/MWh x {mwh_decimal(qmax, qty_den)} MWh "
                                  "is beyond the exact range of one interval")
        np.multiply(pb, qb, out=t)
        # the amount is negative where the product's sign, times ``sign``, is
        (np.less if sign > 0 else np.greater)(t, 0, out=ng)
        np.abs(t, out=t)
        if den % 2 == 0:  # (|t| + den/2) // den: half away from zero, one pass less
            t += den // 2
            np.floor_divide(t, den, out=o)
        else:
            t *= 2
            t += den
            np.floor_divide(t, 2 * den, out=o)
        np.negative(o, out=o, where=ng)
        if okf is not None:
            o[~okf[lo:hi]] = 0
    return out.reshape(shape)
