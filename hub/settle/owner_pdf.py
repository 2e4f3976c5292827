"""An owner statement as a one-page PDF (reportlab): revenue and costs per asset and share."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from reportlab.lib import colors
from reportlab.lib.pagesizes import letter
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from kwhub.core.ownership import OwnerStatement


def _money(v: Decimal) -> str:
    return f"{v:,.2f}"


def write_owner_pdf(statement: OwnerStatement, path: Path, owner_name: str = "") -> Path:
    """Write ``statement`` to ``path`` (created or replaced) and return the path."""
    styles = getSampleStyleSheet()
    story = [
        Paragraph(f"Owner statement {statement.period}", styles["Title"]),
        Paragraph(f"{owner_name or statement.party} ({statement.party}), amounts in {statement.currency}",
                  styles["Normal"]),
        Spacer(1, 12),
    ]
    rows = [["Asset", "Item", "Asset total", "Share", "Amount", "Basis"]]
    for ln in statement.lines:
        basis = ", ".join(f"{k} {v}" for k, v in ln.basis.items() if k != "lines")
        if "lines" in ln.basis:
            basis = (basis + ", " if basis else "") + f"{len(ln.basis['lines'].split(','))} billed lines"
        rows.append([ln.asset, ln.description, _money(ln.asset_total), f"{ln.share}", _money(ln.amount), basis])
    rows += [["", "Revenue", "", "", _money(statement.revenue), ""],
             ["", "Costs", "", "", _money(statement.costs), ""],
             ["", "Net", "", "", _money(statement.net), ""]]
    table = Table(rows, repeatRows=1, colWidths=[50, 130, 80, 45, 80, 140])
    table.setStyle(TableStyle([
        ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
        ("FONTSIZE", (0, 0), (-1, -1), 8),
        ("ALIGN", (2, 1), (4, -1), "RIGHT"),
        ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.black),
        ("LINEABOVE", (0, -3), (-1, -3), 0.5, colors.black),
        ("FONTNAME", (0, -1), (-1, -1), "Helvetica-Bold"),
    ]))
    story.append(table)
    path.parent.mkdir(parents=True, exist_ok=True)
    SimpleDocTemplate(str(path), pagesize=letter, title=f"Owner statement {statement.party} {statement.period}",
                      author="kwhub").build(story)
    return path
