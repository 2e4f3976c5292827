"""The hostile-input corpus (tests/data/hostile): every case against every meter file parser.

Each file is refused by each parser with a clear error (class, message fragment, line or
element) that stays short, and ingesting it leaves the store exactly as it was, on SQLite
and PostgreSQL. See ``tests/data/hostile/cases.toml`` for the cases and why each is there.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

import kwhub.core.intervals
from kwhub.core.adapters import AdapterContext
from kwhub.core.campus import Campus, Site
from kwhub.core.input_limits import InputLimits
from kwhub.hub.ingest.batch import ingest_file

CORPUS = Path(__file__).parent / "data" / "hostile"
MANIFEST = tomllib.loads((CORPUS / "cases.toml").read_text())
LIMITS = InputLimits(**MANIFEST["limits"])
PARSERS = {"csv": "meters.csv", "gb": "meters.greenbutton"}
CASES: list[dict[str, Any]] = MANIFEST["case"]


def _adapter(registry: Any, key: str, campus: Campus | None = None) -> Any:
    cls = registry.adapter(PARSERS[key])
    ctx = AdapterContext(limits=LIMITS, channels={c.id: c for c in (campus.channels if campus else [])})
    return cls(f"hostile-{key}", dict(MANIFEST.get("config", {}).get(key, {})), ctx)


def _expect(case: dict[str, Any], key: str) -> dict[str, Any]:
    if key in case:
        return case[key]
    own = "csv" if case["file"].endswith(".csv") else "gb"
    assert key != own, f"{case['file']}: no expectation for its own parser"
    return MANIFEST[f"default_{key}"]


def test_every_file_of_the_corpus_has_a_case_and_every_file_parser_is_covered(registry):
    files = {p.name for p in CORPUS.iterdir() if p.suffix in (".csv", ".xml")}
    assert files == {c["file"] for c in CASES}
    file_parsers = {t for t, cls in registry.adapters.items() if "file" in cls.capabilities}
    assert file_parsers == set(PARSERS.values()), "a new file parser needs its expectations in cases.toml"
    assert all(c.get("why") for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
@pytest.mark.parametrize("key", sorted(PARSERS))
def test_each_parser_refuses_each_case_clearly(registry, case, key):
    want = _expect(case, key)
    error = getattr(kwhub.core.intervals, want.get("error", "IntervalDataError"))
    path = CORPUS / case["file"]
    with pytest.raises(error) as ei:
        _adapter(registry, key).read_file(path, case.get("channel"))
    e = ei.value
    assert want["contains"] in str(e), str(e)
    assert str(path) in str(e) and len(str(e)) < 600
    if "where" in want:
        assert e.where.startswith(want["where"]), e.where


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_a_refused_file_writes_nothing(db, registry, tmp_path, case):
    """Ingest (ad hoc channels allowed) after good data: the store is exactly as before."""
    campus = Campus(sites=[Site(id="site")])
    good = tmp_path / "good.csv"
    good.write_text("channel_id,interval_start,interval_minutes,kwh\n"
                    + "".join(f"hall_a.load,2024-03-01T{h:02d}:00:00Z,60,{10 + h}\n" for h in range(24)))
    csv = _adapter(registry, "csv", campus)
    ingest_file(db, campus, csv, good, allow_new_channels=True)
    before = _state(db)
    key = "csv" if case["file"].endswith(".csv") else "gb"
    with pytest.raises(kwhub.core.intervals.IntervalDataError):
        ingest_file(db, campus, _adapter(registry, key, campus), CORPUS / case["file"], case.get("channel"),
                    allow_new_channels=True)
    assert _state(db) == before


def _state(db: Any) -> tuple[Any, ...]:
    from kwhub.hub.ingest.vee import read_events

    summary = sorted((s.channel_id, s.intervals, round(s.total_kwh, 6)) for s in db.intervals.summary(layer="raw"))
    return (summary, db.intervals.count_rows(), db.periods.count_rows(), len(db.intervals.stale_marks()),
            len(read_events(db)))
