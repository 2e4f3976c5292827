"""Real-time offers: a 15-minute ERCOT forecast and plan, hourly RT offers from the tightest
quarter-hour, submitted to the local ERCOT as an RTM BidSet (RTSWCAP $2,000), hand-computed.

The campus: gt1 50 MW (9 x $3.00 + $4.00 VOM = $31.00/MWh), gt2 40 MW (11 x $3.00 =
$33.00), pv 30 MW; load 40 MW by persistence, made 5 % pessimistic (42 MW); fixed reserve
10 MW. Per quarter-hour: surplus = 90 (+ solar, - derates) - 42 - 10 = 38 MW.
* gt2 derated to 20 MW from 00:15 to 00:30: quarter 2 of hour 0 has 70 - 52 = 18 MW, the
  hour's RT offer reaches 18.0 MW (its other quarters have 38);
* pv forecast 12 / 8 / 4 / 0 MW in the quarters of hour 12: 50 / 46 / 42 / 38 MW, the hour's
  RT offer reaches 38.0 MW (the day-ahead offer, on the hour's mean 6 MW, 44.0).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

import httpx
import numpy as np
import pytest

from kwhub.core.intervals import ChannelSeries
from kwhub.core.markets.curve_rules import ERCOT_RT, CurveRuleError, check_bid
from kwhub.core.markets.models import Bid, CurvePoint, OfferCurve, SubmissionStatus
from kwhub.core.markets.rt_offers import RT_FORECAST_MINUTES
from kwhub.core.quality import Quality
from kwhub.core.timeline import local_day
from kwhub.hub.config import parse_config
from kwhub.hub.markets import service
from kwhub.hub.markets.forecast import build_day_bids, build_rt_bids, campus_forecast

TZ = "America/Chicago"
DAY = date(2026, 10, 15)
SPAN = local_day(DAY, TZ)


def _cfg(tmp_path, url: str):  # noqa: ANN001, ANN202
    rows = ["interval_start,asset,mw"]
    for q in range(96):
        mw = (12, 8, 4, 0)[q % 4] if q // 4 == 12 else 0
        rows.append(f"{datetime.fromtimestamp(SPAN.start_epoch + 900 * q, tz=UTC):%Y-%m-%dT%H:%M:%SZ},pv,{mw}")
    (tmp_path / "solar.csv").write_text("\n".join(rows) + "\n")
    data = {
        "hub": {"timezone": TZ},
        "parties": [{"id": "op", "name": "Op"}, {"id": "t1", "name": "T1"}],
        "assets": [{"id": "gt1", "kind": "gas_turbine", "capacity_kw": 50000, "heat_rate_mmbtu_per_mwh": 9.0,
                    "owners": [{"party": "op", "share": "1"}]},
                   {"id": "gt2", "kind": "gas_turbine", "capacity_kw": 40000, "heat_rate_mmbtu_per_mwh": 11.0},
                   {"id": "pv", "kind": "solar", "capacity_kw": 30000}],
        "channels": [{"id": "hall.load", "role": "tenant_load", "party": "t1", "interval_minutes": 15},
                     {"id": "poi.export", "role": "grid_export", "interval_minutes": 15}],
        "ownership": {"costs": {"gt1": {"variable_om_per_mwh": "4.00"}}},
        "adapters": [{"type": "markets.ercot", "id": "ercot", "config": {"url": url, "timeout_s": 5}}],
        "markets": {"adapters": {"ERCOT": "ercot"}, "gas_price": "3.00", "price_forecast": "45.00",
                    "reserve": {"mode": "fixed", "mw": 10.0}, "solar_forecast_file": "solar.csv",
                    "outages": [{"unit": "gt2", "start": "2026-10-15T00:15:00-05:00",
                                 "end": "2026-10-15T00:30:00-05:00", "available_mw": 20.0}],
                    "resources": [{"iso": "ERCOT", "resource": "RN1", "meter": ["poi.export"], "asset": "gt1"}]},
    }
    return parse_config(data, "test", tmp_path)


def _load(db) -> None:  # noqa: ANN001
    before = local_day(DAY - timedelta(days=1), TZ)
    starts = before.start_epoch + 900 * np.arange(96, dtype=np.int64)
    db.intervals.write_series([ChannelSeries("hall.load", 15, starts, np.full(96, 10_000.0),
                                             np.full(96, Quality.VALID, np.uint8))], layer="validated")


def _hour(curve: OfferCurve) -> int:
    return int((curve.start.timestamp() - SPAN.start_epoch) // 3600)


@pytest.fixture
def sim():  # noqa: ANN201
    from kwhub.plugins.markets.ercot.sim import ErcotSim

    s = ErcotSim(tz=TZ).start()
    yield s
    s.stop()


def test_rt_forecast_runs_on_quarter_hours(sqlite_db, tmp_path):
    assert RT_FORECAST_MINUTES == {"ERCOT": 15, "CAISO": 5, "PJM": 5}
    cfg = _cfg(tmp_path, "http://127.0.0.1:9")
    _load(sqlite_db)
    fc = campus_forecast(sqlite_db, cfg, "ERCOT", DAY, 15)
    assert len(fc.surplus.surplus_mw) == 96
    # 90 - 42 - 10 = 38 ; quarter 2 of hour 0: 50 + 20 - 52 = 18 ; hour 12: 38 + 12 / 8 / 4 / 0
    assert fc.surplus.surplus_mw[:4].round(6).tolist() == [38.0, 18.0, 38.0, 38.0]
    assert fc.surplus.surplus_mw[48:52].round(6).tolist() == [50.0, 46.0, 42.0, 38.0]


def test_rt_offers_take_the_tightest_quarter_and_reach_the_local_ercot(sqlite_db, tmp_path, sim):
    cfg = _cfg(tmp_path, sim.url)
    _load(sqlite_db)
    built = build_rt_bids(sqlite_db, cfg, "ERCOT", DAY, "RN1")
    (bid,) = built.bids
    assert bid.market == "RT" and check_bid(bid, ERCOT_RT, TZ) == []
    assert built.notes[0].startswith("real time on 15-minute intervals")
    by_hour = {_hour(c): c for c in bid.curves}
    assert sorted(by_hour) == list(range(24))
    assert all(c.end - c.start == timedelta(hours=1) for c in bid.curves)
    assert by_hour[0].max_mw == D("18.0")  # the derated quarter 00:15-00:30
    assert by_hour[12].max_mw == D("38.0")  # the sunless last quarter of hour 12
    assert all(by_hour[h].max_mw == D("38.0") for h in range(1, 24))
    # load 42 MW on gt1 first: 8 MW left at $31.00, then gt2 at $33.00 less the 10 MW reserve
    assert [(p.mw, p.price) for p in by_hour[0].points] == [(D("8.0"), D("31.00")), (D("18.0"), D("33.00"))]
    assert all([(p.mw, p.price) for p in by_hour[h].points] == [(D("8.0"), D("31.00")), (D("38.0"), D("33.00"))]
               for h in range(1, 24))
    # the day-ahead offer of the same day takes the hour's mean: hour 12 has 38 + 6 = 44 MW
    da = {_hour(c): c for c in build_day_bids(sqlite_db, cfg, "ERCOT", DAY, "RN1").bids[0].curves}
    assert da[12].max_mw == D("44.0") and da[0].max_mw == D("18.0")
    # past the gate: only hours from 12:00 on
    late = build_rt_bids(sqlite_db, cfg, "ERCOT", DAY, "RN1", from_epoch=SPAN.start_epoch + 12 * 3600)
    assert [_hour(c) for c in late.bids[0].curves] == list(range(12, 24))

    sid, sub = service.submit_bids(sqlite_db, cfg, "ERCOT", late.bids)
    assert sub.status == SubmissionStatus.SUBMITTED and sub.market == "RT"
    assert sub.iso_ref == "QKWHUB.10152026.RTTPO.RN1.RN1"
    assert service.poll_submission(sqlite_db, cfg, sid).status == SubmissionStatus.ACCEPTED
    # a real-time offer is never cleared in the day-ahead market
    assert sim.awards_of(DAY) == []


def _rt_bid(price: str) -> Bid:
    start = datetime.fromtimestamp(SPAN.start_epoch + 15 * 3600, tz=UTC)
    return Bid(bid_id="RN1", iso="ERCOT", market="RT", resource="RN1", trading_date=DAY,
               curves=(OfferCurve(start=start, end=start + timedelta(hours=1),
                                  points=(CurvePoint(mw=D("5.0"), price=D("40.00")),
                                          CurvePoint(mw=D("10.0"), price=D(price)))),))


def test_rt_cap_is_rtswcap_at_the_adapter_and_at_the_local_ercot(sqlite_db, tmp_path, sim):
    from kwhub.plugins.markets.ercot import ews

    cfg = _cfg(tmp_path, sim.url)
    adapter = service.market_adapter(cfg, "ERCOT")
    # $2,500 is under the DA cap ($5,000) but over RTSWCAP ($2,000): refused before it leaves the hub
    with pytest.raises(CurveRuleError) as err:
        adapter.submit([_rt_bid("2500.00")])
    assert [v.rule for v in err.value.violations] == ["cap"] and "2000.00" in str(err.value)
    da = _rt_bid("2500.00").model_copy(update={"market": "DA"})
    assert adapter.submit([da]).iso_ref == "QKWHUB.10152026.TPO.RN1.RN1"
    # the local ERCOT applies RTSWCAP to an RTM BidSet sent around the adapter's check
    bs = ews.render_bidset([_rt_bid("2500.00")], qse="QKWHUB", tz=TZ)
    msg = ews.render_message("RequestMessage", "create", "BidSet", "QKWHUB", message_id="m1", market_type="RTM",
                             trading_date=DAY, payload=[bs])
    r = httpx.post(sim.url + "/ews", content=ews.soap_wrap(msg), headers={"Content-Type": "text/xml"}, timeout=5)
    env = ews.parse_message(ews.soap_unwrap(r.content, "reply"), "reply")
    (outcome,) = ews.parse_outcomes(env.payload[0], "reply")
    assert env.reply_code == "ERROR" and outcome.status == SubmissionStatus.REJECTED
    assert "rule cap" in " ".join(outcome.errors) and "2000.00" in " ".join(outcome.errors)
    # at $2,000.00 it passes
    assert adapter.submit([_rt_bid("2000.00")]).status == SubmissionStatus.SUBMITTED


def test_rt_offer_document_spans_its_hours_and_expires_at_their_end():
    from kwhub.plugins.markets.ercot import ews

    bs = ews.render_bidset([_rt_bid("50.00")], qse="QKWHUB", tz=TZ)
    offer = bs.find(ews.E + "ThreePartOffer")
    assert offer.findtext(ews.E + "startTime") == "2026-10-15T15:00:00-05:00"
    assert offer.findtext(ews.E + "endTime") == "2026-10-15T16:00:00-05:00"
    assert offer.findtext(ews.E + "expirationTime") == "2026-10-15T16:00:00-05:00"
    msg = ews.render_message("RequestMessage", "create", "BidSet", "QKWHUB", message_id="m1", market_type="RTM",
                             trading_date=DAY, payload=[bs])
    assert ews.validate_message(msg) == []


def test_the_rt_job_offers_the_coming_hours_once_per_hour(sqlite_db, tmp_path, sim):
    from zoneinfo import ZoneInfo

    import tomli_w

    from kwhub.hub.app import Hub
    from kwhub.hub.config import load_config
    from kwhub.hub.markets import store
    from kwhub.hub.markets.jobs import market_jobs, market_rt_job
    from kwhub.hub.scheduler.registry import JobContext

    def hub(schedule):  # noqa: ANN001, ANN202
        data = {
            "hub": {"name": "rt", "timezone": TZ, "database": sqlite_db.url},
            "parties": [{"id": "gasco", "name": "GasCo"}],
            "assets": [{"id": "gt1", "kind": "gas_turbine", "capacity_kw": 60000, "heat_rate_mmbtu_per_mwh": 9.0,
                        "owners": [{"party": "gasco", "share": "1"}]}],
            "channels": [{"id": "poi.export", "role": "grid_export", "interval_minutes": 15}],
            "adapters": [{"type": "markets.ercot", "id": "ercot", "config": {"url": sim.url, "timeout_s": 5}}],
            "markets": {"adapters": {"ERCOT": "ercot"}, "export_limit_mw": 50.0,
                        "reserve": {"mode": "fixed", "mw": 10.0}, "schedule": schedule,
                        "resources": [{"iso": "ERCOT", "resource": "RN1", "meter": ["poi.export"], "asset": "gt1"}]},
            "scheduler": {"enabled": False},
        }
        (tmp_path / "kwhub.toml").write_bytes(tomli_w.dumps(data).encode())
        return Hub.from_config(load_config(tmp_path / "kwhub.toml"), database=sqlite_db)

    def at(h: int, m: int) -> JobContext:
        now = datetime(2026, 10, 15, h, m, tzinfo=ZoneInfo(TZ)).astimezone(UTC)
        return JobContext("markets", now, now, "test")

    assert "markets.ERCOT.rt" not in {s.id for s in market_jobs(hub({}).config)}  # off unless asked for
    h = hub({"rt_offers": True})
    assert "markets.ERCOT.rt" in {s.id for s in market_jobs(h.config)}
    # 13:20 + 60 minutes = 14:20: the first hour still open is 15:00; 15:00-24:00 is 9 hours
    first = market_rt_job(h, at(13, 20), "ERCOT")
    assert first["state"] == "submitted now" and first["status"] == "accepted" and first["hours"] == 9
    assert first["from"] == "2026-10-15T15:00:00-05:00"
    assert market_rt_job(h, at(13, 50), "ERCOT")["state"] == "offered"
    second = market_rt_job(h, at(14, 5), "ERCOT")  # 15:05: from 16:00, 8 hours
    assert second["hours"] == 8 and second["from"] == "2026-10-15T16:00:00-05:00"
    subs = store.list_submissions(sqlite_db, "ERCOT", DAY)
    assert [(s["market"], s["status"]) for s in subs] == [("RT", "accepted"), ("RT", "accepted")]
    # 60 MW less the 10 MW reserve, no load: 50.0 MW at 9 x $3.00 = $27.00 in every hour offered
    _, (bid,) = store.load_submission(sqlite_db, second["submission"])
    assert {(c.max_mw, c.points[0].price) for c in bid.curves} == {(D("50.0"), D("27.00"))}


def test_market_bid_command_builds_rt_offers(tmp_path, monkeypatch):
    import json

    import tomli_w
    from typer.testing import CliRunner

    from kwhub.hub.cli.main import app

    data = {
        "hub": {"name": "rt cli", "timezone": TZ},
        "parties": [{"id": "gasco", "name": "GasCo"}],
        "assets": [{"id": "gt1", "kind": "gas_turbine", "capacity_kw": 60000, "heat_rate_mmbtu_per_mwh": 9.0,
                    "owners": [{"party": "gasco", "share": "1"}]}],
        "channels": [{"id": "poi.export", "role": "grid_export", "interval_minutes": 15}],
        "adapters": [{"type": "markets.ercot", "id": "ercot", "config": {"url": "http://127.0.0.1:9"}}],
        "markets": {"adapters": {"ERCOT": "ercot"}, "reserve": {"mode": "fixed", "mw": 10.0},
                    "solar_forecast_file": "missing.csv",
                    "resources": [{"iso": "ERCOT", "resource": "RN1", "meter": ["poi.export"], "asset": "gt1"}]},
    }
    (tmp_path / "kwhub.toml").write_bytes(tomli_w.dumps(data).encode())
    monkeypatch.chdir(tmp_path)
    args = ["market", "bid", "--iso", "ERCOT", "--day", "2026-10-15", "--resource", "RN1", "--json"]
    out = CliRunner().invoke(app, [*args, "--market", "RT"])
    assert out.exit_code == 0, out.output
    (bid,) = json.loads(out.output)["bids"]
    # no solar asset, so the (missing) forecast file is not read: 60 - 10 = 50.0 MW at $27.00, 24 hours
    assert bid["market"] == "RT" and len(bid["curves"]) == 24
    assert {(c["points"][-1]["mw"], c["points"][-1]["price"]) for c in bid["curves"]} == {("50.0", "27.00")}
    bad = CliRunner().invoke(app, [*args, "--market", "XX"])
    assert bad.exit_code != 0 and "--market must be DA or RT" in str(bad.exception or bad.output)


def test_caiso_rt_offers_build_on_5_minutes_but_its_adapter_takes_day_ahead_only(sqlite_db, tmp_path):
    from kwhub.core.adapters import AdapterError, FailureKind
    from kwhub.core.markets.curve_rules import CAISO_RT

    data = {
        "hub": {"timezone": "America/Los_Angeles"},
        "parties": [{"id": "gasco", "name": "GasCo"}],
        "assets": [{"id": "gt1", "kind": "gas_turbine", "capacity_kw": 60000, "heat_rate_mmbtu_per_mwh": 9.0,
                    "owners": [{"party": "gasco", "share": "1"}]},
                   {"id": "pv", "kind": "solar", "capacity_kw": 30000}],
        "channels": [{"id": "poi.export", "role": "grid_export", "interval_minutes": 5}],
        "adapters": [{"type": "markets.caiso", "id": "iso", "config": {"url": "http://127.0.0.1:9"}}],
        "markets": {"adapters": {"CAISO": "iso"}, "reserve": {"mode": "fixed", "mw": 10.0},
                    "solar_forecast_file": "solar.csv",
                    "resources": [{"iso": "CAISO", "resource": "GEN1", "meter": ["poi.export"], "asset": "gt1"}]},
    }
    span = local_day(DAY, "America/Los_Angeles")
    rows = ["interval_start,asset,mw"]
    for k in range(288):  # 5-minute solar: 6 MW in the first 5 minutes of 12:00, 0 otherwise
        rows.append(f"{datetime.fromtimestamp(span.start_epoch + 300 * k, tz=UTC):%Y-%m-%dT%H:%M:%SZ},pv,"
                    f"{6 if k == 144 else 0}")
    (tmp_path / "solar.csv").write_text("\n".join(rows) + "\n")
    cfg = parse_config(data, "test", tmp_path)
    fc = campus_forecast(sqlite_db, cfg, "CAISO", DAY, 5)
    assert len(fc.surplus.surplus_mw) == 288 and fc.surplus.surplus_mw[144] == 56.0  # 60 + 6 - 10
    (bid,) = build_rt_bids(sqlite_db, cfg, "CAISO", DAY, "GEN1").bids
    assert check_bid(bid, CAISO_RT, "America/Los_Angeles") == []
    # hour 12 offers its tightest 5 minutes (no sun): 60 - 10 = 50 MW at 9 x $3.00
    assert {(c.max_mw, c.points[-1].price) for c in bid.curves} == {(D("50.00"), D("27.00"))}
    with pytest.raises(AdapterError) as err:
        service.market_adapter(cfg, "CAISO").submit([bid])
    assert err.value.kind == FailureKind.CONFIGURATION and "day-ahead (IFM) bids only" in str(err.value)


def test_local_ercot_dispatches_rt_offers_and_settles_them_by_hand(tmp_path):
    """RT offer for 15:00-16:00: 5.0 MW at $40.00, 10.0 MW at $60.00; RT SPPs of its quarters
    35 / 45 / 65 / 60 ($30.00 elsewhere), DA SPP $50.00, no DA award.

    Dispatch per quarter: SPP 35 < 40: 0 MW; 45: 5 MW; 65: 10 MW; 60 (= the point's price): 10 MW
    -> 0 / 1.25 / 2.5 / 2.5 MWh. Metered as dispatched, RTEIAMT = (-1) x RTSPP x (RTMG - 0):
    0.00 ; -45 x 1.25 = -56.25 ; -65 x 2.5 = -162.50 ; -60 x 2.5 = -150.00 ; total -368.75.
    """
    from kwhub.plugins.markets.ercot.sim import ErcotSim

    hour = 15 * 4  # quarter index of 15:00 on an ordinary day
    rt = {hour: D("35.00"), hour + 1: D("45.00"), hour + 2: D("65.00"), hour + 3: D("60.00")}

    def prices(node: str, day: date, market: str) -> list[D]:
        n = 24 if market == "DA" else 96
        return [D("50.00") if market == "DA" else rt.get(i, D("30.00")) for i in range(n)]

    dispatched = {hour + 1: D("1.25"), hour + 2: D("2.5"), hour + 3: D("2.5")}
    sim = ErcotSim(tz=TZ, prices=prices, meter=lambda r, d: [dispatched.get(i, D(0)) for i in range(96)]).start()
    try:
        cfg = _cfg(tmp_path, sim.url)
        adapter = service.market_adapter(cfg, "ERCOT")
        start = datetime.fromtimestamp(SPAN.start_epoch + 15 * 3600, tz=UTC)
        bid = Bid(bid_id="RN1", iso="ERCOT", market="RT", resource="RN1", trading_date=DAY,
                  curves=(OfferCurve(start=start, end=start + timedelta(hours=1),
                                     points=(CurvePoint(mw=D("5.0"), price=D("40.00")),
                                             CurvePoint(mw=D("10.0"), price=D("60.00")))),))
        sub = adapter.submit([bid])
        assert adapter.poll_status(sub).status == SubmissionStatus.ACCEPTED
        assert adapter.fetch_awards(DAY, "DA") == []  # nothing offered in the DAM
        got = adapter.fetch_awards(DAY, "RT")
        # (a three-part offer's award carries no SPP; ERCOT sends it for energy-only offers)
        assert [(a.market, a.start, a.end - a.start, a.mwh) for a in got] == [
            ("RT", start + timedelta(minutes=15 * k), timedelta(minutes=15), D(m))
            for k, m in enumerate(["0", "1.25", "2.5", "2.5"])]
        assert [a.label for a in got] == [f"2026-10-15 HE16.{k}" for k in range(1, 5)]
        statements = {s.market: s for s in adapter.fetch_statements(DAY)}
        assert statements["DA"].total() == D("0.00")
        rteiamt = [ln for ln in statements["RT"].lines if ln.code == "RTEIAMT" and start <= ln.start
                   and ln.start < start + timedelta(hours=1)]
        assert [ln.amount for ln in sorted(rteiamt, key=lambda ln: ln.start)] == \
            [D("0.00"), D("-56.25"), D("-162.50"), D("-150.00")]
        assert statements["RT"].total() == D("-368.75")  # every other quarter meters 0 against no award
    finally:
        sim.stop()


@pytest.mark.filterwarnings("ignore")
def test_any_rt_offer_the_builder_emits_passes_the_rt_rules_and_every_quarters_surplus():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from kwhub.core.markets.optimizer import optimize_dispatch
    from kwhub.core.markets.rt_offers import build_rt_offers
    from kwhub.core.markets.surplus import GenUnit, ReserveRule, compute_surplus

    @settings(max_examples=25, deadline=None)
    @given(st.lists(st.floats(0.0, 120.0, allow_nan=False), min_size=96, max_size=96),
           st.lists(st.sampled_from([0.0, 0.5, 1.0]), min_size=96, max_size=96),
           st.floats(1.0, 400.0, allow_nan=False))
    def check(load, avail, gas):  # noqa: ANN001, ANN202
        units = [GenUnit(id="a", capacity_mw=60, heat_rate_mmbtu_per_mwh=9.0),
                 GenUnit(id="b", capacity_mw=40, heat_rate_mmbtu_per_mwh=11.0, vom_per_mwh=3.0)]
        s = compute_surplus(units, np.array([np.ones(96), avail]), np.zeros(96), np.array(load),
                            ReserveRule(mode="largest_unit"), interval_minutes=15)
        plan = optimize_dispatch(units, s, np.full(96, 45.0), np.full(96, gas), import_limit_mw=200.0,
                                 interval_minutes=15)
        built = build_rt_offers(DAY, TZ, "ERCOT", "RN1", plan, s, units, np.full(96, gas), ERCOT_RT, bid_id="RN1")
        for bid in built.bids:
            assert check_bid(bid, ERCOT_RT, TZ) == []
            for c in bid.curves:
                q = int((c.start.timestamp() - SPAN.start_epoch) // 900)
                assert float(c.max_mw) <= s.surplus_mw[q:q + 4].min() + 1e-6  # builder rounds float noise at 1e-6
                assert c.points[-1].price <= D("2000.00")

    check()


def test_guardrails_read_float_noise_as_the_builder_rounds_it():
    # 0.7 + 0.1 in floats is 0.7999999999999999: the builder offers 0.8 MW (it rounds noise at 1e-6
    # before flooring to 0.1 MW), and the guardrail must not refuse its own builder's curve; 0.9 is refused
    from kwhub.core.markets.bid_builder import GuardrailError, check_guardrails
    from kwhub.core.markets.hour_labels import DayGrid
    from kwhub.core.markets.surplus import Surplus

    surplus_mw = 0.7 + 0.1
    assert surplus_mw < 0.8
    z = np.zeros(24)
    s = Surplus(np.zeros((0, 24)), z, z, z, z, np.full(24, surplus_mw))
    grid = DayGrid(DAY, TZ, 60)
    start = datetime.fromtimestamp(int(grid.starts[0]), tz=UTC)

    def bid(mw: str) -> Bid:
        return Bid(bid_id="RN1", iso="ERCOT", market="DA", resource="RN1", trading_date=DAY,
                   curves=(OfferCurve(start=start, end=start + timedelta(hours=1),
                                      points=(CurvePoint(mw=D(mw), price=D("30.00")),)),))

    check_guardrails(bid("0.8"), s, grid)
    with pytest.raises(GuardrailError, match="offers 0.9 MW"):
        check_guardrails(bid("0.9"), s, grid)
