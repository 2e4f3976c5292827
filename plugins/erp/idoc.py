"""SAP IDoc INVOIC02 (message type INVOIC) as XML, for inbound posting in SAP.

Layout: ``<INVOIC02><IDOC BEGIN="1">`` with the control record ``EDI_DC40`` (DIRECT 2 =
inbound to SAP, sender/receiver port, partner type and number from the config) and the
data segments in INVOIC02 order:

- ``E1EDK01``: CURCY, ZTERM, EIGENUINR/KUNDEUINR (tax ids), BSART ``INVO`` (invoice and
  adjustment invoice) or ``CRME`` (credit memo), BELNR (document number)
- ``E1EDKA1`` per partner: PARVW ``RS`` invoicing party (seller), ``RE`` bill-to party and
  ``AG`` sold-to party (buyer) with PARTN, NAME1, STRAS, ORT01, PSTLZ, LAND1, REGIO
- ``E1EDK02`` references, QUALF: ``009`` invoice number, ``001`` customer purchase order
  (buyer reference), ``006`` contract, ``011`` referenced (original) document of an
  adjustment or credit memo, with its date
- ``E1EDK03`` dates, IDDAT: ``012`` document date, ``026`` invoice date, and the service
  period as ``016`` start / ``017`` end (kwhub's choice; both configurable because partner
  profiles map period dates differently)
- ``E1EDK04`` tax per rate (MWSKZ category, MSATZ rate, MWSBT tax amount, KTEXT text)
- ``E1EDK18`` payment terms (QUALF 001, TAGE days net)
- ``E1EDP01`` per line: POSEX, MENGE, MENEE (ISO unit), VPREI, PEINH, NETWR, with children
  ``E1EDP03`` (period dates), ``E1EDP19`` (QUALF 002 seller's id + KTEXT description),
  ``E1EDP26`` (QUALF 003 net line value) and ``E1EDP04`` (tax)
- ``E1EDS01`` totals, SUMID: ``001`` number of lines, ``010`` total of line items (net),
  ``005`` total tax, ``011`` total amount (gross)

Negative numbers use SAP's trailing minus (``4321.09-``).
"""

from __future__ import annotations

import zlib
from collections.abc import Collection
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from lxml import etree

from kwhub.core.adapters import AdapterConfig, InvoiceRenderer
from kwhub.core.hookspecs import hookimpl
from kwhub.core.invoice import Invoice, PartyRef
from kwhub.core.money import money_str
from kwhub.core.render_context import RenderContext
from kwhub.hub.helpers.safe_xml import UnsafeXmlError, element_path, parse_xml

BSART_INVOICE = "INVO"
BSART_CREDIT = "CRME"
QUALF_INVOICE_NO = "009"
QUALF_PO = "001"
QUALF_CONTRACT = "006"
QUALF_ORIGINAL = "011"
IDDAT_DOCUMENT = "012"
IDDAT_INVOICE = "026"
SUMID_LINES = "001"
SUMID_NET = "010"
SUMID_TAX = "005"
SUMID_GROSS = "011"
# Field lengths of the INVOIC02 segment definitions (characters), per segment: the same
# field name can differ (KTEXT is 50 in E1EDK04 and 70 in E1EDP19).
FIELD_LENGTHS: dict[str, dict[str, int]] = {
    "EDI_DC40": {"TABNAM": 10, "MANDT": 3, "DOCNUM": 16, "DIRECT": 1, "IDOCTYP": 30, "MESTYP": 30, "SNDPOR": 10,
                 "SNDPRT": 2, "SNDPRN": 10, "RCVPOR": 10, "RCVPRT": 2, "RCVPRN": 10, "CREDAT": 8, "CRETIM": 6},
    "E1EDK01": {"CURCY": 3, "ZTERM": 17, "KUNDEUINR": 20, "EIGENUINR": 20, "BSART": 4, "BELNR": 35},
    "E1EDKA1": {"PARVW": 3, "PARTN": 17, "NAME1": 35, "STRAS": 35, "ORT01": 35, "PSTLZ": 9, "LAND1": 3,
                "REGIO": 3},
    "E1EDK02": {"QUALF": 3, "BELNR": 35, "DATUM": 8},
    "E1EDK03": {"IDDAT": 3, "DATUM": 8},
    "E1EDK04": {"MWSKZ": 7, "MSATZ": 17, "MWSBT": 18, "KTEXT": 50},
    "E1EDK18": {"QUALF": 3, "TAGE": 8},
    "E1EDP01": {"POSEX": 6, "MENGE": 15, "MENEE": 3, "VPREI": 15, "PEINH": 9, "NETWR": 18},
    "E1EDP03": {"IDDAT": 3, "DATUM": 8},
    "E1EDP19": {"QUALF": 3, "IDTNR": 35, "KTEXT": 70},
    "E1EDP26": {"QUALF": 3, "BETRG": 18},
    "E1EDP04": {"MWSKZ": 7, "MSATZ": 17},
    "E1EDS01": {"SUMID": 3, "SUMME": 18, "WAERQ": 3},
}
PARTNER_FIELDS = {"id": "PARTN", "name": "NAME1", "address.street": "STRAS", "address.city": "ORT01",
                  "address.postal_code": "PSTLZ", "address.country": "LAND1", "address.region": "REGIO"}


class IdocError(ValueError):
    """A value does not fit its INVOIC02 field; the message names segment, field and length."""


def sap_number(value: Decimal) -> str:
    """SAP character number: plain decimal, trailing minus for negatives."""
    s = money_str(abs(value))
    return s + "-" if value < 0 else s


def parse_sap_number(text: str) -> Decimal:
    """Inverse of :func:`sap_number` (accepts a leading minus too)."""
    t = text.strip()
    if t.endswith("-"):
        return -Decimal(t[:-1])
    return Decimal(t)


def _d8(d: date) -> str:
    return d.strftime("%Y%m%d")


def _seg(parent: etree._Element, name: str, fields: list[tuple[str, str]]) -> etree._Element:
    """Append segment ``name``; a value longer than its field is refused, never cut."""
    el = etree.SubElement(parent, name, SEGMENT="1")
    lengths = FIELD_LENGTHS[name]
    for tag, value in fields:
        if value == "":
            continue
        limit = lengths.get(tag)
        if limit is None:
            raise IdocError(f"{name}-{tag}: not a field kwhub knows the INVOIC02 length of")
        if len(value) > limit:
            raise IdocError(f"{name}-{tag} allows {limit} characters, the value has {len(value)}: {value[:80]!r}")
        etree.SubElement(el, tag).text = value
    return el


class IdocConfig(AdapterConfig):
    """Partner profile data of the control record and period date qualifiers."""

    client: str = ""  # MANDT; empty = let SAP fill it
    sender_port: str = "KWHUB"
    sender_partner_type: str = "LS"
    sender_partner: str = ""  # empty: the seller id
    receiver_port: str = "SAPERP"
    receiver_partner_type: str = "LS"
    receiver_partner: str = ""  # empty: the buyer id
    period_start_qualifier: str = "016"
    period_end_qualifier: str = "017"


def _partner(idoc: etree._Element, parvw: str, p: PartyRef) -> None:
    a = p.address
    _seg(idoc, "E1EDKA1", [("PARVW", parvw), ("PARTN", p.id), ("NAME1", p.name), ("STRAS", a.street),
                           ("ORT01", a.city), ("PSTLZ", a.postal_code), ("LAND1", a.country),
                           ("REGIO", a.region)])


def build_idoc(invoice: Invoice, cfg: IdocConfig, created: datetime) -> etree._Element:
    """The INVOIC02 element tree of ``invoice``."""
    root = etree.Element("INVOIC02")
    idoc = etree.SubElement(root, "IDOC", BEGIN="1")
    docnum = zlib.crc32(f"{invoice.id}:v{invoice.version}".encode()) % 10**16
    _seg(idoc, "EDI_DC40", [
        ("TABNAM", "EDI_DC40"), ("MANDT", cfg.client), ("DOCNUM", f"{docnum:016d}"),
        ("DIRECT", "2"), ("IDOCTYP", "INVOIC02"), ("MESTYP", "INVOIC"),
        ("SNDPOR", cfg.sender_port), ("SNDPRT", cfg.sender_partner_type),
        ("SNDPRN", (cfg.sender_partner or invoice.seller.id).upper()),
        ("RCVPOR", cfg.receiver_port), ("RCVPRT", cfg.receiver_partner_type),
        ("RCVPRN", (cfg.receiver_partner or invoice.buyer.id).upper()),
        ("CREDAT", created.strftime("%Y%m%d")), ("CRETIM", created.strftime("%H%M%S")),
    ])
    days = (invoice.due_date - invoice.issue_date).days
    _seg(idoc, "E1EDK01", [
        ("CURCY", invoice.currency), ("ZTERM", f"N{days:03d}"),
        ("KUNDEUINR", invoice.buyer.tax_id), ("EIGENUINR", invoice.seller.tax_id),
        ("BSART", BSART_CREDIT if invoice.is_credit else BSART_INVOICE), ("BELNR", invoice.number),
    ])
    _partner(idoc, "RS", invoice.seller)
    _partner(idoc, "RE", invoice.buyer)
    _partner(idoc, "AG", invoice.buyer)
    _seg(idoc, "E1EDK02", [("QUALF", QUALF_INVOICE_NO), ("BELNR", invoice.number),
                           ("DATUM", _d8(invoice.issue_date))])
    if invoice.buyer_reference:
        _seg(idoc, "E1EDK02", [("QUALF", QUALF_PO), ("BELNR", invoice.buyer_reference)])
    if invoice.contract_id:
        _seg(idoc, "E1EDK02", [("QUALF", QUALF_CONTRACT), ("BELNR", invoice.contract_id)])
    for ref in invoice.references:
        _seg(idoc, "E1EDK02", [("QUALF", QUALF_ORIGINAL), ("BELNR", ref.number),
                               ("DATUM", _d8(ref.issue_date) if ref.issue_date else "")])
    _seg(idoc, "E1EDK03", [("IDDAT", IDDAT_DOCUMENT), ("DATUM", _d8(invoice.issue_date))])
    _seg(idoc, "E1EDK03", [("IDDAT", IDDAT_INVOICE), ("DATUM", _d8(invoice.issue_date))])
    _seg(idoc, "E1EDK03", [("IDDAT", cfg.period_start_qualifier), ("DATUM", _d8(invoice.period_start))])
    _seg(idoc, "E1EDK03", [("IDDAT", cfg.period_end_qualifier), ("DATUM", _d8(invoice.period_end))])
    for t in invoice.taxes:
        _seg(idoc, "E1EDK04", [("MWSKZ", t.category), ("MSATZ", money_str(t.percent)),
                               ("MWSBT", sap_number(t.tax_amount)),
                               ("KTEXT", f"Tax {t.category} {money_str(t.percent)}% on {money_str(t.taxable_amount)}")])
    _seg(idoc, "E1EDK18", [("QUALF", "001"), ("TAGE", str(days))])
    for line in invoice.lines:
        p01 = _seg(idoc, "E1EDP01", [
            ("POSEX", f"{line.number:06d}"), ("MENGE", sap_number(line.quantity)),
            ("MENEE", line.unit_code), ("VPREI", sap_number(line.unit_price)), ("PEINH", "1"),
            ("NETWR", sap_number(line.amount)),
        ])
        if line.period_start:
            _seg(p01, "E1EDP03", [("IDDAT", cfg.period_start_qualifier), ("DATUM", _d8(line.period_start))])
        if line.period_end:
            _seg(p01, "E1EDP03", [("IDDAT", cfg.period_end_qualifier), ("DATUM", _d8(line.period_end))])
        _seg(p01, "E1EDP19", [("QUALF", "002"), ("IDTNR", line.component_id or line.charge_type),
                              ("KTEXT", line.description)])
        _seg(p01, "E1EDP26", [("QUALF", "003"), ("BETRG", sap_number(line.amount))])
        _seg(p01, "E1EDP04", [("MWSKZ", line.tax_category), ("MSATZ", money_str(line.tax_percent))])
    for sumid, value in ((SUMID_LINES, Decimal(len(invoice.lines))), (SUMID_NET, invoice.line_total),
                         (SUMID_TAX, invoice.tax_total), (SUMID_GROSS, invoice.total)):
        fields = [("SUMID", sumid), ("SUMME", sap_number(value))]
        if sumid != SUMID_LINES:
            fields.append(("WAERQ", invoice.currency))
        _seg(idoc, "E1EDS01", fields)
    return root


def check_idoc(root: etree._Element) -> list[str]:
    """Structure and totals problems of a parsed INVOIC02 document."""
    out: list[str] = []
    if root.tag != "INVOIC02":
        return [f"/{root.tag}: root must be INVOIC02"]
    idocs = root.findall("IDOC")
    if len(idocs) != 1 or idocs[0].get("BEGIN") != "1":
        return ["/INVOIC02/IDOC: exactly one IDOC with BEGIN=\"1\" is required"]
    idoc = idocs[0]
    dc = idoc.find("EDI_DC40")
    if dc is None or idoc[0] is not dc:
        return ["/INVOIC02/IDOC/EDI_DC40: the control record must come first"]
    for field, expected in (("TABNAM", "EDI_DC40"), ("DIRECT", "2"), ("IDOCTYP", "INVOIC02"), ("MESTYP", "INVOIC")):
        if (dc.findtext(field) or "") != expected:
            out.append(f"{element_path(dc)}/{field}: must be {expected}, is {dc.findtext(field)!r}")
    for field in ("SNDPOR", "SNDPRT", "SNDPRN", "RCVPOR", "RCVPRT", "RCVPRN", "CREDAT", "CRETIM"):
        if not (dc.findtext(field) or "").strip():
            out.append(f"{element_path(dc)}/{field}: missing")
    for seg in idoc.iter():
        lengths = FIELD_LENGTHS.get(seg.tag)
        if lengths is None:
            continue
        for f in seg:
            limit = lengths.get(f.tag) if isinstance(f.tag, str) else None
            if limit is None and isinstance(f.tag, str) and f.tag not in FIELD_LENGTHS:
                out.append(f"{element_path(f)}: {seg.tag} has no field {f.tag}")
            elif limit is not None and f.text and len(f.text) > limit:
                out.append(f"{element_path(f)}: {seg.tag}-{f.tag} allows {limit} characters, has {len(f.text)}")
    k01 = idoc.find("E1EDK01")
    if k01 is None:
        return out + ["/INVOIC02/IDOC/E1EDK01: missing"]
    bsart = k01.findtext("BSART") or ""
    if bsart not in (BSART_INVOICE, BSART_CREDIT):
        out.append(f"{element_path(k01)}/BSART: must be INVO or CRME, is {bsart!r}")
    refs = [k for k in idoc.findall("E1EDK02") if k.findtext("QUALF") == QUALF_ORIGINAL]
    if bsart == BSART_CREDIT and not refs:
        out.append("/INVOIC02/IDOC/E1EDK02: a credit memo needs a QUALF 011 reference to the original")
    if not any(k.findtext("QUALF") == QUALF_INVOICE_NO for k in idoc.findall("E1EDK02")):
        out.append("/INVOIC02/IDOC/E1EDK02: QUALF 009 (invoice number) missing")

    def num(el: etree._Element, field: str) -> Decimal | None:
        text = el.findtext(field)
        if text is None:
            out.append(f"{element_path(el)}/{field}: missing")
            return None
        try:
            return parse_sap_number(text)
        except InvalidOperation:
            out.append(f"{element_path(el)}/{field}: not a number: {text!r}")
            return None

    net = Decimal(0)
    items = idoc.findall("E1EDP01")
    for p in items:
        v = num(p, "NETWR")
        if v is not None:
            net += v
    tax = Decimal(0)
    for k in idoc.findall("E1EDK04"):
        v = num(k, "MWSBT")
        if v is not None:
            tax += v
    sums = {s.findtext("SUMID"): s for s in idoc.findall("E1EDS01")}
    expected = {SUMID_LINES: Decimal(len(items)), SUMID_NET: net, SUMID_TAX: tax}
    for sumid, value in expected.items():
        seg = sums.get(sumid)
        if seg is None:
            out.append(f"/INVOIC02/IDOC/E1EDS01: SUMID {sumid} missing")
            continue
        got = num(seg, "SUMME")
        if got is not None and got != value:
            out.append(f"{element_path(seg)}/SUMME: SUMID {sumid} is {got}, items give {value}")
    gross = sums.get(SUMID_GROSS)
    if gross is None:
        out.append(f"/INVOIC02/IDOC/E1EDS01: SUMID {SUMID_GROSS} missing")
    else:
        got = num(gross, "SUMME")
        if got is not None and got != net + tax:
            out.append(f"{element_path(gross)}/SUMME: SUMID 011 is {got}, net + tax = {net + tax}")
    return out


class IdocRenderer(InvoiceRenderer):
    """SAP IDoc INVOIC02 (XML) for inbound invoice posting."""

    type_id: ClassVar[str] = "erp.idoc"
    title: ClassVar[str] = "SAP IDoc INVOIC02 (XML)"
    format_id: ClassVar[str] = "idoc_invoic02"
    media_type: ClassVar[str] = "application/xml"
    file_extension: ClassVar[str] = ".xml"
    capabilities: ClassVar[frozenset[str]] = frozenset({"render", "validate"})
    Config = IdocConfig
    config: IdocConfig

    def check_parties(self, seller: PartyRef, buyer: PartyRef, tax_categories: Collection[str] = ("S",)) -> list[str]:
        """Party fields longer than their E1EDKA1 / EDI_DC40 / E1EDK01 fields."""
        out = []
        for party, role in ((seller, "seller"), (buyer, "buyer")):
            for key, fld in PARTNER_FIELDS.items():
                value = party.id if key == "id" else getattr(party.address, key.split(".")[1]) \
                    if key.startswith("address.") else getattr(party, key)
                limit = FIELD_LENGTHS["E1EDKA1"][fld]
                if len(value) > limit:
                    out.append(f'party "{party.id}" ({role}): {key} has {len(value)} characters, the INVOIC02 field '
                               f"E1EDKA1-{fld} allows {limit}")
            if len(party.tax_id) > 20:
                out.append(f'party "{party.id}" ({role}): tax_id has {len(party.tax_id)} characters, E1EDK01 allows 20')
        for part, given, role in ((self.config.sender_partner, seller.id, "seller"),
                                  (self.config.receiver_partner, buyer.id, "buyer")):
            if len(part or given) > 10:
                out.append(f'party "{given}" ({role}): the IDoc partner number "{(part or given).upper()}" has '
                           f"{len(part or given)} characters, EDI_DC40 allows 10; set sender_partner/receiver_partner")
        return out

    def render(self, invoice: Invoice, context: RenderContext | None = None) -> bytes:
        """``context.envelope.created_at`` sets CREDAT/CRETIM; default now (UTC).

        Raises :class:`IdocError` naming segment and field when a value is too long.
        """
        created = (context.created_at() if context is not None else None) or datetime.now(UTC)
        return etree.tostring(build_idoc(invoice, self.config, created), xml_declaration=True,
                              encoding="UTF-8", pretty_print=True)

    def validate(self, data: bytes) -> list[str]:
        try:
            root = parse_xml(data, "IDoc")
        except UnsafeXmlError as exc:
            return [str(exc)]
        return check_idoc(root)


@hookimpl
def kwhub_register_erp_adapters(register: Any) -> None:
    register(IdocRenderer)
