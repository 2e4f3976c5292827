"""A portfolio of campuses settled in parallel on Dask, one task per (campus, period) or (campus, contract, period).

Each campus is a ``kwhub.toml``; the campuses of a portfolio share one database (PostgreSQL
in production: every worker connects to it with the campus' ``[hub] database`` URL), and
their channel, contract and party ids are distinct. A task loads its campus configuration,
opens the database and runs the ordinary :func:`kwhub.hub.settle.service.settle` with
``issue=False`` for its contracts: the runs and their drafts are written by the same code as a
serial settle. By default a task settles a whole campus (``group="campus"``): the campus' channels
are read and its allocation computed once, as in a serial settle; with ``group="contract"`` each
contract is a task of its own, and every contract billed from the allocation reads the campus'
balance channels and allocates again. When every task has finished, the driver issues each campus' drafts in contract order
with :func:`~kwhub.hub.settle.service.issue_outcomes`, exactly as one serial call per campus
would (same invoice numbers, same documents, same outbox rows); a campus with a failed
contract issues nothing, as a serial settle would not.

A task that raises (a lost connection, a worker that died) is retried by the scheduler up to
``retries`` times without touching the other tasks; one that still fails is reported in
:attr:`PortfolioResult.failures`. Errors that are data (missing intervals, a pricing error)
are outcomes with ``status == "error"``, not retried: they would fail the same way again.

The scheduler is a :class:`dask.distributed.LocalCluster` by default, or any running
scheduler given by address (``tcp://host:8786``): the same code runs on a real cluster
whose workers have kwhub installed and reach the database.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from kwhub.hub.settle.service import RunOutcome


class PortfolioError(ValueError):
    """The portfolio cannot run as given; the message says what to fix."""


@dataclass(frozen=True)
class CampusRef:
    """One campus of the portfolio: its name and its ``kwhub.toml``."""

    name: str
    config: str


@dataclass(frozen=True)
class SettleTask:
    """One unit of work: settle ``contract_id`` of ``campus`` (None: all its contracts) for ``period``
    (one version kind)."""

    campus: str
    config: str
    contract_id: str | None
    period: str
    version: str
    issue_date: date | None = None  # the drafts carry it: every task of a portfolio gets the same

    @property
    def key(self) -> str:
        """The task's unique name on the scheduler (shown on its dashboard)."""
        return f"settle|{self.campus}|{self.contract_id or '*'}|{self.period}|{self.version}"


@dataclass
class TaskFailure:
    """A task that still raised after its retries."""

    task: SettleTask
    error: str


@dataclass
class PortfolioResult:
    """Outcomes per campus (in the portfolio's order, contracts in configuration order) and failures."""

    outcomes: dict[str, list[RunOutcome]] = field(default_factory=dict)
    failures: list[TaskFailure] = field(default_factory=list)
    tasks: int = 0

    @property
    def ok(self) -> bool:
        """No failed task and no contract with an error."""
        return not self.failures and not any(o.status == "error" for os_ in self.outcomes.values() for o in os_)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly summary."""
        return {"tasks": self.tasks,
                "campuses": {c: [o.as_dict() for o in os_] for c, os_ in self.outcomes.items()},
                "failures": [{"task": f.task.key, "error": f.error} for f in self.failures]}


def campus_refs(specs: Sequence[str]) -> list[CampusRef]:
    """Campuses from ``kwhub.toml`` paths or folders holding one; named by their ``[hub] name``."""
    from kwhub.hub.config import load_config

    refs: list[CampusRef] = []
    seen: dict[str, str] = {}
    for spec in specs:
        path = Path(spec.strip())
        if path.is_dir():
            path = path / "kwhub.toml"
        if not path.is_file():
            raise PortfolioError(f"--campuses: {spec}: no kwhub.toml there; give a kwhub.toml or its folder")
        cfg = load_config(path, required=True)
        name = cfg.file.hub.name if cfg.file.hub.name != "kwhub" else path.resolve().parent.name
        if name in seen:
            raise PortfolioError(f"--campuses: {spec} and {seen[name]} are both named {name!r}; give each campus "
                                 "its own [hub] name")
        seen[name] = spec
        refs.append(CampusRef(name=name, config=str(path.resolve())))
    if not refs:
        raise PortfolioError("--campuses is empty; give campus configurations separated by commas")
    return refs


GROUPS = ("campus", "contract")


def plan_tasks(campuses: Sequence[CampusRef], period: str, version: str = "initial",
               issue_date: date | None = None, group: str = "campus") -> list[SettleTask]:
    """One task per campus (``group="campus"``) or per (campus, contract) for ``period``;
    ``issue_date`` None: today, fixed once for all."""
    if group not in GROUPS:
        raise PortfolioError(f"unknown task grouping {group!r}; expected one of {', '.join(GROUPS)}")
    day = issue_date or date.today()
    tasks: list[SettleTask] = []
    for ref in campuses:
        cfg = _config(ref.config)
        if group == "campus":
            if cfg.campus.contracts:
                tasks.append(SettleTask(ref.name, ref.config, None, period, version, day))
        else:
            tasks += [SettleTask(ref.name, ref.config, c.id, period, version, day) for c in cfg.campus.contracts]
    return tasks


# ----------------------------------------------------------------------- worker side

_CACHE_LOCK = threading.Lock()
_CONFIGS: dict[str, Any] = {}
_DATABASES: dict[tuple[str, str], Any] = {}


def _config(path: str) -> Any:
    """The configuration at ``path``, loaded once per process."""
    from kwhub.hub.config import load_config

    with _CACHE_LOCK:
        cfg = _CONFIGS.get(path)
        if cfg is None:
            cfg = _CONFIGS[path] = load_config(path, required=True)
        return cfg


def _database(cfg: Any) -> Any:
    """The configuration's database, opened (and migrated) once per process and shared by its tasks."""
    from kwhub.hub.store import Database

    # campuses on one server share one pool per process (a SQLite file is one per folder)
    key = (cfg.database_url, "") if cfg.database_url else ("", str(cfg.work_dir))
    with _CACHE_LOCK:
        db = _DATABASES.get(key)
        if db is None:
            db = _DATABASES[key] = Database.open(cfg.database_url, work_dir=cfg.work_dir)
        return db


def _settle_one(task: SettleTask) -> list[RunOutcome]:
    """The ordinary settlement of the task's contracts, their drafts left for the driver to issue."""
    from kwhub.hub.settle.service import settle

    cfg = _config(task.config)
    contracts = None if task.contract_id is None else [task.contract_id]
    return settle(_database(cfg), cfg.campus, task.period, contracts=contracts, version=task.version,
                  options=cfg.settlement_options(), issue_date=task.issue_date, issue=False)


def run_task(task: SettleTask) -> list[RunOutcome]:
    """What a worker runs for one task (module-level, so workers import it by name)."""
    return _settle_one(task)


# ----------------------------------------------------------------------- driver side


def _client(scheduler: str | None, workers: int, processes: bool) -> tuple[Any, Any]:
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:  # pragma: no cover - depends on the installed extras
        raise PortfolioError("the Dask path needs dask.distributed: pip install 'kwhub[portfolio]'") from None
    if scheduler in (None, "", "local"):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=processes,
                               dashboard_address=None)
        return Client(cluster), cluster
    try:
        return Client(scheduler, timeout="20s"), None
    except OSError as exc:
        raise PortfolioError(f"--dask {scheduler}: cannot reach the scheduler ({exc}); start one with "
                             "`dask scheduler` and workers with `dask worker ADDRESS`, or give --dask local") from None


def settle_portfolio(campuses: Sequence[CampusRef], period: str, version: str = "initial", *,
                     scheduler: str | None = None, workers: int = 2, processes: bool = True, retries: int = 2,
                     issue_date: date | None = None, deliver: bool = True, group: str = "campus",
                     progress: Callable[[SettleTask, str], None] | None = None) -> PortfolioResult:
    """Settle ``period`` for every contract of every campus on Dask (see module docs).

    ``group``: one task per ``campus`` (default) or per ``contract``.
    """
    from dask.distributed import as_completed

    tasks = plan_tasks(campuses, period, version, issue_date, group)
    issue_date = tasks[0].issue_date if tasks else issue_date
    result = PortfolioResult(tasks=len(tasks))
    got: dict[SettleTask, list[RunOutcome]] = {}
    client, cluster = _client(scheduler, workers, processes)
    try:
        futures = {client.submit(run_task, t, key=t.key, retries=retries, pure=False): t for t in tasks}
        for fut in as_completed(futures):
            t = futures[fut]
            try:
                got[t] = fut.result()
                status = ", ".join(o.status for o in got[t])
            except Exception as exc:  # reported per task; the others carry on
                result.failures.append(TaskFailure(t, f"{type(exc).__name__}: {exc}"))
                status = "failed"
            if progress:
                progress(t, status)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    for ref in campuses:
        mine = [t for t in tasks if t.campus == ref.name]
        outcomes = [o for t in mine for o in got.get(t, [])]
        contract_ids = [c.id for c in _config(ref.config).campus.contracts]
        for f in (f for f in result.failures if f.task.campus == ref.name):
            ids = contract_ids if f.task.contract_id is None else [f.task.contract_id]
            outcomes += [RunOutcome(cid, period, version, error=f.error) for cid in ids]
        order = {cid: i for i, cid in enumerate(contract_ids)}
        outcomes.sort(key=lambda o: order.get(o.contract_id, 0))
        _issue_campus(ref, outcomes, issue_date=issue_date, deliver=deliver)
        result.outcomes[ref.name] = outcomes
    return result


def _issue_campus(ref: CampusRef, outcomes: list[RunOutcome], *, issue_date: date | None, deliver: bool) -> None:
    """Issue one campus' drafts as its serial settle would (nothing when a contract failed)."""
    from kwhub.hub.registry import get_registry
    from kwhub.hub.settle.issuing import outbox_hook
    from kwhub.hub.settle.service import issue_outcomes

    cfg = _config(ref.config)
    db = _database(cfg)
    on_issue = outbox_hook(cfg, get_registry(), db) if deliver else None
    issue_outcomes(db, cfg.campus, outcomes, cfg.settlement_options(), issue_date=issue_date, on_issue=on_issue)


def settle_serial(campuses: Sequence[CampusRef], period: str, version: str = "initial", *,
                  issue_date: date | None = None, deliver: bool = True) -> PortfolioResult:
    """The same portfolio settled in this process, one campus after the other (the reference path)."""
    from kwhub.hub.registry import get_registry
    from kwhub.hub.settle.issuing import outbox_hook
    from kwhub.hub.settle.service import settle

    result = PortfolioResult()
    for ref in campuses:
        cfg = _config(ref.config)
        db = _database(cfg)
        result.tasks += len(cfg.campus.contracts)
        on_issue = outbox_hook(cfg, get_registry(), db) if deliver else None
        result.outcomes[ref.name] = settle(db, cfg.campus, period, version=version, options=cfg.settlement_options(),
                                           issue_date=issue_date, on_issue=on_issue)
    return result


def close_cached() -> None:
    """Close the databases this process opened for portfolio tasks (tests, long-lived drivers)."""
    with _CACHE_LOCK:
        for db in _DATABASES.values():
            db.close()
        _DATABASES.clear()
        _CONFIGS.clear()
