"""The review checks that hold a run: estimated_share, suspect_intervals, negative_quantity and
measured_data, each triggered by a small hand-built scenario on SQLite and PostgreSQL.

Campus and contract: ``SUBMETERED`` of ``tests/test_trust_scenarios.py`` (hall A buys all its
metered energy at 50.125 $/MWh, 6 % tax, channel ``a.load`` with ``max_kw = 2000``). Every
expected figure is worked out by hand in the comments; kwhub only produces the values under test.
"""

from __future__ import annotations

import tomllib
from decimal import Decimal as D
from pathlib import Path

import numpy as np

from kwhub.core.intervals import ChannelSeries
from kwhub.core.quality import Quality
from kwhub.hub.config import parse_config
from kwhub.hub.settle.review import list_runs
from kwhub.hub.settle.service import list_invoices, settle
from tests.fixtures.settlement import write_period
from tests.test_trust_scenarios import OCT, SUBMETERED

N = 2976  # quarter-hours in October 2026 (New York): 31 x 96


def _cfg(text: str, tmp_path: Path):  # noqa: ANN202
    return parse_config(tomllib.loads(text), "test", tmp_path)


def _october(db, channel: str, value: float, quality: np.ndarray) -> None:  # noqa: ANN001
    """Write every quarter-hour of local October for one channel with the given quality bytes."""
    starts = np.arange(OCT.start_epoch, OCT.end_epoch, 900, dtype=np.int64)
    assert starts.size == N
    db.intervals.write_series([ChannelSeries(channel, 15, starts, np.full(N, value), quality)], layer="validated")


def _reasons(out) -> dict[str, str]:  # noqa: ANN001
    return dict(r.split(": ", 1) for r in out.held_reasons)


def test_estimated_share_above_its_threshold_holds_the_run(db, tmp_path):
    cfg = _cfg(SUBMETERED, tmp_path)
    q = np.zeros(N, np.uint8)
    q[:300] = Quality.ESTIMATED
    q[300:400] = Quality.EDITED  # edited values count as estimated for this check
    _october(db, "a.load", 100.0, q)
    out = settle(db, cfg.campus, "2026-10", options=cfg.settlement_options())[0]
    # 400 of 2,976 = 13.4408... % -> 13.44 % > 10 %
    assert out.status == "held" and out.invoice is None
    assert _reasons(out) == {"estimated_share": "400 of 2976 channel-intervals estimated or edited (13.44 %, "
                                                "limit 10 %); review the estimates (`kwhub vee report`) or get actual data"}
    # the draft still prices every value: 100 x 2,976 = 297.600 MWh x 50.125 = 14,917.20; tax 6 % = 895.032 -> 895.03
    assert (out.draft.line_total, out.draft.tax_total, out.draft.total) == (D("14917.20"), D("895.03"), D("15812.23"))
    assert list_invoices(db) == []
    assert [r["status"] for r in list_runs(db, period="2026-10")] == ["held"]


def test_estimated_share_within_a_configured_threshold_passes(db, tmp_path):
    text = SUBMETERED.replace("[[contracts]]", '[review]\nchecks = { estimated_share_max_pct = "15" }\n[[contracts]]', 1)
    cfg = _cfg(text, tmp_path)
    q = np.zeros(N, np.uint8)
    q[:400] = Quality.ESTIMATED  # 13.44 % <= 15 %
    _october(db, "a.load", 100.0, q)
    out = settle(db, cfg.campus, "2026-10", options=cfg.settlement_options())[0]
    assert out.status == "issued", out.held_reasons
    assert out.invoice.total == D("15812.23")


def test_suspect_intervals_hold_the_run(db, tmp_path):
    cfg = _cfg(SUBMETERED, tmp_path)
    q = np.zeros(N, np.uint8)
    q[[10, 2000]] = Quality.SUSPECT
    _october(db, "a.load", 100.0, q)
    out = settle(db, cfg.campus, "2026-10", options=cfg.settlement_options())[0]
    assert out.status == "held" and out.invoice is None
    # the threshold is 0: two suspect intervals fail; suspect values are not estimated ones (0 of 2976)
    assert _reasons(out) == {"suspect_intervals": "2 suspect intervals (a.load: 2); see `kwhub vee report` for the "
                                                  "rule that flagged them"}
    assert out.draft.line_total == D("14917.20")


def test_negative_billed_quantity_holds_the_run(db, tmp_path):
    cfg = _cfg(SUBMETERED, tmp_path)
    write_period(db, "2026-10", {"a.load": -100.0})  # a meter wired the wrong way round
    out = settle(db, cfg.campus, "2026-10", options=cfg.settlement_options())[0]
    assert out.status == "held" and out.invoice is None
    # -100 x 2,976 = -297,600 kWh = -297.600 MWh on the energy line; nothing else fails
    assert _reasons(out) == {"negative_quantity": "negative billed quantities: Energy (-297.600); check the "
                                                  "channel directions and signs"}
    # -297.600 x 50.125 = -14,917.20
    assert out.draft.line_total == D("-14917.20")
    assert list_invoices(db) == []


TWO_METERS = SUBMETERED.replace('role = "tenant_load"\nmax_kw = 2000\n', 'role = "tenant_load"\nmax_kw = 2000\n'
                                '[[channels]]\nid = "a.load2"\nparty = "tenant_a"\nrole = "tenant_load"\n', 1).replace(
    "[[contracts]]", '[settlement]\nmissing = "zero"\n[[contracts]]', 1)


def test_a_channel_without_any_measured_data_holds_the_run(db, tmp_path):
    cfg = _cfg(TWO_METERS, tmp_path)
    write_period(db, "2026-10", {"a.load": 100.0})  # the second meter of hall A sent nothing
    out = settle(db, cfg.campus, "2026-10", options=cfg.settlement_options())[0]
    assert out.status == "held" and out.invoice is None
    reasons = _reasons(out)
    assert reasons["measured_data"] == "no measured data at all for a.load2: check that their meter files were ingested"
    # every quarter-hour of a.load2 was counted as 0 kWh: 2,976
    assert reasons["missing_intervals"].startswith("2976 intervals without data were counted as 0 kWh (a.load2: 2976)")
    # only a.load is billed: 297.600 MWh x 50.125 = 14,917.20
    assert out.draft.line_total == D("14917.20")
