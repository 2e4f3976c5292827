"""ERP family checks: renderers give valid, reproducible documents; transports deliver once.

* :func:`check_renderer` renders each sample document (invoice, adjustment, credit note
  from :mod:`kwhub.testing.invoices`, or the ones given) with a full render context and
  requires what the family promises: ``validate()`` finds nothing in the renderer's own
  output, rendering again gives the same bytes, a damaged document (empty, cut in half) is
  refused with reasons and never makes ``validate()`` raise, ``format_id``, ``media_type``
  and ``file_extension`` are usable, ``check_parties`` and ``control_partner`` answer in
  their types.
* :func:`check_transport` sends one document twice with the same idempotency key through
  a transport to a receiver (:mod:`kwhub.testing.receivers`): the first send delivers it,
  the second is also reported delivered, and the receiver has imported it exactly once.
  Given a hub, the document also goes through the hub's outbox: queued twice, relayed
  twice, delivered once.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from kwhub.core.adapters import DeliveryResult, InvoiceRenderer, InvoiceTransport, OutgoingDocument
from kwhub.core.invoice import Invoice
from kwhub.core.render_context import RenderContext
from kwhub.testing.contract import require
from kwhub.testing.invoices import BUYER, SELLER, all_documents, energy_invoice, full_context
from kwhub.testing.receivers import Receiver

if TYPE_CHECKING:
    from kwhub.hub.app import Hub

MEDIA_TYPE = re.compile(r"[a-zA-Z0-9][\w.+-]*/[a-zA-Z0-9][\w.+-]*(;.*)?")


def _render(renderer: InvoiceRenderer, invoice: Invoice, context: RenderContext | None) -> bytes:
    try:
        body = renderer.render(invoice, context)
    except Exception as exc:
        raise AssertionError(f"{renderer.type_id}: rendering {invoice.kind} {invoice.number} raised "
                             f"{type(exc).__name__}: {exc}") from exc
    require(isinstance(body, bytes) and body,
            f"{renderer.type_id}: render() of {invoice.number} returned {type(body).__name__} "
            f"of length {len(body) if hasattr(body, '__len__') else '?'}, expected non-empty bytes")
    return bytes(body)


def _validate(renderer: InvoiceRenderer, data: bytes, what: str) -> list[str]:
    try:
        problems = renderer.validate(data)
    except Exception as exc:
        raise AssertionError(f"{renderer.type_id}: validate() of {what} raised {type(exc).__name__}: {exc}; "
                             "it should return the problems as a list of strings") from exc
    require(isinstance(problems, list) and all(isinstance(p, str) and p for p in problems),
            f"{renderer.type_id}: validate() of {what} returned {problems!r}, not a list of messages")
    return [str(p) for p in problems]


def check_renderer(renderer: InvoiceRenderer, invoices: Sequence[Invoice] | None = None,
                   context: RenderContext | None = None, *, parties_complete: bool = True) -> dict[str, bytes]:
    """Render and validate each document; see the module docstring. Returns the bytes by invoice id.

    ``context`` defaults to :func:`kwhub.testing.invoices.full_context` (usage, lineage,
    explain data, a fixed envelope with an EDI control number). ``parties_complete=False``
    lets ``check_parties`` find the sample parties lacking something the format needs
    beyond what the built-in formats ask for (it must still answer with a list of messages).
    """
    tid = renderer.type_id
    require(isinstance(renderer, InvoiceRenderer), f"{renderer!r} is not an InvoiceRenderer")
    require(isinstance(renderer.format_id, str) and re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", renderer.format_id),
            f"{tid}: format_id {renderer.format_id!r} should be a short lower-case name (parties list it in "
            "delivery.formats)")
    require(isinstance(renderer.media_type, str) and MEDIA_TYPE.fullmatch(renderer.media_type),
            f"{tid}: media_type {renderer.media_type!r} is not a type/subtype media type")
    require(renderer.media_type != "application/octet-stream",
            f"{tid}: set media_type to the format's own media type, not the default application/octet-stream")
    require(isinstance(renderer.file_extension, str) and re.fullmatch(r"\.[A-Za-z0-9]+", renderer.file_extension),
            f"{tid}: file_extension {renderer.file_extension!r} should look like '.xml'")
    context = full_context() if context is None else context
    docs = list(invoices) if invoices is not None else all_documents()
    require(docs, f"{tid}: no invoices to render")
    out: dict[str, bytes] = {}
    for inv in docs:
        body = _render(renderer, inv, context)
        problems = _validate(renderer, body, f"its own rendering of {inv.number}")
        require(not problems, f"{tid}: its own rendering of {inv.kind} {inv.number} does not validate: "
                              + "; ".join(problems[:10]))
        again = _render(renderer, inv, context)
        require(again == body, f"{tid}: rendering {inv.number} twice with the same context gave different bytes "
                               f"(first difference at byte {_first_difference(body, again)}); take times and "
                               "control numbers from context.envelope, never from the clock")
        require(_validate(renderer, b"", "an empty document"), f"{tid}: validate() accepts an empty document")
        cut = body[: len(body) // 2]
        require(_validate(renderer, cut, f"the first half of {inv.number}"),
                f"{tid}: validate() accepts {inv.number} cut in half ({len(cut)} of {len(body)} bytes)")
        partner = renderer.control_partner(inv)
        require(partner is None or (isinstance(partner, str) and partner),
                f"{tid}: control_partner() returned {partner!r}; return a partner key or None")
        out[inv.id] = body
    missing = renderer.check_parties(SELLER, BUYER, ("S", "Z"))
    require(isinstance(missing, list) and all(isinstance(m, str) for m in missing),
            f"{tid}: check_parties() returned {missing!r}, not a list of messages")
    require(not missing or not parties_complete,
            f"{tid}: check_parties() finds the kit's sample parties lacking: {missing} (they carry everything the "
            "built-in formats need; pass parties_complete=False if the format needs more)")
    return out


def _first_difference(a: bytes, b: bytes) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def sample_document(invoice: Invoice | None = None, format_id: str = "json") -> OutgoingDocument:
    """An outgoing document for transport checks: the sample invoice as JSON, with its default key."""
    inv = invoice or energy_invoice()
    body = inv.model_dump_json().encode()
    return OutgoingDocument(invoice_id=inv.id, version=inv.version, format_id=format_id,
                            filename=f"{inv.number}_v{inv.version}_{format_id}.json", media_type="application/json",
                            body=body)


def _send(transport: InvoiceTransport, doc: OutgoingDocument, attempt: str) -> DeliveryResult:
    tid = transport.type_id
    try:
        result = transport.send(doc)
    except Exception as exc:
        raise AssertionError(f"{tid}: the {attempt} send raised {type(exc).__name__}: {exc}; send() reports "
                             "failures as DeliveryResult(ok=False, retryable=...)") from exc
    require(isinstance(result, DeliveryResult), f"{tid}: send() returned {result!r}, not a DeliveryResult")
    require(result.ok, f"{tid}: the {attempt} send failed: {result.status} {result.message}")
    return result


def check_transport(transport: InvoiceTransport, receiver: Receiver, *, document: OutgoingDocument | None = None,
                    hub: Hub | None = None) -> None:
    """Deliver a document once through ``transport`` to ``receiver``; see the module docstring."""
    tid = transport.type_id
    require(isinstance(transport, InvoiceTransport), f"{transport!r} is not an InvoiceTransport")
    doc = document or sample_document()
    digest = hashlib.sha256(doc.body).hexdigest()
    require(receiver.deliveries(doc) == [], f"{tid}: the receiver already holds {doc.idempotency_key} before the test")
    _send(transport, doc, "first")
    got = receiver.deliveries(doc)
    require(got == [digest], f"{tid}: after one send the receiver imported {len(got)} cop(ies) of "
                             f"{doc.idempotency_key} ({'same bytes' if set(got) == {digest} else 'other bytes'})")
    _send(transport, doc, "second (same idempotency key)")
    got = receiver.deliveries(doc)
    require(len(got) == 1, f"{tid}: sent twice with idempotency key {doc.idempotency_key}, the receiver imported "
                           f"it {len(got)} times; carry doc.idempotency_key so the receiver can tell")
    if hub is not None:
        _check_through_outbox(hub, transport, receiver)


def _check_through_outbox(hub: Hub, transport: InvoiceTransport, receiver: Receiver) -> None:
    """Queue a second invoice twice and relay twice: one row, one delivery."""
    from kwhub.core.campus import DeliveryPrefs
    from kwhub.hub.deliver.outbox import enqueue_invoice, list_outbox, relay_once

    tid = transport.type_id
    route = transport.instance_id
    inv = energy_invoice().model_copy(update={"id": "inv-kit-outbox", "number": "INV-KIT-OUTBOX"})
    renderer: Any = hub.registry.adapter("erp.json")("json")  # the registry's classes are typed as Adapter
    prefs = DeliveryPrefs(formats=["json"], transports=[route])
    _issue(hub, inv)
    for _ in range(2):
        with hub.db.write_transaction() as conn:
            enqueue_invoice(conn, inv, {"json": renderer}, prefs, [route])
    rows = [r for r in list_outbox(hub.db) if r["invoice_id"] == inv.id and r["transport_instance"] == route]
    require(len(rows) == 1, f"{tid}: queuing one document twice made {len(rows)} outbox rows")
    first = relay_once(hub.db, hub.registry, {route: transport})
    require(first.delivered == 1 and not first.errors,
            f"{tid}: the outbox relay did not deliver the queued document: {first.as_dict()}")
    second = relay_once(hub.db, hub.registry, {route: transport})
    require(second.picked == 0, f"{tid}: a delivered document was picked again: {second.as_dict()}")
    row = next(r for r in list_outbox(hub.db) if r["id"] == rows[0]["id"])
    require(row["status"] == "delivered", f"{tid}: the outbox row is {row['status']}, expected delivered")
    doc = OutgoingDocument(invoice_id=inv.id, version=inv.version, format_id="json", filename=row["filename"],
                           media_type=row["media_type"], body=b"")
    delivered = receiver.deliveries(doc)
    require(len(delivered) == 1, f"{tid}: through the outbox the receiver imported {row['idempotency_key']} "
                                 f"{len(delivered)} times, expected once")


def _issue(hub: Hub, inv: Invoice) -> None:
    """Issue ``inv`` in the hub's database as a settlement run does (numbered, hash-chained).

    The relay refuses a document whose issued invoice it cannot find, so the kit's invoice must
    be issued before it is queued.
    """
    from sqlalchemy import select

    from kwhub.hub.settle.issue_write import insert_invoice, next_invoice_number
    from kwhub.hub.store.settlement_tables import invoice_table

    with hub.db.write_transaction() as conn:
        if conn.execute(select(invoice_table.c.id).where(invoice_table.c.id == inv.id)).first() is None:
            insert_invoice(conn, inv, next_invoice_number(conn, hub.db.dialect, inv.seller.id), "2024-07", None)
