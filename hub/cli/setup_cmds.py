"""Setup commands: ``kwhub init``, ``kwhub plugins list``, ``kwhub adapters check``, ``kwhub config check``."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from kwhub.hub.cli.errors import UserError

console = Console()

plugins_app = typer.Typer(help="Inspect installed plugins.", no_args_is_help=True)
adapters_app = typer.Typer(help="Work with configured adapter instances.", no_args_is_help=True)
config_app = typer.Typer(help="Check kwhub.toml.", no_args_is_help=True)

EXAMPLE = Path(__file__).resolve().parent.parent / "templates" / "kwhub.example.toml"


def init(
    directory: Path = typer.Option(Path("."), "--dir", help="Where to write kwhub.toml."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing kwhub.toml."),
) -> None:
    """Write a commented example kwhub.toml describing a small campus."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "kwhub.toml"
    if target.exists() and not force:
        raise UserError(f"{target} already exists", hint="pass --force to overwrite it")
    target.write_text(EXAMPLE.read_text())
    console.print(f"wrote [bold]{target}[/]; check it with `kwhub adapters check`")


def plugins_list(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
) -> None:
    """List loaded plugins: distribution, version, adapter types and load errors."""
    from kwhub.hub.registry import get_registry

    reg = get_registry()
    rows = [p.as_dict() for p in reg.plugins.values()]
    if as_json:
        adapters = {
            t: {"family": c.family, "plugin": next((p.name for p in reg.plugins.values() if t in p.adapters), ""),
                "capabilities": sorted(c.capabilities)}
            for t, c in sorted(reg.adapters.items())
        }
        print(json.dumps({"plugins": rows, "adapters": adapters}, indent=2))
        return
    table = Table(title="kwhub plugins")
    for col in ("plugin", "distribution", "version", "registers", "error"):
        table.add_column(col)
    for p in rows:
        regs = ", ".join(p["adapters"] + p["extensions"])
        table.add_row(p["name"], p["distribution"], p["version"], regs, f"[red]{p['error']}[/]" if p["error"] else "")
    console.print(table)


def adapters_check(
    config: Path = typer.Option(None, "--config", "-c", help="Path to kwhub.toml (default: ./kwhub.toml)."),
    as_json: bool = typer.Option(False, "--json", help="Print results as JSON."),
) -> None:
    """Run check() for every configured adapter instance; exit 1 if any fails."""
    from kwhub.hub.config import load_config

    cfg = load_config(config, required=True)
    results = []
    for inst in cfg.adapters.values():
        if not inst.enabled:
            results.append({"id": inst.id, "type": inst.type, "ok": None, "kind": None, "message": "disabled"})
            continue
        try:
            res = inst.build(cfg.context()).check()
            results.append({"id": inst.id, "type": inst.type, "ok": res.ok,
                            "kind": res.kind.value if res.kind else None, "message": res.message})
        except Exception as exc:  # a check that crashes is a system failure of that adapter
            results.append({"id": inst.id, "type": inst.type, "ok": False, "kind": "system",
                            "message": f"{type(exc).__name__}: {exc}"})
    from kwhub.hub.registry import get_registry
    from kwhub.hub.settle.issuing import delivery_problems

    for p in delivery_problems(cfg, get_registry()):
        results.append({"id": f"contract {p['contract']}", "type": f"format {p['format']}", "ok": False,
                        "kind": "configuration", "message": p["message"]})
    if as_json:
        print(json.dumps(results, indent=2))
    else:
        table = Table(title=f"adapter checks ({cfg.source})")
        for col in ("instance", "type", "result", "failure kind", "message"):
            table.add_column(col)
        for r in results:
            mark = "[green]ok[/]" if r["ok"] else ("[dim]skipped[/]" if r["ok"] is None else "[red]failed[/]")
            table.add_row(r["id"], r["type"], mark, r["kind"] or "", r["message"])
        console.print(table)
    if any(r["ok"] is False for r in results):
        raise typer.Exit(1)


def config_check(
    config: Path = typer.Option(None, "--config", "-c", help="Path to kwhub.toml (default: ./kwhub.toml)."),
    as_json: bool = typer.Option(False, "--json", help="Print the problems as JSON."),
) -> None:
    """Check kwhub.toml without connecting anywhere: shape, references, plugin settings, and
    whether every party has what the formats it receives need (payment account, tax
    identifier, Peppol endpoint, field lengths). Exit 1 when anything is missing."""
    from kwhub.hub.config import load_config
    from kwhub.hub.registry import get_registry
    from kwhub.hub.settle.issuing import delivery_problems

    cfg = load_config(config, required=True)
    problems = delivery_problems(cfg, get_registry())
    if as_json:
        print(json.dumps({"config": str(cfg.source), "problems": problems}, indent=2))
    elif problems:
        table = Table(title=f"configuration problems ({cfg.source})")
        for col in ("contract", "format", "problem"):
            table.add_column(col)
        for p in problems:
            table.add_row(p["contract"], p["format"], p["message"])
        console.print(table)
    else:
        console.print(f"[green]ok[/]: {cfg.source} is complete for every contract and delivery format")
    if problems:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add init, plugins, adapters and config commands."""
    app.command("init")(init)
    plugins_app.command("list")(plugins_list)
    adapters_app.command("check")(adapters_check)
    config_app.command("check")(config_check)
    app.add_typer(config_app, name="config")
    app.add_typer(plugins_app, name="plugins")
    app.add_typer(adapters_app, name="adapters")
