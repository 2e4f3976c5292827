"""Green Button / ESPI adapter: every real sample, generated edge cases, safe parsing."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest
from lxml import etree

from kwhub.core.intervals import IntervalDataError
from kwhub.core.quality import Quality
from kwhub.plugins.meters import greenbutton as gbmod
from kwhub.plugins.meters.greenbutton import GreenButtonMeter
from tests.fixtures.ingest import EspiMeterReading, daily_readings, espi_file, regular_readings

NS = {"e": "http://naesb.org/espi", "a": "http://www.w3.org/2005/Atom"}
START = datetime(2024, 1, 1, tzinfo=UTC)


def samples(shared_dir: Path) -> list[Path]:
    return sorted((shared_dir / "samples" / "greenbutton").glob("*.xml"))


def independent(path: Path) -> dict[str, object]:
    """Counts and sums from a plain lxml parse + XPath, not from the adapter."""
    tree = etree.parse(str(path), etree.XMLParser(resolve_entities=False, no_network=True))
    readings = tree.xpath("//e:IntervalReading", namespaces=NS)
    keys: dict[tuple[int, int], float] = {}
    for r in readings:
        s = int(r.xpath("string(e:timePeriod/e:start)", namespaces=NS))
        d = int(r.xpath("string(e:timePeriod/e:duration)", namespaces=NS))
        keys[(s, d)] = float(r.xpath("string(e:value)", namespaces=NS))
    rts = tree.xpath("//e:ReadingType", namespaces=NS)
    p10 = {int(x) for x in tree.xpath("//e:ReadingType/e:powerOfTenMultiplier/text()", namespaces=NS)}
    return {"n": len(readings), "unique": keys, "reading_types": len(rts), "p10": p10,
            "ltp": len(tree.xpath("//e:LocalTimeParameters", namespaces=NS)),
            "usage_points": len(tree.xpath("//e:UsagePoint", namespaces=NS))}


def _periods(batch) -> list[tuple[int, int, float, str]]:
    """(start, duration, kWh, quality label) of every period reading of a batch, in time order."""
    out = []
    for p in batch.periods:
        assert p.kind == "period"
        out += [(int(a), int(b - a), float(v), Quality(int(q)).label)
                for a, b, v, q in zip(p.starts, p.ends, p.values, p.quality, strict=True)]
    return sorted(out)


# the same ReadingType href is given twice with different accumulationBehaviour (4 and 2)
CONFLICTING_SAMPLE = "BulkSCEUsageSummaryAndIntervalBlock.xml"


def test_every_sample_ingests_with_independent_counts(shared_dir):
    files = samples(shared_dir)
    assert len(files) >= 8
    for path in files:
        cfg = {"reading_type_conflicts": "first"} if path.name == CONFLICTING_SAMPLE else {}
        batch = GreenButtonMeter("gb", cfg).read_file(path)
        ind = independent(path)
        meta = batch.meta
        # every IntervalReading element is either kept or reported as a duplicate
        assert meta["readings"] == ind["n"], path.name
        unique = ind["unique"]
        periods = _periods(batch)
        assert len(batch) + len(periods) == len(unique), path.name
        assert len(batch) + len(periods) + meta["duplicates"] == ind["n"], path.name
        assert meta["period_readings"] == len(periods)
        assert len(meta["reading_types"]) == ind["reading_types"], path.name
        assert len(meta["local_time_parameters"]) == ind["ltp"], path.name
        assert len(meta["usage_points"]) == ind["usage_points"], path.name
        # kWh sums: raw values x 10^p / 1000 (uom 72 Wh in every sample with readings)
        scale = 10.0 ** (next(iter(ind["p10"])) if len(ind["p10"]) == 1 and meta["reading_types"] else 0) / 1000
        interval_sum = sum(v for (s, d), v in unique.items() if d <= 3600) * scale
        assert sum(s.total_kwh for s in batch.series) == pytest.approx(interval_sum), path.name
        assert sum(p[2] for p in periods) == pytest.approx(
            sum(v for (s, d), v in unique.items() if d > 3600) * scale), path.name


def test_sample_with_a_contradictory_reading_type_is_refused_by_default(shared_dir):
    path = shared_dir / "samples" / "greenbutton" / CONFLICTING_SAMPLE
    with pytest.raises(IntervalDataError, match="accumulationBehaviour") as ei:
        GreenButtonMeter("gb").read_file(path)
    assert ei.value.field == "ReadingType/accumulationBehaviour"
    assert ei.value.where == "line 71, element <feed/entry[4]/content/ReadingType/accumulationBehaviour>"
    assert "reading_type_conflicts" in str(ei.value)
    batch = GreenButtonMeter("gb", {"reading_type_conflicts": "first"}).read_file(path)
    assert any("reading_type_conflicts" in n for n in batch.meta["notes"])


def test_metadata_only_files_give_empty_batches(shared_dir):
    gb = shared_dir / "samples" / "greenbutton"
    ltp = GreenButtonMeter("gb").read_file(gb / "ESPILocalTimeParameters.xml")
    assert len(ltp) == 0 and ltp.meta["local_time_parameters"][0]["tzOffset"] == -18000
    assert ltp.meta["local_time_parameters"][0]["dstOffset"] == 3600
    rt = GreenButtonMeter("gb").read_file(gb / "ESPIReadingType.xml")
    assert len(rt) == 0 and rt.meta["reading_types"][0]["uom"] == "72"
    assert rt.meta["reading_types"][0]["intervalLength"] == "300"
    up = GreenButtonMeter("gb").read_file(gb / "ESPIUsagePoint.xml")
    assert len(up) == 0 and list(up.meta["usage_points"].values())[0]["ServiceCategory.kind"] == "0"
    pge_rt = GreenButtonMeter("gb").read_file(gb / "PGEReadingType.xml")
    assert len(pge_rt) == 0 and {r["uom"] for r in pge_rt.meta["reading_types"]} == {"72", "73"}


def test_daily_dst_readings_kept_as_period_readings(shared_dir):
    batch = GreenButtonMeter("gb").read_file(shared_dir / "samples" / "greenbutton" / "ESPIIntervalBlock.xml")
    periods = _periods(batch)
    assert sorted({p[1] for p in periods}) == [82800, 86400, 90000]
    assert len(batch.series) == 0
    p = next(x for x in periods if x[1] == 82800)
    assert p[3] == "valid"


def test_pge_duplicates_across_overlapping_blocks(shared_dir):
    path = shared_dir / "samples" / "greenbutton" / "PGEIntervalBlock.xml"
    batch = GreenButtonMeter("gb").read_file(path)
    (s,) = batch.series
    assert batch.meta["duplicates"] > 0 and batch.meta["quality_conflicts"] == 0
    assert len(np.unique(s.starts)) == len(s)
    assert (s.quality == Quality.VALID).all()  # ESPI quality 17 = validated


def test_generated_daily_dst_readings(tmp_path):
    mr = EspiMeterReading(interval_length=86400, readings=daily_readings(date(2024, 3, 9), 3, "America/New_York"))
    batch = GreenButtonMeter("gb").read_file(espi_file(tmp_path / "d.xml", [mr]))
    periods = _periods(batch)
    assert [p[1] for p in periods] == [86400, 82800, 86400]
    assert periods[1][2] == pytest.approx(30.001)


def test_power_uom_flow_direction_and_quality(tmp_path):
    fwd = EspiMeterReading(usage_point="7", meter_reading="1", uom=38, power_of_ten=3, interval_length=900,
                           readings=regular_readings(START, 8, 900), qualities={1: 8, 2: 7, 3: 10, 5: 17})
    rev = EspiMeterReading(usage_point="7", meter_reading="2", flow=19, interval_length=900,
                           readings=regular_readings(START, 8, 900, seed=2), default_quality=9)
    path = espi_file(tmp_path / "p.xml", [fwd, rev])
    batch = GreenButtonMeter("gb").read_file(path)
    got = {s.channel_id: s for s in batch.series}
    assert set(got) == {"gb.7.1", "gb.7.2.received"}
    f = got["gb.7.1"]
    # W x 10^3 over 900 s -> kWh = v * 1000 / 1000 * 0.25
    assert f.values.tolist() == pytest.approx([v * 0.25 for _, _, v in fwd.readings])
    assert f.quality.tolist()[:6] == [0, Quality.ESTIMATED, Quality.EDITED, Quality.SUSPECT, 0, 0]
    r = got["gb.7.2.received"]
    assert r.values.tolist() == pytest.approx([v / 1000 for _, _, v in rev.readings])
    assert (r.quality == Quality.ESTIMATED).all()  # defaultQuality 9 applies
    neg = GreenButtonMeter("gb", {"received_mode": "negate", "channel_map": {"gb.7.1": "grid.import",
                                                                              "gb.7.2": "grid.export"}})
    got2 = {s.channel_id: s for s in neg.read_file(path).series}
    assert set(got2) == {"grid.import", "grid.export"}
    assert (got2["grid.export"].values <= 0).all()


def test_channel_override_and_conflict(tmp_path):
    a = EspiMeterReading(readings=regular_readings(START, 4, 900))
    path = espi_file(tmp_path / "one.xml", [a])
    (s,) = GreenButtonMeter("gb").read_file(path, channel="pv.net").series
    assert s.channel_id == "pv.net"
    b = EspiMeterReading(usage_point="2", readings=regular_readings(START, 4, 900))
    two = espi_file(tmp_path / "two.xml", [a, b])
    with pytest.raises(IntervalDataError, match="meter readings"):
        GreenButtonMeter("gb").read_file(two, channel="pv.net")


def test_overlapping_blocks_deduplicated(tmp_path):
    mr = EspiMeterReading(readings=regular_readings(START, 300, 900), block_size=96, overlap=10)
    path = espi_file(tmp_path / "o.xml", [mr])
    n_xml = len(etree.parse(str(path)).xpath("//e:IntervalReading", namespaces=NS))
    batch = GreenButtonMeter("gb").read_file(path)
    assert n_xml == 300 + 3 * 10
    assert len(batch) == 300 and batch.meta["duplicates"] == 30
    assert batch.series[0].total_kwh == pytest.approx(sum(v for _, _, v in mr.readings) / 1000)


def test_unsupported_uom_error_or_skip(tmp_path):
    mr = EspiMeterReading(uom=73, readings=regular_readings(START, 4, 900))
    path = espi_file(tmp_path / "var.xml", [mr])
    with pytest.raises(IntervalDataError, match="VArh") as ei:
        GreenButtonMeter("gb").read_file(path)
    assert ei.value.field == "ReadingType/uom" and "line" in ei.value.where
    batch = GreenButtonMeter("gb", {"unsupported_uom": "skip"}).read_file(path)
    assert len(batch) == 0 and batch.meta["skipped"]


def test_truncated_xml_names_line_and_element(tmp_path, shared_dir):
    src = (shared_dir / "samples" / "greenbutton" / "PGEIntervalBlock.xml").read_bytes()
    cut = src[: len(src) // 2]
    p = tmp_path / "truncated.xml"
    p.write_bytes(cut)
    with pytest.raises(IntervalDataError, match="truncated") as ei:
        GreenButtonMeter("gb").read_file(p)
    e = ei.value
    assert e.source == str(p) and e.field == "xml"
    assert e.where.startswith("line ") and "element <" in e.where
    assert int(e.where.split()[1].rstrip(",")) >= cut.count(b"\n")


DOCTYPE_XXE = b"""<?xml version="1.0"?>
<!DOCTYPE feed [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<feed xmlns="http://www.w3.org/2005/Atom"><title>&xxe;</title></feed>"""
BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!-- a comment first -->
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<feed xmlns="http://www.w3.org/2005/Atom"><title>&lol2;</title></feed>"""
UNDECLARED_ENTITY = b"""<feed xmlns="http://www.w3.org/2005/Atom" xmlns:espi="http://naesb.org/espi">
<entry><content><espi:IntervalBlock><espi:IntervalReading><espi:value>&x;</espi:value>
</espi:IntervalReading></espi:IntervalBlock></content></entry></feed>"""


@pytest.mark.parametrize(("body", "line"), [(DOCTYPE_XXE, 2), (BILLION_LAUGHS, 3)])
def test_doctype_refused(tmp_path, body, line):
    p = tmp_path / "evil.xml"
    p.write_bytes(body)
    with pytest.raises(IntervalDataError, match="DOCTYPE") as ei:
        GreenButtonMeter("gb").read_file(p)
    assert ei.value.where == f"line {line}, element <!DOCTYPE>" and ei.value.source == str(p)


def test_doctype_refused_after_long_prolog(tmp_path):
    p = tmp_path / "late.xml"
    p.write_bytes(b"<?xml version='1.0'?>\n<!--" + b"x" * 70_000 + b"-->\n" + DOCTYPE_XXE.split(b"\n", 1)[1])
    with pytest.raises(IntervalDataError, match="DOCTYPE"):
        GreenButtonMeter("gb").read_file(p)


def test_undeclared_entity_is_an_error(tmp_path):
    p = tmp_path / "ent.xml"
    p.write_bytes(UNDECLARED_ENTITY)
    with pytest.raises(IntervalDataError, match="entity") as ei:
        GreenButtonMeter("gb").read_file(p)
    assert ei.value.where.startswith("line 2")


def test_bad_value_names_element(tmp_path):
    mr = EspiMeterReading(readings=regular_readings(START, 20, 900), block_size=10)
    path = espi_file(tmp_path / "v.xml", [mr])
    text = path.read_text()
    bad_value = f"<espi:value>{mr.readings[13][2]}</espi:value>"
    assert text.count(bad_value) >= 1
    path.write_text(text.replace(bad_value, "<espi:value>12x</espi:value>", 1))
    with pytest.raises(IntervalDataError, match="12x") as ei:
        GreenButtonMeter("gb").read_file(path)
    assert ei.value.field == "value" and "element <IntervalReading>" in ei.value.where
    missing = path.read_text().replace("<espi:value>12x</espi:value>", "", 1)
    path.write_text(missing)
    with pytest.raises(IntervalDataError, match="missing"):
        GreenButtonMeter("gb").read_file(path)


def test_misaligned_interval_start(tmp_path):
    r = regular_readings(START, 4, 900)
    r[2] = (r[2][0] + 60, 900, r[2][2])
    path = espi_file(tmp_path / "m.xml", [EspiMeterReading(readings=r)])
    with pytest.raises(IntervalDataError, match="misaligned") as ei:
        GreenButtonMeter("gb").read_file(path)
    assert ei.value.field == "timePeriod/start"


def test_large_open_entry_is_drained_while_parsing(tmp_path, monkeypatch):
    """A single huge IntervalBlock is emptied as it streams in: same result, bounded tree."""
    mr = EspiMeterReading(readings=regular_readings(START, 5000, 300, seed=9), interval_length=300,
                          block_size=5000, qualities={i: 8 for i in range(0, 5000, 7)})
    path = espi_file(tmp_path / "big.xml", [mr])
    normal = GreenButtonMeter("gb").read_file(path)
    monkeypatch.setattr(gbmod, "SCAN", False)  # lxml's path (the byte scanner reads a block whole)
    monkeypatch.setattr(gbmod, "_CHUNK", 4096)
    monkeypatch.setattr(gbmod, "_GUARD_BYTES", 16_384)
    calls = {"n": 0}
    real = gbmod._extract

    def spy(block, into, source, keep_last=False):
        calls["n"] += keep_last
        return real(block, into, source, keep_last)

    monkeypatch.setattr(gbmod, "_extract", spy)
    drained = GreenButtonMeter("gb").read_file(path)
    assert calls["n"] > 10
    (a,), (b,) = normal.series, drained.series
    assert a.starts.tolist() == b.starts.tolist() and a.values.tolist() == b.values.tolist()
    assert a.quality.tolist() == b.quality.tolist() and (a.quality == Quality.ESTIMATED).sum() == 715


def test_check_and_sniff(tmp_path):
    assert GreenButtonMeter("gb").check().ok
    assert gbmod.kwhub_sniff_meter_file(Path("x.xml"), b'<feed xmlns:espi="http://naesb.org/espi">') == "meters.greenbutton"
    assert gbmod.kwhub_sniff_meter_file(Path("x.csv"), b"channel_id,interval_start") is None


def test_simulator_greenbutton_round_trip(sim_clean_week, tmp_path):
    """The simulator's ESPI export (Wh integers, a block per local day) reads back to its kWh."""
    from kwhub.hub.demo.simulator.files import write_greenbutton

    path = write_greenbutton(sim_clean_week, "hall_a.load", tmp_path / "hall_a.xml")
    batch = GreenButtonMeter("gb", {"channel_map": {"gb.hall_a.load": "hall_a.load"}}).read_file(path)
    (s,) = batch.series
    want = sim_clean_week.series["hall_a.load"]
    order = np.argsort(want.starts)
    assert s.channel_id == "hall_a.load" and s.interval_minutes == 15
    assert s.starts.tolist() == want.starts[order].tolist()
    assert s.values == pytest.approx(np.rint(want.values[order] * 1000) / 1000)
    assert batch.meta["local_time_parameters"] and batch.meta["duplicates"] == 0


def test_quality_placement_with_repeated_start_in_one_block(tmp_path):
    r = regular_readings(START, 6, 900)
    mr = EspiMeterReading(readings=[*r, r[2]], qualities={1: 10, 6: 8}, block_size=50)
    batch = GreenButtonMeter("gb").read_file(espi_file(tmp_path / "rep.xml", [mr]))
    (s,) = batch.series
    assert batch.meta["duplicates"] == 1 and batch.meta["quality_conflicts"] == 1  # same value, another flag
    assert s.quality.tolist() == [0, Quality.SUSPECT, Quality.ESTIMATED, 0, 0, 0]  # the worse quality is kept
    assert any("worse quality" in n for n in batch.meta["notes"])
