"""Campus energy balance and the tenants x sources split, vectorised over intervals.

Per interval the campus balances::

    generation + grid import + battery discharge
        == tenant loads + shared infrastructure + battery charge + grid export + losses

:func:`campus_balance` computes every term from an :class:`~kwhub.core.intervals.IntervalMatrix`
and the channel roles of a :class:`~kwhub.core.campus.Campus`; intervals whose imbalance
exceeds ``AllocationSpec.tolerance_kwh`` are reported, never hidden.

:func:`allocate` then decides which source serves which tenant, per interval:

``pro_rata``
    every sink (tenant, battery charge, export) takes each source in proportion to the
    source's share of the delivered supply.
``fixed_shares``
    tenant *t* owns ``shares[t]`` of the delivered output of the share sources
    (``AllocationSpec.share_sources``: asset ids or kinds, default every generation
    source) and takes it up to its load. A share a tenant cannot take in an interval goes
    to the other tenants pro rata to the load they still have (``unused_share =
    "others"``) or to export and storage (``"export"``). The grid import, the battery and
    any generation outside the share sources then cover each tenant's remaining load pro
    rata, shared with battery charge and export.
``priority``
    ``priority[t]`` lists sources (asset ids or asset kinds, e.g. ``"smr"``) that tenant
    *t* takes first, in order, up to its load; the rest is pro rata.

Sources deliver ``output x (1 - loss_factor)`` to the bus. Load that the metered supply
cannot cover is attributed to the pseudo-source :data:`UNMETERED`, so that for every
method and every interval the tenant's allocation sums exactly (to float tolerance) to
the tenant's metered load plus its part of the shared load.

The result is a float64 array of shape ``(tenants, sources, intervals)``; with
``keep_intervals=False`` only the ``(tenants, sources)`` totals are kept and the
intervals are processed in chunks, so memory stays flat for long periods.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from kwhub.core.campus import AllocationSpec, Campus, Channel
from kwhub.core.intervals import IntervalMatrix

UNMETERED = "unmetered"
SharedMethod = Literal["pro_rata", "fixed_shares", "none"]
_CHUNK = 16_384

_SOURCE_ROLES = ("generation", "grid_import", "battery_discharge")
_DEFAULT_SOURCE_NAME = {"generation": "generation", "grid_import": "grid", "battery_discharge": "battery"}
_SINK_ROLES = ("battery_charge", "grid_export")


class AllocationError(ValueError):
    """An allocation that cannot be computed (bad shares, unknown tenants or sources)."""


@dataclass(frozen=True)
class CampusLayout:
    """Which matrix rows play which role: tenants, sources and other sinks.

    ``tenant_rows[t]`` / ``source_rows[s]`` list matrix row indices that are summed;
    ``source_kinds[s]`` is the asset kind (``"grid_tie"``, ``"battery"``... or the role).
    """

    tenants: tuple[str, ...]
    tenant_rows: tuple[tuple[int, ...], ...]
    sources: tuple[str, ...]
    source_rows: tuple[tuple[int, ...], ...]
    source_kinds: tuple[str, ...]
    source_roles: tuple[str, ...]
    shared_rows: tuple[int, ...]
    charge_rows: tuple[int, ...]
    export_rows: tuple[int, ...]

    @classmethod
    def from_campus(cls, campus: Campus, channel_ids: Sequence[str]) -> CampusLayout:
        """Map the rows of a matrix with ``channel_ids`` to campus roles.

        Tenants are the ``party`` of ``tenant_load`` channels (in channel order); sources
        are the ``asset`` of generation, grid-import and battery-discharge channels
        (several channels of one asset are summed). Channels not in the matrix are ignored.
        """
        row_of = {cid: i for i, cid in enumerate(channel_ids)}
        assets = {a.id: a for a in campus.assets}
        tenants: dict[str, list[int]] = {}
        sources: dict[str, list[int]] = {}
        kinds: dict[str, str] = {}
        roles: dict[str, str] = {}
        shared: list[int] = []
        charge: list[int] = []
        export: list[int] = []
        for ch in campus.channels:
            if ch.id not in row_of:
                continue
            row = row_of[ch.id]
            if ch.role == "tenant_load":
                tenants.setdefault(ch.party or ch.id, []).append(row)
            elif ch.role in _SOURCE_ROLES:
                sid = _source_id(ch)
                sources.setdefault(sid, []).append(row)
                kinds[sid] = assets[ch.asset].kind if ch.asset in assets else ch.role
                roles[sid] = ch.role
            elif ch.role == "shared_load":
                shared.append(row)
            elif ch.role == "battery_charge":
                charge.append(row)
            elif ch.role == "grid_export":
                export.append(row)
        if UNMETERED in sources:
            raise AllocationError(f"source id {UNMETERED!r} is reserved for load the metered supply does not cover")
        return cls(
            tenants=tuple(tenants),
            tenant_rows=tuple(tuple(r) for r in tenants.values()),
            sources=tuple(sources),
            source_rows=tuple(tuple(r) for r in sources.values()),
            source_kinds=tuple(kinds[s] for s in sources),
            source_roles=tuple(roles[s] for s in sources),
            shared_rows=tuple(shared),
            charge_rows=tuple(charge),
            export_rows=tuple(export),
        )

    def channels(self) -> list[int]:
        """Every matrix row this layout reads."""
        rows = [r for group in self.tenant_rows + self.source_rows for r in group]
        return sorted(set(rows + list(self.shared_rows + self.charge_rows + self.export_rows)))


def _source_id(ch: Channel) -> str:
    return ch.asset or _DEFAULT_SOURCE_NAME.get(ch.role, ch.id)


def _sum_rows(values: np.ndarray, groups: Sequence[Sequence[int]]) -> np.ndarray:
    """``(len(groups), N)``: each group's rows summed, NaN counted as 0."""
    n = values.shape[1]
    out = np.zeros((len(groups), n), dtype=np.float64)
    for i, rows in enumerate(groups):
        if rows:
            out[i] = np.nansum(values[list(rows)], axis=0) if len(rows) > 1 else np.nan_to_num(values[rows[0]])
    return out


@dataclass
class CampusBalance:
    """Every term of the campus balance per interval (kWh) and the imbalance report."""

    generation: np.ndarray
    grid_import: np.ndarray
    battery_discharge: np.ndarray
    tenant_load: np.ndarray
    shared_load: np.ndarray
    battery_charge: np.ndarray
    grid_export: np.ndarray
    losses: np.ndarray  # expected losses: loss_factor x supply
    imbalance: np.ndarray  # supply - demand - losses
    tolerance_kwh: float
    violations: np.ndarray  # interval indices with |imbalance| > tolerance

    @property
    def supply(self) -> np.ndarray:
        return self.generation + self.grid_import + self.battery_discharge

    @property
    def demand(self) -> np.ndarray:
        return self.tenant_load + self.shared_load + self.battery_charge + self.grid_export

    def imbalance_summary(self, limit: int | None = None) -> list[tuple[int, float]]:
        """``(interval index, imbalance kWh)`` of every interval beyond tolerance (first ``limit``)."""
        idx = self.violations if limit is None else self.violations[:limit]
        return [(int(i), float(self.imbalance[i])) for i in idx]

    def totals(self) -> dict[str, float]:
        """Period totals of every term, plus the count of intervals beyond tolerance."""
        names = ("generation", "grid_import", "battery_discharge", "tenant_load", "shared_load",
                 "battery_charge", "grid_export", "losses", "imbalance")
        out = {n: float(getattr(self, n).sum()) for n in names}
        out["imbalance_intervals"] = float(self.violations.size)
        out["max_abs_imbalance"] = float(np.abs(self.imbalance).max()) if self.imbalance.size else 0.0
        return out


def campus_balance(matrix: IntervalMatrix, campus: Campus, layout: CampusLayout | None = None,
                   spec: AllocationSpec | None = None) -> CampusBalance:
    """The campus balance of ``matrix`` per interval, with intervals beyond tolerance."""
    spec = spec or campus.allocation
    layout = layout or CampusLayout.from_campus(campus, matrix.channel_ids)
    v = matrix.values
    src = _sum_rows(v, layout.source_rows)
    by_role = {r: np.zeros(v.shape[1]) for r in _SOURCE_ROLES}
    for i, role in enumerate(layout.source_roles):
        by_role[role] += src[i]
    tenant = _sum_rows(v, layout.tenant_rows).sum(axis=0)
    shared, charge, export = (_sum_rows(v, [rows])[0] for rows in (layout.shared_rows, layout.charge_rows, layout.export_rows))
    supply = by_role["generation"] + by_role["grid_import"] + by_role["battery_discharge"]
    losses = supply * spec.loss_factor
    imbalance = supply - (tenant + shared + charge + export) - losses
    violations = np.flatnonzero(np.abs(imbalance) > spec.tolerance_kwh)
    return CampusBalance(
        generation=by_role["generation"], grid_import=by_role["grid_import"],
        battery_discharge=by_role["battery_discharge"], tenant_load=tenant, shared_load=shared,
        battery_charge=charge, grid_export=export, losses=losses, imbalance=imbalance,
        tolerance_kwh=spec.tolerance_kwh, violations=violations,
    )


@dataclass
class AllocationResult:
    """Tenants x sources split (kWh delivered at the tenant meters).

    ``kwh[t, s, i]`` (``None`` when built with ``keep_intervals=False``) and ``totals[t, s]``
    include the pseudo-source :data:`UNMETERED` as the last source; ``metered[s]`` is each
    real source's metered output. ``load[t, i]`` is what
    was allocated per tenant: its metered load plus its part of the shared load
    (``shared[t, i]``). ``loss_kwh[t, s]`` is the energy lost upstream on the way to the
    tenant (``kwh x lf / (1 - lf)``).
    """

    method: str
    tenants: list[str]
    sources: list[str]
    totals: np.ndarray
    loss_kwh: np.ndarray
    kwh: np.ndarray | None = None
    load: np.ndarray | None = None
    shared: np.ndarray | None = None
    balance: CampusBalance | None = None
    loss_factor: float = 0.0
    source_kinds: list[str] = field(default_factory=list)
    source_roles: list[str] = field(default_factory=list)
    metered: np.ndarray | None = None  # (S,) metered output of each source over the period, before losses

    def tenant_index(self, tenant: str) -> int:
        try:
            return self.tenants.index(tenant)
        except ValueError:
            raise AllocationError(f"{tenant!r} is not a tenant of this allocation (tenants: {', '.join(self.tenants)})") from None

    def by_source(self, tenant: str) -> dict[str, np.ndarray]:
        """``{source: kWh per interval}`` of one tenant (needs ``keep_intervals``)."""
        if self.kwh is None:
            raise AllocationError("allocation was computed without per-interval arrays (keep_intervals=False)")
        t = self.tenant_index(tenant)
        return {s: self.kwh[t, j] for j, s in enumerate(self.sources)}

    def tenant_totals(self, tenant: str) -> dict[str, float]:
        """``{source: kWh}`` period totals of one tenant."""
        t = self.tenant_index(tenant)
        return {s: float(self.totals[t, j]) for j, s in enumerate(self.sources)}

    def shares(self, tenant: str) -> dict[str, float]:
        """Fraction of each source's allocated energy that went to ``tenant``."""
        t = self.tenant_index(tenant)
        col = self.totals.sum(axis=0)
        return {s: (float(self.totals[t, j] / col[j]) if col[j] else 0.0) for j, s in enumerate(self.sources)}


# --------------------------------------------------------------------------- kernels


def _residual_pro_rata(alloc: np.ndarray, need: np.ndarray, avail: np.ndarray, other: np.ndarray) -> None:
    """Serve ``need`` (T, N) pro rata from ``avail`` (S, N), sharing it with ``other`` sinks.

    Writes into ``alloc`` (T, S+1, N); the last source slot receives what supply cannot cover.
    """
    supply = avail.sum(axis=0)
    demand = need.sum(axis=0) + other
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        served = np.where(demand > 0, np.minimum(1.0, supply / np.where(demand > 0, demand, 1.0)), 1.0)
        frac = np.where(supply > 0, avail / np.where(supply > 0, supply, 1.0), 0.0)
    served = np.where(supply > 0, served, 0.0)
    scaled = need * served  # (T, N)
    alloc[:, :-1, :] += scaled[:, None, :] * frac[None, :, :]
    alloc[:, -1, :] += need - scaled


def split_intervals(
    loads: np.ndarray,
    supply: np.ndarray,
    other_sinks: np.ndarray | None = None,
    *,
    method: str = "pro_rata",
    loss_factor: float = 0.0,
    shares: np.ndarray | None = None,
    priority: Sequence[Sequence[int]] | None = None,
    share_sources: Sequence[int] | None = None,
    unused_share: str = "others",
) -> np.ndarray:
    """The split kernel: ``(T, S+1, N)`` kWh for tenant loads ``(T, N)`` and supply ``(S, N)``.

    ``other_sinks`` (N,) is demand that is not a tenant's (battery charge, export);
    ``shares`` (T,) for ``fixed_shares``, applied to the source indices ``share_sources``
    (default: all) with ``unused_share`` ``"others"`` or ``"export"``; ``priority[t]``
    lists source indices for ``priority``. The last source slot is :data:`UNMETERED`.
    """
    loads = np.asarray(loads, dtype=np.float64)
    supply = np.asarray(supply, dtype=np.float64)
    n_t, n = loads.shape
    n_s = supply.shape[0]
    other = np.zeros(n) if other_sinks is None else np.asarray(other_sinks, dtype=np.float64)
    avail = supply * (1.0 - loss_factor)
    alloc = np.zeros((n_t, n_s + 1, n), dtype=np.float64)
    if method == "pro_rata":
        _residual_pro_rata(alloc, loads, avail, other)
    elif method == "fixed_shares":
        if shares is None or len(shares) != n_t:
            raise AllocationError("fixed_shares needs one share per tenant")
        idx = np.arange(n_s) if share_sources is None else np.unique(np.asarray(share_sources, dtype=np.int64))
        own = avail[idx]  # (K, N) output of the share sources
        ent = np.asarray(shares, dtype=np.float64)[:, None, None] * own[None, :, :]  # (T, K, N)
        ent_tot = ent.sum(axis=1)
        use = np.minimum(loads, ent_tot)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            scale = np.where(ent_tot > 0, use / np.where(ent_tot > 0, ent_tot, 1.0), 0.0)
        alloc[:, idx, :] = ent * scale[:, None, :]
        need = loads - use
        left = np.maximum(own - alloc[:, idx, :].sum(axis=0), 0.0)  # unused shares (and unassigned output)
        rest = avail.copy()
        if unused_share == "others":
            pool = left.sum(axis=0)
            want = need.sum(axis=0)
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                f = np.where(want > 0, np.minimum(1.0, pool / np.where(want > 0, want, 1.0)), 0.0)
                frac = np.where(pool > 0, left / np.where(pool > 0, pool, 1.0), 0.0)
            take = need * f
            alloc[:, idx, :] += take[:, None, :] * frac[None, :, :]
            need = need - take
            rest[idx] = np.maximum(left - take.sum(axis=0)[None, :] * frac, 0.0)
        else:  # the unused shares go to export and storage first, never to another tenant
            other = np.maximum(other - left.sum(axis=0), 0.0)
            rest[idx] = 0.0
        _residual_pro_rata(alloc, need, rest, other)
    elif method == "priority":
        need = loads.copy()
        left = avail.copy()
        for t, order in enumerate(priority or []):
            for s in order:
                take = np.minimum(need[t], left[s])
                alloc[t, s] += take
                need[t] -= take
                left[s] -= take
        _residual_pro_rata(alloc, need, left, other)
    else:
        raise AllocationError(f"unknown allocation method {method!r} (pro_rata, fixed_shares, priority)")
    return alloc


def _shared_parts(shared: np.ndarray, loads: np.ndarray, how: SharedMethod, shares: np.ndarray | None) -> np.ndarray:
    """``(T, N)`` part of the shared load that each tenant carries."""
    n_t = loads.shape[0]
    if how == "none" or n_t == 0:
        return np.zeros_like(loads)
    if how == "fixed_shares":
        if shares is None:
            raise AllocationError("shared load by fixed shares needs allocation.shares")
        w = np.asarray(shares, dtype=np.float64)
        return (w / w.sum())[:, None] * shared[None, :]
    total = loads.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        w = np.where(total > 0, loads / np.where(total > 0, total, 1.0), 1.0 / n_t)
    return w * shared[None, :]


def _chunks(n: int, size: int) -> Iterator[slice]:
    for a in range(0, n, size):
        yield slice(a, min(n, a + size))


def _resolve_priority(spec: AllocationSpec, layout: CampusLayout) -> list[list[int]]:
    order: list[list[int]] = [[] for _ in layout.tenants]
    for tenant, items in spec.priority.items():
        if tenant not in layout.tenants:
            raise AllocationError(f"allocation.priority: {tenant!r} is not a tenant (tenants: {', '.join(layout.tenants)})")
        picked: list[int] = []
        for item in items:
            hits = [j for j, s in enumerate(layout.sources) if s == item or layout.source_kinds[j] == item]
            if not hits:
                raise AllocationError(f"allocation.priority[{tenant!r}]: {item!r} matches no source asset or kind "
                                      f"(sources: {', '.join(layout.sources)})")
            picked += [j for j in hits if j not in picked]
        order[layout.tenants.index(tenant)] = picked
    return order


def _resolve_share_sources(spec: AllocationSpec, layout: CampusLayout) -> list[int]:
    """Source indices whose output ``fixed_shares`` splits (default: every generation source)."""
    if not spec.share_sources:
        return [j for j, role in enumerate(layout.source_roles) if role == "generation"]
    picked: list[int] = []
    for item in spec.share_sources:
        hits = [j for j, s in enumerate(layout.sources) if s == item or layout.source_kinds[j] == item]
        if not hits:
            raise AllocationError(f"allocation.share_sources: {item!r} matches no source asset or kind "
                                  f"(sources: {', '.join(layout.sources)})")
        picked += [j for j in hits if j not in picked]
    return picked


def _resolve_shares(spec: AllocationSpec, layout: CampusLayout, required: bool) -> np.ndarray | None:
    if not spec.shares:
        if required:
            raise AllocationError("allocation.shares is empty; fixed_shares needs a share per tenant")
        return None
    missing = [t for t in layout.tenants if t not in spec.shares]
    unknown = [t for t in spec.shares if t not in layout.tenants]
    if missing or unknown:
        raise AllocationError(f"allocation.shares: missing tenant(s) {missing}, unknown {unknown}")
    w = np.array([spec.shares[t] for t in layout.tenants], dtype=np.float64)
    if (w < 0).any() or w.sum() > 1.0 + 1e-9:
        raise AllocationError(f"allocation.shares must be >= 0 and sum to at most 1 (sum {w.sum()})")
    return w


def allocate(
    matrix: IntervalMatrix,
    campus: Campus,
    spec: AllocationSpec | None = None,
    *,
    shared: SharedMethod = "pro_rata",
    keep_intervals: bool = True,
    chunk: int = _CHUNK,
) -> AllocationResult:
    """Balance the campus and split every source among the tenants (see module docs).

    ``shared`` says how the shared infrastructure load is carried: pro rata to the
    tenants' loads (default), by ``spec.shares``, or ``"none"`` (it then competes for
    supply like battery charge and export, and no tenant is allocated it).
    """
    spec = spec or campus.allocation
    if not 0.0 <= spec.loss_factor < 1.0:
        raise AllocationError(f"allocation.loss_factor must be in [0, 1), got {spec.loss_factor}")
    layout = CampusLayout.from_campus(campus, matrix.channel_ids)
    balance = campus_balance(matrix, campus, layout, spec)
    loads = _sum_rows(matrix.values, layout.tenant_rows)
    supply = _sum_rows(matrix.values, layout.source_rows)
    shares = _resolve_shares(spec, layout, spec.method == "fixed_shares")
    priority = _resolve_priority(spec, layout) if spec.method == "priority" else None
    share_sources = _resolve_share_sources(spec, layout) if spec.method == "fixed_shares" else None
    parts = _shared_parts(balance.shared_load, loads, shared, shares)
    tenant_load = loads + parts
    other = balance.battery_charge + balance.grid_export
    if shared == "none":
        other = other + balance.shared_load
    n_t, n_s, n = len(layout.tenants), len(layout.sources), matrix.n_intervals
    kwh = np.zeros((n_t, n_s + 1, n), dtype=np.float64) if keep_intervals else None
    totals = np.zeros((n_t, n_s + 1), dtype=np.float64)
    for sl in _chunks(n, max(1, chunk)):
        part = split_intervals(tenant_load[:, sl], supply[:, sl], other[sl], method=spec.method,
                               loss_factor=spec.loss_factor, shares=shares, priority=priority,
                               share_sources=share_sources, unused_share=spec.unused_share)
        totals += part.sum(axis=2)
        if kwh is not None:
            kwh[:, :, sl] = part
    lf = spec.loss_factor
    loss = totals * (lf / (1.0 - lf))
    loss[:, -1] = 0.0
    return AllocationResult(
        method=spec.method, tenants=list(layout.tenants), sources=[*layout.sources, UNMETERED],
        totals=totals, loss_kwh=loss, kwh=kwh, load=tenant_load, shared=parts, balance=balance,
        loss_factor=lf, source_kinds=[*layout.source_kinds, UNMETERED],
        source_roles=[*layout.source_roles, UNMETERED], metered=supply.sum(axis=1),
    )


# --------------------------------------------------------------------------- storage helpers


def pack_array(values: np.ndarray) -> bytes:
    """Compact, exact blob of a float64 array (little-endian, zlib)."""
    return zlib.compress(np.ascontiguousarray(values, dtype="<f8").tobytes(), 6)


try:  # ISA-L inflates these blobs about twice as fast as zlib (same format)
    from isal.isal_zlib import decompress as inflate
except ImportError:  # pragma: no cover - isal is a dependency
    inflate = zlib.decompress


def unpack_array(blob: bytes) -> np.ndarray:
    """Inverse of :func:`pack_array`."""
    return np.frombuffer(inflate(blob), dtype="<f8").copy()
