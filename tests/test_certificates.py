"""The granular certificate rules: bundles, splits, statuses, and a ledger that never double-counts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kwhub.core.certificates import (
    Bundle,
    CertificateError,
    GcAttributes,
    bundle_from_json,
    cancel,
    claim,
    issue,
    ledger_problems,
    transfer,
    withdraw,
)

H0 = 1_790_002_800  # an hour boundary
AT = datetime(2026, 11, 1, tzinfo=UTC)
ATTRS = GcAttributes(energy_source="solar", technology="photovoltaic", device_name="PV 1", device_id="pv",
                     device_capacity_kw=80_000, region="RFCE", issuer="kwhub:test")


def _issue(wh: list[int]) -> list[Bundle]:
    bundles, _ = issue(ATTRS, "ipp", [H0 + 3600 * i for i in range(len(wh))], wh, 3600, 1, AT)
    return bundles


def test_issue_makes_hourly_bundles_with_consecutive_ids_and_the_required_attributes():
    b = _issue([1000, 0, 250])
    assert [(x.range_start, x.range_end, x.quantity_wh) for x in b] == [(1, 1000, 1000), (1001, 1250, 250)]
    assert b[1].production_start == H0 + 7200 and b[1].production_end - b[1].production_start == 3600
    data = b[0].as_json()
    assert data["face_value_wh"] == 1 and data["attributes"]["region"] == "RFCE" and data["status"] == "Active"
    assert bundle_from_json(data, "x").digest() == b[0].digest()
    with pytest.raises(CertificateError, match="at most one hour"):
        issue(ATTRS, "ipp", [H0], [5], 7200, 1, AT)


def test_partial_transfer_splits_the_bundle():
    b = _issue([1000])[0]
    moved, change = transfer(b, "tenant_a", 400)
    assert (moved.range_start, moved.range_end, moved.account) == (1, 400, "tenant_a")
    assert [x.status for x in change.updated] == ["Bundle Split"]
    rest = next(x for x in change.added if x.account == "ipp")
    assert (rest.range_start, rest.range_end) == (401, 1000)
    assert ledger_problems(change.added + change.updated, {"pv": [(1, 1000)]}) == []


def test_cancel_only_for_the_production_hour_then_claim_once():
    b = _issue([100])[0]
    with pytest.raises(CertificateError, match="outside the consumption hour"):
        cancel(b, "tenant_a", H0 + 3600)
    done, _ = cancel(b, "tenant_a", H0 + 900)
    assert done.status == "Cancelled" and done.consumption_hour == H0
    with pytest.raises(CertificateError, match="cancelled for tenant_a, not tenant_b"):
        claim(done, "tenant_b")
    claimed, _ = claim(done, "tenant_a")
    with pytest.raises(CertificateError, match="already claimed"):
        claim(claimed, "tenant_a")
    with pytest.raises(CertificateError, match="only Active"):
        withdraw(claimed, "issued twice")


def test_withdraw_needs_a_reason_and_ends_the_bundle():
    b = _issue([100])[0]
    with pytest.raises(CertificateError, match="needs a reason"):
        withdraw(b, " ")
    gone, _ = withdraw(b, "meter error", 30)
    assert gone.status == "Withdrawn" and gone.quantity_wh == 30


def test_overlap_is_reported():
    a = _issue([100])[0]
    b = Bundle(**{**a.__dict__, "bundle_id": "other", "range_start": 50, "range_end": 150})
    assert "would count twice" in ledger_problems([a, b])[0]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["transfer", "cancel", "claim", "withdraw"]), st.integers(0, 50),
                          st.integers(1, 400), st.sampled_from(["tenant_a", "tenant_b"])), max_size=40))
def test_random_actions_never_count_a_certificate_twice(actions):
    live = {b.bundle_id: b for b in _issue([500, 300])}
    issued = {"pv": [(1, 800)]}
    claimed_ids: list[tuple[int, int]] = []
    for kind, pick, qty, who in actions:
        cands = sorted((b for b in live.values() if b.live), key=lambda b: b.bundle_id)
        if not cands:
            break
        b = cands[pick % len(cands)]
        q = min(qty, b.quantity_wh)
        try:
            if kind == "transfer":
                _, change = transfer(b, who, q)
            elif kind == "cancel":
                _, change = cancel(b, who, b.production_start, q)
            elif kind == "claim":
                _, change = claim(b, who)
            else:
                _, change = withdraw(b, "test", q)
        except CertificateError:
            continue
        for x in change.updated + change.added:
            live[x.bundle_id] = x
        claimed_ids += [(x.range_start, x.range_end) for x in change.updated if x.status == "Claimed"]
        assert ledger_problems(live.values(), issued) == []
    # every certificate id claimed at most once, and only ids that were issued
    ids = [i for s, e in claimed_ids for i in range(s, e + 1)]
    assert len(ids) == len(set(ids)) and all(1 <= i <= 800 for i in ids)
