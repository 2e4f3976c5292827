"""The scheduler service: become the owner, run the jobs on APScheduler 3, give the work up cleanly.

:class:`SchedulerService` runs in a thread of the ``kwhub serve`` process. Until it owns
the work (:mod:`kwhub.hub.scheduler.ownership`) it is a standby that tries again every
``standby_retry_s``. Once owner it

1. marks the runs other owners left ``running`` as ``interrupted`` (their process died);
2. schedules every job of the registry on an APScheduler ``BackgroundScheduler``
   (``coalesce``: missed fire times run once; one instance of a job at a time);
3. catches up once: a job whose latest recorded slot is older than its latest due slot
   runs that slot now (after downtime, or after taking over from a dead owner);
4. starts the streams (device poller, MQTT);
5. writes a heartbeat and checks that it still holds the lock, every ``heartbeat_s``.

Every run first claims its (job, slot) in ``job_run``; the database refuses a slot claimed
before, so no slot runs twice. :meth:`SchedulerService.stop` stops scheduling, lets the
runs in flight finish for up to ``shutdown_grace_s`` and records those that did not as
``interrupted``.
"""

from __future__ import annotations

import contextvars
import logging
import os
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from kwhub.hub.scheduler import history
from kwhub.hub.scheduler.jobs import JobFailed
from kwhub.hub.scheduler.ownership import Ownership
from kwhub.hub.scheduler.registry import JobContext, JobSpec, all_jobs

log = logging.getLogger("kwhub.scheduler")

SLOT: contextvars.ContextVar[datetime | None] = contextvars.ContextVar("kwhub_job_slot", default=None)


class SlotExecutor(ThreadPoolExecutor):
    """APScheduler's thread pool, telling each run the fire time it runs for (its slot)."""

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        ctx = contextvars.copy_context()
        ctx.run(SLOT.set, run_times[-1])
        from apscheduler.executors.base import run_job

        def callback(f: Any) -> None:
            exc = f.exception()
            if exc:
                self._run_job_error(job.id, exc, getattr(exc, "__traceback__", None))
            else:
                self._run_job_success(job.id, f.result())

        f = self._pool.submit(ctx.run, run_job, job, job._jobstore_alias, run_times, self._logger.name)
        f.add_done_callback(callback)


def default_owner(name: str = "") -> str:
    """``name`` or ``host:pid``: who runs the jobs, as job history records it."""
    return name or f"{socket.gethostname()}:{os.getpid()}"


def previous_fire(spec: JobSpec, trigger: Any, now: datetime) -> datetime | None:
    """The latest fire time of ``spec`` at or before ``now``."""
    if spec.every_s is not None:
        from kwhub.hub.scheduler.registry import EPOCH

        n = int((now - EPOCH).total_seconds() // spec.every_s)
        return EPOCH + timedelta(seconds=n * spec.every_s)
    probe = trigger.get_next_fire_time(None, now - timedelta(days=32))
    last = None
    while probe is not None and probe <= now:
        last = probe
        probe = trigger.get_next_fire_time(probe, probe + timedelta(seconds=1))
    return last


class SchedulerService:
    """Standby or owner of one database's scheduled work (see module docs)."""

    def __init__(self, hub: Any, *, owner: str = "", jobs: list[JobSpec] | None = None) -> None:
        self.hub = hub
        self.settings = hub.config.file.scheduler
        self.owner = default_owner(owner or hub.config.file.service.instance)
        self.specs = jobs if jobs is not None else all_jobs(hub.config)
        self.ownership = Ownership(hub.db, self.owner)
        self.state = "stopped"
        self.interrupted_on_takeover: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sched: BackgroundScheduler | None = None
        self._streams: list[Any] = []
        self._in_flight: dict[int, str] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Start the standby/owner loop in a thread."""
        self.state = "standby"
        self._thread = threading.Thread(target=self._loop, name="kwhub-scheduler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                if self.state != "owner":
                    if self.ownership.try_acquire():
                        self._become_owner()
                        continue
                    self._stop.wait(self.settings.standby_retry_s)
                else:
                    if not self.ownership.still_held():
                        log.error("scheduler lost its lock; standing by", extra={"owner": self.owner})
                        self._pause()
                        continue
                    self.ownership.heartbeat()
                    self._stop.wait(self.settings.heartbeat_s)
            except Exception:  # noqa: BLE001  (the database may be away for a moment; try again)
                log.exception("scheduler loop error")
                self._stop.wait(self.settings.standby_retry_s)

    def _become_owner(self) -> None:
        db = self.hub.db
        self.interrupted_on_takeover = history.mark_interrupted(
            db, self.owner, f"its scheduler stopped before the run ended; {self.owner} took over")
        for r in self.interrupted_on_takeover:
            log.warning("run %s of job %s (slot %s, owner %s) was interrupted", r["id"], r["job_id"],
                        r["slot"].isoformat(), r["owner"], extra={"job": r["job_id"]})
        tz = self.hub.config.hub.timezone
        sched = BackgroundScheduler(
            executors={"default": SlotExecutor(self.settings.max_workers)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC)
        now = datetime.now(UTC)
        last = history.last_slots(db)
        catch_up: list[tuple[JobSpec, datetime]] = []
        for spec in self.specs:
            trigger = spec.trigger(tz)
            sched.add_job(self._execute, trigger=trigger, args=[spec], id=spec.id, name=spec.id)
            prev = previous_fire(spec, trigger, now)
            if prev is not None and spec.id in last and last[spec.id] < prev:
                catch_up.append((spec, prev))
        for spec, slot in catch_up:
            log.info("catching up job %s for slot %s", spec.id, slot.isoformat(), extra={"job": spec.id})
            sched.add_job(self._execute, trigger="date", run_date=now, args=[spec], kwargs={"slot": slot},
                          id=f"{spec.id}@catch-up", name=f"{spec.id} (catch-up)")
        self._streams = self._start_streams()
        self.state = "owner"  # before the first run can start
        self._sched = sched
        sched.start()
        log.info("scheduler owns the work: %d jobs", len(self.specs), extra={"owner": self.owner})

    def _start_streams(self) -> list[Any]:
        from kwhub.hub.scheduler.streams import PollerStream, mqtt_streams

        streams: list[Any] = []
        if self.settings.poll:
            streams.append(PollerStream(self.hub, self.settings.poll_flush_s))
        if self.settings.mqtt:
            streams += mqtt_streams(self.hub, self.settings.mqtt_flush_s)
        for s in streams:
            s.start()
        return streams

    def reload(self, hub: Any) -> None:
        """Run the jobs of a reloaded configuration (same database); an owner keeps its lock."""
        specs = all_jobs(hub.config)
        self.hub, self.settings, self.specs = hub, hub.config.file.scheduler, specs
        if self.state == "owner":
            if self._sched is not None:
                self._sched.shutdown(wait=False)
                self._sched = None
            for s in self._streams:
                s.stop()
            self._streams = []
            self._become_owner()

    def _pause(self) -> None:
        if self._sched is not None:
            self._sched.shutdown(wait=False)
            self._sched = None
        for s in self._streams:
            s.stop()
        self._streams = []
        self.ownership.release()
        self.state = "standby"

    def stop(self, grace_s: float | None = None) -> int:
        """Stop scheduling; wait up to ``grace_s`` for runs in flight; return how many were
        recorded as interrupted because they did not finish in time."""
        grace = self.hub.config.file.service.shutdown_grace_s if grace_s is None else grace_s
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        interrupted = 0
        if self._sched is not None:
            self._sched.shutdown(wait=False)
            self._sched = None
        for s in self._streams:
            s.stop()
        self._streams = []
        deadline = time.monotonic() + grace
        while self.in_flight() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.in_flight():
            interrupted = history.interrupt_own(self.hub.db, self.owner,
                                                f"kwhub serve stopped; the run did not end within {grace:g} s")
            log.warning("%d run(s) recorded as interrupted at shutdown", interrupted)
        if self.ownership.held:
            self.ownership.release()
        self.state = "stopped"
        return interrupted

    def in_flight(self) -> list[str]:
        with self._lock:
            return list(self._in_flight.values())

    # ------------------------------------------------------------------ one run

    def _execute(self, spec: JobSpec, slot: datetime | None = None) -> None:
        slot = slot or SLOT.get() or datetime.now(UTC)
        if self.state != "owner" or self._stop.is_set():
            return
        db = self.hub.db
        run_id = history.claim(db, spec.id, slot, self.owner)
        if run_id is None:
            log.info("job %s slot %s already ran", spec.id, slot.isoformat(), extra={"job": spec.id})
            return
        with self._lock:
            self._in_flight[run_id] = spec.id
        ctx = JobContext(spec.id, slot, self.hub.now(), self.owner)
        started = time.monotonic()
        try:
            detail = spec.call(self.hub, ctx)
        except JobFailed as exc:
            history.finish(db, run_id, "failed", str(exc), exc.detail)
            log.error("job %s failed: %s", spec.id, exc, extra={"job": spec.id, "run": run_id})
        except Exception as exc:  # noqa: BLE001  (recorded; the next slot runs again)
            history.finish(db, run_id, "failed", f"{type(exc).__name__}: {exc}")
            log.exception("job %s failed", spec.id, extra={"job": spec.id, "run": run_id})
        else:
            history.finish(db, run_id, "succeeded", None, detail if isinstance(detail, dict) else {"result": detail})
            log.info("job %s done in %.3f s", spec.id, time.monotonic() - started,
                     extra={"job": spec.id, "run": run_id})
        finally:
            with self._lock:
                self._in_flight.pop(run_id, None)
