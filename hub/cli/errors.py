"""Turn known errors into a one-paragraph message and a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from rich.console import Console

err_console = Console(stderr=True)

# Exit codes: 1 = operation failed, 2 = usage/configuration error.
EXIT_FAILED = 1
EXIT_CONFIG = 2


class UserError(Exception):
    """An error the user can fix; ``hint`` says how."""

    def __init__(self, message: str, hint: str = "", exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.hint = hint
        self.exit_code = exit_code


def _known_errors() -> tuple[type[BaseException], ...]:
    from kwhub.core.intervals import IntervalDataError
    from kwhub.core.timeline import TimeModelError
    from kwhub.hub.registry import PluginLoadError, RegistryError

    known: list[type[BaseException]] = [UserError, IntervalDataError, TimeModelError, PluginLoadError, RegistryError]
    try:
        from kwhub.hub.config import ConfigError

        known.append(ConfigError)
    except ImportError:
        pass
    return tuple(known)


def report(exc: BaseException) -> int:
    from kwhub.hub.config import ConfigError  # local: keep import order simple

    code = getattr(exc, "exit_code", EXIT_CONFIG if isinstance(exc, ConfigError) else EXIT_FAILED)
    err_console.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True)
    hint = getattr(exc, "hint", "")
    if hint:
        err_console.print(f"[yellow]hint:[/] {hint}", highlight=False)
    return int(code)


def run_guarded(app: Callable[..., object]) -> None:
    """Run the typer app; known errors print a message and exit non-zero."""
    try:
        app(standalone_mode=True)
    except SystemExit:
        raise
    except _known_errors() as exc:
        if os.environ.get("KWHUB_DEBUG"):
            raise
        sys.exit(report(exc))
    except Exception as exc:  # an unexpected failure: one clear line, the traceback on request
        if os.environ.get("KWHUB_DEBUG"):
            raise
        err_console.print(f"[bold red]error:[/] {type(exc).__name__}: {exc}", highlight=False)
        err_console.print("[yellow]hint:[/] this looks like a bug or a broken environment; run again with "
                          "KWHUB_DEBUG=1 to see the traceback and report it", highlight=False)
        sys.exit(EXIT_FAILED)
