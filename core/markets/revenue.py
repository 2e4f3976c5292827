"""Market revenue: ISO statement amounts with the sign flipped once, split to owners.

ERCOT, CAISO and PJM statements show money paid to the participant as negative. The
bid-to-bill chain keeps that sign through shadow settlement and variance; revenue is the
one place it flips (``revenue = -amount``). A resource's revenue belongs to the owners of
its asset and is split with :func:`kwhub.core.ownership.split_largest_remainder`, so the parts
add up to the cent. A later statement version changes revenue; each owner's adjustment
is the new split minus the old one, so the original plus every adjustment equals a fresh
split of the latest version.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from decimal import Decimal

from kwhub.core.markets.models import Statement, StatementLine
from kwhub.core.ownership import split_largest_remainder


def line_revenue(line: StatementLine) -> Decimal:
    """The revenue of one statement line: its amount with the ISO's sign flipped."""
    return -line.amount


def revenue_by_resource(statement: Statement) -> dict[str, Decimal]:
    """Revenue per resource on one statement version."""
    out: dict[str, Decimal] = defaultdict(lambda: Decimal("0.00"))
    for ln in statement.lines:
        out[ln.resource] += line_revenue(ln)
    return dict(sorted(out.items()))


def revenue_by_interval(lines: Iterable[StatementLine]) -> dict[tuple[str, int], Decimal]:
    """Revenue per (resource, UTC start) over all codes."""
    out: dict[tuple[str, int], Decimal] = defaultdict(lambda: Decimal("0.00"))
    for ln in lines:
        out[(ln.resource, int(ln.start.timestamp()))] += line_revenue(ln)
    return dict(out)


def split_revenue(total: Decimal, shares: Mapping[str, Decimal], places: int = 2) -> dict[str, Decimal]:
    """``total`` split by ownership ``shares`` to the cent (largest remainder)."""
    return split_largest_remainder(total, shares, places)


def owner_adjustments(previous: Decimal, current: Decimal, shares: Mapping[str, Decimal],
                      places: int = 2) -> dict[str, Decimal]:
    """What each owner's revenue moves when a resource's revenue goes from ``previous`` to
    ``current``: the new split minus the old one."""
    old = split_revenue(previous, shares, places)
    new = split_revenue(current, shares, places)
    return {p: new[p] - old[p] for p in sorted(shares)}
