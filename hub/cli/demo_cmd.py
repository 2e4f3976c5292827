"""``kwhub demo``: simulate, ingest, validate, settle, invoice, deliver and report."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from kwhub.hub.cli.options import format_option, json_alias, output_format
from kwhub.hub.cli.output import cell, console, echo, safe, wide_console


def demo(
    directory: Path = typer.Option(Path("kwhub-demo"), "--dir", help="Working directory for the demo's files."),
    fmt: str = format_option("text", "json"), as_json: bool = json_alias(),
) -> None:
    """Run the whole meter-to-cash path on a simulated campus (no configuration needed).

    Simulates September-October 2026 for a campus with three tenant data halls, two gas
    turbines, six engines, 80 MW solar, a 200 MWh battery and a grid tie; ingests it
    through the CSV, Green Button and Modbus adapters; validates it; settles one PPA per
    tenant; issues invoices (and an adjustment after a late meter correction); delivers
    them as UBL to a folder and JSON to a local webhook; writes owner statements; offers the
    campus's surplus for one day on a local ERCOT, fetches the awards, prices and statements
    (one with an injected meter variance, then a price-corrected resettlement) and shows the
    variance report and the owners' market revenue; issues the solar plant's granular
    certificates to the tenants and writes every disclosure for each tenant (GHG inventory,
    CDP, ESRS inline XBRL checked with Arelle, SB 253). Running it
    again changes nothing.
    """
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from kwhub.hub.demo.run import run_demo, summary_json

    as_json = output_format(fmt, ("text", "json"), as_json) == "json"

    if as_json:
        summary = run_demo(directory)
        echo(summary_json(summary))
        return
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("starting", total=None)
        summary = run_demo(directory, progress=lambda msg: bar.update(task, description=safe(msg)))
    _print(summary)


def check_label(problems: list[str]) -> str:
    """How the demo names a disclosure check's outcome: a validator that is not installed
    (every problem says the files were "not validated") did not run, which is not a failure."""
    if problems and all("not validated:" in p for p in problems):
        return "check not run"
    return "check FAILED" if problems else "check passed"


def _rel(path: str, base: Path) -> str:
    try:
        return str(Path(path).relative_to(base))
    except ValueError:
        return path


def _print(summary) -> None:  # type: ignore[no-untyped-def]
    out = wide_console(120)
    base = summary.work_dir
    out.print(f"[bold]kwhub demo[/] in {safe(base)}  (config {safe(summary.config.name)}, "
              f"database {safe(summary.database)})")
    ing = Table(title="Ingest (CSV, Green Button, Modbus)")
    for col in ("file", "adapter", "intervals", "new days", "changed", "unchanged"):
        ing.add_column(col)
    shown = summary.ingest if len(summary.ingest) <= 8 else summary.ingest[:3] + summary.ingest[-5:]
    for r in shown:
        ing.add_row(cell(r["file"]), cell(r["adapter"]), str(r["intervals"]), str(r["new_days"]),
                    str(r["changed_days"]), str(r["unchanged_days"]))
    if len(summary.ingest) > len(shown):
        ing.caption = f"{len(summary.ingest)} files in all; a second run finds every day unchanged"
    out.print(ing)
    vee = Table(title="VEE (validation, estimation, editing) on the injected faults")
    vee.caption = "`kwhub vee report` shows the same figures"
    for col in ("rule", "flagged", "estimated", "edited"):
        vee.add_column(col)
    for rule, c in sorted(summary.vee.items()):
        vee.add_row(cell(rule), str(c.get("flagged", 0)), str(c.get("estimated", 0)), str(c.get("edited", 0)))
    out.print(vee)
    if summary.review:
        rev = Table(title="Review gate: runs held for a person, and the decision")
        for col in ("run", "held because", "decision"):
            rev.add_column(col, overflow="fold")
        for r in summary.review:
            rev.add_row(r["run"], "\n".join(r["held_reasons"]),
                        f"{r['decision']} by {r['by']} ({r['invoice']}): {r['reason']}")
        out.print(rev)
    if summary.energy:
        from decimal import Decimal

        agg: dict[str, list[Decimal]] = {}
        for p in summary.energy["parties"]:
            a = agg.setdefault(p["party"], [Decimal(0)] * 3)
            a[0] += Decimal(p["allocated_kwh"])
            a[1] += Decimal(p["billed_kwh"])
            a[2] += Decimal(p["unbilled_kwh"])
        en = Table(title=f"Energy accounting {summary.energy['period']} (MWh; `kwhub report energy` for every source)")
        for col in ("tenant", "allocated", "billed", "not billed"):
            en.add_column(col, justify="left" if col == "tenant" else "right")
        for party, a in sorted(agg.items()):
            en.add_row(party, *(f"{v / 1000:,.3f}" for v in a))
        en.caption = f"unexplained: {Decimal(summary.energy['unexplained_kwh']):,.3f} kWh"
        out.print(en)
    inv = Table(title="Invoices")
    for col in ("number", "kind", "tenant", "contract", "period", "total", "references"):
        inv.add_column(col)
    for r in summary.invoices:
        inv.add_row(cell(r["number"]), cell(r["kind"]), cell(r["tenant"]), cell(r["contract"]), cell(r["period"]),
                    cell(f"{r['total']} {r['currency']}"), cell(", ".join(r["references"])))
    out.print(inv)
    dl = Table(title=cell(f"Deliveries (outbox: {', '.join(f'{k} {v}' for k, v in summary.outbox.items())})"))
    for col in ("number", "format", "transport", "status", "where"):
        dl.add_column(col)
    for r in summary.invoices:
        for o in r["outputs"]:
            dl.add_row(cell(r["number"]), cell(o["format"]), cell(o["transport"]), cell(o["status"]),
                       cell(_rel(o["target"], base)))
    out.print(dl)
    if summary.owners:
        own = Table(title="Owner statements (revenue follows the energy through every contract)")
        for col in ("owner", "revenue by asset", "revenue", "costs", "net"):
            own.add_column(col, justify="right" if col in ("revenue", "costs", "net") else "left", overflow="fold")
        for party, o in summary.owners.items():
            own.add_row(party, ", ".join(f"{a} {v}" for a, v in o["revenue_by_asset"].items()), o["revenue"],
                        o["costs"], o["net"])
        out.print(own)
    if summary.market_day:
        _print_market_day(out, summary.market_day)
    files = Table(title="Other outputs")
    files.add_column("what")
    files.add_column("where")
    for p in summary.owner_statements:
        files.add_row("owner statement", cell(_rel(p, base)))
    for p in summary.emissions:
        files.add_row(cell(f"disclosure ({Path(p).name.split('-')[0]})"), cell(_rel(p, base)))
    for fmt, problems in summary.esg_checks.items():
        if problems:
            files.add_row(cell(f"{fmt} {check_label(problems)}"), cell("; ".join(problems)[:200]))
    files.add_row("webhook receiver log", cell(_rel(summary.webhook_records, base)))
    if summary.modbus:
        files.add_row("Modbus poll", cell(", ".join(f"{k}={v}" for k, v in summary.modbus.items())))
    if summary.market:
        files.add_row("market (LMP file)", cell(", ".join(f"{k}={v}" for k, v in summary.market.items())))
    out.print(files)


def _print_market_day(out: Console, md: dict) -> None:  # type: ignore[type-arg]
    sub = md.get("submission") or {}
    title = (f"Market day {md['day']} on the local {md['iso']}: {md['resource']} offered day-ahead, "
             f"submission {sub.get('status', '-')}, awarded {md['awarded_mwh']} MWh")
    st = Table(title=title)
    for col in ("statement", "kind", "total (ISO sign)", "variance lines (shadow - ISO, cause)", "changed vs previous"):
        st.add_column(col, overflow="fold")
    for s in md["statements"]:
        st.add_row(escape(s["id"]), s["kind"], s["total"],
                   "\n".join(f"{v['code']} {v['interval']}: {v['shadow']} - {v['iso']} = {v['variance']} ({v['cause']})"
                             for v in s["variance_lines"]) or "none",
                   "\n".join(f"{d['code']} {d['interval']}: {d['previous']} -> {d['current']} (net {d['net']})"
                             for d in s["deltas"]) or "-")
    st.caption = (f"market revenue {md['revenue']} (sign flipped once) to the owners of gt1: "
                  + ", ".join(f"{p} {v}" for p, v in md["owners"].items())
                  + "; `kwhub market variance --iso ERCOT --day " + md["day"] + "` for the full report")
    out.print(st)


def register(app: typer.Typer) -> None:
    """Add the demo command."""
    app.command("demo")(demo)
