"""Flat CSV export of an invoice for ERP import sheets.

One header row of column names, then one ``LINE`` record per invoice line, one ``TAX``
record per tax subtotal (``amount`` = taxable amount) and one ``TOTAL`` record
(``amount`` = net, ``tax_amount`` = tax, ``total`` = gross). Every record repeats the
document columns, including ``type_code`` (380/381) and ``original_invoice`` (the
referenced original of an adjustment or credit note). Money is an exact decimal string.
Text cells that a spreadsheet would evaluate (starting with ``= + - @``) get a leading
apostrophe.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from kwhub.core.adapters import AdapterConfig, InvoiceRenderer
from kwhub.core.hookspecs import hookimpl
from kwhub.core.invoice import Invoice
from kwhub.core.money import money_str
from kwhub.core.render_context import RenderContext

COLUMNS = [
    "record_type", "invoice_number", "document_kind", "type_code", "version", "issue_date",
    "due_date", "period_start", "period_end", "currency", "seller_id", "seller_name",
    "seller_tax_id", "buyer_id", "buyer_name", "buyer_tax_id", "buyer_reference", "contract_id",
    "original_invoice", "line_number", "description", "charge_type", "quantity", "unit",
    "unit_price", "amount", "tax_category", "tax_percent", "tax_amount", "total",
    "line_period_start", "line_period_end", "source_asset", "component_id",
]
_TEXT = {"seller_name", "buyer_name", "description", "buyer_reference", "contract_id"}


def _cell(col: str, value: str) -> str:
    if col in _TEXT and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


class CsvConfig(AdapterConfig):
    """``delimiter``: one character; the decimal separator is always ``.``."""

    delimiter: str = ","


class CsvRenderer(InvoiceRenderer):
    """Flat CSV (LINE / TAX / TOTAL records) for spreadsheet-style ERP imports."""

    type_id: ClassVar[str] = "erp.csv"
    title: ClassVar[str] = "CSV invoice export"
    format_id: ClassVar[str] = "csv"
    media_type: ClassVar[str] = "text/csv"
    file_extension: ClassVar[str] = ".csv"
    capabilities: ClassVar[frozenset[str]] = frozenset({"render", "validate"})
    Config = CsvConfig
    config: CsvConfig

    def render(self, invoice: Invoice, context: RenderContext | None = None) -> bytes:
        doc = {
            "invoice_number": invoice.number, "document_kind": invoice.kind,
            "type_code": "381" if invoice.is_credit else "380", "version": str(invoice.version),
            "issue_date": invoice.issue_date.isoformat(), "due_date": "" if invoice.is_credit else invoice.due_date.isoformat(),
            "period_start": invoice.period_start.isoformat(), "period_end": invoice.period_end.isoformat(),
            "currency": invoice.currency, "seller_id": invoice.seller.id, "seller_name": invoice.seller.name,
            "seller_tax_id": invoice.seller.tax_id, "buyer_id": invoice.buyer.id,
            "buyer_name": invoice.buyer.name, "buyer_tax_id": invoice.buyer.tax_id,
            "buyer_reference": invoice.buyer_reference, "contract_id": invoice.contract_id,
            "original_invoice": ";".join(r.number for r in invoice.references),
        }
        rows: list[dict[str, str]] = []
        for ln in invoice.lines:
            rows.append({**doc, "record_type": "LINE", "line_number": str(ln.number),
                         "description": ln.description, "charge_type": ln.charge_type,
                         "quantity": money_str(ln.quantity), "unit": ln.unit,
                         "unit_price": money_str(ln.unit_price), "amount": money_str(ln.amount),
                         "tax_category": ln.tax_category, "tax_percent": money_str(ln.tax_percent),
                         "line_period_start": ln.period_start.isoformat() if ln.period_start else "",
                         "line_period_end": ln.period_end.isoformat() if ln.period_end else "",
                         "source_asset": ln.source_asset, "component_id": ln.component_id})
        for t in invoice.taxes:
            rows.append({**doc, "record_type": "TAX", "tax_category": t.category,
                         "tax_percent": money_str(t.percent), "amount": money_str(t.taxable_amount),
                         "tax_amount": money_str(t.tax_amount)})
        rows.append({**doc, "record_type": "TOTAL", "amount": money_str(invoice.line_total),
                     "tax_amount": money_str(invoice.tax_total), "total": money_str(invoice.total)})
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=COLUMNS, delimiter=self.config.delimiter, lineterminator="\r\n")
        w.writeheader()
        for r in rows:
            w.writerow({c: _cell(c, r.get(c, "")) for c in COLUMNS})
        return buf.getvalue().encode("utf-8")

    def validate(self, data: bytes) -> list[str]:
        """Header, numbers and LINE/TAX/TOTAL arithmetic, naming the CSV line."""
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            return [f"CSV: byte {exc.start} is not UTF-8"]
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=self.config.delimiter)
        if reader.fieldnames != COLUMNS:
            return [f"CSV line 1: header differs from the expected {len(COLUMNS)} columns"]
        problems: list[str] = []
        net = tax_base = tax = Decimal(0)
        totals: list[tuple[int, dict[str, str]]] = []
        kinds: set[str] = set()
        for row in reader:
            lineno = reader.line_num
            if None in row or None in row.values():  # DictReader's marks for extra and missing fields
                fields = len(COLUMNS) + len(row.get(None) or []) - sum(v is None for v in row.values())
                problems.append(f"CSV line {lineno}: {fields} fields, expected {len(COLUMNS)}")
                continue
            kinds.add(row["document_kind"])
            try:
                if row["record_type"] == "LINE":
                    net += Decimal(row["amount"])
                elif row["record_type"] == "TAX":
                    tax_base += Decimal(row["amount"])
                    tax += Decimal(row["tax_amount"])
                elif row["record_type"] == "TOTAL":
                    totals.append((lineno, row))
                else:
                    problems.append(f"CSV line {lineno}, record_type: unknown {row['record_type']!r}")
            except InvalidOperation:
                problems.append(f"CSV line {lineno}, amount/tax_amount: not a decimal")
        if len(totals) != 1:
            return problems + [f"CSV: expected one TOTAL record, found {len(totals)}"]
        lineno, tot = totals[0]
        try:
            t_net, t_tax, t_total = Decimal(tot["amount"]), Decimal(tot["tax_amount"]), Decimal(tot["total"])
        except InvalidOperation:
            return problems + [f"CSV line {lineno}, TOTAL: amounts are not decimals"]
        if t_net != net:
            problems.append(f"CSV line {lineno}, amount: TOTAL net {t_net} != LINE sum {net}")
        if tax_base != net:
            problems.append(f"CSV line {lineno}, amount: TAX taxable amounts {tax_base} != net {net}")
        if t_tax != tax:
            problems.append(f"CSV line {lineno}, tax_amount: TOTAL tax {t_tax} != TAX sum {tax}")
        if t_total != t_net + t_tax:
            problems.append(f"CSV line {lineno}, total: {t_total} != {t_net} + {t_tax}")
        if kinds & {"credit_note", "adjustment"} and not tot["original_invoice"]:
            problems.append(f"CSV line {lineno}, original_invoice: a credit note/adjustment must reference the original")
        return problems


@hookimpl
def kwhub_register_erp_adapters(register: Any) -> None:
    register(CsvRenderer)
