"""The transactional outbox: invoices reach each ERP at least once, and the ERP sees them once.

Two halves:

* :func:`enqueue_invoice` renders an *issued* invoice in every format its party receives,
  registers each rendered body (:func:`kwhub.hub.settle.integrity.register_rendering`) and writes one
  ``outbox`` row per (format, transport instance) on the caller's open connection or
  session, inside the caller's transaction (the one that inserts the invoice). It never
  commits: if the invoice insert rolls back, so do its outbox rows.
* The relay (:func:`relay_once`, :func:`run_relay`) picks due rows, checks each body
  against the issued document (:func:`kwhub.hub.settle.integrity.check_outgoing`; a mismatch is
  dead-lettered and logged as an alert, never sent), marks the attempt and commits
  *before* sending. Right before each send it records, and commits, that the send started
  (``send_started_at``), in the same transaction that records the outcome of the sending
  thread's previous send; then it sends through the transport. A relay that dies leaves its claimed rows in ``sending``; once the lease
  runs out they are due again. A row whose send had started is re-sent with the same
  idempotency key and flagged *possible duplicate*; a row whose send never started is
  simply sent, its unused attempt not counted.

Every send has an overall deadline shorter than the lease (``retry.deadline_s``, default
half the lease, and never past 90 % of the lease after the claim), passed to the transport
as ``OutgoingDocument.deadline``; the built-in transports give up by it. Should a
transport overrun its deadline anyway, the relay extends the row's lease while the send
is still running, so no other relay can take the row over and send it a second time.

Failures back off exponentially with full jitter (``uniform(0, min(cap, base * 2**n))``);
a non-retryable answer (HTTP 4xx, bad credentials) dead-letters the row at once with the
receiver's response kept; retryable failures (5xx, timeouts, refused connections) are
retried up to ``max_attempts`` and then dead-lettered. ``kwhub outbox retry ID`` revives a
dead row.

Retry settings come from the transport instance's config (``retry = {base_s, cap_s,
max_attempts, lease_s, deadline_s}``) when it has one, else from :class:`RetryPolicy`
defaults.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import random
import re
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection

from kwhub.core.adapters import (
    AdapterError,
    DeliveryResult,
    FailureKind,
    InvoiceRenderer,
    InvoiceTransport,
    OutgoingDocument,
)
from kwhub.core.invoice import Invoice
from kwhub.core.render_context import RenderContext
from kwhub.hub.settle.integrity import (
    DocumentIntegrityError,
    Outgoing,
    check_outgoing,
    issued_document,
    register_rendering,
)
from kwhub.hub.store.audit import record_audit
from kwhub.hub.store.outbox_tables import OUTBOX_STATUSES, as_utc, outbox_table, utcnow

log = logging.getLogger("kwhub.outbox")

CRASH_ENV = "KWHUB_TEST_CRASH_AFTER_SEND"
RESPONSE_KEEP_DEAD = 64 * 1024
RESPONSE_KEEP_OK = 2 * 1024
LEASE_USE = 0.9  # a send ends by this fraction of the lease after the claim
WATCH_S = 0.25  # how often the relay looks at sends still running
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class OutboxError(Exception):
    """An invoice cannot be queued (unknown format or transport, invalid rendering)."""


# --------------------------------------------------------------------------- retry policy


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff, lease and deadline settings for one transport instance."""

    base_s: float = 2.0
    cap_s: float = 600.0
    max_attempts: int = 8
    lease_s: float = 120.0
    deadline_s: float | None = None

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Delay before attempt ``attempt + 1``: full jitter over the exponential ceiling."""
        ceiling = min(self.cap_s, self.base_s * (2 ** max(attempt - 1, 0)))
        return (rng or random).uniform(0.0, ceiling)

    @property
    def send_deadline_s(self) -> float:
        """How long one send may take: ``deadline_s`` (default half the lease), below the lease."""
        wanted = self.deadline_s if self.deadline_s is not None else self.lease_s / 2
        return min(wanted, self.lease_s * LEASE_USE)

    @classmethod
    def for_transport(cls, transport: Any, default: RetryPolicy | None = None) -> RetryPolicy:
        """The policy in ``transport.config.retry`` (any object with these fields), else ``default``."""
        base = default or cls()
        settings = getattr(getattr(transport, "config", None), "retry", None)
        if settings is None:
            return base
        deadline = getattr(settings, "deadline_s", base.deadline_s)
        return cls(
            base_s=float(getattr(settings, "base_s", base.base_s)),
            cap_s=float(getattr(settings, "cap_s", base.cap_s)),
            max_attempts=int(getattr(settings, "max_attempts", base.max_attempts)),
            lease_s=float(getattr(settings, "lease_s", base.lease_s)),
            deadline_s=None if deadline is None else float(deadline),
        )


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
    :func:`kwhub.hub.deliver.render_context.render_context`) goes to the renderers. Each document is
    rendered once with its recorded envelope (:func:`kwhub.hub.deliver.rendering.render_document`: the
    same bytes whenever it is rendered again; EDI control numbers from the partner's
    sequence) and validated; an invalid rendering raises :class:`OutboxError`.
    Rows already queued for the same (transport, idempotency key) are left alone, so
    calling this twice for one invoice version queues nothing new.
    used to reject a preference naming an unknown one. ``invoice`` must be issued (its
    ``invoice`` row exists on ``conn``, intact, with the same content); anything else raises
    :class:`OutboxError`. Each document is rendered once, validated and registered with
    the hash of the issued document; an invalid rendering raises :class:`OutboxError`
    before anything is written. Rows already queued for the same (transport, idempotency
    key) are left alone, so calling this twice for one invoice version queues nothing new.
    """
    formats, targets = _prefs(party_prefs)
    if not formats or not targets:
        return []
    if transports is not None:
        known = set(transports.keys() if isinstance(transports, Mapping) else transports)
        unknown = [t for t in targets if t not in known]
        if unknown:
            raise OutboxError(
                f"invoice {invoice.number}: delivery names unknown transport instance(s) {', '.join(unknown)}"
                f" (configured: {', '.join(sorted(known)) or 'none'})"
            )
    by_format = _renderer_map(renderers)
    missing = [f for f in formats if f not in by_format]
    if missing:
        raise OutboxError(
            f"invoice {invoice.number}: no renderer for format(s) {', '.join(missing)}"
            f" (available: {', '.join(sorted(by_format)) or 'none'})"
        )
    try:
        doc_sha256 = issued_document(conn, invoice)
    except DocumentIntegrityError as exc:
        raise OutboxError(str(exc)) from None

    from kwhub.hub.deliver.rendering import render_document

    docs: list[OutgoingDocument] = []
    for fmt in dict.fromkeys(formats):
        renderer = by_format[fmt]
        try:
            body = render_document(conn, invoice, renderer, context, now=now).body
        except (ValueError, AdapterError) as exc:  # a document the format cannot carry, with the reason
            raise OutboxError(f"invoice {invoice.number}: cannot render {fmt}: {exc}") from exc
        problems = renderer.validate(body)
        if problems:
            shown = "; ".join(problems[:5]) + (f"; ... {len(problems) - 5} more" if len(problems) > 5 else "")
            raise OutboxError(f"invoice {invoice.number}: rendered {fmt} document is invalid: {shown}")
        docs.append(OutgoingDocument(
            invoice_id=invoice.id, version=invoice.version, format_id=fmt,
            filename=document_filename(invoice, fmt, renderer.file_extension),
            media_type=renderer.media_type, body=body,
        ))

    t = outbox_table
    keys = [d.idempotency_key for d in docs]
    existing = {
        (row[0], row[1])
        for row in conn.execute(
            select(t.c.transport_instance, t.c.idempotency_key).where(t.c.idempotency_key.in_(keys))
        )
    }
    stamp = now or utcnow()
    written: list[EnqueuedDocument] = []
    for doc in docs:
        digest = hashlib.sha256(doc.body).hexdigest()
        fresh = [target for target in dict.fromkeys(targets) if (target, doc.idempotency_key) not in existing]
        if fresh:
            register_rendering(conn, doc.invoice_id, doc.format_id, digest, doc_sha256, stamp)
        for target in fresh:
            res = conn.execute(insert(t).values(
                invoice_id=doc.invoice_id, invoice_version=doc.version, format_id=doc.format_id,
                transport_instance=target, idempotency_key=doc.idempotency_key, filename=doc.filename,
                media_type=doc.media_type, body=doc.body, body_sha256=digest, status="pending",
                attempts=0, next_attempt_at=stamp, possible_duplicate=False, created_at=stamp,
                document_sha256=doc_sha256,
            ))
            pk = res.inserted_primary_key
            written.append(EnqueuedDocument(
                id=int(pk[0]) if pk and pk[0] is not None else None, idempotency_key=doc.idempotency_key,
                transport_instance=target, format_id=doc.format_id, filename=doc.filename,
            ))
    return written


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


# --------------------------------------------------------------------------- relay


@dataclass
class RelayReport:
    """What one or more relay passes did."""

    picked: int = 0
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    lost_claims: int = 0  # rows another relay claimed first
    released: int = 0  # claimed, then handed back unsent because the lease was running out
    renewed: int = 0  # leases extended for sends that ran past their deadline
    possible_duplicates: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # bodies that did not match the issued document
    errors: list[str] = field(default_factory=list)

    @property
    def attempted(self) -> int:
        """Alias of ``picked``: documents sent (or tried) in this pass."""
        return self.picked

    @property
    def sent(self) -> int:
        """Alias of ``delivered``."""
        return self.delivered

    def merge(self, other: RelayReport) -> RelayReport:
        """Add ``other``'s counts and lists to this report."""
        self.picked += other.picked
        self.delivered += other.delivered
        self.retried += other.retried
        self.dead += other.dead
        self.lost_claims += other.lost_claims
        self.released += other.released
        self.renewed += other.renewed
        self.possible_duplicates += other.possible_duplicates
        self.refused += other.refused
        self.errors += other.errors
        return self

    def as_dict(self) -> dict[str, Any]:
        """The report as plain JSON-able data."""
        return {
            "picked": self.picked, "delivered": self.delivered, "retried": self.retried,
            "dead": self.dead, "lost_claims": self.lost_claims, "released": self.released,
            "renewed": self.renewed, "possible_duplicates": list(self.possible_duplicates),
            "refused": list(self.refused), "errors": list(self.errors),
        }


@dataclass
class _Claim:
    id: int
    transport_instance: str
    doc: OutgoingDocument
    attempts: int
    outcome_unknown: bool  # the previous attempt started sending and was never acknowledged
    started: float | None = None  # time.monotonic() when the send began
    deadline: float | None = None
    renewed: float | None = None  # when the relay last extended the lease of an overrunning send
    finished: bool = False  # the transport returned


def _engine(db: Any) -> Any:
    return getattr(db, "engine", db)


def _write(db: Any) -> AbstractContextManager[Connection]:
    """A write transaction: the store's (lock taken up front on SQLite) or ``engine.begin()``."""
    wt = getattr(db, "write_transaction", None)
    return wt() if callable(wt) else _engine(db).begin()


def _resolve_transports(registry: Any, transports: Mapping[str, Any]) -> dict[str, Any]:
    """Transport instances by id; ``(type_id, config)`` pairs are built through ``registry``."""
    out: dict[str, Any] = {}
    for tid, value in transports.items():
        if isinstance(value, tuple):
            if registry is None:
                raise OutboxError(f"transport {tid!r} is given as {value[0]!r} but no plugin registry was passed")
            type_id, cfg = value
            out[tid] = registry.adapter(type_id)(tid, cfg)
        else:
            out[tid] = value
    return out


_sends_in_process = 0


def _crash_hook() -> None:
    """Test hook: ``KWHUB_TEST_CRASH_AFTER_SEND=N`` kills this process after its N-th send.

    It fires after the receiver answered and before the outcome is committed, which is the
    window the at-least-once guarantee is about.
    """
    global _sends_in_process
    raw = os.environ.get(CRASH_ENV, "")
    if not raw or raw == "0":
        return
    _sends_in_process += 1
    if _sends_in_process >= int(raw):
        os.kill(os.getpid(), signal.SIGKILL)


def _send(transport: Any, doc: OutgoingDocument) -> DeliveryResult:
    try:
        result = transport.send(doc)
    except AdapterError as exc:
        retryable = exc.kind == FailureKind.TRANSIENT
        result = DeliveryResult(ok=False, message=f"{exc.kind.value} error: {exc}", retryable=retryable)
    except Exception as exc:  # an unexpected failure of one send must not stop the relay
        result = DeliveryResult(ok=False, message=f"{type(exc).__name__}: {exc}", retryable=True)
    _crash_hook()
    return result


def relay_once(
    db: Any,
    registry: Any,
    transports: Mapping[str, Any],
    now: datetime | None = None,
    limit: int = 100,
    *,
    due_by: datetime | None = None,
    policy: RetryPolicy | None = None,
    concurrency: int = 1,
    rng: random.Random | None = None,
) -> RelayReport:
    """Deliver up to ``limit`` due rows once and return what happened.

    ``db`` is a :class:`kwhub.hub.store.Database` (or an Engine); ``transports`` maps transport
    instance id to an :class:`InvoiceTransport` (or a ``(type_id, config)`` pair built
    through ``registry``). Only rows for these transports are touched. ``now`` fixes the
    clock (tests); ``due_by`` (default ``now``) is the latest ``next_attempt_at`` picked.
    ``concurrency`` > 1 sends that many documents at a time.
    """
    clock = as_utc(now) if now is not None else None
    current = clock or utcnow()
    cutoff = as_utc(due_by) or current
    resolved = _resolve_transports(registry, transports)
    report = RelayReport()
    if not resolved:
        return report
    policies = {tid: RetryPolicy.for_transport(tr, policy) for tid, tr in resolved.items()}
    t = outbox_table

    due_filter = (
        t.c.status.in_(("pending", "sending")),
        t.c.next_attempt_at <= cutoff,
        t.c.transport_instance.in_(list(resolved)),
    )
    with _engine(db).connect() as conn:  # cheap look first: an idle relay never takes the write lock
        if conn.execute(select(t.c.id).where(*due_filter).limit(1)).first() is None:
            return report

    claims = _claim(db, due_filter, limit, policies, current, report)
    if not claims:
        return report

    claimed_at = time.monotonic()
    lock = threading.Lock()  # the report, the queue and the unsent list are shared by the sending threads
    queue = deque(claims)
    unsent: list[_Claim] = []

    def take() -> _Claim | None:
        """The next claim to send; claims whose lease is half gone are handed back unsent, so
        that no other relay can take one over while this one is still about to send it."""
        with lock:
            while queue:
                claim = queue.popleft()
                if time.monotonic() - claimed_at <= policies[claim.transport_instance].lease_s / 2:
                    return claim
                unsent.append(claim)
            return None

    def sender() -> None:
        """Send claims one after the other; each outcome is committed with the next send's start."""
        done: tuple[_Claim, DeliveryResult, list[Any], dict[str, Any]] | None = None
        while True:
            claim = take()
            if claim is None and done is None:
                return
            started = _step(db, done, claim, clock or utcnow())
            done = None
            if claim is None:
                return
            if not started:
                with lock:
                    report.picked -= 1
                    report.lost_claims += 1
                continue
            pol = policies[claim.transport_instance]
            start = time.monotonic()
            claim.deadline = min(start + pol.send_deadline_s, claimed_at + pol.lease_s * LEASE_USE)
            claim.started = start
            result = _send(resolved[claim.transport_instance], dataclasses.replace(claim.doc, deadline=claim.deadline))
            claim.finished = True
            with lock:
                guard, values = _outcome(claim, result, pol, clock, rng, report)
            done = (claim, result, guard, values)

    workers = max(1, min(concurrency, len(claims)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        running = {pool.submit(sender) for _ in range(workers)}
        while running:
            done_now, running = wait(running, timeout=WATCH_S, return_when=FIRST_COMPLETED)
            for fut in done_now:
                fut.result()
            with lock:
                _keep_leases(db, [c for c in claims if c.started is not None and not c.finished], policies, report)
    if unsent:
        _release(db, unsent, clock or utcnow(), report)
    return report


def _keep_leases(db: Any, claims: Iterable[_Claim], policies: dict[str, RetryPolicy], report: RelayReport) -> None:
    """Extend the lease of sends still running past their deadline (a transport that does not
    honour it), so that no other relay sends the document while this send may still arrive."""
    now = time.monotonic()
    for c in claims:
        pol = policies[c.transport_instance]
        if c.started is None or c.deadline is None or now < c.deadline + min(5.0, pol.lease_s * 0.05):
            continue
        if c.renewed is not None and now - c.renewed < pol.lease_s / 4:
            continue
        t = outbox_table
        with _write(db) as conn:
            conn.execute(update(t).where(t.c.id == c.id, t.c.status == "sending", t.c.attempts == c.attempts)
                         .values(next_attempt_at=utcnow() + timedelta(seconds=pol.lease_s)))
        c.renewed = now
        report.renewed += 1
        log.warning("outbox row %s (%s): the send is %.1f s past its deadline; transport %s does not honour "
                    "send deadlines; lease extended by %.0f s", c.id, c.doc.idempotency_key, now - c.deadline,
                    c.transport_instance, pol.lease_s)


def _release(db: Any, claims: list[_Claim], now: datetime, report: RelayReport) -> None:
    """Give back claims that were never sent: pending again, the attempt not counted."""
    t = outbox_table
    with _write(db) as conn:
        for c in claims:
            conn.execute(update(t).where(t.c.id == c.id, t.c.status == "sending", t.c.attempts == c.attempts)
                         .values(status="pending", attempts=c.attempts - 1, next_attempt_at=now,
                                 send_started_at=None))
    report.picked -= len(claims)
    report.released += len(claims)
    log.info("released %d claimed rows unsent (their lease was running out)", len(claims))


def _claim(db: Any, due_filter: tuple[Any, ...], limit: int, policies: dict[str, RetryPolicy], now: datetime,
           report: RelayReport) -> list[_Claim]:
    """Check and mark the attempt on up to ``limit`` due rows and commit, before anything is sent.

    The rows are read and updated inside one write transaction (the write lock is held
    from its start on both databases), so two relays never claim the same row. A row
    whose lease ran out is either one whose send had started (its outcome is unknown: it
    is flagged as a possible duplicate, or dead when that was its last attempt) or one
    that was claimed and never sent (the unused attempt is not counted). A body that does
    not match the issued document is dead-lettered here, never sent.
    """
    t = outbox_table
    with _write(db) as conn:
        due = conn.execute(
            select(t.c.id, t.c.status, t.c.attempts, t.c.transport_instance, t.c.invoice_id, t.c.invoice_version,
                   t.c.format_id, t.c.filename, t.c.media_type, t.c.body, t.c.idempotency_key, t.c.body_sha256,
                   t.c.document_sha256, t.c.send_started_at, t.c.event_type)
            .where(*due_filter).order_by(t.c.next_attempt_at, t.c.id).limit(limit)
        ).all()

        def unknown(r: Any) -> bool:  # an earlier claim's send started and was never acknowledged
            return bool(r.status == "sending" and r.send_started_at is not None)

        exhausted = [r for r in due if unknown(r) and r.attempts >= policies[r.transport_instance].max_attempts]
        if exhausted:
            conn.execute(update(t).where(t.c.id.in_([r.id for r in exhausted])).values(
                status="dead", possible_duplicate=True,
                last_error="relay stopped during the final attempt; outcome unknown"))
            report.dead += len(exhausted)
            for r in exhausted:
                log.warning("outbox row %s (%s) dead: relay stopped during its final attempt; outcome unknown",
                            r.id, r.transport_instance)
        candidates = [r for r in due if r not in exhausted]
        refused = check_outgoing(conn, [
            Outgoing(r.id, r.invoice_id, r.format_id, bytes(r.body), r.body_sha256, r.document_sha256,
                     event_id=r.idempotency_key if r.event_type else None)
            for r in candidates])
        for r in candidates:
            if r.id in refused:
                _refuse(conn, r, refused[r.id], report)
        taken = [r for r in candidates if r.id not in refused]
        groups: dict[tuple[str, str], list[int]] = {}
        for r in taken:
            kind = "unknown" if unknown(r) else ("unsent" if r.status == "sending" else "pending")
            groups.setdefault((r.transport_instance, kind), []).append(r.id)
        for (tid, kind), ids in groups.items():
            values: dict[str, Any] = dict(status="sending", last_attempt_at=now, send_started_at=None,
                                          next_attempt_at=now + timedelta(seconds=policies[tid].lease_s))
            if kind != "unsent":  # a claim that never sent did not use its attempt
                values["attempts"] = t.c.attempts + 1
            if kind == "unknown":
                values["possible_duplicate"] = True
            res = conn.execute(update(t).where(t.c.id.in_(ids), *due_filter[:2]).values(**values))
            if res.rowcount != len(ids):  # only if someone writes without the store's write lock
                raise OutboxError(f"claimed {res.rowcount} of {len(ids)} outbox rows; is another writer bypassing "
                                  "Database.write_transaction?")
    out = []
    for r in taken:
        was_unsent = r.status == "sending" and not unknown(r)
        out.append(_Claim(
            r.id, r.transport_instance,
            OutgoingDocument(invoice_id=r.invoice_id, version=r.invoice_version, format_id=r.format_id,
                             filename=r.filename, media_type=r.media_type, body=bytes(r.body),
                             key=r.idempotency_key),
            r.attempts if was_unsent else r.attempts + 1, unknown(r)))
    report.picked += len(out)
    return out


def _refuse(conn: Any, row: Any, reason: str, report: RelayReport) -> None:
    """Dead-letter a row whose body does not match the issued document, with an alert."""
    t = outbox_table
    message = f"refused before sending: {reason}"
    conn.execute(update(t).where(t.c.id == row.id).values(status="dead", last_error=message))
    record_audit(conn, "delivery_refused", actor="outbox relay", object_type="outbox", object_id=str(row.id),
                 detail={"invoice_id": row.invoice_id, "format": row.format_id, "transport": row.transport_instance,
                         "reason": reason})
    key = f"{row.invoice_id}:v{row.invoice_version}:{row.format_id}"
    report.dead += 1
    report.refused.append(f"{key} -> {row.transport_instance}: {reason}")
    report.errors.append(f"{key} -> {row.transport_instance}: {message}")
    log.error("ALERT: outbox row %s (%s -> %s) not sent and dead-lettered: %s; run `kwhub verify`", row.id, key,
              row.transport_instance, reason)


def _outcome(claim: _Claim, result: DeliveryResult, pol: RetryPolicy, clock: datetime | None,
             rng: random.Random | None, report: RelayReport) -> tuple[list[Any], dict[str, Any]]:
    """The guarded row update that records the outcome of one send (the report is updated)."""
    t = outbox_table
    now = clock or utcnow()
    key = claim.doc.idempotency_key
    receiver_dup = bool(getattr(result, "duplicate", False))
    values: dict[str, Any] = {"last_status": result.status}
    if claim.outcome_unknown:
        values["possible_duplicate"] = True
        report.possible_duplicates.append(key)
        log.warning(
            "possible duplicate delivery: %s to %s was re-sent after a relay stopped before recording"
            " the previous attempt (receiver reported duplicate: %s)",
            key, claim.transport_instance, "yes" if receiver_dup else "no",
        )
    if result.ok:
        values.update(status="delivered", delivered_at=now, last_error=None,
                      response=(result.response or "")[:RESPONSE_KEEP_OK] or None)
        report.delivered += 1
    elif not result.retryable:
        values.update(status="dead", last_error=result.message or "rejected",
                      response=(result.response or "")[:RESPONSE_KEEP_DEAD])
        report.dead += 1
        report.errors.append(f"{key} -> {claim.transport_instance}: {result.message}")
        log.error("outbox row %s (%s -> %s) dead-lettered: %s", claim.id, key, claim.transport_instance,
                  result.message)
    elif claim.attempts >= pol.max_attempts:
        values.update(status="dead", response=(result.response or "")[:RESPONSE_KEEP_DEAD],
                      last_error=f"gave up after {claim.attempts} attempts: {result.message}")
        report.dead += 1
        report.errors.append(f"{key} -> {claim.transport_instance}: {result.message}")
        log.error("outbox row %s (%s -> %s) dead after %d attempts: %s", claim.id, key,
                  claim.transport_instance, claim.attempts, result.message)
    else:
        delay = pol.backoff(claim.attempts, rng)
        values.update(status="pending", last_error=result.message, next_attempt_at=now + timedelta(seconds=delay),
                      response=(result.response or "")[:RESPONSE_KEEP_OK] or None)
        report.retried += 1
        log.info("outbox row %s (%s): attempt %d failed (%s); retry in %.1fs", claim.id, key, claim.attempts,
                 result.message, delay)
    guard = [t.c.id == claim.id]
    if result.ok:  # a late success still counts, unless another relay already recorded one
        guard.append(t.c.status.in_(("sending", "pending")))
    else:
        guard += [t.c.status == "sending", t.c.attempts == claim.attempts]
    return guard, values


def _step(db: Any, done: tuple[_Claim, DeliveryResult, list[Any], dict[str, Any]] | None,
          start: _Claim | None, now: datetime) -> bool:
    """One write transaction: record the outcome of the send just ``done`` and mark the send of
    ``start`` as started. Returns False when ``start`` was lost (another relay has the row).

    A sending thread records one outcome and starts its next send in the same commit, so
    marking each send costs no extra transaction.
    """
    t = outbox_table
    started = False
    with _write(db) as conn:
        if done is not None:
            claim, result, guard, values = done
            if conn.execute(update(t).where(*guard).values(**values)).rowcount != 1:
                log.warning("outbox row %s changed while attempt %d was in flight; its outcome (%s) was not recorded",
                            claim.id, claim.attempts, "ok" if result.ok else result.message)
        if start is not None:
            res = conn.execute(update(t).where(t.c.id == start.id, t.c.status == "sending",
                                               t.c.attempts == start.attempts, t.c.send_started_at.is_(None))
                               .values(send_started_at=now))
            started = res.rowcount == 1
    return started


def run_relay(
    db: Any,
    registry: Any,
    transports: Mapping[str, Any],
    *,
    once: bool = False,
    limit: int = 100,
    poll_s: float = 1.0,
    concurrency: int = 1,
    policy: RetryPolicy | None = None,
    stop: Any | None = None,
    progress: Callable[[RelayReport], None] | None = None,
    rng: random.Random | None = None,
) -> RelayReport:
    """Run the relay: with ``once`` deliver what is due now and return, else poll until ``stop``.

    ``stop`` is a ``threading.Event`` (or anything with ``is_set()``/``wait()``);
    ``progress`` is called with each pass's report.
    """
    total = RelayReport()
    cutoff = utcnow()
    while True:
        rep = relay_once(db, registry, transports, limit=limit, due_by=cutoff if once else None,
                         policy=policy, concurrency=concurrency, rng=rng)
        total.merge(rep)
        if progress is not None and (rep.picked or rep.dead):
            progress(rep)
        if once and rep.picked == 0 and rep.lost_claims == 0 and rep.dead == 0:
            return total
        if stop is not None and stop.is_set():
            return total
        if not once and rep.picked == 0:
            if stop is not None:
                if stop.wait(poll_s):
                    return total
            else:
                time.sleep(poll_s)


# --------------------------------------------------------------------------- administration


def count_due(db: Any, transports: Iterable[str] | None = None, now: datetime | None = None) -> int:
    """How many rows are due now (pending or with an expired lease)."""
    t = outbox_table
    q = (select(func.count()).select_from(t).where(t.c.status.in_(("pending", "sending")))
         .where(t.c.next_attempt_at <= (as_utc(now) or utcnow())))
    if transports is not None:
        q = q.where(t.c.transport_instance.in_(list(transports)))
    with _engine(db).connect() as conn:
        return int(conn.execute(q).scalar_one())


def status_counts(db: Any) -> dict[str, int]:
    """Number of rows per status (every status present, zero when none)."""
    t = outbox_table
    with _engine(db).connect() as conn:
        rows = conn.execute(select(t.c.status, func.count()).group_by(t.c.status)).all()
    out = dict.fromkeys(OUTBOX_STATUSES, 0)
    out.update({s: int(n) for s, n in rows})
    return out


def flight_state(row: Mapping[str, Any], now: datetime | None = None) -> str:
    """Where a row in ``sending`` stands (``""`` for other statuses).

    ``sending``: a relay is sending it now; ``claimed``: a relay claimed it and has not
    started the send yet; ``stalled, outcome unknown``: its lease ran out after the send
    started (it will be re-sent and flagged a possible duplicate); ``stalled, not sent``:
    its lease ran out before the send started (it will be sent).
    """
    if row["status"] != "sending":
        return ""
    expired = as_utc(row["next_attempt_at"]) <= (as_utc(now) or utcnow())  # type: ignore[operator]
    started = row.get("send_started_at") is not None
    if expired:
        return "stalled, outcome unknown" if started else "stalled, not sent"
    return "sending" if started else "claimed"


def list_outbox(db: Any, status: str | None = None, limit: int | None = None,
                invoice_id: str | None = None) -> list[dict[str, Any]]:
    """Outbox rows without their bodies, newest first, as plain dicts (``flight``: :func:`flight_state`)."""
    if status is not None and status not in OUTBOX_STATUSES:
        raise OutboxError(f"unknown outbox status {status!r} (one of {', '.join(OUTBOX_STATUSES)})")
    t = outbox_table
    cols = [c for c in t.c if c.name != "body"]
    q = select(*cols).order_by(t.c.id.desc())
    if status is not None:
        q = q.where(t.c.status == status)
    if invoice_id is not None:
        q = q.where(t.c.invoice_id == invoice_id)
    if limit is not None:
        q = q.limit(limit)
    with _engine(db).connect() as conn:
        rows = conn.execute(q).mappings().all()
    out = []
    now = utcnow()
    for r in rows:
        d = dict(r)
        for k in ("next_attempt_at", "last_attempt_at", "created_at", "delivered_at", "send_started_at"):
            d[k] = as_utc(d[k])
        d["possible_duplicate"] = bool(d["possible_duplicate"])
        d["flight"] = flight_state(d, now)
        out.append(d)
    return out


def retry_dead(db: Any, row_id: int, now: datetime | None = None) -> None:
    """Move a dead row back to pending (attempts reset) so the relay sends it again."""
    t = outbox_table
    with _write(db) as conn:
        row = conn.execute(select(t.c.status).where(t.c.id == row_id)).first()
        if row is None:
            raise OutboxError(f"no outbox row with id {row_id}")
        if row.status != "dead":
            raise OutboxError(f"outbox row {row_id} is {row.status}, only dead rows can be retried")
        conn.execute(update(t).where(t.c.id == row_id).values(
            status="pending", attempts=0, next_attempt_at=as_utc(now) or utcnow(), last_error=None,
            send_started_at=None,
        ))
