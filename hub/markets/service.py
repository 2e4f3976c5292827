"""The bid-to-bill chain as plain functions of a database and the configuration.

Each function does one step and stores what it learnt, so the CLI, the demo and later a
scheduler job or an API route call the same code: :func:`submit_bids`,
:func:`poll_submission`, :func:`fetch_market_day` (awards, prices, statements),
:func:`shadow_inputs` / :func:`variance_for_day` (shadow settlement against every
statement version, with the price versions each version was settled on),
:func:`market_revenue_items` (owner statements) and :func:`explain_market_line`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import numpy as np

from kwhub.core.adapters import MarketAdapter
from kwhub.core.markets.charge_codes import charge_code
from kwhub.core.markets.fixed import cents_decimal, mwh_decimal, price_decimal, wh_from_kwh
from kwhub.core.markets.hour_labels import DayGrid
from kwhub.core.markets.models import Award, Bid, DeltaLine, MarketResource, Statement, Submission
from kwhub.core.markets.rules import market_rules
from kwhub.core.markets.shadow import ShadowInputs, ShadowResult, shadow_settle
from kwhub.core.markets.statements import statement_deltas
from kwhub.core.markets.variance import VarianceReport, variance_report
from kwhub.core.ownership import MarketRevenueItem
from kwhub.core.quality import Quality
from kwhub.core.timeline import Span, billing_period, local_day
from kwhub.hub.config import ConfigError, KwhubConfig
from kwhub.hub.markets import store
from kwhub.hub.store import Database

RT_MINUTES = {"ERCOT": 15, "CAISO": 5, "PJM": 5}  # the built-in ISOs; any ISO: market_rules(iso).rt_minutes


class MarketServiceError(ValueError):
    """A market step that cannot run with this configuration or data."""


def market_adapter(cfg: KwhubConfig, iso: str) -> MarketAdapter:
    """The adapter instance configured for ``iso`` in ``[markets.adapters]``."""
    inst = cfg.file.markets.adapters.get(iso)
    if inst is None:
        known = ", ".join(sorted(cfg.file.markets.adapters)) or "none"
        raise ConfigError(cfg.source, [f"markets.adapters: no adapter instance for {iso} (configured: {known})"])
    adapter = cfg.adapter(inst)
    if not isinstance(adapter, MarketAdapter):
        raise ConfigError(cfg.source, [f"markets.adapters.{iso}: {inst!r} is not a market adapter"])
    return adapter


def iso_timezone(cfg: KwhubConfig, iso: str) -> str:
    """The zone of the ISO's operating day: the adapter's ``timezone`` when its configuration
    has one, else the zone of the ISO's market rules (:mod:`kwhub.core.markets.rules`)."""
    tz = getattr(market_adapter(cfg, iso).config, "timezone", None)
    return str(tz) if tz else market_rules(iso).timezone


# ----------------------------------------------------------------------- bids


def submit_bids(db: Database, cfg: KwhubConfig, iso: str, bids: Sequence[Bid]) -> tuple[str, Submission]:
    """Submit ``bids`` through the ISO's adapter and record the answer (curve rules are
    checked by the adapter before anything is sent)."""
    if not bids:
        raise MarketServiceError(f"nothing to submit to {iso}: no bids")
    adapter = market_adapter(cfg, iso)
    sub = adapter.submit(list(bids))
    sid = uuid.uuid4().hex
    store.save_submission(db, sid, sub, bids)
    return sid, sub


def poll_submission(db: Database, cfg: KwhubConfig, submission_id: str) -> Submission:
    """Ask the ISO for a stored submission's status and record it."""
    sub, bids = store.load_submission(db, submission_id)
    new = market_adapter(cfg, sub.iso).poll_status(sub)
    store.save_submission(db, submission_id, new, bids)
    return new


# ----------------------------------------------------------------------- fetching


@dataclass
class FetchReport:
    """What one fetch of a market day stored."""

    awards: int = 0
    rt_awards: int = 0  # resource-days of real-time awards (adapters with ``rt_bids``)
    over_offer: list[str] = field(default_factory=list)  # awards above the MW the campus offered
    prices: dict[str, dict[str, int]] = field(default_factory=dict)
    statements_new: list[str] = field(default_factory=list)
    statements_known: list[str] = field(default_factory=list)


def fetch_market_day(db: Database, cfg: KwhubConfig, iso: str, day: date, *, awards: bool = True,
                     prices: bool = True, statements: bool = True) -> FetchReport:
    """Fetch and store the day's awards (day-ahead, and real-time for an adapter that takes
    real-time bids), DA and RT prices and statement versions."""
    import hashlib

    adapter = market_adapter(cfg, iso)
    tz = iso_timezone(cfg, iso)
    rep = FetchReport()
    if awards:
        for market in ("DA", "RT") if "rt_bids" in adapter.capabilities else ("DA",):
            got = _awards_of(adapter, iso, day, market)
            if "bids" in adapter.capabilities:
                rep.over_offer += awards_above_offers(db, iso, day, got)
            saved = store.save_awards(db, got, tz)
            if market == "DA":
                rep.awards = saved
            else:
                rep.rt_awards = saved
    if prices:
        for market in ("DA", "RT"):
            rep.prices[market] = store.save_prices(db, adapter.fetch_prices(day, market), tz)
    if statements:
        for st in adapter.fetch_statements(day):
            digest = hashlib.sha256(st.model_dump_json().encode()).hexdigest()
            _, new = store.save_statement(db, st, digest)
            (rep.statements_new if new else rep.statements_known).append(st.statement_id)
    return rep


def _awards_of(adapter: MarketAdapter, iso: str, day: date, market: str) -> list[Award]:
    """The adapter's awards of one market, refused when they say another ISO or market."""
    got = list(adapter.fetch_awards(day, market))
    wrong = [a for a in got if (a.iso, a.market) != (iso, market)]
    if wrong:
        a = wrong[0]
        raise MarketServiceError(f"{iso} {market} awards of {day}: the adapter answered an award of {a.resource} "
                                 f"at {a.start.isoformat()} for {a.iso} {a.market} ({len(wrong)} such)")
    return got


def awards_above_offers(db: Database, iso: str, day: date, awards: Sequence[Award]) -> list[str]:
    """Awards above what the campus offered for their interval (the largest MW of the curve of
    the hour it falls in, x the award's hours), or without any offer, against the bids of the
    submissions of ``day`` the ISO took: each as a sentence naming resource, interval and MWh."""
    offered: dict[tuple[str, str, int], Decimal] = {}
    for s in store.list_submissions(db, iso, day):
        if s["status"] not in ("submitted", "pending", "accepted", "partial"):
            continue
        _, bids = store.load_submission(db, str(s["id"]))
        for b in bids:
            if b.side != "offer":
                continue
            for c in b.curves:
                for h in range(int(c.start.timestamp()), int(c.end.timestamp()), 3600):
                    key = (b.market, b.resource, h)
                    offered[key] = max(offered.get(key, Decimal(0)), c.max_mw)
    out = []
    for a in awards:
        if a.side != "offer" or a.mwh <= 0:
            continue
        s0 = int(a.start.timestamp())
        mw = offered.get((a.market, a.resource, s0 - s0 % 3600))
        limit = None if mw is None else mw * Decimal(int(a.end.timestamp()) - s0) / Decimal(3600)
        if limit is None or a.mwh > limit:
            what = "no offer" if limit is None else f"{limit.normalize()} MWh offered"
            out.append(f"{iso} {a.market} award of {a.resource} at {a.start.isoformat()}: {a.mwh} MWh, {what}")
    return out


# ----------------------------------------------------------------------- shadow settlement


def meter_wh(db: Database, cfg: KwhubConfig, resource: MarketResource, span: Span,
             minutes: int) -> tuple[np.ndarray, np.ndarray]:
    """The resource's metered delivery (Wh per interval) and which intervals are complete,
    from the validated layer: the ``meter`` channels minus the ``meter_negative`` ones."""
    ids = [*resource.meter, *resource.meter_negative]
    for cid in ids:
        ch = cfg.campus.channel(cid)
        if ch.interval_minutes > minutes or minutes % ch.interval_minutes:
            raise MarketServiceError(f"{resource.iso} {resource.resource}: channel {cid} is metered every "
                                     f"{ch.interval_minutes} min, which does not add up to {minutes}-minute "
                                     "settlement intervals")
    m = db.intervals.read_matrix(ids, span, minutes, layer="validated")
    wh = wh_from_kwh(m.values)
    sign = np.array([1] * len(resource.meter) + [-1] * len(resource.meter_negative), dtype=np.int64)
    ok = ~np.isnan(m.values).any(axis=0) & (m.quality != Quality.MISSING).all(axis=0)
    return (wh * sign[:, None]).sum(axis=0), ok


def shadow_inputs(db: Database, cfg: KwhubConfig, iso: str, day: date,
                  as_of: datetime | None = None) -> tuple[ShadowInputs, DayGrid, DayGrid]:
    """Everything shadow settlement needs for the ISO's resources on one operating day,
    with the prices each day had at ``as_of`` (None: the latest versions)."""
    tz = iso_timezone(cfg, iso)
    resources = cfg.file.markets.of_iso(iso)
    if not resources:
        raise MarketServiceError(f"no [[markets.resources]] for {iso}")
    rt = market_rules(iso).rt_minutes
    span = local_day(day, tz)
    hours = span.seconds // 3600
    names = [r.resource for r in resources]
    nodes = [r.price_node for r in resources]
    da = store.load_prices(db, iso, nodes, "DA", span.start_epoch, hours, 60, as_of)
    rtp = store.load_prices(db, iso, nodes, "RT", span.start_epoch, hours * 60 // rt, rt, as_of)
    meters = [meter_wh(db, cfg, r, span, rt) for r in resources]
    inp = ShadowInputs(iso=iso, resources=names, start_epoch=span.start_epoch, hours=hours, rt_minutes=rt,
                       da_sale_wh=store.load_award_hours(db, iso, "DA", names, span.start_epoch, hours),
                       da_purchase_wh=np.zeros((len(names), hours), np.int64), da_price_u=da.units,
                       da_price_ok=da.ok, rt_meter_wh=np.array([m[0] for m in meters]),
                       rt_meter_ok=np.array([m[1] for m in meters]), rt_price_u=rtp.units, rt_price_ok=rtp.ok,
                       price_versions={**da.versions, **rtp.versions})
    return inp, DayGrid(day, tz, 60), DayGrid(day, tz, rt)


@dataclass
class StatementCheck:
    """One statement version against the shadow settlement, and what it changed."""

    statement: Statement
    received_at: datetime
    report: VarianceReport
    deltas: list[DeltaLine]
    previous_id: str = ""


def variance_for_day(db: Database, cfg: KwhubConfig, iso: str, day: date,
                     statement_id: str | None = None) -> list[StatementCheck]:
    """Shadow-settle ``day`` against each statement version (or the one named).

    Each version is compared with a shadow run on the prices stored when that version
    arrived, so a price correction appears as a new version and its deltas, not as a
    variance. Every run is recorded with its inputs' digest and price versions.
    """
    stored = store.load_statements(db, iso, day)
    if not stored:
        raise MarketServiceError(f"no {iso} statement of {day} is stored (`kwhub market fetch --iso {iso} --day {day}`)")
    tol = cfg.file.markets.tolerance
    out: list[StatementCheck] = []
    previous: dict[str, store.StoredStatement] = {}
    for s in stored:
        prev = previous.get(s.statement.market)
        previous[s.statement.market] = s
        if statement_id is not None and s.statement.statement_id != statement_id:
            continue
        inp, grid_h, grid_rt = shadow_inputs(db, cfg, iso, day, as_of=s.received_at)
        result = shadow_settle(inp)
        labels = {(60, int(st)): grid_h.label(i) for i, st in enumerate(grid_h.starts.tolist())}
        labels.update({(grid_rt.minutes, int(st)): grid_rt.label(i) for i, st in enumerate(grid_rt.starts.tolist())})
        codes_on = {ln.code for ln in s.statement.lines}
        result.codes = {c: v for c, v in result.codes.items() if c in codes_on}
        rep = variance_report(result, s.statement, tol, labels)
        store.record_shadow_run(db, iso, day, s.pk, result.inputs_sha256, result.price_versions,
                                {c: {"shadow": str(v.shadow), "iso": str(v.iso), "variance": str(v.variance)}
                                 for c, v in rep.codes.items()})
        deltas = statement_deltas(prev.statement, s.statement) if prev is not None else []
        out.append(StatementCheck(s.statement, s.received_at, rep, deltas,
                                  prev.statement.statement_id if prev is not None else ""))
    if statement_id is not None and not out:
        raise MarketServiceError(f"no {iso} statement {statement_id!r} on {day}")
    return out


def variance_as_json(checks: Sequence[StatementCheck]) -> list[dict[str, Any]]:
    """The variance report as JSON-able data: what ``kwhub market variance --format json`` prints and
    what an API route would serve."""
    return [{
        "statement": c.statement.statement_id, "kind": c.statement.kind, "market": c.statement.market,
        "received": c.received_at.isoformat(), "inputs_sha256": c.report.inputs_sha256,
        "price_versions": c.report.price_versions, "tolerance": str(c.report.tolerance),
        "codes": [{"code": s.code, "lines": s.lines, "shadow": str(s.shadow), "iso": str(s.iso),
                   "variance": str(s.variance), "outside_tolerance": s.outside} for s in c.report.codes.values()],
        "lines": [{"code": v.code, "resource": v.resource, "interval": v.label, "utc_start": v.start.isoformat(),
                   "shadow": str(v.shadow), "iso": str(v.iso), "variance": str(v.variance), "cause": v.cause,
                   "detail": v.detail} for v in c.report.lines],
        "deltas": {"previous": c.previous_id,
                   "lines": [{"code": d.code, "resource": d.resource, "interval": d.label, "previous": str(d.previous),
                              "current": str(d.current), "net": str(d.net)} for d in c.deltas]},
    } for c in checks]


def shadow_day(db: Database, cfg: KwhubConfig, iso: str, day: date) -> ShadowResult:
    """The shadow settlement of a day on the latest prices (no statement needed)."""
    return shadow_settle(shadow_inputs(db, cfg, iso, day)[0])


# ----------------------------------------------------------------------- revenue


def latest_statements(db: Database, iso: str, first: date, last: date) -> list[store.StoredStatement]:
    """The latest version per (operating day, market) in a day range."""
    best: dict[tuple[date, str], store.StoredStatement] = {}
    for s in store.load_statements(db, iso, first=first, last=last):
        best[(s.statement.operating_day, s.statement.market)] = s  # arrival order: the later one wins
    return [best[k] for k in sorted(best)]


def market_revenue_items(db: Database, cfg: KwhubConfig, period: str) -> list[MarketRevenueItem]:
    """Each resource's market revenue in ``period`` (its latest statement versions, sign
    flipped once), for the owners of the resource's asset."""
    out: list[MarketRevenueItem] = []
    for iso in sorted(cfg.file.markets.adapters):
        resources = {r.resource: r for r in cfg.file.markets.of_iso(iso) if r.asset}
        if not resources:
            continue
        bp = billing_period(period, iso_timezone(cfg, iso))
        totals: dict[str, Decimal] = {}
        ids: dict[str, list[str]] = {}
        for s in latest_statements(db, iso, bp.first_day, bp.last_day):
            for ln in s.statement.lines:
                if ln.resource in resources:
                    totals[ln.resource] = totals.get(ln.resource, Decimal("0.00")) - ln.amount
                    ids.setdefault(ln.resource, [])
                    if s.statement.statement_id not in ids[ln.resource]:
                        ids[ln.resource].append(s.statement.statement_id)
        for res, total in sorted(totals.items()):
            out.append(MarketRevenueItem(asset=resources[res].asset, amount=total,
                                         description=f"{iso} market revenue {res}",
                                         basis={"iso": iso, "resource": res, "statements": ",".join(ids[res])}))
    return out


# ----------------------------------------------------------------------- explain


def explain_market_line(db: Database, cfg: KwhubConfig, iso: str, day: date, resource: str, code: str,
                        label: str) -> dict[str, Any]:
    """Walk one statement line back: bid -> award -> metered delivery -> ISO price -> statement
    line (every version) -> revenue. ``label`` is the ISO interval (``HE15`` or ``HE15.1``,
    ``HE02 DST`` for the repeated hour)."""
    code_def = charge_code(iso, code)
    tz = iso_timezone(cfg, iso)
    grid = DayGrid(day, tz, code_def.minutes)
    matches = [i for i in range(len(grid)) if grid.he_label(i) == label.strip()]
    if not matches:
        raise MarketServiceError(f"{label!r} is not an interval of {day} for {code} (e.g. "
                                 f"{grid.he_label(0)} .. {grid.he_label(len(grid) - 1)})")
    i = matches[0]
    start = int(grid.starts[i])
    hour = start - start % 3600
    r = cfg.file.markets.resource(iso, resource)
    bids = []
    for row in store.list_submissions(db, iso, day):
        sub, sub_bids = store.load_submission(db, str(row["id"]))
        for b in sub_bids:
            if b.resource != resource:
                continue
            for c in b.curves:
                if int(c.start.timestamp()) == hour:
                    bids.append({"submission": row["id"], "status": sub.status.value, "bid_id": b.bid_id,
                                 "iso_ref": sub.iso_ref, "curve": [[str(p.mw), str(p.price)] for p in c.points]})
    award = store.load_award_hours(db, iso, "DA", [resource], hour, 1)[0, 0]
    span = Span(datetime.fromtimestamp(start, tz=UTC), datetime.fromtimestamp(start + code_def.minutes * 60, tz=UTC))
    wh, ok = meter_wh(db, cfg, r, span, code_def.minutes)
    market = "DA" if code_def.minutes == 60 else "RT"
    prices = []
    for v, received, units in store.price_versions(db, iso, r.price_node, market, day):
        prices.append({"version": v, "received": received.isoformat(), "price": str(price_decimal(int(units[i])))})
    lines = []
    for s in store.load_statements(db, iso, day):
        for ln in s.statement.lines:
            if ln.code == code and ln.resource == resource and int(ln.start.timestamp()) == start:
                lines.append({"statement": s.statement.statement_id, "kind": s.statement.kind,
                              "amount": str(ln.amount), "revenue": str(-ln.amount),
                              "determinants": {k: str(v) for k, v in ln.determinants.items()}})
    shadow = shadow_day(db, cfg, iso, day).codes[code]
    si = int(np.searchsorted(shadow.starts, start))
    ri = shadow.resources.index(resource)
    return {"iso": iso, "day": day.isoformat(), "resource": resource, "code": code, "interval": grid.label(i),
            "utc_start": datetime.fromtimestamp(start, tz=UTC).isoformat(), "formula": code_def.formula,
            "bid": bids, "award_mwh": str(mwh_decimal(int(award))),
            "metered_mwh": str(mwh_decimal(int(wh[0]))) if ok[0] else "missing",
            "meter_channels": {"plus": r.meter, "minus": r.meter_negative}, "prices": prices,
            "statement_lines": lines, "shadow": json.loads(json.dumps(shadow.line(ri, si), default=str)),
            "shadow_amount": str(cents_decimal(int(shadow.amount_cents[ri, si]))),
            "owners_asset": r.asset}


def meter_source(db: Database, cfg: KwhubConfig, iso: str) -> Any:
    """``(resource, day) -> MWh per real-time interval`` from the store, for a local ISO
    server that settles the campus's own meter data (None for a resource it does not know)."""
    tz = iso_timezone(cfg, iso)
    rt = market_rules(iso).rt_minutes

    def read(resource: str, day: date) -> list[Decimal] | None:
        try:
            r = cfg.file.markets.resource(iso, resource)
        except KeyError:
            return None
        wh, ok = meter_wh(db, cfg, r, local_day(day, tz), rt)
        return [mwh_decimal(int(v)) if good else Decimal(0) for v, good in zip(wh.tolist(), ok.tolist(), strict=True)]

    return read
