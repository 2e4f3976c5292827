"""Meter family checks: a meter adapter reads its sample to the expected energy, through the hub.

Each check takes a :class:`~kwhub.hub.app.Hub` whose ``kwhub.toml`` configures the sample's
channels and an instance of the adapter (:func:`kwhub.testing.meter_config` writes one),
the instance id and a sample with what it must read to:

* :func:`check_meter_file` (capability ``file``): ``read_file`` gives the expected kWh
  and number of intervals per channel; ``kwhub ingest`` stores them (raw layer), VEE
  validates them without changing a value, the store gives back the same kWh, and
  ingesting the file again changes nothing. :func:`check_meter_rejects` feeds a broken
  file: the error names the file (and the line and field when given), nothing is stored.
* :func:`check_polled_meter` (capability ``poll``, Modbus TCP): simulated devices
  (:mod:`kwhub.hub.demo.simulator.modbus_devices`) are served on loopback on an accelerated
  clock; the hub's poller reads them into the store; every finished interval holds the
  expected value, VALID, and comes through VEE unchanged; ``check()`` succeeds while the
  devices answer and reports a transient failure once they are gone.
* :func:`check_mqtt_meter` (``meters.mqtt`` and adapters with its ``collect`` method):
  the sample messages are published to a real broker (Mosquitto on 127.0.0.1:1883 by
  default) under a topic root of their own, collected, ingested and read back.

Expected energy is written by hand in the test (a string or Decimal, summed from the
sample by a person, never by kwhub), and compared to the stored float values to within
``1e-9`` relative.
"""

from __future__ import annotations

import asyncio
import math
import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from kwhub.core.adapters import FailureKind, MeterAdapter
from kwhub.core.intervals import IntervalBatch, IntervalDataError
from kwhub.core.quality import Quality
from kwhub.core.timeline import Span
from kwhub.testing.contract import check_reports_failure, check_reports_ok, require

if TYPE_CHECKING:
    from kwhub.hub.app import Hub
    from kwhub.hub.ingest.batch import IngestReport

REL_TOL = 1e-9
MQTT_BROKER = ("127.0.0.1", 1883)


@dataclass(frozen=True)
class ExpectedChannel:
    """What one channel of a sample holds: total kWh (by hand) and the number of intervals."""

    kwh: Decimal | str | float
    intervals: int
    interval_minutes: int = 15
    unit: str = "kWh"

    @property
    def total(self) -> float:
        return float(Decimal(str(self.kwh)))


def _channel_specs(expected: Mapping[str, ExpectedChannel]) -> dict[str, dict[str, Any]]:
    return {cid: {"interval_minutes": e.interval_minutes, "unit": e.unit} for cid, e in expected.items()}


@dataclass(frozen=True)
class MeterSample:
    """A sample file and what it must read to (``channel`` is passed to ``read_file``)."""

    path: Path
    expected: Mapping[str, ExpectedChannel]
    channel: str | None = None

    def channels(self) -> dict[str, dict[str, Any]]:
        """The ``[[channels]]`` settings the sample needs (for :func:`kwhub.testing.meter_config`)."""
        return _channel_specs(self.expected)


@dataclass(frozen=True)
class MqttSample:
    """Messages to publish and what they aggregate to.

    A topic may contain ``{root}``: the check replaces it (there and in the instance's
    ``topic`` setting) by a topic level of its own, so runs never see each other's messages.
    ``bad`` is the number of messages the adapter must count as bad (not raise on).
    """

    messages: Sequence[tuple[str, bytes]]
    expected: Mapping[str, ExpectedChannel]
    bad: int = 0

    def channels(self) -> dict[str, dict[str, Any]]:
        return _channel_specs(self.expected)


Clock = Callable[[], float]


@dataclass(frozen=True)
class PolledSample:
    """Simulated Modbus devices and the value every finished interval must hold.

    ``devices(clock)`` builds the devices on the check's accelerated clock (drive their
    points from ``clock()``, e.g. ``ConstantPower(600, t0=clock())``); ``per_interval``
    maps each channel to its value per interval in the channel's unit (kWh, MMBtu, or the
    available fraction), compared to within ``rtol``.
    """

    devices: Callable[[Clock], Sequence[Any]]
    per_interval: Mapping[str, float]
    interval_minutes: int = 1
    units: Mapping[str, str] = field(default_factory=dict)
    rtol: float = 0.02

    def channels(self) -> dict[str, dict[str, Any]]:
        return {cid: {"interval_minutes": self.interval_minutes, "unit": self.units.get(cid, "kWh")}
                for cid in self.per_interval}


# ------------------------------------------------------------------ helpers


def _close(got: float, want: float) -> bool:
    return math.isclose(got, want, rel_tol=REL_TOL, abs_tol=REL_TOL)


def _instance(hub: Hub, instance_id: str, overrides: Mapping[str, Any] | None = None) -> MeterAdapter:
    """The configured instance ``instance_id``, its settings updated by ``overrides``."""
    inst = hub.config.adapters.get(instance_id)
    if inst is None:
        raise AssertionError(f"the hub has no adapter instance {instance_id!r} (configured: "
                             f"{', '.join(sorted(hub.config.adapters)) or 'none'}); kwhub.testing.meter_config "
                             "writes one")
    require(issubclass(inst.cls, MeterAdapter), f"{inst.type} is not a meter adapter")
    if not overrides:  # (a MeterAdapter subclass, checked above; the registry types it as Adapter)
        return cast(MeterAdapter, inst.build(hub.config.context()))
    cls: Any = inst.cls
    raw = next(a.config for a in hub.config.file.adapters if a.id == instance_id)
    settings = cls.Config.model_validate({**raw, **overrides})
    return cast(MeterAdapter, cls(instance_id, settings, hub.config.context()))


@dataclass(frozen=True)
class _Read:
    """The intervals of one channel that hold a value, sorted by start."""

    starts: np.ndarray
    values: np.ndarray
    quality: np.ndarray
    minutes: int


def _good(batch: IntervalBatch) -> dict[str, _Read]:
    """Per channel: the intervals of the batch that hold a value."""
    parts: dict[str, list[Any]] = {}
    for s in batch.series:
        keep = (s.quality != Quality.MISSING) & ~np.isnan(s.values)
        parts.setdefault(s.channel_id, []).append((s.starts[keep], s.values[keep], s.quality[keep], s.interval_minutes))
    out: dict[str, _Read] = {}
    for cid, group in parts.items():
        starts = np.concatenate([g[0] for g in group])
        order = np.argsort(starts, kind="stable")
        out[cid] = _Read(starts[order], np.concatenate([g[1] for g in group])[order],
                         np.concatenate([g[2] for g in group])[order], int(group[0][3]))
    return out


def _stored(hub: Hub, channel: str, starts: np.ndarray, minutes: int, layer: str) -> tuple[np.ndarray, np.ndarray]:
    """Values and quality the store holds at ``starts`` (NaN + MISSING where nothing is stored)."""
    step = minutes * 60
    span = Span(datetime.fromtimestamp(int(starts.min()), tz=UTC), datetime.fromtimestamp(int(starts.max()) + step, tz=UTC))
    m = hub.db.intervals.read_matrix([channel], span, minutes, layer=layer)
    idx = (starts - m.start_epoch) // step
    return m.values[0][idx], m.quality[0][idx]


def _check_batch(tid: str, source: str, batch: IntervalBatch, expected: Mapping[str, ExpectedChannel]) -> None:
    require(isinstance(batch, IntervalBatch), f"{tid}: read {source} into {type(batch).__name__}, not an IntervalBatch")
    good = _good(batch)
    got, want = sorted(good), sorted(expected)
    require(got == want, f"{tid}: {source} read to channels {got}, expected {want}")
    for cid, exp in expected.items():
        starts, values, minutes = good[cid].starts, good[cid].values, good[cid].minutes
        require(minutes == exp.interval_minutes,
                f"{tid}: {source} channel {cid} has {minutes}-minute intervals, expected {exp.interval_minutes}")
        require(len(starts) == exp.intervals,
                f"{tid}: {source} channel {cid} holds {len(starts)} intervals with a value, expected {exp.intervals}")
        require(len(np.unique(starts)) == len(starts), f"{tid}: {source} channel {cid} repeats an interval start")
        require((starts % (minutes * 60) == 0).all(),
                f"{tid}: {source} channel {cid} has interval starts off the {minutes}-minute grid")
        total = float(values.sum())
        require(_close(total, exp.total), f"{tid}: {source} channel {cid} reads {total!r} kWh, expected {exp.kwh}")


def _check_round_trip(hub: Hub, tid: str, batch: IntervalBatch, report: IngestReport) -> None:
    """What the batch holds is in the raw layer and, unchanged by VEE, in the validated layer."""
    require(not report.created_channels,
            f"{tid}: ingest created channels {report.created_channels}; configure them in the hub")
    require(report.vee is not None, f"{tid}: VEE did not run on the ingested days: {report.vee_note or 'no summary'}")
    for cid, read in _good(batch).items():
        for layer in ("raw", "validated"):
            got, quality = _stored(hub, cid, read.starts, read.minutes, layer)
            differ = np.flatnonzero(~np.isclose(got, read.values, rtol=REL_TOL, atol=REL_TOL) | np.isnan(got)
                                    | (quality != read.quality))
            if len(differ):
                i = int(differ[0])
                when = datetime.fromtimestamp(int(read.starts[i]), tz=UTC).isoformat()
                vee = report.vee.get("rules") if isinstance(report.vee, dict) else report.vee
                raise AssertionError(
                    f"{tid}: channel {cid} at {when}: the {layer} layer holds {got[i]!r} kWh "
                    f"({Quality(int(quality[i])).label}), the adapter read {read.values[i]!r} "
                    f"({Quality(int(read.quality[i])).label}); {len(differ)} interval(s) differ (VEE: {vee})")


# ------------------------------------------------------------------ file adapters


def check_meter_file(hub: Hub, instance_id: str, sample: MeterSample, *, sniff: bool = False) -> IngestReport:
    """Read, ingest, validate and read back ``sample`` with the configured instance ``instance_id``.

    ``sniff=True`` also requires the plugin's ``kwhub_sniff_meter_file`` to claim the
    sample for this adapter type (so ``kwhub ingest FILE`` works without ``--adapter``).
    Returns the first ingest's report.
    """
    adapter = _instance(hub, instance_id)
    tid = adapter.type_id
    path = Path(sample.path)
    require(path.is_file(), f"{tid}: sample {path} does not exist")
    require("file" in adapter.capabilities, f"{tid}: does not declare the 'file' capability")
    batch = _read(adapter, path, sample.channel)
    require(path.name in str(batch.source), f"{tid}: batch.source {batch.source!r} should name the file {path.name}")
    _check_batch(tid, path.name, batch, sample.expected)
    _check_batch(tid, f"{path.name} (read again)", _read(adapter, path, sample.channel), sample.expected)
    if sniff:
        from kwhub.hub.ingest.batch import sniff_adapter

        claimed = sniff_adapter(path, hub.registry)
        require(claimed == tid, f"{tid}: kwhub_sniff_meter_file gives {claimed!r} for {path.name}, expected {tid!r}")
    report = hub.ingest_file(path, instance_id, sample.channel, now=_end_of(batch))
    _check_round_trip(hub, tid, batch, report)
    second = hub.ingest_file(path, instance_id, sample.channel, now=_end_of(batch))
    require(second.new_days == 0 and second.changed_days == 0,
            f"{tid}: ingesting {path.name} again changed the store ({second.new_days} new, "
            f"{second.changed_days} changed days); reading the same file must give the same intervals")
    return report


def _read(adapter: MeterAdapter, path: Path, channel: str | None) -> IntervalBatch:
    try:
        return adapter.read_file(path, channel)
    except Exception as exc:
        raise AssertionError(f"{adapter.type_id}: reading the sample {path.name} raised "
                             f"{type(exc).__name__}: {exc}") from exc


def _end_of(batch: IntervalBatch) -> datetime:
    ends = [int(s.starts.max()) + s.interval_minutes * 60 for s in batch.series if len(s)]
    return datetime.fromtimestamp(max(ends), tz=UTC) if ends else datetime.now(UTC)


def check_meter_rejects(hub: Hub, instance_id: str, path: Path, *, where: str | None = None,
                        field: str | None = None, channel: str | None = None) -> IntervalDataError:
    """Ingesting the broken file ``path`` fails with an error naming it; nothing is stored.

    ``where`` (e.g. ``"line 4"``) must appear in the error's location and ``field`` be the
    field it names, when given.
    """
    adapter = _instance(hub, instance_id)
    tid = adapter.type_id
    before = hub.db.intervals.count_rows()
    try:
        hub.ingest_file(path, instance_id, channel)
    except IntervalDataError as exc:
        error = exc
    except Exception as exc:
        raise AssertionError(f"{tid}: {path.name} raised {type(exc).__name__}: {exc}; bad input should raise "
                             "kwhub.core.intervals.IntervalDataError naming the file, line and field") from exc
    else:
        raise AssertionError(f"{tid}: {path.name} was accepted, but it is broken")
    text = str(error)
    require(path.name in (error.source + text), f"{tid}: the error does not name the file {path.name}: {text}")
    if where is not None:
        require(where in error.where, f"{tid}: the error locates the problem at {error.where!r}, expected {where!r}")
    if field is not None:
        require(error.field == field, f"{tid}: the error names field {error.field!r}, expected {field!r}")
    require(not re.search(r"\bbug\b", text, re.IGNORECASE), f"{tid}: an input error must not call itself a bug: {text}")
    after = hub.db.intervals.count_rows()
    require(after == before, f"{tid}: the rejected file left {after - before} stored day row(s) behind")
    return error


# ------------------------------------------------------------------ polled devices (Modbus TCP)


class _HeldClock:
    """Simulated time that stands still at ``start`` until :meth:`release`, then runs ``speed`` x real time.

    Starting the server and the first ``check()`` take real time; holding the clock until
    the poller starts keeps that time out of the simulated intervals.
    """

    def __init__(self, start: float, speed: float) -> None:
        self.start = start
        self.speed = speed
        self._running: Callable[[], float] | None = None

    def release(self) -> None:
        from kwhub.hub.demo.simulator.modbus_devices import SimClock

        self._running = SimClock(start_epoch=self.start, speed=self.speed)

    def __call__(self) -> float:
        return self._running() if self._running is not None else self.start


def check_polled_meter(hub: Hub, instance_id: str, sample: PolledSample, *, speed: float = 60.0,
                       intervals: int = 2) -> dict[str, np.ndarray]:
    """Poll the sample devices through the hub's poller into its store; see the module docstring.

    The instance's ``host`` and ``port`` are replaced by the loopback server's. The clock
    runs ``speed`` times faster than real time; polling lasts until ``intervals`` whole
    intervals are finished. Returns the stored raw values per channel.
    """
    from kwhub.hub.demo.simulator.modbus_devices import DeviceServer
    from kwhub.hub.ingest.poller import Poller
    from kwhub.hub.ingest.vee import validate_days

    probe: Any = _instance(hub, instance_id)  # a polled adapter (poll_seconds, timeout), not any MeterAdapter
    tid = probe.type_id
    require("poll" in probe.capabilities, f"{tid}: does not declare the 'poll' capability")
    minutes = sample.interval_minutes
    polled_minutes = getattr(probe, "interval_minutes", None)
    require(polled_minutes == minutes,
            f"{tid}: the instance polls into {polled_minutes}-minute intervals, the sample expects {minutes}")
    step = minutes * 60
    lead = 30.0  # simulated seconds between the first poll and the first interval boundary
    first = (int(time.time()) // step) * step - 86_400
    clock = _HeldClock(first - lead, speed)
    max_gap = speed * max(3 * probe.poll_seconds, probe.poll_seconds + 2 * probe.timeout)
    seconds = (lead + intervals * step + max_gap) / speed + 0.5
    devices = sample.devices(clock)

    async def run() -> tuple[int, int]:
        async with DeviceServer(devices) as server:
            adapter: Any = _instance(hub, instance_id, {"host": server.host, "port": server.port})  # a PolledDevice
            await asyncio.to_thread(check_reports_ok, adapter)
            poller = Poller([adapter], hub.db.intervals, flush_seconds=0.5, clock=clock,
                            time_scale=speed, source=f"kit:{instance_id}",
                            channel_units={c.id: c.unit for c in hub.campus.channels})
            clock.release()
            await poller.run(seconds)
            return server.port, poller.writes

    port, writes = asyncio.run(run())
    require(writes >= 1, f"{tid}: the poller wrote nothing in {seconds:.1f} s")
    check_reports_failure(_instance(hub, instance_id, {"host": "127.0.0.1", "port": port}), FailureKind.TRANSIENT)

    starts = first + step * np.arange(intervals, dtype=np.int64)
    stored: dict[str, np.ndarray] = {}
    for cid, want in sample.per_interval.items():
        values, quality = _stored(hub, cid, starts, minutes, "raw")
        labels = [Quality(int(q)).label for q in quality]
        require((quality == Quality.VALID).all(),
                f"{tid}: channel {cid}: the first {intervals} finished intervals are {labels}, expected valid")
        require(np.allclose(values, want, rtol=sample.rtol, atol=1e-9),
                f"{tid}: channel {cid} stored {values.tolist()} per interval, expected {want} (rtol {sample.rtol})")
        stored[cid] = values
    end = datetime.fromtimestamp(int(starts[-1]) + step, tz=UTC)
    days = {cid: {datetime.fromtimestamp(int(s), tz=UTC).date() for s in starts} for cid in sample.per_interval}
    validate_days(hub.db, hub.campus, days, hub.config.vee or None, run_label=f"kit {instance_id}", now=end,
                  registry=hub.registry)
    for cid, raw in stored.items():
        values, quality = _stored(hub, cid, starts, minutes, "validated")
        labels = [Quality(int(q)).label for q in quality]
        require(np.allclose(values, raw, rtol=REL_TOL, atol=REL_TOL) and (quality == Quality.VALID).all(),
                f"{tid}: channel {cid}: VEE changed the polled values {raw.tolist()} into {values.tolist()} {labels}")
    return stored


# ------------------------------------------------------------------ MQTT


def _publish(broker: tuple[str, int], messages: Sequence[tuple[str, bytes]]) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                         client_id=f"kwhub-kit-pub-{secrets.token_hex(4)}")
    client.connect(*broker)
    client.loop_start()
    try:
        for topic, payload in messages:
            client.publish(topic, payload, qos=1).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


def check_mqtt_meter(hub: Hub, instance_id: str, sample: MqttSample, *,
                     broker: tuple[str, int] = MQTT_BROKER, timeout_s: float = 10.0) -> IngestReport:
    """Publish ``sample`` to ``broker``, collect it with the instance, ingest and read it back.

    The instance's ``host``/``port`` become the broker's and ``{root}`` in its ``topic``
    a fresh topic level. The adapter must offer ``collect(duration_s, max_messages,
    on_ready)`` as ``meters.mqtt`` does.
    """
    from kwhub.hub.ingest.batch import ingest_batch

    root = f"kwhub-kit-{secrets.token_hex(6)}"
    raw: dict[str, Any] = next((a.config for a in hub.config.file.adapters if a.id == instance_id), {})
    topic = str(raw.get("topic", "{root}/#")).replace("{root}", root)
    adapter: Any = _instance(hub, instance_id, {"host": broker[0], "port": broker[1], "topic": topic})  # (collect)
    tid = adapter.type_id
    require(callable(getattr(adapter, "collect", None)), f"{tid}: has no collect(duration_s, max_messages, on_ready)")
    check_reports_ok(adapter)
    messages = [(t.replace("{root}", root), p) for t, p in sample.messages]
    batch = adapter.collect(duration_s=timeout_s, max_messages=len(messages),
                            on_ready=lambda: _publish(broker, messages))
    meta = batch.meta
    require(meta.get("messages") == len(messages),
            f"{tid}: received {meta.get('messages')} of {len(messages)} messages within {timeout_s} s")
    require(meta.get("bad", 0) == sample.bad,
            f"{tid}: counted {meta.get('bad')} bad messages, expected {sample.bad}: {meta.get('bad_examples')}")
    _check_batch(tid, f"topic {topic}", batch, sample.expected)
    report = ingest_batch(hub.db, hub.campus, batch, adapter_type=tid, vee_config=hub.config.vee or None,
                          vee_now=_end_of(batch))
    _check_round_trip(hub, tid, batch, report)
    return report
