"""``kwhub settle``, ``kwhub invoices list|show`` and ``kwhub explain``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from kwhub.core.money import money_str
from kwhub.hub.cli.errors import EXIT_CONFIG, UserError

console = Console()

invoices_app = typer.Typer(help="Issued invoices, adjustment invoices and credit notes.", no_args_is_help=True)


def _load(config: Path | None) -> Any:
    from kwhub.hub.config import load_config

    return load_config(config)


def _open_db(cfg: Any) -> Any:
    from kwhub.hub.store import Database

    return Database.open(cfg.database_url, work_dir=cfg.work_dir)


def _check_format(fmt: str, allowed: tuple[str, ...]) -> None:
    if fmt not in allowed:
        raise UserError(f"--format must be one of {', '.join(allowed)}, not {fmt!r}", exit_code=EXIT_CONFIG)


def _invoice_json(inv: Any) -> dict[str, Any]:
    from kwhub.core.explain import json_line

    return {
        "id": inv.id, "number": inv.number, "kind": inv.kind, "version": inv.version,
        "seller": inv.seller.id, "buyer": inv.buyer.id, "contract": inv.contract_id, "run_id": inv.run_id,
        "issue_date": inv.issue_date.isoformat(), "due_date": inv.due_date.isoformat(),
        "period_start": inv.period_start.isoformat(), "period_end": inv.period_end.isoformat(),
        "currency": inv.currency, "references": [{"id": r.id, "number": r.number} for r in inv.references],
        "lines": [json_line(ln) for ln in inv.lines],
        "taxes": [{"category": t.category, "percent": money_str(t.percent), "taxable_amount": money_str(t.taxable_amount),
                   "tax_amount": money_str(t.tax_amount)} for t in inv.taxes],
        "line_total": money_str(inv.line_total), "tax_total": money_str(inv.tax_total), "total": money_str(inv.total),
    }


def settle_command(
    period: str = typer.Option(..., "--period", help="Billing period YYYY-MM (local month of each contract)."),
    contract: list[str] = typer.Option(None, "--contract", help="Only this contract (repeatable)."),
    version: str = typer.Option("initial", "--version", help="initial, final or true_up."),
    config: Path = typer.Option(None, "--config", help="kwhub.toml (default: ./kwhub.toml)."),
    fallback_raw: bool = typer.Option(False, "--fallback-raw", help="Use raw data where nothing is validated."),
    missing: str = typer.Option(None, "--missing",
                                help="error (refuse gaps) or zero (count them as 0 kWh); default from [settlement]."),
    fmt: str = typer.Option("table", "--format", help="table or json."),
) -> None:
    """Settle a billing period: price every contract and issue invoices (or adjustments)."""
    from kwhub.core.settlement import VERSION_KINDS
    from kwhub.core.timeline import TimeModelError, billing_period
    from kwhub.hub.registry import get_registry
    from kwhub.hub.settle.issuing import outbox_hook
    from kwhub.hub.settle.service import settle

    _check_format(fmt, ("table", "json"))
    if version not in VERSION_KINDS:
        raise UserError(f"--version must be one of {', '.join(VERSION_KINDS)}, not {version!r}", exit_code=EXIT_CONFIG)
    if missing is not None and missing not in ("error", "zero"):
        raise UserError(f"--missing must be error or zero, not {missing!r}", exit_code=EXIT_CONFIG)
    try:
        billing_period(period, "UTC")
    except TimeModelError as exc:
        raise UserError(str(exc), hint="give the period as YYYY-MM, e.g. --period 2026-10", exit_code=EXIT_CONFIG) from None
    cfg = _load(config)
    campus = cfg.campus
    if not campus.contracts:
        raise UserError("the configuration has no contracts to settle", hint="add [[contracts]] to kwhub.toml",
                        exit_code=EXIT_CONFIG)
    options = cfg.settlement_options()
    if fallback_raw:
        options.fallback_raw = True
    if missing is not None:
        options.missing = missing  # type: ignore[assignment]
    chosen = contract or [c.id for c in campus.contracts]
    db = _open_db(cfg)
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=Console(stderr=True), transient=True, disable=fmt == "json") as bar:
            task = bar.add_task(f"settling {period} ({version})", total=len(chosen))
            try:
                outcomes = settle(db, campus, period, contracts=chosen, version=version, options=options,
                                  on_issue=outbox_hook(cfg, get_registry()),
                                  progress=lambda cid: bar.update(task, advance=1, description=f"settling {cid}"))
            except ValueError as exc:
                raise UserError(str(exc), exit_code=EXIT_CONFIG) from None
    finally:
        db.close()
    if fmt == "json":
        typer.echo(json.dumps([o.as_dict() for o in outcomes], indent=2))
    else:
        table = Table(title=f"Settlement {period} ({version})")
        for col in ("contract", "run", "status", "document", "number", "total", "imbalance", "note"):
            table.add_column(col)
        for o in outcomes:
            inv = o.invoice
            table.add_row(o.contract_id, o.run_id or "-", o.status, inv.kind if inv else "-", inv.number if inv else "-",
                          f"{money_str(inv.total)} {inv.currency}" if inv else "-",
                          str(o.imbalance_intervals) if o.imbalance_intervals else "",
                          "failed, see below" if o.error else "")
        console.print(table)
    failed = [o for o in outcomes if o.status == "error"]
    if fmt != "json":
        for o in failed:
            typer.echo(f"error: {o.contract_id}: {o.error}")
    if failed:
        raise typer.Exit(1)


@invoices_app.command("list")
def invoices_list(
    config: Path = typer.Option(None, "--config", help="kwhub.toml (default: ./kwhub.toml)."),
    contract: str = typer.Option(None, "--contract", help="Only this contract."),
    period: str = typer.Option(None, "--period", help="Only this billing period (YYYY-MM)."),
    fmt: str = typer.Option("table", "--format", help="table or json."),
) -> None:
    """List issued documents."""
    from kwhub.hub.settle.service import list_invoices

    _check_format(fmt, ("table", "json"))
    cfg = _load(config)
    db = _open_db(cfg)
    try:
        docs = list_invoices(db, contract_id=contract, period=period)
    finally:
        db.close()
    if fmt == "json":
        typer.echo(json.dumps([_invoice_json(d) for d in docs], indent=2))
        return
    table = Table(title="Invoices")
    for col in ("number", "kind", "contract", "buyer", "period", "issued", "total", "references"):
        table.add_column(col)
    for d in docs:
        table.add_row(d.number, d.kind, d.contract_id, d.buyer.id, f"{d.period_start}..{d.period_end}",
                      d.issue_date.isoformat(), f"{money_str(d.total)} {d.currency}",
                      ", ".join(r.number for r in d.references))
    console.print(table)


@invoices_app.command("show")
def invoices_show(
    ref: str = typer.Argument(..., help="Invoice id or number."),
    config: Path = typer.Option(None, "--config", help="kwhub.toml (default: ./kwhub.toml)."),
    fmt: str = typer.Option("json", "--format", help="json or text."),
) -> None:
    """Show one document with its lines, determinants and totals (exact decimal strings)."""
    from kwhub.hub.settle.service import get_invoice

    _check_format(fmt, ("json", "text"))
    cfg = _load(config)
    db = _open_db(cfg)
    try:
        inv = _get(get_invoice, db, ref)
    finally:
        db.close()
    data = _invoice_json(inv)
    if fmt == "json":
        typer.echo(json.dumps(data, indent=2))
        return
    typer.echo(f"{data['kind']} {data['number']}  {data['seller']} -> {data['buyer']}  "
               f"{data['period_start']}..{data['period_end']}")
    for ln in data["lines"]:
        typer.echo(f"  {ln['number']:>3} {ln['description']:<40} {ln['quantity']:>14} {ln['unit']:<6} "
                   f"x {ln['unit_price']:>12} = {ln['amount']:>14}")
    typer.echo(f"  total {data['total']} {data['currency']} (lines {data['line_total']}, tax {data['tax_total']})")


def _get(fn: Any, db: Any, ref: str) -> Any:
    from kwhub.core.settlement import SettlementError

    try:
        return fn(db, ref)
    except SettlementError as exc:
        raise UserError(str(exc)) from None


def explain_command(
    invoice: str = typer.Argument(..., help="Invoice id or number."),
    line: int = typer.Option(None, "--line", help="Line number (default: every line)."),
    config: Path = typer.Option(None, "--config", help="kwhub.toml (default: ./kwhub.toml)."),
    fmt: str = typer.Option("text", "--format", help="text or json."),
) -> None:
    """Explain invoice lines: determinants, intervals, data versions and hashes, prices, allocation."""
    from kwhub.core.explain import ExplainError, explain_line, render_text
    from kwhub.hub.settle.service import get_invoice, get_run, run_allocation, run_inputs

    _check_format(fmt, ("text", "json"))
    cfg = _load(config)
    db = _open_db(cfg)
    try:
        inv = _get(get_invoice, db, invoice)
        run = get_run(db, inv.run_id)
        inputs = run_inputs(db, inv.run_id)
        alloc = run_allocation(db, inv.run_id)
        numbers = [line] if line is not None else [ln.number for ln in inv.lines]
        try:
            exps = [explain_line(inv, n, run, inputs, alloc) for n in numbers]
        except ExplainError as exc:
            raise UserError(str(exc)) from None
    finally:
        db.close()
    if fmt == "json":
        typer.echo(json.dumps(exps[0] if line is not None else exps, indent=2, default=str))
    else:
        typer.echo("\n\n".join(render_text(e) for e in exps))


def register(app: typer.Typer) -> None:
    """Add ``settle``, ``invoices`` (list, show) and ``explain``."""
    app.command("settle")(settle_command)
    app.add_typer(invoices_app, name="invoices")
    app.command("explain")(explain_command)
