"""The official CEN EN 16931 rules (compiled XSLT, release 1.3.16) on every UBL and CII document,
kwhub's own Peppol BIS 3 checks, and the party requirements found at configuration time."""

from __future__ import annotations

import pytest
from lxml import etree

from kwhub.core.invoice import Invoice, PaymentDetails
from kwhub.plugins.erp.cii import CiiRenderer, FacturXRenderer
from kwhub.plugins.erp.party_requirements import (
    en16931_party_problems,
    endpoint_problems,
    peppol_party_problems,
)
from kwhub.plugins.erp.ubl import UblRenderer
from tests.en16931 import ARTEFACTS, available, fatal, official_findings
from tests.fixtures.invoices import BUYER, SELLER, energy_invoice


def test_artefacts_are_present() -> None:
    assert available(), f"the official EN 16931 artefacts are missing from {ARTEFACTS}"


def _xml_of(renderer_id: str, invoice: Invoice) -> bytes:
    if renderer_id == "ubl":
        return UblRenderer("ubl").render(invoice)
    if renderer_id == "cii":
        return CiiRenderer("cii").render(invoice)
    import facturx

    pdf = FacturXRenderer("facturx").render(invoice)
    _name, xml = facturx.get_xml_from_pdf(pdf, check_xsd=False)
    return xml


@pytest.mark.parametrize("renderer_id", ["ubl", "cii", "facturx"])
def test_official_rules_accept_every_fixture_document(renderer_id: str, any_document: Invoice) -> None:
    data = _xml_of(renderer_id, any_document)
    findings = official_findings(data)
    assert [str(f) for f in findings if f.flag == "fatal"] == []
    # the warnings kwhub once tripped stay away too
    assert not [f for f in findings if f.rule in ("CII-SR-450",)]


def test_payment_account_is_written_and_required() -> None:
    """BR-61 / CII-SR-470: a credit transfer names the payee account (it used to be missing)."""
    inv = energy_invoice()
    ubl = UblRenderer("ubl").render(inv)
    assert b"<cbc:ID>4400123456</cbc:ID>" in ubl and b"021000021" in ubl
    bare = inv.model_copy(update={"seller": SELLER.model_copy(update={"payment": PaymentDetails()})})
    for data in (UblRenderer("ubl").render(bare), CiiRenderer("cii").render(bare)):
        rules = {f.split(" ")[0] for f in fatal(data)}
        assert rules & {"BR-61", "CII-SR-470"}
    assert any(p.startswith("BR-61") for p in UblRenderer("ubl").validate(UblRenderer("ubl").render(bare)))
    assert any(p.startswith("BR-61") for p in CiiRenderer("cii").validate(CiiRenderer("cii").render(bare)))


def test_standard_rated_lines_need_the_seller_tax_identifier() -> None:
    """BR-S-02: the demo's seller had no tax id; the official rules, kwhub's check and the
    configuration check all name it."""
    inv = energy_invoice()
    no_tax = inv.model_copy(update={"seller": SELLER.model_copy(update={"tax_id": ""})})
    data = UblRenderer("ubl").render(no_tax)
    assert any(f.startswith("BR-S-02") for f in fatal(data))
    assert any(p.startswith("BR-S-02") for p in UblRenderer("ubl").validate(data))
    assert any(p.startswith("BR-S-02") for p in CiiRenderer("cii").validate(CiiRenderer("cii").render(no_tax)))
    problems = en16931_party_problems(no_tax.seller, BUYER, {"S"})
    assert problems and 'party "ipp" (seller): set tax_id' in problems[0] and "BR-S-02" in problems[0]
    assert en16931_party_problems(no_tax.seller, BUYER, {"Z"}) == []


def test_no_email_endpoint_fallback() -> None:
    """PEPPOL-EN16931-CL008: a party without an endpoint used to get scheme EM (not in the list)."""
    buyer = BUYER.model_copy(update={"endpoint_id": "", "endpoint_scheme": ""})
    inv = energy_invoice().model_copy(update={"buyer": buyer})
    data = UblRenderer("ubl").render(inv)
    assert b'schemeID="EM"' not in data
    problems = UblRenderer("ubl").validate(data)
    assert any(p.startswith("PEPPOL-EN16931-R010") for p in problems)
    msgs = UblRenderer("ubl").check_parties(SELLER, buyer)
    assert len(msgs) == 1 and 'party "tenant_a" (buyer): set endpoint_id and endpoint_scheme' in msgs[0]
    assert "PEPPOL-EN16931-R010" in msgs[0]


def test_endpoint_scheme_from_the_code_list_and_gln_check() -> None:
    bad_scheme = BUYER.model_copy(update={"endpoint_id": "ap@tenant-a.example", "endpoint_scheme": "EM"})
    assert "PEPPOL-EN16931-CL008" in endpoint_problems(bad_scheme, "buyer")[0]
    inv = energy_invoice().model_copy(update={"buyer": bad_scheme})
    assert any(p.startswith("PEPPOL-EN16931-CL008") for p in UblRenderer("ubl").validate(UblRenderer("ubl").render(inv)))
    bad_gln = BUYER.model_copy(update={"endpoint_id": "0614141000028", "endpoint_scheme": "0088"})
    assert "PEPPOL-COMMON-R040" in endpoint_problems(bad_gln, "buyer")[0]
    duns = BUYER.model_copy(update={"endpoint_id": "0060:123456789", "endpoint_scheme": ""})
    assert endpoint_problems(duns, "buyer") == [] and duns.endpoint() == ("0060", "123456789")
    assert peppol_party_problems(SELLER, BUYER, {"S", "Z"}) == []


def test_cii_has_no_empty_delivery_and_one_buyer_identifier() -> None:
    """PEPPOL-EN16931-R008 (empty ApplicableHeaderTradeDelivery) and CII-SR-450 (ID and GlobalID)."""
    data = CiiRenderer("cii").render(energy_invoice())
    root = etree.fromstring(data)
    ns = {"ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"}
    delivery = root.find(".//ram:ApplicableHeaderTradeDelivery", ns)
    assert delivery is not None and len(delivery) > 0
    assert root.find(".//ram:BuyerTradeParty/ram:GlobalID", ns) is None
    empty = data.replace(b"<ram:Name>Hyperscale Compute A Inc.</ram:Name>", b"<ram:Name></ram:Name>")
    assert any(p.startswith("PEPPOL-EN16931-R008") for p in CiiRenderer("cii").validate(empty))


def test_payment_details_problems_name_the_field() -> None:
    assert PaymentDetails(iban="DE89 3704 0044 0532 0130 00").problems() == []
    assert PaymentDetails(iban="DE89370400440532013000").account_id == "DE89370400440532013000"
    assert "iban or account_number" in PaymentDetails().problems()[0]
    assert "iban is required" in PaymentDetails(means_code="58", account_number="1").problems()[0]
    assert "means_code" in PaymentDetails(means_code="77").problems()[0]


@pytest.mark.parametrize("renderer_id", ["ubl", "cii", "facturx"])
def test_line_emissions_travel_as_a_line_note_and_stay_valid(renderer_id: str) -> None:
    """Issue 16: each energy line carries its kg CO2e as the invoice line note (BT-127)."""
    from decimal import Decimal

    from kwhub.core.carbon_amounts import GasKg, LineEmissions

    inv = energy_invoice()
    gas = GasKg(co2=Decimal("1234.5"), ch4=Decimal("0.02"), n2o=Decimal("0.002"), co2e_reported=Decimal("10"))
    em = LineEmissions(gwp_set="AR5", kwh=Decimal("1000"), location=gas, market=gas, location_kg_co2e=Decimal("1245.59"),
                       market_kg_co2e=Decimal("1245.59"), factors=["egrid2024_rfce@eGRID2024"])
    inv = inv.model_copy(update={"lines": [inv.lines[0].model_copy(update={"emissions": em}), *inv.lines[1:]]})
    data = _xml_of(renderer_id, inv)
    assert b"1245.59 kg CO2e market-based" in data
    assert [str(f) for f in official_findings(data) if f.flag == "fatal"] == []
    if renderer_id == "ubl":
        assert UblRenderer("ubl").validate(data) == []
