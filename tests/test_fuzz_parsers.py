"""Fuzzing the CSV and Green Button parsers (hypothesis): a clear error or a correct result.

Two properties per parser, bounded in time for CI (a fixed number of examples, no deadline):

* files generated from a model (random channels, order, duplicates, blank lines, quoting,
  line endings) read back exactly to the model;
* the same files with random damage (bytes replaced, inserted or cut) either read, or fail
  with :class:`IntervalDataError` naming the file, with a short message; never any other
  exception. Ingesting them into a database either stores the file or leaves the store
  exactly as it was (never a partial write).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kwhub.core.adapters import AdapterContext
from kwhub.core.campus import Campus, Site
from kwhub.core.input_limits import InputLimits
from kwhub.core.intervals import IntervalDataError
from kwhub.hub.ingest.batch import ingest_file
from kwhub.plugins.meters.csv_meter import CsvMeter
from kwhub.plugins.meters.greenbutton import GreenButtonMeter
from tests.fixtures.ingest import EspiMeterReading, espi_file

T0 = int(datetime(2024, 3, 1, tzinfo=UTC).timestamp())
FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
LIMITS = InputLimits(max_header_kb=4, max_line_kb=8, max_field_kb=1)

# a model: channel -> {slot: value in thousandths of a kWh}
_models = st.dictionaries(st.sampled_from(["a.load", "b.load", "c.net"]),
                          st.dictionaries(st.integers(0, 200), st.integers(0, 10_000_000), min_size=1, max_size=12),
                          min_size=1, max_size=3)


@st.composite
def damage(draw: Any, data: bytes) -> bytes:
    """Replace, insert or cut a few bytes of ``data``."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        if not out:
            break
        at = draw(st.integers(0, len(out) - 1))
        kind = draw(st.sampled_from(["replace", "insert", "cut", "truncate"]))
        junk = draw(st.binary(min_size=1, max_size=4) | st.sampled_from([b",", b'"', b"\n", b"\r", b"<", b">",
                                                                          b"&", b"NaN", b"9" * 30, b"\xff"]))
        if kind == "replace":
            out[at:at + len(junk)] = junk
        elif kind == "insert":
            out[at:at] = junk
        elif kind == "cut":
            del out[at:at + draw(st.integers(1, 8))]
        else:
            del out[at:]
    return bytes(out)


@pytest.fixture(scope="module")
def fuzz_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One SQLite database for all the examples of the module (each compares before and after)."""
    from kwhub.hub.store import Database

    db = Database.open(work_dir=tmp_path_factory.mktemp("fuzz_db"))
    yield db
    db.close()


def _state(db: Any) -> tuple[Any, ...]:
    summary = sorted((s.channel_id, s.intervals, round(s.total_kwh, 6)) for s in db.intervals.summary(layer="raw"))
    return summary, db.intervals.count_rows(), db.periods.count_rows(), len(db.intervals.stale_marks())


def _clear(exc: IntervalDataError, path: Path) -> None:
    assert str(path) in str(exc) and len(str(exc)) < 800


# ------------------------------------------------------------------ CSV


def _csv_text(model: dict[str, dict[int, int]], order: list[int], blank: bool, crlf: bool, quote: bool,
              repeat: bool) -> str:
    rows = []
    for ch, vals in sorted(model.items()):
        for slot, v in sorted(vals.items()):
            stamp = datetime.fromtimestamp(T0 + 900 * slot, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            cell = f'"{ch}"' if quote else ch
            rows.append(f"{cell},{stamp},15,{v / 1000}")
    rows = [rows[i % len(rows)] for i in order] + rows if order else rows
    if repeat:
        rows += rows[:3]
    if blank:
        rows.insert(len(rows) // 2, "")
    nl = "\r\n" if crlf else "\n"
    return "channel_id,interval_start,interval_minutes,kwh" + nl + nl.join(rows) + nl


def _check_csv_batch(batch: Any, model: dict[str, dict[int, int]]) -> None:
    got = {s.channel_id: dict(zip(((s.starts - T0) // 900).tolist(), np.round(s.values * 1000).astype(int).tolist(),
                                  strict=True)) for s in batch.series}
    assert got == model


@FUZZ
@given(model=_models, order=st.lists(st.integers(0, 50), max_size=8), blank=st.booleans(), crlf=st.booleans(),
       quote=st.booleans(), repeat=st.booleans())
def test_csv_generated_files_read_back_to_the_model(tmp_path, model, order, blank, crlf, quote, repeat):
    path = tmp_path / "gen.csv"
    path.write_bytes(_csv_text(model, order, blank, crlf, quote, repeat).encode())
    batch = CsvMeter("fuzz", {}, AdapterContext(limits=LIMITS)).read_file(path)
    _check_csv_batch(batch, model)


@FUZZ
@given(model=_models, data=st.data())
def test_csv_damaged_files_give_a_clear_error_or_a_result_never_a_partial_write(fuzz_db, model, data):
    db = fuzz_db
    text = _csv_text(model, [], False, False, False, False).encode()
    broken = data.draw(damage(text))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "damaged.csv"
        path.write_bytes(broken)
        campus = Campus(sites=[Site(id="site")])
        meter = CsvMeter("fuzz", {}, AdapterContext(limits=LIMITS))
        try:
            meter.read_file(path)
        except IntervalDataError as exc:
            _clear(exc, path)
        before = _state(db)
        try:
            ingest_file(db, campus, meter, path, allow_new_channels=True, run_vee=False)
        except IntervalDataError as exc:
            _clear(exc, path)
            assert _state(db) == before


# ------------------------------------------------------------------ Green Button


def _espi(path: Path, model: dict[str, dict[int, int]], block: int, overlap: int) -> Path:
    mrs = []
    for k, (_ch, vals) in enumerate(sorted(model.items())):
        readings = [(T0 + 900 * slot, 900, v) for slot, v in sorted(vals.items())]
        mrs.append(EspiMeterReading(usage_point=str(k + 1), readings=readings, block_size=block, overlap=overlap))
    return espi_file(path, mrs)


@FUZZ
@given(model=_models, block=st.integers(1, 6), overlap=st.integers(0, 2))
def test_greenbutton_generated_files_read_back_to_the_model(tmp_path, model, block, overlap):
    path = _espi(tmp_path / "gen.xml", model, block, min(overlap, block - 1))
    batch = GreenButtonMeter("fuzz", {}, AdapterContext(limits=LIMITS)).read_file(path)
    want = {f"gb.{k + 1}": {slot: v for slot, v in vals.items()} for k, (_, vals) in enumerate(sorted(model.items()))}
    got = {s.channel_id: dict(zip(((s.starts - T0) // 900).tolist(), np.round(s.values * 1000).astype(int).tolist(),
                                  strict=True)) for s in batch.series}
    assert got == want


@FUZZ
@given(model=_models, data=st.data())
def test_greenbutton_damaged_files_give_a_clear_error_or_a_result_never_a_partial_write(fuzz_db, model, data):
    db = fuzz_db
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        text = _espi(d / "gen.xml", model, 4, 1).read_bytes()
        path = d / "damaged.xml"
        path.write_bytes(data.draw(damage(text)))
        campus = Campus(sites=[Site(id="site")])
        meter = GreenButtonMeter("fuzz", {}, AdapterContext(limits=LIMITS))
        try:
            meter.read_file(path)
        except IntervalDataError as exc:
            _clear(exc, path)
        before = _state(db)
        try:
            ingest_file(db, campus, meter, path, allow_new_channels=True, run_vee=False)
        except IntervalDataError as exc:
            _clear(exc, path)
            assert _state(db) == before
