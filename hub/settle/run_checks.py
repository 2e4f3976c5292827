"""The review gate's view of a computed run: what its plausibility checks compare with.

The previous period's run of the contract (its total and mean kWh per channel), the
version a later run corrects, and the settled runs whose contract terms have changed
since; the checks themselves are pure (:mod:`kwhub.core.review`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from kwhub.core.campus import Contract
from kwhub.core.contract_versions import changed_since, terms_for_period
from kwhub.core.review import CheckResult, ReviewInputs, effective_checks, run_checks
from kwhub.core.settlement import RunComputation, SettlementOptions, unbilled_rows
from kwhub.core.timeline import billing_period, previous_periods
from kwhub.core.versions import kind_order
from kwhub.hub.settle.runs_read import existing_runs, existing_runs_of, get_run
from kwhub.hub.store import Database


@dataclass(frozen=True)
class PeriodFacts:
    """What the review gate compares with from a contract's run of the previous period (and,
    when that run is settled, the terms it used)."""

    period: str
    line_total: Decimal
    mean_kwh: dict[str, float]
    run_id: str = ""
    status: str = ""
    terms: dict[str, Any] | None = None

    @classmethod
    def of(cls, statement: dict[str, Any], status: str = "") -> PeriodFacts:
        means = {}
        for ch, st in (statement.get("channels") or {}).items():
            measured = int(st["intervals"]) - int(st["missing"])
            if measured:
                means[ch] = float(st["kwh"]) / measured
        return cls(statement["run"]["period"], Decimal(statement["totals"]["line_total"]), means,
                   statement["run"]["id"], status, statement.get("terms"))


def latest_settled(db: Database, runs: Sequence[dict[str, Any]]) -> PeriodFacts | None:
    """The latest settled (issued or no-change) run among a period's ``runs``, if any."""
    settled = [r for r in runs if r["status"] in ("issued", "no_change")]
    if not settled:
        return None
    last = max(settled, key=lambda r: (kind_order(r["version_kind"]), int(r["seq"])))
    return PeriodFacts.of(get_run(db, last["id"])["statement_json"], last["status"])


def _terms_changes(contract: Contract, comp: RunComputation, settled: PeriodFacts | None,
                   previous: PeriodFacts | None) -> list[str]:
    """Settled runs of this period and the previous one whose terms are not those in force now."""
    out = []
    if settled is not None and comp.terms is not None:
        msg = changed_since(settled.run_id, settled.status, settled.terms, comp.terms)
        if msg:
            out.append(msg)
    if previous is not None and previous.status in ("issued", "no_change") and previous.terms:
        now = terms_for_period(contract, billing_period(previous.period, contract.timezone))
        msg = changed_since(previous.run_id, previous.status, previous.terms, now, previous.period)
        if msg:
            out.append(msg)
    return out


def _previous_facts(db: Database, contract_id: str, label: str,
                    cache: dict[tuple[str, str], PeriodFacts | None] | None) -> PeriodFacts | None:
    prev = previous_periods(label, 1)[0] if _is_month(label) else None
    if prev is None:
        return None
    if cache is not None and (contract_id, prev) in cache:
        return cache[(contract_id, prev)]
    runs = [r for r in existing_runs(db, contract_id, prev) if r["status"] not in ("rejected", "superseded")]
    facts = PeriodFacts.of(get_run(db, runs[-1]["id"])["statement_json"], runs[-1]["status"]) if runs else None
    if cache is not None:
        cache[(contract_id, prev)] = facts
    return facts


def prefetch_previous_facts(db: Database, contract_ids: Sequence[str], label: str,
                            cache: dict[tuple[str, str], PeriodFacts | None]) -> None:
    """Fill ``cache`` with the previous period's facts of the contracts not in it yet, with one
    query for all of them (what :func:`review_run` would read one contract at a time)."""
    prev = previous_periods(label, 1)[0] if _is_month(label) else None
    wanted = [c for c in contract_ids if (c, prev) not in cache] if prev is not None else []
    if not wanted:
        return
    with db.read_connection() as conn:
        found = existing_runs_of(conn, wanted, prev)
        for cid in wanted:
            runs = [r for r in found.get(cid, []) if r["status"] not in ("rejected", "superseded")]
            cache[(cid, prev)] = (PeriodFacts.of(get_run(conn, runs[-1]["id"])["statement_json"], runs[-1]["status"])
                                  if runs else None)


def _is_month(label: str) -> bool:
    try:
        y, m = (int(x) for x in label.split("-"))
    except ValueError:
        return False
    return 1 <= m <= 12 and y > 0


def review_run(db: Database, contract: Contract, comp: RunComputation, options: SettlementOptions,
            now: datetime | None, cache: dict[tuple[str, str], PeriodFacts | None] | None,
            previous_version: PeriodFacts | None = None,
            settled: PeriodFacts | None = None) -> list[CheckResult]:
    """The plausibility checks of a computed run (see :mod:`kwhub.core.review`).

    A first version moves against the previous period; a later version against the
    version it corrects (the move between periods was reviewed with the first one).
    ``settled``: the period's latest settled run, whose terms the run's are compared with
    (as are those of the previous period's settled run).
    """
    facts = _previous_facts(db, contract.id, comp.period.label, cache)
    terms_changes = _terms_changes(contract, comp, settled, facts)
    if previous_version is not None:
        facts = PeriodFacts(f"{comp.period.label} as settled before", previous_version.line_total,
                             previous_version.mean_kwh)
    lines = comp.lines
    inputs = ReviewInputs(
        period_label=comp.period.label, period_end_epoch=comp.period.span.end_epoch,
        now_epoch=int((now or datetime.now(UTC)).timestamp()), channels=comp.channels,
        line_quantities=[(ln.description, ln.charge_type, ln.quantity) for ln in lines],
        line_total=sum((ln.amount for ln in lines), Decimal("0")),
        previous_total=facts.line_total if facts else None, previous_period=facts.period if facts else "",
        previous_mean_kwh=facts.mean_kwh if facts else {}, unbilled=unbilled_rows(comp), currency=contract.currency,
        terms_changes=terms_changes,
    )
    return run_checks(inputs, effective_checks(options.review_checks, contract.review.checks))


def checks_of(row: dict[str, Any]) -> list[CheckResult]:
    return [CheckResult(c["check"], bool(c["passed"]), c["message"]) for c in json.loads(row.get("checks") or "[]")]


def review_policy(contract: Contract, options: SettlementOptions) -> str:
    """``auto`` or ``manual``: the contract's own policy, else the hub's."""
    return contract.review.policy or options.review_policy
