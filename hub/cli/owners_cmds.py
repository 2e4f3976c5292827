"""``kwhub owners statement`` and ``kwhub emissions``: who earned what, and the carbon that followed the energy."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import typer
from rich.table import Table

from kwhub.hub.cli.errors import UserError
from kwhub.hub.cli.options import format_option, output_format
from kwhub.hub.cli.output import cell, console, row

owners_app = typer.Typer(help="Owner statements of co-owned assets.", no_args_is_help=True)
_CONFIG = typer.Option(None, "--config", "-c", help="kwhub.toml (default: ./kwhub.toml).")


def _open(config: Path | None):  # noqa: ANN202 - (config, database)
    from kwhub.hub.cli.common import load, open_db

    cfg = load(config)
    return cfg, open_db(cfg, read_only=True)  # never creates a database


@owners_app.command("statement")
def owners_statement(
    period: str = typer.Option(..., "--period", help="Billing period YYYY-MM."),
    owner: str = typer.Option(None, "--owner", help="Only this owner (a party id)."),
    fmt: str = format_option("text", "json", "csv", "pdf"),
    out: Path = typer.Option(None, "--out", help="Folder for the files (pdf, csv, json; default: output_dir/owners)."),
    config: Path = _CONFIG,
) -> None:
    """Revenue of each co-owned asset (the value of the energy it delivered under every contract
    component, through the allocation) and its costs, split by ownership share."""
    from kwhub.core.settlement import SettlementError
    from kwhub.hub.settle.owner_pdf import write_owner_pdf
    from kwhub.hub.settle.owners import period_owner_statements

    fmt = output_format(fmt, ("text", "json", "csv", "pdf"))
    cfg, db = _open(config)
    try:
        statements = period_owner_statements(db, cfg, period, owner)
    except SettlementError as exc:
        raise UserError(str(exc)) from None
    finally:
        db.close()
    if fmt == "text":
        for party, st in statements.items():
            table = Table(title=cell(f"Owner statement {party} {period} ({st.currency})"))
            for col in ("asset", "item", "asset total", "share", "amount"):
                table.add_column(col, justify="left" if col in ("asset", "item") else "right")
            for ln in st.lines:
                row(table, ln.asset, ln.description, f"{ln.asset_total:,.2f}", str(ln.share), f"{ln.amount:,.2f}")
            console.print(table)
            typer.echo(f"{party}: revenue {st.revenue:,.2f}, costs {st.costs:,.2f}, net {st.net:,.2f} {st.currency}")
        if not statements:
            typer.echo("no owner earned or spent anything in this period")
        return
    folder = out or cfg.output_dir / "owners"
    folder.mkdir(parents=True, exist_ok=True)
    for party, st in statements.items():
        path = folder / f"owner-statement-{party}-{period}.{fmt}"
        if fmt == "pdf":
            name = next((p.name for p in cfg.campus.parties if p.id == party), party)
            write_owner_pdf(st, path, name)
        elif fmt == "json":
            path.write_text(st.model_dump_json(indent=2) + "\n")
        else:
            with path.open("w", newline="") as fh:
                w = csv.writer(fh, lineterminator="\n")
                w.writerow(["party", "period", "asset", "kind", "description", "asset_total", "share", "amount"])
                for ln in st.lines:
                    w.writerow([party, period, ln.asset, ln.kind, ln.description, ln.asset_total, ln.share, ln.amount])
        typer.echo(str(path))


def emissions_command(
    period: str = typer.Option(..., "--period", help="A month (2026-10) or a year (2026)."),
    fmt: str = format_option("text", "json", "csv"),
    config: Path = _CONFIG,
) -> None:
    """Scope 1, Scope 2 (location- and market-based) and Scope 3 category 3 per party, in t CO2e.

    Each tenant carries the emissions of the sources its run allocated to it (the split the
    run froze, not a second allocation), so its emissions agree with its invoice lines.
    `kwhub esg report` writes the full disclosures.
    """
    from kwhub.core.settlement import SettlementError
    from kwhub.hub.esg.reports import period_disclosure

    fmt = output_format(fmt, ("text", "json", "csv"))
    cfg, db = _open(config)
    try:
        disclosure = period_disclosure(db, cfg, period)
    except (SettlementError, ValueError) as exc:
        raise UserError(str(exc)) from None
    finally:
        db.close()
    rows = disclosure.summary()
    if fmt == "json":
        typer.echo(json.dumps({"period": period, "gwp_set": disclosure.gwp_set, "region": disclosure.region,
                               "parties": rows, "notes": disclosure.notes}, indent=2))
        return
    if fmt == "csv":
        w = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]) if rows else ["party"], lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        return
    table = Table(title=cell(f"Emissions {period} (t CO2e, {disclosure.gwp_set})"))
    cols = ("party", "energy MWh", "scope 1", "scope 2 location", "scope 2 market", "scope 3 cat. 3", "CFE %")
    for col in cols:
        table.add_column(col, justify="left" if col == "party" else "right")
    for r in rows:
        row(table, r["party"], r["energy_mwh"], r["scope1_tco2e"], r["scope2_location_tco2e"],
                      r["scope2_market_tco2e"], r["scope3_cat3_tco2e"], r["cfe_pct"])
    console.print(table)
    for note in disclosure.notes:
        typer.echo(f"note: {note}")


def register(app: typer.Typer) -> None:
    """Add ``owners`` and ``emissions``."""
    app.add_typer(owners_app, name="owners")
    app.command("emissions")(emissions_command)
