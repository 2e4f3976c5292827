"""SAP IDoc INVOIC02: control record, segments, and a round-trip read back of the amounts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from lxml import etree

from kwhub.core.invoice import Invoice
from kwhub.hub.helpers.safe_xml import parse_xml
from kwhub.plugins.erp.idoc import IdocRenderer, parse_sap_number, sap_number
from tests.fixtures.invoices import adjustment_invoice, context, credit_note, energy_invoice

CREATED = datetime(2024, 8, 5, 9, 15, 30, tzinfo=UTC)


@dataclass
class ReadBack:
    """What an inbound SAP mapping would take out of the IDoc."""

    bsart: str
    number: str
    currency: str
    partners: dict[str, str]
    refs: dict[str, list[str]]
    dates: dict[str, str]
    lines: list[tuple[str, Decimal, str, Decimal, Decimal]] = field(default_factory=list)
    sums: dict[str, Decimal] = field(default_factory=dict)


def read_idoc(data: bytes) -> ReadBack:
    root = parse_xml(data)
    assert root.tag == "INVOIC02"
    (idoc,) = root.findall("IDOC")
    assert idoc.get("BEGIN") == "1" and idoc[0].tag == "EDI_DC40"
    k01 = idoc.find("E1EDK01")
    refs: dict[str, list[str]] = {}
    for k in idoc.findall("E1EDK02"):
        refs.setdefault(k.findtext("QUALF"), []).append(k.findtext("BELNR"))
    rb = ReadBack(
        bsart=k01.findtext("BSART"), number=k01.findtext("BELNR"), currency=k01.findtext("CURCY"),
        partners={k.findtext("PARVW"): k.findtext("PARTN") for k in idoc.findall("E1EDKA1")},
        refs=refs, dates={k.findtext("IDDAT"): k.findtext("DATUM") for k in idoc.findall("E1EDK03")},
    )
    for p in idoc.findall("E1EDP01"):
        rb.lines.append((p.findtext("POSEX"), parse_sap_number(p.findtext("MENGE")), p.findtext("MENEE"),
                         parse_sap_number(p.findtext("VPREI")), parse_sap_number(p.findtext("NETWR"))))
        assert parse_sap_number(p.find("E1EDP26").findtext("BETRG")) == rb.lines[-1][4]
    rb.sums = {s.findtext("SUMID"): parse_sap_number(s.findtext("SUMME")) for s in idoc.findall("E1EDS01")}
    return rb


def test_round_trip(any_document: Invoice) -> None:
    r = IdocRenderer("idoc_invoic02")
    data = r.render(any_document, context(created=CREATED))
    assert r.validate(data) == []
    rb = read_idoc(data)
    assert rb.number == any_document.number and rb.currency == "USD"
    assert rb.bsart == ("CRME" if any_document.is_credit else "INVO")
    assert rb.partners == {"RS": "ipp", "RE": "tenant_a", "AG": "tenant_a"}
    assert rb.refs["009"] == [any_document.number]
    assert rb.refs.get("011", []) == [ref.number for ref in any_document.references]
    assert rb.dates["012"] == any_document.issue_date.strftime("%Y%m%d")
    assert rb.dates["016"] == "20240701" and rb.dates["017"] == "20240731"
    assert [ln[4] for ln in rb.lines] == [ln.amount for ln in any_document.lines]
    assert [ln[1] for ln in rb.lines] == [ln.quantity for ln in any_document.lines]
    assert rb.sums["010"] == any_document.line_total
    assert rb.sums["005"] == any_document.tax_total
    assert rb.sums["011"] == any_document.total
    assert rb.sums["001"] == len(any_document.lines)


def test_control_record() -> None:
    r = IdocRenderer("idoc", {"client": "100", "receiver_port": "SAPPRD", "receiver_partner": "PRDCLNT100"})
    root = parse_xml(r.render(energy_invoice(), context(created=CREATED)))
    dc = root.find("IDOC/EDI_DC40")
    assert dc.get("SEGMENT") == "1"
    got = {el.tag: el.text for el in dc}
    assert got["TABNAM"] == "EDI_DC40" and got["DIRECT"] == "2" and got["MANDT"] == "100"
    assert got["IDOCTYP"] == "INVOIC02" and got["MESTYP"] == "INVOIC"
    assert (got["SNDPOR"], got["SNDPRT"], got["SNDPRN"]) == ("KWHUB", "LS", "IPP")
    assert (got["RCVPOR"], got["RCVPRT"], got["RCVPRN"]) == ("SAPPRD", "LS", "PRDCLNT100")
    assert (got["CREDAT"], got["CRETIM"]) == ("20240805", "091530")
    assert len(got["DOCNUM"]) == 16


def test_negative_amounts_use_trailing_minus() -> None:
    assert sap_number(Decimal("-4321.09")) == "4321.09-"
    assert parse_sap_number("4321.09-") == Decimal("-4321.09")
    rb = read_idoc(IdocRenderer("i").render(adjustment_invoice(), context(created=CREATED)))
    assert rb.lines[1][4] < 0


def test_tampered_totals_and_missing_reference_are_reported() -> None:
    r = IdocRenderer("i")
    root = parse_xml(r.render(energy_invoice(), context(created=CREATED)))
    root.find("IDOC/E1EDP01/NETWR").text = "1.00"
    problems = r.validate(etree.tostring(root))
    assert any("SUMID 010" in p and "E1EDS01" in p for p in problems)
    assert any("SUMID 011" in p for p in problems)

    cn = credit_note().model_copy(update={"references": []})
    assert any("QUALF 011" in p for p in r.validate(r.render(cn)))

    root = parse_xml(r.render(energy_invoice()))
    root.find("IDOC/EDI_DC40/DIRECT").text = "1"
    assert any("DIRECT" in p for p in r.validate(etree.tostring(root)))


def test_field_lengths_come_from_the_invoic02_segments() -> None:
    """PSTLZ is 9 (not 10), E1EDK04-KTEXT 50 (not 70), E1EDP19-IDTNR 35 (was not checked)."""
    import pytest

    from kwhub.plugins.erp.idoc import IdocError

    r = IdocRenderer("i")
    inv = energy_invoice()
    ten = inv.model_copy(update={"buyer": inv.buyer.model_copy(
        update={"address": inv.buyer.address.model_copy(update={"postal_code": "20175-1234"})})})
    with pytest.raises(IdocError, match="E1EDKA1-PSTLZ allows 9"):
        r.render(ten, context(created=CREATED))
    assert any("address.postal_code" in p and "E1EDKA1-PSTLZ allows 9" in p for p in r.check_parties(ten.seller, ten.buyer))
    long_id = inv.model_copy(update={"lines": [inv.lines[0].model_copy(update={"component_id": "c" * 36})]})
    with pytest.raises(IdocError, match="E1EDP19-IDTNR allows 35"):
        r.render(long_id, context(created=CREATED))
    data = r.render(inv, context(created=CREATED))
    root = parse_xml(data)
    root.find(".//E1EDK04/KTEXT").text = "x" * 51
    root.find(".//E1EDP19/IDTNR").text = "y" * 36
    root.find(".//E1EDKA1/PSTLZ").text = "1234567890"
    problems = r.validate(etree.tostring(root))
    assert any("E1EDK04-KTEXT allows 50" in p for p in problems)
    assert any("E1EDP19-IDTNR allows 35" in p for p in problems)
    assert any("E1EDKA1-PSTLZ allows 9" in p for p in problems)
    assert r.check_parties(inv.seller, inv.buyer) == []
