"""``kwhub verify``: check the hash chain, numbering, outbox bodies and run inputs."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from kwhub.hub.cli.common import load, open_db
from kwhub.hub.cli.errors import EXIT_CONFIG, EXIT_INTEGRITY, UserError
from kwhub.hub.cli.options import format_option, output_format
from kwhub.hub.cli.output import cell, console, echo


def verify_command(
    config: Path = typer.Option(None, "--config", "-c", help="kwhub.toml (default: ./kwhub.toml)."),
    anchor: Path = typer.Option(None, "--anchor",
                                help="JSON file kept outside the database with each seller's chain head: checked "
                                     "when it exists, written (or moved forward) when nothing is broken."),
    fmt: str = format_option("text", "json"),
) -> None:
    """Verify the evidence: every issued document, its number, every outbox body, every run.

    Walks each seller's hash chain (document hashes and links), the numbering (no gaps, no
    jumps, the sequence where it should be), every queued or delivered outbox body against
    the issued document, the run statements and the interval data they read, and the
    database protections (triggers in place; on PostgreSQL, whether the connected role
    could switch them off). Every break names the document, row or run it concerns.

    Exit 0 when nothing is broken (warnings may be printed), 3 when something is. Run it
    daily with --anchor pointing at a file outside the database (another machine, a
    write-once bucket): the anchor catches a consistent rewrite of the newest documents or
    emptied tables, which no check inside the database can. (The scheduler of issue 14 is
    meant to run it; until then, cron.)
    """
    from kwhub.hub.settle.verify import read_anchor, verify, write_anchor

    fmt = output_format(fmt, ("text", "json"))
    try:
        saved = read_anchor(anchor) if anchor is not None else None
    except ValueError as exc:
        raise UserError(str(exc), hint="give the file a previous `kwhub verify --anchor` wrote",
                        exit_code=EXIT_CONFIG) from None
    cfg = load(config)
    db = open_db(cfg, read_only=True)
    try:
        report = verify(db, anchor=saved)
    finally:
        db.close()
    if anchor is not None and report.ok:
        write_anchor(anchor, report)
    if fmt == "json":
        echo(json.dumps(report.as_dict(), indent=2))
    else:
        checked = ", ".join(f"{n} {what.replace('_', ' ')}" for what, n in report.checked.items())
        if report.findings:
            table = Table(title=cell(f"kwhub verify: {len(report.breaks)} break(s), {len(report.warnings)} warning(s)"))
            for col in ("", "check", "concerns", "problem"):
                table.add_column(col)
            for f in report.breaks + report.warnings:
                table.add_row(cell("BREAK", "bold red") if f.severity == "break" else cell("warn", "yellow"),
                              cell(f.check), cell(f.subject), cell(f.problem))
            console.print(table)
        status = "[bold red]broken[/]" if not report.ok else "[green]intact[/]"
        console.print(f"evidence {status}; checked {checked}")
        for seller, head in sorted(report.heads.items()):
            console.print(cell(f"  head of {seller}: {head['number']} (#{head['number_seq']}) {head['chain_sha256']}"))
        if anchor is not None:
            console.print(cell(f"anchor {anchor} {'updated' if report.ok else 'left as it was'}"))
    if not report.ok:
        raise typer.Exit(EXIT_INTEGRITY)


def register(app: typer.Typer) -> None:
    """Add ``verify``."""
    app.command("verify")(verify_command)
