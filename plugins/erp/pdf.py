"""A human-readable PDF invoice drawn with reportlab.

Page content: document title and number (invoice, adjustment invoice or credit note, with
the original it refers to), seller and buyer blocks, billing period and references, the
lines table, tax breakdown and totals, the period's usage chart (``extras["usage"]``:
``[(start, kWh), ...]`` at any interval length, summed per day for the chart) and the
explain-lineage summary (``extras["lineage"]``: ``run_id``, ``data_hashes`` (list or
count), ``versions`` mapping).
"""

from __future__ import annotations

import io
from datetime import date
from decimal import Decimal
from typing import Any, ClassVar

import numpy as np
from reportlab.graphics.charts.barcharts import VerticalBarChart
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4, letter
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from kwhub.core.adapters import AdapterConfig, InvoiceRenderer
from kwhub.core.hookspecs import hookimpl
from kwhub.core.invoice import Invoice, PartyRef, usage_arrays

TITLES = {"invoice": "INVOICE", "adjustment": "ADJUSTMENT INVOICE", "credit_note": "CREDIT NOTE"}
_STYLES = getSampleStyleSheet()
_SMALL = ParagraphStyle("small", parent=_STYLES["Normal"], fontSize=8, leading=10)
_SMALL_R = ParagraphStyle("small_r", parent=_SMALL, alignment=TA_RIGHT)
_H = ParagraphStyle("h", parent=_STYLES["Heading2"], spaceBefore=6, spaceAfter=4)
_ACCENT = colors.HexColor("#1f4e79")


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def fmt_money(value: Decimal, currency: str = "") -> str:
    """``1,234.56`` (with the currency code when given); negatives as ``-1,234.56``."""
    s = f"{value:,.2f}"
    return f"{s} {currency}" if currency else s


def fmt_number(value: Decimal, max_places: int = 6) -> str:
    """Grouped thousands, trailing zeros trimmed (at most ``max_places`` decimals)."""
    q = value.quantize(Decimal(1).scaleb(-max_places)) if value.as_tuple().exponent < -max_places else value  # type: ignore[operator]
    s = f"{q:,f}"
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s


def daily_usage(usage: Any) -> tuple[list[date], np.ndarray]:
    """Sum ``[(start, kWh), ...]`` (or ``(starts, values)`` arrays) per UTC calendar day."""
    starts, values = usage_arrays(usage)
    if not len(starts):
        return [], np.empty(0)
    uniq, inverse = np.unique(starts.astype("datetime64[D]"), return_inverse=True)
    sums = np.bincount(inverse, weights=np.nan_to_num(values), minlength=uniq.size)
    return [d.item() for d in uniq], sums


def _usage_chart(usage: Any, width: float) -> Drawing | None:
    days, kwh = daily_usage(usage)
    if not days:
        return None
    height = 125
    d = Drawing(width, height)
    chart = VerticalBarChart()
    chart.x, chart.y = 45, 30
    chart.width, chart.height = width - 60, height - 55
    scale, unit = (1000.0, "MWh") if kwh.max() >= 10000 else (1.0, "kWh")
    chart.data = [list(np.round(kwh / scale, 3))]
    chart.bars[0].fillColor = _ACCENT
    chart.bars[0].strokeColor = None
    chart.valueAxis.valueMin = 0
    chart.valueAxis.labels.fontSize = 7
    step = max(1, len(days) // 16)
    chart.categoryAxis.categoryNames = [f"{x.day}" if i % step == 0 else "" for i, x in enumerate(days)]
    chart.categoryAxis.labels.fontSize = 7
    chart.categoryAxis.labels.boxAnchor = "n"
    d.add(chart)
    d.add(String(45, height - 14, f"Daily energy ({unit}), {days[0].isoformat()} to {days[-1].isoformat()}, "
                 f"total {fmt_number(Decimal(str(round(float(kwh.sum()), 3))))} kWh",
                 fontSize=8, fillColor=colors.black))
    return d


def _party_block(label: str, p: PartyRef) -> Paragraph:
    a = p.address
    parts = [f"<b>{label}</b>", f"<b>{_esc(p.name)}</b>"]
    if a.street:
        parts.append(_esc(a.street))
    city = " ".join(x for x in (a.city + ("," if a.city and (a.region or a.postal_code) else ""), a.region, a.postal_code) if x)
    if city:
        parts.append(_esc(city))
    parts.append(_esc(a.country))
    if p.tax_id:
        parts.append(f"Tax id: {_esc(p.tax_id)}")
    if p.email:
        parts.append(_esc(p.email))
    parts.append(f"Party id: {_esc(p.id)}")
    return Paragraph("<br/>".join(parts), _SMALL)


def _table_style(header_rows: int = 1) -> TableStyle:
    return TableStyle([
        ("FONT", (0, 0), (-1, -1), "Helvetica", 8),
        ("FONT", (0, 0), (-1, header_rows - 1), "Helvetica-Bold", 8),
        ("BACKGROUND", (0, 0), (-1, header_rows - 1), colors.HexColor("#dde6f0")),
        ("LINEBELOW", (0, 0), (-1, header_rows - 1), 0.6, _ACCENT),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("ALIGN", (3, 0), (-1, -1), "RIGHT"),
        ("ROWBACKGROUNDS", (0, header_rows), (-1, -1), [colors.white, colors.HexColor("#f6f8fa")]),
    ])


def render_pdf(invoice: Invoice, extras: dict[str, Any] | None = None, page_size: str = "letter") -> bytes:
    """The readable PDF of ``invoice`` as bytes."""
    extras = extras or {}
    size = A4 if page_size.upper() == "A4" else letter
    buf = io.BytesIO()
    title = TITLES.get(invoice.kind, "INVOICE")
    doc = SimpleDocTemplate(buf, pagesize=size, leftMargin=16 * mm, rightMargin=16 * mm,
                            topMargin=14 * mm, bottomMargin=16 * mm, invariant=True,
                            title=f"{title.title()} {invoice.number}", author=invoice.seller.name,
                            subject=f"{title.title()} {invoice.number} for {invoice.buyer.name}")
    width = size[0] - 32 * mm
    cur = invoice.currency
    story: list[Any] = []

    head = Table([[Paragraph(f"<font size=16 color='#1f4e79'><b>{title}</b></font>", _STYLES["Normal"]),
                   Paragraph(f"<b>No. {_esc(invoice.number)}</b><br/>Issued {invoice.issue_date.isoformat()}"
                             f"<br/>Due {invoice.due_date.isoformat()}<br/>Version {invoice.version}", _SMALL_R)]],
                 colWidths=[width * 0.6, width * 0.4])
    head.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP")]))
    story += [head, Spacer(1, 4 * mm)]
    parties = Table([[_party_block("From", invoice.seller), _party_block("Bill to", invoice.buyer)]],
                    colWidths=[width / 2, width / 2])
    parties.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"),
                                 ("BOX", (0, 0), (0, 0), 0.4, colors.grey),
                                 ("BOX", (1, 0), (1, 0), 0.4, colors.grey)]))
    story += [parties, Spacer(1, 3 * mm)]

    facts = [f"<b>Billing period:</b> {invoice.period_start.isoformat()} to {invoice.period_end.isoformat()}"]
    if invoice.contract_id:
        facts.append(f"<b>Contract:</b> {_esc(invoice.contract_id)}")
    if invoice.buyer_reference:
        facts.append(f"<b>Your reference:</b> {_esc(invoice.buyer_reference)}")
    for ref in invoice.references:
        verb = "Credits invoice" if invoice.is_credit else "Adjusts invoice"
        when = f" of {ref.issue_date.isoformat()}" if ref.issue_date else ""
        facts.append(f"<b>{verb}:</b> {_esc(ref.number)}{when}")
    story.append(Paragraph(" &nbsp;|&nbsp; ".join(facts), _SMALL))
    if invoice.note:
        story.append(Paragraph(_esc(invoice.note), _SMALL))
    story.append(Spacer(1, 3 * mm))

    rows: list[list[Any]] = [["#", "Description", "Period", "Quantity", "Unit", "Unit price", "Tax", "Amount"]]
    for ln in invoice.lines:
        per = ""
        if ln.period_start or ln.period_end:
            per = f"{ln.period_start.strftime('%m-%d') if ln.period_start else ''}..{ln.period_end.strftime('%m-%d') if ln.period_end else ''}"
        tax = f"{ln.tax_category} {fmt_number(ln.tax_percent, 2)}%"
        rows.append([str(ln.number), Paragraph(_esc(ln.description), _SMALL), per, fmt_number(ln.quantity, 3),
                     ln.unit, fmt_number(ln.unit_price), tax, fmt_money(ln.amount)])
    lines = Table(rows, colWidths=[8 * mm, width - 8 * mm - 130 * mm, 20 * mm, 26 * mm, 12 * mm, 22 * mm, 18 * mm, 32 * mm],
                  repeatRows=1)
    lines.setStyle(_table_style())
    story += [lines, Spacer(1, 3 * mm)]

    trows: list[list[str]] = [["", "Net amount", fmt_money(invoice.line_total, cur)]]
    for t in invoice.taxes:
        trows.append(["", f"Tax {t.category} {fmt_number(t.percent, 2)}% on {fmt_money(t.taxable_amount)}",
                      fmt_money(t.tax_amount, cur)])
    label = "Total credited" if invoice.is_credit else "Total due"
    trows.append(["", label, fmt_money(invoice.total, cur)])
    totals = Table(trows, colWidths=[width - 110 * mm, 70 * mm, 40 * mm])
    totals.setStyle(TableStyle([
        ("FONT", (0, 0), (-1, -1), "Helvetica", 9),
        ("FONT", (0, -1), (-1, -1), "Helvetica-Bold", 10),
        ("ALIGN", (2, 0), (2, -1), "RIGHT"),
        ("LINEABOVE", (1, -1), (-1, -1), 0.8, _ACCENT),
    ]))
    story += [KeepTogether(totals), Spacer(1, 4 * mm)]

    if extras.get("usage") is not None:
        chart = _usage_chart(extras["usage"], width)
        if chart is not None:
            story += [Paragraph("Usage in the period", _H), chart]

    lineage = extras.get("lineage")
    run_id = invoice.run_id
    if lineage or run_id:
        lineage = lineage or {}
        hashes = lineage.get("data_hashes", lineage.get("data_hash_count", 0))
        n_hashes = len(hashes) if isinstance(hashes, list | tuple | set) else int(hashes or 0)
        versions = lineage.get("versions") or {}
        lrows = [["Settlement run", str(lineage.get("run_id") or run_id or "-")],
                 ["Input data (channel-day hashes)", str(n_hashes)]]
        for k in sorted(versions):
            lrows.append([f"Version: {k}", str(versions[k])])
        lt = Table(lrows, colWidths=[60 * mm, width - 60 * mm])
        lt.setStyle(TableStyle([("FONT", (0, 0), (-1, -1), "Helvetica", 8),
                                ("FONT", (0, 0), (0, -1), "Helvetica-Bold", 8),
                                ("LINEBELOW", (0, 0), (-1, -2), 0.25, colors.lightgrey)]))
        story += [Paragraph("How this invoice was computed", _H), lt]

    def footer(canvas: Any, doc_: Any) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 7)
        canvas.setFillColor(colors.grey)
        canvas.drawString(16 * mm, 9 * mm, f"{invoice.seller.name} - {title.title()} {invoice.number}")
        canvas.drawRightString(size[0] - 16 * mm, 9 * mm, f"Page {doc_.page}")
        canvas.restoreState()

    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return buf.getvalue()


class PdfConfig(AdapterConfig):
    """``page_size``: ``letter`` or ``A4``."""

    page_size: str = "letter"


class PdfRenderer(InvoiceRenderer):
    """Human-readable PDF invoice with usage chart and lineage summary."""

    type_id: ClassVar[str] = "erp.pdf"
    title: ClassVar[str] = "PDF invoice"
    format_id: ClassVar[str] = "pdf"
    media_type: ClassVar[str] = "application/pdf"
    file_extension: ClassVar[str] = ".pdf"
    capabilities: ClassVar[frozenset[str]] = frozenset({"render", "validate"})
    Config = PdfConfig
    config: PdfConfig

    def render(self, invoice: Invoice, extras: dict[str, Any] | None = None) -> bytes:
        return render_pdf(invoice, extras, self.config.page_size)

    def validate(self, data: bytes) -> list[str]:
        """The bytes are a PDF that opens and has at least one page with text."""
        if not data.startswith(b"%PDF-"):
            return ["PDF: missing %PDF- header"]
        if b"%%EOF" not in data[-1024:]:
            return ["PDF: missing %%EOF trailer"]
        try:
            from pypdf import PdfReader
        except ImportError:
            return []
        try:
            reader = PdfReader(io.BytesIO(data))
            if not reader.pages:
                return ["PDF: no pages"]
            if not (reader.pages[0].extract_text() or "").strip():
                return ["PDF: page 1 has no text"]
        except Exception as exc:  # pypdf raises many error types on broken files
            return [f"PDF: cannot be read: {exc}"]
        return []


@hookimpl
def kwhub_register_erp_adapters(register: Any) -> None:
    register(PdfRenderer)
