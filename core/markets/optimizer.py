"""Day-ahead dispatch optimizer: serve the load and the reserve first, offer the rest.

A linear program (HiGHS through :func:`scipy.optimize.linprog`), free of unit commitment,
over ``T`` intervals, ``G`` gas units, a battery and solar:

* each unit's output serves the campus load, is exported as energy, or is held as an
  ancillary-service product (e.g. ``reg_up``, ``spin``), within its available capacity;
* the campus load is served in every interval (generation + solar + battery discharge +
  any allowed import = load + battery charge), and the units keep the reserve margin
  unused on top of it;
* the battery follows its state of charge (charge and discharge efficiencies, limits)
  and ends the day no emptier than it started;
* the objective is the market value of exports and products minus the marginal cost
  of generation (heat rate x gas index + variable O&M).

The solver's status is checked, and the solution is checked again against every
constraint afterwards (a solver can report "optimal" for a wrong answer: scipy #16609,
HiGHS #2732); anything off raises :class:`OptimizerError` naming the constraint.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from scipy.optimize import linprog

from kwhub.core.markets.surplus import BatteryUnit, GenUnit, Surplus

TOLERANCE_MW = 1e-6


class OptimizerError(ValueError):
    """The dispatch problem has no acceptable solution (infeasible, or a checked constraint fails)."""


@dataclass
class DispatchPlan:
    """The optimizer's answer per interval (MW)."""

    unit_load: np.ndarray  # (G, T) serving campus load
    unit_export: np.ndarray  # (G, T) energy offered to the market
    unit_products: np.ndarray  # (G, P, T) ancillary capacity
    products: list[str]
    solar_load: np.ndarray
    solar_export: np.ndarray
    battery_charge: np.ndarray
    battery_discharge_load: np.ndarray
    battery_discharge_export: np.ndarray
    soc: np.ndarray
    grid_import: np.ndarray
    objective: float
    checks: list[str] = field(default_factory=list)

    @property
    def export_mw(self) -> np.ndarray:
        return self.unit_export.sum(axis=0) + self.solar_export + self.battery_discharge_export


class _Layout:
    def __init__(self, g: int, p: int, t: int, battery: bool) -> None:
        self.t = t
        n = 0

        def block(size: int) -> slice:
            nonlocal n
            s = slice(n, n + size)
            n += size
            return s

        self.u_load = block(g * t)
        self.u_exp = block(g * t)
        self.u_as = block(g * p * t)
        self.s_load = block(t)
        self.s_exp = block(t)
        self.b_ch = block(t if battery else 0)
        self.b_dl = block(t if battery else 0)
        self.b_de = block(t if battery else 0)
        self.soc = block(t if battery else 0)
        self.imp = block(t)
        self.n = n


def optimize_dispatch(units: list[GenUnit], surplus: Surplus, energy_price: np.ndarray, gas_price: np.ndarray,
                      *, product_prices: dict[str, np.ndarray] | None = None, battery: BatteryUnit | None = None,
                      export_limit_mw: float | np.ndarray = np.inf, import_limit_mw: float = 0.0,
                      battery_cycle_cost: float = 2.0, interval_minutes: int = 60) -> DispatchPlan:
    """Solve the day's dispatch (see module doc) from a :class:`Surplus` calculation."""
    products = sorted(product_prices or {})
    g, p, t = len(units), len(products), len(surplus.load_mw)
    pp = np.array([np.asarray((product_prices or {})[k], dtype=np.float64) for k in products]).reshape(p, t) \
        if p else np.zeros((0, t))
    price = np.asarray(energy_price, dtype=np.float64)
    gas = np.broadcast_to(np.asarray(gas_price, dtype=np.float64), (t,))
    if len(price) != t or (p and pp.shape[1] != t):
        raise OptimizerError(f"price forecasts must have {t} values per product")
    lay = _Layout(g, p, t, battery is not None)
    avail = surplus.unit_available_mw
    hours = interval_minutes / 60.0
    mc = np.array([[u.marginal_cost(float(gp)) for gp in gas] for u in units]).reshape(g, t)

    c = np.zeros(lay.n)
    c[lay.u_load] = mc.ravel()
    c[lay.u_exp] = (mc - price[None, :]).ravel()
    if p:
        c[lay.u_as] = np.broadcast_to(-pp[None, :, :], (g, p, t)).ravel()
    c[lay.s_exp] = -price
    c[lay.imp] = price + 1e-3  # import only when nothing on site can serve the load
    if battery is not None:
        c[lay.b_dl] = battery_cycle_cost
        c[lay.b_de] = battery_cycle_cost - price

    ub_rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    b_ub: list[np.ndarray] = []
    eq_rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    b_eq: list[np.ndarray] = []
    row_ub = 0
    row_eq = 0
    names_ub: list[tuple[str, int]] = []
    names_eq: list[tuple[str, int]] = []

    def var(s: slice, shape: tuple[int, ...]) -> np.ndarray:
        return np.arange(s.start, s.stop).reshape(shape)

    uid_load, uid_exp = var(lay.u_load, (g, t)), var(lay.u_exp, (g, t))
    uid_as = var(lay.u_as, (g, p, t))
    tt = np.arange(t)

    # unit capacity: load + export + products <= available      (G*T rows)
    rows = row_ub + np.arange(g * t).reshape(g, t)
    cols = [uid_load, uid_exp] + [uid_as[:, k, :] for k in range(p)]
    ub_rows.append((np.concatenate([rows.ravel()] * len(cols)), np.concatenate([x.ravel() for x in cols]),
                    np.ones(g * t * len(cols))))
    b_ub.append(avail.ravel())
    names_ub.append(("unit capacity", g * t))
    row_ub += g * t
    # solar: load + export <= forecast
    ub_rows.append((np.concatenate([row_ub + tt] * 2), np.concatenate([var(lay.s_load, (t,)), var(lay.s_exp, (t,))]),
                    np.ones(2 * t)))
    b_ub.append(surplus.solar_mw)
    names_ub.append(("solar forecast", t))
    row_ub += t
    # reserve: the units keep `reserve` unused
    rr = np.broadcast_to(row_ub + tt, (g, t))
    ub_rows.append((np.concatenate([rr.ravel()] * len(cols)), np.concatenate([x.ravel() for x in cols]),
                    np.ones(g * t * len(cols))))
    b_ub.append(avail.sum(axis=0) - surplus.reserve_mw)
    names_ub.append(("reserve margin", t))
    row_ub += t
    # export limit at the point of interconnection
    exp_cols = [uid_exp.ravel(), var(lay.s_exp, (t,))]
    exp_rows = [np.broadcast_to(row_ub + tt, (g, t)).ravel(), row_ub + tt]
    if battery is not None:
        exp_cols.append(var(lay.b_de, (t,)))
        exp_rows.append(row_ub + tt)
    ub_rows.append((np.concatenate(exp_rows), np.concatenate(exp_cols), np.ones(sum(len(x) for x in exp_cols))))
    everything = avail.sum(axis=0) + surplus.solar_mw + (battery.power_mw if battery is not None else 0.0)
    b_ub.append(np.minimum(np.broadcast_to(np.asarray(export_limit_mw, dtype=np.float64), (t,)), everything))
    names_ub.append(("export limit", t))
    row_ub += t

    # load balance: units + solar + battery + import - charge = load
    lb_cols = [uid_load.ravel(), var(lay.s_load, (t,)), var(lay.imp, (t,))]
    lb_rows = [np.broadcast_to(row_eq + tt, (g, t)).ravel(), row_eq + tt, row_eq + tt]
    lb_vals = [np.ones(g * t), np.ones(t), np.ones(t)]
    if battery is not None:
        lb_cols += [var(lay.b_dl, (t,)), var(lay.b_ch, (t,))]
        lb_rows += [row_eq + tt, row_eq + tt]
        lb_vals += [np.ones(t), -np.ones(t)]
    eq_rows.append((np.concatenate(lb_rows), np.concatenate(lb_cols), np.concatenate(lb_vals)))
    b_eq.append(surplus.load_mw)
    names_eq.append(("campus load", t))
    row_eq += t

    bounds = np.zeros((lay.n, 2))
    bounds[:, 1] = np.inf
    bounds[lay.imp, 1] = import_limit_mw
    if battery is not None:
        soc_id, ch_id = var(lay.soc, (t,)), var(lay.b_ch, (t,))
        dl_id, de_id = var(lay.b_dl, (t,)), var(lay.b_de, (t,))
        # soc[t] - soc[t-1] - eff_c*ch*h + (dl+de)*h/eff_d = 0
        r = row_eq + tt
        prev = soc_id[:-1]
        eq_rows.append((np.concatenate([r, r[1:], r, r, r]), np.concatenate([soc_id, prev, ch_id, dl_id, de_id]),
                        np.concatenate([np.ones(t), -np.ones(t - 1), -battery.charge_efficiency * hours * np.ones(t),
                                        hours / battery.discharge_efficiency * np.ones(t),
                                        hours / battery.discharge_efficiency * np.ones(t)])))
        rhs = np.zeros(t)
        rhs[0] = battery.soc_start_mwh
        b_eq.append(rhs)
        names_eq.append(("battery state of charge", t))
        row_eq += t
        # discharge power
        ub_rows.append((np.concatenate([row_ub + tt, row_ub + tt]), np.concatenate([dl_id, de_id]), np.ones(2 * t)))
        b_ub.append(np.full(t, battery.power_mw))
        names_ub.append(("battery power", t))
        row_ub += t
        bounds[lay.b_ch, 1] = battery.power_mw
        bounds[lay.soc, 0] = battery.soc_min_mwh
        bounds[lay.soc, 1] = battery.soc_max
        bounds[soc_id[-1], 0] = max(battery.soc_min_mwh, min(battery.soc_start_mwh, battery.soc_max))

    a_ub = sparse.csr_matrix((np.concatenate([v for _, _, v in ub_rows]),
                              (np.concatenate([r for r, _, _ in ub_rows]), np.concatenate([c_ for _, c_, _ in ub_rows]))),
                             shape=(row_ub, lay.n))
    a_eq = sparse.csr_matrix((np.concatenate([v for _, _, v in eq_rows]),
                              (np.concatenate([r for r, _, _ in eq_rows]), np.concatenate([c_ for _, c_, _ in eq_rows]))),
                             shape=(row_eq, lay.n))
    bu, be = np.concatenate(b_ub), np.concatenate(b_eq)
    if (avail.sum(axis=0) - surplus.reserve_mw + surplus.solar_mw + import_limit_mw < surplus.load_mw - TOLERANCE_MW).any() \
            and battery is None:
        bad = int(np.argmax(avail.sum(axis=0) - surplus.reserve_mw + surplus.solar_mw + import_limit_mw
                            < surplus.load_mw - TOLERANCE_MW))
        raise OptimizerError(f"interval {bad}: the campus load {surplus.load_mw[bad]:.1f} MW plus the reserve "
                             f"{surplus.reserve_mw[bad]:.1f} MW cannot be served on site; nothing is offered")
    res = linprog(c, A_ub=a_ub, b_ub=bu, A_eq=a_eq, b_eq=be, bounds=bounds, method="highs")
    if res.status != 0 or res.x is None:
        raise OptimizerError(f"the dispatch problem has no solution ({res.message}); the load plus reserve cannot "
                             "be served with the forecast, so nothing is offered")
    x = np.asarray(res.x)
    checks = _verify(x, a_ub, bu, a_eq, be, bounds, names_ub, names_eq)
    plan = DispatchPlan(
        unit_load=x[lay.u_load].reshape(g, t), unit_export=x[lay.u_exp].reshape(g, t),
        unit_products=x[lay.u_as].reshape(g, p, t), products=products,
        solar_load=x[lay.s_load], solar_export=x[lay.s_exp],
        battery_charge=x[lay.b_ch] if battery else np.zeros(t),
        battery_discharge_load=x[lay.b_dl] if battery else np.zeros(t),
        battery_discharge_export=x[lay.b_de] if battery else np.zeros(t),
        soc=x[lay.soc] if battery else np.zeros(t), grid_import=x[lay.imp], objective=float(res.fun), checks=checks)
    return plan


def _verify(x: np.ndarray, a_ub: sparse.csr_matrix, b_ub: np.ndarray, a_eq: sparse.csr_matrix, b_eq: np.ndarray,
            bounds: np.ndarray, names_ub: list[tuple[str, int]], names_eq: list[tuple[str, int]]) -> list[str]:
    """Re-check the solution against every constraint; raise on the first family that fails."""

    def which(names: list[tuple[str, int]], row: int) -> str:
        for name, size in names:
            if row < size:
                return f"{name} (interval {row})"
            row -= size
        return f"row {row}"

    tol = TOLERANCE_MW * 1e3
    over = a_ub @ x - b_ub
    if (over > tol * (1 + np.abs(b_ub))).any():
        i = int(np.argmax(over))
        raise OptimizerError(f"the solver reported optimal, but {which(names_ub, i)} is exceeded by {over[i]:.6f}")
    off = np.abs(a_eq @ x - b_eq)
    if (off > tol * (1 + np.abs(b_eq))).any():
        i = int(np.argmax(off))
        raise OptimizerError(f"the solver reported optimal, but {which(names_eq, i)} is off by {off[i]:.6f}")
    if (x < bounds[:, 0] - tol).any() or (x > bounds[:, 1] + tol).any():
        raise OptimizerError("the solver reported optimal, but a variable is outside its bounds")
    return [f"{name}: {size} constraints re-checked" for name, size in names_ub + names_eq]
