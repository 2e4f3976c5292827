"""The invoice face (issue 18 item 7): one number rule, "Page X of Y", totals never alone on a
page, legal names and addresses instead of ids, no due date on a credit note, and exempt or
zero-rated lines with the right tax category (PDF, UBL and CII, checked by the official rules).

Every amount below is worked out by hand in the comments (Decimal), never by kwhub's pricing.
"""

from __future__ import annotations

import io
import re
from datetime import date
from decimal import Decimal as D

import pytest
from pydantic import ValidationError
from pypdf import PdfReader

from kwhub.core.campus import Contract
from kwhub.core.invoice import Address, Invoice, InvoiceLine, PartyRef, TaxSubtotal, compute_totals
from kwhub.core.money import MoneyPolicy
from kwhub.plugins.erp import face_numbers as fn
from kwhub.plugins.erp.cii import CiiRenderer
from kwhub.plugins.erp.csv_export import CsvRenderer
from kwhub.plugins.erp.pdf import PdfRenderer
from kwhub.plugins.erp.pdfa import pdfa_problems
from kwhub.plugins.erp.ubl import UblRenderer
from kwhub.plugins.erp.x12 import X12InvoiceRenderer
from tests.en16931 import fatal
from tests.fixtures.invoices import BUYER, SELLER, credit_note

OCT1, OCT31 = date(2026, 10, 1), date(2026, 10, 31)


def _pages(data: bytes) -> list[str]:
    return [" ".join((p.extract_text() or "").split()) for p in PdfReader(io.BytesIO(data)).pages]


def _long_invoice(n: int) -> Invoice:
    # each line: 100.000 kWh x 0.12 USD/kWh = 12.00 USD, standard rated 6 %
    lines = [InvoiceLine(number=i, description=f"Energy block {i:03d}", quantity=D("100.000"), unit="kWh",
                         unit_price=D("0.12"), amount=D("12.00"), tax_category="S", tax_percent=D("6"),
                         period_start=OCT1, period_end=OCT31) for i in range(1, n + 1)]
    net = D("12.00") * n
    tax = (net * D("0.06")).quantize(D("0.01"))
    return Invoice(id=f"inv-long-{n}", number=f"INV-2026-LONG{n}", seller=SELLER, buyer=BUYER,
                   issue_date=date(2026, 11, 5), due_date=date(2026, 12, 5), period_start=OCT1, period_end=OCT31,
                   lines=lines, taxes=[TaxSubtotal(category="S", percent=D("6"), taxable_amount=net, tax_amount=tax)],
                   line_total=net, tax_total=tax, total=net + tax)


# ---------------------------------------------------------------------------------- numbers


def test_one_number_rule_per_kind() -> None:
    # money: the currency's minor units, grouped thousands, the code after it
    assert fn.money(D("1234.5"), "USD") == "1,234.50 USD"
    assert fn.money(D("-0.5"), "EUR") == "-0.50 EUR"
    assert fn.money(D("1234"), "JPY") == "1,234 JPY"
    assert fn.money(D("12.3456"), "USD") == "12.3456 USD"  # a finer contract precision is never hidden
    assert fn.money(D("7"), "USD", code=False) == "7.00"
    # quantities: fixed decimals per unit
    assert fn.quantity(D("12345.6"), "kWh") == "12,345.600"
    assert fn.quantity(D("7.68"), "MWh") == "7.680"
    assert fn.quantity(D("412.5"), "kW") == "412.500"
    assert fn.quantity(D("1"), "each") == "1" and fn.quantity(D("1.000"), "month") == "1"
    # rates: at least the minor units, then their own decimals up to six
    assert fn.rate(D("32"), "USD") == "32.00"
    assert fn.rate(D("0.045670"), "USD") == "0.04567"
    assert fn.rate(D("0.0723451"), "USD") == "0.072345"
    assert fn.rate(D("1500"), "JPY") == "1,500"
    assert fn.percent(D("6")) == "6.00%" and fn.percent(D("6.25")) == "6.25%"


def test_a_yen_invoice_has_no_decimals_on_its_amounts() -> None:
    # 1,200.000 kWh x 21.5 JPY/kWh = 25,800 JPY; zero rated
    line = InvoiceLine(number=1, description="Energy", quantity=D("1200.000"), unit="kWh", unit_price=D("21.5"),
                       amount=D("25800"), tax_category="Z", tax_percent=D("0"), period_start=OCT1, period_end=OCT31)
    inv = compute_totals(Invoice(id="jp", number="INV-JP-1", seller=SELLER, buyer=BUYER, issue_date=date(2026, 11, 5),
                                 due_date=date(2026, 12, 5), period_start=OCT1, period_end=OCT31, currency="JPY",
                                 lines=[line]), MoneyPolicy(currency="JPY"))
    text = " ".join(_pages(PdfRenderer("pdf").render(inv)))
    assert "1,200.000 kWh x 21.5 JPY/kWh = 25,800 JPY" in text  # a rate keeps its own decimal
    assert "Total due 25,800 JPY" in text and "25,800.00" not in text


# ---------------------------------------------------------------------------------- pages


@pytest.mark.parametrize("n", range(14, 30))
def test_every_page_is_counted_and_the_totals_keep_their_last_lines(n: int) -> None:
    data = PdfRenderer("pdf").render(_long_invoice(n))
    pages = _pages(data)
    for i, text in enumerate(pages, start=1):
        assert text.endswith(f"Page {i} of {len(pages)}"), (n, i, text[-80:])
    # every line printed once, in order, across the pages
    numbers = [int(x) for x in re.findall(r"Energy block (\d{3})", " ".join(pages))]
    assert numbers == list(range(1, n + 1))
    # the totals' page also carries at least the last three lines
    (totals_page,) = [p for p in pages if "Total due" in p]
    assert len(re.findall(r"Energy block \d{3}", totals_page)) >= 3, n
    # net n x 12.00, tax 6 % of it
    net = D("12.00") * n
    tax = (net * D("0.06")).quantize(D("0.01"))
    assert f"Total due {fn.money(net + tax, 'USD')}" in totals_page


def test_a_long_invoice_spans_pages_and_stays_pdfa() -> None:
    # 25 lines: net 25 x 12.00 = 300.00; tax 6 % = 18.00; total 318.00
    data = PdfRenderer("pdf").render(_long_invoice(25))
    pages = _pages(data)
    assert len(pages) >= 2 and pages[0].endswith(f"Page 1 of {len(pages)}")
    assert "Total due 318.00 USD" in " ".join(pages) and "Net amount 300.00 USD" in " ".join(pages)
    # the table that carried the totals did not start its page alone: 3+ lines precede them there
    assert pdfa_problems(data) == []
    assert PdfRenderer("pdf").validate(data) == []
    # 60 lines: three and more pages, the totals page still with its lines
    pages60 = _pages(PdfRenderer("pdf").render(_long_invoice(60)))
    assert len(pages60) >= 3
    (last,) = [p for p in pages60 if "Total due" in p]
    assert "Energy block 058" in last and "Energy block 059" in last and "Energy block 060" in last


# ---------------------------------------------------------------------------------- parties


def test_parties_by_legal_name_and_address_never_by_id() -> None:
    data = PdfRenderer("pdf").render(_long_invoice(2))
    text = " ".join(_pages(data))
    assert "Blue Ridge Power Partners LLC" in text and "100 Turbine Way" in text and "Ashburn, VA 20147" in text
    assert "Hyperscale Compute A Inc." in text and "1 Data Hall Road" in text
    assert "Party id" not in text and "tenant_a" not in text and " ipp " not in f" {text} "


def test_a_missing_name_or_address_is_said_not_replaced_by_the_id() -> None:
    # a party the campus does not know is made from its id alone (core.settlement.party_ref)
    unknown = PartyRef(id="tenant_zz", name="tenant_zz")
    inv = _long_invoice(2).model_copy(update={"buyer": unknown})
    text = " ".join(_pages(PdfRenderer("pdf").render(inv)))
    assert "[legal name missing]" in text and "[postal address missing]" in text
    assert "tenant_zz" not in text
    cn = credit_note().model_copy(update={"buyer": unknown})
    data = PdfRenderer("pdf").render(cn)
    text = " ".join(_pages(data))
    assert "Amount credited to [legal name missing]:" in text and "tenant_zz" not in text
    assert "tenant_zz" not in str(PdfReader(io.BytesIO(data)).metadata)
    no_street = BUYER.model_copy(update={"address": Address(country="US")})
    text = " ".join(_pages(PdfRenderer("pdf").render(_long_invoice(2).model_copy(update={"buyer": no_street}))))
    assert "Hyperscale Compute A Inc." in text and "[postal address missing]" in text


# ---------------------------------------------------------------------------------- credit notes


def test_a_credit_note_shows_no_due_date() -> None:
    cn = credit_note()
    due = cn.due_date.isoformat()  # 2024-09-19: in the model, on no face of the credit note
    text = " ".join(_pages(PdfRenderer("pdf").render(cn)))
    assert "CREDIT NOTE" in text and "Total credited" in text
    assert due not in text and not re.search(r"\bDue\b", text)
    assert "Terms: Credited to the buyer's account, no payment due." in text
    assert due.encode() not in CiiRenderer("cii").render(cn)
    assert due.encode() not in UblRenderer("ubl").render(cn)
    csv = CsvRenderer("csv").render(cn).decode()
    assert due not in csv
    assert b"ITD*" not in X12InvoiceRenderer("x12").render(cn) and b"20240919" not in X12InvoiceRenderer("x12").render(cn)
    assert b"ITD*" in X12InvoiceRenderer("x12").render(_long_invoice(2))
    # an invoice keeps its due date everywhere
    inv = _long_invoice(2)
    assert "Due 2026-12-05" in " ".join(_pages(PdfRenderer("pdf").render(inv)))
    assert b"20261205" in CiiRenderer("cii").render(inv)


# ---------------------------------------------------------------------------------- tax categories


def test_a_contract_without_tax_is_zero_rated_and_standard_needs_a_rate() -> None:
    assert Contract(id="k", seller="s", buyer="b").tax_category == "Z"
    assert Contract(id="k", seller="s", buyer="b", tax_percent=D("6")).tax_category == "S"
    with pytest.raises(ValidationError, match="BR-S-05"):
        Contract(id="k", seller="s", buyer="b", tax_category="S", tax_percent=D("0"))
    with pytest.raises(ValidationError, match="tax_exemption_reason: required for tax_category E"):
        Contract(id="k", seller="s", buyer="b", tax_category="E")
    with pytest.raises(ValidationError, match="tax_percent: must be 0 for tax_category Z"):
        Contract(id="k", seller="s", buyer="b", tax_category="Z", tax_percent=D("5"))
    with pytest.raises(ValidationError, match="not allowed for tax_category Z"):
        Contract(id="k", seller="s", buyer="b", tax_category="Z", tax_exemption_reason="why")
    ok = Contract(id="k", seller="s", buyer="b", tax_category="E", tax_exemption_reason="Exempt supply of electricity")
    assert ok.tax_exemption == ("Exempt supply of electricity", "")


def _mixed_invoice() -> Invoice:
    # line 1: 1,000.000 kWh x 0.10 = 100.00, S 6 % -> tax 6.00
    # line 2: 500.000 kWh x 0.10 = 50.00, E (exempt) -> tax 0.00, with its reason
    # line 3: 200.000 kWh x 0.10 = 20.00, Z (zero rated) -> tax 0.00
    # net 170.00; tax 6.00; total 176.00
    def line(n: int, kwh: str, amount: str, cat: str, pct: str, reason: str = "", code: str = "") -> InvoiceLine:
        return InvoiceLine(number=n, description=f"Energy {cat}", quantity=D(kwh), unit="kWh", unit_price=D("0.10"),
                           amount=D(amount), tax_category=cat, tax_percent=D(pct), tax_exemption_reason=reason,
                           tax_exemption_code=code, period_start=OCT1, period_end=OCT31)

    lines = [line(1, "1000.000", "100.00", "S", "6"),
             line(2, "500.000", "50.00", "E", "0", "Exempt supply of electricity to a hospital", "VATEX-EU-132"),
             line(3, "200.000", "20.00", "Z", "0")]
    seller = SELLER.model_copy(update={"tax_id": "DE123456789", "tax_scheme": "VAT"})
    inv = Invoice(id="mix", number="INV-2026-MIX", seller=seller, buyer=BUYER, buyer_reference="PO-77",
                  issue_date=date(2026, 11, 5),
                  due_date=date(2026, 12, 5), period_start=OCT1, period_end=OCT31, lines=lines)
    return compute_totals(inv, MoneyPolicy(currency="USD"))


def test_exempt_and_zero_rated_lines_carry_their_category_and_reason() -> None:
    inv = _mixed_invoice()
    assert (inv.line_total, inv.tax_total, inv.total) == (D("170.00"), D("6.00"), D("176.00"))
    by_cat = {t.category: t for t in inv.taxes}
    assert by_cat["E"].exemption_reason == "Exempt supply of electricity to a hospital"
    assert by_cat["E"].exemption_code == "VATEX-EU-132"
    assert by_cat["Z"].exemption_reason == "" and by_cat["S"].tax_amount == D("6.00")
    data = PdfRenderer("pdf").render(inv)
    text = " ".join(_pages(data))
    assert "E 0.00% 50.00" in text and "Z 0.00% 20.00" in text and "S 6.00% 100.00" in text
    assert "Tax E 0.00% on 50.00 USD (Exempt supply of electricity to a hospital) 0.00 USD" in text
    assert "Total due 176.00 USD" in text
    assert pdfa_problems(data) == []
    ubl = UblRenderer("ubl").render(inv)
    assert b"<cbc:TaxExemptionReasonCode>VATEX-EU-132</cbc:TaxExemptionReasonCode>" in ubl
    assert b"<cbc:TaxExemptionReason>Exempt supply of electricity to a hospital</cbc:TaxExemptionReason>" in ubl
    cii = CiiRenderer("cii").render(inv)
    assert b"<ram:ExemptionReasonCode>VATEX-EU-132</ram:ExemptionReasonCode>" in cii
    for doc in (ubl, cii):
        assert fatal(doc) == []
    assert UblRenderer("ubl").validate(ubl) == [] and CiiRenderer("cii").validate(cii) == []


def test_a_line_without_an_exemption_keeps_its_earlier_bytes() -> None:
    # documents and run statements issued before the exemption fields existed keep their hashes
    line = _mixed_invoice().lines[0]
    assert "tax_exemption_reason" not in line.model_dump() and "tax_exemption_code" not in line.model_dump()
    assert "exemption_reason" not in _mixed_invoice().taxes[1].model_dump()
    assert _mixed_invoice().lines[1].model_dump()["tax_exemption_code"] == "VATEX-EU-132"


def test_lines_issued_as_s_at_zero_are_corrected_as_z_without_a_spurious_reversal() -> None:
    from kwhub.core.settlement import draft_document

    policy = MoneyPolicy(currency="USD")

    def line(cat: str, kwh: str, amount: str) -> InvoiceLine:
        return InvoiceLine(number=1, description="Energy", component_id="energy", quantity=D(kwh), unit="kWh",
                           unit_price=D("0.10"), amount=D(amount), tax_category=cat, tax_percent=D("0"))

    # an old invoice line written S at 0 %: 1,000.000 kWh x 0.10 = 100.00; the same re-run now writes Z
    assert draft_document([line("Z", "1000.000", "100.00")], [line("S", "1000.000", "100.00")], policy).kind is None
    # restated to 1,010.000 kWh: +10.000 kWh x 0.10 = +1.00, as Z, and one Z tax breakdown
    doc = draft_document([line("Z", "1010.000", "101.00")], [line("S", "1000.000", "100.00")], policy)
    assert [(ln.tax_category, ln.quantity, ln.amount) for ln in doc.lines] == [("Z", D("10.000"), D("1.00"))]
    assert [(t.category, t.taxable_amount, t.tax_amount) for t in doc.taxes] == [("Z", D("1.00"), D("0.00"))]


def test_amendments_move_the_tax_category_with_the_rate_and_need_a_reason_for_exempt() -> None:
    from kwhub.core.campus import Amendment
    from kwhub.core.contract_versions import AmendmentError, contract_versions

    base = Contract(id="k", seller="s", buyer="b", start="2026-01")
    assert base.tax_category == "Z"
    taxed = base.model_copy(update={"amendments": [Amendment(effective=date(2026, 7, 1), tax_percent=D("5"))]})
    v1, v2 = contract_versions(taxed)
    assert (v1.contract.tax_category, v2.contract.tax_category, v2.contract.tax_percent) == ("Z", "S", D("5"))
    # version 1's terms show Z, and hash as they did when zero tax was written S at 0 %: settled runs match
    assert v1.terms_json()["tax_category"] == "Z"
    legacy = base.model_copy(update={"tax_category": "S"})  # what kwhub made of such a contract before
    assert contract_versions(base)[0].terms_hash == contract_versions(legacy)[0].terms_hash
    exempt = base.model_copy(update={"amendments": [Amendment(effective=date(2026, 7, 1), tax_category="E")]})
    with pytest.raises(AmendmentError, match="tax_exemption_reason: required for tax_category E"):
        contract_versions(exempt)
    ok = base.model_copy(update={"amendments": [Amendment(effective=date(2026, 7, 1), tax_category="E",
                                                          tax_exemption_reason="Exempt supply")]})
    assert contract_versions(ok)[1].contract.tax_exemption == ("Exempt supply", "")
    assert contract_versions(ok)[1].terms_json()["tax_exemption_reason"] == "Exempt supply"
