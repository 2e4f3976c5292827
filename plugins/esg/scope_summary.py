"""Scope 1 / Scope 2 summary: one small JSON and CSV per party and period (t CO2e).

The summary reads the same :class:`~kwhub.core.disclosure.Disclosure` as every ESG writer: Scope 1,
Scope 2 location- and market-based and Scope 3 category 3 (the part kwhub computes), in
tonnes CO2e under the disclosure's GWP set, with the energy behind each tenant's figures.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from kwhub.core.adapters import AdapterConfig, CheckResult, EsgReporter, FailureKind
from kwhub.core.disclosure import Disclosure
from kwhub.core.hookspecs import hookimpl
from kwhub.hub.helpers.files import (
    atomic_write,
    check_written,
    read_written,
    safe_name,
)


class ScopeSummaryConfig(AdapterConfig):
    """Where the summary goes (relative paths are under the folder the report is written to)."""

    folder: str = "emissions"


class ScopeSummaryWriter(EsgReporter):
    """Scope 1 / Scope 2 (location- and market-based) / Scope 3 cat. 3 summary per party (JSON + CSV)."""

    type_id: ClassVar[str] = "esg.scope_summary"
    title: ClassVar[str] = "Scope 1/2 summary (JSON + CSV)"
    format_id: ClassVar[str] = "summary"
    Config = ScopeSummaryConfig
    config: ScopeSummaryConfig

    def folder(self, out_dir: Path | None = None) -> Path:
        p = Path(self.config.folder)
        return p if p.is_absolute() else (out_dir or self.context.work_dir) / p

    def check(self) -> CheckResult:
        folder = self.folder()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return CheckResult.failure(FailureKind.CONFIGURATION, f"cannot create {folder}: {exc.strerror}")
        if not os.access(folder, os.W_OK):
            return CheckResult.failure(FailureKind.CONFIGURATION, f"{folder} is not writable")
        return CheckResult.success(f"{folder} is writable")

    def write(self, disclosure: Disclosure, out_dir: Path) -> list[Path]:
        """Write ``emissions-<period>.json`` and ``emissions-<period>.csv`` (every party of the disclosure)."""
        folder = self.folder(out_dir)
        rows = disclosure.summary()
        name = safe_name("emissions", disclosure.period, *(p.party for p in disclosure.parties if len(rows) == 1))
        data = {"period": disclosure.period, "gwp_set": disclosure.gwp_set, "region": disclosure.region,
                "parties": rows, "notes": disclosure.notes}
        paths = [atomic_write(folder / f"{name}.json", json.dumps(data, indent=2, sort_keys=True) + "\n")]
        paths.append(atomic_write(folder / f"{name}.csv", _csv_text(rows)))
        return paths

    def validate(self, paths: Sequence[Path]) -> list[str]:
        """Each JSON parses and has every party's figures; each CSV is complete and says what its JSON says."""
        return check_written(paths, _read_parties, _parties_csv)


def _read_parties(p: Path, text: str) -> tuple[list[dict[str, str]] | None, list[str]]:
    try:
        parties = json.loads(text)["parties"]
    except (ValueError, KeyError, TypeError) as exc:
        return None, [f"{p.name}: not a scope summary ({exc}); write the disclosure again"]
    return parties, [f"{p.name}: party {row.get('party')} lacks {key}" for row in parties
                     for key in ("scope1_tco2e", "scope2_location_tco2e", "scope2_market_tco2e") if key not in row]


def _parties_csv(p: Path, parties: list[dict[str, str]]) -> list[tuple[Path, str | None]]:
    """The JSON sorts keys; the CSV keeps the summary's column order, read from its header."""
    rows_path = p.with_suffix(".csv")
    rows_text, problem = read_written(rows_path)
    if problem:
        return [(rows_path, None)]
    header = (rows_text or "").split("\n", 1)[0].split(",")
    columns = header if parties and set(header) == set(parties[0]) else list(parties[0]) if parties else []
    return [(rows_path, _csv_text(parties, columns))]


def _csv_text(rows: list[dict[str, str]], columns: list[str] | None = None) -> str:
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=columns or list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return buf.getvalue()


@hookimpl
def kwhub_register_esg_adapters(register):
    """Register the Scope 1/2 summary writer."""
    register(ScopeSummaryWriter)
