"""Turn known errors into a one-paragraph message and a non-zero exit, never a traceback.

Exit codes (documented in README.md, the same for every command):

====  ======================================================================
0     success
1     failed: input rejected (a bad meter file), an operation failed (a
      contract that did not settle, an adapter check that failed, deliveries
      dead-lettered with nothing delivered), or an unexpected error
2     usage or configuration error: a bad option value, a problem in
      kwhub.toml (its key path is named), a bad database URL, an unknown
      adapter type, instance, format or plugin name
3     integrity: ``kwhub verify`` found a break in the evidence (a changed,
      missing or replaced document, a numbering gap, an outbox body that does
      not match), or ``kwhub deliver`` refused such a body
4     unavailable: the database cannot be reached (retry later)
130   interrupted (Ctrl-C)
====  ======================================================================

Messages are printed through :mod:`kwhub.hub.cli.output`: data inside them cannot act on the
terminal and credentials in URLs are masked. A database error never prints the SQL
statement or its parameters (an invoice's JSON, say); only the database's own reason.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_INTEGRITY = 3
EXIT_UNAVAILABLE = 4
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """An error the user can fix; ``hint`` says how."""

    def __init__(self, message: str, hint: str = "", exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.hint = hint
        self.exit_code = exit_code


def _known_errors() -> tuple[type[BaseException], ...]:
    from kwhub.core.intervals import IntervalDataError
    from kwhub.core.timeline import TimeModelError
    from kwhub.hub.config import ConfigError
    from kwhub.hub.registry import PluginLoadError, RegistryError
    from kwhub.hub.store.db import DatabaseError

    return (UserError, IntervalDataError, TimeModelError, PluginLoadError, RegistryError, ConfigError, DatabaseError)


def exit_code_of(exc: BaseException) -> int:
    """The exit code for a known error (see the module docs)."""
    from kwhub.hub.config import ConfigError
    from kwhub.hub.registry import RegistryError

    code = getattr(exc, "exit_code", None)
    if isinstance(code, int):
        return code
    if isinstance(exc, (ConfigError, RegistryError)):
        return EXIT_CONFIG
    return EXIT_FAILED


def report(exc: BaseException) -> int:
    """Print ``exc`` (and its hint) on stderr; return its exit code."""
    from kwhub.hub.cli.output import err_console, safe

    err_console.print(f"[bold red]error:[/] {safe(exc, multiline=True)}")
    hint = getattr(exc, "hint", "")
    if hint:
        err_console.print(f"[yellow]hint:[/] {safe(hint, multiline=True)}")
    return exit_code_of(exc)


def _database_error(exc: BaseException) -> int | None:
    """A database error in words, without its statement or parameters; None if it is not one."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    from kwhub.hub.cli.output import err_console, safe

    if not isinstance(exc, DBAPIError):
        return None
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
    if isinstance(exc, OperationalError):
        err_console.print(f"[bold red]error:[/] the database is not reachable or failed: {safe(reason)}")
        err_console.print("[yellow]hint:[/] check that the database server is running and the URL in kwhub.toml "
                          "([hub] database) or KWHUB_DATABASE_URL is right, then run the command again")
        return EXIT_UNAVAILABLE
    err_console.print(f"[bold red]error:[/] the database refused the operation "
                      f"({safe(type(exc.orig).__name__ if exc.orig is not None else type(exc).__name__)}): "
                      f"{safe(reason)}")
    err_console.print("[yellow]hint:[/] nothing of the failed transaction was written; `kwhub verify` checks the "
                      "stored documents; KWHUB_DEBUG=1 shows the traceback")
    return EXIT_FAILED


def _forget_handled_interrupt() -> None:
    """Clear CPython's "Ctrl-C went unhandled" mark once the interrupt has been handled.

    A Ctrl-C that lands while Python runs source text (``exec`` of a string: building a
    dataclass or a named tuple during an import) leaves that mark set even when the
    ``KeyboardInterrupt`` is caught later. Under ``python -m`` the interpreter then ends by
    killing itself with SIGINT instead of exiting with our code (130, or any other). Every
    string ``exec`` resets the mark when it starts, so an empty one clears it.
    """
    exec("")


def run_guarded(app: Callable[..., object]) -> None:
    """Run the typer app; known errors print a message and exit with their code."""
    try:
        _run(app)
    finally:
        _forget_handled_interrupt()  # (_run turns every interrupt into exit 130)


def _run(app: Callable[..., object]) -> None:
    try:
        app(standalone_mode=True)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
    except _known_errors() as exc:
        if os.environ.get("KWHUB_DEBUG"):
            raise
        sys.exit(report(exc))
    except Exception as exc:  # an unexpected failure: one clear line, the traceback on request
        if os.environ.get("KWHUB_DEBUG"):
            raise
        code = _database_error(exc)
        if code is not None:
            sys.exit(code)
        from kwhub.hub.cli.output import err_console, safe

        err_console.print(f"[bold red]error:[/] {safe(type(exc).__name__)}: {safe(exc, multiline=True)}")
        err_console.print("[yellow]hint:[/] this looks like a bug or a broken environment; run again with "
                          "KWHUB_DEBUG=1 to see the traceback and report it")
        sys.exit(EXIT_FAILED)
