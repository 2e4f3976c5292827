"""Settlement runs on SQLite and PostgreSQL: exact amounts, versions, staleness, determinism."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal as D

import numpy as np
import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from kwhub.core.intervals import ChannelSeries
from kwhub.core.invoice import check_totals
from kwhub.core.settlement import SettlementOptions
from kwhub.core.timeline import billing_period
from kwhub.hub.settle.service import (
    get_run,
    list_invoices,
    refresh_stale,
    run_allocation,
    run_inputs,
    settle,
    stale_runs,
)
from kwhub.hub.store.settlement_tables import settlement_run_table
from tests.fixtures.settlement import (
    CONSTANT,
    NY,
    constant_series,
    set_value,
    settle_campus,
    write_period,
)

ISSUE = date(2026, 11, 3)


def _lines(inv):
    return [(ln.description, ln.quantity, ln.unit, ln.unit_price, ln.amount) for ln in inv.lines]


def test_initial_run_exact_amounts(db):
    campus = settle_campus()
    write_period(db, "2026-10")
    out = {o.contract_id: o for o in settle(db, campus, "2026-10", issue_date=ISSUE)}
    a, b = out["ppa-a"].invoice, out["ppa-b"].invoice
    assert out["ppa-a"].status == "issued" and a is not None and b is not None
    # 2,976 quarter-hours x 100 kWh = 297.6 MWh x 50 ; peak 400 kW x 10 ; 60 % of 1,000
    assert _lines(a) == [
        ("Energy", D("297.600"), "MWh", D("50.000000"), D("14880.00")),
        ("Demand", D("400.000"), "kW", D("10.000000"), D("4000.00")),
        ("Fixed fee", D("1.000"), "month", D("600.000000"), D("600.00")),
    ]
    assert a.total == D("19480.00") and check_totals(a) == []
    assert a.seller.id == "op" and a.buyer.id == "tenant_a" and a.buyer_reference == "PO-A"
    assert a.due_date == date(2026, 12, 3) and (a.period_start, a.period_end) == (date(2026, 10, 1), date(2026, 10, 31))
    # tenant_b pro rata: gt1 is 90/150 of supply -> 30 kWh of its 50 per interval
    assert _lines(b) == [
        ("Energy (gt1)", D("89.280"), "MWh", D("40.000000"), D("3571.20")),
        ("Energy (pv)", D("59.520"), "MWh", D("30.000000"), D("1785.60")),
    ]
    assert [ln.source_asset for ln in b.lines] == ["gt1", "pv"]
    # the run recorded the data it used and the split
    refs = run_inputs(db, out["ppa-a"].run_id)
    # tenant_a is billed its allocated energy, so its run read the whole campus balance
    assert {r.channel_id for r in refs} == {"a.load", "b.load", "gt1.net", "pv.net", "grid.in"}
    assert len([r for r in refs if r.channel_id == "a.load"]) == 32  # UTC days Oct 1 .. Nov 1
    assert all(r.layer == "validated" and r.version == 1 and len(r.content_hash) == 64 for r in refs)
    alloc = {(r["tenant"], r["source"]): r["kwh"] for r in run_allocation(db, out["ppa-b"].run_id)}
    assert alloc[("tenant_b", "gt1")] == "89280.0" and alloc[("tenant_b", "pv")] == "59520.0"
    assert {r.channel_id for r in run_inputs(db, out["ppa-b"].run_id)} >= {"a.load", "b.load", "gt1.net", "pv.net"}


def test_adjustment_then_credit_note(db):
    campus = settle_campus()
    write_period(db, "2026-10")
    first = settle(db, campus, "2026-10", contracts=["ppa-a"], issue_date=ISSUE)[0]
    assert stale_runs(db) == []
    t10 = billing_period("2026-10", NY).span.start_epoch + 10 * 900
    set_value(db, "a.load", t10, 300.0)  # +200 kWh, peak 1,200 kW
    assert stale_runs(db, "ppa-a") == [first.run_id]
    assert refresh_stale(db) == [first.run_id]
    assert get_run(db, first.run_id)["stale"] is True

    final = settle(db, campus, "2026-10", contracts=["ppa-a"], version="final", issue_date=date(2026, 11, 20))[0]
    adj = final.invoice
    assert final.status == "issued" and adj is not None and adj.kind == "adjustment"
    assert [(r.id, r.number) for r in adj.references] == [(first.invoice.id, first.invoice.number)]
    assert _lines(adj) == [
        ("Energy (adjustment)", D("0.200"), "MWh", D("50.000000"), D("10.00")),
        ("Demand (adjustment)", D("800.000"), "kW", D("10.000000"), D("8000.00")),
    ]
    assert adj.total == D("8010.00")
    assert adj.lines[1].determinants["previous_quantity"] == "400.000"
    assert adj.lines[1].determinants["new_quantity"] == "1200.000"
    assert stale_runs(db, "ppa-a") == [first.run_id]  # the initial stays stale; the final is current

    set_value(db, "a.load", t10, 100.0)  # restated back down
    tu = settle(db, campus, "2026-10", contracts=["ppa-a"], version="true_up", issue_date=date(2026, 12, 1))[0]
    cn = tu.invoice
    assert tu.seq == 1 and cn is not None and cn.kind == "credit_note"
    assert cn.references[0].id == first.invoice.id
    assert _lines(cn) == [
        ("Energy (adjustment)", D("0.200"), "MWh", D("50.000000"), D("10.00")),
        ("Demand (adjustment)", D("800.000"), "kW", D("10.000000"), D("8000.00")),
    ]
    assert cn.total == D("8010.00")
    docs = list_invoices(db, contract_id="ppa-a")
    assert [d.kind for d in docs] == ["invoice", "adjustment", "credit_note"]
    net = sum((-d.total if d.is_credit else d.total for d in docs), D("0"))
    assert net == D("19480.00")

    # nothing changed since: a second true-up is the same run, nothing is written
    again = settle(db, campus, "2026-10", contracts=["ppa-a"], version="true_up")[0]
    assert again.status == "unchanged" and again.seq == 1 and again.invoice is None
    assert len(list_invoices(db, contract_id="ppa-a")) == 3


def test_duplicate_run_refused_by_database(db):
    campus = settle_campus()
    write_period(db, "2026-10")
    ok = settle(db, campus, "2026-10", contracts=["ppa-a"], issue_date=ISSUE)[0]
    dup = settle(db, campus, "2026-10", contracts=["ppa-a"], issue_date=ISSUE)[0]
    assert dup.status == "unchanged" and dup.run_id == ok.run_id and dup.error == ""
    row = get_run(db, ok.run_id)
    raw = {k: row[k] for k in ("contract_id", "period", "version_kind", "seq", "status", "layer", "statement",
                               "statement_hash", "created_at", "stale")}
    with pytest.raises(IntegrityError), db.write_transaction() as conn:
        conn.execute(insert(settlement_run_table).values(id="another-id", **raw))
    assert len(list_invoices(db)) == 1


def test_a_refused_run_in_a_batch_fails_alone(db, monkeypatch):
    """The runs of a batch are written together; when the database refuses one (another settle
    wrote the same run meanwhile), only that run fails and the others are written."""
    import kwhub.hub.settle.service as service

    campus = settle_campus()
    write_period(db, "2026-10")
    first = settle(db, campus, "2026-10", contracts=["ppa-a"], issue_date=ISSUE)[0]
    assert first.status == "issued"
    seen = service.existing_runs_of

    def hide_a(conn, ids, period):  # noqa: ANN001 - as if ppa-a's run were written after this settle looked
        return {k: v for k, v in seen(conn, ids, period).items() if k != "ppa-a"}

    monkeypatch.setattr(service, "existing_runs_of", hide_a)
    out = {o.contract_id: o for o in settle(db, campus, "2026-10", issue_date=ISSUE)}
    assert out["ppa-a"].status == "error" and "already exists" in out["ppa-a"].error
    assert out["ppa-b"].status == "draft" and out["ppa-b"].run_id  # written, not issued (a contract failed)
    assert get_run(db, out["ppa-b"].run_id)["status"] == "draft"
    assert len(run_inputs(db, out["ppa-b"].run_id)) > 0
    assert [d.number for d in list_invoices(db)] == [first.invoice.number]


def test_a_draft_decided_while_its_successor_is_computed_is_not_superseded(db, monkeypatch):
    """Runs are priced before the write transaction begins. A pending draft approved in that
    window stays issued: the run that was to supersede it is refused, nothing of it is written."""
    import kwhub.hub.settle.service as service
    from kwhub.hub.settle.review import approve_runs

    campus = settle_campus()
    manual = SettlementOptions(review_policy="manual")
    write_period(db, "2026-10")
    draft = settle(db, campus, "2026-10", contracts=["ppa-a"], options=manual, issue_date=ISSUE)[0]
    assert draft.status == "draft"
    write_period(db, "2026-10", {k: v + 1 for k, v in CONSTANT.items()})  # other data: a new run supersedes
    seen = service.existing_runs_of

    def approve_meanwhile(conn, ids, period):  # noqa: ANN001 - a clerk approves the draft right after the read
        runs = seen(conn, ids, period)
        approve_runs(db, campus, [draft.run_id], actor="clerk", reason="checked by hand", issue_date=ISSUE,
                     check_inputs=False)
        return runs

    monkeypatch.setattr(service, "existing_runs_of", approve_meanwhile)
    again = settle(db, campus, "2026-10", contracts=["ppa-a"], options=manual, issue_date=ISSUE)[0]
    assert again.status == "error" and "approved or rejected while this settle computed" in again.error
    assert [(r["seq"], r["status"]) for r in service.existing_runs(db, "ppa-a", "2026-10")] == [(1, "issued")]
    assert [d.number for d in list_invoices(db)] == ["OP-000001"]


def test_reading_ahead_settles_the_same_runs(db):
    """Months read in several chunks, the next read on a worker thread while the runs of the
    one before are priced: the same statements as reading each chunk when it is needed."""
    from kwhub.hub.settle.service import settle_periods

    campus = settle_campus()
    for p in ("2026-08", "2026-09", "2026-10"):
        write_period(db, p, {k: v + int(p[-2:]) for k, v in CONSTANT.items()})
    periods = ["2026-08", "2026-09", "2026-10"]
    got = {}
    for ahead in (True, False):  # 5 channels x ~2,976 quarter-hours: one month per chunk
        out = settle_periods(db, campus, periods, issue_date=ISSUE, dry_run=True, max_cells=20_000,
                             read_ahead=ahead)
        got[ahead] = [(o.contract_id, o.period, o.status, o.statement_hash, o.error) for o in out]
    assert got[True] == got[False]
    assert len(got[True]) == 6 and all(s in ("draft", "held") and h for _, _, s, h, _ in got[True])
    assert len({h for *_, h, _ in got[True]}) == 6


def test_reading_ahead_by_default_only_where_it_pays(db, monkeypatch):
    """``read_ahead`` left out: the next span is read on a worker thread on PostgreSQL and in
    turn on SQLite (where the two threads contend for the interpreter); the same statements
    as either explicit choice. Reads in turn hold one read at a time, so each may be twice
    ``max_cells``: two reads of the three months instead of three."""
    from kwhub.hub.settle import service
    from kwhub.hub.settle.loading import reads_ahead

    threaded: list[bool] = []
    reads: list[int] = []

    class Recording(service.SpanReader):
        def __init__(self, *args, **kwargs):  # noqa: ANN002,ANN003
            super().__init__(*args, **kwargs)
            threaded.append(self.pool is not None)
            reads.append(len(self.spans))

    monkeypatch.setattr(service, "SpanReader", Recording)
    campus = settle_campus()
    for p in ("2026-08", "2026-09", "2026-10"):
        write_period(db, p, {k: v + int(p[-2:]) for k, v in CONSTANT.items()})
    periods = ["2026-08", "2026-09", "2026-10"]
    got = {}
    for ahead in (None, True, False):  # 5 channels x ~2,976 quarter-hours: a month per read ahead
        out = service.settle_periods(db, campus, periods, issue_date=ISSUE, dry_run=True, max_cells=20_000,
                                     **({} if ahead is None else {"read_ahead": ahead}))
        got[ahead] = [(o.contract_id, o.period, o.status, o.statement_hash, o.error) for o in out]
    assert reads_ahead(db) is (db.dialect == "postgresql")
    assert threaded == [reads_ahead(db), True, False]
    assert reads == [3 if reads_ahead(db) else 2, 3, 2]
    assert got[None] == got[True] == got[False]
    assert len(got[None]) == 6 and all(s in ("draft", "held") and h for _, _, s, h, _ in got[None])


def test_a_draft_failing_at_issue_stays_a_draft_and_the_others_are_issued(db):
    """Drafts are issued together; one whose on-issue step fails is left pending alone, the
    others are issued with consecutive numbers."""
    from kwhub.core.settlement import SettlementError

    campus = settle_campus()
    write_period(db, "2026-10")
    queued = []

    def on_issue(conn, inv):  # noqa: ANN001
        if inv.buyer.id == "tenant_a":
            raise SettlementError("renderer refused it")
        queued.append(inv.number)

    out = {o.contract_id: o for o in settle(db, campus, "2026-10", issue_date=ISSUE, on_issue=on_issue)}
    assert out["ppa-a"].status == "error" and "not issued: renderer refused it" in out["ppa-a"].error
    assert out["ppa-b"].status == "issued"
    assert get_run(db, out["ppa-a"].run_id)["status"] == "draft"
    docs = list_invoices(db)
    assert [d.buyer.id for d in docs] == ["tenant_b"] and [d.number for d in docs] == [out["ppa-b"].invoice.number]
    assert queued[-1] == out["ppa-b"].invoice.number and out["ppa-b"].invoice.number.endswith("1")


def test_dst_month_has_2884_quarter_hours(db):
    campus = settle_campus()
    write_period(db, "2026-11")
    out = settle(db, campus, "2026-11", contracts=["ppa-a"], issue_date=date(2026, 12, 2))[0]
    st = get_run(db, out.run_id)["statement_json"]
    assert st["span"]["intervals"] == 30 * 96 + 4  # the fall-back day has 100 quarter-hours
    assert st["span"]["start"] == "2026-11-01T04:00:00+00:00" and st["span"]["end"] == "2026-12-01T05:00:00+00:00"
    assert _lines(out.invoice)[0] == ("Energy", D("288.400"), "MWh", D("50.000000"), D("14420.00"))


def test_statement_is_byte_identical_for_identical_inputs(db, tmp_path):
    from kwhub.hub.store import Database

    campus = settle_campus()
    write_period(db, "2026-10")
    one = settle(db, campus, "2026-10", issue_date=ISSUE)
    other = Database.open(f"sqlite:///{tmp_path / 'twin.db'}")
    try:
        write_period(other, "2026-10")
        two = settle(other, campus, "2026-10", issue_date=date(2027, 1, 1))
        for a, b in zip(one, two, strict=True):
            sa, sb = get_run(db, a.run_id)["statement"], get_run(other, b.run_id)["statement"]
            assert sa == sb and a.statement_hash == b.statement_hash
            assert json.loads(sa)["inputs"]["count"] > 0
    finally:
        other.close()


def test_missing_data_is_refused_unless_configured(db):
    campus = settle_campus()
    vals = dict(CONSTANT)
    del vals["b.load"]
    write_period(db, "2026-10", vals)
    # hall B is not metered: every run needs the campus balance, so both are refused
    out = settle(db, campus, "2026-10", issue_date=ISSUE)
    by = {o.contract_id: o for o in out}
    assert by["ppa-a"].status == "error" and "b.load (2976 intervals)" in by["ppa-a"].error
    assert by["ppa-b"].status == "error" and "without validated data" in by["ppa-b"].error
    # counting the gaps as zero bills hall A; hall B has no data at all, so its month is refused
    zero = {o.contract_id: o for o in settle(db, campus, "2026-10", options=SettlementOptions(missing="zero"),
                                             issue_date=ISSUE)}
    assert zero["ppa-b"].status == "error" and "no measured data at all in b.load" in zero["ppa-b"].error
    # one contract failed, so nothing was issued: ppa-a waits as a draft, held by the zeroed intervals
    assert zero["ppa-a"].status == "held" and zero["ppa-a"].invoice is None
    assert any(r.startswith("missing_intervals: 2976 intervals") for r in zero["ppa-a"].held_reasons)
    assert zero["ppa-a"].missing_intervals == 2976
    assert list_invoices(db) == []


def test_fallback_to_raw_layer(db):
    campus = settle_campus()
    write_period(db, "2026-10", layer="raw")
    refused = settle(db, campus, "2026-10", contracts=["ppa-a"])[0]
    assert refused.status == "error" and "a.load" in refused.error
    out = settle(db, campus, "2026-10", contracts=["ppa-a"], options=SettlementOptions(fallback_raw=True),
                 issue_date=ISSUE)[0]
    assert out.invoice is not None and out.invoice.total == D("19480.00")
    assert {r.layer for r in run_inputs(db, out.run_id)} == {"raw"}
    # validated content appearing later makes the run stale
    write_period(db, "2026-10", {"a.load": 100.0}, layer="validated")
    assert stale_runs(db, "ppa-a") == [out.run_id]


def test_next_periods_data_on_an_edge_day_does_not_make_a_run_stale(db):
    # October in New York is 1 Oct 04:00 UTC .. 1 Nov 04:00 UTC: the first and last UTC day
    # belong partly to September and November
    campus = settle_campus()
    write_period(db, "2026-10")
    run = settle(db, campus, "2026-10", contracts=["ppa-a"], issue_date=ISSUE)[0]
    span = billing_period("2026-10", NY).span
    set_value(db, "a.load", span.end_epoch + 2 * 3600, 999.0)  # 1 Nov 06:00 UTC: November
    set_value(db, "a.load", span.start_epoch - 3 * 3600, 999.0)  # 1 Oct 01:00 UTC: September
    assert stale_runs(db, "ppa-a") == []
    set_value(db, "a.load", span.end_epoch - 900, 250.0)  # 1 Nov 03:45 UTC: still October
    assert stale_runs(db, "ppa-a") == [run.run_id]


def test_an_edge_day_that_appears_later_counts_only_inside_the_period(db):
    campus = settle_campus()
    span = billing_period("2026-10", NY).span
    days = span.utc_days()
    write_period(db, "2026-10", {k: v for k, v in CONSTANT.items() if k != "a.load"})
    db.intervals.write_series([constant_series("a.load", days[0], days[-2], 100.0)], layer="validated")
    opts = SettlementOptions(missing="zero")  # 1 Nov 00:00-04:00 UTC has no data yet
    run = settle(db, campus, "2026-10", contracts=["ppa-a"], issue_date=ISSUE, options=opts)[0]
    assert run.status == "held" and "missing_intervals: 16 intervals" in run.held_reasons[0]
    assert max(r.day for r in run_inputs(db, run.run_id) if r.channel_id == "a.load") == days[-2]
    november = span.end_epoch + 900 * np.arange(4 * 20, dtype=np.int64)  # 1 Nov 04:00 .. 24:00 UTC
    db.intervals.write_series([ChannelSeries("a.load", 15, november, np.full(november.size, 100.0),
                                             np.zeros(november.size, np.uint8))], layer="validated")
    assert stale_runs(db, "ppa-a") == []
    set_value(db, "a.load", span.end_epoch - 3600, 100.0)  # the late October data arrives
    assert stale_runs(db, "ppa-a") == [run.run_id]
