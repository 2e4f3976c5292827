"""Setup commands: ``kwhub init``, ``kwhub plugins list`` / ``new``, ``kwhub adapters check``, ``kwhub config check``."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from kwhub.hub.cli.common import load
from kwhub.hub.cli.errors import EXIT_CONFIG, EXIT_FAILED, UserError
from kwhub.hub.cli.options import config_option, format_option, json_alias, output_format
from kwhub.hub.cli.output import cell, console, echo, safe
from kwhub.hub.redact import redact_credentials

plugins_app = typer.Typer(help="Inspect installed plugins and start new ones.", no_args_is_help=True)
adapters_app = typer.Typer(help="Work with configured adapter instances.", no_args_is_help=True)
config_app = typer.Typer(help="Check kwhub.toml.", no_args_is_help=True)



def init(
    directory: Path = typer.Option(Path("."), "--dir", help="Where to write kwhub.toml and its sample files."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing kwhub.toml and sample files."),
    example: str = typer.Option("campus", "--example", help="Which campus: campus (every section, the "
                                                            "default), single-tenant or demo; `list` lists them."),
) -> None:
    """Write a commented kwhub.toml and the sample files it reads; `kwhub adapters check` passes on it.

    The default campus shows every section of kwhub.toml with its defaults written out, and
    writes sample meter, price and index files beside it. `--example single-tenant` writes a
    small campus with one tenant, `--example demo` the campus of `kwhub demo` with its two
    months of simulated meter data. `--example list` lists them.
    """
    from kwhub.hub.starter import STARTERS, StarterError, write_starter

    if example == "list":
        for name, starter in STARTERS.items():
            echo(f"{name}: {starter.title}")
        return
    try:
        written = write_starter(example, directory, force=force)
    except StarterError as exc:
        raise UserError(str(exc), hint=exc.hint, exit_code=EXIT_CONFIG) from None
    console.print(f"wrote [bold]{safe(directory / 'kwhub.toml')}[/] ({safe(example)}) and "
                  f"{len(written) - 1} sample file(s); check it with `kwhub adapters check`")


def plugins_list(
    fmt: str = format_option("text", "json"),
    hooks: bool = typer.Option(False, "--hooks", help="Also list the hooks each plugin implements."),
    as_json: bool = json_alias(),
) -> None:
    """List loaded plugins: distribution, version, adapter types, hooks and load errors.

    Set KWHUB_TRACE_PLUGINS=1 to see every hook call and its result.
    """
    from kwhub.hub.registry import get_registry

    as_json = output_format(fmt, ("text", "json"), as_json) == "json"
    reg = get_registry()
    rows = [p.as_dict() for p in reg.plugins.values()]
    if as_json:
        adapters = {
            t: {"family": c.family, "plugin": next((p.name for p in reg.plugins.values() if t in p.adapters), ""),
                "capabilities": sorted(c.capabilities)}
            for t, c in sorted(reg.adapters.items())
        }
        echo(json.dumps({"plugins": rows, "adapters": adapters}, indent=2))
        return
    table = Table(title="kwhub plugins")
    cols = ["plugin", "distribution", "version", "registers"] + (["hooks"] if hooks else []) + ["error"]
    for col in cols:
        table.add_column(col, overflow="fold")
    for p in rows:
        regs = ", ".join(p["adapters"] + p["extensions"])
        cells = [cell(p["name"]), cell(p["distribution"]), cell(p["version"]), cell(regs)]
        cells += [cell(", ".join(p["hooks"]))] if hooks else []
        table.add_row(*cells, cell(p["error"] or "", "red"))
    console.print(table)


def plugins_new(
    name: str = typer.Argument(..., help="Plugin name: lower case, digits and _ (acme -> package kwhub_acme, "
                                         "adapter type <family>.acme)."),
    family: str = typer.Option(..., "--family", "-f", help="meters, erp, markets or esg."),
    directory: Path = typer.Option(None, "--dir", help="Where to write the package (default: ./kwhub_NAME)."),
    force: bool = typer.Option(False, "--force", help="Write into a folder that is not empty."),
) -> None:
    """Write a new plugin package that works: entry point, adapter, sample and kit tests.

    NAME acme gives the package kwhub_acme (distribution kwhub-acme, type FAMILY.acme).
    `pip install -e DIR` registers it with kwhub; `kwhub plugins list` then shows it.
    `pytest DIR` runs its tests, which use the plugin test kit (kwhub.testing).
    docs/plugins/README.md walks through the meters plugin file by file.
    """
    from kwhub.hub.scaffold import ScaffoldError, names, write_plugin

    try:
        package = names(name, family.lower())["package"]
        target = directory if directory is not None else Path(package)
        written = write_plugin(name, family.lower(), target, force=force)
    except ScaffoldError as exc:
        raise UserError(str(exc), hint=exc.hint, exit_code=EXIT_CONFIG) from None
    console.print(f"wrote the {family.lower()} plugin [bold]{name}[/] ({family.lower()}.{name}) in {target}:")
    for path in written:
        console.print(f"  {path.relative_to(target).as_posix()}")
    console.print(f"next: pip install -e {target}, then `kwhub plugins list`; `pytest {target}` runs its tests")


def adapters_check(
    config: Path = config_option(),
    fmt: str = format_option("text", "json"),
    as_json: bool = json_alias(),
) -> None:
    """Run check() for every configured adapter instance; exit 1 if any fails.

    Each check really connects or reads (a webhook is sent a signed OPTIONS request, an
    SFTP server is logged into, a folder is written to) and says whether a failure is a
    configuration problem, a transient one or a system error. Passwords in URLs are never
    shown; risky settings (host_key_checking = false, ...) are listed as warnings.
    """
    from kwhub.hub.config import ConfigError

    as_json = output_format(fmt, ("text", "json"), as_json) == "json"
    cfg = load(config, required=True)
    results = []
    for inst in cfg.adapters.values():
        if not inst.enabled:
            results.append({"id": inst.id, "type": inst.type, "ok": None, "kind": None, "message": "disabled"})
            continue
        try:
            res = inst.build(cfg.context()).check()
            results.append({"id": inst.id, "type": inst.type, "ok": res.ok,
                            "kind": res.kind.value if res.kind else None, "message": res.message})
        except ConfigError as exc:  # an unset env: secret, say
            results.append({"id": inst.id, "type": inst.type, "ok": False, "kind": "configuration",
                            "message": "; ".join(exc.problems)})
        except Exception as exc:  # a check that crashes is a system failure of that adapter
            results.append({"id": inst.id, "type": inst.type, "ok": False, "kind": "system",
                            "message": f"{type(exc).__name__}: {exc}"})
    from kwhub.hub.registry import get_registry
    from kwhub.hub.settle.issuing import delivery_problems

    for p in delivery_problems(cfg, get_registry()):
        results.append({"id": f"contract {p['contract']}", "type": f"format {p['format']}", "ok": False,
                        "kind": "configuration", "message": p["message"]})
    for r in results:
        r["message"] = redact_credentials(str(r["message"]))
    if as_json:
        echo(json.dumps(results, indent=2))  # the configuration's warnings went to stderr
    else:
        table = Table(title=cell(f"adapter checks ({cfg.source})"))
        for col in ("instance", "type", "result", "failure kind", "message"):
            table.add_column(col)
        for r in results:
            mark = cell("ok", "green") if r["ok"] else (cell("skipped", "dim") if r["ok"] is None
                                                      else cell("failed", "red"))
            table.add_row(cell(r["id"]), cell(r["type"]), mark, cell(r["kind"] or ""), cell(r["message"]))
        console.print(table)
    if any(r["ok"] is False for r in results):
        raise typer.Exit(EXIT_FAILED)


def config_check(
    config: Path = config_option(),
    fmt: str = format_option("text", "json"),
    as_json: bool = json_alias(),
) -> None:
    """Check kwhub.toml without connecting anywhere: shape, references, plugin settings, and
    whether every party has what the formats it receives need (payment account, tax
    identifier, Peppol endpoint, field lengths). Exit 1 when anything is missing."""
    from kwhub.hub.config import load_config
    from kwhub.hub.registry import get_registry
    from kwhub.hub.settle.issuing import delivery_problems

    as_json = output_format(fmt, ("text", "json"), as_json) == "json"
    cfg = load_config(config, required=True)
    problems = delivery_problems(cfg, get_registry())
    if as_json:
        echo(json.dumps({"config": str(cfg.source), "problems": problems}, indent=2))
    elif problems:
        table = Table(title=cell(f"configuration problems ({cfg.source})"))
        for col in ("contract", "format", "problem"):
            table.add_column(col)
        for p in problems:
            table.add_row(cell(p["contract"]), cell(p["format"]), cell(p["message"]))
        console.print(table)
    else:
        console.print(f"[green]ok[/]: {safe(cfg.source)} is complete for every contract and delivery format")
    if problems:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add init, plugins, adapters and config commands."""
    app.command("init")(init)
    plugins_app.command("list")(plugins_list)
    plugins_app.command("new")(plugins_new)
    adapters_app.command("check")(adapters_check)
    config_app.command("check")(config_check)
    app.add_typer(config_app, name="config")
    app.add_typer(plugins_app, name="plugins")
    app.add_typer(adapters_app, name="adapters")
