"""CSV input bounds: sizes, field counts, physical line numbers, encodings, time range, excerpts.

Every case is a real file read by the adapter; the expected line is counted by hand in
the test. The first-pass scanner is also compared with Python's own ``csv`` module on
random files (hypothesis), with chunks small enough that records straddle chunk borders.
"""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kwhub.core.adapters import AdapterContext
from kwhub.core.input_limits import InputLimits, excerpt
from kwhub.core.intervals import IntervalDataError
from kwhub.plugins.meters import csv_scan
from kwhub.plugins.meters.csv_meter import CsvMeter, read_header

HEADER = "channel_id,interval_start,interval_minutes,kwh\n"
ROW = "m,2024-01-01T00:{:02d}:00Z,15,{}\n"


def meter(limits: InputLimits | None = None, **cfg: object) -> CsvMeter:
    return CsvMeter("csv", cfg, AdapterContext(limits=limits or InputLimits()))


def write(tmp_path: Path, name: str, data: str | bytes) -> Path:
    p = tmp_path / name
    if isinstance(data, bytes):
        p.write_bytes(data)
    else:
        p.write_text(data)
    return p


def error(path: Path, m: CsvMeter | None = None, channel: str | None = None) -> IntervalDataError:
    with pytest.raises(IntervalDataError) as ei:
        (m or meter()).read_file(path, channel)
    e = ei.value
    assert e.source == str(path) and str(path) in str(e)
    assert len(str(e)) < 1000  # never a dump of the input
    return e


# ------------------------------------------------------------------ field counts (issue 10)


def test_row_with_more_fields_than_header_is_an_error_even_when_columns_are_unused(tmp_path):
    """Before: with many unused header columns pandas read only some columns and dropped the extras."""
    unused = ",".join(f"note{i}" for i in range(10))
    p = write(tmp_path, "extra.csv", HEADER.rstrip("\n") + "," + unused + "\n"
              + ROW.format(0, 1).rstrip("\n") + "," * 10 + "\n"
              + ROW.format(15, 2).rstrip("\n") + "," * 10 + ",5,6\n")
    e = error(p)
    assert e.where == "line 3" and "16 fields" in str(e) and "14 columns" in str(e)


def test_row_with_fewer_fields_is_an_error(tmp_path):
    p = write(tmp_path, "short.csv", HEADER + ROW.format(0, 1) + "m,2024-01-01T00:15:00Z,15\n")
    e = error(p)
    assert e.where == "line 3" and "3 fields, fewer" in str(e)


def test_field_count_error_names_the_physical_line_after_skipped_rows(tmp_path):
    """Before: skip_rows was added to pandas' line number, which already counted the skipped rows."""
    p = write(tmp_path, "skip.csv", "exported by X\nsite: north\n" + HEADER + ROW.format(0, 1) + "m,x,15,2,3\n")
    e = error(p, meter(skip_rows=2))
    assert e.where == "line 5"


def test_field_count_error_after_a_quoted_line_break(tmp_path):
    """Before: pandas counted records, so a quoted line break moved every later line number."""
    p = write(tmp_path, "quoted.csv", 'channel_id,interval_start,interval_minutes,kwh\n"m\n",2024-01-01T00:00:00Z,15,1\n'
              + "m,2024-01-01T00:15:00Z,15,2,3\n")
    assert error(p).where == "line 4"


def test_bad_cell_after_a_quoted_line_break_names_its_physical_line(tmp_path):
    p = write(tmp_path, "q2.csv", 'channel_id,interval_start,interval_minutes,kwh,note\n'
              'm,2024-01-01T00:00:00Z,15,1,"two\nlines"\nm,2024-01-01T00:15:00Z,15,x,\n')
    e = error(p)
    assert (e.where, e.field) == ("line 4", "kwh")


def test_unclosed_quote_names_its_line(tmp_path):
    p = write(tmp_path, "open.csv", HEADER + ROW.format(0, 1) + 'm,2024-01-01T00:15:00Z,15,"2\n' + ROW.format(30, 3))
    e = error(p)
    assert e.where == "line 3" and "never closed" in str(e)


def test_blank_and_crlf_lines_are_fine(tmp_path):
    p = write(tmp_path, "crlf.csv", (HEADER + ROW.format(0, 1) + "\n" + ROW.format(15, 2)).replace("\n", "\r\n"))
    (s,) = meter().read_file(p).series
    assert s.values.tolist() == [1.0, 2.0]


# ------------------------------------------------------------------ encodings


def test_encoding_error_names_the_line(tmp_path):
    """Before: a UnicodeDecodeError from pandas ended as "looks like a bug", no line."""
    body = ROW.format(0, 1) * 30_000
    p = write(tmp_path, "latin.csv", (HEADER + body).encode() + b"m,2024-01-01T00:15:00Z,15,2\xb0\n")
    e = error(p)
    assert e.where == "line 30002" and "encoding" in str(e)
    (s,) = meter(encoding="latin-1").read_file(write(tmp_path, "ok.csv", (HEADER + ROW.format(0, 1)).encode())).series
    assert len(s) == 1


# ------------------------------------------------------------------ sizes


def test_64_mib_header_is_refused_quickly(tmp_path):
    """Before: read whole and handed to the csv module: "field larger than field limit", no file or line."""
    p = tmp_path / "header.csv"
    with p.open("wb") as fh:
        fh.write(b"channel_id,interval_start,interval_minutes,kwh,")
        fh.write(b"x" * (64 << 20))
        fh.write(b"\n")
    t = time.perf_counter()
    e = error(p)
    assert time.perf_counter() - t < 5
    assert e.where == "line 1" and "max_header_kb" in str(e) and "'channel_id,interval_start" in str(e)
    with pytest.raises(IntervalDataError, match="max_header_kb"):
        read_header(p)


def test_long_line_and_long_field_name_the_limit(tmp_path):
    lim = InputLimits(max_line_kb=1, max_field_kb=0.25)
    field = write(tmp_path, "field.csv", HEADER + ROW.format(0, 1) + ROW.format(15, "9" * 300))
    e = error(field, meter(lim))
    assert e.where == "line 3" and "max_field_kb" in str(e) and "256 bytes" in str(e)
    line = write(tmp_path, "line.csv", "interval_start," + ",".join(f"c{i}" for i in range(300)) + "\n"
                 + "2024-01-01T00:00:00Z," + ",".join(["1.5"] * 300) + "\n")
    e = error(line, meter(lim))
    assert e.where == "line 2" and "max_line_kb" in str(e)


def test_file_size_and_memory_limits(tmp_path):
    p = write(tmp_path, "f.csv", HEADER + ROW.format(0, 1) * 1000)
    e = error(p, meter(InputLimits(max_file_mb=0.01)))
    assert "max_file_mb" in str(e)
    e = error(p, meter(InputLimits(max_memory_mb=0.1)))
    assert "max_memory_mb" in str(e)


def test_endless_input_is_refused_not_read(tmp_path):
    """Before: a device or pipe was read until MemoryError ("looks like a bug")."""
    e = error(Path("/dev/zero"))
    assert "not a regular file" in str(e)


_CHILD = """
import json, resource, sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
from kwhub.plugins.meters.csv_meter import CsvMeter
from kwhub.plugins.meters.greenbutton import GreenButtonMeter
t = time.perf_counter()
try:
    ({cls}("x").read_file(Path({path!r})))
    out = "read"
except Exception as exc:
    out = f"{{type(exc).__name__}}: {{exc}}"
# VmHWM is this process image's own peak; ru_maxrss would carry the parent's peak over the exec
hwm = next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmHWM:"))
print(json.dumps({{"s": time.perf_counter() - t, "mb": hwm / 1024,
                  "out": out}}))
"""


@pytest.mark.parametrize("kind", ["csv", "xml"])
def test_256_mib_bad_cell_bounded_time_memory_and_message(tmp_path, kind):
    """Before: 6 GB, 179 s and the whole cell echoed on stderr. Bound: peak under 300 MB, error under 5 s.

    Read in a fresh process, so that its peak RSS is the parser's (bench/hostile_cell.py prints the figures).
    """
    import json
    import subprocess
    import sys

    p = tmp_path / f"cell.{kind}"
    with p.open("wb") as fh:
        if kind == "csv":
            fh.write((HEADER + ROW.format(0, 1)).encode() + b"m,2024-01-01T00:15:00Z,15,")
        else:
            fh.write(b'<feed xmlns="http://www.w3.org/2005/Atom" xmlns:espi="http://naesb.org/espi"><entry><content>'
                     b"<espi:IntervalBlock><espi:IntervalReading><espi:value>")
        block = b"9" * (1 << 20)
        for _ in range(256):
            fh.write(block)
        fh.write(b"x\n" if kind == "csv" else b"</espi:value></espi:IntervalReading></espi:IntervalBlock>"
                 b"</content></entry></feed>")
    code = _CHILD.format(root=str(Path(__file__).resolve().parents[1]), path=str(p),
                         cls="CsvMeter" if kind == "csv" else "GreenButtonMeter")
    res = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                    timeout=120).stdout.strip().splitlines()[-1])
    assert res["out"].startswith("IntervalDataError") and len(res["out"]) < 400, res["out"][:500]
    assert res["s"] < 5 and res["mb"] < 300, res
    if kind == "csv":
        assert "line 3" in res["out"] and "max_field_kb" in res["out"]
    else:
        assert "longer than the XML parser allows" in res["out"]


def test_malformed_number_is_quoted_as_a_short_excerpt(tmp_path):
    p = write(tmp_path, "num.csv", HEADER + ROW.format(0, "1" * 5000 + "x"))
    e = error(p)
    assert e.field == "kwh" and "5,001 characters" in str(e) and len(str(e)) < 300


def test_excerpt():
    assert excerpt("abc") == "'abc'"
    assert excerpt("x" * 100) == f"{'x' * 40!r}… (100 characters)"
    assert excerpt(b"\xffab") == repr("\ufffdab")


# ------------------------------------------------------------------ time range and channel ids


@pytest.mark.parametrize("stamp", ["9999-12-31T23:45:00Z", "1970-01-01T00:00:00Z", "2101-01-01T00:00:00Z"])
def test_timestamps_outside_the_sane_range_are_refused(tmp_path, stamp):
    p = write(tmp_path, "y.csv", HEADER + ROW.format(0, 1) + f"m,{stamp},15,1\n")
    e = error(p)
    assert (e.where, e.field) == ("line 3", "interval_start") and "1990-01-01..2100-12-31" in str(e)


def test_time_range_is_configurable(tmp_path):
    p = write(tmp_path, "old.csv", HEADER + "m,1985-06-01T00:00:00Z,15,1\n")
    error(p)
    (s,) = meter(InputLimits(first_year=1980)).read_file(p).series
    assert len(s) == 1
    with pytest.raises(ValueError, match="before first_year"):
        InputLimits(first_year=2000, last_year=1999)


def test_hour_ending_dates_outside_the_range(tmp_path):
    p = write(tmp_path, "he.csv", "Date,HE,kWh\n01/01/2150,1,5\n")
    e = error(p, meter(timezone="America/New_York"), channel="m")
    assert (e.where, e.field) == ("line 2", "Date")


def test_channel_id_longer_than_the_store_holds(tmp_path):
    long_id = "c" * 300
    p = write(tmp_path, "id.csv", HEADER + f"{long_id},2024-01-01T00:00:00Z,15,1\n")
    e = error(p)
    assert e.where == "line 2" and "300 characters" in str(e) and long_id not in str(e)
    wide = write(tmp_path, "idw.csv", f"interval_start,{long_id}\n2024-01-01T00:00:00Z,1\n")
    e = error(wide)
    assert e.where == "line 1" and long_id not in str(e)


# ------------------------------------------------------------------ the scanner vs the csv module

_cell = st.text(alphabet='ab,"\n9', max_size=6)


def _expected(text: str, n_fields: int) -> tuple[str, int] | None:
    """First problem per the csv module: ('count', physical line) or None; lines counted by hand."""
    line = 2
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    next(reader)  # header
    for rec in reader:
        if rec and len(rec) != n_fields:
            return "count", line
        line = reader.line_num + 1
    return None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.lists(_cell, min_size=1, max_size=4), max_size=6), chunk=st.integers(1, 9))
def test_scanner_agrees_with_the_csv_module(tmp_path, monkeypatch, rows, chunk):
    def quote(c: str) -> str:
        return '"' + c.replace('"', '""') + '"' if any(x in c for x in ',"\n') else c

    text = "a,b,c\n" + "".join(",".join(quote(c) for c in r) + "\n" for r in rows)
    p = tmp_path / "h.csv"
    p.write_text(text, newline="")
    monkeypatch.setattr(csv_scan, "CHUNK", chunk)
    want = _expected(text, 3)
    try:
        scan = csv_scan.scan_csv(p, delimiter=",", header_fields=3, skip_rows=0, limits=InputLimits())
    except IntervalDataError as exc:
        assert want is not None and exc.where == f"line {want[1]}"
        return
    assert want is None
    reader = csv.reader(io.StringIO(text, newline=""))
    next(reader)
    starts = []
    line = 2
    for _ in reader:
        starts.append(line)
        line = reader.line_num + 1
    assert scan.records == len(starts)
    assert scan.lines(np.arange(scan.records)).tolist() == starts


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.lists(st.text(alphabet="ab9", max_size=7), min_size=1, max_size=4), max_size=8),
       chunk=st.integers(1, 12), crlf=st.booleans())
def test_scanner_without_quotes_finds_every_problem_at_its_line(tmp_path, monkeypatch, rows, chunk, crlf):
    """Unquoted files take the scanner's fast path: field counts and field lengths (limit 5 bytes)."""
    nl = "\r\n" if crlf else "\n"
    text = "a,b,c" + nl + "".join(",".join(r) + nl for r in rows)
    p = tmp_path / "plain.csv"
    p.write_bytes(text.encode())
    monkeypatch.setattr(csv_scan, "CHUNK", chunk)
    bad_lines = {i + 2 for i, r in enumerate(rows)
                 if (r != [""] and len(r) != 3) or any(len(c) + (crlf and k == len(r) - 1) > 5 for k, c in enumerate(r))}
    limits = InputLimits(max_field_kb=5 / 1024)
    try:
        scan = csv_scan.scan_csv(p, delimiter=",", header_fields=3, skip_rows=0, limits=limits)
    except IntervalDataError as exc:
        assert int(exc.where.split()[1]) in bad_lines, (exc, bad_lines)
        return
    assert not bad_lines
    assert scan.records == len(rows) and scan.lines(np.arange(len(rows))).tolist() == list(range(2, len(rows) + 2))
