"""Property: per interval, what is allocated equals what was metered, for every method."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from kwhub.core.allocation import split_intervals

kwh = st.floats(min_value=0.0, max_value=1e5, allow_nan=False, allow_infinity=False)


@st.composite
def cases(draw):
    n_t = draw(st.integers(1, 4))
    n_s = draw(st.integers(1, 5))
    n = draw(st.integers(1, 12))
    loads = draw(arrays(np.float64, (n_t, n), elements=kwh))
    supply = draw(arrays(np.float64, (n_s, n), elements=kwh))
    other = draw(arrays(np.float64, (n,), elements=kwh))
    lf = draw(st.sampled_from([0.0, 0.02, 0.1]))
    raw = np.array(draw(st.lists(st.floats(0.01, 1.0), min_size=n_t, max_size=n_t)))
    shares = raw / raw.sum()
    prio = [draw(st.lists(st.integers(0, n_s - 1), max_size=n_s, unique=True)) for _ in range(n_t)]
    return loads, supply, other, lf, shares, prio


@settings(max_examples=150, deadline=None)
@given(cases(), st.sampled_from(["pro_rata", "fixed_shares", "priority"]))
def test_allocated_equals_metered(case, method):
    loads, supply, other, lf, shares, prio = case
    alloc = split_intervals(loads, supply, other, method=method, loss_factor=lf, shares=shares, priority=prio)
    assert alloc.shape == (loads.shape[0], supply.shape[0] + 1, loads.shape[1])
    assert (alloc >= -1e-9).all()
    scale = max(1.0, float(loads.max()), float(supply.max()))
    # every tenant gets exactly its load (metered sources + unmetered shortfall)
    np.testing.assert_allclose(alloc.sum(axis=1), loads, rtol=0, atol=1e-9 * scale)
    # no source gives more than it delivered
    delivered = supply * (1.0 - lf)
    assert (alloc[:, :-1, :].sum(axis=0) <= delivered + 1e-9 * scale).all()
    # shortfall only when the delivered supply is below total demand
    short = alloc[:, -1, :].sum(axis=0)
    covered = delivered.sum(axis=0) >= loads.sum(axis=0) + other
    assert (short[covered] <= 1e-9 * scale).all()
