"""Contract pricing: price components, TOU schedules, price indices, invoice lines.

See :mod:`kwhub.core.pricing.base` for the contract between settlement and pricing.
"""

from kwhub.core.pricing.base import (
    Charge,
    ComponentConfig,
    EscalatingConfig,
    PeriodHistory,
    PriceComponent,
    PricingContext,
    PricingError,
    contract_year_of,
    money_policy,
    period_starts,
    summarize_period,
)
from kwhub.core.pricing.index_series import IndexSeries, IndexSeriesError, load_index_csv
from kwhub.core.pricing.lines import build_components, charges_to_lines, price_contract
from kwhub.core.pricing.market_credit import MarketRevenue, MarketRevenueCredit, RevenueStatement
from kwhub.core.pricing.tou import (
    LocalCalendar,
    TouError,
    TouRule,
    TouSchedule,
    holiday_dates,
    nerc_holidays,
)

__all__ = [
    "Charge",
    "ComponentConfig",
    "EscalatingConfig",
    "IndexSeries",
    "IndexSeriesError",
    "LocalCalendar",
    "MarketRevenue",
    "MarketRevenueCredit",
    "PeriodHistory",
    "PriceComponent",
    "PricingContext",
    "PricingError",
    "RevenueStatement",
    "TouError",
    "TouRule",
    "TouSchedule",
    "build_components",
    "charges_to_lines",
    "contract_year_of",
    "holiday_dates",
    "load_index_csv",
    "money_policy",
    "nerc_holidays",
    "period_starts",
    "price_contract",
    "summarize_period",
]
