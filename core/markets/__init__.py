"""The market family: bid-to-bill for ISO/RTO participation (see ``MARKETS.md``).

Format-neutral models (:mod:`.models`), ISO interval labels (:mod:`.hour_labels`),
curve rules (:mod:`.curve_rules`), forecast and surplus (:mod:`.surplus`), the dispatch
optimizer and bid builder (:mod:`.optimizer`, :mod:`.bid_builder`), exact fixed-point
money on arrays (:mod:`.fixed`), ISO prices (:mod:`.prices`), charge codes and shadow
settlement (:mod:`.charge_codes`, :mod:`.shadow`), statement versions and variance
(:mod:`.statements`, :mod:`.variance`) and revenue (:mod:`.revenue`). Pure: no SQL,
HTTP or XML; the ISO adapters in ``plugins/markets`` speak the formats.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kwhub.core.markets.prices import MarketKind, MarketPrices, PriceSeries

__all__ = ["MarketKind", "MarketPrices", "PriceSeries"]


def __getattr__(name: str) -> Any:
    # The price types hold numpy arrays; the market configuration (read at every start)
    # imports this package without needing them.
    if name in __all__:
        from kwhub.core.markets import prices

        return getattr(prices, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
