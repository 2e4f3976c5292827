"""ERP renderers load through the plugin manager and every format references the original."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest

from kwhub.core.adapters import InvoiceRenderer
from kwhub.core.invoice import Invoice
from kwhub.hub.registry import load_plugins
from tests.fixtures.invoices import adjustment_invoice, context, credit_note, energy_invoice

ERP_PLUGINS = ["erp_json_folder", "erp_ubl", "erp_cii", "erp_x12", "erp_idoc", "erp_csv", "erp_pdf"]
EXPECTED = {
    "erp.json": "json", "erp.ubl": "ubl", "erp.cii": "cii", "erp.facturx": "facturx",
    "erp.x12_810": "x12_810", "erp.x12_867": "x12_867", "erp.idoc": "idoc_invoic02",
    "erp.csv": "csv", "erp.pdf": "pdf",
}


@pytest.fixture(scope="module")
def renderers() -> dict[str, InvoiceRenderer]:
    reg = load_plugins(use_entry_points=False, allow=ERP_PLUGINS, strict=True)
    found = {t: c for t, c in reg.family("erp").items() if issubclass(c, InvoiceRenderer)}
    assert {t: c.format_id for t, c in found.items()} == EXPECTED
    return {c.format_id: c(c.format_id) for c in found.values()}


def _text(fmt: str, data: bytes) -> str:
    if fmt in ("pdf", "facturx"):
        from pypdf import PdfReader

        return "\n".join(p.extract_text() or "" for p in PdfReader(io.BytesIO(data)).pages)
    return data.decode("utf-8")


@pytest.mark.parametrize("doc", [credit_note, adjustment_invoice], ids=["credit_note", "adjustment"])
def test_every_format_renders_valid_and_references_the_original(renderers, doc) -> None:
    inv: Invoice = doc()
    extras = context(usage=True, with_lineage=True, created=datetime(2024, 8, 5, 12, tzinfo=UTC))
    for fmt, r in renderers.items():
        data = r.render(inv, extras)
        assert r.validate(data) == [], fmt
        text = _text(fmt, data)
        assert inv.number in text, fmt
        assert "INV-2024-000123" in text, fmt


def test_every_format_flags_a_credit_note_without_reference(renderers) -> None:
    cn = credit_note().model_copy(update={"references": []})
    flagged = {fmt for fmt, r in renderers.items() if r.validate(r.render(cn, context(usage=True)))}
    # X12 and PDF carry no machine-checkable "credit" semantics beyond the envelope/text.
    assert flagged >= {"ubl", "cii", "facturx", "idoc_invoic02", "json", "csv"}


def test_invoice_renders_in_every_format(renderers) -> None:
    inv = energy_invoice()
    for fmt, r in renderers.items():
        data = r.render(inv, context(usage=True))
        assert r.validate(data) == [], fmt
        assert r.file_extension.startswith(".") and "/" in r.media_type


def test_kwhub_register_erp_adapters_hookimpls_register_renderer_classes() -> None:
    """Each ERP module's ``kwhub_register_erp_adapters`` hands over InvoiceRenderer classes."""
    import importlib

    from kwhub.hub.registry import BUILTIN_PLUGINS

    seen: list[type] = []
    for name in ERP_PLUGINS:
        module = importlib.import_module(BUILTIN_PLUGINS[name])
        module.kwhub_register_erp_adapters(register=seen.append)
    assert {c.type_id for c in seen} == set(EXPECTED)
    assert all(issubclass(c, InvoiceRenderer) and c.family == "erp" for c in seen)
