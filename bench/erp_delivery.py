"""ERP delivery throughput: issue + render + validate + enqueue invoices, then relay them over HTTP.

    python bench/erp_delivery.py [--invoices 1000] [--workers 2] [--concurrency 4] [--batch 100]
                                 [--per-transaction 100] [--url DB_URL]

Each invoice (8 lines) is issued as settlement issues a batch (``review.issue_drafts``):
``--per-transaction`` invoices (default 100) per transaction, their numbers taken in one
step, inserted with one executemany and hashed into the seller's chain, then queued by
issuing's own on-issue hook (:class:`kwhub.hub.settle.issuing.OutboxHook`, ``many``: one
:class:`kwhub.hub.deliver.outbox.OutboxBatch` per transaction). Each is rendered as UBL 2.1
(``kwhub.plugins.erp.ubl``, XSD + Peppol rules validated; JSON when the UBL renderer is not
installed), registered and queued in the outbox in the same transaction. With ``--workers
N`` (default 2) the renderings are made and validated by N worker processes, the issuing
process rendering the chunks no worker has started yet while it waits; ``--workers 0``
renders in the issuing process (the hook without an executor, as ``kwhub settle`` runs it).
Before each send the relay checks the body against the issued document and records that
the send started. The relay then delivers everything to a loopback ERP receiver in its own
process (dedupe mode, HMAC verified, JSON-lines record) through the signed webhook
transport, with ``--concurrency`` sends at a time. As a ceiling (the peer), the same bodies
are POSTed once more straight through one httpx client, without the outbox. Target: 200
invoices/s end to end.

Spans: *issue+render+validate+enqueue* runs from the first invoice number taken to the
commit of the last transaction (worker processes are started and have loaded the schemas
before it; building the Invoice objects and creating the database are outside it).
*relay* runs from the relay's start to the last outcome recorded (the receiver is started
before it). *end to end* is the two spans added: invoices issued to invoices delivered.
On a shared machine the spans move with the load, so the CPU milliseconds each process
spent per invoice (from /proc on Linux) and the load average are printed too. The last
line printed is JSON with the figures.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from decimal import Decimal
from pathlib import Path

import httpx

from kwhub.core.adapters import InvoiceRenderer
from kwhub.core.invoice import Address, Invoice, InvoiceLine, PartyRef, compute_totals
from kwhub.core.money import MoneyPolicy
from kwhub.core.render_context import RenderContext
from kwhub.hub.deliver.outbox import run_relay, status_counts
from kwhub.hub.demo.erp_receiver import ErpReceiver
from kwhub.hub.helpers.webhook_signature import sign_request
from kwhub.hub.settle.issue_write import insert_invoices, next_invoice_numbers
from kwhub.hub.settle.issuing import OutboxHook
from kwhub.hub.store import Database
from kwhub.plugins.erp.webhook import WebhookTransport, request_target

SECRET = "bench-secret"
POLICY = MoneyPolicy(currency="USD", rounding="half_up")


def make_invoice(i: int) -> Invoice:
    """An invoice from an IPP to a tenant with eight energy/demand/fee lines."""
    seller = PartyRef(id="ipp", name="Blue Ridge Power Partners LLC", tax_id="US-EIN 84-1234567",
                      address=Address(street="100 Turbine Way", city="Ashburn", postal_code="20147", region="VA"),
                      endpoint_id="0088:0614141000012", endpoint_scheme="0088")
    buyer = PartyRef(id=f"tenant_{i % 7}", name=f"Tenant {i % 7} Inc.", tax_id="US-EIN 27-7654321",
                     address=Address(street="1 Data Hall Road", city="Leesburg", postal_code="20175", region="VA"),
                     endpoint_id="0088:0614141000029", endpoint_scheme="0088")
    lines = []
    for n in range(1, 9):
        q = POLICY.quantity(Decimal(100_000 + 137 * i + n * 1000))
        p = POLICY.unit_price(Decimal("0.0612") + Decimal(n) / 1000)
        lines.append(InvoiceLine(number=n, description=f"Energy block {n}", charge_type="energy", quantity=q,
                                 unit="kWh", unit_price=p, amount=POLICY.amount(q * p), tax_percent=Decimal("6.25"),
                                 period_start=date(2024, 7, 1), period_end=date(2024, 7, 31)))
    inv = Invoice(id=f"bench-{i:06d}", number=f"INV-B-{i:06d}", seller=seller, buyer=buyer,
                  issue_date=date(2024, 8, 5), due_date=date(2024, 9, 4), period_start=date(2024, 7, 1),
                  period_end=date(2024, 7, 31), buyer_reference=f"PO-{i}", contract_id="ppa", lines=lines)
    return compute_totals(inv, POLICY)


def pick_renderer() -> tuple[InvoiceRenderer, str]:
    try:
        from kwhub.plugins.erp.ubl import UblRenderer

        renderer = UblRenderer("ubl")
        problems = renderer.validate(renderer.render(make_invoice(0)))
        if problems:
            raise RuntimeError("; ".join(problems[:3]))
        return renderer, "ubl"
    except Exception as exc:  # no UBL renderer or schemas here: fall back to JSON
        print(f"UBL renderer unavailable ({type(exc).__name__}: {exc}); rendering JSON")

        class JsonRenderer(InvoiceRenderer):
            type_id = "bench.json"
            format_id = "json"
            media_type = "application/json"
            file_extension = ".json"

            def render(self, invoice: Invoice, context: RenderContext | None = None) -> bytes:
                return invoice.model_dump_json().encode()

        return JsonRenderer("json"), "json"


def warm_worker(renderer: InvoiceRenderer) -> None:
    """Worker process start: load the renderer's schemas once, before the timed span."""
    renderer.validate(renderer.render(make_invoice(0)))


def start_workers(renderer: InvoiceRenderer, n: int) -> ProcessPoolExecutor | None:
    if n <= 0:
        return None
    pool = ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn"),
                               initializer=warm_worker, initargs=(renderer,))
    for f in [pool.submit(time.sleep, 0.2) for _ in range(n)]:  # every worker started and warm
        f.result()
    return pool


def cpu_s(pids: list[int]) -> float | None:
    """CPU seconds (user + system) used so far by processes ``pids`` (Linux /proc; None elsewhere)."""
    try:
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        return total / tick
    except (OSError, ValueError, IndexError):
        return None


def start_receiver(work: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The ERP receiver in its own process (as a real ERP would be; no shared GIL)."""
    url_file = work / f"receiver-{time.monotonic_ns()}.url"
    proc = subprocess.Popen([sys.executable, "-m", "kwhub.hub.demo.erp_receiver", "--record", str(work / "received.jsonl"),
                             "--secret", SECRET, "--url-file", str(url_file)], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not url_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the ERP receiver did not start")
        time.sleep(0.05)
    return proc, url_file.read_text()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--invoices", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2, help="render/validate processes (0: in the main process)")
    ap.add_argument("--concurrency", type=int, default=4, help="sends the relay has in flight")
    ap.add_argument("--batch", type=int, default=100, help="rows the relay claims per pass")
    ap.add_argument("--per-transaction", type=int, default=100, help="invoices issued per transaction")
    ap.add_argument("--url", default=None, help="database URL (default: a temporary SQLite file)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        db = Database.open(args.url or f"sqlite:///{work / 'bench.db'}")
        renderer, fmt = pick_renderer()
        invoices = [make_invoice(i) for i in range(1, args.invoices + 1)]
        pool = start_workers(renderer, args.workers)

        hook = OutboxHook({fmt: renderer}, {inv.buyer.id: [(fmt, "erp")] for inv in invoices}, ["erp"],
                          executor=pool)
        worker_pids = list(pool._processes) if pool is not None else []  # their CPU time, from /proc
        cpu0, wcpu0 = time.process_time(), cpu_s(worker_pids)
        t0 = time.perf_counter()
        for start in range(0, len(invoices), args.per_transaction):
            chunk = invoices[start:start + args.per_transaction]
            with db.write_transaction() as conn:  # as settlement issues a batch (review.issue_drafts)
                first = next_invoice_numbers(conn, db.dialect, "ipp", len(chunk))
                insert_invoices(conn, [(inv, first + n, "2024-07", None) for n, inv in enumerate(chunk)])
                hook.many(conn, chunk)
        render_s = time.perf_counter() - t0
        main_cpu, wcpu1 = time.process_time() - cpu0, cpu_s(worker_pids)
        workers_cpu = wcpu1 - wcpu0 if wcpu0 is not None and wcpu1 is not None else None
        if pool is not None:
            pool.shutdown()

        rx_proc, url = start_receiver(work)
        try:
            hook = WebhookTransport("erp", {"url": url, "secret": SECRET})
            cpu0, rcpu0 = time.process_time(), cpu_s([rx_proc.pid])
            t0 = time.perf_counter()
            report = run_relay(db, None, {"erp": hook}, once=True, limit=args.batch, concurrency=args.concurrency)
            deliver_s = time.perf_counter() - t0
            relay_cpu, rcpu1 = time.process_time() - cpu0, cpu_s([rx_proc.pid])
            receiver_cpu = rcpu1 - rcpu0 if rcpu0 is not None and rcpu1 is not None else None
            hook.close()

            # Ceiling: the same POSTs straight through one client, no outbox, no database.
            from sqlalchemy import select

            from kwhub.hub.store.outbox_tables import outbox_table as t
            with db.engine.connect() as conn:
                bodies = [bytes(b) for (b,) in conn.execute(select(t.c.body))]
            with httpx.Client() as client:
                t0 = time.perf_counter()
                target = request_target(url)
                for n, body in enumerate(bodies):
                    client.post(url, content=body, headers={
                        "Content-Type": "application/xml", "Idempotency-Key": f"raw-{n}",
                        "X-Kwhub-Signature": sign_request(SECRET, "POST", target, int(time.time()), f"raw-{n}", body)})
                raw_s = time.perf_counter() - t0
        finally:
            rx_proc.terminate()
            rx_proc.wait(10)
        imported = Counter(r["idempotency_key"] for r in ErpReceiver.read_records(work / "received.jsonl")
                           if r["accepted"] and not r["idempotency_key"].startswith("raw-"))

        counts = status_counts(db)
        db.close()
        assert report.delivered == args.invoices and counts["delivered"] == args.invoices, (report.as_dict(), counts)
        assert len(imported) == args.invoices and set(imported.values()) == {1}
        avg_kib = sum(len(b) for b in bodies) / len(bodies) / 1024
        print(f"format {fmt}, {avg_kib:.1f} KiB per document, database {db.dialect}")
        print(f"issue+render+validate+enqueue ({args.workers} render workers): {args.invoices} invoices in "
              f"{render_s:.2f} s ({args.invoices / render_s:.0f}/s)")
        print(f"outbox relay (concurrency {args.concurrency}): {report.delivered} delivered in {deliver_s:.2f} s "
              f"({report.delivered / deliver_s:.0f}/s)")
        print(f"end to end, issued to delivered: {report.delivered / (render_s + deliver_s):.0f}/s")

        def per_doc(cpu: float | None) -> str:
            return "?" if cpu is None else f"{cpu / args.invoices * 1000:.2f}"

        print(f"CPU ms per invoice: issuing process {per_doc(main_cpu)}, render workers {per_doc(workers_cpu)}; "
              f"relay process {per_doc(relay_cpu)}, receiver {per_doc(receiver_cpu)} (load average "
              f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs)")
        print(f"peer/ceiling, raw signed POSTs without the outbox: {len(bodies) / raw_s:.0f}/s")
        print(json.dumps({
            "render_per_s": round(args.invoices / render_s, 1),
            "delivered_per_s": round(report.delivered / deliver_s, 1),
            "end_to_end_per_s": round(report.delivered / (render_s + deliver_s), 1),
            "raw_post_per_s": round(len(bodies) / raw_s, 1),
            "cpu_ms_per_invoice": {k: None if v is None else round(v / args.invoices * 1000, 3) for k, v in (
                ("issuing", main_cpu), ("workers", workers_cpu), ("relay", relay_cpu), ("receiver", receiver_cpu))},
            "load_average": round(os.getloadavg()[0], 2),
            "format": fmt, "workers": args.workers, "concurrency": args.concurrency, "invoices": args.invoices,
        }))


if __name__ == "__main__":
    main()
