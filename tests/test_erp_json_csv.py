"""Canonical JSON and CSV exports: exact decimals, round trip, atomic folder writes."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from pathlib import Path

import pytest

from kwhub.core.invoice import Invoice
from kwhub.plugins.erp.csv_export import COLUMNS, CsvRenderer
from kwhub.plugins.erp.json_folder import JsonRenderer, invoice_from_json, write_invoice_json
from tests.fixtures.invoices import credit_note, energy_invoice


def test_json_round_trip(any_document: Invoice) -> None:
    r = JsonRenderer("json")
    data = r.render(any_document)
    assert r.validate(data) == []
    assert invoice_from_json(data) == any_document
    raw = json.loads(data)
    assert raw["total"] == format(any_document.total, "f")
    assert isinstance(raw["lines"][0]["quantity"], str)
    assert list(raw) == sorted(raw)
    assert r.render(any_document) == data  # stable bytes


def test_json_never_uses_exponent_notation() -> None:
    inv = energy_invoice()
    lines = list(inv.lines)
    lines[3] = lines[3].model_copy(update={"unit_price": Decimal("1.85E+5")})
    data = JsonRenderer("json").render(inv.model_copy(update={"lines": lines}))
    assert b"E+" not in data and b'"185000"' in data


def test_json_validate_reports_problems() -> None:
    r = JsonRenderer("json")
    raw = json.loads(r.render(energy_invoice()))
    raw["total"] = 1.5
    raw["lines"][0]["amount"] = "0.01"
    problems = r.validate(json.dumps(raw).encode())
    assert any("$.total" in p and "decimal string" in p for p in problems)
    assert any("lines sum" in p for p in problems)
    raw = json.loads(r.render(credit_note()))
    raw["references"] = []
    assert any("reference" in p for p in r.validate(json.dumps(raw).encode()))
    assert r.validate(b"{not json")[0].startswith("JSON: not valid JSON")


def test_write_invoice_json_is_atomic(tmp_path: Path) -> None:
    inv = energy_invoice()
    path = write_invoice_json(inv, tmp_path / "out")
    assert path.name == "INV-2024-000123_v1.json"
    assert invoice_from_json(path.read_bytes()) == inv
    # Overwrite in place; no temporary files are left behind.
    path2 = write_invoice_json(inv, tmp_path / "out")
    assert path2 == path
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [path.name]


def test_write_invoice_json_failure_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import kwhub.hub.helpers.files as files

    def boom(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_invoice_json(energy_invoice(), tmp_path)
    assert list(tmp_path.iterdir()) == []


def _rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))


def test_csv_parses_back_to_the_same_totals(any_document: Invoice) -> None:
    r = CsvRenderer("csv")
    data = r.render(any_document)
    assert r.validate(data) == []
    rows = _rows(data)
    assert list(rows[0]) == COLUMNS
    lines = [x for x in rows if x["record_type"] == "LINE"]
    taxes = [x for x in rows if x["record_type"] == "TAX"]
    (total,) = [x for x in rows if x["record_type"] == "TOTAL"]
    assert sum(Decimal(x["amount"]) for x in lines) == any_document.line_total
    assert sum(Decimal(x["tax_amount"]) for x in taxes) == any_document.tax_total
    assert Decimal(total["total"]) == any_document.total
    assert {x["type_code"] for x in rows} == {"381" if any_document.is_credit else "380"}
    assert {x["original_invoice"] for x in rows} == {";".join(r.number for r in any_document.references)}


def test_csv_tampering_and_formula_cells() -> None:
    r = CsvRenderer("csv")
    inv = energy_invoice()
    lines = list(inv.lines)
    lines[0] = lines[0].model_copy(update={"description": "=HYPERLINK(\"x\")"})
    data = r.render(inv.model_copy(update={"lines": lines}))
    assert _rows(data)[0]["description"].startswith("'=")
    text = data.decode().replace("132721.81", "132721.80", 1)
    problems = r.validate(text.encode())
    assert any(p.startswith("CSV line") and "LINE sum" in p for p in problems)


def test_csv_semicolon_delimiter() -> None:
    r = CsvRenderer("csv", {"delimiter": ";"})
    data = r.render(credit_note())
    assert data.splitlines()[0].count(b";") == len(COLUMNS) - 1
    assert r.validate(data) == []
