"""CDP climate questionnaire, Scope 1 and 2 answers (7.6, 7.7) as a table ready to paste.

CDP takes answers in its online response system only; this writer prepares the figures:
per party ``cdp-<period>-<party>.csv`` and ``.md`` with the gross global Scope 1 (7.6) and
the gross global Scope 2, location-based and market-based (7.7), in metric tons CO2e with
three decimals (CDP's numeric fields take 0 to 99,999,999,999 with up to three decimals),
the reporting period, the GWP set and the methodology. The check re-reads the CSV (the six
answers in order, every figure within that range and precision) and requires the Markdown
table to say exactly what the CSV says, so a file cut short or edited is refused by name.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import ClassVar

from kwhub.core.adapters import AdapterConfig, EsgReporter
from kwhub.core.disclosure import Disclosure, PartyInventory
from kwhub.core.hookspecs import hookimpl
from kwhub.hub.helpers.files import atomic_write, first_difference, read_written, safe_name

MAX_VALUE = Decimal("99999999999")
PLACES = Decimal("0.001")
HEADER = ["question", "field", "value", "unit"]
FIELDS = ["Gross global Scope 1 emissions", "Gross global Scope 2 emissions, location-based",
          "Gross global Scope 2 emissions, market-based", "Reporting period", "Global warming potentials",
          "Methodology"]
METHOD = ("GHG Protocol Corporate Standard and Scope 2 Guidance; emissions follow the settled interval allocation "
          "of the campus (kwhub)")


class CdpConfig(AdapterConfig):
    """No settings."""


def answers(disclosure: Disclosure, inv: PartyInventory) -> list[list[str]]:
    """The rows of one party's table."""
    def t(v: Decimal) -> str:
        return str((v / 1000).quantize(PLACES))

    return [
        ["7.6", "Gross global Scope 1 emissions", t(inv.kg_co2e("1")), "metric tons CO2e"],
        ["7.7", "Gross global Scope 2 emissions, location-based", t(inv.kg_co2e("2", "location")), "metric tons CO2e"],
        ["7.7", "Gross global Scope 2 emissions, market-based", t(inv.kg_co2e("2", "market")), "metric tons CO2e"],
        ["7.6/7.7", "Reporting period", f"{disclosure.start.isoformat()} to {disclosure.end.isoformat()}", ""],
        ["7.6/7.7", "Global warming potentials", f"IPCC {disclosure.gwp_set}, 100-year", ""],
        ["7.6/7.7", "Methodology", METHOD, ""],
    ]


class CdpWriter(EsgReporter):
    """CDP climate questionnaire 7.6 / 7.7 answers (Scope 1, Scope 2 LBM and MBM) as CSV and Markdown."""

    type_id: ClassVar[str] = "esg.cdp"
    title: ClassVar[str] = "CDP 7.6 / 7.7 Scope 1 and 2 answers"
    format_id: ClassVar[str] = "cdp"
    Config = CdpConfig

    def write(self, disclosure: Disclosure, out_dir: Path) -> list[Path]:
        paths = []
        for inv in disclosure.parties:
            rows = answers(disclosure, inv)
            base = safe_name("cdp", disclosure.period, inv.party)
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n")
            w.writerow(HEADER)
            w.writerows(rows)
            paths.append(atomic_write(out_dir / f"{base}.csv", buf.getvalue()))
            title = f"# CDP climate questionnaire: {inv.name or inv.party}, {disclosure.period}"
            paths.append(atomic_write(out_dir / f"{base}.md", _markdown(title, rows)))
        return paths

    def validate(self, paths: Sequence[Path]) -> list[str]:
        """Each CSV has the six answers with figures CDP takes; each Markdown table says what its CSV says."""
        problems = []
        for p in paths:
            text, problem = read_written(p)
            if problem:
                problems.append(problem)
            elif p.suffix == ".csv":
                problems += _csv_problems(p, text or "")
        for p in (p for p in paths if p.suffix == ".md"):
            text, problem = read_written(p)
            table, csv_problem = read_written(p.with_suffix(".csv"))
            if problem or csv_problem or table is None or text is None:
                continue  # already reported
            rows = list(csv.reader(io.StringIO(table)))[1:]
            title = text.split("\n", 1)[0]
            expected = _markdown(title, rows)
            if not title.startswith("# CDP climate questionnaire: ") or text != expected:
                problems.append(f"{p.name}: {first_difference(text, expected)} differs from "
                                f"{p.with_suffix('.csv').name} (cut or edited); write the disclosure again")
        return list(dict.fromkeys(problems))


def _markdown(title: str, rows: list[list[str]]) -> str:
    md = [title, "", "| Question | Field | Value | Unit |", "| --- | --- | ---: | --- |"]
    md += [f"| {' | '.join(r)} |" for r in rows]
    return "\n".join(md) + "\n"


def _csv_problems(p: Path, text: str) -> list[str]:
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or rows[0] != HEADER:
        return [f"{p.name} line 1: header must be {HEADER}"]
    problems = []
    if [r[1] if len(r) > 1 else "" for r in rows[1:]] != FIELDS:
        problems.append(f"{p.name}: the answers are not the {len(FIELDS)} of 7.6/7.7 in order ({', '.join(FIELDS)}); "
                        "cut or edited? write the disclosure again")
    for n, row in enumerate(rows[1:], start=2):
        if len(row) != len(HEADER):
            problems.append(f"{p.name} line {n}: {len(row)} fields, expected {len(HEADER)}")
            continue
        q, field, value, unit = row
        if unit != "metric tons CO2e":
            continue
        try:
            v = Decimal(value)
        except InvalidOperation:
            problems.append(f"{p.name} line {n}: {field}: {value!r} is not a number")
            continue
        if not Decimal(0) <= v <= MAX_VALUE:
            problems.append(f"{p.name} line {n}: {field} ({q}): {v} is outside 0..{MAX_VALUE}")
        if v != v.quantize(PLACES):
            problems.append(f"{p.name} line {n}: {field} ({q}): more than three decimals")
    return problems


@hookimpl
def kwhub_register_esg_adapters(register):
    """Register the CDP writer."""
    register(CdpWriter)
