"""Wire settlement to delivery: an issued invoice is queued for its buyer in the same transaction.

:func:`outbox_hook` returns the ``on_issue(conn, invoice)`` callback that
:func:`kwhub.hub.settle.service.settle` runs right after inserting an invoice, so an invoice
never exists without its outbox rows (and a failed rendering rolls the run back). Issuing
a batch (:func:`kwhub.hub.settle.review.issue_drafts`) calls ``on_issue.many(conn, invoices)``
once: one :class:`~kwhub.hub.deliver.outbox.OutboxBatch` for the whole batch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
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


class OutboxHook:
    """The on-issue callback of settlement: queues issued invoices for their buyers' delivery routes.

    ``hook(conn, invoice)`` queues one invoice; ``hook.many(conn, invoices)`` queues a batch
    through one :class:`~kwhub.hub.deliver.outbox.OutboxBatch` (the issued documents,
    recorded renderings and outbox rows read and written with a few statements; the
    renderings made and validated on ``executor`` when one is given, e.g. a process pool).
    Both run inside the issuing transaction and raise
    :class:`~kwhub.core.settlement.SettlementError` when an invoice cannot be queued, so the
    run is rolled back. ``routes`` maps a buyer party id to its (format, transport instance)
    pairs; ``context_for(conn, invoice)`` builds an invoice's render context (None: none).
    """

    def __init__(self, renderers: Mapping[str, Any], routes: Mapping[str, Sequence[tuple[str, str]]],
                 transports: Sequence[str], *, context_for: Callable[[Any, Invoice], Any] | None = None,
                 executor: Executor | None = None) -> None:
        self.renderers = dict(renderers)
        self.routes = {party: list(pairs) for party, pairs in routes.items() if pairs}
        self.transports = list(transports)
        self.context_for = context_for
        self.executor = executor

    def __call__(self, conn: Any, invoice: Invoice) -> None:
        self.many(conn, [invoice])

    def many(self, conn: Any, invoices: Sequence[Invoice]) -> None:
        """Queue ``invoices`` (issued on ``conn``), in order, for every route of their buyers."""
        from kwhub.core.settlement import SettlementError
        from kwhub.hub.deliver.outbox import OutboxBatch, OutboxError

        items: list[tuple[Invoice, dict[str, list[str]], Any]] = []
        for invoice in invoices:
            routes = self.routes.get(invoice.buyer.id)
            if not routes:
                continue
            context = None
            if self.context_for is not None:
                try:  # usage and lineage from the run's frozen inputs, read in this transaction
                    context = self.context_for(conn, invoice)
                except SettlementError as exc:
                    raise SettlementError(f"invoice {invoice.number}: {exc}; the run was not recorded") from exc
            by_format: dict[str, list[str]] = {}
            for fmt, transport in routes:
                by_format.setdefault(fmt, []).append(transport)
            items.extend((invoice, {"formats": [fmt], "transports": targets}, context)
                         for fmt, targets in by_format.items())
        if not items:
            return
        batch = OutboxBatch(self.renderers, self.transports, executor=self.executor)
        try:
            batch.add_many(conn, items)
            batch.finish(conn)
        except OutboxError as exc:  # roll the run back; settle() reports it for this contract
            raise SettlementError(f"{exc}; the run was not recorded") from exc


def outbox_hook(cfg: KwhubConfig, registry: Any, db: Any = None, *,
                executor: Executor | None = None) -> OutboxHook | None:
    """The on-issue callback for ``cfg`` (an :class:`OutboxHook`), or None when no party receives anything.

    ``on_issue(conn, invoice)`` (and ``on_issue.many(conn, invoices)`` for a batch) builds
    each invoice's render context (usage, lineage, explain data) from the run on ``conn``
    and the interval store of ``db`` (the channel days a metered contract read), then queues
    one outbox row per delivery route. ``executor`` (e.g. a process pool) renders and
    validates a batch's documents on other cores.
    """
    from kwhub.core.adapters import InvoiceTransport
    from kwhub.hub.deliver.outbox import renderers_for_formats

    pairs = {p.id: p.delivery.pairs() for p in cfg.campus.parties}
    formats = sorted({f for ps in pairs.values() for f, _ in ps})
    if not formats:
        return None
    renderers = renderers_for_formats(registry, formats, cfg)
    # the ids of the enabled transports (queuing does not build them: their secrets are the
    # relay's business, resolved by `kwhub deliver`)
    transports = sorted(inst.id for inst in cfg.adapters.values()
                        if inst.enabled and issubclass(inst.cls, InvoiceTransport))

    def context_for(conn: Any, invoice: Invoice) -> Any:
        from kwhub.hub.deliver.render_context import render_context

        return render_context(conn, invoice, cfg.campus, db=db)

    return OutboxHook(renderers, pairs, transports, context_for=context_for, executor=executor)


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
