"""Allocation: hand-computed small cases, shared load, losses, imbalance report."""

from __future__ import annotations

import numpy as np
import pytest

from kwhub.core.allocation import (
    UNMETERED,
    AllocationError,
    allocate,
    campus_balance,
    pack_array,
    split_intervals,
    unpack_array,
)
from kwhub.core.campus import AllocationSpec, Asset, Campus, Channel
from kwhub.core.intervals import IntervalMatrix


def _campus(spec: AllocationSpec | None = None, shared: bool = False) -> Campus:
    channels = [
        Channel(id="a.load", party="tenant_a", role="tenant_load"),
        Channel(id="b.load", party="tenant_b", role="tenant_load"),
        Channel(id="smr.net", asset="smr", role="generation"),
        Channel(id="gt.net", asset="gt", role="generation"),
        Channel(id="grid.in", asset="grid", role="grid_import"),
        Channel(id="grid.out", asset="grid", role="grid_export"),
    ]
    if shared:
        channels.append(Channel(id="cool", role="shared_load"))
    assets = [Asset(id="smr", kind="smr"), Asset(id="gt", kind="gas_turbine"), Asset(id="grid", kind="grid_tie")]
    return Campus(assets=assets, channels=channels, allocation=spec or AllocationSpec())


def _matrix(rows: dict[str, list[float]]) -> IntervalMatrix:
    ids = list(rows)
    vals = np.array([rows[i] for i in ids], dtype=np.float64)
    return IntervalMatrix(ids, 0, 15, vals, np.zeros(vals.shape, dtype=np.uint8))


BASE = {
    "a.load": [60.0, 30.0],
    "b.load": [40.0, 10.0],
    "smr.net": [50.0, 40.0],
    "gt.net": [30.0, 0.0],
    "grid.in": [20.0, 0.0],
    "grid.out": [0.0, 0.0],
}


def test_pro_rata_hand_computed():
    res = allocate(_matrix(BASE), _campus())
    assert res.sources == ["smr", "gt", "grid", UNMETERED]
    assert res.kwh is not None
    # interval 0: supply 100 = smr 50%, gt 30%, grid 20%; A takes 60, B takes 40
    np.testing.assert_allclose(res.kwh[0, :, 0], [30.0, 18.0, 12.0, 0.0])
    np.testing.assert_allclose(res.kwh[1, :, 0], [20.0, 12.0, 8.0, 0.0])
    # interval 1: only smr
    np.testing.assert_allclose(res.kwh[0, :, 1], [30.0, 0.0, 0.0, 0.0])
    assert res.tenant_totals("tenant_a") == pytest.approx({"smr": 60.0, "gt": 18.0, "grid": 12.0, UNMETERED: 0.0})
    assert res.balance is not None and res.balance.violations.size == 0


def test_priority_stack_takes_named_source_first():
    spec = AllocationSpec(method="priority", priority={"tenant_b": ["smr"]})
    res = allocate(_matrix(BASE), _campus(spec))
    assert res.kwh is not None
    # B takes 40 of the SMR's 50 first; A gets the remaining 10 smr + 30 gt + 20 grid
    np.testing.assert_allclose(res.kwh[1, :, 0], [40.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(res.kwh[0, :, 0], [10.0, 30.0, 20.0, 0.0])


def test_priority_by_asset_kind_then_pro_rata():
    spec = AllocationSpec(method="priority", priority={"tenant_a": ["gas_turbine", "grid"]})
    res = allocate(_matrix(BASE), _campus(spec))
    assert res.kwh is not None
    # A: gt 30, grid 20, then 10 from the rest (only smr 50 left) ; B: 40 smr
    np.testing.assert_allclose(res.kwh[0, :, 0], [10.0, 30.0, 20.0, 0.0])
    np.testing.assert_allclose(res.kwh[1, :, 0], [40.0, 0.0, 0.0, 0.0])


def test_fixed_shares_under_shortfall_differs_from_pro_rata():
    rows = {"a.load": [80.0], "b.load": [40.0], "smr.net": [100.0], "gt.net": [0.0], "grid.in": [0.0], "grid.out": [0.0]}
    fixed = allocate(_matrix(rows), _campus(AllocationSpec(method="fixed_shares", shares={"tenant_a": 0.5, "tenant_b": 0.5})))
    pro = allocate(_matrix(rows), _campus())
    assert fixed.kwh is not None and pro.kwh is not None
    # fixed: A entitled 50, B uses 40 of its 50, A takes the 10 left; A is short 20
    np.testing.assert_allclose(fixed.kwh[0, :, 0], [60.0, 0.0, 0.0, 20.0])
    np.testing.assert_allclose(fixed.kwh[1, :, 0], [40.0, 0.0, 0.0, 0.0])
    # pro rata: 100 of 120 served, everyone gets 5/6
    np.testing.assert_allclose(pro.kwh[0, :, 0], [200.0 / 3, 0.0, 0.0, 40.0 / 3])
    np.testing.assert_allclose(pro.kwh[1, :, 0], [100.0 / 3, 0.0, 0.0, 20.0 / 3])
    # the shortfall is reported as imbalance, not hidden
    assert fixed.balance is not None and fixed.balance.imbalance_summary() == [(0, -20.0)]


def test_shared_load_pro_rata_to_tenant_load_and_losses():
    rows = dict(BASE)
    rows["cool"] = [10.0, 8.0]
    rows["smr.net"] = [60.0 / 0.9 * 0.9 + 10.0, 48.0]  # supply covers load + cooling
    spec = AllocationSpec(loss_factor=0.1, tolerance_kwh=1e6)
    res = allocate(_matrix(rows), _campus(spec, shared=True))
    assert res.shared is not None and res.load is not None
    np.testing.assert_allclose(res.shared[:, 0], [6.0, 4.0])  # 60:40
    np.testing.assert_allclose(res.shared[:, 1], [6.0, 2.0])  # 30:10
    np.testing.assert_allclose(res.kwh.sum(axis=1), res.load)  # type: ignore[union-attr]
    # losses upstream: delivered x lf / (1 - lf)
    np.testing.assert_allclose(res.loss_kwh[:, :-1], res.totals[:, :-1] * (0.1 / 0.9))


def test_shared_none_keeps_cooling_off_tenants():
    rows = dict(BASE)
    rows["cool"] = [10.0, 0.0]
    res = allocate(_matrix(rows), _campus(shared=True), shared="none")
    assert res.load is not None
    np.testing.assert_allclose(res.load, [[60.0, 30.0], [40.0, 10.0]])


def test_balance_reports_every_interval_beyond_tolerance():
    rows = dict(BASE)
    rows["grid.out"] = [0.0, 5.0]  # interval 1: 40 supplied, 45 demanded
    bal = campus_balance(_matrix(rows), _campus())
    assert bal.imbalance_summary() == [(1, -5.0)]
    assert bal.totals()["imbalance_intervals"] == 1.0
    ok = campus_balance(_matrix(rows), _campus(AllocationSpec(tolerance_kwh=5.5)))
    assert ok.imbalance_summary() == []


def test_totals_only_matches_full_array_in_chunks():
    rng = np.random.default_rng(3)
    n = 1000
    rows = {k: list(rng.uniform(0, 50, n)) for k in BASE}
    full = allocate(_matrix(rows), _campus())
    lean = allocate(_matrix(rows), _campus(), keep_intervals=False, chunk=97)
    assert lean.kwh is None
    np.testing.assert_allclose(lean.totals, full.totals, rtol=1e-12)
    with pytest.raises(AllocationError, match="keep_intervals"):
        lean.by_source("tenant_a")


def test_bad_specs_are_named():
    with pytest.raises(AllocationError, match="matches no source"):
        allocate(_matrix(BASE), _campus(AllocationSpec(method="priority", priority={"tenant_a": ["wind"]})))
    with pytest.raises(AllocationError, match="missing tenant"):
        allocate(_matrix(BASE), _campus(AllocationSpec(method="fixed_shares", shares={"tenant_a": 1.0})))
    with pytest.raises(AllocationError, match="unknown allocation method"):
        split_intervals(np.ones((1, 2)), np.ones((1, 2)), method="lottery")


def test_pack_roundtrip_is_exact():
    a = np.array([0.1, 1e-300, np.pi, -0.0])
    b = unpack_array(pack_array(a))
    assert a.tobytes() == b.tobytes()
