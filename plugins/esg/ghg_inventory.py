"""GHG inventory: the whole disclosure as JSON, its rows as CSV, and each tenant's hourly CFE table.

Files per party, in the output folder:

* ``ghg-<period>-<party>.json``: the :class:`~kwhub.core.disclosure.Disclosure` restricted to the
  party (rows per scope, category, gas and asset; factor lineage; runs; notes);
* ``ghg-<period>-<party>.csv``: one row per inventory row: scope, category, asset, kWh,
  MMBtu, kg CO2 / CH4 / N2O / CO2e as reported, kg CO2e under the GWP set, method,
  factors (``id@version``) and the kWh without a figure;
* ``cfe-hourly-<period>-<party>.csv`` (tenants): per UTC hour the load, on-site carbon-free
  energy, certificates, grid CFE share, the hour's CFE score and the market-based kg CO2e
  before and after hourly matching.

The check reads the files back: the JSON must parse as a Disclosure and the CSV's CO2e
must sum to the JSON's.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import ClassVar

from kwhub.core.adapters import AdapterConfig, EsgReporter
from kwhub.core.disclosure import Disclosure
from kwhub.core.hookspecs import hookimpl
from kwhub.hub.helpers.files import atomic_write, safe_name

ROW_HEADER = ["party", "scope", "category", "asset", "energy_kwh", "fuel_mmbtu", "kg_co2", "kg_ch4", "kg_n2o",
              "kg_co2e_as_reported", "kg_co2e", "gwp_set", "method", "factors", "unknown_kwh"]
HOUR_HEADER = ["hour_start_utc", "load_kwh", "onsite_cfe_kwh", "certificates_kwh", "grid_cfe_share", "cfe_score_kwh",
               "market_kg_co2e_before_certificates", "market_kg_co2e"]


class GhgInventoryConfig(AdapterConfig):
    """No settings: files go to the folder the report names."""


class GhgInventoryWriter(EsgReporter):
    """GHG inventory per scope, gas and asset with factor lineage (JSON + CSV), and hourly CFE tables."""

    type_id: ClassVar[str] = "esg.ghg_inventory"
    title: ClassVar[str] = "GHG inventory (JSON + CSV, hourly CFE)"
    format_id: ClassVar[str] = "ghg"
    Config = GhgInventoryConfig

    def write(self, disclosure: Disclosure, out_dir: Path) -> list[Path]:
        paths = []
        for inv in disclosure.parties:
            one = disclosure.only(inv.party)
            base = safe_name("ghg", disclosure.period, inv.party)
            paths.append(atomic_write(out_dir / f"{base}.json", one.model_dump_json(indent=2) + "\n"))
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n")
            w.writerow(ROW_HEADER)
            for r in inv.rows:
                w.writerow([inv.party, r.scope, r.category, r.asset, r.energy_kwh, r.fuel_mmbtu, r.kg.co2, r.kg.ch4,
                            r.kg.n2o, r.kg.co2e_reported, r.kg_co2e, disclosure.gwp_set, r.method,
                            " ".join(r.factors), r.unknown_kwh])
            paths.append(atomic_write(out_dir / f"{base}.csv", buf.getvalue()))
            if inv.hourly is not None:
                buf = io.StringIO()
                w = csv.writer(buf, lineterminator="\n")
                w.writerow(HOUR_HEADER)
                w.writerows(inv.hourly.rows())
                paths.append(atomic_write(out_dir / f"{safe_name('cfe-hourly', disclosure.period, inv.party)}.csv",
                                          buf.getvalue()))
        return paths

    def validate(self, paths: Sequence[Path]) -> list[str]:
        problems = []
        for p in paths:
            if p.suffix != ".json":
                continue
            try:
                d = Disclosure.model_validate_json(p.read_text())
            except ValueError as exc:
                problems.append(f"{p.name}: not a kwhub disclosure ({exc})")
                continue
            rows = p.with_suffix(".csv")
            if not rows.exists():
                problems.append(f"{rows.name}: missing")
                continue
            with rows.open(newline="") as fh:
                reader = csv.DictReader(fh)
                if reader.fieldnames != ROW_HEADER:
                    problems.append(f"{rows.name}: header is {reader.fieldnames}, expected {ROW_HEADER}")
                    continue
                csv_total = sum((Decimal(r["kg_co2e"]) for r in reader), Decimal(0))
            json_total = sum((r.kg_co2e for inv in d.parties for r in inv.rows), Decimal(0))
            if csv_total != json_total:
                problems.append(f"{rows.name}: kg CO2e sum {csv_total} differs from {p.name} ({json_total})")
            if json.loads(p.read_text()).get("schema_id") != d.schema_id:
                problems.append(f"{p.name}: schema_id missing")
        return problems


@hookimpl
def kwhub_register_esg_adapters(register):
    """Register the GHG inventory writer."""
    register(GhgInventoryWriter)
