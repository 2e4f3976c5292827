"""MQTT telemetry adapter: decoding and aggregation, then the real Mosquitto broker on loopback."""

from __future__ import annotations

import json
import secrets
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from kwhub.core.adapters import AdapterContext, FailureKind
from kwhub.core.campus import Channel
from kwhub.core.quality import Quality
from kwhub.plugins.meters.mqtt import Decoder, MqttConfig, MqttMeter, aggregate, parse_timestamp
from tests.fixtures.services import need_server

HOST, PORT = "127.0.0.1", 1883
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
E0 = int(T0.timestamp())


def msg(ts, value, unit="kWh", **extra) -> bytes:
    return json.dumps({"ts": ts, "value": value, "unit": unit, **extra}).encode()


# ------------------------------------------------------------------ decoding, no broker


def test_parse_timestamp_iso_with_offset_and_epochs():
    assert parse_timestamp("2026-03-02T05:00:00-05:00") == E0
    assert parse_timestamp("2026-03-02T10:00:00Z") == E0
    assert parse_timestamp(E0) == E0
    assert parse_timestamp(E0 * 1000) == E0  # auto: milliseconds
    with pytest.raises(ValueError, match="no UTC offset"):
        parse_timestamp("2026-03-02T10:00:00")
    with pytest.raises(ValueError, match="not ISO"):
        parse_timestamp("yesterday")


def test_energy_deltas_are_summed_into_the_interval_they_end_in():
    feed = Feed(MqttConfig(interval_minutes=15))
    for k, v in enumerate([1.0, 2.0, 3.0]):  # 10:05, 10:10, 10:15 (ends the 10:00 interval)
        feed("campus/m1/telemetry", msg(E0 + 300 * (k + 1), v), E0)
    feed("campus/m1/telemetry", msg(E0 + 1200, 500.0, unit="Wh"), E0)
    s = aggregate(feed.samples, 15, "m1")
    assert s.starts.tolist() == [E0, E0 + 900] and s.values.tolist() == [6.0, 0.5]
    assert (s.quality == Quality.VALID).all()


class Feed:
    """A decoder plus the samples it accepted."""

    def __init__(self, cfg):
        self.dec = Decoder(cfg)
        self.samples = []

    def __call__(self, topic, payload, arrival):
        s = self.dec.accept(topic, payload, arrival=arrival)
        if s is not None:
            self.samples.append(s)


def test_power_samples_are_averaged_into_interval_energy():
    cfg = MqttConfig.model_validate({"payload": {"kind": "power"}})
    feed = Feed(cfg)
    for k, kw in enumerate([100.0, 200.0, 300.0]):  # 10:00, 10:05, 10:10 -> mean 200 kW over 15 min
        feed("campus/gt1/telemetry", msg(E0 + 300 * k, kw, unit="kW"), E0)
    feed("campus/gt1/telemetry", msg(E0 + 900, 2.0, unit="MW"), E0)
    s = aggregate(feed.samples, 15, "gt1")
    assert s.values.tolist() == [50.0, 500.0]  # 200 kW x 0.25 h ; 2000 kW x 0.25 h


def test_counters_are_differenced_at_interval_boundaries():
    cfg = MqttConfig.model_validate({"payload": {"kind": "counter"}})
    feed = Feed(cfg)
    # readings every 15 min at the boundaries, then one reset
    for k, r in enumerate([1000.0, 1010.0, 1030.0, 1060.0, 5.0]):
        feed("campus/m1/telemetry", msg(E0 + 900 * k, r), E0)
    s = aggregate(feed.samples, 15, "m1")
    assert s.values.tolist() == [10.0, 20.0, 30.0, -1055.0]
    assert s.quality.tolist() == [Quality.VALID] * 3 + [Quality.SUSPECT]  # counter went back


def test_out_of_order_and_late_messages_make_their_interval_suspect():
    cfg = MqttConfig.model_validate({"late_after_s": 600})
    feed = Feed(cfg)
    feed("campus/m1/telemetry", msg(E0 + 1800, 1.0), E0 + 1800)  # ends 10:15-10:30, on time
    feed("campus/m1/telemetry", msg(E0 + 600, 1.0), E0 + 1000)  # older: out of order (not late)
    feed("campus/m1/telemetry", msg(E0 + 2700, 1.0), E0 + 2700 + 601)  # > 10 min after its end
    feed("campus/m1/telemetry", msg(E0 + 3600, 1.0), E0 + 3600 + 599)  # just in time
    assert feed.dec.stats.out_of_order == 1 and feed.dec.stats.late == 1
    s = aggregate(feed.samples, 15, "m1")
    assert s.starts.tolist() == [E0, E0 + 900, E0 + 1800, E0 + 2700]
    assert s.quality.tolist() == [Quality.SUSPECT, Quality.VALID, Quality.SUSPECT, Quality.VALID]


def test_bad_payloads_are_counted_with_reasons_never_raised():
    ctx_channels = {"m1": Channel(id="m1", interval_minutes=15)}
    dec = Decoder(MqttConfig(), ctx_channels)
    bad = [
        ("campus/m1/telemetry", b"{not json"),
        ("campus/m1/telemetry", b"[1, 2]"),
        ("campus/m1/telemetry", json.dumps({"value": 1}).encode()),
        ("campus/m1/telemetry", msg("2026-03-02T10:00:00", 1.0)),
        ("campus/m1/telemetry", msg(E0, "lots")),
        ("campus/m1/telemetry", msg(E0, 1.0, unit="furlong")),
        ("campus/m1/telemetry", msg(E0, 1.0, unit="kW")),  # power unit on an energy feed
        ("campus/m9/telemetry", msg(E0, 1.0)),  # not a configured channel
        ("short", msg(E0, 1.0)),
    ]
    for topic, payload in bad:
        assert dec.accept(topic, payload) is None
    assert dec.stats.bad == len(bad) and dec.stats.accepted == 0
    errors = [e["error"] for e in dec.stats.bad_examples]
    assert "not JSON" in errors[0] and "[ts] missing" in errors[2] and "no UTC offset" in errors[3]
    assert "[value]" in errors[4] and "furlong" in errors[5] and "not configured" in errors[7]


def test_channel_from_payload_field_and_map():
    cfg = MqttConfig.model_validate({
        "payload": {"device_from": "payload", "device_field": "dev", "point_field": "pt"},
        "channel_map": {"GT-1/net": "gt1.net"}, "channel_template": "{device}.{point}"})
    dec = Decoder(cfg)
    assert dec.decode("x", msg(E0, 1.0, dev="GT-1", pt="net")).channel == "gt1.net"
    assert dec.decode("x", msg(E0, 1.0, dev="re1", pt="net")).channel == "re1.net"


def test_config_forbids_unknown_keys_and_resolves_env_password(monkeypatch):
    monkeypatch.setenv("KWHUB_TEST_MQTT_PW", "s3cret")
    cfg = MqttConfig.model_validate({"username": "u", "password": "env:KWHUB_TEST_MQTT_PW"})
    assert cfg.password is not None and cfg.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(cfg)
    with pytest.raises(ValueError, match="extra"):
        MqttConfig.model_validate({"hots": "x"})
    with pytest.raises(ValueError, match="KWHUB_TEST_MQTT_MISSING"):
        MqttConfig.model_validate({"password": "env:KWHUB_TEST_MQTT_MISSING"})


def test_registered_as_a_stream_meter(registry):
    cls = registry.adapter("meters.mqtt")
    assert cls is MqttMeter and "stream" in cls.capabilities


# ------------------------------------------------------------------ the real broker


def _publish(topic_payloads: list[tuple[str, bytes]]) -> None:
    import paho.mqtt.client as mqtt

    c = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{secrets.token_hex(4)}")
    c.connect(HOST, PORT)
    c.loop_start()
    try:
        for topic, payload in topic_payloads:
            c.publish(topic, payload, qos=1).wait_for_publish(5)
    finally:
        c.disconnect()
        c.loop_stop()


def _meter(root: str, **cfg) -> MqttMeter:
    channels = {"gt1.net": Channel(id="gt1.net", interval_minutes=15),
                "hall_a.load": Channel(id="hall_a.load", interval_minutes=5)}
    payload = {"device_topic_level": root.count("/") + 1, **cfg.pop("payload", {})}
    config = {"host": HOST, "port": PORT, "topic": f"{root}/+/telemetry", "connect_timeout_s": 5,
              "channel_map": {"gt1": "gt1.net", "halla": "hall_a.load"}, "payload": payload, **cfg}
    return MqttMeter("test_mqtt", config, AdapterContext(channels=channels))


def test_check_connects_to_the_broker():
    need_server("Mosquitto", HOST, PORT)
    res = _meter("kwhubtest/check").check()
    assert res.ok, res.message


def test_check_classifies_an_unreachable_broker_as_transient():
    res = MqttMeter("x", {"host": "127.0.0.1", "port": 1, "connect_timeout_s": 1}).check()
    assert not res.ok and res.kind is FailureKind.TRANSIENT and "127.0.0.1:1" in res.message


def test_collect_real_messages_including_a_malformed_one():
    need_server("Mosquitto", HOST, PORT)
    root = f"kwhubtest/{secrets.token_hex(6)}"
    meter = _meter(root, payload={"kind": "power", "unit": "kW"})
    t = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=2)
    t = t - timedelta(minutes=t.minute % 15)
    msgs = [
        (f"{root}/gt1/telemetry", msg(t.isoformat(), 40_000.0, unit="kW")),
        (f"{root}/gt1/telemetry", msg(int((t + timedelta(minutes=5)).timestamp()), 44.0, unit="MW")),
        (f"{root}/gt1/telemetry", b'{"ts": "broken'),  # malformed
        (f"{root}/gt1/telemetry", msg((t + timedelta(minutes=10)).isoformat(), 42_000_000.0, unit="W")),
        (f"{root}/halla/telemetry", msg(t.isoformat(), 6000.0, unit="kW")),
        (f"{root}/halla/telemetry", msg((t + timedelta(minutes=5)).isoformat(), 12_000.0, unit="kW")),
    ]
    batch = meter.collect(duration_s=10, max_messages=len(msgs), on_ready=lambda: _publish(msgs))
    assert batch.meta["messages"] == 6 and batch.meta["bad"] == 1 and batch.meta["accepted"] == 5, batch.meta
    assert "not JSON" in batch.meta["bad_examples"][0]["error"]
    by = {s.channel_id: s for s in batch.series}
    gt = by["gt1.net"]
    assert gt.interval_minutes == 15 and gt.starts.tolist() == [int(t.timestamp())]
    assert gt.values.tolist() == [pytest.approx(42_000.0 * 0.25)]  # mean 42 MW over 15 min
    hall = by["hall_a.load"]  # a 5-minute channel
    assert hall.interval_minutes == 5 and hall.values.tolist() == [500.0, 1000.0]
    assert (hall.quality == Quality.VALID).all()


def test_run_loop_flushes_closed_intervals_and_reemits_late_corrections():
    need_server("Mosquitto", HOST, PORT)
    root = f"kwhubtest/{secrets.token_hex(6)}"
    meter = _meter(root)  # energy deltas in kWh
    got: list = []
    stop = threading.Event()
    worker = threading.Thread(target=meter.run, args=(got.append, stop), kwargs={"flush_every_s": 0.2})
    worker.start()
    try:
        time.sleep(1.0)  # subscription up
        base = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
        base = base - timedelta(minutes=base.minute % 15)
        end = base + timedelta(minutes=15)
        _publish([(f"{root}/gt1/telemetry", msg(end.isoformat(), 10.0)),
                  (f"{root}/gt1/telemetry", msg((end + timedelta(minutes=15)).isoformat(), 7.0)),
                  (f"{root}/gt1/telemetry", b"\xff\xfe not utf8")])
        deadline = time.monotonic() + 5
        while sum(len(b) for b in got) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        _publish([(f"{root}/gt1/telemetry", msg((base + timedelta(minutes=7)).isoformat(), 2.5))])  # out of order
        deadline = time.monotonic() + 5
        while sum(len(b) for b in got) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        worker.join(10)
    assert not worker.is_alive()
    series = [s for b in got for s in b.series]
    values = [(int(s.starts[i]), float(s.values[i]), int(s.quality[i])) for s in series for i in range(len(s))]
    b0 = int(base.timestamp())
    assert values[:2] == [(b0, 10.0, Quality.VALID), (b0 + 900, 7.0, Quality.VALID)]
    assert values[2:] == [(b0, 12.5, Quality.SUSPECT)]  # the full interval again, marked suspect
    assert got[-1].meta["bad"] == 1
