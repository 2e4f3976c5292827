"""The examples of docs/configuration.md are tests: each loads, settles and bills what the page says.

Expected amounts are computed by hand in the comments (Decimal), never by kwhub's code.
"""

from __future__ import annotations

import re
import tomllib
from decimal import Decimal as D
from pathlib import Path

import pytest

from kwhub.hub.config import parse_config
from kwhub.hub.settle.service import list_invoices, settle
from tests.fixtures.settlement import write_period

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
N = 2976  # quarter-hours in October 2026, New York time


def doc_examples() -> dict[str, str]:
    """``{name: toml}`` of every ```toml block that starts with ``# example: NAME``."""
    text = DOC.read_text()
    out = {}
    for block in re.findall(r"```toml\n(.*?)```", text, flags=re.S):
        first = block.splitlines()[0]
        if first.startswith("# example: "):
            out[first.removeprefix("# example: ").strip()] = block
    return out


def _cfg(name: str, tmp_path: Path, edit: str | None = None):  # noqa: ANN202
    text = doc_examples()[name]
    if edit:
        text = edit
    return parse_config(tomllib.loads(text), f"docs example {name}", tmp_path)


def _lines(inv) -> list[tuple[str, D, str, D, D]]:  # noqa: ANN001
    return [(ln.description, ln.quantity, ln.unit, ln.unit_price, ln.amount) for ln in inv.lines]


def test_the_page_has_its_examples():
    assert set(doc_examples()) >= {"generators-and-grid", "fixed-shares"}
    text = DOC.read_text()
    for quoted in ("12,499.20", "4,464.00", "16,963.20", "5,356.80", "2,976.00"):
        assert quoted in text


@pytest.mark.parametrize("grid_in_sources", [False, True])
def test_generators_and_grid_at_cost(db, tmp_path, grid_in_sources):
    text = doc_examples()["generators-and-grid"]
    if grid_in_sources:  # the configuration that billed the grid twice before: still billed once
        text = text.replace('sources = ["gt1"]', 'sources = ["gt1", "grid"]')
    cfg = _cfg("generators-and-grid", tmp_path, text)
    write_period(db, "2026-10", {"a.load": 100.0, "gt1.net": 70.0, "grid.in": 30.0})
    out = settle(db, cfg.campus, "2026-10", options=cfg.settlement_options())
    assert [o.status for o in out] == ["issued"], out[0].error or out[0].held_reasons
    inv = out[0].invoice
    # gt1: 70 x 2976 = 208,320 kWh = 208.320 MWh x 60 = 12,499.20
    # grid: 30 x 2976 = 89,280 kWh = 89.280 MWh x 50 = 4,464.00, passed through as 1 x 4,464.00
    assert _lines(inv) == [
        ("Energy", D("208.320"), "MWh", D("60.000000"), D("12499.20")),
        ("Grid import pass-through", D("1.000"), "each", D("4464.000000"), D("4464.00")),
    ]
    assert inv.total == D("16963.20")
    billed = {(a["source"], a["billed_by"]): D(a["billed_kwh"]) for a in out[0].accounts}
    assert billed == {("gt1", "ppa-a"): D("208320.0"), ("grid", "ppa-a"): D("89280.0")}


def test_fixed_shares_with_the_grid_as_remainder(db, tmp_path):
    cfg = _cfg("fixed-shares", tmp_path)
    write_period(db, "2026-10", {"a.load": 30.0, "b.load": 90.0, "gt1.net": 100.0, "grid.in": 20.0})
    out = {o.contract_id: o for o in settle(db, cfg.campus, "2026-10", options=cfg.settlement_options())}
    assert {o.status for o in out.values()} == {"issued"}
    # hall A: 30 kWh of its 50 kWh share -> 30 x 2976 = 89,280 kWh = 89.280 MWh x 60 = 5,356.80; no grid
    assert _lines(out["ppa-a"].invoice) == [("Plant energy", D("89.280"), "MWh", D("60.000000"), D("5356.80"))]
    # hall B: its 50 + the 20 hall A left = 70 x 2976 = 208.320 MWh x 60 = 12,499.20;
    # the grid covers its last 20: 59.520 MWh x 50 = 2,976.00
    assert _lines(out["ppa-b"].invoice) == [
        ("Plant energy", D("208.320"), "MWh", D("60.000000"), D("12499.20")),
        ("Grid import pass-through", D("1.000"), "each", D("2976.000000"), D("2976.00")),
    ]
    assert [d.total for d in list_invoices(db)] == [D("5356.80"), D("15475.20")]


def test_amended_price_splits_october(db, tmp_path):
    cfg = _cfg("amended-price", tmp_path)
    write_period(db, "2026-10", {"a.load": 100.0})
    out = settle(db, cfg.campus, "2026-10", options=cfg.settlement_options())
    assert [o.status for o in out] == ["issued"], out[0].error or out[0].held_reasons
    inv = out[0].invoice
    # v1, Oct 1..15: 15 x 96 = 1,440 quarter-hours x 100 kWh = 144.000 MWh x 50 = 7,200.00;
    #     O&M 1,000 x 15/31 = 483.870967... -> 483.87
    # v2, Oct 16..31: 16 x 96 = 1,536 x 100 kWh = 153.600 MWh x 62 = 9,523.20;
    #     O&M 1,300 x 16/31 = 670.967741... -> 670.97
    v1_fee = (D(1000) * 15 / 31).quantize(D("0.01"))
    v2_fee = (D(1300) * 16 / 31).quantize(D("0.01"))
    assert (v1_fee, v2_fee) == (D("483.87"), D("670.97"))
    assert _lines(inv) == [
        ("Energy, terms v1, 2026-10-01 to 2026-10-15", D("144.000"), "MWh", D("50.000000"), D("7200.00")),
        ("O&M fee, terms v1, 2026-10-01 to 2026-10-15", D("1.000"), "month", D("483.870000"), v1_fee),
        ("Energy, terms v2 (price-reset), 2026-10-16 to 2026-10-31", D("153.600"), "MWh", D("62.000000"),
         D("9523.20")),
        ("O&M fee, terms v2 (price-reset), 2026-10-16 to 2026-10-31", D("1.000"), "month", D("670.970000"),
         v2_fee),
    ]
    assert inv.total == D("7200.00") + v1_fee + D("9523.20") + v2_fee == D("17878.04")
    assert "17,878.04" in DOC.read_text()


def test_amended_price_edit_of_invoiced_terms_is_held_as_quoted(db, tmp_path):
    cfg = _cfg("amended-price", tmp_path)
    write_period(db, "2026-10", {"a.load": 100.0})
    assert settle(db, cfg.campus, "2026-10", options=cfg.settlement_options())[0].status == "issued"
    edited = _cfg("amended-price", tmp_path, doc_examples()["amended-price"].replace(
        'price_per_mwh = "50"', 'price_per_mwh = "55"'))
    final = settle(db, edited.campus, "2026-10", version="final", options=edited.settlement_options())[0]
    assert final.status == "held"
    quoted = re.search(r"check: \*(terms changed since run .*?)\*", " ".join(DOC.read_text().split())).group(1)
    assert any(r.startswith(f"contract_terms: {quoted};") for r in final.held_reasons), (quoted, final.held_reasons)
