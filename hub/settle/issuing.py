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


def outbox_hook(cfg: KwhubConfig, registry: Any) -> Callable[[Any, Invoice], None] | None:
    """The on-issue callback for ``cfg``, or None when no party receives anything."""
    from kwhub.core.settlement import SettlementError
    from kwhub.hub.deliver.outbox import (
        OutboxError,
        enqueue_invoice,
        renderers_for_formats,
        transports_from_config,
    )

    pairs = {p.id: p.delivery.pairs() for p in cfg.campus.parties}
    formats = sorted({f for ps in pairs.values() for f, _ in ps})
    if not formats:
        return None
    renderers = renderers_for_formats(registry, formats, cfg)
    transports = sorted(transports_from_config(cfg))

    def on_issue(conn: Any, invoice: Invoice) -> None:
        for fmt, transport in pairs.get(invoice.buyer.id, []):
            try:
                enqueue_invoice(conn, invoice, {fmt: renderers[fmt]}, {"formats": [fmt], "transports": [transport]},
                                transports)
            except OutboxError as exc:  # roll the run back; settle() reports it for this contract
                raise SettlementError(f"{exc}; the run was not recorded") from exc

    return on_issue
