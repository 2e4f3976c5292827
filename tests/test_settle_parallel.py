"""A settle in several processes (``jobs``) stores and issues exactly what one process does.

Each case settles the same data twice, in two databases of the same kind: once in one
process and once split across forked processes, then compares every stored run, statement,
allocation, input row and invoice document, and the outcomes. The forking threshold is
lowered so that these small campuses are split.
"""

from __future__ import annotations

import json
import os
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from bench.portfolio_dask import stored_results
from kwhub.core.campus import Campus, Channel, ComponentSpec, Contract, Party
from kwhub.core.settlement import SettlementError
from kwhub.hub.settle import parallel
from kwhub.hub.settle.service import settle_periods
from kwhub.hub.store import Database
from tests.fixtures.db import _sqlite_copy, temporary_pg_database
from tests.fixtures.settlement import (
    CONSTANT,
    NY,
    OPERATOR_TOML,
    cli_campus,
    settle_campus,
    write_period,
)

ISSUE = date(2026, 11, 3)
PERIODS = ["2026-08", "2026-09", "2026-10"]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def two_stores(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Two empty databases of one kind: (serial, parallel). Small settles are split too."""
    monkeypatch.setattr(parallel, "MIN_PARALLEL_CELLS", 0)
    if request.param == "sqlite":
        template = request.getfixturevalue("sqlite_template")
        (tmp_path / "serial").mkdir()
        (tmp_path / "parallel").mkdir()
        dbs = [_sqlite_copy(template, tmp_path / "serial"), _sqlite_copy(template, tmp_path / "parallel")]
        try:
            yield dbs
        finally:
            for d in dbs:
                d.close()
        return
    with temporary_pg_database("kwhub_par_a") as url_a, temporary_pg_database("kwhub_par_b") as url_b:
        dbs = [Database.open(url_a), Database.open(url_b)]
        try:
            yield dbs
        finally:
            for d in dbs:
                d.close()


def tenants_campus(n: int) -> Campus:
    """``n`` tenants ``t0``.. with one load channel each (``t<k>.load``), each buying energy at 50 $/MWh
    plus demand at 10 $/kW-month and a share of a 1,000 $ fixed fee."""
    parties = [Party(id="op", name="Operator")] + [Party(id=f"t{k}", name=f"Tenant {k}") for k in range(n)]
    channels = [Channel(id=f"t{k}.load", party=f"t{k}", role="tenant_load", direction="received") for k in range(n)]
    shares = {f"t{k}": str(Decimal(1) / n) if k < n - 1 else str(1 - (n - 1) * (Decimal(1) / n)) for k in range(n)}
    contracts = [Contract(id=f"ppa-{k}", seller="op", buyer=f"t{k}", timezone=NY, load_channels=[f"t{k}.load"],
                          components=[ComponentSpec(kind="fixed_energy", price_per_mwh="50"),
                                      ComponentSpec(kind="demand", price_per_kw_month="10"),
                                      ComponentSpec(kind="fixed_fee", total_amount="1000", shares=shares)])
                 for k in range(n)]
    return Campus(parties=parties, channels=channels, contracts=contracts)


def _settle_both(dbs: list[Database], campus: Campus, values: dict[str, float], monkeypatch: pytest.MonkeyPatch,
                 vary: bool = True, max_channels: int = 2000):
    """Write ``values`` (plus the month number when ``vary``) in both, then settle one serially and
    the other in two processes: (serial outcomes, forked outcomes, the parts, progress seen)."""
    for d in dbs:
        for p in PERIODS:
            write_period(d, p, {k: v + int(p[-2:]) * vary for k, v in values.items()})
    split: list[list[list[str]]] = []
    real = parallel.run_parts

    def recording(db, parts, run, progress):  # noqa: ANN001
        split.append(parts)
        return real(db, parts, run, progress)

    monkeypatch.setattr("kwhub.hub.settle.service.run_parts", recording)
    serial = settle_periods(dbs[0], campus, PERIODS, issue_date=ISSUE, jobs=1, max_channels=max_channels)
    assert split == []
    seen: list[str] = []
    forked = settle_periods(dbs[1], campus, PERIODS, issue_date=ISSUE, jobs=2, progress=seen.append,
                            max_channels=max_channels)
    return serial, forked, split, seen


def _outcomes(out):  # noqa: ANN001, ANN202
    return [(o.contract_id, o.period, o.status, o.statement_hash, o.invoice.number if o.invoice else None,
             o.error) for o in out]


def test_two_processes_store_and_issue_what_one_does(two_stores, tmp_path, monkeypatch):
    """Four tenants in one batch: the parts interleave in the serial order (period, then contract),
    so the invoice numbers, documents and everything stored are the same."""
    campus = tenants_campus(4)
    values = {f"t{k}.load": 10.0 * (k + 1) for k in range(4)}
    serial, forked, split, seen = _settle_both(two_stores, campus, values, monkeypatch)
    assert split == [[["ppa-0", "ppa-2"], ["ppa-1", "ppa-3"]]]  # equal channel counts: dealt in turn
    assert sorted(seen) == sorted(f"ppa-{k}" for k in range(4) for _ in PERIODS)  # the child's progress too
    assert _outcomes(forked) == _outcomes(serial)
    assert all(o.status == "issued" for o in serial) and len(serial) == 12
    a = stored_results(two_stores[0].url, tmp_path)
    b = stored_results(two_stores[1].url, tmp_path)
    assert a == b and len(a["invoices"]) == 12
    # by hand, ppa-1 of 2026-10: 20 + 10 = 30 kWh every quarter-hour of New York October (31 days x 96,
    # 2,976 intervals; the fall-back day is in November) = 89,280 kWh x 50 $/MWh = 4,464.00; demand
    # 30 x 4 = 120 kW x 10 = 1,200.00; fixed fee 1,000 x 0.25 = 250.00
    inv = next(o.invoice for o in forked if o.contract_id == "ppa-1" and o.period == "2026-10")
    assert inv.total == Decimal("4464.00") + Decimal("1200.00") + Decimal("250.00")
    # numbering follows the serial order: August's four, then September's, then October's
    assert [o.invoice.number for o in forked if o.period == "2026-08"] == [f"OP-00000{k}" for k in range(1, 5)]


def test_parts_that_read_a_period_at_a_time_store_and_issue_what_one_does(two_stores, tmp_path, monkeypatch):
    """A part of a ``jobs`` settle reads at most ``PART_READ_CELLS`` channel-intervals at once
    (one process reads larger spans): with the limit below one period, every part reads the
    three periods one by one, and what is stored and issued is still the serial settle's."""
    from kwhub.hub.settle import loading, service

    monkeypatch.setattr(service, "PART_READ_CELLS", 1)
    spans: list[tuple[int, str]] = []
    real_load = loading.load_span

    def recording(db, campus, span, channel_ids, options):  # noqa: ANN001
        spans.append((os.getpid(), span.start.isoformat()))
        return real_load(db, campus, span, channel_ids, options)

    monkeypatch.setattr(loading, "load_span", recording)
    campus = tenants_campus(4)
    values = {f"t{k}.load": 10.0 * (k + 1) for k in range(4)}
    serial, forked, split, _ = _settle_both(two_stores, campus, values, monkeypatch)
    assert split == [[["ppa-0", "ppa-2"], ["ppa-1", "ppa-3"]]]
    # serially: one read of the three months; in this process's part: one read per month
    # (the child's reads are its own, in its own memory)
    here = [start for pid, start in spans if pid == os.getpid()]
    assert len(here) == 1 + len(PERIODS), here
    assert _outcomes(forked) == _outcomes(serial) and all(o.status == "issued" for o in forked)
    assert stored_results(two_stores[0].url, tmp_path) == stored_results(two_stores[1].url, tmp_path)


def test_a_part_that_needs_the_allocation_reads_and_allocates_on_its_own(two_stores, tmp_path, monkeypatch):
    """Both contracts of the settlement campus depend on its allocation (one batch in one process);
    split, each process reads the balance channels and allocates on its own, and the invoices are
    still numbered period by period as one process numbers them."""
    serial, forked, split, _ = _settle_both(two_stores, settle_campus(), CONSTANT, monkeypatch, vary=False)
    assert split == [[["ppa-b"], ["ppa-a"]]]  # ppa-b reads more channels (its sources): this process takes it
    assert _outcomes(forked) == _outcomes(serial)
    assert stored_results(two_stores[0].url, tmp_path) == stored_results(two_stores[1].url, tmp_path)
    assert [o.status for o in forked] == ["issued"] * 6
    numbers = {(o.contract_id, o.period): o.invoice.number for o in forked}
    assert [numbers["ppa-a", p] for p in PERIODS] == ["OP-000001", "OP-000003", "OP-000005"]
    assert [numbers["ppa-b", p] for p in PERIODS] == ["OP-000002", "OP-000004", "OP-000006"]


def test_batches_are_issued_one_after_the_other_as_in_one_process(two_stores, tmp_path, monkeypatch):
    """One channel per batch: one process settles (and numbers) batch after batch, every period of
    ppa-0 before ppa-1; the parts hold alternate batches and are issued in that same order."""
    values = {f"t{k}.load": 10.0 * (k + 1) for k in range(4)}
    serial, forked, split, _ = _settle_both(two_stores, tenants_campus(4), values, monkeypatch, max_channels=1)
    assert split == [[["ppa-0", "ppa-2"], ["ppa-1", "ppa-3"]]]
    assert _outcomes(forked) == _outcomes(serial)
    numbers = {(o.contract_id, o.period): o.invoice.number for o in forked}
    assert [numbers["ppa-1", p] for p in PERIODS] == ["OP-000004", "OP-000005", "OP-000006"]
    assert stored_results(two_stores[0].url, tmp_path) == stored_results(two_stores[1].url, tmp_path)


def _child_only(action):  # noqa: ANN001, ANN202
    """A ``_Work.run`` that does ``action()`` in a forked child and the real work in this process."""
    from kwhub.hub.settle import service

    real = service._Work.run
    parent = os.getpid()

    def run(self, db, batches, progress, read_cells=None):  # noqa: ANN001, ANN202
        if os.getpid() != parent:
            action()
        return real(self, db, batches, progress, read_cells)

    return run


def test_a_child_that_raises_raises_here_and_nothing_is_issued(two_stores, monkeypatch):
    from kwhub.hub.settle import service

    monkeypatch.setattr(parallel, "MIN_PARALLEL_CELLS", 0)
    db = two_stores[1]
    campus = tenants_campus(2)
    write_period(db, "2026-10", {"t0.load": 10.0, "t1.load": 20.0})

    def boom() -> None:
        raise ValueError("the meter file of t1 is unreadable")

    monkeypatch.setattr(service._Work, "run", _child_only(boom))
    with pytest.raises(ValueError, match="the meter file of t1 is unreadable"):
        settle_periods(db, campus, ["2026-10"], issue_date=ISSUE, jobs=2)
    assert stored_results(db.url, Path("."))["invoices"] == []


def test_a_child_that_dies_is_named_and_nothing_is_issued(two_stores, monkeypatch):
    from kwhub.hub.settle import service

    db = two_stores[1]
    campus = tenants_campus(2)
    write_period(db, "2026-10", {"t0.load": 10.0, "t1.load": 20.0})
    monkeypatch.setattr(service._Work, "run", _child_only(lambda: os._exit(3)))
    with pytest.raises(SettlementError, match=r"settling ppa-1 stopped before it finished \(exit code 3\)"):
        settle_periods(db, campus, ["2026-10"], issue_date=ISSUE, jobs=2)
    assert stored_results(db.url, Path("."))["invoices"] == []
    # the parent's own part was written as drafts, as after a failed serial settle; settling again issues
    monkeypatch.undo()
    again = settle_periods(db, campus, ["2026-10"], issue_date=ISSUE, jobs=1)
    assert [o.status for o in again] == ["issued", "issued"]


def test_split_contracts_balances_channels_and_keeps_the_order():
    sizes = [("a", 50), ("b", 10), ("c", 40), ("d", 10), ("e", 10)]
    # largest first to the lighter part: a | c, b -> 50 | 50; d to the first of equals, e to the other
    assert parallel.split_contracts(sizes, 2) == [["a", "d"], ["b", "c", "e"]]
    assert parallel.split_contracts(sizes, 1) == [["a", "b", "c", "d", "e"]]
    assert parallel.split_contracts([("a", 5)], 4) == [["a"]]


def test_one_process_where_forking_does_not_pay_or_is_not_safe(tmp_path):
    sizes = [("a", 10), ("b", 10)]
    memory = Database.open("sqlite://")
    file_db = Database.open(f"sqlite:///{tmp_path / 'k.db'}")
    try:
        assert parallel.parallel_plan(memory, 2, sizes, 10**9) is None  # no other process can open it
        assert parallel.parallel_plan(file_db, 1, sizes, 10**9) is None
        assert parallel.parallel_plan(file_db, 2, sizes[:1], 10**9) is None  # one contract
        assert parallel.parallel_plan(file_db, 2, sizes, parallel.MIN_PARALLEL_CELLS - 1) is None
        assert parallel.parallel_plan(file_db, 2, sizes, parallel.MIN_PARALLEL_CELLS) == [["a"], ["b"]]
    finally:
        memory.close()
        file_db.close()
    assert 1 <= parallel.default_jobs() <= parallel.MAX_DEFAULT_JOBS


TWO_TENANTS_TOML = '[hub]\nname = "two halls"\n' + OPERATOR_TOML + "".join(f"""
[[parties]]
id = "tenant_{x}"
name = "Hall {x.upper()}"

[[channels]]
id = "{x}.load"
party = "tenant_{x}"
role = "tenant_load"

[[contracts]]
id = "ppa-{x}"
seller = "op"
buyer = "tenant_{x}"
load_channels = ["{x}.load"]

[[contracts.components]]
kind = "fixed_energy"
price_per_mwh = "50"
""" for x in ("a", "b"))


def test_cli_settles_in_two_processes(tmp_path, monkeypatch):
    """``kwhub settle --jobs 2`` forks for a campus large enough (the threshold lowered here) and
    numbers the invoices as ``--jobs 1`` does; by hand: 100 kWh x 2,976 quarter-hours = 297.6 MWh x
    50 $/MWh = 14,880.00 for hall A, 50 kWh: 7,440.00 for hall B."""
    from kwhub.hub.cli.main import app

    monkeypatch.setattr(parallel, "MIN_PARALLEL_CELLS", 0)
    forks: list[list[list[str]]] = []
    real = parallel.run_parts
    monkeypatch.setattr("kwhub.hub.settle.service.run_parts",
                        lambda db, parts, run, progress: forks.append(parts) or real(db, parts, run, progress))
    runner = cli_campus(tmp_path, monkeypatch, TWO_TENANTS_TOML, {"a.load": 100.0, "b.load": 50.0})
    # with the progress bar (and its refresh thread) running: a dry run stores nothing
    res = runner.invoke(app, ["settle", "--period", "2026-10", "--jobs", "2", "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "14880.00" in res.output and "7440.00" in res.output
    res = runner.invoke(app, ["settle", "--period", "2026-10", "--jobs", "2", "--format", "json"])
    assert res.exit_code == 0, res.output
    runs = json.loads(res.output)
    assert forks == [[["ppa-a"], ["ppa-b"]]] * 2
    assert [(r["contract"], r["status"], r["invoice"]["number"], r["invoice"]["total"]) for r in runs] == [
        ("ppa-a", "issued", "OP-000001", "14880.00"), ("ppa-b", "issued", "OP-000002", "7440.00")]
    res = runner.invoke(app, ["settle", "--help"])
    assert "--jobs" in res.output
