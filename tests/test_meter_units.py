"""Meters as operators name them: serial + channel number, value units checked against the channel.

Every expected value is worked out by hand in the comment beside it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from kwhub.core.adapters import AdapterContext
from kwhub.core.campus import Channel
from kwhub.core.intervals import IntervalDataError
from kwhub.core.meter_units import UNITS, conversion, header_unit
from kwhub.plugins.meters.csv_meter import CsvMeter


def meter(channels: list[Channel], **cfg: object) -> CsvMeter:
    return CsvMeter("csv", cfg, AdapterContext(channels={c.id: c for c in channels}))


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def values(batch) -> dict[str, list[float]]:  # type: ignore[no-untyped-def]
    return {s.channel_id: s.values.tolist() for s in batch.series}


def test_revenue_meter_rows_found_by_serial_and_channel_number(tmp_path):
    chans = [Channel(id="gt1.net", meter="GT1-REV", meter_channel=1),
             Channel(id="gt1.aux", meter_serial="GT1-REV", meter_channel=2)]
    p = write(tmp_path, "rev.csv", "Meter,Channel,Interval End,kW\n"
              "GT1-REV,1,2024-06-01T00:15:00-04:00,41250.0\n"
              "GT1-REV,02,2024-06-01T00:15:00-04:00,400.0\n"
              "GT1-REV,1,2024-06-01T00:30:00-04:00,41310.0\n")
    got = values(meter(chans, profile="revenue_meter").read_file(p))
    # kW x 15 min / 60: 41250 / 4 = 10312.5, 41310 / 4 = 10327.5; channel "02" is channel 2: 400 / 4 = 100
    assert got == {"gt1.net": [10312.5, 10327.5], "gt1.aux": [100.0]}


def test_meter_serial_alone_finds_the_meters_only_channel(tmp_path):
    p = write(tmp_path, "m.csv", "meter,interval_start,kwh\nM-17,2024-01-01T00:00:00Z,5\n")
    got = values(meter([Channel(id="pv.net", meter="M-17")], profile="none", channel_column="meter",
                       value_column="kwh", interval_minutes=15).read_file(p))
    assert got == {"pv.net": [5.0]}


def test_meter_serial_is_another_name_of_meter():
    assert Channel(id="a", meter_serial="M1", meter_channel=3).meter == "M1"
    with pytest.raises(ValidationError, match="meter serial once"):
        Channel(id="a", meter="M1", meter_serial="M2")


def test_mwh_column_converts_into_a_kwh_channel(tmp_path):
    p = write(tmp_path, "m.csv", "channel_id,interval_start,interval_minutes,MWh\n"
              "hall.load,2024-01-01T00:00:00Z,15,1.25\nhall.load,2024-01-01T00:15:00Z,15,0.0105\n")
    got = values(meter([Channel(id="hall.load")], profile="kwhub").read_file(p))
    assert got["hall.load"] == pytest.approx([1250.0, 10.5])  # 1.25 MWh = 1250 kWh, 0.0105 MWh = 10.5 kWh


def test_kwh_column_converts_into_an_mwh_channel_and_wh_into_kwh(tmp_path):
    p = write(tmp_path, "m.csv", "channel_id,interval_start,interval_minutes,kwh\nbig,2024-01-01T00:00:00Z,15,2500\n")
    assert values(meter([Channel(id="big", unit="MWh")], profile="kwhub").read_file(p))["big"] == \
        pytest.approx([2.5])  # 2500 kWh = 2.5 MWh
    q = write(tmp_path, "w.csv", "channel_id;Start;Energy Wh\nsmall;2024-01-01T00:00:00Z;250000\n")
    got = values(meter([Channel(id="small")], profile="none", delimiter=";", timestamp_column="Start",
                       value_column="Energy Wh", interval_minutes=15).read_file(q))
    assert got["small"] == pytest.approx([250.0])  # 250000 Wh = 250 kWh


def test_kw_column_into_hourly_kwh_channel(tmp_path):
    p = write(tmp_path, "m.csv", "channel_id,interval_start,interval_minutes,kW\nc,2024-01-01T00:00:00Z,60,900\n")
    got = values(meter([Channel(id="c", interval_minutes=60)], profile="kwhub").read_file(p))
    assert got["c"] == pytest.approx([900.0])  # 900 kW for 60 min = 900 kWh


def test_fuel_and_fraction_columns_stay_in_their_unit(tmp_path):
    p = write(tmp_path, "f.csv", "channel_id,interval_start,interval_minutes,mmbtu\n"
              "gt1.fuel,2024-01-01T00:00:00Z,15,88.2\ngt1.fuel,2024-01-01T00:15:00Z,15,89.18\n")
    got = values(meter([Channel(id="gt1.fuel", unit="MMBtu", role="fuel")], profile="kwhub").read_file(p))
    assert got["gt1.fuel"] == pytest.approx([88.2, 89.18])
    q = write(tmp_path, "a.csv", "channel_id,interval_start,interval_minutes,fraction\n"
              "gt1.avail,2024-01-01T00:00:00Z,15,0.975\n")
    got = values(meter([Channel(id="gt1.avail", unit="fraction")], profile="kwhub").read_file(q))
    assert got["gt1.avail"] == pytest.approx([0.975])


def test_kwh_column_for_a_fuel_channel_names_file_line_column_and_both_units(tmp_path):
    p = write(tmp_path, "fuel.csv", "channel_id,interval_start,interval_minutes,kwh\n"
              "hall.load,2024-01-01T00:00:00Z,15,10\n"
              "gt1.fuel,2024-01-01T00:00:00Z,15,88.2\n")
    chans = [Channel(id="hall.load"), Channel(id="gt1.fuel", unit="MMBtu", role="fuel")]
    with pytest.raises(IntervalDataError) as ei:
        meter(chans, profile="kwhub").read_file(p)
    msg = str(ei.value)
    assert "fuel.csv" in msg and "line 3" in msg and "[kwh]" in msg
    assert "kWh" in msg and "MMBtu" in msg and "gt1.fuel" in msg


def test_unit_column_row_that_does_not_convert_is_refused_at_its_line(tmp_path):
    p = write(tmp_path, "u.csv", "channel_id,interval_start,interval_minutes,value,unit\n"
              "c,2024-01-01T00:00:00Z,60,1.2,MWh\nc,2024-01-01T01:00:00Z,60,0.5,fraction\n")
    m = meter([Channel(id="c", interval_minutes=60)], profile="none", value_column="value", unit_column="unit",
              interval_minutes_column="interval_minutes")
    with pytest.raises(IntervalDataError) as ei:
        m.read_file(p)
    assert "line 3" in str(ei.value) and "[unit]" in str(ei.value) and "fraction" in str(ei.value)


def test_unit_column_rows_convert_each_into_the_channel_unit(tmp_path):
    p = write(tmp_path, "u.csv", "channel_id,interval_start,interval_minutes,value,unit\n"
              "c,2024-05-01T00:00:00Z,60,1.2,MWh\nc,2024-05-01T01:00:00Z,60,900,kW\n")
    m = meter([Channel(id="c", unit="MWh", interval_minutes=60)], profile="none", value_column="value",
              unit_column="unit", interval_minutes_column="interval_minutes")
    # 1.2 MWh stays 1.2 MWh; 900 kW x 1 h = 900 kWh = 0.9 MWh
    assert values(m.read_file(p))["c"] == pytest.approx([1.2, 0.9])


def test_a_unit_setting_wins_over_a_misnamed_column(tmp_path):
    p = write(tmp_path, "f.csv", "channel_id,interval_start,interval_minutes,kwh\ngt1.fuel,2024-01-01T00:00:00Z,15,7\n")
    got = values(meter([Channel(id="gt1.fuel", unit="MMBtu")], profile="kwhub", unit="MMBtu").read_file(p))
    assert got["gt1.fuel"] == [7.0]


def test_an_undeclared_wide_file_is_read_in_each_channels_unit(tmp_path):
    p = write(tmp_path, "w.csv", "interval_start,hall.load,gt1.fuel\n2024-01-01T00:00:00Z,10,88.2\n")
    chans = [Channel(id="hall.load"), Channel(id="gt1.fuel", unit="MMBtu")]
    assert values(meter(chans, profile="kwhub", interval_minutes=15).read_file(p)) == \
        {"hall.load": [10.0], "gt1.fuel": [88.2]}


def test_unit_table():
    assert header_unit("Energy Wh") is UNITS["wh"] and header_unit("value (MWh)") is UNITS["mwh"]
    assert header_unit("value") is None and header_unit("hall_a.load") is None
    assert conversion(UNITS["mwh"], UNITS["kwh"], 15) == 1000.0
    assert conversion(UNITS["mw"], UNITS["kwh"], 15) == 250.0  # 1 MW for 15 min = 250 kWh
    assert conversion(UNITS["kwh"], UNITS["kw"], 15) == 4.0  # 1 kWh in 15 min = 4 kW mean
    assert conversion(UNITS["mmbtu"], UNITS["kwh"], 15) is None
    assert conversion(UNITS["fraction"], UNITS["mwh"], 15) is None


def test_period_readings_convert_into_the_channels_energy_unit(tmp_path):
    p = write(tmp_path, "p.csv", "account,start,end,kwh\n"
              "ACC-1,2024-10-01T00:00:00-04:00,2024-11-01T00:00:00-04:00,1854200\n")
    cfg = dict(profile="none", reading_kind="period", channel_column="account", timestamp_column="start",
               period_end_column="end", value_column="kwh")
    (mwh,) = meter([Channel(id="util.main", meter="ACC-1", unit="MWh")], **cfg).read_file(p).periods
    assert mwh.channel_id == "util.main" and mwh.values.tolist() == pytest.approx([1854.2])  # 1,854,200 kWh
    with pytest.raises(IntervalDataError) as ei:
        meter([Channel(id="util.main", meter="ACC-1", unit="MMBtu")], **cfg).read_file(p)
    assert "p.csv" in str(ei.value) and "line 2" in str(ei.value) and "[kwh]" in str(ei.value)
    assert "MMBtu" in str(ei.value)
