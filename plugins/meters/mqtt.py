"""JSON telemetry over MQTT (paho-mqtt 2.x) turned into interval energy.

Configuration (``[[adapters]] type = "meters.mqtt"``)::

    [[adapters]]
    type = "meters.mqtt"
    id = "plant_telemetry"
    [adapters.config]
    host = "broker.campus.local"
    port = 1883
    topic = "campus/+/telemetry"        # '+' / '#' wildcards
    username = "kwhub"
    password = "env:MQTT_PASSWORD"      # resolved from the environment
    channel_map = { "gt1" = "gt1.net" }  # device (or "device/point") -> channel id
    [adapters.config.payload]
    device_from = "topic"               # or "payload" (field ``device_field``)
    device_topic_level = 1              # campus/<device>/telemetry
    timestamp_field = "ts"              # ISO 8601 with offset, or epoch seconds / ms
    value_field = "value"
    unit_field = "unit"                 # Wh, kWh, MWh (energy, counter) or W, kW, MW (power)
    kind = "power"                      # energy (delta per message) | counter (cumulative) | power

Messages are aggregated per channel onto the channel's interval grid with numpy when a
batch is drained: energy deltas are summed, power samples averaged into interval energy,
cumulative counters interpolated at the interval boundaries and differenced (a negative
difference, i.e. a counter reset, is SUSPECT). A message older than one already received
for its channel (out of order) or arriving more than ``late_after_s`` after its interval
ended makes its interval SUSPECT. Bad payloads are counted and reported with examples in
``IntervalBatch.meta``; they never stop the loop.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from kwhub.core.adapters import AdapterConfig, AdapterError, CheckResult, FailureKind, MeterAdapter
from kwhub.core.hookspecs import hookimpl
from kwhub.core.intervals import ALLOWED_INTERVAL_MINUTES, ChannelSeries, IntervalBatch
from kwhub.core.quality import Quality

TYPE_ID = "meters.mqtt"
KINDS = ("energy", "counter", "power")
# unit -> (factor to kWh or kW, is power)
UNITS: dict[str, tuple[float, bool]] = {
    "wh": (0.001, False), "kwh": (1.0, False), "mwh": (1000.0, False),
    "w": (0.001, True), "kw": (1.0, True), "mw": (1000.0, True),
}
MAX_EXAMPLES = 20


class PayloadSchema(BaseModel):
    """Where device, timestamp, value, unit and kind are found in a message."""

    model_config = ConfigDict(extra="forbid")

    device_from: Literal["topic", "payload"] = "topic"
    device_topic_level: int = Field(default=1, ge=0)
    device_field: str = "device"
    point_field: str | None = None  # optional second key: "device/point" in channel_map
    timestamp_field: str = "ts"
    timestamp_format: Literal["auto", "iso", "epoch_s", "epoch_ms"] = "auto"
    energy_timestamp: Literal["start", "end"] = "end"  # an energy delta's timestamp ends its period
    value_field: str = "value"
    unit_field: str | None = "unit"
    unit: str = "kWh"  # when the message carries none
    kind: Literal["energy", "counter", "power"] = "energy"
    kind_field: str | None = None


class MqttConfig(AdapterConfig):
    """Settings of a ``meters.mqtt`` instance."""

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    topic: str = "campus/+/telemetry"
    qos: int = Field(default=1, ge=0, le=2)
    client_id: str = ""
    username: str | None = None
    password: SecretStr | None = None
    keepalive: int = Field(default=30, ge=5)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    payload: PayloadSchema = Field(default_factory=PayloadSchema)
    channel_map: dict[str, str] = Field(default_factory=dict)
    channel_template: str = "{device}"
    interval_minutes: int = 15  # for channels the campus does not describe
    late_after_s: float | None = Field(default=None, gt=0)
    retention_s: float = Field(default=2 * 86_400, gt=0)


@dataclass
class Sample:
    """One decoded message."""

    channel: str
    ts: float
    value: float  # kWh (energy/counter) or kW (power)
    kind: str
    suspect: bool = False


@dataclass
class DecodeStats:
    """Counts of what the subscription saw."""

    messages: int = 0
    accepted: int = 0
    bad: int = 0
    late: int = 0
    out_of_order: int = 0
    bad_examples: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"messages": self.messages, "accepted": self.accepted, "bad": self.bad, "late": self.late,
                "out_of_order": self.out_of_order, "bad_examples": list(self.bad_examples)}


class PayloadError(ValueError):
    """A message that cannot be turned into a sample (``field`` names the payload key)."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(f"[{field}] {message}" if field else message)
        self.field = field


def parse_timestamp(raw: Any, fmt: str = "auto") -> float:
    """Epoch seconds from an ISO 8601 string with offset, or epoch seconds / milliseconds."""
    if isinstance(raw, bool):
        raise PayloadError(f"timestamp {raw!r} is not a time")
    if isinstance(raw, int | float):
        if fmt == "iso":
            raise PayloadError(f"timestamp {raw!r} is a number, expected ISO 8601")
        v = float(raw)
        if not np.isfinite(v):
            raise PayloadError(f"timestamp {raw!r} is not finite")
        return v / 1000.0 if fmt == "epoch_ms" or (fmt == "auto" and v > 1e11) else v
    if isinstance(raw, str):
        if fmt in ("epoch_s", "epoch_ms"):
            try:
                return parse_timestamp(float(raw), fmt)
            except ValueError:
                raise PayloadError(f"timestamp {raw!r} is not a number") from None
        try:
            ts = datetime.fromisoformat(raw.strip())
        except ValueError:
            raise PayloadError(f"timestamp {raw!r} is not ISO 8601") from None
        if ts.tzinfo is None or ts.utcoffset() is None:
            raise PayloadError(f"timestamp {raw!r} has no UTC offset")
        return ts.timestamp()
    raise PayloadError(f"timestamp {raw!r} is not a string or number")


class Decoder:
    """Turns (topic, payload bytes) into samples; tracks order per channel."""

    def __init__(self, config: MqttConfig, channels: dict[str, Any] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.channels = channels or {}
        self.clock = clock
        self.stats = DecodeStats()
        self.latest: dict[str, float] = {}

    def interval_minutes(self, channel: str) -> int:
        spec = self.channels.get(channel)
        return int(getattr(spec, "interval_minutes", self.config.interval_minutes))

    def interval_end(self, s: Sample) -> float:
        """When the interval a sample belongs to ends (a counter reading: its own time)."""
        step = self.interval_minutes(s.channel) * 60
        if s.kind == "counter":
            return s.ts
        if s.kind == "energy" and self.config.payload.energy_timestamp == "end":
            return float(np.ceil(s.ts / step) * step)
        return float((np.floor(s.ts / step) + 1) * step)

    def _channel(self, topic: str, doc: dict[str, Any]) -> str:
        p = self.config.payload
        if p.device_from == "topic":
            parts = topic.split("/")
            if p.device_topic_level >= len(parts):
                raise PayloadError(f"topic {topic!r} has no level {p.device_topic_level}", "topic")
            device = parts[p.device_topic_level]
        else:
            if p.device_field not in doc:
                raise PayloadError("missing", p.device_field)
            device = str(doc[p.device_field])
        point = ""
        if p.point_field:
            if p.point_field not in doc:
                raise PayloadError("missing", p.point_field)
            point = str(doc[p.point_field])
        key = f"{device}/{point}" if point else device
        if key in self.config.channel_map:
            channel = self.config.channel_map[key]
        else:
            try:
                channel = self.config.channel_template.format(device=device, point=point)
            except (KeyError, IndexError) as exc:
                raise PayloadError(f"channel_template needs {exc}", "channel_template") from None
        if self.channels and channel not in self.channels:
            raise PayloadError(f"channel {channel!r} is not configured", "channel")
        return channel

    def decode(self, topic: str, payload: bytes) -> Sample:
        """One message -> one sample, or :class:`PayloadError`."""
        p = self.config.payload
        try:
            doc = json.loads(payload)
        except (UnicodeDecodeError, ValueError) as exc:
            raise PayloadError(f"not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise PayloadError(f"JSON {type(doc).__name__}, expected an object")
        channel = self._channel(topic, doc)
        if p.timestamp_field not in doc:
            raise PayloadError("missing", p.timestamp_field)
        try:
            ts = parse_timestamp(doc[p.timestamp_field], p.timestamp_format)
        except PayloadError as exc:
            raise PayloadError(str(exc), p.timestamp_field) from None
        if p.value_field not in doc:
            raise PayloadError("missing", p.value_field)
        raw = doc[p.value_field]
        if isinstance(raw, bool) or not isinstance(raw, int | float | str):
            raise PayloadError(f"{raw!r} is not a number", p.value_field)
        try:
            value = float(raw)
        except ValueError:
            raise PayloadError(f"{raw!r} is not a number", p.value_field) from None
        if not np.isfinite(value):
            raise PayloadError(f"{raw!r} is not finite", p.value_field)
        kind: str = p.kind
        if p.kind_field and p.kind_field in doc:
            kind = str(doc[p.kind_field]).lower()
            if kind not in KINDS:
                raise PayloadError(f"kind {kind!r} is not one of {KINDS}", p.kind_field)
        unit = str(doc.get(p.unit_field, p.unit) if p.unit_field else p.unit)
        factor, is_power = UNITS.get(unit.strip().lower(), (0.0, False))
        if factor == 0.0:
            raise PayloadError(f"unit {unit!r} is not one of Wh, kWh, MWh, W, kW, MW", p.unit_field or "unit")
        if is_power != (kind == "power"):
            raise PayloadError(f"unit {unit!r} does not fit kind {kind!r}", p.unit_field or "unit")
        return Sample(channel, ts, value * factor, kind)

    def accept(self, topic: str, payload: bytes, arrival: float | None = None) -> Sample | None:
        """Decode and classify one message; bad ones are counted, never raised."""
        self.stats.messages += 1
        try:
            s = self.decode(topic, payload)
        except PayloadError as exc:
            self.stats.bad += 1
            if len(self.stats.bad_examples) < MAX_EXAMPLES:
                self.stats.bad_examples.append({"topic": topic, "error": str(exc),
                                                "payload": payload[:200].decode("utf-8", "replace")})
            return None
        arrival = self.clock() if arrival is None else arrival
        last = self.latest.get(s.channel)
        if last is not None and s.ts < last:
            s.suspect = True
            self.stats.out_of_order += 1
        else:
            self.latest[s.channel] = s.ts
        if self.config.late_after_s is not None:
            if arrival - self.interval_end(s) > self.config.late_after_s:
                s.suspect = True
                self.stats.late += 1
        self.stats.accepted += 1
        return s


def aggregate(samples: list[Sample], interval_minutes: int, channel: str,
              energy_timestamp: str = "end") -> ChannelSeries:
    """Samples of one channel -> interval energy (kWh) on the channel's grid (vectorised)."""
    if interval_minutes not in ALLOWED_INTERVAL_MINUTES:
        raise AdapterError(f"channel {channel}: interval {interval_minutes} min is not allowed",
                           FailureKind.CONFIGURATION)
    step = interval_minutes * 60
    ts = np.array([s.ts for s in samples], dtype=np.float64)
    val = np.array([s.value for s in samples], dtype=np.float64)
    kind = np.array([KINDS.index(s.kind) for s in samples], dtype=np.int8)
    sus = np.array([s.suspect for s in samples], dtype=bool)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (starts, kWh, suspect)

    def by_interval(starts: np.ndarray, values: np.ndarray, suspect: np.ndarray, mean: bool) -> None:
        u, inv = np.unique(starts, return_inverse=True)
        sums = np.bincount(inv, weights=values, minlength=u.size).astype(np.float64)
        if mean:
            sums = sums / np.bincount(inv, minlength=u.size).astype(np.float64) * (interval_minutes / 60.0)
        bad = np.bincount(inv, weights=suspect.astype(np.float64), minlength=u.size) > 0
        parts.append((u, sums, bad))

    m = kind == KINDS.index("energy")
    if m.any():
        t = ts[m] - (1e-6 if energy_timestamp == "end" else 0.0)
        by_interval((np.floor(t / step) * step).astype(np.int64), val[m], sus[m], mean=False)
    m = kind == KINDS.index("power")
    if m.any():
        by_interval((np.floor(ts[m] / step) * step).astype(np.int64), val[m], sus[m], mean=True)
    m = kind == KINDS.index("counter")
    if m.sum() >= 2:
        order = np.argsort(ts[m], kind="stable")
        ct, cv, cs = ts[m][order], val[m][order], sus[m][order]
        first_b = np.ceil(ct[0] / step) * step
        last_b = np.floor(ct[-1] / step) * step
        if last_b > first_b:
            bounds = np.arange(first_b, last_b + step / 2, step)
            reading = np.interp(bounds, ct, cv)
            energy = np.diff(reading)
            starts = bounds[:-1].astype(np.int64)
            # an interval is suspect if a suspect reading lies within it or the counter went back
            hit = np.zeros(starts.size, dtype=bool)
            if cs.any():
                k = np.floor((ct[cs] - first_b) / step).astype(np.int64)
                k = k[(k >= 0) & (k < starts.size)]
                hit[k] = True
            parts.append((starts, energy, hit | (energy < 0)))
    if not parts:
        return ChannelSeries(channel, interval_minutes, np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.uint8),
                             unit="kWh")
    starts = np.concatenate([p[0] for p in parts])
    values = np.concatenate([p[1] for p in parts])
    suspect = np.concatenate([p[2] for p in parts])
    u, inv = np.unique(starts, return_inverse=True)
    out_v = np.bincount(inv, weights=values, minlength=u.size)
    out_s = np.bincount(inv, weights=suspect.astype(np.float64), minlength=u.size) > 0
    quality = np.where(out_s, Quality.SUSPECT, Quality.VALID).astype(np.uint8)
    return ChannelSeries(channel, interval_minutes, u, out_v, quality, unit="kWh")


class MqttCollector:
    """A live subscription: connect, subscribe, buffer decoded samples, drain batches."""

    def __init__(self, adapter: MqttMeter) -> None:
        self.adapter = adapter
        self.config: MqttConfig = adapter.config
        self.decoder = Decoder(self.config, adapter.context.channels)
        self.samples: list[Sample] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.connected = threading.Event()
        self.arrived = threading.Condition(self.lock)
        self.connect_error: str = ""
        self.client: Any = None
        # per channel: (starts, values, quality) already handed out, sorted by start
        self._emitted: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self.last_error: str = ""

    def start(self) -> None:
        """Connect and subscribe; raise :class:`AdapterError` if that fails."""
        client = self.adapter.new_client()
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self.client = client
        try:
            client.connect(self.config.host, self.config.port, keepalive=self.config.keepalive)
        except OSError as exc:
            raise AdapterError(f"cannot reach MQTT broker {self.config.host}:{self.config.port}: {exc}",
                               _socket_kind(exc)) from exc
        client.loop_start()
        if not self.subscribed.wait(self.config.connect_timeout_s):
            self.stop()
            msg = self.connect_error or f"no CONNACK/SUBACK from {self.config.host}:{self.config.port}"
            raise AdapterError(msg, FailureKind.CONFIGURATION if self.connect_error else FailureKind.TRANSIENT)

    def stop(self) -> None:
        if self.client is not None:
            try:
                self.client.disconnect()
            finally:
                self.client.loop_stop()
            self.client = None

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any = None) -> None:
        if getattr(reason_code, "is_failure", False):
            self.connect_error = f"broker refused the connection: {reason_code}"
            return
        self.connected.set()
        client.subscribe(self.config.topic, qos=self.config.qos)

    def _on_subscribe(self, client: Any, userdata: Any, mid: Any, reason_codes: Any, properties: Any = None) -> None:
        codes = list(reason_codes) if reason_codes is not None else []
        if codes and all(getattr(c, "is_failure", False) for c in codes):
            self.connect_error = f"subscription to {self.config.topic!r} refused: {codes[0]}"
            return
        self.subscribed.set()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        try:
            s = self.decoder.accept(msg.topic, msg.payload)
        except Exception as exc:  # the network loop must survive anything a message does
            self.decoder.stats.bad += 1
            s = None
            if len(self.decoder.stats.bad_examples) < MAX_EXAMPLES:
                self.decoder.stats.bad_examples.append({"topic": str(msg.topic), "error": repr(exc), "payload": ""})
        with self.arrived:
            if s is not None:
                self.samples.append(s)
            self.arrived.notify_all()

    def wait(self, max_messages: int | None = None, timeout_s: float | None = None) -> int:
        """Block until ``max_messages`` messages arrived (good or bad) or the timeout; return the count."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self.arrived:
            while max_messages is None or self.decoder.stats.messages < max_messages:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self.arrived.wait(left if left is not None else 1.0)
            return self.decoder.stats.messages

    def _unsent(self, cs: ChannelSeries, now: float) -> ChannelSeries:
        """Closed intervals that are new or differ from what was emitted before (vectorised)."""
        closed = cs.starts + cs.interval_minutes * 60 <= now
        prev = self._emitted.get(cs.channel_id)
        fresh = np.ones(len(cs), dtype=bool)
        if prev is not None and prev[0].size:
            pos = np.clip(np.searchsorted(prev[0], cs.starts), 0, prev[0].size - 1)
            same = (prev[0][pos] == cs.starts) & (prev[1][pos] == cs.values) & (prev[2][pos] == cs.quality)
            fresh = ~same
        keep = closed & fresh
        out = ChannelSeries(cs.channel_id, cs.interval_minutes, cs.starts[keep], cs.values[keep], cs.quality[keep],
                            unit=cs.unit)
        if len(out):
            if prev is None:
                prev = (np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.uint8))
            starts = np.concatenate([prev[0], out.starts])
            values = np.concatenate([prev[1], out.values])
            quality = np.concatenate([prev[2], out.quality])
            # the newest emission of a start wins: unique keeps the first, so look at the reversed arrays
            u, first = np.unique(starts[::-1], return_index=True)
            idx = starts.size - 1 - first
            self._emitted[cs.channel_id] = (u, values[idx], quality[idx])
        return out

    def drain(self, final: bool = True, now: float | None = None) -> IntervalBatch:
        """Aggregate buffered samples into a batch.

        ``final``: every interval is emitted. Otherwise only intervals that ended before
        ``now`` and are new or changed since they were last emitted (a late message
        re-emits its interval's full value); samples older than ``retention_s`` are dropped.
        """
        now = time.time() if now is None else now
        with self.lock:
            samples = list(self.samples)
            cutoff = now - self.config.retention_s
            if not final:
                self.samples = [s for s in self.samples if s.ts >= cutoff]
        by_channel: dict[str, list[Sample]] = {}
        for s in samples:
            by_channel.setdefault(s.channel, []).append(s)
        series = []
        for ch, group in sorted(by_channel.items()):
            minutes = self.decoder.interval_minutes(ch)
            cs = aggregate(group, minutes, ch, self.config.payload.energy_timestamp)
            if not final and len(cs):
                cs = self._unsent(cs, now)
            if len(cs):
                series.append(cs)
        meta: dict[str, object] = {"adapter": self.adapter.instance_id, **self.decoder.stats.as_dict()}
        return IntervalBatch(source=f"mqtt://{self.config.host}:{self.config.port}/{self.config.topic}",
                             series=series, meta=meta)


def _socket_kind(exc: OSError) -> FailureKind:
    if isinstance(exc, socket.gaierror):
        return FailureKind.CONFIGURATION  # the host name does not resolve
    return FailureKind.TRANSIENT


class MqttMeter(MeterAdapter):
    """JSON telemetry over MQTT: energy deltas, counters or power samples -> interval kWh."""

    type_id: ClassVar[str] = TYPE_ID
    title: ClassVar[str] = "MQTT JSON telemetry"
    capabilities: ClassVar[frozenset[str]] = frozenset({"stream"})
    Config = MqttConfig
    config: MqttConfig

    def new_client(self) -> Any:
        """A paho-mqtt 2.x client with this instance's identity and credentials."""
        import paho.mqtt.client as mqtt

        client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                             client_id=self.config.client_id or f"kwhub-{self.instance_id}-{id(self) % 100000}",
                             protocol=mqtt.MQTTv311)
        if self.config.username:
            pw = self.config.password.get_secret_value() if self.config.password else None
            client.username_pw_set(self.config.username, pw)
        client.connect_timeout = self.config.connect_timeout_s
        return client

    def check(self) -> CheckResult:
        """Connect to the broker and wait for its CONNACK; classify what went wrong."""
        client = self.new_client()
        done = threading.Event()
        result: dict[str, Any] = {}

        def on_connect(c: Any, u: Any, flags: Any, rc: Any, props: Any = None) -> None:
            result["rc"] = rc
            done.set()

        client.on_connect = on_connect
        where = f"{self.config.host}:{self.config.port}"
        try:
            client.connect(self.config.host, self.config.port, keepalive=self.config.keepalive)
        except socket.gaierror as exc:
            return CheckResult.failure(FailureKind.CONFIGURATION, f"MQTT broker host {self.config.host!r} "
                                       f"does not resolve: {exc}")
        except OSError as exc:
            return CheckResult.failure(FailureKind.TRANSIENT, f"cannot reach MQTT broker {where}: {exc}")
        client.loop_start()
        try:
            if not done.wait(self.config.connect_timeout_s):
                return CheckResult.failure(FailureKind.TRANSIENT, f"no CONNACK from {where} within "
                                           f"{self.config.connect_timeout_s} s")
            rc = result["rc"]
            if getattr(rc, "is_failure", False):
                value = int(getattr(rc, "value", -1))
                kind = FailureKind.CONFIGURATION if value in (132, 133, 134, 135, 140) else (
                    FailureKind.TRANSIENT if value in (136, 137, 159) else FailureKind.SYSTEM)
                return CheckResult.failure(kind, f"broker {where} refused the connection: {rc}", code=value)
            return CheckResult.success(f"connected to {where}", topic=self.config.topic)
        finally:
            client.disconnect()
            client.loop_stop()

    def collector(self) -> MqttCollector:
        """A subscription to drive by hand (``start``, ``wait``, ``drain``, ``stop``)."""
        return MqttCollector(self)

    def collect(self, duration_s: float | None = None, max_messages: int | None = None,
                on_ready: Callable[[], None] | None = None) -> IntervalBatch:
        """Subscribe, gather until ``duration_s`` passed or ``max_messages`` arrived, return the batch.

        ``on_ready`` is called once the subscription is active (tests publish from it).
        """
        if duration_s is None and max_messages is None:
            raise AdapterError("collect needs duration_s or max_messages", FailureKind.CONFIGURATION)
        col = self.collector()
        col.start()
        try:
            if on_ready is not None:
                on_ready()
            col.wait(max_messages, duration_s)
        finally:
            col.stop()
        return col.drain(final=True)

    def run(self, sink: Callable[[IntervalBatch], None], stop: threading.Event, flush_every_s: float = 60.0) -> None:
        """Service loop: every ``flush_every_s`` hand the closed intervals to ``sink`` until ``stop`` is set.

        A failing sink is retried on the next flush (its intervals are emitted again).
        """
        col = self.collector()
        col.start()
        try:
            while not stop.wait(flush_every_s):
                self._flush(col, sink)
        finally:
            col.stop()
            self._flush(col, sink)

    @staticmethod
    def _flush(col: MqttCollector, sink: Callable[[IntervalBatch], None]) -> None:
        snapshot = dict(col._emitted)
        batch = col.drain(final=False)
        if not batch.series:
            return
        try:
            sink(batch)
            col.last_error = ""
        except Exception as exc:  # keep running; the same intervals go out with the next flush
            col._emitted = snapshot
            col.last_error = f"{type(exc).__name__}: {exc}"


@hookimpl
def kwhub_register_meter_adapters(register: Any) -> None:
    """Register the MQTT telemetry adapter."""
    register(MqttMeter)
