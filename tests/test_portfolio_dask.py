"""A portfolio settled on Dask (LocalCluster, threads) equals the serial path; failures retried and reported.

The campuses share one PostgreSQL database (a fresh one per path, on the local server).
"""

from __future__ import annotations

import threading
from datetime import date
from decimal import Decimal

import pytest

from bench.portfolio_dask import PERIOD, load_data, stored_results, write_campuses
from kwhub.hub.settle import portfolio
from tests.fixtures.db import temporary_pg_database

pytest.importorskip("dask.distributed")
pytestmark = pytest.mark.postgres

ISSUE = date(2026, 11, 5)
N = 3


@pytest.fixture
def two_databases(tmp_path):
    """Two fresh PostgreSQL databases holding the same portfolio of ``N`` campuses: ``(refs, url)`` each."""
    out = []
    with temporary_pg_database("kwhub_pf_a") as url_a, temporary_pg_database("kwhub_pf_b") as url_b:
        for name, url in (("serial", url_a), ("dask", url_b)):
            root = tmp_path / name
            folders = write_campuses(root, N, url)
            load_data(url, root, N)
            out.append((portfolio.campus_refs([str(f) for f in folders]), url, root))
        yield out
        portfolio.close_cached()


def _dask(refs, group="contract", **kw):  # noqa: ANN001, ANN003
    return portfolio.settle_portfolio(refs, PERIOD, scheduler="local", workers=2, processes=False,
                                      issue_date=ISSUE, group=group, **kw)


def test_dask_equals_serial(two_databases):
    (refs_s, url_s, root_s), (refs_d, url_d, root_d) = two_databases
    serial = portfolio.settle_serial(refs_s, PERIOD, issue_date=ISSUE)
    assert serial.ok and serial.tasks == 2 * N
    seen: list[str] = []
    dask = _dask(refs_d, progress=lambda t, status: seen.append(f"{t.key}={status}"))
    assert dask.ok and dask.tasks == 2 * N and len(seen) == 2 * N
    portfolio.close_cached()
    a, b = stored_results(url_s, root_s), stored_results(url_d, root_d)
    assert len(a["runs"]) == 2 * N and len(a["invoices"]) == 2 * N and a["allocations"]
    assert a == b  # runs, statements, allocation blobs, inputs, invoice numbers and documents
    # the outcomes match too, campus by campus and contract by contract
    for name in serial.outcomes:
        assert [(o.contract_id, o.status, o.statement_hash, o.invoice.number) for o in serial.outcomes[name]] == \
               [(o.contract_id, o.status, o.statement_hash, o.invoice.number) for o in dask.outcomes[name]]
    # hand-computed, campus c01 (k = 1): hall A reads 101 + 10 sin(2 pi i / 96) kWh per quarter-hour; New
    # York October is 31 x 96 = 2,976 quarter-hours of whole days, so the sine sums to 0: 300,576 kWh x
    # 50.125 $/MWh = 15,066.372 -> 15,066.37; demand peak (101 + 10) x 4 = 444 kW x 10 $/kW = 4,440.00
    inv_a = next(o.invoice for o in serial.outcomes["c01"] if o.contract_id == "c01.ppa-a")
    assert inv_a.total == Decimal("19506.37")
    # hall B: 50 kWh x 2,976 = 148.8 MWh, split between gt1 and pv (per-source lines, in MWh)
    inv_b = next(o.invoice for o in serial.outcomes["c01"] if o.contract_id == "c01.ppa-b")
    assert abs(sum(ln.quantity for ln in inv_b.lines) - Decimal("148.8")) < Decimal("0.000001")


def test_dask_by_campus_equals_serial(two_databases):
    """One task per campus (the default): the campus is read and allocated once, as serially."""
    (refs_s, url_s, root_s), (refs_d, url_d, root_d) = two_databases
    serial = portfolio.settle_serial(refs_s, PERIOD, issue_date=ISSUE)
    seen: list[str] = []
    dask = _dask(refs_d, group="campus", progress=lambda t, status: seen.append(f"{t.key}={status}"))
    assert dask.ok and dask.tasks == N
    assert sorted(seen) == [f"settle|c0{k}|*|2026-10|initial=draft, draft" for k in range(1, N + 1)]
    portfolio.close_cached()
    assert stored_results(url_s, root_s) == stored_results(url_d, root_d)
    for name in serial.outcomes:
        assert [(o.contract_id, o.status, o.statement_hash, o.invoice.number) for o in serial.outcomes[name]] == \
               [(o.contract_id, o.status, o.statement_hash, o.invoice.number) for o in dask.outcomes[name]]


def test_failed_campus_task_fails_its_contracts_only(two_databases, monkeypatch):
    (refs_s, url_s, root_s), (refs_d, url_d, root_d) = two_databases
    real = portfolio._settle_one

    def broken(task):  # noqa: ANN001, ANN202
        if task.campus == "c02":
            raise RuntimeError("worker lost")
        return real(task)

    monkeypatch.setattr(portfolio, "_settle_one", broken)
    res = _dask(refs_d, group="campus", retries=0)
    assert [f.task.key for f in res.failures] == ["settle|c02|*|2026-10|initial"]
    assert [(o.contract_id, o.status) for o in res.outcomes["c02"]] == [("c02.ppa-a", "error"), ("c02.ppa-b", "error")]
    assert {o.status for name in ("c01", "c03") for o in res.outcomes[name]} == {"issued"}
    with pytest.raises(portfolio.PortfolioError, match="unknown task grouping"):
        portfolio.plan_tasks(refs_d, PERIOD, group="site")


def test_failed_task_is_retried(two_databases, monkeypatch):
    (refs_s, url_s, root_s), (refs_d, url_d, root_d) = two_databases
    portfolio.settle_serial(refs_s, PERIOD, issue_date=ISSUE)
    real = portfolio._settle_one
    calls: dict[str, int] = {}
    lock = threading.Lock()

    def flaky(task):  # noqa: ANN001, ANN202 - the first attempt of one task loses its connection
        with lock:
            calls[task.key] = calls.get(task.key, 0) + 1
            first = calls[task.key] == 1
        if task.contract_id == "c02.ppa-b" and first:
            raise ConnectionError("server closed the connection unexpectedly")
        return real(task)

    monkeypatch.setattr(portfolio, "_settle_one", flaky)
    res = _dask(refs_d, retries=2)
    assert res.ok and not res.failures
    assert calls["settle|c02|c02.ppa-b|2026-10|initial"] == 2
    assert all(n == 1 for k, n in calls.items() if "c02.ppa-b" not in k)  # the others ran once
    portfolio.close_cached()
    assert stored_results(url_s, root_s) == stored_results(url_d, root_d)


def test_failure_reported_others_untouched(two_databases, monkeypatch):
    (refs_s, url_s, root_s), (refs_d, url_d, root_d) = two_databases
    real = portfolio._settle_one

    def broken(task):  # noqa: ANN001, ANN202
        if task.contract_id == "c03.ppa-a":
            raise RuntimeError("worker lost")
        return real(task)

    monkeypatch.setattr(portfolio, "_settle_one", broken)
    res = _dask(refs_d, retries=1)
    assert not res.ok
    assert [f.task.key for f in res.failures] == ["settle|c03|c03.ppa-a|2026-10|initial"]
    assert "RuntimeError: worker lost" in res.failures[0].error
    # c01 and c02 are issued; c03 issues nothing (as a serial settle with a failed contract), its other
    # contract's run waits as a draft with a note saying why
    for name in ("c01", "c02"):
        assert {o.status for o in res.outcomes[name]} == {"issued"}
    c03 = {o.contract_id: o for o in res.outcomes["c03"]}
    assert c03["c03.ppa-a"].status == "error" and c03["c03.ppa-b"].status == "draft"
    assert "c03.ppa-a failed" in c03["c03.ppa-b"].note
    portfolio.close_cached()
    stored = stored_results(url_d, root_d)
    assert sorted({row[1] for row in stored["invoices"]}) == ["C01_OP-000001", "C01_OP-000002", "C02_OP-000001",
                                                              "C02_OP-000002"]


def test_cli_portfolio_serial_and_dask(two_databases):
    from typer.testing import CliRunner

    from kwhub.hub.cli.main import app

    (refs_s, url_s, root_s), (refs_d, url_d, root_d) = two_databases
    runner = CliRunner()
    res = runner.invoke(app, ["settle", "--period", PERIOD, "--campuses",
                              ",".join(r.config for r in refs_s), "--format", "json"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["settle", "--period", PERIOD, "--campuses", ",".join(r.config for r in refs_d),
                              "--dask", "local", "--workers", "2", "--format", "json"])
    assert res.exit_code == 0, res.output
    import json

    assert sorted(json.loads(res.output)["campuses"]) == ["c01", "c02", "c03"]
