"""Cross-checks of ``[service]``, ``[scheduler]`` and ``[api]`` against the rest of the file.

Every problem names its key path, like the rest of the configuration's checks; ``kwhub
serve`` refuses to start on any of them.
"""

from __future__ import annotations

from typing import Any

BUILTIN_JOBS = ("relay", "vee", "close")


def service_problems(cf: Any) -> list[str]:
    """Problems of the service tables of a parsed :class:`kwhub.hub.config.ConfigFile`."""
    problems: list[str] = []
    adapters = {a.id for a in cf.adapters}
    contracts = {c.id for c in cf.contracts}
    parties = {p.id for p in cf.parties}
    sch = cf.scheduler
    seen: set[str] = set(BUILTIN_JOBS)
    for i, w in enumerate(sch.watch):
        where = f"scheduler.watch[{i}]"
        if w.adapter not in adapters:
            problems.append(f"{where}.adapter: unknown adapter instance {w.adapter!r} "
                            f"(configured: {', '.join(sorted(adapters)) or 'none'})")
        job_id = f"watch.{w.id or w.folder}"
        if job_id in seen:
            problems.append(f"{where}.id: duplicate job id {job_id!r}")
        seen.add(job_id)
    for i, j in enumerate(sch.jobs):
        where = f'scheduler.jobs[{i}] (id="{j.id}")'
        if j.id in seen:
            problems.append(f"{where}.id: duplicate job id {j.id!r} (built-in jobs: {', '.join(BUILTIN_JOBS)})")
        seen.add(j.id)
        if j.cron is not None:
            try:
                from apscheduler.triggers.cron import CronTrigger

                CronTrigger.from_crontab(j.cron, timezone=cf.hub.timezone)
            except ValueError as exc:
                problems.append(f"{where}.cron: {exc}")
    for cid in sch.close.contracts:
        if cid not in contracts:
            problems.append(f"scheduler.close.contracts.{cid}: unknown contract {cid!r}")
    for cid, timing in sch.close.contracts.items():
        initial = timing.initial_days if timing.initial_days is not None else sch.close.initial_days
        final = timing.final_days if timing.final_days is not None else sch.close.final_days
        if final is not None and final <= initial:
            problems.append(f"scheduler.close.contracts.{cid}.final_days: {final} must come after "
                            f"initial_days ({initial})")
    ids: set[str] = set()
    for i, sub in enumerate(cf.service.webhooks):
        where = f'service.webhooks[{i}] (id="{sub.id}")'
        if sub.id in ids:
            problems.append(f"{where}.id: duplicate id")
        ids.add(sub.id)
        if sub.transport not in adapters:
            problems.append(f"{where}.transport: unknown adapter instance {sub.transport!r}")
        if sub.party and sub.party not in parties:
            problems.append(f"{where}.party: unknown party {sub.party!r}")
    if cf.api.key_default_days > cf.api.key_max_days:
        problems.append(f"api.key_default_days: {cf.api.key_default_days} exceeds api.key_max_days "
                        f"({cf.api.key_max_days})")
    if cf.api.page_limit > cf.api.page_limit_max:
        problems.append(f"api.page_limit: {cf.api.page_limit} exceeds api.page_limit_max ({cf.api.page_limit_max})")
    return problems


def runtime_problems(cfg: Any) -> list[str]:
    """What only the loaded configuration can tell: adapter families and importable job functions."""
    from kwhub.core.adapters import InvoiceTransport, MeterAdapter

    problems: list[str] = []
    sch = cfg.file.scheduler
    for i, w in enumerate(sch.watch):
        inst = cfg.adapters.get(w.adapter)
        if inst is not None and not (issubclass(inst.cls, MeterAdapter) and "file" in inst.cls.capabilities):
            problems.append(f"scheduler.watch[{i}].adapter: {w.adapter!r} ({inst.type}) does not read files")
    for i, sub in enumerate(cfg.file.service.webhooks):
        inst = cfg.adapters.get(sub.transport)
        if inst is not None and not issubclass(inst.cls, InvoiceTransport):
            problems.append(f'service.webhooks[{i}] (id="{sub.id}").transport: {sub.transport!r} ({inst.type}) '
                            "is not a transport")
    from kwhub.hub.scheduler.registry import JobLoadError, load_function

    for i, j in enumerate(sch.jobs):
        try:
            load_function(j.function)
        except JobLoadError as exc:
            problems.append(f'scheduler.jobs[{i}] (id="{j.id}").function: {exc}')
    return problems
