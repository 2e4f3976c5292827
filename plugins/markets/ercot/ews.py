"""ERCOT EWS documents: the message envelope, ``BidSet`` and ``AwardSet``.

Written from ERCOT's EWS schemas (see ``schema/README.md``). Times are written in
local prevailing time with an explicit offset (``2026-11-01T01:00:00-05:00`` and then
``...-06:00`` for the repeated hour), on hour boundaries, midnight as the next day's
``T00:00``; they are read back to UTC instants. The SOAP 1.1 envelope carries one
``RequestMessage`` or ``ResponseMessage`` (ERCOT's WS-Security signature is not applied).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path

from lxml import etree

from kwhub.core.markets.hour_labels import DayGrid
from kwhub.core.markets.models import (
    Award,
    Bid,
    BidOutcome,
    CurvePoint,
    OfferCurve,
    SubmissionStatus,
)
from kwhub.hub.helpers.safe_xml import UnsafeXmlError, parse_xml

MSG_NS = "http://www.ercot.com/schema/2007-06/nodal/ews/message"
EWS_NS = "http://www.ercot.com/schema/2007-06/nodal/ews"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP_ACTIONS = {
    "MarketTransactions": "/BusinessService/NodalService.serviceagent/HttpEndPoint/MarketTransactions",
    "MarketInfo": "/BusinessService/NodalService.serviceagent/HttpEndPoint/MarketInfo",
}
MARKET_TYPES = {"DA": "DAM", "RT": "RTM"}
SCHEMA_DIR = Path(__file__).resolve().parent / "schema"
M = f"{{{MSG_NS}}}"
E = f"{{{EWS_NS}}}"


class EwsError(ValueError):
    """An EWS document kwhub cannot accept; the message names the element and field."""


def _sub(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
    el = etree.SubElement(parent, tag)
    if text is not None:
        el.text = text
    return el


def mrid(qse: str, trading_date: date, kind: str, point: str, bid_id: str) -> str:
    """ERCOT's transaction id: ``QSE.date.type.settlementpoint.bidID``."""
    return f"{qse}.{trading_date:%m%d%Y}.{kind}.{point}.{bid_id}"


def _dec(d: Decimal, places: int) -> str:
    return format(d.quantize(Decimal(1).scaleb(-places)), "f")


# ----------------------------------------------------------------------- envelope


@dataclass
class Envelope:
    """A parsed RequestMessage or ResponseMessage."""

    kind: str  # "RequestMessage" / "ResponseMessage"
    verb: str
    noun: str
    source: str
    message_id: str = ""
    market_type: str = ""
    trading_date: date | None = None
    reply_code: str = ""
    errors: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    payload: list[etree._Element] = field(default_factory=list)


def render_message(kind: str, verb: str, noun: str, source: str, *, user_id: str = "", message_id: str = "",
                   market_type: str = "", trading_date: date | None = None, reply_code: str = "",
                   errors: Sequence[str] = (), ids: Sequence[str] = (), payload: Sequence[etree._Element] = (),
                   created: datetime | None = None, nonce: str | None = None) -> etree._Element:
    """A ``RequestMessage`` (``kind="RequestMessage"``) or ``ResponseMessage`` element."""
    root = etree.Element(M + kind, nsmap={None: MSG_NS})
    head = _sub(root, M + "Header")
    _sub(head, M + "Verb", verb)
    _sub(head, M + "Noun", noun)
    replay = _sub(head, M + "ReplayDetection")
    n = _sub(replay, M + "Nonce", nonce or base64.b64encode(secrets.token_bytes(16)).decode())
    n.set("EncodingType", "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary")
    _sub(replay, M + "Created", (created or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    _sub(head, M + "Revision", "001")
    _sub(head, M + "Source", source)
    if user_id:
        _sub(head, M + "UserID", user_id)
    if message_id:
        _sub(head, M + "MessageID", message_id)
    if kind == "RequestMessage":
        if market_type or trading_date or ids:
            req = _sub(root, M + "Request")
            if market_type:
                _sub(req, M + "MarketType", market_type)
            if trading_date:
                _sub(req, M + "TradingDate", trading_date.isoformat())
            for i in ids:
                _sub(req, M + "ID", i)
    else:
        rep = _sub(root, M + "Reply")
        _sub(rep, M + "ReplyCode", reply_code or "OK")
        for e in errors:
            _sub(rep, M + "Error", e)
        _sub(rep, M + "Timestamp", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        for i in ids:
            _sub(rep, M + "ID", i)
    if payload:
        pl = _sub(root, M + "Payload")
        for el in payload:
            pl.append(el)
    return root


def soap_wrap(message: etree._Element) -> bytes:
    """The SOAP 1.1 envelope around one message element."""
    env = etree.Element(f"{{{SOAP_NS}}}Envelope", nsmap={"soapenv": SOAP_NS})
    etree.SubElement(env, f"{{{SOAP_NS}}}Header")
    body = etree.SubElement(env, f"{{{SOAP_NS}}}Body")
    body.append(message)
    return etree.tostring(env, xml_declaration=True, encoding="UTF-8")


def soap_unwrap(data: bytes, what: str) -> etree._Element:
    """The message element inside a SOAP envelope; a SOAP fault or a non-XML body is an error."""
    if data.lstrip()[:1] != b"<" or data.lstrip()[:15].lower().startswith((b"<!doctype html", b"<html")):
        raise EwsError(f"{what}: the answer is not XML (an HTML page or text: {data[:80]!r})")
    try:
        env = parse_xml(data, what)
    except UnsafeXmlError as exc:
        raise EwsError(str(exc)) from None
    if etree.QName(env).localname != "Envelope":
        raise EwsError(f"{what}: expected a SOAP Envelope, got <{etree.QName(env).localname}>")
    body = env.find(f"{{{SOAP_NS}}}Body")
    if body is None or len(body) == 0:
        raise EwsError(f"{what}: the SOAP envelope has no Body content")
    msg = body[0]
    if etree.QName(msg).localname == "Fault":
        text = " ".join(t.strip() for t in msg.itertext() if t.strip())
        raise EwsError(f"{what}: SOAP fault: {text}")
    return msg


def parse_message(msg: etree._Element, what: str) -> Envelope:
    """Read a RequestMessage/ResponseMessage element."""
    kind = etree.QName(msg).localname
    if etree.QName(msg).namespace != MSG_NS or kind not in ("RequestMessage", "ResponseMessage"):
        raise EwsError(f"{what}: expected an EWS RequestMessage or ResponseMessage, got {etree.QName(msg).text}")

    def text(path: str) -> str:
        el = msg.find(path)
        return (el.text or "").strip() if el is not None else ""

    env = Envelope(kind=kind, verb=text(f"{M}Header/{M}Verb"), noun=text(f"{M}Header/{M}Noun"),
                   source=text(f"{M}Header/{M}Source"), message_id=text(f"{M}Header/{M}MessageID"))
    if not env.verb or not env.noun:
        raise EwsError(f"{what}: Header/Verb and Header/Noun are required")
    env.market_type = text(f"{M}Request/{M}MarketType")
    td = text(f"{M}Request/{M}TradingDate")
    if td:
        try:
            env.trading_date = date.fromisoformat(td)
        except ValueError:
            raise EwsError(f"{what}: Request/TradingDate {td!r} is not a date") from None
    env.reply_code = text(f"{M}Reply/{M}ReplyCode")
    env.errors = [(e.text or "").strip() for e in msg.findall(f"{M}Reply/{M}Error")]
    env.ids = [(e.text or "").strip() for e in msg.findall(f"{M}Reply/{M}ID")] + \
        [(e.text or "").strip() for e in msg.findall(f"{M}Request/{M}ID")]
    pl = msg.find(f"{M}Payload")
    if pl is not None:
        comp = pl.find(f"{M}Compressed")
        if comp is not None:
            import gzip

            inner = parse_xml(gzip.decompress(base64.b64decode(comp.text or "")), f"{what} Payload/Compressed")
            env.payload = [inner]
        else:
            env.payload = list(pl)
    return env


# ----------------------------------------------------------------------- BidSet


def render_bidset(bids: Sequence[Bid], *, qse: str, tz: str, offer_type: str = "ThreePartOffer",
                  submit_time: datetime | None = None, fip_percent: Decimal = Decimal(100)) -> etree._Element:
    """One ``BidSet`` for bids of a single trading date: a ``ThreePartOffer`` per resource
    (or an ``EnergyOnlyOffer`` per settlement point) with one ``EnergyOfferCurve`` per hour.

    A day-ahead offer spans the trading day; a real-time one (``Bid.market == "RT"``, sent
    with ``MarketType`` RTM) spans its first to its last hour and expires at the end of it.

    Each offer expires at 10:00 the day before its trading day (the day-ahead gate) and
    a three-part offer states its fuel mix for the mitigated offer cap (``EocFipFop``:
    ``fip_percent`` gas, the rest fuel oil), as ERCOT's product tables ask.
    """
    days = {b.trading_date for b in bids}
    if len(days) != 1:
        raise EwsError(f"one BidSet carries one trading date, got {sorted(days)}")
    day = days.pop()
    grid = DayGrid(day, tz, 60)
    index = {int(s): i for i, s in enumerate(grid.starts.tolist())}
    bs = etree.Element(E + "BidSet", nsmap={None: EWS_NS})
    _sub(bs, E + "tradingDate", day.isoformat())
    if submit_time is not None:
        _sub(bs, E + "submitTime", submit_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    for bid in bids:
        if bid.product != "energy" or bid.side != "offer":
            raise EwsError(f"bid {bid.bid_id}: kwhub renders ERCOT energy offers only (got {bid.side} {bid.product})")
        first, last = 0, len(grid) - 1
        if bid.market == "RT" and bid.curves:  # a real-time offer covers its hours and expires at their end
            hours = [index.get(int(c.start.timestamp()), -1) for c in bid.curves]
            if min(hours) >= 0:  # a curve off the hours is refused below, with its time
                first, last = min(hours), max(hours)
        offer = _sub(bs, E + offer_type)
        _sub(offer, E + "startTime", grid.local_iso(first))
        _sub(offer, E + "endTime", grid.local_iso(last, end=True))
        _sub(offer, E + "expirationTime", grid.local_iso(last, end=True) if bid.market == "RT" else _gate(day, tz))
        if offer_type == "ThreePartOffer":
            _sub(offer, E + "resource", bid.resource)
            fuel = _sub(offer, E + "EocFipFop")
            _sub(fuel, E + "startTime", grid.local_iso(first))
            _sub(fuel, E + "endTime", grid.local_iso(last, end=True))
            _sub(fuel, E + "fipPercent", format(fip_percent, "f"))
            _sub(fuel, E + "fopPercent", format(Decimal(100) - fip_percent, "f"))
        else:
            _sub(offer, E + "sp", bid.resource)
            _sub(offer, E + "bidID", bid.bid_id)
        for curve in bid.curves:
            i = index.get(int(curve.start.timestamp()))
            if i is None:
                raise EwsError(f"bid {bid.bid_id}: a curve starts at {curve.start.isoformat()}, not on an hour of "
                               f"{day} in {tz}")
            c = _sub(offer, E + "EnergyOfferCurve")
            _sub(c, E + "startTime", grid.local_iso(i))
            _sub(c, E + "endTime", grid.local_iso(i, end=True))
            for p in curve.points:
                cd = _sub(c, E + "CurveData")
                _sub(cd, E + "xvalue", _dec(p.mw, 1))
                _sub(cd, E + "y1value", _dec(p.price, 2))
            if offer_type == "ThreePartOffer":
                _sub(c, E + "incExcFlag", "EXC")
    return bs


def _gate(day: date, tz: str) -> str:
    """10:00 local on the day before ``day``, with its offset."""
    from datetime import time as dtime
    from datetime import timedelta

    from kwhub.core.timeline import zone

    return datetime.combine(day - timedelta(days=1), dtime(10), tzinfo=zone(tz)).isoformat(timespec="seconds")


def _when(text: str, where: str) -> datetime:
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        raise EwsError(f"{where}: {text!r} is not an ISO 8601 date-time") from None
    if ts.tzinfo is None:
        raise EwsError(f"{where}: {text!r} has no UTC offset; ERCOT times carry one")
    return ts.astimezone(UTC)


def _find(el: etree._Element, name: str, where: str) -> str:
    child = el.find(E + name)
    if child is None or not (child.text or "").strip():
        raise EwsError(f"{where}: <{name}> is missing")
    return (child.text or "").strip()


def parse_bidset(bs: etree._Element, what: str, market: str = "DA") -> list[Bid]:
    """The offers of a ``BidSet`` as :class:`Bid` s (curves keep their UTC instants)."""
    if etree.QName(bs).text != E + "BidSet":
        raise EwsError(f"{what}: expected a BidSet, got {etree.QName(bs).localname}")
    day = date.fromisoformat(_find(bs, "tradingDate", f"{what} BidSet"))
    out: list[Bid] = []
    for n, offer in enumerate(bs, start=1):
        kind = etree.QName(offer).localname
        if kind not in ("ThreePartOffer", "EnergyOnlyOffer"):
            continue
        where = f"{what} BidSet/{kind}[{n}]"
        if kind == "ThreePartOffer":
            resource = _find(offer, "resource", where)
            bid_id = resource
        else:
            resource = _find(offer, "sp", where)
            bid_id = _find(offer, "bidID", where)
        curves = []
        for k, c in enumerate(offer.findall(E + "EnergyOfferCurve"), start=1):
            cw = f"{where}/EnergyOfferCurve[{k}]"
            pts = []
            for j, cd in enumerate(c.findall(E + "CurveData"), start=1):
                try:
                    pts.append(CurvePoint(mw=Decimal(_find(cd, "xvalue", f"{cw}/CurveData[{j}]")),
                                          price=Decimal(_find(cd, "y1value", f"{cw}/CurveData[{j}]"))))
                except ArithmeticError:
                    raise EwsError(f"{cw}/CurveData[{j}]: xvalue/y1value is not a number") from None
            curves.append(OfferCurve(start=_when(_find(c, "startTime", cw), f"{cw}/startTime"),
                                     end=_when(_find(c, "endTime", cw), f"{cw}/endTime"), points=tuple(pts)))
        out.append(Bid(bid_id=bid_id, iso="ERCOT", market=market, resource=resource,  # type: ignore[arg-type]
                       trading_date=day, curves=tuple(curves)))
    return out


_STATUS = {"SUBMITTED": SubmissionStatus.SUBMITTED, "PENDING": SubmissionStatus.PENDING,
           "ACCEPTED": SubmissionStatus.ACCEPTED, "REJECTED": SubmissionStatus.REJECTED,
           "ERRORS": SubmissionStatus.REJECTED, "CANCELED": SubmissionStatus.CANCELED,
           "UNCONFIRMED": SubmissionStatus.PENDING, "ACKNOWLEDGED": SubmissionStatus.SUBMITTED}


def parse_outcomes(bs: etree._Element, what: str) -> list[BidOutcome]:
    """Per offer of a reply ``BidSet``: its status, mRID and errors."""
    out = []
    for n, offer in enumerate(bs, start=1):
        kind = etree.QName(offer).localname
        if kind not in ("ThreePartOffer", "EnergyOnlyOffer"):
            continue
        where = f"{what} BidSet/{kind}[{n}]"
        bid_id = _find(offer, "resource" if kind == "ThreePartOffer" else "bidID", where)
        raw = (offer.findtext(E + "status") or "").strip()
        if raw not in _STATUS:
            raise EwsError(f"{where}/status: {raw!r} is not an ERCOT transaction status")
        errors = tuple(" ".join(x for x in (e.findtext(E + "interval"), e.findtext(E + "text")) if x)
                       for e in offer.findall(E + "error"))
        out.append(BidOutcome(bid_id=bid_id, status=_STATUS[raw], iso_ref=(offer.findtext(E + "mRID") or "").strip(),
                              errors=errors))
    return out


def set_outcome(offer: etree._Element, status: str, mrid_text: str, errors: Sequence[tuple[str, str]]) -> None:
    """Write mRID, status and errors into an offer element (the ISO side of a reply), in the
    order of the CIM Bid header: after ``endTime`` come mRID, status and the errors."""
    anchor = offer.find(E + "endTime")
    if anchor is None:
        raise EwsError("an offer without endTime cannot carry a status")
    idx = list(offer).index(anchor) + 1
    m = etree.Element(E + "mRID")
    m.text = mrid_text
    offer.insert(idx, m)
    st = etree.Element(E + "status")
    st.text = status
    offer.insert(idx + 1, st)
    for k, (interval, text) in enumerate(errors):
        e = etree.Element(E + "error")
        _sub(e, E + "severity", "ERROR")
        _sub(e, E + "interval", interval)
        _sub(e, E + "text", text)
        offer.insert(idx + 2 + k, e)


# ----------------------------------------------------------------------- AwardSet


def render_awardset(awards: Sequence[Award], *, qse: str, tz: str, trading_date: date,
                    offer_type: str = "ThreePartOffer") -> etree._Element:
    """An ``AwardSet`` with an ``AwardedEnergyOffer`` (or ``AwardedEnergyOnlyOffer``) per award.

    Day-ahead awards are hourly (``marketType`` DAM); real-time ones (RTM, the local ERCOT's
    dispatch of real-time offers) are per 15-minute settlement interval.
    """
    rt = any(a.market == "RT" for a in awards)
    grid = DayGrid(trading_date, tz, 15 if rt else 60)
    index = {int(s): i for i, s in enumerate(grid.starts.tolist())}
    aset = etree.Element(E + "AwardSet", nsmap={None: EWS_NS})
    _sub(aset, E + "tradingDate", trading_date.isoformat())
    _sub(aset, E + "marketType", "RTM" if rt else "DAM")
    for a in awards:
        i = index[int(a.start.timestamp())]
        el = _sub(aset, E + ("AwardedEnergyOffer" if offer_type == "ThreePartOffer" else "AwardedEnergyOnlyOffer"))
        _sub(el, E + "qse", qse)
        _sub(el, E + "startTime", grid.local_iso(i))
        _sub(el, E + "endTime", grid.local_iso(i, end=True))
        _sub(el, E + "tradingDate", trading_date.isoformat())
        _sub(el, E + "marketType", MARKET_TYPES[a.market])
        if offer_type == "ThreePartOffer":
            _sub(el, E + "resource", a.resource)
            _sub(el, E + "awardedMWh", _dec(a.mwh, 3 if rt else 1))
        else:
            _sub(el, E + "awardedMWh", _dec(a.mwh, 1))
            if a.price is not None:
                _sub(el, E + "spp", _dec(a.price, 2))
            _sub(el, E + "bidId", a.bid_id)
            _sub(el, E + "sp", a.resource)
    return aset


def parse_awardset(aset: etree._Element, what: str, tz: str) -> list[Award]:
    """The energy awards of an ``AwardSet`` (UTC instants, the ISO's hour label beside them)."""
    if etree.QName(aset).text != E + "AwardSet":
        raise EwsError(f"{what}: expected an AwardSet, got {etree.QName(aset).localname}")
    day = date.fromisoformat(_find(aset, "tradingDate", f"{what} AwardSet"))
    market = "RT" if (aset.findtext(E + "marketType") or "").strip() == "RTM" else "DA"
    minutes = 15 if market == "RT" else 60
    grid = DayGrid(day, tz, minutes)
    index = {int(s): i for i, s in enumerate(grid.starts.tolist())}
    out: list[Award] = []
    for n, el in enumerate(aset, start=1):
        kind = etree.QName(el).localname
        if kind not in ("AwardedEnergyOffer", "AwardedEnergyOnlyOffer"):
            continue
        where = f"{what} AwardSet/{kind}[{n}]"
        start = _when(_find(el, "startTime", where), f"{where}/startTime")
        end = _when(_find(el, "endTime", where), f"{where}/endTime")
        i = index.get(int(start.timestamp()))
        if i is None or int(end.timestamp()) - int(start.timestamp()) != minutes * 60:
            raise EwsError(f"{where}: {start.isoformat()}..{end.isoformat()} is not "
                           f"{'an hour' if minutes == 60 else 'a 15-minute interval'} of trading day {day}")
        try:
            mwh = Decimal(_find(el, "awardedMWh", where))
        except ArithmeticError:
            raise EwsError(f"{where}/awardedMWh: not a number") from None
        spp = el.findtext(E + "spp")
        resource = _find(el, "resource" if kind == "AwardedEnergyOffer" else "sp", where)
        out.append(Award(iso="ERCOT", market=market, resource=resource, start=start, end=end, mwh=mwh,  # type: ignore[arg-type]
                         bid_id=(el.findtext(E + "bidId") or resource).strip(),
                         price=Decimal(spp) if spp else None, label=grid.label(i)))
    return out


# ----------------------------------------------------------------------- schema


@cache
def _schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMA_DIR / "ews-message.xsd")))


def validate_message(message: etree._Element) -> list[str]:
    """Schema problems of an EWS message, its payload (BidSet, AwardSet) included, with lines."""
    schema = _schema()
    if schema.validate(message):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log]


def document_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
