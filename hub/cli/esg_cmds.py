"""``kwhub esg report`` (disclosures) and ``kwhub esg certificates`` (the granular certificate ledger)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.table import Table

from kwhub.hub.cli.errors import EXIT_CONFIG, UserError
from kwhub.hub.cli.options import format_option, output_format
from kwhub.hub.cli.output import console, row

esg_app = typer.Typer(help="Emissions disclosures and granular certificates.", no_args_is_help=True)
certs_app = typer.Typer(
    help="Granular certificates (EnergyTag-style, 1 Wh, at most one hour): issue from generation meters, transfer to "
         "tenants by the settled allocation, claim for a tenant's consumption hour, withdraw, export and import.",
    no_args_is_help=True)
esg_app.add_typer(certs_app, name="certificates")
_CONFIG = typer.Option(None, "--config", "-c", help="kwhub.toml (default: ./kwhub.toml).")
T = TypeVar("T")

FORMATS = ("ghg", "cdp", "esrs", "sb253", "summary")  # the built-in writers; plugins add theirs


def _open(config: Path | None):  # noqa: ANN202 - (config, database)
    from kwhub.hub.cli.common import load, open_db

    cfg = load(config)
    return cfg, open_db(cfg, read_only=True)  # never creates a database


def _with_db(config: Path | None, action: Callable[[Any, Any], T]) -> tuple[Any, T]:
    """``(configuration, action(configuration, database))``, the database closed after; the
    ledger's and the inventory's errors become a one-paragraph message (exit 1)."""
    cfg, db = _open(config)
    try:
        return cfg, action(cfg, db)
    except _errors() as exc:
        raise UserError(str(exc)) from None
    finally:
        db.close()


def _errors() -> tuple[type[BaseException], ...]:
    from kwhub.core.certificates import CertificateError
    from kwhub.core.factors import FactorError
    from kwhub.core.inventory import InventoryError
    from kwhub.core.settlement import SettlementError

    return (SettlementError, CertificateError, FactorError, InventoryError)


@esg_app.command("report")
def report_command(
    period: str = typer.Option(..., "--period", help="A year (2026: every month with settled runs) or a month (2026-10)."),
    fmt: list[str] = typer.Option(["ghg"], "--format",
                                  help="ghg (inventory JSON+CSV, hourly CFE), cdp (7.6/7.7 table), esrs (E1-6 inline "
                                       "XBRL, checked with Arelle), sb253 (Scope 1+2 summary), summary, a format an ESG plugin adds, or all. "
                                       "Repeat for several."),
    tenant: str = typer.Option(None, "--tenant", help="Only this party (a tenant, owner or the operator)."),
    gwp: str = typer.Option(None, "--gwp", help="GWP set for CO2e: AR4, AR5 or AR6 (default: [emissions] gwp_set)."),
    out: Path = typer.Option(None, "--out", help="Folder for the files (default: output_dir/esg)."),
    config: Path = _CONFIG,
) -> None:
    """Write the disclosures of a period from the settled runs' frozen allocation, and check each file.

    Every figure follows the energy the runs billed: a tenant's Scope 2 is the sum of the
    emissions on its invoice lines, its market-based figure after hourly matching of the
    certificates it claimed. Exits 1 when a format's check fails (e.g. Arelle errors).
    """
    from kwhub.hub.esg.reports import period_disclosure, write_disclosure, writer_types

    installed = [*FORMATS, *sorted(set(writer_types()) - set(FORMATS))]  # built-ins first, then plugins'
    formats = installed if "all" in fmt else list(dict.fromkeys(fmt))
    bad = [f for f in formats if f not in installed]
    if bad:
        raise UserError(f"--format {', '.join(bad)}: choose from {', '.join(installed)} or all "
                        "(an ESG plugin adds its own format)", exit_code=EXIT_CONFIG)
    cfg, disclosure = _with_db(config, lambda cfg, db: period_disclosure(db, cfg, period, tenant, gwp))
    folder = out or cfg.output_dir / "esg"
    written = write_disclosure(cfg, disclosure, formats, folder)
    failed = False
    for w in written:
        for p in w.paths:
            typer.echo(f"{w.format_id}: {p}")
        for problem in w.problems:
            failed = True
            typer.echo(f"{w.format_id}: check failed: {problem}", err=True)
        if not w.problems:
            typer.echo(f"{w.format_id}: check passed")
    for note in disclosure.notes:
        typer.echo(f"note: {note}")
    if failed:
        raise typer.Exit(1)


@certs_app.command("issue")
def certs_issue(
    period: str = typer.Option(..., "--period", help="Billing period YYYY-MM."),
    device: list[str] = typer.Option(None, "--device", help="Asset id (default: every carbon-free generator)."),
    config: Path = _CONFIG,
) -> None:
    """Issue one bundle per device and hour from the validated generation (whole Wh, rounded down)."""
    from kwhub.hub.esg.ledger import issue_period

    cfg, issued = _with_db(config, lambda cfg, db: issue_period(db, cfg, period, device or None))
    typer.echo(f"issued {len(issued)} bundle(s), {sum(b.quantity_wh for b in issued)} Wh")


@certs_app.command("transfer")
def certs_transfer(period: str = typer.Option(..., "--period", help="Billing period YYYY-MM."),
                   config: Path = _CONFIG) -> None:
    """Transfer each hour's certificates to the tenants the settled allocation gave the device's energy."""
    from kwhub.hub.esg.ledger import transfer_by_allocation

    cfg, moved = _with_db(config, lambda cfg, db: transfer_by_allocation(db, cfg, period))
    typer.echo(f"transferred {len(moved)} bundle(s), {sum(b.quantity_wh for b in moved)} Wh")


@certs_app.command("claim")
def certs_claim(period: str = typer.Option(..., "--period", help="Billing period YYYY-MM."),
                tenant: str = typer.Option(..., "--tenant", help="The tenant that claims its certificates."),
                config: Path = _CONFIG) -> None:
    """Cancel and claim the tenant's Active certificates for its consumption in their own hour."""
    from kwhub.hub.esg.ledger import claim_for

    cfg, done = _with_db(config, lambda cfg, db: claim_for(db, tenant, period, cfg.hub.timezone))
    typer.echo(f"claimed {len(done)} bundle(s), {sum(b.quantity_wh for b in done)} Wh for {tenant}")


@certs_app.command("withdraw")
def certs_withdraw(bundle: str = typer.Argument(..., help="Bundle id."),
                   reason: str = typer.Option(..., "--reason", help="Why (an issuing error, ...)."),
                   quantity: int = typer.Option(None, "--wh", help="Only this many Wh (splits the bundle)."),
                   by: str = typer.Option("cli", "--by", help="Who withdraws."),
                   config: Path = _CONFIG) -> None:
    """Withdraw an Active bundle (or part of it): it can never be used again."""
    from kwhub.hub.esg.ledger import withdraw_bundle

    _cfg, done = _with_db(config, lambda cfg, db: withdraw_bundle(db, bundle, reason, quantity, by))
    typer.echo(f"withdrew {done.bundle_id} ({done.quantity_wh} Wh)")


@certs_app.command("export")
def certs_export(out: Path = typer.Option(..., "--out", help="JSON file to write (kwhub.gc/1)."),
                 account: str = typer.Option(None, "--account", help="Only this holder's bundles."),
                 config: Path = _CONFIG) -> None:
    """Export live bundles in the documented JSON form (docs/data-model.md)."""
    from kwhub.hub.esg.ledger import export_json

    _cfg, n = _with_db(config, lambda cfg, db: export_json(db, out, account))
    typer.echo(f"exported {n} bundle(s) to {out}")


@certs_app.command("import")
def certs_import(file: Path = typer.Argument(..., help="A kwhub.gc/1 JSON file."),
                 account: str = typer.Option(..., "--account", help="The holder of the imported certificates."),
                 config: Path = _CONFIG) -> None:
    """Import Active bundles (e.g. an off-site clean energy contract's certificates); the whole file or nothing."""
    from kwhub.hub.esg.ledger import import_json

    _cfg, got = _with_db(config, lambda cfg, db: import_json(db, file, account))
    typer.echo(f"imported {len(got)} bundle(s), {sum(b.quantity_wh for b in got)} Wh into {account}")


@certs_app.command("list")
def certs_list(fmt: str = format_option("text", "json"), config: Path = _CONFIG) -> None:
    """Wh per device, holder and status."""
    from kwhub.hub.esg.ledger import summary

    fmt = output_format(fmt, ("text", "json"))
    _cfg, rows = _with_db(config, lambda cfg, db: summary(db))
    if fmt == "json":
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="Granular certificates")
    for col in ("device", "account", "status", "Wh", "bundles"):
        table.add_column(col, justify="right" if col in ("Wh", "bundles") else "left")
    for r in rows:
        row(table, r["device"], r["account"], r["status"], f"{r['wh']:,}", str(r["bundles"]))
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add ``esg``."""
    app.add_typer(esg_app, name="esg")
