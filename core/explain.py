"""Explain an invoice line so that an auditor can re-derive its amount.

:func:`explain_line` gathers, for one line of an issued document, everything that went
into it: the arithmetic (quantity x unit price, rounded by the contract's policy), the
bill determinants, the number and UTC span of the intervals, the prices used, the
allocation share of the buyer, and the data it was computed from (channel-day versions
and content hashes, plus the run statement's hash). :func:`render_text` prints it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from kwhub.core.invoice import Invoice, InvoiceLine
from kwhub.core.money import MoneyPolicy, money_str
from kwhub.core.settlement import InputRef


class ExplainError(ValueError):
    """The requested line does not exist."""


def _line(invoice: Invoice, number: int) -> InvoiceLine:
    for ln in invoice.lines:
        if ln.number == number:
            return ln
    raise ExplainError(f"invoice {invoice.number} has no line {number} (lines 1..{len(invoice.lines)})")


def explain_line(
    invoice: Invoice,
    number: int,
    run: Mapping[str, Any],
    inputs: Sequence[InputRef],
    allocation_rows: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The explanation of line ``number`` as plain JSON-able data.

    ``run`` is the ``settlement_run`` row with its parsed statement under
    ``statement_json``; ``inputs`` its ``run_input`` rows.
    """
    line = _line(invoice, number)
    st = run["statement_json"]
    c = st["contract"]
    policy = MoneyPolicy(currency=c["currency"], places=c["amount_places"], rounding=c["rounding"])
    product = line.quantity * line.unit_price
    rounded = policy.amount(product)
    dets = dict(line.determinants)
    prices = {k: v for k, v in dets.items() if "price" in k or k.startswith("escalation") or k == "contract_year"}
    by_channel: dict[str, dict[str, Any]] = {}
    for ref in inputs:
        entry = by_channel.setdefault(ref.channel_id, {"days": 0, "layers": set(), "versions": set(), "rows": []})
        entry["days"] += 1
        entry["layers"].add(ref.layer)
        entry["versions"].add(ref.version)
        entry["rows"].append({"day": ref.day.isoformat(), "layer": ref.layer, "version": ref.version,
                              "content_hash": ref.content_hash})
    data = {
        ch: {"days": e["days"], "layers": sorted(e["layers"]), "versions": sorted(e["versions"]), "rows": e["rows"]}
        for ch, e in sorted(by_channel.items())
    }
    alloc = dict(st.get("allocation") or {})
    checks = run.get("checks")
    checks = json.loads(checks) if isinstance(checks, str) else list(checks or [])
    zeroed = int(st["inputs"].get("missing_intervals", 0))
    energy = st.get("energy") or {}
    attribution = _line_attribution(st, line)
    share = None
    if line.source_asset and isinstance(alloc.get("sources"), dict):
        share = alloc["sources"].get(line.source_asset)
    return {
        "invoice": {"id": invoice.id, "number": invoice.number, "kind": invoice.kind, "currency": invoice.currency,
                    "references": [r.number for r in invoice.references]},
        "line": json_line(line),
        "arithmetic": {
            "quantity": money_str(line.quantity), "unit_price": money_str(line.unit_price),
            "product": money_str(product), "rounding": policy.rounding, "places": policy.amount_places,
            "rounded": money_str(rounded), "amount": money_str(line.amount), "matches": rounded == line.amount,
        },
        "determinants": dets,
        "intervals": {"count": int(dets.get("intervals", st["span"]["intervals"])),
                      "span": dets.get("span", f"{st['span']['start']}/{st['span']['end']}"),
                      "interval_minutes": st["span"]["interval_minutes"],
                      "period_intervals": st["span"]["intervals"]},
        "prices": prices,
        "allocation": {"method": alloc.get("method"), "tenant": alloc.get("tenant"),
                       "loss_factor": alloc.get("loss_factor"), "source": line.source_asset or None,
                       "source_share": share, "sources": alloc.get("sources", {}),
                       "stored_split": [{"tenant": r["tenant"], "source": r["source"], "kwh": r["kwh"],
                                         "loss_kwh": r["loss_kwh"], "intervals": r["intervals"]}
                                        for r in allocation_rows]},
        "run": {"id": run["id"], "version_kind": run["version_kind"], "seq": run["seq"], "layer": run["layer"],
                "statement_hash": run["statement_hash"], "stale": bool(run["stale"]),
                "previous_run": st["run"].get("previous_run"), "status": run.get("status", "")},
        "review": {"status": run.get("status", ""), "checks": checks},
        "missing": {"zeroed_intervals": zeroed, "policy": st["inputs"].get("missing_policy", ""),
                    "note": (f"{zeroed} intervals without data were counted as 0 kWh (settlement missing = zero)"
                             if zeroed else "")},
        "energy": {"basis": energy.get("basis"), "component_sources": (energy.get("claims") or {}).get(line.component_id),
                   "sources_kwh": attribution},
        "data": {"channel_days": len(inputs), "inputs_digest": st["inputs"]["digest"], "channels": data},
        "terms": line_terms(st, line),
    }


def line_terms(statement: Mapping[str, Any], line: InvoiceLine) -> dict[str, Any]:
    """The contract version whose terms priced ``line`` (from the run's ``terms`` record):
    the line's ``terms_version`` determinant, else the run's only version."""
    versions = list((statement.get("terms") or {}).get("versions") or [])
    name = line.determinants.get("terms_version")
    used = [v for v in versions if v["name"] == name] if name else versions if len(versions) == 1 else []
    if not used:
        return {"version": name, "recorded": bool(versions)}
    v = used[0]
    return {"version": v["name"], "recorded": True, "effective": v.get("effective"), "first_day": v["first_day"],
            "last_day": v["last_day"], "terms_hash": v["terms_hash"]}


def _line_attribution(statement: Mapping[str, Any], line: InvoiceLine) -> dict[str, str]:
    """kWh by source of the full line behind ``line`` (the run's ``attribution``), if any."""
    pairs = list(zip(statement.get("lines", []), statement.get("attribution", []), strict=False))
    for description in (line.description, line.description.rsplit(" (", 1)[0], line.description.split(" (")[0]):
        for full, attr in pairs:
            if (full["component_id"], full["source_asset"], full["description"]) == \
                    (line.component_id, line.source_asset, description):
                return dict(attr)
    return {}


def json_line(line: InvoiceLine) -> dict[str, Any]:
    """A line with exact decimal strings."""
    return {
        "number": line.number, "description": line.description, "charge_type": line.charge_type,
        "component_id": line.component_id, "source_asset": line.source_asset,
        "quantity": money_str(line.quantity), "unit": line.unit, "unit_price": money_str(line.unit_price),
        "amount": money_str(line.amount), "tax_category": line.tax_category, "tax_percent": money_str(line.tax_percent),
        "determinants": dict(line.determinants),
    }


def _shown(value: Any) -> str:
    """A value as text for people: ``-`` for nothing (never Python's ``None``)."""
    return "-" if value is None else str(value)


def render_text(exp: Mapping[str, Any], max_rows: int = 40) -> str:
    """A readable explanation (channel-day rows beyond ``max_rows`` are summarised)."""
    inv, ln, ar = exp["invoice"], exp["line"], exp["arithmetic"]
    out = [
        f"Invoice {inv['number']} ({inv['kind']}, {inv['currency']})"
        + (f", references {', '.join(inv['references'])}" if inv["references"] else ""),
        f"Line {ln['number']}: {ln['description']}  [{ln['charge_type']}, component {_shown(ln['component_id'])}]",
        f"  {ar['quantity']} {ln['unit']} x {ar['unit_price']} = {ar['product']}"
        f" -> rounded {ar['rounding']} to {ar['places']} places = {ar['rounded']}"
        f" ({'matches' if ar['matches'] else 'DOES NOT MATCH'} amount {ar['amount']})",
        f"Intervals: {exp['intervals']['count']} x {exp['intervals']['interval_minutes']} min over {exp['intervals']['span']}",
        "Determinants:",
        *[f"  {k} = {_shown(v)}" for k, v in sorted(exp["determinants"].items())],
        "Prices:",
        *([f"  {k} = {_shown(v)}" for k, v in sorted(exp["prices"].items())] or ["  (none)"]),
    ]
    tv = exp.get("terms") or {}
    if tv.get("first_day"):
        out.append(f"Terms: contract version {tv['version']}, in force {tv['first_day']} to {tv['last_day']} "
                   f"in this period, terms sha256 {tv['terms_hash']}")
    elif tv.get("version"):
        out.append(f"Terms: contract version {tv['version']}")
    else:
        out.append("Terms: not recorded (the run was settled before contract versions were recorded)")
    al = exp["allocation"]
    out.append(f"Allocation: method {_shown(al['method'])}, tenant {_shown(al['tenant'])}, "
               f"loss factor {_shown(al['loss_factor'])}")
    for src, info in sorted((al.get("sources") or {}).items()):
        mark = " <- this line" if src == al["source"] else ""
        out.append(f"  {src}: {_shown(info.get('kwh'))} kWh, share of source {_shown(info.get('share_of_source'))}{mark}")
    en = exp.get("energy") or {}
    if en.get("sources_kwh"):
        out.append("Energy by source: " + ", ".join(f"{s} {k} kWh" for s, k in sorted(en["sources_kwh"].items())))
    miss = exp.get("missing") or {}
    if miss.get("note"):
        out.append(f"Note: {miss['note']}")
    run = exp["run"]
    out.append(f"Run {run['id']} ({run.get('status') or 'issued'}: {run['version_kind']} #{run['seq']}, "
               f"layer {_shown(run['layer'])}, {'STALE' if run['stale'] else 'current'}), "
               f"statement sha256 {_shown(run['statement_hash'])}")
    for c in (exp.get("review") or {}).get("checks", []):
        out.append(f"  check {c['check']}: {'pass' if c['passed'] else 'FAIL'} - {c['message']}")
    if run["previous_run"]:
        out.append(f"  billed as the difference to run {run['previous_run']}")
    data = exp["data"]
    out.append(f"Data: {data['channel_days']} channel-days, inputs digest {data['inputs_digest']}")
    shown = 0
    for ch, info in data["channels"].items():
        out.append(f"  {ch}: {info['days']} days, layers {','.join(info['layers'])}, versions {info['versions']}")
        for row in info["rows"]:
            if shown >= max_rows:
                break
            out.append(f"    {row['day']} {row['layer']} v{row['version']} {row['content_hash']}")
            shown += 1
    if shown < data["channel_days"]:
        out.append(f"  ... {data['channel_days'] - shown} more rows (use --format json for all)")
    return "\n".join(out)

