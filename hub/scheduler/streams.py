"""Long-running readers the scheduler owner keeps going: the device poller and MQTT subscriptions.

They are not slot jobs: the poller polls each Modbus / SunSpec / OEM device at its own
``poll_seconds`` (see :class:`kwhub.hub.ingest.poller.Poller`) and writes finished
intervals in batches; an MQTT instance hands closed intervals over every
``mqtt_flush_s``. Both write the raw layer; the ``vee`` job validates it. Each adapter's
counters and last success are written to ``adapter_status`` (``/healthz`` shows them).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from kwhub.hub.store.service_tables import adapter_status_table
from kwhub.hub.store.tables import utcnow

log = logging.getLogger("kwhub.scheduler")


def record_status(db: Any, adapter_id: str, *, ok: bool, error: str = "", counts: dict[str, int] | None = None,
                  at: datetime | None = None) -> None:
    """Upsert one adapter's status row."""
    record_statuses(db, [(adapter_id, ok, error, counts)], at=at)


def record_statuses(db: Any, items: list[tuple[str, bool, str, dict[str, int] | None]],
                    at: datetime | None = None) -> None:
    """Upsert the status rows of many adapters (``(id, ok, error, counts)`` each) in one transaction."""
    t = adapter_status_table
    now = at or utcnow()
    with db.write_transaction() as conn:
        known = {r for (r,) in conn.execute(select(t.c.adapter_id).where(t.c.adapter_id.in_([i[0] for i in items])))}
        for adapter_id, ok, error, counts in items:
            values: dict[str, Any] = {"updated_at": now, **(counts or {})}
            if ok:
                values["last_success_at"] = now
            else:
                values.update(last_error_at=now, last_error=error[:2000])
            if adapter_id not in known:
                base = {"scheduled": 0, "ok": 0, "failed": 0, "missed": 0}
                conn.execute(t.insert().values(adapter_id=adapter_id, **{**base, **values}))
                known.add(adapter_id)
            else:
                conn.execute(update(t).where(t.c.adapter_id == adapter_id).values(**values))


def polled_adapters(hub: Any) -> list[Any]:
    """Adapter instances the poller drives (Modbus, SunSpec, OEM controllers), built."""
    from kwhub.hub.helpers.modbus import ModbusDeviceAdapter

    return [inst.build(hub.config.context()) for inst in hub.config.adapters.values()
            if inst.enabled and issubclass(inst.cls, ModbusDeviceAdapter)]


class PollerStream:
    """The device poller in a thread of its own (its own event loop)."""

    def __init__(self, hub: Any, flush_s: float) -> None:
        self.hub = hub
        self.flush_s = flush_s
        self.devices = polled_adapters(hub)
        self.poller: Any = None
        self.thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        if not self.devices:
            return
        from kwhub.hub.ingest.poller import Poller

        clock = self.hub.clock_epoch
        self.poller = Poller(self.devices, self.hub.db.intervals, flush_seconds=self.flush_s, source="scheduler",
                             clock=clock, time_scale=self.hub.clock_speed, keep_poll_times=False,
                             channel_units={c.id: c.unit for c in self.hub.campus.channels})
        self.thread = threading.Thread(target=self._run, name="kwhub-poller", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:  # uvloop (installed with uvicorn[standard]) spends less CPU per poll than asyncio's own loop
            import uvloop

            loop = uvloop.new_event_loop()
        except ImportError:
            loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except Exception:  # noqa: BLE001  (logged; /healthz shows the adapters' last success)
            log.exception("device poller stopped")
        finally:
            loop.close()

    async def _main(self) -> None:
        reporter = asyncio.create_task(self._report_loop())
        try:
            await self.poller.run()
        finally:
            reporter.cancel()
            await asyncio.gather(reporter, return_exceptions=True)
            await asyncio.to_thread(self.report)

    async def _report_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_s)
            await asyncio.to_thread(self.report)

    def report(self) -> None:
        """Write every device's counters to ``adapter_status`` (one transaction for all devices)."""
        if self.poller is None:
            return
        items = [(name, st.ok > 0 and st.consecutive_failures == 0, st.last_error,
                  {"scheduled": st.scheduled, "ok": st.ok, "failed": st.failed, "missed": st.missed})
                 for name, st in list(self.poller.stats.items())]
        try:
            record_statuses(self.hub.db, items)
        except Exception:  # noqa: BLE001  (the next report writes them again)
            log.exception("cannot record the status of the polled devices")

    def stop(self, timeout: float = 10.0) -> None:
        if self.poller is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self.poller.stop)
        if self.thread is not None:
            self.thread.join(timeout)


class MqttStream:
    """One ``meters.mqtt`` instance's subscription, its closed intervals ingested every flush."""

    def __init__(self, hub: Any, inst: Any, flush_s: float) -> None:
        self.hub = hub
        self.inst = inst
        self.flush_s = flush_s
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name=f"kwhub-mqtt-{self.inst.id}", daemon=True)
        self.thread.start()

    def _sink(self, batch: Any) -> None:
        from kwhub.hub.ingest.batch import ingest_batch

        ingest_batch(self.hub.db, self.hub.campus, batch, adapter_type=self.inst.type, run_vee=False)
        record_status(self.hub.db, self.inst.id, ok=True)

    def _run(self) -> None:
        adapter = self.inst.build(self.hub.config.context())
        while not self.stop_event.is_set():
            try:
                adapter.run(self._sink, self.stop_event, flush_every_s=self.flush_s)
            except Exception as exc:  # noqa: BLE001  (a broker away is retried; the status says so)
                record_status(self.hub.db, self.inst.id, ok=False, error=f"{type(exc).__name__}: {exc}")
                log.warning("MQTT %s: %s; retrying in %.0f s", self.inst.id, exc, self.flush_s)
                self.stop_event.wait(self.flush_s)

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout)


def mqtt_streams(hub: Any, flush_s: float) -> list[MqttStream]:
    """One stream per enabled ``meters.mqtt`` instance."""
    return [MqttStream(hub, inst, flush_s) for inst in hub.config.adapters.values()
            if inst.enabled and inst.type == "meters.mqtt"]
