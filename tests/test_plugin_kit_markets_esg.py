"""The kit's market and ESG family checks: the built-in adapters pass them, and they catch what they should.

Market days: ERCOT, CAISO and PJM each on Sunday 1 November 2026, the fall-back day (25
hours: 01:00 local happens twice), against their local servers. Every expected figure is
worked out here by hand with Decimal; hour starts are written in UTC from the offsets
(Central CDT -5 / CST -6, Pacific PDT -7 / PST -8, Eastern EDT -4 / EST -5).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path
from typing import Any, ClassVar

import pytest

from kwhub.core.adapters import MarketAdapter
from kwhub.core.markets.models import Bid, CurvePoint, OfferCurve
from kwhub.core.markets.prices import MarketPrices
from kwhub.hub.registry import load_plugins
from kwhub.plugins.markets.caiso import CaisoMarket
from kwhub.plugins.markets.ercot import ErcotMarket
from kwhub.plugins.markets.pjm import PjmMarket
from kwhub.plugins.markets.pjm.formats import render_lmp_csv
from kwhub.testing import (
    MarketDay,
    check_bid_document,
    check_esg_reporter,
    check_esg_writer,
    check_market_adapter,
    check_market_rejects,
    check_market_server,
    day_grid,
    sample_disclosure,
)
from kwhub.testing.disclosures import EXPECTED_TCO2E
from tests.test_plugin_kit import FAMILY_CHECKS

DAY = date(2026, 11, 1)
HOURS = 25


def _hours(first_utc_hour: int) -> list[datetime]:
    """The 25 hour starts of the day: local midnight (daylight time) is ``first_utc_hour`` UTC."""
    start = datetime(2026, 11, 1, first_utc_hour, tzinfo=UTC)
    return [start + timedelta(hours=k) for k in range(HOURS)]


def _bid(iso: str, resource: str, first_utc_hour: int, mw: str, price: str) -> Bid:
    curves = tuple(OfferCurve(start=h, end=h + timedelta(hours=1), points=(CurvePoint(mw=D(mw), price=D(price)),))
                   for h in _hours(first_utc_hour))
    return Bid(bid_id=resource, iso=iso, market="DA", resource=resource, trading_date=DAY, curves=curves)


def test_the_kit_grid_has_25_hours_on_the_fall_back_day():
    for tz, first in (("America/Chicago", 5), ("America/Los_Angeles", 7), ("America/New_York", 4)):
        grid = day_grid(DAY, tz, 60)
        assert grid == [int(h.timestamp()) for h in _hours(first)], tz
        assert len(day_grid(DAY, tz, 5)) == 300 and len(day_grid(DAY, tz, 15)) == 100
    assert len(day_grid(date(2026, 3, 8), "America/Chicago", 60)) == 23  # spring forward


# ------------------------------------------------------------------ ERCOT
# RN1 offers 50 MW at $25 every hour. DA SPP $40.00 every hour but the repeated one (index 2,
# HE02 DST) at $45.00: all 25 hours clear 50 MWh = 1,250 MWh. RT SPP $30.00 every quarter but
# quarter 8 (the repeated hour's first) at $60.00; the meter reads 12.5 MWh a quarter (50 / 4,
# the award exactly) except 13.0 MWh in quarter 8.

def _ercot_prices(node: str, day: date, market: str) -> list[D]:
    if market == "DA":
        return [D("45.00") if i == 2 else D("40.00") for i in range(25)]
    return [D("60.00") if i == 8 else D("30.00") for i in range(100)]


def _ercot_meter(resource: str, day: date) -> list[D]:
    return [D("13.0") if i == 8 else D("12.5") for i in range(100)]


ERCOT_DAY = MarketDay(
    trading_date=DAY, timezone="America/Chicago", hours=HOURS,
    bids=[_bid("ERCOT", "RN1", 5, "50.0", "25.00")],
    award_mwh=D("1250.0"),  # 25 x 50
    price_minutes={"DA": 60, "RT": 15},
    statement_totals={
        # DAESAMT = -50 x sum(DASPP) = -50 x (24 x 40.00 + 45.00) = -50 x 1,005.00
        "QKWHUB-DAM-20261101-INITIAL": D("-50250.00"),
        # RTEIAMT = -RTSPP x (meter - 50/4): 0 but quarter 8: -60.00 x (13.0 - 12.5) = -30.00
        "QKWHUB-RTM-20261101-INITIAL": D("-30.00"),
    },
)
ERCOT_CONFIG = {"resource": "RN1", "nodes": ["RN1"], "timeout_s": 2}
ERCOT_SERVER = {"prices": _ercot_prices, "meter": _ercot_meter}


def test_ercot_fall_back_day_passes_the_kit():
    result = check_market_server(ErcotMarket, ERCOT_CONFIG, ERCOT_DAY, ERCOT_SERVER)
    assert [(a.start, a.mwh) for a in result.awards][2] == (datetime(2026, 11, 1, 7, tzinfo=UTC), D("50.0"))
    [da] = result.prices["DA"]
    assert da.price_at(int(datetime(2026, 11, 1, 7, tzinfo=UTC).timestamp())) == D("45.00")  # 01:00 CST


def test_ercot_spring_forward_day_has_23_hours():
    """8 March 2026: 02:00 CST never happens. RN1 offers 50 MW at $25 in each of 23 hours (from
    06:00 UTC = midnight CST); DA $40.00 everywhere: -50 x 23 x 40.00 = -46,000.00. RT $30.00;
    the meter reads 12.5 MWh a quarter but 13.0 in the first: -30.00 x 0.5 = -15.00."""
    spring = date(2026, 3, 8)
    start = datetime(2026, 3, 8, 6, tzinfo=UTC)
    curves = tuple(OfferCurve(start=start + timedelta(hours=k), end=start + timedelta(hours=k + 1),
                              points=(CurvePoint(mw=D("50.0"), price=D("25.00")),)) for k in range(23))
    bid = Bid(bid_id="RN1", iso="ERCOT", market="DA", resource="RN1", trading_date=spring, curves=curves)
    day = MarketDay(trading_date=spring, timezone="America/Chicago", hours=23, bids=[bid], award_mwh=D("1150.0"),
                    price_minutes={"DA": 60, "RT": 15},
                    statement_totals={"QKWHUB-DAM-20260308-INITIAL": D("-46000.00"),
                                      "QKWHUB-RTM-20260308-INITIAL": D("-15.00")})
    server = {"prices": lambda node, d, market: [D("40.00")] * 23 if market == "DA" else [D("30.00")] * 92,
              "meter": lambda resource, d: [D("13.0")] + [D("12.5")] * 91}
    result = check_market_server(ErcotMarket, ERCOT_CONFIG, day, server)
    assert len(result.awards) == 23 and len(result.prices["RT"][0]) == 92


# ------------------------------------------------------------------ CAISO
# GEN1 offers 12 MW at $10 every hour; DA LMP $40.00 but hour index 2 (the second 01:00) at
# $50.00: 25 x 12 = 300 MWh. RTD $30.00 every 5 minutes but interval 24 at $60.00; the meter
# reads 1.0 MWh (12 / 12) per 5 minutes, 1.5 MWh in interval 24.

def _caiso_prices(node: str, day: date, market: str) -> list[D]:
    if market == "DA":
        return [D("50.00") if i == 2 else D("40.00") for i in range(25)]
    return [D("60.00") if i == 24 else D("30.00") for i in range(300)]


def _caiso_meter(resource: str, day: date) -> list[D]:
    return [D("1.5") if i == 24 else D("1.0") for i in range(300)]


CAISO_DAY = MarketDay(
    trading_date=DAY, timezone="America/Los_Angeles", hours=HOURS,
    bids=[_bid("CAISO", "GEN1", 7, "12.00", "10.00")],
    award_mwh=D("300.00"),
    price_minutes={"DA": 60, "RT": 5},
    # 6011 = -12 x (24 x 40.00 + 50.00) = -12 x 1,010.00 = -12,120.00;
    # 6475 = -(1.5 - 1.0) x 60.00 = -30.00, every other interval 0.00; total -12,150.00
    statement_totals={"SCKWHUB-20261101-INITIAL": D("-12150.00")},
)
CAISO_CONFIG = {"nodes": ["GEN1"], "timeout_s": 2}
CAISO_SERVER = {"prices": _caiso_prices, "meter": _caiso_meter}


def test_caiso_fall_back_day_passes_the_kit():
    result = check_market_server(CaisoMarket, CAISO_CONFIG, CAISO_DAY, CAISO_SERVER)
    assert result.submission is not None and result.submission.status.value == "accepted"
    [st] = result.statements
    assert sum((ln.amount for ln in st.lines if ln.code == "6475"), D("0.00")) == D("-30.00")


# ------------------------------------------------------------------ PJM (no bids: it clears what it is given)
# GEN_PJM cleared 12 MW every hour. DA system energy price $30.00 but hour index 2 at $45.00;
# RT $25.00 but 5-minute interval 24 at $50.00; meter 1.0 MWh per 5 minutes, 1.2 in interval 24.

def _pjm_prices(node: str, day: date, market: str) -> list[D]:
    if market == "DA":
        return [D("45.00") if i == 2 else D("30.00") for i in range(25)]
    return [D("50.00") if i == 24 else D("25.00") for i in range(300)]


def _pjm_meter(resource: str, day: date) -> list[D]:
    return [D("1.2") if i == 24 else D("1.0") for i in range(300)]


PJM_DAY = MarketDay(
    trading_date=DAY, timezone="America/New_York", hours=HOURS,
    offered_mw={("GEN_PJM", int(h.timestamp())): D("12") for h in _hours(4)},
    award_mwh=D("300"),
    price_minutes={"DA": 60, "RT": 5},
    # 1200 = -12 x (24 x 30.00 + 45.00) = -12 x 765.00 = -9,180.00;
    # 1205 = (-1.2 + 12/12) x 50.00 = -10.00 in interval 24, 0.00 elsewhere; total -9,190.00
    statement_totals={"KWHUB-20261101-INITIAL": D("-9190.00")},
)
PJM_CONFIG = {"nodes": ["GEN_PJM"], "timeout_s": 2}
PJM_SERVER = {"prices": _pjm_prices, "meter": _pjm_meter, "cleared": {("GEN_PJM", DAY): [D("12")] * 25}}


def test_pjm_fall_back_day_passes_the_kit():
    result = check_market_server(PjmMarket, PJM_CONFIG, PJM_DAY, PJM_SERVER)
    assert result.submission is None  # no bids given: the local PJM clears what it is given
    assert len(result.prices["RT"][0]) == 300


# ------------------------------------------------------------------ bid documents


@pytest.mark.parametrize("cls, bid", [(ErcotMarket, ERCOT_DAY.bids[0]), (CaisoMarket, CAISO_DAY.bids[0])],
                         ids=["ercot", "caiso"])
def test_bid_documents_pass_the_kit(cls, bid):
    data = check_bid_document(cls("kit", {"url": "http://127.0.0.1:9"}), [bid])
    assert bid.resource.encode() in data


class NoCapErcot(ErcotMarket):
    """Renders without checking ERCOT's curve rules (so without the offer cap)."""

    def render_bids(self, bids):  # noqa: ANN001, ANN201
        from kwhub.plugins.markets.ercot import ews

        return ews.soap_wrap(self._message(bids))


class AcceptsAnything(ErcotMarket):
    """A validator that finds nothing wrong, ever."""

    def validate_document(self, data: bytes) -> list[str]:
        return []


def test_the_kit_catches_an_over_cap_bid():
    with pytest.raises(AssertionError, match=r"rendered a bid at \$1000000/MWh"):
        check_bid_document(NoCapErcot("kit", {"url": "http://127.0.0.1:9"}), ERCOT_DAY.bids)


def test_the_kit_catches_a_validator_that_accepts_anything():
    with pytest.raises(AssertionError, match="validate_document\\(\\) accepts an empty document"):
        check_bid_document(AcceptsAnything("kit", {"url": "http://127.0.0.1:9"}), ERCOT_DAY.bids)


# ------------------------------------------------------------------ the day's checks catch mistakes


class ShiftedPrices(ErcotMarket):
    """Reads the hour labels one hour late (every interval one hour later in UTC)."""

    def fetch_prices(self, trading_date: date, market: str = "DA") -> list[MarketPrices]:
        return [MarketPrices(iso=p.iso, node=p.node, market=p.market, interval_minutes=p.interval_minutes,
                             starts=p.starts + 3600, price_units=p.price_units)
                for p in super().fetch_prices(trading_date, market)]


def test_the_kit_catches_prices_shifted_by_one_hour():
    # 06:00 UTC is 01:00 CDT; shifted, the last hour starts at 05:00 UTC on 2 November, after the day
    with pytest.raises(AssertionError, match=r"the DA prices of RN1 has 1 interval\(s\) off the operating day's "
                       r"UTC grid, first at 2026-11-02T06:00:00\+00:00"):
        check_market_server(ShiftedPrices, ERCOT_CONFIG, ERCOT_DAY, ERCOT_SERVER)


def test_the_kit_catches_a_wrong_hand_computed_total():
    wrong = MarketDay(**{**ERCOT_DAY.__dict__, "statement_totals": {
        "QKWHUB-DAM-20261101-INITIAL": D("-50000.00"), "QKWHUB-RTM-20261101-INITIAL": D("-30.00")}})
    with pytest.raises(AssertionError, match="totals -50250.00, expected -50000.00"):
        check_market_server(ErcotMarket, ERCOT_CONFIG, wrong, ERCOT_SERVER)


def test_the_kit_catches_an_award_above_the_offer():
    small = MarketDay(**{**PJM_DAY.__dict__, "offered_mw": {k: D("10") for k in PJM_DAY.offered_mw}})
    with pytest.raises(AssertionError, match=r"GEN_PJM was awarded 12 MWh at 2026-11-01T04:00:00\+00:00, above "
                       "the 10 MWh offered"):
        check_market_server(PjmMarket, PJM_CONFIG, small, PJM_SERVER)


class HalfStatements(MarketAdapter):
    """Declares statements but implements only fetch_statements."""

    type_id: ClassVar[str] = "markets.half"
    iso: ClassVar[str] = "PJM"
    capabilities: ClassVar[frozenset[str]] = frozenset({"statements"})

    def fetch_statements(self, operating_day: date) -> list[Any]:
        return []


class Auctions(MarketAdapter):
    type_id: ClassVar[str] = "markets.auctions"
    capabilities: ClassVar[frozenset[str]] = frozenset({"auctions"})


def test_the_kit_catches_a_missing_capability_method_and_an_unknown_capability():
    with pytest.raises(AssertionError, match=r"declares capability 'statements' but does not implement "
                       r"parse_statement\(\)"):
        check_market_adapter(HalfStatements)
    with pytest.raises(AssertionError, match=r"capabilities \['auctions'\] are not market capabilities"):
        check_market_adapter(Auctions)


def test_every_builtin_market_adapter_implements_its_capabilities():
    reg = load_plugins(use_entry_points=False)
    types = sorted(t for t, c in reg.adapters.items() if issubclass(c, MarketAdapter))
    assert types == sorted(FAMILY_CHECKS["check_market_server"] + FAMILY_CHECKS["check_market_adapter"])
    for t in types:
        check_market_adapter(reg.adapter(t), {"path": "p.csv"} if t == "markets.price_file" else {"url": "http://x"})


# ------------------------------------------------------------------ bad files


def _corrupt(data: bytes, line: int, column: str, value: str) -> bytes:
    rows = list(csv.reader(io.StringIO(data.decode())))
    rows[line - 1][rows[0].index(column)] = value
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue().encode()


def test_bad_price_and_statement_files_are_refused_naming_file_line_and_field(tmp_path):
    from kwhub.plugins.markets.caiso.sim import CaisoSim
    from kwhub.plugins.markets.ercot.reports import render_spp_csv
    from kwhub.plugins.markets.pjm.sim import PjmSim

    ercot = ErcotMarket("kit", {"url": "http://127.0.0.1:9", "resource": "RN1"})
    spp = render_spp_csv(DAY, "America/Chicago", "DA", {"RN1": _ercot_prices("RN1", DAY, "DA")})
    (tmp_path / "np4-190.csv").write_bytes(_corrupt(spp, 4, "SettlementPointPrice", "n/a"))
    check_market_rejects(ercot, tmp_path / "np4-190.csv", "prices", line=4, field="SettlementPointPrice")

    caiso = CaisoMarket("kit", {"url": "http://127.0.0.1:9"})
    sim = CaisoSim(prices=_caiso_prices, meter=_caiso_meter)
    sim.bids.append(CAISO_DAY.bids[0])
    [statement] = sim.statements(DAY).values()
    (tmp_path / "caiso-statement.csv").write_bytes(_corrupt(statement, 5, "AMOUNT", "12,0"))
    check_market_rejects(caiso, tmp_path / "caiso-statement.csv", "statement", line=5, field="AMOUNT")

    pjm = PjmMarket("kit", {"url": "http://127.0.0.1:9"})
    lmp = render_lmp_csv(DAY, "DA", {"GEN_PJM": _pjm_prices("GEN_PJM", DAY, "DA")})
    (tmp_path / "da_hrl_lmps.csv").write_bytes(_corrupt(lmp, 3, "system_energy_price_da", "x"))
    check_market_rejects(pjm, tmp_path / "da_hrl_lmps.csv", "prices", line=3, field="system_energy_price_da")
    [statement] = PjmSim(cleared={("GEN_PJM", DAY): [D("12")] * 25}).statements(DAY).values()
    (tmp_path / "pjm-statement.csv").write_bytes(_corrupt(statement, 2, "PRICE", "thirty"))
    check_market_rejects(pjm, tmp_path / "pjm-statement.csv", "statement", line=2, field="PRICE")


def test_the_kit_catches_a_parser_that_accepts_a_bad_file(tmp_path):
    class Lenient(PjmMarket):
        def parse_prices(self, path: Path) -> list[MarketPrices]:
            return []

    lmp = render_lmp_csv(DAY, "DA", {"GEN_PJM": _pjm_prices("GEN_PJM", DAY, "DA")})
    (tmp_path / "lmp.csv").write_bytes(_corrupt(lmp, 3, "system_energy_price_da", "x"))
    with pytest.raises(AssertionError, match="read the bad prices file lmp.csv without an error"):
        check_market_rejects(Lenient("kit", {"url": "http://x"}), tmp_path / "lmp.csv", "prices", line=3,
                             field="system_energy_price_da")


# ------------------------------------------------------------------ ESG writers

ESG_WRITERS = FAMILY_CHECKS["check_esg_writer"]


def test_the_sample_disclosure_matches_its_hand_computed_totals():
    from kwhub.core.factors import gwp_set

    d = sample_disclosure()
    for row in d.summary():
        want = EXPECTED_TCO2E[row["party"]]
        assert D(row["scope1_tco2e"]) == want["scope1"], row
        assert D(row["scope2_location_tco2e"]) == want["scope2_location"], row
        assert D(row["scope2_market_tco2e"]) == want["scope2_market"], row
        assert D(row["scope3_cat3_tco2e"]) == want["scope3_cat3"], row
    ar5 = gwp_set("AR5")
    for party in d.parties:  # each row's kg CO2e is its gases under AR5 (the comments' arithmetic)
        for r in party.rows:
            assert r.kg.co2e(ar5) == r.kg_co2e.quantize(D("0.001")), (party.party, r.scope, r.category)


@pytest.mark.parametrize("type_id", ESG_WRITERS)
def test_every_builtin_esg_writer_passes_the_kit(type_id, tmp_path):
    reg = load_plugins(use_entry_points=False)
    cls = reg.adapter(type_id)
    check_esg_reporter(cls, {})
    paths = check_esg_writer(cls("kit", {}), sample_disclosure(), tmp_path)
    assert paths


def test_the_kit_catches_an_esg_validator_that_accepts_a_cut_file(tmp_path):
    from kwhub.plugins.esg.sb253 import Sb253Writer

    class Lenient(Sb253Writer):
        def validate(self, paths):  # noqa: ANN001, ANN201
            return []

    with pytest.raises(AssertionError, match=r"validate\(\) accepts sb253-2026-10-\w+\.(json|csv) cut in half"):
        check_esg_writer(Lenient("kit", {}), sample_disclosure(), tmp_path)


def test_the_kit_catches_a_writer_without_format_or_validate():
    from kwhub.core.adapters import EsgReporter

    class NoFormat(EsgReporter):
        type_id: ClassVar[str] = "esg.noformat"

        def write(self, disclosure, out_dir):  # noqa: ANN001, ANN201
            return []

    with pytest.raises(AssertionError, match="set format_id"):
        check_esg_reporter(NoFormat)
    NoFormat.format_id = "nf"  # type: ignore[misc]
    with pytest.raises(AssertionError, match=r"implement validate\(\)"):
        check_esg_reporter(NoFormat)
