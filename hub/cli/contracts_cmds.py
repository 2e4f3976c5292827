"""``kwhub contracts history ID``: the versions of a contract's terms (its amendments)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from kwhub.hub.cli.errors import EXIT_CONFIG, UserError
from kwhub.hub.cli.options import config_option, format_option, output_format
from kwhub.hub.cli.output import echo

contracts_app = typer.Typer(help="Contracts of kwhub.toml: the versions of their terms.", no_args_is_help=True)


def history_json(contract: Any, period: str | None = None) -> dict[str, Any]:
    """The contract and every version of its terms, with what each version changed (and, for
    ``period``, the local days each version prices in it)."""
    from kwhub.core.contract_versions import contract_versions, version_changes, versions_in_period
    from kwhub.core.timeline import billing_period

    versions = contract_versions(contract)
    out = []
    for i, v in enumerate(versions):
        item = v.as_json()
        item["changes"] = version_changes(versions[i - 1], v) if i else []
        out.append(item)
    data: dict[str, Any] = {"contract": contract.id, "seller": contract.seller, "buyer": contract.buyer,
                            "timezone": contract.timezone, "start": contract.start or None, "versions": out}
    if period:
        parts = versions_in_period(contract, billing_period(period, contract.timezone), versions=versions)
        data["period"] = {"label": period, "parts": [
            {"version": p.version.name, "first_day": p.period.first_day.isoformat(),
             "last_day": p.period.last_day.isoformat()} for p in parts]}
    return data


def history_text(data: dict[str, Any]) -> str:
    """The history as lines of plain text."""
    n = len(data["versions"])
    lines = [f"Contract {data['contract']} ({data['seller']} -> {data['buyer']}), time zone {data['timezone']}, "
             f"{n} version{'s' if n != 1 else ''}"]
    for v in data["versions"]:
        since = f"from {v['effective']}" if v["effective"] else (
            f"from the contract start {data['start']}" if data["start"] else "from the start")
        until = f"to {v['until']}" if v["until"] else "open-ended"
        lines.append(f"  {v['name']}: {since} {until}, terms sha256 {v['terms_hash'][:16]}"
                     + (f" - {v['note']}" if v["note"] else ""))
        for change in v["changes"]:
            lines.append(f"      {change}")
    if "period" in data:
        per = data["period"]
        lines.append(f"In force in {per['label']}: " + ", ".join(
            f"{p['version']} {p['first_day']} to {p['last_day']}" for p in per["parts"]))
    return "\n".join(lines)


@contracts_app.command("history")
def contracts_history(
    contract_id: str = typer.Argument(..., help="Contract id (contracts[].id in kwhub.toml)."),
    config: Path = config_option(),
    period: str = typer.Option(None, "--period", help="Also show the days each version prices in this billing "
                                                       "period (YYYY-MM)."),
    fmt: str = format_option("text", "json"),
) -> None:
    """List the versions of a contract's terms: the contract as written (v1), then each amendment
    with its effective day, the terms it changed and the hash settlement runs record."""
    from kwhub.hub.cli.common import load

    fmt = output_format(fmt, ("text", "json"))
    cfg = load(config, required=True)
    found = [k for k in cfg.campus.contracts if k.id == contract_id]
    if not found:
        known = ", ".join(k.id for k in cfg.campus.contracts) or "none"
        raise UserError(f"no contract {contract_id!r} in {cfg.source} (contracts: {known})",
                        hint="`kwhub contracts history ID` with one of the ids listed")
    from kwhub.core.timeline import TimeModelError

    try:
        data = history_json(found[0], period)
    except TimeModelError as exc:
        raise UserError(f"--period: {exc}", exit_code=EXIT_CONFIG) from None
    echo(json.dumps(data, indent=2) if fmt == "json" else history_text(data))


def register(app: typer.Typer) -> None:
    """Add ``contracts`` (history)."""
    app.add_typer(contracts_app, name="contracts")
