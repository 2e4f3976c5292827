"""Delivery commands: ``kwhub deliver``, ``kwhub outbox list``, ``kwhub outbox retry``."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from kwhub.hub.cli.common import load, open_db
from kwhub.hub.cli.errors import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_INTEGRITY,
    EXIT_INTERRUPTED,
    UserError,
)
from kwhub.hub.cli.options import format_option, json_alias, output_format
from kwhub.hub.cli.output import cell, console, echo, err_console, log_handler, safe

outbox_app = typer.Typer(help="Inspect and repair the invoice outbox.", no_args_is_help=True)

CONFIG_OPTION = typer.Option(None, "--config", "-c", help="Path to kwhub.toml (default: ./kwhub.toml).")
RELAY_LOGGERS = ("kwhub.outbox", "kwhub.sftp")


def _open(config: Path | None, *, plugins: bool = True, migrate: bool = True) -> tuple[Any, Any]:
    cfg = load(config, plugins=plugins)
    return cfg, open_db(cfg, read_only=True, migrate=migrate)  # delivering and listing never create a database


@contextmanager
def _relay_logging(verbose: bool) -> Iterator[None]:
    """Show the relay's and transports' warnings (and with ``verbose`` the retries) on stderr."""
    handler = log_handler(err_console)
    saved = []
    for name in RELAY_LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level, logger.propagate))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO if verbose else logging.WARNING)
        logger.propagate = False
    try:
        yield
    finally:
        for logger, level, propagate in saved:
            logger.removeHandler(handler)
            logger.setLevel(level)
            logger.propagate = propagate


def _outbox_line(counts: dict[str, int]) -> str:
    """What is left to deliver, never hiding rows in flight: ``2 to deliver (1 pending, 1 in
    flight), 0 dead`` or ``nothing left to deliver, 0 dead``."""
    pending, sending, dead = counts.get("pending", 0), counts.get("sending", 0), counts.get("dead", 0)
    if pending + sending == 0:
        return f"nothing left to deliver, {dead} dead"
    parts = [f"{n} {label}" for n, label in ((pending, "pending"), (sending, "in flight")) if n]
    return f"{pending + sending} to deliver ({', '.join(parts)}), {dead} dead"


def deliver(
    invoice: str = typer.Argument(None, help="Send this issued document again (id or number); needs --route."),
    route: str = typer.Option(None, "--route", help="With INVOICE: the transport instance to send it through."),
    formats: list[str] = typer.Option(None, "--doc-format", help="With INVOICE: the document format(s) to send "
                                                                 "(default: what the buyer receives through --route)."),
    new_key: bool = typer.Option(False, "--new-key", help="With INVOICE: a new idempotency key (and EDI control "
                                                          "number), so a receiver that deduplicates imports it again."),
    config: Path = CONFIG_OPTION,
    once: bool = typer.Option(False, "--once", help="One pass: deliver what is due now, print the summary and exit. "
                                                    "Without it kwhub deliver runs as a daemon until Ctrl-C."),
    limit: int = typer.Option(100, "--batch", min=1, help="Rows claimed per pass."),
    concurrency: int = typer.Option(1, "--concurrency", min=1, max=64, help="Documents sent at a time."),
    poll: float = typer.Option(2.0, "--poll", min=0.05, help="Seconds between passes when idle."),
    fmt: str = format_option("text", "json"), as_json: bool = json_alias(),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every retry."),
) -> None:
    """Send queued invoices through their transports (at least once, idempotency-keyed).

    Two modes. `kwhub deliver --once` makes one pass over what is due now, prints a
    summary (delivered, retrying later, dead, what is left in the outbox) and exits: for
    cron or by hand. `kwhub deliver` without --once is a daemon: it says so, polls every
    --poll seconds, prints one summary line per pass that did something (on standard
    error), and runs until Ctrl-C (exit 130), then prints the totals. `kwhub serve` runs
    the same relay on its schedule.

    With INVOICE --route NAME it queues that issued document again for one route instead
    (an ERP that lost a file, a new ERP): same bytes and key, or with --new-key a new key;
    `kwhub deliver --once` then sends it.

    Before each send the body is checked against the issued document; a body that does not
    match is dead-lettered (never sent) and reported. Each send ends by its deadline
    (retry.deadline_s, shorter than the lease). Rows "in flight" are claimed by a relay;
    after a crash they are picked up again once their lease runs out.
    """
    as_json = output_format(fmt, ("text", "json"), as_json) == "json"
    if invoice is not None or route is not None:
        _queue_again(config, invoice, route, formats or [], new_key)
        return
    from kwhub.hub.deliver.outbox import (
        close_transports,
        count_due,
        run_relay,
        status_counts,
        transports_from_config,
    )
    from kwhub.hub.registry import get_registry

    cfg = load(config)
    transports = transports_from_config(cfg)
    if not transports:
        raise UserError(f"{cfg.source}: no transport adapters (erp.webhook, erp.sftp, erp.folder) are configured",
                        hint='add an adapters entry with type "erp.webhook", "erp.sftp" or "erp.folder" and '
                             "name its id in the parties' delivery.transports",
                        exit_code=EXIT_CONFIG)
    try:
        db = open_db(cfg, read_only=True)  # delivering never creates a database
    except BaseException:
        close_transports(transports)
        raise
    stop = threading.Event()
    passes = [0]
    totals = {"delivered": 0, "retried": 0, "dead": 0}

    def pass_line(rep: Any) -> None:
        """One line per pass that did something (daemon mode), so a long run shows its work."""
        passes[0] += 1
        for key in totals:
            totals[key] += getattr(rep, key)
        line = (f"pass {passes[0]}: delivered {rep.delivered}, retrying later {rep.retried}, dead {rep.dead}"
                f" (outbox: {_outbox_line(status_counts(db))})")
        echo(line, err=True)

    try:
        due = count_due(db, transports)
        if not once and not as_json:
            echo(f"kwhub deliver: delivering through {', '.join(sorted(transports))}; {due} due now; "
                 f"polling every {poll:g} s until Ctrl-C (--once: one pass, then exit)", err=True)
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        with Progress(TextColumn("[bold]delivering"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                      TimeElapsedColumn(), console=err_console, transient=True,
                      disable=as_json or not once) as progress:
            task = progress.add_task("deliver", total=due or None, info="")

            def advance(rep: Any) -> None:
                done = progress.tasks[0].completed + rep.delivered + rep.dead
                total = max(progress.tasks[0].total or 0, done + count_due(db, transports))
                progress.update(task, completed=done, total=total,
                                info=f"retrying {rep.retried}" if rep.retried else "")
                if not once and not as_json:
                    pass_line(rep)

            try:
                with _relay_logging(verbose):
                    report = run_relay(db, get_registry(), transports, once=once, limit=limit, poll_s=poll,
                                       concurrency=concurrency, stop=stop, progress=advance)
            except KeyboardInterrupt:
                stop.set()
                if not once and not as_json:
                    echo(f"stopped after {passes[0]} pass(es) that did something: delivered {totals['delivered']}, "
                         f"retrying later {totals['retried']}, dead {totals['dead']} "
                         f"(outbox: {_outbox_line(status_counts(db))})", err=True)
                raise typer.Exit(EXIT_INTERRUPTED) from None
        counts = status_counts(db)
    finally:
        close_transports(transports)
        db.close()
    summary = {**report.as_dict(), "outbox": counts}
    if as_json:
        echo(json.dumps(summary, indent=2))
        if report.refused:
            raise typer.Exit(EXIT_INTEGRITY)
        return
    console.print(
        ("" if once else "stopped; in all: ")
        + f"delivered {report.delivered}, retrying later {report.retried}, dead {report.dead}"
        f" (outbox: {_outbox_line(counts)})"
        + (f", possible duplicates {len(report.possible_duplicates)}" if report.possible_duplicates else "")
    )
    for refused in report.refused:
        console.print(f"[bold red]refused, not sent:[/] {safe(refused)}")
    if report.refused:
        console.print("[yellow]a queued body no longer matches the issued document; run `kwhub verify`[/]")
    if counts.get("sending"):
        console.print(f"[yellow]{counts['sending']} row(s) in flight:[/] claimed by a relay (this one or another); "
                      "`kwhub outbox list --status sending` shows them")
    if report.dead:
        console.print("[yellow]see `kwhub outbox list --status dead`; fix the cause, then `kwhub outbox retry ID`[/]")
    if report.refused:
        raise typer.Exit(EXIT_INTEGRITY)
    if report.dead and not report.delivered:
        raise typer.Exit(EXIT_FAILED)


def _queue_again(config: Path | None, invoice: str | None, route: str | None, formats: list[str],
                 new_key: bool) -> None:
    from kwhub.core.settlement import SettlementError
    from kwhub.hub.deliver.outbox import (
        OutboxError,
        redeliver,
        renderers_for_formats,
        transports_from_config,
    )
    from kwhub.hub.deliver.render_context import render_context
    from kwhub.hub.registry import get_registry
    from kwhub.hub.settle.invoices_read import get_invoice

    if not invoice or not route:
        raise UserError("give both the document and the route: kwhub deliver INVOICE --route TRANSPORT",
                        exit_code=EXIT_CONFIG)
    cfg, db = _open(config)
    try:
        transports = transports_from_config(cfg)
        if route not in transports:
            raise UserError(f"{cfg.source}: no enabled transport instance {route!r} "
                            f"(configured: {', '.join(sorted(transports)) or 'none'})", exit_code=EXIT_CONFIG)
        try:
            inv = get_invoice(db, invoice)
        except SettlementError as exc:
            raise UserError(str(exc)) from None
        if not formats:
            try:
                pairs = cfg.campus.party(inv.buyer.id).delivery.pairs()
            except KeyError:
                pairs = []
            formats = [f for f, t in pairs if t == route] or [f for f, _ in pairs]
            if not formats:
                raise UserError(f"party {inv.buyer.id!r} receives no format; say which with --format",
                                exit_code=EXIT_CONFIG)
        try:
            renderers = renderers_for_formats(get_registry(), formats, cfg)
            ctx = render_context(db, inv, cfg.campus)
            with db.write_transaction() as conn:
                queued = [redeliver(conn, inv, renderers[f], route, new_key=new_key, context=ctx) for f in formats]
        except (OutboxError, ValueError) as exc:
            raise UserError(str(exc), exit_code=EXIT_CONFIG) from None
    finally:
        close_transports_safely(locals().get("transports"))
        db.close()
    for q in queued:
        console.print(f"queued {inv.number} {q.format_id} for {q.transport_instance} "
                      f"(outbox row {q.id}, key {q.idempotency_key}); `kwhub deliver --once` sends it")


def close_transports_safely(transports: Any) -> None:
    """Close transports built for a command that only queues (they may hold connections)."""
    if transports:
        from kwhub.hub.deliver.outbox import close_transports

        close_transports(transports)


def _when(value: datetime | None) -> str:
    """A time for people, with its zone (the outbox keeps UTC)."""
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _invoice_numbers(db: Any, ids: set[str]) -> dict[str, str]:
    """``{invoice id: number}``: rows are shown by the number on the document, not the internal id."""
    if not ids:
        return {}
    from sqlalchemy import select

    from kwhub.hub.store.settlement_tables import invoice_table as t

    with db.engine.connect() as conn:
        return {r.id: r.number for r in conn.execute(select(t.c.id, t.c.number).where(t.c.id.in_(sorted(ids))))}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def outbox_list(
    config: Path = CONFIG_OPTION,
    status: str = typer.Option(None, "--status", help="pending, sending (in flight), delivered or dead."),
    fmt: str = format_option("text", "json"),
    limit: int = typer.Option(200, "--limit", min=1, help="Newest rows to show."),
) -> None:
    """List outbox rows (newest first), with the number of rows in each state.

    Rows are shown by invoice number; times are UTC. A row in flight (status sending) is
    "sending" (the transport is working on it), "claimed" (a relay took it and has not
    started), or "stalled": its relay stopped; once the lease runs out it is sent again,
    flagged a possible duplicate if its send had started.
    """
    from kwhub.hub.deliver.outbox import OutboxError, list_outbox, status_counts

    fmt = output_format(fmt, ("text", "json"))
    _, db = _open(config, plugins=False, migrate=False)  # reads only: no plugin imported, no migration
    try:
        rows = list_outbox(db, status=status, limit=limit)
        counts = status_counts(db)
        numbers = _invoice_numbers(db, {r["invoice_id"] for r in rows})
    except OutboxError as exc:
        raise UserError(str(exc), exit_code=EXIT_CONFIG) from None
    finally:
        db.close()
    if fmt == "json":
        out = [{k: (_iso(v) if isinstance(v, datetime) else v) for k, v in r.items()}
               | {"invoice_number": numbers.get(r["invoice_id"])} for r in rows]
        echo(json.dumps(out, indent=2))
        return
    table = Table(title=cell(f"outbox ({len(rows)} rows shown; {_outbox_line(counts)}, "
                             f"{counts.get('delivered', 0)} delivered)"))
    for col in ("row", "invoice", "v", "format", "transport", "status", "attempts", "next attempt / lease (UTC)",
                "last", "error"):
        table.add_column(col)
    colour = {"delivered": "green", "dead": "red", "sending": "yellow", "pending": "cyan"}
    for r in rows:
        state = r["status"] + (f" ({r['flight']})" if r["flight"] else "") + (" (dup?)" if r["possible_duplicate"]
                                                                             else "")
        table.add_row(
            str(r["id"]), cell(numbers.get(r["invoice_id"], r["invoice_id"])), str(r["invoice_version"]),
            cell(r["format_id"]),
            cell(r["transport_instance"]), cell(state, colour.get(r["status"], "")), str(r["attempts"]),
            _when(r["next_attempt_at"]) if r["status"] in ("pending", "sending") else "",
            str(r["last_status"] or ""), cell((r["last_error"] or "")[:80]),
        )
    console.print(table)


def outbox_retry(
    row_id: int = typer.Argument(..., help="Outbox row id (see `kwhub outbox list --status dead`)."),
    config: Path = CONFIG_OPTION,
) -> None:
    """Send a dead-lettered document again (dead -> pending, attempts reset)."""
    from kwhub.hub.deliver.outbox import OutboxError, retry_dead

    _, db = _open(config)
    try:
        retry_dead(db, row_id)
    except OutboxError as exc:
        raise UserError(str(exc), hint="`kwhub outbox list --status dead` shows the dead rows") from None
    finally:
        db.close()
    console.print(f"outbox row {row_id} is pending again; `kwhub deliver --once` sends it")


def register(app: typer.Typer) -> None:
    """Add ``deliver`` and the ``outbox`` group to ``app``."""
    app.command("deliver")(deliver)
    outbox_app.command("list")(outbox_list)
    outbox_app.command("retry")(outbox_retry)
    app.add_typer(outbox_app, name="outbox")
