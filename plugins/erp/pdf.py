"""A human-readable PDF invoice drawn with reportlab, written as PDF/A-3 (level B).

Page content: document title and number (invoice, adjustment invoice or credit note, with
the original it refers to; a credit note shows no due date), seller and buyer blocks (legal
name and postal address, a missing one said as ``[... missing]``, never an id; tax
identifier with its scheme, electronic address), billing period and references, the lines
table (each line with its own period) ending in the totals, which keep at least the last
three lines on their page, how each line was computed (the formula ``quantity x unit price = amount``
and its bill determinants: TOU hours, demand peak and its interval, index values ...),
tax breakdown and totals, payment instructions, the period's usage chart
(``context.usage``, summed per day) and the data lineage (``context.lineage``: the
settlement run and the number of channel-day hashes it read; ``context.explain``: the
interval grid and the allocation). Every page ends in ``Page X of Y``; every amount,
quantity, rate and percentage is written by :mod:`kwhub.plugins.erp.face_numbers`.

PDF/A-3: every glyph is drawn with the DejaVu fonts shipped in ``plugins/erp/fonts``
(embedded as subsets; licence beside them), the document carries an sRGB OutputIntent
(an ICC profile made by LittleCMS through Pillow) and XMP metadata identifying it as
PDF/A-3B. With ``context.envelope`` the creation date is the envelope's, so the same
document renders to the same bytes.
"""

from __future__ import annotations

import io
import threading
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

from reportlab.graphics.charts.barcharts import VerticalBarChart
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4, letter
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from kwhub.core.adapters import AdapterConfig, InvoiceRenderer
from kwhub.core.hookspecs import hookimpl
from kwhub.core.invoice import PAYMENT_MEANS_CODES, Invoice, InvoiceLine, PartyRef
from kwhub.core.render_context import RenderContext, UsageSeries
from kwhub.plugins.erp import face_numbers as fn

TITLES = {"invoice": "INVOICE", "adjustment": "ADJUSTMENT INVOICE", "credit_note": "CREDIT NOTE"}
FONT_DIR = Path(__file__).resolve().parent / "fonts"
FONT = "DejaVuSans"
FONT_BOLD = "DejaVuSans-Bold"
_ACCENT = colors.HexColor("#1f4e79")
_FONT_LOCK = threading.Lock()
# determinant keys printed with a label, in this order; the others follow as they are
DETERMINANT_LABELS = {
    "tou_period": "TOU period", "hours": "hours in period", "intervals": "intervals", "energy_kwh": "energy kWh",
    "day": "day", "index": "index", "index_price": "index price", "index_day": "index published",
    "heat_rate": "heat rate MMBtu/MWh", "adder_per_mwh": "adder/MWh", "formula_price": "formula price/MWh",
    "price_limit": "price limit", "peak_kw": "peak kW", "peak_interval_start": "peak interval (UTC)",
    "billing_demand_kw": "billing demand kW", "billing_basis": "billing basis", "ratchet_kw": "ratchet kW",
    "ratchet_reference_period": "ratchet reference", "price_per_mwh": "price/MWh",
    "price_per_kw_month": "price/kW-month", "previous_quantity": "previous quantity",
    "new_quantity": "new quantity", "previous_amount": "previous amount", "new_amount": "new amount",
}


@cache
def register_fonts() -> tuple[str, str]:
    """Register the shipped DejaVu fonts with reportlab (once) and return (regular, bold)."""
    with _FONT_LOCK:
        for name, file in ((FONT, "DejaVuSans.ttf"), (FONT_BOLD, "DejaVuSans-Bold.ttf")):
            path = FONT_DIR / file
            if not path.is_file():
                raise FileNotFoundError(f"PDF font missing: {path} (kwhub ships it in plugins/erp/fonts)")
            pdfmetrics.registerFont(TTFont(name, str(path)))
        pdfmetrics.registerFontFamily(FONT, normal=FONT, bold=FONT_BOLD, italic=FONT, boldItalic=FONT_BOLD)
    return FONT, FONT_BOLD


def _styles() -> dict[str, ParagraphStyle]:
    register_fonts()
    normal = ParagraphStyle("kw_normal", fontName=FONT, bulletFontName=FONT, fontSize=9, leading=11)
    small = ParagraphStyle("kw_small", parent=normal, fontSize=8, leading=10)
    return {
        "normal": normal,
        "small": small,
        "small_r": ParagraphStyle("kw_small_r", parent=small, alignment=TA_RIGHT),
        "tiny": ParagraphStyle("kw_tiny", parent=normal, fontSize=6.5, leading=8),
        "h": ParagraphStyle("kw_h", parent=normal, fontName=FONT_BOLD, fontSize=11, leading=14, spaceBefore=6,
                            spaceAfter=4, textColor=_ACCENT),
    }


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def fmt_money(value: Decimal, currency: str = "USD", *, code: bool = True) -> str:
    """``1,234.56 USD``: the amount in the currency's minor units (see :mod:`face_numbers`)."""
    return fn.money(value, currency, code=code)


def line_period(line: InvoiceLine) -> str:
    """The line's own period: ``2026-10-05`` for one day, ``2026-10-01..2026-10-31`` for a span."""
    if line.period_start and line.period_end and line.period_start == line.period_end:
        return line.period_start.isoformat()
    a = line.period_start.isoformat() if line.period_start else ""
    b = line.period_end.isoformat() if line.period_end else ""
    return f"{a}..{b}" if (a or b) else ""


def line_formula(line: InvoiceLine, currency: str) -> str:
    """``1,234.500 MWh x 45.00 USD/MWh = 55,552.50 USD`` for the line."""
    return (f"{fn.quantity(line.quantity, line.unit)} {line.unit} x {fn.rate(line.unit_price, currency)} "
            f"{currency}/{line.unit} = {fn.money(line.amount, currency)}")


def determinant_text(line: InvoiceLine) -> str:
    """The line's bill determinants, labelled ones first."""
    d = line.determinants
    parts = [f"{label} {d[k]}" for k, label in DETERMINANT_LABELS.items() if d.get(k) not in (None, "")]
    parts += [f"{k} {v}" for k, v in sorted(d.items()) if k not in DETERMINANT_LABELS and v not in ("",)]
    return "; ".join(parts)


def daily_usage(usage: Any) -> tuple[list[date], Any]:
    """Sum a usage series (or ``[(start, kWh), ...]`` pairs / arrays) per UTC calendar day."""
    return UsageSeries.of(usage).daily()


def _usage_chart(usage: UsageSeries, width: float) -> Drawing | None:
    days, kwh = usage.daily()
    if not days:
        return None
    height = 125
    d = Drawing(width, height, initialFontName=FONT, initialFontSize=7)
    chart = VerticalBarChart()
    chart.x, chart.y = 45, 30
    chart.width, chart.height = width - 60, height - 55
    scale, unit = (1000.0, "MWh") if kwh.max() >= 10000 else (1.0, "kWh")
    chart.data = [[round(float(v) / scale, 3) for v in kwh]]
    chart.bars[0].fillColor = _ACCENT
    chart.bars[0].strokeColor = None
    chart.barLabels.fontName = FONT
    chart.valueAxis.valueMin = 0
    chart.valueAxis.labels.fontName = FONT
    chart.valueAxis.labels.fontSize = 7
    step = max(1, len(days) // 16)
    chart.categoryAxis.categoryNames = [f"{x.day}" if i % step == 0 else "" for i, x in enumerate(days)]
    chart.categoryAxis.labels.fontName = FONT
    chart.categoryAxis.labels.fontSize = 7
    chart.categoryAxis.labels.boxAnchor = "n"
    d.add(chart)
    what = f" ({usage.source})" if usage.source else ""
    d.add(String(45, height - 14, f"Daily energy{what} ({unit}), {days[0].isoformat()} to {days[-1].isoformat()}, "
                 f"total {fn.quantity(Decimal(str(round(usage.total_kwh, 3))), 'kWh')} kWh",
                 fontName=FONT, fontSize=8, fillColor=colors.black))
    return d


MISSING = "<font color='#b00020'>[{what} missing]</font>"


def legal_name(p: PartyRef) -> str:
    """The party's legal name, or ``[legal name missing]`` (a party known only by its id)."""
    name = p.name.strip()
    return name if name and name != p.id else "[legal name missing]"


def _party_block(label: str, p: PartyRef, style: ParagraphStyle) -> Paragraph:
    """The party's legal name and postal address (what is missing is said so, never replaced by an id)."""
    a = p.address
    name = legal_name(p)
    legal = f"<b>{_esc(name)}</b>" if name != "[legal name missing]" else MISSING.format(what="legal name")
    parts = [f"<b>{label}</b>", legal]
    if a.street:
        parts.append(_esc(a.street))
    city = " ".join(x for x in (a.city + ("," if a.city and (a.region or a.postal_code) else ""), a.region, a.postal_code) if x)
    if city:
        parts.append(_esc(city))
    if not (a.street or a.city):
        parts.append(MISSING.format(what="postal address"))
    parts.append(_esc(a.country))
    if p.tax_id:
        parts.append(f"{_esc(p.tax_scheme or 'Tax')} id: {_esc(p.tax_id)}")
    ep = p.endpoint()
    if ep is not None:
        parts.append(f"Electronic address: {_esc(ep[0])}:{_esc(ep[1])}" if ep[0] else f"Electronic address: {_esc(ep[1])}")
    if p.email:
        parts.append(_esc(p.email))
    return Paragraph("<br/>".join(parts), style)


def payment_instructions(invoice: Invoice) -> list[str]:
    """What the payer does: means, account, bank, remittance text and terms (plain text lines)."""
    pay = invoice.payee.payment
    who = legal_name(invoice.payee)
    out = []
    if invoice.is_credit:
        out.append(f"Amount credited to {legal_name(invoice.buyer)}: {fmt_money(invoice.total, invoice.currency)}.")
    else:
        out.append(f"Amount due: {fmt_money(invoice.total, invoice.currency)} by {invoice.due_date.isoformat()}.")
    if pay is not None:
        means = PAYMENT_MEANS_CODES.get(pay.means_code, f"payment means {pay.means_code}")
        account = []
        if pay.iban:
            account.append(f"IBAN {pay.iban}")
        elif pay.account_number:
            account.append(f"account {pay.account_number}")
        if pay.bic:
            account.append(f"BIC {pay.bic}")
        elif pay.routing_number:
            account.append(f"routing {pay.routing_number}")
        holder = pay.account_name or who
        bank = f" at {pay.bank_name}" if pay.bank_name else ""
        verb = "Refund by" if invoice.is_credit else "Pay by"
        out.append(f"{verb} {means} to {holder}{bank}" + (f", {', '.join(account)}" if account else "") + ".")
        out.append(f"Quote: {pay.remittance_text or invoice.number}.")
    else:
        out.append(f"Quote: {invoice.number}.")
    out.append(f"Terms: {invoice.payment_terms()}.")
    return out


def _table_style(header_rows: int = 1) -> TableStyle:
    return TableStyle([
        ("FONT", (0, 0), (-1, -1), FONT, 8),
        ("FONT", (0, 0), (-1, header_rows - 1), FONT_BOLD, 8),
        ("BACKGROUND", (0, 0), (-1, header_rows - 1), colors.HexColor("#dde6f0")),
        ("LINEBELOW", (0, 0), (-1, header_rows - 1), 0.6, _ACCENT),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("ALIGN", (3, 0), (-1, -1), "RIGHT"),
        ("ROWBACKGROUNDS", (0, header_rows), (-1, -1), [colors.white, colors.HexColor("#f6f8fa")]),
    ])


class KeepTailTable(Table):
    """A table whose last ``keep_tail`` rows stay together on one page.

    Each split is allowed only before those rows (reportlab's ``rowSplitRange``, set anew on
    every piece, since a piece that still holds them may be split again on the same page).
    """

    keep_tail = 0

    def split(self, availWidth: float, availHeight: float) -> list[Any]:  # noqa: N803 - reportlab's names
        last = len(self._cellvalues) - self.keep_tail
        self._rowSplitRange = (0, last) if self.keep_tail else None
        if self.keep_tail and last <= 1:  # nothing but the header before the tail: move whole
            self._calc(availWidth, availHeight)
            return [self] if sum(self._rowHeights) <= availHeight else []
        parts: list[Any] = super().split(availWidth, availHeight)
        for i, part in enumerate(parts):
            if part is not self:
                part.keep_tail = self.keep_tail if i == len(parts) - 1 else 0
        return parts


KEEP_LINES_WITH_TOTALS = 3
_LINE_HEADER = ["#", "Description", "Period", "Quantity", "Unit"]


def _lines_and_totals(invoice: Invoice, width: float, st: dict[str, ParagraphStyle]) -> Table:
    """The lines table with the totals as its last rows.

    One table, so the totals can never start a page alone: its rows split across pages (the
    header repeats) only where the last ``KEEP_LINES_WITH_TOTALS`` lines stay on the page of
    the totals (:class:`KeepTailTable`).
    """
    cur = invoice.currency
    head_r = ParagraphStyle("kw_head_r", parent=st["small_r"], fontName=FONT_BOLD)
    rows: list[list[Any]] = [[*_LINE_HEADER, Paragraph(f"Unit price<br/>{_esc(cur)}", head_r), "Tax",
                              Paragraph(f"Amount<br/>{_esc(cur)}", head_r)]]
    for ln in invoice.lines:
        rows.append([str(ln.number), Paragraph(_esc(ln.description), st["small"]),
                     Paragraph(_esc(line_period(ln)), st["tiny"]), fn.quantity(ln.quantity, ln.unit), ln.unit,
                     fn.rate(ln.unit_price, cur), f"{ln.tax_category} {fn.percent(ln.tax_percent)}",
                     fn.money(ln.amount, cur, code=False)])
    first_total = len(rows)
    totals: list[tuple[str, str]] = [("Net amount", fn.money(invoice.line_total, cur))]
    for t in invoice.taxes:
        label = f"Tax {t.category} {fn.percent(t.percent)} on {fn.money(t.taxable_amount, cur)}"
        if t.exemption_reason:
            label += f" ({t.exemption_reason})"
        totals.append((label, fn.money(t.tax_amount, cur)))
    totals.append(("Total credited" if invoice.is_credit else "Total due", fn.money(invoice.total, cur)))
    for i, (label, value) in enumerate(totals, start=1):
        text = f"<b>{_esc(label)}</b>" if i == len(totals) else _esc(label)
        rows.append(["", Paragraph(text, st["small_r"]), "", "", "", "", "", value])
    table = KeepTailTable(rows, colWidths=[8 * mm, width - 8 * mm - 136 * mm, 26 * mm, 26 * mm, 12 * mm, 22 * mm,
                                           18 * mm, 32 * mm], repeatRows=1)
    table.keep_tail = len(totals) + min(KEEP_LINES_WITH_TOTALS, len(invoice.lines))
    style = _table_style()
    style.add("BACKGROUND", (0, first_total), (-1, -1), colors.white)
    style.add("LINEABOVE", (1, first_total), (-1, first_total), 0.6, _ACCENT)
    style.add("LINEABOVE", (1, -1), (-1, -1), 0.8, _ACCENT)
    style.add("FONT", (0, -1), (-1, -1), FONT_BOLD, 9)
    for r in range(first_total, len(rows)):
        style.add("SPAN", (1, r), (6, r))
    table.setStyle(style)
    return table


def _story(invoice: Invoice, context: RenderContext, width: float, st: dict[str, ParagraphStyle]) -> list[Any]:
    cur = invoice.currency
    title = TITLES.get(invoice.kind, "INVOICE")
    story: list[Any] = []
    head = Table([[Paragraph(f"<font size=16 color='#1f4e79'><b>{title}</b></font>", st["normal"]),
                   Paragraph(f"<b>No. {_esc(invoice.number)}</b><br/>Issued {invoice.issue_date.isoformat()}"
                             + ("" if invoice.is_credit else f"<br/>Due {invoice.due_date.isoformat()}")
                             + f"<br/>Version {invoice.version}", st["small_r"])]],
                 colWidths=[width * 0.6, width * 0.4])
    head.setStyle(TableStyle([("FONT", (0, 0), (-1, -1), FONT, 8), ("VALIGN", (0, 0), (-1, -1), "TOP")]))
    story += [head, Spacer(1, 4 * mm)]
    parties = Table([[_party_block("From", invoice.seller, st["small"]), _party_block("Bill to", invoice.buyer, st["small"])]],
                    colWidths=[width / 2, width / 2])
    parties.setStyle(TableStyle([("FONT", (0, 0), (-1, -1), FONT, 8), ("VALIGN", (0, 0), (-1, -1), "TOP"),
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
    story.append(Paragraph(" &nbsp;|&nbsp; ".join(facts), st["small"]))
    if invoice.note:
        story.append(Paragraph(_esc(invoice.note), st["small"]))
    story.append(Spacer(1, 3 * mm))

    story += [_lines_and_totals(invoice, width, st), Spacer(1, 3 * mm)]
    story += [Paragraph("Payment", st["h"]),
              Paragraph("<br/>".join(_esc(x) for x in payment_instructions(invoice)), st["small"])]

    drows: list[list[Any]] = [["#", "How the amount was computed", "Bill determinants"]]
    for ln in invoice.lines:
        drows.append([str(ln.number), Paragraph(_esc(line_formula(ln, cur)), st["tiny"]),
                      Paragraph(_esc(determinant_text(ln)) or "-", st["tiny"])])
    dt = Table(drows, colWidths=[8 * mm, 62 * mm, width - 70 * mm], repeatRows=1)
    dst = _table_style()
    dst.add("ALIGN", (0, 0), (-1, -1), "LEFT")
    dt.setStyle(dst)
    story += [Paragraph("How each line was computed", st["h"]), dt]

    carbon = [ln for ln in invoice.lines if ln.emissions is not None]
    if carbon:
        erows: list[list[Any]] = [["#", "kWh", "kg CO2e market", "kg CO2e location", "market: kg CO2 / CH4 / N2O",
                                   "CO2e as published"]]
        for ln in carbon:
            em = ln.emissions
            assert em is not None
            kg = [fn.quantity(v, "kg") for v in (em.market.co2, em.market.ch4, em.market.n2o)]
            erows.append([str(ln.number), fn.quantity(em.kwh, "kWh"), fn.quantity(em.market_kg_co2e, "kg"),
                          fn.quantity(em.location_kg_co2e, "kg"), " / ".join(kg),
                          fn.quantity(em.market.co2e_reported, "kg")])
        et = Table(erows, colWidths=[8 * mm, 25 * mm, 28 * mm, 28 * mm, 50 * mm, width - 139 * mm], repeatRows=1)
        est = _table_style()
        est.add("ALIGN", (1, 1), (-1, -1), "RIGHT")
        et.setStyle(est)
        gwp = carbon[0].emissions.gwp_set if carbon[0].emissions else ""
        story += [Paragraph("Emissions of the energy billed", st["h"]), et,
                  Paragraph(_esc(f"Market-based: the suppliers' own factors (plants) and the residual mix (grid), "
                                 f"before certificates; location-based: grid-average factors. CO2e with {gwp} "
                                 "global warming potentials. `kwhub explain INVOICE --line N --carbon` shows the "
                                 "intervals, sources, factors and editions behind each figure."), st["tiny"])]

    if context.usage is not None:
        chart = _usage_chart(context.usage, width)
        if chart is not None:
            story += [Paragraph("Usage in the period", st["h"]), chart]

    lineage, exp = context.lineage, context.explain
    if lineage is not None or exp is not None or invoice.run_id:
        lrows: list[list[str]] = [["Settlement run", (lineage.run_id if lineage else "") or invoice.run_id or "-"]]
        if lineage is not None:
            lrows += [["Input data (channel-day hashes)", str(lineage.channel_days)],
                      ["Channels read", f"{len(lineage.channels)} ({', '.join(lineage.layers) or '-'} layer)"],
                      ["Inputs digest (SHA-256)", lineage.inputs_digest or "-"],
                      ["Run statement (SHA-256)", lineage.statement_hash or "-"]]
            if lineage.stale:
                lrows.append(["Note", "inputs were restated after this run; a later version bills the difference"])
        else:
            lrows.append(["Input data (channel-day hashes)", "not available to this rendering"])
        if exp is not None:
            lrows.append(["Interval grid", f"{exp.intervals} x {exp.interval_minutes} min"
                          + (f", {exp.missing_intervals} missing intervals counted as 0" if exp.missing_intervals else "")])
            if exp.allocation_method:
                srcs = ", ".join(f"{k} {v} kWh" for k, v in sorted(exp.sources_kwh.items()))
                lrows.append(["Allocation", exp.allocation_method + (f": {srcs}" if srcs else "")])
        lt = Table([[a, Paragraph(_esc(b), st["tiny"])] for a, b in lrows], colWidths=[60 * mm, width - 60 * mm])
        lt.setStyle(TableStyle([("FONT", (0, 0), (-1, -1), FONT, 8),
                                ("FONT", (0, 0), (0, -1), FONT_BOLD, 8),
                                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                                ("LINEBELOW", (0, 0), (-1, -2), 0.25, colors.lightgrey)]))
        story += [Paragraph("How this invoice was computed", st["h"]), lt,
                  Paragraph("`kwhub explain " + _esc(invoice.number) + "` shows every channel-day, version and hash.",
                            st["tiny"])]
    return story


class PageCountCanvas(Canvas):
    """A canvas that holds its pages until the end, then writes ``Page X of Y`` and the footer on each."""

    def __init__(self, *args: Any, footer_left: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._footer_left = footer_left
        self._pages: list[dict[str, Any]] = []

    def showPage(self) -> None:  # noqa: N802 - reportlab's name
        self._pages.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        total = len(self._pages)
        for n, state in enumerate(self._pages, start=1):
            self.__dict__.update(state)
            self.saveState()
            self.setFont(FONT, 7)
            self.setFillColor(colors.grey)
            width = self._pagesize[0]
            self.drawString(16 * mm, 9 * mm, self._footer_left)
            self.drawRightString(width - 16 * mm, 9 * mm, f"Page {n} of {total}")
            self.restoreState()
            super().showPage()
        super().save()


def render_pdf(invoice: Invoice, context: RenderContext | None = None, page_size: str = "letter") -> bytes:
    """The readable PDF/A-3B of ``invoice`` as bytes."""
    context = context or RenderContext()
    st = _styles()
    size = A4 if page_size.upper() == "A4" else letter
    buf = io.BytesIO()
    title = TITLES.get(invoice.kind, "INVOICE")
    doc_title = f"{title.title()} {invoice.number}"
    doc = SimpleDocTemplate(buf, pagesize=size, leftMargin=16 * mm, rightMargin=16 * mm,
                            topMargin=14 * mm, bottomMargin=16 * mm, invariant=True, initialFontName=FONT,
                            title=doc_title, author=legal_name(invoice.seller),
                            subject=f"{doc_title} for {legal_name(invoice.buyer)}")
    width = size[0] - 32 * mm

    left = f"{legal_name(invoice.seller)} - {doc_title}"
    doc.build(_story(invoice, context, width, st),
              canvasmaker=lambda *a, **k: PageCountCanvas(*a, footer_left=left, **k))
    created = context.created_at() or datetime.combine(invoice.issue_date, datetime.min.time(), UTC)
    from kwhub.plugins.erp.pdfa import make_pdfa

    return make_pdfa(buf.getvalue(), title=doc_title, author=legal_name(invoice.seller),
                     subject=f"{doc_title} for {legal_name(invoice.buyer)}", created=created)


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

    def render(self, invoice: Invoice, context: RenderContext | None = None) -> bytes:
        return render_pdf(invoice, context, self.config.page_size)

    def validate(self, data: bytes) -> list[str]:
        """The bytes are a PDF that opens, has text on page 1 and is PDF/A-3 (fonts, OutputIntent, XMP)."""
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
            from kwhub.plugins.erp.pdfa import pdfa_problems

            return pdfa_problems(data)
        except Exception as exc:  # pypdf raises many error types on broken files
            return [f"PDF: cannot be read: {exc}"]


@hookimpl
def kwhub_register_erp_adapters(register: Any) -> None:
    register(PdfRenderer)
