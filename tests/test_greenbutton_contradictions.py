"""Green Button contradictions and limits: errors with the element and its line, never a silent choice.

Each defect of issue 10 is a real ESPI file written by the test fixtures and edited the
way a broken or hostile producer would; the expectations are written out by hand.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from kwhub.core.adapters import AdapterContext
from kwhub.core.input_limits import InputLimits
from kwhub.core.intervals import IntervalDataError
from kwhub.core.quality import Quality
from kwhub.plugins.meters.greenbutton import GreenButtonMeter
from tests.fixtures.ingest import EspiMeterReading, espi_file, regular_readings

START = datetime(2024, 1, 1, tzinfo=UTC)
T0 = int(START.timestamp())


def gb(limits: InputLimits | None = None, **cfg: object) -> GreenButtonMeter:
    return GreenButtonMeter("gb", cfg, AdapterContext(limits=limits or InputLimits()))


def base_file(tmp_path: Path, n: int = 4, **kw: object) -> tuple[Path, str, list[tuple[int, int, int]]]:
    r = regular_readings(START, n, 900)
    p = espi_file(tmp_path / "base.xml", [EspiMeterReading(readings=r, **kw)])  # type: ignore[arg-type]
    return p, p.read_text(), r


def edited(tmp_path: Path, text: str, name: str = "edited.xml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def refused(path: Path, meter: GreenButtonMeter | None = None) -> IntervalDataError:
    with pytest.raises(IntervalDataError) as ei:
        (meter or gb()).read_file(path)
    e = ei.value
    assert e.source == str(path) and e.where.startswith("line ") and len(str(e)) < 1000
    return e


def line_of(text: str, needle: str, nth: int = 1) -> int:
    at = -1
    for _ in range(nth):
        at = text.index(needle, at + 1)
    return text.count("\n", 0, at) + 1


def _rt_entry(text: str) -> str:
    a = text.rfind("<entry>", 0, text.index("<espi:ReadingType>"))
    return text[a:text.index("</entry>", a) + len("</entry>\n")]


# ------------------------------------------------------------------ ReadingType


def test_conflicting_reading_type_units_are_an_error(tmp_path):
    """Before: the last ReadingType won silently (Wh read as W: the energy divided by 4)."""
    p, text, _ = base_file(tmp_path)
    rt = _rt_entry(text)
    twice = text.replace(rt, rt + rt.replace("<espi:uom>72</espi:uom>", "<espi:uom>38</espi:uom>"))
    e = refused(edited(tmp_path, twice))
    assert e.field == "ReadingType/uom" and "'72'" in str(e) and "'38'" in str(e)
    assert e.where == f"line {line_of(twice, '<espi:uom>38')}, element <feed/entry[5]/content/ReadingType/uom>"
    first = gb(reading_type_conflicts="first").read_file(edited(tmp_path, twice))
    last = gb(reading_type_conflicts="last").read_file(edited(tmp_path, twice))
    assert last.series[0].total_kwh == pytest.approx(first.series[0].total_kwh / 4)


def test_unlinked_meter_reading_with_two_different_reading_types_is_an_error(tmp_path):
    a = EspiMeterReading(usage_point="1", readings=regular_readings(START, 4, 900))
    b = EspiMeterReading(usage_point="2", uom=38, readings=regular_readings(START, 4, 900))
    text = espi_file(tmp_path / "two.xml", [a, b]).read_text()
    unlinked = text.replace('<link rel="related" href="https://example.test/DataCustodian/espi/1_1/resource/'
                            'ReadingType/1-01"/>', "")
    e = refused(edited(tmp_path, unlinked))
    assert e.field == "ReadingType" and "2 different ReadingTypes" in str(e) and "uom 38, 72" in str(e)


@pytest.mark.parametrize("p10", [400, -400, 13])
def test_absurd_power_of_ten_multiplier_is_an_error(tmp_path, p10):
    """Before: 400 crashed (OverflowError, "looks like a bug"); -400 stored zeros."""
    p, text, _ = base_file(tmp_path)
    bad = text.replace("<espi:powerOfTenMultiplier>0<", f"<espi:powerOfTenMultiplier>{p10}<")
    e = refused(edited(tmp_path, bad))
    assert e.field == "ReadingType/powerOfTenMultiplier" and str(p10) in str(e)
    assert e.where.endswith("element <feed/entry[4]/content/ReadingType/powerOfTenMultiplier>")


def test_reading_type_field_that_is_not_a_number(tmp_path):
    p, text, _ = base_file(tmp_path)
    e = refused(edited(tmp_path, text.replace("<espi:uom>72</espi:uom>", "<espi:uom>Wh</espi:uom>")))
    assert e.field == "ReadingType/uom" and "'Wh'" in str(e)


# ------------------------------------------------------------------ readings


def test_conflicting_duplicate_readings_are_an_error(tmp_path):
    """Before: the later value was kept silently."""
    r = regular_readings(START, 6, 900)
    path = espi_file(tmp_path / "dup.xml", [EspiMeterReading(readings=[*r, (r[2][0], 900, r[2][2] + 7)], block_size=6)])
    text = path.read_text()
    e = refused(path)
    assert e.field == "value" and "appears twice with different values" in str(e)
    assert f"{r[2][2] / 1000!r} kWh (line {line_of(text, '<espi:IntervalBlock>')})" in str(e)
    assert e.where == f"line {line_of(text, '<espi:IntervalBlock>', 2)}, element <IntervalReading>"


@pytest.mark.parametrize("value", ["NaN", "nan", "inf", "-Infinity", "1e400"])
def test_non_finite_values_are_an_error(tmp_path, value):
    """Before: NaN became a silent gap."""
    p, text, r = base_file(tmp_path)
    bad = text.replace(f"<espi:value>{r[1][2]}</espi:value>", f"<espi:value>{value}</espi:value>", 1)
    e = refused(edited(tmp_path, bad))
    assert e.field == "value" and e.where.endswith("element <IntervalReading>")


def test_value_too_large_after_the_multiplier(tmp_path):
    p, text, r = base_file(tmp_path)
    bad = text.replace(f"<espi:value>{r[1][2]}</espi:value>", "<espi:value>1e300</espi:value>", 1)
    bad = bad.replace("<espi:powerOfTenMultiplier>0<", "<espi:powerOfTenMultiplier>12<")
    e = refused(edited(tmp_path, bad))
    assert e.field == "value" and "too large" in str(e)


@pytest.mark.parametrize("duration", [899, 120, 3601, 86399])
def test_durations_off_the_grid_are_an_error(tmp_path, duration):
    """Before: 899 s readings were dropped in silence."""
    p, text, _ = base_file(tmp_path)
    bad = text.replace("<espi:duration>900</espi:duration>", f"<espi:duration>{duration}</espi:duration>", 2)
    e = refused(edited(tmp_path, bad))
    assert e.field == "timePeriod/duration" and f"{duration} s" in str(e)


def test_zero_and_negative_durations(tmp_path):
    p, text, _ = base_file(tmp_path)
    for d in (0, -900):
        e = refused(edited(tmp_path, text.replace("<espi:duration>900</espi:duration>",
                                                  f"<espi:duration>{d}</espi:duration>", 2)))
        assert e.field == "timePeriod/duration" and "not positive" in str(e)


@pytest.mark.parametrize("start", [10 ** 14, 10 ** 14 - 10 ** 14 % 900, 4133980800, 0])
def test_starts_outside_the_sane_range_are_an_error(tmp_path, start):
    """Before: year 3170843 ended in "ValueError: year 3170843 is out of range" ("looks like a bug")."""
    p, text, r = base_file(tmp_path)
    bad = text.replace(f"<espi:start>{r[0][0]}</espi:start></espi:timePeriod>",
                       f"<espi:start>{start}</espi:start></espi:timePeriod>", 1)
    e = refused(edited(tmp_path, bad))
    assert e.field == "timePeriod/start" and "1990-01-01..2100-12-31" in str(e)


def test_start_with_more_digits_than_an_epoch(tmp_path):
    p, text, r = base_file(tmp_path)
    bad = text.replace(f"<espi:start>{r[0][0]}</espi:start></espi:timePeriod>",
                       f"<espi:start>{'9' * 30}</espi:start></espi:timePeriod>", 1)
    e = refused(edited(tmp_path, bad))
    assert e.field == "timePeriod/start" and "9" * 31 not in str(e)


# ------------------------------------------------------------------ what the file is


def test_unknown_namespace_is_an_error_not_an_empty_batch(tmp_path):
    """Before: a wrong namespace stored 0 intervals and exited 0."""
    p, text, _ = base_file(tmp_path)
    bad = text.replace("http://naesb.org/espi", "http://naesb.org/espi/v9")
    e = refused(edited(tmp_path, bad))
    assert "espi/v9" in str(e) and "nothing would be stored" in str(e) and e.field == "xml"


def test_feed_without_any_espi_resource_is_an_error(tmp_path):
    p = edited(tmp_path, '<feed xmlns="http://www.w3.org/2005/Atom"><title>empty</title></feed>')
    assert "no Green Button (ESPI) resources" in str(refused(p))
    other = edited(tmp_path, '<rss><channel><item>1</item></channel></rss>', "rss.xml")
    refused(other)


def test_unused_espi_resources_are_reported_not_dropped_silently(shared_dir):
    path = shared_dir / "samples" / "greenbutton" / "BulkSCEUsageSummaryAndIntervalBlock.xml"
    batch = gb(reading_type_conflicts="first").read_file(path)
    assert any("UsageSummary" in n for n in batch.meta["notes"])


def test_period_and_register_readings(tmp_path):
    """Daily/billing durations become period readings; a cumulative ReadingType gives register readings."""
    day = (T0, 7200, 5000)
    month = (T0 + 7200, 31 * 86400, 900000)
    per = EspiMeterReading(meter_reading="02", interval_length=86400, readings=[day, month])
    reg = EspiMeterReading(meter_reading="03", readings=[(T0, 900, 100000), (T0 + 900, 900, 100250)])
    text = espi_file(tmp_path / "p.xml", [per, reg]).read_text()
    # meter reading 03 reads a cumulative register (accumulationBehaviour 1 = bulkQuantity)
    rt3 = text[text.rfind("<entry>", 0, text.index("ReadingType/1-03\"/><title></title><content><espi:ReadingType")):]
    rt3 = rt3[:rt3.index("</entry>")]
    text = text.replace(rt3, rt3.replace("<espi:accumulationBehaviour>4<", "<espi:accumulationBehaviour>1<"))
    batch = gb().read_file(edited(tmp_path, text))
    assert len(batch) == 0
    got = {(p.channel_id, p.kind): p for p in batch.periods}
    pr = got[("gb.1.02", "period")]
    assert pr.starts.tolist() == [T0, T0 + 7200] and pr.ends.tolist() == [T0 + 7200, T0 + 7200 + 31 * 86400]
    assert pr.values.tolist() == [5.0, 900.0] and (pr.quality == Quality.VALID).all()
    rg = got[("gb.1.03", "register")]
    assert rg.ends.tolist() == [T0 + 900, T0 + 1800] and rg.values.tolist() == [100.0, 100.25]
    assert np.array_equal(rg.starts, rg.ends)


def test_channel_id_longer_than_the_store_holds(tmp_path):
    p, _, _ = base_file(tmp_path)
    e = refused(p, gb(channel_map={"gb.1": "x" * 300}))
    assert e.field == "channel" and "300 characters" in str(e) and "x" * 300 not in str(e)


# ------------------------------------------------------------------ limits


def test_64_mib_prolog_is_refused_quickly(tmp_path):
    """Before: the prolog was re-decoded on every 64 KiB read (quadratic) up to 64 MiB."""
    p = tmp_path / "prolog.xml"
    with p.open("wb") as fh:
        fh.write(b'<?xml version="1.0"?>\n<!--')
        fh.write(b"x" * (64 << 20))
        fh.write(b'-->\n<feed xmlns="http://www.w3.org/2005/Atom"/>\n')
    t = time.perf_counter()
    e = refused(p)
    assert time.perf_counter() - t < 5 and "max_header_kb" in str(e)


def test_metadata_volume_limit(tmp_path):
    ups = "".join(f'<entry><link rel="self" href="https://x/UsagePoint/{i}"/><content>'
                  f'<espi:UsagePoint><espi:name>{"n" * 500}</espi:name></espi:UsagePoint></content></entry>'
                  for i in range(200))
    p = edited(tmp_path, f'<feed xmlns="http://www.w3.org/2005/Atom" xmlns:espi="http://naesb.org/espi">{ups}</feed>')
    e = refused(p, gb(InputLimits(max_metadata_mb=0.05)))
    assert "max_metadata_mb" in str(e)
    assert len(gb().read_file(p).meta["usage_points"]) == 200


def test_memory_limit_on_readings(tmp_path):
    p, _, _ = base_file(tmp_path, n=2000)
    e = refused(p, gb(InputLimits(max_memory_mb=0.1)))
    assert "max_memory_mb" in str(e) and e.field == "IntervalReading"


def test_endless_input_is_refused(tmp_path):
    with pytest.raises(IntervalDataError, match="not a regular file"):
        gb().read_file(Path("/dev/zero"))
