"""The simulated campus: determinism, physics-ish shapes, balance, faults and file writers."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from lxml import etree

from kwhub.core.quality import Quality
from kwhub.hub.demo.simulator import (
    ALL_CHANNELS,
    FaultSpec,
    campus_definition,
    simulate,
    write_csv,
    write_greenbutton,
)
from kwhub.hub.demo.simulator.campus import AVAIL_CHANNELS, THERMAL

NY = ZoneInfo("America/New_York")
ESPI = {"a": "http://www.w3.org/2005/Atom", "e": "http://naesb.org/espi"}


def test_campus_definition_matches_the_shared_contract(sim_campus):
    site = sim_campus.sites[0]
    assert (site.timezone, site.iso, site.grid_region) == ("America/New_York", "PJM", "RFCE")
    ids = {c.id for c in sim_campus.channels}
    assert ids == set(ALL_CHANNELS)
    for hall, tenant in (("hall_a", "tenant_a"), ("hall_b", "tenant_b"), ("hall_c", "tenant_c")):
        ch = sim_campus.channel(f"{hall}.load")
        assert (ch.role, ch.party, ch.asset, ch.unit) == ("tenant_load", tenant, hall, "kWh")
        assert "tenant" in sim_campus.party(tenant).roles
    assert sim_campus.channel("gt1.fuel").unit == "MMBtu"
    assert sim_campus.channel("re3.avail").unit == "fraction"
    assert sim_campus.channel("grid.export").role == "grid_export"
    gts = [sim_campus.asset("gt1"), sim_campus.asset("gt2")]
    assert gts[0].oem != gts[1].oem
    for a in sim_campus.assets:
        if a.owners:
            assert sum(o.share for o in a.owners) == Decimal(1)
    assert {o.party for o in gts[0].owners} == {"gasco_jv", "campus_op"}
    assert "ipp" in sim_campus.party(sim_campus.asset("pv").owners[0].party).roles
    assert all(c.interval_minutes == 5 for c in campus_definition(5).channels)


def test_same_seed_same_arrays_and_other_seed_differs():
    a = simulate(date(2026, 3, 1), 3, seed=11)
    b = simulate(date(2026, 3, 1), 3, seed=11)
    c = simulate(date(2026, 3, 1), 3, seed=12)
    for ch in ALL_CHANNELS:
        np.testing.assert_array_equal(a.series[ch].values, b.series[ch].values)
        np.testing.assert_array_equal(a.series[ch].starts, b.series[ch].starts)
    assert not np.array_equal(a.truth["hall_a.load"], c.truth["hall_a.load"])


@pytest.mark.parametrize("minutes", [5, 15])
def test_balance_holds_every_interval(minutes):
    r = simulate(date(2026, 6, 20), 4, minutes, seed=3)
    assert len(r.starts) == 4 * 1440 // minutes
    assert np.abs(r.balance_residual()).max() < 1e-6
    for ch in ("grid.import", "grid.export", "bess.charge", "bess.discharge", "pv.net"):
        assert (r.truth[ch] >= 0).all()
    # never import and export in the same interval
    assert not ((r.truth["grid.import"] > 0) & (r.truth["grid.export"] > 0)).any()


def test_dst_day_has_100_quarter_hours(sim_clean_week):
    r = sim_clean_week  # 2026-10-29 .. 2026-11-04; fall back on 2026-11-01
    first = datetime(2026, 10, 29, tzinfo=NY)
    assert int(r.starts[0]) == int(first.timestamp())
    assert len(r.starts) == 7 * 96 + 4
    assert np.abs(r.balance_residual()).max() < 1e-6


def test_fuel_is_output_times_heat_rate_and_availability(sim_clean_week):
    r = sim_clean_week
    campus = r.campus
    for unit in THERMAL:
        hr = campus.asset(unit).heat_rate_mmbtu_per_mwh
        expected = r.truth[f"{unit}.net"] / 1000.0 * hr
        np.testing.assert_allclose(r.truth[f"{unit}.fuel"], expected, atol=1e-6)
        av = r.truth[f"{unit}.avail"]
        assert ((av >= 0) & (av <= 1)).all()
    outaged = [c for c in AVAIL_CHANNELS if r.truth[c].min() < 1.0]
    assert len(outaged) == 1 and outaged[0].startswith("re")
    unit = outaged[0].split(".")[0]
    down = r.truth[outaged[0]] == 0.0
    assert down.sum() >= 3  # several hours of 15-minute intervals
    assert (r.truth[f"{unit}.net"][down] == 0).all()
    assert (r.truth[f"{unit}.fuel"][down] == 0).all()


def test_shapes_look_like_an_ai_campus(sim_month):
    r = sim_month
    mw = {c: r.truth[c] * 4 / 1000 for c in r.truth}  # 15-min kWh -> MW
    for hall, cap in (("hall_a", 60), ("hall_b", 80), ("hall_c", 100)):
        med = np.median(mw[f"{hall}.load"])
        assert 0.85 * cap < med < cap
        # checkpoint dips and restarts: some intervals well below the plateau
        assert (mw[f"{hall}.load"] < 0.9 * med).sum() > 10
    it = sum(mw[f"{h}.load"] for h in ("hall_a", "hall_b", "hall_c"))
    ratio = mw["shared.cooling"] / it
    assert ratio.min() >= 0.079 and ratio.max() <= 0.151
    hour = np.array([datetime.fromtimestamp(int(s), tz=UTC).astimezone(NY).hour for s in r.starts])
    assert (mw["pv.net"][(hour < 5) | (hour >= 20)] == 0).all()
    assert mw["pv.net"].max() > 30
    assert (mw["bess.charge"][(hour < 10) | (hour >= 15)] == 0).all()
    assert (mw["bess.discharge"][(hour < 17) | (hour >= 22)] == 0).all()
    assert mw["bess.charge"].max() <= 50 + 1e-9 and mw["bess.discharge"].max() <= 50 + 1e-9
    assert r.truth["bess.discharge"].sum() < r.truth["bess.charge"].sum()
    assert 9.5 <= r.campus.asset("gt1").heat_rate_mmbtu_per_mwh <= 10.5


def test_default_faults_are_injected_and_listed(sim_month):
    r = sim_month
    kinds = {f.kind for f in r.faults}
    assert kinds == {"gap", "spike", "stuck", "duplicate_file"}
    for f in r.faults:
        if f.kind == "duplicate_file":
            continue
        s = r.series[f.channel]
        epochs = f.epochs(r.interval_minutes)
        i0 = int((f.start_epoch - r.starts[0]) // 900)
        truth = r.truth[f.channel]
        if f.kind == "gap":
            assert not np.isin(epochs, s.starts).any()
            assert len(s) == len(r.starts) - f.n_intervals
        else:
            idx = np.searchsorted(s.starts, epochs)
            got = s.values[idx]
            if f.kind == "spike":
                assert got[0] == pytest.approx(truth[i0] * f.factor, rel=1e-6)
            else:
                assert (got == truth[i0 - 1]).all()
                assert not (truth[i0:i0 + f.n_intervals] == truth[i0 - 1]).all()
    touched = {f.channel for f in r.faults if f.channel}
    assert touched & {"hall_a.load", "hall_b.load", "hall_c.load"}
    assert touched & {"gt1.net", "re2.net", "re3.net", "pv.net"}
    assert all((s.quality == Quality.VALID).all() for s in r.series.values())


def test_fault_outside_the_span_is_refused():
    with pytest.raises(ValueError, match="outside"):
        simulate(date(2026, 1, 1), 1, faults=FaultSpec(gaps=[("hall_a.load", 0, 2)]))
    with pytest.raises(ValueError, match="unknown channel"):
        simulate(date(2026, 1, 1), 1, faults=FaultSpec(gaps=[("nope", 0, 2)]))


def test_long_csv_round_trips_with_gaps_absent(sim_month, tmp_path):
    paths = write_csv(sim_month, tmp_path, "long")
    names = {p.name for p in paths}
    assert "hall_a.load.csv" in names and any(n.endswith("_dup.csv") for n in names)
    dup = next(p for p in paths if p.name.endswith("_dup.csv"))
    orig = dup.with_name(dup.name.replace("_dup.csv", ".csv"))
    assert dup.read_bytes() == orig.read_bytes()
    with (tmp_path / "hall_a.load.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["channel_id", "interval_start", "interval_minutes", "kwh"]
    assert rows[0]["interval_start"] == "2026-10-01T04:00:00Z"
    starts = np.array([int(datetime.strptime(x["interval_start"], "%Y-%m-%dT%H:%M:%SZ")
                           .replace(tzinfo=UTC).timestamp()) for x in rows])
    vals = np.array([float(x["kwh"]) for x in rows])
    s = sim_month.series["hall_a.load"]
    np.testing.assert_array_equal(starts, s.starts)
    np.testing.assert_array_equal(vals, s.values)
    assert len(rows) == len(sim_month.starts) - 4


def test_wide_csv_has_empty_cells_for_gaps(sim_month, tmp_path):
    (path, _dup) = write_csv(sim_month, tmp_path, "wide", channels=["hall_a.load", "gt1.net", "pv.net"])
    with path.open() as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["interval_start", "hall_a.load", "gt1.net", "pv.net"]
    body = rows[1:]
    assert len(body) == len(sim_month.starts)
    empty_a = sum(1 for r in body if r[1] == "")
    empty_gt = sum(1 for r in body if r[2] == "")
    assert (empty_a, empty_gt) == (4, 8)
    assert sum(float(r[3]) for r in body) == pytest.approx(sim_month.series["pv.net"].values.sum())


def test_greenbutton_feed_structure_and_values(sim_clean_week, tmp_path):
    r = sim_clean_week
    p = write_greenbutton(r, "hall_b.load", tmp_path / "hall_b.xml", usage_point_title="Hall B")
    root = etree.parse(str(p), etree.XMLParser(resolve_entities=False, no_network=True)).getroot()
    assert root.tag == "{http://www.w3.org/2005/Atom}feed"
    rt = root.find(".//e:ReadingType", ESPI)
    assert rt.findtext("e:uom", namespaces=ESPI) == "72"
    assert rt.findtext("e:powerOfTenMultiplier", namespaces=ESPI) == "0"
    assert rt.findtext("e:intervalLength", namespaces=ESPI) == "900"
    assert rt.findtext("e:flowDirection", namespaces=ESPI) == "1"
    ltp = root.find(".//e:LocalTimeParameters", ESPI)
    assert ltp.findtext("e:tzOffset", namespaces=ESPI) == "-18000"
    assert root.find(".//e:UsagePoint", ESPI) is not None
    blocks = root.findall(".//e:IntervalBlock", ESPI)
    assert len(blocks) == 7  # one per local day
    lens = sorted(int(b.findtext("e:interval/e:duration", namespaces=ESPI)) for b in blocks)
    assert lens[-1] == 25 * 3600  # the fall-back day
    starts = np.array([int(x) for x in root.xpath("//e:IntervalReading/e:timePeriod/e:start/text()",
                                                 namespaces=ESPI)])
    values = np.array([int(x) for x in root.xpath("//e:IntervalReading/e:value/text()", namespaces=ESPI)])
    np.testing.assert_array_equal(starts, r.starts)
    np.testing.assert_array_equal(values, np.rint(r.truth["hall_b.load"] * 1000).astype(np.int64))
    with pytest.raises(ValueError, match="energy"):
        write_greenbutton(r, "gt1.fuel", tmp_path / "fuel.xml")
