"""The ERCOT market adapter (EWS bids and awards, SPP reports, statements) and a local ERCOT."""

from kwhub.core.hookspecs import hookimpl
from kwhub.plugins.markets.ercot.adapter import ErcotMarket


@hookimpl
def kwhub_register_market_adapters(register):  # type: ignore[no-untyped-def]
    """Register the ERCOT adapter."""
    register(ErcotMarket)


__all__ = ["ErcotMarket"]
