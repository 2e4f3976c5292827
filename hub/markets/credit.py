"""Market revenue for tenant credits: loading it for a period and explaining a credit line.

:func:`period_market_revenue` reads, for each ISO with configured resources, the latest
statement version of every (operating day, market) of the period (the same versions owner
statements use, :func:`kwhub.hub.markets.service.market_revenue_items`) with the sign flipped
once. Settlement calls it (through ``SettlementOptions.market_revenue_loader``) for a period
in which a contract has a ``market_revenue_credit`` component.

:func:`explain_credit_line` walks a credit line back: line -> statements (ids, versions) ->
charge codes -> intervals, and, for one interval, on through
:func:`kwhub.hub.markets.service.explain_market_line` (bid -> award -> meter -> price).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from kwhub.core.invoice import InvoiceLine
from kwhub.core.markets.revenue import line_revenue
from kwhub.core.money import money_str
from kwhub.core.pricing.market_credit import MarketRevenue, RevenueStatement
from kwhub.core.timeline import billing_period
from kwhub.hub.config import KwhubConfig
from kwhub.hub.markets import store
from kwhub.hub.markets.service import MarketServiceError, explain_market_line, iso_timezone
from kwhub.hub.store import Database


def _versions(db: Database, iso: str, first: date, last: date) -> list[tuple[store.StoredStatement, int, bool]]:
    """Every statement version of the days, with its version number per (day, market) and
    whether it is the latest one, in arrival order."""
    stored = store.load_statements(db, iso, first=first, last=last)
    count: dict[tuple[date, str], int] = defaultdict(int)
    numbered = []
    for s in stored:
        key = (s.statement.operating_day, s.statement.market)
        count[key] += 1
        numbered.append((s, count[key], key))
    seen: dict[tuple[date, str], int] = defaultdict(int)
    out = []
    for s, n, key in numbered:
        seen[key] += 1
        out.append((s, n, seen[key] == count[key]))
    return out


def period_market_revenue(db: Database, cfg: KwhubConfig, period: str) -> MarketRevenue:
    """The market revenue of ``period`` (``YYYY-MM``, days in each ISO's zone): the latest
    statement versions, revenue per resource (sign flipped once)."""
    statements: list[RevenueStatement] = []
    assets: dict[tuple[str, str], str] = {}
    for iso in sorted(cfg.file.markets.adapters):
        resources = {r.resource: r.asset for r in cfg.file.markets.of_iso(iso) if r.asset}
        if not resources:
            continue
        assets.update({(iso, r): a for r, a in resources.items()})
        bp = billing_period(period, iso_timezone(cfg, iso))
        for s, version, latest in _versions(db, iso, bp.first_day, bp.last_day):
            if not latest:
                continue
            revenue: dict[str, Decimal] = defaultdict(lambda: Decimal("0.00"))
            for ln in s.statement.lines:
                if ln.resource in resources:
                    revenue[ln.resource] += line_revenue(ln)
            st = s.statement
            statements.append(RevenueStatement(iso=iso, statement_id=st.statement_id, kind=st.kind, market=st.market,
                                               operating_day=st.operating_day, version=version,
                                               received_at=s.received_at.isoformat(), revenue=dict(revenue)))
    statements.sort(key=lambda r: (r.iso, r.operating_day, r.market))
    return MarketRevenue(period=period, statements=tuple(statements), assets=assets)


def market_revenue_loader(cfg: KwhubConfig) -> Any:
    """``(db, period) -> MarketRevenue`` for ``SettlementOptions.market_revenue_loader``."""

    def load(db: Database, period: str) -> MarketRevenue:
        return period_market_revenue(db, cfg, period)

    return load


def credit_inputs_changed(db: Database, statement: Mapping[str, Any]) -> bool:
    """Whether a settled run's market revenue credits rest on statements that are no longer
    the period's latest: a later version (a resettlement) or a statement of another day
    arrived since. Such a run is stale; the next settlement version bills the difference."""
    lines = [ln for ln in statement.get("lines", []) if ln.get("charge_type") == "market_credit"]
    if not lines:
        return False
    bp = billing_period(str(statement["run"]["period"]), "UTC")  # operating days are dates in the ISO's zone
    for ln in lines:
        dets = ln.get("determinants") or {}
        resources = set(filter(None, str(dets.get("resources", "")).split(",")))
        recorded = {ref.rsplit("@v", 1)[0] for ref in str(dets.get("statements", "")).split(",") if ref}
        current = {s.statement.statement_id for s, _, latest in _versions(db, str(dets.get("iso", "")), bp.first_day,
                                                                           bp.last_day)
                   if latest and any(x.resource in resources for x in s.statement.lines)}
        if current != recorded:
            return True
    return False


def _interval_key(day: date, code: str, resource: str, label: str) -> str:
    return f"{day.isoformat()}:{code}:{resource}:{label}"


def explain_credit_line(db: Database, cfg: KwhubConfig, line: InvoiceLine, period: str,
                        interval: str | None = None) -> dict[str, Any]:
    """The statements, charge codes and intervals behind a ``market_credit`` line of ``period``.

    ``interval`` (``DAY:CODE:RESOURCE:LABEL`` as listed in the answer) adds that statement
    line's walk back to bid, award, metered delivery and ISO price.
    """
    dets = line.determinants
    if line.charge_type != "market_credit" or "statements" not in dets:
        raise MarketServiceError(f"line {line.number} is not a market revenue credit (charge type {line.charge_type})")
    iso = dets["iso"]
    resources = set(filter(None, dets.get("resources", "").split(",")))
    wanted = dict(ref.rsplit("@v", 1) for ref in dets["statements"].split(",") if ref)
    bp = billing_period(period, iso_timezone(cfg, iso))
    found: list[dict[str, Any]] = []
    later: dict[tuple[date, str], str] = {}
    total = Decimal("0.00")
    for s, version, latest in _versions(db, iso, bp.first_day, bp.last_day):
        st = s.statement
        if st.statement_id not in wanted:
            if any(f["operating_day"] == st.operating_day.isoformat() and f["market"] == st.market for f in found):
                later[(st.operating_day, st.market)] = st.statement_id
            continue
        codes: dict[str, dict[str, Any]] = {}
        for ln in st.lines:
            if ln.resource not in resources:
                continue
            rev = line_revenue(ln)
            c = codes.setdefault(ln.code, {"code": ln.code, "revenue": Decimal("0.00"), "intervals": []})
            c["revenue"] += rev
            key = _interval_key(st.operating_day, ln.code, ln.resource, ln.label)
            c["intervals"].append({"key": key, "resource": ln.resource, "label": ln.label,
                                   "utc_start": ln.start.isoformat(), "minutes": ln.minutes,
                                   "iso_amount": money_str(ln.amount), "revenue": money_str(rev)})
        st_rev = sum((c["revenue"] for c in codes.values()), Decimal("0.00"))
        total += st_rev
        found.append({"statement": st.statement_id, "version": version, "recorded_version": int(wanted[st.statement_id]),
                      "kind": st.kind, "market": st.market, "operating_day": st.operating_day.isoformat(),
                      "received": s.received_at.isoformat(), "latest": latest, "revenue": money_str(st_rev),
                      "codes": [{**c, "revenue": money_str(c["revenue"])} for _, c in sorted(codes.items())]})
    missing = sorted(set(wanted) - {f["statement"] for f in found})
    for f in found:
        f["superseded_by"] = later.get((date.fromisoformat(f["operating_day"]), f["market"]), "")
    recorded = Decimal(dets.get("market_revenue", "0"))
    out: dict[str, Any] = {
        "line": line.number, "iso": iso, "asset": dets.get("asset", ""), "resources": sorted(resources),
        "basis": dets.get("basis", ""), "credit_fraction": dets.get("credit_fraction", ""),
        "market_revenue": money_str(recorded), "statements_revenue": money_str(total),
        "matches": total == recorded and not missing, "missing_statements": missing, "statements": found,
    }
    if interval is not None:
        try:
            day_s, code, resource, label = interval.split(":", 3)
            day = date.fromisoformat(day_s)
        except ValueError:
            raise MarketServiceError(f"--market-interval {interval!r}: expected DAY:CODE:RESOURCE:LABEL as the "
                                     "explanation lists them, e.g. 2026-01-15:RTEIAMT:GEN1:HE15.1") from None
        out["walk"] = explain_market_line(db, cfg, iso, day, resource, code, label)
    return out


def credit_sections(db: Database, cfg: KwhubConfig, lines: list[InvoiceLine], period: str,
                    interval: str | None = None) -> dict[int, dict[str, Any]]:
    """``{line number: walk-back}`` of the ``market_credit`` lines among ``lines`` (what
    ``kwhub explain`` and the API's explain route add under ``market``)."""
    return {ln.number: explain_credit_line(db, cfg, ln, period, interval)
            for ln in lines if ln.charge_type == "market_credit"}


def render_credit_text(exp: dict[str, Any], max_rows: int = 40) -> str:
    """The walk-back as text (intervals beyond ``max_rows`` are summarised)."""
    out = [f"Market revenue behind line {exp['line']}: {exp['iso']} {', '.join(exp['resources'])} "
           f"(asset {exp['asset']}), basis {exp['basis']}, fraction {exp['credit_fraction']}",
           f"  revenue recorded {exp['market_revenue']}, from the statements {exp['statements_revenue']}"
           f" ({'matches' if exp['matches'] else 'DOES NOT MATCH'})"]
    if exp["missing_statements"]:
        out.append(f"  statements no longer stored: {', '.join(exp['missing_statements'])}")
    shown = 0
    for st in exp["statements"]:
        note = f", superseded by {st['superseded_by']}" if st["superseded_by"] else ""
        out.append(f"  statement {st['statement']} v{st['version']} ({st['kind']}, {st['market']}) of "
                   f"{st['operating_day']}, received {st['received']}: revenue {st['revenue']}{note}")
        for c in st["codes"]:
            out.append(f"    {c['code']}: {c['revenue']} over {len(c['intervals'])} intervals")
            for iv in c["intervals"]:
                if shown >= max_rows:
                    break
                out.append(f"      {iv['key']}  ISO {iv['iso_amount']} -> revenue {iv['revenue']}")
                shown += 1
    total = sum(len(c["intervals"]) for st in exp["statements"] for c in st["codes"])
    if shown < total:
        out.append(f"      ... {total - shown} more intervals (use --format json for all)")
    out.append("  walk one interval back to bid, award, meter and price: --market-interval KEY")
    return "\n".join(out)
