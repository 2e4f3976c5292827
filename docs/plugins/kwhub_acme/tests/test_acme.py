"""kwhub-acme under the kwhub plugin test kit.

The kit is kwhub.testing; its fixtures come with kwhub.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from kwhub import AdapterContext, FailureKind
from kwhub.testing import (
    ExpectedChannel,
    MeterSample,
    check_adapter_contract,
    check_meter_file,
    check_meter_rejects,
    check_registers,
    check_reports_failure,
    check_reports_ok,
    meter_config,
)

import kwhub_acme
from kwhub_acme import AcmeMeter

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
SAMPLE = MeterSample(SAMPLES / "acme_export.csv", {
    # 12.5 + 13.0 + 12.75 + 12.25, summed by hand
    "acme.m1": ExpectedChannel("50.5", intervals=4),
    "acme.m2": ExpectedChannel("15.0", intervals=4),  # 3.0 + 3.5 + 4.0 + 4.5
})


@pytest.fixture
def kwhub_plugins():
    """The plugin under test, by the name its entry point gives it."""
    return [("acme", kwhub_acme)]


@pytest.fixture
def kwhub_config():
    """A hub with the sample's channels and one instance ("meter") of the adapter."""
    return meter_config("meters.acme", SAMPLE.channels())


def test_the_plugin_registers_its_adapter(kwhub_registry):
    check_registers(kwhub_registry, "acme",
                    ["meters.acme"])


def test_the_adapter_meets_the_contract():
    check_adapter_contract(AcmeMeter, {"interval_minutes": 15})


def test_the_sample_reads_to_the_expected_kwh_through_the_hub(kwhub_hub):
    check_meter_file(kwhub_hub, "meter", SAMPLE, sniff=True)


def test_a_bad_value_names_its_line_and_field(kwhub_hub, tmp_path):
    lines = SAMPLE.path.read_text().splitlines()
    lines[4] = "m1,2026-10-01T00:45:00-04:00,twelve"
    bad = tmp_path / "bad_export.csv"
    bad.write_text("\n".join(lines) + "\n")
    check_meter_rejects(kwhub_hub, "meter", bad, where="line 5", field="kwh")


def test_check_finds_the_inbox_or_says_it_is_missing(tmp_path):
    (tmp_path / "inbox").mkdir()
    context = AdapterContext(work_dir=tmp_path)
    check_reports_ok(AcmeMeter("m", {"inbox": "inbox"}, context))
    absent = AcmeMeter("m", {"inbox": "absent"}, context)
    check_reports_failure(absent, FailureKind.CONFIGURATION)
