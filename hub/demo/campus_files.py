"""The demo campus as files: its constants, one PPA per tenant, the ``kwhub.toml`` mapping,
the price files it ships (a daily gas index, day-ahead and real-time LMPs) and the late meter
restatement the demo applies. :mod:`kwhub.hub.demo.run` runs the demo on them; ``kwhub init
--example demo`` and the simulated-day test write the same files.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from kwhub.core.campus import Campus

DEMO_START = date(2026, 9, 1)
DEMO_DAYS = 61  # September and October 2026
PERIODS = ("2026-09", "2026-10")
MAIN_PERIOD = "2026-10"
CORRECTION_DAY = date(2026, 10, 14)  # the day whose hall A meter data is restated
CORRECTION_FACTOR = 1.04
SEED = 42
# A demo-only shared secret for the local webhook; real configurations use "env:NAME".
DEMO_WEBHOOK_SECRET = "kwhub-demo-not-a-secret"
THERMAL = ("gt1", "gt2", "re1", "re2", "re3", "re4", "re5", "re6")
# Demo identities (GLN endpoint with a valid GS1 check digit, US EIN); not real companies.
DEMO_IDENTITY = {
    "campus_op": ("0614141100019", "84-1100019"),
    "tenant_a": ("0614141100026", "27-1100026"),
    "tenant_b": ("0614141100033", "27-1100033"),
    "tenant_c": ("0614141100040", "27-1100040"),
}
GAS_NODE = "KEYSTONE_GEN"


def demo_contracts() -> list[dict[str, Any]]:
    """One PPA per tenant, each showing different price components.

    Every tenant is billed its allocated energy exactly once: each energy component names
    the sources it prices (or prices what the others leave), and the grid import passes
    through at cost. So the energy accounting closes with no unexplained kWh.
    """
    shared_fee = {
        "kind": "fixed_fee",
        "id": "shared_infra",
        "description": "Shared infrastructure (substation, cooling plant)",
        "total_amount": "180000.00",
        "shares": {"tenant_a": "0.25", "tenant_b": "0.35", "tenant_c": "0.40"},
    }
    grid = {"kind": "grid_pass_through", "id": "grid_import", "description": "Grid import at cost"}
    common = {"seller": "campus_op", "currency": "USD", "rounding": "half_up",
              "payment_days": 30, "start": "2026-01", "tax_percent": "6", "tax_category": "S"}
    return [
        {
            **common,
            "id": "ppa_a_gas",
            "buyer": "tenant_a",
            "components": [
                {"kind": "fuel_indexed", "id": "gas_energy", "description": "Gas-fired energy",
                 "sources": ["gas_turbine", "recip_engine"],
                 "index": "henry_hub", "heat_rate_mmbtu_per_mwh": "9.1", "adder_per_mwh": "6.50",
                 "floor_per_mwh": "25.00", "cap_per_mwh": "90.00", "missing_index": "previous"},
                {"kind": "fixed_energy", "id": "clean_energy", "description": "Solar and storage energy",
                 "price_per_mwh": "55.00"},
                grid,
                shared_fee,
            ],
        },
        {
            **common,
            "id": "ppa_b_solar",
            "buyer": "tenant_b",
            # the solar PPA's bills are watched closely: a month moving more than 3 % is held for a look
            "review": {"checks": {"movement_max_pct": "3"}},
            "components": [
                {"kind": "tou_energy", "id": "solar_tou", "description": "Solar energy", "sources": ["pv"],
                 "default_period": "off_peak", "holidays": "NERC",
                 "rules": [{"period": "on_peak", "day_types": ["weekday"], "hours": [[14, 19]]},
                           {"period": "mid_peak", "day_types": ["weekday"], "hours": [[7, 14]]}],
                 "prices": {"on_peak": "74.00", "mid_peak": "52.00", "off_peak": "38.00"}},
                {"kind": "fixed_energy", "id": "firming", "description": "Firming energy (gas and storage)",
                 "price_per_mwh": "64.00"},
                grid,
                shared_fee,
            ],
        },
        {
            **common,
            "id": "ppa_c_firm",
            "buyer": "tenant_c",
            "components": [
                {"kind": "fixed_energy", "id": "firm_energy", "description": "Firm energy",
                 "price_per_mwh": "61.00", "escalation_pct_per_year": "2.5"},
                {"kind": "demand", "id": "demand", "description": "Demand charge",
                 "price_per_kw_month": "8.75", "ratchet_pct": "90", "ratchet_months": 11},
                shared_fee,
            ],
        },
    ]


def demo_config(campus: Campus, webhook_url: str, ercot_url: str = "") -> dict[str, Any]:
    """The demo's kwhub.toml as a mapping (with the local ERCOT's market day when ``ercot_url``)."""

    def dump(models: list[Any]) -> list[dict[str, Any]]:
        return [m.model_dump(mode="json", exclude_defaults=True) for m in models]

    parties = dump(campus.parties)
    for p in parties:
        identity = DEMO_IDENTITY.get(p["id"])
        if identity is not None:  # what e-invoicing needs: tax id, Peppol endpoint, payee account
            gln, ein = identity
            p.update({"tax_id": ein, "tax_scheme": "EIN", "endpoint_id": gln, "endpoint_scheme": "0088"})
        if p["id"] == "campus_op":
            p["payment"] = {"means_code": "30", "account_number": "4400198765", "routing_number": "031000503",
                            "account_name": "Keystone Campus Operations LLC", "bank_name": "Demo Commerce Bank",
                            "remittance_text": "", "terms": "Net 30 days by ACH credit or wire"}
        if p["id"].startswith("tenant_"):
            p["buyer_reference"] = f"PO-{p['id'].upper()}-2026"
            p["delivery"] = {"routes": [{"format": "ubl", "transport": "erp_drop"},
                                        {"format": "json", "transport": "erp_webhook"},
                                        {"format": "json", "transport": "invoice_archive"}]}
    data = {
        "hub": {"name": "kwhub demo campus", "timezone": "America/New_York", "output_dir": "out"},
        "sites": dump(campus.sites),
        "parties": parties,
        "assets": dump(campus.assets),
        "channels": dump(campus.channels),
        "contracts": demo_contracts(),
        "allocation": {"method": "pro_rata", "tolerance_kwh": 1.0},
        "settlement": {"layer": "validated", "fallback_raw": True, "missing": "zero", "grid_price_per_mwh": "48.50"},
        "review": {"policy": "auto"},
        # a spike or a flat-lined meter is replaced by an estimate, so no invoice bills it
        "vee": {"groups": {"default": {"rules": {"spike": {"action": "estimate"}, "stuck": {"action": "estimate"},
                                                 "high_low": {"action": "estimate"}}}}},
        "indexes": [{"name": "henry_hub", "path": "prices/henry_hub.csv"}],
        "ownership": {
            "costs": {a: {"fuel_price_per_mmbtu": "3.10", "variable_om_per_mwh": "4.25"} for a in ("gt1", "gt2")},
        },
        "emissions": {
            "gwp_set": "AR5", "editions": {"grid_location": "eGRID2024"},
            "factors": [{"factor_id": "demo_rfce_residual_mix", "version": "demo-2026", "region": "RFCE",
                         "source": "kwhub demo: the eGRID2023 rev2 RFCE non-baseload rate stands in for a residual mix",
                         "activity": "grid_residual_mix", "gas": "co2e", "value": 1180.5, "unit": "lb/MWh",
                         "kind": "residual_mix", "status": "demo value, not a published residual mix"}],
        },
        "adapters": [
            {"type": "meters.csv", "id": "meter_csv", "config": {"profile": "kwhub"}},
            {"type": "meters.greenbutton", "id": "utility_gb", "config": {"channel": "grid.import"}},
            {"type": "markets.price_file", "id": "pjm_lmp", "config": {"path": "prices/lmp.csv"}},
            {"type": "erp.folder", "id": "erp_drop", "config": {"folder": "out/erp"}},
            {"type": "erp.folder", "id": "invoice_archive", "config": {"folder": "out/invoices"}},
            {"type": "erp.webhook", "id": "erp_webhook",
             "config": {"url": webhook_url, "secret": DEMO_WEBHOOK_SECRET}},
            {"type": "esg.scope_summary", "id": "scope_summary", "config": {"folder": "emissions"}},
        ],
    }
    if ercot_url:
        from kwhub.hub.markets.demo_day import market_config

        adapter, markets = market_config(ercot_url)
        data["adapters"].append(adapter)
        data["markets"] = markets
    return data


# ------------------------------------------------------------------------- input files


def write_index_csv(path: Path, start: date, days: int) -> Path:
    """A deterministic daily gas index (USD/MMBtu) for the demo months."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# Demo daily gas index, USD/MMBtu (deterministic, not market data)", "date,price,name"]
    for i in range(days + 1):
        d = start + timedelta(days=i)
        price = Decimal("3.05") + Decimal(str(round(0.35 * math.sin(i / 6.0) + 0.002 * i, 3)))
        lines.append(f"{d.isoformat()},{price.quantize(Decimal('0.001'))},henry_hub")
    path.write_text("\n".join(lines) + "\n")
    return path


def write_lmp_csv(path: Path, start: date, days: int) -> Path:
    """Deterministic day-ahead (hourly) and real-time (15-minute) LMPs for the campus node."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = int(datetime(start.year, start.month, start.day, 4, tzinfo=UTC).timestamp())
    rows = ["interval_start,node,market,interval_minutes,lmp"]
    hours = np.arange(days * 24)
    da = 38 + 14 * np.sin((hours % 24 - 9) / 24 * 2 * np.pi) ** 2 + 3 * np.sin(hours / 97)
    for h, p in zip(hours, da, strict=True):
        ts = datetime.fromtimestamp(t0 + int(h) * 3600, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        rows.append(f"{ts},{GAS_NODE},DA,60,{p:.2f}")
    q = np.arange(days * 96)
    rt = np.repeat(da, 4) + 6 * np.sin(q / 7.3)
    for i, p in zip(q, rt, strict=True):
        ts = datetime.fromtimestamp(t0 + int(i) * 900, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        rows.append(f"{ts},{GAS_NODE},RT,15,{p:.2f}")
    path.write_text("\n".join(rows) + "\n")
    return path


def restate_meter_files(folder: Path, channel: str, day: date, factor: float) -> list[Path]:
    """The meter vendor re-issues ``channel``'s files with one UTC day restated (a late correction).

    Every delivered copy of the channel's file is rewritten. A ``RESTATED`` note in the
    folder records the correction, so a second demo run finds it done and returns [].
    """
    note = folder / "RESTATED"
    entry = f"{channel} {day.isoformat()} x{factor}"
    if note.exists() and entry in note.read_text().splitlines():
        return []
    prefix = f"{channel},{day.isoformat()}"
    changed = []
    for path in sorted(folder.glob(f"{channel}*.csv")):
        out = []
        for line in path.read_text().splitlines():
            if line.startswith(prefix):
                parts = line.split(",")
                parts[3] = f"{float(parts[3]) * factor:.3f}"
                line = ",".join(parts)
            out.append(line)
        path.write_text("\n".join(out) + "\n")
        changed.append(path)
    with note.open("a") as fh:
        fh.write(entry + "\n")
    return changed
