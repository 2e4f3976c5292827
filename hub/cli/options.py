"""The options every ``kwhub`` command spells the same way.

* ``-c/--config FILE``: the kwhub.toml to read (default ``./kwhub.toml`` or ``$KWHUB_CONFIG``).
  ``-c`` means nothing else anywhere.
* ``--format text|json|csv``: how a command prints its data. ``text`` (the default) is for
  people; ``json`` is one JSON document on standard output; ``csv`` where the data is a
  table of rows. Commands that write a document in a file format (``invoices render``,
  ``owners statement``, ``esg report``) name that format with ``--format`` too, as their
  output *is* that document.
* ``--json`` (hidden, deprecated) is ``--format json``; ``--format table`` (deprecated) is
  ``--format text``.
"""

from __future__ import annotations

from typing import Any

import typer

CONFIG_HELP = "kwhub.toml to read (default: ./kwhub.toml, or $KWHUB_CONFIG)."


def config_option() -> Any:
    """``-c/--config FILE``."""
    return typer.Option(None, "--config", "-c", help=CONFIG_HELP)


def format_option(*choices: str) -> Any:
    """``--format`` with ``choices`` (``text`` first: the default)."""
    return typer.Option("text", "--format", help=f"Output: {', '.join(choices)}.")


def json_alias() -> Any:
    """The deprecated ``--json`` flag (hidden): the same as ``--format json``."""
    return typer.Option(False, "--json", hidden=True, help="Deprecated: use --format json.")


def output_format(fmt: str, choices: tuple[str, ...], as_json: bool = False) -> str:
    """The chosen format, checked against ``choices`` (``table`` is read as ``text``)."""
    from kwhub.hub.cli.errors import EXIT_CONFIG, UserError

    if as_json:
        return "json"
    value = "text" if fmt == "table" else fmt
    if value not in choices:
        raise UserError(f"--format must be one of {', '.join(choices)}, not {fmt!r}", exit_code=EXIT_CONFIG)
    return value
