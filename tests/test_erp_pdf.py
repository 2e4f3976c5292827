"""Human-readable PDF: text content checked with pypdf, page 1 rasterised when possible."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import pytest
from pypdf import PdfReader

from kwhub.plugins.erp.pdf import PdfRenderer, daily_usage, fmt_money
from tests.fixtures.invoices import context, credit_note, energy_invoice


def _text(data: bytes) -> str:
    return " ".join(" ".join(p.extract_text() or "" for p in PdfReader(io.BytesIO(data)).pages).split())


def test_pdf_shows_number_total_usage_and_lineage() -> None:
    inv = energy_invoice()
    r = PdfRenderer("pdf")
    data = r.render(inv, context(usage=True, with_lineage=True))
    assert r.validate(data) == []
    text = _text(data)
    assert "INV-2024-000123" in text
    assert fmt_money(inv.total, "USD") in text  # "617,114.14 USD"
    assert "Usage in the period" in text
    assert "run-2024-07-ppa-a-v1" in text
    assert "Input data (channel-day hashes)" in text and "93" in text  # data hash count
    assert "2976 x 15 min" in text
    for ln in inv.lines:
        assert fmt_money(ln.amount) in text


def test_credit_note_pdf_names_the_original() -> None:
    data = PdfRenderer("pdf", {"page_size": "A4"}).render(credit_note())
    text = _text(data)
    assert "CREDIT NOTE" in text and "CN-2024-000007" in text
    assert "Credits invoice: INV-2024-000123" in text
    assert "Total credited" in text


def test_daily_usage_sums_intervals_per_day() -> None:
    from datetime import UTC, datetime, timedelta

    start = datetime(2024, 7, 1, tzinfo=UTC)
    pairs = [(start + timedelta(minutes=15 * i), 1.0) for i in range(96 * 2 + 4)]
    days, sums = daily_usage(pairs)
    assert [d.isoformat() for d in days] == ["2024-07-01", "2024-07-02", "2024-07-03"]
    assert sums.tolist() == [96.0, 96.0, 4.0]


def test_validate_rejects_non_pdf() -> None:
    assert PdfRenderer("pdf").validate(b"hello") == ["PDF: missing %PDF- header"]


def test_page_one_rasterises(tmp_path: Path) -> None:
    if shutil.which("pdftoppm") is None:
        from tests.fixtures.services import require_services

        msg = "pdftoppm (Debian poppler-utils) is not installed"
        if require_services():
            pytest.fail(msg + " (KWHUB_REQUIRE_SERVICES=1 forbids skipping)")
        pytest.skip(msg)
    pdf = tmp_path / "inv.pdf"
    pdf.write_bytes(PdfRenderer("pdf").render(energy_invoice(), context(usage=True, with_lineage=True)))
    subprocess.run(["pdftoppm", "-r", "50", "-png", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "p")],
                   check=True, timeout=60)
    png = next(tmp_path.glob("p*.png"))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
