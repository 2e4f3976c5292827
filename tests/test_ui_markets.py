"""The Markets pages on a day run through the local ERCOT: bids and acceptance, awards per
hour and the variance per charge code of every statement version, hand-computed with Decimal.

Set-up (America/Chicago, 20 Oct 2026, an ordinary 24-hour day): one resource RN1 offers 50 MW
at $25.00 every hour; the day-ahead price is $30 + hour ending (HE01 $31 ... HE24 $54), so
every hour clears 50 MWh; the real-time price is $40.00 in every quarter. The campus meter
reads 12.5 MWh per quarter (exactly a quarter of the award) except the first, 13.0 MWh.
The ISO's meter reads 0.010 MWh more in quarter 40 (HE11.1).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tomli_w

from kwhub.core.intervals import ChannelSeries
from kwhub.core.markets.hour_labels import DayGrid
from kwhub.core.markets.models import Bid, CurvePoint, OfferCurve
from kwhub.core.quality import Quality
from tests.fixtures.ui import csrf_of

TZ = "America/Chicago"
DAY = date(2026, 10, 20)


def _prices(node: str, day: date, market: str) -> list[D]:
    grid = DayGrid(day, TZ, 60 if market == "DA" else 15)
    if market == "DA":
        return [D(30 + int(he)) for he in grid.hour_ending.tolist()]
    return [D("40.00")] * len(grid)


@pytest.fixture
def ercot():
    from kwhub.plugins.markets.ercot.sim import ErcotSim

    sim = ErcotSim(tz=TZ, prices=_prices).start()
    yield sim
    sim.stop()


def _hub(db: Any, tmp_path: Path, url: str) -> Any:
    from kwhub.hub.app import Hub
    from kwhub.hub.config import load_config

    data = {
        "hub": {"name": "market ui", "timezone": TZ, "database": db.url},
        "parties": [{"id": "gasco", "name": "GasCo"}, {"id": "tenant_a", "name": "Tenant A"},
                    {"id": "tenant_b", "name": "Tenant B"}],
        "assets": [{"id": "gt1", "kind": "gas_turbine", "capacity_kw": 60000, "heat_rate_mmbtu_per_mwh": 9.0,
                    "owners": [{"party": "gasco", "share": "1"}]}],
        "channels": [{"id": "poi.export", "role": "grid_export", "interval_minutes": 15}],
        "adapters": [{"type": "markets.ercot", "id": "ercot",
                      "config": {"url": url, "resource": "RN1", "nodes": ["RN1"], "timeout_s": 2}}],
        "markets": {"adapters": {"ERCOT": "ercot"},
                    "resources": [{"iso": "ERCOT", "resource": "RN1", "meter": ["poi.export"], "asset": "gt1"}]},
        "scheduler": {"enabled": False},
    }
    (tmp_path / "kwhub.toml").write_bytes(tomli_w.dumps(data).encode())
    return Hub.from_config(load_config(tmp_path / "kwhub.toml"), database=db)


def _bid() -> Bid:
    grid = DayGrid(DAY, TZ, 60)
    curves = tuple(OfferCurve(start=datetime.fromtimestamp(s, tz=UTC), end=datetime.fromtimestamp(s + 3600, tz=UTC),
                              points=(CurvePoint(mw=D("50.0"), price=D("25.00")),)) for s in grid.starts.tolist())
    return Bid(bid_id="RN1", iso="ERCOT", market="DA", resource="RN1", trading_date=DAY, curves=curves)


def _cells(html: str) -> list[str]:
    return [" ".join(re.sub(r"<[^>]+>", " ", c).split()) for c in re.findall(r"<td[^>]*>(.*?)</td>", html, re.S)]


def _row(html: str, attr: str, value: str) -> list[str]:
    m = re.search(rf'<tr {attr}="{re.escape(value)}">(.*?)</tr>', html, re.S)
    assert m, f"no row {attr}={value}"
    return _cells(m.group(1))


def _section(html: str, statement: str) -> str:
    m = re.search(rf'<section class="card" data-statement="{re.escape(statement)}">(.*?)</section>', html, re.S)
    assert m, f"no statement {statement}"
    return m.group(1)


def test_a_market_day_shows_bids_awards_and_the_variance_per_charge_code(sqlite_db, tmp_path, ercot):
    from fastapi.testclient import TestClient

    from kwhub.hub.api.app import create_app
    from kwhub.hub.markets import service, store
    from tests.fixtures.api import make_keys

    db = sqlite_db
    hub = _hub(db, tmp_path, ercot.url)
    grid = DayGrid(DAY, TZ, 15)
    mwh = np.full(len(grid), 12.5)
    mwh[0] = 13.0
    db.intervals.write_series([ChannelSeries("poi.export", 15, grid.starts, mwh * 1000,
                                             np.full(len(grid), Quality.VALID, np.uint8))], layer="validated", source="t")
    ercot.meter = service.meter_source(db, hub.config, "ERCOT")
    sid, _ = service.submit_bids(db, hub.config, "ERCOT", [_bid()])
    service.poll_submission(db, hub.config, sid)
    ercot.inject("meter_variance", resource="RN1", day=DAY, interval=40, mwh="0.010")
    service.fetch_market_day(db, hub.config, "ERCOT", DAY)

    keys = make_keys(db)
    client = TestClient(create_app(hub, access_log=False))
    form = client.get("/ui/login")
    assert client.post("/ui/login", data={"key": keys["auditor"], "csrf_token": csrf_of(form.text)},
                       follow_redirects=False).status_code == 303

    period = client.get("/ui/markets?period=2026-10").text
    assert f'href="/ui/markets/ERCOT/{DAY}"' in period
    # the period page: the ISO's totals of the day's latest versions, -51,000.00 and -20.40 USD
    assert re.search(r'<td class="num">-51,000.00 USD</td></tr>', period)
    assert re.search(r'<td class="num">-20.40 USD</td></tr>', period)
    page = client.get(f"/ui/markets/ERCOT/{DAY}")
    assert page.status_code == 200, page.text[-800:]
    html = page.text
    # bids and acceptance
    sub = _row(html, "data-submission", sid)
    assert sub[0] == "DA" and sub[2] == "accepted" and sub[3].startswith("RN1 accepted")
    # awards: 24 hours of 50 MWh = 1,200 MWh
    awards = _row(html, "data-award", "DA-RN1")
    assert awards[2:26] == ["50.0 MWh"] * 24 and awards[26] == "1,200.0 MWh"
    assert ">HE01<" in html and ">HE24<" in html
    # DAESAMT = -50 MWh x sum(30 + HE, HE 1..24) = -50 x (720 + 300) = -51,000.00, shadow = ISO
    dam = _section(html, "QKWHUB-DAM-20261020-INITIAL")
    assert _row(dam, "data-code", "DAESAMT")[2:5] == ["-51,000.00 USD", "-51,000.00 USD", "0.00 USD"]
    assert "No line is outside the tolerance" in dam
    # RTEIAMT: kwhub -40.00 x (13.0 - 12.5) = -20.00; the ISO adds -40.00 x 0.010 = -0.40 in HE11.1
    # -> ISO -20.40, variance +0.40, one line outside the tolerance, cause quantity
    rtm = _section(html, "QKWHUB-RTM-20261020-INITIAL")
    assert _row(rtm, "data-code", "RTEIAMT")[2:6] == ["-20.00 USD", "-20.40 USD", "0.40 USD",
                                                      "no: 1 line(s) outside"]
    # the version's total over its codes: the RTM statement carries only RTEIAMT here
    assert _row(rtm, "data-code", "total")[1:4] == ["-20.00 USD", "-20.40 USD", "0.40 USD"]
    assert _row(dam, "data-code", "total")[1:4] == ["-51,000.00 USD", "-51,000.00 USD", "0.00 USD"]
    outside = re.search(r'<table class="outside">.*?<tbody>(.*?)</tbody>', rtm, re.S)
    assert outside, "no table of lines outside the tolerance"
    assert _cells(outside.group(1))[:6] == ["RTEIAMT", "RN1", "2026-10-20 HE11.1", "0.00 USD", "-0.40 USD", "0.40 USD"]
    assert _cells(outside.group(1))[6].startswith("quantity")
    # the page read the API's route: the same figures as GET /api/v1/markets/ERCOT/variance
    api = client.get(f"/api/v1/markets/ERCOT/variance?day={DAY}", headers={"Authorization": f"Bearer {keys['auditor']}"})
    codes = {c["code"]: c for st in api.json()["statements"] for c in st["codes"]}
    assert codes["RTEIAMT"]["iso"] == "-20.40" and codes["DAESAMT"]["shadow"] == "-51000.00"
    assert store.count_shadow_runs(db, "ERCOT", DAY) >= 2  # each comparison is recorded

    # a day without data, an unknown ISO and a tenant key
    assert client.get("/ui/markets/ERCOT/2026-10-21").status_code == 404
    assert client.get("/ui/markets/NYISO/2026-10-20").status_code == 404
    assert client.get("/ui/markets/ERCOT/2026-13-01").status_code == 422
    tenant = TestClient(client.app)
    form = tenant.get("/ui/login")
    tenant.post("/ui/login", data={"key": keys["tenant_a"], "csrf_token": csrf_of(form.text)})
    r = tenant.get(f"/ui/markets/ERCOT/{DAY}")
    assert r.status_code == 403 and "markets:read" in r.text
