"""``kwhub verify``: walk the evidence and report every break with the document it concerns.

:func:`verify` is a plain function (the scheduler of issue 14 is meant to call it daily;
``kwhub verify`` is the command). It checks, on SQLite and PostgreSQL:

* **chain**: per seller, in number order, each document's text against its
  ``document_sha256``, its ``prev_chain_sha256`` against the previous document's chain hash,
  its ``chain_sha256`` against its fields (:mod:`kwhub.hub.settle.integrity`), and the ``invoice`` and
  ``invoice_line`` columns against the document;
* **numbering**: numbers 1..N without gaps per seller, and ``invoice_sequence`` handing
  out N+1 next (a forward jump or a rewind is a break; so is a sequence that gave out
  numbers whose documents are gone);
* **outbox**: every queued or delivered body against its hash, the rendering register
  and the issued document (:func:`kwhub.hub.settle.integrity.check_outgoing`), and every registered
  rendering against its invoice;
* **runs**: each run statement against its hash, the run's input digest against its
  ``run_input`` rows, the interval data those rows point to (a validated day must still
  hold the content the run read; a raw day must still exist), and the links between runs
  and invoices;
* **protection**: the immutability triggers are in place and enabled; on PostgreSQL a
  warning when the connected role owns the invoice tables, may TRUNCATE them, or is a
  superuser (any of which can switch the protection off);
* **anchor**: with a saved anchor (:func:`write_anchor`), each seller's head recorded
  then must still be in the chain with the same hash. An anchor kept outside the database
  catches what nothing inside it can: a consistent rewrite of a seller's newest documents,
  or tables emptied whole.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from sqlalchemy import select, text

from kwhub.core.settlement import InputRef, inputs_digest
from kwhub.hub.settle.integrity import (
    GENESIS,
    Outgoing,
    chain_sha256,
    check_outgoing,
    document_sha256,
)
from kwhub.hub.settle.runs_read import run_inputs
from kwhub.hub.store.outbox_tables import outbox_table
from kwhub.hub.store.settlement_tables import (
    document_rendering_table,
    invoice_line_table,
    invoice_sequence_table,
    invoice_table,
    settlement_run_table,
)
from kwhub.hub.store.tables import interval_day_table

BREAK = "break"
WARNING = "warning"
ANCHOR_VERSION = 1
_CHUNK = 200
_IN = 500

SQLITE_TRIGGERS = (
    "invoice_no_update", "invoice_no_delete", "invoice_no_replace",
    "invoice_line_no_update", "invoice_line_no_delete", "invoice_line_no_replace",
    "document_rendering_no_update", "document_rendering_no_delete", "document_rendering_no_replace",
)
PG_TRIGGERS = (
    ("invoice", "invoice_immutable"), ("invoice", "invoice_no_truncate"),
    ("invoice_line", "invoice_line_immutable"), ("invoice_line", "invoice_line_no_truncate"),
    ("document_rendering", "document_rendering_immutable"), ("document_rendering", "document_rendering_no_truncate"),
)
GUARDED_TABLES = ("invoice", "invoice_line", "document_rendering")


@dataclass(frozen=True)
class Finding:
    """One break (or warning): which check found it, what it concerns, what is wrong."""

    check: str
    subject: str
    problem: str
    severity: str = BREAK

    def as_dict(self) -> dict[str, str]:
        """The finding as plain data."""
        return {"check": self.check, "subject": self.subject, "problem": self.problem, "severity": self.severity}


@dataclass
class VerifyReport:
    """What :func:`verify` checked and found."""

    findings: list[Finding] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)
    heads: dict[str, dict[str, Any]] = field(default_factory=dict)  # seller -> number_seq, number, chain_sha256

    @property
    def breaks(self) -> list[Finding]:
        """Findings that are breaks of the evidence."""
        return [f for f in self.findings if f.severity == BREAK]

    @property
    def warnings(self) -> list[Finding]:
        """Findings that weaken the protection but break nothing yet."""
        return [f for f in self.findings if f.severity == WARNING]

    @property
    def ok(self) -> bool:
        """True when nothing is broken."""
        return not self.breaks

    def add(self, check: str, subject: str, problem: str, severity: str = BREAK) -> None:
        """Record one finding."""
        self.findings.append(Finding(check, subject, problem, severity))

    def as_dict(self) -> dict[str, Any]:
        """The report as plain JSON-able data."""
        return {"ok": self.ok, "checked": dict(self.checked), "heads": dict(self.heads),
                "breaks": [f.as_dict() for f in self.breaks], "warnings": [f.as_dict() for f in self.warnings]}


def verify(db: Any, *, anchor: Mapping[str, Any] | None = None) -> VerifyReport:
    """Walk chain, numbering, outbox, renderings, runs and protection of ``db`` (a
    :class:`kwhub.hub.store.Database`); with ``anchor`` (:func:`read_anchor`) check the heads it
    recorded too. Nothing is written."""
    report = VerifyReport()
    with db.read_connection() as conn:
        issued = _check_chain(conn, report)
        _check_numbering(conn, issued, report)
        _check_outbox(conn, report)
        _check_renderings(conn, report)
    _check_runs(db, report)
    _check_protection(db, report)
    if anchor is not None:
        _check_anchor(anchor, issued, report)
    return report


# --------------------------------------------------------------------------- chain


def _doc_label(row: Any) -> str:
    return f"invoice {row.number} ({row.id}, seller {row.seller} #{row.number_seq})"


def _check_chain(conn: Any, report: VerifyReport) -> dict[str, dict[int, tuple[str, str, str]]]:
    """Walk each seller's documents; returns ``{seller: {number_seq: (id, number, chain_sha256)}}``."""
    t = invoice_table
    issued: dict[str, dict[int, tuple[str, str, str]]] = {}
    lines = _lines_by_invoice(conn)
    prev_seller, prev_chain, prev_seq = None, GENESIS, 0
    n = 0
    # streamed: documents are read a few hundred at a time, not all at once
    for row in conn.execution_options(stream_results=True, yield_per=_CHUNK).execute(
            select(t).order_by(t.c.seller, t.c.number_seq)):
        n += 1
        if row.seller != prev_seller:
            prev_seller, prev_chain, prev_seq = row.seller, GENESIS, 0
        label = _doc_label(row)
        expected_prev = prev_chain if row.number_seq == prev_seq + 1 else None
        if not row.document_sha256 or not row.chain_sha256:
            report.add("chain", label, "has no document or chain hash")
        else:
            if document_sha256(row.document) != row.document_sha256:
                report.add("chain", label, "the stored document was changed after it was issued "
                                           "(it no longer matches its document_sha256)")
            if chain_sha256(row.seller, row.number_seq, row.id, row.document_sha256,
                            row.prev_chain_sha256 or "") != row.chain_sha256:
                report.add("chain", label, "its chain hash does not match its fields (number, id, hashes changed)")
            if expected_prev is not None and row.prev_chain_sha256 != expected_prev:
                what = "the seller's first document" if expected_prev == GENESIS else "the previous document"
                report.add("chain", label, f"link broken: it does not follow {what} (the one before it was "
                                           "changed or replaced, or this one was inserted out of order)")
        for problem in _row_vs_document(row, lines.get(row.id, [])):
            report.add("chain", label, problem)
        issued.setdefault(row.seller, {})[int(row.number_seq)] = (row.id, row.number, row.chain_sha256 or "")
        prev_chain, prev_seq = row.chain_sha256 or "", int(row.number_seq)
    report.checked["documents"] = n
    report.checked["sellers"] = len(issued)
    for seller, docs in issued.items():
        last = max(docs)
        report.heads[seller] = {"number_seq": last, "number": docs[last][1], "chain_sha256": docs[last][2]}
    return issued


def _lines_by_invoice(conn: Any) -> dict[str, list[Any]]:
    t = invoice_line_table
    out: dict[str, list[Any]] = {}
    for row in conn.execute(select(t.c.invoice_id, t.c.number, t.c.quantity, t.c.unit_price, t.c.amount)):
        out.setdefault(row.invoice_id, []).append(row)
    return out


def _dec(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def _row_vs_document(row: Any, lines: Sequence[Any]) -> list[str]:
    """Where the ``invoice`` columns or ``invoice_line`` rows differ from the stored document."""
    try:
        doc = json.loads(row.document)
    except ValueError:
        return ["the stored document is not valid JSON"]
    out = []
    pairs = (("id", row.id, doc.get("id")), ("number", row.number, doc.get("number")),
             ("seller", row.seller, (doc.get("seller") or {}).get("id")),
             ("buyer", row.buyer, (doc.get("buyer") or {}).get("id")), ("kind", row.kind, doc.get("kind")),
             ("currency", row.currency, doc.get("currency")))
    for name, column, in_doc in pairs:
        if column != in_doc:
            out.append(f"column {name} is {column!r}, the document says {in_doc!r}")
    for name in ("line_total", "tax_total", "total"):
        if _dec(getattr(row, name)) != _dec(doc.get(name)):
            out.append(f"column {name} is {getattr(row, name)}, the document says {doc.get(name)}")
    in_doc_lines = {int(ln["number"]): ln for ln in doc.get("lines", [])}
    stored = {int(ln.number): ln for ln in lines}
    if set(stored) != set(in_doc_lines):
        out.append(f"invoice_line rows {sorted(stored)} differ from the document's lines {sorted(in_doc_lines)}")
    for number in sorted(set(stored) & set(in_doc_lines)):
        for name in ("quantity", "unit_price", "amount"):
            if _dec(getattr(stored[number], name)) != _dec(in_doc_lines[number].get(name)):
                out.append(f"line {number} {name} is {getattr(stored[number], name)}, the document says "
                           f"{in_doc_lines[number].get(name)}")
    return out


# --------------------------------------------------------------------------- numbering


def _ranges(numbers: Iterable[int]) -> str:
    items = sorted(numbers)
    parts: list[str] = []
    start = prev = None
    for x in items:
        if start is None:
            start = prev = x
        elif x == prev + 1:  # type: ignore[operator]
            prev = x
        else:
            parts.append(f"{start}" if start == prev else f"{start}..{prev}")
            start = prev = x
    if start is not None:
        parts.append(f"{start}" if start == prev else f"{start}..{prev}")
    return ", ".join(parts)


def _check_numbering(conn: Any, issued: Mapping[str, Mapping[int, Any]], report: VerifyReport) -> None:
    t = invoice_sequence_table
    sequences = {seller: int(nxt) for seller, nxt in conn.execute(select(t.c.seller, t.c.next_number))}
    for seller in sorted(set(issued) | set(sequences)):
        docs = issued.get(seller, {})
        last = max(docs, default=0)
        subject = f"seller {seller}"
        missing = set(range(1, last + 1)) - set(docs)
        if missing:
            report.add("numbering", subject, f"numbers {_ranges(missing)} are missing below the last issued "
                                             f"number {last} (documents removed, or the sequence jumped)")
        nxt = sequences.get(seller)
        if nxt is None:
            report.add("numbering", subject, f"{last} documents are issued but invoice_sequence has no row for the "
                                             "seller (deleted?)")
        elif nxt > last + 1:
            if not docs:
                report.add("numbering", subject, f"invoice_sequence has given out numbers 1..{nxt - 1} but no "
                                                 "document of the seller exists (removed or emptied)")
            else:
                report.add("numbering", subject, f"invoice_sequence jumped: next number {nxt}, last issued {last}; "
                                                 f"numbers {last + 1}..{nxt - 1} would be skipped")
        elif nxt < last + 1:
            report.add("numbering", subject, f"invoice_sequence was rewound: next number {nxt}, but number {last} "
                                             "is issued")
    report.checked["sequences"] = len(sequences)


# --------------------------------------------------------------------------- outbox and renderings


def _check_outbox(conn: Any, report: VerifyReport) -> None:
    t = outbox_table
    ids = [r[0] for r in conn.execute(select(t.c.id).order_by(t.c.id))]
    for i in range(0, len(ids), _CHUNK):
        rows = conn.execute(select(t.c.id, t.c.invoice_id, t.c.invoice_version, t.c.format_id, t.c.transport_instance,
                                   t.c.status, t.c.body, t.c.body_sha256, t.c.document_sha256, t.c.idempotency_key,
                                   t.c.event_type)
                            .where(t.c.id.in_(ids[i:i + _CHUNK]))).all()
        bad = check_outgoing(conn, [Outgoing(r.id, r.invoice_id, r.format_id, bytes(r.body), r.body_sha256,
                                             r.document_sha256, event_id=r.idempotency_key if r.event_type else None)
                                    for r in rows])
        for r in rows:
            if r.id in bad:
                report.add("outbox", f"outbox row {r.id} ({r.invoice_id}:v{r.invoice_version}:{r.format_id} -> "
                                     f"{r.transport_instance}, {r.status})", bad[r.id])
    report.checked["outbox_rows"] = len(ids)


def _check_renderings(conn: Any, report: VerifyReport) -> None:
    rt, it = document_rendering_table, invoice_table
    issued = {inv_id: digest for inv_id, digest in conn.execute(select(it.c.id, it.c.document_sha256))}
    n = 0
    for inv_id, fmt, body_hash, doc_hash in conn.execute(
            select(rt.c.invoice_id, rt.c.format_id, rt.c.body_sha256, rt.c.document_sha256)):
        n += 1
        subject = f"{fmt} rendering {body_hash[:16]}... of invoice {inv_id}"
        if inv_id not in issued:
            report.add("outbox", subject, "its invoice is not in the invoice table (removed or emptied)")
        elif issued[inv_id] != doc_hash:
            report.add("outbox", subject, "it was rendered from another document than the one issued now")
    report.checked["renderings"] = n


# --------------------------------------------------------------------------- runs


def _check_runs(db: Any, report: VerifyReport) -> None:
    rt, it = settlement_run_table, invoice_table
    with db.read_connection() as conn:
        runs = conn.execute(select(rt.c.id, rt.c.status, rt.c.statement, rt.c.statement_hash, rt.c.invoice_id)).all()
        invoices = {inv_id: run_id for inv_id, run_id in conn.execute(select(it.c.id, it.c.run_id))}
    run_ids = {r.id for r in runs}
    for inv_id, run_id in sorted(invoices.items()):
        if run_id not in run_ids:
            report.add("runs", f"invoice {inv_id}", f"its settlement run {run_id} is gone")
    for r in runs:
        subject = f"run {r.id}"
        if hashlib.sha256(r.statement.encode("utf-8")).hexdigest() != r.statement_hash:
            report.add("runs", subject, "the statement was changed (it no longer matches statement_hash)")
        if r.status == "issued" and r.invoice_id and r.invoice_id not in invoices:
            report.add("runs", subject, f"its invoice {r.invoice_id} is not in the invoice table (removed or emptied)")
        try:
            recorded = json.loads(r.statement)["inputs"]
        except (ValueError, KeyError, TypeError):
            report.add("runs", subject, "the statement has no inputs record")
            continue
        refs = run_inputs(db, r.id)
        if len(refs) != int(recorded.get("count", -1)) or (refs and inputs_digest(refs) != recorded.get("digest")):
            report.add("runs", subject, f"its run_input rows ({len(refs)} channel-days) do not match the input digest "
                                        f"of its statement ({recorded.get('count')} channel-days)")
        for problem in _inputs_present(db, refs):
            report.add("runs", subject, problem)
    report.checked["runs"] = len(runs)


def _inputs_present(db: Any, refs: Sequence[InputRef]) -> list[str]:
    """Channel-days a run read that are gone (or, for validated days, changed in place)."""
    if not refs:
        return []
    t = interval_day_table
    channels = sorted({r.channel_id for r in refs})
    first, last = min(r.day for r in refs), max(r.day for r in refs)
    stored: dict[tuple[str, date, str, int], str] = {}
    with db.read_connection() as conn:
        for i in range(0, len(channels), _IN):
            q = select(t.c.channel_id, t.c.day, t.c.layer, t.c.version, t.c.content_hash).where(
                t.c.channel_id.in_(channels[i:i + _IN]), t.c.day >= first, t.c.day <= last)
            for ch, d, layer, version, digest in conn.execute(q):
                stored[(ch, d, layer, int(version))] = digest
    gone: list[InputRef] = []
    changed: list[InputRef] = []
    for r in refs:
        digest = stored.get((r.channel_id, r.day, r.layer, r.version))
        if digest is None:
            gone.append(r)
        elif r.layer != "raw" and digest != r.content_hash:  # raw days may have gaps filled in place
            changed.append(r)
    out = []
    for what, items in (("are gone from interval_day (deleted)", gone),
                        ("hold other content than the run read, under the same version (changed in place)", changed)):
        if items:
            shown = ", ".join(f"{r.channel_id} {r.day} {r.layer} v{r.version}" for r in items[:5])
            more = f" and {len(items) - 5} more" if len(items) > 5 else ""
            out.append(f"{len(items)} channel-days it read {what}: {shown}{more}")
    return out


# --------------------------------------------------------------------------- protection


def _check_protection(db: Any, report: VerifyReport) -> None:
    with db.engine.connect() as conn:
        if db.dialect == "sqlite":
            present = {name for (name,) in conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'"))}
            for name in SQLITE_TRIGGERS:
                if name not in present:
                    report.add("protection", f"trigger {name}", "is missing: the table it guarded can be changed")
            return
        if db.dialect != "postgresql":
            return
        rows = conn.execute(text(
            "SELECT c.relname, t.tgname, t.tgenabled FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT t.tgisinternal AND n.nspname = current_schema()"
        )).all()
        state = {(table, name): enabled for table, name, enabled in rows}
        for table, name in PG_TRIGGERS:
            if (table, name) not in state:
                report.add("protection", f"trigger {name} on {table}", "is missing: the table can be changed")
            elif state[(table, name)] == "D":
                report.add("protection", f"trigger {name} on {table}", "is disabled: the table can be changed")
        who = conn.execute(text("SELECT current_user, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)")
                           ).one()
        if who[1]:
            report.add("protection", f"role {who[0]}", "is a superuser: it can switch triggers off; connect kwhub "
                                                       "as an application role (see docs/data-model.md)", WARNING)
        for table in GUARDED_TABLES:
            owner, can_truncate = conn.execute(text(
                "SELECT tableowner = current_user, has_table_privilege(current_user, :t, 'TRUNCATE') "
                "FROM pg_tables WHERE schemaname = current_schema() AND tablename = :t"), {"t": table}).one()
            if owner:
                report.add("protection", f"table {table}", f"is owned by the connected role {who[0]}, which can "
                                                           "disable or drop its triggers", WARNING)
            elif can_truncate:
                report.add("protection", f"table {table}", f"role {who[0]} may TRUNCATE it", WARNING)


# --------------------------------------------------------------------------- anchor


def anchor_data(report: VerifyReport) -> dict[str, Any]:
    """The anchor to keep outside the database: each seller's head after this run."""
    return {"version": ANCHOR_VERSION, "heads": report.heads}


def write_anchor(path: str | Path, report: VerifyReport) -> None:
    """Save the heads of ``report`` to ``path`` (only call it for a report without breaks)."""
    from kwhub.hub.helpers.files import atomic_write

    atomic_write(Path(path), json.dumps(anchor_data(report), indent=2, sort_keys=True) + "\n", fsync=True)


def read_anchor(path: str | Path) -> dict[str, Any] | None:
    """The anchor saved at ``path`` (None when there is none yet); ValueError when unreadable."""
    p = Path(path)
    if not p.exists():
        return None
    try:
        data = json.loads(p.read_text())
        heads = data["heads"]
        if data.get("version") != ANCHOR_VERSION or not isinstance(heads, dict):
            raise ValueError("unknown anchor version")
        for head in heads.values():
            int(head["number_seq"])
            str(head["chain_sha256"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{p}: not a kwhub verify anchor ({exc})") from None
    return dict(data)


def _check_anchor(anchor: Mapping[str, Any], issued: Mapping[str, Mapping[int, tuple[str, str, str]]],
                  report: VerifyReport) -> None:
    for seller, head in sorted(anchor.get("heads", {}).items()):
        seq = int(head["number_seq"])
        subject = f"seller {seller} head {head.get('number', seq)} (anchored)"
        now = issued.get(seller, {}).get(seq)
        if now is None:
            report.add("anchor", subject, f"document #{seq} recorded in the anchor is no longer issued "
                                          "(removed, or the table was emptied)")
        elif now[2] != head["chain_sha256"]:
            report.add("anchor", subject, f"document #{seq} has another chain hash than when it was anchored: "
                                          "it or a document before it was rewritten")
