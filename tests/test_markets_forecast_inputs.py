"""The forecast's solar file and outages/derates: parsing (DST days, errors naming file, line and
field) and what they do to the day's bids (hand-computed)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from kwhub.core.intervals import ChannelSeries, IntervalDataError
from kwhub.core.markets.curve_rules import ERCOT_DA, check_bid
from kwhub.core.markets.forecast_files import (
    Outage,
    available_mw,
    read_outages,
    read_solar_forecast,
)
from kwhub.core.quality import Quality
from kwhub.core.timeline import local_day
from kwhub.hub.config import parse_config
from kwhub.hub.markets.forecast import build_day_bids, campus_forecast

TZ = "America/Chicago"
FALL = date(2026, 11, 1)  # 25 hours: 01:00 CDT (-05:00) then 01:00 CST (-06:00)
DAY = date(2026, 10, 15)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _fall_back_rows(value_of) -> str:  # noqa: ANN001
    span = local_day(FALL, TZ)
    rows = ["interval_start,asset,mw"]
    for h in range(25):
        t = datetime.fromtimestamp(span.start_epoch + 3600 * h, tz=UTC).astimezone(ZoneInfo(TZ))
        rows.append(f"{t.isoformat()},pv,{value_of(h)}")
    return "\n".join(rows) + "\n"


def test_solar_file_on_the_fall_back_day_keeps_both_01_00_hours(tmp_path):
    path = _write(tmp_path, "solar.csv", _fall_back_rows(lambda h: h))
    text = path.read_text()
    assert "2026-11-01T01:00:00-05:00,pv,1" in text and "2026-11-01T01:00:00-06:00,pv,2" in text
    got = read_solar_forecast(path, TZ, local_day(FALL, TZ), 60, {"pv": 30.0})
    assert list(got) == ["pv"] and got["pv"].tolist() == [float(h) for h in range(25)]


def test_quarter_hour_values_average_into_hours_and_utc_stamps_work(tmp_path):
    span = local_day(DAY, TZ)
    rows = ["interval_start,asset,mw"]
    for q in range(96):
        stamp = datetime.fromtimestamp(span.start_epoch + 900 * q, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        rows.append(f"{stamp},pv,{(q % 4) * 2}")  # 0, 2, 4, 6 in every hour: mean 3.0
    path = _write(tmp_path, "solar.csv", "\n".join(rows) + "\n")
    got = read_solar_forecast(path, TZ, span, 60, {"pv": 30.0})
    assert got["pv"].tolist() == [3.0] * 24
    # and on a 15-minute grid each value stays its own
    assert read_solar_forecast(path, TZ, span, 15, {"pv": 30.0})["pv"][:4].tolist() == [0.0, 2.0, 4.0, 6.0]


def test_local_wall_times_without_offset_are_refused_only_when_ambiguous(tmp_path):
    span = local_day(DAY, TZ)
    rows = ["interval_start,asset,mw"] + [f"2026-10-15T{h:02d}:00:00,pv,1.5" for h in range(24)]
    path = _write(tmp_path, "solar.csv", "\n".join(rows) + "\n")
    assert read_solar_forecast(path, TZ, span, 60, {"pv": 30.0})["pv"].tolist() == [1.5] * 24
    rows = ["interval_start,asset,mw", "2026-11-01T00:00:00,pv,0", "2026-11-01T01:00:00,pv,0"]
    path = _write(tmp_path, "fall.csv", "\n".join(rows) + "\n")
    with pytest.raises(IntervalDataError) as err:
        read_solar_forecast(path, TZ, local_day(FALL, TZ), 60, {"pv": 30.0})
    assert (err.value.source, err.value.where, err.value.field) == (str(path), "line 3", "interval_start")
    assert "ambiguous" in str(err.value) and "offset" in str(err.value)
    # a bad stamp before an ambiguous one is named for what it is; a spring-gap time is refused too
    path = _write(tmp_path, "mixed.csv", "interval_start,asset,mw\nnoon,pv,0\n2026-11-01T01:00:00,pv,0\n")
    with pytest.raises(IntervalDataError, match="line 2.*'noon' is not an ISO 8601 timestamp"):
        read_solar_forecast(path, TZ, local_day(FALL, TZ), 60, {"pv": 30.0})
    path = _write(tmp_path, "spring.csv", "interval_start,asset,mw\n2026-03-08T02:30:00,pv,0\n")
    with pytest.raises(IntervalDataError, match="line 2.*does not exist"):
        read_solar_forecast(path, TZ, local_day(date(2026, 3, 8), TZ), 60, {"pv": 30.0})


@pytest.mark.parametrize(("body", "where", "field", "says"), [
    ("2026-10-15T00:00:00-05:00,pv,1\n2026-10-15T01:00:00-05:00,wind,1\n", "line 3", "asset", "not a solar asset"),
    ("2026-10-15T00:00:00-05:00,pv,-1\n", "line 2", "mw", "not a number >= 0"),
    ("2026-10-15T00:00:00-05:00,pv,abc\n", "line 2", "mw", "not a number"),
    ("2026-10-15T00:00:00-05:00,pv,31\n", "line 2", "mw", "above the capacity"),
    ("yesterday,pv,1\n", "line 2", "interval_start", "not an ISO 8601"),
    ("2026-10-15T00:00:00-05:00,pv,1\n2026-10-15T00:00:00-05:00,pv,2\n", "line 3", "interval_start", "second row"),
])
def test_solar_file_errors_name_file_line_and_field(tmp_path, body, where, field, says):
    path = _write(tmp_path, "solar.csv", "interval_start,asset,mw\n" + body)
    with pytest.raises(IntervalDataError) as err:
        read_solar_forecast(path, TZ, local_day(DAY, TZ), 60, {"pv": 30.0})
    assert (err.value.source, err.value.where, err.value.field) == (str(path), where, field)
    assert says in str(err.value)


def test_a_day_the_file_does_not_cover_is_refused(tmp_path):
    path = _write(tmp_path, "solar.csv", "interval_start,asset,mw\n2026-10-15T00:00:00-05:00,pv,1\n")
    with pytest.raises(IntervalDataError, match=r"no forecast for pv in the interval starting 2026-10-15T06:00"):
        read_solar_forecast(path, TZ, local_day(DAY, TZ), 60, {"pv": 30.0})
    path = _write(tmp_path, "cols.csv", "start,asset,mw\n")
    with pytest.raises(IntervalDataError) as err:
        read_solar_forecast(path, TZ, local_day(DAY, TZ), 60, {"pv": 30.0})
    assert (err.value.where, err.value.field) == ("line 1", "interval_start")


def test_outages_derate_every_interval_they_touch(tmp_path):
    span = local_day(DAY, TZ)  # 00:00 CDT = 05:00 UTC
    o = [Outage(unit="gt2", start=datetime(2026, 10, 15, 2, 30, tzinfo=UTC) + timedelta(hours=5),
                end=datetime(2026, 10, 15, 4, tzinfo=UTC) + timedelta(hours=5), available_mw=20),
         Outage(unit="gt2", start=datetime(2026, 10, 15, 8, tzinfo=UTC), end=datetime(2026, 10, 15, 9, tzinfo=UTC),
                available_mw=0)]
    got = available_mw(o, {"gt1": 50.0, "gt2": 40.0}, span, 60)
    assert got["gt1"].tolist() == [50.0] * 24
    # 02:30-04:00 local touches hours 2 and 3; 03:00-04:00 local (08:00 UTC) is out: the least wins
    assert got["gt2"][:5].tolist() == [40.0, 40.0, 20.0, 0.0, 40.0]
    with pytest.raises(IntervalDataError, match="not a unit of the campus") as err:
        available_mw([Outage(unit="gt9", start=o[0].start, end=o[0].end, available_mw=0)], {"gt1": 50.0}, span, 60)
    assert (err.value.where, err.value.field) == ("outage 1", "unit")
    with pytest.raises(IntervalDataError, match="above the capacity"):
        available_mw([Outage(unit="gt1", start=o[0].start, end=o[0].end, available_mw=60)], {"gt1": 50.0}, span, 60)
    with pytest.raises(ValueError, match="is not after start"):
        Outage(unit="gt1", start=o[0].end, end=o[0].start, available_mw=0)


def test_outage_file(tmp_path):
    path = _write(tmp_path, "outages.csv", "unit,start,end,available_mw\n"
                  "gt2,2026-10-15T00:00:00-05:00,2026-10-15T06:00:00-05:00,20\n")
    (o,) = read_outages(path, TZ)
    assert (o.unit, o.start, o.end, o.available_mw) == ("gt2", datetime(2026, 10, 15, 5, tzinfo=UTC),
                                                        datetime(2026, 10, 15, 11, tzinfo=UTC), 20.0)
    path = _write(tmp_path, "bad.csv", "unit,start,end,available_mw\n"
                  "gt2,2026-10-15T06:00:00-05:00,2026-10-15T00:00:00-05:00,20\n")
    with pytest.raises(IntervalDataError) as err:
        read_outages(path, TZ)
    assert (err.value.source, err.value.where, err.value.field) == (str(path), "line 2", "end")


def _cfg(tmp_path, markets_extra):  # noqa: ANN001, ANN202
    data = {
        "hub": {"timezone": TZ},
        "parties": [{"id": "op", "name": "Op"}, {"id": "t1", "name": "T1"}],
        "assets": [{"id": "gt1", "kind": "gas_turbine", "capacity_kw": 50000, "heat_rate_mmbtu_per_mwh": 9.0,
                    "owners": [{"party": "op", "share": "1"}]},
                   {"id": "gt2", "kind": "gas_turbine", "capacity_kw": 40000, "heat_rate_mmbtu_per_mwh": 11.0},
                   {"id": "pv", "kind": "solar", "capacity_kw": 30000}],
        "channels": [{"id": "hall.load", "role": "tenant_load", "party": "t1", "interval_minutes": 15},
                     {"id": "poi.export", "role": "grid_export", "interval_minutes": 15}],
        "ownership": {"costs": {"gt1": {"variable_om_per_mwh": "4.00"}}},
        "adapters": [{"type": "markets.ercot", "id": "ercot", "config": {"url": "http://127.0.0.1:9"}}],
        "markets": {"adapters": {"ERCOT": "ercot"}, "gas_price": "3.00", "price_forecast": "45.00",
                    "reserve": {"mode": "fixed", "mw": 10.0},
                    "resources": [{"iso": "ERCOT", "resource": "RN1", "meter": ["poi.export"], "asset": "gt1"}],
                    **markets_extra},
    }
    return parse_config(data, "test", tmp_path)


def _load(db) -> None:  # noqa: ANN001
    before = local_day(DAY - timedelta(days=1), TZ)
    starts = before.start_epoch + 900 * np.arange(96, dtype=np.int64)
    db.intervals.write_series([ChannelSeries("hall.load", 15, starts, np.full(96, 10_000.0),
                                             np.full(96, Quality.VALID, np.uint8))], layer="validated")


def test_day_bids_use_the_solar_file_and_the_outages(sqlite_db, tmp_path):
    # pv makes 12 MW at 12:00-13:00 local only; gt2 derated to 20 MW 00:00-06:00 (config) and out
    # 12:00-13:00 (file)
    span = local_day(DAY, TZ)
    rows = ["interval_start,asset,mw"] + [
        f"{datetime.fromtimestamp(span.start_epoch + 3600 * h, tz=UTC):%Y-%m-%dT%H:%M:%SZ},pv,{12 if h == 12 else 0}"
        for h in range(24)]
    _write(tmp_path, "solar.csv", "\n".join(rows) + "\n")
    _write(tmp_path, "outages.csv", "unit,start,end,available_mw\ngt2,2026-10-15T12:00:00-05:00,"
                                    "2026-10-15T13:00:00-05:00,0\n")
    cfg = _cfg(tmp_path, {"solar_forecast_file": "solar.csv", "outage_file": "outages.csv",
                          "outages": [{"unit": "gt2", "start": "2026-10-15T00:00:00-05:00",
                                       "end": "2026-10-15T06:00:00-05:00", "available_mw": 20.0}]})
    _load(sqlite_db)
    fc = campus_forecast(sqlite_db, cfg, "ERCOT", DAY)
    assert fc.solar_mw.tolist() == [12.0 if h == 12 else 0.0 for h in range(24)]
    assert fc.availability[1].tolist() == [0.5] * 6 + [1.0] * 6 + [0.0] + [1.0] * 11
    built = build_day_bids(sqlite_db, cfg, "ERCOT", DAY, "RN1")
    (bid,) = built.bids
    assert check_bid(bid, ERCOT_DA, TZ) == []
    assert "solar from solar.csv" in built.notes[0] and "outages/derates: gt2" in built.notes[0]
    by_hour = {int((c.start.timestamp() - span.start_epoch) // 3600): c for c in bid.curves}
    # 00:00: gt1 50 + gt2 20 - load 40 x 1.05 - reserve 10 = 18 MW; the load goes on the cheaper gt1
    # (9 x 3 + 4 = $31.00), which offers its 8 MW left, then gt2 ($33.00) its 20 MW less the 10 MW reserve
    assert [(p.mw, p.price) for p in by_hour[0].points] == [(D("8.0"), D("31.00")), (D("18.0"), D("33.00"))]
    # 06:00: gt2 back to 40 MW: 8 at 31.00, then 38 at 33.00 (before the merit-order fix the LP's
    # choice of unit for the load priced all 38 MW at 31.00 here)
    assert [(p.mw, p.price) for p in by_hour[6].points] == [(D("8.0"), D("31.00")), (D("38.0"), D("33.00"))]
    # 12:00: gt2 out, pv 12: 50 + 12 - 42 - 10 = 10 MW of surplus in all
    assert by_hour[12].points[-1].mw == D("10.0")
    # without the file and outages: clear-sky sun and both units: hour 0 is 38 MW
    plain = build_day_bids(sqlite_db, _cfg(tmp_path, {}), "ERCOT", DAY, "RN1").bids[0]
    assert plain.curves[0].points[-1].mw == D("38.0")


def test_a_bad_forecast_file_stops_the_bids_with_its_line(sqlite_db, tmp_path):
    _write(tmp_path, "solar.csv", "interval_start,asset,mw\n2026-10-15T00:00:00-05:00,pv,x\n")
    cfg = _cfg(tmp_path, {"solar_forecast_file": "solar.csv"})
    with pytest.raises(IntervalDataError, match=r"solar.csv:line 2 \[mw\]"):
        build_day_bids(sqlite_db, cfg, "ERCOT", DAY, "RN1")
