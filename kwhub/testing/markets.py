"""Market family checks.

The market family's typed contract (bids, awards, prices and statements, and the adapter
methods that render, submit and parse them) is being written (issue 12, item 6). Its
checks belong here, one function per capability, each taking an adapter and a sample as
the meter and ERP checks do. Until then :func:`check_market_adapter` checks what every
market adapter already promises: the generic adapter contract for a ``MarketAdapter``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from kwhub.core.adapters import MarketAdapter
from kwhub.testing.contract import check_adapter_contract, require


def check_market_adapter(cls: type[MarketAdapter], config: Mapping[str, Any] | None = None) -> MarketAdapter:
    """The class is a ``MarketAdapter`` that meets the adapter contract; returns an instance."""
    require(isinstance(cls, type) and issubclass(cls, MarketAdapter),
            f"{cls!r} is not a kwhub.core.adapters.MarketAdapter subclass")
    return cast(MarketAdapter, check_adapter_contract(cls, config))
