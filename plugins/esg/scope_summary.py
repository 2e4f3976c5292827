"""Scope 1 / Scope 2 summary writer: one JSON file and one CSV table per period."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path
from typing import Any, ClassVar

from kwhub.core.adapters import AdapterConfig, CheckResult, EsgReporter, FailureKind
from kwhub.core.emissions import EmissionsSummary
from kwhub.core.hookspecs import hookimpl


class ScopeSummaryConfig(AdapterConfig):
    """Where the summary goes (relative paths are under the hub's output directory)."""

    folder: str = "emissions"


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", newline="") as fh:
        fh.write(text)
    os.replace(tmp, path)


class ScopeSummaryWriter(EsgReporter):
    """Writes a Scope 1 / Scope 2 (location- and market-based) summary with tenant shares."""

    type_id: ClassVar[str] = "esg.scope_summary"
    title: ClassVar[str] = "Scope 1/2 summary (JSON + CSV)"
    capabilities: ClassVar[frozenset[str]] = frozenset({"summary"})
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

    def write(self, summary: Any, out_dir: Path) -> list[Path]:
        """Write ``emissions-<period>.json`` and ``emissions-<period>.csv``."""
        assert isinstance(summary, EmissionsSummary)
        folder = self.folder(out_dir)
        folder.mkdir(parents=True, exist_ok=True)
        data = summary.as_dict()
        json_path = folder / f"emissions-{summary.period}.json"
        _atomic_write(json_path, json.dumps(data, indent=2, sort_keys=True) + "\n")
        csv_path = folder / f"emissions-{summary.period}.csv"
        rows = [("row", "scope", "energy_mwh", "tco2e", "note")]
        for s in data["sources"]:  # type: ignore[union-attr]
            rows.append((s["source"], 1, s["energy_mwh"], s["tco2e"], s["method"]))
        rows.append(("grid (location-based)", 2, "", data["scope2_location_tco2e"], "grid-average factor"))
        rows.append(("grid (market-based)", 2, "", data["scope2_market_tco2e"], "contractual / residual mix"))
        for tenant, d in data["tenants"].items():  # type: ignore[union-attr]
            rows.append((f"tenant {tenant}", "1+2(loc)", d["energy_mwh"],
                         round(d["scope1_tco2e"] + d["scope2_location_tco2e"], 6), "allocated share"))
        import io

        buf = io.StringIO()
        csv.writer(buf).writerows(rows)
        _atomic_write(csv_path, buf.getvalue())
        return [json_path, csv_path]


@hookimpl
def kwhub_register_esg_adapters(register):
    """Register the Scope 1/2 summary writer."""
    register(ScopeSummaryWriter)
