"""Green Button byte scanner: every file reads exactly as lxml alone reads it (results, lines, errors)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from kwhub.core.intervals import IntervalDataError
from kwhub.plugins.meters import greenbutton as gbmod
from kwhub.plugins.meters import greenbutton_scan as scanmod
from kwhub.plugins.meters.greenbutton import GreenButtonMeter

E = "http://naesb.org/espi"
A = "http://www.w3.org/2005/Atom"
BASE = "https://utility.example/espi/1_1/resource"
SAMPLES = Path(os.environ.get("KWHUB_SHARED", "/work/shared")) / "samples" / "greenbutton"
T0 = 1704067200


def _reading(p: str, i: int, *, cost: bool = False, quality: tuple[int, ...] = (), dur: int = 900,
             value: str | None = None, nl: str = "\n", extra: str = "") -> str:
    parts = [f"<{p}IntervalReading>"]
    if cost:
        parts.append(f"<{p}cost>{i * 7}</{p}cost>")
    for q in quality:
        parts.append(f"<{p}ReadingQuality>{nl}<{p}quality>{q}</{p}quality>{nl}</{p}ReadingQuality>")
    parts.append(f"<{p}timePeriod>{nl}<{p}duration>{dur}</{p}duration>{nl}<{p}start>{T0 + dur * i}</{p}start>"
                 f"{nl}</{p}timePeriod>")
    parts.append(f"<{p}value>{value if value is not None else (i * 37) % 1000}</{p}value>{extra}")
    return nl.join(parts) + f"{nl}</{p}IntervalReading>"


def _feed(blocks: list[list[str]], *, p: str = "espi:", block_open: str | None = None, pre: str | None = None,
          rt: str = "", nl: str = "\n", decl: str = '<?xml version="1.0" encoding="UTF-8"?>\n') -> str:
    """An Atom feed: one UsagePoint, MeterReading, ReadingType and an entry per block."""
    ns = f' xmlns:{p[:-1]}="{E}"' if p else ""
    up = f"{BASE}/Subscription/1/UsagePoint/1"
    mr = f"{up}/MeterReading/1"
    out = [decl, f'<feed xmlns="{A}"{ns}>{nl}<id>urn:x</id>{nl}']

    def entry(links: list[tuple[str, str]], content: str) -> None:
        ls = "".join(f'<link rel="{r}" href="{h}"/>{nl}' for r, h in links)
        out.append(f"<entry>{nl}{ls}<content>{nl}{content}{nl}</content>{nl}</entry>{nl}")

    entry([("self", up)], f"<{p}UsagePoint><{p}ServiceCategory><{p}kind>0</{p}kind></{p}ServiceCategory>"
                          f"</{p}UsagePoint>")
    entry([("self", mr), ("related", f"{BASE}/ReadingType/1")], f"<{p}MeterReading/>")
    entry([("self", f"{BASE}/ReadingType/1")],
          rt or f"<{p}ReadingType><{p}accumulationBehaviour>4</{p}accumulationBehaviour>"
                f"<{p}intervalLength>900</{p}intervalLength><{p}powerOfTenMultiplier>0</{p}powerOfTenMultiplier>"
                f"<{p}uom>72</{p}uom></{p}ReadingType>")
    for k, readings in enumerate(blocks):
        opening = block_open if block_open is not None else f"<{p}IntervalBlock>"
        inner = pre if pre is not None else (f"<{p}interval><{p}duration>86400</{p}duration><{p}start>{T0}"
                                             f"</{p}start></{p}interval>")
        entry([("self", f"{mr}/IntervalBlock/{k + 1}"), ("up", f"{mr}/IntervalBlock")],
              f"{opening}{nl}{inner}{nl}" + nl.join(readings) + f"{nl}</{p}IntervalBlock>")
    out.append("</feed>\n")
    return "".join(out)


def _write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def _state(path: Path, scan: bool, monkeypatch: pytest.MonkeyPatch) -> tuple:
    monkeypatch.setattr(gbmod, "SCAN", scan)
    try:
        st = gbmod.stream_parse(path)
    except IntervalDataError as exc:
        return ("error", str(exc), exc.where, exc.field), None
    arrays = {k: [(a.dtype.str, a.tobytes()) for a in v.cat()] for k, v in st.readings.items()}
    rest = {f: repr(getattr(st, f)) for f in st.__dataclass_fields__
            if f not in ("readings", "scanner", "rt_conflicts", "limits")}
    rest["rt_conflicts"] = repr({k: str(v) for k, v in st.rt_conflicts.items()})
    return ("ok", arrays, rest), st.scanner


def _batch(path: Path, scan: bool, monkeypatch: pytest.MonkeyPatch) -> tuple:
    monkeypatch.setattr(gbmod, "SCAN", scan)

    def arrays(x: object) -> tuple:
        return tuple((v.dtype.str, v.tobytes()) if isinstance(v, np.ndarray) else repr(v)
                     for v in (getattr(x, f) for f in x.__dataclass_fields__))

    try:
        b = GreenButtonMeter("gb").read_file(path)
    except IntervalDataError as exc:
        return ("error", str(exc), exc.where, exc.field)
    return ("ok", [arrays(s) for s in b.series], [arrays(p) for p in b.periods], repr(b.meta))


def same_as_lxml(path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """Assert the scanner changes nothing; return the number of blocks it read (0: lxml read them all)."""
    plain, _ = _state(path, False, monkeypatch)
    scanned, scanner = _state(path, True, monkeypatch)
    assert scanned == plain
    assert _batch(path, True, monkeypatch) == _batch(path, False, monkeypatch)
    return scanner.scanned_blocks if scanner is not None else 0


def test_samples_and_fixtures_read_the_same(monkeypatch):
    files = sorted(SAMPLES.glob("*.xml")) + sorted((Path(__file__).parent / "data" / "hostile").glob("gb_*.xml"))
    assert len(files) > 10
    scanned = {f.name: same_as_lxml(f, monkeypatch) for f in files}
    assert scanned["PGEIntervalBlock.xml"] == 24 and scanned["ESPIIntervalBlock.xml"] == 15
    assert scanned["Coastal_Multi_Family_12hr_Jan_1_2011_to_Jan_1_2012_RetailCustomer_3.xml"] >= 700


@pytest.mark.parametrize("p", ["espi:", "ns0:", "e-1.x:"])
@pytest.mark.parametrize("nl", ["\n", "", "\r\n", "\n\t  "])
def test_layouts_are_scanned(tmp_path, monkeypatch, p, nl):
    blocks = [[_reading(p, 96 * b + i, cost=b % 2 == 0, quality=(8,) if i % 5 == 0 else (), nl=nl)
               for i in range(96)] for b in range(3)]
    path = _write(tmp_path, "f.xml", _feed(blocks, p=p, nl=nl))
    assert same_as_lxml(path, monkeypatch) == 3


def test_default_namespace_on_the_block(tmp_path, monkeypatch):
    blocks = [[_reading("", i, quality=(17,)) for i in range(10)]]
    path = _write(tmp_path, "f.xml", _feed(blocks, p="espi:", block_open=f'<IntervalBlock xmlns="{E}">',
                                           pre="<interval><duration>9000</duration></interval>")
                  .replace("</espi:IntervalBlock>", "</IntervalBlock>"))
    assert same_as_lxml(path, monkeypatch) == 1


def test_qualities_first_counts_and_extras(tmp_path, monkeypatch):
    p = "espi:"
    readings = [_reading(p, i, quality=(10, 8) if i % 3 == 0 else (7,) if i % 3 == 1 else (),
                         extra=f"<{p}tou>1</{p}tou><{p}consumptionTier>2</{p}consumptionTier>" if i % 2 else "")
                for i in range(30)]
    path = _write(tmp_path, "f.xml", _feed([readings]))
    assert same_as_lxml(path, monkeypatch) == 1


def test_lines_beyond_65535(tmp_path, monkeypatch):
    """libxml2 keeps element lines in 16 bits; the lines of readings past it match lxml's."""
    readings = [_reading("espi:", i, cost=i % 2 == 0, quality=(8,) if i % 3 == 0 else ()) for i in range(9000)]
    blocks = [readings[k:k + 1000] for k in range(0, 9000, 1000)]
    path = _write(tmp_path, "f.xml", _feed(blocks))
    assert path.read_text().count("\n") > 70_000
    assert same_as_lxml(path, monkeypatch) == 9
    gbmod.SCAN = True
    st = gbmod.stream_parse(path)
    lines = np.concatenate(next(iter(st.readings.values())).line)
    assert lines.max() > 65_535


@pytest.mark.parametrize("chunk", [64, 1000, 4096])
def test_blocks_across_buffer_boundaries(tmp_path, monkeypatch, chunk):
    blocks = [[_reading("espi:", 40 * b + i, quality=(9,) if i == 3 else ()) for i in range(40)] for b in range(6)]
    path = _write(tmp_path, "f.xml", _feed(blocks))
    monkeypatch.setattr(gbmod, "_SCAN_CHUNK", chunk)
    monkeypatch.setattr(gbmod, "_CHUNK", chunk)
    assert same_as_lxml(path, monkeypatch) == 6


def test_a_block_longer_than_the_window_is_left_to_lxml(tmp_path, monkeypatch):
    blocks = [[_reading("espi:", i) for i in range(400)], [_reading("espi:", 400 + i) for i in range(10)]]
    path = _write(tmp_path, "f.xml", _feed(blocks))
    monkeypatch.setattr(scanmod, "WINDOW", 20_000)
    monkeypatch.setattr(gbmod, "_SCAN_CHUNK", 4096)
    monkeypatch.setattr(gbmod, "_CHUNK", 4096)
    assert same_as_lxml(path, monkeypatch) == 1


# what the scanner must leave to lxml (the block is read by lxml; the results are the same)
LEFT_TO_LXML = {
    "comment in a reading": ("<espi:value>", "<!-- x --><espi:value>"),
    "CDATA value": ("<espi:value>5</espi:value>", "<espi:value><![CDATA[5]]></espi:value>"),
    "character reference": ("<espi:value>5</espi:value>", "<espi:value>&#53;</espi:value>"),
    "decimal value": ("<espi:value>5</espi:value>", "<espi:value>5.5</espi:value>"),
    "minus zero": ("<espi:value>5</espi:value>", "<espi:value>-0</espi:value>"),
    "plus sign": ("<espi:value>5</espi:value>", "<espi:value>+5</espi:value>"),
    "spaces around a value": ("<espi:value>5</espi:value>", "<espi:value> 5 </espi:value>"),
    "start before duration": ("<espi:duration>900</espi:duration>\n<espi:start>1704086100</espi:start>",
                              "<espi:start>1704086100</espi:start><espi:duration>900</espi:duration>", 0),
    "attribute on a reading": ("<espi:IntervalReading>", '<espi:IntervalReading a="1">'),
    "16 digits": ("<espi:value>5</espi:value>", "<espi:value>0000000000000005</espi:value>"),
    "unknown element": ("<espi:value>5</espi:value>", "<espi:value>5</espi:value><espi:note>1</espi:note>"),
    "text between readings": ("</espi:IntervalReading>\n<espi:IntervalReading>",
                              "</espi:IntervalReading>\n7\n<espi:IntervalReading>"),
}
# what makes the file wrong: the error is lxml's own, naming the same line and element
ERRORS = {
    "mismatched tag": ("</espi:value>", "</espi:valu>"),
    "missing value": ("<espi:value>5</espi:value>", ""),
    "two values": ("<espi:value>5</espi:value>", "<espi:value>5</espi:value><espi:value>6</espi:value>"),
    "zero duration": ("<espi:duration>900</espi:duration>", "<espi:duration>0</espi:duration>"),
    "value not a number": ("<espi:value>5</espi:value>", "<espi:value>five</espi:value>"),
    "NaN": ("<espi:value>5</espi:value>", "<espi:value>NaN</espi:value>"),
    "undefined entity": ("<espi:value>5</espi:value>", "<espi:value>&five;</espi:value>"),
    "unclosed block": ("</espi:IntervalBlock>", ""),
    "truncated in a reading": ("<espi:value>5</espi:value>", "<espi:value>5</espi:value><espi:val"),
    "block in a comment": ("<espi:IntervalBlock>", "<!-- <espi:IntervalBlock> -->"),
    "control character": ("<espi:value>5</espi:value>", "<espi:value>5</espi:value>\x01"),
    "invalid UTF-8": ("<espi:value>5</espi:value>", "<espi:value>5</espi:value>\udcff"),
    "duplicate attribute": ("<espi:IntervalBlock>", '<espi:IntervalBlock a="1" a="2">'),
    "form feed between readings": ("</espi:IntervalReading>\n<espi:IntervalReading>",
                                   "</espi:IntervalReading>\f<espi:IntervalReading>"),
    "unclosed comment before the readings": ("</espi:interval>", "</espi:interval><!-- <espi:IntervalReading>"),
    "comment closing in a reading": ("</espi:interval>", "</espi:interval><!-- "),
}


def _damaged(tmp_path: Path, old: str, new: str, where: int = 1) -> Path:
    readings = [[_reading("espi:", 20 * b + i, value="5" if i == 7 else None) for i in range(20)] for b in range(4)]
    text = _feed(readings)
    at = -1
    for _ in range(where + 1):  # the where-th occurrence after the first block's
        at = text.index(old, at + 1)
    text = text[:at] + new + text[at + len(old):]
    return _write(tmp_path, "d.xml", text.encode("utf-8", "surrogateescape"))


@pytest.mark.parametrize("case", sorted(LEFT_TO_LXML))
def test_what_the_scanner_does_not_know_is_read_by_lxml(tmp_path, monkeypatch, case):
    path = _damaged(tmp_path, *LEFT_TO_LXML[case])
    assert same_as_lxml(path, monkeypatch) == 3
    assert _batch(path, True, monkeypatch)[0] == "ok"


def test_comments_and_attributes_around_the_readings_are_scanned(tmp_path, monkeypatch):
    path = _damaged(tmp_path, "</espi:interval>", "<!-- start - 1 --></espi:interval>\n<!---->", where=1)
    assert same_as_lxml(path, monkeypatch) == 4
    path = _damaged(tmp_path, "<espi:IntervalBlock>", "<espi:IntervalBlock\n  b = 'x>y' c=\"\">", where=2)
    assert same_as_lxml(path, monkeypatch) == 4


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_wrong_files_give_lxmls_error(tmp_path, monkeypatch, case):
    path = _damaged(tmp_path, *ERRORS[case])
    same_as_lxml(path, monkeypatch)
    err = _batch(path, True, monkeypatch)
    assert err[0] == "error" and "line " in err[2], err


def test_a_block_outside_an_entry_is_read_again_by_lxml(tmp_path, monkeypatch):
    """A block lxml does not claim where the reader expects one (here nested in a foreign element)."""
    readings = [[_reading("espi:", i) for i in range(5)] for _ in range(2)]
    text = _feed(readings).replace("<content>\n<espi:IntervalBlock>", "<content>\n<x:w xmlns:x='urn:x'>"
                                   "<espi:IntervalBlock>", 1).replace("</espi:IntervalBlock>\n</content>",
                                                                      "</espi:IntervalBlock></x:w>\n</content>", 1)
    path = _write(tmp_path, "f.xml", text)
    plain, _ = _state(path, False, monkeypatch)
    scanned, scanner = _state(path, True, monkeypatch)
    assert scanned == plain and scanner is None  # the scanner's reading was dropped


@pytest.mark.parametrize("wrap", [("<!--", "-->"), ("<![CDATA[", "]]>")])
def test_a_block_in_a_comment_or_cdata_is_not_read(tmp_path, monkeypatch, wrap):
    readings = [[_reading("espi:", 5 * b + i) for i in range(5)] for b in range(3)]
    text = _feed(readings)
    at = text.index("<espi:IntervalBlock>", text.index("<espi:IntervalBlock>") + 1)
    end = text.index("</espi:IntervalBlock>", at) + len("</espi:IntervalBlock>")
    path = _write(tmp_path, "f.xml", text[:at] + wrap[0] + text[at:end] + wrap[1] + text[end:])
    plain, _ = _state(path, False, monkeypatch)
    scanned, scanner = _state(path, True, monkeypatch)
    assert scanned == plain and scanner is None
    assert _batch(path, True, monkeypatch) == _batch(path, False, monkeypatch)
    assert sum(len(x) for c in gbmod.stream_parse(path).readings.values() for x in c.start) == 10


@pytest.mark.parametrize("encoding", ["ISO-8859-1", "UTF-16"])
def test_encodings(tmp_path, monkeypatch, encoding):
    readings = [[_reading("espi:", i) for i in range(5)]]
    text = _feed(readings, decl=f'<?xml version="1.0" encoding="{encoding}"?>\n').replace("<id>urn:x</id>",
                                                                                        "<id>urn:é</id>")
    path = _write(tmp_path, "f.xml", text.encode(encoding.lower()))
    assert same_as_lxml(path, monkeypatch) == (1 if encoding == "ISO-8859-1" else 0)


def test_bare_interval_block_document(tmp_path, monkeypatch):
    text = (f'<?xml version="1.0"?>\n<IntervalBlock xmlns="{E}">\n<interval><duration>86400</duration>'
            f"<start>{T0}</start></interval>\n" + "\n".join(_reading("", i, quality=(8,)) for i in range(50))
            + "\n</IntervalBlock>\n")
    path = _write(tmp_path, "bare.xml", text)
    assert same_as_lxml(path, monkeypatch) == 1


@pytest.mark.parametrize("mb", [0.02, 0.1])
def test_memory_limit_is_lxmls(tmp_path, monkeypatch, mb):
    """Readings waiting to be claimed count against max_memory_mb; the error is the one lxml's path gives."""
    from kwhub.core.adapters import AdapterContext
    from kwhub.core.input_limits import InputLimits

    blocks = [[_reading("espi:", 100 * b + i) for i in range(100)] for b in range(8)]
    path = _write(tmp_path, "f.xml", _feed(blocks))
    got = []
    for scan in (False, True):
        monkeypatch.setattr(gbmod, "SCAN", scan)
        with pytest.raises(IntervalDataError) as ei:
            GreenButtonMeter("gb", {}, AdapterContext(limits=InputLimits(max_memory_mb=mb))).read_file(path)
        got.append((str(ei.value), ei.value.where, ei.value.field))
    assert got[0] == got[1] and "max_memory_mb" in got[0][0]


def test_scannable():
    assert scanmod.scannable(b'<?xml version="1.0" encoding="utf-8"?><feed/>')
    assert scanmod.scannable(b"\xef\xbb\xbf<feed/>") and scanmod.scannable(b"<feed/>")
    assert not scanmod.scannable(b'<?xml version="1.0" encoding="Shift_JIS"?><feed/>')
    assert not scanmod.scannable("<feed/>".encode("utf-16"))
