"""MARKETS.md section 10, the worked example, as exact Decimal tests.

Resource node, hour ending 15 (14:00-15:00 CPT), DA award 50 MW at DASPP $40.00; four
quarter-hours metered 13.00 / 12.50 / 12.00 / 12.75 MWh at RTSPP 55 / 30 / 80 / 20. Every
expected figure below is computed by hand (in the comments) with Decimal, not by kwhub.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

import numpy as np

from kwhub.core.markets.fixed import price_units, wh_from_mwh
from kwhub.core.markets.models import Statement, StatementLine
from kwhub.core.markets.revenue import owner_adjustments, revenue_by_resource, split_revenue
from kwhub.core.markets.shadow import ShadowInputs, shadow_settle
from kwhub.core.markets.statements import statement_deltas
from kwhub.core.markets.variance import variance_report
from kwhub.core.ownership import split_largest_remainder

HOUR = datetime(2024, 1, 15, 20, tzinfo=UTC)  # 14:00 CST = 20:00 UTC
QUARTERS = [HOUR + timedelta(minutes=15 * k) for k in range(4)]
METER = ["13.00", "12.50", "12.00", "12.75"]
RTSPP = ["55.00", "30.00", "80.00", "20.00"]
JV = {"gasco_jv": D("0.6"), "campus_op": D("0.4")}


def _inputs(meter=METER, rtspp=RTSPP) -> ShadowInputs:  # noqa: ANN001
    return ShadowInputs(
        iso="ERCOT", resources=["RN1"], start_epoch=int(HOUR.timestamp()), hours=1, rt_minutes=15,
        da_sale_wh=np.array([[wh_from_mwh("50")]]), da_purchase_wh=np.zeros((1, 1), np.int64),
        da_price_u=np.array([[price_units("40.00")]]),
        rt_meter_wh=np.array([[wh_from_mwh(m) for m in meter]]),
        rt_price_u=np.array([[price_units(p) for p in rtspp]]))


def _statement(kind: str, sid: str, rteiamt: list[str], rtmg: list[str], rtspp: list[str]) -> Statement:
    lines = [StatementLine(code="DAESAMT", resource="RN1", start=HOUR, minutes=60, amount=D("-2000.00"),
                           determinants={"DASPP": D("40.00"), "DAES": D("50")})]
    lines += [StatementLine(code="RTEIAMT", resource="RN1", start=q, minutes=15, amount=D(a),
                            determinants={"RTSPP": D(p), "RTMG": D(m)})
              for q, a, m, p in zip(QUARTERS, rteiamt, rtmg, rtspp, strict=True)]
    return Statement(iso="ERCOT", operating_day=date(2024, 1, 15), kind=kind, statement_id=sid, lines=tuple(lines))


def test_daesamt_and_rteiamt_per_interval() -> None:
    r = shadow_settle(_inputs())
    # DAESAMT = (-1) x 40.00 x 50 = -2,000.00
    assert r.codes["DAESAMT"].total() == D("-2000.00")
    # RTEIAMT = (-1) x RTSPP x (metered - 50/4):
    #   -55 x 0.50 = -27.50 ; -30 x 0 = 0.00 ; -80 x -0.50 = +40.00 ; -20 x 0.25 = -5.00
    rt = r.codes["RTEIAMT"]
    assert [rt.line(0, i)["amount"] for i in range(4)] == [D("-27.50"), D("0.00"), D("40.00"), D("-5.00")]
    assert [rt.line(0, i)["quantity_mwh"] for i in range(4)] == [D("0.5"), D("0"), D("-0.5"), D("0.25")]
    assert rt.total() == D("7.50")  # -27.50 + 0 + 40.00 - 5.00
    assert r.codes["DAEPAMT"].total() == D("0.00")
    assert r.total() == D("-1992.50")  # -2,000.00 + 7.50


def test_revenue_flips_the_sign_once_and_splits_60_40() -> None:
    st = _statement("initial", "S1", ["-27.50", "0.00", "40.00", "-5.00"], METER, RTSPP)
    assert st.total() == D("-1992.50")
    revenue = revenue_by_resource(st)["RN1"]
    assert revenue == D("1992.50")
    # 1,992.50 x 0.6 = 1,195.50 ; x 0.4 = 797.00
    assert split_revenue(revenue, JV) == {"gasco_jv": D("1195.50"), "campus_op": D("797.00")}
    assert split_largest_remainder(revenue, JV, 2) == split_revenue(revenue, JV)


def test_a_meter_variance_is_a_quantity_variance() -> None:
    # the ISO's meter read 13.01 in interval 1: ISO RTEIAMT = -55 x (13.01 - 12.50) = -28.05
    iso = _statement("initial", "S1", ["-28.05", "0.00", "40.00", "-5.00"], ["13.01", *METER[1:]], RTSPP)
    rep = variance_report(shadow_settle(_inputs()), iso, tolerance=D("0.00"))
    assert len(rep.lines) == 1
    v = rep.lines[0]
    assert (v.code, v.start, v.shadow, v.iso, v.variance, v.cause) == \
        ("RTEIAMT", QUARTERS[0], D("-27.50"), D("-28.05"), D("0.55"), "quantity")
    assert "RTMG ISO 13.01 vs kwhub 13" in v.detail
    assert rep.codes["RTEIAMT"].variance == D("0.55") and rep.codes["DAESAMT"].variance == D("0.00")
    # inside a tolerance of 0.55 the line is no longer reported
    assert variance_report(shadow_settle(_inputs()), iso, tolerance=D("0.55")).lines == []


def test_a_price_difference_is_a_price_variance() -> None:
    iso = _statement("initial", "S1", ["-27.50", "0.00", "40.00", "-5.50"], METER, [*RTSPP[:3], "22.00"])
    rep = variance_report(shadow_settle(_inputs()), iso)
    assert [(v.cause, v.variance) for v in rep.lines] == [("price", D("0.50"))]  # -5.00 - (-5.50)


def test_price_correction_is_a_new_version_with_deltas_not_a_variance() -> None:
    first = _statement("initial", "S1", ["-27.50", "0.00", "40.00", "-5.00"], METER, RTSPP)
    # interval 3 RTSPP corrected to 84.00: -84 x -0.50 = +42.00
    corrected = ["55.00", "30.00", "84.00", "20.00"]
    second = _statement("resettlement", "S2", ["-27.50", "0.00", "42.00", "-5.00"], METER, corrected)
    deltas = statement_deltas(first, second)
    assert [(d.code, d.start, d.previous, d.current, d.net) for d in deltas] == \
        [("RTEIAMT", QUARTERS[2], D("40.00"), D("42.00"), D("2.00"))]
    # the shadow run on the corrected prices matches the resettlement exactly
    assert variance_report(shadow_settle(_inputs(rtspp=corrected)), second).lines == []
    # revenue falls to 1,990.50; the owners get -1.20 / -0.80
    assert revenue_by_resource(second)["RN1"] == D("1990.50")
    assert owner_adjustments(D("1992.50"), D("1990.50"), JV) == {"campus_op": D("-0.80"), "gasco_jv": D("-1.20")}
