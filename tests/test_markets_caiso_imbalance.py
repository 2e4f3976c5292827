"""CAISO charge codes 6460 (FMM instructed imbalance) and 6470 (RTD instructed imbalance),
and the variance causes ``timing`` and ``formula``, on one hand-computed hour.

The local CAISO (``plugins/markets/caiso/sim.py``) settles only 6011 and 6475: it has no
FMM schedules or RTD dispatch, so its statements carry no 6460/6470 lines and the
shadow run there takes FMM = RTD = the DA schedule (both codes zero). These tests feed
the shadow engine the FMM schedule and RTD dispatch directly and compare with a
statement written by hand.

The hour: trade date 1 Feb 2026, 15:00-16:00 GMT (OPR_HR 8, PST), resource GEN1.
DA schedule 12 MWh at DA LMP 40.00.
FMM schedule per quarter: 3.0 / 3.6 / 2.4 / 3.0 MWh (DA/4 = 3.0) at FMM LMP 35 / 42 / 30 / 38.
RTD dispatch per 5 minutes (FMM/3 = 1.0 / 1.2 / 0.8 / 1.0):
    1.0 1.1 0.9 | 1.2 1.2 1.5 | 0.8 0.8 0.8 | 1.0 1.0 1.0
RTD LMP 30.00 everywhere but interval 1 (50.00), interval 2 (20.00), interval 5 (60.00).
Meter = RTD dispatch, except interval 5 meters 1.4 MWh.
Every expected figure is computed by hand in the comments (supply is a negative quantity,
a negative amount is paid to the scheduling coordinator).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

import numpy as np

from kwhub.core.markets.fixed import price_units, wh_from_mwh
from kwhub.core.markets.models import Statement, StatementLine
from kwhub.core.markets.shadow import ShadowInputs, shadow_settle
from kwhub.core.markets.variance import variance_report

HOUR = datetime(2026, 2, 1, 15, tzinfo=UTC)
QUARTERS = [HOUR + timedelta(minutes=15 * k) for k in range(4)]
FIVES = [HOUR + timedelta(minutes=5 * k) for k in range(12)]
FMM = ["3.0", "3.6", "2.4", "3.0"]
FMM_LMP = ["35.00", "42.00", "30.00", "38.00"]
RTD = ["1.0", "1.1", "0.9", "1.2", "1.2", "1.5", "0.8", "0.8", "0.8", "1.0", "1.0", "1.0"]
RTD_LMP = ["30.00", "50.00", "20.00", "30.00", "30.00", "60.00", "30.00", "30.00", "30.00", "30.00", "30.00", "30.00"]
METER = [*RTD[:5], "1.4", *RTD[6:]]

# 6460 = -(FMM - DA/4) x FMM LMP
#   q1 -(3.0 - 3.0) x 35 = 0.00 ; q2 -(3.6 - 3.0) x 42 = -25.20 ; q3 -(2.4 - 3.0) x 30 = +18.00 ; q4 0.00
A6460 = ["0.00", "-25.20", "18.00", "0.00"]
# 6470 = -(RTD - FMM/3) x RTD LMP
#   i1 -(1.1 - 1.0) x 50 = -5.00 ; i2 -(0.9 - 1.0) x 20 = +2.00 ; i5 -(1.5 - 1.2) x 60 = -18.00 ; others 0.00
A6470 = ["0.00", "-5.00", "2.00", "0.00", "0.00", "-18.00", "0.00", "0.00", "0.00", "0.00", "0.00", "0.00"]


def _inputs(fmm=FMM, rtd=RTD) -> ShadowInputs:  # noqa: ANN001
    return ShadowInputs(
        iso="CAISO", resources=["GEN1"], start_epoch=int(HOUR.timestamp()), hours=1, rt_minutes=5,
        da_sale_wh=np.array([[wh_from_mwh("12")]]), da_purchase_wh=np.zeros((1, 1), np.int64),
        da_price_u=np.array([[price_units("40.00")]]),
        rt_meter_wh=np.array([[wh_from_mwh(m) for m in METER]]),
        rt_price_u=np.array([[price_units(p) for p in RTD_LMP]]),
        fmm_wh=np.array([[wh_from_mwh(f) for f in fmm]]),
        fmm_price_u=np.array([[price_units(p) for p in FMM_LMP]]),
        rtd_wh=np.array([[wh_from_mwh(r) for r in rtd]]))


def _statement(a6460: list[str], a6470: list[str], fmm_lmp: list[str] = FMM_LMP,
               starts_6470: list[datetime] = FIVES) -> Statement:
    lines = [StatementLine(code="6460", resource="GEN1", start=q, minutes=15, amount=D(a),
                           determinants={"FMM_LMP": D(p)})
             for q, a, p in zip(QUARTERS, a6460, fmm_lmp, strict=True)]
    lines += [StatementLine(code="6470", resource="GEN1", start=s, minutes=5, amount=D(a))
              for s, a in zip(starts_6470, a6470, strict=True)]
    return Statement(iso="CAISO", operating_day=date(2026, 2, 1), kind="initial", statement_id="SC-20260201-INITIAL",
                     lines=tuple(lines))


def test_6460_fmm_instructed_imbalance_per_quarter() -> None:
    r = shadow_settle(_inputs())
    c = r.codes["6460"]
    assert [c.line(0, i)["amount"] for i in range(4)] == [D(a) for a in A6460]
    # quantity as supply: -(FMM - DA/4): 0, -0.6, +0.6, 0
    assert [c.line(0, i)["quantity_mwh"] for i in range(4)] == [D("0"), D("-0.6"), D("0.6"), D("0")]
    assert [c.line(0, i)["price"] for i in range(4)] == [D(p) for p in FMM_LMP]
    assert c.total() == D("-7.20")  # -25.20 + 18.00


def test_6470_rtd_instructed_imbalance_per_5_minutes() -> None:
    r = shadow_settle(_inputs())
    c = r.codes["6470"]
    assert [c.line(0, i)["amount"] for i in range(12)] == [D(a) for a in A6470]
    assert c.total() == D("-21.00")  # -5.00 + 2.00 - 18.00
    # 6475 now measures against the RTD dispatch: -(1.4 - 1.5) x 60 = +6.00, others 0.00
    assert r.codes["6475"].total() == D("6.00")
    # 6011 = -12 x 40.00 = -480.00 ; hour total -480.00 - 7.20 - 21.00 + 6.00 = -502.20
    assert r.codes["6011"].total() == D("-480.00")
    assert r.total() == D("-502.20")


def test_6470_with_a_fmm_schedule_not_divisible_by_three() -> None:
    # FMM q1 1.0 MWh -> 1/3 MWh per 5 minutes; RTD 0.5 at 30.00: -(0.5 - 1/3) x 30 = -(1/6) x 30 = -5.00
    # and RTD 0.4 at 50.00: -(0.4 - 1/3) x 50 = -(1/15) x 50 = -3.333... -> -3.33 ;
    # RTD 0.2 at 20.00: -(0.2 - 1/3) x 20 = +(2/15) x 20 = +2.666... -> +2.67
    rtd = ["0.5", "0.4", "0.2", *RTD[3:]]
    c = shadow_settle(_inputs(fmm=["1.0", *FMM[1:]], rtd=rtd)).codes["6470"]
    assert [c.line(0, i)["amount"] for i in range(3)] == [D("-5.00"), D("-3.33"), D("2.67")]


def test_without_fmm_and_rtd_both_codes_are_zero() -> None:
    # what the local CAISO settles: FMM = RTD = DA schedule, so 6460 and 6470 are 0.00 everywhere
    inp = _inputs()
    inp.fmm_wh = inp.fmm_price_u = inp.rtd_wh = None
    r = shadow_settle(inp)
    assert r.codes["6460"].total() == D("0.00") and r.codes["6470"].total() == D("0.00")
    # and 6475 measures against DA/12 = 1.0: -(sum(meter) - 12) x LMP per interval, by hand:
    # i1 -(0.1) x 50 = -5.00 ; i2 +(0.1) x 20 = +2.00 ; i3,i4 -(0.2) x 30 = -6.00 each ;
    # i5 -(0.4) x 60 = -24.00 ; i6-8 +(0.2) x 30 = +6.00 each ; i0, i9-11 0.00
    # total -5.00 + 2.00 - 12.00 - 24.00 + 18.00 = -21.00
    assert r.codes["6475"].total() == D("-21.00")


def test_matching_statement_has_no_variance() -> None:
    rep = variance_report(shadow_settle(_inputs()), _statement(A6460, A6470))
    assert rep.lines == []
    assert rep.codes["6460"].iso == D("-7.20") and rep.codes["6470"].iso == D("-21.00")


def test_formula_variance_when_determinants_agree() -> None:
    # the ISO prices q2 at the same FMM LMP (42.00) yet bills -25.00: prices and quantities agree,
    # so the difference is in the formula; shadow - ISO = -25.20 - (-25.00) = -0.20
    iso = _statement(["0.00", "-25.00", "18.00", "0.00"], A6470)
    rep = variance_report(shadow_settle(_inputs()), iso)
    assert [(v.code, v.start, v.shadow, v.iso, v.variance, v.cause) for v in rep.lines] == \
        [("6460", QUARTERS[1], D("-25.20"), D("-25.00"), D("-0.20"), "formula")]
    assert "FMM_LMP" in rep.lines[0].detail
    # the same line at another FMM LMP is a price variance, not a formula one
    iso = _statement(["0.00", "-25.00", "18.00", "0.00"], A6470, fmm_lmp=["35.00", "41.6667", "30.00", "38.00"])
    assert [v.cause for v in variance_report(shadow_settle(_inputs()), iso).lines] == ["price"]


def test_timing_variance_when_the_iso_shifts_lines_by_one_interval() -> None:
    # the ISO books the first quarter-hour of 6470 one interval late: -5.00 on interval 2,
    # +2.00 on interval 3, and nothing on interval 0 (its 0.00 sits on interval 1)
    shifted = ["0.00", "0.00", "-5.00", "2.00", *A6470[4:]]
    rep = variance_report(shadow_settle(_inputs()), _statement(A6460, shifted))
    got = [(v.start, v.shadow, v.iso, v.cause) for v in rep.lines]
    # interval 1: kwhub -5.00, ISO 0.00, and the ISO's -5.00 sits on the neighbouring interval 2
    # interval 2: kwhub +2.00, ISO -5.00; the ISO's +2.00 sits on interval 3
    # interval 3: kwhub 0.00, ISO +2.00; kwhub's 0.00 is the ISO's interval 4
    assert got == [(FIVES[1], D("-5.00"), D("0.00"), "timing"),
                   (FIVES[2], D("2.00"), D("-5.00"), "timing"),
                   (FIVES[3], D("0.00"), D("2.00"), "timing")]
    assert rep.codes["6470"].variance == D("0.00")  # same hour total, wrong intervals


def test_timing_variance_when_only_one_side_has_the_interval() -> None:
    # the ISO omits interval 5 (-18.00) and books it on the next hour's first interval,
    # outside kwhub's span: two timing lines, one per side
    starts = [*FIVES[:5], *FIVES[6:], HOUR + timedelta(hours=1)]
    amounts = [*A6470[:5], *A6470[6:], "-18.00"]
    rep = variance_report(shadow_settle(_inputs()), _statement(A6460, amounts, starts_6470=starts))
    got = [(v.start, v.shadow, v.iso, v.cause, v.detail) for v in rep.lines]
    assert got == [(FIVES[5], D("-18.00"), None, "timing", "only kwhub has this interval"),
                   (HOUR + timedelta(hours=1), None, D("-18.00"), "timing", "only the ISO has this interval")]
