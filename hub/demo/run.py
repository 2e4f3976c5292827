"""``kwhub demo``: the whole meter-to-cash path on the simulated campus, no configuration.

In a working directory it writes a ``kwhub.toml`` for the simulated campus, simulates
September and October 2026 (with injected faults), ingests the data through the meter
adapters (CSV files, a utility's Green Button file, Modbus devices on loopback), validates
it, settles one PPA per tenant for both months (the ratchet of October looks back at
September), applies a late meter correction and settles October again as ``final`` (an
adjustment document for the difference), delivers every invoice through the outbox
(UBL to a folder, JSON to a local ERP webhook), writes owner statements for the
co-owned plants and an emissions summary, and returns a summary of where everything went.
Every step is idempotent: a second run in the same directory issues nothing new.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import tomli_w

from kwhub.core.money import money_str
from kwhub.hub.config import KwhubConfig, load_config
from kwhub.hub.demo.campus_files import (
    CORRECTION_DAY,
    CORRECTION_FACTOR,
    DEMO_DAYS,
    DEMO_START,
    DEMO_WEBHOOK_SECRET,
    GAS_NODE,
    MAIN_PERIOD,
    PERIODS,
    SEED,
    demo_config,
    restate_meter_files,
    write_index_csv,
    write_lmp_csv,
)

Progress = Callable[[str], None]


def demo_now() -> datetime:
    """The demo's present: early on 1 November 2026, when the live Modbus window ends.

    Validation treats intervals that end after this instant as not yet due, so the
    demo's results do not depend on the wall clock of the machine it runs on.
    """
    from kwhub.hub.demo.modbus import live_window_end

    return live_window_end()


@dataclass
class DemoSummary:
    """What a demo run did and where every output is."""

    work_dir: Path
    config: Path
    database: str
    ingest: list[dict[str, Any]] = field(default_factory=list)
    vee: dict[str, Any] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    invoices: list[dict[str, Any]] = field(default_factory=list)
    outbox: dict[str, int] = field(default_factory=dict)
    owner_statements: list[str] = field(default_factory=list)
    owners: dict[str, Any] = field(default_factory=dict)
    review: list[dict[str, Any]] = field(default_factory=list)
    energy: dict[str, Any] = field(default_factory=dict)
    emissions: list[str] = field(default_factory=list)
    esg_checks: dict[str, list[str]] = field(default_factory=dict)
    market: dict[str, Any] = field(default_factory=dict)
    market_day: dict[str, Any] = field(default_factory=dict)
    modbus: dict[str, Any] = field(default_factory=dict)
    webhook_records: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "work_dir": str(self.work_dir),
            "config": str(self.config),
            "database": self.database,
            "ingest": self.ingest,
            "vee": self.vee,
            "runs": self.runs,
            "invoices": self.invoices,
            "outbox": self.outbox,
            "owner_statements": self.owner_statements,
            "owners": self.owners,
            "review": self.review,
            "energy": self.energy,
            "emissions": self.emissions,
            "esg_checks": self.esg_checks,
            "market": self.market,
            "market_day": self.market_day,
            "modbus": self.modbus,
            "webhook_records": self.webhook_records,
        }


# ------------------------------------------------------------------------- the run


def _noop(_: str) -> None:
    return None


MARKER = ".kwhub-demo"


def claim_demo_dir(work_dir: Path) -> None:
    """Make ``work_dir`` the demo's, or refuse a folder that holds a campus the demo did not create.

    The demo rewrites ``kwhub.toml`` and settles into ``kwhub.db``; doing that in an
    operator's folder would mix a simulated campus into real data.
    """
    from kwhub.hub.cli.errors import UserError

    marker = work_dir / MARKER
    if work_dir.exists() and not marker.exists():
        foreign = [n for n in ("kwhub.toml", "kwhub.db", "inputs", "out") if (work_dir / n).exists()]
        if foreign:
            raise UserError(f"{work_dir} holds a campus the demo did not create ({', '.join(foreign)}); "
                            "the demo will not write into it", hint="give the demo an empty or new folder: "
                            "kwhub demo --dir PATH")
    work_dir.mkdir(parents=True, exist_ok=True)
    if not marker.exists():
        marker.write_text("This folder belongs to `kwhub demo`; it may rewrite everything in it.\n")


def run_demo(work_dir: Path, progress: Progress = _noop) -> DemoSummary:
    """Run the demo in ``work_dir`` (created if needed) and return its summary."""
    from kwhub.hub.demo.erp_receiver import ErpReceiver
    from kwhub.hub.demo.simulator.campus import FaultSpec, campus_definition, simulate
    from kwhub.hub.demo.simulator.files import write_csv, write_greenbutton
    from kwhub.hub.store import Database

    work_dir = work_dir.resolve()
    claim_demo_dir(work_dir)
    secret = DEMO_WEBHOOK_SECRET

    progress("simulating the campus")
    campus_def = campus_definition(15)
    faults = FaultSpec.default(DEMO_START, DEMO_DAYS, 15)
    sim = simulate(DEMO_START, DEMO_DAYS, 15, seed=SEED, faults=faults)
    inputs = work_dir / "inputs"
    # The inputs folder plays the meter-data drop: files already there (including a
    # restated one from an earlier run) are what the meters delivered, so they are kept.
    meter_dir = inputs / "meters"
    if not meter_dir.exists():
        write_csv(sim, meter_dir, layout="long", channels=[c for c in sim.series if c != "grid.import"])
    csv_files = sorted(meter_dir.glob("*.csv"))
    gb_file = inputs / "utility" / "grid_import_greenbutton.xml"
    if not gb_file.exists():
        write_greenbutton(sim, "grid.import", gb_file, usage_point_title="Campus grid tie (utility revenue meter)")
    write_index_csv(work_dir / "prices" / "henry_hub.csv", DEMO_START, DEMO_DAYS)
    write_lmp_csv(work_dir / "prices" / "lmp.csv", DEMO_START, DEMO_DAYS)

    config_path = work_dir / "kwhub.toml"
    webhook_port, ercot_port = previous_ports(config_path)
    receiver = _started(lambda port: ErpReceiver(work_dir / "out" / "webhook_received.jsonl", secret=secret,
                                                 dedupe=True, port=port).start(), webhook_port)
    from kwhub.hub.markets.demo_day import start_local_ercot

    ercot = _started(start_local_ercot, ercot_port)
    try:
        data = tomli_w.dumps(demo_config(campus_def, f"http://127.0.0.1:{receiver.port}/invoices", ercot.url)).encode()
        if not config_path.exists() or config_path.read_bytes() != data:  # the same ports: the same file
            config_path.write_bytes(data)
        cfg = load_config(config_path)
        db = Database.open(cfg.database_url)
        summary = DemoSummary(work_dir=work_dir, config=config_path, database=cfg.database_url)
        summary.webhook_records = str(receiver.record_path)
        _ingest(cfg, db, csv_files, gb_file, summary, progress)
        summary.modbus = _modbus(cfg, db, sim, progress)
        for period in PERIODS:
            progress(f"settling {period}")
            _settle(cfg, db, period, "initial", summary)
        progress("reviewing held runs")
        _review_held(cfg, db, summary)
        progress("late meter correction for hall A")
        corrected = restate_meter_files(meter_dir, "hall_a.load", CORRECTION_DAY, CORRECTION_FACTOR)
        _ingest_files(cfg, db, "meter_csv", corrected, None, summary)
        progress(f"final settlement {MAIN_PERIOD}")
        _settle(cfg, db, MAIN_PERIOD, "final", summary)
        _review_held(cfg, db, summary)
        progress("delivering invoices")
        _deliver(cfg, db, summary)
        progress("market day on the local ERCOT")
        summary.market_day = _market_day(cfg, db, ercot)
        progress("energy accounting, owner statements and emissions")
        _energy(db, summary)
        _vee(db, summary)
        _owner_statements(cfg, db, summary)
        _emissions(cfg, db, summary)
        _market(cfg, sim, summary)
        summary.invoices = _invoice_rows(cfg, db)
        return summary
    finally:
        ercot.stop()
        receiver.stop()


def previous_ports(config_path: Path) -> tuple[int, int]:
    """The local webhook's and ERCOT's ports an earlier run wrote into kwhub.toml (0: none yet).

    A second run listens on the same ports when they are free, so its kwhub.toml is the same file.
    """
    import tomllib
    from urllib.parse import urlsplit

    if not config_path.exists():
        return 0, 0
    try:
        data = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 0, 0
    urls = {a.get("id"): str(a.get("config", {}).get("url", "")) for a in data.get("adapters", [])
            if isinstance(a, dict)}

    def port(url: str) -> int:
        try:
            return urlsplit(url).port or 0
        except ValueError:
            return 0

    return port(urls.get("erp_webhook", "")), port(urls.get("ercot", ""))


def _started(start: Callable[[int], Any], port: int) -> Any:
    """Start a local service on ``port``; on a port now taken by something else, on a free one."""
    if port:
        try:
            return start(port)
        except OSError:
            pass
    return start(0)


def _ingest_files(cfg: KwhubConfig, db: Any, adapter_id: str, files: list[Path], channel: str | None,
                  summary: DemoSummary) -> None:
    from kwhub.hub.ingest.batch import ingest_file

    adapter = cfg.adapter(adapter_id)
    for f in files:
        rep = ingest_file(db, cfg.campus, adapter, f, channel, vee_config=cfg.vee or None, vee_now=demo_now())
        summary.ingest.append({
            "file": str(f.relative_to(cfg.work_dir)), "adapter": adapter.type_id, "intervals": rep.intervals,
            "new_days": rep.new_days, "changed_days": rep.changed_days, "unchanged_days": rep.unchanged_days,
        })


def _vee(db: Any, summary: DemoSummary) -> None:
    """What VEE holds for the stored days: the figures `kwhub vee report` prints (not a sum of the
    ingest runs, which count a day validated twice twice)."""
    from kwhub.hub.ingest.vee import read_events, report

    summary.vee = report(read_events(db, None, None, None))


def _ingest(cfg: KwhubConfig, db: Any, csv_files: list[Path], gb_file: Path, summary: DemoSummary,
            progress: Progress) -> None:
    progress(f"ingesting {len(csv_files)} CSV files")
    _ingest_files(cfg, db, "meter_csv", csv_files, None, summary)
    progress("ingesting the utility's Green Button file")
    _ingest_files(cfg, db, "utility_gb", [gb_file], "grid.import", summary)


def _modbus(cfg: KwhubConfig, db: Any, sim: Any, progress: Progress) -> dict[str, Any]:
    """Poll simulated plant controllers over Modbus TCP on loopback and store the readings."""
    from kwhub.hub.demo.modbus import poll_demo_devices

    progress("polling plant controllers over Modbus TCP")
    return poll_demo_devices(cfg, db, SEED)


def _settle(cfg: KwhubConfig, db: Any, period: str, version: str, summary: DemoSummary) -> None:
    """Settle every contract; settling again on the same data is `unchanged` and not listed."""
    from kwhub.core.versions import VERSION_KINDS
    from kwhub.hub.registry import get_registry
    from kwhub.hub.settle.issuing import outbox_hook
    from kwhub.hub.settle.runs_read import existing_runs
    from kwhub.hub.settle.service import settle

    later = VERSION_KINDS[VERSION_KINDS.index(version) + 1:]
    todo = [c.id for c in cfg.campus.contracts  # on a second run, October already has its final version
            if not any(r["version_kind"] in later for r in existing_runs(db, c.id, period))]
    if not todo:
        return
    outcomes = settle(db, cfg.campus, period, contracts=todo, version=version, options=cfg.settlement_options(),
                      issue_date=_issue_date(period), on_issue=outbox_hook(cfg, get_registry(), db), now=demo_now())
    for o in outcomes:
        if o.status == "error":
            raise RuntimeError(f"demo settlement of {o.contract_id} {period} {version} failed: {o.error}")
        if o.status != "unchanged":
            summary.runs.append(o.as_dict())


def _review_held(cfg: KwhubConfig, db: Any, summary: DemoSummary) -> None:
    """Play the billing clerk: look at each held run's reasons, then approve it with a reason."""
    from kwhub.hub.registry import get_registry
    from kwhub.hub.settle.issuing import outbox_hook
    from kwhub.hub.settle.review import approve_runs, list_runs

    held = list_runs(db, status="held")
    if not held:
        return
    reason = ("October has a day more than September and more sun on the solar PPA; the move was checked "
              "with the tenant")
    done = approve_runs(db, cfg.campus, [r["id"] for r in held], actor="demo billing clerk", reason=reason,
                        issue_date=None, on_issue=outbox_hook(cfg, get_registry(), db))
    for r in held:
        res = done[r["id"]]
        if res.invoice is None:
            raise RuntimeError(f"demo approval of {r['id']} failed: {res.error}")
        summary.review.append({"run": r["id"], "held_reasons": r["held_reasons"], "decision": "approved",
                               "by": "demo billing clerk", "reason": reason, "invoice": res.invoice.number})


def _energy(db: Any, summary: DemoSummary) -> None:
    from kwhub.hub.settle.reports import energy_report

    rep = energy_report(db, MAIN_PERIOD)
    data = rep.as_json()
    summary.energy = {"period": MAIN_PERIOD, "parties": data["parties"], "sources": data["sources"],
                      "unexplained_kwh": data["unexplained_kwh"]}


def _issue_date(period: str) -> date:
    y, m = (int(x) for x in period.split("-"))
    return date(y + (m == 12), m % 12 + 1, 5)


def _deliver(cfg: KwhubConfig, db: Any, summary: DemoSummary) -> None:
    from kwhub.hub.deliver.outbox import relay_once, status_counts, transports_from_config
    from kwhub.hub.registry import get_registry

    transports = transports_from_config(cfg)
    for _ in range(50):
        rep = relay_once(db, get_registry(), transports, limit=200)
        if not getattr(rep, "attempted", 0) and not getattr(rep, "sent", 0):
            break
    summary.outbox = status_counts(db)


def _invoice_rows(cfg: KwhubConfig, db: Any) -> list[dict[str, Any]]:
    from kwhub.hub.deliver.outbox import list_outbox
    from kwhub.hub.settle.invoices_read import list_invoices

    rows = []
    out_rows = list_outbox(db)
    for inv in list_invoices(db):
        outputs = []
        for r in out_rows:
            r = r if isinstance(r, dict) else r._asdict()
            if r.get("invoice_id") == inv.id:
                outputs.append({"format": r.get("format_id"), "transport": r.get("transport_instance"),
                                "status": r.get("status"), "target": _target(cfg, r)})
        rows.append({"id": inv.id, "number": inv.number, "kind": inv.kind, "tenant": inv.buyer.id,
                     "contract": inv.contract_id, "period": f"{inv.period_start}..{inv.period_end}",
                     "total": money_str(inv.total), "currency": inv.currency,
                     "references": [r.number for r in inv.references], "outputs": outputs})
    return rows


def _target(cfg: KwhubConfig, row: dict[str, Any]) -> str:
    inst = cfg.adapters.get(row.get("transport_instance", ""))
    if inst is None:
        return ""
    conf = inst.config
    folder = getattr(conf, "folder", None)
    if folder:
        p = Path(folder)
        return str((p if p.is_absolute() else cfg.work_dir / p) / row.get("filename", ""))
    return str(getattr(conf, "url", ""))


def _owner_statements(cfg: KwhubConfig, db: Any, summary: DemoSummary) -> None:
    """Owner statements of October: the turbines' revenue follows their energy through every contract."""
    from kwhub.hub.settle.owner_pdf import write_owner_pdf
    from kwhub.hub.settle.owners import period_owner_statements

    statements = period_owner_statements(db, cfg, MAIN_PERIOD)
    folder = cfg.output_dir / "owners"
    folder.mkdir(parents=True, exist_ok=True)
    names = {p.id: p.name for p in cfg.campus.parties}
    for party, st in statements.items():
        path = folder / f"owner-statement-{party}-{MAIN_PERIOD}.json"
        path.write_text(st.model_dump_json(indent=2) + "\n")
        pdf = write_owner_pdf(st, folder / f"owner-statement-{party}-{MAIN_PERIOD}.pdf", names.get(party, party))
        summary.owner_statements += [str(path), str(pdf)]
        summary.owners[party] = {
            "revenue": money_str(st.revenue), "costs": money_str(st.costs), "net": money_str(st.net),
            "revenue_by_asset": {ln.asset: money_str(ln.amount) for ln in st.lines if ln.kind == "revenue"},
            "market_revenue": {ln.asset: money_str(ln.amount) for ln in st.lines if ln.kind == "market_revenue"},
        }


ESG_FORMATS = ["ghg", "cdp", "esrs", "sb253"]
ESG_PERIOD = "2026"


def _emissions(cfg: KwhubConfig, db: Any, summary: DemoSummary) -> None:
    """Certificates for the solar plant's hours (issued, transferred by the settled allocation, claimed by
    each tenant), then every disclosure of the year for each tenant, from the runs' frozen allocation."""
    from kwhub.hub.esg.ledger import claim_for, issue_period, transfer_by_allocation
    from kwhub.hub.esg.reports import period_disclosure, write_disclosure

    now = demo_now()
    tenants = [p.id for p in cfg.campus.parties if "tenant" in p.roles]
    for period in PERIODS:
        issue_period(db, cfg, period, now=now)
        transfer_by_allocation(db, cfg, period, now=now)
        for t in tenants:
            claim_for(db, t, period, cfg.hub.timezone, now=now)
    disclosure = period_disclosure(db, cfg, ESG_PERIOD)
    mine = disclosure.model_copy(update={"parties": [p for p in disclosure.parties if p.party in tenants]})
    written = write_disclosure(cfg, mine, ESG_FORMATS, cfg.output_dir / "esg")
    written += write_disclosure(cfg, disclosure, ["summary"], cfg.output_dir)
    summary.emissions = [str(p) for w in written for p in w.paths]
    summary.esg_checks = {w.format_id: w.problems for w in written}


def _market(cfg: KwhubConfig, sim: Any, summary: DemoSummary) -> None:
    prices = cfg.adapter("pjm_lmp").load_prices()  # type: ignore[attr-defined]
    export = sim.series["grid.export"]
    out: dict[str, Any] = {"node": GAS_NODE}
    for ps in prices:
        out[f"{ps.market.lower()}_intervals"] = len(ps)
        out[f"export_value_at_{ps.market.lower()}_usd"] = round(ps.value_of(export.starts, export.values, 15), 2)
    summary.market = out


def _market_day(cfg: KwhubConfig, db: Any, ercot: Any) -> dict[str, Any]:
    """Bids, awards, statements, the variance report and the revenue of one day on the local ERCOT."""
    from kwhub.hub.markets.demo_day import run_market_day

    return run_market_day(cfg, db, ercot)


def summary_json(summary: DemoSummary) -> str:
    return json.dumps(summary.as_dict(), indent=2, default=str)
