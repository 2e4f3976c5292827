"""The composition root: one place that wires configuration, plugins, the database and services.

The CLI, the demo, the plugin test kit (and later the API and the scheduler) all start
here instead of repeating the wiring::

    with Hub.open("kwhub.toml") as hub:
        outcomes = hub.settle("2026-10")

A :class:`Hub` holds the validated configuration, the plugin registry and (opened on first
use) the database. Services take those three; the methods below are the thin, shared
entry points to them, so a new front end calls one method instead of re-assembling
options, registries and delivery hooks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kwhub.hub.config import KwhubConfig, load_config

if TYPE_CHECKING:
    from kwhub.core.invoice import Invoice
    from kwhub.hub.registry import Registry
    from kwhub.hub.settle.service import RunOutcome
    from kwhub.hub.store import Database


@dataclass
class Hub:
    """A configured hub: configuration, registry and a lazily opened database."""

    config: KwhubConfig
    registry: Registry
    _db: Database | None = field(default=None, repr=False)
    database_url: str = ""
    _t0: float = field(default_factory=time.monotonic, repr=False)
    # called (without arguments) after :meth:`settle` or :meth:`approve` issued something in this
    # process; e.g. the dashboard recomputes its campus figures (kwhub.hub.ui.flow.FlowWarmer)
    issue_listeners: list[Callable[[], None]] = field(default_factory=list, repr=False, compare=False)

    # ------------------------------------------------------------------ clock

    @property
    def clock_speed(self) -> float:
        """Simulated seconds per real second (``[service.clock] speed``; 1 without a simulated clock)."""
        clock = self.config.file.service.clock
        return clock.speed if clock is not None else 1.0

    def now(self) -> datetime:
        """The hub's present (UTC): the wall clock, or ``[service.clock]``'s simulated time,
        which starts at ``start`` when the hub opens and runs ``speed`` times as fast."""
        clock = self.config.file.service.clock
        if clock is None:
            return datetime.now(UTC)
        return clock.start.astimezone(UTC) + timedelta(seconds=(time.monotonic() - self._t0) * clock.speed)

    def clock_epoch(self) -> float:
        """:meth:`now` as epoch seconds (the clock the device poller samples with)."""
        return self.now().timestamp()

    @classmethod
    def open(cls, config: str | Path | None = None, *, work_dir: Path | None = None, registry: Registry | None = None,
             required: bool = False, database_url: str | None = None) -> Hub:
        """Load and validate the configuration (``kwhub.toml`` by default) and the plugins.

        ``required`` refuses to run on the embedded default when no file is found;
        ``database_url`` overrides ``[hub] database`` (tests, the demo).
        """
        if registry is None:
            from kwhub.hub.registry import get_registry

            registry = get_registry()
        cfg = load_config(config, work_dir=work_dir, registry=registry, required=required)
        return cls(cfg, registry, database_url=database_url or cfg.database_url)

    @classmethod
    def from_config(cls, cfg: KwhubConfig, registry: Registry | None = None, database: Database | None = None) -> Hub:
        """A hub around an already loaded configuration (and, optionally, an open database)."""
        if registry is None:
            from kwhub.hub.registry import get_registry

            registry = get_registry()
        return cls(cfg, registry, _db=database, database_url=cfg.database_url)

    # ------------------------------------------------------------------ resources

    @property
    def db(self) -> Database:
        """The database, opened (and migrated) on first use."""
        if self._db is None:
            from kwhub.hub.store import Database

            self._db = Database.open(self.database_url, work_dir=self.config.work_dir)
        return self._db

    @property
    def campus(self) -> Any:
        return self.config.campus

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> Hub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ services

    def settlement_options(self) -> Any:
        """:class:`kwhub.core.settlement.SettlementOptions` from ``[settlement]``, ``[review]``, indexes."""
        return self.config.settlement_options()

    def on_issue(self) -> Callable[[Any, Invoice], None] | None:
        """The callback that queues an issued invoice for its buyer's deliveries (or None)."""
        from kwhub.hub.settle.issuing import outbox_hook

        return outbox_hook(self.config, self.registry, self.db)

    def settle(self, period: str, *, contracts: Sequence[str] | None = None, version: str = "initial",
               options: Any | None = None, issue_date: date | None = None, now: datetime | None = None,
               dry_run: bool = False, progress: Callable[[str], None] | None = None) -> list[RunOutcome]:
        """Settle one period (see :func:`kwhub.hub.settle.service.settle`), deliveries wired in."""
        from kwhub.hub.settle.service import settle

        outcomes = settle(self.db, self.campus, period, contracts=contracts, version=version,
                          options=options or self.settlement_options(), issue_date=issue_date,
                          components=self.registry, progress=progress, now=now, dry_run=dry_run,
                          on_issue=None if dry_run else self.on_issue())
        if any(o.status == "issued" for o in outcomes):
            self._issued()
        return outcomes

    def approve(self, run_ids: Sequence[str], *, actor: str, reason: str = "",
                issue_date: date | None = None) -> dict[str, Any]:
        """Approve runs: issue their drafts and queue the deliveries (see :mod:`kwhub.hub.settle.review`)."""
        from kwhub.hub.settle.review import approve_runs

        out = approve_runs(self.db, self.campus, run_ids, actor=actor, reason=reason, issue_date=issue_date,
                           on_issue=self.on_issue())
        self._issued()
        return out

    def _issued(self) -> None:
        for listener in list(self.issue_listeners):
            listener()

    def ingest_file(self, path: str | Path, adapter_id: str, channel: str | None = None, *,
                    now: datetime | None = None) -> Any:
        """Ingest one file with a configured meter adapter instance, then run VEE on what it touched."""
        from kwhub.hub.ingest.batch import ingest_file

        return ingest_file(self.db, self.campus, self.config.adapter(adapter_id), path, channel,
                           allow_new_channels=self.config.embedded_default, vee_config=self.config.vee or None,
                           vee_now=now)
