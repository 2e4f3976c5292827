"""``kwhub market ...`` and ``kwhub market-sim``: bid, fetch, check and explain ISO market days."""

from __future__ import annotations

import json
import time
from datetime import date
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from kwhub.hub.cli.errors import EXIT_CONFIG, UserError
from kwhub.hub.cli.options import format_option, json_alias, output_format
from kwhub.hub.cli.output import cell, clean, console, row

market_app = typer.Typer(
    help="ISO/RTO markets: build and submit day-ahead offers, fetch awards, prices and statements, "
    "shadow-settle them and explain a line.\n\nA day runs: `market bid --submit`, `market poll`, "
    "`market fetch`, `market variance`. `kwhub market-sim ERCOT` starts a local ERCOT to try it on.",
    no_args_is_help=True)
_CONFIG = typer.Option(None, "--config", "-c", help="kwhub.toml (default: ./kwhub.toml).")
_ISO = typer.Option(..., "--iso", help="ERCOT, CAISO or PJM (an ISO with an adapter in [markets.adapters]).")
_DAY = typer.Option(..., "--day", help="Operating (trading) day YYYY-MM-DD, in the ISO's time zone.")


def _open(config: Path | None):  # noqa: ANN202 - (config, database)
    from kwhub.hub.config import load_config
    from kwhub.hub.store import Database

    cfg = load_config(config)
    return cfg, Database.open(cfg.database_url, work_dir=cfg.work_dir)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UserError(f"--day {text!r} is not YYYY-MM-DD", exit_code=EXIT_CONFIG) from None


def _market_errors() -> tuple[type[BaseException], ...]:
    from kwhub.core.adapters import AdapterError
    from kwhub.core.intervals import IntervalDataError
    from kwhub.core.markets.bid_builder import GuardrailError
    from kwhub.core.markets.curve_rules import CurveRuleError
    from kwhub.core.markets.optimizer import OptimizerError
    from kwhub.core.markets.shadow import ShadowInputError
    from kwhub.hub.markets.service import MarketServiceError
    from kwhub.hub.markets.store import MarketStoreError

    return (AdapterError, GuardrailError, CurveRuleError, OptimizerError, ShadowInputError, MarketServiceError,
            MarketStoreError, IntervalDataError, KeyError)


def _guard(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except _market_errors() as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        raise UserError(str(msg)) from None


@market_app.command("bid")
def bid_command(iso: str = _ISO, day: str = _DAY,
                resource: str = typer.Option(..., "--resource", help="A resource of [[markets.resources]]."),
                submit: bool = typer.Option(False, "--submit", help="Submit the offer to the ISO (else only show it)."),
                market: str = typer.Option("DA", "--market", help="DA (day-ahead) or RT (real-time: forecast on the "
                                           "ISO's RT grain, hourly offers from each hour's tightest interval)."),
                fmt: str = format_option("text", "json"), as_json: bool = json_alias(),
                config: Path = _CONFIG) -> None:
    """Build the day-ahead (or real-time) energy offer of a resource: forecast the surplus (units
    with outages, solar, battery, load by persistence, reserve), optimise the dispatch, turn it into
    offer curves and check them against the ISO's curve rules and the guardrails. Nothing that would
    need tenant load leaves."""
    as_json = output_format(fmt, ("text", "json"), as_json) == "json"
    from kwhub.hub.markets.forecast import build_day_bids, build_rt_bids
    from kwhub.hub.markets.service import submit_bids

    if market.upper() not in ("DA", "RT"):
        raise UserError(f"--market must be DA or RT, not {market!r}")
    cfg, db = _open(config)
    try:
        build = build_day_bids if market.upper() == "DA" else build_rt_bids
        built = _guard(build, db, cfg, iso, _day(day), resource)
        if as_json:
            typer.echo(json.dumps({"bids": [b.model_dump(mode="json") for b in built.bids], "notes": built.notes},
                                  indent=2))
        else:
            for b in built.bids:
                t = Table(title=cell(f"{iso} {b.market} offer {b.resource} {b.trading_date}"))
                t.add_column("hour (UTC start)")
                t.add_column("points (MW @ $/MWh)")
                for c in b.curves:
                    row(t, c.start.strftime("%Y-%m-%d %H:%M"), ", ".join(f"{p.mw}@{p.price}" for p in c.points))
                console.print(t)
            for n in built.notes:
                console.print(escape(n), highlight=False)
        if submit and built.bids:
            sid, sub = _guard(submit_bids, db, cfg, iso, built.bids)
            typer.echo(f"submission {sid}: {sub.status.value} {sub.iso_ref}")
            for o in sub.outcomes:
                for e in o.errors:
                    typer.echo(f"  {o.bid_id}: {e}")
        elif not built.bids:
            typer.echo("no offer: the surplus stays under the ISO minimum in every hour")
    finally:
        db.close()


@market_app.command("poll")
def poll_command(submission: str = typer.Argument(..., help="A submission id from `market bid --submit`."),
                 config: Path = _CONFIG) -> None:
    """Ask the ISO where a submission stands (submitted, accepted, partly accepted, rejected)."""
    from kwhub.hub.markets.service import poll_submission

    cfg, db = _open(config)
    try:
        sub = _guard(poll_submission, db, cfg, submission)
    finally:
        db.close()
    typer.echo(f"{submission}: {sub.status.value}")
    for o in sub.outcomes:
        typer.echo(f"  {o.bid_id} {o.status.value} {o.iso_ref} {'; '.join(o.errors)}")


@market_app.command("fetch")
def fetch_command(iso: str = _ISO, day: str = _DAY, config: Path = _CONFIG) -> None:
    """Fetch and store the day's awards (real-time ones too where the adapter takes RT bids), DA and RT prices (a changed price day is stored as a new
    version) and every statement version the ISO has issued."""
    from kwhub.hub.markets.service import fetch_market_day

    cfg, db = _open(config)
    try:
        rep = _guard(fetch_market_day, db, cfg, iso, _day(day))
    finally:
        db.close()
    typer.echo(f"awards: {rep.awards} resource-day(s)" + (f", real-time {rep.rt_awards}" if rep.rt_awards else ""))
    for msg in rep.over_offer:
        typer.echo(f"ALERT: {msg}", err=True)
    for market, counts in rep.prices.items():
        typer.echo(f"{market} prices: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    typer.echo(f"statements: new {', '.join(rep.statements_new) or '-'}; already stored "
               f"{', '.join(rep.statements_known) or '-'}")


@market_app.command("variance")
def variance_command(iso: str = _ISO, day: str = _DAY,
                     statement: str = typer.Option(None, "--statement", help="Only this statement id."),
                     fmt: str = format_option("text", "json"), as_json: bool = json_alias(),
                     config: Path = _CONFIG) -> None:
    """Shadow-settle the day from kwhub's own meter data, awards and ISO prices, and compare it
    with every statement version: per charge code the totals, every line outside the tolerance
    with its cause (price, quantity, timing, formula), and what each version changed against the
    one before it (previous, current, net)."""
    as_json = output_format(fmt, ("text", "json"), as_json) == "json"
    from kwhub.hub.markets.service import variance_as_json, variance_for_day

    cfg, db = _open(config)
    try:
        checks = _guard(variance_for_day, db, cfg, iso, _day(day), statement)
    finally:
        db.close()
    if as_json:
        typer.echo(json.dumps(variance_as_json(checks), indent=2))
        return
    for c in checks:
        t = Table(title=f"{iso} {c.statement.operating_day} {c.statement.market} {c.statement.kind} "
                        f"({escape(c.statement.statement_id)})")
        for col in ("code", "lines", "shadow", "ISO", "variance", "outside tolerance"):
            t.add_column(col, justify="left" if col == "code" else "right")
        for s in c.report.codes.values():
            row(t, s.code, str(s.lines), f"{s.shadow:,.2f}", f"{s.iso:,.2f}", f"{s.variance:,.2f}", str(s.outside))
        console.print(t)
        if c.report.lines:
            v = Table(title="Lines outside the tolerance")
            for col in ("code", "resource", "interval", "shadow", "ISO", "variance", "cause", "why"):
                v.add_column(col, overflow="fold")
            for ln in c.report.lines:
                row(v, ln.code, clean(ln.resource), ln.label, str(ln.shadow), str(ln.iso), str(ln.variance),
                          ln.cause, clean(ln.detail))
            console.print(v)
        if c.deltas:
            d = Table(title=cell(f"Changed against {c.previous_id}"))
            for col in ("code", "resource", "interval", "previous", "current", "net"):
                d.add_column(col)
            for ln in c.deltas:
                row(d, ln.code, clean(ln.resource), ln.label, str(ln.previous), str(ln.current), str(ln.net))
            console.print(d)


@market_app.command("explain")
def explain_command(iso: str = _ISO, day: str = _DAY,
                    resource: str = typer.Option(..., "--resource", help="The resource of the line."),
                    code: str = typer.Option(..., "--code", help="Charge code, e.g. RTEIAMT."),
                    interval: str = typer.Option(..., "--interval",
                                                 help="The ISO interval: HE15 (hourly), HE15.1 (first quarter), "
                                                      "HE02 DST (the repeated hour)."),
                    config: Path = _CONFIG) -> None:
    """Walk one statement line back: bid -> award -> metered delivery -> ISO price (every version)
    -> statement line (every version) -> revenue, beside kwhub's own shadow line."""
    from kwhub.hub.markets.service import explain_market_line

    cfg, db = _open(config)
    try:
        data = _guard(explain_market_line, db, cfg, iso, _day(day), resource, code, interval)
    finally:
        db.close()
    typer.echo(json.dumps(data, indent=2, default=str))


def market_sim(iso: str = typer.Argument(..., help="The ISO to play: ERCOT (the adapter must provide a local server)."),
               port: int = typer.Option(8765, "--port", help="Port on 127.0.0.1."),
               seconds: float = typer.Option(0, "--seconds", help="Stop after this many seconds (0: until Ctrl-C)."),
               config: Path = _CONFIG) -> None:
    """Start a local ISO on 127.0.0.1 that speaks the ISO's transport and formats (ERCOT: EWS SOAP
    for BidSet/AwardSet, the SPP price reports, statements with extracts) and can inject faults.
    With a kwhub.toml, statements settle the campus's own meter data from the store."""
    from kwhub.hub.registry import get_registry

    reg = get_registry()
    classes = [c for c in reg.adapters.values() if getattr(c, "iso", "") == iso.upper()
               and "local_server" in getattr(c, "capabilities", ())]
    if not classes:
        raise UserError(f"no installed market adapter provides a local {iso} server",
                        hint="`kwhub plugins list` shows the adapters and their capabilities")
    options: dict[str, Any] = {}
    adapter = None
    cfg_path = config if config is not None else (Path("kwhub.toml") if Path("kwhub.toml").exists() else None)
    db = None
    if cfg_path is not None:
        from kwhub.hub.markets.service import market_adapter, meter_source

        cfg, db = _open(cfg_path)
        if iso.upper() in cfg.file.markets.adapters:
            adapter = market_adapter(cfg, iso.upper())
            options["meter"] = meter_source(db, cfg, iso.upper())
    if adapter is None:
        adapter = classes[0]("market-sim", {"url": f"http://127.0.0.1:{port}"})
    server = adapter.local_server(port=port, **options)
    server.start()
    typer.echo(f"local {iso.upper()} on {server.url} (Ctrl-C stops it)")
    try:
        deadline = time.monotonic() + seconds if seconds else None
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        if db is not None:
            db.close()


def register(app: typer.Typer) -> None:
    """Add ``market`` and ``market-sim``."""
    app.add_typer(market_app, name="market")
    app.command("market-sim")(market_sim)
