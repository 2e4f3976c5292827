"""Queue an issued invoice: render it in every format its party receives and write one outbox
row per (format, transport instance) inside the caller's transaction.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update

from kwhub.core.adapters import (
    AdapterError,
    InvoiceRenderer,
    InvoiceTransport,
    OutgoingDocument,
)
from kwhub.core.invoice import Invoice
from kwhub.core.render_context import RenderContext
from kwhub.hub.settle.integrity import (
    DocumentIntegrityError,
    issued_documents,
    register_renderings,
)
from kwhub.hub.store.outbox_tables import as_utc, outbox_table, utcnow

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


_QUEUED = select(outbox_table.c.transport_instance, outbox_table.c.idempotency_key).where(
    outbox_table.c.idempotency_key.in_(bindparam("keys", expanding=True)))


class OutboxError(Exception):
    """An invoice cannot be queued (unknown format or transport, invalid rendering)."""



# --------------------------------------------------------------------------- enqueue


@dataclass(frozen=True)
class EnqueuedDocument:
    """One outbox row written by :func:`enqueue_invoice`."""

    id: int | None
    idempotency_key: str
    transport_instance: str
    format_id: str
    filename: str


def document_filename(invoice: Invoice, format_id: str, extension: str) -> str:
    """``<number>_v<version>_<format><ext>`` with anything unsafe for a file name replaced."""
    ext = extension if extension.startswith(".") or not extension else f".{extension}"
    stem = _SAFE_NAME.sub("_", f"{invoice.number}_v{invoice.version}_{format_id}").strip("._") or "document"
    return stem + _SAFE_NAME.sub("_", ext)


def _renderer_map(renderers: Mapping[str, InvoiceRenderer] | Iterable[InvoiceRenderer]) -> dict[str, InvoiceRenderer]:
    if isinstance(renderers, Mapping):
        return dict(renderers)
    return {r.format_id: r for r in renderers}


def _prefs(party_prefs: Any) -> tuple[list[str], list[str]]:
    prefs = getattr(party_prefs, "delivery", party_prefs)  # a Party or its DeliveryPrefs
    if prefs is None:
        return [], []
    if isinstance(prefs, Mapping):
        return list(prefs.get("formats", [])), list(prefs.get("transports", []))
    return list(prefs.formats), list(prefs.transports)


def enqueue_invoice(
    conn: Any,
    invoice: Invoice,
    renderers: Mapping[str, InvoiceRenderer] | Iterable[InvoiceRenderer],
    party_prefs: Any,
    transports: Mapping[str, Any] | Iterable[str] | None = None,
    *,
    context: RenderContext | None = None,
    now: datetime | None = None,
) -> list[EnqueuedDocument]:
    """Queue the issued ``invoice`` for every (format, transport) its party receives; does not commit.

    ``conn`` is an open SQLAlchemy ``Connection`` or ``Session`` inside the caller's
    transaction. ``renderers`` maps format id to renderer (or is a list of renderers);
    ``party_prefs`` is the buyer :class:`~kwhub.core.campus.Party` or its ``DeliveryPrefs``;
    ``transports`` (ids or a mapping keyed by id) are the transport instances that exist,
    used to reject a preference naming an unknown one. ``context`` (usage, lineage; see
    :func:`kwhub.hub.deliver.render_context.render_context`) goes to the renderers.
    ``invoice`` must be issued (its ``invoice`` row exists on ``conn``, intact, with the same
    content); anything else raises :class:`OutboxError`. Each document is rendered once
    with its recorded envelope (:func:`kwhub.hub.deliver.rendering.render_document`: the
    same bytes whenever it is rendered again; EDI control numbers from the partner's
    sequence), validated and registered with the hash of the issued document; an invalid
    rendering raises :class:`OutboxError`. Rows already queued for the same (transport,
    idempotency key) are left alone, so calling this twice for one invoice version queues
    nothing new. :class:`OutboxBatch` does the same for many invoices at once.
    """
    batch = OutboxBatch(renderers, transports, now=now)
    batch.add(conn, invoice, party_prefs, context=context)
    return batch.finish(conn)


def render_and_validate(renderer: InvoiceRenderer, invoice: Invoice,
                        context: RenderContext) -> tuple[bytes | None, list[str], str | None]:
    """Render one document and validate it: ``(body, problems, None)``, or ``(None, [], reason)``
    when the format cannot carry the invoice. A plain function of its arguments, so that an
    :class:`OutboxBatch` can run it in a worker process."""
    try:
        body = renderer.render(invoice, context)
    except (ValueError, AdapterError) as exc:  # a document the format cannot carry, with the reason
        return None, [], str(exc)
    return body, renderer.validate(body), None


def render_and_validate_many(renderer: InvoiceRenderer,
                             jobs: list[tuple[str, RenderContext]]) -> list[tuple[bytes | None, list[str], str | None]]:
    """:func:`render_and_validate` for several invoices, each given as its JSON (the text it was
    issued as: cheaper to send to a worker process than the model)."""
    return [render_and_validate(renderer, Invoice.model_validate_json(text), ctx) for text, ctx in jobs]


CHUNK = 8  # renderings sent to a worker at a time
_QUEUE_MANY = insert(outbox_table).returning(outbox_table.c.id, sort_by_parameter_order=True)


@dataclass
class _Queued:
    invoice: Invoice
    renderer: InvoiceRenderer
    pending: Any  # kwhub.hub.deliver.rendering.PendingRendering
    targets: list[str]
    doc_sha256: str
    result: Any  # render_and_validate's answer, or (a Future of a chunk's answers, index in it)


class OutboxBatch:
    """Queue several issued invoices inside the caller's transaction, rendering them on other cores.

    :meth:`add` (one invoice) and :meth:`add_many` check invoices exactly as
    :func:`enqueue_invoice` does (transports, renderers, the issued document), fix the
    envelope of each of their renderings on ``conn`` (in the order added, so EDI control
    numbers follow that order) and start rendering and validating them: on ``executor``
    when one is given (a ``concurrent.futures`` executor, e.g. a process pool, so the caller
    goes on issuing while other processes render), else at once. :meth:`finish` waits for
    the renderings (rendering the chunks no worker has started yet itself rather than
    waiting idle), refuses an invalid one with :class:`OutboxError`, records and registers
    them (:func:`kwhub.hub.deliver.rendering.record_renderings`,
    :func:`kwhub.hub.settle.integrity.register_renderings`) and writes the outbox rows, in
    the order added, each kind of row with one executemany. The rows, checks and errors are
    those of one :func:`enqueue_invoice` call per invoice; nothing is committed here, so an
    error rolls back the caller's whole transaction.
    """

    def __init__(self, renderers: Mapping[str, InvoiceRenderer] | Iterable[InvoiceRenderer],
                 transports: Mapping[str, Any] | Iterable[str] | None = None, *,
                 now: datetime | None = None, executor: Executor | None = None) -> None:
        self._by_format = _renderer_map(renderers)
        self._known = None if transports is None else set(
            transports.keys() if isinstance(transports, Mapping) else transports)
        self._now = now
        self._executor = executor
        self._queued: list[_Queued] = []
        self._seen: set[tuple[str, int, str]] = set()
        self._chunks: dict[str, list[tuple[_Queued, tuple[str, RenderContext]]]] = {}
        self._submitted: list[tuple[Future[Any], str, list[tuple[str, RenderContext]]]] = []

    def add(self, conn: Any, invoice: Invoice, party_prefs: Any, *, context: RenderContext | None = None) -> None:
        """Check ``invoice`` and start rendering it in every format its party receives."""
        self.add_many(conn, [(invoice, party_prefs, context)])

    def add_many(self, conn: Any, items: Sequence[tuple[Invoice, Any, RenderContext | None]]) -> None:
        """:meth:`add` of several ``(invoice, party_prefs, context)``, in order, reading the issued
        documents and the recorded renderings with one statement per 500 invoices."""
        wanted: list[tuple[Invoice, list[str], list[str], RenderContext | None]] = []
        for invoice, party_prefs, context in items:
            formats, targets = _prefs(party_prefs)
            if not formats or not targets:
                continue
            if self._known is not None:
                unknown = [t for t in targets if t not in self._known]
                if unknown:
                    raise OutboxError(
                        f"invoice {invoice.number}: delivery names unknown transport instance(s) {', '.join(unknown)}"
                        f" (configured: {', '.join(sorted(self._known)) or 'none'})"
                    )
            missing = [f for f in formats if f not in self._by_format]
            if missing:
                raise OutboxError(
                    f"invoice {invoice.number}: no renderer for format(s) {', '.join(missing)}"
                    f" (available: {', '.join(sorted(self._by_format)) or 'none'})"
                )
            wanted.append((invoice, formats, targets, context))
        if not wanted:
            return
        try:
            digests = issued_documents(conn, [w[0] for w in wanted])
        except DocumentIntegrityError as exc:
            raise OutboxError(str(exc)) from None

        from kwhub.hub.deliver.rendering import prepare_renderings

        # (item index, format) in the order added; the envelopes fixed in that order
        jobs: list[tuple[int, str]] = []
        for i, (invoice, formats, _, _) in enumerate(wanted):
            for fmt in dict.fromkeys(formats):
                if (invoice.id, invoice.version, fmt) in self._seen:  # added twice: the first queues it
                    continue
                self._seen.add((invoice.id, invoice.version, fmt))
                jobs.append((i, fmt))
        pending = prepare_renderings(conn, [(wanted[i][0], self._by_format[fmt]) for i, fmt in jobs], now=self._now)
        for (i, fmt), p in zip(jobs, pending, strict=True):
            invoice, _, targets, context = wanted[i]
            renderer = self._by_format[fmt]
            ctx = p.context(context)
            q = _Queued(invoice, renderer, p, list(targets), digests[i], None)
            self._queued.append(q)
            if self._executor is not None:
                chunk = self._chunks.setdefault(fmt, [])
                chunk.append((q, (invoice.model_dump_json(), ctx)))
                if len(chunk) >= CHUNK:
                    self._submit(fmt)
                continue
            try:
                body = renderer.render(invoice, ctx)
            except (ValueError, AdapterError) as exc:
                raise OutboxError(f"invoice {invoice.number}: cannot render {fmt}: {exc}") from exc
            q.result = (body, renderer.validate(body), None)

    def _submit(self, fmt: str) -> None:
        chunk = self._chunks.pop(fmt, [])
        if not chunk or self._executor is None:
            return
        jobs = [job for _, job in chunk]
        future = self._executor.submit(render_and_validate_many, self._by_format[fmt], jobs)
        self._submitted.append((future, fmt, jobs))
        for i, (q, _) in enumerate(chunk):
            q.result = (future, i)

    def _help(self) -> dict[Future[Any], list[tuple[bytes | None, list[str], str | None]]]:
        """Render, in this process, the chunks no worker has started yet, newest first (the
        workers take them oldest first), instead of waiting idle for them."""
        done: dict[Future[Any], list[tuple[bytes | None, list[str], str | None]]] = {}
        submitted, self._submitted = self._submitted, []
        for future, fmt, jobs in reversed(submitted):
            if not future.cancel():  # a worker has it, and every older one
                break
            done[future] = render_and_validate_many(self._by_format[fmt], jobs)
        return done

    def finish(self, conn: Any) -> list[EnqueuedDocument]:
        """Record the renderings and write the outbox rows; returns the rows written."""
        from kwhub.hub.deliver.rendering import RenderMismatchError, record_renderings

        for fmt in list(self._chunks):
            self._submit(fmt)
        queued, self._queued = self._queued, []
        self._seen.clear()
        docs: list[tuple[_Queued, OutgoingDocument, str]] = []
        try:
            local = self._help()
            for q in queued:
                if isinstance(q.result[0], Future):
                    future, i = q.result
                    body, problems, error = (local[future] if future in local else future.result())[i]
                else:
                    body, problems, error = q.result
                fmt, number = q.renderer.format_id, q.invoice.number
                if error is not None:
                    raise OutboxError(f"invoice {number}: cannot render {fmt}: {error}")
                digest = hashlib.sha256(body).hexdigest()
                try:
                    record_renderings(conn, [(q.pending, body, digest)] if q.pending.recorded_sha256 else [])
                except RenderMismatchError as exc:
                    raise OutboxError(f"invoice {number}: cannot render {fmt}: {exc}") from exc
                if problems:
                    shown = "; ".join(problems[:5]) + (f"; ... {len(problems) - 5} more" if len(problems) > 5 else "")
                    raise OutboxError(f"invoice {number}: rendered {fmt} document is invalid: {shown}")
                docs.append((q, OutgoingDocument(
                    invoice_id=q.invoice.id, version=q.invoice.version, format_id=fmt,
                    filename=document_filename(q.invoice, fmt, q.renderer.file_extension),
                    media_type=q.renderer.media_type, body=body,
                ), digest))
        except BaseException:
            for q in queued:
                if q.result is not None and isinstance(q.result[0], Future):
                    q.result[0].cancel()
            raise
        record_renderings(conn, [(q.pending, d.body, digest) for q, d, digest in docs
                                 if q.pending.recorded_sha256 is None])

        keys = [d.idempotency_key for _, d, _ in docs]
        existing: set[tuple[str, str]] = set()
        for i in range(0, len(keys), 500):
            existing.update((row[0], row[1]) for row in conn.execute(_QUEUED, {"keys": keys[i:i + 500]}))
        stamp = self._now or utcnow()
        register: list[tuple[str, str, str, str]] = []
        rows: list[dict[str, Any]] = []
        for q, doc, digest in docs:
            fresh = [target for target in dict.fromkeys(q.targets) if (target, doc.idempotency_key) not in existing]
            if fresh:
                register.append((doc.invoice_id, doc.format_id, digest, q.doc_sha256))
            for target in fresh:
                rows.append(dict(
                    invoice_id=doc.invoice_id, invoice_version=doc.version, format_id=doc.format_id,
                    transport_instance=target, idempotency_key=doc.idempotency_key, filename=doc.filename,
                    media_type=doc.media_type, body=doc.body, body_sha256=digest, status="pending",
                    attempts=0, next_attempt_at=stamp, possible_duplicate=False, created_at=stamp,
                    document_sha256=q.doc_sha256,
                ))
        if register:
            register_renderings(conn, register, stamp)
        ids: list[int | None] = []
        if rows:
            ids = [int(r[0]) if r[0] is not None else None for r in conn.execute(_QUEUE_MANY, rows)]
        return [EnqueuedDocument(id=pk, idempotency_key=r["idempotency_key"], transport_instance=r["transport_instance"],
                                 format_id=r["format_id"], filename=r["filename"])
                for pk, r in zip(ids, rows, strict=True)]


def redeliver(conn: Any, invoice: Invoice, renderer: InvoiceRenderer, transport: str, *,
              new_key: bool = False, context: RenderContext | None = None, now: datetime | None = None) -> EnqueuedDocument:
    """Queue an issued document again for one route (``renderer``'s format through ``transport``).

    Without ``new_key`` the document keeps its idempotency key and its bytes (the recorded
    rendering): a row already queued for the route is sent again (a delivered or dead row
    goes back to pending, with a note) and a route that never had it gets a new row, so a
    receiver that deduplicates sees the same document. With ``new_key`` the document is a
    new variant (key ``<invoice>:v<version>:<format>:r<n>``; an EDI format gets a new
    control number) that a deduplicating receiver imports again. Raises
    :class:`OutboxError` when the route's row is still pending or being sent.
    """
    from kwhub.hub.deliver.rendering import latest_variant, render_document

    t = outbox_table
    fmt = renderer.format_id
    stamp = now or utcnow()
    base_key = f"{invoice.id}:v{invoice.version}:{fmt}"
    variant = max(latest_variant(conn, invoice, fmt), 0) + 1 if new_key else 0
    key = f"{base_key}:r{variant}" if variant else base_key
    if not new_key:
        row = conn.execute(select(t.c.id, t.c.status, t.c.delivered_at).where(
            t.c.transport_instance == transport, t.c.idempotency_key == key)).first()
        if row is not None:
            if row.status in ("pending", "sending"):
                raise OutboxError(f"invoice {invoice.number} {fmt} to {transport} is already queued "
                                  f"(outbox row {row.id}, {row.status}); `kwhub deliver --once` sends it")
            note = f"re-sent on request at {stamp.isoformat()} (was {row.status}" + (
                f", delivered {as_utc(row.delivered_at).isoformat()})" if row.delivered_at else ")")  # type: ignore[union-attr]
            conn.execute(update(t).where(t.c.id == row.id).values(
                status="pending", attempts=0, next_attempt_at=stamp, last_error=note))
            return EnqueuedDocument(row.id, key, transport, fmt,
                                    document_filename(invoice, fmt, renderer.file_extension))
    try:
        body = render_document(conn, invoice, renderer, context, variant=variant, now=now).body
    except (ValueError, AdapterError) as exc:
        raise OutboxError(f"invoice {invoice.number}: cannot render {fmt}: {exc}") from exc
    problems = renderer.validate(body)
    if problems:
        raise OutboxError(f"invoice {invoice.number}: rendered {fmt} document is invalid: {'; '.join(problems[:5])}")
    name = document_filename(invoice, fmt if not variant else f"{fmt}_r{variant}", renderer.file_extension)
    res = conn.execute(insert(t).values(
        invoice_id=invoice.id, invoice_version=invoice.version, format_id=fmt, transport_instance=transport,
        idempotency_key=key, filename=name, media_type=renderer.media_type, body=body,
        body_sha256=hashlib.sha256(body).hexdigest(), status="pending", attempts=0, next_attempt_at=stamp,
        possible_duplicate=False, created_at=stamp))
    pk = res.inserted_primary_key
    return EnqueuedDocument(int(pk[0]) if pk and pk[0] is not None else None, key, transport, fmt, name)


def renderers_for_formats(registry: Any, formats: Iterable[str], config: Any | None = None) -> dict[str, InvoiceRenderer]:
    """Build one renderer per format id: a configured instance if there is one, else defaults.

    ``registry`` is the plugin :class:`~kwhub.hub.registry.Registry`; ``config`` an optional
    :class:`~kwhub.hub.config.KwhubConfig` whose renderer instances take precedence.
    """
    wanted = list(dict.fromkeys(formats))
    out: dict[str, InvoiceRenderer] = {}
    if config is not None:
        for inst in config.adapters.values():
            if inst.enabled and issubclass(inst.cls, InvoiceRenderer) and inst.cls.format_id in wanted:
                out.setdefault(inst.cls.format_id, inst.build(config.context()))  # type: ignore[arg-type]
    for cls in registry.adapters.values():
        if issubclass(cls, InvoiceRenderer) and cls.format_id in wanted and cls.format_id not in out:
            out[cls.format_id] = cls(cls.format_id)
    missing = [f for f in wanted if f not in out]
    if missing:
        raise OutboxError(f"no plugin renders format(s) {', '.join(missing)}")
    return out


def transports_from_config(config: Any) -> dict[str, InvoiceTransport]:
    """The enabled transport instances of a :class:`~kwhub.hub.config.KwhubConfig`, keyed by id."""
    return {
        inst.id: inst.build(config.context())  # type: ignore[misc]
        for inst in config.adapters.values()
        if inst.enabled and issubclass(inst.cls, InvoiceTransport)
    }


def close_transports(transports: Mapping[str, Any]) -> None:
    """Release the connections transports keep open (those that have ``close()``)."""
    for transport in transports.values():
        closer = getattr(transport, "close", None)
        if callable(closer):
            closer()
