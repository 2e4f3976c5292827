"""Property: per interval and gas, the tenants' emissions plus the other sinks' equal the sources'."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from kwhub.core.emissions import METHODS, other_sinks_kg, tenant_interval_kg
from tests.test_emissions_engine import campus, run

N = 8


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3), st.lists(st.floats(0, 500), min_size=5 * N, max_size=5 * N),
       st.sampled_from(["pro_rata", "priority"]))
def test_sum_over_tenants_plus_other_sinks_equals_campus_total(n_tenants, raw, method):
    c = campus([("gt1", "gas_turbine", {"fuel": "natural_gas", "heat_rate_mmbtu_per_mwh": 9.0}),
                ("pv", "solar", {}), ("grid", "grid_tie", {}), ("bess", "battery", {})],
               tenants=n_tenants, charge=True)
    if method == "priority":
        c.allocation.method = "priority"
        c.allocation.priority = {"t0": ["pv"]}
    v = np.array(raw).reshape(5, N)
    gen, pv, grid, dis, charge = v
    loads = np.vstack([(gen + pv + grid + dis) / n_tenants] * n_tenants) * 0.9
    rows = {"gt1.out": gen.tolist(), "gt1.fuel": (gen * 0.0095).tolist(), "pv.out": pv.tolist(),
            "grid.out": grid.tolist(), "bess.out": dis.tolist(), "bess.charge": charge.tolist()}
    for t in range(n_tenants):
        rows[f"t{t}.load"] = loads[t].tolist()
    pc, alloc = run(c, rows)
    for m in range(len(METHODS)):
        tenants = tenant_interval_kg(alloc.kwh, pc.intensity, m).sum(axis=0)
        other = other_sinks_kg(pc.input.activity, alloc.kwh, pc.intensity, m)
        total = pc.intensity.emitted[m].sum(axis=0)
        assert np.allclose(tenants + other, total, rtol=1e-9, atol=1e-9)
        # and the per-tenant totals are the per-interval figures summed
        assert np.allclose(pc.tenants.kg[m].sum(axis=1), tenant_interval_kg(alloc.kwh, pc.intensity, m).sum(axis=2))
