"""Hook specifications of the ``kwhub`` pluggy project.

A plugin is a module (or object) with functions decorated ``@hookimpl`` whose names are
the hook names below. Built-in adapters are plugins too, declared as entry points in the
``kwhub`` group exactly like a third-party package would. Call order between plugins does
not matter for the ``register`` hooks. Example plugin module::

    from kwhub.core.hookspecs import hookimpl
    from kwhub.core.adapters import MeterAdapter

    class AcmeMeter(MeterAdapter):
        type_id = "meters.acme"

    @hookimpl
    def kwhub_register_meter_adapters(register):
        register(AcmeMeter)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pluggy

PROJECT = "kwhub"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

Register = Callable[[type], None]


@hookspec
def kwhub_register_meter_adapters(register: Register) -> None:
    """Register meter adapter classes (subclasses of ``kwhub.core.adapters.MeterAdapter``).

    Signature: ``kwhub_register_meter_adapters(register)``; call ``register(cls)`` once per
    class. Example::

        @hookimpl
        def kwhub_register_meter_adapters(register):
            register(GreenButtonMeter)
    """


@hookspec
def kwhub_register_market_adapters(register: Register) -> None:
    """Register ISO/RTO market adapter classes (subclasses of ``MarketAdapter``).

    Signature: ``kwhub_register_market_adapters(register)``. Example::

        @hookimpl
        def kwhub_register_market_adapters(register):
            register(PriceFileMarket)
    """


@hookspec
def kwhub_register_erp_adapters(register: Register) -> None:
    """Register ERP renderers (``InvoiceRenderer``) and transports (``InvoiceTransport``).

    Signature: ``kwhub_register_erp_adapters(register)``. Example::

        @hookimpl
        def kwhub_register_erp_adapters(register):
            register(UblRenderer)
            register(WebhookTransport)
    """


@hookspec
def kwhub_register_esg_adapters(register: Register) -> None:
    """Register disclosure writers (subclasses of ``EsgReporter``, each with a ``format_id``).

    Signature: ``kwhub_register_esg_adapters(register)``. A writer gets a
    ``kwhub.core.disclosure.Disclosure`` and writes its format. Example::

        @hookimpl
        def kwhub_register_esg_adapters(register):
            register(ScopeSummaryWriter)
    """


@hookspec
def kwhub_register_vee_rules(register: Register) -> None:
    """Register VEE rule classes (subclasses of ``kwhub.core.vee.engine.Rule``) by ``rule_id``.

    Signature: ``kwhub_register_vee_rules(register)``. Rules are enabled and tuned per
    channel group in configuration. Example::

        @hookimpl
        def kwhub_register_vee_rules(register):
            register(FlatlineRule)
    """


@hookspec
def kwhub_register_price_components(register: Register) -> None:
    """Register contract price component classes (``kwhub.core.pricing.base.PriceComponent``).

    Signature: ``kwhub_register_price_components(register)``; each class has a ``kind``
    used in ``[[contracts.components]]``. Example::

        @hookimpl
        def kwhub_register_price_components(register):
            register(CarbonAdderComponent)
    """


@hookspec(firstresult=True)
def kwhub_sniff_meter_file(path: Path, head: bytes) -> str | None:
    """Claim a meter file: return the ``type_id`` of the adapter that reads it, or None.

    Signature: ``kwhub_sniff_meter_file(path, head)`` where ``head`` is the first 4 KiB.
    The first non-None answer wins. Example::

        @hookimpl
        def kwhub_sniff_meter_file(path, head):
            return "meters.greenbutton" if b"naesb.org/espi" in head else None
    """


@hookspec
def kwhub_cli_commands(app: Any) -> None:
    """Add commands to the ``kwhub`` typer application.

    The command line imports plugins lazily: this hook is called on the installed plugins
    that kwhub does not ship, when ``kwhub --help`` lists the commands or a command name is
    not one of kwhub's own (kwhub's commands never wait for plugins to load).

    Signature: ``kwhub_cli_commands(app)``. Example::

        @hookimpl
        def kwhub_cli_commands(app):
            @app.command()
            def hello():
                print("hello")
    """
