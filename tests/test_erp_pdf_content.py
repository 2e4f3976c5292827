"""What a reader finds in the invoice PDF: each line's own period, how each amount was computed
(formula and bill determinants) and the payment instructions, read back with pdftotext
(poppler-utils) and pypdf; and a PDF whose font is not embedded is not PDF/A.

The invoice is built here by hand: every quantity, price and amount below is worked out with
Decimal in the comments, never by kwhub's pricing.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from datetime import UTC, date, datetime
from decimal import Decimal as D

import pytest
from pypdf import PdfReader
from reportlab.lib.pagesizes import letter
from reportlab.pdfgen import canvas

from kwhub.core.invoice import Invoice, InvoiceLine, PaymentDetails, TaxSubtotal
from kwhub.plugins.erp.pdf import PdfRenderer
from kwhub.plugins.erp.pdfa import make_pdfa, pdfa_problems
from kwhub.testing.invoices import BUYER, SELLER

OCT5, OCT6 = date(2026, 10, 5), date(2026, 10, 6)
# line 1, gas energy of 5 October: 7,680 kWh = 7.680 MWh x 32.00 (9 x 3.000 + 5) = 245.76
# line 2, gas energy of 6 October: 7.680 MWh x 36.50 (9 x 3.500 + 5) = 280.32
# line 3, demand of October: peak 412.5 kW x 10.00 = 4,125.00
# net 245.76 + 280.32 + 4,125.00 = 4,651.08; tax 6 % = 279.0648 -> 279.06; total 4,930.14
LINES = [
    InvoiceLine(number=1, description="Gas turbine energy (fuel-indexed)", charge_type="energy", quantity=D("7.680"),
                unit="MWh", unit_price=D("32.00"), amount=D("245.76"), tax_category="S", tax_percent=D("6"),
                component_id="fuel_indexed", source_asset="gt1", period_start=OCT5, period_end=OCT5,
                determinants={"day": "2026-10-05", "index": "hh", "index_price": "3.000", "heat_rate": "9",
                              "adder_per_mwh": "5", "formula_price": "32.00", "energy_kwh": "7680"}),
    InvoiceLine(number=2, description="Gas turbine energy (fuel-indexed)", charge_type="energy", quantity=D("7.680"),
                unit="MWh", unit_price=D("36.50"), amount=D("280.32"), tax_category="S", tax_percent=D("6"),
                component_id="fuel_indexed", source_asset="gt1", period_start=OCT6, period_end=OCT6,
                determinants={"day": "2026-10-06", "index": "hh", "index_price": "3.500", "heat_rate": "9",
                              "adder_per_mwh": "5", "formula_price": "36.50", "energy_kwh": "7680"}),
    InvoiceLine(number=3, description="Demand charge", charge_type="demand", quantity=D("412.5"), unit="kW",
                unit_price=D("10.00"), amount=D("4125.00"), tax_category="S", tax_percent=D("6"),
                component_id="demand", period_start=date(2026, 10, 1), period_end=date(2026, 10, 31),
                determinants={"peak_kw": "412.5", "peak_interval_start": "2026-10-14T18:15:00+00:00",
                              "price_per_kw_month": "10.00"}),
]
NET = D("245.76") + D("280.32") + D("4125.00")
TAX = (NET * D("0.06")).quantize(D("0.01"))
assert (NET, TAX) == (D("4651.08"), D("279.06"))

SELLER_PAID = SELLER.model_copy(update={"payment": PaymentDetails(
    means_code="30", account_number="4400123456", routing_number="021000021", account_name="Blue Ridge Power LLC",
    bank_name="First Example Bank", remittance_text="BRP-2026-10-A", terms="Net 30 days by ACH or wire")})


def _invoice() -> Invoice:
    return Invoice(id="inv-2026-10-a", number="INV-2026-000042", kind="invoice", version=1, seller=SELLER_PAID,
                   buyer=BUYER, issue_date=date(2026, 11, 5), due_date=date(2026, 12, 5),
                   period_start=date(2026, 10, 1), period_end=date(2026, 10, 31), currency="USD", contract_id="ppa-a",
                   run_id="ppa-a:2026-10:initial:1", lines=LINES,
                   taxes=[TaxSubtotal(category="S", percent=D("6"), taxable_amount=NET, tax_amount=TAX)],
                   line_total=NET, tax_total=TAX, total=NET + TAX)


def _pdftotext(data: bytes, tmp_path) -> str:  # noqa: ANN001
    if shutil.which("pdftotext") is None:
        from tests.fixtures.services import require_services

        msg = "pdftotext (Debian poppler-utils) is not installed"
        if require_services():
            pytest.fail(msg + " (KWHUB_REQUIRE_SERVICES=1 forbids skipping)")
        pytest.skip(msg)
    pdf = tmp_path / "inv.pdf"
    pdf.write_bytes(data)
    out = subprocess.run(["pdftotext", "-raw", str(pdf), "-"], check=True, capture_output=True, timeout=60)
    return " ".join(out.stdout.decode().split())


def _pypdf(data: bytes) -> str:
    return " ".join(" ".join(p.extract_text() or "" for p in PdfReader(io.BytesIO(data)).pages).split())


@pytest.fixture(scope="module")
def pdf() -> bytes:
    data = PdfRenderer("pdf").render(_invoice())
    assert PdfRenderer("pdf").validate(data) == []
    return data


def test_each_line_shows_its_own_period(pdf, tmp_path):
    text = _pdftotext(pdf, tmp_path)
    assert "Billing period: 2026-10-01 to 2026-10-31" in text
    # a daily line carries its own day beside its quantity, price and amount, not the month
    # (quantities with their unit's three decimals, rates with at least the currency's two, tax rates with two)
    assert "1 Gas turbine energy (fuel-indexed) 2026-10-05 7.680 MWh 32.00 S 6.00% 245.76" in text
    assert "2 Gas turbine energy (fuel-indexed) 2026-10-06 7.680 MWh 36.50 S 6.00% 280.32" in text
    # the monthly demand line its span (wrapped in the narrow period column)
    assert "3 Demand charge 2026-10-01..2026- 10-31 412.500 kW 10.00 S 6.00% 4,125.00" in text
    flat = _pypdf(pdf).replace(" ", "")
    assert "2026-10-05" in flat and "2026-10-06" in flat and "2026-10-01..2026-10-31" in flat


def test_each_line_shows_its_formula_and_determinants(pdf, tmp_path):
    text = _pdftotext(pdf, tmp_path)
    assert "How each line was computed" in text
    assert "7.680 MWh x 32.00 USD/MWh = 245.76 USD" in text
    assert "7.680 MWh x 36.50 USD/MWh = 280.32 USD" in text
    assert "412.500 kW x 10.00 USD/kW = 4,125.00 USD" in text
    # the determinants with their labels: day, index and its value, heat rate, adder, formula price
    for det in ("day 2026-10-05", "index hh", "index price 3.000", "heat rate MMBtu/MWh 9", "adder/MWh 5",
                "formula price/MWh 32.00", "index price 3.500", "formula price/MWh 36.50",
                "peak kW 412.5", "peak interval (UTC) 2026-10-14T18:15:00+00:00", "price/kW-month 10.00"):
        assert det in text, det
    # pypdf keeps each row of the table together: the formula beside that line's own determinants
    rows = _pypdf(pdf)
    assert ("1 7.680 MWh x 32.00 USD/MWh = 245.76 USD energy kWh 7680; day 2026-10-05; index hh; index price 3.000; "
            "heat rate MMBtu/MWh 9; adder/MWh 5; formula price/MWh 32.00") in rows
    assert ("2 7.680 MWh x 36.50 USD/MWh = 280.32 USD energy kWh 7680; day 2026-10-06; index hh; index price 3.500; "
            "heat rate MMBtu/MWh 9; adder/MWh 5; formula price/MWh 36.50") in rows
    assert ("3 412.500 kW x 10.00 USD/kW = 4,125.00 USD peak kW 412.5; peak interval (UTC) 2026-10-14T18:15:00+00:00; "
            "price/kW-month 10.00") in rows
    # totals: net 4,651.08, tax 6 % 279.06, total 4,930.14
    assert "4,651.08 USD" in text and "279.06 USD" in text and "4,930.14 USD" in text


def test_the_payment_instructions_say_how_to_pay(pdf, tmp_path):
    for text in (_pdftotext(pdf, tmp_path), _pypdf(pdf)):
        assert "Amount due: 4,930.14 USD by 2026-12-05." in text
        assert ("Pay by credit transfer to Blue Ridge Power LLC at First Example Bank, account 4400123456, "
                "routing 021000021.") in text
        assert "Quote: BRP-2026-10-A." in text
        assert "Terms: Net 30 days by ACH or wire." in text


def test_a_credit_note_names_the_refund(tmp_path):
    # the buyer's account refunds a credit note: 412.5 kW - 400.0 kW = 12.5 kW x 10.00 = 125.00; tax 7.50; 132.50
    ln = LINES[2].model_copy(update={"quantity": D("12.5"), "amount": D("125.00")})
    cn = _invoice().model_copy(update={
        "kind": "credit_note", "number": "CN-2026-000003", "lines": [ln],
        "taxes": [TaxSubtotal(category="S", percent=D("6"), taxable_amount=D("125.00"), tax_amount=D("7.50"))],
        "line_total": D("125.00"), "tax_total": D("7.50"), "total": D("132.50")})
    text = _pdftotext(PdfRenderer("pdf").render(cn), tmp_path)
    assert f"Amount credited to {BUYER.name}: 132.50 USD." in text
    assert "Refund by credit transfer to" in text


def test_the_rendered_pdf_is_pdfa_and_a_pdf_without_embedded_fonts_is_not(pdf):
    assert pdfa_problems(pdf) == []
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=letter)
    c.setFont("Helvetica", 12)  # one of the standard 14 fonts: reportlab never embeds it
    c.drawString(72, 720, "Invoice INV-2026-000042")
    c.showPage()
    c.save()
    plain = buf.getvalue()
    assert pdfa_problems(plain) == [
        "PDF/A: font /Helvetica is not embedded",
        "PDF/A: no OutputIntent with an ICC profile (/OutputIntents)",
        "PDF/A: the XMP metadata does not identify the file as PDF/A-3 (pdfaid:part)",
    ]
    # an OutputIntent and PDF/A XMP do not make up for the font
    wrapped = make_pdfa(plain, title="t", author="a", subject="s", created=datetime(2026, 11, 5, tzinfo=UTC))
    assert pdfa_problems(wrapped) == ["PDF/A: font /Helvetica is not embedded"]
