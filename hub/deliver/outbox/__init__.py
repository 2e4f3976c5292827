"""The transactional outbox: invoices reach each ERP at least once, and the ERP sees them once.

Two halves:

* :func:`enqueue_invoice` renders an *issued* invoice in every format its party receives,
  registers each rendered body (:func:`kwhub.hub.settle.integrity.register_rendering`) and writes one
  ``outbox`` row per (format, transport instance) on the caller's open connection or
  session, inside the caller's transaction (the one that inserts the invoice). It never
  commits: if the invoice insert rolls back, so do its outbox rows. :class:`OutboxBatch`
  does the same for many invoices in one transaction, rendering and validating them on a
  worker pool (e.g. processes) while the caller goes on issuing.
* The relay (:func:`relay_once`, :func:`run_relay`) picks due rows, checks each body
  against the issued document (:func:`kwhub.hub.settle.integrity.check_outgoing`; a mismatch is
  dead-lettered and logged as an alert, never sent), marks the attempt and commits
  *before* sending. Right before each send it records, and commits, that the send started
  (``send_started_at``), in the same transaction that records the outcome of the sending
  thread's previous send (these one-row commits do not each ask SQLite's WAL checkpointer
  for a checkpoint; each pass asks once); then it sends through the transport. A relay that dies leaves its claimed rows in ``sending``; once the lease
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

from kwhub.core.delivery_retry import RetryPolicy
from kwhub.hub.deliver.outbox.enqueue import (
    EnqueuedDocument,
    OutboxBatch,
    OutboxError,
    close_transports,
    document_filename,
    enqueue_invoice,
    redeliver,
    renderers_for_formats,
    transports_from_config,
)
from kwhub.hub.deliver.outbox.relay import CRASH_ENV, RelayReport, relay_once, run_relay
from kwhub.hub.deliver.outbox.status import (
    count_due,
    flight_state,
    list_outbox,
    retry_dead,
    status_counts,
)

__all__ = [
    "CRASH_ENV",
    "EnqueuedDocument",
    "OutboxBatch",
    "OutboxError",
    "RelayReport",
    "RetryPolicy",
    "close_transports",
    "count_due",
    "document_filename",
    "enqueue_invoice",
    "flight_state",
    "list_outbox",
    "redeliver",
    "relay_once",
    "renderers_for_formats",
    "retry_dead",
    "run_relay",
    "status_counts",
    "transports_from_config",
]
