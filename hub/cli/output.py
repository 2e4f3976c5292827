"""Terminal output for every ``kwhub`` command: data is shown, never interpreted.

Channel ids, file names, invoice numbers, receiver answers and error messages come from
files, devices, databases and remote servers. Shown as they are, ``[red]`` would be read
as Rich markup, an ANSI escape would recolour or rewrite the terminal, and a URL could
show its password. Everything a command prints goes through one of these:

* :func:`clean`: credentials in URLs masked; control characters (C0, DEL, C1, and the
  bidirectional overrides) shown as visible escapes (``\\x1b``, ``\\u202e``); line breaks
  kept only when ``multiline``;
* :func:`safe`: :func:`clean` plus Rich markup escaped, for text inside markup strings;
* :func:`cell`: a Rich ``Text`` (never parsed as markup) for table cells and titles;
* :func:`row`: a table row of such cells;
* :func:`echo`: plain text to stdout/stderr (JSON and CSV included);
* :data:`console` / :data:`err_console`: Rich consoles with emoji codes and automatic
  highlighting off, so ``:name:`` in data stays as written;
* :func:`log_handler`: a logging handler whose records are cleaned the same way.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from kwhub.hub.redact import redact_credentials

console = Console(emoji=False, highlight=False)
err_console = Console(stderr=True, emoji=False, highlight=False)

_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_CONTROL_ONE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
MAX_SHOWN = 4000  # characters of one value shown; the rest is summarised


def _visible(match: re.Match[str]) -> str:
    ch = match.group()
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def wide_console(min_width: int) -> Console:
    """A stdout console at least ``min_width`` columns wide (same settings as :data:`console`)."""
    return Console(width=max(console.width, min_width), emoji=False, highlight=False)


def clean(value: Any, *, multiline: bool = False, limit: int | None = MAX_SHOWN) -> str:
    """``value`` as text that cannot act on the terminal (see the module docs)."""
    text = redact_credentials(str(value))
    if limit is not None and len(text) > limit:
        text = text[:limit] + f"... ({len(text) - limit} more characters)"
    pattern = _CONTROL if multiline else _CONTROL_ONE_LINE
    return pattern.sub(_visible, text)


def safe(value: Any, *, multiline: bool = False) -> str:
    """:func:`clean` with Rich markup escaped, to put data inside a markup string."""
    return escape(clean(value, multiline=multiline))


def cell(value: Any, style: str = "") -> Text:
    """A table cell (or title) holding ``value`` as plain text."""
    return Text(clean("" if value is None else value), style=style)


def row(table: Any, *values: Any) -> None:
    """Add a table row whose cells are shown as text (never Rich markup); None is an empty cell."""
    table.add_row(*(v if isinstance(v, Text) else cell(v) for v in values))


def echo(value: Any, *, err: bool = False, nl: bool = True) -> None:
    """Print plain text (several lines allowed) without interpreting it."""
    typer.echo(clean(value, multiline=True, limit=None), err=err, nl=nl)


def warn(message: Any) -> None:
    """One ``warning:`` line on stderr."""
    err_console.print(f"[yellow]warning:[/] {safe(message, multiline=True)}")


class _CleanRecords(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = clean(record.getMessage(), multiline=True)
        record.args = ()
        return True


def log_handler(target: Console | None = None) -> logging.Handler:
    """A Rich logging handler on ``target`` (stderr by default) that shows cleaned messages."""
    # imported here, at the first log record (see kwhub.hub.cli.main), not by every command
    from rich.logging import RichHandler

    handler = RichHandler(console=target or err_console, show_path=False, show_time=False, markup=False,
                          highlighter=None)
    handler.addFilter(_CleanRecords())
    return handler
