"""Wire settlement to delivery: an issued invoice is queued for its buyer in the same transaction.

:func:`outbox_hook` returns the ``on_issue(conn, invoice)`` callback that
:func:`kwhub.hub.settle.service.settle` runs right after inserting an invoice, so an invoice
never exists without its outbox rows (and a failed rendering rolls the run back).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kwhub.core.invoice import Invoice
from kwhub.hub.config import KwhubConfig


def delivery_pairs(cfg: KwhubConfig, party_id: str) -> list[tuple[str, str]]:
    """(format, transport instance) pairs the party receives, from its ``delivery`` settings."""
    try:
        party = cfg.campus.party(party_id)
    except KeyError:
        return []
    return party.delivery.pairs()


def outbox_hook(cfg: KwhubConfig, registry: Any, db: Any = None) -> Callable[[Any, Invoice], None] | None:
    """The on-issue callback for ``cfg``, or None when no party receives anything.

    ``on_issue(conn, invoice)`` builds the invoice's render context (usage, lineage,
    explain data) from the run on ``conn`` and the interval store of ``db`` (the channel
    days a metered contract read), then queues one outbox row per delivery route.
    """
    from kwhub.core.adapters import InvoiceTransport
    from kwhub.core.settlement import SettlementError
    from kwhub.hub.deliver.outbox import (
        OutboxError,
        enqueue_invoice,
        renderers_for_formats,
    )

    pairs = {p.id: p.delivery.pairs() for p in cfg.campus.parties}
    formats = sorted({f for ps in pairs.values() for f, _ in ps})
    if not formats:
        return None
    renderers = renderers_for_formats(registry, formats, cfg)
    # the ids of the enabled transports (queuing does not build them: their secrets are the
    # relay's business, resolved by `kwhub deliver`)
    transports = sorted(inst.id for inst in cfg.adapters.values()
                        if inst.enabled and issubclass(inst.cls, InvoiceTransport))

    def on_issue(conn: Any, invoice: Invoice) -> None:
        routes = pairs.get(invoice.buyer.id, [])
        if not routes:
            return
        from kwhub.hub.deliver.render_context import render_context

        try:  # usage and lineage from the run's frozen inputs, read in this transaction
            context = render_context(conn, invoice, cfg.campus, db=db)
        except SettlementError as exc:
            raise SettlementError(f"invoice {invoice.number}: {exc}; the run was not recorded") from exc
        for fmt, transport in routes:
            try:
                enqueue_invoice(conn, invoice, {fmt: renderers[fmt]}, {"formats": [fmt], "transports": [transport]},
                                transports, context=context)
            except OutboxError as exc:  # roll the run back; settle() reports it for this contract
                raise SettlementError(f"{exc}; the run was not recorded") from exc

    return on_issue


def delivery_problems(cfg: KwhubConfig, registry: Any) -> list[dict[str, str]]:
    """What the parties lack for the formats they receive, per contract and format.

    Each entry has ``contract``, ``format`` and ``message`` (naming the party, its role and
    the field to set). ``kwhub config check`` and ``kwhub adapters check`` print them, so
    a missing payment account or endpoint is fixed before anything is issued.
    """
    from kwhub.core.settlement import party_ref
    from kwhub.hub.deliver.outbox import OutboxError, renderers_for_formats

    out: list[dict[str, str]] = []
    for contract in cfg.campus.contracts:
        try:
            formats = [f for f, _ in cfg.campus.party(contract.buyer).delivery.pairs()]
        except KeyError:
            continue
        if not formats:
            continue
        try:
            renderers = renderers_for_formats(registry, formats, cfg)
        except OutboxError as exc:
            out.append({"contract": contract.id, "format": ",".join(formats), "message": str(exc)})
            continue
        seller, buyer = party_ref(cfg.campus, contract.seller), party_ref(cfg.campus, contract.buyer)
        for fmt in dict.fromkeys(formats):
            for msg in renderers[fmt].check_parties(seller, buyer, {contract.tax_category}):
                out.append({"contract": contract.id, "format": fmt, "message": msg})
    return out
