"""Exact corrections, as a property: for any sequence of restatements, the original invoice plus
all its corrections equals, to the cent and per tax category, the invoice a fresh run on the
final data issues.

Each document of the chain is what a run would issue against the previous version
(:func:`kwhub.core.settlement.draft_document`); credit notes count negative.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal as D

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kwhub.core.campus import Campus, Channel, ComponentSpec, Contract, Party
from kwhub.core.intervals import IntervalMatrix
from kwhub.core.money import MoneyPolicy
from kwhub.core.settlement import SettlementOptions, compute_run, draft_document
from kwhub.core.timeline import billing_period

PERIOD = billing_period("2026-10", "America/New_York")
N = PERIOD.span.n_intervals(15)


def _campus(price: D, tax: D, demand_price: D, rounding: str) -> Campus:
    return Campus(
        parties=[Party(id="op", name="Op"), Party(id="t", name="T")],
        channels=[Channel(id="t.load", party="t", role="tenant_load")],
        contracts=[Contract(id="k", seller="op", buyer="t", timezone="America/New_York", tax_percent=tax,
                            rounding=rounding, components=[
                                ComponentSpec(kind="tou_energy", default_period="off_peak", holidays="none",
                                              rules=[{"period": "on_peak", "day_types": ["weekday"],
                                                      "hours": [[8, 20]]}],
                                              prices={"on_peak": str(price * 2), "off_peak": str(price)}),
                                ComponentSpec(kind="demand", price_per_kw_month=str(demand_price)),
                                ComponentSpec(kind="fixed_fee", total_amount="1234.56"),
                            ])])


def _lines(campus: Campus, values: np.ndarray):  # noqa: ANN202
    m = IntervalMatrix(["t.load"], PERIOD.span.start_epoch, 15, values[None, :].copy(),
                       np.zeros((1, N), np.uint8))
    return compute_run(campus, campus.contracts[0], PERIOD, m, None, SettlementOptions()).lines


edits = st.lists(st.tuples(st.integers(0, N - 1), st.integers(0, 400_000).map(lambda v: v / 1000)),
                 min_size=1, max_size=4)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(price=st.integers(10_000, 99_999).map(lambda p: D(p) / 1000),
       tax=st.sampled_from([D("0"), D("5"), D("6"), D("7.25"), D("19"), D("20")]),
       demand_price=st.integers(100, 2_000).map(lambda p: D(p) / 100),
       rounding=st.sampled_from(["half_up", "half_even", "down"]),
       base=st.integers(1_000, 300_000).map(lambda v: v / 1000),
       restatements=st.lists(edits, min_size=1, max_size=4))
def test_original_plus_corrections_is_a_fresh_invoice_on_the_final_data(price, tax, demand_price, rounding, base,
                                                                         restatements):
    campus = _campus(price, tax, demand_price, rounding)
    policy = MoneyPolicy(currency="USD", rounding=rounding)
    values = np.full(N, base)
    versions = [_lines(campus, values)]
    for changes in restatements:
        for i, v in changes:
            values[i] = v
        versions.append(_lines(campus, values))
    docs = [draft_document(versions[0], None, policy)]
    docs += [draft_document(new, old, policy) for old, new in zip(versions, versions[1:], strict=False)]
    fresh = draft_document(versions[-1], None, policy)

    def sign(doc) -> int:  # noqa: ANN001
        return -1 if doc.kind == "credit_note" else 1

    issued = [d for d in docs if d.kind is not None]
    assert sum((sign(d) * d.total for d in issued), D(0)) == fresh.total
    assert sum((sign(d) * d.line_total for d in issued), D(0)) == fresh.line_total
    by_cat: dict[tuple[str, D], D] = defaultdict(D)
    for d in issued:
        for t in d.taxes:
            by_cat[(t.category, t.percent.normalize())] += sign(d) * t.tax_amount
    fresh_cat = {(t.category, t.percent.normalize()): t.tax_amount for t in fresh.taxes}
    assert {k: v for k, v in by_cat.items() if v or k in fresh_cat} == fresh_cat
    for d in issued:  # every document is internally exact: lines sum to its line total, tax per category to its tax
        assert sum((ln.amount for ln in d.lines), D(0)) == d.line_total
        assert all(ln.amount == policy.amount(ln.quantity * ln.unit_price) for ln in d.lines)
        if d.kind == "credit_note":
            assert d.total > 0
