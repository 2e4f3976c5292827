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

The check reads the files back: the JSON must parse as a Disclosure, and each CSV must be
complete and hold exactly the rows the JSON gives (a file cut short or edited is refused,
named with its first differing line).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
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
            paths.append(atomic_write(out_dir / f"{base}.csv", _rows_csv(disclosure, inv)))
            if inv.hourly is not None:
                paths.append(atomic_write(out_dir / _hourly_name(disclosure, inv), _hourly_csv(inv)))
        return paths

    def validate(self, paths: Sequence[Path]) -> list[str]:
        """Each JSON parses as a disclosure; the party's CSVs are complete and say what the JSON says."""
        return check_written(paths, _read_disclosure, _party_files)


def _read_disclosure(p: Path, text: str) -> tuple[Disclosure | None, list[str]]:
    try:
        d = Disclosure.model_validate_json(text)
    except ValueError as exc:
        return None, [f"{p.name}: not a kwhub disclosure ({str(exc).splitlines()[0]}); write it again"]
    return d, [] if json.loads(text or "{}").get("schema_id") == d.schema_id else [f"{p.name}: schema_id missing"]


def _party_files(p: Path, d: Disclosure) -> list[tuple[Path, str | None]]:
    out: list[tuple[Path, str | None]] = []
    for inv in d.parties:
        out.append((p.with_suffix(".csv"), _rows_csv(d, inv)))
        if inv.hourly is not None:
            out.append((p.parent / _hourly_name(d, inv), _hourly_csv(inv)))
    return out


def _hourly_name(disclosure: Disclosure, inv: PartyInventory) -> str:
    return f"{safe_name('cfe-hourly', disclosure.period, inv.party)}.csv"


def _rows_csv(disclosure: Disclosure, inv: PartyInventory) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(ROW_HEADER)
    for r in inv.rows:
        w.writerow([inv.party, r.scope, r.category, r.asset, r.energy_kwh, r.fuel_mmbtu, r.kg.co2, r.kg.ch4,
                    r.kg.n2o, r.kg.co2e_reported, r.kg_co2e, disclosure.gwp_set, r.method,
                    " ".join(r.factors), r.unknown_kwh])
    return buf.getvalue()


def _hourly_csv(inv: PartyInventory) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(HOUR_HEADER)
    if inv.hourly is not None:
        w.writerows(inv.hourly.rows())
    return buf.getvalue()


@hookimpl
def kwhub_register_esg_adapters(register):
    """Register the GHG inventory writer."""
    register(GhgInventoryWriter)
