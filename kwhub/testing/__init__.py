"""The plugin test kit: prove that an adapter works in a hub before anyone installs it.

Fixtures (registered with pytest when kwhub is installed; see :mod:`kwhub.testing.plugin`):
``kwhub_plugins``, ``kwhub_registry``, ``kwhub_config``, ``kwhub_hub`` and their factories.

Conformance checks, plain functions that raise ``AssertionError`` with a message naming the
adapter type and what to change:

=========================  =================================================================
every family               :func:`check_adapter_contract`, :func:`check_reports_ok`,
                           :func:`check_reports_failure`, :func:`check_registers`
meters                     :func:`check_meter_file`, :func:`check_meter_rejects`,
                           :func:`check_polled_meter`, :func:`check_mqtt_meter`
erp                        :func:`check_renderer`, :func:`check_transport` (with a
                           :class:`WebhookReceiver` or :class:`FolderReceiver`)
markets                    :func:`check_market_adapter`, :func:`check_bid_document`,
                           :func:`check_market_server` (with a :class:`MarketDay`),
                           :func:`check_market_rejects`
esg                        :func:`check_esg_reporter`, :func:`check_esg_writer` (on
                           :func:`sample_disclosure`)
=========================  =================================================================

A meter test in full::

    from pathlib import Path

    import kwhub_acme
    import pytest
    from kwhub.testing import ExpectedChannel, MeterSample, check_meter_file, meter_config

    SAMPLE = MeterSample(Path(__file__).parent / "acme.csv",
                         {"acme.m1": ExpectedChannel("50.75", intervals=4)})

    @pytest.fixture
    def kwhub_plugins():
        return [("acme", kwhub_acme)]

    @pytest.fixture
    def kwhub_config():
        return meter_config("meters.acme", SAMPLE.channels())

    def test_reads_the_sample(kwhub_hub):
        check_meter_file(kwhub_hub, "meter", SAMPLE)

Names load on first use, so importing this package (and the pytest plugin) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    # every family
    "check_adapter_contract": "kwhub.testing.contract",
    "check_registers": "kwhub.testing.contract",
    "check_reports_failure": "kwhub.testing.contract",
    "check_reports_ok": "kwhub.testing.contract",
    "require": "kwhub.testing.contract",
    # registries and hubs
    "MINIMAL_CONFIG": "kwhub.testing.hubs",
    "load_registry": "kwhub.testing.hubs",
    "meter_config": "kwhub.testing.hubs",
    "open_hub": "kwhub.testing.hubs",
    "write_config": "kwhub.testing.hubs",
    # meters
    "ExpectedChannel": "kwhub.testing.meters",
    "MeterSample": "kwhub.testing.meters",
    "MqttSample": "kwhub.testing.meters",
    "PolledSample": "kwhub.testing.meters",
    "check_meter_file": "kwhub.testing.meters",
    "check_meter_rejects": "kwhub.testing.meters",
    "check_mqtt_meter": "kwhub.testing.meters",
    "check_polled_meter": "kwhub.testing.meters",
    # erp
    "FolderReceiver": "kwhub.testing.receivers",
    "Receiver": "kwhub.testing.receivers",
    "WebhookReceiver": "kwhub.testing.receivers",
    "check_renderer": "kwhub.testing.erp",
    "check_transport": "kwhub.testing.erp",
    "sample_document": "kwhub.testing.erp",
    # markets, esg
    "check_esg_reporter": "kwhub.testing.esg",
    "check_esg_writer": "kwhub.testing.esg",
    "sample_disclosure": "kwhub.testing.disclosures",
    "MarketDay": "kwhub.testing.markets",
    "MarketDayResult": "kwhub.testing.markets",
    "absurd_bid": "kwhub.testing.markets",
    "check_bid_document": "kwhub.testing.markets",
    "check_market_adapter": "kwhub.testing.markets",
    "check_market_rejects": "kwhub.testing.markets",
    "check_market_server": "kwhub.testing.markets",
    "day_grid": "kwhub.testing.markets",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kwhub.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:  # for type checkers and editors; at run time names load lazily
    from kwhub.testing.contract import (  # noqa: F401
        check_adapter_contract,
        check_registers,
        check_reports_failure,
        check_reports_ok,
        require,
    )
    from kwhub.testing.disclosures import sample_disclosure  # noqa: F401
    from kwhub.testing.erp import check_renderer, check_transport, sample_document  # noqa: F401
    from kwhub.testing.esg import check_esg_reporter, check_esg_writer  # noqa: F401
    from kwhub.testing.hubs import (  # noqa: F401
        MINIMAL_CONFIG,
        load_registry,
        meter_config,
        open_hub,
        write_config,
    )
    from kwhub.testing.markets import (  # noqa: F401
        MarketDay,
        MarketDayResult,
        absurd_bid,
        check_bid_document,
        check_market_adapter,
        check_market_rejects,
        check_market_server,
        day_grid,
    )
    from kwhub.testing.meters import (  # noqa: F401
        ExpectedChannel,
        MeterSample,
        MqttSample,
        PolledSample,
        check_meter_file,
        check_meter_rejects,
        check_mqtt_meter,
        check_polled_meter,
    )
    from kwhub.testing.receivers import FolderReceiver, Receiver, WebhookReceiver  # noqa: F401
