"""Market family checks: the adapter's capabilities, its bid documents, a trading day against
its local server, and the refusal of bad price and statement files.

* :func:`check_market_adapter`: the generic contract, capabilities among ``bids``,
  ``rt_bids``, ``awards``, ``prices``, ``statements`` and ``local_server``, every method of each
  declared capability implemented, and market rules known for its ``iso`` (built in, or
  registered with :func:`kwhub.core.markets.rules.register_market_rules`);
* :func:`check_bid_document`: the adapter's own document passes its ``validate_document``;
  an empty one and one cut in half are refused (returned problems, never raised); an
  absurd bid ($1,000,000/MWh by default) is refused before anything is rendered;
* :func:`check_market_server`: one trading day against the adapter's local server (submit
  and poll until accepted, awards, prices of each market, statements), every object checked
  for ISO, market and day, every interval of the operating day (23, 24 or 25 hours) exactly
  once on the UTC grid, no award above what was offered, statement amounts in cents, totals
  equal to the caller's hand-computed ones; after the server stopped, ``check()`` reports a
  transient failure;
* :func:`check_market_rejects`: a bad price or statement file raises an error naming the
  file, the line and the field.

The grid the checks compare against is computed here from :mod:`zoneinfo` (local midnight
to the next local midnight, in UTC), not from kwhub's own hour-label code.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, cast
from zoneinfo import ZoneInfo

from kwhub.core.adapters import AdapterError, FailureKind, MarketAdapter
from kwhub.core.markets.models import (
    Award,
    Bid,
    CurvePoint,
    OfferCurve,
    Statement,
    Submission,
    SubmissionStatus,
)
from kwhub.core.markets.prices import MarketPrices
from kwhub.core.markets.rules import known_isos
from kwhub.testing.contract import (
    check_adapter_contract,
    check_reports_failure,
    check_reports_ok,
    require,
)

CAPABILITY_METHODS: dict[str, tuple[str, ...]] = {
    "bids": ("render_bids", "validate_document", "submit", "poll_status"),
    "rt_bids": ("render_bids", "validate_document", "submit", "poll_status"),  # the same methods take RT bids
    "awards": ("fetch_awards",),
    "prices": ("fetch_prices", "parse_prices"),
    "statements": ("fetch_statements", "parse_statement"),
    "local_server": ("local_server",),
}
CENT = Decimal("0.01")


def check_market_adapter(cls: type[MarketAdapter], config: Mapping[str, Any] | None = None) -> MarketAdapter:
    """The class is a ``MarketAdapter`` whose capabilities are known and implemented; returns an instance."""
    require(isinstance(cls, type) and issubclass(cls, MarketAdapter),
            f"{cls!r} is not a kwhub.core.adapters.MarketAdapter subclass")
    name = cls.type_id or cls.__name__
    unknown = sorted(set(cls.capabilities) - set(CAPABILITY_METHODS))
    require(not unknown, f"{name}: capabilities {unknown} are not market capabilities "
            f"(use {', '.join(CAPABILITY_METHODS)})")
    require(bool(cls.capabilities), f"{name}: declares no capability (one or more of {', '.join(CAPABILITY_METHODS)})")
    for cap in sorted(cls.capabilities):
        missing = [m for m in CAPABILITY_METHODS[cap] if getattr(cls, m) is getattr(MarketAdapter, m)]
        require(not missing, f"{name}: declares capability {cap!r} but does not implement "
                f"{', '.join(f'{m}()' for m in missing)}; implement them or drop the capability")
    if cls.capabilities & {"bids", "awards", "statements", "local_server"}:
        require(bool(cls.iso), f"{name}: set iso (ERCOT, CAISO, PJM, or an ISO whose rules you register): its "
                "awards, prices and statements carry it")
    if cls.iso:
        require(cls.iso in known_isos(), f"{name}: ISO {cls.iso!r} has no market rules (known: "
                f"{', '.join(known_isos())}); register them with kwhub.core.markets.rules.register_market_rules "
                "(curve caps and points, time zone, real-time grain, hour labels) before the adapter is used, "
                "e.g. in the plugin's kwhub_register_market_adapters hook")
    return cast(MarketAdapter, check_adapter_contract(cls, config))


# ------------------------------------------------------------------ bid documents


def absurd_bid(bid: Bid, price: Decimal = Decimal("1000000")) -> Bid:
    """``bid`` with every curve point at ``price`` $/MWh (far above every ISO's offer cap)."""
    curves = tuple(OfferCurve(start=c.start, end=c.end, points=tuple(CurvePoint(mw=p.mw, price=price)
                                                                     for p in c.points)) for c in bid.curves)
    return bid.model_copy(update={"curves": curves, "bid_id": f"{bid.bid_id}-absurd"})


def check_bid_document(adapter: MarketAdapter, bids: Sequence[Bid],
                       absurd_price: Decimal = Decimal("1000000")) -> bytes:
    """The adapter's document for ``bids`` is valid by its own ``validate_document``; broken ones are not.

    Returns the rendered document.
    """
    name = adapter.type_id
    require("bids" in adapter.capabilities, f"{name}: has no 'bids' capability to check")
    data = adapter.render_bids(bids)
    require(isinstance(data, bytes) and bool(data), f"{name}: render_bids() returned {type(data).__name__}, "
            "not the document's bytes")
    problems = adapter.validate_document(data)
    require(problems == [], f"{name}: validate_document() refuses the adapter's own document: {problems[:5]}")
    for label, broken in (("an empty document", b""), ("the document cut in half", data[: len(data) // 2])):
        try:
            found = adapter.validate_document(broken)
        except Exception as exc:  # the point: a validator reports, it does not raise
            raise AssertionError(f"{name}: validate_document() raised {type(exc).__name__} ({exc}) on {label}; "
                                 "return the problem instead") from exc
        require(bool(found), f"{name}: validate_document() accepts {label}; check the document's structure")
    absurd = [absurd_bid(bids[0], absurd_price)]
    try:
        rendered = adapter.render_bids(absurd)
    except (ValueError, AdapterError):  # refused: CurveRuleError is a ValueError; or an AdapterError
        return data
    raise AssertionError(f"{name}: rendered a bid at ${absurd_price}/MWh ({len(rendered)} bytes); check the ISO's "
                         "offer cap (kwhub.core.markets.curve_rules.check_bid) before rendering")


# ------------------------------------------------------------------ a trading day


def day_grid(day: date, tz: str, minutes: int) -> list[int]:
    """UTC epoch starts of every ``minutes`` interval of operating day ``day`` in ``tz``."""
    zone = ZoneInfo(tz)
    start = int(datetime(day.year, day.month, day.day, tzinfo=zone).timestamp())
    nxt = day + timedelta(days=1)
    end = int(datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone).timestamp())
    return list(range(start, end, minutes * 60))


@dataclass
class MarketDay:
    """What the caller expects of one trading day against a local server, worked out by hand.

    ``hours``: 23, 24 or 25. ``bids`` are submitted when the adapter has the ``bids``
    capability; ``offered_mw`` gives the offered MW per (resource, UTC hour start) when the
    ISO clears what it is told (no bids); otherwise the bids' largest MW is the limit.
    ``award_mwh``: the total cleared MWh; ``statement_totals``: statement id -> total in the
    ISO's sign. ``price_minutes``: the interval length of each market's prices.
    """

    trading_date: date
    timezone: str
    hours: int
    statement_totals: Mapping[str, Decimal]
    award_mwh: Decimal | None = None
    bids: Sequence[Bid] = ()
    offered_mw: Mapping[tuple[str, int], Decimal] = field(default_factory=dict)
    price_minutes: Mapping[str, int] = field(default_factory=lambda: {"DA": 60, "RT": 5})
    award_markets: Sequence[str] = ("DA",)
    poll_timeout_s: float = 10.0


@dataclass
class MarketDayResult:
    """What the local server gave over the day (for further checks by the caller)."""

    submission: Submission | None
    awards: list[Award]
    prices: dict[str, list[MarketPrices]]
    statements: list[Statement]


def _epoch(t: datetime) -> int:
    return int(t.astimezone(UTC).timestamp())


def _when(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat()


def _once_on_grid(name: str, what: str, starts: Iterable[int], grid: list[int]) -> None:
    seen = [int(s) for s in starts]
    on = set(grid)
    off = sorted(s for s in seen if s not in on)
    if off:
        raise AssertionError(f"{name}: {what} has {len(off)} interval(s) off the operating day's UTC grid, first at "
                             f"{_when(off[0])} (shifted by an hour? a mislabelled DST hour?)")
    if len(seen) != len(set(seen)):
        dupe = min(s for s in seen if seen.count(s) > 1)
        raise AssertionError(f"{name}: {what} has the interval at {_when(dupe)} more than once")
    missing = sorted(on - set(seen))
    if missing:
        raise AssertionError(f"{name}: {what} lacks {len(missing)} of the day's {len(grid)} intervals, first at "
                             f"{_when(missing[0])}")


def check_market_server(cls: type[MarketAdapter], config: Mapping[str, Any], day: MarketDay,
                        server_options: Mapping[str, Any] | None = None, url_key: str = "url") -> MarketDayResult:
    """Run ``day`` against the adapter's local server; see the module doc for what is checked.

    ``config`` is the adapter's configuration without ``url_key``, which is set to the
    started server's address.
    """
    name = cls.type_id
    require("local_server" in cls.capabilities, f"{name}: has no 'local_server' capability")
    iso = cls.iso
    probe = cls("kit", {**config, url_key: "http://127.0.0.1:9"})
    server = probe.local_server(**dict(server_options or {}))
    server.start()
    try:
        adapter = cls("kit", {**config, url_key: server.url})
        check_reports_ok(adapter)
        result = _run_day(adapter, iso, day)
    finally:
        server.stop()
    check_reports_failure(adapter, FailureKind.TRANSIENT)  # the server has stopped
    return result


def _run_day(adapter: MarketAdapter, iso: str, day: MarketDay) -> MarketDayResult:
    name, d = adapter.type_id, day.trading_date
    hourly = day_grid(d, day.timezone, 60)
    require(len(hourly) == day.hours, f"the caller says {d} has {day.hours} hours in {day.timezone}; it has "
            f"{len(hourly)}")
    submission = None
    offered: dict[tuple[str, int], Decimal] = dict(day.offered_mw)
    if "bids" in adapter.capabilities and day.bids:
        submission = adapter.submit(day.bids)
        first = day.bids[0]
        require((submission.iso, submission.market, submission.trading_date) == (iso, first.market, d),
                f"{name}: the submission says {submission.iso} {submission.market} {submission.trading_date}, "
                f"expected {iso} {first.market} {d}")
        deadline = time.monotonic() + day.poll_timeout_s
        while submission.status != SubmissionStatus.ACCEPTED:
            require(submission.status not in (SubmissionStatus.REJECTED, SubmissionStatus.FAILED,
                                              SubmissionStatus.CANCELED),
                    f"{name}: the local server {submission.status.value} the bids: {submission.messages} "
                    f"{[o.errors for o in submission.outcomes]}")
            require(time.monotonic() < deadline, f"{name}: the submission is still {submission.status.value} "
                    f"after {day.poll_timeout_s} s of polling")
            time.sleep(0.05)
            submission = adapter.poll_status(submission)
        for b in day.bids:
            for c in b.curves:
                key = (b.resource, _epoch(c.start))
                hours = Decimal(_epoch(c.end) - _epoch(c.start)) / 3600
                offered[key] = offered.get(key, Decimal(0)) + c.max_mw * hours

    awards: list[Award] = []
    if "awards" in adapter.capabilities:
        for market in day.award_markets:
            got = adapter.fetch_awards(d, market)
            require(bool(got), f"{name}: no {market} awards for {d}")
            for a in got:
                require((a.iso, a.market) == (iso, market), f"{name}: an award of {a.resource} says {a.iso} "
                        f"{a.market}, expected {iso} {market}")
            by_resource: dict[str, list[Award]] = {}
            for a in got:
                by_resource.setdefault(a.resource, []).append(a)
            for resource, items in by_resource.items():
                _once_on_grid(name, f"the {market} awards of {resource}", (_epoch(a.start) for a in items), hourly)
                for a in items:
                    limit = offered.get((resource, _epoch(a.start)))
                    require(limit is not None, f"{name}: {resource} was awarded {a.mwh} MWh at {a.start.isoformat()}"
                            " where nothing was offered")
                    require(a.mwh <= cast(Decimal, limit), f"{name}: {resource} was awarded {a.mwh} MWh at "
                            f"{a.start.isoformat()}, above the {limit} MWh offered")
            awards += got
        if day.award_mwh is not None:
            total = sum((a.mwh for a in awards), Decimal(0))
            require(total == day.award_mwh, f"{name}: awards add up to {total} MWh, expected {day.award_mwh}")

    prices: dict[str, list[MarketPrices]] = {}
    if "prices" in adapter.capabilities:
        for market, minutes in day.price_minutes.items():
            priced = adapter.fetch_prices(d, market)
            require(bool(priced), f"{name}: no {market} prices for {d}")
            grid = day_grid(d, day.timezone, minutes)
            for p in priced:
                require((p.iso, p.market, p.interval_minutes) == (iso, market, minutes),
                        f"{name}: prices of {p.node} say {p.iso} {p.market} {p.interval_minutes} min, expected "
                        f"{iso} {market} {minutes} min")
                _once_on_grid(name, f"the {market} prices of {p.node}", p.starts.tolist(), grid)
            prices[market] = priced

    statements: list[Statement] = []
    if "statements" in adapter.capabilities:
        statements = adapter.fetch_statements(d)
        ids = sorted(s.statement_id for s in statements)
        require(ids == sorted(day.statement_totals), f"{name}: the statements of {d} are {ids}, expected "
                f"{sorted(day.statement_totals)}")
        for s in statements:
            require((s.iso, s.operating_day) == (iso, d), f"{name}: statement {s.statement_id} says {s.iso} "
                    f"{s.operating_day}, expected {iso} {d}")
            require(bool(s.lines), f"{name}: statement {s.statement_id} has no line")
            uncents = [ln for ln in s.lines if ln.amount != ln.amount.quantize(CENT)]
            if uncents:
                raise AssertionError(f"{name}: statement {s.statement_id}: {uncents[0].code} at "
                                     f"{uncents[0].start.isoformat()} is {uncents[0].amount}, not whole cents")
            groups: dict[tuple[str, str, int], list[int]] = {}
            for ln in s.lines:
                groups.setdefault((ln.code, ln.resource, ln.minutes), []).append(_epoch(ln.start))
            for (code, resource, minutes), starts in sorted(groups.items()):
                _once_on_grid(name, f"statement {s.statement_id} code {code} of {resource}", starts,
                              day_grid(d, day.timezone, minutes))
            expected = day.statement_totals[s.statement_id]
            require(s.total() == expected, f"{name}: statement {s.statement_id} totals {s.total()}, expected "
                    f"{expected} (worked out by hand)")
    return MarketDayResult(submission, awards, prices, statements)


# ------------------------------------------------------------------ bad files


def check_market_rejects(adapter: MarketAdapter, path: Path, kind: Literal["prices", "statement"], line: int,
                         field: str) -> Exception:
    """Reading ``path`` (a price file or a statement) raises an error naming the file, ``line`` and ``field``."""
    name = adapter.type_id
    read = adapter.parse_prices if kind == "prices" else adapter.parse_statement
    try:
        got = read(path)
    except AssertionError:
        raise
    except Exception as exc:
        text = str(exc)
        require(path.name in text, f"{name}: the error on {path.name} does not name the file: {text}")
        require(f"line {line}" in text, f"{name}: the error on {path.name} does not name line {line}: {text}")
        require(field in text, f"{name}: the error on {path.name} line {line} does not name the field {field}: {text}")
        return exc
    raise AssertionError(f"{name}: read the bad {kind} file {path.name} without an error ({type(got).__name__}); "
                         f"line {line} [{field}] should be refused")
