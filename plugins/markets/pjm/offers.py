"""PJM day-ahead energy offers as Markets Gateway-style XML (kwhub's own structure).

PJM's offer-curve element names are not public (``MARKETS.md`` section 7), so kwhub writes its
own structure in the style of the public Markets Gateway shapes (``DemandBid@day@location /
DemandBidHourly@hour@isDuplicateHour / BidSegment@id{MW, Price}``), checked by its own
schema ``schema/offer.xsd`` and by the hour labels of the day. Namespace
``http://emkt.pjm.com/emkt/xml``::

    SubmitRequest @participant
      EnergyOffer+ @day (operating day, Eastern) @location (pnode or resource) @offerId @market "DayAhead"
        EnergyOfferHourly+ (one per hour offered, at most 25) @hour (hour ending 1-24, Eastern prevailing)
                           @isDuplicateHour ("true" for the second HE02 of the fall-back day)
                           @utc (the hour's UTC start, with its offset)
          OfferSegment+ @id (1, 2, ... in order)
            MW     (1 decimal)   the cumulative MW of the point
            Price  (2 decimals)  $/MWh

The answer (of the local PJM; the real one is portal-gated too)::

    SubmitResponse
      Success/TransactionID          when at least one offer was accepted
      OfferResult* @location @offerId @status "Accepted" | "Rejected"
        Error*                       the broken rule, with the hour label
      Error?/{Code, Message}         a document refused as a whole (schema)

Each ``EnergyOfferHourly`` is one curve of :class:`~kwhub.core.markets.models.Bid`; the
hour labels are rendered from, and checked against, the UTC start on the operating day's
grid, so the spring day has no hour ending 03 and the fall-back day has hour ending 02 twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path

from lxml import etree

from kwhub.core.markets.hour_labels import DayGrid, LabelError
from kwhub.core.markets.models import Bid, CurvePoint, OfferCurve
from kwhub.hub.helpers.safe_xml import UnsafeXmlError, parse_xml
from kwhub.plugins.markets.pjm.formats import EMKT_NS, TZ

SCHEMA = Path(__file__).resolve().parent / "schema" / "offer.xsd"
MARKET_NAMES = {"DA": "DayAhead"}


def _q(tag: str) -> str:
    return f"{{{EMKT_NS}}}{tag}"


@lru_cache(maxsize=1)
def _schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMA)))


def render_offers(bids: Sequence[Bid], participant: str) -> bytes:
    """A ``SubmitRequest`` with one ``EnergyOffer`` per bid (day-ahead energy offers)."""
    root = etree.Element(_q("SubmitRequest"), nsmap={None: EMKT_NS}, participant=participant)
    for b in bids:
        grid = DayGrid(b.trading_date, TZ, 60)
        index = {int(s): i for i, s in enumerate(grid.starts.tolist())}
        offer = etree.SubElement(root, _q("EnergyOffer"), day=b.trading_date.isoformat(), location=b.resource,
                                 offerId=b.bid_id, market=MARKET_NAMES[b.market])
        for c in sorted(b.curves, key=lambda c: c.start):
            i = index[int(c.start.timestamp())]
            hourly = etree.SubElement(offer, _q("EnergyOfferHourly"), hour=str(int(grid.hour_ending[i])),
                                      isDuplicateHour="true" if grid.repeated[i] else "false",
                                      utc=c.start.astimezone(UTC).isoformat())
            for k, p in enumerate(c.points, start=1):
                seg = etree.SubElement(hourly, _q("OfferSegment"), id=str(k))
                etree.SubElement(seg, _q("MW")).text = format(p.mw, "f")
                etree.SubElement(seg, _q("Price")).text = format(p.price, "f")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def validate_offers(data: bytes) -> list[str]:
    """Offline problems of a ``SubmitRequest``: the schema, then per hour the labels against
    the UTC start on the operating day, then the segment ids; empty when it is valid."""
    try:
        root = parse_xml(data, "PJM SubmitRequest")
    except UnsafeXmlError as exc:
        return [str(exc)]
    schema = _schema()
    if not schema.validate(etree.ElementTree(root)):
        return [f"line {e.line}: {e.message}" for e in list(schema.error_log)[:20]]
    problems: list[str] = []
    for n, offer in enumerate(root.iterfind(_q("EnergyOffer")), start=1):
        where = f"EnergyOffer[{n}] {offer.get('location')}"
        try:
            day = date.fromisoformat(offer.get("day", ""))
        except ValueError:
            problems.append(f"{where}: day {offer.get('day')!r} is not a plain YYYY-MM-DD operating day")
            continue
        grid = DayGrid(day, TZ, 60)
        seen: set[int] = set()
        for hourly in offer.iterfind(_q("EnergyOfferHourly")):
            he, dup = int(hourly.get("hour", "0")), hourly.get("isDuplicateHour") in ("true", "1")
            label = f"{where} hour {he}" + (" (duplicate)" if dup else "")
            try:
                i = grid.index_of(he, 1, dup)
            except LabelError as exc:
                problems.append(f"{label}: {exc}")
                continue
            try:
                utc = datetime.fromisoformat(hourly.get("utc", ""))
            except ValueError:
                problems.append(f"{label}: utc {hourly.get('utc')!r} is not an ISO 8601 time")
                continue
            if utc.tzinfo is None or int(utc.timestamp()) != int(grid.starts[i]):
                problems.append(f"{label}: utc {hourly.get('utc')} is not the start of that hour "
                                f"({datetime.fromtimestamp(int(grid.starts[i]), tz=UTC).isoformat()})")
            if i in seen:
                problems.append(f"{label}: a second EnergyOfferHourly for the same hour")
            seen.add(i)
            ids = [int(s.get("id", "0")) for s in hourly.iterfind(_q("OfferSegment"))]
            if ids != list(range(1, len(ids) + 1)):
                problems.append(f"{label}: OfferSegment ids are {ids}, not 1..{len(ids)} in order")
    return problems


def parse_offers(data: bytes) -> list[Bid]:
    """The bids of a valid ``SubmitRequest`` (for the local PJM)."""
    root = parse_xml(data, "PJM SubmitRequest")
    markets = {v: k for k, v in MARKET_NAMES.items()}
    out = []
    for offer in root.iterfind(_q("EnergyOffer")):
        curves = []
        for hourly in offer.iterfind(_q("EnergyOfferHourly")):
            start = datetime.fromisoformat(hourly.get("utc", "")).astimezone(UTC)
            try:
                pts = tuple(CurvePoint(mw=Decimal(s.findtext(_q("MW")) or ""), price=Decimal(s.findtext(_q("Price")) or ""))
                            for s in hourly.iterfind(_q("OfferSegment")))
            except InvalidOperation:
                raise ValueError(f"EnergyOffer {offer.get('location')}: a segment's MW or Price is not a number") \
                    from None
            curves.append(OfferCurve(start=start, end=datetime.fromtimestamp(start.timestamp() + 3600, tz=UTC),
                                     points=pts))
        out.append(Bid(bid_id=offer.get("offerId", ""), iso="PJM", market=markets[offer.get("market", "")],  # type: ignore[arg-type]
                       resource=offer.get("location", ""), trading_date=date.fromisoformat(offer.get("day", "")),
                       curves=tuple(curves)))
    return out


def render_response(results: Sequence[tuple[Bid, list[str]]], transaction_id: str, error: str = "") -> bytes:
    """The local PJM's ``SubmitResponse``: per offer its status and broken rules."""
    root = etree.Element(_q("SubmitResponse"), nsmap={None: EMKT_NS})
    if error:
        err = etree.SubElement(root, _q("Error"))
        etree.SubElement(err, _q("Code")).text = "SCHEMA"
        etree.SubElement(err, _q("Message")).text = error
        return etree.tostring(root)
    if any(not found for _, found in results):
        etree.SubElement(etree.SubElement(root, _q("Success")), _q("TransactionID")).text = transaction_id
    for b, found in results:
        el = etree.SubElement(root, _q("OfferResult"), location=b.resource, offerId=b.bid_id,
                              status="Rejected" if found else "Accepted")
        for f in found:
            etree.SubElement(el, _q("Error")).text = f
    return etree.tostring(root)
