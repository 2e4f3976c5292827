"""The ``kwhub`` command line (typer + rich)."""
