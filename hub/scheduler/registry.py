"""The job registry: what the scheduler runs, each job a plain function of a :class:`~kwhub.hub.app.Hub`.

A job is a :class:`JobSpec`: an id, a function called as ``function(hub)`` or
``function(hub, ctx)`` (``ctx`` is a :class:`JobContext`: the slot, the hub's clock, the
owner), and a trigger (``every_s`` seconds on a grid aligned to the epoch, or a five-field
``cron`` in the hub's time zone). Jobs come from three places:

* the built-in jobs of ``[scheduler]`` (:func:`builtin_jobs`): ``relay``, ``vee``, ``close``,
  ``verify``, the market jobs of ``[markets]`` (:mod:`kwhub.hub.markets.jobs`) and one
  ``watch.<id>`` per watched folder;
* job factories registered in code with :func:`register_job_factory` (a module of kwhub
  or a plugin adds its jobs this way: ``register_job_factory("markets", market_jobs)``,
  where ``market_jobs(cfg)`` returns the JobSpecs its configuration asks for);
* ``[[scheduler.jobs]]`` entries naming ``package.module:function``.

Slots are the trigger's fire times, the same in every process, so the database can refuse
a second run of a slot (see :mod:`kwhub.hub.scheduler.history`).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


class JobLoadError(ValueError):
    """A configured job function cannot be imported."""


@dataclass(frozen=True)
class JobContext:
    """What a running job knows: its slot, the hub's present, who runs it."""

    job_id: str
    slot: datetime
    now: datetime
    owner: str


@dataclass(frozen=True)
class JobSpec:
    """One scheduled job."""

    id: str
    function: Callable[..., Any]
    every_s: float | None = None
    cron: str | None = None
    description: str = ""
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.every_s is None) == (self.cron is None):
            raise ValueError(f"job {self.id}: give exactly one of every_s and cron")

    def trigger(self, timezone: str) -> Any:
        """The APScheduler trigger (interval slots aligned to :data:`EPOCH`)."""
        if self.cron is not None:
            from apscheduler.triggers.cron import CronTrigger

            return CronTrigger.from_crontab(self.cron, timezone=timezone)
        from apscheduler.triggers.interval import IntervalTrigger

        return IntervalTrigger(seconds=self.every_s, start_date=EPOCH, timezone=UTC)  # type: ignore[arg-type]

    def schedule_text(self) -> str:
        return f"every {self.every_s:g} s" if self.every_s is not None else f"cron {self.cron}"

    def call(self, hub: Any, ctx: JobContext) -> Any:
        """Run the function with the hub (and the context when it takes two arguments)."""
        params = [p for p in inspect.signature(self.function).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in self.kwargs]
        if len(params) >= 2:
            return self.function(hub, ctx, **self.kwargs)
        return self.function(hub, **self.kwargs)


JobFactory = Callable[[Any], list[JobSpec]]
_FACTORIES: dict[str, JobFactory] = {}


def register_job_factory(name: str, factory: JobFactory) -> None:
    """Add a source of jobs: ``factory(cfg)`` returns the JobSpecs a configuration asks for."""
    _FACTORIES[name] = factory


def load_function(path: str) -> Callable[..., Any]:
    """``package.module:function`` -> the function."""
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise JobLoadError(f"cannot import {module_name!r}: {exc}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise JobLoadError(f"{module_name!r} has no function {attr!r}")
    return fn  # type: ignore[no-any-return]


def builtin_jobs(cfg: Any) -> list[JobSpec]:
    """The jobs ``[scheduler]`` configures (relay, VEE, the close schedule, verify, the market day, watched folders)."""
    from kwhub.hub.scheduler import jobs

    sch = cfg.file.scheduler
    out: list[JobSpec] = []
    if "relay" not in sch.disabled:
        out.append(JobSpec("relay", jobs.relay_job, every_s=sch.relay_every_s,
                           description="queue webhook events, deliver what the outbox holds"))
    if "vee" not in sch.disabled:
        out.append(JobSpec("vee", jobs.vee_job, every_s=sch.vee_every_s,
                           description=f"validate the last {sch.vee_lookback_days} days of every channel"))
    if "close" not in sch.disabled and sch.close.enabled and cfg.campus.contracts:
        out.append(JobSpec("close", jobs.close_job, every_s=sch.close.every_s,
                           description="settle the periods the close schedule says are due"))
    if "verify" not in sch.disabled:
        out.append(JobSpec("verify", jobs.verify_job, cron=sch.verify_cron,
                           description="check the hash chain, numbering, outbox bodies and run inputs (kwhub verify)"))
    if "markets" not in sch.disabled:
        from kwhub.hub.markets.jobs import market_jobs

        out += market_jobs(cfg)
    for w in sch.watch:
        out.append(JobSpec(f"watch.{w.id or w.folder}", jobs.watch_job, every_s=w.every_s, kwargs={"watch": w},
                           description=f"ingest new files of {w.folder} with {w.adapter}"))
    return out


def all_jobs(cfg: Any) -> list[JobSpec]:
    """Every job of ``cfg``: built-in, from factories, from ``[[scheduler.jobs]]``; ids unique."""
    specs = builtin_jobs(cfg)
    for factory in _FACTORIES.values():
        specs += factory(cfg)
    for j in cfg.file.scheduler.jobs:
        if j.enabled:
            specs.append(JobSpec(j.id, load_function(j.function), every_s=j.every_s, cron=j.cron,
                                 description=j.function))
    seen: set[str] = set()
    for s in specs:
        if s.id in seen:
            raise JobLoadError(f"two jobs have the id {s.id!r}")
        seen.add(s.id)
    return specs
