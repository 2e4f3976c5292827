"""Explain the kg CO2e of an invoice line: intervals, sources, factors, editions and GWP set.

:func:`explain_line_carbon` rebuilds, from what the run froze (the tenant's split, the
period's activity and factors, the line's interval mask in the statement), the emissions
of every interval and source behind the line, checks that they add up to what the line
carries, and lists the factors with their editions. :func:`render_carbon_text` prints it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np

from kwhub.core.carbon_activity import CarbonActivity
from kwhub.core.carbon_amounts import GasKg
from kwhub.core.carbon_factors import FactorSet
from kwhub.core.emissions import M_LOC, M_MKT, Intensity
from kwhub.core.explain import ExplainError
from kwhub.core.invoice import Invoice
from kwhub.core.line_emissions import unpack_mask

SHOWN_INTERVALS = 12


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def explain_line_carbon(invoice: Invoice, number: int, statement: Mapping[str, Any], activity: CarbonActivity,
                        factors: FactorSet, intensity: Intensity, split: np.ndarray) -> dict[str, Any]:
    """The carbon explanation of line ``number`` (``split``: the buyer's (S+1, N) kWh the run froze)."""
    line = next((ln for ln in invoice.lines if ln.number == number), None)
    if line is None:
        raise ExplainError(f"invoice {invoice.number} has no line {number} (lines 1..{len(invoice.lines)})")
    em = line.emissions
    if em is None:
        raise ExplainError(f"line {number} of invoice {invoice.number} ({line.description}) bills no allocated "
                           "energy, so it carries no emissions")
    section = statement.get("carbon") or {}
    gwp = factors.gwp
    w = gwp.weights()
    names = intensity.sources
    out: dict[str, Any] = {
        "invoice": invoice.number, "line": number, "description": line.description, "gwp_set": em.gwp_set,
        "kwh": str(em.kwh), "location_kg_co2e": str(em.location_kg_co2e), "market_kg_co2e": str(em.market_kg_co2e),
        "location": em.location.model_dump(mode="json"), "market": em.market.model_dump(mode="json"),
        "unknown_kwh": str(em.unknown_kwh), "activity_id": section.get("activity_id", ""),
        "factors_id": section.get("factors_id", ""), "region": factors.region,
        "factors": [f for f in factors.lineage if f"{f.get('factor_id')}@{f.get('version')}" in em.factors],
        "factor_refs": list(em.factors), "notes": list(factors.notes), "sources": [], "intervals": [],
    }
    masks = section.get("line_intervals") or []
    mask = None
    if invoice.kind == "invoice" and 0 < number <= len(masks) and masks[number - 1]:
        mask = unpack_mask(masks[number - 1], activity.n)
    for part in em.by_source:
        src = part.source
        entry: dict[str, Any] = {"source": src, "kwh": str(part.kwh), "location_kg_co2e": str(part.location_kg_co2e),
                                 "market_kg_co2e": str(part.market_kg_co2e)}
        if src in names and src != "unmetered":
            s = activity.sources[names.index(src)]
            entry.update({"kind": s.kind, "role": s.role, "fuel": s.fuel})
        out["sources"].append(entry)
    if mask is None:
        out["notes"].append("the intervals of a correction line are those of the lines it corrects; explain the "
                            "original invoice's line for them")
        return out
    cols = [names.index(p.source) for p in em.by_source if p.source in names]
    kwh = np.where(mask[None, :], split[cols], 0.0)  # (k, N)
    loc = np.einsum("kn,kgn->gn", kwh, intensity.values[M_LOC, cols])
    mkt = np.einsum("kn,kgn->gn", kwh, intensity.values[M_MKT, cols])
    check_loc, check_mkt = GasKg.of(loc.sum(axis=1)).co2e(gwp), GasKg.of(mkt.sum(axis=1)).co2e(gwp)
    out["recomputed"] = {"location_kg_co2e": str(check_loc), "market_kg_co2e": str(check_mkt),
                         "agrees": check_loc == em.location_kg_co2e and check_mkt == em.market_kg_co2e}
    idx = np.flatnonzero(mask & (kwh.sum(axis=0) != 0))
    starts = activity.starts
    loc_e, mkt_e = w @ loc, w @ mkt
    out["intervals"] = [{"start": _iso(int(starts[i])),
                         "kwh": {names[c]: repr(float(kwh[k, i])) for k, c in enumerate(cols) if kwh[k, i]},
                         "location_kg_co2e": repr(float(loc_e[i])), "market_kg_co2e": repr(float(mkt_e[i]))}
                        for i in idx.tolist()]
    out["interval_minutes"] = activity.interval_minutes
    return out


def render_carbon_text(exp: Mapping[str, Any]) -> str:
    """A readable explanation (the first intervals; ``--format json`` has all of them)."""
    lines = [f"Invoice {exp['invoice']} line {exp['line']}: {exp['description']}",
             f"  {exp['kwh']} kWh -> {exp['market_kg_co2e']} kg CO2e market-based (before certificates), "
             f"{exp['location_kg_co2e']} kg CO2e location-based; CO2e with {exp['gwp_set']} GWPs",
             f"  market per gas: CO2 {exp['market']['co2']} kg, CH4 {exp['market']['ch4']} kg, "
             f"N2O {exp['market']['n2o']} kg, CO2e as published {exp['market']['co2e_reported']} kg",
             f"  region {exp['region'] or '-'}; activity {exp['activity_id'][:16]}...; factors {exp['factors_id'][:16]}..."]
    if Decimal(exp["unknown_kwh"]):
        lines.append(f"  {exp['unknown_kwh']} kWh have no emissions figure (no factor, no fuel data or unmetered)")
    lines.append("  Sources:")
    for s in exp["sources"]:
        lines.append(f"    {s['source']:<12} {s.get('kind', ''):<12} {s['kwh']:>16} kWh  market {s['market_kg_co2e']:>14} kg"
                     f"  location {s['location_kg_co2e']:>14} kg")
    lines.append("  Factors:")
    for f in exp["factors"]:
        lines.append(f"    {f.get('factor_id')} ({f.get('version')}): {f.get('value')} {f.get('unit')} {f.get('gas')}, "
                     f"{f.get('source')} {f.get('table', '')} [{f.get('status', '')}]")
    for ref in exp["factor_refs"]:
        if ref.startswith("asset:"):
            lines.append(f"    {ref}")
    if "recomputed" in exp:
        r = exp["recomputed"]
        lines.append(f"  Recomputed from the frozen split: market {r['market_kg_co2e']} kg, location "
                     f"{r['location_kg_co2e']} kg ({'agrees' if r['agrees'] else 'DIFFERS'} with the line)")
        ivs = exp["intervals"]
        lines.append(f"  Intervals ({len(ivs)} x {exp['interval_minutes']} min with energy; first {min(len(ivs), SHOWN_INTERVALS)}):")
        for iv in ivs[:SHOWN_INTERVALS]:
            srcs = ", ".join(f"{k} {float(v):.3f}" for k, v in iv["kwh"].items())
            lines.append(f"    {iv['start']}  {srcs} kWh  market {float(iv['market_kg_co2e']):.3f} kg  "
                         f"location {float(iv['location_kg_co2e']):.3f} kg")
    for n in exp["notes"]:
        lines.append(f"  note: {n}")
    return "\n".join(lines)
