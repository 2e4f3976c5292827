"""Peppol BIS Billing 3.0 / EN 16931 business rules checked on rendered UBL XML.

The check reads the XML itself (never the invoice model it came from), so a document
changed after rendering is judged on what it says. Each problem names the rule id and the
element (``/Invoice/cac:InvoiceLine[2]/cbc:LineExtensionAmount``) or line. Covered:

- PEPPOL-EN16931-R001/R004: ProfileID and CustomizationID of the profile
- PEPPOL-EN16931-P0100/P0101 (BR-CL-01): type code 380 for Invoice, 381 for CreditNote
- PEPPOL-EN16931-R003: buyer reference or order reference present
- BR-02, BR-03, BR-05, BR-16: number, issue date, currency, at least one line
- BR-CL-03/04, PEPPOL-EN16931-R051: every currencyID equals the document currency
- BR-CO-10: sum of line net amounts = LineExtensionAmount
- BR-CO-13: TaxExclusiveAmount = LineExtensionAmount - allowances + charges
- BR-CO-14: TaxTotal/TaxAmount = sum of TaxSubtotal/TaxAmount
- BR-CO-15: TaxInclusiveAmount = TaxExclusiveAmount + TaxTotal/TaxAmount
- BR-CO-16: PayableAmount = TaxInclusiveAmount - PrepaidAmount + PayableRoundingAmount
- BR-CO-17: subtotal tax = taxable amount x rate, rounded to 2 decimals
- BR-x-08 (BR-S-08, BR-Z-08, ...): per category, taxable amount = sum of its lines
- BR-27: item net price not negative
- PEPPOL-EN16931-R120: line net amount = quantity x price / base quantity, rounded
- BR-29/BR-30: period end not before start
- PEPPOL-EN16931-R110/R111: line period inside the invoice period
- BR-55: a preceding invoice reference has an ID
- KWHUB-R001: a credit note references the invoice it credits (BillingReference)
- PEPPOL-EN16931-R008: no empty elements
- PEPPOL-EN16931-R010/R020: buyer and seller electronic addresses (EndpointID) present
- PEPPOL-EN16931-CL008: EndpointID schemes from the Electronic Address Scheme list
- PEPPOL-COMMON-R040: identifiers with scheme 0088 are valid GLNs
- PEPPOL-EN16931-R002: at most one document note
- PEPPOL-EN16931-R053: exactly one TaxTotal with subtotals
- PEPPOL-EN16931-R130: price base quantity in the line's unit
- PEPPOL-EN16931-F001: dates written YYYY-MM-DD
- BR-61: a credit transfer (payment means 30, 58) names the payee account
- BR-S-02: standard-rated lines need a seller tax identifier
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from functools import lru_cache

from lxml import etree

from kwhub.core.invoice import InvoiceLine
from kwhub.hub.helpers.safe_xml import element_path
from kwhub.plugins.erp.peppol_codes import EAS_CODES, gln_ok

NS_CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
NS_CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
NS = {"cac": NS_CAC, "cbc": NS_CBC}
CUSTOMIZATION_ID = "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0"
PROFILE_ID = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"
TYPE_CODES = {"Invoice": ("InvoiceTypeCode", "380", "PEPPOL-EN16931-P0100"),
              "CreditNote": ("CreditNoteTypeCode", "381", "PEPPOL-EN16931-P0101")}
LINE_TAGS = {"Invoice": ("InvoiceLine", "InvoicedQuantity"),
             "CreditNote": ("CreditNoteLine", "CreditedQuantity")}


def tax_within_tolerance(tax: Decimal, taxable: Decimal, pct: Decimal) -> bool:
    """BR-CO-17 as EN 16931 states it: a category's tax is its taxable amount x rate rounded to
    two decimals, give or take one currency unit (a correction document states its tax as
    round(new tax) - round(old tax), which may differ by a cent from the tax of the difference)."""
    if round(pct) == 0:
        return round(tax) == 0
    expected = round2(abs(taxable) * pct / 100)
    return abs(tax) - 1 < expected < abs(tax) + 1


def round2(value: Decimal) -> Decimal:
    """XPath ``round(x * 100) div 100``: halves go towards +infinity."""
    return ((value * 100) + Decimal("0.5")).to_integral_value(rounding=ROUND_FLOOR) / 100


def line_price(line: InvoiceLine) -> tuple[Decimal, Decimal, Decimal | None]:
    """(quantity, price, base quantity or None) so that quantity x price / base = amount.

    A negative unit price moves its sign to the quantity (EN 16931 BR-27: prices are never
    negative). When the rounded product of quantity and unit price does not reproduce the
    line amount (a charge summed interval by interval), the price is stated per base
    quantity: price = |amount| per |quantity|, which is exact (BT-149).
    """
    q, p = line.quantity, line.unit_price
    if p < 0:
        q, p = -q, -p
    if round2(q * p) == line.amount:
        return q, p, None
    if q != 0 and (line.amount < 0) == (q < 0):
        return q, abs(line.amount), abs(q)
    return q, p, None


class _Ctx:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def add(self, rule: str, where: etree._Element | str, message: str) -> None:
        path = where if isinstance(where, str) else element_path(where)
        self.problems.append(f"{rule}: {path}: {message}")

    def dec(self, el: etree._Element | None, rule: str) -> Decimal | None:
        if el is None:
            return None
        try:
            return Decimal((el.text or "").strip())
        except InvalidOperation:
            self.add(rule, el, f"not a decimal number: {el.text!r}")
            return None

    def day(self, el: etree._Element | None, rule: str) -> date | None:
        if el is None:
            return None
        try:
            return date.fromisoformat((el.text or "").strip())
        except ValueError:
            self.add(rule, el, f"not a date: {el.text!r}")
            return None


@lru_cache(maxsize=256)
def _steps(path: str) -> tuple[str, ...]:
    """``cac:A/cbc:B`` -> Clark-notation tags, one per step."""
    out = []
    for step in path.split("/"):
        prefix, _, local = step.partition(":")
        out.append(f"{{{NS[prefix]}}}{local}")
    return tuple(out)


def _clark(path: str) -> str:
    return "/".join(_steps(path))


def _one(el: etree._Element | None, path: str) -> etree._Element | None:
    """First element at the child path (C-level child filtering, no ElementPath)."""
    for tag in _steps(path):
        if el is None:
            return None
        el = next(el.iterchildren(tag), None)
    return el


def check(root: etree._Element) -> list[str]:
    """Return the Peppol/EN 16931 rule violations of a parsed UBL Invoice or CreditNote."""
    ctx = _Ctx()
    doc = etree.QName(root).localname
    if doc not in TYPE_CODES:
        return [f"BR-CL-01: /{doc}: not a UBL Invoice or CreditNote"]
    rootpath = "/" + doc
    _check_structure(ctx, root, rootpath)

    cust = _one(root, "cbc:CustomizationID")
    if cust is None or (cust.text or "").strip() != CUSTOMIZATION_ID:
        ctx.add("PEPPOL-EN16931-R004", rootpath + "/cbc:CustomizationID",
                f"must be {CUSTOMIZATION_ID}, is {None if cust is None else cust.text!r}")
    prof = _one(root, "cbc:ProfileID")
    if prof is None or (prof.text or "").strip() != PROFILE_ID:
        ctx.add("PEPPOL-EN16931-R001", rootpath + "/cbc:ProfileID",
                f"must be {PROFILE_ID}, is {None if prof is None else prof.text!r}")
    if not (_text(root, "cbc:ID")):
        ctx.add("BR-02", rootpath + "/cbc:ID", "invoice number missing")
    if _one(root, "cbc:IssueDate") is None:
        ctx.add("BR-03", rootpath + "/cbc:IssueDate", "issue date missing")

    tc_tag, tc_expected, tc_rule = TYPE_CODES[doc]
    tc = _one(root, "cbc:" + tc_tag)
    if tc is None or (tc.text or "").strip() != tc_expected:
        ctx.add(tc_rule, rootpath + "/cbc:" + tc_tag,
                f"type code must be {tc_expected} for a {doc}, is {None if tc is None else tc.text!r}")

    if not _text(root, "cbc:BuyerReference") and not _text(root, "cac:OrderReference/cbc:ID"):
        ctx.add("PEPPOL-EN16931-R003", rootpath + "/cbc:BuyerReference",
                "a buyer reference or an order reference must be present")

    # Currency consistency.
    currency = _text(root, "cbc:DocumentCurrencyCode")
    if not currency:
        ctx.add("BR-05", rootpath + "/cbc:DocumentCurrencyCode", "document currency missing")
    tax_currency = _text(root, "cbc:TaxCurrencyCode")
    for el in root.iter():
        cid = el.get("currencyID") if isinstance(el.tag, str) else None
        if cid is not None and cid != currency and cid != tax_currency:
            ctx.add("PEPPOL-EN16931-R051", el, f"currencyID {cid} differs from document currency {currency}")

    # References.
    refs = root.findall(_clark("cac:BillingReference/cac:InvoiceDocumentReference"))
    for r in refs:
        if not _text(r, "cbc:ID"):
            ctx.add("BR-55", r, "preceding invoice reference without an ID")
    if doc == "CreditNote" and not refs:
        ctx.add("KWHUB-R001", rootpath + "/cac:BillingReference",
                "a credit note must reference the invoice it credits")

    # Periods.
    inv_start = ctx.day(_one(root, "cac:InvoicePeriod/cbc:StartDate"), "BR-29")
    inv_end = ctx.day(_one(root, "cac:InvoicePeriod/cbc:EndDate"), "BR-29")
    if inv_start and inv_end and inv_end < inv_start:
        ctx.add("BR-29", rootpath + "/cac:InvoicePeriod/cbc:EndDate", f"{inv_end} is before start {inv_start}")

    # Lines.
    line_tag, qty_tag = LINE_TAGS[doc]
    lines = root.findall(_clark("cac:" + line_tag))
    if not lines:
        ctx.add("BR-16", rootpath + "/cac:" + line_tag, "at least one line is required")
    line_sum = Decimal(0)
    by_category: dict[tuple[str, Decimal | None], Decimal] = defaultdict(Decimal)
    for ln in lines:
        lid = _text(ln, "cbc:ID") or "?"
        amount_el = _one(ln, "cbc:LineExtensionAmount")
        amount = ctx.dec(amount_el, "BR-24")
        if amount is None:
            if amount_el is None:
                ctx.add("BR-24", ln, f"line {lid}: net amount missing")
            continue
        line_sum += amount
        cat = _text(ln, "cac:Item/cac:ClassifiedTaxCategory/cbc:ID")
        pct = ctx.dec(_one(ln, "cac:Item/cac:ClassifiedTaxCategory/cbc:Percent"), "BR-CO-04")
        by_category[(cat, pct if pct is not None else Decimal(0))] += amount
        qty = ctx.dec(_one(ln, "cbc:" + qty_tag), "BR-22")
        price_el = _one(ln, "cac:Price/cbc:PriceAmount")
        price = ctx.dec(price_el, "BR-26")
        base = ctx.dec(_one(ln, "cac:Price/cbc:BaseQuantity"), "PEPPOL-EN16931-R121")
        if price is not None and price < 0:
            ctx.add("BR-27", price_el, f"line {lid}: item net price {price} is negative")
        if qty is not None and price is not None:
            if base is not None and base <= 0:
                ctx.add("PEPPOL-EN16931-R121", ln, f"line {lid}: base quantity {base} must be positive")
            else:
                expected = round2(qty * price / (base if base is not None else Decimal(1)))
                if expected != amount:
                    ctx.add("PEPPOL-EN16931-R120", amount_el,
                            f"line {lid}: net amount {amount} != quantity {qty} x price {price}"
                            + (f" / base {base}" if base is not None else "") + f" = {expected}")
        ls = ctx.day(_one(ln, "cac:InvoicePeriod/cbc:StartDate"), "BR-30")
        le = ctx.day(_one(ln, "cac:InvoicePeriod/cbc:EndDate"), "BR-30")
        if ls and le and le < ls:
            ctx.add("BR-30", ln, f"line {lid}: period end {le} is before start {ls}")
        if ls and inv_start and ls < inv_start:
            ctx.add("PEPPOL-EN16931-R110", ln, f"line {lid}: period start {ls} is before invoice period start {inv_start}")
        if le and inv_end and le > inv_end:
            ctx.add("PEPPOL-EN16931-R111", ln, f"line {lid}: period end {le} is after invoice period end {inv_end}")

    # Document totals.
    lmt = rootpath + "/cac:LegalMonetaryTotal"
    lea_el = _one(root, "cac:LegalMonetaryTotal/cbc:LineExtensionAmount")
    lea = ctx.dec(lea_el, "BR-12")
    if lea is None:
        ctx.add("BR-12", lmt + "/cbc:LineExtensionAmount", "sum of line net amounts missing")
    elif lea != line_sum:
        ctx.add("BR-CO-10", lea_el, f"is {lea} but the {len(lines)} line net amounts sum to {line_sum}")
    allowances = ctx.dec(_one(root, "cac:LegalMonetaryTotal/cbc:AllowanceTotalAmount"), "BR-CO-11") or Decimal(0)
    charges = ctx.dec(_one(root, "cac:LegalMonetaryTotal/cbc:ChargeTotalAmount"), "BR-CO-12") or Decimal(0)
    tex_el = _one(root, "cac:LegalMonetaryTotal/cbc:TaxExclusiveAmount")
    tex = ctx.dec(tex_el, "BR-13")
    if tex is None:
        ctx.add("BR-13", lmt + "/cbc:TaxExclusiveAmount", "missing")
    elif lea is not None and tex != lea - allowances + charges:
        ctx.add("BR-CO-13", tex_el, f"is {tex}, expected {lea - allowances + charges}")

    tax_total = Decimal(0)
    tax_total_el = None
    for tt in root.findall(_clark("cac:TaxTotal")):
        amt_el = _one(tt, "cbc:TaxAmount")
        if amt_el is None or amt_el.get("currencyID") != currency:
            continue
        tax_total_el = amt_el
        tax_total = ctx.dec(amt_el, "BR-CO-14") or Decimal(0)
        subs = tt.findall(_clark("cac:TaxSubtotal"))
        sub_sum = Decimal(0)
        seen: dict[tuple[str, Decimal], etree._Element] = {}
        for st in subs:
            taxable_el = _one(st, "cbc:TaxableAmount")
            taxable = ctx.dec(taxable_el, "BR-45")
            tax_el = _one(st, "cbc:TaxAmount")
            tax = ctx.dec(tax_el, "BR-46")
            cat = _text(st, "cac:TaxCategory/cbc:ID")
            pct = ctx.dec(_one(st, "cac:TaxCategory/cbc:Percent"), "BR-48") or Decimal(0)
            seen[(cat, pct)] = st
            if tax is not None:
                sub_sum += tax
            if taxable is not None and tax is not None and not tax_within_tolerance(tax, taxable, pct):
                expected = round2(taxable * pct / 100)
                ctx.add("BR-CO-17", tax_el, f"category {cat} {pct}%: tax {tax} is not {taxable} x {pct}% = {expected} "
                        "(within the rule's tolerance of one currency unit)")
            if taxable is not None:
                lines_base = by_category.get((cat, pct), Decimal(0))
                if taxable != lines_base:
                    ctx.add(f"BR-{cat}-08", taxable_el,
                            f"category {cat} {pct}%: taxable amount {taxable} != sum of its lines {lines_base}")
        for (cat, pct), base in by_category.items():
            if (cat, pct) not in seen:
                ctx.add(f"BR-{cat}-01" if cat else "BR-CO-18", tt,
                        f"no tax subtotal for category {cat} {pct}% (lines sum {base})")
        if sub_sum != tax_total:
            ctx.add("BR-CO-14", amt_el, f"is {tax_total} but the tax subtotals sum to {sub_sum}")
    if tax_total_el is None:
        ctx.add("BR-CO-18", rootpath + "/cac:TaxTotal", "no TaxTotal in the document currency")

    tin_el = _one(root, "cac:LegalMonetaryTotal/cbc:TaxInclusiveAmount")
    tin = ctx.dec(tin_el, "BR-14")
    if tin is None:
        ctx.add("BR-14", lmt + "/cbc:TaxInclusiveAmount", "missing")
    elif tex is not None and tin != tex + tax_total:
        ctx.add("BR-CO-15", tin_el, f"is {tin}, expected TaxExclusiveAmount {tex} + tax {tax_total} = {tex + tax_total}")
    prepaid = ctx.dec(_one(root, "cac:LegalMonetaryTotal/cbc:PrepaidAmount"), "BR-CO-16") or Decimal(0)
    rounding = ctx.dec(_one(root, "cac:LegalMonetaryTotal/cbc:PayableRoundingAmount"), "BR-CO-16") or Decimal(0)
    pay_el = _one(root, "cac:LegalMonetaryTotal/cbc:PayableAmount")
    pay = ctx.dec(pay_el, "BR-15")
    if pay is None:
        ctx.add("BR-15", lmt + "/cbc:PayableAmount", "missing")
    elif tin is not None and pay != tin - prepaid + rounding:
        ctx.add("BR-CO-16", pay_el, f"is {pay}, expected {tin - prepaid + rounding}")
    return ctx.problems


_DATE_TAGS = frozenset(f"{{{NS_CBC}}}{t}" for t in ("IssueDate", "DueDate", "TaxPointDate", "StartDate", "EndDate",
                                                    "ActualDeliveryDate", "PaymentDueDate"))
_ID_0088 = frozenset(f"{{{NS_CBC}}}{t}" for t in ("EndpointID", "ID", "CompanyID"))


def _check_structure(ctx: _Ctx, root: etree._Element, rootpath: str) -> None:
    """Empty elements, dates, identifiers, parties, notes, payment means and tax identity."""
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        if len(el) == 0 and not (el.text or "").strip():
            ctx.add("PEPPOL-EN16931-R008", el, "empty element; a document must not contain empty elements")
        if el.tag in _DATE_TAGS:
            text = (el.text or "").strip()
            try:
                ok = len(text) == 10 and date.fromisoformat(text) is not None
            except ValueError:
                ok = False
            if not ok:
                ctx.add("PEPPOL-EN16931-F001", el, f"date {text!r} must be written YYYY-MM-DD")
        if el.get("schemeID") == "0088" and el.tag in _ID_0088 and not gln_ok(el.text or ""):
            ctx.add("PEPPOL-COMMON-R040", el, f"{(el.text or '').strip()!r} is not a valid GLN (GS1 check digit)")
    for tag, rule, who in (("AccountingSupplierParty", "PEPPOL-EN16931-R020", "seller"),
                           ("AccountingCustomerParty", "PEPPOL-EN16931-R010", "buyer")):
        party = _one(root, f"cac:{tag}/cac:Party")
        if party is None:
            continue
        ep = _one(party, "cbc:EndpointID")
        if ep is None:
            ctx.add(rule, party, f"{who} electronic address (cbc:EndpointID) must be provided")
        elif ep.get("schemeID") not in EAS_CODES:
            ctx.add("PEPPOL-EN16931-CL008", ep, f"endpoint scheme {ep.get('schemeID')!r} is not in the Electronic "
                    "Address Scheme code list")
    notes = root.findall(f"{{{NS_CBC}}}Note")
    if len(notes) > 1:
        ctx.add("PEPPOL-EN16931-R002", notes[1], f"{len(notes)} document notes; at most one is allowed")
    with_subtotals = [tt for tt in root.findall(_clark("cac:TaxTotal")) if _one(tt, "cac:TaxSubtotal") is not None]
    if len(with_subtotals) != 1:
        ctx.add("PEPPOL-EN16931-R053", rootpath + "/cac:TaxTotal",
                f"{len(with_subtotals)} tax totals with subtotals; exactly one is required")
    for pm in root.findall(_clark("cac:PaymentMeans")):
        code = _text(pm, "cbc:PaymentMeansCode")
        if code in ("30", "58") and not _text(pm, "cac:PayeeFinancialAccount/cbc:ID"):
            ctx.add("BR-61", pm, f"payment means {code} (credit transfer) without the payment account "
                    "identifier (cac:PayeeFinancialAccount/cbc:ID, BT-84)")
    standard = any(_text(c, "cbc:ID") == "S" for c in root.iter(f"{{{NS_CAC}}}ClassifiedTaxCategory"))
    if standard and not _text(root, "cac:AccountingSupplierParty/cac:Party/cac:PartyTaxScheme/cbc:CompanyID") \
            and not _text(root, "cac:TaxRepresentativeParty/cac:PartyTaxScheme/cbc:CompanyID"):
        ctx.add("BR-S-02", rootpath + "/cac:AccountingSupplierParty/cac:Party/cac:PartyTaxScheme",
                "standard-rated lines need the seller's VAT identifier or tax registration identifier")
    for bq in root.iter(f"{{{NS_CBC}}}BaseQuantity"):
        line = bq.getparent().getparent() if bq.getparent() is not None else None
        if line is None:
            continue
        qty = next((c for c in line if isinstance(c.tag, str) and etree.QName(c).localname in
                    ("InvoicedQuantity", "CreditedQuantity")), None)
        if qty is not None and bq.get("unitCode") != qty.get("unitCode"):
            ctx.add("PEPPOL-EN16931-R130", bq, f"base quantity unit {bq.get('unitCode')!r} differs from the "
                    f"line's unit {qty.get('unitCode')!r}")


def _text(el: etree._Element, path: str) -> str:
    found = _one(el, path)
    return (found.text or "").strip() if found is not None else ""
