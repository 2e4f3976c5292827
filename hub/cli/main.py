"""Entry point of the ``kwhub`` command: a typer app whose commands are imported on demand.

``kwhub --help`` lists the commands from :data:`COMMANDS` (name, module, one-line help)
without importing any of them; running ``kwhub NAME ...`` (or ``kwhub NAME --help``)
imports only NAME's module. Plugins are loaded by the commands that use them, and only
the families they need (see :func:`kwhub.hub.registry.get_registry`); a command added by
a third-party plugin (hook ``kwhub_cli_commands``) is found by loading the plugins that
kwhub does not ship.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Callable
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

# name -> (module defining ``register(app)``, one line of help for ``kwhub --help``).
# A new command module adds its names here (a test checks every line against the module).
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("kwhub.hub.cli.setup_cmds", "Write a commented example kwhub.toml describing a small campus."),
    "config": ("kwhub.hub.cli.setup_cmds", "Check kwhub.toml."),
    "plugins": ("kwhub.hub.cli.setup_cmds", "Inspect installed plugins and start new ones."),
    "adapters": ("kwhub.hub.cli.setup_cmds", "Work with configured adapter instances."),
    "ingest": ("kwhub.hub.cli.ingest_cmds", "Ingest meter files into the store, then run VEE on the touched days."),
    "readings": ("kwhub.hub.cli.ingest_cmds", "Print stored intervals with quality flags, or period readings."),
    "vee": ("kwhub.hub.cli.vee_cmds", "Validation, estimation and editing (VEE) of stored intervals."),
    "settle": ("kwhub.hub.cli.settle_cmds", "Settle a billing period: price every contract into draft documents."),
    "contracts": ("kwhub.hub.cli.contracts_cmds", "Contracts of kwhub.toml: the versions of their terms."),
    "invoices": ("kwhub.hub.cli.settle_cmds", "Issued invoices, adjustment invoices and credit notes."),
    "explain": ("kwhub.hub.cli.settle_cmds", "Explain an invoice line: its intervals, prices and lineage."),
    "runs": ("kwhub.hub.cli.review_cmds", "Settlement runs and the review gate: list, show, approve, reject."),
    "report": ("kwhub.hub.cli.review_cmds", "Reports of a settled period: energy accounting, allocation split."),
    "owners": ("kwhub.hub.cli.owners_cmds", "Statements of co-owned assets by owner share."),
    "emissions": ("kwhub.hub.cli.owners_cmds", "Scope 1, 2 and 3 emissions per party from the runs' allocation."),
    "deliver": ("kwhub.hub.cli.outbox_cmds", "Send queued invoices through their transports (--once: one pass)."),
    "outbox": ("kwhub.hub.cli.outbox_cmds", "Inspect and repair the invoice outbox."),
    "verify": ("kwhub.hub.cli.verify_cmd", "Check the documents' hash chain, numbering, outbox bodies, run inputs."),
    "db": ("kwhub.hub.cli.db_cmds", "Database schema and roles."),
    "market": ("kwhub.hub.cli.market_cmds", "Day-ahead bids, ISO statements and shadow settlement."),
    "market-sim": ("kwhub.hub.cli.market_cmds", "Run a local ISO simulator on 127.0.0.1."),
    "esg": ("kwhub.hub.cli.esg_cmds", "Disclosures (GHG, CDP, ESRS, SB 253) and granular certificates."),
    "demo": ("kwhub.hub.cli.demo_cmd", "Simulate a campus and run the whole meter-to-cash path."),
    "serve": ("kwhub.hub.cli.serve_cmd", "Run as a service: the REST API and the scheduler."),
    "keys": ("kwhub.hub.cli.keys_cmds", "API keys: create, list, revoke."),
    "jobs": ("kwhub.hub.cli.jobs_cmds", "The scheduler's jobs and their history."),
    "audit": ("kwhub.hub.cli.audit_cmds", "The append-only audit trail."),
    "export": ("kwhub.hub.cli.export_cmds", "Closed periods to Parquet: validated intervals and run allocations."),
}

# Modules imported eagerly (each defines ``register(app)``), for command modules that are not
# (yet) in COMMANDS: they work, they just cost their import on every start.
COMMAND_MODULES: list[str] = []


def _third_party_plugins() -> bool:
    """Whether plugins kwhub does not ship are installed (read from metadata, nothing imported)."""
    import os

    if os.environ.get("KWHUB_NO_ENTRYPOINTS"):
        return False
    from importlib import metadata

    names: dict[str, str] = {}  # a distribution's METADATA is parsed once, not per entry point
    for ep in metadata.entry_points(group="kwhub"):
        if ep.dist is None:
            return True
        key = str(getattr(ep.dist, "_path", id(ep.dist)))
        if key not in names:
            names[key] = ep.dist.metadata["Name"]
        if names[key] != "kwhub":
            return True
    return False


class _Listed(TyperCommand):
    """Stand-in for a command that is only listed (``kwhub --help``), never run."""


class _HelpFlag:
    """Coercion of the ``--help`` flag's value: it is already None (absent) or True.

    typer coerces every parameter through a pydantic ``TypeAdapter``, the ``--help`` flag of
    each command level included; importing pydantic for that alone is a third of the time
    `kwhub CMD --help` takes. The flag needs no coercion, so its options get this one.
    """

    def coerce(self, value: Any, *, param: Any = None, ctx: Any = None) -> Any:
        return value


def _plain_help_flags() -> None:
    """Give the help options typer creates the pass-through coercion (see :class:`_HelpFlag`);
    a typer without this internal layout keeps its own coercion."""
    try:
        from typer._click.core import Command
    except ImportError:  # pragma: no cover - another typer layout
        return
    original = Command.get_help_option
    if getattr(original, "_kwhub_plain", False):
        return

    def get_help_option(self: Any, ctx: Any) -> Any:
        option = original(self, ctx)
        if option is not None and getattr(option, "_runtime_param", "") is None:
            option._runtime_param = _HelpFlag()  # type: ignore[assignment]
        return option

    get_help_option._kwhub_plain = True  # type: ignore[attr-defined]
    Command.get_help_option = get_help_option  # type: ignore[method-assign]


_plain_help_flags()


_INTEGER = re.compile(r"[+-]?[0-9]+")


class _PlainParam:
    """Coercion of a plain ``str``, ``Path`` or ``int`` parameter (or a list of them) without
    building a pydantic ``TypeAdapter`` (typer builds one per parameter: about half of the
    CPU a read command spends before it reads anything).

    A value this cannot take plainly (bytes, ``"1e3"`` for an int, ...) goes to typer's own
    coercion, built then; so the accepted values and the error messages are typer's.
    """

    def __init__(self, descriptor: Any, leaf: Callable[[Any, Any, Any], Any], is_list: bool) -> None:
        self._descriptor = descriptor
        self._leaf = leaf
        self._is_list = is_list
        self._full: Any = None

    def _typer(self, value: Any, param: Any, ctx: Any) -> Any:
        if self._full is None:
            from typer._coercion import build_runtime_param

            self._full = build_runtime_param(self._descriptor)
        return self._full.coerce(value, param=param, ctx=ctx)

    def coerce(self, value: Any, param: Any = None, ctx: Any = None) -> Any:
        multi = param is not None and (param.multiple or param.nargs == -1)
        if value is None:
            return () if multi else None
        try:
            if self._is_list:
                if not isinstance(value, (list, tuple)):
                    return self._typer(value, param, ctx)
                return [self._leaf(v, param, ctx) for v in value]
            if multi:
                return self._typer(value, param, ctx)
            return self._leaf(value, param, ctx)
        except _NotPlain:
            return self._typer(value, param, ctx)


class _NotPlain(Exception):
    """A value the plain coercion leaves to typer's."""


def _plain_str(value: Any, param: Any, ctx: Any) -> str:
    if isinstance(value, str):
        return value
    raise _NotPlain


def _plain_int(value: Any, param: Any, ctx: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INTEGER.fullmatch(value):
        return int(value)
    raise _NotPlain


def _plain_path(info: Any, path_type: type) -> Callable[[Any, Any, Any], Any]:
    from typer._param_types import coerce_cli_path

    def leaf(value: Any, param: Any, ctx: Any) -> Any:
        if isinstance(value, str):
            value = path_type(value)
        if not isinstance(value, path_type):
            raise _NotPlain
        return coerce_cli_path(value, info, path_type=path_type, param=param, ctx=ctx)

    return leaf


def _plain_leaf(annotation: Any, info: Any) -> Callable[[Any, Any, Any], Any] | None:
    from pathlib import Path

    if annotation is str and not (info.allow_dash or info.path_type is not None or info.resolve_path):
        return _plain_str
    if annotation is int and info.min is None and info.max is None and not info.clamp:
        return _plain_int
    if isinstance(annotation, type) and issubclass(annotation, Path) and info.path_type in (None, annotation):
        return _plain_path(info, annotation)
    return None


def plain_param(descriptor: Any) -> _PlainParam | None:
    """The plain coercion of a parameter typer describes with ``descriptor`` (None: not plain)."""
    info = descriptor.parameter_info
    if descriptor.file_annotation is not None or info.parser is not None:
        return None
    annotation = descriptor.annotation
    is_list = getattr(annotation, "__origin__", None) is list
    if is_list:
        args = getattr(annotation, "__args__", ())
        if len(args) != 1:
            return None
        annotation = args[0]
    leaf = _plain_leaf(annotation, info)
    return None if leaf is None else _PlainParam(descriptor, leaf, is_list)


def _plain_coercion() -> None:
    """Give typer's parameters the plain coercion where it applies (see :class:`_PlainParam`)."""
    try:
        from typer.core import _TyperParameter
    except ImportError:  # pragma: no cover - another typer layout
        return
    original = _TyperParameter.get_runtime_param
    if getattr(original, "_kwhub_plain", False):
        return

    def get_runtime_param(self: Any) -> Any:
        if getattr(self, "_runtime_param", None) is None:
            plain = plain_param(self.type_descriptor)
            if plain is not None:
                self._runtime_param = plain
        return original(self)

    get_runtime_param._kwhub_plain = True  # type: ignore[attr-defined]
    _TyperParameter.get_runtime_param = get_runtime_param  # type: ignore[method-assign]


_plain_coercion()


class LazyGroup(TyperGroup):
    """The top-level group: imports a command's module only when that command is used."""

    _listing = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._built: dict[str, Any] = {}
        self._plugin_commands: dict[str, Any] | None = None

    def list_commands(self, ctx: Any) -> list[str]:
        names = list(COMMANDS) + [n for n in self.commands if n not in COMMANDS]
        return names + [n for n in self._plugins() if n not in names]

    def _module_group(self, module: str) -> Any:
        if module not in self._built:
            sub = typer.Typer(rich_markup_mode=None)
            importlib.import_module(module).register(sub)
            self._built[module] = typer.main.get_group(sub)
        return self._built[module]

    def _plugins(self) -> dict[str, Any]:
        """Commands of plugins kwhub does not ship (loading only those plugins)."""
        if self._plugin_commands is None:
            self._plugin_commands = {}
            if not _third_party_plugins():
                return self._plugin_commands
            from kwhub.hub.cli.output import warn
            from kwhub.hub.registry import load_third_party_cli

            try:
                sub = typer.Typer(rich_markup_mode=None)
                if load_third_party_cli(sub):
                    self._plugin_commands = dict(typer.main.get_group(sub).commands)
            except Exception as exc:  # a plugin's command must not break the CLI
                warn(f"plugin commands not loaded: {exc}")
        return self._plugin_commands

    def get_command(self, ctx: Any, cmd_name: str) -> Any | None:
        if cmd_name in COMMANDS:
            module, short = COMMANDS[cmd_name]
            if self._listing:
                return _Listed(cmd_name, help=short, short_help=short)
            return self._module_group(module).commands.get(cmd_name)
        found = super().get_command(ctx, cmd_name)
        return found if found is not None else self._plugins().get(cmd_name)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        try:
            return self._click_resolve_command(ctx, args)
        except Exception as exc:  # a usage error: suggest from every command, imported or not
            from difflib import get_close_matches

            message = getattr(exc, "message", None)
            if not isinstance(message, str):
                raise
            matches = get_close_matches(args[0], self.list_commands(ctx)) if args else []
            if matches:
                exc.message = message.rstrip(".") + f". Did you mean {', '.join(repr(m) for m in matches)}?"  # type: ignore[attr-defined]
            raise

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(
    name="kwhub",
    cls=LazyGroup,
    rich_markup_mode=None,  # help text is shown as written: no Rich markup, [[contracts]] stays
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _main() -> None:
    """kwhub: meter-to-cash hub for behind-the-meter power on AI data-center campuses.

    Start with `kwhub demo` (no configuration needed) or `kwhub init` to write a kwhub.toml.

    Common options: -c/--config FILE (default: ./kwhub.toml or $KWHUB_CONFIG) on every command that reads the configuration; --format text|json (and csv where the output is a table of data) on every command that prints data, text by default.
    """


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


class _FirstUseHandler(logging.Handler):
    """The cleaned Rich log handler of :mod:`kwhub.hub.cli.output`, built at the first record
    (so a command that logs nothing does not import Rich's logging)."""

    def __init__(self) -> None:
        super().__init__()
        self._inner: logging.Handler | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self._inner is None:
            from kwhub.hub.cli.output import log_handler

            self._inner = log_handler()
        self._inner.handle(record)


def run() -> None:
    """Console-script entry point."""
    from kwhub.hub.cli.errors import run_guarded

    logger = logging.getLogger("kwhub")  # warnings of any kwhub component, shown cleaned
    logger.addHandler(_FirstUseHandler())
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    run_guarded(app)


if __name__ == "__main__":
    run()
