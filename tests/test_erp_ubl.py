"""UBL 2.1 / Peppol BIS Billing 3.0 renderer: XSD validity, profile rules, negative cases."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from lxml import etree

from kwhub.core.invoice import Invoice, InvoiceLine, compute_totals
from kwhub.hub.helpers.safe_xml import parse_xml
from kwhub.plugins.erp import peppol_rules
from kwhub.plugins.erp.ubl import (
    CUSTOMIZATION_ID,
    ENV_XSD_DIR,
    NS_CAC,
    NS_CBC,
    PROFILE_ID,
    UblRenderer,
    UblSchemaError,
    resolve_xsd_dir,
)
from tests.fixtures.invoices import POLICY, adjustment_invoice, credit_note, energy_invoice

NS = {"cac": NS_CAC, "cbc": NS_CBC}


@pytest.fixture(scope="module")
def ubl(shared_dir_ubl: str) -> UblRenderer:
    return UblRenderer("ubl", {"xsd_dir": shared_dir_ubl})


@pytest.fixture(scope="module")
def shared_dir_ubl() -> str:
    from tests.conftest import SHARED

    d = SHARED / "standards" / "ubl-2.1" / "xsd"
    if not (d / "maindoc" / "UBL-Invoice-2.1.xsd").is_file():
        pytest.fail(f"shared UBL XSDs missing at {d}")
    return str(d)


def _tamper(data: bytes, xpath: str, value: str) -> bytes:
    root = parse_xml(data)
    el = root.xpath(xpath, namespaces=NS)[0]
    el.text = value
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def test_every_document_validates_against_xsd_and_rules(ubl: UblRenderer, any_document: Invoice) -> None:
    data = ubl.render(any_document)
    assert ubl.validate(data) == []
    root = parse_xml(data)
    assert root.findtext("cbc:CustomizationID", namespaces=NS) == CUSTOMIZATION_ID
    assert root.findtext("cbc:ProfileID", namespaces=NS) == PROFILE_ID
    payable = root.findtext("cac:LegalMonetaryTotal/cbc:PayableAmount", namespaces=NS)
    assert Decimal(payable) == any_document.total
    lines = root.findall("cac:CreditNoteLine" if any_document.is_credit else "cac:InvoiceLine", NS)
    assert sum(Decimal(ln.findtext("cbc:LineExtensionAmount", namespaces=NS)) for ln in lines) == any_document.line_total


def test_type_codes_and_billing_reference(ubl: UblRenderer) -> None:
    inv = parse_xml(ubl.render(energy_invoice()))
    assert etree.QName(inv).localname == "Invoice"
    assert inv.findtext("cbc:InvoiceTypeCode", namespaces=NS) == "380"
    assert inv.find("cac:BillingReference", NS) is None

    adj = parse_xml(ubl.render(adjustment_invoice()))
    assert adj.findtext("cbc:InvoiceTypeCode", namespaces=NS) == "380"
    assert adj.findtext("cac:BillingReference/cac:InvoiceDocumentReference/cbc:ID", namespaces=NS) == "INV-2024-000123"

    cn = parse_xml(ubl.render(credit_note()))
    assert etree.QName(cn).localname == "CreditNote"
    assert cn.findtext("cbc:CreditNoteTypeCode", namespaces=NS) == "381"
    ref = cn.find("cac:BillingReference/cac:InvoiceDocumentReference", NS)
    assert ref.findtext("cbc:ID", namespaces=NS) == "INV-2024-000123"
    assert ref.findtext("cbc:IssueDate", namespaces=NS) == "2024-08-05"
    # a credit note is not paid by the buyer: no due date (neither cbc:DueDate nor PaymentMeans/PaymentDueDate)
    assert cn.find("cac:PaymentMeans/cbc:PaymentDueDate", NS) is None and cn.find("cbc:DueDate", NS) is None


def test_negative_price_moves_sign_to_quantity(ubl: UblRenderer) -> None:
    root = parse_xml(ubl.render(energy_invoice()))
    credit_line = root.xpath("cac:InvoiceLine[cbc:ID='6']", namespaces=NS)[0]
    assert credit_line.findtext("cbc:InvoicedQuantity", namespaces=NS) == "-1.000"
    assert Decimal(credit_line.findtext("cac:Price/cbc:PriceAmount", namespaces=NS)) > 0
    assert credit_line.findtext("cbc:LineExtensionAmount", namespaces=NS) == "-4321.09"


def test_tampered_line_amount_fails_br_co_10(ubl: UblRenderer) -> None:
    data = ubl.render(energy_invoice())
    bad = _tamper(data, "cac:InvoiceLine[cbc:ID='2']/cbc:LineExtensionAmount", "118221.69")
    problems = ubl.validate(bad)
    co10 = [p for p in problems if p.startswith("BR-CO-10")]
    assert co10 and "LegalMonetaryTotal/cbc:LineExtensionAmount" in co10[0]
    # The line's own arithmetic breaks too, and the message names that line.
    r120 = [p for p in problems if p.startswith("PEPPOL-EN16931-R120")]
    assert r120 and "InvoiceLine[2]" in r120[0] and "line 2" in r120[0]
    # Per-category taxable amount no longer equals its lines (BR-S-08).
    assert any(p.startswith("BR-S-08") for p in problems)


def test_tampered_tax_fails_co_17_and_co_14(ubl: UblRenderer) -> None:
    from decimal import Decimal

    data = ubl.render(energy_invoice())
    path = "cac:TaxTotal/cac:TaxSubtotal[cac:TaxCategory/cbc:ID='S']/cbc:TaxAmount"
    tax = Decimal(parse_xml(data).xpath(path, namespaces=NS)[0].text)
    # EN 16931 lets a category's tax differ from taxable x rate by less than one currency unit
    # (a correction states round(new tax) - round(old tax)); a cent off is not BR-CO-17, two units are
    near = ubl.validate(_tamper(data, path, str(tax + Decimal("0.01"))))
    assert not any(p.startswith("BR-CO-17") for p in near) and any(p.startswith("BR-CO-14") for p in near)
    problems = ubl.validate(_tamper(data, path, str(tax + Decimal("2.00"))))
    assert any(p.startswith("BR-CO-17") for p in problems)
    assert any(p.startswith("BR-CO-14") for p in problems)


def test_tampered_payable_fails_co_16(ubl: UblRenderer) -> None:
    bad = _tamper(ubl.render(energy_invoice()), "cac:LegalMonetaryTotal/cbc:PayableAmount", "1.00")
    assert [p for p in ubl.validate(bad) if p.startswith("BR-CO-16")]


def test_tampered_currency_and_type_code(ubl: UblRenderer) -> None:
    data = ubl.render(energy_invoice())
    root = parse_xml(data)
    root.find("cac:LegalMonetaryTotal/cbc:PayableAmount", NS).set("currencyID", "EUR")
    root.find("cbc:InvoiceTypeCode", NS).text = "381"
    problems = ubl.validate(etree.tostring(root))
    assert any(p.startswith("PEPPOL-EN16931-R051") and "PayableAmount" in p for p in problems)
    assert any(p.startswith("PEPPOL-EN16931-P0100") for p in problems)


def test_credit_note_without_reference_is_rejected(ubl: UblRenderer) -> None:
    cn = credit_note().model_copy(update={"references": []})
    problems = ubl.validate(ubl.render(cn))
    assert any(p.startswith("KWHUB-R001") for p in problems)


def test_missing_buyer_reference_fails_r003(ubl: UblRenderer) -> None:
    inv = energy_invoice().model_copy(update={"buyer_reference": "", "contract_id": ""})
    problems = ubl.validate(ubl.render(inv))
    assert any(p.startswith("PEPPOL-EN16931-R003") for p in problems)


def test_line_period_outside_invoice_period(ubl: UblRenderer) -> None:
    inv = energy_invoice()
    lines = list(inv.lines)
    lines[0] = lines[0].model_copy(update={"period_end": date(2024, 8, 2)})
    problems = ubl.validate(ubl.render(inv.model_copy(update={"lines": lines})))
    r111 = [p for p in problems if p.startswith("PEPPOL-EN16931-R111")]
    assert r111 and "line 1" in r111[0]


def test_amount_not_equal_to_quantity_times_price_uses_base_quantity(ubl: UblRenderer) -> None:
    """A charge summed interval by interval still validates: price per base quantity."""
    line = InvoiceLine(number=1, description="Energy, TOU-weighted", quantity=Decimal("1000000.000"),
                       unit="kWh", unit_price=Decimal("0.054321"), amount=Decimal("54321.37"),
                       tax_category="O", tax_percent=Decimal("0"))
    inv = compute_totals(energy_invoice().model_copy(update={"lines": [line]}), POLICY)
    data = ubl.render(inv)
    assert ubl.validate(data) == []
    root = parse_xml(data)
    assert root.findtext("cac:InvoiceLine/cac:Price/cbc:BaseQuantity", namespaces=NS) == "1000000.000"
    # Category O: no percent, an exemption reason in the breakdown.
    assert root.find("cac:TaxTotal/cac:TaxSubtotal/cac:TaxCategory/cbc:Percent", NS) is None
    assert root.findtext("cac:TaxTotal/cac:TaxSubtotal/cac:TaxCategory/cbc:TaxExemptionReason", namespaces=NS)


def test_xsd_catches_element_order(ubl: UblRenderer) -> None:
    root = parse_xml(ubl.render(energy_invoice()))
    due = root.find("cbc:DueDate", NS)
    root.remove(due)
    root.append(due)  # DueDate after the lines: not allowed by the sequence
    problems = ubl.validate(etree.tostring(root))
    assert any(p.startswith("XSD line") and "DueDate" in p for p in problems)


def test_rules_work_on_the_xml_not_the_model() -> None:
    """peppol_rules.check is usable on any parsed UBL document."""
    root = parse_xml(UblRenderer("ubl").render(adjustment_invoice()))
    assert peppol_rules.check(root) == []
    root.find("cac:LegalMonetaryTotal/cbc:LineExtensionAmount", NS).text = "0.00"
    assert any(p.startswith("BR-CO-10") for p in peppol_rules.check(root))


def test_doctype_is_refused(ubl: UblRenderer) -> None:
    evil = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><Invoice>&e;</Invoice>'
    problems = ubl.validate(evil)
    assert len(problems) == 1 and "DOCTYPE" in problems[0]


def test_missing_xsd_dir_gives_clear_error(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nope"
    r = UblRenderer("ubl", {"xsd_dir": str(missing)})
    with pytest.raises(UblSchemaError) as exc:
        r.validate(r.render(energy_invoice()))
    assert str(missing / "maindoc" / "UBL-Invoice-2.1.xsd") in str(exc.value)
    assert "xsd_dir" in str(exc.value)
    check = r.check()
    assert not check.ok and check.kind == "configuration"

    monkeypatch.setenv(ENV_XSD_DIR, str(missing))
    with pytest.raises(UblSchemaError, match=ENV_XSD_DIR):
        resolve_xsd_dir()


def test_env_dir_is_used(shared_dir_ubl: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_XSD_DIR, shared_dir_ubl)
    assert str(resolve_xsd_dir()) == shared_dir_ubl
    r = UblRenderer("ubl")
    assert r.check().ok
    assert r.validate(r.render(credit_note())) == []


def test_rendered_bytes_are_lxmls_serialisation_of_the_same_tree(ubl: UblRenderer, any_document: Invoice) -> None:
    """The light node writer gives the bytes lxml writes (recorded renderings stay reproducible)."""
    from kwhub.plugins.erp.ubl import build_ubl

    assert ubl.render(any_document) == etree.tostring(build_ubl(any_document), xml_declaration=True,
                                                       encoding="UTF-8", pretty_print=True)


def test_the_node_writer_escapes_and_refuses_as_lxml_does() -> None:
    from kwhub.plugins.erp import xml_tree

    nsmap = {None: "urn:a", "b": "urn:b"}
    root = xml_tree.Node("{urn:a}Root")
    nasty = 'a<b & "c" \'d\' >\r\n\tend é€😀'
    xml_tree.sub(root, "{urn:b}Text", nasty, note=nasty)
    xml_tree.sub(root, "{urn:b}Empty", "")
    xml_tree.sub(root, "{urn:a}Nothing")
    xml_tree.sub(xml_tree.sub(root, "{urn:b}Wrap"), "{urn:b}Inner", "x", unitCode="KWH")
    assert xml_tree.to_bytes(root, nsmap) == etree.tostring(xml_tree.to_lxml(root, nsmap), xml_declaration=True,
                                                             encoding="UTF-8", pretty_print=True)
    for bad in ("\x01", "\ufffe", "\x0b"):
        root = xml_tree.Node("{urn:a}Root")
        xml_tree.sub(root, "{urn:b}Text", f"x{bad}y")
        with pytest.raises(ValueError, match="XML compatible"):
            xml_tree.to_bytes(root, nsmap)
        with pytest.raises(ValueError, match="XML compatible"):
            xml_tree.to_lxml(root, nsmap)
