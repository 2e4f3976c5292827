"""The PJM market adapter: day-ahead offers, Data Miner LMPs, day-ahead results and statements.

* Offers: day-ahead energy offers as a Markets Gateway-style ``SubmitRequest`` of kwhub's own
  structure (PJM's offer-curve element names are not public, ``MARKETS.md`` section 7),
  checked against PJM's curve rules before rendering and against ``schema/offer.xsd`` and
  the day's hour labels (``hour`` ending, ``isDuplicateHour``) before sending; see
  :mod:`kwhub.plugins.markets.pjm.offers`. Real-time offers are not rendered.
* Data Miner 2 ``da_hrl_lmps`` (hourly) and ``rt_fivemin_hrl_lmps`` (5-minute,
  name unverified) CSV: placed on the UTC line by ``datetime_beginning_utc``; the
  ``datetime_beginning_ept`` column (hour beginning, Eastern prevailing) is checked
  against it, so the repeated 01:00 of the fall-back day is two different hours. Shadow
  settlement of lines 1200/1205 uses ``system_energy_price_*``, not the total LMP.
  Corrections arrive as rows with a higher ``version_nbr``; only ``row_is_current``
  rows are prices, and the store keeps every version it has seen.
* Day-ahead results: a Markets Gateway ``QueryRequest`` (namespace
  ``http://emkt.pjm.com/emkt/xml``) answered with cleared MW per hour; the element names
  of the results are unverified (the specification is portal-gated).
* Statements: kwhub's CSV layout of billing line items (``BILLING_LINE_ITEM,
  OPERATING_DAY, RESOURCE, DATETIME_BEGINNING_UTC, MINUTES, QUANTITY_MWH, PRICE, AMOUNT,
  STATEMENT_ID, STATEMENT_TYPE``; positive = charge, negative = credit).
"""


from kwhub.core.hookspecs import hookimpl
from kwhub.plugins.markets.pjm.adapter import PjmMarket
from kwhub.plugins.markets.pjm.formats import TZ
from kwhub.plugins.markets.pjm.sim import PjmSim


@hookimpl
def kwhub_register_market_adapters(register):  # type: ignore[no-untyped-def]
    """Register the PJM adapter."""
    register(PjmMarket)


__all__ = ['TZ', 'PjmMarket', 'PjmSim']
