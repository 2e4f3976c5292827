"""CSV meter adapter: profiles, layouts, units, errors naming file/line/field."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from kwhub.core.adapters import AdapterContext
from kwhub.core.campus import Channel
from kwhub.core.intervals import IntervalDataError
from kwhub.core.quality import Quality
from kwhub.hub.demo.simulator.files import write_csv
from kwhub.plugins.meters.csv_meter import CsvMeter, detect_profile, load_profiles, read_header

DATA = Path(__file__).parent / "data"


def epoch(s: str) -> int:
    return int(datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp())


def meter(context_channels: dict[str, int] | None = None, **cfg: object) -> CsvMeter:
    ctx = AdapterContext(channels={k: Channel(id=k, interval_minutes=v) for k, v in (context_channels or {}).items()})
    return CsvMeter("csv", cfg, ctx)


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_profiles_load_and_detect():
    profiles = load_profiles()
    assert {"kwhub", "utility_hour_ending", "revenue_meter"} <= set(profiles)
    assert detect_profile(read_header(DATA / "kwhub_long.csv")).name == "kwhub"
    assert detect_profile(read_header(DATA / "kwhub_wide.csv")).name == "kwhub"
    assert detect_profile(read_header(DATA / "utility_hour_ending.csv")).name == "utility_hour_ending"
    assert detect_profile(read_header(DATA / "revenue_meter.csv")).name == "revenue_meter"
    assert detect_profile(["a", "b"]) is None


def test_kwhub_long_matches_file_contents():
    batch = meter().read_file(DATA / "kwhub_long.csv")
    assert batch.meta["profile"] == "kwhub" and batch.meta["layout"] == "long"
    expected: dict[str, list[tuple[int, float]]] = {}
    for r in rows(DATA / "kwhub_long.csv"):
        expected.setdefault(r["channel_id"], []).append((epoch(r["interval_start"]), float(r["kwh"])))
    got = {s.channel_id: s for s in batch.series}
    assert set(got) == set(expected)
    for ch, pairs in expected.items():
        pairs.sort()
        assert got[ch].starts.tolist() == [p[0] for p in pairs]
        assert got[ch].values.tolist() == pytest.approx([p[1] for p in pairs])
        assert got[ch].interval_minutes == 15
        assert (got[ch].quality == Quality.VALID).all()


def test_kwhub_wide_empty_cells_are_gaps():
    batch = meter().read_file(DATA / "kwhub_wide.csv")
    assert batch.meta["layout"] == "wide"
    table = rows(DATA / "kwhub_wide.csv")
    for s in batch.series:
        present = [(epoch(r["interval_start"]), float(r[s.channel_id])) for r in table if r[s.channel_id] != ""]
        assert s.starts.tolist() == [p[0] for p in present]
        assert s.values.tolist() == pytest.approx([p[1] for p in present])
    assert len(batch) == sum(1 for r in table for k, v in r.items() if k != "interval_start" and v != "")


def test_revenue_meter_interval_ending_demand_to_energy():
    batch = meter(channel_map={"GT1-REV.1": "gt1.net"}).read_file(DATA / "revenue_meter.csv")
    got = {s.channel_id: s for s in batch.series}
    assert set(got) == {"gt1.net", "GT2-REV.1"}
    src = [r for r in rows(DATA / "revenue_meter.csv") if r["Meter"] == "GT1-REV"]
    ends = [epoch(r["Interval End"]) for r in src]
    assert got["gt1.net"].interval_minutes == 15  # inferred from the timestamps
    assert got["gt1.net"].starts.tolist() == [e - 900 for e in ends]
    assert got["gt1.net"].values.tolist() == pytest.approx([float(r["kW"]) * 15 / 60 for r in src])


def test_utility_hour_ending_local_dates():
    batch = meter(timezone="America/New_York").read_file(DATA / "utility_hour_ending.csv", channel="util.main")
    (s,) = batch.series
    assert s.channel_id == "util.main" and s.interval_minutes == 60 and len(s) == 24
    # HE 1 of 2024-03-09 is 00:00-01:00 EST = 05:00Z
    assert s.starts[0] == epoch("2024-03-09T05:00:00Z")
    assert np.all(np.diff(s.starts) == 3600)
    assert s.total_kwh == pytest.approx(sum(float(r["kWh"]) for r in rows(DATA / "utility_hour_ending.csv")))


def test_hour_ending_without_timezone_is_an_error():
    with pytest.raises(IntervalDataError) as ei:
        meter().read_file(DATA / "utility_hour_ending.csv", channel="u")
    assert "timezone" in str(ei.value) and ei.value.where == "line 2"


def test_single_channel_file_needs_channel():
    with pytest.raises(IntervalDataError, match="--channel"):
        meter(timezone="America/New_York").read_file(DATA / "utility_hour_ending.csv")


def test_channel_override_rejects_multi_channel_file():
    with pytest.raises(IntervalDataError, match="holds 2 channels"):
        meter().read_file(DATA / "kwhub_long.csv", channel="x")


@pytest.mark.parametrize(
    ("unit", "value", "minutes", "kwh"),
    [("Wh", 1500.0, 15, 1.5), ("kWh", 2.0, 15, 2.0), ("MWh", 0.25, 15, 250.0), ("kW", 100.0, 15, 25.0),
     ("MW", 2.0, 60, 2000.0), ("kW", 60.0, 5, 5.0), ("W", 4000.0, 15, 1.0)],
)
def test_units_per_row(tmp_path, unit, value, minutes, kwh):
    p = write(tmp_path, "u.csv", "meter,start,len,unit,val\n"
              f"m1,2024-01-01T00:00:00Z,{minutes},{unit},{value}\n"
              f"m1,2024-01-01T{minutes // 60:02d}:{minutes % 60:02d}:00Z,{minutes},{unit},{value}\n")
    m = meter(profile="none", channel_column="meter", timestamp_column="start", interval_minutes_column="len",
              unit_column="unit", value_column="val")
    (s,) = m.read_file(p).series
    assert s.values.tolist() == pytest.approx([kwh, kwh])


def test_unit_and_multiplier_from_config(tmp_path):
    p = write(tmp_path, "m.csv", "channel_id,interval_start,kwh\nc,2024-01-01T00:00:00Z,2\nc,2024-01-01T01:00:00Z,3\n")
    (s,) = meter(unit="MW", multiplier=0.5, interval_minutes=60).read_file(p).series
    assert s.values.tolist() == pytest.approx([1000.0, 1500.0])


def test_unknown_unit_names_line_and_field(tmp_path):
    p = write(tmp_path, "bad_unit.csv", "meter,start,unit,val\nm1,2024-01-01T00:00:00Z,kWh,1\n"
              "m1,2024-01-01T00:15:00Z,kVArh,1\n")
    m = meter(profile="none", channel_column="meter", timestamp_column="start", unit_column="unit",
              value_column="val", interval_minutes=15)
    with pytest.raises(IntervalDataError) as ei:
        m.read_file(p)
    e = ei.value
    assert e.source == str(p) and e.where == "line 3" and e.field == "unit" and "kVArh" in str(e)


def test_malformed_number_names_line_and_field(tmp_path):
    p = write(tmp_path, "bad_num.csv", "channel_id,interval_start,interval_minutes,kwh\n"
              "a,2024-01-01T00:00:00Z,15,1.0\na,2024-01-01T00:15:00Z,15,1.0\na,2024-01-01T00:30:00Z,15,12,5\n")
    with pytest.raises(IntervalDataError) as ei:
        meter().read_file(p)
    assert ei.value.where == "line 4"  # the C tokenizer's complaint about the extra field
    p2 = write(tmp_path, "bad_num2.csv", "channel_id,interval_start,interval_minutes,kwh\n"
               "a,2024-01-01T00:00:00Z,15,1.0\na,2024-01-01T00:15:00Z,15,1.O\n")
    with pytest.raises(IntervalDataError) as ei2:
        meter().read_file(p2)
    assert (ei2.value.where, ei2.value.field) == ("line 3", "kwh") and "1.O" in str(ei2.value)


def test_bad_timestamp_names_line(tmp_path):
    p = write(tmp_path, "bad_ts.csv", "channel_id,interval_start,interval_minutes,kwh\n"
              "a,2024-01-01T00:00:00Z,15,1\na,2024-13-01T00:15:00Z,15,1\n")
    with pytest.raises(IntervalDataError) as ei:
        meter().read_file(p)
    assert (ei.value.where, ei.value.field) == ("line 3", "interval_start")


def test_naive_timestamp_without_timezone(tmp_path):
    p = write(tmp_path, "naive.csv", "channel_id,interval_start,interval_minutes,kwh\na,2024-01-01 00:00,15,1\n")
    with pytest.raises(IntervalDataError, match="no UTC offset"):
        meter().read_file(p)
    (s,) = meter(timezone="Europe/Berlin").read_file(p).series
    assert s.starts[0] == epoch("2023-12-31T23:00:00Z")


def test_strptime_format(tmp_path):
    p = write(tmp_path, "fmt.csv", "channel_id,interval_start,interval_minutes,kwh\na,07/04/2024 13:15,15,1\n")
    (s,) = meter(timestamp_format="%m/%d/%Y %H:%M", timezone="America/Chicago").read_file(p).series
    assert s.starts[0] == epoch("2024-07-04T18:15:00Z")


def test_wrong_interval_length_vs_channel(tmp_path):
    p = write(tmp_path, "len.csv", "channel_id,interval_start,interval_minutes,kwh\n"
              "hall_a.load,2024-01-01T00:00:00Z,15,1\nhall_a.load,2024-01-01T00:05:00Z,5,1\n")
    with pytest.raises(IntervalDataError) as ei:
        meter({"hall_a.load": 15}).read_file(p)
    assert (ei.value.where, ei.value.field) == ("line 3", "interval_minutes")
    wide = write(tmp_path, "wide5.csv", "interval_start,hall_a.load\n2024-01-01T00:00:00Z,1\n2024-01-01T00:05:00Z,1\n")
    with pytest.raises(IntervalDataError, match="wrong interval length") as ei2:
        meter({"hall_a.load": 15}).read_file(wide)
    assert ei2.value.where == "line 3"


def test_misaligned_start(tmp_path):
    p = write(tmp_path, "mis.csv", "channel_id,interval_start,interval_minutes,kwh\n"
              "a,2024-01-01T00:00:00Z,15,1\na,2024-01-01T00:16:00Z,15,1\n")
    with pytest.raises(IntervalDataError, match="misaligned") as ei:
        meter().read_file(p)
    assert ei.value.where == "line 3"


def test_duplicates_collapse_conflicts_fail(tmp_path):
    body = "a,2024-01-01T00:00:00Z,15,1\na,2024-01-01T00:15:00Z,15,2\n"
    p = write(tmp_path, "dup.csv", "channel_id,interval_start,interval_minutes,kwh\n" + body + body)
    batch = meter().read_file(p)
    assert len(batch) == 2 and batch.meta["duplicates"] == 2
    q = write(tmp_path, "conflict.csv", "channel_id,interval_start,interval_minutes,kwh\n" + body +
              "a,2024-01-01T00:15:00Z,15,2.5\n")
    with pytest.raises(IntervalDataError, match="different value") as ei:
        meter().read_file(q)
    assert ei.value.where == "line 4" and "line 3" in str(ei.value)


def test_quality_column_and_unknown_flag(tmp_path):
    p = write(tmp_path, "q.csv", "channel_id,interval_start,interval_minutes,kwh,q\n"
              "a,2024-01-01T00:00:00Z,15,1,A\na,2024-01-01T00:15:00Z,15,1,E\na,2024-01-01T00:30:00Z,15,1,\n"
              "a,2024-01-01T00:45:00Z,15,1,X\n")
    with pytest.raises(IntervalDataError) as ei:
        meter(quality_column="q").read_file(p)
    assert (ei.value.where, ei.value.field) == ("line 5", "q")
    (s,) = meter(quality_column="q", quality_map={"X": "suspect"}).read_file(p).series
    assert s.quality.tolist() == [Quality.VALID, Quality.ESTIMATED, Quality.VALID, Quality.SUSPECT]


def test_missing_column_names_header_line(tmp_path):
    p = write(tmp_path, "nocol.csv", "channel_id,interval_start,interval_minutes,energy\na,2024-01-01T00:00:00Z,15,1\n")
    with pytest.raises(IntervalDataError) as ei:
        meter().read_file(p)
    assert (ei.value.where, ei.value.field) == ("line 1", "kwh")


def test_shuffled_file_gives_identical_series(tmp_path):
    lines = (DATA / "kwhub_long.csv").read_text().splitlines()
    rng = np.random.default_rng(3)
    body = [lines[1:][i] for i in rng.permutation(len(lines) - 1)]
    p = write(tmp_path, "shuffled.csv", "\n".join([lines[0], *body]) + "\n")
    a = {s.channel_id: s for s in meter().read_file(DATA / "kwhub_long.csv").series}
    b = {s.channel_id: s for s in meter().read_file(p).series}
    for ch in a:
        assert a[ch].starts.tolist() == b[ch].starts.tolist()
        assert a[ch].values.tolist() == b[ch].values.tolist()


def test_blank_lines_do_not_shift_line_numbers(tmp_path):
    p = write(tmp_path, "blank.csv", "channel_id,interval_start,interval_minutes,kwh\n"
              "a,2024-01-01T00:00:00Z,15,1\n\na,2024-01-01T00:15:00Z,15,x\n")
    with pytest.raises(IntervalDataError) as ei:
        meter().read_file(p)
    assert ei.value.where == "line 4"


def test_sniff_hooks(registry, tmp_path):
    from kwhub.hub.ingest.batch import sniff_adapter

    assert "meters.csv" in registry.adapters and "meters.greenbutton" in registry.adapters
    assert sniff_adapter(DATA / "kwhub_long.csv", registry) == "meters.csv"
    assert sniff_adapter(DATA / "revenue_meter.csv", registry) == "meters.csv"
    xml = write(tmp_path, "x.xml", '<feed xmlns="http://www.w3.org/2005/Atom" xmlns:espi="http://naesb.org/espi"/>')
    assert sniff_adapter(xml, registry) == "meters.greenbutton"
    binary = tmp_path / "b.bin"
    binary.write_bytes(b"\x00\x01\x02")
    assert sniff_adapter(binary, registry) is None


def test_epoch_values_are_utc():
    (s, _) = meter().read_file(DATA / "kwhub_long.csv").series
    assert datetime.fromtimestamp(int(s.starts[0]), tz=UTC).isoformat() == "2024-03-01T00:00:00+00:00"


@pytest.mark.parametrize("layout", ["long", "wide"])
def test_simulator_files_round_trip(sim_clean_week, sim_campus, tmp_path, layout):
    """The kwhub profile reads the simulator's own CSV export back exactly (DST week)."""
    ids = ["hall_a.load", "pv.net", "gt1.fuel", "grid.export"]
    paths = write_csv(sim_clean_week, tmp_path, layout=layout, channels=ids)
    ctx = AdapterContext(channels={c.id: c for c in sim_campus.channels})
    got = {}
    for p in paths:
        for s in CsvMeter("csv", {}, ctx).read_file(p).series:
            got[s.channel_id] = s
    assert set(got) == set(ids)
    for c in ids:
        want = sim_clean_week.series[c]
        order = np.argsort(want.starts)
        assert got[c].starts.tolist() == want.starts[order].tolist()
        assert got[c].values.tolist() == want.values[order].tolist()  # shortest round-trip text
        assert got[c].interval_minutes == want.interval_minutes
