"""The market family's format-neutral objects: bids, submissions, awards, statements.

They follow the bid-to-bill chain of ``MARKETS.md``: a :class:`Bid` (offer curves per
interval) is rendered and submitted by an ISO adapter (:class:`Submission`), cleared
into :class:`Award` s, and settled on an ISO :class:`Statement` whose
:class:`StatementLine` s kwhub recomputes (shadow settlement) and compares. Times are UTC
instants; the ISO's own labels travel beside them (``label``). Amounts keep the ISO's
sign convention (ERCOT, PJM, CAISO: negative = paid to the participant); the one flip to
revenue happens in :mod:`kwhub.core.markets.revenue`. ``iso`` is any ISO with market rules
(:mod:`kwhub.core.markets.rules`): the three built-in ones or one a plugin registered.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator


def _known_iso(v: str) -> str:
    from kwhub.core.markets.rules import check_iso  # rules import these models' neighbours

    return check_iso(v)


# an ISO with market rules: ERCOT, CAISO, PJM, or one a plugin registered
# (kwhub.core.markets.rules.register_market_rules)
ISO = Annotated[str, AfterValidator(_known_iso)]
Market = Literal["DA", "RT"]
Side = Literal["offer", "bid"]  # offer = sell (supply), bid = buy
Product = Literal["energy", "reg_up", "reg_down", "spin", "non_spin"]
StatementKind = Literal["initial", "final", "true_up", "resettlement"]
STATEMENT_ORDER: dict[str, int] = {"initial": 0, "final": 1, "true_up": 2, "resettlement": 3}


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)  # schema built at first use


def _utc(v: datetime) -> datetime:
    if v.tzinfo is None or v.utcoffset() is None:
        raise ValueError(f"{v.isoformat()} has no offset; market times are UTC instants")
    return v.astimezone(UTC)


class CurvePoint(_Frozen):
    """One point of a price curve: ``mw`` (x) at ``price`` $/MWh (y)."""

    mw: Decimal
    price: Decimal


class OfferCurve(_Frozen):
    """The curve of one interval ``[start, end)`` (an hour for day-ahead offers)."""

    start: datetime
    end: datetime
    points: tuple[CurvePoint, ...]

    _start = field_validator("start", "end")(_utc)

    @property
    def max_mw(self) -> Decimal:
        return max((p.mw for p in self.points), default=Decimal(0))


class Bid(_Frozen):
    """A bid or offer of one resource (or settlement point) for one trading day.

    ``curves`` hold one curve per interval; ``self_schedule_mw`` an optional price-taking
    quantity; ``storage`` marks an energy storage resource (its curves may go below 0 MW).
    """

    bid_id: str
    iso: ISO
    market: Market
    resource: str
    trading_date: date
    side: Side = "offer"
    product: Product = "energy"
    curves: tuple[OfferCurve, ...] = ()
    self_schedule_mw: Decimal | None = None
    storage: bool = False

    def offered_mw(self) -> dict[datetime, Decimal]:
        """The largest MW offered per interval start."""
        return {c.start: c.max_mw for c in self.curves}


class SubmissionStatus(StrEnum):
    """Where a submitted document stands at the ISO."""

    SUBMITTED = "submitted"
    PENDING = "pending"
    ACCEPTED = "accepted"
    PARTIAL = "partial"  # some bids accepted, some rejected
    REJECTED = "rejected"
    FAILED = "failed"  # transport or protocol failure: nothing is known to be at the ISO
    CANCELED = "canceled"


class BidOutcome(_Frozen):
    """The ISO's verdict on one bid of a submission."""

    bid_id: str
    status: SubmissionStatus
    iso_ref: str = ""  # e.g. ERCOT's mRID QSE.date.type.settlementpoint.bidID
    errors: tuple[str, ...] = ()


class Submission(_Frozen):
    """What one submission to an ISO returned."""

    iso: ISO
    market: Market
    trading_date: date
    status: SubmissionStatus
    document_sha256: str
    iso_ref: str = ""
    outcomes: tuple[BidOutcome, ...] = ()
    messages: tuple[str, ...] = ()


class Award(_Frozen):
    """A cleared quantity: ``mwh`` over ``[start, end)`` for a resource (+ the clearing
    ``price`` when the ISO sends it)."""

    iso: ISO
    market: Market
    resource: str
    start: datetime
    end: datetime
    mwh: Decimal
    side: Side = "offer"
    bid_id: str = ""
    price: Decimal | None = None
    iso_ref: str = ""
    label: str = ""

    _start = field_validator("start", "end")(_utc)


class StatementLine(_Frozen):
    """One charge code of one interval on an ISO statement (ISO sign convention).

    ``determinants`` are the ISO's billing determinants of the line when it published
    them (e.g. ``{"RTMG": 13.01, "RTSPP": 55.00}`` from ERCOT's settlement extracts; MWh
    and $/MWh); they tell a price variance from a quantity one.
    """

    code: str
    resource: str
    start: datetime
    minutes: int
    amount: Decimal
    determinants: dict[str, Decimal] = Field(default_factory=dict)
    label: str = ""

    _start = field_validator("start")(_utc)


class Statement(_Frozen):
    """One version of an ISO settlement statement for one operating day."""

    iso: ISO
    operating_day: date
    kind: StatementKind
    statement_id: str
    market: Market | Literal["ALL"] = "ALL"
    lines: tuple[StatementLine, ...] = ()
    issued: date | None = None
    source: str = ""

    def total(self) -> Decimal:
        return sum((ln.amount for ln in self.lines), Decimal("0.00"))


class DeltaLine(_Frozen):
    """A later statement version against the one before it, per code and interval."""

    code: str
    resource: str
    start: datetime
    label: str
    previous: Decimal
    current: Decimal

    @property
    def net(self) -> Decimal:
        return self.current - self.previous


Cause = Literal["price", "quantity", "timing", "formula", "undetermined"]


class VarianceLine(_Frozen):
    """Shadow minus ISO for one code and interval, and why they differ."""

    code: str
    resource: str
    start: datetime
    label: str
    shadow: Decimal | None
    iso: Decimal | None
    cause: Cause
    detail: str = ""

    @property
    def variance(self) -> Decimal:
        return (self.shadow or Decimal(0)) - (self.iso or Decimal(0))


class MarketResource(_Frozen):
    """A resource the hub offers into one ISO, as configured in ``[[markets.resources]]``.

    ``meter`` lists the channels whose sum is the resource's delivery at the ISO's
    settlement meter (``meter_negative`` those subtracted, e.g. the grid import of a
    campus that exports its surplus); ``asset`` names the asset whose owners share its
    market revenue.
    """

    iso: ISO
    resource: str
    node: str = ""
    qse: str = "QKWHUB"
    meter: list[str] = Field(default_factory=list)
    meter_negative: list[str] = Field(default_factory=list)
    asset: str = ""
    storage: bool = False

    @property
    def price_node(self) -> str:
        return self.node or self.resource
