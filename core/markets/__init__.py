"""The market family: bid-to-bill for ISO/RTO participation (see ``MARKETS.md``).

Format-neutral models (:mod:`.models`), ISO interval labels (:mod:`.hour_labels`),
curve rules (:mod:`.curve_rules`), forecast and surplus (:mod:`.surplus`), the dispatch
optimizer and bid builder (:mod:`.optimizer`, :mod:`.bid_builder`), exact fixed-point
money on arrays (:mod:`.fixed`), ISO prices (:mod:`.prices`), charge codes and shadow
settlement (:mod:`.charge_codes`, :mod:`.shadow`), statement versions and variance
(:mod:`.statements`, :mod:`.variance`) and revenue (:mod:`.revenue`). Pure: no SQL,
HTTP or XML; the ISO adapters in ``plugins/markets`` speak the formats.
"""

from kwhub.core.markets.prices import MarketKind, MarketPrices, PriceSeries

__all__ = ["MarketKind", "MarketPrices", "PriceSeries"]
