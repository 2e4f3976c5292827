"""Contract amendments: versions of the terms, a period split between two of them, edits of
invoiced terms held by the review gate, ``kwhub contracts history`` and ``explain``.

Amounts are computed by hand here with Decimal (ROUND_HALF_UP, as the contracts round),
never with kwhub's code.
"""

from __future__ import annotations

import json
import tomllib
from datetime import date
from decimal import ROUND_HALF_UP
from decimal import Decimal as D
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from kwhub.core.campus import AmendedComponent, Amendment, ComponentSpec
from kwhub.core.contract_versions import contract_versions, versions_in_period
from kwhub.core.explain import explain_line, render_text
from kwhub.core.timeline import billing_period
from kwhub.hub.cli.main import app
from kwhub.hub.config import ConfigError, parse_config
from kwhub.hub.settle.service import get_run, run_allocation, run_inputs, settle
from kwhub.hub.store import Database
from tests.fixtures.settlement import NY, set_value, settle_campus, write_period
from tests.test_docs_configuration import doc_examples

ISSUE = date(2026, 11, 3)
CENT, PRICE = D("0.01"), D("0.000001")


def _r(x: D, q: D = CENT) -> D:
    return x.quantize(q, rounding=ROUND_HALF_UP)


def _amended_campus():  # noqa: ANN202
    """ppa-a (50 $/MWh, 10 $/kW-month, 60 % of a 1,000 $ fee) amended from October 16:
    62 $/MWh, 12 $/kW-month, a 1,300 $ fee."""
    campus = settle_campus()
    k = campus.contracts[0]
    campus.contracts[0] = k.model_copy(update={"amendments": [Amendment(
        effective=date(2026, 10, 16), id="reset", note="price reset", components=[
            AmendedComponent(id="fixed_energy", price_per_mwh="62"),
            AmendedComponent(id="demand", price_per_kw_month="12"),
            AmendedComponent(id="fixed_fee", total_amount="1300"),
        ])]})
    return campus


def test_amendment_in_the_middle_of_october_is_billed_in_two_parts(sqlite_db):
    campus = _amended_campus()
    write_period(sqlite_db, "2026-10")  # a.load 100 kWh per quarter-hour, peak 400 kW
    out = {o.contract_id: o for o in settle(sqlite_db, campus, "2026-10", issue_date=ISSUE)}
    run = out["ppa-a"]
    assert run.status == "issued", run.held_reasons
    inv = run.invoice
    # v1, Oct 1..15 (15 of 31 days): 15 x 96 = 1,440 quarter-hours x 100 kWh = 144.000 MWh
    e1 = D(1440) * D(100) / D(1000) * D(50)  # 7,200.00
    d1_price = _r(D(10) * D(15) / D(31), PRICE)  # 4.838710 $/kW for half a month
    d1 = _r(D(400) * d1_price)  # 1,935.48
    fee1_total = _r(D(1000) * D(15) / D(31))  # 483.87 -> 48,387 cents split 60/40:
    fee1 = D(29032) * CENT  # 29,032.2 and 19,354.8 floored leave 1 cent, to the larger remainder (tenant_b)
    # v2, Oct 16..31 (16 of 31 days): 16 x 96 = 1,536 quarter-hours x 100 kWh = 153.600 MWh
    e2 = D(1536) * D(100) / D(1000) * D(62)  # 9,523.20
    d2_price = _r(D(12) * D(16) / D(31), PRICE)  # 6.193548
    d2 = _r(D(400) * d2_price)  # 2,477.42
    fee2_total = _r(D(1300) * D(16) / D(31))  # 670.97 -> 67,097 cents: 40,258.2 and 26,838.8 floored + 1 to b
    fee2 = D(40258) * CENT
    assert (d1_price, d1, fee1_total, d2_price, d2, fee2_total) == (
        D("4.838710"), D("1935.48"), D("483.87"), D("6.193548"), D("2477.42"), D("670.97"))
    assert [(ln.quantity, ln.unit, ln.unit_price, ln.amount) for ln in inv.lines] == [
        (D("144.000"), "MWh", D("50"), e1),
        (D("400.000"), "kW", d1_price, d1),
        (D("1.000"), "month", fee1, fee1),
        (D("153.600"), "MWh", D("62"), e2),
        (D("400.000"), "kW", d2_price, d2),
        (D("1.000"), "month", fee2, fee2),
    ]
    assert inv.total == D("21829.00") == e1 + d1 + fee1 + e2 + d2 + fee2
    # each line carries its days and its version
    assert [(ln.period_start.day, ln.period_end.day) for ln in inv.lines] == [(1, 15)] * 3 + [(16, 31)] * 3
    assert [ln.determinants["terms_version"] for ln in inv.lines] == ["v1"] * 3 + ["v2 (reset)"] * 3
    assert inv.lines[0].description == "Energy, terms v1, 2026-10-01 to 2026-10-15"
    assert inv.lines[4].determinants["period_share"] == str(D(16) / D(31))
    terms = get_run(sqlite_db, run.run_id)["statement_json"]["terms"]
    assert [(v["name"], v["first_day"], v["last_day"], v["intervals"]) for v in terms["versions"]] == [
        ("v1", "2026-10-01", "2026-10-15", 1440), ("v2 (reset)", "2026-10-16", "2026-10-31", 1536)]
    # the other contract has no amendment: one version, lines as before
    assert [ln.description for ln in out["ppa-b"].invoice.lines] == ["Energy (gt1)", "Energy (pv)"]


def test_version_boundaries_cut_the_interval_frame():
    k = _amended_campus().contracts[0]
    oct_ = billing_period("2026-10", NY)
    starts = oct_.span.start_epoch + 900 * np.arange(2976)
    parts = versions_in_period(k, oct_, starts)
    assert [(p.version.name, p.first, p.stop) for p in parts] == [("v1", 0, 1440), ("v2 (reset)", 1440, 2976)]
    assert [p.version.name for p in versions_in_period(k, billing_period("2026-09", NY))] == ["v1"]
    assert [p.version.name for p in versions_in_period(k, billing_period("2026-11", NY))] == ["v2 (reset)"]
    v1, v2 = contract_versions(k)
    assert (v1.until, v2.effective, v2.until) == (date(2026, 10, 15), date(2026, 10, 16), None)
    assert v1.terms_hash != v2.terms_hash


def _edit_price(campus, price: str):  # noqa: ANN001, ANN202
    k = campus.contracts[0]
    comps = [ComponentSpec(kind="fixed_energy", price_per_mwh=price), *k.components[1:]]
    campus.contracts[0] = k.model_copy(update={"components": comps})
    return campus


def test_editing_the_terms_of_an_invoiced_period_holds_the_next_run(sqlite_db):
    write_period(sqlite_db, "2026-10")
    first = settle(sqlite_db, settle_campus(), "2026-10", contracts=["ppa-a"], issue_date=ISSUE)[0]
    assert first.status == "issued"
    edited = _edit_price(settle_campus(), "55")
    final = settle(sqlite_db, edited, "2026-10", contracts=["ppa-a"], version="final", issue_date=ISSUE)[0]
    assert final.status == "held"
    reasons = [r for r in final.held_reasons if r.startswith("contract_terms:")]
    assert len(reasons) == 1, final.held_reasons
    assert f"terms changed since run {first.run_id} (issued)" in reasons[0]
    assert "components[fixed_energy].price_per_mwh 50 -> 55" in reasons[0]
    assert "write it as an amendment" in reasons[0]
    stored = json.loads(get_run(sqlite_db, final.run_id)["checks"])
    assert {c["check"]: c["passed"] for c in stored}["contract_terms"] is False
    # approved with a reason, the final bills the period under the new terms (+297.6 MWh x 5 = 1,488.00);
    # the next run compares with it, so the edit holds nothing more
    from kwhub.hub.settle.review import approve_runs

    done = approve_runs(sqlite_db, edited, [final.run_id], actor="alice", reason="price corrected per contract",
                        issue_date=ISSUE)[final.run_id]
    assert not done.error and done.invoice.kind == "adjustment" and done.invoice.total == D("1488.00")
    again = settle(sqlite_db, edited, "2026-10", contracts=["ppa-a"], version="true_up", issue_date=ISSUE)[0]
    assert again.status == "no_change" and {c.name: c.passed for c in again.checks}["contract_terms"] is True


def test_an_amendment_added_inside_an_invoiced_period_holds_its_correction(sqlite_db):
    write_period(sqlite_db, "2026-10")
    first = settle(sqlite_db, settle_campus(), "2026-10", contracts=["ppa-a"], issue_date=ISSUE)[0]
    assert first.status == "issued"
    final = settle(sqlite_db, _amended_campus(), "2026-10", contracts=["ppa-a"], version="final",
                   issue_date=ISSUE)[0]
    assert final.status == "held"
    reason = next(r for r in final.held_reasons if r.startswith("contract_terms:"))
    assert ("versions in force were v1 2026-10-01..2026-10-31, now v1 2026-10-01..2026-10-15, "
            "v2 (reset) 2026-10-16..2026-10-31") in reason
    assert "components[fixed_energy].price_per_mwh 50 -> 62" in reason


def test_editing_last_months_terms_holds_this_months_run_but_an_amendment_does_not(sqlite_db):
    write_period(sqlite_db, "2026-10")
    write_period(sqlite_db, "2026-11")
    oct_run = settle(sqlite_db, settle_campus(), "2026-10", contracts=["ppa-a"], issue_date=ISSUE)[0]
    assert oct_run.status == "issued"
    # the same change written as an amendment from November 1 leaves October's terms alone
    amended = settle_campus()
    amended.contracts[0] = amended.contracts[0].model_copy(update={"amendments": [
        Amendment(effective=date(2026, 11, 1), components=[AmendedComponent(id="fixed_energy", price_per_mwh="55")])]})
    dry = settle(sqlite_db, amended, "2026-11", contracts=["ppa-a"], dry_run=True)[0]
    assert {c.name: c.passed for c in dry.checks}["contract_terms"] is True
    assert dry.draft.lines[0].unit_price == D("55") and dry.draft.lines[0].determinants["terms_version"] == "v2"
    # edited in place, October's invoiced terms changed: November's run is held and says so
    nov = settle(sqlite_db, _edit_price(settle_campus(), "55"), "2026-11", contracts=["ppa-a"], issue_date=ISSUE)[0]
    assert nov.status == "held"
    reason = next(r for r in nov.held_reasons if r.startswith("contract_terms:"))
    assert f"terms of period 2026-10 changed since run {oct_run.run_id} (issued)" in reason


# --------------------------------------------------------------------------- configuration

CONFIG = """
[hub]
timezone = "America/New_York"

[[parties]]
id = "op"
name = "Operator"

[[parties]]
id = "t1"
name = "Tenant"

[[channels]]
id = "t1.load"
role = "tenant_load"
party = "t1"

[[contracts]]
id = "ppa"
seller = "op"
buyer = "t1"
start = "2026-01"

[[contracts.components]]
id = "energy"
kind = "fixed_energy"
price_per_mwh = "50"
"""


def _problems(text: str, registry) -> list[str]:  # noqa: ANN001
    with pytest.raises(ConfigError) as e:
        parse_config(tomllib.loads(CONFIG + text), "kwhub.toml", Path("."), registry)
    return e.value.problems


def test_a_valid_amendment_loads(registry):
    cfg = parse_config(tomllib.loads(CONFIG + """
[[contracts.amendments]]
effective = 2026-07-01
[[contracts.amendments.components]]
id = "energy"
escalation_pct_per_year = "2.5"
[[contracts.amendments.components]]
id = "fee"
kind = "fixed_fee"
total_amount = "500"
"""), "kwhub.toml", Path("."), registry)
    v1, v2 = contract_versions(cfg.campus.contracts[0])
    assert [s.kind for s in v2.contract.components] == ["fixed_energy", "fixed_fee"]
    assert v2.contract.components[0].settings() == {"price_per_mwh": "50", "escalation_pct_per_year": "2.5"}


@pytest.mark.parametrize(("text", "expected"), [
    ('[[contracts.amendments]]\neffective = "2026-09-01"\ntax_percent = "5"\n'
     '[[contracts.amendments]]\neffective = "2026-07-01"\ntax_percent = "6"\n',
     'contracts[0] (id="ppa").amendments[1] (effective=2026-07-01).effective: out of order'),
    ('[[contracts.amendments]]\neffective = "2026-07-01"\ntax_percent = "5"\n'
     '[[contracts.amendments]]\neffective = "2026-07-01"\ntax_percent = "6"\n',
     'contracts[0] (id="ppa").amendments[1] (effective=2026-07-01).effective: overlaps amendments[0]'),
    ('[[contracts.amendments]]\neffective = "2026-01-01"\ntax_percent = "5"\n',
     'contracts[0] (id="ppa").amendments[0] (effective=2026-01-01).effective: on or before the contract start'),
    ('[[contracts.amendments]]\neffective = "2026-07-01"\nprice = "5"\n',
     'contracts[0] (id="ppa").amendments[0].price: unknown key (not allowed here)'),
    ('[[contracts.amendments]]\neffective = "2026-07-32"\ntax_percent = "5"\n',
     'contracts[0] (id="ppa").amendments[0].effective: '),
    ('[[contracts.amendments]]\neffective = "2026-07-01"\n',
     'contracts[0] (id="ppa").amendments[0] (effective=2026-07-01): changes no terms'),
    ('[[contracts.amendments]]\neffective = "2026-07-01"\n[[contracts.amendments.components]]\nid = "enrgy"\n'
     'price_per_mwh = "60"\n',
     "amendments[0] (effective=2026-07-01).components[0].kind: 'enrgy' is no component in force"),
    ('[[contracts.amendments]]\neffective = "2026-07-01"\nremove_components = ["fee"]\n',
     "amendments[0] (effective=2026-07-01).remove_components: no component 'fee' in force"),
    ('[[contracts.amendments]]\neffective = "2026-07-01"\n[[contracts.amendments.components]]\nid = "energy"\n'
     'price_per_mwhh = "60"\n',
     'contracts[0] (id="ppa").amendments[0].components[0].price_per_mwhh: unknown key (not allowed here)'),
    ('[[contracts.amendments]]\neffective = "2026-07-01"\n[[contracts.amendments.components]]\nid = "energy"\n'
     'price_per_mwh = "sixty"\n',
     'contracts[0] (id="ppa").amendments[0].components[0].price_per_mwh: '),
])
def test_bad_amendments_are_refused_with_the_key_path(registry, text, expected):
    problems = _problems(text, registry)
    assert any(expected in p for p in problems), problems


def test_an_amendment_may_not_change_the_energy_billed(registry):
    problems = _problems('[[contracts.amendments]]\neffective = "2026-07-01"\n[[contracts.amendments.components]]\n'
                         'id = "energy2"\nkind = "fixed_energy"\nprice_per_mwh = "60"\n', registry)
    assert any('contracts[0] (id="ppa").amendments[0]:' in p and "energy" in p for p in problems), problems


# --------------------------------------------------------------------------- history and explain


def _doc_campus(tmp_path: Path, monkeypatch) -> CliRunner:  # noqa: ANN001
    (tmp_path / "kwhub.toml").write_text(doc_examples()["amended-price"])
    db = Database.open(work_dir=tmp_path)
    write_period(db, "2026-10", {"a.load": 100.0})
    db.close()
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def test_contracts_history_lists_the_versions(tmp_path, monkeypatch):
    runner = _doc_campus(tmp_path, monkeypatch)
    res = runner.invoke(app, ["contracts", "history", "ppa-a"])
    assert res.exit_code == 0, res.output
    text = res.output
    assert "Contract ppa-a (op -> tenant_a), time zone America/New_York, 2 versions" in text
    assert "v1: from the contract start 2026-01 to 2026-10-15, terms sha256 " in text
    assert "v2 (price-reset): from 2026-10-16 open-ended" in text and "Amendment No. 1" in text
    assert "components[energy].price_per_mwh 50 -> 62" in text and "components[om].total_amount 1000 -> 1300" in text
    res = runner.invoke(app, ["contracts", "history", "ppa-a", "--format", "json"])
    data = json.loads(res.output)
    assert [(v["name"], v["effective"], v["until"]) for v in data["versions"]] == [
        ("v1", None, "2026-10-15"), ("v2 (price-reset)", "2026-10-16", None)]
    assert data["versions"][1]["terms"]["components"][0] == {"id": "energy", "kind": "fixed_energy",
                                                             "price_per_mwh": "62"}
    assert len(data["versions"][1]["terms_hash"]) == 64 and data["versions"][0]["changes"] == []
    res = runner.invoke(app, ["contracts", "history", "ppa-a", "--period", "2026-10"])
    assert "In force in 2026-10: v1 2026-10-01 to 2026-10-15, v2 (price-reset) 2026-10-16 to 2026-10-31" in res.output
    res = runner.invoke(app, ["contracts", "history", "ppa-a", "--period", "2026-11", "--format", "json"])
    assert json.loads(res.output)["period"]["parts"] == [
        {"version": "v2 (price-reset)", "first_day": "2026-11-01", "last_day": "2026-11-30"}]
    res = runner.invoke(app, ["contracts", "history", "nope"])
    assert res.exit_code != 0 and "no contract 'nope'" in str(res.exception) and "(contracts: ppa-a)" in str(res.exception)


def test_explain_names_the_version_of_each_line(tmp_path, monkeypatch):
    runner = _doc_campus(tmp_path, monkeypatch)
    res = runner.invoke(app, ["settle", "--period", "2026-10"])
    assert res.exit_code == 0, res.output
    db = Database.open(work_dir=tmp_path)
    try:
        from kwhub.hub.settle.service import list_invoices

        inv = list_invoices(db)[0]
        run = get_run(db, inv.run_id)
        exps = [explain_line(inv, n, run, run_inputs(db, inv.run_id), run_allocation(db, inv.run_id))
                for n in (1, 3)]
    finally:
        db.close()
    assert exps[0]["terms"]["version"] == "v1" and exps[0]["terms"]["last_day"] == "2026-10-15"
    assert exps[1]["terms"]["version"] == "v2 (price-reset)" and exps[1]["terms"]["first_day"] == "2026-10-16"
    assert "Terms: contract version v2 (price-reset), in force 2026-10-16 to 2026-10-31" in render_text(exps[1])
    res = runner.invoke(app, ["explain", inv.number, "--line", "3"])
    assert res.exit_code == 0, res.output
    assert "Terms: contract version v2 (price-reset), in force 2026-10-16 to 2026-10-31" in res.output
    res = runner.invoke(app, ["explain", inv.number, "--line", "1", "--format", "json"])
    assert json.loads(res.output)["terms"]["version"] == "v1"


def test_a_correction_of_a_split_period_adjusts_the_part_that_changed(sqlite_db):
    campus = _amended_campus()
    write_period(sqlite_db, "2026-10")
    first = settle(sqlite_db, campus, "2026-10", contracts=["ppa-a"], issue_date=ISSUE)[0]
    assert first.status == "issued"
    oct20 = billing_period("2026-10", NY).span.start_epoch + (19 * 96 + 10) * 900
    set_value(sqlite_db, "a.load", oct20, 300.0)  # +200 kWh and a 1,200 kW peak on October 20, under v2
    final = settle(sqlite_db, campus, "2026-10", contracts=["ppa-a"], version="final", issue_date=ISSUE)[0]
    assert final.status == "issued", final.held_reasons
    adj = final.invoice
    # v2 energy: +0.200 MWh x 62 = 12.40; v2 demand: +800 kW x 6.193548 = 4,954.8384 -> 4,954.84
    # (round(1,200 x 6.193548) - 2,477.42 = 7,432.26 - 2,477.42 = 4,954.84: no rounding line)
    v2 = "terms v2 (reset), 2026-10-16 to 2026-10-31"
    assert [(ln.description, ln.quantity, ln.unit_price, ln.amount) for ln in adj.lines] == [
        (f"Energy, {v2} (adjustment)", D("0.200"), D("62"), D("12.40")),
        (f"Demand, {v2} (adjustment)", D("800.000"), D("6.193548"), D("4954.84")),
    ]
    assert adj.kind == "adjustment" and adj.total == D("4967.24")


def test_amounts_per_period_are_prorated_by_the_days_of_each_version():
    from kwhub.core.pricing.by_version import price_by_version
    from tests.fixtures.pricing import make_ctx, period

    per = period("2026-10")
    ctx = make_ctx(per, 250.0, contract_kw={
        "components": [
            {"kind": "capacity", "id": "cap", "contracted_kw": "1000", "price_per_kw_month": "5"},
            {"kind": "capacity", "id": "cap-days", "contracted_kw": "1000", "price_per_kw_month": "5",
             "proration": "days"},
            {"kind": "take_or_pay", "id": "top", "minimum_mwh": "1000", "price_per_mwh": "40"},
        ],
        "amendments": [{"effective": "2026-10-11", "components": [
            {"id": "cap", "price_per_kw_month": "6"}, {"id": "cap-days", "price_per_kw_month": "6"},
            {"id": "top", "price_per_mwh": "45"}]}],
    })
    parts = versions_in_period(ctx.contract, per, ctx.starts)
    charges, lines = price_by_version(parts, ctx)
    # v1, Oct 1..10 (10 of 31 days, 960 quarter-hours x 250 kWh = 240 MWh):
    cap1 = _r(D(5) * D(10) / D(31), PRICE)  # 1.612903, either way of prorating
    top1 = _r(D(1000) * D(10) / D(31) - D(240), D("0.001"))  # 322.580645... - 240 = 82.581 MWh short
    # v2, Oct 11..31 (21 days, 2,016 x 250 kWh = 504 MWh):
    cap2 = _r(D(6) * D(21) / D(31), PRICE)  # 4.064516
    top2 = _r(D(1000) * D(21) / D(31) - D(504), D("0.001"))  # 677.419354... - 504 = 173.419
    assert (cap1, top1, cap2, top2) == (D("1.612903"), D("82.581"), D("4.064516"), D("173.419"))
    assert [(ln.quantity, ln.unit_price, ln.amount) for ln in lines] == [
        (D("1000"), cap1, _r(1000 * cap1)), (D("1000"), cap1, _r(1000 * cap1)), (top1, D("40"), _r(top1 * 40)),
        (D("1000"), cap2, _r(1000 * cap2)), (D("1000"), cap2, _r(1000 * cap2)), (top2, D("45"), _r(top2 * 45)),
    ]
    assert sum(ln.amount for ln in lines) == D("22461.94")
    assert lines[0].determinants["period_share"] == str(D(10) / D(31))
    assert "period_share" not in lines[1].determinants  # proration = "days" follows the part's days itself
    assert lines[1].determinants["days"] == "10" and lines[4].determinants["days"] == "21"
    assert [c.mask for c in charges] == [None] * 6  # no energy charge: nothing to widen


def test_a_version_boundary_after_the_fall_back_day_counts_its_25_hours():
    k = _amended_campus().contracts[0]
    k = k.model_copy(update={"amendments": [k.amendments[0].model_copy(update={"effective": date(2026, 11, 2)})]})
    nov = billing_period("2026-11", NY)
    starts = np.arange(nov.span.start_epoch, nov.span.end_epoch, 900)
    parts = versions_in_period(k, nov, starts)
    # November 1, 2026 has 25 local hours in New York: 100 quarter-hours; the other 29 days 96 each
    assert len(starts) == 100 + 29 * 96
    assert [(p.first, p.stop) for p in parts] == [(0, 100), (100, 100 + 29 * 96)]
