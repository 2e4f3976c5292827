"""VEE over the store: the simulated campus with injected faults, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import date, timedelta

import numpy as np
import pytest

from kwhub.core.intervals import split_by_day
from kwhub.core.quality import Quality
from kwhub.hub.demo.simulator.campus import FaultSpec, SimResult, simulate
from kwhub.hub.ingest.vee import read_events, validate_days

START = date(2026, 10, 5)
DAYS = 10


@pytest.fixture(scope="module")
def sim() -> SimResult:
    """Ten days of the simulated campus with the default faults (gaps, spikes, stuck meters)."""
    return simulate(START, DAYS, 15, seed=42, faults=FaultSpec.default(START, DAYS))


def _load(db, sim: SimResult) -> dict[str, set[date]]:
    db.intervals.write_series(list(sim.series.values()), layer="raw", source="sim")
    return {cid: {b.day for b in split_by_day(s)} for cid, s in sim.series.items()}


def _value_at(db, cid: str, epoch: int, layer: str = "validated"):
    day = date(1970, 1, 1) + timedelta(days=epoch // 86400)
    b = db.intervals.read_blocks(cid, day, day, layer=layer)[0]
    slot = (epoch % 86400) // (b.interval_minutes * 60)
    rule = b.rule_names[b.rule_ids[slot] - 1] if b.rule_ids is not None and b.rule_ids[slot] else ""
    return b.values[slot], int(b.quality[slot]), rule


def test_simulated_faults_are_found_estimated_and_stored(db, sim):
    channel_days = _load(db, sim)
    summary = validate_days(db, sim.campus, channel_days, run_label="test-run")
    faults = {k: [f for f in sim.faults if f.kind == k] for k in ("gap", "spike", "stuck")}
    assert all(faults.values())

    # every missing interval is found: injected gaps plus the partial UTC days at the span's edges
    slots = 96
    expected_missing = sum(len(channel_days[c]) * slots - len(s) for c, s in sim.series.items())
    assert summary.total_gaps == expected_missing
    assert summary.per_rule["gap"].estimated == expected_missing == summary.total_estimated - sum(
        c.estimated for r, c in summary.per_rule.items() if r != "gap")

    for f in faults["gap"]:
        for e in f.epochs(15):
            v, q, rule = _value_at(db, f.channel, int(e))
            assert q == Quality.ESTIMATED and rule == "gap" and np.isfinite(v)
            raw_v, raw_q, _ = _value_at(db, f.channel, int(e), layer="raw")
            assert np.isnan(raw_v) and raw_q == Quality.MISSING  # the raw layer keeps the hole
        # a short gap on a smooth load is estimated close to the truth
        idx = (f.epochs(15) - sim.starts[0]) // 900
        est = np.array([_value_at(db, f.channel, int(e))[0] for e in f.epochs(15)])
        truth = sim.truth[f.channel][idx]
        assert np.abs(est - truth).max() < 0.25 * max(truth.max(), 1.0)

    for f in faults["spike"]:
        _, q, rule = _value_at(db, f.channel, f.start_epoch)
        assert q == Quality.SUSPECT and rule == "spike"
    assert set(summary.per_rule["spike"].channels) == {f.channel for f in faults["spike"]}

    for f in faults["stuck"]:
        for e in f.epochs(15):
            _, q, rule = _value_at(db, f.channel, int(e))
            assert q == Quality.SUSPECT and rule == "stuck"
    assert set(summary.per_rule["stuck"].channels) == {f.channel for f in faults["stuck"]}

    # events are stored with the run label and match the summary
    rows = read_events(db)
    assert {r["run_label"] for r in rows} == {"test-run"}
    assert sum(r["count"] for r in rows if r["rule_id"] == "gap" and r["action"] == "flagged") == summary.total_gaps
    assert all(isinstance(r["detail"], dict) for r in rows)
    d = summary.as_dict()
    assert d["rules"]["gap"]["flagged"] == summary.total_gaps
    json.dumps(d)

    # validating again changes nothing: same content, events replaced (not doubled)
    again = validate_days(db, sim.campus, channel_days, run_label="second")
    assert again.write is not None and again.write.new_days == 0 and again.write.changed_days == 0
    rows2 = read_events(db)
    assert len(rows2) == len(rows) and {r["run_label"] for r in rows2} == {"second"}


def test_validate_days_uses_history_and_now(db, sim):
    channel_days = _load(db, sim)
    cid = "hall_a.load"
    days = sorted(channel_days[cid])
    # history first, then one day alone: its proxy-day context comes from the store
    validate_days(db, sim.campus, {cid: set(days[:-2])})
    target = days[-2]
    blocks = db.intervals.read_blocks(cid, target, target, layer="raw")
    assert blocks and np.isfinite(blocks[0].values).all()
    # a day with no raw data at all: every interval is a gap, estimated from the profile
    missing_day = days[-1] + timedelta(days=3)
    s = validate_days(db, sim.campus, {cid: {missing_day}})
    assert s.total_gaps == 96 and s.total_estimated == 96
    b = db.intervals.read_blocks(cid, missing_day, missing_day, layer="validated")[0]
    assert (b.quality == Quality.ESTIMATED).all()
    ev = [e for e in s.events if e.action == "estimated"]
    assert ev[0].detail["methods"] == {"proxy_day": 96}
    # the same day before "now": nothing is due, nothing is a gap
    from datetime import UTC, datetime

    s = validate_days(db, sim.campus, {cid: {missing_day}},
                      now=datetime(missing_day.year, missing_day.month, missing_day.day, tzinfo=UTC))
    assert s.total_gaps == 0


def test_cli_vee_report_shows_per_rule_counts(sqlite_db, sim, tmp_path):
    import typer
    from typer.testing import CliRunner

    from kwhub.hub.cli import vee_cmds

    channel_days = _load(sqlite_db, sim)
    summary = validate_days(sqlite_db, sim.campus, channel_days)
    cfg = tmp_path / "kwhub.toml"
    cfg.write_text('[hub]\nname = "t"\n\n[[sites]]\nid = "s"\n')
    app = typer.Typer()
    vee_cmds.register(app)

    @app.callback()
    def _root() -> None:
        """kwhub"""

    runner = CliRunner()
    res = runner.invoke(app, ["vee", "report", "--config", str(cfg), "--format", "json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["rules"]["gap"]["flagged"] == summary.total_gaps
    assert data["rules"]["spike"]["channels"] == sorted(summary.per_rule["spike"].channels)

    spike = next(f for f in sim.faults if f.kind == "spike")
    day = (date(1970, 1, 1) + timedelta(days=spike.start_epoch // 86400)).isoformat()
    res = runner.invoke(app, ["vee", "report", "--config", str(cfg), "--start", day, "--end", day,
                              "--channel", spike.channel, "--format", "json"])
    data = json.loads(res.output)
    assert data["rules"]["spike"] == {"flagged": 1, "estimated": 0, "edited": 0, "channels": [spike.channel],
                                      "channel_days": 1}
    res = runner.invoke(app, ["vee", "report", "--config", str(cfg)])
    assert res.exit_code == 0 and "gap" in res.output and "spike" in res.output
    res = runner.invoke(app, ["vee", "report", "--config", str(cfg), "--start", "2026-13-01"])
    assert res.exit_code != 0
