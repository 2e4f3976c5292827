"""ISO market rules as data: the three built-in ISOs, and a tiny fake ISO ("TOYISO") that a
plugin registers with its own curve cap, point count, time zone, hour labels, real-time grain
and gate, then uses through the models, the curve checks, the store, the scheduler's gate and
the plugin kit. Money by hand with Decimal."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from kwhub.core.adapters import AdapterConfig, MarketAdapter
from kwhub.core.hookspecs import hookimpl
from kwhub.core.markets.curve_rules import (
    DEFAULT_RULES,
    CurveRuleError,
    CurveRules,
    check_bid,
    require_valid,
)
from kwhub.core.markets.hour_labels import DayGrid
from kwhub.core.markets.models import Award, Bid, CurvePoint, OfferCurve
from kwhub.core.markets.rules import (
    MarketRules,
    MarketRulesError,
    known_isos,
    market_rules,
    register_market_rules,
    rules_for,
    unregister_market_rules,
)

TZ = "America/New_York"
DAY = date(2026, 11, 1)  # the fall-back day in New York: 25 hours
GRID = DayGrid(DAY, TZ, 60)
TOY_CURVES = CurveRules(iso="TOYISO", floor=D("-100.00"), cap=D("500.00"), max_points=3, mw_places=1)
TOY = MarketRules(iso="TOYISO", timezone=TZ, da=TOY_CURVES, rt=TOY_CURVES.model_copy(update={"cap": D("300.00")}),
                  rt_minutes=5, hour_label="hour_beginning", da_gate="05:00", rt_gate_minutes=75)


@pytest.fixture
def toy():  # noqa: ANN201
    register_market_rules(TOY)
    yield TOY
    unregister_market_rules("TOYISO")


def _curve(i: int, *points: tuple[str, str]) -> OfferCurve:
    s = datetime.fromtimestamp(int(GRID.starts[i]), tz=UTC)
    return OfferCurve(start=s, end=s + timedelta(hours=1), points=tuple(CurvePoint(mw=D(m), price=D(p))
                                                                        for m, p in points))


def test_the_built_in_isos_keep_their_rules():
    assert known_isos() == ["ERCOT", "CAISO", "PJM"]
    for (iso, market), rules in DEFAULT_RULES.items():
        assert rules_for(iso, market) == rules
    assert rules_for("ERCOT", "DA").cap == D("5000.00") and rules_for("ERCOT", "RT").cap == D("2000.00")
    assert [market_rules(i).rt_minutes for i in known_isos()] == [15, 5, 5]
    assert [market_rules(i).timezone for i in known_isos()] == ["America/Chicago", "America/Los_Angeles", TZ]


def test_an_iso_without_rules_is_refused_naming_the_known_ones():
    with pytest.raises(ValidationError, match=r"no market rules for ISO 'TOYISO' \(known: ERCOT, CAISO, PJM\)"):
        Bid(bid_id="b1", iso="TOYISO", market="DA", resource="R1", trading_date=DAY)
    with pytest.raises(MarketRulesError, match="register_market_rules"):
        rules_for("TOYISO", "DA")


def test_a_registered_iso_builds_the_models_and_its_curves_meet_its_own_rules(toy):
    assert known_isos() == ["ERCOT", "CAISO", "PJM", "TOYISO"]
    register_market_rules(TOY)  # equal rules again: nothing happens
    good = Bid(bid_id="b1", iso="TOYISO", market="DA", resource="R1", trading_date=DAY,
               curves=(_curve(0, ("5.0", "20.00"), ("10.0", "500.00")),))
    assert check_bid(good, rules_for("TOYISO", "DA"), TZ) == []
    # $500.01 is within ERCOT's $5,000 but above TOYISO's $500.00; 4 points where it allows 3
    bad = good.model_copy(update={"curves": (_curve(2, ("5.0", "20.00"), ("10.0", "500.01")),
                                             _curve(3, ("1.0", "1.00"), ("2.0", "2.00"), ("3.0", "3.00"),
                                                    ("4.0", "4.00")))})
    with pytest.raises(CurveRuleError) as err:
        require_valid([bad], {}, TZ)
    assert [str(v) for v in err.value.violations] == [
        "2026-11-01 HE02 DST: rule cap: price 500.01 is above the cap 500.00",
        "2026-11-01 HE03: rule points: 4 points, TOYISO allows at most 3"]
    # the real-time cap of TOYISO is its own ($300.00)
    rt = good.model_copy(update={"market": "RT"})
    assert [v.rule for v in check_bid(rt, rules_for("TOYISO", "RT"), TZ)] == ["cap"]
    # hour labels: TOYISO labels the hour by its beginning; the repeated 01:00 is marked
    assert [toy.interval_label(GRID, i) for i in range(4)] == ["HB00", "HB01", "HB01 DST", "HB02"]
    assert [market_rules("ERCOT").interval_label(GRID, i) for i in range(3)] == ["HE01", "HE02", "HE02 DST"]


def test_rules_that_cannot_hold_are_refused():
    with pytest.raises(ValidationError, match="upper-case"):
        MarketRules(**{**TOY.model_dump(), "iso": "toy"})
    with pytest.raises(ValidationError, match="not an IANA time zone"):
        MarketRules(**{**TOY.model_dump(), "timezone": "Eastern"})
    with pytest.raises(ValidationError, match="must divide the hour"):
        MarketRules(**{**TOY.model_dump(), "rt_minutes": 7})
    with pytest.raises(ValidationError, match="da curve rules say iso 'ERCOT'"):
        MarketRules(**{**TOY.model_dump(), "da": DEFAULT_RULES[("ERCOT", "DA")]})
    with pytest.raises(ValidationError, match="HH:MM"):
        MarketRules(**{**TOY.model_dump(), "da_gate": "25:00"})
    # a built-in ISO is not silently overwritten; replace=True says so, and unregistering restores it
    tighter = market_rules("ERCOT").model_copy(update={"da": DEFAULT_RULES[("ERCOT", "DA")].model_copy(
        update={"cap": D("1000.00")})})
    with pytest.raises(MarketRulesError, match="ERCOT already has other market rules"):
        register_market_rules(tighter)
    try:
        register_market_rules(tighter, replace=True)
        assert rules_for("ERCOT", "DA").cap == D("1000.00")
    finally:
        unregister_market_rules("ERCOT")
    assert rules_for("ERCOT", "DA").cap == D("5000.00")


# ------------------------------------------------------------------ a third-party adapter


class ToyConfig(AdapterConfig):
    url: str = ""


AWARDED = [D("10.0")] * 25  # 10 MW in every hour of the fall-back day: 250 MWh


class ToyMarket(MarketAdapter):
    """A third-party adapter for TOYISO: hourly awards only."""

    type_id: ClassVar[str] = "markets.toyiso"
    iso: ClassVar[str] = "TOYISO"
    capabilities: ClassVar[frozenset[str]] = frozenset({"awards"})
    Config = ToyConfig

    def fetch_awards(self, trading_date: date, market: str = "DA") -> list[Award]:
        grid = DayGrid(trading_date, TZ, 60)
        return [Award(iso="TOYISO", market="DA", resource="TOY_GEN", start=datetime.fromtimestamp(int(s), tz=UTC),
                      end=datetime.fromtimestamp(int(s) + 3600, tz=UTC), mwh=mw)
                for s, mw in zip(grid.starts.tolist(), AWARDED, strict=True)]


class ToyPlugin:
    @hookimpl
    def kwhub_register_market_adapters(self, register: Any) -> None:
        register_market_rules(TOY)
        register(ToyMarket)


def test_a_plugin_registers_its_iso_and_the_hub_uses_it(sqlite_db, tmp_path):
    from kwhub.hub.config import parse_config
    from kwhub.hub.markets import service, store
    from kwhub.hub.markets.jobs import gate_of
    from kwhub.hub.registry import load_plugins
    from kwhub.testing.markets import check_market_adapter

    try:
        reg = load_plugins(use_entry_points=False, extra=[("toyiso", ToyPlugin())])
        data = {
            "hub": {"timezone": "America/Chicago"},
            "parties": [{"id": "op", "name": "Op"}],
            "assets": [{"id": "gt1", "kind": "gas_turbine", "capacity_kw": 20000,
                        "owners": [{"party": "op", "share": "1"}]}],
            "channels": [{"id": "poi.export", "role": "grid_export", "interval_minutes": 5}],
            "adapters": [{"type": "markets.toyiso", "id": "toy", "config": {}}],
            "markets": {"adapters": {"TOYISO": "toy"},
                        "resources": [{"iso": "TOYISO", "resource": "TOY_GEN", "meter": ["poi.export"],
                                       "asset": "gt1"}]},
        }
        cfg = parse_config(data, "test", tmp_path, registry=reg)
        assert cfg.file.markets.of_iso("TOYISO")[0].resource == "TOY_GEN"
        # the operating day is the ISO's (New York), not the hub's (Chicago)
        assert service.iso_timezone(cfg, "TOYISO") == TZ
        rep = service.fetch_market_day(cfg=cfg, db=sqlite_db, iso="TOYISO", day=DAY, prices=False, statements=False)
        assert rep.awards == 1
        hours = store.load_award_hours(sqlite_db, "TOYISO", "DA", ["TOY_GEN"], int(GRID.starts[0]), 25)
        assert hours.sum() == 250_000_000  # 25 hours x 10 MWh, in Wh
        # the scheduler's gate defaults to the rules' 05:00 New York time the day before
        assert gate_of(cfg, "TOYISO", DAY) == datetime(2026, 10, 31, 5, 0, tzinfo=ZoneInfo(TZ))
        check_market_adapter(ToyMarket, {})
    finally:
        unregister_market_rules("TOYISO")

    class Stranger(ToyMarket):
        type_id: ClassVar[str] = "markets.stranger"
        iso: ClassVar[str] = "NOISO"

    with pytest.raises(AssertionError, match=r"ISO 'NOISO' has no market rules \(known: ERCOT, CAISO, PJM\); "
                       "register them with kwhub.core.markets.rules.register_market_rules"):
        check_market_adapter(Stranger, {})
