"""The format-neutral invoice: what settlement issues and every ERP renderer reads.

Money is Decimal from the line on; :func:`compute_totals` makes the lines sum exactly to
the totals. An invoice, once issued, is never edited: a correction is a new document
(adjustment invoice or credit note) that references the original.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

from kwhub.core.carbon_amounts import LineEmissions
from kwhub.core.money import MoneyPolicy

DocumentKind = Literal["invoice", "credit_note", "adjustment"]
ChargeType = Literal[
    "energy", "demand", "capacity", "fee", "take_or_pay", "availability_credit",
    "pass_through", "adjustment", "market_credit", "other",
]

# UN/ECE Recommendation 20 unit codes used on energy invoices.
UNIT_CODES = {"kWh": "KWH", "MWh": "MWH", "kW": "KWT", "MW": "MAW", "each": "C62", "month": "MON", "MMBtu": "D37"}


class Address(BaseModel):
    """A postal address, as much as the standard formats need."""

    model_config = ConfigDict(extra="forbid", defer_build=True)  # schema built at first use

    street: str = ""
    city: str = ""
    postal_code: str = ""
    region: str = ""
    country: str = "US"  # ISO 3166-1 alpha-2


# UNCL 4461 payment means codes kwhub writes: credit transfers that need the payee account.
CREDIT_TRANSFER_CODES = {"30": "credit transfer", "42": "payment to bank account",
                         "58": "SEPA credit transfer"}
PAYMENT_MEANS_CODES = {**CREDIT_TRANSFER_CODES, "1": "instrument not defined", "10": "in cash",
                       "20": "cheque", "31": "debit transfer", "48": "bank card", "49": "direct debit",
                       "57": "standing agreement", "59": "SEPA direct debit", "97": "clearing between partners"}


class PaymentDetails(BaseModel):
    """How a party is paid: the account a payer transfers to, and the remittance text.

    Account identifiers only, never credentials. ``iban`` (with ``bic``) or
    ``account_number`` (with ``routing_number``, e.g. a US ABA number) identifies the
    account (EN 16931 BT-84/BT-86); ``remittance_text`` is what the payer quotes (BT-83,
    default: the invoice number); ``terms`` the payment terms text (BT-20, default
    ``Net N days``). ``means_code`` is the UNCL 4461 code (30 credit transfer).
    """

    model_config = ConfigDict(extra="forbid", defer_build=True)  # schema built at first use

    means_code: str = "30"
    iban: str = ""
    bic: str = ""
    account_number: str = ""
    routing_number: str = ""
    account_name: str = ""
    bank_name: str = ""
    remittance_text: str = ""
    terms: str = ""

    @property
    def account_id(self) -> str:
        """The payment account identifier (BT-84): the IBAN, else the account number."""
        return self.iban.replace(" ", "") or self.account_number

    @property
    def institution_id(self) -> str:
        """The payment service provider identifier (BT-86): the BIC, else the routing number."""
        return self.bic or self.routing_number

    def problems(self) -> list[str]:
        """What is missing for ``means_code`` (empty when these details can be written)."""
        out = []
        if self.means_code not in PAYMENT_MEANS_CODES:
            out.append(f"means_code {self.means_code!r} is not one of {', '.join(sorted(PAYMENT_MEANS_CODES, key=int))}")
        if self.means_code in CREDIT_TRANSFER_CODES and not self.account_id:
            out.append(f"iban or account_number is required for payment means {self.means_code} "
                       f"({CREDIT_TRANSFER_CODES[self.means_code]})")
        if self.means_code == "58" and not self.iban:
            out.append("iban is required for payment means 58 (SEPA credit transfer)")
        return out


class PartyRef(BaseModel):
    """A party as it appears on a document.

    ``tax_id`` is written with its ``tax_scheme``: ``VAT`` (a VAT identifier, EN 16931
    BT-31/BT-48, prefixed with the country code) or another tax registration scheme such
    as ``EIN`` or ``GST`` (BT-32). ``endpoint_id`` with ``endpoint_scheme`` (a code of the
    Electronic Address Scheme list, e.g. ``0088`` GLN, ``0060`` DUNS, ``9959`` US EIN) is
    the party's electronic address; ``"0088:5790000435975"`` may carry the scheme itself.
    ``payment`` is where the party is paid (the seller on an invoice).
    """

    model_config = ConfigDict(extra="forbid", defer_build=True)  # schema built at first use

    id: str
    name: str
    tax_id: str = ""
    tax_scheme: str = "VAT"
    address: Address = Field(default_factory=Address)
    email: str = ""
    endpoint_id: str = ""  # e.g. a Peppol participant id or an EDI id
    endpoint_scheme: str = ""
    payment: PaymentDetails | None = None

    def endpoint(self) -> tuple[str, str] | None:
        """``(scheme, value)`` of the electronic address, or None when there is none.

        A scheme given both in ``endpoint_scheme`` and as a ``scheme:`` prefix must agree.
        """
        if not self.endpoint_id:
            return None
        scheme, value = self.endpoint_scheme, self.endpoint_id
        prefix, sep, rest = value.partition(":")
        if sep and prefix.isalnum() and len(prefix) <= 4 and (not scheme or prefix == scheme):
            scheme, value = prefix, rest
        return scheme, value


class InvoiceLine(BaseModel):
    """One charge: quantity x unit price = amount, with a link to its bill determinants."""

    model_config = ConfigDict(extra="forbid", defer_build=True)  # schema built at first use

    number: int
    description: str
    charge_type: ChargeType = "energy"
    quantity: Decimal
    unit: str = "kWh"  # key of UNIT_CODES
    unit_price: Decimal
    amount: Decimal
    tax_category: str = "S"  # UNCL5305: S standard, Z zero, E exempt, O outside scope
    tax_percent: Decimal = Decimal("0")
    tax_exemption_reason: str = ""  # why E/O/AE/K/G lines carry no tax (EN 16931 BT-120)
    tax_exemption_code: str = ""  # the VATEX code of that reason (BT-121), e.g. VATEX-EU-132
    source_asset: str = ""
    component_id: str = ""
    period_start: date | None = None
    period_end: date | None = None
    determinants: dict[str, str] = Field(default_factory=dict)
    emissions: LineEmissions | None = None  # of the energy the line bills (allocation-based energy lines)

    @model_serializer(mode="wrap")
    def _without_absent_emissions(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # a line without emissions serialises as before they existed: documents and run statements
        # issued earlier keep their bytes and hashes
        data: dict[str, Any] = handler(self)
        if data.get("emissions", 0) is None:
            del data["emissions"]
        for key in ("tax_exemption_reason", "tax_exemption_code"):  # likewise for lines without an exemption
            if data.get(key, None) == "":
                del data[key]
        return data

    @property
    def unit_code(self) -> str:
        return UNIT_CODES.get(self.unit, self.unit)


class TaxSubtotal(BaseModel):
    """Tax per (category, percent)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)  # schema built at first use

    category: str
    percent: Decimal
    taxable_amount: Decimal
    tax_amount: Decimal
    exemption_reason: str = ""  # BT-120
    exemption_code: str = ""  # BT-121

    @model_serializer(mode="wrap")
    def _without_absent_exemption(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)  # a subtotal without an exemption keeps its earlier bytes
        for key in ("exemption_reason", "exemption_code"):
            if data.get(key, None) == "":
                del data[key]
        return data


class DocumentReference(BaseModel):
    """A reference to an earlier document (the original of an adjustment or credit note)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)  # schema built at first use

    id: str
    number: str
    issue_date: date | None = None


class Invoice(BaseModel):
    """A format-neutral invoice, adjustment invoice or credit note."""

    model_config = ConfigDict(extra="forbid", defer_build=True)  # schema built at first use

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

    @property
    def payee(self) -> PartyRef:
        """Who receives the money: the seller, or the buyer of a credit note (the refund)."""
        return self.buyer if self.is_credit else self.seller

    def payment_terms(self) -> str:
        """The payment terms text (BT-20): the payee's own, else ``Net N days, due DATE`` (a credit
        note has no due date: ``Credited to the buyer's account``)."""
        pay = self.payee.payment
        if pay is not None and pay.terms:
            return pay.terms
        if self.is_credit:
            return "Credited to the buyer's account, no payment due"
        return f"Net {(self.due_date - self.issue_date).days} days, due {self.due_date.isoformat()}"


def compute_totals(invoice: Invoice, policy: MoneyPolicy) -> Invoice:
    """Fill taxes and totals from the lines so that they sum exactly.

    Tax is computed per (category, percent) group on the group's rounded line sum, as
    EN 16931 requires (:func:`tax_subtotals`); totals are sums of already-rounded Decimals, so
    nothing drifts.
    """
    taxes = tax_subtotals(invoice.lines, policy)
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


def tax_subtotals(lines: Sequence[InvoiceLine], policy: MoneyPolicy) -> list[TaxSubtotal]:
    """The taxes of ``lines``: per (category, percent), in that order, the tax of the group's
    line sum rounded once under ``policy`` (with the group's exemption reason, if any)."""
    groups: dict[tuple[str, Decimal], Decimal] = defaultdict(Decimal)
    reasons: dict[tuple[str, Decimal], tuple[str, str]] = {}
    for line in lines:
        groups[(line.tax_category, line.tax_percent)] += line.amount
        if line.tax_exemption_reason or line.tax_exemption_code:
            reasons.setdefault((line.tax_category, line.tax_percent), (line.tax_exemption_reason, line.tax_exemption_code))
    return [
        TaxSubtotal(
            category=cat,
            percent=pct,
            taxable_amount=base,
            tax_amount=policy.amount(base * pct / Decimal(100)),
            exemption_reason=reasons.get((cat, pct), ("", ""))[0],
            exemption_code=reasons.get((cat, pct), ("", ""))[1],
        )
        for (cat, pct), base in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1]))
    ]


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
