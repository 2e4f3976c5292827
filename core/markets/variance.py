"""Variance: shadow settlement minus the ISO statement, per code and interval, with a cause.

A line outside the tolerance gets a cause:

* ``price``: the ISO's price determinant differs from the price kwhub used;
* ``quantity``: a quantity determinant (metered MWh, award) differs;
* ``timing``: one side has the line in another interval (the amount matches a
  neighbouring interval, e.g. a repeated hour labelled as the wrong one), or only one
  side has the interval at all;
* ``formula``: prices and quantities agree and the amounts still differ;
* ``undetermined``: the ISO published no determinants to tell the causes apart.

A price correction is not a variance: the shadow run uses the price version the
statement version was settled on (:mod:`kwhub.core.markets.statements` shows the correction as
deltas between versions).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np

from kwhub.core.markets.fixed import cents_decimal, mwh_decimal, price_decimal
from kwhub.core.markets.models import Statement, StatementLine, VarianceLine
from kwhub.core.markets.shadow import ShadowResult
from kwhub.core.markets.statements import index_lines


@dataclass
class CodeSummary:
    """One code's totals in a variance report."""

    code: str
    lines: int = 0
    shadow: Decimal = Decimal("0.00")
    iso: Decimal = Decimal("0.00")
    outside: int = 0

    @property
    def variance(self) -> Decimal:
        return self.shadow - self.iso


@dataclass
class VarianceReport:
    """Every line outside the tolerance, and per-code totals."""

    iso: str
    statement_id: str
    tolerance: Decimal
    lines: list[VarianceLine] = field(default_factory=list)
    codes: dict[str, CodeSummary] = field(default_factory=dict)
    inputs_sha256: str = ""
    price_versions: dict[str, int] = field(default_factory=dict)

    @property
    def total_variance(self) -> Decimal:
        return sum((c.variance for c in self.codes.values()), Decimal("0.00"))


def _cause(ours: dict[str, Decimal], theirs: dict[str, Decimal], price_name: str) -> tuple[str, str]:
    if price_name in theirs and price_name in ours and theirs[price_name] != ours[price_name]:
        return "price", f"{price_name} ISO {theirs[price_name]} vs kwhub {ours[price_name]}"
    diffs = [f"{k} ISO {theirs[k]} vs kwhub {ours[k]}" for k in sorted(theirs)
             if k != price_name and k in ours and theirs[k] != ours[k]]
    if diffs:
        return "quantity", "; ".join(diffs)
    common = [k for k in theirs if k in ours]
    if common:
        return "formula", "determinants agree (" + ", ".join(sorted(common)) + ") but the amounts differ"
    return "undetermined", "the ISO published no billing determinants for this line"


def variance_report(shadow: ShadowResult, statement: Statement, tolerance: Decimal = Decimal("0.00"),
                    labels: dict[tuple[int, int], str] | None = None) -> VarianceReport:
    """Compare ``shadow`` with ``statement`` for the codes and resources both cover.

    ``tolerance`` is the absolute difference per line that still counts as equal;
    ``labels`` maps (interval minutes, UTC start) to the ISO's label of that interval
    (for display; a statement line's own label wins).
    """
    labels = labels or {}
    report = VarianceReport(shadow.iso, statement.statement_id, tolerance, inputs_sha256=shadow.inputs_sha256,
                            price_versions=dict(shadow.price_versions))
    theirs_of: dict[tuple[str, str], dict[int, StatementLine]] = {}  # (code, resource) -> start -> line
    for (code, res, start), ln in index_lines(statement.lines).items():
        theirs_of.setdefault((code, res), {})[start] = ln
    for code, cl in shadow.codes.items():
        summary = report.codes.setdefault(code, CodeSummary(code))
        step = cl.code.minutes * 60
        pos = {int(s): i for i, s in enumerate(cl.starts.tolist())}
        missing_of: dict[str, dict[int, str]] = {}  # resource -> start -> why kwhub has no amount
        for rr, s, why in cl.missing:
            missing_of.setdefault(rr, {})[s] = why
        for r, res in enumerate(cl.resources):
            theirs_by_start = theirs_of.get((code, res))
            if not theirs_by_start:
                continue  # the statement does not settle this code for this resource
            done = np.flatnonzero(cl.ok[r])
            ours_amt = dict(zip(cl.starts[done].tolist(), map(cents_decimal, cl.amount_cents[r, done].tolist()),
                                strict=True))
            missing = missing_of.get(res, {})
            for start in sorted(set(ours_amt) | set(theirs_by_start)):
                mine = ours_amt.get(start)
                line = theirs_by_start.get(start)
                theirs = line.amount if line is not None else None
                summary.lines += 1
                summary.shadow += mine or 0
                summary.iso += theirs or 0
                if mine is not None and theirs is not None and abs(mine - theirs) <= tolerance:
                    continue
                summary.outside += 1
                label = (line.label if line is not None and line.label else labels.get((cl.code.minutes, start))) or \
                    datetime.fromtimestamp(start, tz=UTC).isoformat()
                if mine is None or theirs is None:
                    other = theirs if mine is None else mine
                    near = [s for s in (start - step, start + step)
                            if (ours_amt.get(s) if mine is None else (theirs_by_start[s].amount
                                                                      if s in theirs_by_start else None)) == other]
                    if near:
                        cause, detail = "timing", f"the amount matches the {'ISO' if mine is not None else 'kwhub'} " \
                            f"line of the neighbouring interval"
                    elif mine is None:
                        cause, detail = ("timing", "only the ISO has this interval") if start not in missing else \
                            ("undetermined", f"kwhub has no amount: {missing[start]}")
                    else:
                        cause, detail = "timing", "only kwhub has this interval"
                else:
                    i = pos[start]
                    ours_det = {k: mwh_decimal(int(v[r, i])) for k, v in cl.quantities.items()}
                    if cl.price_name:
                        ours_det[cl.price_name] = price_decimal(int(cl.price_u[r, i]))
                    cause, detail = _cause(ours_det, dict(line.determinants) if line is not None else {},
                                           cl.price_name)
                    if cause == "undetermined":
                        near = [s for s in (start - step, start + step)
                                if s in theirs_by_start and theirs_by_start[s].amount == mine]
                        if near:
                            cause, detail = "timing", "kwhub's amount is on the ISO line of a neighbouring interval"
                report.lines.append(VarianceLine(code=code, resource=res, start=datetime.fromtimestamp(start, tz=UTC),
                                                 label=label, shadow=mine, iso=theirs, cause=cause,  # type: ignore[arg-type]
                                                 detail=detail))
    return report
