"""The CAISO market adapter: SIBR raw bid sets, CMRI awards, OASIS PRC_LMP prices, statements.

Shape-compatible, not conformant (``MARKETS.md`` section 6): the SIBR interface
specification and its XSDs are portal-gated, so the ``RawBidSet`` written here follows
the CIM-derived element names published for a sister market (``MessageHeader``,
``MessagePayload/GeneratingBid/ProductBid/BidSchedule/BidPriceCurve/CurveSchedData``),
and WS-Security signing is not applied. The statement file is kwhub's own CSV layout of
the settlement lines (``TRADE_DATE, CHARGE_CODE, RESOURCE_ID, INTERVAL_START_GMT,
INTERVAL_END_GMT, BILL_QUANTITY, PRICE, AMOUNT, STATEMENT_ID, STATEMENT_TYPE``; supply as
a negative quantity, a negative amount paid to the scheduling coordinator).

OASIS ``PRC_LMP`` files are read on their GMT columns; ``OPR_DT``/``OPR_HR`` (hour ending
in Pacific prevailing time, 1-25 on the fall-back day) and ``OPR_INTERVAL`` are checked
against them, so a mislabelled row is refused, never shifted. Only ``LMP_TYPE=LMP`` rows
(the total) are prices; the components are counted and left out, so totals and
components are never averaged together. OASIS throttling answers HTTP 200 with an HTML
page: that is a transient error, not data.
"""


from kwhub.core.hookspecs import hookimpl
from kwhub.plugins.markets.caiso.adapter import CaisoMarket
from kwhub.plugins.markets.caiso.formats import TZ
from kwhub.plugins.markets.caiso.sim import CaisoSim


@hookimpl
def kwhub_register_market_adapters(register):  # type: ignore[no-untyped-def]
    """Register the CAISO adapter."""
    register(CaisoMarket)


__all__ = ['TZ', 'CaisoMarket', 'CaisoSim']
