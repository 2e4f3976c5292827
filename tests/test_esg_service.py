"""Emissions end to end on SQLite and PostgreSQL: settle, lines, certificates, reports, explain.

Campus (October 2026, 2,976 quarter-hours in New York time), per quarter-hour: tenant_a 60 kWh,
tenant_b 40 kWh; gt1 50 kWh burning 0.5 MMBtu (fuel meter); solar pv 20 kWh; grid 30 kWh.
Pro rata: tenant_a takes 60 % of every source, tenant_b 40 %. Factors: EPA Subpart C natural gas,
eGRID2024 RFCE 621.0 lb CO2e/MWh, an operator residual mix of 1,100 lb CO2e/MWh, AR5.
Every expectation below is computed by hand with Decimal.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal as D
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kwhub.core.certificates import CertificateError, ledger_problems
from kwhub.hub.config import load_config
from kwhub.hub.esg.ledger import bundles, claim_for, issue_period, transfer_by_allocation
from kwhub.hub.esg.reports import period_disclosure, write_disclosure
from kwhub.hub.settle.service import list_invoices, settle
from tests.fixtures.settlement import write_period

N = 2976
LB = D("0.45359237")
RFCE = D("621.0") * LB / 1000
RM = D("1100") * LB / 1000
NOW = datetime(2026, 11, 5, tzinfo=UTC)

TOML = """
[hub]
name = "esg test"
timezone = "America/New_York"
database = "{db}"

[[sites]]
id = "campus"
grid_region = "RFCE"

[[parties]]
id = "op"
name = "Campus Operator LLC"
roles = ["operator", "owner"]

[[parties]]
id = "sun"
name = "Sun IPP LLC"
roles = ["ipp", "owner"]

[[parties]]
id = "tenant_a"
name = "Hall A Compute Inc."
roles = ["tenant"]

[[parties]]
id = "tenant_b"
name = "Hall B Compute Inc."
roles = ["tenant"]

[[assets]]
id = "gt1"
kind = "gas_turbine"
fuel = "natural_gas"
heat_rate_mmbtu_per_mwh = 9.5
capacity_kw = 55000
owners = [{{ party = "op", share = "1" }}]

[[assets]]
id = "pv"
kind = "solar"
capacity_kw = 20000
owners = [{{ party = "sun", share = "1" }}]

[[assets]]
id = "grid"
kind = "grid_tie"

[[channels]]
id = "a.load"
role = "tenant_load"
party = "tenant_a"

[[channels]]
id = "b.load"
role = "tenant_load"
party = "tenant_b"

[[channels]]
id = "gt1.net"
role = "generation"
asset = "gt1"

[[channels]]
id = "gt1.fuel"
role = "fuel"
asset = "gt1"
unit = "MMBtu"

[[channels]]
id = "pv.net"
role = "generation"
asset = "pv"

[[channels]]
id = "grid.in"
role = "grid_import"
asset = "grid"

[settlement]
grid_price_per_mwh = "50"

[emissions]
gwp_set = "AR5"
editions = {{ grid_location = "eGRID2024" }}

[[emissions.factors]]
factor_id = "test_rfce_rm"
version = "test-1"
source = "test residual mix"
region = "RFCE"
activity = "grid_residual_mix"
gas = "co2e"
value = 1100.0
unit = "lb/MWh"
kind = "residual_mix"

[[contracts]]
id = "ppa-a"
seller = "op"
buyer = "tenant_a"

[[contracts.components]]
kind = "fixed_energy"
price_per_mwh = "60"
sources = ["gt1", "pv"]

[[contracts.components]]
kind = "grid_pass_through"

[[contracts]]
id = "ppa-b"
seller = "op"
buyer = "tenant_b"

[[contracts.components]]
kind = "fixed_energy"
price_per_mwh = "60"
sources = ["gt1", "pv"]

[[contracts.components]]
kind = "grid_pass_through"
"""


def _ar5(co2: D, ch4: D, n2o: D) -> D:
    return co2 + ch4 * 28 + n2o * 265


def _tenant_expect(share: D) -> dict[str, D]:
    fuel = D("0.5") * share * N  # MMBtu behind its gt1 energy
    gas = _ar5(fuel * D("53.06"), fuel * D("0.001"), fuel * D("0.0001"))
    grid_kwh = 30 * share * N
    return {"gt1": gas, "grid_loc": grid_kwh * RFCE, "grid_mkt": grid_kwh * RM, "grid_kwh": grid_kwh}


@pytest.fixture
def campus(db, tmp_path):
    (tmp_path / "kwhub.toml").write_text(TOML.format(db=db.url))
    cfg = load_config(tmp_path / "kwhub.toml")
    write_period(db, "2026-10", {"a.load": 60.0, "b.load": 40.0, "gt1.net": 50.0, "gt1.fuel": 0.5,
                                 "pv.net": 20.0, "grid.in": 30.0})
    out = settle(db, cfg.campus, "2026-10", options=cfg.settlement_options(), issue_date=date(2026, 11, 5), now=NOW)
    assert all(o.status == "issued" for o in out), [o.as_dict() for o in out]
    return cfg


def _close(got: D, want: D, tol: str = "0.001") -> None:
    assert abs(got - want) <= D(tol), (got, want)


def test_lines_carry_hand_computed_emissions_and_reports_agree(db, campus, tmp_path):
    invoices = {inv.buyer.id: inv for inv in list_invoices(db)}
    for tenant, share in (("tenant_a", D("0.6")), ("tenant_b", D("0.4"))):
        exp = _tenant_expect(share)
        lines = [ln for ln in invoices[tenant].lines if ln.emissions is not None]
        assert len(lines) == 2  # the plant energy line and the grid pass-through
        plant = next(ln for ln in lines if "gt1" in {s.source for s in ln.emissions.by_source})
        grid = next(ln for ln in lines if ln is not plant)
        _close(plant.emissions.market_kg_co2e, exp["gt1"].quantize(D("0.001")))
        _close(plant.emissions.location_kg_co2e, exp["gt1"].quantize(D("0.001")))
        assert plant.emissions.market.co2 == (D("0.5") * share * N * D("53.06")).quantize(D("0.000001"))
        _close(grid.emissions.location_kg_co2e, exp["grid_loc"].quantize(D("0.001")))
        _close(grid.emissions.market_kg_co2e, exp["grid_mkt"].quantize(D("0.001")))
        assert grid.emissions.kwh == exp["grid_kwh"]
        assert "egrid2024_rfce@eGRID2024" in grid.emissions.factors
        assert "epa_part98_c_ng_co2@Part98-C" in plant.emissions.factors
        # the tenant's report sums exactly what its lines carry (before certificates)
        d = period_disclosure(db, campus, "2026-10", tenant)
        inv = d.party(tenant)
        line_loc = sum((ln.emissions.location_kg_co2e for ln in lines), D(0))
        line_mkt = sum((ln.emissions.market_kg_co2e for ln in lines), D(0))
        _close(inv.kg_co2e("2", "location"), line_loc)
        _close(inv.kg_co2e("2", "market"), line_mkt)
        # 3c: the T&D losses of its grid energy, 0.044 / 0.956 x RFCE
        _close(inv.kg_co2e("3", "3c"), exp["grid_kwh"] * D("0.044") / D("0.956") * RFCE)
    d = period_disclosure(db, campus, "2026-10")
    op = d.party("op")
    total_fuel = D("0.5") * N
    _close(op.kg_co2e("1"), _ar5(total_fuel * D("53.06"), total_fuel * D("0.001"), total_fuel * D("0.0001")))
    assert op.gases("1").co2 == (total_fuel * D("53.06")).quantize(D("0.000001"))
    # the operator resells grid energy it did not generate: 3d at the grid's location-based factor
    _close(op.kg_co2e("3", "3d"), 30 * N * RFCE, tol="0.01")
    assert any("3a/3b of natural_gas is not computed" in n for n in d.notes)


def test_certificates_follow_the_allocation_and_count_once(db, campus):
    issued = issue_period(db, campus, "2026-10", now=NOW)
    assert len(issued) == N // 4 and {b.quantity_wh for b in issued} == {80_000}  # 4 x 20 kWh per hour
    assert issue_period(db, campus, "2026-10", now=NOW) == []  # issuing again changes nothing
    moved = transfer_by_allocation(db, campus, "2026-10", now=NOW)
    assert sum(b.quantity_wh for b in moved if b.account == "tenant_a") == 48_000 * (N // 4)
    assert sum(b.quantity_wh for b in moved if b.account == "tenant_b") == 32_000 * (N // 4)
    assert transfer_by_allocation(db, campus, "2026-10", now=NOW) == []
    claimed = claim_for(db, "tenant_a", "2026-10", campus.hub.timezone, now=NOW)
    assert sum(b.quantity_wh for b in claimed) == 48_000 * (N // 4)
    assert claim_for(db, "tenant_a", "2026-10", campus.hub.timezone, now=NOW) == []
    with db.engine.connect() as conn:
        every = bundles(conn)
    assert ledger_problems(every, {"pv": [(1, 80_000 * (N // 4))]}) == []
    d = period_disclosure(db, campus, "2026-10", "tenant_a")
    cfe = d.party("tenant_a").cfe
    # per hour: load 240 kWh, the pv counts only through its 48 kWh of claimed certificates: 20 %
    assert cfe is not None and cfe.score_pct == D("20.00") and cfe.certificates_kwh == D(48 * (N // 4))
    # market-based after matching: the 48 kWh cover grid energy first (72 kWh per hour), 24 kWh stay at the residual mix
    exp = _tenant_expect(D("0.6"))
    _close(d.party("tenant_a").kg_co2e("2", "market"), exp["gt1"] + D(24) * (N // 4) * RM, tol="0.01")
    # tenant_b holds its certificates but has not claimed them: they do not count
    assert period_disclosure(db, campus, "2026-10", "tenant_b").party("tenant_b").cfe.score_pct == D("0.00")


def test_a_claimed_certificate_cannot_be_claimed_or_moved_again(db, campus):
    from kwhub.core.certificates import claim, transfer

    issue_period(db, campus, "2026-10", now=NOW)
    transfer_by_allocation(db, campus, "2026-10", now=NOW)
    claimed = claim_for(db, "tenant_a", "2026-10", campus.hub.timezone, now=NOW)
    with pytest.raises(CertificateError, match="already claimed"):
        claim(claimed[0], "tenant_a")
    with pytest.raises(CertificateError, match="only Active"):
        transfer(claimed[0], "tenant_b")


def test_every_disclosure_is_written_and_passes_its_check(db, campus, tmp_path):
    d = period_disclosure(db, campus, "2026")
    tenants = d.model_copy(update={"parties": [p for p in d.parties if p.party.startswith("tenant_")]})
    written = write_disclosure(campus, tenants, ["ghg", "cdp", "esrs", "sb253", "summary"], tmp_path / "esg")
    assert {w.format_id: w.problems for w in written} == {f: [] for f in ("ghg", "cdp", "esrs", "sb253", "summary")}
    esrs = next(w for w in written if w.format_id == "esrs")
    page = next(p for p in esrs.paths if p.name == "esrs-e1-6-2026-tenant_a.xhtml").read_text()
    assert 'name="esrs:GrossLocationBasedScope2GreenhouseGasEmissions"' in page
    assert 'xmlns:esrs="https://xbrl.efrag.org/taxonomy/esrs/2023-12-22"' in page
    loc_t = (d.party("tenant_a").kg_co2e("2", "location") / 1000).quantize(D("0.001"))
    assert f">{loc_t}</ix:nonFraction>" in page
    cdp = (tmp_path / "esg" / "cdp-2026-tenant_a.csv").read_text()
    assert f"7.7,\"Gross global Scope 2 emissions, location-based\",{loc_t},metric tons CO2e" in cdp
    assert any("2026-01: no settled run" in n for n in d.notes)


def test_esrs_check_fails_a_broken_page(db, campus, tmp_path):
    from kwhub.plugins.esg.esrs import EsrsWriter

    d = period_disclosure(db, campus, "2026-10", "tenant_a")
    w = EsrsWriter("esrs")
    paths = w.write(d, tmp_path)
    page = next(p for p in paths if p.suffix == ".xhtml")
    page.write_text(page.read_text().replace('contextRef="period" unitRef="tCO2e"', 'contextRef="elsewhere" unitRef="tCO2e"', 1))
    problems = w.validate(paths)
    assert any("itemContextRef" in p or "contextReference" in p for p in problems), problems


def test_explain_carbon_shows_intervals_sources_factors_and_gwp(db, campus, tmp_path, monkeypatch):
    from kwhub.hub.cli.main import app

    monkeypatch.chdir(tmp_path)
    inv = next(i for i in list_invoices(db) if i.buyer.id == "tenant_a")
    grid = next(ln for ln in inv.lines if ln.emissions is not None and ln.emissions.by_source[0].source == "grid")
    res = CliRunner().invoke(app, ["explain", inv.number, "--line", str(grid.number), "--carbon", "--format", "json"])
    assert res.exit_code == 0, res.output
    exp = json.loads(res.output)
    assert exp["gwp_set"] == "AR5" and exp["recomputed"]["agrees"]
    assert len(exp["intervals"]) == N and exp["intervals"][0]["kwh"] == {"grid": "18.0"}
    assert [f["factor_id"] for f in exp["factors"]] == ["egrid2024_rfce", "test_rfce_rm"]
    assert exp["factors"][0]["version"] == "eGRID2024"
    res = CliRunner().invoke(app, ["explain", inv.number, "--line", str(grid.number), "--carbon"])
    assert res.exit_code == 0 and "egrid2024_rfce (eGRID2024)" in res.output and "agrees with the line" in res.output


def test_esg_report_command_writes_and_checks(db, campus, tmp_path, monkeypatch):
    from kwhub.hub.cli.main import app

    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["esg", "report", "--period", "2026-10", "--format", "cdp", "--format", "sb253",
                                   "--tenant", "tenant_b", "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    assert "cdp: check passed" in res.output and (tmp_path / "r" / "sb253-2026-10-tenant_b.json").exists()
    res = CliRunner().invoke(app, ["esg", "report", "--period", "2026-13", "--format", "ghg"])
    assert res.exit_code == 1 and "give a year (2026) or a month (2026-10)" in str(res.exception)
    res = CliRunner().invoke(app, ["esg", "report", "--period", "2026-10", "--format", "pdf"])
    assert res.exit_code != 0 and "choose from ghg, cdp, esrs, sb253, summary" in str(res.exception)


def test_export_and_import_round_trip_and_refuse_a_second_import(db, campus, tmp_path):
    from kwhub.hub.esg.ledger import export_json, import_json

    issue_period(db, campus, "2026-10", now=NOW)
    out = tmp_path / "gc.json"
    assert export_json(db, out, "sun") == N // 4
    data = json.loads(out.read_text())
    assert data["schema"] == "kwhub.gc/1" and data["bundles"][0]["face_value_wh"] == 1
    bad = tmp_path / "bad.json"
    item = dict(data["bundles"][0], production_ending_interval=data["bundles"][0]["production_starting_interval"] + 7200)
    bad.write_text(json.dumps({"schema": "kwhub.gc/1", "bundles": [item]}))
    with pytest.raises(CertificateError, match=r"bundles\[0\]: production interval .* is not \(0, 1 hour\]"):
        import_json(db, bad, "tenant_a")
    with pytest.raises(CertificateError, match="already in the ledger"):
        import_json(db, out, "tenant_a")  # the same certificates twice
    assert Path(out).exists()


def test_restated_fuel_restates_the_emissions_as_a_new_version(db, campus):
    from tests.fixtures.settlement import set_value

    first = {o["id"]: o for o in _runs(db)}
    t0 = int(datetime(2026, 10, 7, 4, tzinfo=UTC).timestamp())  # a quarter-hour of the period
    set_value(db, "gt1.fuel", t0, 1.5)  # one quarter-hour burned 1 MMBtu more than first read
    out = settle(db, campus.campus, "2026-10", version="final", options=campus.settlement_options(),
                 issue_date=date(2026, 11, 20), now=NOW)
    assert [o.status for o in out] == ["issued", "issued"], [o.as_dict() for o in out]
    later = [o for o in _runs(db) if o["id"] not in first]
    assert {o["statement"]["carbon"]["activity_id"] for o in later} != \
        {o["statement"]["carbon"]["activity_id"] for o in first.values()}
    invs = list_invoices(db, buyer="tenant_a")
    assert [i.kind for i in invs] == ["invoice", "adjustment"] and invs[1].total == 0
    fix = [ln for ln in invs[1].lines if ln.emissions is not None]
    assert [ln.amount for ln in fix] == [D(0)] and "emissions restated" in fix[0].description
    # tenant_a took 60 % of that extra MMBtu: 0.6 x (53.06 + 0.001 x 28 + 0.0001 x 265) kg
    _close(fix[0].emissions.market_kg_co2e, D("0.6") * _ar5(D("53.06"), D("0.001"), D("0.0001")))
    d = period_disclosure(db, campus, "2026-10", "tenant_a")
    lines = [ln for i in invs for ln in i.lines if ln.emissions is not None]
    _close(d.party("tenant_a").kg_co2e("2", "market"), sum((ln.emissions.market_kg_co2e for ln in lines), D(0)))
    assert {r.run_id for r in d.runs} == {o["id"] for o in later if o["statement"]["contract"]["buyer"] == "tenant_a"}


def _runs(db):  # noqa: ANN001, ANN202
    from kwhub.hub.esg.inputs import latest_runs
    from kwhub.hub.settle.service import get_run

    return [{**r, "statement": get_run(db, r["id"])["statement_json"]} for r in latest_runs(db, "2026-10")]


def test_json_and_pdf_show_the_line_emissions_per_gas(db, campus):
    from pypdf import PdfReader

    from kwhub.plugins.erp.json_folder import JsonRenderer
    from kwhub.plugins.erp.pdf import PdfRenderer

    inv = next(i for i in list_invoices(db) if i.buyer.id == "tenant_a")
    line = next(ln for ln in inv.lines if ln.emissions is not None)
    doc = json.loads(JsonRenderer("json").render(inv))
    em = next(ln for ln in doc["lines"] if ln["number"] == line.number)["emissions"]
    assert em["market"]["co2"] == str(line.emissions.market.co2) and em["gwp_set"] == "AR5"
    import io

    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(PdfRenderer("pdf").render(inv))).pages)
    assert "Emissions of the energy billed" in text and "AR5" in text


def test_certificate_commands(db, campus, tmp_path, monkeypatch):
    from kwhub.hub.cli.main import app

    monkeypatch.chdir(tmp_path)
    run = CliRunner().invoke
    res = run(app, ["esg", "certificates", "issue", "--period", "2026-10"])
    assert res.exit_code == 0 and f"issued {N // 4} bundle(s), {80_000 * (N // 4)} Wh" in res.output, res.output
    assert run(app, ["esg", "certificates", "transfer", "--period", "2026-10"]).exit_code == 0
    res = run(app, ["esg", "certificates", "claim", "--period", "2026-10", "--tenant", "tenant_b"])
    assert f"{32_000 * (N // 4)} Wh for tenant_b" in res.output, res.output
    rows = json.loads(run(app, ["esg", "certificates", "list", "--format", "json"]).output)
    held = {(r["account"], r["status"]): r["wh"] for r in rows}
    assert held[("tenant_b", "Claimed")] == 32_000 * (N // 4) and held[("tenant_a", "Active")] == 48_000 * (N // 4)
    with db.engine.connect() as conn:
        some = next(b for b in bundles(conn) if b.account == "tenant_a" and b.status == "Active")
    res = run(app, ["esg", "certificates", "withdraw", some.bundle_id, "--reason", "meter error", "--wh", "1000"])
    assert res.exit_code == 0 and "(1000 Wh)" in res.output
    res = run(app, ["esg", "certificates", "withdraw", some.bundle_id, "--reason", "again"])
    assert res.exit_code != 0 and "only Active bundles can be withdrawn" in str(res.exception)


def test_esg_report_takes_the_format_of_an_installed_plugin_writer(db, campus, tmp_path, monkeypatch):
    from typing import ClassVar

    from kwhub.core.adapters import EsgReporter
    from kwhub.hub.cli.main import app
    from kwhub.hub.esg import reports

    class AcmeWriter(EsgReporter):
        """A plugin's disclosure: one line per party."""

        type_id: ClassVar[str] = "esg.acme"
        format_id: ClassVar[str] = "acme"

        def write(self, disclosure, out_dir):  # noqa: ANN001, ANN201
            path = out_dir / f"acme-{disclosure.period}.txt"
            path.write_text("".join(f"{p.party}\n" for p in disclosure.parties))
            return [path]

    installed = reports.writer_types()
    monkeypatch.setattr(reports, "writer_types", lambda: {**installed, "acme": AcmeWriter})
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["esg", "report", "--period", "2026-10", "--format", "acme", "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    assert "acme: " in res.output and (tmp_path / "r" / "acme-2026-10.txt").read_text().strip()
    res = CliRunner().invoke(app, ["esg", "report", "--period", "2026-10", "--format", "pdf"])
    assert res.exit_code != 0 and "choose from ghg, cdp, esrs, sb253, summary, acme or all" in str(res.exception)
