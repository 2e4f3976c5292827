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
    em = json.loads(Path(first["emissions"][0]).read_text())
    assert em["scope1_tco2e"] > 0 and set(em["tenants"]) == {"tenant_a", "tenant_b", "tenant_c"}
    assert len(first["owner_statements"]) >= 2


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
