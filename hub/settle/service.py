"""Settlement runs against the store: load, allocate, price, issue, detect staleness.

:func:`settle` runs one version (``initial`` | ``final`` | ``true_up``) of one billing
period for some or all contracts. Per group of contracts sharing a time zone it reads
the period's dense matrix once (layer ``validated``; ``raw`` only for channel-days
without validated content and only when ``SettlementOptions.fallback_raw``), balances and
allocates the campus once, then prices each contract of the period; only then it opens
ONE write transaction for the period's runs (:mod:`kwhub.hub.settle.runs_write`): the
``settlement_run`` rows (the database refuses a duplicate (contract, period, version kind,
sequence), so a run another settle wrote meanwhile fails alone), the ``run_input`` rows
(channel-day versions and content hashes), the buyers' ``run_allocation`` rows. Drafts whose
checks pass are issued by policy afterwards (:mod:`kwhub.hub.settle.review`, numbering and
invoice rows in :mod:`kwhub.hub.settle.issue_write`, one transaction, so a failure gives the
numbers back and they have no gaps).

A later version bills only the difference to the previous version, as an adjustment
invoice or a credit note referencing the original invoice. A run is stale when any
channel-day it read has different content now, or when its market revenue credits rest on
ISO statements that a later version has replaced (:func:`stale_runs`).

Invoices are read back with :func:`list_invoices` / :func:`get_invoice`; nothing here
updates or deletes an invoice.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError

from kwhub.core.accounting import campus_accounts
from kwhub.core.allocation import AllocationResult, allocate
from kwhub.core.campus import Campus, Contract
from kwhub.core.contract_energy import EnergyPlan, EnergyPlanError, plan_energy
from kwhub.core.intervals import IntervalMatrix
from kwhub.core.invoice import Invoice, InvoiceLine
from kwhub.core.line_emissions import PeriodBasis, period_basis
from kwhub.core.money import money_str
from kwhub.core.pricing.base import PricingError
from kwhub.core.review import CheckResult, held_reasons
from kwhub.core.settlement import (
    BALANCE_ROLES,
    RunKey,
    SettlementError,
    SettlementOptions,
    build_statement,
    canonical_json,
    compute_run,
    contract_channels,
    credits_market_revenue,
    draft_document,
    draft_invoice,
    line_from_json,
    missing_report,
    needs_allocation,
    share_row_statistics,
    statement_hash,
)
from kwhub.core.timeline import billing_period
from kwhub.core.versions import VersionError, plan_version, rerun_decision
from kwhub.hub.esg.carbon_store import store_basis
from kwhub.hub.helpers.gc_pause import collector_paused

# The names this module held before it was split, for callers that import them from here
# (new code imports them from the module that holds them).
from kwhub.hub.settle.inputs import InputTable, LoadedSpan, PeriodData, PeriodInputs  # noqa: E402,F401
from kwhub.hub.settle.invoices_read import get_invoice, invoice_total, list_invoices  # noqa: E402,F401
from kwhub.hub.settle.issue_write import insert_invoice, next_invoice_number  # noqa: E402,F401
from kwhub.hub.settle.loading import SpanReader, load_period, load_span, period_chunks, reads_ahead  # noqa: E402,F401
from kwhub.hub.settle.parallel import parallel_plan, run_parts  # noqa: E402
from kwhub.hub.settle.run_checks import (
    PeriodFacts,
    checks_of,
    latest_settled,
    prefetch_previous_facts,
    review_policy,
    review_run,
)
from kwhub.hub.settle.runs_read import (  # noqa: E402,F401
    demand_history,
    existing_runs,
    existing_runs_of,
    get_run,
    refresh_stale,
    run_allocation,
    run_changed,
    run_inputs,
    stale_flags,
    stale_runs,
)
from kwhub.hub.settle.runs_write import (
    RunWrite,
    allocation_rows,
    carbon_row,
    is_run_conflict,
    write_runs,
)
from kwhub.hub.store import Database

RUN_STATUSES = ("draft", "held", "issued", "no_change", "rejected", "superseded")


@dataclass
class RunOutcome:
    """What happened to one contract in a :func:`settle` call.

    ``status``: ``draft`` (checks passed, awaiting approval), ``held`` (a check failed;
    ``checks`` says which), ``issued`` (approved, by policy or a person), ``no_change``
    (a later version with nothing to correct), ``unchanged`` (this version was settled
    before on the same data: nothing written), ``error`` (nothing written for it).
    With ``dry_run`` nothing was written at all.
    """

    contract_id: str
    period: str
    version_kind: str
    seq: int = 0
    run_id: str = ""
    status: str = "error"
    invoice: Invoice | None = None
    statement_hash: str = ""
    imbalance_intervals: int = 0
    error: str = ""
    checks: list[CheckResult] = field(default_factory=list)
    draft: Invoice | None = None
    accounts: list[dict[str, Any]] = field(default_factory=list)
    missing_intervals: int = 0
    dry_run: bool = False
    note: str = ""

    @property
    def held_reasons(self) -> list[str]:
        return held_reasons(self.checks)

    def as_dict(self) -> dict[str, Any]:
        inv = self.invoice
        doc = inv or self.draft
        return {
            "contract": self.contract_id, "period": self.period, "version": self.version_kind, "seq": self.seq,
            "run_id": self.run_id, "status": self.status, "statement_hash": self.statement_hash,
            "invoice": None if inv is None else {"id": inv.id, "number": inv.number, "kind": inv.kind,
                                                  "total": money_str(inv.total), "currency": inv.currency},
            "document": None if doc is None else {"kind": doc.kind, "total": money_str(doc.total),
                                                   "currency": doc.currency, "lines": len(doc.lines)},
            "checks": [c.as_json() for c in self.checks], "held_reasons": self.held_reasons,
            "missing_intervals_zeroed": self.missing_intervals,
            "imbalance_intervals": self.imbalance_intervals, "error": self.error or None, "dry_run": self.dry_run,
            "note": self.note or None,
        }


def settle_contract(
    db: Database,
    campus: Campus,
    contract: Contract,
    data: PeriodData,
    allocation: AllocationResult | None,
    version: str,
    options: SettlementOptions,
    *,
    issue_date: date | None = None,
    components: Any | None = None,
    conn: Any | None = None,
    on_issue: Callable[[Any, Invoice], None] | None = None,
    runs: list[dict[str, Any]] | None = None,
    channels: Sequence[str] | None = None,
    plan: EnergyPlan | None = None,
    campus_section: dict[str, Any] | None = None,
    now: datetime | None = None,
    dry_run: bool = False,
    facts: dict[tuple[str, str], PeriodFacts | None] | None = None,
    carbon: PeriodBasis | None = None,
    pending: list[RunWrite] | None = None,
    memo: dict[Any, Any] | None = None,
) -> RunOutcome:
    """Price one contract from loaded data and record its run as a draft (see module docs).

    The run's document is a draft until the run is approved (:mod:`kwhub.hub.settle.review`): the
    plausibility checks (:mod:`kwhub.core.review`) decide whether it waits as ``draft`` or is
    ``held`` with reasons. Settling a version again on the same data changes nothing
    (``unchanged``); a pending draft on other data is superseded by a new run; an issued
    run on other data is refused (settle the next version). With ``conn`` (a connection
    inside a write transaction) the run is written in a savepoint of it; ``dry_run``
    writes nothing. ``on_issue`` is unused here (documents are issued on approval) and
    kept for callers that pass it through. ``carbon``: the period's carbon basis
    (:func:`kwhub.core.line_emissions.period_basis`), stored by the caller; the energy lines carry
    their emissions from it. ``pending``: the run's rows are appended to it instead of
    written, for the caller to write with the others of its batch in its own write
    transaction (:func:`~kwhub.hub.settle.runs_write.write_runs`). ``memo``: what the runs of one
    settle share (:func:`~kwhub.core.settlement.compute_run`).
    """
    period = data.period
    plan = plan or _plan(campus, components)
    if runs is None:
        runs = existing_runs(db, contract.id, period.label)
    if channels is None:
        channels = contract_channels(campus, contract, plan)
    where = f"contract {contract.id!r} period {period.label}"
    try:
        vplan = plan_version(runs, version, where)
    except VersionError as exc:
        raise SettlementError(str(exc)) from None
    prev = vplan.base
    comp = compute_run(campus, contract, period, data.matrix, allocation, options,
                       demand_history(db, contract, period.label), components, channels=channels, plan=plan,
                       campus_section=campus_section, carbon=carbon, memo=memo)
    summary, used = data.inputs.summary(channels)
    pol = comp.context.money
    old = [line_from_json(x) for x in get_run(db, prev["id"])["statement_json"]["lines"]] if prev else None
    doc = draft_document(comp.lines, old, pol)
    prev_id = prev["id"] if prev else None
    plain = _float_free(comp.lines, doc.lines)
    same = vplan.same
    probe_hash = None
    if same is not None:
        probe = build_statement(RunKey(contract.id, period.label, version, same["seq"]), comp, summary, options.layer,
                                doc, prev_id, missing_policy=options.missing)
        probe_hash = statement_hash(canonical_json(probe, float_free=plain))
    try:
        decision = rerun_decision(vplan, probe_hash, doc.kind is not None, where)
    except VersionError as exc:
        raise SettlementError(str(exc)) from None
    if decision == "unchanged":
        assert same is not None
        if same["status"] == "draft":  # computed before and still waiting: the policy may issue it now
            row = get_run(db, same["id"])
            return RunOutcome(contract.id, period.label, version, same["seq"], same["id"], status="draft",
                              statement_hash=same["statement_hash"], checks=checks_of(row),
                              draft=Invoice.model_validate_json(row["draft"]) if row.get("draft") else None,
                              accounts=row["statement_json"].get("accounting", []), dry_run=dry_run,
                              note="computed before on the same data; still awaiting approval")
        return RunOutcome(contract.id, period.label, version, same["seq"], same["id"], status="unchanged",
                          statement_hash=same["statement_hash"],
                          note=f"{same['status']} before on the same data; nothing to do")
    seq = vplan.next_seq
    supersede = same["id"] if decision == "supersede" and same is not None else None
    key = RunKey(contract.id, period.label, version, seq)
    statement = build_statement(key, comp, summary, options.layer, doc, prev_id, missing_policy=options.missing)
    body = canonical_json(statement, float_free=plain)
    digest = statement_hash(body)
    checks = review_run(db, contract, comp, options, now, facts,
                     PeriodFacts.of(get_run(db, prev["id"])["statement_json"]) if prev and prev["status"] else None,
                     settled=latest_settled(db, runs))
    status = "no_change" if doc.kind is None else ("held" if held_reasons(checks) else "draft")
    draft = draft_invoice(campus, key, contract, period, doc, issue_date or date.today()) if doc.kind else None
    outcome = RunOutcome(contract.id, period.label, version, seq, key.run_id, status=status, statement_hash=digest,
                         imbalance_intervals=int(comp.allocation.get("imbalance_intervals", 0)), checks=checks,
                         draft=draft, accounts=statement["accounting"], missing_intervals=comp.missing_intervals,
                         dry_run=dry_run)
    if supersede:
        outcome.note = f"supersedes {supersede} (its data changed)"
    if facts is not None:
        facts[(contract.id, period.label)] = PeriodFacts.of(statement)
    if dry_run:
        return outcome
    input_rows = [row for ch in used for row in data.inputs.rows(ch)]
    work = RunWrite(
        key=key, where=where, supersede=supersede, input_rows=input_rows,
        run=dict(id=key.run_id, contract_id=contract.id, period=period.label, version_kind=version, seq=seq,
                 status=status, layer=options.layer, statement=body.decode("utf-8"), statement_hash=digest,
                 invoice_id=None, created_at=datetime.now(UTC), stale=False,
                 draft=draft.model_dump_json() if draft is not None else None,
                 checks=json.dumps([c.as_json() for c in checks])),
        allocation=allocation_rows(key, allocation, contract.buyer) if needs_allocation(plan, contract) else [],
        carbon=carbon_row(key, campus, contract, comp) if comp.carbon is not None else None,
    )
    if pending is not None:
        pending.append(work)
        return outcome
    try:
        if conn is None:
            with db.write_transaction() as own:
                work.write(own, db.dialect)
        else:
            with conn.begin_nested():
                work.write(conn, db.dialect)
    except IntegrityError as exc:
        if is_run_conflict(db, key):
            raise work.conflict() from exc
        raise
    return outcome


def _float_free(lines: Sequence[InvoiceLine], document: Sequence[InvoiceLine]) -> tuple[str, ...]:
    """The sections of a run statement that hold no float by construction, which
    :func:`~kwhub.core.settlement.canonical_json` need not look through: ``channels``
    (``ChannelStats.as_json``: ints and strings), ``inputs`` (counts and strings), and ``lines``
    and ``document`` (lines and taxes as pydantic writes them, Decimals as strings) unless a line
    carries emissions."""
    if any(ln.emissions is not None for ln in lines) or any(ln.emissions is not None for ln in document):
        return ("channels", "inputs")
    return ("channels", "inputs", "lines", "document")


def _plan(campus: Campus, components: Any | None) -> EnergyPlan:
    try:
        return plan_energy(campus, components)
    except EnergyPlanError as exc:
        raise SettlementError(str(exc)) from None


def settle(
    db: Database,
    campus: Campus,
    period: str,
    *,
    contracts: Iterable[str] | None = None,
    version: str = "initial",
    options: SettlementOptions | None = None,
    issue_date: date | None = None,
    components: Any | None = None,
    progress: Callable[[str], None] | None = None,
    max_channels: int = 2000,
    on_issue: Callable[[Any, Invoice], None] | None = None,
    now: datetime | None = None,
    dry_run: bool = False,
    actor: str = "policy:auto",
    issue: bool = True,
    jobs: int = 1,
) -> list[RunOutcome]:
    """Settle ``period`` (``YYYY-MM``, local month of each contract) for the chosen contracts.

    Returns one :class:`RunOutcome` per contract; a contract that fails (missing data, a
    pricing error, a run awaiting review) is reported with ``status == "error"`` and the
    others still compute. See :func:`settle_periods` for the review gate and ``jobs``.
    """
    return settle_periods(db, campus, [period], contracts=contracts, version=version, options=options,
                          issue_date=issue_date, components=components, progress=progress,
                          max_channels=max_channels, on_issue=on_issue, now=now, dry_run=dry_run, actor=actor,
                          issue=issue, jobs=jobs)


def settle_periods(
    db: Database,
    campus: Campus,
    periods: Sequence[str],
    *,
    contracts: Iterable[str] | None = None,
    version: str = "initial",
    options: SettlementOptions | None = None,
    issue_date: date | None = None,
    components: Any | None = None,
    progress: Callable[[str], None] | None = None,
    max_channels: int = 2000,
    max_cells: int = 12_000_000,
    on_issue: Callable[[Any, Invoice], None] | None = None,
    now: datetime | None = None,
    dry_run: bool = False,
    actor: str = "policy:auto",
    read_ahead: bool | None = None,
    issue: bool = True,
    jobs: int = 1,
) -> list[RunOutcome]:
    """Settle several billing periods; the same runs as :func:`settle` for each period in turn.

    Every run is first written as a draft (or ``held`` by a failed check). Then, when
    every contract of the call settled without error, the drafts of contracts whose review
    policy is ``auto`` are approved and issued (``on_issue(conn, invoice)`` queues each
    for delivery in the same transaction); when any contract failed, nothing is issued
    and the drafts wait. ``dry_run`` computes and checks everything and writes nothing.

    Consecutive periods are read from the store together (one read per batch of
    contracts over up to ``max_cells`` channel-intervals, twice as many when the reads come
    in turn: never more than two reads' worth in memory either way; at most
    ``PART_READ_CELLS`` in a part of a ``jobs`` settle) and sliced per period in memory.
    With ``read_ahead`` the next read runs on a second thread while the runs of the one
    before are priced and written (the database driver lets go of the interpreter while it
    waits, so the two overlap; two reads' worth of memory at most). What every run of a period
    looks up is prepared once per period, on that thread too: the per-row statistics of the
    matrix, the channel digests and ``run_input`` rows, the local calendar
    (:meth:`~kwhub.hub.settle.inputs.LoadedSpan.prepare`). ``read_ahead`` None: where it pays on
    this store (:func:`~kwhub.hub.settle.loading.reads_ahead`: PostgreSQL, not SQLite). Each
    contract's terms versions and components are built once for all the periods of the call.
    Each period of a batch is written in one transaction. Outcomes come by period, then
    by contract. ``issue`` False leaves every draft as a draft: the caller issues them with
    :func:`issue_outcomes` (a portfolio run issues each campus' drafts once all its contracts
    have settled, in the same order as one call would).
    ``jobs`` above one settles the contracts in that many processes where it is safe and pays
    (:mod:`kwhub.hub.settle.parallel`: a database file or server other processes can open, and
    enough channel-intervals): each part is settled by the same code in a forked process and the
    drafts are issued here afterwards in the serial order, so the runs, invoices and outbox rows
    equal a one-process settle's. Only call it with ``jobs`` above one from a process that may
    fork (the CLI, a script), not from a server's request thread.
    The cyclic garbage collector is held back while the call runs
    (:func:`~kwhub.hub.helpers.gc_pause.collector_paused`).
    """
    with collector_paused():
        return _settle_periods(db, campus, periods, contracts=contracts, version=version, options=options,
                               issue_date=issue_date, components=components, progress=progress,
                               max_channels=max_channels, max_cells=max_cells, on_issue=on_issue, now=now,
                               dry_run=dry_run, actor=actor, read_ahead=read_ahead, issue=issue, jobs=jobs)


def _settle_periods(db: Database, campus: Campus, periods: Sequence[str], *, contracts: Iterable[str] | None,
                    version: str, options: SettlementOptions | None, issue_date: date | None,
                    components: Any | None, progress: Callable[[str], None] | None, max_channels: int,
                    max_cells: int, on_issue: Callable[[Any, Invoice], None] | None, now: datetime | None,
                    dry_run: bool, actor: str, read_ahead: bool | None, issue: bool, jobs: int) -> list[RunOutcome]:
    options = options or SettlementOptions()
    if components is None:
        from kwhub.hub.registry import get_registry

        components = get_registry()
    chosen = list(campus.contracts)
    if contracts is not None:
        wanted = list(contracts)
        known = {c.id for c in chosen}
        bad = [c for c in wanted if c not in known]
        if bad:
            raise SettlementError(f"unknown contract(s) {', '.join(bad)} (known: {', '.join(sorted(known)) or 'none'})")
        chosen = [c for c in chosen if c.id in wanted]
    plan = _plan(campus, components)
    labels = list(periods)
    work = _Work(campus, labels, version, options, components, plan, max_channels, max_cells, issue_date, now,
                 dry_run, read_ahead)
    batches = _batches(campus, chosen, max_channels, plan)
    order = {c.id: i for i, c in enumerate(chosen)}
    rank = {label: i for i, label in reversed(list(enumerate(labels)))}
    parts = parallel_plan(db, jobs, [(c.id, len(work.channels_of(c))) for c in chosen],
                          _cells(campus, batches, labels, work)) if jobs > 1 else None
    if parts is None:
        outcomes = work.run(db, batches, progress)
    else:
        by_id = {c.id: c for c in chosen}

        def run_part(part_db: Database, ids: list[str], part_progress: Callable[[str], None] | None) -> list[RunOutcome]:
            with collector_paused():
                mine = [by_id[i] for i in ids]
                return work.run(part_db, _batches(campus, mine, max_channels, plan), part_progress,
                                read_cells=PART_READ_CELLS)

        # the outcomes in the order one process would have produced them (issuing numbers in this order)
        batch_of = {c.id: i for i, (_, group) in enumerate(batches) for c in group}
        outcomes = sorted(run_parts(db, parts, run_part, progress),
                          key=lambda o: (batch_of[o.contract_id], rank.get(o.period, 0), order[o.contract_id]))
    if not dry_run and issue:
        _auto_approve(db, campus, outcomes, options, issue_date=issue_date, on_issue=on_issue, actor=actor)
    return sorted(outcomes, key=lambda o: (rank.get(o.period, 0), order[o.contract_id]))


#: channel-intervals per read in a part settled beside other processes (``jobs`` above one):
#: fewer than one process reads at once. On the campus-year bench (bench/settle_campus_year.py,
#: 2 cores, two parts of 500 channels, the DuckDB and polars peers run between the settles),
#: reads of up to 8M cells (five months, then seven) took 0.71-0.98 s (two runs of three)
#: against 0.74-1.25 s (three runs of three) for one read of the year in each part, most of
#: the difference system time (two processes each faulting in a fresh 140 MB matrix at once);
#: at 40 tenants (parts of 1,000 channels) 1.49-1.60 s against 1.62-1.87 s. One process alone
#: was faster with its larger reads (1.28-1.31 s against 1.41-1.51 s with reads of 4M cells:
#: each read costs per channel), so those stay its default.
PART_READ_CELLS = 8_000_000


def _cells(campus: Campus, batches: list[tuple[str, list[Contract]]], labels: list[str], work: _Work) -> int:
    """Channel-intervals a settle of ``batches`` reads (at each batch's finest interval length)."""
    total = 0
    for tz, group in batches:
        channels, finest = work.batch_channels(group)
        total += len(channels) * sum(billing_period(label, tz).span.n_intervals(finest) for label in labels)
    return total


@dataclass
class _Work:
    """What every batch of one ``settle_periods`` call shares; :meth:`run` settles some batches."""

    campus: Campus
    labels: list[str]
    version: str
    options: SettlementOptions
    components: Any
    plan: EnergyPlan
    max_channels: int
    max_cells: int
    issue_date: date | None
    now: datetime | None
    dry_run: bool
    read_ahead: bool | None
    _chans: dict[str, list[str]] = field(default_factory=dict)

    def channels_of(self, contract: Contract) -> list[str]:
        if contract.id not in self._chans:
            self._chans[contract.id] = contract_channels(self.campus, contract, self.plan)
        return self._chans[contract.id]

    def batch_channels(self, group: Sequence[Contract]) -> tuple[list[str], int]:
        """The channels a batch reads (its contracts', plus the balance channels and plant fuel
        when one needs the allocation) and their finest interval length."""
        campus, options = self.campus, self.options
        channels: list[str] = []
        for c in group:
            channels += self.channels_of(c)
        if any(needs_allocation(self.plan, c) for c in group):
            channels += [c.id for c in campus.channels if c.role in BALANCE_ROLES]
            if options.carbon is not None:  # the fuel the plants burned, for the emissions on the lines
                channels += [c.id for c in campus.channels if c.role == "fuel" and c.asset]
        channels = list(dict.fromkeys(channels))
        by_id = {c.id: c for c in campus.channels}
        return channels, min((by_id[c].interval_minutes for c in channels if c in by_id), default=60)

    def run(self, db: Database, batches: list[tuple[str, list[Contract]]],
            progress: Callable[[str], None] | None, read_cells: int | None = None) -> list[RunOutcome]:
        """Read, price and write the runs of ``batches`` (drafts; nothing issued), in batch, period,
        contract order. ``read_cells``: at most this many channel-intervals per read (fewer
        when ``max_cells`` says so)."""
        ahead = reads_ahead(db) if self.read_ahead is None else self.read_ahead
        campus, options, plan = self.campus, self.options, self.plan
        outcomes: list[RunOutcome] = []
        facts: dict[tuple[str, str], PeriodFacts | None] = {}
        memo: dict[Any, Any] = {}  # each contract's terms versions and components, built once for all periods
        chans_of = {c.id: self.channels_of(c) for _, group in batches for c in group}
        for tz, group in batches:
            channels, finest = self.batch_channels(group)
            alloc_needed = any(needs_allocation(plan, c) for c in group)
            pers = [billing_period(label, tz) for label in self.labels]
            # reading ahead holds two reads at once; in turn, one read of both sizes (fewer reads:
            # each costs per channel, in SQLite and in the copy into the matrix)
            limit = self.max_cells if ahead else 2 * self.max_cells
            chunks = period_chunks(pers, len(channels), finest, limit if read_cells is None else min(limit, read_cells))
            with SpanReader(db, campus, channels, options, chunks, ahead, timezone=tz) as reader:
                for chunk in chunks:
                    try:
                        loaded = reader.next()
                    except (SettlementError, PricingError, ValueError) as exc:
                        outcomes += [RunOutcome(c.id, p.label, self.version, error=str(exc))
                                     for p in chunk for c in group]
                        continue
                    for per in chunk:
                        outcomes += _settle_batch(db, campus, group, loaded.period(per), self.version, options,
                                                  alloc_needed, chans_of, issue_date=self.issue_date,
                                                  components=self.components, progress=progress, plan=plan,
                                                  now=self.now, dry_run=self.dry_run, facts=facts, memo=memo)
                    del loaded
        return outcomes


def issue_outcomes(db: Database, campus: Campus, outcomes: list[RunOutcome], options: SettlementOptions, *,
                   issue_date: date | None = None, on_issue: Callable[[Any, Invoice], None] | None = None,
                   actor: str = "policy:auto") -> None:
    """Issue the drafts of ``outcomes`` (settled with ``issue=False``) exactly as :func:`settle_periods`
    would have: by policy, in the given order, and nothing when any of them failed."""
    _auto_approve(db, campus, outcomes, options, issue_date=issue_date, on_issue=on_issue, actor=actor)


def _auto_approve(db: Database, campus: Campus, outcomes: list[RunOutcome], options: SettlementOptions, *,
                  issue_date: date | None, on_issue: Callable[[Any, Invoice], None] | None, actor: str) -> None:
    """Issue the drafts whose contract's policy is ``auto``, unless any contract of the call failed."""
    from kwhub.hub.settle.review import DraftToIssue, issue_drafts

    failed = [o for o in outcomes if o.status == "error"]
    drafts = [o for o in outcomes if o.status == "draft"]
    if failed:
        names = ", ".join(sorted({o.contract_id for o in failed}))
        for o in drafts:
            o.note = f"left as a draft: {names} failed in this settle, so nothing was issued"
        return
    contracts = {c.id: c for c in campus.contracts}
    eligible = [o for o in drafts if review_policy(contracts[o.contract_id], options) == "auto"]
    chosen = {id(o) for o in eligible}  # by identity: `in` on the list compared whole outcomes, n^2 times
    for o in drafts:
        if id(o) not in chosen:
            o.note = "awaiting approval (review policy manual)"
    if not eligible:
        return
    items = [DraftToIssue(o.run_id, o.contract_id, o.period, o.version_kind, o.draft) for o in eligible
             if o.draft is not None]
    results = issue_drafts(db, items, actor=actor, reason="every check passed", issue_date=issue_date,
                           on_issue=on_issue)
    for o in eligible:
        res = results[o.run_id]
        if res.invoice is not None:
            o.status, o.invoice = "issued", res.invoice
        else:  # the run stays a draft; the command failed to issue it
            o.status, o.error = "error", f"{o.run_id} was computed but not issued: {res.error}"


def _settle_batch(db: Database, campus: Campus, group: Sequence[Contract], data: PeriodData, version: str,
                  options: SettlementOptions, alloc_needed: bool, chans_of: dict[str, list[str]], *,
                  issue_date: date | None, components: Any, progress: Callable[[str], None] | None,
                  plan: EnergyPlan, now: datetime | None, dry_run: bool,
                  facts: dict[tuple[str, str], PeriodFacts | None],
                  memo: dict[Any, Any] | None = None) -> list[RunOutcome]:
    """Allocate (when needed), price and write the runs of ``group`` for one period, in one transaction.

    The runs are computed before the write transaction begins, so that the write lock (on
    PostgreSQL one for the whole database) is held only while they are written: other
    settles, a portfolio's other workers and ingests are not kept waiting while these runs
    are priced. A run another settle wrote meanwhile is refused by the database
    (:func:`~kwhub.hub.settle.runs_write.write_runs`).
    """
    label = data.period.label
    allocation, alloc_error, section, carbon = None, "", None, None
    if alloc_needed:
        try:
            allocation = _allocate(data, campus, options)
            section = campus_accounts(plan, allocation)
            if options.carbon is not None:
                carbon = period_basis(data.matrix, campus, allocation, options.carbon, data.period.first_day)
        except (SettlementError, ValueError) as exc:
            alloc_error = str(exc)
    if len(group) > 1:  # the runs pick their channels' statistics from one pass over the matrix
        share_row_statistics(data.matrix)
    outcomes: list[RunOutcome] = []
    options, market_error = _with_market_revenue(db, group, label, options)
    with db.read_connection() as rconn:
        runs = existing_runs_of(rconn, [c.id for c in group], label)
    prefetch_previous_facts(db, [c.id for c in group], label, facts)
    pending: list[RunWrite] = []
    for c in group:
        if progress:
            progress(c.id)
        if alloc_error and needs_allocation(plan, c):
            outcomes.append(RunOutcome(c.id, label, version, error=alloc_error))
            continue
        if market_error and credits_market_revenue(c):
            outcomes.append(RunOutcome(c.id, label, version, error=f"contract {c.id!r} period {label}: "
                                                                     f"{market_error}"))
            continue
        try:
            outcomes.append(settle_contract(db, campus, c, data, allocation, version, options,
                                            issue_date=issue_date, components=components,
                                            runs=runs.get(c.id, []), channels=chans_of.get(c.id), plan=plan,
                                            campus_section=section, now=now, dry_run=dry_run, facts=facts,
                                            carbon=carbon, pending=pending, memo=memo))
        except (SettlementError, PricingError, ValueError, ArithmeticError) as exc:
            outcomes.append(RunOutcome(c.id, label, version, error=str(exc)))
    refused: dict[str, Any] = {}
    if not dry_run:
        with db.write_transaction() as conn:
            if carbon is not None:
                store_basis(conn, carbon)
            refused = write_runs(db, conn, pending)
    if refused:
        outcomes = [RunOutcome(o.contract_id, label, version, error=str(refused[o.run_id]))
                    if o.run_id in refused else o for o in outcomes]
    return outcomes


def _with_market_revenue(db: Database, group: Sequence[Contract], period: str,
                         options: SettlementOptions) -> tuple[SettlementOptions, str]:
    """``options`` with the period's ISO market revenue when a contract of ``group`` credits it
    (``market_revenue_credit``), and the error that prevented loading it ("" when none)."""
    if not any(credits_market_revenue(c) for c in group):
        return options, ""
    if options.market_revenue_loader is None:
        return options, ("a market_revenue_credit component needs the ISO market revenue, but no "
                         "[[markets.resources]] are configured in kwhub.toml")
    try:
        return replace(options, market_revenue=options.market_revenue_loader(db, period)), ""
    except (ValueError, KeyError) as exc:
        return options, f"cannot load the market revenue of {period}: {exc}"


def _batches(campus: Campus, contracts: Sequence[Contract], max_channels: int,
             plan: EnergyPlan) -> list[tuple[str, list[Contract]]]:
    """Contracts grouped by time zone; the allocation-dependent ones together, the rest by channel count."""
    out: list[tuple[str, list[Contract]]] = []
    by_tz: dict[str, list[Contract]] = {}
    for c in contracts:
        by_tz.setdefault(c.timezone, []).append(c)
    for tz, group in by_tz.items():
        coupled = [c for c in group if needs_allocation(plan, c)]
        if coupled:
            out.append((tz, coupled))
        batch: list[Contract] = []
        size = 0
        for c in (c for c in group if not needs_allocation(plan, c)):
            n = len(contract_channels(campus, c, plan))
            if batch and size + n > max_channels:
                out.append((tz, batch))
                batch, size = [], 0
            batch.append(c)
            size += n
        if batch:
            out.append((tz, batch))
    order = {c.id: i for i, c in enumerate(contracts)}
    return sorted(out, key=lambda item: min(order[c.id] for c in item[1]))


def _allocate(data: PeriodData, campus: Campus, options: SettlementOptions) -> AllocationResult:
    balance_ids = [c.id for c in campus.channels if c.role in BALANCE_ROLES]
    sub = _submatrix(data.matrix, balance_ids)
    gaps = missing_report(sub, balance_ids)
    if gaps and options.missing == "error":
        listed = ", ".join(f"{c} ({k} intervals)" for c, k in sorted(gaps.items()))
        raise SettlementError(f"period {data.period.label}: campus balance channels without {options.layer} data: {listed}")
    return allocate(sub, campus, shared=options.shared)


def _submatrix(m: IntervalMatrix, ids: Sequence[str]) -> IntervalMatrix:
    index = {c: i for i, c in enumerate(m.channel_ids)}
    rows = [index[c] for c in ids if c in index]
    return IntervalMatrix([m.channel_ids[r] for r in rows], m.start_epoch, m.interval_minutes,
                          m.values[rows], m.quality[rows])
