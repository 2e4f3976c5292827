"""California SB 253-style Scope 1 + 2 summary (the first reports cover Scope 1 and 2).

Per party ``sb253-<period>-<party>.json`` and ``.csv``: reporting entity and period, Scope 1,
Scope 2 location- and market-based in metric tons CO2e, the standard followed (GHG
Protocol), the GWP set, the consolidation approach, the emission factors with their
editions, and what is not included (Scope 3 is due later; assurance is not performed by
kwhub). CARB's portal format is not published here; the check verifies that every
required field is present, every figure is a non-negative number, and the CSV holds exactly
what the JSON says (a file cut short or edited is refused by name).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import ClassVar

from kwhub.core.adapters import AdapterConfig, EsgReporter
from kwhub.core.disclosure import Disclosure, PartyInventory
from kwhub.core.hookspecs import hookimpl
from kwhub.hub.helpers.files import (
    atomic_write,
    check_written,
    safe_name,
)

REQUIRED = ("reporting_entity", "reporting_period_start", "reporting_period_end", "scope1_tco2e",
            "scope2_location_tco2e", "scope2_market_tco2e", "standard", "gwp_set", "consolidation_approach")
FIGURES = ("scope1_tco2e", "scope2_location_tco2e", "scope2_market_tco2e", "scope1_plus_scope2_market_tco2e")
CSV_FIELDS = REQUIRED + ("scope1_plus_scope2_market_tco2e",)
T = Decimal("0.001")


class Sb253Config(AdapterConfig):
    """No settings."""


def summary(disclosure: Disclosure, inv: PartyInventory) -> dict[str, object]:
    """The summary of one party."""
    s1 = (inv.kg_co2e("1") / 1000).quantize(T)
    s2l = (inv.kg_co2e("2", "location") / 1000).quantize(T)
    s2m = (inv.kg_co2e("2", "market") / 1000).quantize(T)
    return {
        "reporting_entity": inv.name or inv.party, "party_id": inv.party,
        "reporting_period_start": disclosure.start.isoformat(), "reporting_period_end": disclosure.end.isoformat(),
        "scope1_tco2e": str(s1), "scope2_location_tco2e": str(s2l), "scope2_market_tco2e": str(s2m),
        "scope1_plus_scope2_market_tco2e": str(s1 + s2m),
        "scope1_gases_kg": inv.gases("1").model_dump(mode="json"),
        "standard": "GHG Protocol Corporate Accounting and Reporting Standard; Scope 2 Guidance (dual reporting)",
        "gwp_set": f"IPCC {disclosure.gwp_set} (100-year)", "consolidation_approach": disclosure.consolidation,
        "emission_factors": [f"{f.get('factor_id')}@{f.get('version')}" for f in disclosure.factors],
        "not_included": ["Scope 3 (reported from 2027)", "assurance (not performed by kwhub)"],
        "notes": disclosure.notes,
    }


class Sb253Writer(EsgReporter):
    """California SB 253-style Scope 1 + 2 summary (JSON + CSV)."""

    type_id: ClassVar[str] = "esg.sb253"
    title: ClassVar[str] = "California SB 253-style Scope 1 + 2 summary"
    format_id: ClassVar[str] = "sb253"
    Config = Sb253Config

    def write(self, disclosure: Disclosure, out_dir: Path) -> list[Path]:
        paths = []
        for inv in disclosure.parties:
            data = summary(disclosure, inv)
            base = safe_name("sb253", disclosure.period, inv.party)
            paths.append(atomic_write(out_dir / f"{base}.json", json.dumps(data, indent=2, sort_keys=True) + "\n"))
            paths.append(atomic_write(out_dir / f"{base}.csv", _csv_text(data)))
        return paths

    def validate(self, paths: Sequence[Path]) -> list[str]:
        """Each JSON has every required field and non-negative figures; each CSV is complete and matches its JSON."""
        return check_written(paths, _read_summary, _summary_csv)


def _read_summary(p: Path, text: str) -> tuple[dict[str, object] | None, list[str]]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        return None, [f"{p.name}: not JSON ({exc}); write the disclosure again"]
    if not isinstance(data, dict):
        return None, [f"{p.name}: not an SB 253 summary (a JSON object)"]
    problems = [f"{p.name}: {key} is missing" for key in REQUIRED if not data.get(key)]
    for key in FIGURES:
        try:
            if Decimal(str(data.get(key))) < 0:
                problems.append(f"{p.name}: {key} is negative")
        except InvalidOperation:
            problems.append(f"{p.name}: {key} {data.get(key)!r} is not a number")
    return data, problems


def _summary_csv(p: Path, data: dict[str, object]) -> list[tuple[Path, str | None]]:
    return [(p.with_suffix(".csv"), _csv_text(data) if all(k in data for k in CSV_FIELDS) else None)]


def _csv_text(data: dict[str, object]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["field", "value"])
    for key in CSV_FIELDS:
        w.writerow([key, data[key]])
    return buf.getvalue()


@hookimpl
def kwhub_register_esg_adapters(register):
    """Register the SB 253 summary writer."""
    register(Sb253Writer)
