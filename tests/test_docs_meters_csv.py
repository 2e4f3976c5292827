"""docs/meters-csv.md is executable: every example file is ingested with its settings and the
stored readings and kWh are compared with the table the page prints (issue 9, item 11).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from kwhub.core.campus import Campus, Site
from kwhub.hub.ingest.batch import adapter_context, ingest_file
from kwhub.plugins.meters.csv_meter import CsvMeter

DOC = Path(__file__).resolve().parents[1] / "docs" / "meters-csv.md"
_BLOCK = re.compile(r"```(csv|toml)\n(.*?)```", re.S)
_ROW = re.compile(r"^\| `([^`]+)` \| (\d+) (intervals|period readings|register readings) \| ([0-9.]+) \|$", re.M)


def examples() -> list[tuple[str, str, dict, list[tuple[str, int, str, float]]]]:
    out = []
    for section in DOC.read_text().split("\n### ")[1:]:
        title = section.splitlines()[0]
        blocks = dict((kind, body) for kind, body in _BLOCK.findall(section))
        rows = [(c, int(n), kind, float(kwh)) for c, n, kind, kwh in _ROW.findall(section)]
        out.append((title, blocks["csv"], tomllib.loads(blocks["toml"])["adapters"]["config"], rows))
    return out


def test_the_page_has_an_example_for_every_profile_and_kind():
    text = " ".join(f"{c} {r}" for _, _, c, r in examples())
    assert len(examples()) >= 10
    for needle in ("'kwhub'", "'revenue_meter'", "'utility_hour_ending'", "'none'", "period readings",
                   "register readings", "dst_flag_column", "unit_column"):
        assert needle in text


@pytest.mark.parametrize(("title", "csv_text", "config", "rows"), examples(), ids=lambda x: x if isinstance(x, str)
                         and len(x) < 80 and "\n" not in x else None)
def test_documented_example_ingests_as_documented(db, tmp_path, title, csv_text, config, rows):
    campus = Campus(sites=[Site(id="site")])
    path = tmp_path / "example.csv"
    path.write_text(csv_text)
    meter = CsvMeter("doc", config, adapter_context(campus))
    ingest_file(db, campus, meter, path, allow_new_channels=True, run_vee=False)
    intervals = {s.channel_id: (s.intervals, s.total_kwh) for s in db.intervals.summary(layer="raw")}
    periods: dict[tuple[str, str], tuple[int, float]] = {}
    for p in db.periods.read([c for c, *_ in rows], 0, 2**40):
        periods[(p.channel_id, p.kind)] = (len(p), float(p.values.sum()))
    assert rows, title
    for channel, n, kind, kwh in rows:
        if kind == "intervals":
            got = intervals.pop(channel)
        else:
            got = periods.pop((channel, "period" if kind == "period readings" else "register"))
        assert got[0] == n and got[1] == pytest.approx(kwh, abs=1e-9), (title, channel)
    assert not intervals and not periods, f"{title}: stored more than the page says"
