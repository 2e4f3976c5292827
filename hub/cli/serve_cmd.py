"""``kwhub serve``: the REST API and the scheduler in one process."""

from __future__ import annotations

import os
from pathlib import Path

import typer

CONFIG = typer.Option(None, "--config", "-c", help="kwhub.toml (default: ./kwhub.toml or $KWHUB_CONFIG).")


def serve(
    config: Path = CONFIG,
    host: str = typer.Option(None, "--host", help="Address to listen on (default: [service] host, 127.0.0.1)."),
    port: int = typer.Option(None, "--port", min=0, max=65535, help="Port (default: [service] port, 8080)."),
    workers: int = typer.Option(None, "--workers", min=1, max=32,
                                help="API processes (default: [service] workers, 1); the scheduler runs once."),
    api: bool = typer.Option(True, "--api/--no-api", help="Serve the REST API."),
    scheduler: bool = typer.Option(True, "--scheduler/--no-scheduler", help="Run the scheduler (standby or owner)."),
) -> None:
    """Run kwhub as a service: the REST API and the scheduler.

    The API answers under /api/v1 (described at /openapi.json; /healthz for
    probes). The configuration is checked first: an invalid one is refused
    with the key paths and exit code 2.

    Several `kwhub serve` processes may share one database: one owns the
    scheduled work, the others stand by and take over when it stops. Jobs
    come from [scheduler] (outbox relay, VEE, the close schedule, watched
    folders, device polling, MQTT) and [[scheduler.jobs]]; `kwhub jobs
    list` shows their history.

    API keys: `kwhub keys create --role operator` (or --role tenant --party X).
    Stop with Ctrl-C or SIGTERM: running jobs finish within
    [service] shutdown_grace_s or are recorded as interrupted.
    SIGHUP reloads kwhub.toml.
    """
    from kwhub.hub.api.serve import serve as run

    interrupted = run(config, host=host, port=port, workers=workers, api=api, scheduler=scheduler)
    if interrupted:
        os._exit(0)  # the interrupted runs are recorded; their threads must not hold the exit up


def register(app: typer.Typer) -> None:
    """Add ``serve``."""
    app.command("serve")(serve)
