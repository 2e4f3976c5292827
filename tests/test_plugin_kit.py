"""The plugin test kit (kwhub.testing): every built-in adapter passes it, and it catches what it should.

Expected energy is written here by hand from the sample files; the kit compares it to what
the adapters read and to what the store gives back.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from datetime import date
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import ConfigDict

from kwhub.core.adapters import (
    AdapterConfig,
    CheckResult,
    FailureKind,
    InvoiceRenderer,
    MeterAdapter,
)
from kwhub.core.hookspecs import hookimpl
from kwhub.core.intervals import IntervalBatch
from kwhub.hub.registry import load_plugins
from kwhub.testing import (
    ExpectedChannel,
    FolderReceiver,
    MeterSample,
    MqttSample,
    PolledSample,
    WebhookReceiver,
    check_adapter_contract,
    check_esg_reporter,
    check_market_adapter,
    check_market_rejects,
    check_meter_file,
    check_meter_rejects,
    check_mqtt_meter,
    check_polled_meter,
    check_registers,
    check_renderer,
    check_reports_failure,
    check_reports_ok,
    check_transport,
    meter_config,
    sample_document,
)
from tests.fixtures.services import need_server

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"

# A valid configuration for every built-in adapter type (the generic contract builds an instance from it).
CONFIGS: dict[str, dict[str, Any]] = {
    "meters.csv": {},
    "meters.greenbutton": {},
    "meters.modbus": {"points": [{"name": "wh", "address": 0, "type": "uint32", "unit": "Wh",
                                  "kind": "energy_counter", "channel": "m1"}]},
    "meters.sunspec": {"channels": {"203": "m1"}},
    "meters.oem_telemetry": {"map": "gas_turbine_controller", "asset": "gt1"},
    "meters.mqtt": {"username": "kwhub", "password": "not-a-secret-here"},
    "markets.price_file": {"path": "prices.csv"},
    "markets.ercot": {"url": "http://127.0.0.1:9/ercot"},
    "markets.caiso": {"url": "http://127.0.0.1:9/caiso"},
    "markets.pjm": {"url": "http://127.0.0.1:9/pjm"},
    "erp.ubl": {}, "erp.cii": {}, "erp.facturx": {}, "erp.x12_810": {}, "erp.x12_867": {}, "erp.idoc": {},
    "erp.csv": {}, "erp.json": {}, "erp.pdf": {},
    "erp.webhook": {"url": "http://127.0.0.1:9/invoices", "secret": "s3cret"},
    "erp.sftp": {"host": "127.0.0.1", "username": "kwhub", "password": "pw"},
    "erp.folder": {"folder": "out"},
    "esg.scope_summary": {}, "esg.ghg_inventory": {}, "esg.cdp": {}, "esg.sb253": {}, "esg.esrs": {},
}


def test_every_builtin_adapter_has_a_kit_configuration(registry):
    assert sorted(CONFIGS) == sorted(registry.adapters)


# Which family check each built-in adapter passes below (a new built-in needs one).
FAMILY_CHECKS = {
    "check_meter_file": ["meters.csv", "meters.greenbutton"],
    "check_polled_meter": ["meters.modbus", "meters.sunspec", "meters.oem_telemetry"],
    "check_mqtt_meter": ["meters.mqtt"],
    "check_renderer": ["erp.cii", "erp.csv", "erp.facturx", "erp.idoc", "erp.json", "erp.pdf", "erp.ubl",
                       "erp.x12_810", "erp.x12_867"],
    "check_transport": ["erp.folder", "erp.sftp", "erp.webhook"],
    # a trading day against the local server (tests/test_plugin_kit_markets_esg.py); the price file has none
    "check_market_server": ["markets.caiso", "markets.ercot", "markets.pjm"],
    "check_market_adapter": ["markets.price_file"],
    "check_esg_writer": ["esg.cdp", "esg.esrs", "esg.ghg_inventory", "esg.sb253", "esg.scope_summary"],
}


def test_every_builtin_adapter_passes_a_family_check(registry):
    covered = [t for types in FAMILY_CHECKS.values() for t in types]
    assert sorted(covered) == sorted(registry.adapters)


@pytest.mark.parametrize("type_id", sorted(CONFIGS))
def test_every_builtin_adapter_meets_the_adapter_contract(registry, type_id):
    instance = check_adapter_contract(registry.adapter(type_id), CONFIGS[type_id])
    assert instance.type_id == type_id


def test_builtin_plugins_register_what_they_declare(registry):
    check_registers(registry, "meters_csv", ["meters.csv"])
    check_registers(registry, "erp_transports", ["erp.folder", "erp.sftp", "erp.webhook"])
    check_registers(registry, "erp_cii", ["erp.cii", "erp.facturx"])


# ------------------------------------------------------------------ meters: files

LONG = MeterSample(DATA / "kwhub_long.csv", {
    # 5012.5 + 5020.0 + 4998.25 + 5003.75
    "hall_a.load": ExpectedChannel("20034.5", intervals=4),
    "pv.net": ExpectedChannel("0", intervals=4),
})
WIDE = MeterSample(DATA / "kwhub_wide.csv", {
    "hall_a.load": ExpectedChannel("20034.5", intervals=4),
    "hall_b.load": ExpectedChannel("9360.5", intervals=3),  # 3120.0 + 3118.5 + 3122.0; one cell empty
    "grid.import": ExpectedChannel("12.5", intervals=3),  # 0.0 + 0.0 + 12.5; one cell empty
})
# BulkSCEUsageSummaryAndIntervalBlock.xml: three 900 s IntervalReadings of 210, 200 and 210 Wh
# (uom 72, powerOfTenMultiplier 0) on usage point NB6WRU.
BULK_SCE = MeterSample(Path("samples/greenbutton/BulkSCEUsageSummaryAndIntervalBlock.xml"), {
    "gb.NB6WRU": ExpectedChannel("0.62", intervals=3),
})


@pytest.mark.parametrize("sample", [LONG, WIDE], ids=["long", "wide"])
def test_csv_meter_passes_the_kit(kwhub_hub_factory, registry, sample):
    hub = kwhub_hub_factory(meter_config("meters.csv", sample.channels()))
    report = check_meter_file(hub, "meter", sample, sniff=True)
    assert report.new_days == len(sample.expected)  # one day per channel
    cls = registry.adapter("meters.csv")
    check_reports_ok(cls("csv", {}))
    check_reports_failure(cls("csv", {"profile": "no_such_profile"}), FailureKind.CONFIGURATION)


def test_greenbutton_meter_passes_the_kit(kwhub_hub_factory, registry, shared_dir, tmp_path):
    sample = MeterSample(shared_dir / BULK_SCE.path, BULK_SCE.expected)
    # The sample gives its ReadingType twice (accumulationBehaviour 4, then 2); the first one holds.
    hub = kwhub_hub_factory(meter_config("meters.greenbutton", sample.channels(), {"reading_type_conflicts": "first"}))
    check_meter_file(hub, "meter", sample, sniff=True)
    check_reports_ok(registry.adapter("meters.greenbutton")("gb", {}))
    cut = tmp_path / "cut.xml"
    cut.write_bytes(sample.path.read_bytes()[:5000])
    error = check_meter_rejects(hub, "meter", cut, where="line 79", field="xml")
    assert "truncated" in str(error)


def test_a_broken_file_is_rejected_naming_line_and_field(kwhub_hub_factory, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("channel_id,interval_start,interval_minutes,kwh\n"
                   "hall_a.load,2024-03-01T00:00:00Z,15,5012.5\n"
                   "hall_a.load,2024-03-01T00:15:00Z,15,lots\n")
    hub = kwhub_hub_factory(meter_config("meters.csv", LONG.channels()))
    error = check_meter_rejects(hub, "meter", bad, where="line 3", field="kwh")
    assert "lots" in str(error)


# ------------------------------------------------------------------ meters: polled devices

KW = 600.0  # 10 kWh in every 1-minute interval


def _modbus_devices(clock):
    from kwhub.hub.demo.simulator.modbus_devices import ConstantPower, map_device
    from kwhub.hub.helpers.modbus import RegisterPoint

    points = [RegisterPoint.model_validate(p) for p in MODBUS_POINTS]
    dev = map_device("kit_meter", 1, points, clock)
    dev.drive_counter("wh", ConstantPower(KW, t0=clock()), start_raw=2**32 - 200_000)  # wraps after 20 s
    dev.drive_rate("kw", ConstantPower(KW))
    return [dev]


MODBUS_POINTS = [
    {"name": "wh", "address": 0, "type": "uint32", "unit": "Wh", "kind": "energy_counter", "channel": "m1.counter"},
    {"name": "kw", "address": 4, "type": "float32", "unit": "kW", "kind": "power", "channel": "m1.power"},
]
# a 1.5 s timeout bridges a sample gap of up to 3.05 s real time (the poller's max gap is
# max(3 x poll, poll + 2 x timeout)): a machine stalled for a second under a full suite
# (a CI run saw one Modbus read time out at 0.5 s) still gives whole intervals
POLL = {"interval_minutes": 1, "poll_seconds": 0.05, "timeout": 1.5}


def test_modbus_meter_passes_the_kit(kwhub_hub_factory):
    sample = PolledSample(_modbus_devices, {"m1.counter": KW / 60, "m1.power": KW / 60})
    hub = kwhub_hub_factory(meter_config("meters.modbus", sample.channels(), {"points": MODBUS_POINTS, **POLL}))
    stored = check_polled_meter(hub, "meter", sample)
    assert set(stored) == {"m1.counter", "m1.power"}


def _sunspec_devices(clock):
    from kwhub.hub.demo.simulator.modbus_devices import ConstantPower, sunspec_device

    dev = sunspec_device("kit_sunspec", 3, [1, 203], clock, info={"Mn": "kit", "SN": "1"},
                         scale_factors={"203.TotWh_SF": 0, "203.W_SF": 1})
    dev.drive_counter("203.TotWhImp", ConstantPower(KW, t0=clock()), start_raw=1_000_000)
    return [dev]


def test_sunspec_meter_passes_the_kit(kwhub_hub_factory):
    sample = PolledSample(_sunspec_devices, {"hall.load": KW / 60})
    hub = kwhub_hub_factory(meter_config("meters.sunspec", sample.channels(),
                                         {"device_id": 3, "channels": {"203": "hall.load"}, **POLL}))
    check_polled_meter(hub, "meter", sample)


FUEL_MMBTU_H = 6.0  # 0.1 MMBtu per minute


def _turbine_devices(clock):
    from kwhub.hub.demo.simulator.modbus_devices import ConstantPower, map_device
    from kwhub.plugins.meters.oem_telemetry import load_map

    dev = map_device("kit_gt", 2, load_map("gas_turbine_controller").for_asset("gtk"), clock)
    dev.drive_counter("net_energy_kwh", ConstantPower(KW, t0=clock()), start_raw=40_000_000)
    dev.drive_counter("fuel_total", ConstantPower(FUEL_MMBTU_H, t0=clock()), start_raw=1_000_000)
    dev.drive_rate("net_output_mw", ConstantPower(KW))
    dev.drive_status("status", ConstantPower(1.0), up=2, down=4)  # running the whole time
    return [dev]


def test_oem_telemetry_passes_the_kit(kwhub_hub_factory):
    sample = PolledSample(_turbine_devices, {"gtk.net": KW / 60, "gtk.fuel": FUEL_MMBTU_H / 60, "gtk.avail": 1.0},
                          units={"gtk.fuel": "MMBtu", "gtk.avail": "fraction"})
    hub = kwhub_hub_factory(meter_config("meters.oem_telemetry", sample.channels(),
                                         {"device_id": 2, "map": "gas_turbine_controller", "asset": "gtk", **POLL}))
    check_polled_meter(hub, "meter", sample)


# ------------------------------------------------------------------ meters: MQTT

MQTT_SAMPLE = MqttSample(
    messages=[
        ("{root}/gt1/telemetry", b'{"ts": "2026-03-02T10:05:00Z", "value": 1.25, "unit": "kWh"}'),
        ("{root}/gt1/telemetry", b'{"ts": "2026-03-02T10:10:00Z", "value": 1500, "unit": "Wh"}'),
        ("{root}/gt1/telemetry", b'{"ts": "2026-03-02T10:15:00Z", "value": 2.0, "unit": "kWh"}'),
        ("{root}/gt1/telemetry", b'{"ts": "2026-03-02T10:20:00Z", "value": "broken"}'),
        ("{root}/gt1/telemetry", b'{"ts": "2026-03-02T10:30:00Z", "value": 0.75, "unit": "kWh"}'),
    ],
    # 10:00-10:15: 1.25 + 1.5 + 2.0 = 4.75 kWh; 10:15-10:30: 0.75 kWh (the 10:20 message is bad)
    expected={"gt1.net": ExpectedChannel("5.5", intervals=2)},
    bad=1,
)


def test_mqtt_meter_passes_the_kit(kwhub_hub_factory):
    need_server("Mosquitto", "127.0.0.1", 1883)
    hub = kwhub_hub_factory(meter_config("meters.mqtt", MQTT_SAMPLE.channels(), {
        "topic": "{root}/+/telemetry", "channel_map": {"gt1": "gt1.net"}, "connect_timeout_s": 5}))
    report = check_mqtt_meter(hub, "meter", MQTT_SAMPLE)
    assert report.intervals == 2


# ------------------------------------------------------------------ markets, esg


def test_price_file_market_passes_the_kit(registry, tmp_path):
    from kwhub.core.adapters import AdapterContext

    cls = registry.adapter("markets.price_file")
    check_market_adapter(cls, {"path": "prices.csv"})
    (tmp_path / "prices.csv").write_text("interval_start,node,market,interval_minutes,lmp\n"
                                         "2026-10-01T00:00:00Z,HUB,DA,60,31.5\n")
    ctx = AdapterContext(work_dir=tmp_path)
    check_reports_ok(cls("prices", {"path": "prices.csv"}, ctx))
    check_reports_failure(cls("prices", {"path": "absent.csv"}, ctx), FailureKind.CONFIGURATION)
    adapter = cls("prices", {"path": "prices.csv", "iso": "ERCOT"}, ctx)
    [da] = adapter.fetch_prices(date(2026, 10, 1), "DA")  # the hub's timezone here: UTC
    assert (da.iso, da.node, da.starts.tolist(), da.price_units.tolist()) == ("ERCOT", "HUB", [1_790_812_800],
                                                                               [3_150_000])  # $31.50
    assert adapter.fetch_prices(date(2026, 10, 2), "DA") == [] and adapter.fetch_prices(date(2026, 10, 1), "RT") == []
    (tmp_path / "bad.csv").write_text("interval_start,node,market,interval_minutes,lmp\n"
                                      "2026-10-01T00:00:00Z,HUB,DA,60,31.5\n2026-10-01T01:00:00Z,HUB,DA,60,31.123456\n")
    check_market_rejects(adapter, tmp_path / "bad.csv", "prices", line=3, field="lmp")  # more than 5 decimals


def test_scope_summary_writer_passes_the_kit(registry, tmp_path):
    from kwhub.core.adapters import AdapterContext

    cls = registry.adapter("esg.scope_summary")
    check_esg_reporter(cls, {})
    check_reports_ok(cls("esg", {"folder": "emissions"}, AdapterContext(work_dir=tmp_path)))
    (tmp_path / "a_file").write_text("not a folder")
    check_reports_failure(cls("esg", {"folder": "a_file/emissions"}, AdapterContext(work_dir=tmp_path)),
                          FailureKind.CONFIGURATION)


# ------------------------------------------------------------------ erp renderers

RENDERERS = FAMILY_CHECKS["check_renderer"]


def test_renderer_list_is_every_builtin_renderer(registry):
    assert RENDERERS == sorted(t for t, c in registry.adapters.items() if issubclass(c, InvoiceRenderer))


@pytest.mark.parametrize("type_id", RENDERERS)
def test_every_builtin_renderer_passes_the_kit(registry, type_id):
    renderer = registry.adapter(type_id)(type_id.split(".", 1)[1], CONFIGS[type_id])
    bodies = check_renderer(renderer)
    assert len(bodies) == 3  # invoice, adjustment, credit note


def test_csv_validate_names_a_short_row_instead_of_raising(registry):
    """A CSV export cut inside a record was a TypeError in validate(); it is a problem on its line."""
    from kwhub.testing.invoices import credit_note

    renderer = registry.adapter("erp.csv")("csv")
    body = renderer.render(credit_note())
    cut = body[: len(body) // 2]
    problems = renderer.validate(cut)
    assert any("fields" in p and "line" in p for p in problems), problems


# ------------------------------------------------------------------ erp transports


def test_webhook_transport_passes_the_kit(registry, kwhub_hub):
    cls = registry.adapter("erp.webhook")
    with WebhookReceiver() as receiver:
        transport = cls("erp_hook", receiver.transport_config())
        try:
            check_reports_ok(transport)
            check_transport(transport, receiver, hub=kwhub_hub)
        finally:
            transport.close()
    gone = cls("erp_hook", receiver.transport_config(connect_timeout_s=1))
    try:
        check_reports_failure(gone, FailureKind.TRANSIENT)  # the receiver has stopped
    finally:
        gone.close()


def test_folder_transport_passes_the_kit(registry, kwhub_hub, tmp_path):
    cls = registry.adapter("erp.folder")
    transport = cls("erp_drop", {"folder": str(tmp_path / "inbox")})
    check_reports_ok(transport)
    check_transport(transport, FolderReceiver(tmp_path / "inbox"), hub=kwhub_hub)
    (tmp_path / "plain_file").write_text("")
    check_reports_failure(cls("erp_drop", {"folder": str(tmp_path / "plain_file"), "create": False}),
                          FailureKind.CONFIGURATION)


@pytest.mark.sshd
def test_sftp_transport_passes_the_kit(registry, kwhub_hub, sshd_server):
    from tests.fixtures.outbox import free_port

    cls = registry.adapter("erp.sftp")
    transport = cls("erp_sftp", sshd_server.sftp_config())
    try:
        check_reports_ok(transport)
        check_transport(transport, FolderReceiver(sshd_server.remote_dir), hub=kwhub_hub)
    finally:
        transport.close()
    down = cls("erp_sftp", sshd_server.sftp_config(port=free_port(), connect_timeout_s=2))
    try:
        check_reports_failure(down, FailureKind.TRANSIENT)
    finally:
        down.close()


# ------------------------------------------------------------------ the kit catches what it should


class _LeakyConfig(AdapterConfig):
    """Accepts any key: a misspelled setting would pass unnoticed."""

    model_config = ConfigDict(extra="allow")


class _LeakyConfigMeter(MeterAdapter):
    """A meter whose Config accepts anything."""

    type_id: ClassVar[str] = "meters.leaky"
    capabilities: ClassVar[frozenset[str]] = frozenset({"file"})
    Config = _LeakyConfig

    def read_file(self, path: Path, channel: str | None = None) -> IntervalBatch:
        return IntervalBatch(str(path))


def test_the_kit_refuses_a_config_that_accepts_unknown_keys():
    with pytest.raises(AssertionError, match="accepted the unknown key"):
        check_adapter_contract(_LeakyConfigMeter, {})


def test_the_kit_refuses_a_file_capability_without_read_file():
    class NoRead(MeterAdapter):
        """Declares file but cannot read one."""

        type_id: ClassVar[str] = "meters.noread"
        capabilities: ClassVar[frozenset[str]] = frozenset({"file"})

    with pytest.raises(AssertionError, match="does not implement read_file"):
        check_adapter_contract(NoRead, {})


def test_the_kit_refuses_a_check_that_raises_or_misclassifies():
    class Raises(MeterAdapter):
        """check() raises."""

        type_id: ClassVar[str] = "meters.raises"
        capabilities: ClassVar[frozenset[str]] = frozenset({"stream"})

        def check(self) -> CheckResult:
            raise ConnectionError("no route")

    class Wrong(Raises):
        """check() says transient for what is a configuration error."""

        def check(self) -> CheckResult:
            return CheckResult.failure(FailureKind.TRANSIENT, "folder missing")

    with pytest.raises(AssertionError, match="raised ConnectionError"):
        check_reports_failure(Raises("x"), FailureKind.TRANSIENT)
    with pytest.raises(AssertionError, match="classified the failure as transient, expected configuration"):
        check_reports_failure(Wrong("x"), FailureKind.CONFIGURATION)


def test_the_kit_refuses_a_renderer_whose_bytes_change_or_validate_accepts_anything():
    from datetime import datetime

    class Clocked(InvoiceRenderer):
        """Stamps the rendering time."""

        type_id: ClassVar[str] = "erp.clocked"
        format_id: ClassVar[str] = "clocked"
        media_type: ClassVar[str] = "text/plain"
        file_extension: ClassVar[str] = ".txt"

        def render(self, invoice, context=None):  # noqa: ANN001, ANN201
            return f"{invoice.number} {datetime.now().isoformat()}".encode()

        def validate(self, data: bytes) -> list[str]:
            return [] if data.startswith(b"INV") or data.startswith(b"CN") else ["no number"]

    class Lenient(Clocked):
        """Same bytes, but validate() accepts anything."""

        def render(self, invoice, context=None):  # noqa: ANN001, ANN201
            return f"{invoice.number}".encode()

        def validate(self, data: bytes) -> list[str]:
            return []

    with pytest.raises(AssertionError, match="twice with the same context gave different bytes"):
        check_renderer(Clocked("c"))
    with pytest.raises(AssertionError, match="accepts an empty document"):
        check_renderer(Lenient("c"))


def test_the_kit_sees_a_document_imported_twice(registry):
    """Against an ERP that does not deduplicate, the second send with the same key shows as a second import."""
    cls = registry.adapter("erp.webhook")
    with WebhookReceiver(dedupe=False) as naive:
        transport = cls("erp_hook", naive.transport_config())
        try:
            with pytest.raises(AssertionError, match="imported it 2 times"):
                check_transport(transport, naive, document=sample_document())
        finally:
            transport.close()


def test_the_kit_names_a_channel_the_adapter_reads_wrong(kwhub_hub_factory):
    wrong = MeterSample(LONG.path, {"hall_a.load": ExpectedChannel("20034.0", intervals=4),
                                    "pv.net": ExpectedChannel("0", intervals=4)})
    hub = kwhub_hub_factory(meter_config("meters.csv", wrong.channels()))
    with pytest.raises(AssertionError, match=r"channel hall_a.load reads 20034.5 kWh, expected 20034.0"):
        check_meter_file(hub, "meter", wrong)


# ------------------------------------------------------------------ the kit as a pytest plugin


def test_the_kit_is_a_pytest11_plugin_and_a_package():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert data["project"]["entry-points"]["pytest11"] == {"kwhub": "kwhub.testing.plugin"}
    assert "kwhub.testing" in data["tool"]["setuptools"]["packages"]


def test_importing_the_kit_plugin_loads_nothing_heavy():
    code = ("import sys, kwhub.testing.plugin; "
            "print(sorted(m for m in sys.modules if m.startswith(('kwhub.', 'sqlalchemy', 'numpy'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert json.loads(out.stdout.strip().replace("'", '"')) == ["kwhub.testing", "kwhub.testing.plugin"]


class _Acme(MeterAdapter):
    """Acme meter registered by an in-test plugin."""

    type_id: ClassVar[str] = "meters.kitacme"
    capabilities: ClassVar[frozenset[str]] = frozenset({"stream"})


class _AcmePlugin:
    @hookimpl
    def kwhub_register_meter_adapters(self, register):  # noqa: ANN001, ANN201
        register(_Acme)


@pytest.fixture
def kwhub_plugins():
    return [("kitacme", _AcmePlugin())]


def test_kit_fixtures_load_the_plugins_under_test(kwhub_registry, kwhub_hub, kwhub_registry_factory):
    check_registers(kwhub_registry, "kitacme", ["meters.kitacme"])
    assert "meters.csv" in kwhub_registry.adapters  # with the built-ins
    assert kwhub_hub.registry is kwhub_registry
    assert kwhub_hub.database_url.startswith("sqlite:///") and kwhub_hub.db.intervals.count_rows() == 0
    alone = kwhub_registry_factory([("kitacme", _AcmePlugin())], builtins=False)
    assert sorted(alone.adapters) == ["meters.kitacme"]


def test_a_broken_plugin_under_test_fails_loudly(kwhub_registry_factory):
    from kwhub.hub.registry import PluginLoadError

    class Broken:
        @hookimpl
        def kwhub_register_meter_adapters(self, register):  # noqa: ANN001, ANN201
            register(object)

    with pytest.raises(PluginLoadError, match="broken"):
        kwhub_registry_factory([("broken", Broken())])


def test_builtins_are_loaded_by_the_kit_as_by_the_hub():
    kit = load_plugins(use_entry_points=False)
    from kwhub.testing import load_registry

    assert sorted(load_registry().adapters) == sorted(kit.adapters)
