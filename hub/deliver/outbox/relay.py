"""The relay: claim due rows, check each body against the issued document, send with a
deadline, record the outcome (see the package docstring for the guarantees).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, update

from kwhub.core.adapters import (
    AdapterError,
    DeliveryResult,
    FailureKind,
    OutgoingDocument,
)
from kwhub.core.delivery_retry import LEASE_USE, RetryPolicy
from kwhub.hub.deliver.outbox.connections import _checkpoint, _engine, _write
from kwhub.hub.deliver.outbox.enqueue import OutboxError
from kwhub.hub.settle.integrity import (
    Outgoing,
    check_outgoing,
)
from kwhub.hub.store.audit import record_audit
from kwhub.hub.store.outbox_tables import as_utc, outbox_table, utcnow

log = logging.getLogger("kwhub.outbox")

CRASH_ENV = "KWHUB_TEST_CRASH_AFTER_SEND"
RESPONSE_KEEP_DEAD = 64 * 1024
RESPONSE_KEEP_OK = 2 * 1024
WATCH_S = 0.25  # how often the relay looks at sends still running

# The per-send statements, built once; the new column values are bound at execution
# (``b_``-prefixed names are the guard's). A send marks its start and records its outcome
# in one small transaction, so building them per call was a large part of its cost.
_ot = outbox_table
_MARK_STARTED = update(_ot).where(_ot.c.id == bindparam("b_id"), _ot.c.status == "sending",
                                  _ot.c.attempts == bindparam("b_attempts"), _ot.c.send_started_at.is_(None))
# A late success still counts, unless another relay already recorded one.
_RECORD_OK = update(_ot).where(_ot.c.id == bindparam("b_id"), _ot.c.status.in_(("sending", "pending")))
_RECORD_FAILED = update(_ot).where(_ot.c.id == bindparam("b_id"), _ot.c.status == "sending",
                                   _ot.c.attempts == bindparam("b_attempts"))



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
        done: tuple[_Claim, DeliveryResult, Any, dict[str, Any]] | None = None
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
                stmt, params = _outcome(claim, result, pol, clock, rng, report)
            done = (claim, result, stmt, params)

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
    _checkpoint(db)
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
             rng: random.Random | None, report: RelayReport) -> tuple[Any, dict[str, Any]]:
    """The guarded row update that records the outcome of one send, and its parameters (the
    report is updated)."""
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
    if result.ok:
        return _RECORD_OK, {**values, "b_id": claim.id}
    return _RECORD_FAILED, {**values, "b_id": claim.id, "b_attempts": claim.attempts}


def _step(db: Any, done: tuple[_Claim, DeliveryResult, Any, dict[str, Any]] | None,
          start: _Claim | None, now: datetime) -> bool:
    """One write transaction: record the outcome of the send just ``done`` and mark the send of
    ``start`` as started. Returns False when ``start`` was lost (another relay has the row).

    A sending thread records one outcome and starts its next send in the same commit, so
    marking each send costs no extra transaction.
    """
    started = False
    with _write(db, checkpoint=False) as conn:  # one per send: the pass asks for a checkpoint at its end
        if done is not None:
            claim, result, stmt, params = done
            if conn.execute(stmt, params).rowcount != 1:
                log.warning("outbox row %s changed while attempt %d was in flight; its outcome (%s) was not recorded",
                            claim.id, claim.attempts, "ok" if result.ok else result.message)
        if start is not None:
            res = conn.execute(_MARK_STARTED, {"b_id": start.id, "b_attempts": start.attempts, "send_started_at": now})
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
