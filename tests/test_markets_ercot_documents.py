"""ERCOT documents: valid against kwhub's schemas written from ERCOT's XSDs, with ERCOT's
labels and offsets on DST days; price reports and statements read to UTC; the local
ERCOT's faults."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal as D

import pytest
from lxml import etree

from kwhub.core.adapters import AdapterError, FailureKind
from kwhub.core.intervals import IntervalDataError
from kwhub.core.markets.curve_rules import CurveRuleError
from kwhub.core.markets.hour_labels import DayGrid
from kwhub.core.markets.models import Award, Bid, CurvePoint, OfferCurve, SubmissionStatus
from kwhub.plugins.markets.ercot import ews
from kwhub.plugins.markets.ercot.adapter import ErcotMarket
from kwhub.plugins.markets.ercot.reports import parse_spp_csv, render_spp_csv
from kwhub.plugins.markets.ercot.sim import ErcotSim
from kwhub.plugins.markets.ercot.statements import (
    parse_statement,
    render_statement,
    validate_statement,
)

TZ = "America/Chicago"
FALL = date(2026, 11, 1)


def _bid(day: date, resource: str = "RN1", price: str = "25.00", hours: int | None = None) -> Bid:
    grid = DayGrid(day, TZ, 60)
    n = hours if hours is not None else len(grid)
    return Bid(bid_id=resource, iso="ERCOT", market="DA", resource=resource, trading_date=day, curves=tuple(
        OfferCurve(start=datetime.fromtimestamp(s, tz=UTC), end=datetime.fromtimestamp(s + 3600, tz=UTC),
                   points=(CurvePoint(mw=D("10.0"), price=D(price)), CurvePoint(mw=D("20.5"), price=D("30.00"))))
        for s in grid.starts.tolist()[:n]))


def _adapter(url: str = "http://127.0.0.1:9", **kw) -> ErcotMarket:  # noqa: ANN003
    return ErcotMarket("ercot", {"url": url, "timeout_s": 1.5, **kw})


def test_bidset_request_is_valid_and_carries_ercots_offsets_on_the_long_day():
    data = _adapter().render_bids([_bid(FALL)])
    assert _adapter().validate_document(data) == []
    msg = ews.soap_unwrap(data, "request")
    starts = [e.text for e in msg.iter(ews.E + "startTime")]
    # the offer, its fuel mix, then 25 curves; the two 01:00 hours are -05:00 then -06:00;
    # midnight is T00:00 of the next day; the offer expires at the day-ahead gate
    assert starts[0] == starts[1] == "2026-11-01T00:00:00-05:00"
    assert [e.text for e in msg.iter(ews.E + "expirationTime")] == ["2026-10-31T10:00:00-05:00"]
    assert [e.text for e in msg.iter(ews.E + "fipPercent")] == ["100"]
    assert starts[2:6] == ["2026-11-01T00:00:00-05:00", "2026-11-01T01:00:00-05:00", "2026-11-01T01:00:00-06:00",
                           "2026-11-01T02:00:00-06:00"]
    assert [e.text for e in msg.iter(ews.E + "endTime")][-1] == "2026-11-02T00:00:00-06:00"
    assert len(list(msg.iter(ews.E + "EnergyOfferCurve"))) == 25
    assert [e.text for e in msg.iter(ews.E + "xvalue")][:2] == ["10.0", "20.5"]
    head = msg.find(ews.M + "Header")
    assert [etree.QName(c).localname for c in head] == ["Verb", "Noun", "ReplayDetection", "Revision", "Source",
                                                       "MessageID"]


def test_energy_only_offer_and_awardset_are_valid():
    doc = _adapter(offer_type="EnergyOnlyOffer").render_bids([_bid(date(2026, 3, 8), "HB_NORTH")])
    assert _adapter().validate_document(doc) == []
    assert len(list(ews.soap_unwrap(doc, "x").iter(ews.E + "EnergyOfferCurve"))) == 23  # the short day
    award = Award(iso="ERCOT", market="DA", resource="RN1", start=datetime(2026, 11, 1, 7, tzinfo=UTC),
                  end=datetime(2026, 11, 1, 8, tzinfo=UTC), mwh=D("12.5"))
    aset = ews.render_awardset([award], qse="Q", tz=TZ, trading_date=FALL)
    msg = ews.render_message("ResponseMessage", "reply", "AwardSet", "ERCOT", payload=[aset])
    assert ews.validate_message(msg) == []
    back = ews.parse_awardset(aset, "x", TZ)
    assert [(a.start, a.mwh, a.label) for a in back] == [(award.start, D("12.5"), "2026-11-01 HE02 DST")]


@pytest.mark.parametrize("mutate, message", [
    (lambda m: m.find(ews.M + "Header").remove(m.find(ews.M + "Header/" + ews.M + "Noun")), "Noun"),
    (lambda m: m.find(f"{ews.M}Payload/{ews.E}BidSet/{ews.E}ThreePartOffer/{ews.E}EnergyOfferCurve/{ews.E}CurveData/"
                      f"{ews.E}y1value").__setattr__("text", "25.001"), "y1value"),
    (lambda m: [m.find(f"{ews.M}Payload/{ews.E}BidSet/{ews.E}ThreePartOffer/{ews.E}EnergyOfferCurve").append(
        etree.fromstring(f'<CurveData xmlns="{ews.EWS_NS}"><xvalue>1</xvalue><y1value>1</y1value></CurveData>'))
        for _ in range(9)], "CurveData"),
])
def test_schema_refuses_what_ercots_schema_refuses(mutate, message):
    msg = ews.soap_unwrap(_adapter().render_bids([_bid(date(2026, 10, 15))]), "x")
    mutate(msg)
    problems = ews.validate_message(msg)
    assert problems and any(message in p for p in problems), problems


def test_bid_id_pattern_of_an_energy_only_offer():
    doc = ews.soap_unwrap(_adapter(offer_type="EnergyOnlyOffer").render_bids([_bid(date(2026, 10, 15), "-BAD")]), "x")
    assert any("bidID" in p for p in ews.validate_message(doc))


def test_spp_reports_round_trip_with_the_dst_flag():
    prices = {"HB_NORTH": [D(20 + i) for i in range(25)]}
    da = parse_spp_csv(render_spp_csv(FALL, TZ, "DA", prices), "np4-190.csv", TZ)[0]
    assert len(da) == 25 and da.labels[2] == "2026-11-01 HE02 DST"
    assert da.price_at(int(datetime(2026, 11, 1, 7, tzinfo=UTC).timestamp())) == D("22.00")
    rt = parse_spp_csv(render_spp_csv(FALL, TZ, "RT", {"RN1": [D("30.00")] * 100}), "np6-905.csv", TZ)[0]
    assert rt.interval_minutes == 15 and len(rt) == 100
    # hour ending 24 ends at midnight of the next day, and is not lost
    assert int(da.starts[-1]) + 3600 == int(datetime(2026, 11, 2, 6, tzinfo=UTC).timestamp())


@pytest.mark.parametrize("row, message", [
    ('"03/08/2026","03:00","HB_NORTH","20.00","N"', "hour ending 03 does not exist"),
    ('"10/15/2026","02:00","HB_NORTH","20.00","Y"', "repeats no such hour"),
    ('"10/15/2026","02:00","HB_NORTH","20.000001","N"', "more than 5 decimals"),
    ('"10/15/2026","2","HB_NORTH","20.00","N"', "HourEnding must be hh:00"),
])
def test_spp_report_rows_that_name_no_interval_are_refused(row, message):
    data = ('"DeliveryDate","HourEnding","SettlementPoint","SettlementPointPrice","DSTFlag"\n' + row + "\n").encode()
    with pytest.raises(IntervalDataError) as err:
        parse_spp_csv(data, "np4-190.csv", TZ)
    assert message in str(err.value) and "line 2" in str(err.value) and "np4-190.csv" in str(err.value)


def test_statement_reads_interval_numbers_on_the_long_day_and_checks_labels():
    grid = DayGrid(FALL, TZ, 15)
    values = [D("0.00")] * 100
    values[8] = D("-30.00")
    data = render_statement(FALL, TZ, "initial", "S1", "Q", "RTM", {"RTEIAMT": values}, date(2026, 11, 6))
    assert validate_statement(data) == []
    st = parse_statement(data, "s.xml", TZ, resource="RN1")
    line = [ln for ln in st.lines if ln.amount][0]
    assert (line.start, line.label) == (datetime.fromtimestamp(int(grid.starts[8]), tz=UTC), "2026-11-01 HE02.1 DST")
    assert st.total() == D("-30.00")
    # an IntervalEnding that does not match its NUM is refused
    bad = data.replace(b"<IntervalEnding>02:15</IntervalEnding>", b"<IntervalEnding>03:15</IntervalEnding>", 1)
    with pytest.raises(IntervalDataError, match="labelled 03:15"):
        parse_statement(bad, "s.xml", TZ, resource="RN1")
    with pytest.raises(IntervalDataError, match="without its extract"):
        parse_statement(data, "s.xml", TZ)


def test_a_doctype_is_refused():
    with pytest.raises(ews.EwsError, match="DOCTYPE"):
        ews.soap_unwrap(b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', "reply")


# ----------------------------------------------------------------------- the local ERCOT's faults


@pytest.fixture
def sim():
    s = ErcotSim(tz=TZ).start()
    yield s
    s.stop()


def test_rule_breaking_bids_never_leave_the_hub(sim):
    with pytest.raises(CurveRuleError, match="rule cap"):
        _adapter(sim.url).submit([_bid(date(2026, 10, 15), price="5000.01")])
    assert sim.requests == []


def test_rejection_and_partial_acceptance(sim):
    a = _adapter(sim.url)
    sim.inject("reject")
    sub = a.submit([_bid(date(2026, 10, 15))])
    assert sub.status == SubmissionStatus.REJECTED and "refused" in sub.messages[0]
    sim.inject("reject_bid", bid_id="RN2")
    sub = a.submit([_bid(date(2026, 10, 15), "RN1"), _bid(date(2026, 10, 15), "RN2")])
    assert sub.status == SubmissionStatus.PARTIAL
    assert [(o.bid_id, o.status) for o in sub.outcomes] == [("RN1", SubmissionStatus.SUBMITTED),
                                                            ("RN2", SubmissionStatus.REJECTED)]
    assert "injected fault" in sub.outcomes[1].errors[0]
    assert a.poll_status(sub).status == SubmissionStatus.PARTIAL


def test_timeout_and_html_are_transient(sim):
    a = _adapter(sim.url)
    sim.inject("timeout", seconds=3)
    with pytest.raises(AdapterError) as err:
        a.fetch_awards(date(2026, 10, 15))
    assert err.value.kind == FailureKind.TRANSIENT and "no answer within" in str(err.value)
    sim.inject("html")
    with pytest.raises(AdapterError) as err:
        a.submit([_bid(date(2026, 10, 15))])
    assert err.value.kind == FailureKind.TRANSIENT and "HTML page" in str(err.value)
    sim.inject("html")
    with pytest.raises(AdapterError, match="HTML page"):
        a.fetch_prices(date(2026, 10, 15), "DA")
