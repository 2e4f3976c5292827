"""The ingest pipeline against a real database: all-or-nothing, idempotent, clear errors."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from kwhub.core.intervals import IntervalDataError
from kwhub.hub.ingest.batch import adapter_context, ingest_file
from kwhub.plugins.meters.csv_meter import CsvMeter
from kwhub.plugins.meters.greenbutton import GreenButtonMeter
from tests.fixtures.ingest import (
    EspiMeterReading,
    daily_readings,
    espi_file,
    make_campus,
    regular_readings,
)

DATA = Path(__file__).parent / "data"
HEADER = "channel_id,interval_start,interval_minutes,kwh\n"


def csv_meter(campus, **cfg):
    return CsvMeter("csv", cfg, adapter_context(campus))


def snapshot(db) -> tuple:
    """Everything a failed ingest must leave untouched."""
    summ = sorted((s.channel_id, s.intervals, round(s.total_kwh, 6)) for s in db.intervals.summary(layer="raw"))
    return summ, db.intervals.count_rows(), len(db.intervals.stale_marks())


def quarter_hours(channel: str, day: str, n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    t0 = int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp())
    return [f"{channel},{datetime.fromtimestamp(t0 + 900 * i, tz=UTC):%Y-%m-%dT%H:%M:%SZ},15,{v:.3f}"
            for i, v in enumerate(rng.random(n) * 1000)]


@pytest.fixture
def good_csv(tmp_path) -> Path:
    p = tmp_path / "good.csv"
    p.write_text(HEADER + "\n".join(quarter_hours("hall_a.load", "2024-03-01", 192) +
                                    quarter_hours("hall_b.load", "2024-03-01", 192, seed=1)) + "\n")
    return p


def test_ingest_stores_and_reingest_changes_nothing(db, good_csv, tmp_path):
    campus = make_campus()
    meter = csv_meter(campus)
    first = ingest_file(db, campus, meter, good_csv, run_vee=False)
    assert first.intervals == 384 and first.new_days == 4 and first.changed_days == 0
    before = snapshot(db)
    assert {c: n for c, n, _ in before[0]} == {"hall_a.load": 192, "hall_b.load": 192}
    again = ingest_file(db, campus, meter, good_csv, run_vee=False)
    assert (again.new_days, again.changed_days, again.unchanged_days) == (0, 0, 4)
    lines = good_csv.read_text().splitlines()
    body = lines[1:]
    shuffled = tmp_path / "shuffled.csv"
    shuffled.write_text("\n".join([lines[0], *[body[i] for i in np.random.default_rng(7).permutation(len(body))]]) + "\n")
    dup = tmp_path / "dup.csv"
    dup.write_text("\n".join([lines[0], *body, *body[:50]]) + "\n")
    for p in (shuffled, dup):
        r = ingest_file(db, campus, meter, p, run_vee=False)
        assert (r.new_days, r.changed_days, r.unchanged_days) == (0, 0, 4)
    assert snapshot(db) == before
    assert len(db.intervals.history("hall_a.load", date(2024, 3, 1))) == 1


def test_restated_value_makes_new_version(db, good_csv, tmp_path):
    campus = make_campus()
    meter = csv_meter(campus)
    ingest_file(db, campus, meter, good_csv, run_vee=False)
    p = tmp_path / "fix.csv"
    p.write_text(HEADER + "hall_a.load,2024-03-01T00:15:00Z,15,1.5\n")
    r = ingest_file(db, campus, meter, p, run_vee=False)
    assert (r.new_days, r.changed_days) == (0, 1)
    assert len(db.intervals.history("hall_a.load", date(2024, 3, 1))) == 2


BAD_CSV = {
    "malformed_row": (HEADER + "hall_a.load,2024-03-02T00:00:00Z,15,1.0\nhall_a.load,2024-03-02T00:15:00Z,15,1,0\n",
                      "line 3", None, {}),
    "malformed_number": (HEADER + "hall_a.load,2024-03-02T00:00:00Z,15,1.0\nhall_b.load,2024-03-02T00:15:00Z,15,x1\n",
                         "line 3", "kwh", {}),
    "unknown_unit": ("channel_id,interval_start,unit,kwh\nhall_a.load,2024-03-02T00:00:00Z,kWh,1\n"
                     "hall_b.load,2024-03-02T00:00:00Z,therm,1\n", "line 3", "unit", {"unit_column": "unit"}),
    "wrong_interval_length": (HEADER + "hall_a.load,2024-03-02T00:00:00Z,15,1\nhall_b.load,2024-03-02T00:00:00Z,5,1\n",
                              "line 3", "interval_minutes", {}),
    "misaligned": (HEADER + "hall_a.load,2024-03-02T00:00:00Z,15,1\nhall_a.load,2024-03-02T00:07:00Z,15,1\n",
                   "line 3", "interval_start", {}),
}


@pytest.mark.parametrize("case", sorted(BAD_CSV))
def test_bad_csv_rejected_and_nothing_stored(db, good_csv, tmp_path, case):
    text, where, field, cfg = BAD_CSV[case]
    campus = make_campus()
    ingest_file(db, campus, csv_meter(campus), good_csv, run_vee=False)
    before = snapshot(db)
    p = tmp_path / f"{case}.csv"
    p.write_text(text)
    with pytest.raises(IntervalDataError) as ei:
        ingest_file(db, campus, csv_meter(campus, **cfg), p, run_vee=False)
    e = ei.value
    assert e.source == str(p) and e.where == where and str(p) in str(e)
    if field:
        assert e.field == field
    assert snapshot(db) == before


def test_bad_line_late_in_file_keeps_earlier_channels_out(db, tmp_path):
    campus = make_campus()
    p = tmp_path / "late.csv"
    rows = quarter_hours("hall_a.load", "2024-04-01", 96) + quarter_hours("hall_b.load", "2024-04-01", 95)
    p.write_text(HEADER + "\n".join(rows) + "\nhall_b.load,2024-04-01T23:45:00Z,15,oops\n")
    with pytest.raises(IntervalDataError) as ei:
        ingest_file(db, campus, csv_meter(campus), p, run_vee=False)
    assert ei.value.where == f"line {len(rows) + 2}"
    assert snapshot(db) == ([], 0, 0)


def test_bad_xml_rejected_and_nothing_stored(db, shared_dir, tmp_path):
    campus = make_campus([("gb.1", 60)])
    gb = GreenButtonMeter("gb", {}, adapter_context(campus))
    src = shared_dir / "samples" / "greenbutton" / "PGEIntervalBlock.xml"
    truncated = tmp_path / "truncated.xml"
    truncated.write_bytes(src.read_bytes()[:400_000])
    evil = tmp_path / "evil.xml"
    evil.write_bytes(b'<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/hostname">]>\n'
                     b'<feed xmlns="http://www.w3.org/2005/Atom"><title>&e;</title></feed>\n')
    for path, match, field in ((truncated, "truncated", "xml"), (evil, "DOCTYPE", "DOCTYPE")):
        with pytest.raises(IntervalDataError, match=match) as ei:
            ingest_file(db, campus, gb, path, run_vee=False)
        assert ei.value.source == str(path) and ei.value.where.startswith("line ") and ei.value.field == field
        assert "element <" in ei.value.where
    assert snapshot(db) == ([], 0, 0)
    r = ingest_file(db, campus, gb, src, run_vee=False)
    assert r.intervals == 2280 and r.duplicates == 276


def test_unknown_channel_and_ad_hoc_channel(db, tmp_path):
    campus = make_campus()
    p = tmp_path / "one.csv"
    p.write_text("Date,HE,kWh\n07/01/2024,1,10\n07/01/2024,2,11\n")
    meter = csv_meter(campus, timezone="America/New_York")
    with pytest.raises(IntervalDataError, match="not configured"):
        ingest_file(db, campus, meter, p, "util.main", run_vee=False)
    r = ingest_file(db, campus, meter, p, "util.main", allow_new_channels=True, run_vee=False)
    assert r.created_channels == ["util.main"] and campus.channel("util.main").interval_minutes == 60
    (s,) = [x for x in db.intervals.summary(layer="raw") if x.channel_id == "util.main"]
    assert s.intervals == 2 and s.total_kwh == pytest.approx(21)


def test_greenbutton_period_readings_are_stored(db, tmp_path):
    """Before: daily readings (23/24/25-hour days) were parsed, then dropped while the ingest exited 0."""
    campus = make_campus([("site.main", 15)])
    mrs = [EspiMeterReading(readings=regular_readings(datetime(2024, 3, 10, 5, tzinfo=UTC), 96, 900)),
           EspiMeterReading(meter_reading="02", interval_length=86400,
                            readings=daily_readings(date(2024, 3, 9), 3, "America/New_York"))]
    path = espi_file(tmp_path / "gb.xml", mrs)
    gb = GreenButtonMeter("gb", {"channel_map": {"gb.1.01": "site.main", "gb.1.02": "site.main"}},
                          adapter_context(campus))
    r = ingest_file(db, campus, gb, path, run_vee=False)
    assert r.intervals == 96 and r.periods == {"readings": 3, "new": 3, "changed": 0, "unchanged": 0}
    assert r.period_channels == ["site.main"]
    (s,) = db.intervals.summary(layer="raw")
    assert s.total_kwh == pytest.approx(sum(v for _, _, v in mrs[0].readings) / 1000)
    (p,) = db.periods.read(["site.main"], 0, 2**40)
    # the hand-written expectation: local midnights of 9, 10 (23 h) and 11 March 2024 in New York
    assert p.kind == "period" and (p.ends - p.starts).tolist() == [86400, 82800, 86400]
    assert p.starts.tolist() == [1709960400, 1710046800, 1710129600]
    assert p.values.tolist() == [30.0, 30.001, 30.002]
    again = ingest_file(db, campus, gb, path, run_vee=False)
    assert again.periods == {"readings": 3, "new": 0, "changed": 0, "unchanged": 3}
    assert db.periods.count_rows() == 3


def test_restated_period_reading_gets_a_new_version(db, tmp_path):
    campus = make_campus([("site.main", 15)])
    first = [(1709960400, 86400, 30000), (1710046800, 82800, 31000)]
    restated = [(1709960400, 86400, 30000), (1710046800, 82800, 31500)]
    gb = GreenButtonMeter("gb", {"channel": "site.main"}, adapter_context(campus))
    ingest_file(db, campus, gb, espi_file(tmp_path / "a.xml", [EspiMeterReading(readings=first)]), run_vee=False)
    r = ingest_file(db, campus, gb, espi_file(tmp_path / "b.xml", [EspiMeterReading(readings=restated)]),
                    run_vee=False)
    assert r.periods == {"readings": 2, "new": 0, "changed": 1, "unchanged": 1}
    hist = db.periods.history("site.main", "period", 1710046800, 1710129600)
    assert [(h["version"], h["value"], h["is_current"]) for h in hist] == [(1, 31.0, False), (2, 31.5, True)]
    (p,) = db.periods.read(["site.main"], 0, 2**40)
    assert p.values.tolist() == [30.0, 31.5]


def test_monthly_and_daily_reads_in_one_file(db, tmp_path):
    campus = make_campus([("util.main", 60)])
    oct_first, nov_first = 1727755200, 1730433600  # 1 Oct and 1 Nov 2024, 00:00 New York (EDT)
    reads = [(oct_first, nov_first - oct_first, 7_440_000)] + daily_readings(date(2024, 11, 2), 3, "America/New_York")
    gb = GreenButtonMeter("gb", {"channel": "util.main"}, adapter_context(campus))
    r = ingest_file(db, campus, gb, espi_file(tmp_path / "m.xml", [EspiMeterReading(readings=reads)]), run_vee=False)
    assert r.periods["new"] == 4
    (p,) = db.periods.read(["util.main"], 0, 2**40)
    assert ((p.ends - p.starts) // 3600).tolist() == [744, 24, 25, 24]  # October, 2 Nov, 3 Nov (fall back), 4 Nov


def test_bad_reading_in_a_file_with_period_readings_stores_nothing(db, tmp_path):
    campus = make_campus([("site.main", 15)])
    good = daily_readings(date(2024, 3, 9), 3, "America/New_York")
    path = espi_file(tmp_path / "gb.xml", [EspiMeterReading(readings=[*good, (1710129600 + 86400, 899, 5)])])
    gb = GreenButtonMeter("gb", {"channel": "site.main"}, adapter_context(campus))
    with pytest.raises(IntervalDataError, match="899 s"):
        ingest_file(db, campus, gb, path, run_vee=False)
    assert db.periods.count_rows() == 0 and snapshot(db) == ([], 0, 0)


# ---------------------------------------------------------------- checks on every batch (issue 10)


def _batch(cid: str, starts: list[int], values: list[float] | None = None):
    from kwhub.core.intervals import ChannelSeries, IntervalBatch

    vals = values or [1.0] * len(starts)
    return IntervalBatch("plugin-adapter", [ChannelSeries(cid, 15, starts, vals, None)])


def test_300_character_channel_id_is_a_clear_error_on_both_databases(db):
    """Before: PostgreSQL refused the varchar(200) value deep in the write ("looks like a bug")."""
    from kwhub.hub.ingest.batch import ingest_batch

    campus = make_campus()
    with pytest.raises(IntervalDataError, match="300 characters") as ei:
        ingest_batch(db, campus, _batch("c" * 300, [1704067200]), allow_new_channels=True, run_vee=False)
    assert "c" * 300 not in str(ei.value)
    assert snapshot(db) == ([], 0, 0)


def test_year_9999_is_refused_before_anything_is_written(db, tmp_path):
    """Before: the raw row was committed, then VEE crashed, and `readings --summary` failed for good."""
    from kwhub.hub.ingest.batch import ingest_batch

    campus = make_campus()
    with pytest.raises(IntervalDataError, match="outside the accepted range") as ei:
        ingest_batch(db, campus, _batch("hall_a.load", [1704067200, 253402300800 - 900]))
    assert ei.value.field == "start" and "9999-12-31T23:45:00Z" in str(ei.value)
    assert snapshot(db) == ([], 0, 0)
    with pytest.raises(IntervalDataError, match="value inf"):
        ingest_batch(db, campus, _batch("hall_a.load", [1704067200], [float("inf")]))


def test_vee_runs_when_available(db, good_csv):
    pytest.importorskip("kwhub.hub.ingest.vee")
    campus = make_campus()
    r = ingest_file(db, campus, csv_meter(campus), good_csv)
    assert r.vee is not None and r.vee_note == ""


# ---------------------------------------------------------------- CLI


@pytest.fixture
def cli(tmp_path, monkeypatch):
    from kwhub.hub.cli import ingest_cmds

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KWHUB_CONFIG", raising=False)
    app = typer.Typer()
    ingest_cmds.register(app)
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(app, list(args))

    return run


def test_cli_ingest_and_readings(cli, tmp_path):
    src = tmp_path / "he.csv"
    src.write_text((DATA / "utility_hour_ending.csv").read_text())
    res = cli("ingest", "--adapter", "meters.csv", str(src), "--channel", "util.main",
              "--timezone", "America/New_York", "--no-vee")
    assert res.exit_code == 0, res.output
    assert "util.main" in res.output and "24" in res.output
    out = cli("readings", "util.main", "--start", "2024-03-09", "--end", "2024-03-11", "--format", "json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert len(data["intervals"]) == 24 and data["intervals"][0]["interval_start"] == "2024-03-09T05:00:00Z"
    assert data["intervals"][0]["kwh"] == pytest.approx(512.4) and data["intervals"][0]["quality"] == "valid"
    csv_out = cli("readings", "util.main", "--start", "2024-03-09T05:00:00Z", "--end", "2024-03-09T07:00:00Z", "--format", "csv")
    assert csv_out.exit_code == 0 and len(csv_out.output.strip().splitlines()) == 3
    summ = cli("readings", "--summary", "--format", "json")
    assert summ.exit_code == 0, summ.output
    (ch,) = json.loads(summ.output)["channels"]
    assert ch["channel_id"] == "util.main" and ch["intervals"] == 24
    assert ch["total_kwh"] == pytest.approx(16283.2) and ch["first_start"] == "2024-03-09T05:00:00Z"


def test_cli_sniffs_adapter_and_reports_errors(cli, tmp_path):
    good = tmp_path / "wide.csv"
    good.write_text((DATA / "kwhub_wide.csv").read_text())
    res = cli("ingest", str(good), "--no-vee", "--format", "json")
    assert res.exit_code == 0, res.output
    (rep,) = json.loads(res.output)["files"]
    assert rep["adapter"] == "meters.csv" and rep["intervals"] == 10
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "x,2024-01-01T00:00:00Z,15,1\nx,2024-01-01T00:15:00Z,15,nan?\n")
    res = cli("ingest", str(bad), "--no-vee")
    assert res.exit_code != 0 and isinstance(res.exception, IntervalDataError)
    assert "line 3" in str(res.exception)
    res2 = cli("ingest", str(good), str(bad), "--no-vee")
    assert res2.exit_code != 0 and "1 of 2 file(s) rejected" in str(res2.exception)


def test_cli_ingest_greenbutton_daily_reads_and_readings_periods(cli, tmp_path):
    path = espi_file(tmp_path / "daily.xml", [EspiMeterReading(
        interval_length=86400, readings=daily_readings(date(2024, 11, 2), 3, "America/New_York"))])
    res = cli("ingest", str(path), "--channel", "util.daily", "--no-vee")
    assert res.exit_code == 0, res.output
    assert "period readings of util.daily stored" in res.output and "3/0/0" in res.output
    out = cli("readings", "util.daily", "--periods", "--start", "2024-11-01", "--format", "json")
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)["period_readings"]
    assert [r["hours"] for r in rows] == [24, 25, 24]
    assert rows[1] == {"kind": "period", "start": "2024-11-03T04:00:00Z", "end": "2024-11-04T05:00:00Z",
                       "hours": 25, "kwh": 30.001, "quality": "valid"}
    csv_out = cli("readings", "util.daily", "--periods", "--start", "2024-11-03", "--end", "2024-11-04", "--format", "csv")
    assert csv_out.output.splitlines()[0] == "channel_id,kind,start,end,hours,kwh,quality"
    assert len(csv_out.output.splitlines()) == 3  # the 2nd (ends 04:00 UTC on the 3rd) and the 3rd
    summ = json.loads(cli("readings", "--summary", "--format", "json").output)
    assert summ["period_readings"] == [{"channel_id": "util.daily", "kind": "period", "readings": 3,
                                        "first_start": "2024-11-02T04:00:00Z", "last_end": "2024-11-05T05:00:00Z"}]


def test_store_refuses_instants_no_day_arithmetic_survives(db):
    """The store's own guard (a plugin writing directly): years 1900..8999 only."""
    from kwhub.core.intervals import ChannelSeries

    with pytest.raises(IntervalDataError, match="years the store holds"):
        db.intervals.write_series([ChannelSeries("x", 15, [253402300800 - 900], [1.0], None)])
    assert db.intervals.count_rows() == 0


def test_readings_summary_survives_a_row_stored_before_the_checks(db):
    """A year-9999 day written before the checks existed no longer breaks `readings --summary`."""
    from kwhub.core.intervals import day_start_epoch
    from kwhub.hub.store import day_batches

    day = date(9999, 12, 31)
    n = 96
    vals = np.ones(n).tobytes()
    qual = np.zeros(n, dtype=np.uint8).tobytes()
    from kwhub.hub.store.tables import interval_day_table

    with db.write_transaction() as conn:
        conn.execute(interval_day_table.insert(), [{
            "channel_id": "old", "day": day, "layer": "raw", "version": 1, "interval_minutes": 15, "n_values": n,
            "values": vals, "quality": qual, "rule_ids": None, "rule_names": "[]", "content_hash": "x" * 64,
            "source": "legacy", "created_at": datetime.now(UTC), "is_current": True}])
    (s,) = db.intervals.summary(layer="raw")
    assert s.intervals == 96 and s.last_end is None and s.first_start is not None
    assert day_batches.STORE_END_EPOCH > day_start_epoch(date(8999, 12, 31))


def test_cli_refuses_directories_and_devices(cli, tmp_path):
    for target in (tmp_path, Path("/dev/zero")):
        res = cli("ingest", str(target), "--no-vee")
        assert res.exit_code != 0 and "not a regular file" in str(res.exception)
