"""``kwhub serve``: the API (uvicorn) and the scheduler in one process, stopped gracefully.

The process opens two hubs on the same configuration: the scheduler's (every row, as the
CLI) and the API's (every transaction scoped to the caller's party). With ``workers`` > 1
uvicorn starts that many API processes (:func:`worker_app` builds each one's app) and the
scheduler runs in the parent (the workers then run ``[service] api_nice`` steps below it in CPU
priority: a device poll is due every second, a request can wait a few milliseconds). SIGTERM or SIGINT stops accepting requests, lets requests
and jobs in flight finish (jobs for up to ``[service] shutdown_grace_s``; those that do not
are recorded as interrupted) and releases the scheduler's lock. SIGHUP reloads
``kwhub.toml`` (refused, with the key paths, when invalid) and is written to the audit log.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
from pathlib import Path
from typing import Any

log = logging.getLogger("kwhub.serve")
ENV_CONFIG = "KWHUB_SERVE_CONFIG"
ENV_NICE = "KWHUB_SERVE_API_NICE"  # set by serve() for the worker processes when the scheduler runs beside them


def open_checked(config: str | Path | None) -> Any:
    """A Hub on a configuration that passed every check, including the service's runtime ones."""
    from kwhub.hub.app import Hub
    from kwhub.hub.config import ConfigError
    from kwhub.hub.scheduler.config_check import runtime_problems

    hub = Hub.open(config, required=True)
    hub.config.resolve_secrets()  # the service uses every enabled instance: their secrets must be set now
    problems = runtime_problems(hub.config)
    if problems:
        raise ConfigError(hub.config.source, problems, hint="kwhub serve did not start; fix the file and start again")
    return hub


def sync_reference(hub: Any) -> None:
    """Mirror the configured parties, contracts and channels into the store (row-level security
    and the API look parties up there)."""
    from kwhub.hub.store import sync_reference_data

    with hub.db.session(write=True) as session:
        sync_reference_data(session, hub.campus)
        session.commit()


def worker_app() -> Any:
    """The API app of one uvicorn worker process (``workers`` > 1)."""
    from kwhub.hub.api.app import create_app
    from kwhub.hub.logs import configure

    nice = int(os.environ.get(ENV_NICE, "0"))
    if nice > 0 and hasattr(os, "nice"):  # the scheduler's polls are due each second; a request can wait
        os.nice(nice)
    hub = open_checked(os.environ[ENV_CONFIG])
    svc = hub.config.file.service
    configure(svc.log_format, svc.log_level)
    app = create_app(hub, access_log=svc.access_log)
    app.state.ui_flow_warmer.start()  # the dashboard's campus figures, ready before the first page
    return app


def serve(config: str | Path | None, *, host: str | None = None, port: int | None = None, workers: int | None = None,
          api: bool = True, scheduler: bool = True) -> int:
    """Run until a stop signal; return the number of job runs recorded as interrupted."""
    import uvicorn

    from kwhub.hub.api.app import create_app
    from kwhub.hub.logs import configure
    from kwhub.hub.scheduler.runner import SchedulerService

    core = open_checked(config)
    svc = core.config.file.service
    configure(svc.log_format, svc.log_level)
    sync_reference(core)
    api = api and core.config.file.api.enabled
    host = host or svc.host
    port = port if port is not None else svc.port
    workers = workers or svc.workers
    sched = SchedulerService(core) if scheduler and core.config.file.scheduler.enabled else None
    if sched is not None:
        sched.start()
    gc.freeze()  # what start-up built stays: later full collections need not walk it (no long pauses in polls)
    log.info("kwhub serve started", extra={"config": core.config.source, "api": f"http://{host}:{port}" if api else None,
                                           "workers": workers, "scheduler": sched is not None,
                                           "owner": sched.owner if sched else None})
    interrupted = 0
    try:
        if not api:
            _wait_for_signal()
        elif workers > 1:
            os.environ[ENV_CONFIG] = str(core.config.source)
            os.environ[ENV_NICE] = str(svc.api_nice if sched is not None else 0)
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: None)
            uvicorn.run("kwhub.hub.api.serve:worker_app", factory=True, host=host, port=port, workers=workers,
                        log_config=None, access_log=False, lifespan="off")
        else:
            api_hub = open_checked(core.config.source)
            app = create_app(api_hub, access_log=svc.access_log)
            app.state.scheduler = sched
            app.state.ui_flow_warmer.start()  # the dashboard's campus figures, ready before the first page
            server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False,
                                                   lifespan="off"))
            _on_sighup(lambda: _reload(app, core, sched))
            for sig in (signal.SIGTERM, signal.SIGINT):  # uvicorn hands the stop signal on when it is done
                signal.signal(sig, lambda *_: None)
            server.run()
            app.state.ui_flow_warmer.stop()
            api_hub.close()
    finally:
        if sched is not None:
            interrupted = sched.stop()
        log.info("kwhub serve stopped", extra={"interrupted_runs": interrupted})
        core.close()
    return interrupted


def _wait_for_signal() -> None:
    import threading

    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    while not done.wait(1.0):
        pass


def _on_sighup(callback: Any) -> None:
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, lambda *_: callback())


def _reload(app: Any, core: Any, sched: Any) -> None:
    """SIGHUP: reload the configuration (audited) for the API and the scheduler's jobs."""
    from kwhub.hub.api.reload import ReloadError, reload_hub
    from kwhub.hub.app import Hub

    try:
        detail = reload_hub(app, actor="signal:SIGHUP", reason="SIGHUP to kwhub serve")
    except ReloadError as exc:
        log.error("configuration reload refused: %s", exc)
        return
    if sched is not None:
        sched.reload(Hub.from_config(app.state.hub.config, core.registry, database=core.db))
    log.info("configuration reloaded", extra=detail)
