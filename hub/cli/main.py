"""Entry point of the ``kwhub`` command: builds the typer app from the command modules."""

from __future__ import annotations

import importlib
import logging

import typer

from kwhub.hub.cli.errors import run_guarded
from kwhub.hub.cli.output import log_handler, warn

app = typer.Typer(
    name="kwhub",
    help="kwhub: meter-to-cash hub for behind-the-meter power on AI data-center campuses.\n\n"
    "Start with `kwhub demo` (no configuration needed) or `kwhub init` to write a kwhub.toml.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Each module defines ``register(app)``; one module per command group.
COMMAND_MODULES = [
    "kwhub.hub.cli.setup_cmds",  # init, plugins list, adapters check
    "kwhub.hub.cli.ingest_cmds",  # ingest, readings
    "kwhub.hub.cli.vee_cmds",  # vee report
    "kwhub.hub.cli.settle_cmds",  # settle, invoices, explain
    "kwhub.hub.cli.contracts_cmds",  # contracts history
    "kwhub.hub.cli.review_cmds",  # runs list/show/approve/reject, report energy/allocation
    "kwhub.hub.cli.owners_cmds",  # owners statement, emissions
    "kwhub.hub.cli.outbox_cmds",  # deliver, outbox list/retry
    "kwhub.hub.cli.verify_cmd",  # verify
    "kwhub.hub.cli.db_cmds",  # db upgrade, db grant-app
    "kwhub.hub.cli.market_cmds",  # market bid/poll/fetch/variance/explain, market-sim
    "kwhub.hub.cli.esg_cmds",  # esg report, esg certificates
    "kwhub.hub.cli.demo_cmd",  # demo
    "kwhub.hub.cli.serve_cmd",  # serve
    "kwhub.hub.cli.keys_cmds",  # keys create/list/revoke/scopes
    "kwhub.hub.cli.jobs_cmds",  # jobs list/schedule
    "kwhub.hub.cli.audit_cmds",  # audit list
    "kwhub.hub.cli.export_cmds",  # export (closed periods to Parquet)
]

for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def _plugin_commands() -> None:
    from kwhub.hub.registry import get_registry

    try:
        reg = get_registry()
        if reg.pm is not None:
            reg.pm.hook.kwhub_cli_commands(app=app)
    except Exception as exc:  # a plugin's command must not break the CLI
        warn(f"plugin commands not loaded: {exc}")


def run() -> None:
    """Console-script entry point."""
    logger = logging.getLogger("kwhub")  # warnings of any kwhub component, shown cleaned
    logger.addHandler(log_handler())
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    _plugin_commands()
    run_guarded(app)


if __name__ == "__main__":
    run()
