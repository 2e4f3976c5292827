"""The format-neutral invoice: what settlement issues and every ERP renderer reads.

Money is Decimal from the line on; :func:`compute_totals` makes the lines sum exactly to
the totals. An invoice, once issued, is never edited: a correction is a new document
(adjustment invoice or credit note) that references the original.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from kwhub.core.money import MoneyPolicy

DocumentKind = Literal["invoice", "credit_note", "adjustment"]
ChargeType = Literal[
    "energy", "demand", "capacity", "fee", "take_or_pay", "availability_credit",
    "pass_through", "adjustment", "other",
]

# UN/ECE Recommendation 20 unit codes used on energy invoices.
UNIT_CODES = {"kWh": "KWH", "MWh": "MWH", "kW": "KWT", "MW": "MAW", "each": "C62", "month": "MON", "MMBtu": "D37"}


class Address(BaseModel):
    """A postal address, as much as the standard formats need."""

    model_config = ConfigDict(extra="forbid")

    street: str = ""
    city: str = ""
    postal_code: str = ""
    region: str = ""
    country: str = "US"  # ISO 3166-1 alpha-2


class PartyRef(BaseModel):
    """A party as it appears on a document."""

    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    tax_id: str = ""
    address: Address = Field(default_factory=Address)
    email: str = ""
    endpoint_id: str = ""  # e.g. a Peppol participant id or an EDI id
    endpoint_scheme: str = ""


class InvoiceLine(BaseModel):
    """One charge: quantity x unit price = amount, with a link to its bill determinants."""

    model_config = ConfigDict(extra="forbid")

    number: int
    description: str
    charge_type: ChargeType = "energy"
    quantity: Decimal
    unit: str = "kWh"  # key of UNIT_CODES
    unit_price: Decimal
    amount: Decimal
    tax_category: str = "S"  # UNCL5305: S standard, Z zero, E exempt, O outside scope
    tax_percent: Decimal = Decimal("0")
    source_asset: str = ""
    component_id: str = ""
    period_start: date | None = None
    period_end: date | None = None
    determinants: dict[str, str] = Field(default_factory=dict)

    @property
    def unit_code(self) -> str:
        return UNIT_CODES.get(self.unit, self.unit)


class TaxSubtotal(BaseModel):
    """Tax per (category, percent)."""

    model_config = ConfigDict(extra="forbid")

    category: str
    percent: Decimal
    taxable_amount: Decimal
    tax_amount: Decimal


class DocumentReference(BaseModel):
    """A reference to an earlier document (the original of an adjustment or credit note)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    number: str
    issue_date: date | None = None


class Invoice(BaseModel):
    """A format-neutral invoice, adjustment invoice or credit note."""

    model_config = ConfigDict(extra="forbid")

    id: str
    number: str
    kind: DocumentKind = "invoice"
    version: int = 1
    seller: PartyRef
    buyer: PartyRef
    issue_date: date
    due_date: date
    period_start: date
    period_end: date  # inclusive local date
    currency: str = "USD"
    buyer_reference: str = ""
    contract_id: str = ""
    run_id: str = ""
    note: str = ""
    references: list[DocumentReference] = Field(default_factory=list)
    lines: list[InvoiceLine] = Field(default_factory=list)
    taxes: list[TaxSubtotal] = Field(default_factory=list)
    line_total: Decimal = Decimal("0")
    tax_total: Decimal = Decimal("0")
    total: Decimal = Decimal("0")

    @property
    def is_credit(self) -> bool:
        return self.kind == "credit_note"


def compute_totals(invoice: Invoice, policy: MoneyPolicy) -> Invoice:
    """Fill taxes and totals from the lines so that they sum exactly.

    Tax is computed per (category, percent) group on the group's rounded line sum, as
    EN 16931 requires; totals are sums of already-rounded Decimals, so nothing drifts.
    """
    groups: dict[tuple[str, Decimal], Decimal] = defaultdict(Decimal)
    for line in invoice.lines:
        groups[(line.tax_category, line.tax_percent)] += line.amount
    taxes = [
        TaxSubtotal(
            category=cat,
            percent=pct,
            taxable_amount=base,
            tax_amount=policy.amount(base * pct / Decimal(100)),
        )
        for (cat, pct), base in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1]))
    ]
    line_total = sum((line.amount for line in invoice.lines), Decimal("0"))
    tax_total = sum((t.tax_amount for t in taxes), Decimal("0"))
    return invoice.model_copy(
        update={
            "taxes": taxes,
            "line_total": line_total,
            "tax_total": tax_total,
            "total": line_total + tax_total,
        }
    )


def check_totals(invoice: Invoice) -> list[str]:
    """Return the arithmetic problems of an invoice (empty when consistent)."""
    problems = []
    line_sum = sum((line.amount for line in invoice.lines), Decimal("0"))
    if line_sum != invoice.line_total:
        problems.append(f"lines sum to {line_sum}, line_total is {invoice.line_total}")
    tax_sum = sum((t.tax_amount for t in invoice.taxes), Decimal("0"))
    if tax_sum != invoice.tax_total:
        problems.append(f"taxes sum to {tax_sum}, tax_total is {invoice.tax_total}")
    if invoice.line_total + invoice.tax_total != invoice.total:
        problems.append("line_total + tax_total != total")
    return problems


def usage_arrays(usage: Any) -> tuple[np.ndarray, np.ndarray]:
    """A renderer's ``extras["usage"]`` as (UTC ``datetime64[m]`` starts, float64 kWh) arrays.

    Accepts a list of ``(start, kWh)`` pairs (aware datetimes are converted to UTC, naive
    ones and dates are taken as UTC) or a ``(starts, values)`` pair of arrays. Raises
    ``ValueError`` when the two sides differ in length.
    """
    if isinstance(usage, tuple) and len(usage) == 2 and hasattr(usage[0], "__len__") \
            and not isinstance(usage[0], datetime | date):
        starts_raw, values_raw = usage
    else:
        pairs = list(usage)
        starts_raw = [p[0] for p in pairs]
        values_raw = [p[1] for p in pairs]
    stamps = []
    for s in starts_raw:
        if isinstance(s, datetime) and s.tzinfo is not None:
            s = s.astimezone(UTC).replace(tzinfo=None)
        stamps.append(np.datetime64(s, "m"))
    starts = np.asarray(stamps, dtype="datetime64[m]") if stamps else np.empty(0, "datetime64[m]")
    values = np.asarray(values_raw, dtype=np.float64)
    if starts.shape != values.shape:
        raise ValueError(f"usage: {starts.shape[0]} starts but {values.shape[0]} values")
    return starts, values
