"""``kwhub runs list|show|approve|reject`` and ``kwhub report energy|allocation``."""

from __future__ import annotations

import csv
import getpass
import json
import os
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from kwhub.hub.cli.errors import EXIT_CONFIG, UserError
from kwhub.hub.cli.options import format_option, output_format
from kwhub.hub.cli.output import cell, clean, console, row

runs_app = typer.Typer(help="Settlement runs and the review gate: list, show, approve, reject.", no_args_is_help=True)
report_app = typer.Typer(help="Reports of a settled period: energy accounting, allocation split.",
                         no_args_is_help=True)

_CONFIG = typer.Option(None, "--config", "-c", help="kwhub.toml (default: ./kwhub.toml).")


def _actor(by: str | None) -> str:
    if by:
        return by
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name in a container
        user = ""
    return os.environ.get("KWHUB_ACTOR") or user or "cli"


def _open(config: Path | None, *, plugins: bool = True, migrate: bool = True) -> tuple[Any, Any]:
    from kwhub.hub.cli.common import load, open_db

    cfg = load(config, plugins=plugins)
    return cfg, open_db(cfg, read_only=True, migrate=migrate)  # never creates a database


def _fmt(fmt: str, allowed: tuple[str, ...]) -> None:
    if fmt not in allowed:
        raise UserError(f"--format must be one of {', '.join(allowed)}, not {fmt!r}", exit_code=EXIT_CONFIG)


@runs_app.command("list")
def runs_list(
    period: str = typer.Option(None, "--period", help="Only this billing period (YYYY-MM)."),
    contract: str = typer.Option(None, "--contract", help="Only this contract."),
    status: str = typer.Option(None, "--status", help="draft, held, issued, no_change, rejected or superseded."),
    config: Path = _CONFIG,
    fmt: str = format_option("text", "json"),
) -> None:
    """List settlement runs with their review status; held runs show why they are held."""
    from kwhub.hub.cli.common import load, open_reader
    from kwhub.hub.settle.run_list import summarise_runs
    from kwhub.hub.store.plain_read import reading, settlement_runs

    fmt = output_format(fmt, ("text", "json"))
    cfg = load(config, plugins=False)  # reads only: no plugin imported
    with reading(open_reader(cfg)) as reader:  # never created nor migrated; sqlite3 for a SQLite file
        rows = summarise_runs(settlement_runs(reader, period=period, contract_id=contract, status=status))
    if fmt == "json":
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    table = Table(title="Settlement runs")
    for col in ("run", "status", "document", "total", "why held"):
        table.add_column(col, justify="right" if col == "total" else "left", overflow="fold")
    for r in rows:
        doc = r["document"]
        row(table, r["id"], r["status"] + (" (stale)" if r["stale"] else ""), doc["kind"] if doc else "-",
                      f"{doc['total']} {doc['currency']}" if doc else "-", Text(clean("\n".join(r["held_reasons"]), multiline=True)))
    console.print(table)
    if not rows:
        typer.echo("no runs (settle a period with `kwhub settle --period YYYY-MM`)")


@runs_app.command("show")
def runs_show(
    run_id: str = typer.Argument(..., help="Run id (see `kwhub runs list`)."),
    config: Path = _CONFIG,
    fmt: str = format_option("text", "json"),
) -> None:
    """Show a run: status, checks, the document it issues (or issued), energy accounting, decisions."""
    from kwhub.core.settlement import SettlementError
    from kwhub.hub.settle.runs_read import get_run
    from kwhub.hub.store import audit_entries

    fmt = output_format(fmt, ("text", "json"))
    _, db = _open(config, plugins=False, migrate=False)  # reads only: no plugin imported, no migration
    try:
        try:
            run = get_run(db, run_id)
        except SettlementError as exc:
            raise UserError(str(exc), hint="`kwhub runs list` shows the run ids") from None
        decisions = [{"at": a.at.isoformat(), "actor": a.actor, "action": a.action, "detail": a.detail}
                     for a in audit_entries(db, "settlement_run", run_id)]
    finally:
        db.close()
    st = run["statement_json"]
    checks = json.loads(run.get("checks") or "[]")
    data = {"run": run_id, "status": run["status"], "stale": bool(run["stale"]), "contract": run["contract_id"],
            "period": run["period"], "version": run["version_kind"], "seq": run["seq"],
            "invoice_id": run["invoice_id"], "checks": checks, "document": st["document"],
            "accounting": st.get("accounting", []), "missing_intervals_zeroed": st["inputs"].get("missing_intervals", 0),
            "decisions": decisions}
    if fmt == "json":
        typer.echo(json.dumps(data, indent=2, default=str))
        return
    typer.echo(f"Run {run_id}: {run['status']}{' (STALE: its input data changed)' if run['stale'] else ''}")
    typer.echo(f"  contract {run['contract_id']}, period {run['period']}, {run['version_kind']} #{run['seq']}")
    typer.echo("Checks:")
    for c in checks:
        typer.echo(f"  [{'pass' if c['passed'] else 'FAIL'}] {c['check']}: {c['message']}")
    doc = st["document"]
    if doc["kind"]:
        typer.echo(f"Document: {doc['kind']}, total {doc['totals']['total']} {st['contract']['currency']} "
                   f"(lines {doc['totals']['line_total']}, tax {doc['totals']['tax_total']})")
        for ln in doc["lines"]:
            typer.echo(f"  {ln['number']:>3} {ln['description']:<44} {ln['quantity']:>14} {ln['unit']:<6} "
                       f"x {ln['unit_price']:>12} = {ln['amount']:>14}")
    else:
        typer.echo("Document: none (nothing changed against the previous version)")
    if data["missing_intervals_zeroed"]:
        typer.echo(f"Note: {data['missing_intervals_zeroed']} intervals without data were counted as 0 kWh")
    if data["accounting"]:
        typer.echo("Energy accounting (kWh):")
        for r in data["accounting"]:
            fate = f"billed by {r['billed_by']}" if r["billed_by"] else f"not billed: {r['reason']}"
            typer.echo(f"  {r['party']} {r['source']}: {Decimal(r['allocated_kwh']):,.3f} allocated, {fate}")
    for d in decisions:
        typer.echo(f"{d['at']} {d['action']} by {d['actor']}: {d['detail'].get('reason', '')}")


@runs_app.command("approve")
def runs_approve(
    run_ids: list[str] = typer.Argument(..., help="Run id(s) to approve."),
    reason: str = typer.Option("", "--reason", help="Why you approve (required; recorded in the audit log with your name)."),
    by: str = typer.Option(None, "--by", help="Who approves (default: $KWHUB_ACTOR, else the login name)."),
    issue_date: str = typer.Option(None, "--issue-date", help="Issue date YYYY-MM-DD (default: today)."),
    config: Path = _CONFIG,
) -> None:
    """Approve runs: issue their draft documents (numbered, stored, queued for delivery)."""
    from kwhub.hub.registry import get_registry
    from kwhub.hub.settle.issuing import outbox_hook
    from kwhub.hub.settle.review import approve_runs

    when = _date(issue_date)
    cfg, db = _open(config)
    try:
        results = approve_runs(db, cfg.campus, run_ids, actor=_actor(by), reason=reason, issue_date=when,
                               on_issue=outbox_hook(cfg, get_registry(), db))
    finally:
        db.close()
    failed = False
    for rid in run_ids:
        res = results[rid]
        if res.invoice is not None:
            typer.echo(f"{rid}: issued {res.invoice.kind} {res.invoice.number}, total {res.invoice.total} "
                       f"{res.invoice.currency}")
        else:
            failed = True
            typer.echo(f"{rid}: not approved: {res.error}", err=True)
    if failed:
        raise typer.Exit(1)


@runs_app.command("reject")
def runs_reject(
    run_id: str = typer.Argument(..., help="Run id to reject."),
    reason: str = typer.Option(..., "--reason", help="Why (recorded in the audit log)."),
    by: str = typer.Option(None, "--by", help="Who rejects (default: $KWHUB_ACTOR, else the login name)."),
    config: Path = _CONFIG,
) -> None:
    """Reject a draft or held run: no document is issued; settle again once the data is right."""
    from kwhub.core.settlement import SettlementError
    from kwhub.hub.settle.review import reject_run

    _, db = _open(config)
    try:
        reject_run(db, run_id, actor=_actor(by), reason=reason)
    except SettlementError as exc:
        raise UserError(str(exc)) from None
    finally:
        db.close()
    typer.echo(f"{run_id}: rejected")


def _date(text: str | None) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UserError(f"--issue-date {text!r} is not YYYY-MM-DD", exit_code=EXIT_CONFIG) from None


@report_app.command("energy")
def report_energy(
    period: str = typer.Option(..., "--period", help="Billing period YYYY-MM."),
    config: Path = _CONFIG,
    fmt: str = format_option("text", "json", "csv"),
) -> None:
    """Energy accounting: metered = allocated = billed + unbilled, with the reason of every unbilled kWh."""
    from kwhub.core.settlement import SettlementError
    from kwhub.hub.settle.reports import energy_report

    fmt = output_format(fmt, ("text", "json", "csv"))
    _, db = _open(config, plugins=False, migrate=False)  # reads only: no plugin imported, no migration
    try:
        rep = energy_report(db, period)
    except SettlementError as exc:
        raise UserError(str(exc)) from None
    finally:
        db.close()
    if fmt == "json":
        typer.echo(json.dumps(rep.as_json(), indent=2))
        return
    if fmt == "csv":
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(["party", "source", "allocated_kwh", "billed_kwh", "billed_by", "unbilled_kwh", "reason", "declared"])
        for r in rep.parties:
            w.writerow([r["party"], r["source"], r["allocated_kwh"], r["billed_kwh"], r["billed_by"],
                        r["unbilled_kwh"], r["reason"], "yes" if r["declared"] else "no"])
        return
    if rep.sources:
        table = Table(title=cell(f"Sources {period} (kWh)"))
        for col in ("source", "metered", "to tenants", "losses", "other sinks"):
            table.add_column(col, justify="left" if col == "source" else "right")
        for r in rep.sources:
            row(table, r["source"], *(f"{Decimal(r[k]):,.3f}" for k in
                                         ("metered_kwh", "to_tenants_kwh", "losses_kwh", "other_sinks_kwh")))
        console.print(table)
    table = Table(title=cell(f"Tenants x sources {period} (kWh)"))
    for col in ("tenant", "source", "allocated", "billed", "by", "unbilled", "why"):
        table.add_column(col, justify="right" if col in ("allocated", "billed", "unbilled") else "left",
                         overflow="fold")
    for r in rep.parties:
        row(table, r["party"], r["source"], f"{Decimal(r['allocated_kwh']):,.3f}", f"{Decimal(r['billed_kwh']):,.3f}",
                      r["billed_by"], f"{Decimal(r['unbilled_kwh']):,.3f}",
                      (r["reason"] + (" (declared)" if r["declared"] else "")) if r["reason"] else "")
    console.print(table)
    if rep.balance:
        b = rep.balance
        typer.echo("Balance: " + ", ".join(f"{k} {Decimal(v):,.3f}" for k, v in b.items()
                                           if k not in ("imbalance_intervals", "max_abs_imbalance")))
    unexplained = sum(Decimal(r["unbilled_kwh"]) for r in rep.unexplained)
    typer.echo(f"Unexplained kWh: {unexplained:,.3f}" + ("" if not unexplained else
               " (price them in a contract or declare them in the contract's not_billed)"))


@report_app.command("allocation")
def report_allocation(
    period: str = typer.Option(..., "--period", help="Billing period YYYY-MM."),
    tenant: str = typer.Option(None, "--tenant", help="Only this tenant (default: every tenant)."),
    config: Path = _CONFIG,
    fmt: str = format_option("text", "json", "csv"),
    out: Path = typer.Option(None, "--out", help="Write to this file instead of standard output."),
) -> None:
    """The per-interval tenants x sources split the runs froze (kWh), to check conservation.

    One row per interval and tenant: text and csv print the same comma-separated rows."""
    from kwhub.core.settlement import SettlementError
    from kwhub.hub.settle.reports import allocation_rows

    fmt = output_format(fmt, ("text", "json", "csv"))
    _, db = _open(config, plugins=False, migrate=False)  # reads only: no plugin imported, no migration
    try:
        rows = list(allocation_rows(db, period, tenant))
    except SettlementError as exc:
        raise UserError(str(exc)) from None
    finally:
        db.close()
    fh = out.open("w", newline="") if out else sys.stdout
    try:
        if fmt == "json":
            json.dump(rows, fh, indent=1)
            fh.write("\n")
        else:
            cols: list[str] = []
            for r in rows:
                cols += [k for k in r if k not in cols]
            w = csv.DictWriter(fh, fieldnames=cols, restval="0.0", lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
    finally:
        if out:
            fh.close()


def register(app: typer.Typer) -> None:
    """Add ``runs`` and ``report``."""
    app.add_typer(runs_app, name="runs")
    app.add_typer(report_app, name="report")
