"""Market revenue credited to tenant invoices (``market_revenue_credit``), hand-computed.

The period is the ``market-credit`` example of docs/configuration.md: October 2026, hall A
60 kWh and hall B 40 kWh per quarter-hour, turbine gt1 80 kWh and the grid 20 kWh, pro-rata
allocation; ERCOT statements of October 5 and 6 stored as the ISO sent them (negative =
paid to the campus). Every expected figure is worked out in the comments (Decimal).
Runs on SQLite and PostgreSQL (``db`` fixture).
"""

from __future__ import annotations

import hashlib
import tomllib
from datetime import UTC, date, datetime
from decimal import Decimal as D

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kwhub.core.campus import Contract
from kwhub.core.markets.models import Statement, StatementLine
from kwhub.core.pricing import PricingContext, PricingError, period_starts
from kwhub.core.pricing.lines import build_components, price_contract
from kwhub.core.pricing.market_credit import MarketRevenue, MarketRevenueCredit, RevenueStatement
from kwhub.core.timeline import billing_period
from kwhub.hub.config import parse_config
from kwhub.hub.markets import store
from kwhub.hub.markets.credit import explain_credit_line, period_market_revenue, render_credit_text
from kwhub.hub.settle.owners import period_owner_statements
from kwhub.hub.settle.service import list_invoices, settle, stale_flags
from tests.fixtures.settlement import write_period
from tests.test_docs_configuration import doc_examples

DOC_NAME = "market-credit"
LOADS = {"a.load": 60.0, "b.load": 40.0, "gt1.net": 80.0, "grid.in": 20.0}


def _cfg(tmp_path):  # noqa: ANN001, ANN202
    return parse_config(tomllib.loads(doc_examples()[DOC_NAME]), "docs example market-credit", tmp_path)


def _utc(day: int, hour: int, minute: int = 0) -> datetime:
    # 15:00 Central daylight time = 20:00 UTC in October
    return datetime(2026, 10, day, hour, minute, tzinfo=UTC)


def _statement(sid: str, day: int, kind: str, da: str, rt: str) -> Statement:
    return Statement(iso="ERCOT", operating_day=date(2026, 10, day), kind=kind, statement_id=sid, lines=(
        StatementLine(code="DAESAMT", resource="GT1_RN", start=_utc(day, 20), minutes=60, amount=D(da), label="HE16"),
        StatementLine(code="RTEIAMT", resource="GT1_RN", start=_utc(day, 20), minutes=15, amount=D(rt),
                      label="HE16.1"),
    ))


def _save(db, st: Statement) -> None:  # noqa: ANN001
    store.save_statement(db, st, hashlib.sha256(st.model_dump_json().encode()).hexdigest())


def _credit_lines(inv):  # noqa: ANN001, ANN202
    return [(ln.description, ln.quantity, ln.unit, ln.unit_price, ln.amount)
            for ln in inv.lines if ln.charge_type == "market_credit"]


def _signed(inv) -> D:  # noqa: ANN001
    return -inv.total if inv.is_credit else inv.total


def test_the_page_quotes_the_figures():
    text = " ".join((doc_examples.__globals__["DOC"]).read_text().split())
    for quoted in ("1,220.87", "305.21", "244.17", "671.49", "jv 402.89, op 268.60", "317.71", "254.17"):
        assert quoted in text


def test_two_tenants_share_and_allocation_then_a_resettlement(db, tmp_path):
    cfg = _cfg(tmp_path)
    write_period(db, "2026-10", LOADS)
    _save(db, _statement("ERCOT-1005-I", 5, "initial", "-800.03", "-33.34"))
    _save(db, _statement("ERCOT-1006-I", 6, "initial", "-400.00", "12.50"))
    # revenue (sign flipped once) = 800.03 + 33.34 + 400.00 - 12.50 = 1,220.87
    mr = period_market_revenue(db, cfg, "2026-10")
    assert [(s.statement_id, s.version, dict(s.revenue)) for s in mr.statements] == [
        ("ERCOT-1005-I", 1, {"GT1_RN": D("833.37")}), ("ERCOT-1006-I", 1, {"GT1_RN": D("387.50")})]

    out = {o.contract_id: o for o in settle(db, cfg.campus, "2026-10", options=cfg.settlement_options())}
    assert {o.status for o in out.values()} == {"issued"}, {k: o.error or o.held_reasons for k, o in out.items()}
    a, b = out["ppa-a"].invoice, out["ppa-b"].invoice
    # hall A: 0.25 x 1,220.87 = 305.2175 -> toward zero 305.21
    assert _credit_lines(a) == [("Export revenue credit ERCOT gt1", D("1.000"), "each", D("-305.210000"),
                                 D("-305.21"))]
    # hall B: turbine energy allocated 32 x 2976 = 95,232 of (48 + 32) x 2976 = 238,080 kWh -> 0.4;
    # 0.5 x 0.4 = 0.2 x 1,220.87 = 244.174 -> 244.17
    assert _credit_lines(b) == [("Export revenue credit ERCOT gt1", D("1.000"), "each", D("-244.170000"),
                                 D("-244.17"))]
    dets = next(ln for ln in b.lines if ln.charge_type == "market_credit").determinants
    assert dets["statements"] == "ERCOT-1005-I@v1,ERCOT-1006-I@v1"
    assert dets["statement_revenue"] == "ERCOT-1005-I@v1=833.37,ERCOT-1006-I@v1=387.50"
    assert (dets["market_revenue"], dets["tenant_kwh"], dets["allocated_kwh"], dets["credit_fraction"],
            dets["exact_credit"], dets["credit"]) == ("1220.87", "95232.0", "238080.0", "0.2", "244.174", "244.17")
    # hall A's whole invoice: gt1 48 x 2976 = 142.848 MWh x 60 = 8,570.88; grid 12 x 2976 = 35.712 MWh x 50
    # = 1,785.60; credit -305.21 -> 10,051.27
    assert a.total == D("10051.27")

    owners = period_owner_statements(db, cfg, "2026-10")
    market = {p: [(ln.kind, ln.amount) for ln in st.lines if ln.kind.startswith("market")] for p, st in owners.items()}
    # revenue 1,220.87 split 60/40: 732.522 / 488.348 -> the spare cent to the larger remainder (op): 732.52 / 488.35
    # credits -549.38 split: -329.628 / -219.752 -> toward zero -329.62 / -219.75, the spare cent to jv: -329.63
    assert market == {"jv": [("market_revenue", D("732.52")), ("market_credit", D("-329.63"))],
                      "op": [("market_revenue", D("488.35")), ("market_credit", D("-219.75"))]}
    kept = sum((amt for lines in market.values() for _, amt in lines), D(0))
    assert kept == D("671.49")  # jv 402.89 + op 268.60
    assert D("305.21") + D("244.17") + kept == D("1220.87")

    assert stale_flags(db, [a.run_id, b.run_id]) == {a.run_id: False, b.run_id: False}
    # resettlement of October 6: DAESAMT pays 450.00 instead of 400.00 -> revenue 1,270.87
    _save(db, _statement("ERCOT-1006-F", 6, "resettlement", "-450.00", "12.50"))
    assert stale_flags(db, [a.run_id, b.run_id]) == {a.run_id: True, b.run_id: True}  # the credits rest on v1
    final = {o.contract_id: o for o in settle(db, cfg.campus, "2026-10", version="final",
                                              options=cfg.settlement_options())}
    assert {o.status for o in final.values()} == {"issued"}, {k: o.error for k, o in final.items()}
    fa, fb = final["ppa-a"].invoice, final["ppa-b"].invoice
    # hall A: 0.25 x 1,270.87 = 317.7175 -> 317.71; the credit grows by 12.50: a credit note of 12.50
    # hall B: 0.2 x 1,270.87 = 254.174 -> 254.17; a credit note of 10.00
    assert (fa.kind, fa.total, fb.kind, fb.total) == ("credit_note", D("12.50"), "credit_note", D("10.00"))
    assert [r.number for r in fa.references] == [a.number]
    # original + correction == what a fresh run on the restated statements bills: 10,051.27 - 12.50
    docs_a = list_invoices(db, contract_id="ppa-a")
    assert sum((_signed(d) for d in docs_a), D(0)) == D("10038.77")
    # hall B fresh: 95.232 MWh x 60 = 5,713.92 + 23.808 MWh x 50 = 1,190.40 - 254.17 = 6,650.15
    assert sum((_signed(d) for d in list_invoices(db, contract_id="ppa-b")), D(0)) == D("6650.15")

    owners = period_owner_statements(db, cfg, "2026-10")
    kept = sum((ln.amount for st in owners.values() for ln in st.lines if ln.kind.startswith("market")), D(0))
    # 1,270.87 - 317.71 - 254.17 = 698.99
    assert kept == D("698.99")


def test_explain_walks_a_credit_line_back_to_statement_intervals(db, tmp_path):
    cfg = _cfg(tmp_path)
    write_period(db, "2026-10", LOADS)
    _save(db, _statement("ERCOT-1005-I", 5, "initial", "-800.03", "-33.34"))
    _save(db, _statement("ERCOT-1006-I", 6, "initial", "-400.00", "12.50"))
    out = {o.contract_id: o for o in settle(db, cfg.campus, "2026-10", options=cfg.settlement_options())}
    inv = out["ppa-a"].invoice
    line = next(ln for ln in inv.lines if ln.charge_type == "market_credit")
    _save(db, _statement("ERCOT-1006-F", 6, "resettlement", "-450.00", "12.50"))  # arrives after the invoice
    exp = explain_credit_line(db, cfg, line, "2026-10")
    assert exp["matches"] and exp["market_revenue"] == "1220.87"
    assert [(s["statement"], s["version"], s["revenue"], s["superseded_by"]) for s in exp["statements"]] == [
        ("ERCOT-1005-I", 1, "833.37", ""), ("ERCOT-1006-I", 1, "387.50", "ERCOT-1006-F")]
    codes = {(s["statement"], c["code"]): [(iv["key"], iv["iso_amount"], iv["revenue"]) for iv in c["intervals"]]
             for s in exp["statements"] for c in s["codes"]}
    assert codes[("ERCOT-1006-I", "RTEIAMT")] == [("2026-10-06:RTEIAMT:GT1_RN:HE16.1", "12.50", "-12.50")]
    assert codes[("ERCOT-1005-I", "DAESAMT")] == [("2026-10-05:DAESAMT:GT1_RN:HE16", "-800.03", "800.03")]
    text = render_credit_text(exp)
    assert "statement ERCOT-1006-I v1 (initial, ALL) of 2026-10-06" in text and "superseded by ERCOT-1006-F" in text
    walk = explain_credit_line(db, cfg, line, "2026-10", interval="2026-10-05:RTEIAMT:GT1_RN:HE16.1")["walk"]
    # the interval walks on through `kwhub market explain`: 80 kWh metered in 15:00-15:15 CDT
    assert (walk["code"], walk["utc_start"], walk["metered_mwh"]) == ("RTEIAMT", "2026-10-05T20:00:00+00:00", "0.08")
    assert [ln["revenue"] for ln in walk["statement_lines"]] == ["33.34"]


def test_a_credit_without_markets_configured_is_an_error_naming_the_fix(db, tmp_path):
    text = doc_examples()[DOC_NAME].split("[[adapters]]")[0] + "[settlement]" + \
        doc_examples()[DOC_NAME].split("[settlement]")[1]
    cfg = parse_config(tomllib.loads(text), "t", tmp_path)
    write_period(db, "2026-10", LOADS)
    out = {o.contract_id: o for o in settle(db, cfg.campus, "2026-10", options=cfg.settlement_options())}
    assert "no [[markets.resources]] are configured" in out["ppa-a"].error


# --------------------------------------------------------------------------- the component alone


def _ctx(revenue: dict[str, str], *, total: float = 0.0, own: float = 0.0, places: int = 2) -> PricingContext:
    period = billing_period("2026-10", "America/Chicago")
    starts = period_starts(period, 60)
    n = len(starts)
    contract = Contract(id="c", seller="op", buyer="t", timezone="America/Chicago", precision=places)
    mr = MarketRevenue(period="2026-10", statements=(RevenueStatement(
        iso="ERCOT", statement_id="S1", kind="initial", market="ALL", operating_day=date(2026, 10, 5), version=1,
        received_at="", revenue={r: D(v) for r, v in revenue.items()}),),
        assets={("ERCOT", "R1"): "gt1", ("ERCOT", "R2"): "pv"})
    energy = np.full(n, own / n)
    return PricingContext(contract=contract, period=period, interval_minutes=60, starts=starts, energy_kwh=energy,
                          energy_by_source={"gt1": energy}, market_revenue=mr,
                          allocated_kwh_total={"gt1": np.full(n, total / n)} if total else {},
                          allocated_starts=starts if total else None)


def _credit(ctx: PricingContext, **cfg):  # noqa: ANN003, ANN202
    return [(c.source_asset, c.amount, c.determinants.get("exact_credit"))
            for c in MarketRevenueCredit("credit", {"iso": "ERCOT", **cfg}).compute(ctx)]


def test_credits_round_toward_zero_one_line_per_asset():
    ctx = _ctx({"R1": "100.00", "R2": "10.01"})
    # thirds: 33.333... -> 33.33 and 3.3366... -> 3.33 (never up: the owners keep the remainders)
    assert _credit(ctx, share="0.333333333") == [("gt1", D("-33.33"), "33.33333330000"),
                                                  ("pv", D("-3.33"), "3.33666666333")]
    assert _credit(ctx, share="1", resources=["R2"]) == [("pv", D("-10.01"), "10.01")]
    assert _credit(ctx, share="0.5", assets=["gt1"]) == [("gt1", D("-50.00"), "50.000")]


def test_negative_revenue_stays_with_the_owners_unless_shared():
    ctx = _ctx({"R1": "-40.05"})
    assert _credit(ctx, share="0.5") == []
    # -40.05 x 0.5 = -20.025 -> toward zero -20.02: the buyer pays 20.02
    assert _credit(ctx, share="0.5", negative_revenue="share") == [("gt1", D("20.02"), "-20.025")]


def test_allocation_basis_is_pro_rata_to_allocated_energy():
    ctx = _ctx({"R1": "999.99"}, total=3000.0, own=1000.0)
    # 0.9 x 1000 / 3000 = 0.3 x 999.99 = 299.997 -> 299.99
    assert _credit(ctx, basis="allocation", share="0.9") == [("gt1", D("-299.99"), "299.997")]
    # a third of 3.00 is exactly 1.00 (the division comes last, so nothing is lost to 0.333...)
    assert _credit(_ctx({"R1": "3.00"}, total=3000.0, own=1000.0), basis="allocation") == [("gt1", D("-1.00"),
                                                                                             "1.00")]
    with pytest.raises(PricingError, match="must bill allocated energy"):
        MarketRevenueCredit("credit", {"iso": "ERCOT", "basis": "allocation"}).compute(_ctx({"R1": "1"}))


def test_configuration_errors_name_the_field():
    with pytest.raises(PricingError, match="share: .*needs the fixed share"):
        MarketRevenueCredit("credit", {"iso": "ERCOT"})
    with pytest.raises(PricingError, match="resources or assets, not both"):
        MarketRevenueCredit("credit", {"iso": "ERCOT", "share": "0.1", "resources": ["R1"], "assets": ["gt1"]})
    with pytest.raises(PricingError, match=r"unknown ERCOT resource\(s\) NOPE \(known: R1, R2\)"):
        MarketRevenueCredit("credit", {"iso": "ERCOT", "share": "0.1", "resources": ["NOPE"]}).compute(
            _ctx({"R1": "1"}))
    ctx = _ctx({"R1": "1"})
    ctx.market_revenue = None
    contract = Contract.model_validate({"id": "c", "seller": "op", "buyer": "t", "components": [
        {"kind": "market_revenue_credit", "iso": "ERCOT", "share": "0.1"}]})
    with pytest.raises(PricingError, match="component 'market_revenue_credit'.*no market revenue is loaded"):
        price_contract(build_components(contract), ctx)


def test_kwhub_explain_on_a_credit_line(tmp_path, monkeypatch):
    import json

    from typer.testing import CliRunner

    from kwhub.hub.cli.main import app
    from kwhub.hub.store import Database

    (tmp_path / "kwhub.toml").write_text(doc_examples()[DOC_NAME])
    db = Database.open(work_dir=tmp_path)
    write_period(db, "2026-10", LOADS)
    _save(db, _statement("ERCOT-1005-I", 5, "initial", "-800.03", "-33.34"))
    db.close()
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    res = runner.invoke(app, ["settle", "--period", "2026-10", "--format", "json"])
    assert res.exit_code == 0, res.output
    runs = {r["contract"]: r for r in json.loads(res.output)}
    number = runs["ppa-a"]["invoice"]["number"]
    # hall A: 0.25 x 833.37 = 208.3425 -> 208.34, line 3 (after energy and grid)
    res = runner.invoke(app, ["explain", number, "--line", "3"])
    assert res.exit_code == 0, res.output
    assert "1 x -208.34" not in res.output and "amount -208.34" in res.output
    assert "statement ERCOT-1005-I v1 (initial, ALL) of 2026-10-05" in res.output
    assert "2026-10-05:DAESAMT:GT1_RN:HE16  ISO -800.03 -> revenue 800.03" in res.output
    res = runner.invoke(app, ["explain", number, "--line", "3", "--format", "json",
                              "--market-interval", "2026-10-05:DAESAMT:GT1_RN:HE16"])
    assert res.exit_code == 0, res.output
    walk = json.loads(res.output)["market"]["walk"]
    assert (walk["code"], walk["utc_start"], walk["statement_lines"][0]["revenue"]) == \
        ("DAESAMT", "2026-10-05T20:00:00+00:00", "800.03")
    res = runner.invoke(app, ["explain", number, "--line", "1", "--market-interval", "2026-10-05:DAESAMT:GT1_RN:HE16"])
    assert res.exit_code != 0 and "--market-interval needs --line N of one market revenue credit line" in \
        str(res.exception)


def test_api_explain_serves_the_walk_back(sqlite_db, tmp_path):
    from fastapi.testclient import TestClient

    from kwhub.hub.api.app import create_app
    from kwhub.hub.api.keys import CACHE, create_key
    from kwhub.hub.app import Hub
    from kwhub.hub.config import load_config

    (tmp_path / "kwhub.toml").write_text(doc_examples()[DOC_NAME])
    write_period(sqlite_db, "2026-10", LOADS)
    _save(sqlite_db, _statement("ERCOT-1005-I", 5, "initial", "-800.03", "-33.34"))
    hub = Hub.from_config(load_config(tmp_path / "kwhub.toml"), database=sqlite_db)
    out = {o.contract_id: o for o in settle(sqlite_db, hub.campus, "2026-10", options=hub.settlement_options())}
    inv = out["ppa-a"].invoice
    CACHE.forget()
    token = create_key(sqlite_db, role="operator", party="", days=30, max_days=366, actor="test").token
    client = TestClient(create_app(hub, access_log=False))
    res = client.get(f"/api/v1/invoices/{inv.id}/explain?line=3", headers={"Authorization": f"Bearer {token}"})
    assert res.status_code == 200, res.text
    (line,) = res.json()["lines"]
    # 0.25 x 833.37 = 208.3425 -> 208.34
    assert line["line"]["amount"] == "-208.34"
    assert [(s["statement"], s["version"], s["revenue"]) for s in line["market"]["statements"]] == \
        [("ERCOT-1005-I", 1, "833.37")]


@settings(max_examples=60, deadline=None)
@given(cents=st.integers(min_value=1, max_value=10**9),
       parts=st.lists(st.integers(min_value=1, max_value=1000), min_size=1, max_size=6))
def test_remainder_rule_credits_never_exceed_shares_and_owners_keep_the_rest(cents, parts):
    revenue = D(cents).scaleb(-2)
    total = sum(parts) + 1  # the tenants' shares sum below 1
    shares = [D(p) / D(total) for p in parts]
    ctx = _ctx({"R1": str(revenue)})
    credits = []
    for share in shares:
        charges = MarketRevenueCredit("credit", {"iso": "ERCOT", "share": share, "resources": ["R1"]}).compute(ctx)
        credit = -sum((c.amount for c in charges), D(0))
        exact = revenue * share
        assert exact - D("0.01") < credit <= exact  # toward zero, to the cent
        credits.append(credit)
    kept = revenue - sum(credits, D(0))
    assert kept >= 0 and kept.as_tuple().exponent >= -2
    assert sum(credits, D(0)) + kept == revenue


def test_an_unknown_iso_is_refused_when_the_component_is_built():
    # MISO has no market rules unless a plugin registers them (kwhub.core.markets.rules)
    with pytest.raises(PricingError, match=r"iso: .*no market rules for ISO 'MISO' \(known: ERCOT, CAISO, PJM\)"):
        MarketRevenueCredit("credit", {"iso": "MISO", "share": "0.1"})


def test_an_amendment_credits_each_part_with_the_revenue_of_its_own_days(db, tmp_path):
    text = doc_examples()[DOC_NAME]
    amend_a = """
[[contracts.amendments]]
id = "more-credit"
effective = "2026-10-16"

[[contracts.amendments.components]]
id = "market_revenue_credit"
share = "0.30"
"""
    amend_b = amend_a.replace('share = "0.30"', 'share = "0.6"')
    head, tail = text.split('[[contracts]]\nid = "ppa-b"')
    text = head + amend_a + '\n[[contracts]]\nid = "ppa-b"' + tail + amend_b
    cfg = parse_config(tomllib.loads(text), "t", tmp_path)
    write_period(db, "2026-10", LOADS)
    _save(db, _statement("ERCOT-1005-I", 5, "initial", "-800.03", "-33.34"))
    _save(db, _statement("ERCOT-1006-I", 6, "initial", "-400.00", "12.50"))
    _save(db, _statement("ERCOT-1020-I", 20, "initial", "-100.01", "0.00"))
    out = {o.contract_id: o for o in settle(db, cfg.campus, "2026-10", options=cfg.settlement_options())}
    assert {o.status for o in out.values()} == {"issued"}, {k: o.error or o.held_reasons for k, o in out.items()}
    amounts = {k: [ln.amount for ln in o.invoice.lines if ln.charge_type == "market_credit"] for k, o in out.items()}
    # Oct 1-15 (v1): the statements of Oct 5 and 6, revenue 1,220.87; Oct 16-31 (v2): Oct 20, revenue 100.01
    # hall A: 0.25 x 1,220.87 = 305.2175 -> 305.21; 0.30 x 100.01 = 30.003 -> 30.00
    # hall B: turbine share 32 / 80 = 0.4 in each part; 0.5 x 0.4 x 1,220.87 = 244.174 -> 244.17;
    #         0.6 x 0.4 x 100.01 = 24.0024 -> 24.00
    assert amounts == {"ppa-a": [D("-305.21"), D("-30.00")], "ppa-b": [D("-244.17"), D("-24.00")]}
