"""Tamper evidence for issued documents: the per-seller hash chain and the rendering register.

Every issued document (invoice, adjustment, credit note) stores, in its ``invoice`` row:

* ``document_sha256``: SHA-256 of the stored document (the ``document`` column's UTF-8
  bytes, exactly as written when it was issued);
* ``prev_chain_sha256``: the chain hash of the seller's previous document
  (:data:`GENESIS` for the seller's first);
* ``chain_sha256``: :func:`chain_sha256` over the seller, the document's number in the
  seller's sequence, its id, its ``document_sha256`` and ``prev_chain_sha256``.

Changing any document (or its number) breaks its own hash and every later link; a
document removed from the middle leaves a gap in the numbering and a broken link. Only
the newest document of a seller could be rewritten consistently by someone who can write
every column, which is why ``kwhub verify --anchor FILE`` keeps each seller's chain head
outside the database (:mod:`kwhub.hub.settle.verify`).

Each rendered body queued for delivery is registered in ``document_rendering`` (append
only) with the hash of the document it was rendered from. Before anything is sent, the
relay checks the outbox body against that register and the issued document
(:func:`check_outgoing`); a mismatch is dead-lettered, never sent.

:func:`chain_link` is called for every document issued (from
``kwhub.hub.settle.issue_write.insert_invoice``); it also refuses a number that does not follow
the seller's last issued one (a rewound or jumped ``invoice_sequence``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select

from kwhub.core.invoice import Invoice
from kwhub.core.settlement import SettlementError
from kwhub.hub.store.service_tables import webhook_event_table
from kwhub.hub.store.settlement_tables import document_rendering_table, invoice_table
from kwhub.hub.store.tables import utcnow

CHAIN_VERSION = "kwhub-chain-v1"
GENESIS = "0" * 64
_IN_CHUNK = 500

# built once: these run for every document issued or queued
_it, _rt = invoice_table, document_rendering_table
_HEAD = (select(_it.c.number_seq, _it.c.number, _it.c.chain_sha256)
         .where(_it.c.seller == bindparam("seller")).order_by(_it.c.number_seq.desc()).limit(1))
_ISSUED = select(_it.c.document, _it.c.document_sha256).where(_it.c.id == bindparam("invoice_id"))
_REGISTERED = select(_rt.c.document_sha256).where(_rt.c.invoice_id == bindparam("invoice_id"),
                                                  _rt.c.format_id == bindparam("format_id"),
                                                  _rt.c.body_sha256 == bindparam("body_sha256"))
_REGISTER = insert(_rt)


class InvoiceNumberingError(SettlementError):
    """The seller's invoice sequence does not continue from its last issued document."""


class DocumentIntegrityError(SettlementError):
    """A document to be rendered or sent does not match what was issued."""


def document_sha256(document: str | bytes) -> str:
    """SHA-256 (hex) of a stored document: its text as UTF-8 bytes."""
    data = document.encode("utf-8") if isinstance(document, str) else bytes(document)
    return hashlib.sha256(data).hexdigest()


def chain_sha256(seller: str, number_seq: int, invoice_id: str, doc_sha256: str, prev_chain: str) -> str:
    """The chain hash of one document: SHA-256 of its link fields, one per line."""
    text = f"{CHAIN_VERSION}\n{seller}\n{number_seq}\n{invoice_id}\n{doc_sha256}\n{prev_chain}\n"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def chain_link(conn: Any, seller: str, number_seq: int, invoice_id: str, document: str) -> dict[str, str]:
    """The hash columns of a document about to be issued as ``number_seq`` of ``seller``.

    Reads the seller's last issued document on ``conn`` (inside the issuing transaction,
    after the number was taken, so the sequence row lock orders concurrent issuers) and
    raises :class:`InvoiceNumberingError` unless ``number_seq`` is the next number.
    """
    head = conn.execute(_HEAD, {"seller": seller}).first()
    last = int(head.number_seq) if head is not None else 0
    if number_seq != last + 1:
        if number_seq <= last:
            what = (f"was rewound: it gave number {number_seq}, but numbers up to {last} are issued "
                    f"(last: {head.number})")
        else:
            what = (f"jumped: it gave number {number_seq}, but the last issued is {last}"
                    f"{f' ({head.number})' if head is not None else ''}, so numbers {last + 1}..{number_seq - 1}"
                    " would be missing")
        raise InvoiceNumberingError(
            f"invoice sequence of seller {seller!r} {what}. Nothing was issued. Find out who changed "
            f"invoice_sequence, then set its next_number for {seller!r} back to {last + 1}; `kwhub verify` "
            "reports the numbering")
    if head is not None and not head.chain_sha256:
        raise DocumentIntegrityError(f"the last issued document of seller {seller!r} ({head.number}) has no chain hash; "
                             "run `kwhub verify`")
    prev = head.chain_sha256 if head is not None else GENESIS
    digest = document_sha256(document)
    return {"document_sha256": digest, "prev_chain_sha256": prev,
            "chain_sha256": chain_sha256(seller, number_seq, invoice_id, digest, prev)}


def chain_links(conn: Any, seller: str, docs: Sequence[tuple[int, str, str]]) -> list[dict[str, str]]:
    """:func:`chain_link` of several documents of ``seller`` issued in one go, ``(number_seq,
    invoice_id, document)`` each with consecutive numbers: the head is read once, and each
    document links to the one before it."""
    if not docs:
        return []
    first = chain_link(conn, seller, *docs[0])
    out = [first]
    for (seq, invoice_id, document), (prev_seq, _, _) in zip(docs[1:], docs[:-1], strict=True):
        if seq != prev_seq + 1:
            raise InvoiceNumberingError(f"invoice numbers of seller {seller!r} issued together must follow each "
                                        f"other: {prev_seq} then {seq}. Nothing was issued")
        prev = out[-1]["chain_sha256"]
        digest = document_sha256(document)
        out.append({"document_sha256": digest, "prev_chain_sha256": prev,
                    "chain_sha256": chain_sha256(seller, seq, invoice_id, digest, prev)})
    return out


# --------------------------------------------------------------------------- renderings


def issued_document(conn: Any, invoice: Invoice) -> str:
    """The ``document_sha256`` of ``invoice`` as issued; raises :class:`DocumentIntegrityError` when
    it is not issued, its stored document no longer matches its hash, or ``invoice`` differs
    from the stored document."""
    return _check_issued(invoice, conn.execute(_ISSUED, {"invoice_id": invoice.id}).first())


def issued_documents(conn: Any, invoices: Sequence[Invoice]) -> list[str]:
    """:func:`issued_document` of several invoices (one statement per 500), in order; the first
    that fails raises."""
    rows: dict[str, Any] = {}
    for part in _chunks(list(dict.fromkeys(inv.id for inv in invoices))):
        rows.update((r.id, r) for r in conn.execute(
            select(_it.c.id, _it.c.document, _it.c.document_sha256).where(_it.c.id.in_(part))))
    return [_check_issued(inv, rows.get(inv.id)) for inv in invoices]


def _check_issued(invoice: Invoice, row: Any) -> str:
    if row is None:
        raise DocumentIntegrityError(f"invoice {invoice.number} ({invoice.id}) is not issued; only issued documents are "
                             "rendered for delivery")
    if not row.document_sha256 or document_sha256(row.document) != row.document_sha256:
        raise DocumentIntegrityError(f"the issued document {invoice.number} ({invoice.id}) no longer matches its hash; "
                             "nothing is rendered from it. Run `kwhub verify`")
    if document_sha256(invoice.model_dump_json()) != row.document_sha256 and \
            Invoice.model_validate_json(row.document) != invoice:  # the slow path: stored by another model version
        raise DocumentIntegrityError(f"invoice {invoice.number} ({invoice.id}) differs from the issued document; "
                             "render the document as issued")
    return str(row.document_sha256)


def register_rendering(conn: Any, invoice_id: str, format_id: str, body_sha256: str, doc_sha256: str,
                       now: datetime | None = None) -> None:
    """Register a rendered body of an issued document (once per (invoice, format, body))."""
    key = {"invoice_id": invoice_id, "format_id": format_id, "body_sha256": body_sha256}
    if conn.execute(_REGISTERED, key).first() is not None:
        return
    conn.execute(_REGISTER, {**key, "document_sha256": doc_sha256, "created_at": now or utcnow()})


def register_renderings(conn: Any, items: Sequence[tuple[str, str, str, str]], now: datetime | None = None) -> None:
    """:func:`register_rendering` of several ``(invoice_id, format_id, body_sha256, doc_sha256)``:
    the registered ones read with one statement per 500 invoices, the new ones in one executemany."""
    have: set[tuple[str, str, str]] = set()
    for part in _chunks(list(dict.fromkeys(i[0] for i in items))):
        have.update((a, b, c) for a, b, c in conn.execute(
            select(_rt.c.invoice_id, _rt.c.format_id, _rt.c.body_sha256).where(_rt.c.invoice_id.in_(part))))
    stamp = now or utcnow()
    rows = []
    for invoice_id, format_id, body_sha256, doc_sha256 in items:
        if (invoice_id, format_id, body_sha256) in have:
            continue
        have.add((invoice_id, format_id, body_sha256))
        rows.append({"invoice_id": invoice_id, "format_id": format_id, "body_sha256": body_sha256,
                     "document_sha256": doc_sha256, "created_at": stamp})
    if rows:
        conn.execute(_REGISTER, rows)


@dataclass(frozen=True)
class Outgoing:
    """What :func:`check_outgoing` needs of one outbox row."""

    row_id: int
    invoice_id: str
    format_id: str
    body: bytes
    body_sha256: str
    document_sha256: str | None
    event_id: str | None = None  # set for a webhook event (a notification, not an invoice rendering)


def check_outgoing(conn: Any, rows: Sequence[Outgoing]) -> dict[int, str]:
    """The rows whose body must not be sent, with the reason (empty when all are intact).

    A body is sent only when it hashes to the hash it was queued with, that hash is
    registered for its invoice and format, and it was rendered from the issued document,
    whose stored text still matches its hash. A webhook event's body must hash to the hash
    recorded for that event when it was emitted.
    """
    if not rows:
        return {}
    out = _check_events(conn, [r for r in rows if r.event_id])
    rows = [r for r in rows if not r.event_id]
    ids = sorted({r.invoice_id for r in rows})
    it, rt = invoice_table, document_rendering_table
    issued: dict[str, tuple[str, str | None]] = {}
    registered: dict[tuple[str, str, str], str] = {}
    for part in _chunks(ids):
        for inv_id, document, digest in conn.execute(
                select(it.c.id, it.c.document, it.c.document_sha256).where(it.c.id.in_(part))):
            issued[inv_id] = (document_sha256(document), digest)
        for inv_id, fmt, body_hash, doc_hash in conn.execute(
                select(rt.c.invoice_id, rt.c.format_id, rt.c.body_sha256, rt.c.document_sha256)
                .where(rt.c.invoice_id.in_(part))):
            registered[(inv_id, fmt, body_hash)] = doc_hash
    for r in rows:
        actual = hashlib.sha256(r.body).hexdigest()
        if actual != r.body_sha256:
            out[r.row_id] = (f"the outbox body was changed after it was queued (SHA-256 {actual[:16]}..., "
                             f"queued as {r.body_sha256[:16]}...)")
            continue
        doc = issued.get(r.invoice_id)
        if doc is None:
            out[r.row_id] = f"invoice {r.invoice_id} is not an issued document"
            continue
        now_hash, stored_hash = doc
        if now_hash != stored_hash:
            out[r.row_id] = f"the issued document {r.invoice_id} was changed: it no longer matches its hash"
            continue
        rendered_from = registered.get((r.invoice_id, r.format_id, actual))
        if rendered_from is None:
            out[r.row_id] = f"the body is not a registered {r.format_id} rendering of invoice {r.invoice_id}"
        elif rendered_from != stored_hash or (r.document_sha256 and r.document_sha256 != stored_hash):
            out[r.row_id] = f"the body was rendered from another document than the issued {r.invoice_id}"
    return out


def _check_events(conn: Any, rows: Sequence[Outgoing]) -> dict[int, str]:
    """The event rows whose body is not the one recorded when the event was emitted."""
    w = webhook_event_table
    recorded: dict[str, str] = {}
    for part in _chunks(sorted({r.event_id for r in rows if r.event_id})):
        recorded.update((i, h) for i, h in conn.execute(select(w.c.id, w.c.body_sha256).where(w.c.id.in_(part))))
    out: dict[int, str] = {}
    for r in rows:
        actual = hashlib.sha256(r.body).hexdigest()
        if actual != r.body_sha256 or recorded.get(r.event_id or "") != actual:
            out[r.row_id] = (f"the webhook event {r.event_id} body does not match the event recorded when it "
                             "was emitted")
    return out


def _chunks(items: Sequence[str], n: int = _IN_CHUNK) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]
