"""X12 810/867: envelopes, control numbers, counts and amounts, read back by tests/x12_parser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pytest

from kwhub.core.invoice import Invoice
from kwhub.core.render_context import Envelope, RenderContext, UsageSeries
from kwhub.plugins.erp.x12 import X12Error, X12InvoiceRenderer, X12UsageRenderer
from tests.fixtures.invoices import (
    adjustment_invoice,
    context,
    credit_note,
    daily_usage,
    energy_invoice,
)
from tests.x12_parser import X12ParseError, parse

CREATED = datetime(2024, 8, 5, 14, 30, tzinfo=UTC)


def _810(inv: Invoice, control_number: int | None = None):
    data = X12InvoiceRenderer("x12_810").render(inv, context(created=CREATED, control_number=control_number))
    return data, parse(data)


def test_810_envelope_and_amounts(any_document: Invoice) -> None:
    data, ic = _810(any_document)
    assert data.index(b"~") == 105  # ISA is 106 characters including its terminator
    assert ic.element_sep == "*" and ic.sub_sep == ">" and ic.terminator == "~"
    assert ic.isa[9] == "240805" and ic.isa[12] == "00401"
    (group,) = ic.groups
    assert group.functional_id == "IN"
    (tx,) = group.transactions
    assert tx.set_id == "810"
    assert int(group.control) == int(ic.control)

    it1 = tx.all("IT1")
    assert len(it1) == len(any_document.lines) == int(tx.first("CTT")[1])
    amounts = [(Decimal(s[2]) * Decimal(s[4])).quantize(Decimal("0.01"), ROUND_HALF_UP) for s in it1]
    assert amounts == [ln.amount for ln in any_document.lines]
    assert sum(amounts) == any_document.line_total
    tds = Decimal(tx.first("TDS")[1]) / 100
    assert tds == any_document.total
    summary_txi = [s for s in tx.segments[tx.segments.index(tx.first("TDS")):] if s[0] == "TXI"]
    assert sum(Decimal(s[2]) for s in summary_txi) == any_document.tax_total
    assert tx.first("BIG")[2] == any_document.number
    assert X12InvoiceRenderer("x").validate(data) == []


def test_810_transaction_types_and_original_reference() -> None:
    _, inv = _810(energy_invoice())
    _, adj = _810(adjustment_invoice())
    _, cn = _810(credit_note())
    big = {k: ic.groups[0].transactions[0].first("BIG") for k, ic in (("inv", inv), ("adj", adj), ("cn", cn))}
    assert big["inv"][7] == "DI" and big["adj"][7] == "DR" and big["cn"][7] == "CR"
    assert all(b[8] == "00" for b in big.values())
    for ic in (adj, cn):
        oi = [s for s in ic.groups[0].transactions[0].all("REF") if s[1] == "OI"]
        assert [s[2] for s in oi] == ["INV-2024-000123"]
    assert not [s for s in inv.groups[0].transactions[0].all("REF") if s[1] == "OI"]
    tx = inv.groups[0].transactions[0]
    assert [s[1] for s in tx.all("N1")] == ["SE", "BY"]
    assert ["150", "20240701"] == tx.all("DTM")[0][1:]
    units = [s[3] for s in tx.all("IT1")]
    assert units == ["KH", "KH", "K1", "MO", "EA", "EA", "KH"]


def test_control_numbers_are_stable_and_overridable() -> None:
    a, ica = _810(energy_invoice())
    b, icb = _810(energy_invoice())
    assert a == b
    _, icc = _810(energy_invoice(), control_number=42)
    assert icc.control == "000000042" and icc.groups[0].control == "42"
    assert ica.control != icc.control


def test_tampered_segment_count_is_detected() -> None:
    data, _ = _810(energy_invoice())
    text = data.decode()
    se = text[text.index("~SE*") + 1:].split("~")[0]
    count = int(se.split("*")[1])
    bad = text.replace(f"~{se}~", f"~SE*{count + 1}*0001~").encode()
    assert any("SE01" in p for p in X12InvoiceRenderer("x").validate(bad))
    with pytest.raises(X12ParseError, match="SE01"):
        parse(bad)
    bad_iea = text.replace("~IEA*1*", "~IEA*1*9").encode()
    assert any("IEA02" in p for p in X12InvoiceRenderer("x").validate(bad_iea))


def test_867_from_lines(any_document: Invoice) -> None:
    if not [ln for ln in any_document.lines if ln.unit in ("kWh", "MWh")]:
        # the credit note has no energy line: without usage there is no PTD loop to write
        with pytest.raises(X12Error, match="an 867 needs a PTD loop"):
            X12UsageRenderer("x12_867").render(any_document, context(created=CREATED))
        return
    data = X12UsageRenderer("x12_867").render(any_document, context(created=CREATED))
    ic = parse(data)
    assert ic.groups[0].functional_id == "PT"
    tx = ic.groups[0].transactions[0]
    assert tx.set_id == "867" and tx.first("BPT")[4] == "DD"
    energy = [ln for ln in any_document.lines if ln.unit == "kWh"]
    qty = tx.all("QTY")
    assert [Decimal(s[2]) for s in qty] == [ln.quantity for ln in energy]
    assert int(tx.first("CTT")[1]) == len(tx.all("PTD")) == len(energy)
    assert X12UsageRenderer("x").validate(data) == []


def test_867_interval_usage_matches_extras() -> None:
    start = datetime(2024, 7, 1, 4, 0, tzinfo=UTC)
    n = 96 * 3
    rng = np.random.default_rng(3)
    values = np.round(rng.uniform(200, 400, n), 3)
    usage = [(start + timedelta(minutes=15 * i), float(values[i])) for i in range(n)]
    data = X12UsageRenderer("x12_867").render(energy_invoice(), RenderContext(usage=UsageSeries.of(usage), envelope=Envelope(CREATED)))
    tx = parse(data).groups[0].transactions[0]
    assert tx.first("BPT")[4] == "C1"
    pm = tx.segments.index(["PTD", "PM"])
    qty = [s for s in tx.segments[pm:] if s[0] == "QTY"]
    dtm = [s for s in tx.segments[pm:] if s[0] == "DTM" and s[1] == "582"]
    assert len(qty) == len(dtm) == n
    assert sum(Decimal(s[2]) for s in qty) == sum(Decimal(f"{v:.3f}") for v in values)
    assert dtm[0][2:] == ["20240701", "0400", "UT"]
    assert dtm[-1][2:] == ["20240704", "0345", "UT"]
    # Arrays work the same as pairs.
    arrays = (np.array([np.datetime64("2024-07-01T04:00") + np.timedelta64(15 * i, "m") for i in range(n)]), values)
    again = X12UsageRenderer("x").render(energy_invoice(), RenderContext(usage=UsageSeries.of(arrays), envelope=Envelope(CREATED)))
    assert again == data


def test_separators_in_text_are_neutralised() -> None:
    inv = energy_invoice()
    lines = list(inv.lines)
    lines[0] = lines[0].model_copy(update={"description": "Energy*peak~with>separators"})
    data, ic = _810(inv.model_copy(update={"lines": lines}))
    pid = ic.groups[0].transactions[0].all("PID")[0]
    assert pid[5] == "Energy peak with separators"


def test_daily_usage_fixture_sums() -> None:
    usage = daily_usage()
    data = X12UsageRenderer("x").render(credit_note(), RenderContext(usage=UsageSeries.of(usage), envelope=Envelope(CREATED)))
    tx = parse(data).groups[0].transactions[0]
    assert [s[2] for s in tx.all("REF") if s[1] == "OI"] == ["INV-2024-000123"]
    pm = tx.segments.index(["PTD", "PM"])
    total = sum(Decimal(s[2]) for s in tx.segments[pm:] if s[0] == "QTY")
    assert total == sum(Decimal(f"{v:.3f}") for _, v in usage)


def test_amount_not_equal_to_quantity_times_price_gets_a_finer_price() -> None:
    from kwhub.core.invoice import InvoiceLine, compute_totals
    from tests.fixtures.invoices import POLICY

    line = InvoiceLine(number=1, description="Energy, TOU-weighted", quantity=Decimal("1000000.000"),
                       unit="MWh", unit_price=Decimal("54.321"), amount=Decimal("54321037.37"))
    inv = compute_totals(energy_invoice().model_copy(update={"lines": [line]}), POLICY)
    _, ic = _810(inv)
    it1 = ic.groups[0].transactions[0].first("IT1")
    assert it1[3] == "KH" and Decimal(it1[2]) == Decimal("1000000000")  # MWh -> kWh
    assert (Decimal(it1[2]) * Decimal(it1[4])).quantize(Decimal("0.01"), ROUND_HALF_UP) == line.amount


# ---------------------------------------------------------------- 004010 segment order (tests/x12_grammar)


def _segments(data: bytes) -> tuple[str, list[list[str]]]:
    tx = parse(data).groups[0].transactions[0]
    return tx.set_id, tx.segments


@pytest.mark.parametrize("with_usage", [False, True])
def test_every_document_follows_the_004010_tables(any_document: Invoice, with_usage: bool) -> None:
    from tests.x12_grammar import check_order

    ctx = context(usage=with_usage, created=CREATED)
    check_order(*_segments(X12InvoiceRenderer("x").render(any_document, ctx)))
    if with_usage or [ln for ln in any_document.lines if ln.unit in ("kWh", "MWh")]:
        check_order(*_segments(X12UsageRenderer("x").render(any_document, ctx)))


def test_grammar_refuses_the_old_867_order_and_a_missing_ptd_loop() -> None:
    """The 867 used to write REF before DTM (heading and PTD loop) and no PTD for a credit note."""
    from tests.x12_grammar import X12OrderError, check_order

    old_heading = [["ST", "867", "0001"], ["BPT", "00", "X", "20240805", "DD"], ["REF", "11", "T"],
                   ["DTM", "150", "20240701"], ["PTD", "SU"], ["QTY", "QD", "1", "KH"], ["CTT", "1"], ["SE", "7", "0001"]]
    with pytest.raises(X12OrderError, match="DTM"):
        check_order("867", old_heading)
    old_loop = [["ST", "867", "0001"], ["BPT", "00", "X", "20240805", "DD"], ["PTD", "SU"], ["REF", "ZZ", "LINE1"],
                ["DTM", "150", "20240701"], ["QTY", "QD", "1", "KH"], ["CTT", "1"], ["SE", "8", "0001"]]
    with pytest.raises(X12OrderError, match="DTM"):
        check_order("867", old_loop)
    no_ptd = [["ST", "867", "0001"], ["BPT", "00", "X", "20240805", "DD"], ["CTT", "0"], ["SE", "4", "0001"]]
    with pytest.raises(X12OrderError, match="mandatory PTD missing"):
        check_order("867", no_ptd)
    with pytest.raises(X12OrderError, match="REF"):
        check_order("810", [["ST", "810", "1"], ["BIG", "x"], ["TDS", "1"], ["REF", "11", "x"], ["SE", "5", "1"]])


def test_810_and_867_of_one_invoice_have_their_own_control_numbers() -> None:
    inv = energy_invoice()
    ctx = context(created=CREATED)
    a = parse(X12InvoiceRenderer("x").render(inv, ctx))
    b = parse(X12UsageRenderer("x").render(inv, ctx))
    assert a.control != b.control
    assert a.groups[0].transactions[0].control != b.groups[0].transactions[0].control
    given = parse(X12UsageRenderer("x").render(inv, context(created=CREATED, control_number=7)))
    assert given.control == "000000007" and given.groups[0].control == "7"
    assert given.groups[0].transactions[0].control == "0007"
    r = X12InvoiceRenderer("x", {"sender_id": "KWHUB", "receiver_id": "ERP1"})
    assert r.control_partner(inv) == "x12:ZZ:KWHUB>ZZ:ERP1"
    with pytest.raises(X12Error, match="outside"):
        r.render(inv, context(created=CREATED, control_number=1_000_000_000))


def test_810_without_lines_is_refused() -> None:
    empty = energy_invoice().model_copy(update={"lines": []})
    with pytest.raises(X12Error, match="IT1"):
        X12InvoiceRenderer("x").render(empty, context(created=CREATED))
