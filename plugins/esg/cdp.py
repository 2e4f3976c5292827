"""CDP climate questionnaire, Scope 1 and 2 answers (7.6, 7.7) as a table ready to paste.

CDP takes answers in its online response system only; this writer prepares the figures:
per party ``cdp-<period>-<party>.csv`` and ``.md`` with the gross global Scope 1 (7.6) and
the gross global Scope 2, location-based and market-based (7.7), in metric tons CO2e with
three decimals (CDP's numeric fields take 0 to 99,999,999,999 with up to three decimals),
the reporting period, the GWP set and the methodology. The check re-reads the CSV and
checks every figure against that range and precision.
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
from kwhub.hub.helpers.files import atomic_write, safe_name

MAX_VALUE = Decimal("99999999999")
PLACES = Decimal("0.001")
HEADER = ["question", "field", "value", "unit"]
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
            md = [f"# CDP climate questionnaire: {inv.name or inv.party}, {disclosure.period}", "",
                  "| Question | Field | Value | Unit |", "| --- | --- | ---: | --- |"]
            md += [f"| {q} | {f} | {v} | {u} |" for q, f, v, u in rows]
            paths.append(atomic_write(out_dir / f"{base}.md", "\n".join(md) + "\n"))
        return paths

    def validate(self, paths: Sequence[Path]) -> list[str]:
        problems = []
        for p in (p for p in paths if p.suffix == ".csv"):
            with p.open(newline="") as fh:
                reader = csv.reader(fh)
                if next(reader, None) != HEADER:
                    problems.append(f"{p.name}: header must be {HEADER}")
                    continue
                for n, (q, field, value, unit) in enumerate(reader, start=2):
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
