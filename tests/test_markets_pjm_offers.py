"""PJM day-ahead offers: kwhub's Markets Gateway-style XML, its schema and hour labels, the local
PJM accepting or rejecting each offer by PJM's curve rules, clearing the accepted ones and
settling them (hand-computed with Decimal).

The day is Sunday 1 November 2026, the fall-back day in Eastern time (25 hours: hour index 2
is the second 01:00, hour ending 02 again with ``isDuplicateHour="true"``). GEN_PJM offers in
every hour 6.0 MW at $20.00 and 12.0 MW at $35.00. DA system energy price $30.00, but $45.00 in
the repeated hour and $15.00 in hour index 10:

* cleared: 6.0 MW in 23 hours (20 <= 30 < 35), 12.0 MW in the repeated hour (35 <= 45), 0 MW in
  hour 10 (15 < 20): 23 x 6 + 12 = 150 MWh;
* line 1200 = (withdrawal - injection) x DA price = -(23 x 6 x 30.00 + 12 x 45.00) =
  -(4,140.00 + 540.00) = **-4,680.00**;
* metered as scheduled (0.5 MWh per 5 minutes at 6 MW, 1.0 at 12 MW, 0 in hour 10) but 0.6 MWh in
  the first 5 minutes of the day; RT system energy price $25.00: line 1205 = (-0.6 + 0.5) x 25.00 =
  **-2.50**; the statement totals -4,682.50.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

import httpx
import numpy as np
import pytest
from lxml import etree

from kwhub.core.intervals import ChannelSeries
from kwhub.core.markets.curve_rules import CurveRuleError
from kwhub.core.markets.hour_labels import DayGrid
from kwhub.core.markets.models import Bid, CurvePoint, OfferCurve, SubmissionStatus
from kwhub.core.quality import Quality
from kwhub.hub.config import parse_config
from kwhub.hub.markets import service
from kwhub.plugins.markets.pjm import TZ, PjmMarket, PjmSim
from kwhub.plugins.markets.pjm.offers import parse_offers, validate_offers

DAY = date(2026, 11, 1)
NS = "{http://emkt.pjm.com/emkt/xml}"
GRID = DayGrid(DAY, TZ, 60)


def _curve(i: int, points: tuple[tuple[str, str], ...] = (("6.0", "20.00"), ("12.0", "35.00"))) -> OfferCurve:
    s = datetime.fromtimestamp(int(GRID.starts[i]), tz=UTC)
    return OfferCurve(start=s, end=s + timedelta(hours=1), points=tuple(CurvePoint(mw=D(m), price=D(p))
                                                                        for m, p in points))


def _bid(resource: str = "GEN_PJM", curves: tuple[OfferCurve, ...] | None = None) -> Bid:
    return Bid(bid_id=f"{resource}-DA", iso="PJM", market="DA", resource=resource, trading_date=DAY,
               curves=curves if curves is not None else tuple(_curve(i) for i in range(len(GRID))))


def _prices(node: str, day: date, market: str) -> list[D]:
    grid = DayGrid(day, TZ, 60 if market == "DA" else 5)
    if market == "DA":
        return [D("45.00") if i == 2 else D("15.00") if i == 10 else D("30.00") for i in range(len(grid))]
    return [D("25.00")] * len(grid)


@pytest.fixture
def sim():  # noqa: ANN201
    s = PjmSim(prices=_prices).start()
    yield s
    s.stop()


def test_the_offer_document_labels_the_fall_back_day_and_passes_its_schema():
    adapter = PjmMarket("pjm", {"url": "http://127.0.0.1:9", "participant": "KWHUB"})
    data = adapter.render_bids([_bid()])
    assert adapter.validate_document(data) == []
    root = etree.fromstring(data)
    assert root.tag == f"{NS}SubmitRequest" and root.get("participant") == "KWHUB"
    (offer,) = root.findall(f"{NS}EnergyOffer")
    assert (offer.get("day"), offer.get("location"), offer.get("market")) == ("2026-11-01", "GEN_PJM", "DayAhead")
    hours = offer.findall(f"{NS}EnergyOfferHourly")
    assert len(hours) == 25
    # hour ending 01, 02, 02 again (the repeated hour, EST), 03 ... 24
    assert [(h.get("hour"), h.get("isDuplicateHour")) for h in hours[:4]] == \
        [("1", "false"), ("2", "false"), ("2", "true"), ("3", "false")]
    assert [h.get("utc") for h in hours[1:3]] == ["2026-11-01T05:00:00+00:00", "2026-11-01T06:00:00+00:00"]
    segs = hours[0].findall(f"{NS}OfferSegment")
    assert [(s.get("id"), s.findtext(f"{NS}MW"), s.findtext(f"{NS}Price")) for s in segs] == \
        [("1", "6.0", "20.00"), ("2", "12.0", "35.00")]
    assert parse_offers(data) == [_bid()]  # the round trip is exact


def test_the_offer_schema_and_labels_refuse_broken_documents():
    data = PjmMarket("pjm", {"url": "http://127.0.0.1:9"}).render_bids([_bid()])
    assert validate_offers(b"") and validate_offers(data[: len(data) // 2])
    no_location = data.replace(b' location="GEN_PJM"', b"", 1)
    assert any("location" in p for p in validate_offers(no_location))
    three_decimals = data.replace(b"<Price>20.00</Price>", b"<Price>20.001</Price>", 1)
    assert any("Price" in p for p in validate_offers(three_decimals))
    # the spring day has no hour ending 03; an hour label that does not match its UTC start is named
    spring = data.replace(b'day="2026-11-01"', b'day="2026-03-08"')
    assert any("hour ending 01" in p or "not the start" in p for p in validate_offers(spring))
    dup = data.replace(b'hour="3" isDuplicateHour="false"', b'hour="3" isDuplicateHour="true"', 1)
    assert any("repeats no such hour" in p for p in validate_offers(dup))
    shuffled = data.replace(b'<OfferSegment id="2">', b'<OfferSegment id="3">', 1)
    assert any("ids are [1, 3]" in p for p in validate_offers(shuffled))


def test_the_adapter_refuses_a_rule_breaking_offer_before_it_leaves():
    adapter = PjmMarket("pjm", {"url": "http://127.0.0.1:9"})
    over_cap = _bid(curves=(_curve(0, (("6.0", "20.00"), ("12.0", "1000.01"))),))
    with pytest.raises(CurveRuleError, match=r"rule cap: price 1000.01 is above the cap 1000.00"):
        adapter.render_bids([over_cap])
    falling = _bid(curves=(_curve(0, (("6.0", "35.00"), ("12.0", "20.00"))),))
    with pytest.raises(CurveRuleError, match="monotonic_price"):
        adapter.render_bids([falling])
    with pytest.raises(Exception, match="day-ahead energy offers only"):
        adapter.render_bids([_bid().model_copy(update={"market": "RT"})])


def test_the_local_pjm_accepts_by_curve_rules_clears_and_settles_by_hand(db, tmp_path, sim):
    data = {
        "hub": {"timezone": TZ},
        "parties": [{"id": "gasco", "name": "GasCo"}],
        "assets": [{"id": "gt1", "kind": "gas_turbine", "capacity_kw": 60000,
                    "owners": [{"party": "gasco", "share": "1"}]}],
        "channels": [{"id": "poi.export", "role": "grid_export", "interval_minutes": 5}],
        "adapters": [{"type": "markets.pjm", "id": "pjm",
                      "config": {"url": sim.url, "nodes": ["GEN_PJM"], "timeout_s": 2}}],
        "markets": {"adapters": {"PJM": "pjm"},
                    "resources": [{"iso": "PJM", "resource": "GEN_PJM", "meter": ["poi.export"], "asset": "gt1"}]},
    }
    cfg = parse_config(data, "test", tmp_path)
    sid, sub = service.submit_bids(db, cfg, "PJM", [_bid()])
    assert sub.status == SubmissionStatus.ACCEPTED and sub.iso_ref == "KWHUB-000001"
    assert [(o.bid_id, o.status) for o in sub.outcomes] == [("GEN_PJM-DA", SubmissionStatus.ACCEPTED)]

    grid5 = DayGrid(DAY, TZ, 5)
    mw = np.array([12.0 if i == 2 else 0.0 if i == 10 else 6.0 for i in range(25)])
    kwh = np.repeat(mw / 12 * 1000, 12)
    kwh[0] = 600.0
    db.intervals.write_series([ChannelSeries("poi.export", 5, grid5.starts, kwh,
                                             np.full(300, Quality.VALID, np.uint8))], layer="validated", source="t")
    sim.meter = service.meter_source(db, cfg, "PJM")
    rep = service.fetch_market_day(db, cfg, "PJM", DAY)
    assert rep.awards == 1 and rep.over_offer == []
    award = service.store.load_award_hours(db, "PJM", "DA", ["GEN_PJM"], int(GRID.starts[0]), 25)[0]
    assert award.tolist() == [w * 1_000_000 for w in mw.astype(int).tolist()] and award.sum() == 150_000_000
    (check,) = service.variance_for_day(db, cfg, "PJM", DAY)
    assert check.statement.total() == D("-4682.50")
    assert check.report.codes["1200"].iso == D("-4680.00") == check.report.codes["1200"].shadow
    assert check.report.codes["1205"].iso == D("-2.50") == check.report.codes["1205"].shadow
    assert check.report.lines == []


def test_the_local_pjm_rejects_per_offer_and_a_bad_document_as_a_whole(sim):
    adapter = PjmMarket("pjm", {"url": sim.url, "timeout_s": 2})
    good = adapter.render_bids([_bid("GEN_A")])
    # a document that skips kwhub's own checks: GEN_B's hour 0 offers at $1,500.00, above the $1,000 cap,
    # and has 11 points in hour 1 (at most 10)
    eleven = tuple((f"{k}.0", f"{20 + k}.00") for k in range(1, 12))
    bad_bid = _bid("GEN_B", (_curve(0, (("6.0", "20.00"), ("12.0", "1500.00"))), _curve(1, eleven)))
    from kwhub.plugins.markets.pjm.offers import render_offers

    both = render_offers([_bid("GEN_A"), bad_bid], "KWHUB")
    assert validate_offers(both) == []  # structurally fine: the rules are the ISO's check
    r = httpx.post(f"{sim.url}/marketsgateway/xml/submit", content=both)
    root = etree.fromstring(r.content)
    assert root.findtext(f"{NS}Success/{NS}TransactionID") == "KWHUB-000001"
    results = {el.get("location"): el for el in root.iter(f"{NS}OfferResult")}
    assert results["GEN_A"].get("status") == "Accepted" and results["GEN_B"].get("status") == "Rejected"
    errors = [e.text for e in results["GEN_B"].iter(f"{NS}Error")]
    assert errors == ["2026-11-01 HE01: rule cap: price 1500.00 is above the cap 1000.00",
                      "2026-11-01 HE02: rule points: 11 points, PJM allows at most 10"]
    assert [b.resource for b in sim.offers] == ["GEN_A"]
    # what the adapter makes of such an answer: partly accepted, the rejected offer's rules kept
    from unittest import mock

    with mock.patch.object(PjmMarket, "render_bids", return_value=both):
        sub = adapter.submit([_bid("GEN_A"), bad_bid])
    assert sub.status == SubmissionStatus.PARTIAL
    assert [(o.bid_id, o.status.value, len(o.errors)) for o in sub.outcomes] == \
        [("GEN_A-DA", "accepted", 0), ("GEN_B-DA", "rejected", 2)]
    # a document refused as a whole (schema): nothing is accepted, the reason is kept
    r = httpx.post(f"{sim.url}/marketsgateway/xml/submit", content=good.replace(b' location="GEN_A"', b""))
    err = etree.fromstring(r.content).find(f"{NS}Error")
    assert err is not None and err.findtext(f"{NS}Code") == "SCHEMA" and "location" in err.findtext(f"{NS}Message")
    assert len(sim.offers) == 2  # GEN_A twice (the mocked submission), never GEN_B
