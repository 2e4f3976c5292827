"""Green Button adapter: the fast paths give the same answers as the general ones."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from lxml import etree

from kwhub.core.intervals import IntervalDataError
from kwhub.core.quality import Quality
from kwhub.plugins.meters import greenbutton as gbmod
from kwhub.plugins.meters.greenbutton import GreenButtonMeter
from tests.fixtures.ingest import EspiMeterReading, espi_file, regular_readings

NS = {"e": "http://naesb.org/espi", "a": "http://www.w3.org/2005/Atom"}
START = datetime(2024, 1, 1, tzinfo=UTC)
E = "http://naesb.org/espi"


def _xpath_quality(path: Path) -> dict[int, int]:
    """start -> first quality code of the last reading with that start (independent of the adapter)."""
    tree = etree.parse(str(path))
    out: dict[int, int] = {}
    for r in tree.xpath("//e:IntervalReading", namespaces=NS):
        s = int(r.xpath("string(e:timePeriod/e:start)", namespaces=NS))
        q = r.xpath("e:ReadingQuality/e:quality/text()", namespaces=NS)
        out[s] = int(q[0]) if q else 0
    return out


@pytest.mark.parametrize("every", [1, 2, 5, 7, 20, 97])
def test_quality_placement_sparse_and_dense(tmp_path, every):
    rows = regular_readings(START, 300, 900, seed=every)
    mr = EspiMeterReading(readings=rows, block_size=96, qualities={i: (8, 10, 7, 17)[i % 4] for i in range(0, 300, every)})
    path = espi_file(tmp_path / f"q{every}.xml", [mr])
    (s,) = GreenButtonMeter("gb").read_file(path).series
    want = _xpath_quality(path)
    got = dict(zip(s.starts.tolist(), s.quality.tolist(), strict=True))
    assert got == {k: int(gbmod.ESPI_QUALITY[v]) for k, v in want.items()}


def test_first_quality_of_a_reading_counts(tmp_path):
    mr = EspiMeterReading(readings=regular_readings(START, 40, 900), qualities={3: 10, 30: 8}, block_size=40)
    path = espi_file(tmp_path / "two.xml", [mr])
    text = path.read_text()
    one = "<espi:ReadingQuality><espi:quality>10</espi:quality></espi:ReadingQuality>"
    assert one in text, "the test fixture no longer writes ReadingQuality this way"
    path.write_text(text.replace(one, one + "<espi:ReadingQuality><espi:quality>8</espi:quality></espi:ReadingQuality>"))
    (s,) = GreenButtonMeter("gb").read_file(path).series
    assert s.quality[3] == Quality.SUSPECT and s.quality[30] == Quality.ESTIMATED
    assert (np.delete(s.quality, [3, 30]) == Quality.VALID).all()


def test_numbers_fast_and_general_paths_agree():
    n = gbmod._numbers
    ints = ["0", "17", "1704085200", "900"]
    assert n(ints, np.int64, 4).tolist() == [0, 17, 1704085200, 900]
    assert n(ints, np.float64, 4).dtype == np.float64
    assert n(ints, np.float64, 4).tolist() == [0.0, 17.0, 1704085200.0, 900.0]
    assert n(["-5", "2.5", " 7\n"], np.float64, 3).tolist() == [-5.0, 2.5, 7.0]
    big = "123456789012345678901234"  # saturates int64: must come out as the float it is
    assert n(["1", big], np.float64, 2).tolist() == [1.0, float(big)]
    assert n(["9007199254740993"], np.float64, 1).tolist() == [float("9007199254740993")]
    assert n(["12x", "3"], np.float64, 2) is None
    assert n(["1", ""], np.int64, 2) is None
    assert n(["1", None], np.int64, 2) is None  # an empty element
    assert n(["3.0", "4"], np.int64, 2).tolist() == [3, 4]
    assert n(["3.5"], np.int64, 1) is None


def test_empty_value_element_names_the_reading(tmp_path):
    mr = EspiMeterReading(readings=regular_readings(START, 10, 900))
    path = espi_file(tmp_path / "e.xml", [mr])
    text = path.read_text()
    first = f"<espi:value>{mr.readings[4][2]}</espi:value>"
    path.write_text(text.replace(first, "<espi:value/>", 1))
    with pytest.raises(IntervalDataError) as ei:
        GreenButtonMeter("gb").read_file(path)
    assert ei.value.field == "value" and "element <IntervalReading>" in ei.value.where


def test_refuse_doctype_reports_root_name():
    def root(doc: bytes) -> str:
        return gbmod.refuse_doctype(Path("x.xml"), io.BytesIO(doc))

    assert root(b'<?xml version="1.0"?>\n<!-- c -->\n<feed xmlns="http://www.w3.org/2005/Atom">') == "feed"
    assert root(b'<atom:entry xmlns:atom="http://www.w3.org/2005/Atom">') == "entry"
    assert root(b'\xef\xbb\xbf<espi:IntervalBlock xmlns:espi="http://naesb.org/espi"/>') == "IntervalBlock"
    assert root(b"") == ""


def _bare_block(path: Path, n: int, every_q: int = 9) -> Path:
    parts = [f'<?xml version="1.0"?>\n<IntervalBlock xmlns="{E}">\n'
             "  <interval><duration>86400</duration><start>1704067200</start></interval>\n"]
    for i in range(n):
        q = "<ReadingQuality><quality>8</quality></ReadingQuality>" if i % every_q == 0 else ""
        parts.append(f"  <IntervalReading>{q}<timePeriod><duration>300</duration>"
                     f"<start>{1704067200 + 300 * i}</start></timePeriod><value>{i % 997}</value></IntervalReading>\n")
    parts.append("</IntervalBlock>\n")
    path.write_text("".join(parts))
    return path


def test_bare_interval_block_document_is_drained_while_parsing(tmp_path, monkeypatch):
    path = _bare_block(tmp_path / "bare.xml", 4000)
    normal = GreenButtonMeter("gb").read_file(path)
    assert normal.meta["interval_blocks"] == 1 and normal.meta["entries"] == 0
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
    assert calls["n"] > 5
    (a,), (b,) = normal.series, drained.series
    assert len(a) == 4000
    assert a.starts.tolist() == b.starts.tolist() and a.values.tolist() == b.values.tolist()
    assert a.quality.tolist() == b.quality.tolist() and (a.quality == Quality.ESTIMATED).sum() == len(range(0, 4000, 9))


def test_block_and_entry_counts(tmp_path):
    mr = EspiMeterReading(readings=regular_readings(START, 500, 900), block_size=96)
    path = espi_file(tmp_path / "c.xml", [mr])
    tree = etree.parse(str(path))
    batch = GreenButtonMeter("gb").read_file(path)
    assert batch.meta["interval_blocks"] == len(tree.xpath("//e:IntervalBlock", namespaces=NS))
    assert batch.meta["entries"] == len(tree.xpath("//a:entry", namespaces=NS))
    assert batch.meta["readings"] == 500
