"""From a contract's component specs to charges and invoice lines.

* :func:`build_components` instantiates ``contract.components`` from the registered
  component classes, with errors naming the contract, the component and the field.
* :func:`price_contract` runs them over one :class:`~kwhub.core.pricing.base.PricingContext`
  (stage 0 first, then stage 1, e.g. surcharges on the energy lines).
* :func:`charges_to_lines` turns charges into ``kwhub.core.invoice.InvoiceLine`` objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from kwhub.core.campus import Contract
from kwhub.core.invoice import InvoiceLine
from kwhub.core.money import MoneyPolicy
from kwhub.core.pricing.base import (
    Charge,
    PriceComponent,
    PricingContext,
    PricingError,
    format_validation_error,
)
from kwhub.core.timeline import BillingPeriod


def _lookup(components: Any, kind: str) -> type[PriceComponent]:
    if hasattr(components, "component"):  # kwhub.hub.registry.Registry
        return components.component(kind)
    try:
        return components[kind]
    except KeyError:
        known = ", ".join(sorted(components)) or "none"
        raise PricingError(f"no plugin registers price component {kind!r} (known: {known})") from None


def build_components(contract: Contract, components: Mapping[str, type[PriceComponent]] | Any | None = None) -> list[PriceComponent]:
    """Instantiate the contract's components.

    ``components`` is ``{kind: class}`` or a ``kwhub.hub.registry.Registry``; by default the
    built-in components. A component's id is its spec ``id``, else ``<kind>`` (or
    ``<kind>-<n>`` when the kind occurs more than once). Ids must be unique.
    """
    if components is None:
        from kwhub.core.pricing.components import builtin_components

        components = builtin_components()
    from kwhub.core.contract_energy import component_ids

    out: list[PriceComponent] = []
    seen: set[str] = set()
    for n, (cid, spec) in enumerate(zip(component_ids(contract), contract.components, strict=True), start=1):
        where = f"contract {contract.id!r} component #{n} {cid!r}"
        if cid in seen:
            raise PricingError(f"{where}: duplicate component id")
        seen.add(cid)
        try:
            cls = _lookup(components, spec.kind)
        except KeyError as exc:  # RegistryError from the plugin registry
            raise PricingError(f"{where}: {exc}") from None
        except PricingError as exc:
            raise PricingError(f"{where}: {exc}") from None
        try:
            config = cls.Config.model_validate(spec.settings())
        except ValidationError as exc:
            raise PricingError(f"{where} ({spec.kind}): {format_validation_error(exc)}") from None
        out.append(cls(cid, config))
    return out


def price_contract(components: Iterable[PriceComponent], ctx: PricingContext) -> list[Charge]:
    """All charges of the contract's components for one period, in component order by stage.

    Stage-0 components run first; stage-1 components (surcharges) then see all stage-0
    charges in ``ctx.prior_charges``. An error names the contract, period and component.
    """
    comps = list(components)
    ids = [c.component_id for c in comps]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise PricingError(f"contract {ctx.contract.id!r}: duplicate component id(s) {', '.join(dupes)}")
    charges: list[Charge] = []
    for stage in sorted({c.stage for c in comps}):
        ctx.prior_charges = list(charges)
        for comp in (c for c in comps if c.stage == stage):
            try:
                charges.extend(comp.compute(ctx))
            except PricingError as exc:
                raise PricingError(
                    f"contract {ctx.contract.id!r} period {ctx.period.label} component {comp.component_id!r} ({comp.kind}): {exc}"
                ) from None
    ctx.prior_charges = list(charges)
    return charges


def charges_to_lines(
    charges: Iterable[Charge],
    policy: MoneyPolicy,
    period: BillingPeriod,
    *,
    first_number: int = 1,
    tax_category: str = "S",
    tax_percent: Decimal = Decimal("0"),
    tax_exemption: tuple[str, str] = ("", ""),
) -> list[InvoiceLine]:
    """Invoice lines numbered from ``first_number``, one per charge, for ``period``.

    Amounts are re-checked against the policy: a charge whose amount is not
    ``policy.amount(quantity x unit_price)`` is an error, never silently changed. A charge
    for one local day (its determinants carry ``day``, e.g. a fuel-indexed day) gets that
    day as its period; the others get the billing period. ``tax_exemption`` is the
    (reason, VATEX code) of an exempt or out-of-scope category.
    """
    lines = []
    for n, ch in enumerate(charges, start=first_number):
        day = ch.determinants.get("day")
        first = last = date.fromisoformat(day) if day else None
        expected = policy.amount(ch.quantity * ch.unit_price)
        if ch.amount != expected:
            raise PricingError(
                f"charge {ch.component_id!r} ({ch.description}): amount {ch.amount} != "
                f"round({ch.quantity} x {ch.unit_price}) = {expected}"
            )
        lines.append(
            InvoiceLine(
                number=n,
                description=ch.description,
                charge_type=ch.charge_type,
                quantity=ch.quantity,
                unit=ch.unit,
                unit_price=ch.unit_price,
                amount=ch.amount,
                tax_category=tax_category,
                tax_percent=tax_percent,
                tax_exemption_reason=tax_exemption[0],
                tax_exemption_code=tax_exemption[1],
                source_asset=ch.source_asset,
                component_id=ch.component_id,
                period_start=first or period.first_day,
                period_end=last or period.last_day,
                determinants=dict(ch.determinants),
            )
        )
    return lines
