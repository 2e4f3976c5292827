"""A meter file with Wh in the kWh column is flagged as a whole, on SQLite and PostgreSQL (issue 9).

Before: such a file settled into a 311,682,803.69 USD invoice and VEE flagged only part of
it. Now every interval of the file is SUSPECT with the rule ``unit`` and an event message
saying what to do, whether the channel has a physical limit or only its history to go by;
values above ``max_kw`` are flagged by ``high_low`` whatever the role.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from kwhub.core.campus import Asset, Campus, Channel, Site
from kwhub.core.quality import Quality
from kwhub.hub.ingest.batch import adapter_context, ingest_file
from kwhub.hub.ingest.vee import read_events
from kwhub.plugins.meters.csv_meter import CsvMeter

T0 = int(datetime(2024, 3, 1, tzinfo=UTC).timestamp())
NOW = datetime(2024, 4, 1, tzinfo=UTC)
HEADER = "channel_id,interval_start,interval_minutes,kwh\n"


def campus(**channel: object) -> Campus:
    return Campus(sites=[Site(id="s")], assets=[Asset(id="hall_a", kind="load", capacity_kw=30_000)],
                  channels=[Channel(id="hall_a.load", role="tenant_load", interval_minutes=15, **channel)])


def write_days(path: Path, first_day: int, days: int, scale: float, seed: int = 0) -> Path:
    """Quarter-hours of a ~20 MW hall (about 5,000 kWh each), times ``scale``."""
    rng = np.random.default_rng(seed)
    n = days * 96
    starts = T0 + first_day * 86400 + 900 * np.arange(n)
    kwh = np.round(4800 + 400 * rng.random(n), 3) * scale
    path.write_text(HEADER + "".join(
        f"hall_a.load,{datetime.fromtimestamp(int(s), tz=UTC):%Y-%m-%dT%H:%M:%SZ},15,{v!r}\n"
        for s, v in zip(starts.tolist(), kwh.tolist(), strict=True)))
    return path


def validated(db, first_day: int, days: int):
    from datetime import date, timedelta

    d0 = date(2024, 3, 1) + timedelta(days=first_day)
    return db.intervals.read_blocks("hall_a.load", d0, d0 + timedelta(days=days - 1), layer="validated")


@pytest.mark.parametrize("channel", [{}, {"max_kw": 30_000.0}, {"asset": "hall_a"}],
                         ids=["history only", "max_kw", "asset capacity"])
def test_wh_file_after_a_normal_week_is_flagged_as_a_whole(db, tmp_path, channel):
    c = campus(**channel)
    meter = CsvMeter("csv", {}, adapter_context(c))
    ingest_file(db, c, meter, write_days(tmp_path / "week.csv", 0, 7, 1.0), vee_now=NOW)
    rep = ingest_file(db, c, meter, write_days(tmp_path / "wh.csv", 7, 3, 1000.0, seed=1), vee_now=NOW)
    blocks = validated(db, 7, 3)
    assert len(blocks) == 3
    for b in blocks:
        assert (b.quality == Quality.SUSPECT).all()
        assert (b.rule_ids > 0).all() and {b.rule_names[i - 1] for i in np.unique(b.rule_ids)} == {"unit"}
    (msg,) = [m for m in rep.vee["messages"] if m["rule"] == "unit"]
    assert msg["days"] == 3 and msg["intervals"] == 288 and 'unit = "Wh"' in msg["message"]
    # the normal week is untouched by the unit rule
    assert all((b.quality != Quality.SUSPECT).all() for b in validated(db, 0, 7))
    events = [e for e in read_events(db) if e["rule_id"] == "unit"]
    assert sum(e["count"] for e in events) == 288 and all("x1000" in e["detail"]["probable"] for e in events)


def test_wh_file_of_a_new_channel_is_flagged_by_its_limit(db, tmp_path):
    """No history at all: the channel's max_kw tells the values cannot be kWh."""
    c = campus(max_kw=30_000.0)
    meter = CsvMeter("csv", {}, adapter_context(c))
    ingest_file(db, c, meter, write_days(tmp_path / "wh.csv", 0, 2, 1000.0), vee_now=NOW)
    for b in validated(db, 0, 2):
        assert (b.quality == Quality.SUSPECT).all() and b.rule_names[0] == "unit"
    high = [e for e in read_events(db) if e["rule_id"] == "high_low"]
    assert sum(e["count"] for e in high) == 192  # every value is above 30 MW x 15 min = 7,500 kWh
    assert high[0]["detail"]["limit_kwh"] == 7500.0


def test_cli_ingest_prints_what_to_do(tmp_path, monkeypatch):
    from kwhub.hub.cli import ingest_cmds

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KWHUB_CONFIG", raising=False)
    (tmp_path / "kwhub.toml").write_text(
        '[[sites]]\nid = "s"\n[[channels]]\nid = "hall_a.load"\nrole = "tenant_load"\nmax_kw = 30000\n')
    app = typer.Typer()
    ingest_cmds.register(app)
    week = write_days(tmp_path / "week.csv", 0, 2, 1000.0)
    res = CliRunner().invoke(app, ["ingest", str(week)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "VEE unit on hall_a.load" in res.output and 'unit = "Wh"' in res.output
