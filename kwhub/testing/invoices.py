"""Sample invoices and render contexts for renderer and transport checks.

:func:`energy_invoice` is a July invoice from an IPP to a tenant with several line types
(energy at two TOU prices, demand, capacity, a fixed fee, an availability credit as a
negative line, a zero-rated pass-through); :func:`adjustment_invoice` re-bills a delta
against it and :func:`credit_note` credits part of it. All amounts are Decimal, rounded by a
:class:`~kwhub.core.money.MoneyPolicy`, and the totals come from
:func:`~kwhub.core.invoice.compute_totals`. Both parties carry everything the built-in
formats ask for (tax ids, payment account, Peppol endpoints, addresses), so a renderer that
refuses them names a real gap. :func:`context` is a render context with usage, lineage and a
fixed envelope.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from kwhub.core.invoice import (
    Address,
    DocumentReference,
    Invoice,
    InvoiceLine,
    PartyRef,
    PaymentDetails,
    compute_totals,
)
from kwhub.core.money import MoneyPolicy
from kwhub.core.render_context import Envelope, Lineage, RenderContext, RunExplanation, UsageSeries

POLICY = MoneyPolicy(currency="USD", rounding="half_up")

SELLER = PartyRef(
    id="ipp",
    name="Blue Ridge Power Partners LLC",
    tax_id="84-1234567",
    tax_scheme="EIN",
    payment=PaymentDetails(account_number="4400123456", routing_number="021000021",
                           account_name="Blue Ridge Power Partners LLC", bank_name="First Example Bank",
                           terms="Net 30 days by ACH or wire"),
    address=Address(street="100 Turbine Way", city="Ashburn", postal_code="20147", region="VA", country="US"),
    email="billing@blueridge-power.example",
    endpoint_id="0088:0614141000012",
    endpoint_scheme="0088",
)
BUYER = PartyRef(
    id="tenant_a",
    name="Hyperscale Compute A Inc.",
    tax_id="27-7654321",
    tax_scheme="EIN",
    payment=PaymentDetails(account_number="9900777001", routing_number="026009593",
                           account_name="Hyperscale Compute A Inc."),
    address=Address(street="1 Data Hall Road", city="Leesburg", postal_code="20175", region="VA", country="US"),
    email="ap@tenant-a.example",
    endpoint_id="0088:0614141000029",
    endpoint_scheme="0088",
)


def _line(number: int, description: str, charge_type: str, quantity: str, unit: str, price: str,
          *, tax_category: str = "S", tax_percent: str = "6.25", start: date | None = None,
          end: date | None = None, asset: str = "", component: str = "",
          policy: MoneyPolicy = POLICY) -> InvoiceLine:
    q = policy.quantity(Decimal(quantity))
    p = policy.unit_price(Decimal(price))
    return InvoiceLine(
        number=number, description=description, charge_type=charge_type,  # type: ignore[arg-type]
        quantity=q, unit=unit, unit_price=p, amount=policy.amount(q * p),
        tax_category=tax_category, tax_percent=Decimal(tax_percent),
        source_asset=asset, component_id=component, period_start=start, period_end=end,
        determinants={"kwh": quantity} if unit == "kWh" else {},
    )


def energy_invoice(policy: MoneyPolicy = POLICY) -> Invoice:
    """The July 2024 invoice from ``ipp`` to ``tenant_a`` (original, version 1)."""
    july1, july31 = date(2024, 7, 1), date(2024, 7, 31)
    lines = [
        _line(1, "Energy on-peak (PPA, gas turbines)", "energy", "1834567.891", "kWh", "0.072345",
              start=july1, end=july31, asset="gt1", component="energy_tou", policy=policy),
        _line(2, "Energy off-peak (PPA, solar + engines)", "energy", "2456789.012", "kWh", "0.048120",
              start=july1, end=july31, asset="pv", component="energy_tou", policy=policy),
        _line(3, "Demand charge (monthly peak)", "demand", "11250.5", "kW", "12.75",
              start=july1, end=july31, component="demand", policy=policy),
        _line(4, "Capacity reservation", "capacity", "1", "month", "185000", component="capacity",
              policy=policy),
        _line(5, "Metering and settlement fee", "fee", "1", "each", "1250.00", component="fee",
              policy=policy),
        _line(6, "Availability credit GT1 (liquidated damages, 7-10 July)", "availability_credit",
              "-1", "each", "4321.09", start=date(2024, 7, 7), end=date(2024, 7, 10), asset="gt1",
              component="availability", policy=policy),
        _line(7, "Grid import pass-through", "pass_through", "52345.5", "kWh", "0.0913",
              tax_category="Z", tax_percent="0", start=july1, end=july31, component="pass_through",
              policy=policy),
    ]
    inv = Invoice(
        id="inv-2024-07-tenant_a", number="INV-2024-000123", kind="invoice", version=1,
        seller=SELLER, buyer=BUYER, issue_date=date(2024, 8, 5), due_date=date(2024, 9, 4),
        period_start=july1, period_end=july31, currency=policy.currency,
        buyer_reference="PO-TA-2024-88", contract_id="ppa-a", run_id="run-2024-07-ppa-a-v1",
        note="Energy delivered under PPA ppa-a, July 2024.", lines=lines,
    )
    return compute_totals(inv, policy)


def adjustment_invoice(policy: MoneyPolicy = POLICY) -> Invoice:
    """A delta re-bill of July after a meter restatement (positive and negative lines)."""
    orig = energy_invoice(policy)
    lines = [
        _line(1, "Energy on-peak restatement delta (hall A meter, 12-14 July)", "adjustment",
              "12345.678", "kWh", "0.072345", start=date(2024, 7, 12), end=date(2024, 7, 14),
              asset="gt1", component="energy_tou", policy=policy),
        _line(2, "Energy off-peak restatement delta", "adjustment", "-2345.5", "kWh", "0.048120",
              start=date(2024, 7, 12), end=date(2024, 7, 14), asset="pv", component="energy_tou",
              policy=policy),
    ]
    inv = Invoice(
        id="inv-2024-07-tenant_a-adj1", number="INV-2024-000150", kind="adjustment", version=1,
        seller=SELLER, buyer=BUYER, issue_date=date(2024, 9, 2), due_date=date(2024, 10, 2),
        period_start=date(2024, 7, 1), period_end=date(2024, 7, 31), currency=policy.currency,
        buyer_reference="PO-TA-2024-88", contract_id="ppa-a", run_id="run-2024-07-ppa-a-v2",
        note="Adjustment after restated interval data for 12-14 July 2024.",
        references=[DocumentReference(id=orig.id, number=orig.number, issue_date=orig.issue_date)],
        lines=lines,
    )
    return compute_totals(inv, policy)


def credit_note(policy: MoneyPolicy = POLICY) -> Invoice:
    """A credit note for part of the July demand charge (billed peak was wrong)."""
    orig = energy_invoice(policy)
    lines = [
        _line(1, "Demand charge correction (credited kW)", "demand", "420.25", "kW", "12.75",
              start=date(2024, 7, 1), end=date(2024, 7, 31), component="demand", policy=policy),
        _line(2, "Metering fee waived", "fee", "1", "each", "250.00", component="fee", policy=policy),
    ]
    inv = Invoice(
        id="cn-2024-07-tenant_a-1", number="CN-2024-000007", kind="credit_note", version=1,
        seller=SELLER, buyer=BUYER, issue_date=date(2024, 8, 20), due_date=date(2024, 9, 19),
        period_start=date(2024, 7, 1), period_end=date(2024, 7, 31), currency=policy.currency,
        buyer_reference="PO-TA-2024-88", contract_id="ppa-a", run_id="run-2024-07-ppa-a-v1",
        note="Credit for the July demand charge.",
        references=[DocumentReference(id=orig.id, number=orig.number, issue_date=orig.issue_date)],
        lines=lines,
    )
    return compute_totals(inv, policy)


def all_documents() -> list[Invoice]:
    """The three sample documents: invoice, adjustment, credit note."""
    return [energy_invoice(), adjustment_invoice(), credit_note()]


def daily_usage(start: date = date(2024, 7, 1), days: int = 31) -> list[tuple[datetime, float]]:
    """Deterministic daily kWh for the PDF chart and the X12 867 (``context.usage``)."""
    out = []
    for i in range(days):
        day = start + timedelta(days=i)
        kwh = 130000.0 + 9000.0 * ((i * 7) % 5) - (20000.0 if day.weekday() >= 5 else 0.0)
        out.append((datetime(day.year, day.month, day.day, tzinfo=UTC), kwh))
    return out


def lineage() -> Lineage:
    """The lineage of the sample invoice's run as the hub builds it from the store."""
    return Lineage(run_id="run-2024-07-ppa-a-v1", channel_days=93, inputs_digest="ab" * 32,
                   statement_hash="cd" * 32, channels=("hall_a.load", "gt1.net", "pv.net"), layers=("validated",))


def context(*, usage: bool = False, with_lineage: bool = False, created: datetime | None = None,
            control_number: int | None = None) -> RenderContext:
    """A render context with the sample usage and lineage, and a fixed envelope when given."""
    return RenderContext(
        usage=UsageSeries.of(daily_usage()) if usage else None,
        lineage=lineage() if with_lineage else None,
        explain=RunExplanation(interval_minutes=15, intervals=2976, allocation_method="pro_rata",
                               sources_kwh={"gt1": "1834567.891", "pv": "2456789.012"}) if with_lineage else None,
        envelope=Envelope(created, control_number) if created is not None else None,
    )


#: The envelope the kit renders with: a fixed creation time and EDI control number.
KIT_CREATED = datetime(2024, 8, 5, 12, 0, tzinfo=UTC)
KIT_CONTROL_NUMBER = 7


def full_context() -> RenderContext:
    """Usage, lineage, explain data and a fixed envelope: what the hub hands a renderer."""
    return context(usage=True, with_lineage=True, created=KIT_CREATED, control_number=KIT_CONTROL_NUMBER)
