"""``kwhub settle``, ``kwhub invoices list|show|render`` and ``kwhub explain``.

``invoices list|show`` and ``explain`` refresh the staleness of the runs they show first
(:func:`kwhub.hub.settle.runs_read.stale_flags`): a run whose input data was restated or
deleted since it was settled is shown as stale.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from kwhub.hub.cli.common import load as _load
from kwhub.hub.cli.common import open_db as _open_db
from kwhub.hub.cli.errors import EXIT_CONFIG, EXIT_FAILED, UserError
from kwhub.hub.cli.options import format_option, output_format
from kwhub.hub.cli.output import cell, console, echo, err_console, safe

invoices_app = typer.Typer(help="Issued invoices, adjustment invoices and credit notes.", no_args_is_help=True)
def money_str(value: Any) -> str:
    """:func:`kwhub.core.money.money_str`, imported when first used (it needs numpy)."""
    from kwhub.core.money import money_str as exact

    return exact(value)


STALE_NOTE = "its input data was restated or deleted since it was settled; settle a later version"


def _staleness(db: Any, docs: list[Any]) -> tuple[dict[str, bool], dict[str, str]]:
    """Refreshed stale flags of the documents' runs, and for stale runs the later run (of the
    same contract and period) that already corrects them, if there is one."""
    from kwhub.hub.settle.runs_read import existing_runs, get_run, stale_flags

    stale = stale_flags(db, [d.run_id for d in docs if d.run_id])
    later: dict[str, str] = {}
    for run_id in sorted(r for r, flag in stale.items() if flag):
        run = get_run(db, run_id)
        ids = [r["id"] for r in existing_runs(db, run["contract_id"], run["period"])]
        if ids and ids[-1] != run_id:
            later[run_id] = ids[-1]
    return stale, later


def _read_invoices(cfg: Any, *, contract: str | None, period: str | None) -> list[Any]:
    """Issued documents, oldest first, read without SQLAlchemy (:mod:`kwhub.hub.store.plain_read`)."""
    from kwhub.hub.cli.common import open_reader
    from kwhub.hub.store.plain_read import invoice_documents, reading

    with reading(open_reader(cfg)) as reader:
        docs = invoice_documents(reader, contract_id=contract, period=period)
    if not docs:
        return []
    from kwhub.core.invoice import Invoice

    return [Invoice.model_validate_json(doc) for doc in docs]


def _read_invoice(cfg: Any, ref: str) -> Any:
    """One issued document by id or number (see :func:`_read_invoices`)."""
    from kwhub.hub.cli.common import open_reader
    from kwhub.hub.store.plain_read import invoice_document, reading

    with reading(open_reader(cfg)) as reader:
        doc = invoice_document(reader, ref)
    if doc is None:
        raise UserError(f"no invoice {ref!r} (give an invoice id or number; `kwhub invoices list` shows them)")
    from kwhub.core.invoice import Invoice

    return Invoice.model_validate_json(doc)


def _staleness_of(cfg: Any, docs: list[Any]) -> tuple[dict[str, bool], dict[str, str]]:
    """:func:`_staleness` of ``docs``; the database is opened (with SQLAlchemy, for the runs'
    input checks) only when a document has a run to check."""
    if not any(d.run_id for d in docs):
        return {}, {}
    db = _open_db(cfg, read_only=True, migrate=False)
    try:
        return _staleness(db, docs)
    finally:
        db.close()


def _run_state(run_id: str, stale: dict[str, bool], later: dict[str, str]) -> Any:
    if not stale.get(run_id):
        return cell("current")
    if run_id in later:
        return cell(f"stale, corrected by {later[run_id]}", "dim")
    return cell("STALE", "bold yellow")


def _check_format(fmt: str, allowed: tuple[str, ...]) -> None:
    if fmt not in allowed:
        raise UserError(f"--format must be one of {', '.join(allowed)}, not {fmt!r}", exit_code=EXIT_CONFIG)


def _invoice_json(inv: Any, stale: bool | None = None, later: str | None = None) -> dict[str, Any]:
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
        "stale": stale, "corrected_by_run": later,
    }


def settle_command(
    period: str = typer.Option(..., "--period", help="Billing period YYYY-MM (local month of each contract)."),
    contract: list[str] = typer.Option(None, "--contract", help="Only this contract (repeatable)."),
    version: str = typer.Option("initial", "--version", help="initial, final or true_up."),
    config: Path = typer.Option(None, "--config", "-c", help="kwhub.toml (default: ./kwhub.toml)."),
    fallback_raw: bool = typer.Option(False, "--fallback-raw", help="Use raw data where nothing is validated."),
    missing: str = typer.Option(None, "--missing",
                                help="error (refuse gaps) or zero (count them as 0 kWh); default from [settlement]."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Compute and check the drafts, print them, store nothing."),
    fmt: str = format_option("text", "json"),
    campuses: str = typer.Option(None, "--campuses", help="A portfolio: kwhub.toml files (or their folders), "
                                 "comma-separated, sharing one database; settled one after the other, or on "
                                 "Dask with --dask."),
    dask: str = typer.Option(None, "--dask", help="With --campuses: settle one task per campus (see "
                             "--dask-tasks) on Dask; `local` for a LocalCluster on this machine, or a scheduler "
                             "address (tcp://host:8786). Needs the portfolio extra (dask.distributed)."),
    dask_tasks: str = typer.Option("campus", "--dask-tasks", help="With --dask: one task per `campus` (its data "
                                   "read and its allocation computed once) or per `contract`."),
    workers: int = typer.Option(2, "--workers", min=1, help="Workers of the --dask local cluster."),
    retries: int = typer.Option(2, "--retries", min=0, help="Retries of a --dask task that raised."),
    jobs: int = typer.Option(0, "--jobs", "-j", min=0,
                             help="Processes settling this campus (0: one per CPU, at most 4). A large campus is "
                                  "split by contracts; the invoices equal a one-process settle's. 1: one process."),
) -> None:
    """Settle a billing period: price every contract into draft documents and check them.

    Each run passes the review gate (`kwhub runs` lists them): runs whose checks all pass
    are issued and queued for delivery when the review policy is `auto`; a run that fails
    a check is held with its reasons until someone approves or rejects it
    (`kwhub runs approve RUN --reason ...`). When any contract fails, nothing is issued.
    Settling the same version again on the same data reports `unchanged` and exits 0.
    Exit status: 0 when every contract settled (issued, held or unchanged), 1 when any failed.

    A portfolio: `--campuses a/kwhub.toml,b/kwhub.toml --dask local` settles every campus as its
    own Dask task (`--dask-tasks contract`: every contract; the same code as a serial settle,
    against the shared database) and then issues each campus' drafts in order; the results
    equal a serial run.

    One campus with many channels is settled on several cores (`--jobs`, one process per CPU by
    default): its contracts are split by channel count, each part settled in its own process, and
    the drafts issued in the order one process would issue them.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from kwhub.core.timeline import TimeModelError, billing_period
    from kwhub.core.versions import VERSION_KINDS
    from kwhub.hub.deliver.outbox import OutboxError
    from kwhub.hub.registry import get_registry
    from kwhub.hub.settle.issuing import outbox_hook
    from kwhub.hub.settle.parallel import default_jobs
    from kwhub.hub.settle.service import settle

    fmt = output_format(fmt, ("text", "json"))
    if version not in VERSION_KINDS:
        raise UserError(f"--version must be one of {', '.join(VERSION_KINDS)}, not {version!r}", exit_code=EXIT_CONFIG)
    if missing is not None and missing not in ("error", "zero"):
        raise UserError(f"--missing must be error or zero, not {missing!r}", exit_code=EXIT_CONFIG)
    try:
        billing_period(period, "UTC")
    except TimeModelError as exc:
        raise UserError(str(exc), hint="give the period as YYYY-MM, e.g. --period 2026-10", exit_code=EXIT_CONFIG) from None
    if campuses is not None or dask is not None:
        _settle_portfolio(period, version, campuses, dask, workers, retries, fmt, contract, fallback_raw, missing,
                          dry_run, dask_tasks)
        return
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
        on_issue = None if dry_run else outbox_hook(cfg, get_registry(), db)
    except OutboxError as exc:
        db.close()
        raise UserError(str(exc), hint=f"fix the parties' delivery formats in {cfg.source}",
                        exit_code=EXIT_CONFIG) from None
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err_console, transient=True, disable=fmt == "json") as bar:
            task = bar.add_task(f"settling {safe(period)} ({safe(version)})", total=len(chosen))
            try:
                outcomes = settle(db, campus, period, contracts=chosen, version=version, options=options,
                                  on_issue=on_issue, dry_run=dry_run, jobs=jobs or default_jobs(),
                                  progress=lambda cid: bar.update(task, advance=1, description=f"settling {safe(cid)}"))
            except ValueError as exc:
                raise UserError(str(exc), exit_code=EXIT_CONFIG) from None
    finally:
        db.close()
    if fmt == "json":
        echo(json.dumps([o.as_dict() | {"accounting": o.accounts} for o in outcomes], indent=2))
    else:
        _print_outcomes(period, version, outcomes, dry_run)
    if any(o.status == "error" for o in outcomes):
        raise typer.Exit(EXIT_FAILED)


def _settle_portfolio(period: str, version: str, campuses: str | None, dask: str | None, workers: int, retries: int,
                      fmt: str, contract: list[str] | None, fallback_raw: bool, missing: str | None,
                      dry_run: bool, dask_tasks: str = "campus") -> None:
    """``settle --campuses ... [--dask SCHEDULER]``: see :mod:`kwhub.hub.settle.portfolio`."""
    from kwhub.hub.settle.portfolio import (
        PortfolioError,
        campus_refs,
        settle_portfolio,
        settle_serial,
    )

    if campuses is None:
        raise UserError("--dask settles a portfolio: give --campuses too", exit_code=EXIT_CONFIG)
    if contract or fallback_raw or missing is not None or dry_run:
        raise UserError("--campuses takes each campus' settings from its kwhub.toml; --contract, --fallback-raw, "
                        "--missing and --dry-run apply to one campus", exit_code=EXIT_CONFIG)
    try:
        refs = campus_refs([c for c in campuses.split(",") if c.strip()])
        if dask is None:
            result = settle_serial(refs, period, version)
        else:
            def shown(task: Any, status: str) -> None:
                if fmt != "json":
                    err_console.print(f"{safe(task.campus)} {safe(task.contract_id or 'all contracts')}: "
                                      f"{safe(status)}")

            result = settle_portfolio(refs, period, version, scheduler=dask, workers=workers, retries=retries,
                                      group=dask_tasks, progress=shown)
    except PortfolioError as exc:
        raise UserError(str(exc), exit_code=EXIT_CONFIG) from None
    if fmt == "json":
        echo(json.dumps(result.as_dict(), indent=2))
    else:
        for name, outcomes in result.outcomes.items():
            echo(f"campus {name}")
            _print_outcomes(period, version, outcomes, False)
        for f in result.failures:
            echo(f"error: task {f.task.key} failed after {retries} retries: {f.error}", err=True)
    if not result.ok:
        raise typer.Exit(EXIT_FAILED)


def _print_outcomes(period: str, version: str, outcomes: list[Any], dry_run: bool) -> None:
    title = f"Settlement {period} ({version})" + (" - dry run, nothing stored" if dry_run else "")
    table = Table(title=cell(title))
    for col in ("contract", "run", "status", "document", "number", "total", "zeroed", "note"):
        table.add_column(col, justify="right" if col in ("total", "zeroed") else "left")
    for o in outcomes:
        doc = o.invoice or o.draft
        table.add_row(cell(o.contract_id), cell(o.run_id or "-"), cell(o.status), cell(doc.kind if doc else "-"),
                      cell(o.invoice.number if o.invoice else ("draft" if doc else "-")),
                      cell(f"{money_str(doc.total)} {doc.currency}" if doc else "-"),
                      str(o.missing_intervals) if o.missing_intervals else "",
                      cell("failed, see below" if o.error else (o.note or "")))
    console.print(table)
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    echo(f"{period} ({version}): " + ", ".join(f"{n} {st}" for st, n in counts.items())
         + (" (dry run: nothing stored)" if dry_run else ""))
    for o in outcomes:
        if o.error:
            echo(f"error: {o.contract_id}: {o.error}", err=True)
        for reason in o.held_reasons:
            echo(f"held: {o.contract_id}: {reason}")
        if o.missing_intervals:
            echo(f"note: {o.contract_id}: {o.missing_intervals} intervals without data were counted as 0 kWh "
                 "([settlement] missing = zero)")
    accounts = [a for o in outcomes for a in o.accounts]
    if accounts:
        _print_accounts(accounts)
    if dry_run:
        for o in outcomes:
            if o.draft is not None:
                echo(f"\n{o.contract_id}: draft {o.draft.kind}, {len(o.draft.lines)} lines")
                for ln in o.draft.lines:
                    echo(f"  {ln.number:>3} {ln.description:<44} {money_str(ln.quantity):>14} {ln.unit:<6} "
                         f"x {money_str(ln.unit_price):>12} = {money_str(ln.amount):>14}")
                echo(f"  total {money_str(o.draft.total)} {o.draft.currency} (tax {money_str(o.draft.tax_total)})")


def _print_accounts(rows: list[dict[str, Any]]) -> None:
    """Per buyer: allocated, billed, unbilled with a declared reason, unbilled without one (kWh)."""
    from decimal import Decimal

    agg: dict[str, list[Decimal]] = {}
    for r in rows:
        a = agg.setdefault(r["party"], [Decimal(0)] * 4)
        a[0] += Decimal(r["allocated_kwh"])
        a[1] += Decimal(r["billed_kwh"]) if r["billed_by"] else Decimal(0)
        un = Decimal(r["unbilled_kwh"])
        a[2 if r["declared"] else 3] += un
    table = Table(title="Energy accounting (kWh; `kwhub report energy` has every source)")
    for col in ("buyer", "allocated", "billed", "not billed (declared)", "not billed (unexplained)"):
        table.add_column(col, justify="left" if col == "buyer" else "right")
    for party, a in sorted(agg.items()):
        table.add_row(cell(party), *(f"{v:,.3f}" for v in a))
    console.print(table)


@invoices_app.command("list")
def invoices_list(
    config: Path = typer.Option(None, "--config", "-c", help="kwhub.toml (default: ./kwhub.toml)."),
    contract: str = typer.Option(None, "--contract", help="Only this contract."),
    period: str = typer.Option(None, "--period", help="Only this billing period (YYYY-MM)."),
    fmt: str = format_option("text", "json"),
) -> None:
    """List issued documents; a document whose run's input data changed since is marked stale
    (and, when a later version of its run exists, which run corrects it)."""
    fmt = output_format(fmt, ("text", "json"))
    cfg = _load(config, plugins=False)  # reads only: no plugin imported
    docs = _read_invoices(cfg, contract=contract, period=period)
    stale, later = _staleness_of(cfg, docs)
    if fmt == "json":
        echo(json.dumps([_invoice_json(d, stale.get(d.run_id), later.get(d.run_id)) for d in docs], indent=2))
        return
    table = Table(title="Invoices")
    for col in ("number", "kind", "contract", "buyer", "period", "issued", "total", "references", "run"):
        table.add_column(col)
    for d in docs:
        table.add_row(cell(d.number), cell(d.kind), cell(d.contract_id), cell(d.buyer.id),
                      f"{d.period_start}..{d.period_end}", d.issue_date.isoformat(),
                      cell(f"{money_str(d.total)} {d.currency}"), cell(", ".join(r.number for r in d.references)),
                      _run_state(d.run_id, stale, later))
    console.print(table)
    if any(stale.get(d.run_id) and d.run_id not in later for d in docs):
        console.print(f"[yellow]STALE:[/] {STALE_NOTE} (`kwhub settle --version final`)")


@invoices_app.command("show")
def invoices_show(
    ref: str = typer.Argument(..., help="Invoice id or number."),
    config: Path = typer.Option(None, "--config", "-c", help="kwhub.toml (default: ./kwhub.toml)."),
    fmt: str = format_option("text", "json"),
) -> None:
    """Show one document with its lines, determinants and totals (exact decimal strings)."""
    fmt = output_format(fmt, ("text", "json"))
    cfg = _load(config, plugins=False)  # reads only: no plugin imported
    inv = _read_invoice(cfg, ref)
    flags, later = _staleness_of(cfg, [inv])
    stale = flags.get(inv.run_id)
    data = _invoice_json(inv, stale, later.get(inv.run_id))
    if fmt == "json":
        echo(json.dumps(data, indent=2))
        return
    out = [f"{data['kind']} {data['number']}  {data['seller']} -> {data['buyer']}  "
           f"{data['period_start']}..{data['period_end']}"]
    if stale:
        out.append(f"  stale: corrected by run {later[inv.run_id]}" if inv.run_id in later else f"  STALE: {STALE_NOTE}")
    for ln in data["lines"]:
        out.append(f"  {ln['number']:>3} {ln['description']:<40} {ln['quantity']:>14} {ln['unit']:<6} "
                   f"x {ln['unit_price']:>12} = {ln['amount']:>14}")
    out.append(f"  total {data['total']} {data['currency']} (lines {data['line_total']}, tax {data['tax_total']})")
    echo("\n".join(out))


@invoices_app.command("render")
def invoices_render(
    ref: str = typer.Argument(..., help="Invoice id or number (see `kwhub invoices list`)."),
    fmt: str = typer.Option(..., "--format", help="A renderer's format id: ubl, cii, facturx, x12_810, x12_867, "
                                                  "idoc_invoic02, csv, json, pdf (`kwhub plugins list` shows them)."),
    out: Path = typer.Option(None, "--out", help="Write the document to FILE (default: standard output)."),
    config: Path = typer.Option(None, "--config", "-c", help="kwhub.toml (default: ./kwhub.toml)."),
) -> None:
    """Render an issued document in any installed format.

    The document gets the usage and lineage of its settlement run, and the envelope
    (creation time, EDI control number) recorded when it was first rendered, so a format
    that was delivered comes out byte for byte as delivered. A format never rendered for
    this document is recorded now, so a later delivery of it has the same bytes.
    """
    import sys

    from kwhub.hub.deliver.outbox import OutboxError, renderers_for_formats
    from kwhub.hub.deliver.render_context import render_context
    from kwhub.hub.deliver.rendering import RenderMismatchError, render_document
    from kwhub.hub.registry import get_registry
    from kwhub.hub.settle.invoices_read import get_invoice

    cfg = _load(config)
    try:
        renderer = renderers_for_formats(get_registry(), [fmt], cfg)[fmt]
    except OutboxError as exc:
        raise UserError(str(exc), hint="`kwhub plugins list` shows the installed renderers", exit_code=EXIT_CONFIG) from None
    db = _open_db(cfg, read_only=True)
    try:
        inv = _get(get_invoice, db, ref)
        try:
            ctx = render_context(db, inv, cfg.campus)
            with db.write_transaction() as conn:
                doc = render_document(conn, inv, renderer, ctx)
        except (RenderMismatchError, ValueError) as exc:
            raise UserError(f"invoice {inv.number}: {exc}") from None
    finally:
        db.close()
    problems = renderer.validate(doc.body)
    if out is None:
        sys.stdout.buffer.write(doc.body)
        sys.stdout.buffer.flush()
    else:
        out.write_bytes(doc.body)
        typer.echo(f"wrote {out} ({len(doc.body)} bytes, {fmt}, sha256 {doc.sha256[:16]}...)", err=True)
    if problems:
        for p in problems:
            typer.echo(f"warning: {p}", err=True)
        raise typer.Exit(1)


def _get(fn: Any, db: Any, ref: str) -> Any:
    from kwhub.core.settlement import SettlementError

    try:
        return fn(db, ref)
    except SettlementError as exc:
        raise UserError(str(exc)) from None


def explain_command(
    invoice: str = typer.Argument(..., help="Invoice id or number."),
    line: int = typer.Option(None, "--line", help="Line number (default: every line)."),
    config: Path = typer.Option(None, "--config", "-c", help="kwhub.toml (default: ./kwhub.toml)."),
    fmt: str = format_option("text", "json"),
    carbon: bool = typer.Option(False, "--carbon",
                                help="Explain the line's kg CO2e instead: its intervals, sources, factors, editions "
                                     "and GWP set, recomputed from what the run froze."),
    market_interval: str = typer.Option(None, "--market-interval",
                                        help="For a market revenue credit line: walk one statement interval "
                                             "(DAY:CODE:RESOURCE:LABEL, as the explanation lists them) back to "
                                             "its bid, award, metered delivery and ISO price."),
) -> None:
    """Explain invoice lines: determinants, intervals, data versions and hashes, prices, allocation,
    the review checks (with --carbon: the emissions behind each energy line).

    The run is shown as STALE when its input data was restated or deleted since it was settled.
    """
    from kwhub.core.explain import ExplainError, explain_line, render_text
    from kwhub.hub.settle.invoices_read import get_invoice
    from kwhub.hub.settle.runs_read import get_run, run_allocation, run_inputs, stale_flags

    fmt = output_format(fmt, ("text", "json"))
    cfg = _load(config)
    db = _open_db(cfg, read_only=True)
    if carbon:
        try:
            _explain_carbon(db, cfg, invoice, line, fmt)
        finally:
            db.close()
        return
    try:
        inv = _get(get_invoice, db, invoice)
        stale_flags(db, [inv.run_id])
        run = get_run(db, inv.run_id)
        inputs = run_inputs(db, inv.run_id)
        alloc = run_allocation(db, inv.run_id)
        numbers = [line] if line is not None else [ln.number for ln in inv.lines]
        try:
            exps = [explain_line(inv, n, run, inputs, alloc) for n in numbers]
        except ExplainError as exc:
            raise UserError(str(exc)) from None
        market = _explain_market_credits(db, cfg, inv, numbers, str(run["period"]), market_interval)
    finally:
        db.close()
    for e in exps:
        if e["line"]["number"] in market:
            e["market"] = market[e["line"]["number"]]
    if fmt == "json":
        echo(json.dumps(exps[0] if line is not None else exps, indent=2, default=str))
    else:
        from kwhub.hub.markets.credit import render_credit_text

        echo("\n\n".join(render_text(e) + ("\n" + render_credit_text(e["market"]) if "market" in e else "")
                          for e in exps))


def _explain_market_credits(db: Any, cfg: Any, inv: Any, numbers: list[int], period: str,
                            interval: str | None) -> dict[int, Any]:
    """The market walk-back of the market revenue credit lines among ``numbers``."""
    from kwhub.hub.markets.credit import credit_sections
    from kwhub.hub.markets.service import MarketServiceError

    lines = [ln for ln in inv.lines if ln.number in numbers and ln.charge_type == "market_credit"]
    if interval is not None and len(lines) != 1:
        raise UserError("--market-interval needs --line N of one market revenue credit line")
    try:
        return credit_sections(db, cfg, lines, period, interval)
    except (MarketServiceError, KeyError, ValueError) as exc:
        raise UserError(str(exc)) from None


def _explain_carbon(db: Any, cfg: Any, invoice: str, line: int | None, fmt: str) -> None:
    from kwhub.core.carbon_explain import explain_line_carbon, render_carbon_text
    from kwhub.core.explain import ExplainError
    from kwhub.hub.esg.explain import line_carbon_inputs
    from kwhub.hub.settle.invoices_read import get_invoice

    inv = _get(get_invoice, db, invoice)
    try:
        statement, activity, factors, intensity, split = line_carbon_inputs(db, cfg, inv)
        numbers = [line] if line is not None else [ln.number for ln in inv.lines if ln.emissions is not None]
        if not numbers:
            raise ExplainError(f"invoice {inv.number} has no line with emissions (no allocated energy billed)")
        exps = [explain_line_carbon(inv, n, statement, activity, factors, intensity, split) for n in numbers]
    except (ExplainError, ValueError) as exc:
        raise UserError(str(exc)) from None
    if fmt == "json":
        echo(json.dumps(exps[0] if line is not None else exps, indent=2))
    else:
        echo("\n\n".join(render_carbon_text(e) for e in exps))


def register(app: typer.Typer) -> None:
    """Add ``settle``, ``invoices`` (list, show) and ``explain``."""
    app.command("settle")(settle_command)
    app.add_typer(invoices_app, name="invoices")
    app.command("explain")(explain_command)
