"""The demo's live telemetry: campus meters and plant controllers served over Modbus TCP.

The simulated campus is put behind a real pymodbus server on loopback (SunSpec meters
for the halls, cooling, grid and battery, a SunSpec inverter for the solar plant and the
OEM register maps for the turbines and engines). The hub polls them with its own
``meters.sunspec`` / ``meters.oem_telemetry`` adapters through the batching poller, on a
simulated clock that runs 900 times faster than real time, so a few seconds of polling
deliver the first hours of 1 November 2026 ("today" for the demo) into the raw layer.
Polling depends on wall-clock timing, so a second demo run keeps what the first collected.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from kwhub.hub.config import KwhubConfig

SITE_TZ = "America/New_York"
LIVE_DAY = date(2026, 11, 1)
SPEED = 900.0  # simulated seconds per real second: one quarter-hour per second
POLL_REAL_SECONDS = 6.0


def live_window_start() -> datetime:
    """Local midnight of :data:`LIVE_DAY` on the campus (the simulated clock's start)."""
    return datetime.combine(LIVE_DAY, time(0), tzinfo=ZoneInfo(SITE_TZ))


def live_window_end() -> datetime:
    """The end of the whole quarter-hours the live poll covers (the demo's "now")."""
    covered = int(POLL_REAL_SECONDS * SPEED) // 900 * 900 - 900  # the last interval may be partial
    return live_window_start() + timedelta(seconds=covered)


def _already_polled(db: Any, channel: str, day: date, tz: str) -> bool:
    from kwhub.core.timeline import local_day

    return len(db.intervals.read_series(channel, local_day(day, tz), layer="raw")) > 0


def poll_demo_devices(cfg: KwhubConfig, db: Any, seed: int = 42) -> dict[str, Any]:
    """Poll the simulated campus devices for the first hours of :data:`LIVE_DAY`; return figures."""
    from kwhub.hub.demo.simulator.campus import simulate
    from kwhub.hub.demo.simulator.modbus_devices import SimClock, campus_devices
    from kwhub.hub.ingest.poller import Poller
    from kwhub.hub.ingest.vee import validate_days
    from kwhub.hub.registry import get_registry

    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # a late reply after stop() is expected noise
    if _already_polled(db, "gt1.net", LIVE_DAY, SITE_TZ):
        summary = {s.channel_id: s for s in db.intervals.summary(layer="raw")}
        return {"status": "already polled", "channels_with_live_data": sum(
            1 for s in summary.values() if s.last_end is not None and s.last_end.date() >= LIVE_DAY)}
    live = simulate(LIVE_DAY, 1, 15, seed=seed)
    start = live_window_start().timestamp()
    clock = SimClock(start_epoch=start + 1, speed=SPEED)
    devices = campus_devices(live, clock, anchor=start, interval_minutes=15, poll_seconds=0.25, timeout=0.5,
                             one_server=True)
    registry = get_registry()
    adapters = [registry.adapter(type_id)(iid, conf, cfg.context()) for type_id, iid, conf in devices.adapters]

    async def run() -> Any:
        await devices.start()
        try:
            poller = Poller(adapters, db.intervals, flush_seconds=2.0, clock=clock, time_scale=SPEED,  # type: ignore[arg-type]
                            channel_units={c.id: c.unit for c in cfg.campus.channels})
            stats = await poller.run(POLL_REAL_SECONDS)
            return poller, stats
        finally:
            await devices.stop()
            for a in adapters:
                a.close()  # type: ignore[attr-defined]

    poller, stats = asyncio.run(run())

    utc_day = live_window_start().astimezone(UTC).date()
    polled = sorted({c for _, _, conf in devices.adapters for c in _channels_of(conf) if _known(cfg, c)})
    validate_days(db, cfg.campus, {c: {utc_day} for c in polled}, cfg.vee, run_label="modbus live window",
                  now=live_window_end())
    polls = sum(s.ok for s in stats.values())
    failed = sum(s.failed for s in stats.values())
    return {
        "status": "polled", "devices": len(adapters), "polls": polls, "failed_polls": failed,
        "store_writes": getattr(poller, "writes", 0),
        "simulated_window": f"{LIVE_DAY} 00:00 + {int(POLL_REAL_SECONDS * SPEED / 60)} min local",
    }


def _channels_of(conf: dict[str, Any]) -> list[str]:
    chans = conf.get("channels")
    if isinstance(chans, dict):
        return list(chans.values())
    asset = conf.get("asset")
    return [f"{asset}.net", f"{asset}.fuel", f"{asset}.avail"] if asset else []


def _known(cfg: KwhubConfig, channel: str) -> bool:
    return any(c.id == channel for c in cfg.campus.channels)
