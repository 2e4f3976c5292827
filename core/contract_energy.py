"""Which energy each contract, and each of its price components, bills.

A kWh allocated to a tenant must be billed exactly once, or be listed as not billed with
a reason. This module turns the contracts of a campus into an :class:`EnergyPlan` that
says, per contract, which energy it bills and which energy component prices which part,
and refuses configurations that would bill a kWh twice or leave the choice to chance.

The energy a contract bills (its **basis**):

``allocation``
    the buyer is a tenant of a campus that meters its supply: the buyer's allocated
    energy, split by source (:func:`kwhub.core.allocation.allocate`). Sources are the asset ids
    of the generation, grid-import and battery-discharge channels, plus
    :data:`~kwhub.core.allocation.UNMETERED` (load the metered supply did not cover).
``metered_sources``
    the buyer is not a tenant and the contract names ``sources`` (an IPP selling plant
    output): the metered output of those sources.
``metered_load``
    anything else (for instance a campus without supply meters): the metered load of the
    contract's load channels, as one stream named :data:`LOAD`.

The **scope** of a contract is the part of that energy it sells: ``contract.sources``
plus whatever its components name explicitly, or, when ``sources`` is empty, everything
the buyer's other contracts do not sell (one such contract per buyer at most).

Inside a contract, each **energy component** (a component class with ``prices_energy``)
prices its ``sources`` setting, or its class default (``grid_pass_through`` prices the
grid import), or else the part of the scope no other component names (one such
component per contract at most). Claims never overlap. Scope energy no component prices
is *unbilled*: it must be declared in ``contract.not_billed`` or the run is held.

Selectors in ``sources`` and ``not_billed`` are asset ids, asset kinds (``solar``,
``gas_turbine``...), the aliases ``grid``, ``battery`` and ``generation`` (source roles),
or ``unmetered``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from kwhub.core.allocation import UNMETERED, CampusLayout
from kwhub.core.campus import Campus, Contract, component_ids  # noqa: F401  (component_ids: re-exported)

Basis = Literal["allocation", "metered_sources", "metered_load"]
LOAD = "load"
ROLE_ALIASES = {"grid": "grid_import", "battery": "battery_discharge", "generation": "generation"}
SOURCE_ROLES = ("generation", "grid_import", "battery_discharge")


class EnergyPlanError(ValueError):
    """A contract configuration that would bill energy twice or leave it ambiguous."""


@dataclass(frozen=True)
class SourceCatalog:
    """The supply sources of a campus: ids, asset kinds and channel roles (plus ``unmetered``)."""

    sources: tuple[str, ...]
    kinds: tuple[str, ...]
    roles: tuple[str, ...]
    tenants: tuple[str, ...]

    @classmethod
    def from_campus(cls, campus: Campus) -> SourceCatalog:
        layout = CampusLayout.from_campus(campus, [c.id for c in campus.channels])
        return cls(sources=(*layout.sources, UNMETERED), kinds=(*layout.source_kinds, UNMETERED),
                   roles=(*layout.source_roles, UNMETERED), tenants=layout.tenants)

    @property
    def metered(self) -> bool:
        """Whether the campus meters any supply (and so allocates it)."""
        return len(self.sources) > 1

    def match(self, selector: str, where: str) -> list[str]:
        """The sources a selector names; an unknown selector is an error naming ``where``."""
        role = ROLE_ALIASES.get(selector)
        hits = [s for s, k, r in zip(self.sources, self.kinds, self.roles, strict=True)
                if s == selector or k == selector or (role is not None and r == role)]
        if not hits:
            known = ", ".join(self.sources[:-1]) or "none"
            raise EnergyPlanError(f"{where}: {selector!r} names no source (sources: {known}; kinds, "
                                  f"'grid', 'battery', 'generation' and 'unmetered' are accepted too)")
        return hits

    def match_all(self, selectors: Iterable[str], where: str) -> list[str]:
        out: list[str] = []
        for sel in selectors:
            out += [s for s in self.match(sel, where) if s not in out]
        return out

    def of_role(self, role: str) -> list[str]:
        return [s for s, r in zip(self.sources, self.roles, strict=True) if r == role]


@dataclass(frozen=True)
class ContractEnergy:
    """What one contract bills: its basis, scope, the claims of its energy components and
    the energy it declares not billed (source -> reason)."""

    contract_id: str
    buyer: str
    basis: Basis
    scope: tuple[str, ...]
    claims: dict[str, tuple[str, ...]] = field(default_factory=dict)
    not_billed: dict[str, str] = field(default_factory=dict)

    @property
    def billed(self) -> tuple[str, ...]:
        """Every source some energy component of the contract prices, in scope order."""
        claimed = {s for c in self.claims.values() for s in c}
        return tuple(s for s in self.scope if s in claimed)

    @property
    def unpriced(self) -> tuple[str, ...]:
        """Scope sources that no component prices."""
        billed = set(self.billed)
        return tuple(s for s in self.scope if s not in billed)

    def as_json(self) -> dict[str, Any]:
        return {"basis": self.basis, "scope": list(self.scope),
                "claims": {k: list(v) for k, v in self.claims.items()}, "not_billed": dict(self.not_billed)}


@dataclass(frozen=True)
class EnergyPlan:
    """The :class:`ContractEnergy` of every contract, and the sources of the campus."""

    catalog: SourceCatalog
    contracts: dict[str, ContractEnergy]

    def of(self, contract_id: str) -> ContractEnergy:
        return self.contracts[contract_id]

    def buyer_contracts(self, buyer: str) -> list[ContractEnergy]:
        return [c for c in self.contracts.values() if c.buyer == buyer]

    def billed_by(self, buyer: str) -> dict[str, str]:
        """``{source: contract id}`` of the sources that the buyer's contracts price."""
        return {s: c.contract_id for c in self.buyer_contracts(buyer) for s in c.billed}

    def declared(self, buyer: str) -> dict[str, str]:
        """``{source: reason}`` the buyer's contracts declare not billed."""
        out: dict[str, str] = {}
        for c in self.buyer_contracts(buyer):
            out.update(c.not_billed)
        return out


def _component_class(components: Any, kind: str) -> Any:
    if components is None:
        from kwhub.core.pricing.components import builtin_components

        components = builtin_components()
    if hasattr(components, "price_components"):  # kwhub.hub.registry.Registry
        return components.price_components.get(kind)
    return components.get(kind) if isinstance(components, Mapping) else None


def basis_of(contract: Contract, catalog: SourceCatalog, campus: Campus) -> Basis:
    """How a contract's energy is measured (see module docs)."""
    if catalog.metered and contract.buyer in catalog.tenants:
        return "allocation"
    if contract.sources:
        return "metered_sources"
    return "metered_load"


def _check_load_channels(contract: Contract, campus: Campus) -> None:
    own = [c.id for c in campus.channels if c.role == "tenant_load" and (c.party or c.id) == contract.buyer]
    if contract.load_channels and set(contract.load_channels) != set(own):
        raise EnergyPlanError(
            f"contract {contract.id!r}: load_channels {sorted(contract.load_channels)} are not the tenant "
            f"{contract.buyer!r}'s load channels {sorted(own)}; allocation is per tenant, so list all of "
            "them or leave load_channels empty")


def plan_energy(campus: Campus, components: Any | None = None,
                contracts: Sequence[Contract] | None = None) -> EnergyPlan:
    """The :class:`EnergyPlan` of the campus' contracts; errors name the contract and component.

    ``components`` is ``{kind: class}`` or a ``kwhub.hub.registry.Registry`` (default: built-ins).
    ``contracts`` limits the plan (the buyer's other contracts still shape the scopes).
    """
    catalog = SourceCatalog.from_campus(campus)
    everything = list(campus.contracts)
    out: dict[str, ContractEnergy] = {}
    by_buyer: dict[str, list[Contract]] = {}
    for k in everything:
        by_buyer.setdefault(k.buyer, []).append(k)
    for buyer, ks in by_buyer.items():
        explicit: dict[str, list[str]] = {}
        comp_claims: dict[str, dict[str, list[str]]] = {}
        defaults: dict[str, list[str]] = {}
        bases = {k.id: basis_of(k, catalog, campus) for k in ks}
        for k in ks:
            basis = bases[k.id]
            if basis == "allocation":
                _check_load_channels(k, campus)
            comp_claims[k.id], defaults[k.id] = _component_claims(k, basis, catalog, components)
            if basis == "metered_load":
                continue
            if k.sources:
                named = catalog.match_all(k.sources, f"contract {k.id!r} sources")
                for srcs in comp_claims[k.id].values():
                    named += [s for s in srcs if s not in named]
                explicit[k.id] = named
        # explicit scopes of one buyer's allocation contracts must not overlap
        owner: dict[str, str] = {}
        for kid, srcs in explicit.items():
            if bases[kid] != "allocation":
                continue
            for s in srcs:
                if s in owner:
                    raise EnergyPlanError(f"contracts {owner[s]!r} and {kid!r} both sell {s!r} energy to "
                                          f"{buyer!r}; a kWh can be billed only once (narrow their sources)")
                owner[s] = kid
        rest = [k for k in ks if bases[k.id] == "allocation" and not k.sources
                and (comp_claims[k.id] or defaults[k.id])]
        if len(rest) > 1:
            raise EnergyPlanError(f"contracts {', '.join(repr(k.id) for k in rest)} all bill the rest of {buyer!r}'s "
                                  "energy; give all but one of them `sources`")
        for k in ks:
            basis = bases[k.id]
            if basis == "metered_load":
                scope = [LOAD]
            elif k.id in explicit:
                scope = explicit[k.id]
            else:
                scope = [s for s in catalog.sources if s not in owner]
                for srcs in comp_claims[k.id].values():
                    taken = [s for s in srcs if s in owner]
                    if taken:
                        raise EnergyPlanError(f"contract {k.id!r}: a component prices {taken[0]!r}, which contract "
                                              f"{owner[taken[0]]!r} sells to {buyer!r}")
            out[k.id] = _finish(k, basis, scope, comp_claims[k.id], defaults[k.id], catalog)
    if contracts is not None:
        wanted = {k.id for k in contracts}
        out = {cid: ce for cid, ce in out.items() if cid in wanted}
    return EnergyPlan(catalog, out)


def _component_claims(k: Contract, basis: Basis, catalog: SourceCatalog,
                      components: Any) -> tuple[dict[str, list[str]], list[str]]:
    """Explicit claims ``{component id: sources}`` and the ids of components that take the rest."""
    claims: dict[str, list[str]] = {}
    defaults: list[str] = []
    for cid, spec in zip(component_ids(k), k.components, strict=True):
        cls = _component_class(components, spec.kind)
        if cls is None or not getattr(cls, "prices_energy", False):
            continue
        where = f"contract {k.id!r} component {cid!r} sources"
        selectors = spec.settings().get("sources")
        if basis == "metered_load":
            if selectors:
                raise EnergyPlanError(f"{where}: this contract bills the metered load of {k.buyer!r} (no supply "
                                      "meters allocate it by source), so its components cannot select sources")
            defaults.append(cid)
            continue
        if selectors:
            claims[cid] = catalog.match_all(selectors, where)
        elif getattr(cls, "default_sources", None):
            claims[cid] = catalog.of_role(ROLE_ALIASES[cls.default_sources])
        else:
            defaults.append(cid)
    if len(defaults) > 1:
        raise EnergyPlanError(f"contract {k.id!r}: components {', '.join(repr(d) for d in defaults)} would all "
                              "price the same energy; give all but one of them `sources`")
    return claims, defaults


def _finish(k: Contract, basis: Basis, scope: list[str], claims: dict[str, list[str]], defaults: list[str],
            catalog: SourceCatalog) -> ContractEnergy:
    seen: dict[str, str] = {}
    for cid, srcs in claims.items():
        for s in srcs:
            if s in seen:
                raise EnergyPlanError(f"contract {k.id!r}: components {seen[s]!r} and {cid!r} both price {s!r} "
                                      "energy; a kWh can be billed only once")
            seen[s] = cid
    out = {cid: tuple(srcs) for cid, srcs in claims.items()}
    if defaults:
        out[defaults[0]] = tuple(s for s in scope if s not in seen)
    if basis == "metered_load":
        out = {cid: (LOAD,) for cid in defaults}
    not_billed: dict[str, str] = {}
    for sel, reason in k.not_billed.items():
        where = f"contract {k.id!r} not_billed"
        srcs = [LOAD] if basis == "metered_load" and sel == LOAD else catalog.match_all([sel], where)
        for s in srcs:
            if any(s in c for c in out.values()):
                raise EnergyPlanError(f"{where}: {s!r} is declared not billed, but a component prices it")
            if not reason.strip():
                raise EnergyPlanError(f"{where}: give the reason why {s!r} energy is not billed")
            not_billed[s] = reason.strip()
    return ContractEnergy(k.id, k.buyer, basis, tuple(scope), out, not_billed)
