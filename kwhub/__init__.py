"""kwhub: a meter-to-cash hub for behind-the-meter power on AI data-center campuses.

This module is the public face for plugin authors (pinned by ``tests/test_public_face.py``):
the hook marker, the adapter base classes with their config and check types, and the
interval and invoice models. Everything is importable from here::

    from kwhub import MeterAdapter, AdapterConfig, CheckResult, FailureKind, hookimpl

The implementation lives in ``kwhub.core`` (pure domain and engines), ``kwhub.hub`` (the
wiring: configuration, store, services, CLI; ``kwhub.hub.helpers`` is the toolkit plugins
may use) and ``kwhub.plugins`` (the built-in adapters). Names are loaded on first use, so
``import kwhub`` stays cheap for the command line.
"""

from __future__ import annotations

import importlib
import os as _os
from typing import TYPE_CHECKING, Any

# In a source checkout core/, hub/ and plugins/ sit beside this folder; installed, they are
# inside it (pyproject's package-dir maps them). Let the checkout import as installed.
_here = _os.path.dirname(__file__)
if not _os.path.isdir(_os.path.join(_here, "core")):
    __path__.append(_os.path.dirname(_here))  # noqa: F821 - the package's own __path__

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # hooks
    "hookimpl": "kwhub.core.hookspecs",
    "hookspec": "kwhub.core.hookspecs",
    # adapters, their configuration and checks
    "Adapter": "kwhub.core.adapters",
    "AdapterConfig": "kwhub.core.adapters",
    "AdapterContext": "kwhub.core.adapters",
    "AdapterError": "kwhub.core.adapters",
    "CheckResult": "kwhub.core.adapters",
    "FailureKind": "kwhub.core.adapters",
    "MeterAdapter": "kwhub.core.adapters",
    "MarketAdapter": "kwhub.core.adapters",
    "InvoiceRenderer": "kwhub.core.adapters",
    "InvoiceTransport": "kwhub.core.adapters",
    "EsgReporter": "kwhub.core.adapters",
    "OutgoingDocument": "kwhub.core.adapters",
    "DeliveryResult": "kwhub.core.adapters",
    "PriceComponent": "kwhub.core.pricing.base",
    "PricingContext": "kwhub.core.pricing.base",
    "Charge": "kwhub.core.pricing.base",
    # interval data
    "ChannelSeries": "kwhub.core.intervals",
    "IntervalBatch": "kwhub.core.intervals",
    "IntervalMatrix": "kwhub.core.intervals",
    "IntervalDataError": "kwhub.core.intervals",
    "Quality": "kwhub.core.quality",
    # invoices
    "Invoice": "kwhub.core.invoice",
    "InvoiceLine": "kwhub.core.invoice",
    "PartyRef": "kwhub.core.invoice",
    "TaxSubtotal": "kwhub.core.invoice",
    "RenderContext": "kwhub.core.render_context",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kwhub' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # for type checkers and editors; at run time names load lazily
    from kwhub.core.adapters import (  # noqa: F401
        Adapter,
        AdapterConfig,
        AdapterContext,
        AdapterError,
        CheckResult,
        DeliveryResult,
        EsgReporter,
        FailureKind,
        InvoiceRenderer,
        InvoiceTransport,
        MarketAdapter,
        MeterAdapter,
        OutgoingDocument,
    )
    from kwhub.core.hookspecs import hookimpl, hookspec  # noqa: F401
    from kwhub.core.intervals import ChannelSeries, IntervalBatch, IntervalDataError, IntervalMatrix  # noqa: F401
    from kwhub.core.invoice import Invoice, InvoiceLine, PartyRef, TaxSubtotal  # noqa: F401
    from kwhub.core.pricing.base import Charge, PriceComponent, PricingContext  # noqa: F401
    from kwhub.core.quality import Quality  # noqa: F401
    from kwhub.core.render_context import RenderContext  # noqa: F401
